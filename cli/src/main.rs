//! `commsync`: the local stack and operator commands.

mod accounts;
mod events;
mod gaps;
mod local;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

#[derive(Debug, Parser)]
#[command(name = "commsync", version, about = "Webhook-first sync for WhatsApp, Gmail and LinkedIn accounts")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run commsync locally on moto: the stack, single invocations, the demo.
    #[command(subcommand)]
    Local(local::LocalCommand),
    /// Register and list accounts.
    #[command(subcommand)]
    Accounts(accounts::AccountsCommand),
    /// Read stored canonical events.
    #[command(subcommand)]
    Events(events::EventsCommand),
    /// Run one gap analysis and print the findings and the jobs it would send, sending nothing.
    Gaps(gaps::GapsArgs),
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let default_level = match &cli.command {
        Command::Local(local::LocalCommand::Up(_)) => "info",
        Command::Local(local::LocalCommand::Demo) => "error",
        _ => "warn",
    };
    let filter = commsync::logging::filter_from(&std::env::var("COMMSYNC_LOG").unwrap_or_else(|_| default_level.to_string()));
    let colours = std::io::IsTerminal::is_terminal(&std::io::stderr());
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(colours).init();

    let result = match cli.command {
        Command::Local(command) => local::run(command).await,
        Command::Accounts(command) => accounts::run(command).await,
        Command::Events(command) => events::run(command).await,
        Command::Gaps(args) => gaps::run(args).await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            let message = format!("{error:#}");
            eprintln!("error: {message}");
            if message.contains("credential") || message.contains("dispatch failure") {
                eprintln!("hint: for the local stack, export AWS_ENDPOINT_URL as `commsync local up` prints it");
            }
            ExitCode::FAILURE
        }
    }
}

/// Options shared by the commands that read or write the deployed tables.
#[derive(Debug, clap::Args)]
pub struct TableArgs {
    /// Name of the accounts table (the stack's AccountsTableName output).
    #[arg(long, env = "ACCOUNTS_TABLE", default_value = "AccountsTable")]
    pub accounts_table: String,
    /// Name of the events table (the stack's EventsTableName output).
    #[arg(long, env = "EVENTS_TABLE", default_value = "EventsTable")]
    pub events_table: String,
}

impl TableArgs {
    /// Builds a store against `AWS_ENDPOINT_URL` when set (with dummy credentials for a
    /// loopback endpoint), else against AWS with the default credential chain.
    pub async fn store(&self) -> commsync::store::Store {
        let config = match std::env::var("AWS_ENDPOINT_URL") {
            Ok(endpoint) if is_loopback(&endpoint) && std::env::var("AWS_ACCESS_KEY_ID").is_err() => {
                commsync::local::local_sdk_config(&endpoint)
            }
            _ => aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await,
        };
        commsync::store::Store::new(
            aws_sdk_dynamodb::Client::new(&config),
            commsync::store::Tables { accounts: self.accounts_table.clone(), events: self.events_table.clone() },
            std::time::Duration::from_secs(30 * 86_400),
        )
    }
}

fn is_loopback(endpoint: &str) -> bool {
    endpoint.contains("://127.") || endpoint.contains("://localhost") || endpoint.contains("://[::1]")
}
