//! The shared ingest pipeline.

use super::{NormalizedBatch, PendingEvent, StatusUpdate};
use crate::event::{rfc3339, CanonicalEvent, Source, SCHEMA_VERSION};
use crate::ids::{AccountId, ExternalId, Provider, TenantId};
use crate::queue::{Queue, QueueError};
use crate::store::{ActivityCounters, Route, RouteCache, StatusOutcome, Store, StoreError, WriteOutcome};
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap, HashSet};
use thiserror::Error;

/// Size limits enforced on every webhook.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Larger bodies get a 413 response before verification.
    pub max_body_bytes: usize,
    /// A canonical event larger than this cannot be queued and is quarantined instead.
    pub max_event_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        // Meta sends at most 3 MB in one POST; SQS messages are capped at 256 KiB.
        Self { max_body_bytes: 4 * 1024 * 1024, max_event_bytes: 240 * 1024 }
    }
}

/// Everything the ingest path needs, built once per Lambda container.
#[derive(Debug)]
pub struct IngestDeps {
    pub store: Store,
    pub routes: RouteCache,
    pub events_queue: Queue,
    pub limits: Limits,
}

impl IngestDeps {
    /// Builds the shared dependencies from the resource names and limits in the environment.
    pub fn from_env(
        clients: &crate::aws::AwsClients,
        env: &impl crate::config::Env,
    ) -> Result<Self, crate::config::ConfigError> {
        let resources = crate::config::ResourceConfig::from_env(env)?;
        Ok(Self {
            store: Store::new(clients.dynamodb.clone(), resources.tables, resources.event_retention),
            routes: RouteCache::new(resources.route_cache_ttl),
            events_queue: Queue::new(clients.sqs.clone(), resources.events_queue_url),
            limits: crate::config::limits_from_env(env)?,
        })
    }
}

/// Failures that make a webhook return 500 so the provider retries.
#[derive(Debug, Error)]
pub enum IngestError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Queue(#[from] QueueError),
}

/// Outcome of one ingest call, for the request log line and the demo summary.
#[derive(Debug, Default, Clone, Serialize)]
pub struct IngestReport {
    pub received: usize,
    pub stored: usize,
    pub duplicates: usize,
    /// Duplicates that had been stored but never enqueued, sent now.
    pub resent: usize,
    pub enqueued: usize,
    /// Recovery jobs sent to `SyncQueue` (Gmail pushes).
    pub jobs_sent: usize,
    pub statuses_raised: usize,
    pub orphan_statuses: u64,
    /// Digest of the quarantined body, when part of it could not be ingested.
    pub quarantined: Option<String>,
    pub unknown_external_ids: Vec<String>,
    pub problems: Vec<String>,
    pub accounts: Vec<String>,
    /// Ids of the events stored or sent by this request (the first 20), for the request log.
    pub event_ids: Vec<String>,
}

