//! The SQS batch loop every queue consumer shares: each record runs in its own task, so a
//! panic fails only that record, and exactly the failed records are reported back as
//! `batchItemFailures` (the event source mapping uses `ReportBatchItemFailures`).

use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent, SqsMessage};
use std::future::Future;
use std::time::{Duration, Instant};

/// Outcome of one record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordOutcome {
    /// Done: SQS deletes the message.
    Done,
    /// Retry: the message becomes visible again after `delay`, or after the queue's
    /// visibility timeout when `None`.
    Retry { delay: Option<Duration> },
}

/// Leaves this much of the invocation for reporting; records not started by then are
/// reported as failed, so SQS delivers them again instead of losing them to a timeout.
const DEADLINE_MARGIN: Duration = Duration::from_secs(5);

/// Runs `process` on every record and reports the failed ones.
///
/// A record without a `messageId` cannot be reported, so it is logged as an error and
/// skipped instead of failing the whole batch.
pub async fn process_batch<F, Fut>(
    event: SqsEvent,
    deadline: Option<Instant>,
    sqs: &aws_sdk_sqs::Client,
    queue_url: &str,
    process: F,
) -> SqsBatchResponse
where
    F: Fn(SqsMessage) -> Fut,
    Fut: Future<Output = RecordOutcome> + Send + 'static,
{
    let mut response = SqsBatchResponse::default();
    for record in event.records {
        let Some(message_id) = record.message_id.clone() else {
            tracing::error!(
                body_bytes = record.body.as_ref().map_or(0, String::len),
                "SQS record without messageId; it cannot be reported and is skipped"
            );
            continue;
        };
        let mut failure = BatchItemFailure::default();
        failure.item_identifier = message_id.clone();

        if deadline.is_some_and(|deadline| deadline.saturating_duration_since(Instant::now()) < DEADLINE_MARGIN) {
            tracing::warn!(sqs_message_id = %message_id, "invocation deadline near; record left for redelivery");
            response.batch_item_failures.push(failure);
            continue;
        }

        let receipt_handle = record.receipt_handle.clone();
        let outcome = match tokio::spawn(process(record)).await {
            Ok(outcome) => outcome,
            Err(error) => {
                tracing::error!(sqs_message_id = %message_id, %error, "record processing panicked; reported as failed");
                RecordOutcome::Retry { delay: None }
            }
        };

        if let RecordOutcome::Retry { delay } = outcome {
            if let (Some(delay), Some(receipt_handle)) = (delay, receipt_handle) {
                delay_redelivery(sqs, queue_url, &receipt_handle, delay, &message_id).await;
            }
            response.batch_item_failures.push(failure);
        }
    }
    response
}

async fn delay_redelivery(
    sqs: &aws_sdk_sqs::Client,
    queue_url: &str,
    receipt_handle: &str,
    delay: Duration,
    message_id: &str,
) {
    let seconds = delay.as_secs().min(43_200) as i32;
    let result = sqs
        .change_message_visibility()
        .queue_url(queue_url)
        .receipt_handle(receipt_handle)
        .visibility_timeout(seconds)
        .send()
        .await;
    if let Err(error) = result {
        tracing::warn!(sqs_message_id = %message_id, error = %aws_sdk_sqs::error::DisplayErrorContext(&error), "ChangeMessageVisibility failed; the queue's visibility timeout applies");
    }
}

/// Backoff before the next delivery of a record received `receive_count` times:
/// `base` doubling per receive, capped at `max`.
pub fn backoff(receive_count: u32, base: Duration, max: Duration) -> Duration {
    let exponent = receive_count.saturating_sub(1).min(16);
    base.saturating_mul(1 << exponent).min(max)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_per_receive() {
        let base = Duration::from_secs(30);
        let max = Duration::from_secs(900);
        assert_eq!(backoff(1, base, max), Duration::from_secs(30));
        assert_eq!(backoff(2, base, max), Duration::from_secs(60));
        assert_eq!(backoff(3, base, max), Duration::from_secs(120));
    }

    fn record(id: Option<&str>, body: &str) -> SqsMessage {
        let mut record = SqsMessage::default();
        record.message_id = id.map(str::to_string);
        record.body = Some(body.to_string());
        record
    }

    fn offline_sqs() -> aws_sdk_sqs::Client {
        let config = aws_sdk_sqs::Config::builder()
            .behavior_version(aws_sdk_sqs::config::BehaviorVersion::latest())
            .region(aws_sdk_sqs::config::Region::new("us-east-1"))
            .endpoint_url("http://127.0.0.1:9")
            .build();
        aws_sdk_sqs::Client::from_conf(config)
    }

    #[tokio::test]
    async fn batch_reports_only_failed_records() {
        let mut event = SqsEvent::default();
        event.records = vec![record(Some("a"), "ok"), record(Some("b"), "fail"), record(Some("c"), "ok")];
        let response = process_batch(event, None, &offline_sqs(), "queue", |record| async move {
            if record.body.as_deref() == Some("fail") {
                RecordOutcome::Retry { delay: None }
            } else {
                RecordOutcome::Done
            }
        })
        .await;
        let failed: Vec<&str> =
            response.batch_item_failures.iter().map(|failure| failure.item_identifier.as_str()).collect();
        assert_eq!(failed, vec!["b"]);
    }

    #[tokio::test]
    async fn batch_skips_record_without_message_id() {
        let mut event = SqsEvent::default();
        event.records = vec![record(None, "fail"), record(Some("b"), "ok")];
        let response = process_batch(event, None, &offline_sqs(), "queue", |record| async move {
            if record.body.as_deref() == Some("fail") {
                RecordOutcome::Retry { delay: None }
            } else {
                RecordOutcome::Done
            }
        })
        .await;
        assert!(response.batch_item_failures.is_empty());
    }

    #[tokio::test]
    async fn batch_panic_fails_only_that_record() {
        let mut event = SqsEvent::default();
        event.records = vec![record(Some("a"), "panic"), record(Some("b"), "ok")];
        let response = process_batch(event, None, &offline_sqs(), "queue", |record| async move {
            assert_ne!(record.body.as_deref(), Some("panic"), "simulated crash");
            RecordOutcome::Done
        })
        .await;
        let failed: Vec<&str> =
            response.batch_item_failures.iter().map(|failure| failure.item_identifier.as_str()).collect();
        assert_eq!(failed, vec!["a"]);
    }

    #[tokio::test]
    async fn batch_near_deadline_leaves_records() {
        let mut event = SqsEvent::default();
        event.records = vec![record(Some("a"), "ok")];
        let deadline = Some(Instant::now() + Duration::from_secs(1));
        let response = process_batch(event, deadline, &offline_sqs(), "queue", |_| async { RecordOutcome::Done }).await;
        assert_eq!(response.batch_item_failures.len(), 1);
    }

    #[test]
    fn backoff_is_capped() {
        assert_eq!(backoff(12, Duration::from_secs(30), Duration::from_secs(900)), Duration::from_secs(900));
    }
}
