//! The simulation's table (Markdown) and its calls-versus-missed picture (PNG).

use crate::outcome::Outcome;
use plotters::prelude::*;
use std::fmt::Write;
use std::path::Path;

/// One row: a strategy in a scenario.
pub struct Row {
    pub scenario: &'static str,
    pub strategy: &'static str,
    pub outcome: Outcome,
}

/// Formats the rows as a Markdown table; `account_hours` normalizes the rates.
pub fn markdown(rows: &[Row], account_hours: f64, oracle_calls: &dyn Fn(&str) -> u64) -> String {
    let mut text = String::new();
    writeln!(text, "| scenario | strategy | API calls / account-hour | syncs / account-hour | events missed | detection p50 (min) | detection p95 (min) | calls vs oracle |").ok();
    writeln!(text, "|---|---|---:|---:|---:|---:|---:|---:|").ok();
    for row in rows {
        let latency =
            |q: f64| row.outcome.latency_minutes(q).map_or("-".to_string(), |minutes| format!("{minutes:.1}"));
        let oracle = oracle_calls(row.scenario);
        let ratio = if oracle == 0 {
            "-".to_string()
        } else {
            format!("{:.2}×", row.outcome.api_calls as f64 / oracle as f64)
        };
        writeln!(
            text,
            "| {} | {} | {:.3} | {:.3} | {} | {} | {} | {} |",
            row.scenario,
            row.strategy,
            row.outcome.api_calls as f64 / account_hours,
            row.outcome.syncs as f64 / account_hours,
            row.outcome.missed,
            latency(0.5),
            latency(0.95),
            ratio
        )
        .ok();
    }
    text
}

/// Draws API calls per account-hour (log scale) against events missed, one point per
/// strategy and scenario. Needs a TrueType font: DejaVu Sans from Debian's fonts-dejavu.
pub fn picture(rows: &[Row], account_hours: f64, path: &Path, font: &[u8]) -> anyhow::Result<()> {
    let font: &'static [u8] = Box::leak(font.to_vec().into_boxed_slice());
    plotters::style::register_font("sans-serif", FontStyle::Normal, font)
        .map_err(|_| anyhow::anyhow!("the font file is not a TrueType font"))?;

    let root = BitMapBackend::new(path, (1100, 700)).into_drawing_area();
    root.fill(&WHITE)?;
    let calls: Vec<f64> = rows.iter().map(|row| (row.outcome.api_calls as f64 / account_hours).max(0.001)).collect();
    let max_missed = rows.iter().map(|row| row.outcome.missed).max().unwrap_or(1).max(1) as f64;
    let max_calls = calls.iter().copied().fold(0.01, f64::max) * 2.0;
    let min_calls = calls.iter().copied().fold(f64::MAX, f64::min) / 2.0;

    let mut chart = ChartBuilder::on(&root)
        .caption(
            "Provider API calls vs events missed (2,000 accounts, 24 h, one point per scenario)",
            ("sans-serif", 22),
        )
        .margin(20)
        .x_label_area_size(50)
        .y_label_area_size(70)
        .build_cartesian_2d((min_calls..max_calls).log_scale(), 0f64..max_missed * 1.1)?;
    chart
        .configure_mesh()
        .x_desc("API calls per account-hour (log scale)")
        .y_desc("events missed at the end of the day")
        .label_style(("sans-serif", 15))
        .draw()?;

    let strategies = ["poll every 1 min", "poll every 5 min", "webhooks only", "commsync", "oracle"];
    let colours = [RED, MAGENTA, BLUE, GREEN, BLACK];
    for (strategy, colour) in strategies.iter().zip(colours) {
        let points: Vec<(f64, f64)> = rows
            .iter()
            .zip(&calls)
            .filter(|(row, _)| row.strategy == *strategy)
            .map(|(row, calls)| (*calls, row.outcome.missed as f64))
            .collect();
        chart
            .draw_series(points.iter().map(|point| Circle::new(*point, 6, colour.filled())))?
            .label(*strategy)
            .legend(move |(x, y)| Circle::new((x + 10, y), 6, colour.filled()));
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .label_font(("sans-serif", 16))
        .draw()?;
    root.present()?;
    Ok(())
}
