//! Sending to SQS with `SendMessageBatch`: chunks of at most 10 entries and 256 KiB,
//! failed entries retried on their own, a sender fault reported at once.

use crate::event::CanonicalEvent;
use aws_sdk_sqs::error::DisplayErrorContext;
use aws_sdk_sqs::types::{MessageAttributeValue, SendMessageBatchRequestEntry};
use std::time::Duration;
use thiserror::Error;

/// SQS allows at most 10 entries in one batch.
const MAX_BATCH_ENTRIES: usize = 10;
/// SQS caps a batch's total payload; 256 KiB is the limit every SQS endpoint accepts.
const MAX_BATCH_BYTES: usize = 256 * 1024;
const MAX_SEND_ATTEMPTS: u32 = 5;

/// Failures of sending to a queue.
#[derive(Debug, Error)]
pub enum QueueError {
    #[error("SQS SendMessageBatch to {queue_url} failed: {message}")]
    Send { queue_url: String, message: String },
    #[error("SQS rejected {count} of the messages for {queue_url} after {attempts} attempts: {codes}")]
    EntriesFailed { queue_url: String, count: usize, attempts: u32, codes: String },
    #[error("message of {bytes} bytes is over the SQS limit of {MAX_BATCH_BYTES} bytes")]
    TooLarge { bytes: usize },
}

/// One message to send.
#[derive(Debug, Clone)]
pub struct OutgoingMessage {
    pub body: String,
    /// String message attributes, so consumers can filter without parsing the body.
    pub attributes: Vec<(&'static str, String)>,
    pub delay_seconds: Option<i32>,
}

impl OutgoingMessage {
    fn size(&self) -> usize {
        self.body.len() + self.attributes.iter().map(|(name, value)| name.len() + value.len() + 6).sum::<usize>()
    }
}

/// An SQS queue by URL.
#[derive(Debug, Clone)]
pub struct Queue {
    sqs: aws_sdk_sqs::Client,
    queue_url: String,
}

impl Queue {
    pub fn new(sqs: aws_sdk_sqs::Client, queue_url: impl Into<String>) -> Self {
        Self { sqs, queue_url: queue_url.into() }
    }

    pub fn url(&self) -> &str {
        &self.queue_url
    }

    pub fn client(&self) -> &aws_sdk_sqs::Client {
        &self.sqs
    }

    /// Sends canonical events, one message each, with their ids as attributes.
    pub async fn send_events(&self, events: &[&CanonicalEvent]) -> Result<(), QueueError> {
        let messages: Vec<OutgoingMessage> = events
            .iter()
            .map(|event| OutgoingMessage {
                body: serde_json::to_string(event).expect("canonical events serialize"),
                attributes: vec![
                    ("event_id", event.event_id.to_string()),
                    ("tenant_id", event.tenant_id.to_string()),
                    ("provider", event.provider.to_string()),
                    ("kind", event.kind.as_str().to_string()),
                ],
                delay_seconds: None,
            })
            .collect();
        self.send_all(&messages).await
    }

    /// Sends every message, in batches, retrying failed entries with backoff.
    #[tracing::instrument(skip(self, messages), fields(queue = %self.queue_url, messages = messages.len()))]
    pub async fn send_all(&self, messages: &[OutgoingMessage]) -> Result<(), QueueError> {
        for batch in batches(messages)? {
            self.send_batch(&batch).await?;
        }
        Ok(())
    }

    async fn send_batch(&self, batch: &[&OutgoingMessage]) -> Result<(), QueueError> {
        let mut pending: Vec<usize> = (0..batch.len()).collect();

        for attempt in 1..=MAX_SEND_ATTEMPTS {
            let entries = pending.iter().map(|&index| entry(index, batch[index])).collect();
            let output = self
                .sqs
                .send_message_batch()
                .queue_url(&self.queue_url)
                .set_entries(Some(entries))
                .send()
                .await
                .map_err(|error| QueueError::Send {
                    queue_url: self.queue_url.clone(),
                    message: DisplayErrorContext(&error).to_string(),
                })?;

            let failed = output.failed;
            if failed.is_empty() {
                return Ok(());
            }
            let codes: Vec<String> = failed.iter().map(|entry| entry.code.clone()).collect();
            if failed.iter().any(|entry| entry.sender_fault) || attempt == MAX_SEND_ATTEMPTS {
                return Err(QueueError::EntriesFailed {
                    queue_url: self.queue_url.clone(),
                    count: failed.len(),
                    attempts: attempt,
                    codes: codes.join(","),
                });
            }

            tracing::warn!(queue = %self.queue_url, attempt, failed = failed.len(), codes = %codes.join(","), "SQS rejected batch entries; retrying them");
            pending = failed.iter().filter_map(|entry| entry.id.parse().ok()).collect();
            tokio::time::sleep(Duration::from_millis(50 << attempt)).await;
        }
        Ok(())
    }
}

fn entry(index: usize, message: &OutgoingMessage) -> SendMessageBatchRequestEntry {
    let mut builder = SendMessageBatchRequestEntry::builder()
        .id(index.to_string())
        .message_body(&message.body)
        .set_delay_seconds(message.delay_seconds);
    for (name, value) in &message.attributes {
        let attribute =
            MessageAttributeValue::builder().data_type("String").string_value(value).build().expect("data type is set");
        builder = builder.message_attributes(*name, attribute);
    }
    builder.build().expect("id and body are set")
}

/// Groups messages into batches of at most 10 entries and 256 KiB.
fn batches(messages: &[OutgoingMessage]) -> Result<Vec<Vec<&OutgoingMessage>>, QueueError> {
    let mut batches = Vec::new();
    let mut current: Vec<&OutgoingMessage> = Vec::new();
    let mut current_bytes = 0;
    for message in messages {
        let size = message.size();
        if size > MAX_BATCH_BYTES {
            return Err(QueueError::TooLarge { bytes: size });
        }
        if current.len() == MAX_BATCH_ENTRIES || current_bytes + size > MAX_BATCH_BYTES {
            batches.push(std::mem::take(&mut current));
            current_bytes = 0;
        }
        current.push(message);
        current_bytes += size;
    }
    if !current.is_empty() {
        batches.push(current);
    }
    Ok(batches)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(bytes: usize) -> OutgoingMessage {
        OutgoingMessage { body: "x".repeat(bytes), attributes: Vec::new(), delay_seconds: None }
    }

    #[test]
    fn batches_split_at_ten_entries() {
        let messages: Vec<_> = (0..25).map(|_| message(10)).collect();
        let sizes: Vec<usize> = batches(&messages).unwrap().iter().map(Vec::len).collect();
        assert_eq!(sizes, vec![10, 10, 5]);
    }

    #[test]
    fn batches_split_at_byte_limit() {
        let messages: Vec<_> = (0..3).map(|_| message(100 * 1024)).collect();
        let sizes: Vec<usize> = batches(&messages).unwrap().iter().map(Vec::len).collect();
        assert_eq!(sizes, vec![2, 1]);
    }

    #[test]
    fn batches_reject_oversized_message() {
        assert!(matches!(batches(&[message(300 * 1024)]), Err(QueueError::TooLarge { .. })));
    }
}
