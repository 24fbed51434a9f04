//! Gap analysis over 100,000 account states: the detector's per-run CPU cost.
//!
//! Run with `cargo bench -p commsync --bench gaps`; criterion prints the time per run and
//! the throughput in accounts per second.

use commsync::gaps::plan::plan;
use commsync::gaps::rate::RateEstimate;
use commsync::gaps::run::analyze_fleet;
use commsync::gaps::testkit::{account, SplitMix};
use commsync::gaps::DetectorConfig;
use commsync::ids::Provider;
use commsync::store::AccountRecord;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use std::collections::BTreeMap;

const NOW: i64 = 1_796_300_000;

/// A fleet with learned rates from near-silent to very busy, some accounts silent.
fn fleet(size: usize) -> Vec<AccountRecord> {
    let mut rng = SplitMix(7);
    (0..size)
        .map(|index| {
            let provider = [Provider::WhatsApp, Provider::Gmail, Provider::LinkedIn][index % 3];
            let mut record = account(index, provider, NOW - 30 * 86_400);
            let rate = 10f64.powf(rng.unit() * 4.0 - 2.0);
            record.detector.event_rate = RateEstimate { count: rate * 168.0, exposure_hours: 168.0 };
            record.detector.updated_at = Some(NOW - 600);
            record.webhook_events = (rate * 720.0) as u64;
            record.detector.seen_events = record.webhook_events;
            record.last_webhook_epoch = Some(NOW - (rng.unit() * 7200.0) as i64);
            record
        })
        .collect()
}

fn analysis(criterion: &mut Criterion) {
    let config = DetectorConfig::default();
    let mut group = criterion.benchmark_group("gap_analysis");
    group.sample_size(10);
    for size in [10_000usize, 100_000] {
        let accounts = fleet(size);
        group.throughput(Throughput::Elements(size as u64));
        group.bench_with_input(BenchmarkId::new("analyze_and_plan", size), &accounts, |bench, accounts| {
            bench.iter(|| {
                let analysis = analyze_fleet(accounts, &BTreeMap::new(), NOW, &config);
                plan(&analysis.findings, accounts, NOW, "bench", &config)
            })
        });
    }
    group.finish();
}

criterion_group!(benches, analysis);
criterion_main!(benches);
