//! Recovery jobs: the body of every `SyncQueue` message. Webhooks and the gap detector
//! send them; the recovery worker runs them.

use crate::ids::{AccountId, Provider, TenantId};
use serde::{Deserialize, Serialize};

/// Version of the job layout.
pub const JOB_SCHEMA_VERSION: u32 = 1;

/// The recovery a job asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobKind {
    /// Gmail: `users.history.list` from the stored cursor.
    HistorySync,
    /// Gmail: list recent messages after the cursor expired, then store a new cursor.
    FullSync,
    /// Gmail: `users.getProfile`, to compare the current historyId with the cursor.
    Probe,
    /// Gmail: `users.watch`, before the watch expires.
    RenewWatch,
    /// WhatsApp: `GET /{waba_id}/subscribed_apps`, re-subscribing when it is empty.
    CheckSubscription,
    /// LinkedIn: `organizationalEntityNotifications` over a time window.
    NotificationsPull,
}

impl JobKind {
    pub fn as_str(self) -> &'static str {
        match self {
            JobKind::HistorySync => "history_sync",
            JobKind::FullSync => "full_sync",
            JobKind::Probe => "probe",
            JobKind::RenewWatch => "renew_watch",
            JobKind::CheckSubscription => "check_subscription",
            JobKind::NotificationsPull => "notifications_pull",
        }
    }
}

/// One recovery job for one account.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SyncJob {
    pub schema_version: u32,
    /// Stable id of the request, for logs and deduplication.
    pub job_id: String,
    pub kind: JobKind,
    pub tenant_id: TenantId,
    pub account_id: AccountId,
    pub provider: Provider,
    /// What asked for the job: `gmail_push`, a gap finding kind, or `operator`.
    pub reason: String,
    /// RFC 3339 time the job was requested.
    pub requested_at: String,
    /// Gmail: the historyId of the notification that caused the job.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notified_history_id: Option<u64>,
    /// LinkedIn: start of the window to pull, epoch milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window_start_ms: Option<i64>,
    /// LinkedIn: end of the window to pull, epoch milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window_end_ms: Option<i64>,
    /// How many times the job re-sent itself because the provider was not ready yet.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub attempt: u32,
}

fn is_zero(value: &u32) -> bool {
    *value == 0
}

impl SyncJob {
    /// Builds the SQS message for the job, with its kind and ids as attributes.
    pub fn to_message(&self) -> crate::queue::OutgoingMessage {
        crate::queue::OutgoingMessage {
            body: serde_json::to_string(self).expect("jobs serialize"),
            attributes: vec![
                ("job_kind", self.kind.as_str().to_string()),
                ("tenant_id", self.tenant_id.to_string()),
                ("provider", self.provider.to_string()),
            ],
            delay_seconds: None,
        }
    }

    /// Builds a job of `kind` for an account, with an id unique to the request.
    pub fn new(
        kind: JobKind,
        tenant_id: TenantId,
        account_id: AccountId,
        provider: Provider,
        reason: &str,
        key: &str,
    ) -> Self {
        Self {
            schema_version: JOB_SCHEMA_VERSION,
            job_id: format!("{}:{tenant_id}:{account_id}:{key}", kind.as_str()),
            kind,
            tenant_id,
            account_id,
            provider,
            reason: reason.to_string(),
            requested_at: crate::event::rfc3339(chrono::Utc::now()),
            notified_history_id: None,
            window_start_ms: None,
            window_end_ms: None,
            attempt: 0,
        }
    }
}