/// Routes, stores and enqueues one batch. `raw_body` is quarantined when some item has
/// no route or some part could not be parsed; recoveries pass `None`.
pub async fn ingest(
    deps: &IngestDeps,
    provider: Provider,
    raw_body: Option<&[u8]>,
    batch: NormalizedBatch,
    source: Source,
    received_at: DateTime<Utc>,
) -> Result<IngestReport, IngestError> {
    let mut report = IngestReport { received: batch.events.len(), problems: batch.problems, ..Default::default() };

    let pending = unique_by_event_id(batch.events, &mut report);
    let external_ids: Vec<ExternalId> =
        pending.iter().map(|event| event.external_id.clone()).collect::<HashSet<_>>().into_iter().collect();
    let routes = deps.routes.resolve(&deps.store, provider, &external_ids).await?;

    let (events, statuses) = route_events(provider, pending, &routes, source, received_at, deps.limits, &mut report);
    quarantine_if_needed(deps, provider, raw_body, &mut report).await?;
    if events.is_empty() {
        return Ok(report);
    }

    let outcomes = deps.store.write_events(&events).await?;
    let mut new_per_account: BTreeMap<(TenantId, AccountId), ActivityCounters> = BTreeMap::new();
    let mut to_send = Vec::new();
    for (event, outcome) in events.iter().zip(&outcomes) {
        match outcome {
            WriteOutcome::New => {
                report.stored += 1;
                let counters = new_per_account.entry((event.tenant_id.clone(), event.account_id.clone())).or_default();
                counters.new_events += 1;
                if event.kind == crate::event::EventKind::MessageStatus {
                    match event.data.get("status").and_then(|status| status.as_str()) {
                        Some("sent") => counters.status_sent += 1,
                        Some("delivered") => counters.status_delivered += 1,
                        Some("read" | "played") => counters.status_read += 1,
                        Some("failed") => counters.status_failed += 1,
                        _ => {}
                    }
                }
                to_send.push(event);
            }
            WriteOutcome::Duplicate { enqueued: false } => {
                report.duplicates += 1;
                report.resent += 1;
                to_send.push(event);
            }
            WriteOutcome::Duplicate { enqueued: true } => report.duplicates += 1,
        }
    }

    let orphans_per_account = apply_statuses(deps, provider, &statuses, &mut report).await?;

    report.event_ids = to_send.iter().take(20).map(|event| event.event_id.to_string()).collect();
    deps.events_queue.send_events(&to_send).await?;
    deps.store.mark_enqueued(&to_send).await?;
    report.enqueued = to_send.len();

    let accounts: HashSet<(TenantId, AccountId)> =
        events.iter().map(|event| (event.tenant_id.clone(), event.account_id.clone())).collect();
    for (tenant_id, account_id) in &accounts {
        let key = (tenant_id.clone(), account_id.clone());
        let mut counters = new_per_account.get(&key).copied().unwrap_or_default();
        counters.orphan_statuses = orphans_per_account.get(&key).copied().unwrap_or(0);
        if source == Source::Webhook {
            deps.store.record_webhook_activity(tenant_id, account_id, counters, received_at).await?;
        }
        let event_ids: Vec<&str> = events
            .iter()
            .filter(|event| event.tenant_id == *tenant_id && event.account_id == *account_id)
            .take(20)
            .map(|event| event.event_id.as_str())
            .collect();
        tracing::info!(
            tenant = %tenant_id, account = %account_id, provider = %provider, source = ?source,
            new_events = counters.new_events, orphan_statuses = counters.orphan_statuses,
            event_ids = ?event_ids, outcome = "stored",
            "account batch ingested"
        );
        report.accounts.push(format!("{tenant_id}/{account_id}"));
    }
    report.accounts.sort();
    Ok(report)
}

/// Deepest nesting a stored canonical event may have: serde_json 1.x stops parsing when
/// it enters the 128th level, so 127 is the deepest that reads back.
pub const MAX_EVENT_DEPTH: usize = 127;

/// Returns how many levels of arrays and objects a stored canonical event nests; the
/// pipeline quarantines events deeper than `MAX_EVENT_DEPTH` instead of storing them.
pub fn event_depth(event: &CanonicalEvent) -> usize {
    1 + json_depth(&event.data)
}

/// Returns how many levels of arrays and objects a value nests.
fn json_depth(value: &serde_json::Value) -> usize {
    match value {
        serde_json::Value::Array(items) => 1 + items.iter().map(json_depth).max().unwrap_or(0),
        serde_json::Value::Object(fields) => 1 + fields.values().map(json_depth).max().unwrap_or(0),
        _ => 0,
    }
}

/// Keeps the first copy of each event id; later copies in the same body are duplicates.
fn unique_by_event_id(events: Vec<PendingEvent>, report: &mut IngestReport) -> Vec<PendingEvent> {
    let mut seen = HashSet::new();
    let mut unique = Vec::with_capacity(events.len());
    for event in events {
        if seen.insert(event.event_id.clone()) {
            unique.push(event);
        } else {
            report.duplicates += 1;
        }
    }
    unique
}

type StatusKey = (TenantId, AccountId, String);

