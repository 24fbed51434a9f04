//! Account state the recovery worker maintains: the Gmail cursor and watch, the
//! WhatsApp subscription check, health (status, failure streak) and named leases.

use super::{get_n, get_s, keys, n, s, Store, StoreError};
use crate::event::rfc3339;
use crate::ids::{AccountId, TenantId};
use aws_sdk_dynamodb::types::ReturnValue;
use chrono::{DateTime, Utc};

/// Account status values. `active` is healthy; the others need attention.
pub mod status {
    pub const ACTIVE: &str = "active";
    /// The credentials were revoked or expired: the user must reconnect; retries cannot help.
    pub const RECONNECT_REQUIRED: &str = "reconnect_required";
    /// The provider rejected commsync's setup (for example a Pub/Sub topic without the publisher grant).
    pub const CONFIGURATION_ERROR: &str = "configuration_error";
}

/// Health before a recovery outcome was recorded, to decide which event to publish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreviousHealth {
    pub status: String,
    pub consecutive_failures: u64,
}

impl PreviousHealth {
    pub fn was_unhealthy(&self) -> bool {
        self.status != status::ACTIVE || self.consecutive_failures > 0
    }
}

impl Store {
    fn account_update(
        &self,
        tenant_id: &TenantId,
        account_id: &AccountId,
    ) -> aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder {
        self.dynamodb
            .update_item()
            .table_name(&self.tables.accounts)
            .key("pk", s(keys::account_pk(tenant_id)))
            .key("sk", s(keys::account_sk(account_id)))
    }

    /// Moves the Gmail cursor forward to `history_id`; a lower or equal one changes nothing,
    /// so a late or repeated job never moves the cursor back. Returns whether it moved.
    pub async fn advance_history_cursor(
        &self,
        tenant_id: &TenantId,
        account_id: &AccountId,
        history_id: u64,
    ) -> Result<bool, StoreError> {
        let result = self
            .account_update(tenant_id, account_id)
            .update_expression("SET history_cursor = :cursor, history_cursor_at = :now")
            .condition_expression(
                "attribute_exists(pk) AND (attribute_not_exists(history_cursor) OR history_cursor < :cursor)",
            )
            .expression_attribute_values(":cursor", n(history_id))
            .expression_attribute_values(":now", n(Utc::now().timestamp()))
            .send()
            .await;
        conditional(result, "UpdateItem", &self.tables.accounts)
    }

    /// Stores a renewed watch: its expiry, and its historyId as the cursor when there is none yet.
    pub async fn record_watch(
        &self,
        tenant_id: &TenantId,
        account_id: &AccountId,
        history_id: u64,
        expiration_ms: u64,
    ) -> Result<(), StoreError> {
        let now = Utc::now();
        self.account_update(tenant_id, account_id)
            .update_expression(
                "SET watch_expiration_ms = :expiration, watch_renewed_at = :now, \
                 history_cursor = if_not_exists(history_cursor, :history), history_cursor_at = if_not_exists(history_cursor_at, :epoch)",
            )
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_values(":expiration", n(expiration_ms))
            .expression_attribute_values(":now", s(rfc3339(now)))
            .expression_attribute_values(":history", n(history_id))
            .expression_attribute_values(":epoch", n(now.timestamp()))
            .send()
            .await
            .map_err(|error| StoreError::dynamo("UpdateItem", &self.tables.accounts, &error))?;
        Ok(())
    }

    /// Stores the outcome of a WhatsApp subscription check.
    pub async fn record_subscription_check(
        &self,
        tenant_id: &TenantId,
        account_id: &AccountId,
        resubscribed: bool,
        quality_rating: Option<&str>,
        phone_status: Option<&str>,
    ) -> Result<(), StoreError> {
        let now = rfc3339(Utc::now());
        let mut expression =
            "SET subscription_checked_at = :now, phone_quality_rating = :quality, phone_status = :phone_status"
                .to_string();
        if resubscribed {
            expression.push_str(", subscription_repaired_at = :now ADD subscription_repairs :one");
        }
        let mut update = self
            .account_update(tenant_id, account_id)
            .update_expression(expression)
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_values(":now", s(now))
            .expression_attribute_values(":quality", s(quality_rating.unwrap_or("UNKNOWN")))
            .expression_attribute_values(":phone_status", s(phone_status.unwrap_or("UNKNOWN")));
        if resubscribed {
            update = update.expression_attribute_values(":one", n(1));
        }
        update.send().await.map_err(|error| StoreError::dynamo("UpdateItem", &self.tables.accounts, &error))?;
        Ok(())
    }

