//! `commsync accounts`: register and list accounts.

use crate::TableArgs;
use anyhow::Context;
use commsync::ids::{AccountId, ExternalId, Provider, TenantId};
use commsync::secret::Secret;
use commsync::store::{Credentials, NewAccount};

#[derive(Debug, clap::Subcommand)]
pub enum AccountsCommand {
    /// Register an account and route its provider id to it.
    Add {
        /// Tenant that owns the account (letters, digits and - _ . @ : +).
        #[arg(long)]
        tenant: TenantId,
        /// Account id within the tenant (letters, digits and - _ . @ : +).
        #[arg(long)]
        account: AccountId,
        /// whatsapp, gmail or linkedin.
        #[arg(long)]
        provider: Provider,
        /// WhatsApp phone_number_id, Gmail address, or LinkedIn organization URN.
        #[arg(long)]
        external_id: String,
        /// WhatsApp only: the WhatsApp Business Account id, used to check the app's subscription.
        #[arg(long)]
        waba_id: Option<String>,
        /// Access token for recoveries (WhatsApp system user token, LinkedIn member token, Gmail access token).
        #[arg(long, env = "COMMSYNC_ACCESS_TOKEN", hide_env_values = true)]
        access_token: Option<String>,
        /// Gmail only: OAuth refresh token, exchanged for access tokens when they expire.
        #[arg(long, env = "COMMSYNC_REFRESH_TOKEN", hide_env_values = true)]
        refresh_token: Option<String>,
        #[command(flatten)]
        tables: TableArgs,
    },
    /// Show one account: health, cursor, watch expiry, learned rate, last webhook, open
    /// findings and the last recoveries.
    Show {
        #[arg(long)]
        tenant: TenantId,
        #[arg(long)]
        account: AccountId,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        tables: TableArgs,
    },
    /// Disable an account: its route is removed (new webhooks are quarantined) and the
    /// detector leaves it alone. Stored events stay.
    Disable {
        #[arg(long)]
        tenant: TenantId,
        #[arg(long)]
        account: AccountId,
        #[command(flatten)]
        tables: TableArgs,
    },
    /// List every account with its liveness counters.
    List {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        tables: TableArgs,
    },
}

pub async fn run(command: AccountsCommand) -> anyhow::Result<()> {
    match command {
        AccountsCommand::Add {
            tenant,
            account,
            provider,
            external_id,
            waba_id,
            access_token,
            refresh_token,
            tables,
        } => {
            let external_id = ExternalId::for_provider(provider, &external_id).context("invalid --external-id")?;
            let store = tables.store().await;
            let new_account = NewAccount { tenant_id: tenant, account_id: account, provider, external_id, waba_id };
            store.register_account(&new_account).await?;
            if access_token.is_some() || refresh_token.is_some() {
                let credentials = Credentials {
                    access_token: access_token.map(Secret::new),
                    refresh_token: refresh_token.map(Secret::new),
                    access_token_expires_at: None,
                };
                store.put_credentials(&new_account.tenant_id, &new_account.account_id, &credentials).await?;
            }
            println!(
                "registered {}/{}: {} {} now routes to it",
                new_account.tenant_id, new_account.account_id, provider, new_account.external_id
            );
        }
        AccountsCommand::Show { tenant, account, json, tables } => show(&tenant, &account, json, &tables).await?,
        AccountsCommand::Disable { tenant, account, tables } => {
            let store = tables.store().await;
            let disabled = store.disable_account(&tenant, &account).await?;
            println!(
                "disabled {tenant}/{account}: {} {} no longer routes to it; its webhooks are quarantined",
                disabled.provider, disabled.external_id
            );
        }
        AccountsCommand::List { json, tables } => {
            let accounts = tables.store().await.list_accounts().await?;
            if json {
                let rows: Vec<_> = accounts
                    .iter()
                    .map(|account| {
                        serde_json::json!({
                            "tenant_id": account.tenant_id, "account_id": account.account_id,
                            "provider": account.provider, "external_id": account.external_id,
                            "status": account.status, "created_at": account.created_at,
                            "webhook_events": account.webhook_events, "webhook_requests": account.webhook_requests,
                            "orphan_statuses": account.orphan_statuses, "last_webhook_at": account.last_webhook_at,
                        })
                    })
                    .collect();
                println!("{}", serde_json::to_string_pretty(&rows)?);
            } else if accounts.is_empty() {
                println!("no accounts; register one with `commsync accounts add`");
            } else {
                println!(
                    "{:<16} {:<20} {:<9} {:<28} {:>7} {:<21}",
                    "TENANT", "ACCOUNT", "PROVIDER", "EXTERNAL ID", "EVENTS", "LAST WEBHOOK"
                );
                for account in accounts {
                    println!(
                        "{:<16} {:<20} {:<9} {:<28} {:>7} {:<21}",
                        account.tenant_id,
                        account.account_id,
                        account.provider,
                        account.external_id,
                        account.webhook_events,
                        account.last_webhook_at.as_deref().unwrap_or("-")
                    );
                }
            }
        }
    }
    Ok(())
}

