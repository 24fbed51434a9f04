//! commsync itself: webhooks, push-triggered Gmail syncs, and the real gap detector
//! (`commsync::gaps`) every 15 minutes, whose jobs a model of the worker carries out.

use crate::fleet::{Breaks, SimAccount};
use crate::outcome::{pages, Outcome};
use crate::strategies::channel_up;
use commsync::event::rfc3339_from_unix_seconds;
use commsync::gaps::plan::plan;
use commsync::gaps::rate::RateEstimate;
use commsync::gaps::run::analyze_fleet;
use commsync::gaps::testkit;
use commsync::gaps::DetectorConfig;
use commsync::ids::Provider;
use commsync::jobs::JobKind;
use commsync::store::AccountRecord;
use std::collections::BTreeMap;

/// Epoch second the simulated day starts.
pub const START: i64 = 1_796_300_000;

struct State {
    next_event: usize,
    /// Gmail: messages fetched so far (a prefix of the events).
    fetched: usize,
    /// Lost events not yet recovered.
    lost: Vec<i64>,
    /// When the strategy repaired the account's broken channel.
    repaired: Option<i64>,
}

/// The detector starts with a week of learned history: the decayed count and exposure an
/// account reaches at its true rate (exposure τ/ln 2 ≈ 242 h for a 168 h half-life).
fn record_for(index: usize, account: &SimAccount, breaks: &Breaks) -> AccountRecord {
    let mut record = testkit::account(index, account.provider, START - 30 * 86_400);
    record.detector.event_rate = RateEstimate { count: account.rate_per_hour * 242.0, exposure_hours: 242.0 };
    record.detector.updated_at = Some(START);
    record.last_webhook_epoch = Some(START);
    if account.provider == Provider::Gmail {
        record.notified_history_id = Some(1000);
        record.notified_epoch = Some(START);
        record.history_cursor_at = Some(START);
        let expires = match breaks.watch_expires {
            Some((broken, at)) if broken == index => START + at,
            _ => START + 5 * 86_400,
        };
        record.watch_expiration_ms = Some((expires * 1000) as u64);
    }
    record
}

pub fn commsync(accounts: &[SimAccount], breaks: &Breaks, end: i64, config: &DetectorConfig) -> Outcome {
    let mut outcome = Outcome::default();
    let mut records: Vec<AccountRecord> =
        accounts.iter().enumerate().map(|(index, account)| record_for(index, account, breaks)).collect();
    let mut states: Vec<State> =
        accounts.iter().map(|_| State { next_event: 0, fetched: 0, lost: Vec::new(), repaired: None }).collect();
    let mut open_incidents = BTreeMap::new();
    let interval = config.run_interval.as_secs() as i64;

    let mut run_at = interval;
    loop {
        let until = run_at.min(end);
        for (index, account) in accounts.iter().enumerate() {
            deliver_until(index, account, &mut records[index], &mut states[index], breaks, until, &mut outcome);
        }
        if run_at > end {
            break;
        }

        let now = START + run_at;
        let analysis = analyze_fleet(&records, &open_incidents, now, config);
        let planned = plan(&analysis.findings, &records, now, &run_at.to_string(), config);
        for (record, (state, _)) in records.iter_mut().zip(analysis.states) {
            record.detector = state;
        }
        for incident in &analysis.incidents {
            open_incidents.entry(incident.provider).or_insert(incident.silent_since);
        }
        for provider in &analysis.resolved {
            open_incidents.remove(provider);
        }
        for job in &planned.jobs {
            let index = records
                .iter()
                .position(|record| record.tenant_id == job.job.tenant_id && record.account_id == job.job.account_id)
                .expect("jobs are for known accounts");
            if job.finding == commsync::gaps::FindingKind::IncidentRecovery {
                records[index].detector.incident_recovery_from = None;
            }
            let window_start = job.job.window_start_ms.map(|ms| ms / 1000 - START);
            recover(
                index,
                &accounts[index],
                &mut records[index],
                &mut states[index],
                breaks,
                job.job.kind,
                window_start,
                run_at,
                &mut outcome,
            );
        }
        run_at += interval;
    }

    for (account, state) in accounts.iter().zip(&states) {
        if account.provider != Provider::WhatsApp {
            outcome.missed += state.lost.len() as u64;
        }
    }
    outcome
}

