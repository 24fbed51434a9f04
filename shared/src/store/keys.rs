//! Partition and sort keys of every item kind. The `#` separator never appears inside a
//! part because `TenantId`, `AccountId` and event id parts reject it or come after it.

use crate::ids::{AccountId, EventId, ExternalId, Provider, TenantId};

pub fn account_pk(tenant_id: &TenantId) -> String {
    format!("TENANT#{tenant_id}")
}

pub fn account_sk(account_id: &AccountId) -> String {
    format!("ACCOUNT#{account_id}")
}

pub fn route_pk(provider: Provider, external_id: &ExternalId) -> String {
    format!("ROUTE#{provider}#{external_id}")
}

pub const ROUTE_SK: &str = "ROUTE";

/// Partition of everything stored for one account in `EventsTable`.
pub fn account_partition(tenant_id: &TenantId, account_id: &AccountId) -> String {
    format!("ACCOUNT#{tenant_id}#{account_id}")
}

pub fn event_sk(event_id: &EventId) -> String {
    format!("EVENT#{event_id}")
}

pub fn message_sk(provider_message_id: &str) -> String {
    format!("MESSAGE#{provider_message_id}")
}

pub fn quarantine_pk(provider: Provider) -> String {
    format!("QUARANTINE#{provider}")
}
