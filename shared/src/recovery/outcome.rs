//! What happens after a job ran: the gap ledger entry, account health, events on the bus,
//! and whether SQS delivers the job again.

use super::{JobError, JobReport, RecoveryDeps};
use crate::bus::BusEvent;
use crate::event::rfc3339;
use crate::jobs::SyncJob;
use crate::store::health::status;
use crate::store::LedgerEntry;
use chrono::Utc;
use serde_json::json;

/// The settled fate of a job's SQS message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settled {
    /// Delete the message.
    Done,
    /// Deliver it again after a backoff.
    RetryLater,
    /// Deliver it again until `maxReceiveCount` moves it to `SyncDLQ`.
    Poison,
}

impl Settled {
    pub fn name(self) -> &'static str {
        match self {
            Settled::Done => "done",
            Settled::RetryLater => "retry",
            Settled::Poison => "failed",
        }
    }
}

/// Records the result of a job and decides the fate of its message.
pub async fn settle(
    job: &SyncJob,
    result: Result<JobReport, JobError>,
    api_calls: u64,
    deps: &RecoveryDeps,
) -> Settled {
    let store = &deps.ingest.store;
    let (tenant_id, account_id) = (&job.tenant_id, &job.account_id);

    let (settled, ledger_outcome, detail, recovered) = match &result {
        Ok(report) => {
            let outcome = if report.requeued {
                "retry_scheduled"
            } else if report.recovered > 0 {
                "recovered"
            } else {
                "nothing_missing"
            };
            match store.record_recovery_success(tenant_id, account_id, Utc::now()).await {
                Ok(previous) if previous.was_unhealthy() && previous.status != status::RECONNECT_REQUIRED => {
                    publish(
                        deps,
                        job,
                        "AccountRecovered",
                        json!({
                            "previous_status": previous.status,
                            "consecutive_failures": previous.consecutive_failures,
                            "job_kind": job.kind.as_str(),
                        }),
                    )
                    .await;
                }
                Ok(_) => {}
                Err(error) => {
                    tracing::error!(tenant = %tenant_id, account = %account_id, %error, "account health not updated after success")
                }
            }
            (Settled::Done, outcome, report.detail.clone(), report.recovered)
        }
        Err(JobError::Transient(message)) => {
            if let Err(error) = store.record_recovery_failure(tenant_id, account_id, message).await {
                tracing::error!(tenant = %tenant_id, account = %account_id, %error, "failure streak not recorded");
            }
            tracing::warn!(tenant = %tenant_id, account = %account_id, job_id = %job.job_id, error = %message, "job failed temporarily; retrying with backoff");
            (Settled::RetryLater, "retry", message.clone(), 0)
        }
        Err(JobError::Reconnect(message)) => {
            mark_unhealthy(deps, job, status::RECONNECT_REQUIRED, message).await;
            (Settled::Done, status::RECONNECT_REQUIRED, message.clone(), 0)
        }
        Err(JobError::Configuration(message)) => {
            mark_unhealthy(deps, job, status::CONFIGURATION_ERROR, message).await;
            (Settled::Done, status::CONFIGURATION_ERROR, message.clone(), 0)
        }
        Err(JobError::Permanent(message)) => {
            if let Err(error) = store.record_recovery_failure(tenant_id, account_id, message).await {
                tracing::error!(tenant = %tenant_id, account = %account_id, %error, "failure streak not recorded");
            }
            tracing::error!(tenant = %tenant_id, account = %account_id, job_id = %job.job_id, error = %message, "job cannot succeed; it will reach SyncDLQ");
            (Settled::Poison, "failed", message.clone(), 0)
        }
    };

    let entry = LedgerEntry {
        at: rfc3339(Utc::now()),
        kind: format!("recovery:{}", job.kind.as_str()),
        provider: job.provider,
        reason: job.reason.clone(),
        job_id: job.job_id.clone(),
        recovered_events: recovered,
        api_calls,
        outcome: ledger_outcome.to_string(),
        detail,
    };
    if let Err(error) = store.record_ledger(tenant_id, account_id, &entry).await {
        tracing::error!(tenant = %tenant_id, account = %account_id, job_id = %job.job_id, %error, "ledger entry not written");
    }

    // The lease keeps a second job away while this one may still be retried.
    let keeps_lease = settled == Settled::RetryLater || matches!(&result, Ok(report) if report.requeued);
    if !keeps_lease {
        if let Err(error) = store.release_recovery_lease(tenant_id, account_id).await {
            tracing::warn!(tenant = %tenant_id, account = %account_id, %error, "recovery lease not released; it expires by itself");
        }
    }
    settled
}

/// Sets a status that needs a person and publishes `AccountHealthChanged` when it changed.
async fn mark_unhealthy(deps: &RecoveryDeps, job: &SyncJob, new_status: &str, reason: &str) {
    match deps.ingest.store.set_account_status(&job.tenant_id, &job.account_id, new_status, reason).await {
        Ok(previous) if previous != new_status => {
            tracing::warn!(tenant = %job.tenant_id, account = %job.account_id, status = new_status, reason, "account needs attention; job dropped");
            publish(
                deps,
                job,
                "AccountHealthChanged",
                json!({
                    "status": new_status,
                    "previous_status": previous,
                    "reason": reason,
                    "job_kind": job.kind.as_str(),
                }),
            )
            .await;
        }
        Ok(_) => {}
        Err(error) => {
            tracing::error!(tenant = %job.tenant_id, account = %job.account_id, %error, "account status not updated")
        }
    }
}

async fn publish(deps: &RecoveryDeps, job: &SyncJob, detail_type: &'static str, extra: serde_json::Value) {
    let mut detail = json!({
        "tenant_id": job.tenant_id,
        "account_id": job.account_id,
        "provider": job.provider,
        "at": rfc3339(Utc::now()),
    });
    if let (Some(detail), Some(extra)) = (detail.as_object_mut(), extra.as_object()) {
        detail.extend(extra.clone());
    }
    if let Err(error) = deps.bus.publish(&[BusEvent { detail_type, detail }]).await {
        tracing::error!(tenant = %job.tenant_id, account = %job.account_id, detail_type, %error, "event not published to the bus");
    }
}
