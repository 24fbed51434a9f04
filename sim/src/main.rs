//! `commsync-sim`: a deterministic, seeded simulation of a fleet that compares commsync's
//! webhook-first sync, driven by the real gap analysis, with polling, webhooks alone and an
//! oracle. `simulate` writes the table and the picture that `docs/benchmarks.md` embeds.

mod commsync_strategy;
mod criterion_table;
mod fleet;
mod functions;
mod ingest_cost;
mod outcome;
mod report;
mod strategies;

use clap::Parser;
use commsync::gaps::DetectorConfig;
use report::Row;
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(name = "commsync-sim", about = "Simulate a fleet: commsync against polling, webhooks only and an oracle")]
enum Command {
    /// Run every scenario with every strategy and write the results.
    Simulate {
        /// Number of accounts, a third per provider.
        #[arg(long, default_value_t = 2000)]
        accounts: usize,
        /// Simulated hours.
        #[arg(long, default_value_t = 24)]
        hours: i64,
        /// Seed of the traffic and the drops.
        #[arg(long, default_value_t = 7)]
        seed: u64,
        /// Markdown file to write the table to.
        #[arg(long, default_value = "docs/bench/simulation.md")]
        table: PathBuf,
        /// PNG file to draw calls against missed events to.
        #[arg(long, default_value = "docs/calls-vs-missed.png")]
        picture: PathBuf,
        /// TrueType font for the picture's text.
        #[arg(long, default_value = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")]
        font: PathBuf,
    },
    /// Measure each Lambda binary: size, init time and peak memory on the demo load.
    Functions {
        /// Directory of the release binaries: `target/release`, or `target/lambda` after
        /// `sam build` or `cargo lambda build` (which lay them out as `{binary}/bootstrap`).
        #[arg(long, default_value = "target/release")]
        bin_dir: PathBuf,
        /// Markdown file to write the table to.
        #[arg(long, default_value = "docs/bench/functions.md")]
        table: PathBuf,
    },
    /// Summarize criterion's saved results as a table.
    CriterionTable {
        #[arg(long, default_value = "target/criterion")]
        dir: PathBuf,
        #[arg(long, default_value = "docs/bench/criterion.md")]
        table: PathBuf,
    },
    /// Count the AWS calls each kind of webhook costs, against a moto server it starts.
    IngestCost {
        /// Markdown file to write the table to.
        #[arg(long, default_value = "docs/bench/ingest-cost.md")]
        table: PathBuf,
    },
}

fn main() -> anyhow::Result<()> {
    match Command::parse() {
        Command::Simulate { accounts, hours, seed, table, picture, font } => {
            simulate(accounts, hours, seed, &table, &picture, &font)
        }
        Command::Functions { bin_dir, table } => {
            let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
            runtime.block_on(functions::run(&commsync::local::project_root(), &bin_dir, &table))
        }
        Command::CriterionTable { dir, table } => criterion_table::run(&dir, &table),
        Command::IngestCost { table } => {
            let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
            runtime.block_on(ingest_cost::run(&commsync::local::project_root(), &table))
        }
    }
}

fn simulate(
    accounts: usize,
    hours: i64,
    seed: u64,
    table: &std::path::Path,
    picture: &std::path::Path,
    font: &std::path::Path,
) -> anyhow::Result<()> {
    let end = hours * 3600;
    let config = DetectorConfig::default();
    let base = fleet::generate(accounts, hours, seed);
    let events: usize = base.iter().map(|account| account.events.len()).sum();

    let mut rows = Vec::new();
    for scenario in fleet::Scenario::ALL {
        let mut fleet = base.clone();
        let breaks = fleet::apply(scenario, &mut fleet, seed);
        let lost: usize = fleet.iter().map(|account| account.dropped.iter().filter(|lost| **lost).count()).sum();
        eprintln!("{}: {lost} webhooks dropped", scenario.name());
        for (strategy, outcome) in [
            ("poll every 1 min", strategies::poll(&fleet, &breaks, end, 60)),
            ("poll every 5 min", strategies::poll(&fleet, &breaks, end, 300)),
            ("webhooks only", strategies::webhooks_only(&fleet, &breaks)),
            ("commsync", commsync_strategy::commsync(&fleet, &breaks, end, &config)),
            ("oracle", strategies::oracle(&fleet, &breaks, end)),
        ] {
            rows.push(Row { scenario: scenario.name(), strategy, outcome });
        }
    }

    let account_hours = (accounts as i64 * hours) as f64;
    let oracle_calls = |scenario: &str| {
        rows.iter()
            .find(|row| row.scenario == scenario && row.strategy == "oracle")
            .map_or(0, |row| row.outcome.api_calls)
    };
    let mut text = format!(
        "Fleet: {accounts} accounts (a third per provider) with rates log-uniform from 0.01 to 100 events/h, Poisson arrivals, \
         {hours} simulated hours, {events} events, seed {seed}. The detector runs every 15 minutes with its default \
         configuration and starts with a week of learned rates.\n\n"
    );
    text.push_str(&report::markdown(&rows, account_hours, &oracle_calls));
    if let Some(parent) = table.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(table, text)?;
    eprintln!("wrote {}", table.display());

    let font_bytes = std::fs::read(font)
        .map_err(|error| anyhow::anyhow!("cannot read the font {}: {error}; pass --font", font.display()))?;
    report::picture(&rows, account_hours, picture, &font_bytes)?;
    eprintln!("wrote {}", picture.display());
    Ok(())
}