    /// Records a successful recovery: clears the failure streak, and sets the status back
    /// to `active` unless the user must act (`reconnect_required` stays). Returns the health before.
    pub async fn record_recovery_success(
        &self,
        tenant_id: &TenantId,
        account_id: &AccountId,
        at: DateTime<Utc>,
    ) -> Result<PreviousHealth, StoreError> {
        let output = self
            .account_update(tenant_id, account_id)
            .update_expression("SET consecutive_failures = :zero, last_recovery_at = :at, #status = :active REMOVE last_error, status_reason")
            .condition_expression("attribute_exists(pk) AND (attribute_not_exists(#status) OR #status <> :reconnect)")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":zero", n(0))
            .expression_attribute_values(":at", s(rfc3339(at)))
            .expression_attribute_values(":active", s(status::ACTIVE))
            .expression_attribute_values(":reconnect", s(status::RECONNECT_REQUIRED))
            .return_values(ReturnValue::UpdatedOld)
            .send()
            .await;
        match output {
            Ok(output) => {
                let old = output.attributes.unwrap_or_default();
                Ok(PreviousHealth {
                    status: get_s(&old, "status").unwrap_or(status::ACTIVE).to_string(),
                    consecutive_failures: get_n(&old, "consecutive_failures").unwrap_or(0),
                })
            }
            Err(error) if error.as_service_error().is_some_and(|e| e.is_conditional_check_failed_exception()) => {
                Ok(PreviousHealth { status: status::RECONNECT_REQUIRED.to_string(), consecutive_failures: 0 })
            }
            Err(error) => Err(StoreError::dynamo("UpdateItem", &self.tables.accounts, &error)),
        }
    }

    /// Records a failed recovery attempt that will be retried.
    pub async fn record_recovery_failure(
        &self,
        tenant_id: &TenantId,
        account_id: &AccountId,
        error_text: &str,
    ) -> Result<(), StoreError> {
        let text: String = error_text.chars().take(500).collect();
        self.account_update(tenant_id, account_id)
            .update_expression("SET last_error = :error, last_error_at = :now ADD consecutive_failures :one")
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_values(":error", s(text))
            .expression_attribute_values(":now", s(rfc3339(Utc::now())))
            .expression_attribute_values(":one", n(1))
            .send()
            .await
            .map_err(|error| StoreError::dynamo("UpdateItem", &self.tables.accounts, &error))?;
        Ok(())
    }

    /// Sets the account's status with a reason. Returns the status before.
    pub async fn set_account_status(
        &self,
        tenant_id: &TenantId,
        account_id: &AccountId,
        new_status: &str,
        reason: &str,
    ) -> Result<String, StoreError> {
        let reason: String = reason.chars().take(500).collect();
        let output = self
            .account_update(tenant_id, account_id)
            .update_expression("SET #status = :status, status_reason = :reason, status_changed_at = :now")
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":status", s(new_status))
            .expression_attribute_values(":reason", s(reason))
            .expression_attribute_values(":now", s(rfc3339(Utc::now())))
            .return_values(ReturnValue::UpdatedOld)
            .send()
            .await
            .map_err(|error| StoreError::dynamo("UpdateItem", &self.tables.accounts, &error))?;
        let old = output.attributes.unwrap_or_default();
        Ok(get_s(&old, "status").unwrap_or(status::ACTIVE).to_string())
    }

    /// Sets when the last webhook arrived; used to replay a silence in the demo and tests.
    pub async fn set_last_webhook_epoch(
        &self,
        tenant_id: &TenantId,
        account_id: &AccountId,
        epoch: i64,
    ) -> Result<(), StoreError> {
        self.account_update(tenant_id, account_id)
            .update_expression("SET last_webhook_epoch = :epoch, last_webhook_at = :at")
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_values(":epoch", n(epoch))
            .expression_attribute_values(
                ":at",
                s(chrono::DateTime::from_timestamp(epoch, 0).map(rfc3339).unwrap_or_default()),
            )
            .send()
            .await
            .map_err(|error| StoreError::dynamo("UpdateItem", &self.tables.accounts, &error))?;
        Ok(())
    }

    /// Takes the lease named by `attribute` until `until` unless an unexpired one is held.
    /// Returns whether this caller now holds it.
    pub async fn claim_lease(
        &self,
        tenant_id: &TenantId,
        account_id: &AccountId,
        attribute: &str,
        until: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let result = self
            .account_update(tenant_id, account_id)
            .update_expression("SET #lease = :until REMOVE recovery_lease_holder")
            .condition_expression("attribute_exists(pk) AND (attribute_not_exists(#lease) OR #lease < :now)")
            .expression_attribute_names("#lease", attribute)
            .expression_attribute_values(":until", n(until.timestamp()))
            .expression_attribute_values(":now", n(Utc::now().timestamp()))
            .send()
            .await;
        conditional(result, "UpdateItem", &self.tables.accounts)
    }

    /// Clears the lease named by `attribute`.
    pub async fn release_lease(
        &self,
        tenant_id: &TenantId,
        account_id: &AccountId,
        attribute: &str,
    ) -> Result<(), StoreError> {
        self.account_update(tenant_id, account_id)
            .update_expression("REMOVE #lease, recovery_lease_holder")
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_names("#lease", attribute)
            .send()
            .await
            .map_err(|error| StoreError::dynamo("UpdateItem", &self.tables.accounts, &error))?;
        Ok(())
    }
}

fn conditional<T, E>(
    result: Result<T, aws_sdk_dynamodb::error::SdkError<E>>,
    operation: &'static str,
    table: &str,
) -> Result<bool, StoreError>
where
    E: aws_sdk_dynamodb::error::ProvideErrorMetadata + std::error::Error + 'static,
{
    match result {
        Ok(_) => Ok(true),
        Err(error) if error.as_service_error().and_then(|e| e.code()) == Some("ConditionalCheckFailedException") => {
            Ok(false)
        }
        Err(error) => Err(StoreError::dynamo(operation, table, &error)),
    }
}
