//! Property tests of the detector over a simulated fleet: traffic is generated per account,
//! some deliveries are dropped, the detector runs every 15 minutes on the account state the
//! webhooks would leave, and the planned jobs are carried out by a model of the worker.

use super::analyze::silent_hours;
use super::model::{DetectorConfig, FindingKind};
use super::plan::plan;
use super::run::analyze_fleet;
use super::testkit::{account, SplitMix};
use crate::event::rfc3339_from_unix_seconds;
use crate::ids::Provider;
use crate::jobs::JobKind;
use crate::store::AccountRecord;
use proptest::prelude::*;
use std::collections::BTreeMap;

const RUN: i64 = 15 * 60;
const START: i64 = 1_796_300_000;

/// Failure pattern of deliveries to one account.
#[derive(Debug, Clone, Copy)]
enum Drops {
    None,
    /// Every delivery from this time on is lost (the channel broke).
    Tail {
        from: i64,
    },
    /// Each delivery in `[from, until)` is lost with this probability.
    Random {
        from: i64,
        until: i64,
        probability: f64,
    },
}

struct SimAccount {
    rate_per_hour: f64,
    jitter_only: bool,
    next_event_at: i64,
    drops: Drops,
    /// Times of lost deliveries not yet recovered.
    missing: Vec<i64>,
    recovered: usize,
}

struct Sim {
    config: DetectorConfig,
    records: Vec<AccountRecord>,
    accounts: Vec<SimAccount>,
    open_incidents: BTreeMap<Provider, i64>,
    rng: SplitMix,
    now: i64,
}

impl Sim {
    fn new(seed: u64) -> Self {
        Self {
            config: DetectorConfig::default(),
            records: Vec::new(),
            accounts: Vec::new(),
            open_incidents: BTreeMap::new(),
            rng: SplitMix(seed),
            now: START,
        }
    }

    fn add(&mut self, provider: Provider, rate_per_hour: f64, jitter_only: bool, drops: Drops) -> usize {
        let index = self.records.len();
        self.records.push(account(index, provider, START - 3600));
        let first = START + self.interarrival(rate_per_hour, jitter_only);
        self.accounts.push(SimAccount {
            rate_per_hour,
            jitter_only,
            next_event_at: first,
            drops,
            missing: Vec::new(),
            recovered: 0,
        });
        index
    }

    /// Seconds to the next event: uniform within ±50% of the mean ("normal jitter"), or
    /// exponential (a Poisson process).
    fn interarrival(&mut self, rate_per_hour: f64, jitter_only: bool) -> i64 {
        let mean = 3600.0 / rate_per_hour;
        let gap = if jitter_only { mean * (0.5 + self.rng.unit()) } else { -mean * (1.0 - self.rng.unit()).ln() };
        gap.max(1.0) as i64
    }

    fn dropped(&mut self, index: usize, at: i64) -> bool {
        match self.accounts[index].drops {
            Drops::None => false,
            Drops::Tail { from } => at >= from,
            Drops::Random { from, until, probability } => at >= from && at < until && self.rng.unit() < probability,
        }
    }

    /// Generates traffic up to `to`, delivering or dropping each event.
    fn advance(&mut self, to: i64) {
        for index in 0..self.accounts.len() {
            while self.accounts[index].next_event_at <= to {
                let at = self.accounts[index].next_event_at;
                if self.dropped(index, at) {
                    self.accounts[index].missing.push(at);
                } else {
                    self.deliver(index, at);
                }
                let (rate, jitter_only) = (self.accounts[index].rate_per_hour, self.accounts[index].jitter_only);
                self.accounts[index].next_event_at = at + self.interarrival(rate, jitter_only);
            }
        }
        self.now = to;
    }

    fn deliver(&mut self, index: usize, at: i64) {
        let record = &mut self.records[index];
        record.webhook_events += 1;
        record.webhook_requests += 1;
        record.last_webhook_epoch = Some(at);
        if record.provider == Provider::Gmail {
            // A push sends a history sync at once, and history is cumulative: the sync
            // also brings every earlier change whose push was lost.
            let next = record.notified_history_id.unwrap_or(1000) + 10;
            record.notified_history_id = Some(next);
            record.notified_epoch = Some(at);
            record.history_cursor = Some(next);
            record.history_cursor_at = Some(at);
            let recovered = std::mem::take(&mut self.accounts[index].missing);
            self.accounts[index].recovered += recovered.len();
        }
    }

