//! Turns criterion's saved estimates (`target/criterion/**/new/`) into a Markdown table.

use serde_json::Value;
use std::fmt::Write;
use std::path::{Path, PathBuf};

fn find_estimates(directory: &Path, found: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(directory) else { return };
    for entry in entries.filter_map(Result::ok) {
        let path = entry.path();
        if path.is_dir() {
            if path.file_name().is_some_and(|name| name == "new") && path.join("estimates.json").is_file() {
                found.push(path);
            } else {
                find_estimates(&path, found);
            }
        }
    }
}

/// Writes one row per benchmark: its id, mean time and throughput.
pub fn run(directory: &Path, out: &Path) -> anyhow::Result<()> {
    let mut found = Vec::new();
    find_estimates(directory, &mut found);
    found.sort();
    let mut text = String::from("| benchmark | mean time | throughput |\n|---|---:|---:|\n");
    for path in found {
        let estimates: Value = serde_json::from_str(&std::fs::read_to_string(path.join("estimates.json"))?)?;
        let benchmark: Value = serde_json::from_str(&std::fs::read_to_string(path.join("benchmark.json"))?)?;
        let mean_ns = estimates.pointer("/mean/point_estimate").and_then(Value::as_f64).unwrap_or(0.0);
        let id = benchmark.get("full_id").and_then(Value::as_str).unwrap_or("?");
        let throughput = match benchmark.get("throughput") {
            Some(value) if value.get("Bytes").is_some() => {
                let bytes = value["Bytes"].as_f64().unwrap_or(0.0);
                format!("{:.1} MiB/s", bytes / (mean_ns / 1e9) / 1_048_576.0)
            }
            Some(value) if value.get("Elements").is_some() => {
                let elements = value["Elements"].as_f64().unwrap_or(0.0);
                format!("{:.0} accounts/s", elements / (mean_ns / 1e9))
            }
            _ => "-".to_string(),
        };
        let time = if mean_ns >= 1e9 {
            format!("{:.2} s", mean_ns / 1e9)
        } else if mean_ns >= 1e6 {
            format!("{:.2} ms", mean_ns / 1e6)
        } else {
            format!("{:.1} µs", mean_ns / 1e3)
        };
        writeln!(text, "| {id} | {time} | {throughput} |")?;
    }
    if let Some(parent) = out.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(out, &text)?;
    print!("{text}");
    Ok(())
}
