//! The analyses: pure functions from account state (and the time) to findings.

use super::model::{DetectorConfig, DetectorState, Finding, FindingKind, Recommendation, Severity};
use super::score::priority;
use super::silence;
use crate::ids::Provider;
use crate::store::AccountRecord;
use std::collections::BTreeMap;

/// Seconds in an hour.
const HOUR: f64 = 3600.0;

/// The detector state after learning from the counters the webhooks maintain, and whether
/// it changed enough to write. Rates are updated when events arrived, and at least daily.
pub fn learn(account: &AccountRecord, now: i64, config: &DetectorConfig) -> (DetectorState, bool) {
    let mut state = account.detector.clone();
    let statuses = status_total(account);
    let elapsed_hours = state.updated_at.map_or(0.0, |updated| (now - updated) as f64 / HOUR);
    let new_events = account.webhook_events.saturating_sub(state.seen_events);
    let new_statuses = statuses.saturating_sub(state.seen_statuses);
    let mut changed = false;

    if state.updated_at.is_none() {
        // First sight: start measuring from now (from creation, when that is known and earlier).
        let start = created_epoch(account).filter(|created| *created < now).unwrap_or(now);
        let exposure = (now - start) as f64 / HOUR;
        state.event_rate = state.event_rate.observe(account.webhook_events, exposure, config.rate_half_life_hours);
        state.status_rate = state.status_rate.observe(statuses, exposure, config.rate_half_life_hours);
        state.updated_at = Some(now);
        changed = true;
    } else if new_events > 0 || new_statuses > 0 || elapsed_hours >= 24.0 {
        state.event_rate = state.event_rate.observe(new_events, elapsed_hours, config.rate_half_life_hours);
        state.status_rate = state.status_rate.observe(new_statuses, elapsed_hours, config.rate_half_life_hours);
        state.updated_at = Some(now);
        changed = true;
    }
    if changed {
        state.seen_events = account.webhook_events;
        state.seen_statuses = statuses;
    }

    if account.provider == Provider::WhatsApp {
        let window_over =
            state.window_start.is_none_or(|start| (now - start) as f64 / HOUR >= config.status_window_hours);
        if window_over {
            // The window's findings are computed from the old baselines before they move.
            changed = true;
        }
    }
    (state, changed)
}

/// Moves the WhatsApp status window forward when it is over; called after analysis.
pub fn roll_status_window(account: &AccountRecord, state: &mut DetectorState, now: i64, config: &DetectorConfig) {
    let window_over = state.window_start.is_none_or(|start| (now - start) as f64 / HOUR >= config.status_window_hours);
    if account.provider == Provider::WhatsApp && window_over {
        state.window_start = Some(now);
        state.window_sent = account.status_sent;
        state.window_delivered = account.status_delivered;
        state.window_read = account.status_read;
        state.window_failed = account.status_failed;
        state.window_orphans = account.orphan_statuses;
    }
}

fn status_total(account: &AccountRecord) -> u64 {
    account.status_sent + account.status_delivered + account.status_read + account.status_failed
}

fn created_epoch(account: &AccountRecord) -> Option<i64> {
    chrono::DateTime::parse_from_rfc3339(&account.created_at).ok().map(|time| time.timestamp())
}

/// Hours since the account's state was last known complete: the last webhook or the last
/// successful recovery (which checked the provider up to its time), whichever is later;
/// since creation when neither happened yet.
pub fn silent_hours(account: &AccountRecord, now: i64) -> f64 {
    let last_recovery = account
        .last_recovery_at
        .as_deref()
        .and_then(|at| chrono::DateTime::parse_from_rfc3339(at).ok())
        .map(|at| at.timestamp());
    let since = account.last_webhook_epoch.max(last_recovery).or_else(|| created_epoch(account)).unwrap_or(now);
    ((now - since) as f64 / HOUR).max(0.0)
}

