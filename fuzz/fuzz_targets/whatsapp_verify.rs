//! Fuzzes `X-Hub-Signature-256` parsing and verification, and the GET handshake.
//!
//! Input: one length byte, the header value, then the body. Besides "never panics", the
//! target checks that only the real MAC verifies, in either letter case, and only for the
//! bytes it was computed over.

#![no_main]

mod common;

use commsync::providers::whatsapp::verify::{sign, HubSignature, SignatureError, WhatsAppVerifier};
use commsync::secret::Secret;
use libfuzzer_sys::fuzz_target;

const APP_SECRET: &str = "fuzz-app-secret";
const VERIFY_TOKEN: &str = "fuzz-verify-token";

fuzz_target!(|data: &[u8]| {
    let (header, body) = common::split_header(data);
    let verifier = WhatsAppVerifier::new(Secret::new(APP_SECRET), None, Secret::new(VERIFY_TOKEN));
    let expected = sign(&Secret::new(APP_SECRET), body);

    let _ = HubSignature::parse(header);
    if verifier.verify_signature(Some(header), body).is_ok() {
        let header = String::from_utf8_lossy(header).to_ascii_lowercase();
        assert!(header.contains(&expected), "header {header:?} verified without the body's MAC {expected}");
    }

    assert_eq!(verifier.verify_signature(Some(expected.as_bytes()), body), Ok(()));
    assert_eq!(verifier.verify_signature(Some(expected.to_ascii_uppercase().as_bytes()), body), Ok(()));
    let mut other_body = body.to_vec();
    other_body.push(b' ');
    assert_eq!(verifier.verify_signature(Some(expected.as_bytes()), &other_body), Err(SignatureError::Mismatch));

    // The handshake: the header part is the offered verify token, the body the challenge.
    let offered = String::from_utf8_lossy(header);
    let challenge = String::from_utf8_lossy(body);
    if verifier.verify_handshake(Some("subscribe"), Some(&offered), Some(&challenge)).is_ok() {
        assert_eq!(offered, VERIFY_TOKEN);
    }
});
