//! A local stand-in for the SQS event source mapping: receive a batch, invoke the
//! consumer, delete the records it did not report as failed. Failed records stay in the
//! queue and come back after their visibility timeout, as on AWS.

use super::LocalError;
use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use aws_sdk_sqs::types::{DeleteMessageBatchRequestEntry, MessageSystemAttributeName};
use std::collections::HashMap;
use std::future::Future;

/// What one poll did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct PollReport {
    pub received: usize,
    pub succeeded: usize,
    pub failed: usize,
}

/// Receives up to 10 messages from `queue_url`, hands them to `consumer` as one Lambda
/// SQS event, and deletes the ones not in `batchItemFailures`.
pub async fn poll_once<F, Fut>(
    sqs: &aws_sdk_sqs::Client,
    queue_url: &str,
    consumer: F,
) -> Result<PollReport, LocalError>
where
    F: FnOnce(SqsEvent) -> Fut,
    Fut: Future<Output = SqsBatchResponse>,
{
    let output = sqs
        .receive_message()
        .queue_url(queue_url)
        .max_number_of_messages(10)
        .message_system_attribute_names(MessageSystemAttributeName::All)
        .send()
        .await
        .map_err(|error| LocalError::aws("ReceiveMessage", queue_url, &error))?;
    let messages = output.messages.unwrap_or_default();
    if messages.is_empty() {
        return Ok(PollReport::default());
    }

    let mut receipts = HashMap::new();
    let mut event = SqsEvent::default();
    for message in messages {
        let mut record = SqsMessage::default();
        record.message_id = message.message_id.clone();
        record.receipt_handle = message.receipt_handle.clone();
        record.body = message.body.clone();
        record.event_source = Some("aws:sqs".to_string());
        record.attributes = message
            .attributes
            .unwrap_or_default()
            .into_iter()
            .map(|(name, value)| (name.as_str().to_string(), value))
            .collect();
        if let (Some(id), Some(receipt)) = (message.message_id, message.receipt_handle) {
            receipts.insert(id, receipt);
        }
        event.records.push(record);
    }
    let received = event.records.len();

    let response = consumer(event).await;
    let failed: Vec<&str> =
        response.batch_item_failures.iter().map(|failure| failure.item_identifier.as_str()).collect();
    let entries: Vec<DeleteMessageBatchRequestEntry> = receipts
        .iter()
        .filter(|(id, _)| !failed.contains(&id.as_str()))
        .enumerate()
        .map(|(index, (_, receipt))| {
            DeleteMessageBatchRequestEntry::builder()
                .id(index.to_string())
                .receipt_handle(receipt)
                .build()
                .expect("id and receipt are set")
        })
        .collect();
    let succeeded = entries.len();
    if !entries.is_empty() {
        sqs.delete_message_batch()
            .queue_url(queue_url)
            .set_entries(Some(entries))
            .send()
            .await
            .map_err(|error| LocalError::aws("DeleteMessageBatch", queue_url, &error))?;
    }
    Ok(PollReport { received, succeeded, failed: received - succeeded })
}
