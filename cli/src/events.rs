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
}

pub async fn run(command: EventsCommand) -> anyhow::Result<()> {
    let EventsCommand::List { tenant, account, json, tables } = command;
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
