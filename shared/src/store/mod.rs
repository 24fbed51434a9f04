//! DynamoDB access: accounts and their webhook routes, canonical events, message status,
//! and quarantined bodies. Every write is conditional where a retry could repeat it.

pub mod accounts;
pub mod credentials;
pub mod events;
pub mod health;
pub mod keys;
pub mod ledger;
pub mod mailbox;
pub mod messages;
pub mod quarantine;
pub mod routes;

use aws_sdk_dynamodb::error::{DisplayErrorContext, ProvideErrorMetadata};
use aws_sdk_dynamodb::types::AttributeValue;
use std::collections::HashMap;
use std::time::Duration;
use thiserror::Error;

pub use accounts::{AccountRecord, ActivityCounters, NewAccount};
pub use credentials::Credentials;
pub use events::{StoredEvent, WriteOutcome};
pub use health::PreviousHealth;
pub use ledger::LedgerEntry;
pub use mailbox::PushRecord;
pub use messages::{MessageRecord, StatusOutcome};
pub use quarantine::QuarantineRecord;
pub use routes::{Route, RouteCache};

/// The attribute DynamoDB's TTL reads on `EventsTable` (epoch seconds); the template's
/// `TimeToLiveSpecification` must name the same one.
pub const TTL_ATTRIBUTE: &str = "expires_at";

/// A DynamoDB item as the SDK represents it.
pub type Item = HashMap<String, AttributeValue>;

/// Failures of the storage layer.
#[derive(Debug, Error)]
pub enum StoreError {
    #[error("DynamoDB {operation} on table {table} failed: {message}")]
    Dynamo { operation: &'static str, table: String, message: String, throttled: bool },
    #[error("DynamoDB {operation} on table {table} was still cancelled after {attempts} attempts: {reasons}")]
    TransactionRetriesExhausted { operation: &'static str, table: String, attempts: u32, reasons: String },
    #[error("item {key} in table {table} is malformed: {problem}")]
    Malformed { table: String, key: String, problem: String },
    #[error("{provider} {external_id} is already routed to tenant {tenant_id} account {account_id}; one external id routes to exactly one account")]
    RouteTaken { provider: String, external_id: String, tenant_id: String, account_id: String },
    #[error("account {account_id} of tenant {tenant_id} already exists for {provider} {external_id}; choose another --account")]
    AccountExists { tenant_id: String, account_id: String, provider: String, external_id: String },
    #[error("account {account_id} of tenant {tenant_id} not found; create it with `commsync accounts add`")]
    AccountNotFound { tenant_id: String, account_id: String },
}

impl StoreError {
    pub(crate) fn dynamo<E>(operation: &'static str, table: &str, error: &aws_sdk_dynamodb::error::SdkError<E>) -> Self
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
    {
        let code = error.code().unwrap_or_default();
        let throttled =
            matches!(code, "ProvisionedThroughputExceededException" | "ThrottlingException" | "RequestLimitExceeded");
        StoreError::Dynamo {
            operation,
            table: table.to_string(),
            message: DisplayErrorContext(error).to_string(),
            throttled,
        }
    }
}

/// The tables commsync uses, by their deployed names.
#[derive(Debug, Clone)]
pub struct Tables {
    pub accounts: String,
    pub events: String,
}

/// The DynamoDB client and table names every store function takes.
#[derive(Debug, Clone)]
pub struct Store {
    pub(crate) dynamodb: aws_sdk_dynamodb::Client,
    pub(crate) tables: Tables,
    /// How long stored events live before DynamoDB's TTL removes them.
    pub(crate) event_retention: Duration,
}

impl Store {
    pub fn new(dynamodb: aws_sdk_dynamodb::Client, tables: Tables, event_retention: Duration) -> Self {
        Self { dynamodb, tables, event_retention }
    }

    pub fn tables(&self) -> &Tables {
        &self.tables
    }

    pub fn client(&self) -> &aws_sdk_dynamodb::Client {
        &self.dynamodb
    }
}

/// Backoff before retry `attempt` (0-based) of a cancelled transaction or unprocessed batch:
/// 25 ms doubling to at most 800 ms, with jitter from the clock's nanoseconds.
pub(crate) fn backoff(attempt: u32) -> Duration {
    let base = 25u64 << attempt.min(5);
    let jitter = u64::from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|elapsed| elapsed.subsec_nanos())
            .unwrap_or(0),
    ) % (base / 2 + 1);
    Duration::from_millis(base + jitter)
}

pub fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

pub fn n(value: impl ToString) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

pub fn get_s<'a>(item: &'a Item, name: &str) -> Option<&'a str> {
    item.get(name).and_then(|value| value.as_s().ok()).map(String::as_str)
}

pub fn get_n<T: std::str::FromStr>(item: &Item, name: &str) -> Option<T> {
    item.get(name).and_then(|value| value.as_n().ok()).and_then(|text| text.parse().ok())
}