/// Returns the cheapest check that shows whether a provider missed something for an account.
pub fn cheapest_check(provider: Provider, since_epoch: i64) -> Recommendation {
    match provider {
        Provider::Gmail => Recommendation::Probe,
        Provider::WhatsApp => Recommendation::CheckSubscription,
        Provider::LinkedIn => Recommendation::NotificationsPull { window_start_ms: since_epoch.saturating_mul(1000) },
    }
}

/// Builds a scored finding.
#[allow(clippy::too_many_arguments)]
fn finding(
    account: &AccountRecord,
    kind: FindingKind,
    severity: Severity,
    confidence: f64,
    rate_per_hour: f64,
    age_hours: f64,
    recommendation: Recommendation,
    evidence: String,
) -> Finding {
    Finding {
        tenant_id: account.tenant_id.clone(),
        account_id: account.account_id.clone(),
        provider: account.provider,
        kind,
        evidence,
        confidence,
        severity,
        rate_per_hour,
        age_hours,
        score: priority(severity.weight(), confidence, rate_per_hour, age_hours),
        recommendation,
    }
}

/// Analyses one account. `state` is the detector state after `learn`.
pub fn analyze_account(
    account: &AccountRecord,
    state: &DetectorState,
    now: i64,
    config: &DetectorConfig,
) -> Vec<Finding> {
    let rate = state.event_rate.per_hour(config.prior);
    let mut findings = Vec::new();

    // A disabled account is left alone; accounts that need a person get exactly one
    // finding, and no recovery.
    match account.status.as_str() {
        "disabled" => return Vec::new(),
        "reconnect_required" => {
            let reason = account.status_reason.clone().unwrap_or_default();
            return vec![finding(
                account,
                FindingKind::ReconnectRequired,
                Severity::Critical,
                1.0,
                rate,
                0.0,
                Recommendation::ReconnectRequired,
                format!("credentials revoked or expired: {reason}"),
            )];
        }
        "configuration_error" => {
            let reason = account.status_reason.clone().unwrap_or_default();
            return vec![finding(
                account,
                FindingKind::ConfigurationError,
                Severity::High,
                1.0,
                rate,
                0.0,
                Recommendation::Nothing,
                format!("provider setup is wrong: {reason}"),
            )];
        }
        "error" | "failed" | "disconnected" => {
            let since = account.last_webhook_epoch.unwrap_or(now - HOUR as i64);
            findings.push(finding(
                account,
                FindingKind::AccountError,
                Severity::High,
                0.9,
                rate,
                0.0,
                cheapest_check(account.provider, since),
                format!("account status is {}", account.status),
            ));
        }
        _ => {}
    }
    if account.consecutive_failures >= config.failure_streak {
        let last_error = account.last_error.clone().unwrap_or_default();
        findings.push(finding(
            account,
            FindingKind::FailureStreak,
            Severity::High,
            0.9,
            rate,
            0.0,
            Recommendation::Nothing,
            format!("{} recoveries failed in a row; last: {last_error}", account.consecutive_failures),
        ));
    }

    let silent = silent_hours(account, now);
    if silence::is_suspect(rate, silent, config.silence_alpha, config.min_silence_hours) {
        let probability = silence::probability(rate, silent);
        let since = now - (silent * HOUR) as i64;
        let severity = if rate >= config.active_rate_per_hour { Severity::High } else { Severity::Medium };
        findings.push(finding(
            account,
            FindingKind::Silence,
            severity,
            1.0 - probability,
            rate,
            silent,
            cheapest_check(account.provider, since - 300),
            format!("no webhook for {silent:.1} h at a learned {rate:.2} events/h; P(silence) = {probability:.2e}"),
        ));
    }

    if let Some(from) = state.incident_recovery_from {
        let age = ((now - from) as f64 / HOUR).max(0.0);
        findings.push(finding(
            account,
            FindingKind::IncidentRecovery,
            Severity::Medium,
            0.8,
            rate,
            age,
            cheapest_check(account.provider, from - 300),
            "the provider's webhooks stopped for many accounts at once; recovering this one".to_string(),
        ));
    }

    match account.provider {
        Provider::Gmail => findings.extend(gmail_findings(account, rate, now, config)),
        Provider::WhatsApp => findings.extend(whatsapp_findings(account, state, now, config)),
        Provider::LinkedIn => {}
    }
    findings
}

