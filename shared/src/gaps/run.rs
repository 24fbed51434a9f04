//! One detector run: scan the accounts, analyse them, plan within the budget, and (unless
//! it is a dry run) claim leases, send jobs, publish findings, write the ledger and the
//! detector state. Overlapping runs are safe: a job needs the account's recovery lease,
//! and state writes are conditional on the state the run read.

use super::analyze::{analyze_account, detect_incidents, incident_finding, learn, roll_status_window, Incident};
use super::model::{DetectorConfig, DetectorState, Finding, FindingKind};
use super::plan::{plan, Plan};
use crate::aws::AwsClients;
use crate::bus::{BusEvent, EventBus};
use crate::config::{ConfigError, Env};
use crate::event::rfc3339;
use crate::ids::Provider;
use crate::queue::Queue;
use crate::store::{keys, n, s, AccountRecord, LedgerEntry, Store, StoreError};
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::json;
use std::collections::{BTreeMap, HashMap, HashSet};
use thiserror::Error;

/// Partition of the detector's own items in `AccountsTable` (open incidents).
const DETECTOR_PK: &str = "DETECTOR";

/// Failures of a run that stop it; the next scheduled run starts over.
#[derive(Debug, Error)]
pub enum RunError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Queue(#[from] crate::queue::QueueError),
}

/// Dependencies of the detector, built once per container.
#[derive(Debug)]
pub struct DetectorDeps {
    pub store: Store,
    pub sync_queue: Queue,
    pub bus: EventBus,
    pub config: DetectorConfig,
}

impl DetectorDeps {
    pub fn new(clients: &AwsClients, env: &impl Env) -> Result<Self, ConfigError> {
        let resources = crate::config::ResourceConfig::from_env(env)?;
        Ok(Self {
            store: Store::new(clients.dynamodb.clone(), resources.tables, resources.event_retention),
            sync_queue: Queue::new(clients.sqs.clone(), env.required("SYNC_QUEUE_URL")?),
            bus: EventBus::new(clients.eventbridge.clone(), env.required("EVENT_BUS_NAME")?),
            config: DetectorConfig::from_env(env)?,
        })
    }
}

/// Result of the pure analysis of a fleet.
#[derive(Debug, Clone)]
pub struct FleetAnalysis {
    /// The state after this run for each account, and whether it must be written.
    pub states: Vec<(DetectorState, bool)>,
    pub findings: Vec<Finding>,
    pub incidents: Vec<Incident>,
    /// Providers whose open incident ended in this run.
    pub resolved: Vec<Provider>,
}

/// Analyses every account; `open_incidents` maps a provider to the epoch second its open
/// incident started.
pub fn analyze_fleet(
    accounts: &[AccountRecord],
    open_incidents: &BTreeMap<Provider, i64>,
    now: i64,
    config: &DetectorConfig,
) -> FleetAnalysis {
    let mut states: Vec<(DetectorState, bool)> = accounts.iter().map(|account| learn(account, now, config)).collect();

    let pairs: Vec<(&AccountRecord, &DetectorState)> =
        accounts.iter().zip(states.iter().map(|(state, _)| state)).collect();
    let incidents = detect_incidents(&pairs, now, config);
    let incident_providers: HashSet<Provider> = incidents.iter().map(|incident| incident.provider).collect();

    let mut findings = Vec::new();
    for (account, (state, _)) in accounts.iter().zip(&states) {
        let account_findings = analyze_account(account, state, now, config);
        // During an incident, one provider-level finding replaces the per-account silences.
        findings.extend(account_findings.into_iter().filter(|finding| {
            !(finding.kind == FindingKind::Silence && incident_providers.contains(&finding.provider))
        }));
    }
    for incident in &incidents {
        let representative = accounts
            .iter()
            .zip(states.iter())
            .filter(|(account, _)| account.provider == incident.provider && account.status == "active")
            .max_by(|(_, (a, _)), (_, (b, _))| {
                a.event_rate.per_hour(config.prior).total_cmp(&b.event_rate.per_hour(config.prior))
            });
        if let Some((account, (state, _))) = representative {
            findings.push(incident_finding(incident, account, state, now, config));
        }
    }

    // An incident that ended leaves every account that likely had traffic during it to
    // recover (at least a 1% chance of an event at its own rate), paced by the planner.
    let resolved: Vec<Provider> =
        open_incidents.keys().copied().filter(|provider| !incident_providers.contains(provider)).collect();
    for provider in &resolved {
        let started = open_incidents[provider];
        let hours = ((now - started) as f64 / 3600.0).max(config.run_interval.as_secs_f64() / 3600.0);
        for (account, (state, changed)) in accounts.iter().zip(states.iter_mut()) {
            let expected_events = state.event_rate.per_hour(config.prior) * hours;
            if account.provider == *provider && account.status == "active" && expected_events >= 0.01 {
                state.incident_recovery_from = Some(started);
                *changed = true;
            }
        }
    }

    // Finding kinds per account, indexed once so the fleet is analysed in linear time.
    let mut kinds_by_account: HashMap<(&str, &str), Vec<String>> = HashMap::new();
    for finding in &findings {
        kinds_by_account
            .entry((finding.tenant_id.as_str(), finding.account_id.as_str()))
            .or_default()
            .push(finding.kind.as_str().to_string());
    }
    for (account, (state, changed)) in accounts.iter().zip(states.iter_mut()) {
        roll_status_window(account, state, now, config);
        let mut kinds =
            kinds_by_account.remove(&(account.tenant_id.as_str(), account.account_id.as_str())).unwrap_or_default();
        kinds.sort();
        kinds.dedup();
        if kinds != state.reported {
            state.reported = kinds;
            *changed = true;
        }
    }
    FleetAnalysis { states, findings, incidents, resolved }
}

