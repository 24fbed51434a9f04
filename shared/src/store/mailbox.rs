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
    /// Seen before; `handled` is set once a request finished processing it.
    Duplicate {
        handled: bool,
    },
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
                let existing = self
                    .dynamodb
                    .get_item()
                    .table_name(table)
                    .key("pk", s(partition))
                    .key("sk", s(sk))
                    .consistent_read(true)
                    .send()
                    .await
                    .map_err(|error| StoreError::dynamo("GetItem", table, &error))?;
                let handled = existing.item.is_some_and(|item| item.contains_key("handled_at"));
                Ok(PushRecord::Duplicate { handled })
            }
            Err(error) => Err(StoreError::dynamo("PutItem", table, &error)),
        }
    }

    /// Marks a push as fully processed, so a redelivery is acknowledged without work.
    pub async fn mark_push_handled(
        &self,
        tenant_id: &TenantId,
        account_id: &AccountId,
        message_id: &str,
    ) -> Result<(), StoreError> {
        let table = &self.tables.events;
        self.dynamodb
            .update_item()
            .table_name(table)
            .key("pk", s(keys::account_partition(tenant_id, account_id)))
            .key("sk", s(format!("PUSH#{message_id}")))
            .update_expression("SET handled_at = :now")
            .expression_attribute_values(":now", n(Utc::now().timestamp()))
            .send()
            .await
            .map_err(|error| StoreError::dynamo("UpdateItem", table, &error))?;
        Ok(())
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
