//! Operator commands: the dead-letter queues, quarantine, and the gap ledger.

use crate::{sdk_config, QueueArgs, TableArgs, PARTIAL};
use anyhow::Context;
use aws_sdk_sqs::types::{MessageSystemAttributeName, QueueAttributeName, SendMessageBatchRequestEntry};
use commsync::ids::Provider;
use commsync::ingest::replay::{fully_replayed, replay};
use commsync::ingest::{IngestDeps, Limits};
use commsync::queue::Queue;
use commsync::store::RouteCache;
use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::Ordering;
use std::time::Duration;

/// A dead-letter queue and the queue it feeds back into.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum DlqName {
    /// SyncDLQ: recovery jobs that failed 5 times.
    Sync,
    /// EventsDLQ: canonical events the application failed to consume 5 times.
    Events,
}

impl DlqName {
    fn logical_ids(self) -> (&'static str, &'static str) {
        match self {
            DlqName::Sync => ("SyncDLQ", "SyncQueue"),
            DlqName::Events => ("EventsDLQ", "EventsQueue"),
        }
    }
}

#[derive(Debug, clap::Subcommand)]
pub enum DlqCommand {
    /// Show the messages waiting in a dead-letter queue, without removing them.
    List {
        #[arg(long, value_enum)]
        queue: DlqName,
        /// Show at most this many messages.
        #[arg(long, default_value_t = 50)]
        max: usize,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        queues: QueueArgs,
    },
    /// Move every message of a dead-letter queue back to its source queue.
    Redrive {
        #[arg(long, value_enum)]
        queue: DlqName,
        #[command(flatten)]
        queues: QueueArgs,
    },
}

pub async fn dlq(command: DlqCommand) -> anyhow::Result<()> {
    let sqs = aws_sdk_sqs::Client::new(&sdk_config().await);
    match command {
        DlqCommand::List { queue, max, json, queues } => {
            let url = queues.url(&sqs, queue.logical_ids().0).await?;
            let mut seen = HashSet::new();
            let mut rows = Vec::new();
            while rows.len() < max {
                // Visibility 0 leaves the messages in place for the next reader.
                let output = sqs
                    .receive_message()
                    .queue_url(&url)
                    .max_number_of_messages(10)
                    .visibility_timeout(0)
                    .message_system_attribute_names(MessageSystemAttributeName::All)
                    .send()
                    .await
                    .context("ReceiveMessage on the dead-letter queue failed")?;
                let fresh: Vec<_> = output
                    .messages
                    .unwrap_or_default()
                    .into_iter()
                    .filter(|message| seen.insert(message.message_id.clone().unwrap_or_default()))
                    .collect();
                if fresh.is_empty() {
                    break;
                }
                for message in fresh {
                    let attributes = message.attributes.unwrap_or_default();
                    let receives = attributes
                        .get(&MessageSystemAttributeName::ApproximateReceiveCount)
                        .cloned()
                        .unwrap_or_default();
                    let sent = attributes.get(&MessageSystemAttributeName::SentTimestamp).cloned().unwrap_or_default();
                    rows.push(serde_json::json!({
                        "message_id": message.message_id,
                        "receive_count": receives,
                        "sent_timestamp_ms": sent,
                        "body": message.body,
                    }));
                }
            }
            rows.truncate(max);
            if json {
                println!("{}", serde_json::to_string_pretty(&rows)?);
            } else if rows.is_empty() {
                println!("{} is empty", queue.logical_ids().0);
            } else {
                for row in &rows {
                    let body: String = row["body"].as_str().unwrap_or_default().chars().take(160).collect();
                    println!(
                        "{}  receives {}  {body}",
                        row["message_id"].as_str().unwrap_or_default(),
                        row["receive_count"].as_str().unwrap_or_default()
                    );
                }
                println!("{} messages", rows.len());
            }
        }
        DlqCommand::Redrive { queue, queues } => {
            let (dlq_id, source_id) = queue.logical_ids();
            let dlq_url = queues.url(&sqs, dlq_id).await?;
            let source_url = queues.url(&sqs, source_id).await?;
            let arn = sqs
                .get_queue_attributes()
                .queue_url(&dlq_url)
                .attribute_names(QueueAttributeName::QueueArn)
                .send()
                .await?
                .attributes
                .and_then(|mut attributes| attributes.remove(&QueueAttributeName::QueueArn))
                .unwrap_or_default();
            match sqs.start_message_move_task().source_arn(&arn).send().await {
                Ok(output) => {
                    println!(
                        "started a message move task from {dlq_id} back to {source_id}: {}",
                        output.task_handle.unwrap_or_default()
                    );
                    return Ok(());
                }
                Err(error) => eprintln!(
                    "StartMessageMoveTask is unavailable here ({}); moving messages one batch at a time",
                    aws_sdk_sqs::error::DisplayErrorContext(&error).to_string().lines().next().unwrap_or_default()
                ),
            }
            let moved = move_messages(&sqs, &dlq_url, &source_url).await?;
            println!("moved {moved} messages from {dlq_id} back to {source_id}");
        }
    }
    Ok(())
}

