//! Account items (`pk=TENANT#{tenant}`, `sk=ACCOUNT#{account}`) and their route items.

use super::{get_n, get_s, keys, n, s, Item, Store, StoreError};
use crate::event::rfc3339;
use crate::ids::{AccountId, ExternalId, Provider, TenantId};
use aws_sdk_dynamodb::types::{Put, TransactWriteItem};
use chrono::{DateTime, Utc};

/// An account to register, as `commsync accounts add` takes it.
#[derive(Debug, Clone)]
pub struct NewAccount {
    pub tenant_id: TenantId,
    pub account_id: AccountId,
    pub provider: Provider,
    pub external_id: ExternalId,
    /// WhatsApp: the WhatsApp Business Account id, needed to check the app's subscription.
    pub waba_id: Option<String>,
}

/// An account item as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct AccountRecord {
    pub tenant_id: TenantId,
    pub account_id: AccountId,
    pub provider: Provider,
    pub external_id: ExternalId,
    pub status: String,
    pub created_at: String,
    /// New canonical events the webhooks stored for this account.
    pub webhook_events: u64,
    /// Webhook requests that carried at least one item for this account.
    pub webhook_requests: u64,
    /// Statuses that arrived for a message commsync had not seen.
    pub orphan_statuses: u64,
    pub last_webhook_at: Option<String>,
    /// Gmail: the highest historyId a push announced.
    pub notified_history_id: Option<u64>,
    /// Epoch seconds until which a recovery job for this account is pending.
    pub recovery_lease_until: Option<i64>,
    /// Lease owner: a Gmail push's Pub/Sub message id, when a push took the lease.
    pub recovery_lease_holder: Option<String>,
    /// Gmail: the historyId up to which changes are synced.
    pub history_cursor: Option<u64>,
    /// Gmail: when the cursor was last moved, epoch seconds.
    pub history_cursor_at: Option<i64>,
    /// Gmail: when the current `users.watch` stops, epoch milliseconds.
    pub watch_expiration_ms: Option<u64>,
    /// WhatsApp: the WhatsApp Business Account the number belongs to.
    pub waba_id: Option<String>,
    /// Recoveries that failed in a row since the last success.
    pub consecutive_failures: u64,
    pub last_recovery_at: Option<String>,
    pub last_error: Option<String>,
    /// Reason for `status`, when it is not `active`.
    pub status_reason: Option<String>,
    /// Epoch seconds of the last webhook request, and of the last one with statuses.
    pub last_webhook_epoch: Option<i64>,
    pub last_status_epoch: Option<i64>,
    /// Gmail: when a push last raised `notified_history_id`, epoch seconds.
    pub notified_epoch: Option<i64>,
    /// WhatsApp status events counted by the webhooks, by status.
    pub status_sent: u64,
    pub status_delivered: u64,
    pub status_read: u64,
    pub status_failed: u64,
    /// State the gap detector keeps between runs.
    pub detector: crate::gaps::DetectorState,
}

/// The liveness counters one webhook request adds to one account.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ActivityCounters {
    pub new_events: u64,
    pub orphan_statuses: u64,
    /// New WhatsApp status events by status (`played` counts as `read`).
    pub status_sent: u64,
    pub status_delivered: u64,
    pub status_read: u64,
    pub status_failed: u64,
}

impl ActivityCounters {
    pub fn statuses(&self) -> u64 {
        self.status_sent + self.status_delivered + self.status_read + self.status_failed
    }
}

