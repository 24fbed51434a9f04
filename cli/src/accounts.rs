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
