//! Fuzzes `X-LI-Signature` verification and the `challengeResponse` of the GET challenge.
//!
//! Input: one length byte, the header value, then the body. Only the MAC of
//! `"hmacsha256=" + body` under a configured secret may verify, with or without the
//! `hmacsha256=` prefix on the header, in either letter case.

#![no_main]

mod common;

use commsync::providers::linkedin::verify::{sign, LinkedInVerifier, SignatureError};
use commsync::secret::Secret;
use libfuzzer_sys::fuzz_target;

const CLIENT_SECRET: &str = "fuzz-client-secret";
const CHILD_SECRET: &str = "fuzz-child-secret";

fuzz_target!(|data: &[u8]| {
    let (header, body) = common::split_header(data);
    let verifier =
        LinkedInVerifier::new(Secret::new(CLIENT_SECRET), vec![("4242".to_string(), Secret::new(CHILD_SECRET))]);
    let expected = sign(&Secret::new(CLIENT_SECRET), body);
    let expected_child = sign(&Secret::new(CHILD_SECRET), body);

    if verifier.verify_signature(Some(header), body).is_ok() {
        let header = String::from_utf8_lossy(header).to_ascii_lowercase();
        assert!(
            header.contains(&expected) || header.contains(&expected_child),
            "header {header:?} verified without the body's MAC"
        );
    }

    for header in
        [expected.clone(), format!("hmacsha256={expected}"), format!("HMACSHA256={}", expected.to_uppercase())]
    {
        assert_eq!(verifier.verify_signature(Some(header.as_bytes()), body), Ok(()), "header {header}");
    }
    let mut other_body = body.to_vec();
    other_body.push(b' ');
    assert_eq!(verifier.verify_signature(Some(expected.as_bytes()), &other_body), Err(SignatureError::Mismatch));

    // The challenge: the header part is the code, the body the applicationId.
    let code = String::from_utf8_lossy(header);
    let application_id = String::from_utf8_lossy(body);
    let answer = verifier.challenge_response(Some(&code), Some(&application_id));
    let known_application = application_id.is_empty() || application_id == "4242";
    let valid_code = !code.is_empty() && code.len() <= 256;
    assert_eq!(answer.is_ok(), known_application && valid_code, "code {code:?} application {application_id:?}");
});
