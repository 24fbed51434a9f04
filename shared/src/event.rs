//! The canonical event: the body of every `EventsQueue` message and of every stored event.

use crate::ids::{AccountId, EventId, Provider, TenantId};
use chrono::{DateTime, SecondsFormat, TimeZone, Utc};
use serde::{Deserialize, Serialize};

/// Version of the canonical event layout. Consumers reject versions they do not know.
pub const SCHEMA_VERSION: u32 = 1;

/// Kind of change, in provider-neutral terms.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum EventKind {
    #[serde(rename = "message.received")]
    MessageReceived,
    #[serde(rename = "message.status")]
    MessageStatus,
    #[serde(rename = "message.added")]
    MessageAdded,
    #[serde(rename = "message.deleted")]
    MessageDeleted,
    #[serde(rename = "labels.changed")]
    LabelsChanged,
    #[serde(rename = "social.action")]
    SocialAction,
    #[serde(rename = "lead.action")]
    LeadAction,
    #[serde(rename = "account.alert")]
    AccountAlert,
}

impl EventKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::MessageReceived => "message.received",
            EventKind::MessageStatus => "message.status",
            EventKind::MessageAdded => "message.added",
            EventKind::MessageDeleted => "message.deleted",
            EventKind::LabelsChanged => "labels.changed",
            EventKind::SocialAction => "social.action",
            EventKind::LeadAction => "lead.action",
            EventKind::AccountAlert => "account.alert",
        }
    }
}

/// Channel through which commsync learned of the event.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    Webhook,
    Recovery,
}

/// One change on one account, normalized across providers.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CanonicalEvent {
    pub schema_version: u32,
    pub event_id: EventId,
    pub tenant_id: TenantId,
    pub account_id: AccountId,
    pub provider: Provider,
    pub kind: EventKind,
    /// RFC 3339 time at which the provider reports the change happened.
    pub occurred_at: String,
    /// RFC 3339 time commsync first received the change.
    pub received_at: String,
    pub source: Source,
    pub data: serde_json::Value,
}

/// Formats a time as RFC 3339 in UTC with second precision, as every event field uses.
pub fn rfc3339(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// Converts Unix seconds (as providers send them) to RFC 3339, or `None` when out of range.
pub fn rfc3339_from_unix_seconds(seconds: i64) -> Option<String> {
    Utc.timestamp_opt(seconds, 0).single().map(rfc3339)
}

/// Converts Unix milliseconds to RFC 3339, or `None` when out of range.
pub fn rfc3339_from_unix_millis(millis: i64) -> Option<String> {
    Utc.timestamp_millis_opt(millis).single().map(|time| time.to_rfc3339_opts(SecondsFormat::Millis, true))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kind_serializes_with_dotted_name() {
        let json = serde_json::to_string(&EventKind::MessageStatus).unwrap();
        assert_eq!(json, "\"message.status\"");
    }

    #[test]
    fn unix_seconds_format_as_utc() {
        assert_eq!(rfc3339_from_unix_seconds(1_700_000_000).unwrap(), "2023-11-14T22:13:20Z");
    }
}