/// Receives from `from`, sends to `to`, and deletes what was sent, batch by batch.
async fn move_messages(sqs: &aws_sdk_sqs::Client, from: &str, to: &str) -> anyhow::Result<usize> {
    let mut moved = 0;
    loop {
        let messages = sqs
            .receive_message()
            .queue_url(from)
            .max_number_of_messages(10)
            .visibility_timeout(60)
            .send()
            .await?
            .messages
            .unwrap_or_default();
        if messages.is_empty() {
            return Ok(moved);
        }
        let entries: Vec<SendMessageBatchRequestEntry> = messages
            .iter()
            .enumerate()
            .map(|(index, message)| {
                SendMessageBatchRequestEntry::builder()
                    .id(index.to_string())
                    .message_body(message.body.clone().unwrap_or_default())
                    .build()
                    .expect("id and body are set")
            })
            .collect();
        let sent = sqs.send_message_batch().queue_url(to).set_entries(Some(entries)).send().await?;
        if !sent.failed.is_empty() {
            PARTIAL.store(true, Ordering::SeqCst);
            anyhow::bail!("{} messages could not be sent back; they stay in the dead-letter queue", sent.failed.len());
        }
        for message in &messages {
            sqs.delete_message()
                .queue_url(from)
                .receipt_handle(message.receipt_handle.clone().unwrap_or_default())
                .send()
                .await?;
        }
        moved += messages.len();
        eprintln!("  moved {moved}");
    }
}

#[derive(Debug, clap::Subcommand)]
pub enum QuarantineCommand {
    /// List quarantined bodies with the reason each was kept.
    List {
        /// Only this provider.
        #[arg(long)]
        provider: Option<Provider>,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        tables: TableArgs,
    },
    /// Ingest quarantined bodies again, after the cause was fixed; removes each body that
    /// ingests fully. Exits with 3 when some stay.
    Replay {
        #[arg(long)]
        provider: Provider,
        /// One body, by the digest `quarantine list` shows (a unique prefix is enough).
        #[arg(long, conflicts_with = "all", required_unless_present = "all")]
        digest: Option<String>,
        /// Every quarantined body of the provider.
        #[arg(long)]
        all: bool,
        #[command(flatten)]
        tables: TableArgs,
        #[command(flatten)]
        queues: QueueArgs,
    },
}

pub async fn quarantine(command: QuarantineCommand) -> anyhow::Result<()> {
    match command {
        QuarantineCommand::List { provider, json, tables } => {
            let store = tables.store().await;
            let providers: Vec<Provider> = provider.map_or(Provider::ALL.to_vec(), |provider| vec![provider]);
            let mut records = Vec::new();
            for provider in providers {
                records.extend(store.list_quarantine(provider).await?);
            }
            if json {
                let rows: Vec<_> = records
                    .iter()
                    .map(|record| {
                        serde_json::json!({
                            "provider": record.provider, "digest": record.digest, "reason": record.reason,
                            "first_received_at": record.first_received_at, "last_received_at": record.last_received_at,
                            "deliveries": record.deliveries, "body_bytes": record.body_bytes,
                        })
                    })
                    .collect();
                println!("{}", serde_json::to_string_pretty(&rows)?);
            } else if records.is_empty() {
                println!("nothing is quarantined");
            } else {
                for record in &records {
                    println!(
                        "{:<9} {}  {} deliveries, {} bytes, first {}: {}",
                        record.provider,
                        &record.digest[..16],
                        record.deliveries,
                        record.body_bytes,
                        record.first_received_at,
                        record.reason
                    );
                }
            }
        }
        QuarantineCommand::Replay { provider, digest, all, tables, queues } => {
            let config = sdk_config().await;
            let sqs = aws_sdk_sqs::Client::new(&config);
            let store = tables.store().await;
            let ingest_deps = IngestDeps {
                store: store.clone(),
                routes: RouteCache::new(Duration::ZERO),
                events_queue: Queue::new(sqs.clone(), queues.url(&sqs, "EventsQueue").await?),
                limits: Limits::default(),
            };
            let sync_queue = Queue::new(sqs.clone(), queues.url(&sqs, "SyncQueue").await?);

            let records = store.list_quarantine(provider).await?;
            let selected: Vec<_> = records
                .iter()
                .filter(|record| all || digest.as_deref().is_some_and(|prefix| record.digest.starts_with(prefix)))
                .collect();
            if selected.is_empty() {
                anyhow::bail!("no quarantined {provider} body matches; list them with `commsync quarantine list --provider {provider}`");
            }
            for record in selected {
                let body = store.quarantined_body(provider, &record.digest).await?;
                let report = replay(&ingest_deps, &sync_queue, Duration::from_secs(900), provider, &body).await?;
                if fully_replayed(&report) {
                    store.delete_quarantined(provider, &record.digest).await?;
                    println!(
                        "{}: ingested ({} stored, {} duplicates, {} jobs); removed from quarantine",
                        &record.digest[..16],
                        report.stored,
                        report.duplicates,
                        report.jobs_sent
                    );
                } else {
                    PARTIAL.store(true, Ordering::SeqCst);
                    let mut left = report.problems.clone();
                    if !report.unknown_external_ids.is_empty() {
                        left.push(format!("still no account for {}", report.unknown_external_ids.join(", ")));
                    }
                    println!(
                        "{}: {} stored; kept in quarantine: {}",
                        &record.digest[..16],
                        report.stored,
                        left.join("; ")
                    );
                }
            }
        }
    }
    Ok(())
}

