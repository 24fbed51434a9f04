//! Detector inputs and outputs: its configuration, the state it keeps on each
//! account item between runs, findings and recommendations.

use super::rate::{Prior, RateEstimate};
use crate::config::{ConfigError, Env};
use crate::ids::{AccountId, Provider, TenantId};
use crate::jobs::JobKind;
use crate::store::{get_n, Item};
use serde::Serialize;
use std::time::Duration;

/// Thresholds and budgets of one detector run. Every field has an environment variable.
#[derive(Debug, Clone)]
pub struct DetectorConfig {
    /// Time between scheduled runs (`DETECTOR_INTERVAL_MINUTES`, default 15).
    pub run_interval: Duration,
    /// A silence is suspect when its probability under the account's own rate is below this
    /// (`DETECTOR_SILENCE_ALPHA`, default 0.0001).
    pub silence_alpha: f64,
    /// Silences shorter than this are never suspect (`DETECTOR_MIN_SILENCE_MINUTES`, default 15,
    /// one run: a busy account's broken webhooks are then found by the second run).
    pub min_silence_hours: f64,
    /// Half-life of the learned rates (`DETECTOR_RATE_HALF_LIFE_HOURS`, default 168).
    pub rate_half_life_hours: f64,
    /// Rate assumed for accounts with no history: 1 event a day, weighing as much as 6 hours
    /// of observation, so a new account's silence is suspect only after about 9 days.
    pub prior: Prior,
    /// Accounts at or above this rate are "normally active" for incident detection
    /// (`DETECTOR_ACTIVE_RATE_PER_HOUR`, default 6).
    pub active_rate_per_hour: f64,
    /// Gmail: a notified historyId ahead of the cursor this long is a gap (`DETECTOR_CURSOR_LAG_MINUTES`, 30).
    pub cursor_lag_hours: f64,
    /// Gmail: a cursor this old may have expired (`DETECTOR_CURSOR_EXPIRY_HOURS`, 144).
    pub cursor_expiry_risk_hours: f64,
    /// Gmail: renew a watch expiring within this many hours (`DETECTOR_WATCH_RENEW_HOURS`, 24).
    pub watch_renew_hours: f64,
    /// WhatsApp status counters are compared over windows this long (`DETECTOR_STATUS_WINDOW_HOURS`, 2).
    pub status_window_hours: f64,
    /// Minimum statuses in a window for a status finding (default 5).
    pub status_min_count: u64,
    /// Share of `failed` among sends that makes a spike (default 0.2).
    pub failed_spike_ratio: f64,
    /// Consecutive recovery failures that raise a finding (default 3).
    pub failure_streak: u64,
    /// A normally-active account silent with probability below this counts as silent in
    /// incident detection (`DETECTOR_INCIDENT_ALPHA`, default 0.05).
    pub incident_alpha: f64,
    /// An incident needs at least this many normally-active accounts (`DETECTOR_INCIDENT_MIN_ACCOUNTS`, 5).
    pub incident_min_accounts: usize,
    /// ... and this share of them silent at once (`DETECTOR_INCIDENT_SHARE`, 0.5).
    pub incident_share: f64,
    /// Recoveries per provider per run after an incident (`DETECTOR_INCIDENT_PACE`, 100).
    pub incident_pace: usize,
    /// Provider API calls each run may spend, per provider (`DETECTOR_BUDGET_WHATSAPP`, `_GMAIL`, `_LINKEDIN`; 200 each).
    pub budgets: [(Provider, u64); 3],
    /// Parallel segments of the accounts scan (`DETECTOR_SCAN_SEGMENTS`, 4).
    pub scan_segments: i32,
    /// How long a sent job blocks another for the account (`RECOVERY_LEASE_SECONDS`, 900).
    pub recovery_lease: Duration,
}

impl Default for DetectorConfig {
    fn default() -> Self {
        Self {
            run_interval: Duration::from_secs(15 * 60),
            silence_alpha: 1e-4,
            min_silence_hours: 0.25,
            rate_half_life_hours: 168.0,
            prior: Prior { events: 0.25, hours: 6.0 },
            active_rate_per_hour: 6.0,
            cursor_lag_hours: 0.5,
            cursor_expiry_risk_hours: 144.0,
            watch_renew_hours: 24.0,
            status_window_hours: 2.0,
            status_min_count: 5,
            failed_spike_ratio: 0.2,
            failure_streak: 3,
            incident_alpha: 0.05,
            incident_min_accounts: 5,
            incident_share: 0.5,
            incident_pace: 100,
            budgets: [(Provider::WhatsApp, 200), (Provider::Gmail, 200), (Provider::LinkedIn, 200)],
            scan_segments: 4,
            recovery_lease: Duration::from_secs(900),
        }
    }
}

