//! `commsync gaps`: one gap analysis against the configured endpoint, printed, with
//! nothing sent or written.

use crate::TableArgs;
use commsync::config::ProcessEnv;
use commsync::gaps::run::analyse;
use commsync::gaps::DetectorConfig;

#[derive(Debug, clap::Args)]
pub struct GapsArgs {
    /// Print the findings and the plan as JSON.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    tables: TableArgs,
}

pub async fn run(args: GapsArgs) -> anyhow::Result<()> {
    let config = DetectorConfig::from_env(&ProcessEnv)?;
    let store = args.tables.store().await;
    let analysed = analyse(&store, &config, chrono::Utc::now()).await?;
    let report = analysed.report;

    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(());
    }
    println!("{} accounts analysed, {} findings", report.accounts, report.findings.len());
    for incident in &report.incidents {
        println!("provider incident suspected: {incident}");
    }
    let mut findings = report.findings.clone();
    findings.sort_by(|a, b| b.score.total_cmp(&a.score));
    if !findings.is_empty() {
        println!(
            "\n{:>6}  {:<9} {:<28} {:<20} {:<19} EVIDENCE",
            "SCORE", "PROVIDER", "ACCOUNT", "FINDING", "RECOMMENDATION"
        );
    }
    for finding in &findings {
        println!(
            "{:>6.1}  {:<9} {:<28} {:<20} {:<19} {}",
            finding.score,
            finding.provider,
            format!("{}/{}", finding.tenant_id, finding.account_id),
            finding.kind.as_str(),
            finding.recommendation.name(),
            finding.evidence
        );
    }
    println!("\nplanned jobs (not sent):");
    for planned in &report.plan.jobs {
        println!(
            "  {} for {}/{} ({} API calls)",
            planned.job.kind.as_str(),
            planned.job.tenant_id,
            planned.job.account_id,
            planned.cost
        );
    }
    if report.plan.jobs.is_empty() {
        println!("  none");
    }
    println!(
        "{} deferred by the budget, {} skipped with a recovery already pending",
        report.plan.deferred.len(),
        report.plan.pending
    );
    Ok(())
}