async fn show(tenant: &TenantId, account: &AccountId, json: bool, tables: &TableArgs) -> anyhow::Result<()> {
    let store = tables.store().await;
    let record = store.get_account(tenant, account).await?;
    let ledger = store.list_ledger(tenant, account).await?;
    let recoveries: Vec<_> = ledger.iter().rev().filter(|entry| entry.kind.starts_with("recovery:")).take(5).collect();
    let config = commsync::gaps::DetectorConfig::default();
    let rate = record.detector.event_rate.per_hour(config.prior);
    let watch = record.watch_expiration_ms.and_then(|ms| commsync::event::rfc3339_from_unix_millis(ms as i64));

    if json {
        let value = serde_json::json!({
            "tenant_id": record.tenant_id, "account_id": record.account_id, "provider": record.provider,
            "external_id": record.external_id, "status": record.status, "status_reason": record.status_reason,
            "consecutive_failures": record.consecutive_failures, "last_error": record.last_error,
            "history_cursor": record.history_cursor, "notified_history_id": record.notified_history_id,
            "watch_expires_at": watch, "learned_rate_per_hour": rate, "last_webhook_at": record.last_webhook_at,
            "webhook_events": record.webhook_events, "open_findings": record.detector.reported,
            "recovery_pending_until": record.recovery_lease_until, "last_recoveries": recoveries,
        });
        println!("{}", serde_json::to_string_pretty(&value)?);
        return Ok(());
    }
    println!("{}/{} ({} {})", record.tenant_id, record.account_id, record.provider, record.external_id);
    println!(
        "  status            {}{}",
        record.status,
        record.status_reason.as_deref().map(|reason| format!(": {reason}")).unwrap_or_default()
    );
    println!(
        "  failures in a row {}{}",
        record.consecutive_failures,
        record.last_error.as_deref().map(|error| format!(" (last: {error})")).unwrap_or_default()
    );
    if record.provider == commsync::ids::Provider::Gmail {
        println!("  history cursor    {}", record.history_cursor.map_or("-".to_string(), |cursor| cursor.to_string()));
        println!("  notified history  {}", record.notified_history_id.map_or("-".to_string(), |id| id.to_string()));
        println!("  watch expires     {}", watch.as_deref().unwrap_or("no watch recorded"));
    }
    println!("  learned rate      {rate:.2} events/h");
    println!("  last webhook      {}", record.last_webhook_at.as_deref().unwrap_or("-"));
    println!("  webhook events    {}", record.webhook_events);
    let findings =
        if record.detector.reported.is_empty() { "none".to_string() } else { record.detector.reported.join(", ") };
    println!("  open findings     {findings}");
    println!(
        "  recovery pending  {}",
        if record.recovery_lease_until.is_some_and(|until| until > chrono::Utc::now().timestamp()) {
            "yes"
        } else {
            "no"
        }
    );
    println!("  last recoveries:");
    if recoveries.is_empty() {
        println!("    none");
    }
    for entry in recoveries {
        println!(
            "    {} {} ({}): {}, recovered {}, {} API calls",
            entry.at, entry.kind, entry.reason, entry.outcome, entry.recovered_events, entry.api_calls
        );
    }
    Ok(())
}
