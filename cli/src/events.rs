//! `commsync events`: read one account's stored canonical events.

use crate::TableArgs;
use commsync::ids::{AccountId, TenantId};
use std::collections::HashMap;

#[derive(Debug, clap::Subcommand)]
pub enum EventsCommand {
    /// List an account's canonical events, each message with its current status.
    List {
        /// Tenant that owns the account.
        #[arg(long)]
        tenant: TenantId,
        /// Account id within the tenant.
        #[arg(long)]
        account: AccountId,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        tables: TableArgs,
    },
    /// Send an account's stored events received since a time to EventsQueue again, for an
    /// application that lost them. Consumers deduplicate on event_id.
    Replay {
        #[arg(long)]
        tenant: TenantId,
        #[arg(long)]
        account: AccountId,
        /// A duration back from now (`30m`, `24h`, `7d`) or an RFC 3339 time.
        #[arg(long)]
        since: String,
        #[command(flatten)]
        tables: TableArgs,
        #[command(flatten)]
        queues: crate::QueueArgs,
    },
}

async fn replay(
    tenant: TenantId,
    account: AccountId,
    since: String,
    tables: TableArgs,
    queues: crate::QueueArgs,
) -> anyhow::Result<()> {
    let since = crate::ops::parse_since(&since)?;
    let store = tables.store().await;
    store.get_account(&tenant, &account).await?;
    let events: Vec<commsync::event::CanonicalEvent> = store
        .list_events(&tenant, &account)
        .await?
        .into_iter()
        .map(|stored| stored.event)
        .filter(|event| event.received_at >= since)
        .collect();
    let sqs = aws_sdk_sqs::Client::new(&crate::sdk_config().await);
    let queue = commsync::queue::Queue::new(sqs.clone(), queues.url(&sqs, "EventsQueue").await?);
    for (index, chunk) in events.chunks(100).enumerate() {
        let refs: Vec<&commsync::event::CanonicalEvent> = chunk.iter().collect();
        queue.send_events(&refs).await?;
        eprintln!("  sent {} of {}", (index * 100 + chunk.len()).min(events.len()), events.len());
    }
    println!("sent {} events of {tenant}/{account} received since {since} to EventsQueue", events.len());
    Ok(())
}

pub async fn run(command: EventsCommand) -> anyhow::Result<()> {
    let (tenant, account, json, tables) = match command {
        EventsCommand::List { tenant, account, json, tables } => (tenant, account, json, tables),
        EventsCommand::Replay { tenant, account, since, tables, queues } => {
            return replay(tenant, account, since, tables, queues).await
        }
    };
    let store = tables.store().await;
    store.get_account(&tenant, &account).await?;
    let mut events = store.list_events(&tenant, &account).await?;
    events.sort_by(|a, b| (&a.event.occurred_at, &a.event.event_id).cmp(&(&b.event.occurred_at, &b.event.event_id)));
    let statuses: HashMap<String, String> = store
        .list_messages(&tenant, &account)
        .await?
        .into_iter()
        .map(|message| (message.provider_message_id, message.status))
        .collect();

    let current_status = |event: &commsync::event::CanonicalEvent| {
        let message_id = event.data.get("wamid").or_else(|| event.data.get("message_id")).and_then(|id| id.as_str())?;
        statuses.get(message_id).cloned()
    };

    if json {
        let rows: Vec<_> = events
            .iter()
            .map(|stored| {
                serde_json::json!({
                    "event": stored.event,
                    "enqueued": stored.enqueued,
                    "message_status": current_status(&stored.event),
                })
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(());
    }

    if events.is_empty() {
        println!("no events stored for {tenant}/{account}");
        return Ok(());
    }
    println!("{:<24} {:<17} {:<9} {:<10} EVENT ID", "OCCURRED AT", "KIND", "SOURCE", "STATUS NOW");
    for stored in &events {
        let event = &stored.event;
        println!(
            "{:<24} {:<17} {:<9} {:<10} {}",
            event.occurred_at,
            event.kind.as_str(),
            format!("{:?}", event.source).to_lowercase(),
            current_status(event).unwrap_or_else(|| "-".to_string()),
            event.event_id.as_str(),
        );
    }
    Ok(())
}
