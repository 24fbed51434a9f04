//! `commsync local demo`: a local stack, the sample accounts, every sample webhook in
//! `events/` replayed through the handlers, and a summary of what happened.

use super::functions::LocalFunctions;
use super::moto::MotoServer;
use super::providers::ProviderServer;
use super::stack::LocalStack;
use super::template::Template;
use super::{tools_dir, LocalError};
use crate::ids::{AccountId, ExternalId, Provider, TenantId};
use crate::ingest::IngestReport;
use crate::store::{AccountRecord, LedgerEntry, NewAccount, Store};
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
    #[serde(default)]
    pub waba_id: Option<String>,
}

/// Totals the demo prints last; tests check them.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct DemoSummary {
    pub requests: usize,
    pub stored: usize,
    pub duplicates: usize,
    pub quarantined_bodies: usize,
    pub enqueued_messages: usize,
    pub sync_jobs: usize,
    /// Recovery jobs the worker finished.
    pub jobs_run: usize,
    /// Findings of the detection pass, and jobs it sent.
    pub findings: usize,
    pub detector_jobs: usize,
    /// Events the recoveries stored that the webhooks had missed.
    pub recovered: u64,
    pub rejected: usize,
}

/// Replaces an expired development push token in a sample event with a fresh one, because
/// Google-shaped tokens expire an hour after minting. Tokens of other keys stay as they are.
/// Returns whether the event was changed.
pub fn refresh_dev_tokens(event: &mut ApiGatewayV2httpRequest) -> bool {
    let Some(current) = event.headers.get("authorization").and_then(|value| value.to_str().ok()) else { return false };
    let Some(fresh) = super::dev_keys::refresh_dev_token(current) else { return false };
    let value = lambda_http::http::HeaderValue::from_str(&fresh).expect("a JWT is a valid header value");
    event.headers.insert("authorization", value);
    true
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
                waba_id: sample.waba_id,
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

    let mut stack = LocalStack::create(template, &endpoint, &prefix).await?;
    stack.use_jwks_url(&super::dev_keys::serve_dev_jwks().await?);
    let providers = ProviderServer::start().await;
    stack.use_provider_simulator(&providers);
    writeln!(out, "  provider API simulator: {}", providers.gmail_base_url()).ok();
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

    seed_mailbox(&store, &providers).await?;

    writeln!(out, "\nreplaying sample webhooks:").ok();
    let mut summary = DemoSummary::default();
    for path in sample_events(root)? {
        let name = path.strip_prefix(root.join("events")).unwrap_or(&path).display().to_string();
        let text = std::fs::read_to_string(&path)
            .map_err(|source| LocalError::Io { what: format!("read {}", path.display()), source })?;
        let mut event: ApiGatewayV2httpRequest = serde_json::from_str(&text)
            .map_err(|error| LocalError::Setup(format!("{name} is not an API Gateway event: {error}")))?;
        // The sample push tokens expire an hour after `commsync local sign` minted them.
        refresh_dev_tokens(&mut event);
        let method = event.request_context.http.method.to_string();
        let event_path = event.raw_path.clone().unwrap_or_default();
        let Some((_, _, binary)) = routes.iter().find(|(m, p, _)| *m == method && *p == event_path) else {
            writeln!(out, "  {name:<52} no route for {method} {event_path}").ok();
            continue;
        };

        let (response, report) = functions.invoke_http(binary, event).await?;
        summary.requests += 1;
        if response.status_code >= 400 {
            summary.rejected += 1;
        }
        let detail = match report.as_ref() {
            Some(report) => describe(report),
            None => crate::http::body_text(&response).chars().take(100).collect(),
        };
        writeln!(out, "  {name:<52} {method:<4} {}  {detail}", response.status_code).ok();
        if let Some(report) = report {
            summary.stored += report.stored;
            summary.duplicates += report.duplicates;
        }
    }

    writeln!(out, "\nrecovery worker on SyncQueue (provider APIs simulated on 127.0.0.1):").ok();
    for _ in 0..20 {
        let poll = functions.poll_queue(&stack, "recovery-worker").await?;
        if poll.received == 0 {
            break;
        }
        summary.jobs_run += poll.succeeded;
    }
    for account in store.list_accounts().await? {
        for entry in store.list_ledger(&account.tenant_id, &account.account_id).await? {
            write_ledger_line(out, &account, &entry);
        }
    }

    detect_and_recover(&stack, &functions, &store, &providers, &mut summary, out).await?;

    for provider in Provider::ALL {
        summary.quarantined_bodies += store.list_quarantine(provider).await?.len();
    }
    summary.enqueued_messages = queue_depth(&stack, "EventsQueue").await?;
    summary.sync_jobs = queue_depth(&stack, "SyncQueue").await?;

    writeln!(out, "\nstored per account:").ok();
    for account in store.list_accounts().await? {
        let events = store.list_events(&account.tenant_id, &account.account_id).await?;
        let messages = store.list_messages(&account.tenant_id, &account.account_id).await?;
        let mut line = format!(
            "  {}/{} ({}): {}, {}",
            account.tenant_id,
            account.account_id,
            account.provider,
            count(events.len(), "event"),
            count(account.webhook_requests as usize, "webhook request")
        );
        if account.orphan_statuses > 0 {
            line.push_str(&format!(", {}", count(account.orphan_statuses as usize, "orphan status")));
        }
        if let Some(history_id) = account.notified_history_id {
            line.push_str(&format!(", notified historyId {history_id}"));
        }
        if account.recovery_lease_until.is_some() {
            line.push_str(", recovery pending");
        }
        writeln!(out, "{line}").ok();
        for message in messages {
            writeln!(out, "    message {} is {}", message.provider_message_id, message.status).ok();
        }
        for stored in events.iter().filter(|stored| stored.event.kind == crate::event::EventKind::MessageAdded) {
            let subject = stored.event.data.get("subject").and_then(|subject| subject.as_str()).unwrap_or("-");
            let source = if stored.event.source == crate::event::Source::Recovery { "recovery" } else { "webhook" };
            writeln!(out, "    {} via {source}: {subject}", stored.event.kind.as_str()).ok();
        }
    }
    for provider in Provider::ALL {
        for record in store.list_quarantine(provider).await? {
            writeln!(out, "  quarantined {} body {}: {}", provider, &record.digest[..12], record.reason).ok();
        }
    }

    writeln!(
        out,
        "\nsummary: {}, {} stored, {} suppressed, {} quarantined, {} rejected, {}, {} recovered by gap detection, \
         {} run, {} in EventsQueue, {} left in SyncQueue",
        count(summary.requests, "request"),
        count(summary.stored, "item"),
        count(summary.duplicates, "duplicate"),
        count(summary.quarantined_bodies, "body"),
        summary.rejected,
        count(summary.findings, "gap finding"),
        count(summary.recovered as usize, "event"),
        count(summary.jobs_run, "recovery job"),
        count(summary.enqueued_messages, "canonical event"),
        count(summary.sync_jobs, "recovery job"),
    )
    .ok();

    if let Some(moto) = moto {
        moto.stop().await;
    }
    Ok(summary)
}