/// Outcome of one detection run.
#[derive(Debug, Clone, Serialize)]
pub struct RunReport {
    pub at: String,
    pub dry_run: bool,
    pub accounts: usize,
    pub findings: Vec<Finding>,
    pub plan: Plan,
    pub incidents: Vec<String>,
    pub jobs_sent: usize,
    pub published: usize,
}

/// The read-and-analyse half of a run.
pub struct Analysed {
    pub accounts: Vec<AccountRecord>,
    pub open_incidents: BTreeMap<Provider, i64>,
    pub analysis: FleetAnalysis,
    pub report: RunReport,
}

/// Reads the accounts and open incidents, analyses them and plans the jobs, without
/// writing or sending anything: what `commsync gaps` shows.
pub async fn analyse(store: &Store, config: &DetectorConfig, now: DateTime<Utc>) -> Result<Analysed, RunError> {
    let epoch = now.timestamp();
    let accounts = store.scan_accounts(config.scan_segments).await?;
    let open_incidents = store.open_incidents().await?;

    let analysis = analyze_fleet(&accounts, &open_incidents, epoch, config);
    let run_key = (epoch / config.run_interval.as_secs().max(1) as i64).to_string();
    let planned = plan(&analysis.findings, &accounts, epoch, &run_key, config);
    let incidents: Vec<String> = analysis.incidents.iter().map(|incident| incident.provider.to_string()).collect();
    let report = RunReport {
        at: rfc3339(now),
        dry_run: true,
        accounts: accounts.len(),
        findings: analysis.findings.clone(),
        plan: planned,
        incidents,
        jobs_sent: 0,
        published: 0,
    };
    Ok(Analysed { accounts, open_incidents, analysis, report })
}

/// Runs the detector once. A dry run reads and analyses but writes and sends nothing.
pub async fn run(deps: &DetectorDeps, now: DateTime<Utc>, dry_run: bool) -> Result<RunReport, RunError> {
    let config = &deps.config;
    let Analysed { accounts, open_incidents, analysis, mut report } = analyse(&deps.store, config, now).await?;
    if dry_run {
        return Ok(report);
    }
    report.dry_run = false;
    let mut planned = report.plan.clone();

    // Only jobs whose lease this run wins are sent, so overlapping runs send one job per account.
    let until = now + config.recovery_lease;
    let mut claimed = Vec::new();
    for planned_job in planned.jobs.drain(..) {
        let job = &planned_job.job;
        if deps.store.claim_recovery_lease(&job.tenant_id, &job.account_id, job.kind, until).await? {
            claimed.push(planned_job);
        } else {
            report.plan.pending += 1;
        }
    }
    let messages: Vec<_> = claimed.iter().map(|planned_job| planned_job.job.to_message()).collect();
    if let Err(error) = deps.sync_queue.send_all(&messages).await {
        for planned_job in &claimed {
            let _ = deps.store.release_recovery_lease(&planned_job.job.tenant_id, &planned_job.job.account_id).await;
        }
        return Err(error.into());
    }
    report.jobs_sent = claimed.len();

    write_states(deps, &accounts, analysis.states, &claimed).await;
    report.published = publish_new_findings(deps, &accounts, &analysis.findings, &claimed, now).await;
    update_incidents(deps, &analysis.incidents, &analysis.resolved, &open_incidents).await;

    emit_metrics(&report);
    tracing::info!(accounts = report.accounts, findings = report.findings.len(), jobs_sent = report.jobs_sent, deferred = report.plan.deferred.len(), pending = report.plan.pending, published = report.published, incidents = ?report.incidents, "detector run finished");
    Ok(report)
}

