//! The `webhook-gmail` Lambda handler: a Pub/Sub push for a Gmail mailbox.
//!
//! A push carries no message content, only the mailbox and a historyId. The handler
//! records it once (keyed by the Pub/Sub `messageId`), raises the account's notified
//! historyId, and sends one `history_sync` job unless one is already pending.

use super::auth::PushAuthenticator;
use super::jwks::JwksCache;
use super::push::{parse, GmailPush};
use crate::aws::AwsClients;
use crate::config::{ConfigError, Env, GmailConfig};
use crate::http::{json_response, WebhookRequest};
use crate::ids::{ExternalId, Provider};
use crate::ingest::webhook::reject_oversized;
use crate::ingest::{IngestDeps, IngestReport};
use crate::jobs::{JobKind, SyncJob};
use crate::queue::Queue;
use crate::store::mailbox::Notified;
use crate::store::{PushRecord, Route, StoreError};
use chrono::Utc;
use lambda_http::aws_lambda_events::apigw::{ApiGatewayV2httpRequest, ApiGatewayV2httpResponse};
use lambda_http::http::Method;
use serde_json::json;
use std::time::{Duration, Instant};

/// Dependencies of the handler, built once per container.
#[derive(Debug)]
pub struct GmailDeps {
    pub ingest: IngestDeps,
    pub sync_queue: Queue,
    pub auth: PushAuthenticator,
    pub recovery_lease: Duration,
}

impl GmailDeps {
    /// Builds the dependencies from configuration; makes no network call (the JWKS is fetched lazily).
    pub fn new(clients: &AwsClients, env: &impl Env) -> Result<Self, ConfigError> {
        let config = GmailConfig::from_env(env)?;
        Ok(Self {
            ingest: IngestDeps::from_env(clients, env)?,
            sync_queue: Queue::new(clients.sqs.clone(), config.sync_queue_url),
            auth: PushAuthenticator::new(
                config.audience.expose(),
                config.service_account.expose(),
                JwksCache::new(config.jwks_url),
            ),
            recovery_lease: config.recovery_lease,
        })
    }
}

/// Handles one Pub/Sub push for `/webhooks/gmail`.
pub async fn handle(event: ApiGatewayV2httpRequest, deps: &GmailDeps) -> ApiGatewayV2httpResponse {
    handle_with_report(event, deps).await.0
}

/// Handles a push and also returns what it did, for the local demo and tests.
pub async fn handle_with_report(
    event: ApiGatewayV2httpRequest,
    deps: &GmailDeps,
) -> (ApiGatewayV2httpResponse, Option<IngestReport>) {
    let started = Instant::now();
    let request = match WebhookRequest::from_apigw(event) {
        Ok(request) => request,
        Err(error) => return (json_response(400, json!({ "error": error.to_string() })), None),
    };
    let (answer, report) = if request.method == Method::POST {
        push(&request, deps).await
    } else {
        (json_response(405, json!({ "error": "Pub/Sub pushes use POST" })), None)
    };
    crate::ingest::webhook::finish_request(
        "webhook-gmail",
        Provider::Gmail,
        &request.method,
        &answer,
        report.as_ref(),
        started,
    );
    (answer, report)
}

fn acknowledged() -> ApiGatewayV2httpResponse {
    let mut answer = json_response(204, json!({}));
    answer.body = None;
    answer
}

async fn push(request: &WebhookRequest, deps: &GmailDeps) -> (ApiGatewayV2httpResponse, Option<IngestReport>) {
    if let Some(answer) = reject_oversized(&deps.ingest, Provider::Gmail, &request.body) {
        return (answer, None);
    }
    if let Err(reason) = deps.auth.verify(request.header("authorization")).await {
        tracing::warn!(provider = "gmail", outcome = "rejected", reason = reason.reason(), detail = %reason, "push token rejected");
        return (json_response(401, json!({ "error": "invalid push token" })), None);
    }

    let mut report = IngestReport { received: 1, ..Default::default() };
    let result = Box::pin(record(&request.body, &deps.recorder(), &mut report)).await;
    match result {
        Ok(()) => (acknowledged(), Some(report)),
        Err(error) => {
            tracing::error!(provider = "gmail", outcome = "failed", %error, "push not recorded; Pub/Sub will redeliver");
            (json_response(500, json!({ "error": "temporary storage failure; retry later" })), None)
        }
    }
}

/// What recording a push needs: the webhook's dependencies, or the same parts for a
/// replay from quarantine (which must not quarantine the body a second time).
pub struct PushRecorder<'a> {
    pub ingest: &'a IngestDeps,
    pub sync_queue: &'a Queue,
    pub recovery_lease: Duration,
    /// Whether a body that cannot be recorded goes to quarantine (webhooks) or is only
    /// reported (replays).
    pub quarantine: bool,
}

