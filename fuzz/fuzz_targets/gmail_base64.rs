//! Fuzzes `decode_base64_any`, which decodes the `message.data` of a Pub/Sub push.
//!
//! Arbitrary text must not panic, and the input bytes encoded in any of the four
//! alphabet and padding combinations must decode back to the same bytes.

#![no_main]

use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use base64::Engine;
use commsync::providers::gmail::push::decode_base64_any;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = decode_base64_any(text);
    }

    for (name, engine) in [
        ("standard", STANDARD),
        ("standard, no padding", STANDARD_NO_PAD),
        ("URL-safe", URL_SAFE),
        ("URL-safe, no padding", URL_SAFE_NO_PAD),
    ] {
        let encoded = engine.encode(data);
        assert_eq!(decode_base64_any(&encoded).as_deref(), Some(data), "{name} encoding {encoded:?}");
    }
});
