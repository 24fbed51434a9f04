//! Fuzzes the Pub/Sub push body parser of the Gmail webhook on arbitrary verified bodies.

#![no_main]

use commsync::providers::gmail::push::parse;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(push) = parse(data) else { return };
    assert!(!push.message_id.is_empty(), "empty messageId accepted");
    assert!(push.message_id.len() <= 256, "messageId of {} bytes accepted", push.message_id.len());
    assert!(push.history_id > 0);
});
