//! Gmail push records (`sk=PUSH#{pubsub_message_id}`), the notified historyId on the
//! account item, and the recovery lease that keeps one job per account pending at a time.

use super::{keys, n, s, Store, StoreError};
use crate::event::rfc3339;
use crate::ids::{AccountId, TenantId};
use crate::jobs::JobKind;
use chrono::{DateTime, Utc};
use std::time::Duration;

/// The account attribute that holds the recovery lease (epoch seconds).
pub const RECOVERY_LEASE: &str = "recovery_lease_until";

/// Pushes are deduplicated for a week; Pub/Sub retains unacknowledged messages at most 7 days.
const PUSH_RECORD_TTL: Duration = Duration::from_secs(7 * 86_400);

/// Result of recording a push by its Pub/Sub message id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushRecord {
    New,
    /// Pub/Sub delivered this message before.
    Duplicate,
}

/// Effect of a push on the account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Notified {
    /// The historyId was raised; `lease_claimed` when this push also took the recovery
    /// lease and so must send the `history_sync` job.
    Raised { lease_claimed: bool },
    /// The historyId was not higher than the one stored: only the counters changed.
    NotNewer,
}

impl Store {
    /// Records a push once, keyed by its Pub/Sub `messageId`.
    pub async fn record_push(
        &self,
        tenant_id: &TenantId,
        account_id: &AccountId,
        message_id: &str,
        history_id: u64,
        received_at: DateTime<Utc>,
    ) -> Result<PushRecord, StoreError> {
        let table = &self.tables.events;
        let partition = keys::account_partition(tenant_id, account_id);
        let sk = format!("PUSH#{message_id}");
        let result = self
            .dynamodb
            .put_item()
            .table_name(table)
            .item("pk", s(partition.clone()))
            .item("sk", s(sk.clone()))
            .item("history_id", n(history_id))
            .item("received_at", s(rfc3339(received_at)))
            .item("expires_at", n(received_at.timestamp() + PUSH_RECORD_TTL.as_secs() as i64))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await;
        match result {
            Ok(_) => Ok(PushRecord::New),
            Err(error) if error.as_service_error().is_some_and(|e| e.is_conditional_check_failed_exception()) => {
                Ok(PushRecord::Duplicate)
            }
            Err(error) => Err(StoreError::dynamo("PutItem", table, &error)),
        }
    }

    /// Raises `notified_history_id` and takes the recovery lease in one conditional
    /// `UpdateItem` when both are possible (the common case: one call). Otherwise raises
    /// alone, or only counts the request when the historyId is not newer.
    ///
    /// The lease records `holder` (the push's Pub/Sub message id). When the SDK retries the
    /// update after a lost response, the retry fails its condition because the first attempt
    /// applied. For a push delivered the first time (`first_delivery`), finding its own holder
    /// on the lease can only mean that, so it counts as claimed and the job is still sent. A
    /// redelivered push never counts its holder: its first delivery sent the job.
    #[allow(clippy::too_many_arguments)]
    pub async fn raise_and_claim(
        &self,
        tenant_id: &TenantId,
        account_id: &AccountId,
        history_id: u64,
        at: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        holder: &str,
        first_delivery: bool,
    ) -> Result<Notified, StoreError> {
        let table = &self.tables.accounts;
        let result = self
            .dynamodb
            .update_item()
            .table_name(table)
            .key("pk", s(keys::account_pk(tenant_id)))
            .key("sk", s(keys::account_sk(account_id)))
            .update_expression(
                "SET notified_history_id = :history, notified_at = :at, notified_epoch = :epoch, \
                 last_webhook_at = :at, last_webhook_epoch = :epoch, recovery_lease_until = :until, \
                 recovery_lease_kind = :kind, recovery_lease_holder = :holder ADD webhook_requests :one, webhook_events :one",
            )
            .condition_expression(
                "attribute_exists(pk) AND (attribute_not_exists(notified_history_id) OR notified_history_id < :history) \
                 AND (attribute_not_exists(recovery_lease_until) OR recovery_lease_until < :epoch)",
            )
            .expression_attribute_values(":history", n(history_id))
            .expression_attribute_values(":at", s(rfc3339(at)))
            .expression_attribute_values(":epoch", n(at.timestamp()))
            .expression_attribute_values(":until", n(lease_until.timestamp()))
            .expression_attribute_values(":kind", s(JobKind::HistorySync.as_str()))
            .expression_attribute_values(":holder", s(holder))
            .expression_attribute_values(":one", n(1))
            .send()
            .await;
        match result {
            Ok(_) => Ok(Notified::Raised { lease_claimed: true }),
            Err(error) if error.as_service_error().is_some_and(|e| e.is_conditional_check_failed_exception()) => {
                let raised = self.raise_notified_history_id(tenant_id, account_id, history_id, at).await?;
                if raised {
                    return Ok(Notified::Raised { lease_claimed: false });
                }
                if !first_delivery {
                    return Ok(Notified::NotNewer);
                }
                let account = self.get_account(tenant_id, account_id).await?;
                let ours = account.recovery_lease_holder.as_deref() == Some(holder)
                    && account.recovery_lease_until.is_some_and(|until| until > at.timestamp());
                Ok(if ours { Notified::Raised { lease_claimed: true } } else { Notified::NotNewer })
            }
            Err(error) => Err(StoreError::dynamo("UpdateItem", table, &error)),
        }
    }

    /// Raises the account's `notified_history_id` to `history_id` when it is higher, and
    /// counts the request. Returns whether it was raised; a lower or equal id changes only
    /// the liveness counters.
    pub async fn raise_notified_history_id(
        &self,
        tenant_id: &TenantId,
        account_id: &AccountId,
        history_id: u64,
        at: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let table = &self.tables.accounts;
        let result = self
            .dynamodb
            .update_item()
            .table_name(table)
            .key("pk", s(keys::account_pk(tenant_id)))
            .key("sk", s(keys::account_sk(account_id)))
            .update_expression(
                "SET notified_history_id = :history, notified_at = :at, notified_epoch = :epoch, last_webhook_at = :at, last_webhook_epoch = :epoch \
                 ADD webhook_requests :one, webhook_events :one",
            )
            .condition_expression(
                "attribute_exists(pk) AND (attribute_not_exists(notified_history_id) OR notified_history_id < :history)",
            )
            .expression_attribute_values(":history", n(history_id))
            .expression_attribute_values(":at", s(rfc3339(at)))
            .expression_attribute_values(":epoch", n(at.timestamp()))
            .expression_attribute_values(":one", n(1))
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(error) if error.as_service_error().is_some_and(|e| e.is_conditional_check_failed_exception()) => {
                self.record_webhook_activity(tenant_id, account_id, Default::default(), at).await?;
                Ok(false)
            }
            Err(error) => Err(StoreError::dynamo("UpdateItem", table, &error)),
        }
    }

    /// Takes the account's recovery lease until `until` unless another job holds an
    /// unexpired one. Returns whether this caller now holds it.
    pub async fn claim_recovery_lease(
        &self,
        tenant_id: &TenantId,
        account_id: &AccountId,
        kind: JobKind,
        until: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        tracing::debug!(tenant = %tenant_id, account = %account_id, job_kind = kind.as_str(), "claiming the recovery lease");
        self.claim_lease(tenant_id, account_id, RECOVERY_LEASE, until).await
    }

    /// Clears the account's recovery lease, so the next push or detector run may send a job.
    pub async fn release_recovery_lease(&self, tenant_id: &TenantId, account_id: &AccountId) -> Result<(), StoreError> {
        self.release_lease(tenant_id, account_id, RECOVERY_LEASE).await
    }
}
