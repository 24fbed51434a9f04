//! Gmail recoveries: `history_sync`, `full_sync`, `probe` and `renew_watch`.

use super::{JobContext, JobError, JobReport};
use crate::event::{rfc3339, rfc3339_from_unix_millis, EventKind, Source};
use crate::ids::{EventId, ExternalId, Provider};
use crate::ingest::{ingest, NormalizedBatch, PendingEvent};
use crate::providers::api::ApiError;
use crate::providers::gmail::api::{HistoryRecord, Message};
use crate::secret::Secret;
use crate::store::Credentials;
use chrono::Utc;
use serde_json::{json, Value};
use std::collections::HashSet;

/// The account attribute that holds the watch renewal lease.
const WATCH_LEASE: &str = "watch_lease_until";

/// Calls the Gmail API with the current token; on a 401, refreshes the token once and
/// calls again. Counts every call.
macro_rules! gmail_call {
    ($context:expr, $token:ident, $call:expr) => {{
        $context.api_calls += 1;
        match $call.await {
            Err(ApiError::Unauthorized { .. }) => {
                $token = refresh_token($context).await?;
                $context.api_calls += 1;
                $call.await
            }
            other => other,
        }
    }};
}

/// Returns a usable access token, refreshing it when it is missing or about to expire.
async fn access_token(context: &mut JobContext<'_>) -> Result<Secret, JobError> {
    let credentials =
        context.deps.ingest.store.get_credentials(&context.job.tenant_id, &context.job.account_id).await?;
    let fresh = credentials.access_token_expires_at.is_none_or(|expires_at| expires_at > Utc::now().timestamp() + 60);
    match credentials.access_token {
        Some(token) if fresh => Ok(token),
        _ => refresh_token(context).await,
    }
}

/// Exchanges the stored refresh token for a new access token and stores it.
async fn refresh_token(context: &mut JobContext<'_>) -> Result<Secret, JobError> {
    let store = &context.deps.ingest.store;
    let credentials = store.get_credentials(&context.job.tenant_id, &context.job.account_id).await?;
    let refresh = credentials
        .refresh_token
        .ok_or_else(|| JobError::Reconnect("no refresh token is stored for the mailbox; reconnect it".to_string()))?;

    context.api_calls += 1;
    let grant = context.deps.gmail.refresh(&refresh).await.map_err(|error| match error {
        ApiError::Rejected { status: 0, .. } => JobError::Configuration(error.to_string()),
        other => JobError::from(other),
    })?;
    let token = Secret::new(grant.access_token);
    let stored = Credentials {
        access_token: Some(token.clone()),
        refresh_token: None,
        access_token_expires_at: grant.expires_in.map(|seconds| Utc::now().timestamp() + seconds as i64),
    };
    store.put_credentials(&context.job.tenant_id, &context.job.account_id, &stored).await?;
    tracing::info!(tenant = %context.job.tenant_id, account = %context.job.account_id, "gmail access token refreshed");
    Ok(token)
}

/// Syncs history from the stored cursor, following every page; falls back to a full sync
/// when the cursor expired (404) or was never set.
pub async fn history_sync(context: &mut JobContext<'_>) -> Result<JobReport, JobError> {
    let Some(cursor) = context.account.history_cursor else {
        return full_sync(context, "no cursor yet").await;
    };
    let mut token = access_token(context).await?;

    let mut records = Vec::new();
    let mut page_token: Option<String> = None;
    let latest = loop {
        let api = &context.deps.gmail;
        let page = match gmail_call!(context, token, api.history_page(&token, cursor, page_token.as_deref())) {
            Ok(page) => page,
            Err(ApiError::NotFound { .. }) => return full_sync(context, "cursor expired").await,
            Err(error) => return Err(error.into()),
        };
        records.extend(page.history);
        match page.next_page_token {
            Some(next) => page_token = Some(next),
            None => break page.history_id,
        }
    };

    // A push can arrive before its change shows in the history: look again shortly.
    if records.is_empty() {
        if let Some(notified) = context.job.notified_history_id {
            if notified > latest && context.job.attempt < context.deps.config.empty_history_retries {
                return requeue(context, notified, latest).await;
            }
        }
    }

    let record_count = records.len();
    let events = history_events(context, &mut token, records).await?;
    let recovered = store_events(context, events).await?;
    context.deps.ingest.store.advance_history_cursor(&context.job.tenant_id, &context.job.account_id, latest).await?;
    Ok(JobReport {
        recovered,
        detail: format!("{record_count} history records, {recovered} new events, cursor {cursor} -> {latest}"),
        ..Default::default()
    })
}

