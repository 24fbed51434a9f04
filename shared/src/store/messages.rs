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

    /// Applies many statuses (one per message) with conditional transactions: first the
    /// updates that raise existing items, then puts that create the missing ones. A cancelled
    /// transaction's reasons tell which items failed their condition; the rest are retried.
    /// About 2 to 4 calls per 100 statuses instead of one per status.
    pub async fn apply_statuses(
        &self,
        updates: &[(&TenantId, &AccountId, Provider, &StatusUpdate)],
    ) -> Result<Vec<StatusOutcome>, StoreError> {
        let mut outcomes = vec![StatusOutcome::Unchanged; updates.len()];
        let candidates: Vec<usize> = (0..updates.len()).filter(|&index| updates[index].3.rank > 0).collect();
        if let [index] = candidates[..] {
            let (tenant_id, account_id, provider, update) = updates[index];
            outcomes[index] = self.apply_status(tenant_id, account_id, provider, update).await?;
            return Ok(outcomes);
        }

        let mut missing = Vec::new();
        for chunk in candidates.chunks(100) {
            let raised = self
                .conditional_transaction(chunk, |index| {
                    let (tenant_id, account_id, provider, update) = updates[index];
                    let action = aws_sdk_dynamodb::types::Update::builder()
                        .table_name(&self.tables.events)
                        .key("pk", s(keys::account_partition(tenant_id, account_id)))
                        .key("sk", s(keys::message_sk(&update.provider_message_id)))
                        .update_expression(
                            "SET #status = :status, status_rank = :rank, status_at = :at, status_errors = :errors, provider = :provider",
                        )
                        .condition_expression("attribute_exists(pk) AND status_rank < :rank")
                        .expression_attribute_names("#status", "status")
                        .expression_attribute_values(":status", s(update.status.clone()))
                        .expression_attribute_values(":rank", n(update.rank))
                        .expression_attribute_values(":at", s(update.occurred_at.clone()))
                        .expression_attribute_values(":errors", s(update.errors.to_string()))
                        .expression_attribute_values(":provider", s(provider.as_str()))
                        .build()
                        .expect("table, key and expression are set");
                    aws_sdk_dynamodb::types::TransactWriteItem::builder().update(action).build()
                })
                .await?;
            for (index, succeeded) in chunk.iter().zip(raised) {
                if succeeded {
                    outcomes[*index] = StatusOutcome::Raised;
                } else {
                    missing.push(*index);
                }
            }
        }

        // A failed raise means the item is missing or already ranks as high: try to create it.
        for chunk in missing.chunks(100) {
            let created = self
                .conditional_transaction(chunk, |index| {
                    let (tenant_id, account_id, provider, update) = updates[index];
                    let item = super::Item::from([
                        ("pk".to_string(), s(keys::account_partition(tenant_id, account_id))),
                        ("sk".to_string(), s(keys::message_sk(&update.provider_message_id))),
                        ("status".to_string(), s(update.status.clone())),
                        ("status_rank".to_string(), n(update.rank)),
                        ("status_at".to_string(), s(update.occurred_at.clone())),
                        ("status_errors".to_string(), s(update.errors.to_string())),
                        ("provider".to_string(), s(provider.as_str())),
                        ("first_status".to_string(), s(update.status.clone())),
                    ]);
                    let action = aws_sdk_dynamodb::types::Put::builder()
                        .table_name(&self.tables.events)
                        .set_item(Some(item))
                        .condition_expression("attribute_not_exists(pk)")
                        .build()
                        .expect("table and item are set");
                    aws_sdk_dynamodb::types::TransactWriteItem::builder().put(action).build()
                })
                .await?;
            for (index, succeeded) in chunk.iter().zip(created) {
                if succeeded {
                    outcomes[*index] = StatusOutcome::Created { orphan: updates[*index].3.orphan_if_first };
                }
            }
        }
        Ok(outcomes)
    }

    /// Runs one transaction over `indices`, dropping the items whose condition fails and
    /// retrying the rest until it commits. Returns, per index, whether its write committed.
    pub(crate) async fn conditional_transaction(
        &self,
        indices: &[usize],
        action: impl Fn(usize) -> aws_sdk_dynamodb::types::TransactWriteItem,
    ) -> Result<Vec<bool>, StoreError> {
        use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
        let table = &self.tables.events;
        let mut committed = vec![false; indices.len()];
        let mut pending: Vec<usize> = (0..indices.len()).collect();

        for attempt in 0..8u32 {
            if pending.is_empty() {
                break;
            }
            let items = pending.iter().map(|&position| action(indices[position])).collect();
            let error = match self.dynamodb.transact_write_items().set_transact_items(Some(items)).send().await {
                Ok(_) => {
                    for &position in &pending {
                        committed[position] = true;
                    }
                    return Ok(committed);
                }
                Err(error) => error,
            };
            let Some(TransactWriteItemsError::TransactionCanceledException(cancelled)) = error.as_service_error()
            else {
                return Err(StoreError::dynamo("TransactWriteItems", table, &error));
            };
            let reasons = cancelled.cancellation_reasons();
            let before = pending.len();
            pending = pending
                .iter()
                .enumerate()
                .filter(|(position, _)| {
                    reasons.get(*position).and_then(|reason| reason.code()) != Some("ConditionalCheckFailed")
                })
                .map(|(_, &index)| index)
                .collect();
            if pending.len() == before {
                tokio::time::sleep(super::backoff(attempt)).await;
            }
        }
        if pending.is_empty() {
            Ok(committed)
        } else {
            Err(StoreError::TransactionRetriesExhausted {
                operation: "TransactWriteItems",
                table: table.clone(),
                attempts: 8,
                reasons: "conflicts".to_string(),
            })
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
