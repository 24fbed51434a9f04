//! Canonical event items (`sk=EVENT#{event_id}`): written once, marked once enqueued.
//!
//! An event is written with a condition on its id, so a redelivery or a recovery never
//! stores it twice. `enqueued_at` is set only after `EventsQueue` accepted the event, so a
//! request that stored events but failed to send them is repaired by the provider's retry:
//! the retry finds the events stored but not enqueued and sends them.

use super::{backoff, get_n, get_s, keys, n, s, Item, Store, StoreError};
use crate::event::CanonicalEvent;
use crate::ids::{AccountId, TenantId};
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{KeysAndAttributes, Put, TransactWriteItem, Update};
use chrono::Utc;
use std::collections::HashMap;

/// Result of a conditional event write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteOutcome {
    /// The event was not stored before; this request stored it.
    New,
    /// The event was already stored. `enqueued` is set when a request sent it to `EventsQueue`.
    Duplicate { enqueued: bool },
}

/// An event as `events list` shows it.
#[derive(Debug, Clone)]
pub struct StoredEvent {
    pub event: CanonicalEvent,
    pub enqueued: bool,
}

/// DynamoDB allows at most 100 actions in one transaction.
const MAX_TRANSACTION_ITEMS: usize = 100;
/// Transactions are capped at 4 MB; stay below it with room for attribute names.
const MAX_TRANSACTION_BYTES: usize = 3_500_000;
const MAX_TRANSACTION_ATTEMPTS: u32 = 8;
const MAX_BATCH_GET_KEYS: usize = 100;

impl Store {
    /// Writes each event once. Returns one outcome per event, in order.
    ///
    /// A single event is a conditional `PutItem`; several go through `TransactWriteItems`
    /// in chunks, where a cancelled transaction's reasons tell which ids already existed and
    /// the rest are retried. Event ids must be unique within `events`.
    #[tracing::instrument(skip(self, events), fields(events = events.len()))]
    pub async fn write_events(&self, events: &[CanonicalEvent]) -> Result<Vec<WriteOutcome>, StoreError> {
        let mut outcomes = vec![WriteOutcome::New; events.len()];
        let mut duplicates = Vec::new();

        if events.len() == 1 {
            if !self.put_event(&events[0]).await? {
                duplicates.push(0);
            }
        } else {
            for chunk in transaction_chunks(events) {
                duplicates.extend(self.put_events_in_transaction(events, &chunk).await?);
            }
        }

        if !duplicates.is_empty() {
            let duplicate_events: Vec<&CanonicalEvent> = duplicates.iter().map(|&index| &events[index]).collect();
            let enqueued = self.enqueued_flags(&duplicate_events).await?;
            for (index, enqueued) in duplicates.into_iter().zip(enqueued) {
                outcomes[index] = WriteOutcome::Duplicate { enqueued };
            }
        }
        Ok(outcomes)
    }

    fn event_item(&self, event: &CanonicalEvent) -> Item {
        let expires_at = Utc::now().timestamp() + self.event_retention.as_secs() as i64;
        Item::from([
            ("pk".to_string(), s(keys::account_partition(&event.tenant_id, &event.account_id))),
            ("sk".to_string(), s(keys::event_sk(&event.event_id))),
            ("event_id".to_string(), s(event.event_id.as_str())),
            ("kind".to_string(), s(event.kind.as_str())),
            ("provider".to_string(), s(event.provider.as_str())),
            ("occurred_at".to_string(), s(event.occurred_at.clone())),
            ("received_at".to_string(), s(event.received_at.clone())),
            ("body".to_string(), s(serde_json::to_string(event).expect("canonical events serialize"))),
            ("expires_at".to_string(), n(expires_at)),
        ])
    }

