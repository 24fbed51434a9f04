//! A Gmail API client for the calls recoveries make: `users.history.list`,
//! `users.messages.get`, `users.messages.list`, `users.getProfile`, `users.watch`, and
//! the OAuth refresh-token grant. int64 fields (historyId, internalDate, expiration)
//! arrive as JSON strings and are parsed here.

use crate::providers::api::{send_json, ApiError};
use crate::secret::Secret;
use serde::{Deserialize, Deserializer};
use serde_json::Value;

const PROVIDER: &str = "gmail";

/// Accepts an int64 sent as a JSON string (Gmail's encoding) or as a number.
pub fn int64<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u64, D::Error> {
    match Value::deserialize(deserializer)? {
        Value::String(text) => text.parse().map_err(serde::de::Error::custom),
        Value::Number(number) => number.as_u64().ok_or_else(|| serde::de::Error::custom("negative int64")),
        other => Err(serde::de::Error::custom(format!("expected an int64, found {other}"))),
    }
}

/// One page of `users.history.list`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HistoryPage {
    /// Absent when nothing changed since `startHistoryId`.
    #[serde(default)]
    pub history: Vec<HistoryRecord>,
    #[serde(default)]
    pub next_page_token: Option<String>,
    /// The mailbox's current historyId.
    #[serde(deserialize_with = "int64")]
    pub history_id: u64,
}

/// One history record: the changes of one historyId.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HistoryRecord {
    #[serde(deserialize_with = "int64")]
    pub id: u64,
    #[serde(default)]
    pub messages_added: Vec<MessageChange>,
    #[serde(default)]
    pub messages_deleted: Vec<MessageChange>,
    #[serde(default)]
    pub labels_added: Vec<LabelChange>,
    #[serde(default)]
    pub labels_removed: Vec<LabelChange>,
}

#[derive(Debug, Deserialize)]
pub struct MessageChange {
    pub message: MessageRef,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LabelChange {
    pub message: MessageRef,
    #[serde(default)]
    pub label_ids: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MessageRef {
    pub id: String,
    #[serde(default)]
    pub thread_id: Option<String>,
    #[serde(default)]
    pub label_ids: Vec<String>,
}

/// A message as `users.messages.get?format=metadata` returns it; kept as JSON too.
#[derive(Debug, Clone)]
pub struct Message {
    pub id: String,
    pub label_ids: Vec<String>,
    pub internal_date_ms: Option<u64>,
    pub json: Value,
}

/// One page of `users.messages.list`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MessageListPage {
    #[serde(default)]
    pub messages: Vec<MessageRef>,
    #[serde(default)]
    pub next_page_token: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Profile {
    pub email_address: String,
    #[serde(deserialize_with = "int64")]
    pub history_id: u64,
}

/// The answer of `users.watch`: the current historyId and the expiry in epoch milliseconds.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Watch {
    #[serde(deserialize_with = "int64")]
    pub history_id: u64,
    #[serde(deserialize_with = "int64")]
    pub expiration: u64,
}

/// The answer of the refresh-token grant.
#[derive(Deserialize)]
pub struct TokenGrant {
    pub access_token: String,
    #[serde(default)]
    pub expires_in: Option<u64>,
}

impl std::fmt::Debug for TokenGrant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenGrant").field("access_token", &"[redacted]").field("expires_in", &self.expires_in).finish()
    }
}

/// OAuth client credentials for refreshing Gmail access tokens.
#[derive(Debug, Clone)]
pub struct OAuthClient {
    pub token_url: String,
    pub client_id: String,
    pub client_secret: Secret,
}

/// The Gmail API at a base URL (`https://gmail.googleapis.com` in production).
#[derive(Debug, Clone)]
pub struct GmailApi {
    http: reqwest::Client,
    base_url: String,
    oauth: Option<OAuthClient>,
}

impl GmailApi {
    pub fn new(http: reqwest::Client, base_url: impl Into<String>, oauth: Option<OAuthClient>) -> Self {
        Self { http, base_url: base_url.into().trim_end_matches('/').to_string(), oauth }
    }

    fn url(&self, path: &str) -> String {
        format!("{}/gmail/v1/users/me/{path}", self.base_url)
    }

