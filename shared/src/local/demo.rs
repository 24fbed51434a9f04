//! `commsync local demo`: a local stack, the sample accounts, every sample webhook in
//! `events/` replayed through the handlers, and a summary of what happened.

use super::functions::LocalFunctions;
use super::moto::MotoServer;
use super::stack::LocalStack;
use super::template::Template;
use super::{tools_dir, LocalError};
use crate::ids::{AccountId, ExternalId, Provider, TenantId};
use crate::ingest::IngestReport;
use crate::store::{NewAccount, Store};
use lambda_http::aws_lambda_events::apigw::ApiGatewayV2httpRequest;
use serde::Deserialize;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// One entry of `events/accounts.json`.
#[derive(Debug, Deserialize)]
pub struct SampleAccount {
    pub tenant_id: String,
    pub account_id: String,
    pub provider: String,
    pub external_id: String,
}

/// Totals the demo prints last; tests check them.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct DemoSummary {
    pub requests: usize,
    pub stored: usize,
    pub duplicates: usize,
    pub quarantined_bodies: usize,
    pub enqueued_messages: usize,
    pub rejected: usize,
}

/// Reads `events/accounts.json`.
pub fn sample_accounts(root: &Path) -> Result<Vec<NewAccount>, LocalError> {
    let path = root.join("events").join("accounts.json");
    let text = std::fs::read_to_string(&path)
        .map_err(|source| LocalError::Io { what: format!("read {}", path.display()), source })?;
    let samples: Vec<SampleAccount> = serde_json::from_str(&text)
        .map_err(|error| LocalError::Setup(format!("{} is invalid: {error}", path.display())))?;
    samples
        .into_iter()
        .map(|sample| {
            let provider: Provider = sample.provider.parse().map_err(|error| LocalError::Setup(format!("{error}")))?;
            let invalid = |error: crate::ids::IdError| LocalError::Setup(format!("{}: {error}", path.display()));
            Ok(NewAccount {
                tenant_id: TenantId::parse(sample.tenant_id).map_err(invalid)?,
                account_id: AccountId::parse(sample.account_id).map_err(invalid)?,
                provider,
                external_id: ExternalId::for_provider(provider, &sample.external_id).map_err(invalid)?,
            })
        })
        .collect()
}

/// Lists the sample webhook events, provider by provider, in file-name order.
pub fn sample_events(root: &Path) -> Result<Vec<PathBuf>, LocalError> {
    let mut files = Vec::new();
    for provider in Provider::ALL {
        let directory = root.join("events").join(provider.as_str());
        let Ok(entries) = std::fs::read_dir(&directory) else { continue };
        let mut provider_files: Vec<PathBuf> = entries
            .filter_map(Result::ok)
            .map(|entry| entry.path())
            .filter(|path| path.extension().is_some_and(|extension| extension == "json"))
            .collect();
        provider_files.sort();
        files.extend(provider_files);
    }
    Ok(files)
}