/// Logs one metrics line per provider: findings by kind, jobs sent and deferred, estimated API
/// calls planned, incidents.
fn emit_metrics(report: &RunReport) {
    for provider in Provider::ALL {
        let mut metrics = crate::metrics::Metrics::new("gap-detector", provider.as_str());
        let findings = report.findings.iter().filter(|finding| finding.provider == provider);
        metrics
            .count("GapFindings", findings.clone().count() as u64)
            .count("JobsSent", report.plan.jobs.iter().filter(|job| job.job.provider == provider).count() as u64)
            .count("JobsDeferred", report.plan.deferred.len() as u64)
            .count("PlannedApiCalls", report.plan.spent.get(&provider).copied().unwrap_or(0))
            .count(
                "ProviderIncidents",
                u64::from(report.incidents.iter().any(|incident| *incident == provider.as_str())),
            );
        metrics.emit();
        let mut by_kind: BTreeMap<&str, u64> = BTreeMap::new();
        for finding in findings {
            *by_kind.entry(finding.kind.as_str()).or_default() += 1;
        }
        for (kind, count) in by_kind {
            let mut line =
                crate::metrics::Metrics::new("gap-detector", provider.as_str()).dimension("FindingKind", kind);
            line.count("GapFindings", count);
            line.emit();
        }
    }
}

async fn write_states(
    deps: &DetectorDeps,
    accounts: &[AccountRecord],
    states: Vec<(DetectorState, bool)>,
    claimed: &[super::plan::PlannedJob],
) {
    let recovering: HashSet<(&str, &str)> = claimed
        .iter()
        .filter(|planned_job| planned_job.finding == FindingKind::IncidentRecovery)
        .map(|planned_job| (planned_job.job.tenant_id.as_str(), planned_job.job.account_id.as_str()))
        .collect();
    for (account, (mut state, mut changed)) in accounts.iter().zip(states) {
        if recovering.contains(&(account.tenant_id.as_str(), account.account_id.as_str())) {
            state.incident_recovery_from = None;
            changed = true;
        }
        if !changed {
            continue;
        }
        if let Err(error) = deps.store.write_detector_state(account, &state).await {
            tracing::warn!(tenant = %account.tenant_id, account = %account.account_id, %error, "detector state not written; the next run learns again");
        }
    }
}

