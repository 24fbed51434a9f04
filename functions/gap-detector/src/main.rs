//! `gap-detector`: EventBridge schedule -> gap analysis over account state, recovery jobs.

use commsync::aws::AwsClients;
use commsync::config::ProcessEnv;
use commsync::gaps::run::run;
use commsync::gaps::DetectorDeps;
use lambda_http::lambda_runtime::{run as run_lambda, service_fn, Error, LambdaEvent};

#[tokio::main]
async fn main() -> Result<(), Error> {
    commsync::logging::init_lambda();
    let clients = AwsClients::from_env().await;
    let deps = DetectorDeps::new(&clients, &ProcessEnv)?;

    run_lambda(service_fn(|_event: LambdaEvent<serde_json::Value>| async {
        let report = run(&deps, chrono::Utc::now(), false).await?;
        Ok::<_, Error>(serde_json::json!({
            "accounts": report.accounts,
            "findings": report.findings.len(),
            "jobs_sent": report.jobs_sent,
            "deferred": report.plan.deferred.len(),
            "incidents": report.incidents,
        }))
    }))
    .await
}