impl DetectorConfig {
    pub fn from_env(env: &impl Env) -> Result<Self, ConfigError> {
        let defaults = Self::default();
        let float = |name: &'static str, default: f64| -> Result<f64, ConfigError> {
            match env.get(name).filter(|value| !value.is_empty()) {
                None => Ok(default),
                Some(value) => {
                    value.parse::<f64>().ok().filter(|number| number.is_finite() && *number >= 0.0).ok_or(
                        ConfigError::Invalid { name, problem: format!("{value:?} is not a non-negative number") },
                    )
                }
            }
        };
        Ok(Self {
            run_interval: Duration::from_secs(env.number("DETECTOR_INTERVAL_MINUTES", 15)? * 60),
            silence_alpha: float("DETECTOR_SILENCE_ALPHA", defaults.silence_alpha)?,
            min_silence_hours: float("DETECTOR_MIN_SILENCE_MINUTES", 15.0)? / 60.0,
            rate_half_life_hours: float("DETECTOR_RATE_HALF_LIFE_HOURS", defaults.rate_half_life_hours)?.max(1.0),
            prior: defaults.prior,
            active_rate_per_hour: float("DETECTOR_ACTIVE_RATE_PER_HOUR", defaults.active_rate_per_hour)?,
            cursor_lag_hours: float("DETECTOR_CURSOR_LAG_MINUTES", 30.0)? / 60.0,
            cursor_expiry_risk_hours: float("DETECTOR_CURSOR_EXPIRY_HOURS", defaults.cursor_expiry_risk_hours)?,
            watch_renew_hours: float("DETECTOR_WATCH_RENEW_HOURS", defaults.watch_renew_hours)?,
            status_window_hours: float("DETECTOR_STATUS_WINDOW_HOURS", defaults.status_window_hours)?,
            incident_alpha: float("DETECTOR_INCIDENT_ALPHA", defaults.incident_alpha)?,
            incident_min_accounts: env.number("DETECTOR_INCIDENT_MIN_ACCOUNTS", 5)? as usize,
            incident_share: float("DETECTOR_INCIDENT_SHARE", defaults.incident_share)?,
            incident_pace: env.number("DETECTOR_INCIDENT_PACE", 100)? as usize,
            budgets: [
                (Provider::WhatsApp, env.number("DETECTOR_BUDGET_WHATSAPP", 200)?),
                (Provider::Gmail, env.number("DETECTOR_BUDGET_GMAIL", 200)?),
                (Provider::LinkedIn, env.number("DETECTOR_BUDGET_LINKEDIN", 200)?),
            ],
            scan_segments: env.number("DETECTOR_SCAN_SEGMENTS", 4)?.clamp(1, 64) as i32,
            recovery_lease: Duration::from_secs(env.number("RECOVERY_LEASE_SECONDS", 900)?),
            ..defaults
        })
    }

    pub fn budget(&self, provider: Provider) -> u64 {
        self.budgets.iter().find(|(p, _)| *p == provider).map_or(0, |(_, budget)| *budget)
    }
}

/// Detector state kept on an account item between runs (`det_*` attributes).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DetectorState {
    /// Learned rate of webhook events (messages, statuses, notifications, pushes).
    pub event_rate: RateEstimate,
    /// Learned rate of WhatsApp status webhooks alone.
    pub status_rate: RateEstimate,
    /// `webhook_events` and status totals when the rates were last updated.
    pub seen_events: u64,
    pub seen_statuses: u64,
    /// When the rates were last updated, epoch seconds.
    pub updated_at: Option<i64>,
    /// Start of the current status window and the counters at its start.
    pub window_start: Option<i64>,
    pub window_sent: u64,
    pub window_delivered: u64,
    pub window_read: u64,
    pub window_failed: u64,
    pub window_orphans: u64,
    /// Set when a provider incident ended: recover from this epoch second.
    pub incident_recovery_from: Option<i64>,
    /// Finding kinds reported in the last run, so a lasting finding is published once.
    pub reported: Vec<String>,
}

impl DetectorState {
    pub fn from_item(item: &Item) -> Self {
        let float = |name: &str| get_n::<f64>(item, name).unwrap_or(0.0);
        Self {
            event_rate: RateEstimate { count: float("det_event_count"), exposure_hours: float("det_event_hours") },
            status_rate: RateEstimate { count: float("det_status_count"), exposure_hours: float("det_status_hours") },
            seen_events: get_n(item, "det_seen_events").unwrap_or(0),
            seen_statuses: get_n(item, "det_seen_statuses").unwrap_or(0),
            updated_at: get_n(item, "det_updated_at"),
            window_start: get_n(item, "det_window_start"),
            window_sent: get_n(item, "det_window_sent").unwrap_or(0),
            window_delivered: get_n(item, "det_window_delivered").unwrap_or(0),
            window_read: get_n(item, "det_window_read").unwrap_or(0),
            window_failed: get_n(item, "det_window_failed").unwrap_or(0),
            window_orphans: get_n(item, "det_window_orphans").unwrap_or(0),
            incident_recovery_from: get_n(item, "det_incident_from"),
            reported: crate::store::get_s(item, "det_reported")
                .map(|kinds| kinds.split(',').filter(|kind| !kind.is_empty()).map(str::to_string).collect())
                .unwrap_or_default(),
        }
    }
}