/// Lists recent messages after the cursor expired (or before there was one), then stores
/// the current historyId, so the next sync is incremental and never requests the old cursor.
pub async fn full_sync(context: &mut JobContext<'_>, why: &str) -> Result<JobReport, JobError> {
    let mut token = access_token(context).await?;
    let api = &context.deps.gmail;

    // The profile first: a message that arrives during the listing is after this historyId,
    // so the next history sync finds it.
    let profile = gmail_call!(context, token, api.profile(&token))?;

    let query = format!("newer_than:{}d", context.deps.config.full_sync_days);
    let max = context.deps.config.full_sync_max_messages as usize;
    let mut ids = Vec::new();
    let mut page_token: Option<String> = None;
    while ids.len() < max {
        let page_size = (max - ids.len()).min(500) as u32;
        let page = gmail_call!(context, token, api.list_messages(&token, &query, page_token.as_deref(), page_size))?;
        ids.extend(page.messages.into_iter().map(|message| message.id));
        match page.next_page_token {
            Some(next) => page_token = Some(next),
            None => break,
        }
    }
    ids.truncate(max);

    let mut events = Vec::new();
    for id in &ids {
        if let Some(message) = fetch_message(context, &mut token, id).await? {
            if let Some(event) = added_event(context, &message, None) {
                events.push(event);
            }
        }
    }
    let recovered = store_events(context, events).await?;
    context
        .deps
        .ingest
        .store
        .advance_history_cursor(&context.job.tenant_id, &context.job.account_id, profile.history_id)
        .await?;
    Ok(JobReport {
        recovered,
        detail: format!(
            "full sync ({why}): {} messages listed, {recovered} new events, cursor set to {}",
            ids.len(),
            profile.history_id
        ),
        ..Default::default()
    })
}

/// Reads the mailbox's current historyId (1 quota unit) and syncs when it is ahead of the cursor.
pub async fn probe(context: &mut JobContext<'_>) -> Result<JobReport, JobError> {
    let mut token = access_token(context).await?;
    let api = &context.deps.gmail;
    let profile = gmail_call!(context, token, api.profile(&token))?;
    let cursor = context.account.history_cursor.unwrap_or(0);
    if profile.history_id <= cursor {
        return Ok(JobReport {
            detail: format!("probe: historyId {} is not ahead of the cursor", profile.history_id),
            ..Default::default()
        });
    }
    let mut report = history_sync(context).await?;
    report.detail = format!("probe found historyId {} ahead of cursor {cursor}; {}", profile.history_id, report.detail);
    Ok(report)
}

/// Renews the mailbox's `users.watch`, one renewal per mailbox at a time.
pub async fn renew_watch(context: &mut JobContext<'_>) -> Result<JobReport, JobError> {
    let topic = context.deps.config.gmail_topic.clone().ok_or_else(|| {
        JobError::Configuration("GMAIL_PUBSUB_TOPIC is not set, so watches cannot be renewed".to_string())
    })?;
    let store = &context.deps.ingest.store;
    let (tenant_id, account_id) = (&context.job.tenant_id, &context.job.account_id);
    let until = Utc::now() + chrono::Duration::minutes(5);
    if !store.claim_lease(tenant_id, account_id, WATCH_LEASE, until).await? {
        return Ok(JobReport { detail: "another watch renewal is running".to_string(), ..Default::default() });
    }

    let mut token = access_token(context).await?;
    let api = &context.deps.gmail;
    let labels = context.deps.config.gmail_labels.clone();
    let watched = gmail_call!(context, token, api.watch(&token, &topic, &labels));
    let result = match watched {
        Ok(watch) => {
            store.record_watch(tenant_id, account_id, watch.history_id, watch.expiration).await?;
            let expires = rfc3339_from_unix_millis(watch.expiration as i64).unwrap_or_default();
            Ok(JobReport { detail: format!("watch renewed until {expires}"), ..Default::default() })
        }
        Err(ApiError::Forbidden { message, .. }) => Err(JobError::Configuration(format!(
            "users.watch was rejected for topic {topic}: {message}; grant gmail-api-push@system.gserviceaccount.com the Pub/Sub Publisher role on it"
        ))),
        Err(error) => Err(error.into()),
    };
    if let Err(error) = store.release_lease(tenant_id, account_id, WATCH_LEASE).await {
        tracing::warn!(tenant = %tenant_id, account = %account_id, %error, "watch lease not released; it expires by itself");
    }
    result
}

/// Sends a delayed copy of the job, because the announced history is not visible yet.
async fn requeue(context: &mut JobContext<'_>, notified: u64, latest: u64) -> Result<JobReport, JobError> {
    let mut retry = context.job.clone();
    retry.attempt += 1;
    retry.job_id = format!("{}#retry{}", context.job.job_id.split("#retry").next().unwrap_or_default(), retry.attempt);
    let mut message = retry.to_message();
    message.delay_seconds = Some(context.deps.config.empty_history_delay.as_secs().min(900) as i32);
    context.deps.sync_queue.send_all(&[message]).await?;
    Ok(JobReport {
        detail: format!(
            "push announced historyId {notified} but history ends at {latest}; looking again (attempt {})",
            retry.attempt
        ),
        requeued: true,
        ..Default::default()
    })
}