impl Store {
    /// Creates the account item and its route item in one transaction.
    ///
    /// Registering the same account again is a no-op; a route that belongs to another
    /// account is rejected, so one tenant can never take over another tenant's number.
    #[tracing::instrument(skip(self, account), fields(tenant = %account.tenant_id, account = %account.account_id, provider = %account.provider))]
    pub async fn register_account(&self, account: &NewAccount) -> Result<(), StoreError> {
        let table = &self.tables.accounts;
        let now = rfc3339(Utc::now());

        let mut account_item = Item::from([
            ("pk".to_string(), s(keys::account_pk(&account.tenant_id))),
            ("sk".to_string(), s(keys::account_sk(&account.account_id))),
            ("tenant_id".to_string(), s(account.tenant_id.as_str())),
            ("account_id".to_string(), s(account.account_id.as_str())),
            ("provider".to_string(), s(account.provider.as_str())),
            ("external_id".to_string(), s(account.external_id.as_str())),
            ("status".to_string(), s("active")),
            ("created_at".to_string(), s(now.clone())),
        ]);
        if let Some(waba_id) = &account.waba_id {
            account_item.insert("waba_id".to_string(), s(waba_id.clone()));
        }
        let route_item = Item::from([
            ("pk".to_string(), s(keys::route_pk(account.provider, &account.external_id))),
            ("sk".to_string(), s(keys::ROUTE_SK)),
            ("provider".to_string(), s(account.provider.as_str())),
            ("external_id".to_string(), s(account.external_id.as_str())),
            ("tenant_id".to_string(), s(account.tenant_id.as_str())),
            ("account_id".to_string(), s(account.account_id.as_str())),
            ("created_at".to_string(), s(now)),
        ]);

        match self.get_account(&account.tenant_id, &account.account_id).await {
            Ok(existing) if existing.provider == account.provider && existing.external_id == account.external_id => {}
            Ok(existing) => {
                return Err(StoreError::AccountExists {
                    tenant_id: account.tenant_id.to_string(),
                    account_id: account.account_id.to_string(),
                    provider: existing.provider.to_string(),
                    external_id: existing.external_id.to_string(),
                });
            }
            Err(StoreError::AccountNotFound { .. }) => {}
            Err(error) => return Err(error),
        }
        if let Some(existing) = self
            .get_routes(account.provider, std::slice::from_ref(&account.external_id))
            .await?
            .remove(&account.external_id)
        {
            if existing.tenant_id == account.tenant_id && existing.account_id == account.account_id {
                return Ok(());
            }
            return Err(route_taken(account, &existing));
        }

        let put_account = Put::builder()
            .table_name(table)
            .set_item(Some(account_item))
            .condition_expression("attribute_not_exists(pk)")
            .build()
            .expect("table and item are set");
        let put_route = Put::builder()
            .table_name(table)
            .set_item(Some(route_item))
            .condition_expression("attribute_not_exists(pk)")
            .build()
            .expect("table and item are set");

        let result = self
            .dynamodb
            .transact_write_items()
            .transact_items(TransactWriteItem::builder().put(put_account).build())
            .transact_items(TransactWriteItem::builder().put(put_route).build())
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(error) => {
                // A concurrent registration may have won, so report the current route owner.
                let owner = self
                    .get_routes(account.provider, std::slice::from_ref(&account.external_id))
                    .await?
                    .remove(&account.external_id);
                match owner {
                    Some(existing)
                        if existing.tenant_id == account.tenant_id && existing.account_id == account.account_id =>
                    {
                        Ok(())
                    }
                    Some(existing) => Err(route_taken(account, &existing)),
                    None => Err(StoreError::dynamo("TransactWriteItems", table, &error)),
                }
            }
        }
    }

    /// Reads one account item.
    pub async fn get_account(&self, tenant_id: &TenantId, account_id: &AccountId) -> Result<AccountRecord, StoreError> {
        let table = &self.tables.accounts;
        let output = self
            .dynamodb
            .get_item()
            .table_name(table)
            .key("pk", s(keys::account_pk(tenant_id)))
            .key("sk", s(keys::account_sk(account_id)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|error| StoreError::dynamo("GetItem", table, &error))?;
        let item = output.item.ok_or_else(|| StoreError::AccountNotFound {
            tenant_id: tenant_id.to_string(),
            account_id: account_id.to_string(),
        })?;
        parse_account(table, &item)
    }

    /// Lists every account item of every tenant, sorted by tenant and account.
    pub async fn list_accounts(&self) -> Result<Vec<AccountRecord>, StoreError> {
        let table = &self.tables.accounts;
        let mut accounts = Vec::new();
        let mut start_key = None;
        loop {
            let output = self
                .dynamodb
                .scan()
                .table_name(table)
                .filter_expression("begins_with(sk, :account)")
                .expression_attribute_values(":account", s("ACCOUNT#"))
                .set_exclusive_start_key(start_key)
                .send()
                .await
                .map_err(|error| StoreError::dynamo("Scan", table, &error))?;
            for item in output.items.unwrap_or_default() {
                accounts.push(parse_account(table, &item)?);
            }
            start_key = output.last_evaluated_key;
            if start_key.is_none() {
                break;
            }
        }
        accounts.sort_by(|a, b| (&a.tenant_id, &a.account_id).cmp(&(&b.tenant_id, &b.account_id)));
        Ok(accounts)
    }

    /// Disables an account: its status becomes `disabled` and its route item is deleted, in
    /// one transaction, so new webhooks for its external id are quarantined and the detector
    /// leaves it alone. The account's stored events stay.
    pub async fn disable_account(
        &self,
        tenant_id: &TenantId,
        account_id: &AccountId,
    ) -> Result<AccountRecord, StoreError> {
        let table = &self.tables.accounts;
        let account = self.get_account(tenant_id, account_id).await?;
        let disable = aws_sdk_dynamodb::types::Update::builder()
            .table_name(table)
            .key("pk", s(keys::account_pk(tenant_id)))
            .key("sk", s(keys::account_sk(account_id)))
            .update_expression("SET #status = :disabled, status_reason = :reason REMOVE recovery_lease_until")
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":disabled", s("disabled"))
            .expression_attribute_values(":reason", s("disabled by an operator"))
            .build()
            .expect("table, key and expression are set");
        let delete_route = aws_sdk_dynamodb::types::Delete::builder()
            .table_name(table)
            .key("pk", s(keys::route_pk(account.provider, &account.external_id)))
            .key("sk", s(keys::ROUTE_SK))
            .condition_expression("attribute_not_exists(pk) OR (tenant_id = :tenant AND account_id = :account)")
            .expression_attribute_values(":tenant", s(tenant_id.as_str()))
            .expression_attribute_values(":account", s(account_id.as_str()))
            .build()
            .expect("table and key are set");
        self.dynamodb
            .transact_write_items()
            .transact_items(TransactWriteItem::builder().update(disable).build())
            .transact_items(TransactWriteItem::builder().delete(delete_route).build())
            .send()
            .await
            .map_err(|error| StoreError::dynamo("TransactWriteItems", table, &error))?;
        self.get_account(tenant_id, account_id).await
    }

    /// Adds one webhook request's counters to the account item: one `UpdateItem` per
    /// account per request, never in a transaction with event writes.
    ///
    /// NOTE: the counters are estimates for the gap detector, not exact under retries: a
    /// retried request whose update failed counts its events as duplicates (not counted),
    /// and an SDK retry after a lost response adds twice.
    #[tracing::instrument(skip(self, counters), fields(tenant = %tenant_id, account = %account_id))]
    pub async fn record_webhook_activity(
        &self,
        tenant_id: &TenantId,
        account_id: &AccountId,
        counters: ActivityCounters,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let table = &self.tables.accounts;
        let mut expression = "ADD webhook_events :events, webhook_requests :one, orphan_statuses :orphans, \
             status_sent :sent, status_delivered :delivered, status_read :read, status_failed :failed \
             SET last_webhook_at = :at, last_webhook_epoch = :epoch"
            .to_string();
        if counters.statuses() > 0 {
            expression.push_str(", last_status_epoch = :epoch");
        }
        let result = self
            .dynamodb
            .update_item()
            .table_name(table)
            .key("pk", s(keys::account_pk(tenant_id)))
            .key("sk", s(keys::account_sk(account_id)))
            .update_expression(expression)
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_values(":events", n(counters.new_events))
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":orphans", n(counters.orphan_statuses))
            .expression_attribute_values(":sent", n(counters.status_sent))
            .expression_attribute_values(":delivered", n(counters.status_delivered))
            .expression_attribute_values(":read", n(counters.status_read))
            .expression_attribute_values(":failed", n(counters.status_failed))
            .expression_attribute_values(":at", s(rfc3339(at)))
            .expression_attribute_values(":epoch", n(at.timestamp()))
            .send()
            .await;

        match result {
            Ok(_) => Ok(()),
            Err(error) if error.as_service_error().is_some_and(|e| e.is_conditional_check_failed_exception()) => {
                // The route exists but the account item does not (deleted by hand); the events are stored regardless.
                tracing::warn!(tenant = %tenant_id, account = %account_id, "account item missing; activity counters not recorded");
                Ok(())
            }
            Err(error) => Err(StoreError::dynamo("UpdateItem", table, &error)),
        }
    }
}

