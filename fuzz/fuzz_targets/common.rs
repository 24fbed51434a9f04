//! Helpers the fuzz targets share: splitting one input into a header and a body, and
//! the check that a normalized item survives the trip through storage and the queue.

#![allow(dead_code)]

use commsync::event::{CanonicalEvent, Source, SCHEMA_VERSION};
use commsync::ids::{AccountId, Provider, TenantId};
use commsync::ingest::PendingEvent;

/// Splits `data` into a header value and a body. The first byte is the header length,
/// so the fuzzer mutates both parts independently.
pub fn split_header(data: &[u8]) -> (&[u8], &[u8]) {
    let Some((&length, rest)) = data.split_first() else { return (&[], &[]) };
    rest.split_at(usize::from(length).min(rest.len()))
}

/// Builds the canonical event the ingest path would store for `item` and asserts that a
/// consumer can read it back. Storage and `EventsQueue` carry the event as JSON text, and
/// readers parse it with serde_json's default recursion limit of 128.
pub fn assert_event_round_trips(item: &PendingEvent, provider: Provider) {
    let event = CanonicalEvent {
        schema_version: SCHEMA_VERSION,
        event_id: item.event_id.clone(),
        tenant_id: TenantId::parse("fuzz-tenant").unwrap(),
        account_id: AccountId::parse("fuzz-account").unwrap(),
        provider,
        kind: item.kind,
        occurred_at: item.occurred_at.clone(),
        received_at: "2026-01-01T00:00:00Z".to_string(),
        source: Source::Webhook,
        data: item.data.clone(),
    };
    // The ingest path quarantines events nested deeper than this instead of storing them.
    if commsync::ingest::event_depth(&event) > commsync::ingest::MAX_EVENT_DEPTH {
        return;
    }
    let text = serde_json::to_string(&event).expect("a canonical event always serializes");
    if let Err(error) = serde_json::from_str::<CanonicalEvent>(&text) {
        panic!("event {} does not read back from its stored JSON: {error}", item.event_id);
    }
}