/// Delivers (or loses) the account's events before `until`.
fn deliver_until(
    index: usize,
    account: &SimAccount,
    record: &mut AccountRecord,
    state: &mut State,
    breaks: &Breaks,
    until: i64,
    outcome: &mut Outcome,
) {
    while let Some(&at) = account.events.get(state.next_event) {
        if at >= until {
            break;
        }
        let dropped = account.dropped[state.next_event];
        state.next_event += 1;
        let delivered = !dropped && channel_up(index, account.provider, at, breaks, state.repaired);
        if !delivered {
            match account.provider {
                // No API returns past WhatsApp messages: a lost webhook is lost for good.
                Provider::WhatsApp => outcome.missed += 1,
                _ => state.lost.push(at),
            }
            continue;
        }

        record.webhook_events += 1;
        record.webhook_requests += 1;
        record.last_webhook_epoch = Some(START + at);
        if account.provider == Provider::Gmail {
            let next = record.notified_history_id.unwrap_or(1000) + 10;
            record.notified_history_id = Some(next);
            record.notified_epoch = Some(START + at);
            history_sync(account, record, state, at, outcome);
        }
    }
}

/// Simulates a Gmail history sync at `at`, which costs one call plus one per message not yet fetched.
fn history_sync(account: &SimAccount, record: &mut AccountRecord, state: &mut State, at: i64, outcome: &mut Outcome) {
    outcome.syncs += 1;
    outcome.api_calls += 1;
    let upto = account.events.partition_point(|event| *event <= at).min(state.next_event);
    outcome.api_calls += upto.saturating_sub(state.fetched) as u64;
    state.fetched = upto.max(state.fetched);
    for lost_at in state.lost.drain(..) {
        outcome.latencies.push((at - lost_at) as f64);
    }
    record.history_cursor = record.notified_history_id;
    record.history_cursor_at = Some(START + at);
}

/// Applies the worker's effect of one job, at `at` seconds into the day.
#[allow(clippy::too_many_arguments)]
fn recover(
    index: usize,
    account: &SimAccount,
    record: &mut AccountRecord,
    state: &mut State,
    breaks: &Breaks,
    kind: JobKind,
    window_start: Option<i64>,
    at: i64,
    outcome: &mut Outcome,
) {
    record.last_recovery_at = rfc3339_from_unix_seconds(START + at);
    match kind {
        JobKind::Probe | JobKind::HistorySync | JobKind::FullSync => {
            outcome.syncs += 1;
            outcome.api_calls += 1;
            let behind = state.fetched < state.next_event;
            if kind != JobKind::Probe || behind {
                history_sync(account, record, state, at, outcome);
            }
        }
        JobKind::RenewWatch => {
            outcome.syncs += 1;
            outcome.api_calls += 1;
            record.watch_expiration_ms = Some(((START + at + 7 * 86_400) * 1000) as u64);
            if breaks.watch_expires.is_some_and(|(broken, _)| broken == index) && state.repaired.is_none() {
                state.repaired = Some(at);
            }
            if state.fetched < state.next_event {
                history_sync(account, record, state, at, outcome);
            }
        }
        JobKind::CheckSubscription => {
            outcome.syncs += 1;
            outcome.api_calls += 2;
            let unsubscribed = breaks.unsubscribed.is_some_and(|(broken, from)| broken == index && at >= from);
            if unsubscribed && state.repaired.is_none() {
                outcome.api_calls += 1;
                state.repaired = Some(at);
            }
        }
        JobKind::NotificationsPull => {
            outcome.syncs += 1;
            let from = window_start.unwrap_or(at - 86_400);
            let in_window = account.events[..state.next_event].iter().filter(|event| **event >= from).count();
            outcome.api_calls += pages(in_window);
            state.lost.retain(|lost_at| {
                if *lost_at >= from {
                    outcome.latencies.push((at - lost_at) as f64);
                    false
                } else {
                    true
                }
            });
        }
    }
}