/// The demo mailbox in the Gmail simulator: synced up to historyId 9876590, then three
/// messages arrive, the last at historyId 9876611 (the historyId the second sample push announces).
const DEMO_MAILBOX: &str = "ops@acme.example";
const DEMO_CURSOR: u64 = 9_876_590;

async fn seed_mailbox(store: &Store, providers: &ProviderServer) -> Result<(), LocalError> {
    let tenant_id = TenantId::parse("acme").expect("valid id");
    let account_id = AccountId::parse("ops-mailbox").expect("valid id");
    {
        let mut state = providers.state();
        state.add_gmail_mailbox(DEMO_MAILBOX, "demo-access-token", "demo-refresh-token");
        state.gmail_mailbox_mut(DEMO_MAILBOX).history_id = DEMO_CURSOR;
        for id in ["18c2a0f0e1d2c3b4", "18c2a0f3aa01bc77", "18c2a0f9d00d1e55"] {
            state.gmail_add_message(DEMO_MAILBOX, id, &["INBOX", "UNREAD"]);
        }
    }
    let credentials = crate::store::Credentials {
        access_token: Some(crate::secret::Secret::new("demo-access-token")),
        refresh_token: Some(crate::secret::Secret::new("demo-refresh-token")),
        access_token_expires_at: None,
    };
    store.put_credentials(&tenant_id, &account_id, &credentials).await?;
    store.advance_history_cursor(&tenant_id, &account_id, DEMO_CURSOR).await?;
    Ok(())
}

