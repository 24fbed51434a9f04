//! The recovery worker: the only part of commsync that calls provider APIs. It consumes
//! `SyncQueue`, runs each job, writes what it recovers through the same idempotent ingest
//! path as the webhooks (with `source: "recovery"`), and keeps account health and the gap
//! ledger current.

pub mod batch;
pub mod config;
mod gmail;
mod linkedin;
mod outcome;
mod whatsapp;

pub use config::RecoveryConfig;

use crate::aws::AwsClients;
use crate::bus::EventBus;
use crate::config::{ConfigError, Env};
use crate::ingest::{IngestDeps, IngestError};
use crate::jobs::{JobKind, SyncJob};
use crate::providers::api::{http_client, ApiError};
use crate::providers::gmail::api::{GmailApi, OAuthClient};
use crate::providers::linkedin::api::LinkedInApi;
use crate::providers::whatsapp::api::GraphApi;
use crate::queue::{Queue, QueueError};
use crate::store::{AccountRecord, StoreError};
use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use batch::{backoff, process_batch, RecordOutcome};
use std::sync::Arc;
use std::time::Instant;
use thiserror::Error;

/// Dependencies of the worker, built once per container.
#[derive(Debug)]
pub struct RecoveryDeps {
    pub ingest: IngestDeps,
    pub sync_queue: Queue,
    pub bus: EventBus,
    pub gmail: GmailApi,
    pub graph: GraphApi,
    pub linkedin: LinkedInApi,
    pub config: RecoveryConfig,
}

impl RecoveryDeps {
    /// Builds the dependencies from configuration; makes no network call.
    pub fn new(clients: &AwsClients, env: &impl Env) -> Result<Self, ConfigError> {
        let config = RecoveryConfig::from_env(env)?;
        let http = http_client(config.provider_timeout);
        let oauth = match (&config.gmail_client_id, &config.gmail_client_secret) {
            (Some(client_id), Some(client_secret)) => Some(OAuthClient {
                token_url: config.gmail_token_url.clone(),
                client_id: client_id.clone(),
                client_secret: client_secret.clone(),
            }),
            _ => None,
        };
        Ok(Self {
            ingest: IngestDeps::from_env(clients, env)?,
            sync_queue: Queue::new(clients.sqs.clone(), config.sync_queue_url.clone()),
            bus: EventBus::new(clients.eventbridge.clone(), config.event_bus_name.clone()),
            gmail: GmailApi::new(http.clone(), config.gmail_api_base_url.clone(), oauth),
            graph: GraphApi::new(http.clone(), config.graph_base_url.clone()),
            linkedin: LinkedInApi::new(http, config.linkedin_base_url.clone(), config.linkedin_version.clone()),
            config,
        })
    }
}

/// Why a job did not finish, classified by what happens next.
#[derive(Debug, Error)]
pub enum JobError {
    /// Retried with backoff: provider 5xx or throttling, timeouts, AWS failures.
    #[error("temporary failure: {0}")]
    Transient(String),
    /// The credentials are revoked or expired: the account needs the user; the job is dropped.
    #[error("credentials revoked or expired: {0}")]
    Reconnect(String),
    /// commsync's provider setup is wrong (a topic grant, a missing WABA id); the job is dropped.
    #[error("configuration problem: {0}")]
    Configuration(String),
    /// The job cannot succeed as it is; it is retried until it reaches `SyncDLQ`.
    #[error("job cannot run: {0}")]
    Permanent(String),
}

impl From<ApiError> for JobError {
    fn from(error: ApiError) -> Self {
        match error {
            ApiError::Transient { .. } => JobError::Transient(error.to_string()),
            ApiError::Unauthorized { .. } | ApiError::Forbidden { .. } => JobError::Reconnect(error.to_string()),
            ApiError::NotFound { .. } | ApiError::Rejected { .. } | ApiError::Decode { .. } => {
                JobError::Permanent(error.to_string())
            }
        }
    }
}

impl From<StoreError> for JobError {
    fn from(error: StoreError) -> Self {
        JobError::Transient(error.to_string())
    }
}

impl From<IngestError> for JobError {
    fn from(error: IngestError) -> Self {
        JobError::Transient(error.to_string())
    }
}

impl From<QueueError> for JobError {
    fn from(error: QueueError) -> Self {
        JobError::Transient(error.to_string())
    }
}

/// What a finished job did.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct JobReport {
    /// New events stored: items the webhooks had not delivered.
    pub recovered: u64,
    pub api_calls: u64,
    pub detail: String,
    /// The job sent a delayed copy of itself (which holds the recovery lease now).
    pub requeued: bool,
}