fn gmail_findings(account: &AccountRecord, rate: f64, now: i64, config: &DetectorConfig) -> Vec<Finding> {
    let mut findings = Vec::new();
    let Some(cursor) = account.history_cursor else {
        findings.push(finding(
            account,
            FindingKind::NoCursor,
            Severity::Medium,
            1.0,
            rate,
            0.0,
            Recommendation::FullSync,
            "the mailbox was never synced".to_string(),
        ));
        return findings;
    };

    if let (Some(notified), Some(notified_at)) = (account.notified_history_id, account.notified_epoch) {
        let lag_hours = (now - notified_at) as f64 / HOUR;
        if notified > cursor && lag_hours >= config.cursor_lag_hours {
            findings.push(finding(
                account,
                FindingKind::CursorLag,
                Severity::High,
                0.95,
                rate,
                lag_hours,
                Recommendation::HistorySync,
                format!("push announced historyId {notified} {lag_hours:.1} h ago; synced only to {cursor}"),
            ));
        }
    }
    if let Some(cursor_at) = account.history_cursor_at {
        let age_hours = (now - cursor_at) as f64 / HOUR;
        if age_hours >= config.cursor_expiry_risk_hours {
            // A history sync costs one call and falls back to a full sync on 404 by itself.
            findings.push(finding(
                account,
                FindingKind::CursorExpiryRisk,
                Severity::Medium,
                0.7,
                rate,
                age_hours,
                Recommendation::HistorySync,
                format!("cursor {cursor} is {age_hours:.0} h old; Gmail history can expire after about a week"),
            ));
        }
    }

    let renew_by_ms = now * 1000 + (config.watch_renew_hours * HOUR * 1000.0) as i64;
    match account.watch_expiration_ms {
        Some(expiration) if (expiration as i64) > renew_by_ms => {}
        Some(expiration) => {
            let hours_left = (expiration as i64 - now * 1000) as f64 / (HOUR * 1000.0);
            findings.push(finding(
                account,
                FindingKind::WatchExpiring,
                Severity::High,
                1.0,
                rate,
                0.0,
                Recommendation::RenewWatch,
                format!("users.watch expires in {hours_left:.1} h; pushes stop silently after that"),
            ));
        }
        None => findings.push(finding(
            account,
            FindingKind::WatchExpiring,
            Severity::High,
            0.9,
            rate,
            0.0,
            Recommendation::RenewWatch,
            "no users.watch is recorded for the mailbox".to_string(),
        )),
    }
    findings
}