    pub async fn history_page(
        &self,
        token: &Secret,
        start_history_id: u64,
        page_token: Option<&str>,
    ) -> Result<HistoryPage, ApiError> {
        let mut request = self
            .http
            .get(self.url("history"))
            .bearer_auth(token.expose())
            .query(&[("startHistoryId", start_history_id.to_string()), ("maxResults", "500".to_string())]);
        if let Some(page_token) = page_token {
            request = request.query(&[("pageToken", page_token)]);
        }
        send_json(request, PROVIDER, "users.history.list").await
    }

    pub async fn message(&self, token: &Secret, id: &str) -> Result<Message, ApiError> {
        let request = self
            .http
            .get(self.url(&format!("messages/{}", urlencode(id))))
            .bearer_auth(token.expose())
            .query(&[("format", "metadata")]);
        let json: Value = send_json(request, PROVIDER, "users.messages.get").await?;
        let label_ids = json
            .get("labelIds")
            .and_then(Value::as_array)
            .map(|labels| labels.iter().filter_map(Value::as_str).map(str::to_string).collect())
            .unwrap_or_default();
        let internal_date_ms = json.get("internalDate").and_then(Value::as_str).and_then(|text| text.parse().ok());
        Ok(Message { id: id.to_string(), label_ids, internal_date_ms, json })
    }

    pub async fn list_messages(
        &self,
        token: &Secret,
        query: &str,
        page_token: Option<&str>,
        max_results: u32,
    ) -> Result<MessageListPage, ApiError> {
        let mut request = self
            .http
            .get(self.url("messages"))
            .bearer_auth(token.expose())
            .query(&[("q", query.to_string()), ("maxResults", max_results.to_string())]);
        if let Some(page_token) = page_token {
            request = request.query(&[("pageToken", page_token)]);
        }
        send_json(request, PROVIDER, "users.messages.list").await
    }

    pub async fn profile(&self, token: &Secret) -> Result<Profile, ApiError> {
        let request = self.http.get(self.url("profile")).bearer_auth(token.expose());
        send_json(request, PROVIDER, "users.getProfile").await
    }

    pub async fn watch(&self, token: &Secret, topic: &str, label_ids: &[String]) -> Result<Watch, ApiError> {
        let mut body = serde_json::json!({ "topicName": topic });
        if !label_ids.is_empty() {
            body["labelIds"] = serde_json::json!(label_ids);
            body["labelFilterBehavior"] = serde_json::json!("INCLUDE");
        }
        let request = self.http.post(self.url("watch")).bearer_auth(token.expose()).json(&body);
        send_json(request, PROVIDER, "users.watch").await
    }

    /// Exchanges a refresh token for a new access token.
    pub async fn refresh(&self, refresh_token: &Secret) -> Result<TokenGrant, ApiError> {
        let oauth = self.oauth.as_ref().ok_or_else(|| ApiError::Rejected {
            provider: PROVIDER,
            operation: "oauth.token",
            status: 0,
            message: "GMAIL_OAUTH_CLIENT_ID and GMAIL_OAUTH_CLIENT_SECRET are not configured".to_string(),
        })?;
        let request = self.http.post(&oauth.token_url).form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token.expose()),
            ("client_id", oauth.client_id.as_str()),
            ("client_secret", oauth.client_secret.expose()),
        ]);
        send_json(request, PROVIDER, "oauth.token").await
    }
}

fn urlencode(value: &str) -> String {
    url::form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn history_page_reads_string_int64() {
        let page: HistoryPage = serde_json::from_str(r#"{"historyId":"1234"}"#).unwrap();
        assert_eq!(page.history_id, 1234);
        assert!(page.history.is_empty());
    }

    #[test]
    fn watch_reads_string_expiration() {
        let watch: Watch = serde_json::from_str(r#"{"historyId":"99","expiration":"1797000000000"}"#).unwrap();
        assert_eq!(watch.expiration, 1_797_000_000_000);
    }

    #[test]
    fn token_grant_debug_redacts_token() {
        let grant: TokenGrant = serde_json::from_str(r#"{"access_token":"ya29.secret","expires_in":3599}"#).unwrap();
        assert!(!format!("{grant:?}").contains("ya29"));
    }
}
