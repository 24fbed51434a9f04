//! The gap ledger (`sk=GAP#{detected_at}#{kind}` in the account's partition): each gap
//! finding and each recovery, with what it found. Recoveries record how many events they
//! recovered, which gives a per-provider webhook loss rate over time.

use super::{get_n, get_s, keys, n, s, Store, StoreError};
use crate::event::rfc3339;
use crate::ids::{AccountId, Provider, TenantId};
use chrono::{DateTime, Utc};
use serde::Serialize;

/// Ledger entries are kept 90 days.
const LEDGER_RETENTION_SECONDS: i64 = 90 * 86_400;

/// One ledger entry.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LedgerEntry {
    pub at: String,
    /// `recovery:{job kind}` for recoveries, the finding kind for gap findings.
    pub kind: String,
    pub provider: Provider,
    /// What caused it: `gmail_push`, a finding kind, `operator`.
    pub reason: String,
    pub job_id: String,
    /// New events the recovery stored: each was missed by the webhooks (or not yet delivered).
    pub recovered_events: u64,
    pub api_calls: u64,
    /// `recovered`, `nothing_missing`, `retry`, `reconnect_required`, `configuration_error`, `failed`.
    pub outcome: String,
    pub detail: String,
}

impl Store {
    /// Writes a ledger entry for an account.
    pub async fn record_ledger(
        &self,
        tenant_id: &TenantId,
        account_id: &AccountId,
        entry: &LedgerEntry,
    ) -> Result<(), StoreError> {
        let table = &self.tables.events;
        let at: DateTime<Utc> = entry.at.parse().unwrap_or_else(|_| Utc::now());
        self.dynamodb
            .put_item()
            .table_name(table)
            .item("pk", s(keys::account_partition(tenant_id, account_id)))
            .item("sk", s(ledger_sk(entry)))
            .item("kind", s(entry.kind.clone()))
            .item("provider", s(entry.provider.as_str()))
            .item("reason", s(entry.reason.clone()))
            .item("job_id", s(entry.job_id.clone()))
            .item("recovered_events", n(entry.recovered_events))
            .item("api_calls", n(entry.api_calls))
            .item("outcome", s(entry.outcome.clone()))
            .item("detail", s(entry.detail.chars().take(1000).collect::<String>()))
            .item("expires_at", n(at.timestamp() + LEDGER_RETENTION_SECONDS))
            .send()
            .await
            .map_err(|error| StoreError::dynamo("PutItem", table, &error))?;
        Ok(())
    }

    /// Lists an account's ledger entries, oldest first.
    pub async fn list_ledger(
        &self,
        tenant_id: &TenantId,
        account_id: &AccountId,
    ) -> Result<Vec<LedgerEntry>, StoreError> {
        let items = self.query_partition(&keys::account_partition(tenant_id, account_id), "GAP#").await?;
        Ok(items.iter().map(ledger_entry).collect())
    }
}

impl Store {
    /// Reads every account's ledger entries from `since` (RFC 3339) on, with the account
    /// partition they belong to. A scan: for operators, not for hot paths.
    pub async fn scan_ledger(&self, since: &str) -> Result<Vec<(String, LedgerEntry)>, StoreError> {
        let table = &self.tables.events;
        let mut entries = Vec::new();
        let mut start_key = None;
        loop {
            let output = self
                .dynamodb
                .scan()
                .table_name(table)
                .filter_expression("begins_with(sk, :gap) AND sk >= :from")
                .expression_attribute_values(":gap", s("GAP#"))
                .expression_attribute_values(":from", s(format!("GAP#{since}")))
                .set_exclusive_start_key(start_key)
                .send()
                .await
                .map_err(|error| StoreError::dynamo("Scan", table, &error))?;
            for item in output.items.unwrap_or_default() {
                let partition = get_s(&item, "pk").unwrap_or_default().trim_start_matches("ACCOUNT#").to_string();
                entries.push((partition, ledger_entry(&item)));
            }
            start_key = output.last_evaluated_key;
            if start_key.is_none() {
                break;
            }
        }
        entries.sort_by(|a, b| a.1.at.cmp(&b.1.at));
        Ok(entries)
    }
}

fn ledger_entry(item: &super::Item) -> LedgerEntry {
    LedgerEntry {
        at: get_s(item, "sk").and_then(|sk| sk.split('#').nth(1)).unwrap_or_default().to_string(),
        kind: get_s(item, "kind").unwrap_or_default().to_string(),
        provider: get_s(item, "provider").and_then(|value| value.parse().ok()).unwrap_or(Provider::WhatsApp),
        reason: get_s(item, "reason").unwrap_or_default().to_string(),
        job_id: get_s(item, "job_id").unwrap_or_default().to_string(),
        recovered_events: get_n(item, "recovered_events").unwrap_or(0),
        api_calls: get_n(item, "api_calls").unwrap_or(0),
        outcome: get_s(item, "outcome").unwrap_or_default().to_string(),
        detail: get_s(item, "detail").unwrap_or_default().to_string(),
    }
}

/// Sort key of a ledger entry: `GAP#{at}#{kind}#{unique}`. The suffix (the write's
/// sub-second time and the job id) keeps two entries of one kind in one second apart;
/// readers split on `#` and take the second part as the time.
fn ledger_sk(entry: &LedgerEntry) -> String {
    let now = Utc::now();
    let job: String = entry.job_id.chars().map(|c| if c == '#' { '-' } else { c }).collect();
    format!("GAP#{}#{}#{:09}#{job}", entry.at, entry.kind, now.timestamp_subsec_nanos())
}

/// Formats the time of a ledger entry.
pub fn ledger_time(at: DateTime<Utc>) -> String {
    rfc3339(at)
}
