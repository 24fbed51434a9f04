//! Turning findings into jobs within the per-run, per-provider API-call budget.

use super::model::{DetectorConfig, Finding, FindingKind};
use crate::ids::{AccountId, Provider, TenantId};
use crate::jobs::SyncJob;
use crate::store::AccountRecord;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};

/// A job the run will send.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PlannedJob {
    pub job: SyncJob,
    pub cost: u64,
    pub score: f64,
    pub finding: FindingKind,
}

/// What a run will do.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Plan {
    pub jobs: Vec<PlannedJob>,
    /// Findings that would need a job but wait for a later run (budget or pacing).
    pub deferred: Vec<(TenantId, AccountId, FindingKind, f64)>,
    /// Accounts skipped because a recovery is already pending for them.
    pub pending: usize,
    /// Provider API calls the planned jobs are estimated to spend.
    pub spent: BTreeMap<Provider, u64>,
}

/// Picks at most one job per account (its best actionable finding), skips accounts with
/// a recovery pending, and spends each provider's budget on the highest scores first.
pub fn plan(
    findings: &[Finding],
    accounts: &[AccountRecord],
    now: i64,
    run_key: &str,
    config: &DetectorConfig,
) -> Plan {
    let leases: HashMap<(&TenantId, &AccountId), Option<i64>> = accounts
        .iter()
        .map(|account| ((&account.tenant_id, &account.account_id), account.recovery_lease_until))
        .collect();

    let mut best: HashMap<(&TenantId, &AccountId), &Finding> = HashMap::new();
    for finding in findings.iter().filter(|finding| finding.recommendation.job().is_some()) {
        let key = (&finding.tenant_id, &finding.account_id);
        if best.get(&key).is_none_or(|kept| finding.score > kept.score) {
            best.insert(key, finding);
        }
    }

    let mut candidates: Vec<&Finding> = best.into_values().collect();
    candidates.sort_by(|a, b| {
        b.score.total_cmp(&a.score).then_with(|| (&a.tenant_id, &a.account_id).cmp(&(&b.tenant_id, &b.account_id)))
    });

    let mut result = Plan::default();
    let mut incident_recoveries: BTreeMap<Provider, usize> = BTreeMap::new();
    for finding in candidates {
        let lease = leases.get(&(&finding.tenant_id, &finding.account_id)).copied().flatten();
        if lease.is_some_and(|until| until > now) {
            result.pending += 1;
            continue;
        }
        let (kind, cost) = finding.recommendation.job().expect("filtered to actionable findings");
        let spent = result.spent.entry(finding.provider).or_default();
        let paced_out = finding.kind == FindingKind::IncidentRecovery
            && *incident_recoveries.get(&finding.provider).unwrap_or(&0) >= config.incident_pace;
        if *spent + cost > config.budget(finding.provider) || paced_out {
            result.deferred.push((finding.tenant_id.clone(), finding.account_id.clone(), finding.kind, finding.score));
            continue;
        }
        *spent += cost;
        if finding.kind == FindingKind::IncidentRecovery {
            *incident_recoveries.entry(finding.provider).or_default() += 1;
        }

        let mut job = SyncJob::new(
            kind,
            finding.tenant_id.clone(),
            finding.account_id.clone(),
            finding.provider,
            finding.kind.as_str(),
            run_key,
        );
        if let super::model::Recommendation::NotificationsPull { window_start_ms } = finding.recommendation {
            job.window_start_ms = Some(window_start_ms);
        }
        result.jobs.push(PlannedJob { job, cost, score: finding.score, finding: finding.kind });
    }
    result
}