#[derive(Debug, clap::Args)]
pub struct LedgerArgs {
    /// Start of the period: a duration back from now (`30m`, `24h`, `7d`) or an RFC 3339 time.
    #[arg(long, default_value = "24h")]
    since: String,
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    tables: TableArgs,
}

/// Parses `30m`, `24h`, `7d` or an RFC 3339 time into an RFC 3339 time.
pub fn parse_since(since: &str) -> anyhow::Result<String> {
    if let Ok(time) = chrono::DateTime::parse_from_rfc3339(since) {
        return Ok(commsync::event::rfc3339(time.with_timezone(&chrono::Utc)));
    }
    let (number, unit) = since.split_at(since.len().saturating_sub(1));
    let amount: i64 = number
        .parse()
        .with_context(|| format!("--since {since:?} is not a duration like 30m, 24h, 7d or an RFC 3339 time"))?;
    let seconds = match unit {
        "m" => amount * 60,
        "h" => amount * 3600,
        "d" => amount * 86_400,
        _ => anyhow::bail!("--since {since:?} needs a unit: m, h or d"),
    };
    Ok(commsync::event::rfc3339(chrono::Utc::now() - chrono::Duration::seconds(seconds)))
}

pub async fn ledger(args: LedgerArgs) -> anyhow::Result<()> {
    let since = parse_since(&args.since)?;
    let store = args.tables.store().await;
    let entries = store.scan_ledger(&since).await?;

    // Loss rate: events the recoveries found that the webhooks had not delivered, over all
    // events of the provider. Push-triggered Gmail syncs are how Gmail content arrives, so
    // only recoveries the detector asked for count as losses.
    let mut webhook_events: BTreeMap<Provider, u64> = BTreeMap::new();
    for account in store.list_accounts().await? {
        *webhook_events.entry(account.provider).or_default() += account.webhook_events;
    }
    let mut per_provider: BTreeMap<Provider, (u64, u64, u64)> = BTreeMap::new();
    for (_, entry) in entries.iter().filter(|(_, entry)| entry.kind.starts_with("recovery:")) {
        let totals = per_provider.entry(entry.provider).or_default();
        totals.0 += 1;
        totals.2 += entry.api_calls;
        if entry.reason != "gmail_push" {
            totals.1 += entry.recovered_events;
        }
    }
    let summary: Vec<_> = Provider::ALL
        .iter()
        .map(|provider| {
            let (recoveries, recovered, calls) = per_provider.get(provider).copied().unwrap_or_default();
            let delivered = webhook_events.get(provider).copied().unwrap_or(0);
            let loss_rate = if delivered + recovered == 0 { 0.0 } else { recovered as f64 / (delivered + recovered) as f64 };
            serde_json::json!({ "provider": provider, "recoveries": recoveries, "events_recovered": recovered, "api_calls": calls, "webhook_events": delivered, "loss_rate": loss_rate })
        })
        .collect();

    if args.json {
        let rows: Vec<_> =
            entries.iter().map(|(account, entry)| serde_json::json!({ "account": account, "entry": entry })).collect();
        println!(
            "{}",
            serde_json::to_string_pretty(
                &serde_json::json!({ "since": since, "entries": rows, "providers": summary })
            )?
        );
        return Ok(());
    }
    println!("ledger since {since}: {} entries", entries.len());
    for (account, entry) in &entries {
        println!(
            "  {} {:<28} {:<30} {:<22} recovered {:>4}, {:>3} API calls  {}",
            entry.at,
            account.replace('#', "/"),
            entry.kind,
            entry.outcome,
            entry.recovered_events,
            entry.api_calls,
            entry.detail.chars().take(80).collect::<String>()
        );
    }
    println!("\nper provider:");
    for row in &summary {
        println!(
            "  {:<9} {} recoveries, {} events recovered, {} API calls, webhook loss rate {:.4}%",
            row["provider"].as_str().unwrap_or_default(),
            row["recoveries"],
            row["events_recovered"],
            row["api_calls"],
            row["loss_rate"].as_f64().unwrap_or(0.0) * 100.0
        );
    }
    Ok(())
}
