//! Fuzzes the LinkedIn webhook parser (social action notifications and lead actions) on
//! arbitrary verified bodies.
//!
//! Every event it returns must be routed by a `urn:li:` id and read back from the JSON
//! that storage and `EventsQueue` keep.

#![no_main]

mod common;

use commsync::ids::Provider;
use commsync::providers::linkedin::normalize::normalize;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(batch) = normalize(data) else { return };
    for event in &batch.events {
        assert!(event.external_id.as_str().starts_with("urn:li:"), "routed by {}", event.external_id);
        common::assert_event_round_trips(event, Provider::LinkedIn);
    }
});