/// Turns routed pending events into canonical events, and collapses the statuses of each
/// message to the highest one, orphan only if no status in the body starts a message.
fn route_events(
    provider: Provider,
    pending: Vec<PendingEvent>,
    routes: &HashMap<ExternalId, Route>,
    source: Source,
    received_at: DateTime<Utc>,
    limits: Limits,
    report: &mut IngestReport,
) -> (Vec<CanonicalEvent>, HashMap<StatusKey, StatusUpdate>) {
    let received_at = rfc3339(received_at);
    let mut events = Vec::new();
    let mut statuses: HashMap<StatusKey, StatusUpdate> = HashMap::new();
    let mut unknown = HashSet::new();

    for item in pending {
        let Some(route) = routes.get(&item.external_id) else {
            unknown.insert(item.external_id.to_string());
            continue;
        };
        let event = CanonicalEvent {
            schema_version: SCHEMA_VERSION,
            event_id: item.event_id,
            tenant_id: route.tenant_id.clone(),
            account_id: route.account_id.clone(),
            provider,
            kind: item.kind,
            occurred_at: item.occurred_at,
            received_at: received_at.clone(),
            source,
            data: item.data,
        };
        // serde_json reads at most 128 levels of nesting; an event embeds provider JSON a few
        // levels down, so a body just under the limit could be stored but never read back.
        let depth = event_depth(&event);
        if depth > MAX_EVENT_DEPTH {
            report.problems.push(format!(
                "event {} nests {depth} levels deep, over the {MAX_EVENT_DEPTH} level limit",
                event.event_id
            ));
            continue;
        }
        let size = serde_json::to_vec(&event).map(|bytes| bytes.len()).unwrap_or(usize::MAX);
        if size > limits.max_event_bytes {
            report.problems.push(format!(
                "event {} is {size} bytes, over the {} byte limit",
                event.event_id, limits.max_event_bytes
            ));
            continue;
        }

        if let Some(update) = item.status {
            let key = (route.tenant_id.clone(), route.account_id.clone(), update.provider_message_id.clone());
            statuses
                .entry(key)
                .and_modify(|kept| {
                    let orphan = kept.orphan_if_first && update.orphan_if_first;
                    if update.rank > kept.rank {
                        *kept = update.clone();
                    }
                    kept.orphan_if_first = orphan;
                })
                .or_insert(update);
        }
        events.push(event);
    }

    report.unknown_external_ids = unknown.into_iter().collect();
    report.unknown_external_ids.sort();
    (events, statuses)
}

async fn quarantine_if_needed(
    deps: &IngestDeps,
    provider: Provider,
    raw_body: Option<&[u8]>,
    report: &mut IngestReport,
) -> Result<(), IngestError> {
    let Some(body) = raw_body else { return Ok(()) };
    if report.unknown_external_ids.is_empty() && report.problems.is_empty() {
        return Ok(());
    }

    let mut reasons = report.problems.clone();
    if !report.unknown_external_ids.is_empty() {
        reasons.push(format!(
            "no account is registered for {} {}; register it with `commsync accounts add`; the raw body is kept here",
            provider,
            report.unknown_external_ids.join(", ")
        ));
    }
    let digest = deps.store.quarantine(provider, body, &reasons.join("; ")).await?;
    tracing::warn!(provider = %provider, digest = %digest, unknown = ?report.unknown_external_ids, problems = report.problems.len(), outcome = "quarantined", "webhook body quarantined");
    report.quarantined = Some(digest);
    Ok(())
}

async fn apply_statuses(
    deps: &IngestDeps,
    provider: Provider,
    statuses: &HashMap<StatusKey, StatusUpdate>,
    report: &mut IngestReport,
) -> Result<HashMap<(TenantId, AccountId), u64>, IngestError> {
    let mut orphans: HashMap<(TenantId, AccountId), u64> = HashMap::new();
    let updates: Vec<(&TenantId, &AccountId, Provider, &StatusUpdate)> =
        statuses.iter().map(|((tenant_id, account_id, _), update)| (tenant_id, account_id, provider, update)).collect();
    let outcomes = deps.store.apply_statuses(&updates).await?;
    for ((tenant_id, account_id, _, _), outcome) in updates.iter().zip(outcomes) {
        let (tenant_id, account_id) = (*tenant_id, *account_id);
        match outcome {
            StatusOutcome::Created { orphan: true } => {
                report.orphan_statuses += 1;
                *orphans.entry((tenant_id.clone(), account_id.clone())).or_default() += 1;
            }
            StatusOutcome::Created { orphan: false } | StatusOutcome::Raised => report.statuses_raised += 1,
            StatusOutcome::Unchanged => {}
        }
    }
    Ok(orphans)
}
