//! The ingest path every provider shares: route each item to its account, store it once,
//! raise message status, send new canonical events to `EventsQueue`, and update each
//! account's liveness counters once per request. Recoveries use the same path.

mod pipeline;
pub mod replay;
pub mod webhook;

pub use pipeline::{event_depth, ingest, IngestDeps, IngestError, IngestReport, Limits, MAX_EVENT_DEPTH};

use crate::event::EventKind;
use crate::ids::{EventId, ExternalId};
use serde_json::Value;

/// A normalized item that is not yet routed to a tenant.
#[derive(Debug, Clone, PartialEq)]
pub struct PendingEvent {
    /// The provider's id of the account the item belongs to; routing looks it up.
    pub external_id: ExternalId,
    pub event_id: EventId,
    pub kind: EventKind,
    pub occurred_at: String,
    pub data: Value,
    /// Present for message status events, which also raise the message item's status.
    pub status: Option<StatusUpdate>,
}

/// A status to apply to a message item.
#[derive(Debug, Clone, PartialEq)]
pub struct StatusUpdate {
    pub provider_message_id: String,
    pub status: String,
    /// Higher ranks replace lower ones; 0 never changes the stored status.
    pub rank: u8,
    /// Whether this status, seen first for a message, means earlier statuses were missed.
    pub orphan_if_first: bool,
    pub occurred_at: String,
    pub errors: Value,
}

/// What a provider's parser made of one verified body.
#[derive(Debug, Default)]
pub struct NormalizedBatch {
    pub events: Vec<PendingEvent>,
    /// Parts of the body that could not be read; the body is quarantined with them.
    pub problems: Vec<String>,
}
