//! Fuzzes the decoding of API Gateway HTTP API events (payload 2.0) into webhook requests,
//! from arbitrary JSON as Lambda delivers it.
//!
//! A text body must come through byte for byte, and only a base64 body may be rejected.

#![no_main]

use base64::Engine;
use commsync::http::{RequestError, WebhookRequest};
use lambda_http::aws_lambda_events::apigw::ApiGatewayV2httpRequest;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(event) = serde_json::from_slice::<ApiGatewayV2httpRequest>(data) else { return };
    let base64 = event.is_base64_encoded;
    let text = event.body.clone();

    match WebhookRequest::from_apigw(event) {
        Ok(request) => {
            let _ = request.header("x-hub-signature-256");
            let _ = request.header("x-li-signature");
            let _ = request.header("authorization");
            let _ = request.query_param("hub.challenge");
            let expected = match (text, base64) {
                (None, _) => Vec::new(),
                (Some(text), true) => base64::engine::general_purpose::STANDARD.decode(text).unwrap(),
                (Some(text), false) => text.into_bytes(),
            };
            assert_eq!(request.body, expected);
        }
        Err(RequestError::InvalidBase64) => assert!(base64, "a text body was rejected as invalid base64"),
    }
});