    /// Runs the detector and carries out its jobs. Returns the jobs per account index.
    fn run_detector(&mut self) -> Vec<(usize, JobKind, FindingKind)> {
        let analysis = analyze_fleet(&self.records, &self.open_incidents, self.now, &self.config);
        let planned = plan(&analysis.findings, &self.records, self.now, &self.now.to_string(), &self.config);
        for (record, (state, _)) in self.records.iter_mut().zip(analysis.states) {
            record.detector = state;
        }
        for incident in &analysis.incidents {
            self.open_incidents.entry(incident.provider).or_insert(incident.silent_since);
        }
        for provider in &analysis.resolved {
            self.open_incidents.remove(provider);
        }

        let mut done = Vec::new();
        for job in &planned.jobs {
            let index = self
                .records
                .iter()
                .position(|record| record.tenant_id == job.job.tenant_id && record.account_id == job.job.account_id)
                .expect("jobs are for known accounts");
            if job.finding == FindingKind::IncidentRecovery {
                self.records[index].detector.incident_recovery_from = None;
            }
            self.recover(index, job.job.kind);
            done.push((index, job.job.kind, job.finding));
        }
        done
    }

    /// The worker's effect: Gmail and LinkedIn recoveries bring back everything missing up
    /// to now; WhatsApp has no API for past messages.
    fn recover(&mut self, index: usize, kind: JobKind) {
        let now = self.now;
        let record = &mut self.records[index];
        if record.provider == Provider::WhatsApp {
            return;
        }
        if matches!(kind, JobKind::Probe | JobKind::HistorySync | JobKind::FullSync) {
            record.history_cursor = record.notified_history_id.or(record.history_cursor);
            record.history_cursor_at = Some(now);
        }
        record.last_recovery_at = rfc3339_from_unix_seconds(now);
        let before = self.accounts[index].missing.len();
        self.accounts[index].missing.retain(|at| *at > now);
        self.accounts[index].recovered += before - self.accounts[index].missing.len();
    }

    /// Advances run by run for `hours`, returning every job with the run time.
    fn simulate(&mut self, hours: i64) -> Vec<(i64, usize, JobKind, FindingKind)> {
        let mut jobs = Vec::new();
        for _ in 0..(hours * 3600 / RUN) {
            let next = self.now + RUN;
            self.advance(next);
            for (index, kind, finding) in self.run_detector() {
                jobs.push((self.now, index, kind, finding));
            }
        }
        jobs
    }
}

