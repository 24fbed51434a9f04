//! Publishing findings and health changes to `CommsEventBus` with `PutEvents`: chunks of
//! 10 entries, failed entries retried on their own.

use aws_sdk_eventbridge::error::DisplayErrorContext;
use aws_sdk_eventbridge::types::PutEventsRequestEntry;
use serde_json::Value;
use std::time::Duration;
use thiserror::Error;

/// `source` of every event commsync publishes.
pub const EVENT_SOURCE: &str = "commsync";
/// EventBridge accepts at most 10 entries per `PutEvents` call.
const MAX_ENTRIES: usize = 10;
const MAX_ATTEMPTS: u32 = 4;

#[derive(Debug, Error)]
pub enum BusError {
    #[error("EventBridge PutEvents on bus {bus} failed: {message}")]
    Put { bus: String, message: String },
    #[error("EventBridge rejected {count} entries on bus {bus} after {attempts} attempts: {codes}")]
    EntriesFailed { bus: String, count: usize, attempts: u32, codes: String },
}

/// One event for the bus: a detail type (`AccountHealthChanged`, `AccountRecovered`,
/// `GapDetected`, `ProviderIncidentSuspected`) and its JSON detail.
#[derive(Debug, Clone, PartialEq)]
pub struct BusEvent {
    pub detail_type: &'static str,
    pub detail: Value,
}

/// A custom EventBridge bus by name.
#[derive(Debug, Clone)]
pub struct EventBus {
    client: aws_sdk_eventbridge::Client,
    name: String,
}

impl EventBus {
    pub fn new(client: aws_sdk_eventbridge::Client, name: impl Into<String>) -> Self {
        Self { client, name: name.into() }
    }

    /// Publishes every event, retrying entries EventBridge reports as failed.
    pub async fn publish(&self, events: &[BusEvent]) -> Result<(), BusError> {
        for chunk in events.chunks(MAX_ENTRIES) {
            let mut pending: Vec<&BusEvent> = chunk.iter().collect();
            for attempt in 1..=MAX_ATTEMPTS {
                let entries = pending
                    .iter()
                    .map(|event| {
                        PutEventsRequestEntry::builder()
                            .event_bus_name(&self.name)
                            .source(EVENT_SOURCE)
                            .detail_type(event.detail_type)
                            .detail(event.detail.to_string())
                            .build()
                    })
                    .collect();
                let output = self.client.put_events().set_entries(Some(entries)).send().await.map_err(|error| {
                    BusError::Put { bus: self.name.clone(), message: DisplayErrorContext(&error).to_string() }
                })?;
                if output.failed_entry_count == 0 {
                    break;
                }

                // Results come back in request order; an entry with an error code failed.
                let results = output.entries.unwrap_or_default();
                let codes: Vec<String> = results.iter().filter_map(|result| result.error_code.clone()).collect();
                pending = pending
                    .into_iter()
                    .zip(results.iter().map(|result| result.error_code.is_some()).chain(std::iter::repeat(true)))
                    .filter_map(|(event, failed)| failed.then_some(event))
                    .collect();
                if attempt == MAX_ATTEMPTS {
                    return Err(BusError::EntriesFailed {
                        bus: self.name.clone(),
                        count: pending.len(),
                        attempts: attempt,
                        codes: codes.join(","),
                    });
                }
                tracing::warn!(bus = %self.name, attempt, failed = pending.len(), codes = %codes.join(","), "PutEvents entries failed; retrying them");
                tokio::time::sleep(Duration::from_millis(100 << attempt)).await;
            }
        }
        Ok(())
    }
}