    /// Returns `true` when the event was new.
    async fn put_event(&self, event: &CanonicalEvent) -> Result<bool, StoreError> {
        let table = &self.tables.events;
        let result = self
            .dynamodb
            .put_item()
            .table_name(table)
            .set_item(Some(self.event_item(event)))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(error) if error.as_service_error().is_some_and(|e| e.is_conditional_check_failed_exception()) => {
                Ok(false)
            }
            Err(error) => Err(StoreError::dynamo("PutItem", table, &error)),
        }
    }

    /// Writes the events at `indices` in one transaction; returns the indices that already existed.
    async fn put_events_in_transaction(
        &self,
        events: &[CanonicalEvent],
        indices: &[usize],
    ) -> Result<Vec<usize>, StoreError> {
        let table = &self.tables.events;
        let mut pending: Vec<usize> = indices.to_vec();
        let mut duplicates = Vec::new();

        for attempt in 0..MAX_TRANSACTION_ATTEMPTS {
            if pending.is_empty() {
                break;
            }
            let items = pending.iter().map(|&index| {
                let put = Put::builder()
                    .table_name(table)
                    .set_item(Some(self.event_item(&events[index])))
                    .condition_expression("attribute_not_exists(pk)")
                    .build()
                    .expect("table and item are set");
                TransactWriteItem::builder().put(put).build()
            });
            let result = self.dynamodb.transact_write_items().set_transact_items(Some(items.collect())).send().await;

            let error = match result {
                Ok(_) => return Ok(duplicates),
                Err(error) => error,
            };
            let Some(TransactWriteItemsError::TransactionCanceledException(cancelled)) = error.as_service_error()
            else {
                return Err(StoreError::dynamo("TransactWriteItems", table, &error));
            };

            // Reasons come back in request order; `ConditionalCheckFailed` marks an existing event.
            let reasons = cancelled.cancellation_reasons();
            let mut retry = Vec::new();
            for (position, &index) in pending.iter().enumerate() {
                match reasons.get(position).and_then(|reason| reason.code()) {
                    Some("ConditionalCheckFailed") => duplicates.push(index),
                    _ => retry.push(index),
                }
            }
            let found_duplicates = retry.len() < pending.len();
            pending = retry;
            if !found_duplicates && !pending.is_empty() {
                tracing::warn!(attempt, events = pending.len(), "event transaction cancelled by a conflict; retrying");
                tokio::time::sleep(backoff(attempt)).await;
            }
            if attempt + 1 == MAX_TRANSACTION_ATTEMPTS && !pending.is_empty() {
                let codes: Vec<&str> = reasons.iter().filter_map(|reason| reason.code()).collect();
                return Err(StoreError::TransactionRetriesExhausted {
                    operation: "TransactWriteItems",
                    table: table.clone(),
                    attempts: MAX_TRANSACTION_ATTEMPTS,
                    reasons: codes.join(","),
                });
            }
        }
        Ok(duplicates)
    }

    /// Reads `enqueued_at` of stored events with `BatchGetItem`.
    async fn enqueued_flags(&self, events: &[&CanonicalEvent]) -> Result<Vec<bool>, StoreError> {
        let table = &self.tables.events;
        let mut enqueued: HashMap<String, bool> = HashMap::new();

        for chunk in events.chunks(MAX_BATCH_GET_KEYS) {
            let mut request_keys: Vec<Item> = chunk
                .iter()
                .map(|event| {
                    Item::from([
                        ("pk".to_string(), s(keys::account_partition(&event.tenant_id, &event.account_id))),
                        ("sk".to_string(), s(keys::event_sk(&event.event_id))),
                    ])
                })
                .collect();
            let mut attempt = 0;
            while !request_keys.is_empty() {
                let request = KeysAndAttributes::builder()
                    .set_keys(Some(request_keys))
                    .projection_expression("pk, sk, enqueued_at")
                    .consistent_read(true)
                    .build()
                    .expect("keys are set");
                let output = self
                    .dynamodb
                    .batch_get_item()
                    .request_items(table, request)
                    .send()
                    .await
                    .map_err(|error| StoreError::dynamo("BatchGetItem", table, &error))?;
                for item in output.responses.unwrap_or_default().remove(table).unwrap_or_default() {
                    let key = format!(
                        "{}|{}",
                        get_s(&item, "pk").unwrap_or_default(),
                        get_s(&item, "sk").unwrap_or_default()
                    );
                    enqueued.insert(key, item.contains_key("enqueued_at"));
                }
                request_keys = output
                    .unprocessed_keys
                    .and_then(|mut unprocessed| unprocessed.remove(table))
                    .map(|remaining| remaining.keys)
                    .unwrap_or_default();
                attempt += 1;
                if !request_keys.is_empty() {
                    tokio::time::sleep(backoff(attempt)).await;
                }
            }
        }

        Ok(events
            .iter()
            .map(|event| {
                let key = format!(
                    "{}|{}",
                    keys::account_partition(&event.tenant_id, &event.account_id),
                    keys::event_sk(&event.event_id)
                );
                enqueued.get(&key).copied().unwrap_or(false)
            })
            .collect())
    }

    /// Sets `enqueued_at` on events `EventsQueue` accepted: `UpdateItem` for one event,
    /// `TransactWriteItems` of updates (100 per call) for several.
    #[tracing::instrument(skip(self, events), fields(events = events.len()))]
    pub async fn mark_enqueued(&self, events: &[&CanonicalEvent]) -> Result<(), StoreError> {
        let table = &self.tables.events;
        let now = Utc::now().timestamp();

        if let [event] = events {
            let result = self
                .dynamodb
                .update_item()
                .table_name(table)
                .key("pk", s(keys::account_partition(&event.tenant_id, &event.account_id)))
                .key("sk", s(keys::event_sk(&event.event_id)))
                .update_expression("SET enqueued_at = :now")
                .condition_expression("attribute_exists(pk)")
                .expression_attribute_values(":now", n(now))
                .send()
                .await;
            return match result {
                Ok(_) => Ok(()),
                Err(error) if error.as_service_error().is_some_and(|e| e.is_conditional_check_failed_exception()) => {
                    Ok(())
                }
                Err(error) => Err(StoreError::dynamo("UpdateItem", table, &error)),
            };
        }

        // An event that disappeared (expired by TTL) fails its condition and is skipped.
        let indices: Vec<usize> = (0..events.len()).collect();
        for chunk in indices.chunks(MAX_TRANSACTION_ITEMS) {
            self.conditional_transaction(chunk, |index| {
                let event = events[index];
                let update = Update::builder()
                    .table_name(table)
                    .key("pk", s(keys::account_partition(&event.tenant_id, &event.account_id)))
                    .key("sk", s(keys::event_sk(&event.event_id)))
                    .update_expression("SET enqueued_at = :now")
                    .condition_expression("attribute_exists(pk)")
                    .expression_attribute_values(":now", n(now))
                    .build()
                    .expect("table, key and expression are set");
                TransactWriteItem::builder().update(update).build()
            })
            .await?;
        }
        Ok(())
    }

    /// Lists the canonical events stored for one account, oldest id first.
    pub async fn list_events(
        &self,
        tenant_id: &TenantId,
        account_id: &AccountId,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        let table = &self.tables.events;
        let items = self.query_partition(&keys::account_partition(tenant_id, account_id), "EVENT#").await?;
        items
            .iter()
            .map(|item| {
                let body = get_s(item, "body").unwrap_or_default();
                let event: CanonicalEvent = serde_json::from_str(body).map_err(|error| StoreError::Malformed {
                    table: table.clone(),
                    key: get_s(item, "sk").unwrap_or("?").to_string(),
                    problem: format!("body is not a canonical event: {error}"),
                })?;
                Ok(StoredEvent { event, enqueued: get_n::<i64>(item, "enqueued_at").is_some() })
            })
            .collect()
    }

    /// Reads every item of one partition whose sort key starts with `prefix`.
    pub(crate) async fn query_partition(&self, pk: &str, prefix: &str) -> Result<Vec<Item>, StoreError> {
        let table = &self.tables.events;
        let mut items = Vec::new();
        let mut start_key = None;
        loop {
            let output = self
                .dynamodb
                .query()
                .table_name(table)
                .key_condition_expression("pk = :pk AND begins_with(sk, :prefix)")
                .expression_attribute_values(":pk", s(pk))
                .expression_attribute_values(":prefix", s(prefix))
                .set_exclusive_start_key(start_key)
                .send()
                .await
                .map_err(|error| StoreError::dynamo("Query", table, &error))?;
            items.extend(output.items.unwrap_or_default());
            start_key = output.last_evaluated_key;
            if start_key.is_none() {
                return Ok(items);
            }
        }
    }
}

/// Splits event indices into transactions of at most 100 items and about 3.5 MB.
fn transaction_chunks(events: &[CanonicalEvent]) -> Vec<Vec<usize>> {
    let mut chunks = Vec::new();
    let mut current = Vec::new();
    let mut current_bytes = 0;
    for (index, event) in events.iter().enumerate() {
        let size = event.data.to_string().len() + 512;
        if !current.is_empty()
            && (current.len() == MAX_TRANSACTION_ITEMS || current_bytes + size > MAX_TRANSACTION_BYTES)
        {
            chunks.push(std::mem::take(&mut current));
            current_bytes = 0;
        }
        current.push(index);
        current_bytes += size;
    }
    if !current.is_empty() {
        chunks.push(current);
    }
    chunks
}