/// One job being run, with the account it is for.
pub(crate) struct JobContext<'a> {
    pub deps: &'a RecoveryDeps,
    pub job: &'a SyncJob,
    pub account: &'a AccountRecord,
    pub api_calls: u64,
}

/// Handles one SQS batch from `SyncQueue`.
pub async fn handle(event: SqsEvent, deadline: Option<Instant>, deps: Arc<RecoveryDeps>) -> SqsBatchResponse {
    let sqs = deps.sync_queue.client().clone();
    let queue_url = deps.sync_queue.url().to_string();
    process_batch(event, deadline, &sqs, &queue_url, move |record| {
        let deps = deps.clone();
        async move { process_record(record, &deps).await }
    })
    .await
}

/// Runs the job in one SQS record and decides whether SQS should deliver it again.
pub async fn process_record(record: SqsMessage, deps: &RecoveryDeps) -> RecordOutcome {
    let message_id = record.message_id.clone().unwrap_or_default();
    let receive_count: u32 =
        record.attributes.get("ApproximateReceiveCount").and_then(|count| count.parse().ok()).unwrap_or(1);
    // Every retry backs off, poison jobs too: they reach SyncDLQ after maxReceiveCount either way.
    let retry_delay = backoff(receive_count, deps.config.retry_base, deps.config.retry_max);

    let job: SyncJob = match record.body.as_deref().map(serde_json::from_str) {
        Some(Ok(job)) => job,
        Some(Err(error)) => {
            tracing::error!(sqs_message_id = %message_id, receive_count, %error, "job body is not a SyncJob; it will reach SyncDLQ");
            return RecordOutcome::Retry { delay: Some(retry_delay) };
        }
        None => {
            tracing::error!(sqs_message_id = %message_id, receive_count, "job has no body; it will reach SyncDLQ");
            return RecordOutcome::Retry { delay: Some(retry_delay) };
        }
    };

    let started = Instant::now();
    let (result, api_calls) = run_job(&job, deps).await;
    let recovered = result.as_ref().map_or(0, |report| report.recovered);
    let outcome = outcome::settle(&job, result, api_calls, deps).await;

    let mut metrics = crate::metrics::Metrics::new("recovery-worker", job.provider.as_str())
        .dimension("JobKind", job.kind.as_str())
        .dimension("Outcome", outcome.name());
    metrics
        .count("Recoveries", 1)
        .count("EventsRecovered", recovered)
        .count("ProviderApiCalls", api_calls)
        .milliseconds("Duration", started.elapsed().as_millis() as u64);
    metrics.emit();
    tracing::info!(
        tenant = %job.tenant_id, account = %job.account_id, provider = %job.provider, job_kind = job.kind.as_str(),
        job_id = %job.job_id, sqs_message_id = %message_id, receive_count, api_calls, outcome = outcome.name(),
        duration_ms = started.elapsed().as_millis() as u64, "job finished"
    );

    match outcome {
        outcome::Settled::Done => RecordOutcome::Done,
        outcome::Settled::RetryLater | outcome::Settled::Poison => RecordOutcome::Retry { delay: Some(retry_delay) },
    }
}

/// Runs a job against its account's current state. Returns the result and the provider
/// API calls it made, which count even when the job failed.
async fn run_job(job: &SyncJob, deps: &RecoveryDeps) -> (Result<JobReport, JobError>, u64) {
    let account = match deps.ingest.store.get_account(&job.tenant_id, &job.account_id).await {
        Ok(account) => account,
        Err(StoreError::AccountNotFound { .. }) => {
            return (Err(JobError::Configuration("the account no longer exists".to_string())), 0);
        }
        Err(error) => return (Err(error.into()), 0),
    };
    if account.provider != job.provider {
        let problem = format!("job is for {} but the account is {}", job.provider, account.provider);
        return (Err(JobError::Permanent(problem)), 0);
    }
    if account.status == crate::store::health::status::RECONNECT_REQUIRED {
        let detail = "skipped: the account needs the user to reconnect".to_string();
        return (Ok(JobReport { detail, ..Default::default() }), 0);
    }

    let mut context = JobContext { deps, job, account: &account, api_calls: 0 };
    let result = match job.kind {
        JobKind::HistorySync => gmail::history_sync(&mut context).await,
        JobKind::FullSync => gmail::full_sync(&mut context, "requested").await,
        JobKind::Probe => gmail::probe(&mut context).await,
        JobKind::RenewWatch => gmail::renew_watch(&mut context).await,
        JobKind::CheckSubscription => whatsapp::check_subscription(&mut context).await,
        JobKind::NotificationsPull => linkedin::notifications_pull(&mut context).await,
    };
    let api_calls = context.api_calls;
    let result = result.map(|mut report| {
        report.api_calls = api_calls;
        report
    });
    (result, api_calls)
}