/// Runs the demo against `endpoint`, or a moto server it starts when `endpoint` is `None`.
pub async fn run(root: &Path, endpoint: Option<String>, out: &mut impl Write) -> Result<DemoSummary, LocalError> {
    let template = Template::load(&root.join("template.yaml"))?;

    let (moto, endpoint, prefix) = match endpoint {
        Some(endpoint) => {
            // A shared endpoint may already hold an earlier run; fresh names keep the summary exact.
            let prefix = format!("demo{}-", chrono::Utc::now().timestamp_millis());
            (None, endpoint, prefix)
        }
        None => {
            let moto = MotoServer::start(&tools_dir(root), 0).await?;
            let endpoint = moto.endpoint.clone();
            (Some(moto), endpoint, String::new())
        }
    };
    writeln!(out, "local stack: {endpoint} (moto)").ok();

    let stack = LocalStack::create(template, &endpoint, &prefix).await?;
    for (logical_id, resource) in &stack.physical {
        writeln!(out, "  created {logical_id:<16} {}", resource.url.as_deref().unwrap_or(&resource.name)).ok();
    }
    let functions = LocalFunctions::build(&stack)?;
    let routes = LocalFunctions::http_routes(&stack);

    let store = Store::new(
        stack.clients().dynamodb,
        crate::store::Tables {
            accounts: stack.resource("AccountsTable")?.name.clone(),
            events: stack.resource("EventsTable")?.name.clone(),
        },
        Duration::from_secs(86_400),
    );
    let accounts = sample_accounts(root)?;
    writeln!(out, "\nregistered accounts:").ok();
    for account in &accounts {
        store.register_account(account).await?;
        writeln!(out, "  {}/{}  {} {}", account.tenant_id, account.account_id, account.provider, account.external_id)
            .ok();
    }

    writeln!(out, "\nreplaying sample webhooks:").ok();
    let mut summary = DemoSummary::default();
    for path in sample_events(root)? {
        let name = path.strip_prefix(root.join("events")).unwrap_or(&path).display().to_string();
        let text = std::fs::read_to_string(&path)
            .map_err(|source| LocalError::Io { what: format!("read {}", path.display()), source })?;
        let event: ApiGatewayV2httpRequest = serde_json::from_str(&text)
            .map_err(|error| LocalError::Setup(format!("{name} is not an API Gateway event: {error}")))?;
        let method = event.request_context.http.method.to_string();
        let event_path = event.raw_path.clone().unwrap_or_default();
        let Some((_, _, binary)) = routes.iter().find(|(m, p, _)| *m == method && *p == event_path) else {
            writeln!(out, "  {name:<40} no route for {method} {event_path}").ok();
            continue;
        };

        let (response, report) = functions.invoke_http(binary, event).await?;
        summary.requests += 1;
        if response.status_code >= 400 {
            summary.rejected += 1;
        }
        writeln!(out, "  {name:<40} {method:<4} {}  {}", response.status_code, describe(report.as_ref())).ok();
        if let Some(report) = report {
            summary.stored += report.stored;
            summary.duplicates += report.duplicates;
        }
    }

    for provider in Provider::ALL {
        summary.quarantined_bodies += store.list_quarantine(provider).await?.len();
    }
    summary.enqueued_messages = queue_depth(&stack, "EventsQueue").await?;

    writeln!(out, "\nstored per account:").ok();
    for account in store.list_accounts().await? {
        let events = store.list_events(&account.tenant_id, &account.account_id).await?;
        let messages = store.list_messages(&account.tenant_id, &account.account_id).await?;
        writeln!(
            out,
            "  {}/{}: {} events, {} webhook requests, {} orphan statuses",
            account.tenant_id,
            account.account_id,
            events.len(),
            account.webhook_requests,
            account.orphan_statuses
        )
        .ok();
        for message in messages {
            writeln!(out, "    message {} is {}", message.provider_message_id, message.status).ok();
        }
    }
    for provider in Provider::ALL {
        for record in store.list_quarantine(provider).await? {
            writeln!(out, "  quarantined {} body {}: {}", provider, &record.digest[..12], record.reason).ok();
        }
    }

    writeln!(
        out,
        "\nsummary: {} requests, {} events stored, {} duplicates suppressed, {} bodies quarantined, {} rejected, {} canonical events in EventsQueue",
        summary.requests, summary.stored, summary.duplicates, summary.quarantined_bodies, summary.rejected, summary.enqueued_messages
    )
    .ok();

    if let Some(moto) = moto {
        moto.stop().await;
    }
    Ok(summary)
}

fn describe(report: Option<&IngestReport>) -> String {
    let Some(report) = report else { return String::new() };
    let mut parts = vec![format!("stored {}", report.stored), format!("duplicates {}", report.duplicates)];
    if report.statuses_raised > 0 {
        parts.push(format!("statuses raised {}", report.statuses_raised));
    }
    if report.orphan_statuses > 0 {
        parts.push(format!("orphans {}", report.orphan_statuses));
    }
    if report.resent > 0 {
        parts.push(format!("resent {}", report.resent));
    }
    parts.push(format!("enqueued {}", report.enqueued));
    if report.quarantined.is_some() {
        parts.push("quarantined".to_string());
    }
    parts.join(", ")
}

/// Counts the messages waiting in a queue of the stack.
pub async fn queue_depth(stack: &LocalStack, logical_id: &str) -> Result<usize, LocalError> {
    let url = stack.resource(logical_id)?.url.clone().unwrap_or_default();
    let output = stack
        .clients()
        .sqs
        .get_queue_attributes()
        .queue_url(&url)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages)
        .send()
        .await
        .map_err(|error| LocalError::aws("GetQueueAttributes", &url, &error))?;
    Ok(output
        .attributes
        .and_then(|mut attributes| {
            attributes.remove(&aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages)
        })
        .and_then(|count| count.parse().ok())
        .unwrap_or(0))
}
