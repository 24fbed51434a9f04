//! A LinkedIn REST client for `organizationalEntityNotifications`, which keeps 60 days of
//! an organization's social action notifications.

use crate::providers::api::{send_json, ApiError};
use crate::secret::Secret;
use serde::Deserialize;
use serde_json::Value;

const PROVIDER: &str = "linkedin";
/// Notifications per page.
const PAGE_SIZE: usize = 50;
/// Actions the pull asks for: every action the webhook delivers.
const ACTIONS: &str = "List(LIKE,COMMENT,SHARE,SHARE_MENTION,ADMIN_COMMENT,COMMENT_EDIT,COMMENT_DELETE)";

#[derive(Debug, Deserialize)]
struct NotificationsPage {
    #[serde(default)]
    elements: Vec<Value>,
}

/// The LinkedIn REST API at a base URL (`https://api.linkedin.com` in production).
#[derive(Debug, Clone)]
pub struct LinkedInApi {
    http: reqwest::Client,
    base_url: String,
    /// The `LinkedIn-Version` header, `YYYYMM`.
    version: String,
}

impl LinkedInApi {
    pub fn new(http: reqwest::Client, base_url: impl Into<String>, version: impl Into<String>) -> Self {
        Self { http, base_url: base_url.into().trim_end_matches('/').to_string(), version: version.into() }
    }

    /// Returns every notification of `organization` modified in `[start_ms, end_ms)`, all pages.
    /// Also returns the number of API calls made.
    pub async fn notifications(
        &self,
        token: &Secret,
        organization: &str,
        start_ms: i64,
        end_ms: i64,
    ) -> Result<(Vec<Value>, u32), ApiError> {
        let organization: String = url::form_urlencoded::byte_serialize(organization.as_bytes()).collect();
        let mut notifications = Vec::new();
        let mut calls = 0;
        let mut start = 0;
        loop {
            // Rest.li values (List(...), (start:..,end:..)) must not be form-encoded, so the query is built by hand.
            let url = format!(
                "{}/rest/organizationalEntityNotifications?q=criteria&organizationalEntity={organization}&actions={ACTIONS}\
                 &timeRange=(start:{start_ms},end:{end_ms})&start={start}&count={PAGE_SIZE}",
                self.base_url
            );
            let request = self
                .http
                .get(url)
                .bearer_auth(token.expose())
                .header("LinkedIn-Version", &self.version)
                .header("X-Restli-Protocol-Version", "2.0.0");
            let page: NotificationsPage = send_json(request, PROVIDER, "organizationalEntityNotifications").await?;
            calls += 1;

            let received = page.elements.len();
            notifications.extend(page.elements);
            if received < PAGE_SIZE {
                return Ok((notifications, calls));
            }
            start += PAGE_SIZE;
        }
    }
}
