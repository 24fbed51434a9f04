//! The HTTP answer every content-carrying webhook gives after verification: ingest the
//! normalized batch and answer 200, or 500 so the provider retries.

use super::{ingest, IngestDeps, IngestReport, NormalizedBatch};
use crate::event::Source;
use crate::http::json_response;
use crate::ids::Provider;
use lambda_http::aws_lambda_events::apigw::ApiGatewayV2httpResponse;
use serde_json::json;

/// Ingests a verified body and builds the answer, logging one line with the outcome.
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

/// Returns the 413 answer when `body` is over the limit.
pub fn reject_oversized(deps: &IngestDeps, provider: Provider, body: &[u8]) -> Option<ApiGatewayV2httpResponse> {
    let limit = deps.limits.max_body_bytes;
    if body.len() <= limit {
        return None;
    }
    tracing::warn!(provider = %provider, outcome = "too_large", bytes = body.len(), limit, "body over the limit");
    Some(json_response(413, json!({ "error": format!("body is over the {limit} byte limit") })))
}
