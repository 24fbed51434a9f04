//! Message status items (`sk=MESSAGE#{provider_message_id}`): the highest status seen.

use super::{get_n, get_s, keys, n, s, Store, StoreError};
use crate::ids::{AccountId, Provider, TenantId};
use crate::ingest::StatusUpdate;
use aws_sdk_dynamodb::types::ReturnValue;

/// Effect of one status on the message item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusOutcome {
    /// The message was unknown; the item was created. `orphan` when the first status
    /// seen implies earlier ones were missed (`delivered` with no `sent`).
    Created { orphan: bool },
    /// The status outranked the stored one and replaced it.
    Raised,
    /// The stored status ranks the same or higher; nothing changed.
    Unchanged,
}

/// A message item as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct MessageRecord {
    pub provider_message_id: String,
    pub status: String,
    pub status_rank: u8,
    pub status_at: String,
    pub errors: Option<String>,
}

impl Store {
    /// Raises the message's status to `update` when it ranks higher, in one conditional
    /// `UpdateItem`. A late lower status, or an unknown one (rank 0), changes nothing.
    #[tracing::instrument(skip(self, update), fields(tenant = %tenant_id, account = %account_id, message = %update.provider_message_id, status = %update.status))]
    pub async fn apply_status(
        &self,
        tenant_id: &TenantId,
        account_id: &AccountId,
        provider: Provider,
        update: &StatusUpdate,
    ) -> Result<StatusOutcome, StoreError> {
        if update.rank == 0 {
            return Ok(StatusOutcome::Unchanged);
        }

        let table = &self.tables.events;
        let result = self
            .dynamodb
            .update_item()
            .table_name(table)
            .key("pk", s(keys::account_partition(tenant_id, account_id)))
            .key("sk", s(keys::message_sk(&update.provider_message_id)))
            .update_expression(
                "SET #status = :status, status_rank = :rank, status_at = :at, status_errors = :errors, \
                 provider = :provider, first_status = if_not_exists(first_status, :status)",
            )
            .condition_expression("attribute_not_exists(status_rank) OR status_rank < :rank")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":status", s(update.status.clone()))
            .expression_attribute_values(":rank", n(update.rank))
            .expression_attribute_values(":at", s(update.occurred_at.clone()))
            .expression_attribute_values(":errors", s(update.errors.to_string()))
            .expression_attribute_values(":provider", s(provider.as_str()))
            .return_values(ReturnValue::AllOld)
            .send()
            .await;

        match result {
            Ok(output) if output.attributes.as_ref().is_none_or(|old| old.is_empty()) => {
                Ok(StatusOutcome::Created { orphan: update.orphan_if_first })
            }
            Ok(_) => Ok(StatusOutcome::Raised),
            Err(error) if error.as_service_error().is_some_and(|e| e.is_conditional_check_failed_exception()) => {
                Ok(StatusOutcome::Unchanged)
            }
            Err(error) => Err(StoreError::dynamo("UpdateItem", table, &error)),
        }
    }

    /// Lists the message status items of one account.
    pub async fn list_messages(
        &self,
        tenant_id: &TenantId,
        account_id: &AccountId,
    ) -> Result<Vec<MessageRecord>, StoreError> {
        let items = self.query_partition(&keys::account_partition(tenant_id, account_id), "MESSAGE#").await?;
        Ok(items
            .iter()
            .map(|item| MessageRecord {
                provider_message_id: get_s(item, "sk").unwrap_or_default().trim_start_matches("MESSAGE#").to_string(),
                status: get_s(item, "status").unwrap_or_default().to_string(),
                status_rank: get_n(item, "status_rank").unwrap_or(0),
                status_at: get_s(item, "status_at").unwrap_or_default().to_string(),
                errors: get_s(item, "status_errors").filter(|errors| *errors != "[]").map(str::to_string),
            })
            .collect())
    }
}