/// Fetches a message; a 404 (deleted since) is skipped and logged, not a failure.
async fn fetch_message(
    context: &mut JobContext<'_>,
    token: &mut Secret,
    id: &str,
) -> Result<Option<Message>, JobError> {
    let api = &context.deps.gmail;
    let mut current = token.clone();
    let result = gmail_call!(context, current, api.message(&current, id));
    *token = current;
    match result {
        Ok(message) => Ok(Some(message)),
        Err(ApiError::NotFound { .. }) => {
            tracing::info!(tenant = %context.job.tenant_id, account = %context.job.account_id, message_id = id, "message gone before it could be fetched; skipped");
            Ok(None)
        }
        Err(error) => Err(error.into()),
    }
}

/// Turns history records into events, fetching each added message once.
async fn history_events(
    context: &mut JobContext<'_>,
    token: &mut Secret,
    records: Vec<HistoryRecord>,
) -> Result<Vec<PendingEvent>, JobError> {
    let mailbox = mailbox(context)?;
    let mut events = Vec::new();
    let mut fetched = HashSet::new();

    for record in records {
        for added in &record.messages_added {
            if !fetched.insert(added.message.id.clone()) {
                continue;
            }
            if let Some(message) = fetch_message(context, token, &added.message.id).await? {
                if let Some(event) = added_event(context, &message, Some(record.id)) {
                    events.push(event);
                }
            }
        }
        for deleted in &record.messages_deleted {
            events.push(PendingEvent {
                external_id: mailbox.clone(),
                event_id: EventId::from_parts(&["gmail", mailbox.as_str(), &deleted.message.id, "messageDeleted"]),
                kind: EventKind::MessageDeleted,
                occurred_at: rfc3339(Utc::now()),
                data: json!({ "message_id": deleted.message.id, "thread_id": deleted.message.thread_id, "history_id": record.id }),
                status: None,
            });
        }
        for (changes, history_type) in
            [(&record.labels_added, "labelsAdded"), (&record.labels_removed, "labelsRemoved")]
        {
            for change in changes.iter() {
                // One message can have several label changes of one type, so the history record id keeps them apart.
                let record_id = record.id.to_string();
                events.push(PendingEvent {
                    external_id: mailbox.clone(),
                    event_id: EventId::from_parts(&[
                        "gmail",
                        mailbox.as_str(),
                        &change.message.id,
                        history_type,
                        &record_id,
                    ]),
                    kind: EventKind::LabelsChanged,
                    occurred_at: rfc3339(Utc::now()),
                    data: json!({
                        "message_id": change.message.id,
                        "history_type": history_type,
                        "label_ids": change.label_ids,
                        "message_label_ids": change.message.label_ids,
                        "history_id": record.id,
                    }),
                    status: None,
                });
            }
        }
    }
    Ok(events)
}

/// Builds a `message.added` event for a fetched message, or `None` when the label filter drops it.
fn added_event(context: &JobContext<'_>, message: &Message, history_id: Option<u64>) -> Option<PendingEvent> {
    let labels = &context.deps.config.gmail_labels;
    if !labels.is_empty() && !message.label_ids.iter().any(|label| labels.contains(label)) {
        return None;
    }
    let mailbox = mailbox(context).ok()?;
    let header = |name: &str| -> Option<String> {
        message.json.pointer("/payload/headers")?.as_array()?.iter().find_map(|header| {
            let matches = header.get("name")?.as_str()?.eq_ignore_ascii_case(name);
            matches.then(|| header.get("value").and_then(Value::as_str).map(str::to_string)).flatten()
        })
    };
    let occurred_at = message
        .internal_date_ms
        .and_then(|millis| rfc3339_from_unix_millis(millis as i64))
        .unwrap_or_else(|| rfc3339(Utc::now()));

    Some(PendingEvent {
        external_id: mailbox.clone(),
        event_id: EventId::from_parts(&["gmail", mailbox.as_str(), &message.id, "messageAdded"]),
        kind: EventKind::MessageAdded,
        occurred_at,
        data: json!({
            "message_id": message.id,
            "thread_id": message.json.get("threadId"),
            "label_ids": message.label_ids,
            "history_id": history_id,
            "subject": header("Subject"),
            "from": header("From"),
            "to": header("To"),
            "snippet": message.json.get("snippet"),
        }),
        status: None,
    })
}

fn mailbox(context: &JobContext<'_>) -> Result<ExternalId, JobError> {
    ExternalId::for_provider(Provider::Gmail, context.account.external_id.as_str())
        .map_err(|error| JobError::Permanent(format!("account mailbox is invalid: {error}")))
}

/// Stores recovered events through the webhook path; returns how many were new.
pub(super) async fn store_events(context: &JobContext<'_>, events: Vec<PendingEvent>) -> Result<u64, JobError> {
    if events.is_empty() {
        return Ok(0);
    }
    let batch = NormalizedBatch { events, problems: Vec::new() };
    let report =
        Box::pin(ingest(&context.deps.ingest, context.job.provider, None, batch, Source::Recovery, Utc::now())).await?;
    Ok(report.stored as u64)
}
