//! The HTTP response every content-carrying webhook returns after verification: 200 once
//! the normalized batch is ingested, or 500 so the provider retries.

use super::{ingest, IngestDeps, IngestReport, NormalizedBatch};
use crate::event::Source;
use crate::http::json_response;
use crate::ids::Provider;
use lambda_http::aws_lambda_events::apigw::ApiGatewayV2httpResponse;
use serde_json::json;

/// Ingests a verified body and builds the response, logging one line with the outcome.
pub async fn ingest_verified(
    deps: &IngestDeps,
    provider: Provider,
    body: &[u8],
    batch: NormalizedBatch,
) -> (ApiGatewayV2httpResponse, Option<IngestReport>) {
    let received_at = chrono::Utc::now();

    // Boxed: the ingest future is deep, and inlining it overflows the layout query depth of the binaries.
    let ingested = Box::pin(ingest(deps, provider, Some(body), batch, Source::Webhook, received_at));
    match ingested.await {
        Ok(report) => {
            tracing::info!(
                provider = %provider, outcome = "accepted",
                received = report.received, stored = report.stored, duplicates = report.duplicates,
                resent = report.resent, enqueued = report.enqueued, orphan_statuses = report.orphan_statuses,
                quarantined = report.quarantined.is_some(), accounts = ?report.accounts,
                "webhook ingested"
            );
            (json_response(200, json!({ "status": "ok" })), Some(report))
        }
        Err(error) => {
            tracing::error!(provider = %provider, outcome = "failed", %error, "webhook not ingested; the provider will retry");
            (json_response(500, json!({ "error": "temporary storage failure; retry later" })), None)
        }
    }
}

/// Returns the 413 response when `body` is over the limit.
pub fn reject_oversized(deps: &IngestDeps, provider: Provider, body: &[u8]) -> Option<ApiGatewayV2httpResponse> {
    let limit = deps.limits.max_body_bytes;
    if body.len() <= limit {
        return None;
    }
    tracing::warn!(provider = %provider, outcome = "too_large", bytes = body.len(), limit, "body over the limit");
    Some(json_response(413, json!({ "error": format!("body is over the {limit} byte limit") })))
}

/// Writes the one log line and the one metrics line of a finished webhook request:
/// provider, tenants and accounts, event ids, outcome and duration.
pub fn finish_request(
    function: &'static str,
    provider: Provider,
    method: &lambda_http::http::Method,
    answer: &ApiGatewayV2httpResponse,
    report: Option<&IngestReport>,
    started: std::time::Instant,
) {
    let status = answer.status_code;
    let outcome = match status {
        200..=299 if report.is_some_and(|report| report.quarantined.is_some()) => "quarantined",
        200..=299 if report.is_some_and(|report| report.stored == 0 && report.duplicates > 0) => "duplicate",
        200..=299 => "accepted",
        400 => "bad_request",
        401 => "rejected_signature",
        403 => "rejected_verify_token",
        405 => "method_not_allowed",
        413 => "too_large",
        _ => "failed",
    };
    let duration_ms = started.elapsed().as_millis() as u64;
    let empty = IngestReport::default();
    let details = report.unwrap_or(&empty);
    tracing::info!(
        provider = %provider, method = %method, status, outcome, duration_ms,
        accounts = ?details.accounts, event_ids = ?details.event_ids,
        stored = details.stored, duplicates = details.duplicates, enqueued = details.enqueued,
        "request finished"
    );

    let mut metrics = crate::metrics::Metrics::new(function, provider.as_str()).dimension("Outcome", outcome);
    metrics
        .count("WebhooksReceived", 1)
        .count("WebhooksVerified", u64::from((200..300).contains(&status) || status == 500))
        .count("WebhooksRejected", u64::from(matches!(status, 400 | 401 | 403 | 405 | 413)))
        .count("WebhooksFailed", u64::from(status >= 500))
        .count("EventsStored", details.stored as u64)
        .count("Duplicates", details.duplicates as u64)
        .count("Quarantined", u64::from(details.quarantined.is_some()))
        .count("EventsEnqueued", details.enqueued as u64)
        .count("JobsSent", details.jobs_sent as u64)
        .milliseconds("Duration", duration_ms);
    metrics.emit();
}