/// Publishes and records findings that were not reported in the previous run.
async fn publish_new_findings(
    deps: &DetectorDeps,
    accounts: &[AccountRecord],
    findings: &[Finding],
    claimed: &[super::plan::PlannedJob],
    now: DateTime<Utc>,
) -> usize {
    let sent: HashSet<(&str, &str, FindingKind)> = claimed
        .iter()
        .map(|planned_job| {
            (planned_job.job.tenant_id.as_str(), planned_job.job.account_id.as_str(), planned_job.finding)
        })
        .collect();
    let reported: HashMap<(&str, &str), &Vec<String>> = accounts
        .iter()
        .map(|account| ((account.tenant_id.as_str(), account.account_id.as_str()), &account.detector.reported))
        .collect();
    let mut events = Vec::new();
    for finding in findings {
        let previous = reported.get(&(finding.tenant_id.as_str(), finding.account_id.as_str()));
        let already_reported = previous.is_some_and(|kinds| kinds.iter().any(|kind| kind == finding.kind.as_str()));
        let queued = sent.contains(&(finding.tenant_id.as_str(), finding.account_id.as_str(), finding.kind));
        if already_reported && !queued {
            continue;
        }

        let detail_type = match finding.kind {
            FindingKind::ProviderIncident => "ProviderIncidentSuspected",
            FindingKind::ReconnectRequired | FindingKind::ConfigurationError | FindingKind::AccountError => {
                "AccountHealthChanged"
            }
            _ => "GapDetected",
        };
        let outcome = if queued {
            "queued"
        } else if finding.recommendation.job().is_some() {
            "waiting"
        } else {
            finding.recommendation.name()
        };
        events.push(BusEvent {
            detail_type,
            detail: json!({ "finding": finding, "outcome": outcome, "at": rfc3339(now) }),
        });

        let entry = LedgerEntry {
            at: rfc3339(now),
            kind: finding.kind.as_str().to_string(),
            provider: finding.provider,
            reason: finding.evidence.clone(),
            job_id: String::new(),
            recovered_events: 0,
            api_calls: 0,
            outcome: format!("{}:{outcome}", finding.recommendation.name()),
            detail: format!("score {:.1}, confidence {:.2}", finding.score, finding.confidence),
        };
        if let Err(error) = deps.store.record_ledger(&finding.tenant_id, &finding.account_id, &entry).await {
            tracing::warn!(tenant = %finding.tenant_id, account = %finding.account_id, %error, "finding not written to the ledger");
        }
    }
    if let Err(error) = deps.bus.publish(&events).await {
        tracing::error!(%error, events = events.len(), "findings not published to the bus");
        return 0;
    }
    events.len()
}

async fn update_incidents(
    deps: &DetectorDeps,
    incidents: &[Incident],
    resolved: &[Provider],
    open: &BTreeMap<Provider, i64>,
) {
    for incident in incidents.iter().filter(|incident| !open.contains_key(&incident.provider)) {
        if let Err(error) = deps.store.open_incident(incident.provider, incident.silent_since).await {
            tracing::error!(provider = %incident.provider, %error, "incident not recorded");
        }
    }
    for provider in resolved {
        if let Err(error) = deps.store.close_incident(*provider).await {
            tracing::error!(provider = %provider, %error, "incident not closed");
        }
    }
}

impl Store {
    /// Reads every account item with a parallel segmented scan.
    pub async fn scan_accounts(&self, segments: i32) -> Result<Vec<AccountRecord>, StoreError> {
        let table = self.tables.accounts.clone();
        let scans = (0..segments).map(|segment| {
            let table = table.clone();
            async move {
                let mut accounts = Vec::new();
                let mut start_key = None;
                loop {
                    let output = self
                        .dynamodb
                        .scan()
                        .table_name(&table)
                        .segment(segment)
                        .total_segments(segments)
                        .filter_expression("begins_with(sk, :account)")
                        .expression_attribute_values(":account", s("ACCOUNT#"))
                        .set_exclusive_start_key(start_key)
                        .send()
                        .await
                        .map_err(|error| StoreError::dynamo("Scan", &table, &error))?;
                    for item in output.items.unwrap_or_default() {
                        accounts.push(crate::store::accounts::parse_account(&table, &item)?);
                    }
                    start_key = output.last_evaluated_key;
                    if start_key.is_none() {
                        return Ok::<_, StoreError>(accounts);
                    }
                }
            }
        });
        let mut accounts: Vec<AccountRecord> =
            futures::future::try_join_all(scans).await?.into_iter().flatten().collect();
        accounts.sort_by(|a, b| (&a.tenant_id, &a.account_id).cmp(&(&b.tenant_id, &b.account_id)));
        Ok(accounts)
    }

