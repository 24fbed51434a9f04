//! A Graph API client for the WhatsApp recovery: the app's subscription to a WhatsApp
//! Business Account (`/{waba_id}/subscribed_apps`) and a phone number's health.

use crate::providers::api::{send_json, ApiError};
use crate::secret::Secret;
use serde::Deserialize;
use serde_json::Value;

const PROVIDER: &str = "whatsapp";

#[derive(Debug, Deserialize)]
struct SubscribedApps {
    #[serde(default)]
    data: Vec<Value>,
}

/// A phone number's health fields as the Graph API reports them.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct PhoneHealth {
    #[serde(default)]
    pub quality_rating: Option<String>,
    #[serde(default)]
    pub status: Option<String>,
}

/// The Graph API at a versioned base URL (`https://graph.facebook.com/v21.0` in production).
#[derive(Debug, Clone)]
pub struct GraphApi {
    http: reqwest::Client,
    base_url: String,
}

impl GraphApi {
    pub fn new(http: reqwest::Client, base_url: impl Into<String>) -> Self {
        Self { http, base_url: base_url.into().trim_end_matches('/').to_string() }
    }

    /// Returns how many apps are subscribed to the WABA; 0 means no webhooks are sent.
    pub async fn subscribed_apps(&self, token: &Secret, waba_id: &str) -> Result<usize, ApiError> {
        let request = self.http.get(format!("{}/{waba_id}/subscribed_apps", self.base_url)).bearer_auth(token.expose());
        let apps: SubscribedApps = send_json(request, PROVIDER, "subscribed_apps.get").await?;
        Ok(apps.data.len())
    }

    /// Subscribes the app whose token this is to the WABA's webhooks.
    pub async fn subscribe(&self, token: &Secret, waba_id: &str) -> Result<(), ApiError> {
        let request =
            self.http.post(format!("{}/{waba_id}/subscribed_apps", self.base_url)).bearer_auth(token.expose());
        let answer: Value = send_json(request, PROVIDER, "subscribed_apps.post").await?;
        if answer.get("success").and_then(Value::as_bool) == Some(true) {
            Ok(())
        } else {
            Err(ApiError::Decode {
                provider: PROVIDER,
                operation: "subscribed_apps.post",
                message: format!("no success in {answer}"),
            })
        }
    }

    pub async fn phone_health(&self, token: &Secret, phone_number_id: &str) -> Result<PhoneHealth, ApiError> {
        let request = self
            .http
            .get(format!("{}/{phone_number_id}", self.base_url))
            .bearer_auth(token.expose())
            .query(&[("fields", "quality_rating,status,display_phone_number,verified_name")]);
        send_json(request, PROVIDER, "phone_number.get").await
    }
}