/// Severity of a finding, as a weight in the priority score.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Info,
    Low,
    Medium,
    High,
    Critical,
}

impl Severity {
    pub fn weight(self) -> f64 {
        match self {
            Severity::Info => 0.2,
            Severity::Low => 0.4,
            Severity::Medium => 0.6,
            Severity::High => 0.8,
            Severity::Critical => 1.0,
        }
    }
}

/// The kinds of gap the detector finds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FindingKind {
    CursorLag,
    CursorExpiryRisk,
    NoCursor,
    SequenceHole,
    Silence,
    ProviderIncident,
    IncidentRecovery,
    OrphanStatuses,
    StuckAtSent,
    FailedSpike,
    NoStatusWebhooks,
    AccountError,
    FailureStreak,
    ReconnectRequired,
    ConfigurationError,
    WatchExpiring,
}

impl FindingKind {
    pub fn as_str(self) -> &'static str {
        match self {
            FindingKind::CursorLag => "cursor_lag",
            FindingKind::CursorExpiryRisk => "cursor_expiry_risk",
            FindingKind::NoCursor => "no_cursor",
            FindingKind::SequenceHole => "sequence_hole",
            FindingKind::Silence => "silence",
            FindingKind::ProviderIncident => "provider_incident",
            FindingKind::IncidentRecovery => "incident_recovery",
            FindingKind::OrphanStatuses => "orphan_statuses",
            FindingKind::StuckAtSent => "stuck_at_sent",
            FindingKind::FailedSpike => "failed_spike",
            FindingKind::NoStatusWebhooks => "no_status_webhooks",
            FindingKind::AccountError => "account_error",
            FindingKind::FailureStreak => "failure_streak",
            FindingKind::ReconnectRequired => "reconnect_required",
            FindingKind::ConfigurationError => "configuration_error",
            FindingKind::WatchExpiring => "watch_expiring",
        }
    }
}

/// The cheapest recovery for a finding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "action")]
pub enum Recommendation {
    HistorySync,
    FullSync,
    Probe,
    RenewWatch,
    CheckSubscription,
    /// Pull LinkedIn notifications from this epoch millisecond to now.
    NotificationsPull {
        window_start_ms: i64,
    },
    /// Tell the application the user must reconnect; never retried.
    ReconnectRequired,
    Nothing,
}

impl Recommendation {
    /// Job paired with an estimate of the provider API calls it spends.
    pub fn job(self) -> Option<(JobKind, u64)> {
        match self {
            Recommendation::HistorySync => Some((JobKind::HistorySync, 2)),
            Recommendation::FullSync => Some((JobKind::FullSync, 25)),
            Recommendation::Probe => Some((JobKind::Probe, 1)),
            Recommendation::RenewWatch => Some((JobKind::RenewWatch, 1)),
            Recommendation::CheckSubscription => Some((JobKind::CheckSubscription, 3)),
            Recommendation::NotificationsPull { .. } => Some((JobKind::NotificationsPull, 1)),
            Recommendation::ReconnectRequired | Recommendation::Nothing => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Recommendation::HistorySync => "history_sync",
            Recommendation::FullSync => "full_sync",
            Recommendation::Probe => "probe",
            Recommendation::RenewWatch => "renew_watch",
            Recommendation::CheckSubscription => "check_subscription",
            Recommendation::NotificationsPull { .. } => "notifications_pull",
            Recommendation::ReconnectRequired => "reconnect_required",
            Recommendation::Nothing => "nothing",
        }
    }
}

/// One thing the detector found on one account.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Finding {
    pub tenant_id: TenantId,
    pub account_id: AccountId,
    pub provider: Provider,
    pub kind: FindingKind,
    /// Human-readable facts the finding rests on.
    pub evidence: String,
    /// Probability, from 0 to 1, that the finding is a real gap.
    pub confidence: f64,
    pub severity: Severity,
    /// The account's learned event rate, events per hour.
    pub rate_per_hour: f64,
    /// How long the gap has lasted, in hours.
    pub age_hours: f64,
    /// Priority score; see `score::priority`.
    pub score: f64,
    pub recommendation: Recommendation,
}