    /// Writes the detector state, unless another run wrote it since this one read it.
    pub async fn write_detector_state(&self, account: &AccountRecord, state: &DetectorState) -> Result<(), StoreError> {
        let table = &self.tables.accounts;
        let mut update = self
            .dynamodb
            .update_item()
            .table_name(table)
            .key("pk", s(keys::account_pk(&account.tenant_id)))
            .key("sk", s(keys::account_sk(&account.account_id)))
            .expression_attribute_values(":event_count", n(state.event_rate.count))
            .expression_attribute_values(":event_hours", n(state.event_rate.exposure_hours))
            .expression_attribute_values(":status_count", n(state.status_rate.count))
            .expression_attribute_values(":status_hours", n(state.status_rate.exposure_hours))
            .expression_attribute_values(":seen_events", n(state.seen_events))
            .expression_attribute_values(":seen_statuses", n(state.seen_statuses))
            .expression_attribute_values(":updated", n(state.updated_at.unwrap_or_default()))
            .expression_attribute_values(":window_start", n(state.window_start.unwrap_or_default()))
            .expression_attribute_values(":window_sent", n(state.window_sent))
            .expression_attribute_values(":window_delivered", n(state.window_delivered))
            .expression_attribute_values(":window_read", n(state.window_read))
            .expression_attribute_values(":window_failed", n(state.window_failed))
            .expression_attribute_values(":window_orphans", n(state.window_orphans))
            .expression_attribute_values(":reported", s(state.reported.join(",")));
        let mut expression = "SET det_event_count = :event_count, det_event_hours = :event_hours, det_status_count = :status_count, \
             det_status_hours = :status_hours, det_seen_events = :seen_events, det_seen_statuses = :seen_statuses, \
             det_updated_at = :updated, det_window_start = :window_start, det_window_sent = :window_sent, \
             det_window_delivered = :window_delivered, det_window_read = :window_read, det_window_failed = :window_failed, \
             det_window_orphans = :window_orphans, det_reported = :reported"
            .to_string();
        match state.incident_recovery_from {
            Some(from) => {
                expression.push_str(", det_incident_from = :incident");
                update = update.expression_attribute_values(":incident", n(from));
            }
            None => expression.push_str(" REMOVE det_incident_from"),
        }
        // The state this run read must still be there: an overlapping run that wrote first wins.
        let condition = match account.detector.updated_at {
            Some(previous) => {
                update = update.expression_attribute_values(":previous", n(previous));
                "attribute_exists(pk) AND det_updated_at = :previous"
            }
            None => "attribute_exists(pk) AND attribute_not_exists(det_updated_at)",
        };
        let result = update.update_expression(expression).condition_expression(condition).send().await;
        match result {
            Ok(_) => Ok(()),
            Err(error) if error.as_service_error().is_some_and(|e| e.is_conditional_check_failed_exception()) => Ok(()),
            Err(error) => Err(StoreError::dynamo("UpdateItem", table, &error)),
        }
    }

    /// Reads the open provider incidents and when each started.
    pub async fn open_incidents(&self) -> Result<BTreeMap<Provider, i64>, StoreError> {
        let table = &self.tables.accounts;
        let output = self
            .dynamodb
            .query()
            .table_name(table)
            .key_condition_expression("pk = :pk AND begins_with(sk, :incident)")
            .expression_attribute_values(":pk", s(DETECTOR_PK))
            .expression_attribute_values(":incident", s("INCIDENT#"))
            .consistent_read(true)
            .send()
            .await
            .map_err(|error| StoreError::dynamo("Query", table, &error))?;
        Ok(output
            .items
            .unwrap_or_default()
            .iter()
            .filter_map(|item| {
                let provider = crate::store::get_s(item, "provider")?.parse().ok()?;
                Some((provider, crate::store::get_n(item, "started_at")?))
            })
            .collect())
    }

    async fn open_incident(&self, provider: Provider, started_at: i64) -> Result<(), StoreError> {
        let table = &self.tables.accounts;
        self.dynamodb
            .put_item()
            .table_name(table)
            .item("pk", s(DETECTOR_PK))
            .item("sk", s(format!("INCIDENT#{provider}")))
            .item("provider", s(provider.as_str()))
            .item("started_at", n(started_at))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await
            .map(|_| ())
            .or_else(|error| {
                if error.as_service_error().is_some_and(|e| e.is_conditional_check_failed_exception()) {
                    Ok(())
                } else {
                    Err(StoreError::dynamo("PutItem", table, &error))
                }
            })
    }

    async fn close_incident(&self, provider: Provider) -> Result<(), StoreError> {
        let table = &self.tables.accounts;
        self.dynamodb
            .delete_item()
            .table_name(table)
            .key("pk", s(DETECTOR_PK))
            .key("sk", s(format!("INCIDENT#{provider}")))
            .send()
            .await
            .map_err(|error| StoreError::dynamo("DeleteItem", table, &error))?;
        Ok(())
    }
}