fn whatsapp_findings(
    account: &AccountRecord,
    state: &DetectorState,
    now: i64,
    config: &DetectorConfig,
) -> Vec<Finding> {
    let mut findings = Vec::new();
    let rate = state.event_rate.per_hour(config.prior);

    // Status webhooks have their own rhythm: a number that normally gets statuses but has
    // not for improbably long may have lost part of its subscription.
    let status_rate = state.status_rate.per_hour(config.prior);
    if let Some(last_status) = account.last_status_epoch {
        let silent = (now - last_status) as f64 / HOUR;
        if status_rate >= config.active_rate_per_hour
            && silence::is_suspect(status_rate, silent, config.silence_alpha, config.min_silence_hours)
        {
            findings.push(finding(
                account,
                FindingKind::NoStatusWebhooks,
                Severity::High,
                1.0 - silence::probability(status_rate, silent),
                rate,
                silent,
                Recommendation::CheckSubscription,
                format!("no status webhook for {silent:.1} h at a learned {status_rate:.2} statuses/h"),
            ));
        }
    }

    let Some(window_start) = state.window_start else { return findings };
    let window_hours = (now - window_start) as f64 / HOUR;
    if window_hours < config.status_window_hours {
        return findings;
    }
    let sent = account.status_sent.saturating_sub(state.window_sent);
    let delivered = account.status_delivered.saturating_sub(state.window_delivered);
    let read = account.status_read.saturating_sub(state.window_read);
    let failed = account.status_failed.saturating_sub(state.window_failed);
    let orphans = account.orphan_statuses.saturating_sub(state.window_orphans);

    // `read` without `delivered` is normal (read implies delivered), so either confirms a send.
    if sent >= config.status_min_count && delivered.max(read) == 0 {
        findings.push(finding(
            account,
            FindingKind::StuckAtSent,
            Severity::Medium,
            0.8,
            rate,
            window_hours,
            Recommendation::CheckSubscription,
            format!("{sent} messages sent in the last {window_hours:.1} h and none delivered or read"),
        ));
    }
    if failed >= config.status_min_count && failed as f64 >= config.failed_spike_ratio * (sent + failed) as f64 {
        findings.push(finding(
            account,
            FindingKind::FailedSpike,
            Severity::Medium,
            0.9,
            rate,
            window_hours,
            Recommendation::Nothing,
            format!("{failed} of {} sends failed in the last {window_hours:.1} h", sent + failed),
        ));
    }
    if orphans >= config.status_min_count {
        findings.push(finding(
            account,
            FindingKind::OrphanStatuses,
            Severity::Low,
            0.6,
            rate,
            window_hours,
            Recommendation::CheckSubscription,
            format!("{orphans} statuses arrived for messages never seen as sent in the last {window_hours:.1} h"),
        ));
    }
    findings
}

/// A provider whose normally-active accounts are silent together.
#[derive(Debug, Clone, PartialEq)]
pub struct Incident {
    pub provider: Provider,
    pub silent_accounts: usize,
    pub active_accounts: usize,
    /// Epoch second the earliest of the silences began: recoveries start from here.
    pub silent_since: i64,
}

/// Finds providers with an incident: at least `incident_min_accounts` normally-active
/// accounts, of which at least `incident_share` are silent at once.
pub fn detect_incidents(
    accounts: &[(&AccountRecord, &DetectorState)],
    now: i64,
    config: &DetectorConfig,
) -> Vec<Incident> {
    let mut per_provider: BTreeMap<Provider, (usize, usize, i64)> = BTreeMap::new();
    for (account, state) in accounts {
        if account.status != "active" {
            continue;
        }
        let rate = state.event_rate.per_hour(config.prior);
        if rate < config.active_rate_per_hour {
            continue;
        }
        let entry = per_provider.entry(account.provider).or_insert((0, 0, now));
        entry.1 += 1;
        let silent = silent_hours(account, now);
        if silence::probability(rate, silent) < config.incident_alpha {
            entry.0 += 1;
            entry.2 = entry.2.min(now - (silent * HOUR) as i64);
        }
    }
    per_provider
        .into_iter()
        .filter(|(_, (silent, active, _))| {
            *active >= config.incident_min_accounts && *silent as f64 >= config.incident_share * *active as f64
        })
        .map(|(provider, (silent_accounts, active_accounts, silent_since))| Incident {
            provider,
            silent_accounts,
            active_accounts,
            silent_since,
        })
        .collect()
}

/// The finding that stands for a whole incident: one provider-level check, on the busiest
/// silent account, instead of one recovery per account.
pub fn incident_finding(
    incident: &Incident,
    representative: &AccountRecord,
    state: &DetectorState,
    now: i64,
    config: &DetectorConfig,
) -> Finding {
    let rate = state.event_rate.per_hour(config.prior);
    let silent = silent_hours(representative, now);
    let since = representative.last_webhook_epoch.unwrap_or(now);
    finding(
        representative,
        FindingKind::ProviderIncident,
        Severity::Critical,
        incident.silent_accounts as f64 / incident.active_accounts as f64,
        rate,
        silent,
        cheapest_check(incident.provider, since - 300),
        format!(
            "{} of {} normally-active {} accounts are silent at once",
            incident.silent_accounts, incident.active_accounts, incident.provider
        ),
    )
}
