//! Replaying a quarantined body after its cause was fixed (usually: the account was
//! registered). The body was verified when it arrived, so it goes straight to the
//! provider's parser and the shared ingest path, and is never quarantined a second time.

use super::{ingest, IngestDeps, IngestError, IngestReport, NormalizedBatch};
use crate::event::Source;
use crate::ids::Provider;
use crate::providers::gmail::handler::{record, PushRecorder};
use crate::queue::Queue;
use std::time::Duration;

/// Ingests one quarantined body. The report's `unknown_external_ids` and `problems` say
/// what still cannot be ingested; the body should stay in quarantine when either is set.
pub async fn replay(
    ingest_deps: &IngestDeps,
    sync_queue: &Queue,
    recovery_lease: Duration,
    provider: Provider,
    body: &[u8],
) -> Result<IngestReport, IngestError> {
    let now = chrono::Utc::now();
    let batch = match provider {
        Provider::WhatsApp => crate::providers::whatsapp::normalize::normalize(body).map_err(|error| error.to_string()),
        Provider::LinkedIn => crate::providers::linkedin::normalize::normalize(body).map_err(|error| error.to_string()),
        Provider::Gmail => {
            let recorder = PushRecorder { ingest: ingest_deps, sync_queue, recovery_lease, quarantine: false };
            let mut report = IngestReport { received: 1, ..Default::default() };
            Box::pin(record(body, &recorder, &mut report)).await?;
            return Ok(report);
        }
    };
    let batch = batch.unwrap_or_else(|problem| NormalizedBatch { events: Vec::new(), problems: vec![problem] });
    Box::pin(ingest(ingest_deps, provider, None, batch, Source::Webhook, now)).await
}

/// Whether a replay ingested everything, so the quarantined copy can go.
pub fn fully_replayed(report: &IngestReport) -> bool {
    report.unknown_external_ids.is_empty() && report.problems.is_empty()
}