fn provider_strategy() -> impl Strategy<Value = Provider> {
    prop_oneof![Just(Provider::WhatsApp), Just(Provider::Gmail), Just(Provider::LinkedIn)]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]

    /// A healthy fleet whose traffic arrives with normal jitter gets no recovery at all.
    #[test]
    fn healthy_jittered_fleet_gets_no_recovery(
        seed in any::<u64>(),
        fleet in proptest::collection::vec((provider_strategy(), -3.0f64..2.0), 30..60),
    ) {
        let mut sim = Sim::new(seed);
        for (provider, log_rate) in &fleet {
            sim.add(*provider, 10f64.powf(*log_rate), true, Drops::None);
        }
        let jobs = sim.simulate(72);
        prop_assert!(jobs.is_empty(), "jobs: {:?}", &jobs[..jobs.len().min(5)]);
    }

    /// Any set of lost pushes on an active Gmail account is recovered within two runs of
    /// the last loss, by the next push's sync or by the detector.
    #[test]
    fn gmail_dropped_pushes_found_within_two_runs(
        seed in any::<u64>(),
        rate in 60.0f64..200.0,
        tail in any::<bool>(),
        probability in 0.05f64..1.0,
        drop_at in 0i64..(24 * 3600),
    ) {
        let mut sim = Sim::new(seed);
        let from = START + 24 * 3600 + drop_at;
        let drops = if tail { Drops::Tail { from } } else { Drops::Random { from, until: from + 3600, probability } };
        let index = sim.add(Provider::Gmail, rate, false, drops);
        for filler in 0..4 {
            sim.add(Provider::LinkedIn, 1.0 + filler as f64, true, Drops::None);
        }
        sim.simulate(24 + drop_at / 3600 + 4);

        // Everything lost more than two runs before the end must be back by now.
        let overdue: Vec<i64> = sim.accounts[index].missing.iter().copied().filter(|at| *at + 2 * RUN <= sim.now).collect();
        prop_assert!(overdue.is_empty(), "{} lost pushes still missing, oldest {:?} s before the end", overdue.len(), overdue.first().map(|at| sim.now - at));
    }

    /// A busy LinkedIn page whose webhooks break is recovered within two runs of the break.
    #[test]
    fn linkedin_broken_webhooks_found_within_two_runs(
        seed in any::<u64>(),
        rate in 60.0f64..200.0,
        drop_at in 0i64..(24 * 3600),
    ) {
        let mut sim = Sim::new(seed);
        let from = START + 24 * 3600 + drop_at;
        let index = sim.add(Provider::LinkedIn, rate, false, Drops::Tail { from });
        for filler in 0..4 {
            sim.add(Provider::Gmail, 1.0 + filler as f64, true, Drops::None);
        }
        let jobs = sim.simulate(24 + drop_at / 3600 + 3);

        let first_job = jobs.iter().find(|(at, job_index, _, _)| *job_index == index && *at >= from).map(|(at, ..)| *at);
        prop_assert!(first_job.is_some(), "no recovery after the webhooks broke");
        prop_assert!(first_job.unwrap() <= from + 2 * RUN + RUN, "first recovery {} s after the break", first_job.unwrap() - from);
        let overdue = sim.accounts[index].missing.iter().filter(|at| **at + 2 * RUN <= sim.now).count();
        prop_assert_eq!(overdue, 0);
    }

    /// A provider-wide outage of an hour gives one incident and one check per run, not one
    /// recovery per account; after it, the accounts are recovered, paced.
    #[test]
    fn provider_outage_gives_one_incident(
        seed in any::<u64>(),
        accounts in 12usize..30,
    ) {
        let mut sim = Sim::new(seed);
        let outage_from = START + 24 * 3600;
        let outage_until = outage_from + 3600;
        let mut outage_accounts = Vec::new();
        for index in 0..accounts {
            let rate = 30.0 + (index % 7) as f64 * 10.0;
            let drops = Drops::Random { from: outage_from, until: outage_until, probability: 1.0 };
            outage_accounts.push(sim.add(Provider::LinkedIn, rate, true, drops));
        }
        for filler in 0..5 {
            sim.add(Provider::Gmail, 20.0 + filler as f64, true, Drops::None);
        }
        sim.simulate(24);

        let mut incident_runs = 0;
        for _ in 0..4 {
            let next = sim.now + RUN;
            sim.advance(next);
            let analysis = analyze_fleet(&sim.records, &sim.open_incidents, sim.now, &sim.config);
            let incidents = analysis.findings.iter().filter(|finding| finding.kind == FindingKind::ProviderIncident).count();
            let silences = analysis.findings.iter().filter(|finding| finding.kind == FindingKind::Silence && finding.provider == Provider::LinkedIn).count();
            prop_assert!(incidents <= 1);
            if incidents == 1 {
                incident_runs += 1;
                prop_assert_eq!(silences, 0, "per-account silences during an incident");
            }
            let jobs = sim.run_detector();
            let linkedin_jobs = jobs.iter().filter(|(index, ..)| outage_accounts.contains(index)).count();
            prop_assert!(linkedin_jobs <= 1, "{} LinkedIn jobs in one run during the outage", linkedin_jobs);
        }
        prop_assert!(incident_runs >= 2, "the outage was seen as an incident in {} runs", incident_runs);

        // Traffic is back: the incident closes and the accounts are recovered within the pace.
        let jobs = sim.simulate(3);
        let recovered_accounts: std::collections::HashSet<usize> = jobs.iter().filter(|(.., finding)| *finding == FindingKind::IncidentRecovery).map(|(_, index, ..)| *index).collect();
        let per_run_max = jobs.iter().fold(BTreeMap::<i64, usize>::new(), |mut runs, (at, ..)| { *runs.entry(*at).or_default() += 1; runs }).into_values().max().unwrap_or(0);
        prop_assert!(per_run_max <= sim.config.incident_pace + 1);
        prop_assert!(recovered_accounts.len() + 1 >= outage_accounts.len(), "{} of {} accounts recovered", recovered_accounts.len(), outage_accounts.len());
        let missing: usize = outage_accounts.iter().map(|index| sim.accounts[*index].missing.len()).sum();
        prop_assert_eq!(missing, 0);
    }
}

#[test]
fn silent_hours_counts_from_last_recovery() {
    let mut record = account(0, Provider::LinkedIn, START);
    record.last_webhook_epoch = Some(START);
    record.last_recovery_at = rfc3339_from_unix_seconds(START + 3600);
    assert!((silent_hours(&record, START + 7200) - 1.0).abs() < 1e-9);
}
