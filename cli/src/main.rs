//! `commsync`: the local stack and operator commands.

mod accounts;
mod events;
mod gaps;
mod local;
mod ops;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

#[derive(Debug, Parser)]
#[command(
    name = "commsync",
    version,
    about = "Webhook-first sync for WhatsApp, Gmail and LinkedIn accounts",
    after_help = "Exit codes: 0 success; 1 failure (the message says what to do next); 2 invalid arguments; \
                  3 finished, but some work remains (see the output)."
)]
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
    /// What recoveries found since a time, and the webhook loss rate per provider.
    Ledger(ops::LedgerArgs),
    /// Inspect and redrive the dead-letter queues.
    #[command(subcommand)]
    Dlq(ops::DlqCommand),
    /// Inspect and replay quarantined webhook bodies.
    #[command(subcommand)]
    Quarantine(ops::QuarantineCommand),
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let default_level = match &cli.command {
        Command::Local(local::LocalCommand::Up(_)) => "info",
        Command::Local(local::LocalCommand::Demo) => "error",
        _ => "warn",
    };
    let filter =
        commsync::logging::filter_from(&std::env::var("COMMSYNC_LOG").unwrap_or_else(|_| default_level.to_string()));
    let colours = std::io::IsTerminal::is_terminal(&std::io::stderr());
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(colours).init();

    let result = match cli.command {
        Command::Local(command) => local::run(command).await,
        Command::Accounts(command) => accounts::run(command).await,
        Command::Events(command) => events::run(command).await,
        Command::Gaps(args) => gaps::run(args).await,
        Command::Ledger(args) => ops::ledger(args).await,
        Command::Dlq(command) => ops::dlq(command).await,
        Command::Quarantine(command) => ops::quarantine(command).await,
    };
    match result {
        Ok(()) if PARTIAL.load(std::sync::atomic::Ordering::SeqCst) => ExitCode::from(3),
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

/// Set by a command that finished but left work undone (bodies still quarantined, messages
/// not moved): the process then exits with 3.
pub static PARTIAL: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

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

/// Loads the SDK configuration: `AWS_ENDPOINT_URL` when set (with dummy credentials for a
/// loopback endpoint), else AWS with the default credential chain.
pub async fn sdk_config() -> aws_config::SdkConfig {
    match std::env::var("AWS_ENDPOINT_URL") {
        Ok(endpoint) if is_loopback(&endpoint) && std::env::var("AWS_ACCESS_KEY_ID").is_err() => {
            commsync::local::local_sdk_config(&endpoint)
        }
        _ => aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await,
    }
}

/// Queue URLs for the commands that read or send to queues; each defaults to the queue
/// named by its logical id (the local stack's names).
#[derive(Debug, clap::Args)]
pub struct QueueArgs {
    /// URL of EventsQueue (the stack's EventsQueueUrl output).
    #[arg(long, env = "EVENTS_QUEUE_URL")]
    pub events_queue_url: Option<String>,
    /// URL of EventsDLQ (the stack's EventsDLQUrl output).
    #[arg(long, env = "EVENTS_DLQ_URL")]
    pub events_dlq_url: Option<String>,
    /// URL of SyncQueue (the stack's SyncQueueUrl output).
    #[arg(long, env = "SYNC_QUEUE_URL")]
    pub sync_queue_url: Option<String>,
    /// URL of SyncDLQ (the stack's SyncDLQUrl output).
    #[arg(long, env = "SYNC_DLQ_URL")]
    pub sync_dlq_url: Option<String>,
}

impl QueueArgs {
    /// Returns the URL of a queue by logical id, looking the name up when no URL was given.
    pub async fn url(&self, sqs: &aws_sdk_sqs::Client, logical_id: &str) -> anyhow::Result<String> {
        let given = match logical_id {
            "EventsQueue" => &self.events_queue_url,
            "EventsDLQ" => &self.events_dlq_url,
            "SyncQueue" => &self.sync_queue_url,
            _ => &self.sync_dlq_url,
        };
        if let Some(url) = given {
            return Ok(url.clone());
        }
        let output = sqs.get_queue_url().queue_name(logical_id).send().await.map_err(|error| {
            anyhow::anyhow!(
                "cannot find the queue {logical_id} ({}); pass its URL with --{}-url",
                aws_sdk_sqs::error::DisplayErrorContext(&error),
                logical_id
                    .to_ascii_lowercase()
                    .replace("queue", "-queue")
                    .replace("dlq", "-dlq")
                    .trim_start_matches('-')
            )
        })?;
        Ok(output.queue_url.unwrap_or_default())
    }
}

impl TableArgs {
    /// Builds a store on the tables, against the endpoint `sdk_config` picks.
    pub async fn store(&self) -> commsync::store::Store {
        let config = sdk_config().await;
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