impl GmailDeps {
    pub fn recorder(&self) -> PushRecorder<'_> {
        PushRecorder {
            ingest: &self.ingest,
            sync_queue: &self.sync_queue,
            recovery_lease: self.recovery_lease,
            quarantine: true,
        }
    }
}

/// Records a verified push body; an error means nothing was persisted and the push must be
/// redelivered.
pub async fn record(body: &[u8], deps: &PushRecorder<'_>, report: &mut IngestReport) -> Result<(), StoreError> {
    let store = &deps.ingest.store;
    let notification = match parse(body) {
        Ok(notification) => notification,
        Err(error) => return quarantine(deps, body, &error.to_string(), report).await,
    };
    let Ok(mailbox) = ExternalId::for_provider(Provider::Gmail, &notification.email_address) else {
        let reason = format!("emailAddress {:?} is not a valid mailbox id", notification.email_address);
        return quarantine(deps, body, &reason, report).await;
    };
    let routes = deps.ingest.routes.resolve(store, Provider::Gmail, std::slice::from_ref(&mailbox)).await?;
    let Some(route) = routes.get(&mailbox) else {
        report.unknown_external_ids.push(mailbox.to_string());
        let reason = format!("no account is registered for gmail {mailbox}; register it with `commsync accounts add`; the raw body is kept here");
        return quarantine(deps, body, &reason, report).await;
    };

    let received_at = Utc::now();
    let recorded = store
        .record_push(
            &route.tenant_id,
            &route.account_id,
            &notification.message_id,
            notification.history_id,
            received_at,
        )
        .await?;
    report.stored = usize::from(recorded == PushRecord::New);
    report.duplicates = usize::from(recorded == PushRecord::Duplicate);

    // A redelivered push goes on as well: raising is idempotent, and a first delivery that
    // failed after recording the push still gets its historyId raised here.
    let lease_until = received_at + deps.recovery_lease;
    let notified = store
        .raise_and_claim(
            &route.tenant_id,
            &route.account_id,
            notification.history_id,
            received_at,
            lease_until,
            &notification.message_id,
            recorded == PushRecord::New,
        )
        .await?;
    if notified == (Notified::Raised { lease_claimed: true }) {
        report.jobs_sent = send_history_sync(deps, route, &notification).await;
    }

    report.accounts.push(format!("{}/{}", route.tenant_id, route.account_id));
    let outcome = match notified {
        Notified::Raised { lease_claimed: true } => "recorded",
        Notified::Raised { lease_claimed: false } => "recorded_job_pending",
        Notified::NotNewer => "not_newer",
    };
    log_outcome(route, &notification, outcome);
    Ok(())
}

/// Sends the `history_sync` job for a push that took the recovery lease. Returns the number
/// of jobs sent. A failure here is logged, not returned: the raised historyId is already
/// stored, so the gap detector finds the mailbox behind and asks again.
async fn send_history_sync(deps: &PushRecorder<'_>, route: &Route, notification: &GmailPush) -> usize {
    let store = &deps.ingest.store;
    let mut job = SyncJob::new(
        JobKind::HistorySync,
        route.tenant_id.clone(),
        route.account_id.clone(),
        Provider::Gmail,
        "gmail_push",
        &notification.history_id.to_string(),
    );
    job.notified_history_id = Some(notification.history_id);
    match deps.sync_queue.send_all(&[job.to_message()]).await {
        Ok(()) => 1,
        Err(error) => {
            tracing::error!(tenant = %route.tenant_id, account = %route.account_id, job_id = %job.job_id, %error, "history_sync job not sent; releasing the lease");
            if let Err(error) = store.release_recovery_lease(&route.tenant_id, &route.account_id).await {
                tracing::error!(tenant = %route.tenant_id, account = %route.account_id, %error, "lease not released; it expires by itself");
            }
            0
        }
    }
}

async fn quarantine(
    deps: &PushRecorder<'_>,
    body: &[u8],
    reason: &str,
    report: &mut IngestReport,
) -> Result<(), StoreError> {
    if !deps.quarantine {
        report.problems.push(reason.to_string());
        return Ok(());
    }
    let digest = deps.ingest.store.quarantine(Provider::Gmail, body, reason).await?;
    tracing::warn!(provider = "gmail", outcome = "quarantined", digest = %digest, reason, "push quarantined");
    report.quarantined = Some(digest);
    Ok(())
}

fn log_outcome(route: &Route, notification: &GmailPush, outcome: &str) {
    tracing::info!(
        provider = "gmail", tenant = %route.tenant_id, account = %route.account_id,
        pubsub_message_id = %notification.message_id, history_id = notification.history_id, outcome,
        "push handled"
    );
}