/// The demo LinkedIn page: it usually gets 30 notifications an hour, but its webhooks
/// stopped two hours ago while LinkedIn kept five notifications the demo never received.
const SILENT_PAGE: (&str, &str, &str) = ("acme", "company-page", "urn:li:organization:5515715");

/// Makes the LinkedIn page a busy page gone silent, runs a detection pass and lets the
/// worker run what it sent.
async fn detect_and_recover(
    stack: &LocalStack,
    functions: &LocalFunctions,
    store: &Store,
    providers: &ProviderServer,
    summary: &mut DemoSummary,
    out: &mut impl Write,
) -> Result<(), LocalError> {
    let now = chrono::Utc::now();
    let (tenant, account, organization) = SILENT_PAGE;
    let tenant_id = TenantId::parse(tenant).expect("valid id");
    let account_id = AccountId::parse(account).expect("valid id");
    let page = store.get_account(&tenant_id, &account_id).await?;

    // Two hours of silence after a learned 30 notifications/h (720 over the last day).
    let silent_since = now.timestamp() - 2 * 3600;
    let mut state = page.detector.clone();
    state.event_rate = crate::gaps::rate::RateEstimate { count: 720.0, exposure_hours: 24.0 };
    state.seen_events = page.webhook_events;
    state.updated_at = Some(silent_since);
    store.write_detector_state(&page, &state).await?;
    store.set_last_webhook_epoch(&tenant_id, &account_id, silent_since).await?;
    store
        .put_credentials(
            &tenant_id,
            &account_id,
            &crate::store::Credentials {
                access_token: Some(crate::secret::Secret::new("demo-linkedin-token")),
                ..Default::default()
            },
        )
        .await?;
    {
        let mut state = providers.state();
        state.add_linkedin_token("demo-linkedin-token");
        for (offset, id) in (7_391_046_001u64..7_391_046_006).enumerate() {
            let at_ms = (silent_since + 600 + offset as i64 * 900) * 1000;
            state.linkedin_add_notification(organization, id, if offset % 2 == 0 { "COMMENT" } else { "LIKE" }, at_ms);
        }
    }

    writeln!(out, "\ndetection pass (acme/company-page learned 30 notifications/h, silent for 2 h):").ok();
    let report = functions.run_detector(now).await?;
    summary.findings = report.findings.len();
    summary.detector_jobs = report.jobs_sent;
    let mut findings = report.findings.clone();
    findings.sort_by(|a, b| b.score.total_cmp(&a.score));
    for finding in &findings {
        writeln!(
            out,
            "  {:>6.1} {}/{} {} -> {}: {}",
            finding.score,
            finding.tenant_id,
            finding.account_id,
            finding.kind.as_str(),
            finding.recommendation.name(),
            finding.evidence
        )
        .ok();
    }
    writeln!(out, "  sent {} within the budget", count(report.jobs_sent, "recovery job")).ok();

    writeln!(out, "\nrecovery worker runs the detector's jobs:").ok();
    for _ in 0..20 {
        let poll = functions.poll_queue(stack, "recovery-worker").await?;
        if poll.received == 0 {
            break;
        }
        summary.jobs_run += poll.succeeded;
    }
    for account in store.list_accounts().await? {
        for entry in store.list_ledger(&account.tenant_id, &account.account_id).await? {
            if entry.kind.starts_with("recovery:") && entry.reason != "gmail_push" {
                summary.recovered += entry.recovered_events;
                write_ledger_line(out, &account, &entry);
            }
        }
    }
    Ok(())
}

/// Formats a count with its noun, plural when the count is not one.
/// Writes one ledger entry as an indented summary line.
fn write_ledger_line(out: &mut impl Write, account: &AccountRecord, entry: &LedgerEntry) {
    writeln!(
        out,
        "  {}/{} {} ({}): {}, {} API calls: {}",
        account.tenant_id, account.account_id, entry.kind, entry.reason, entry.outcome, entry.api_calls, entry.detail
    )
    .ok();
}

fn count(value: usize, noun: &str) -> String {
    match (value, noun) {
        (1, _) => format!("1 {noun}"),
        (_, "body") => format!("{value} bodies"),
        (_, "orphan status") => format!("{value} orphan statuses"),
        _ => format!("{value} {noun}s"),
    }
}

fn describe(report: &IngestReport) -> String {
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
    if report.jobs_sent > 0 {
        parts.push(format!("sync jobs {}", report.jobs_sent));
    }
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