fn route_taken(account: &NewAccount, existing: &super::Route) -> StoreError {
    StoreError::RouteTaken {
        provider: account.provider.to_string(),
        external_id: account.external_id.to_string(),
        tenant_id: existing.tenant_id.to_string(),
        account_id: existing.account_id.to_string(),
    }
}

pub(crate) fn parse_account(table: &str, item: &Item) -> Result<AccountRecord, StoreError> {
    let malformed = |problem: &str| StoreError::Malformed {
        table: table.to_string(),
        key: format!("{}/{}", get_s(item, "pk").unwrap_or("?"), get_s(item, "sk").unwrap_or("?")),
        problem: problem.to_string(),
    };
    let provider: Provider = get_s(item, "provider")
        .and_then(|value| value.parse().ok())
        .ok_or_else(|| malformed("provider missing or unknown"))?;
    Ok(AccountRecord {
        tenant_id: get_s(item, "tenant_id")
            .and_then(|value| TenantId::parse(value).ok())
            .ok_or_else(|| malformed("tenant_id missing or invalid"))?,
        account_id: get_s(item, "account_id")
            .and_then(|value| AccountId::parse(value).ok())
            .ok_or_else(|| malformed("account_id missing or invalid"))?,
        provider,
        external_id: get_s(item, "external_id")
            .and_then(|value| ExternalId::parse(value).ok())
            .ok_or_else(|| malformed("external_id missing or invalid"))?,
        status: get_s(item, "status").unwrap_or("active").to_string(),
        created_at: get_s(item, "created_at").unwrap_or_default().to_string(),
        webhook_events: get_n(item, "webhook_events").unwrap_or(0),
        webhook_requests: get_n(item, "webhook_requests").unwrap_or(0),
        orphan_statuses: get_n(item, "orphan_statuses").unwrap_or(0),
        last_webhook_at: get_s(item, "last_webhook_at").map(str::to_string),
        notified_history_id: get_n(item, "notified_history_id"),
        recovery_lease_until: get_n(item, "recovery_lease_until"),
        recovery_lease_holder: get_s(item, "recovery_lease_holder").map(str::to_string),
        history_cursor: get_n(item, "history_cursor"),
        history_cursor_at: get_n(item, "history_cursor_at"),
        watch_expiration_ms: get_n(item, "watch_expiration_ms"),
        waba_id: get_s(item, "waba_id").map(str::to_string),
        consecutive_failures: get_n(item, "consecutive_failures").unwrap_or(0),
        last_recovery_at: get_s(item, "last_recovery_at").map(str::to_string),
        last_error: get_s(item, "last_error").map(str::to_string),
        status_reason: get_s(item, "status_reason").map(str::to_string),
        last_webhook_epoch: get_n(item, "last_webhook_epoch"),
        last_status_epoch: get_n(item, "last_status_epoch"),
        notified_epoch: get_n(item, "notified_epoch"),
        status_sent: get_n(item, "status_sent").unwrap_or(0),
        status_delivered: get_n(item, "status_delivered").unwrap_or(0),
        status_read: get_n(item, "status_read").unwrap_or(0),
        status_failed: get_n(item, "status_failed").unwrap_or(0),
        detector: crate::gaps::DetectorState::from_item(item),
    })
}
