//! Configuration of the recovery worker, read once at init.

use crate::config::{ConfigError, Env};
use crate::secret::Secret;
use std::time::Duration;

/// Provider endpoints and recovery limits. Every base URL is configuration, so tests
/// point them at local servers.
#[derive(Debug, Clone)]
pub struct RecoveryConfig {
    pub sync_queue_url: String,
    pub event_bus_name: String,
    /// `GMAIL_API_BASE_URL`, default `https://gmail.googleapis.com`.
    pub gmail_api_base_url: String,
    /// `GMAIL_OAUTH_TOKEN_URL`, default `https://oauth2.googleapis.com/token`.
    pub gmail_token_url: String,
    pub gmail_client_id: Option<String>,
    pub gmail_client_secret: Option<Secret>,
    /// `GMAIL_PUBSUB_TOPIC`, `projects/{project}/topics/{topic}`, needed by `renew_watch`.
    pub gmail_topic: Option<String>,
    /// `GMAIL_LABELS`: only messages with one of these labels become events; empty keeps all.
    pub gmail_labels: Vec<String>,
    /// `GMAIL_FULL_SYNC_DAYS` (default 7): how far back a full sync lists messages.
    pub full_sync_days: u32,
    /// `GMAIL_FULL_SYNC_MAX_MESSAGES` (default 500): the most messages one full sync fetches.
    pub full_sync_max_messages: u32,
    /// `GMAIL_EMPTY_HISTORY_RETRIES` (default 3): re-runs of a history sync whose push
    /// announced a historyId the history does not show yet.
    pub empty_history_retries: u32,
    /// `GMAIL_EMPTY_HISTORY_DELAY_SECONDS` (default 30).
    pub empty_history_delay: Duration,
    /// `WHATSAPP_GRAPH_BASE_URL`, default `https://graph.facebook.com/v21.0`.
    pub graph_base_url: String,
    /// `LINKEDIN_API_BASE_URL`, default `https://api.linkedin.com`.
    pub linkedin_base_url: String,
    /// `LINKEDIN_API_VERSION` (`YYYYMM`), default `202511`.
    pub linkedin_version: String,
    /// `PROVIDER_TIMEOUT_SECONDS` (default 10): per provider HTTP request.
    pub provider_timeout: Duration,
    /// `RETRY_BASE_SECONDS` (default 30): first backoff after a transient failure, doubling per receive.
    pub retry_base: Duration,
    /// `RETRY_MAX_SECONDS` (default 900).
    pub retry_max: Duration,
}

impl RecoveryConfig {
    pub fn from_env(env: &impl Env) -> Result<Self, ConfigError> {
        let text = |name: &str, default: &str| {
            env.get(name).filter(|value| !value.is_empty()).unwrap_or_else(|| default.to_string())
        };
        Ok(Self {
            sync_queue_url: env.required("SYNC_QUEUE_URL")?,
            event_bus_name: env.required("EVENT_BUS_NAME")?,
            gmail_api_base_url: text("GMAIL_API_BASE_URL", "https://gmail.googleapis.com"),
            gmail_token_url: text("GMAIL_OAUTH_TOKEN_URL", "https://oauth2.googleapis.com/token"),
            gmail_client_id: env.get("GMAIL_OAUTH_CLIENT_ID").filter(|value| !value.is_empty()),
            gmail_client_secret: env.optional_secret("GMAIL_OAUTH_CLIENT_SECRET"),
            gmail_topic: env.get("GMAIL_PUBSUB_TOPIC").filter(|value| !value.is_empty()),
            gmail_labels: text("GMAIL_LABELS", "")
                .split(',')
                .map(str::trim)
                .filter(|label| !label.is_empty())
                .map(str::to_string)
                .collect(),
            full_sync_days: env.number("GMAIL_FULL_SYNC_DAYS", 7)? as u32,
            full_sync_max_messages: env.number("GMAIL_FULL_SYNC_MAX_MESSAGES", 500)? as u32,
            empty_history_retries: env.number("GMAIL_EMPTY_HISTORY_RETRIES", 3)? as u32,
            empty_history_delay: Duration::from_secs(env.number("GMAIL_EMPTY_HISTORY_DELAY_SECONDS", 30)?),
            graph_base_url: text("WHATSAPP_GRAPH_BASE_URL", "https://graph.facebook.com/v21.0"),
            linkedin_base_url: text("LINKEDIN_API_BASE_URL", "https://api.linkedin.com"),
            linkedin_version: text("LINKEDIN_API_VERSION", "202511"),
            provider_timeout: Duration::from_secs(env.number("PROVIDER_TIMEOUT_SECONDS", 10)?),
            retry_base: Duration::from_secs(env.number("RETRY_BASE_SECONDS", 30)?),
            retry_max: Duration::from_secs(env.number("RETRY_MAX_SECONDS", 900)?),
        })
    }
}
