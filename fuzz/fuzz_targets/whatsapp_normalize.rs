//! Fuzzes the WhatsApp notification parser on arbitrary verified bodies.
//!
//! Every event it returns must carry a `whatsapp:` event id and read back from the JSON
//! that storage and `EventsQueue` keep.

#![no_main]

mod common;

use commsync::ids::Provider;
use commsync::providers::whatsapp::normalize::normalize;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(batch) = normalize(data) else { return };
    for event in &batch.events {
        assert!(event.event_id.as_str().starts_with("whatsapp:"), "event id {}", event.event_id);
        common::assert_event_round_trips(event, Provider::WhatsApp);
    }
});
