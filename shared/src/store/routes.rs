//! Webhook routing: which tenant and account a provider's external id belongs to.
//!
//! Route items are read with `BatchGetItem` and cached per Lambda container for a short
//! time, so a warm function resolves a busy number without a DynamoDB call. Misses are
//! not cached, so a newly registered account receives webhooks at once.

use super::{backoff, get_s, keys, s, Item, Store, StoreError};
use crate::ids::{AccountId, ExternalId, Provider, TenantId};
use aws_sdk_dynamodb::types::KeysAndAttributes;
use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The owner of an external id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub tenant_id: TenantId,
    pub account_id: AccountId,
}

/// Maximum keys in one `BatchGetItem` request (a DynamoDB limit).
const BATCH_GET_MAX_KEYS: usize = 100;
const BATCH_GET_MAX_ATTEMPTS: u32 = 6;

/// A per-process cache of route items with a time to live.
#[derive(Debug)]
pub struct RouteCache {
    ttl: Duration,
    entries: Mutex<HashMap<(Provider, ExternalId), (Route, Instant)>>,
}

impl RouteCache {
    pub fn new(ttl: Duration) -> Self {
        Self { ttl, entries: Mutex::new(HashMap::new()) }
    }

    /// Resolves every id it can; ids without a route item are absent from the result.
    pub async fn resolve(
        &self,
        store: &Store,
        provider: Provider,
        external_ids: &[ExternalId],
    ) -> Result<HashMap<ExternalId, Route>, StoreError> {
        let mut resolved = HashMap::new();
        let mut missing = Vec::new();
        {
            let entries = self.entries.lock().expect("route cache lock poisoned");
            for external_id in external_ids.iter().collect::<HashSet<_>>() {
                match entries.get(&(provider, external_id.clone())) {
                    Some((route, cached_at)) if cached_at.elapsed() < self.ttl => {
                        resolved.insert(external_id.clone(), route.clone());
                    }
                    _ => missing.push(external_id.clone()),
                }
            }
        }
        if missing.is_empty() {
            return Ok(resolved);
        }

        let fetched = store.get_routes(provider, &missing).await?;
        let mut entries = self.entries.lock().expect("route cache lock poisoned");
        for (external_id, route) in fetched {
            entries.insert((provider, external_id.clone()), (route.clone(), Instant::now()));
            resolved.insert(external_id, route);
        }
        Ok(resolved)
    }

    /// Drops every cached route, so the next request reads route items again.
    pub fn clear(&self) {
        self.entries.lock().expect("route cache lock poisoned").clear();
    }
}

impl Store {
    /// Reads the route items of `external_ids` with `BatchGetItem`, retrying unprocessed keys.
    #[tracing::instrument(skip(self, external_ids), fields(provider = %provider, ids = external_ids.len()))]
    pub async fn get_routes(
        &self,
        provider: Provider,
        external_ids: &[ExternalId],
    ) -> Result<HashMap<ExternalId, Route>, StoreError> {
        let table = &self.tables.accounts;
        let mut routes = HashMap::new();

        for chunk in external_ids.chunks(BATCH_GET_MAX_KEYS) {
            let mut keys: Vec<Item> = chunk
                .iter()
                .map(|external_id| {
                    Item::from([
                        ("pk".to_string(), s(keys::route_pk(provider, external_id))),
                        ("sk".to_string(), s(keys::ROUTE_SK)),
                    ])
                })
                .collect();

            let mut attempt = 0;
            while !keys.is_empty() {
                let request = KeysAndAttributes::builder()
                    .set_keys(Some(keys))
                    .consistent_read(true)
                    .build()
                    .expect("keys are set");
                let output = self
                    .dynamodb
                    .batch_get_item()
                    .request_items(table, request)
                    .send()
                    .await
                    .map_err(|error| StoreError::dynamo("BatchGetItem", table, &error))?;

                for item in output.responses.unwrap_or_default().remove(table).unwrap_or_default() {
                    let (external_id, route) = parse_route(table, &item)?;
                    routes.insert(external_id, route);
                }

                keys = output
                    .unprocessed_keys
                    .and_then(|mut unprocessed| unprocessed.remove(table))
                    .map(|remaining| remaining.keys)
                    .unwrap_or_default();
                if !keys.is_empty() {
                    attempt += 1;
                    if attempt >= BATCH_GET_MAX_ATTEMPTS {
                        return Err(StoreError::TransactionRetriesExhausted {
                            operation: "BatchGetItem",
                            table: table.clone(),
                            attempts: attempt,
                            reasons: format!("{} keys unprocessed", keys.len()),
                        });
                    }
                    tokio::time::sleep(backoff(attempt)).await;
                }
            }
        }
        Ok(routes)
    }
}

fn parse_route(table: &str, item: &Item) -> Result<(ExternalId, Route), StoreError> {
    let malformed = |problem: &str| StoreError::Malformed {
        table: table.to_string(),
        key: get_s(item, "pk").unwrap_or("?").to_string(),
        problem: problem.to_string(),
    };
    let external_id = get_s(item, "external_id")
        .and_then(|value| ExternalId::parse(value).ok())
        .ok_or_else(|| malformed("external_id missing or invalid"))?;
    let tenant_id = get_s(item, "tenant_id")
        .and_then(|value| TenantId::parse(value).ok())
        .ok_or_else(|| malformed("tenant_id missing or invalid"))?;
    let account_id = get_s(item, "account_id")
        .and_then(|value| AccountId::parse(value).ok())
        .ok_or_else(|| malformed("account_id missing or invalid"))?;
    Ok((external_id, Route { tenant_id, account_id }))
}
