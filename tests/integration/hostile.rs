//! Hostile requests against each webhook, as one table of cases per provider. Each case
//! runs on a fresh stack and states the status it expects and what it may write: nothing
//! for a rejection, only the raw body in quarantine for a verified body that commsync
//! cannot use, and events (or a Gmail push record and job) only for a usable body.
//!
//! Letter case in signatures: commsync accepts a MAC in uppercase hex and an uppercase
//! `SHA256=` or `HMACSHA256=` prefix (`HubSignature::parse` and
//! `LinkedInVerifier::verify_signature` compare the prefix case-insensitively, and
//! `hex::decode_to_slice` reads both cases). The MAC bytes are the same, so these cases
//! expect the body to be stored.

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use commsync::http::WebhookRequest;
use commsync::ids::Provider;
use commsync::local::dev_keys::{dev_jwks, DEV_KID};
use commsync::store::Item;
use commsync_tests::jwt::{sign_rs256, valid_claims, valid_token, JwksServer, GMAIL_AUDIENCE};
use commsync_tests::{
    gmail_push_body, hmac_hex, linkedin_notifications, post_event, text_message, whatsapp_body, TestStack,
    LINKEDIN_SECRET, WHATSAPP_SECRET,
};
use hmac::{Hmac, Mac};
use lambda_http::aws_lambda_events::apigw::{ApiGatewayV2httpRequest, ApiGatewayV2httpResponse};
use lambda_http::http::Method;
use serde_json::{json, Value};
use sha2::Sha256;
use std::collections::HashMap;

const NUMBER: &str = "106540352242922";
const ORG: &str = "urn:li:organization:5515715";
const MAILBOX: &str = "ops@acme.example";

/// `MAX_BODY_BYTES` for these tests: small enough to build bodies around it, large enough
/// for 100,000 nested arrays (200,000 bytes).
const LIMIT: usize = 256 * 1024;

/// The second LinkedIn app secret that `TestStack::function_env` configures for application 77001.
const LINKEDIN_CHILD_SECRET: &str = "test-child-app-secret";

/// Nesting depth of the deeply nested arrays, far past the recursion limit of 128 that
/// serde_json 1 applies by default.
const DEEP: usize = 100_000;

/// Nesting depth of the deeply nested objects: 6 bytes a level keeps them under `LIMIT`.
const DEEP_OBJECTS: usize = 40_000;

/// The status a case expects and what it may leave behind.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Expected {
    /// This status, and no write at all.
    Rejected(i64),
    /// 200 (Gmail: 204), the decoded body in quarantine, and nothing else written.
    Quarantined,
    /// 200, this many events stored and sent to `EventsQueue`, nothing quarantined.
    Stored(usize),
    /// Gmail: 204, one push record and one `history_sync` job, nothing quarantined.
    PushRecorded,
}

struct Case {
    name: &'static str,
    request: ApiGatewayV2httpRequest,
    expected: Expected,
}

impl Case {
    fn new(name: &'static str, request: ApiGatewayV2httpRequest, expected: Expected) -> Self {
        Self { name, request, expected }
    }
}

#[derive(Debug, Clone, Copy)]
enum Webhook {
    WhatsApp,
    LinkedIn,
    Gmail,
}

impl Webhook {
    fn provider(self) -> Provider {
        match self {
            Webhook::WhatsApp => Provider::WhatsApp,
            Webhook::LinkedIn => Provider::LinkedIn,
            Webhook::Gmail => Provider::Gmail,
        }
    }

    fn path(self) -> &'static str {
        match self {
            Webhook::WhatsApp => "/webhooks/whatsapp",
            Webhook::LinkedIn => "/webhooks/linkedin",
            Webhook::Gmail => "/webhooks/gmail",
        }
    }

    fn binary(self) -> &'static str {
        match self {
            Webhook::WhatsApp => "webhook-whatsapp",
            Webhook::LinkedIn => "webhook-linkedin",
            Webhook::Gmail => "webhook-gmail",
        }
    }

    /// Returns the status of an accepted body. A Pub/Sub push is acknowledged with 204.
    fn accepted_status(self) -> i64 {
        match self {
            Webhook::Gmail => 204,
            Webhook::WhatsApp | Webhook::LinkedIn => 200,
        }
    }
}

// ---------------------------------------------------------------------------------------
// Request builders
// ---------------------------------------------------------------------------------------

fn whatsapp_signature(body: &[u8]) -> String {
    format!("sha256={}", hmac_hex(WHATSAPP_SECRET, body))
}

/// Hex HMAC-SHA256 of `"hmacsha256=" + body`, as LinkedIn computes `X-LI-Signature`.
fn linkedin_mac(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(b"hmacsha256=");
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

fn whatsapp_post(body: &[u8], signature: Option<&str>) -> ApiGatewayV2httpRequest {
    let mut headers = vec![("content-type", "application/json")];
    headers.extend(signature.map(|signature| ("x-hub-signature-256", signature)));
    post_event(Webhook::WhatsApp.path(), &headers, body)
}

fn whatsapp_signed(body: &[u8]) -> ApiGatewayV2httpRequest {
    whatsapp_post(body, Some(&whatsapp_signature(body)))
}

fn linkedin_post(body: &[u8], signature: Option<&str>) -> ApiGatewayV2httpRequest {
    let mut headers = vec![("content-type", "application/json")];
    headers.extend(signature.map(|signature| ("x-li-signature", signature)));
    post_event(Webhook::LinkedIn.path(), &headers, body)
}

fn linkedin_signed(body: &[u8]) -> ApiGatewayV2httpRequest {
    linkedin_post(body, Some(&linkedin_mac(LINKEDIN_SECRET, body)))
}

fn gmail_post(body: &[u8], authorization: Option<&str>) -> ApiGatewayV2httpRequest {
    let mut headers = vec![("content-type", "application/json")];
    headers.extend(authorization.map(|authorization| ("authorization", authorization)));
    post_event(Webhook::Gmail.path(), &headers, body)
}

fn gmail_with_token(body: &[u8], token: &str) -> ApiGatewayV2httpRequest {
    gmail_post(body, Some(&format!("Bearer {token}")))
}

/// Replaces a request's content type, or removes it with `None`.
fn with_content_type(mut request: ApiGatewayV2httpRequest, content_type: Option<&str>) -> ApiGatewayV2httpRequest {
    request.headers.remove("content-type");
    if let Some(content_type) = content_type {
        request.headers.insert("content-type", content_type.parse().unwrap());
    }
    request
}

/// Sends the request's body base64-encoded with `isBase64Encoded`, as API Gateway does for binary media types.
fn as_base64(mut request: ApiGatewayV2httpRequest) -> ApiGatewayV2httpRequest {
    let bytes = WebhookRequest::from_apigw(request.clone()).unwrap().body;
    request.body = Some(STANDARD.encode(bytes));
    request.is_base64_encoded = true;
    request
}

/// Replaces the body with text that is not base64 while `isBase64Encoded` stays true.
fn with_invalid_base64(mut request: ApiGatewayV2httpRequest) -> ApiGatewayV2httpRequest {
    request.body = Some("this is %% not base64!".to_string());
    request.is_base64_encoded = true;
    request
}

fn with_method(request: ApiGatewayV2httpRequest, method: Method) -> ApiGatewayV2httpRequest {
    let body = WebhookRequest::from_apigw(request.clone()).unwrap().body;
    let uri = request.raw_path.clone().unwrap().parse().unwrap();
    commsync::local::server::apigw_event(&method, &uri, request.headers, &body)
}

/// Pads `body` with trailing JSON whitespace to exactly `length` bytes.
fn padded(body: &str, length: usize) -> Vec<u8> {
    assert!(body.len() <= length, "body is already {} bytes", body.len());
    let mut bytes = body.as_bytes().to_vec();
    bytes.resize(length, b' ');
    bytes
}

fn nested_arrays(depth: usize) -> String {
    format!("{}{}", "[".repeat(depth), "]".repeat(depth))
}

fn nested_objects(depth: usize) -> String {
    format!("{}1{}", r#"{"a":"#.repeat(depth), "}".repeat(depth))
}

/// Reserializes JSON text through `serde_json::Value`, which drops `\/` and `\u00e9`
/// escapes and reorders keys, as a proxy that parses and re-encodes the body would.
fn reserialized(body: &str) -> Vec<u8> {
    let value: Value = serde_json::from_str(body).unwrap();
    let bytes = serde_json::to_vec(&value).unwrap();
    assert_ne!(bytes, body.as_bytes(), "the round trip must change the bytes");
    bytes
}

// ---------------------------------------------------------------------------------------
// Gmail token builders
// ---------------------------------------------------------------------------------------

fn base64url_json(value: &Value) -> String {
    URL_SAFE_NO_PAD.encode(value.to_string())
}

/// Builds an unsigned token: `alg: none` and an empty signature part.
fn alg_none_token() -> String {
    let header = json!({ "alg": "none", "typ": "JWT", "kid": DEV_KID });
    format!("{}.{}.", base64url_json(&header), base64url_json(&valid_claims()))
}

/// Signs a token with HS256 keyed by the published RSA public key in PEM form, the
/// classic algorithm confusion forgery.
fn hs256_with_public_key_token() -> String {
    let pem = dev_public_key_pem();
    // The PEM really is the public half of the signing key: it verifies a valid token.
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
    validation.set_audience(&[GMAIL_AUDIENCE]);
    let decoding = jsonwebtoken::DecodingKey::from_rsa_pem(pem.as_bytes()).unwrap();
    jsonwebtoken::decode::<Value>(&valid_token(), &decoding, &validation).expect("the PEM is the dev public key");

    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
    header.kid = Some(DEV_KID.to_string());
    let key = jsonwebtoken::EncodingKey::from_secret(pem.as_bytes()).unwrap();
    jsonwebtoken::encode(&header, &valid_claims(), &key).unwrap()
}

fn token_with_claims(change: impl FnOnce(&mut Value)) -> String {
    let mut claims = valid_claims();
    change(&mut claims);
    sign_rs256(&claims, DEV_KID, false)
}

/// Encodes the development public key as a `-----BEGIN PUBLIC KEY-----` PEM: a DER
/// SubjectPublicKeyInfo around a PKCS #1 RSAPublicKey, built from the JWKS modulus and exponent.
fn dev_public_key_pem() -> String {
    let jwk = &dev_jwks()["keys"][0];
    let modulus = URL_SAFE_NO_PAD.decode(jwk["n"].as_str().unwrap()).unwrap();
    let exponent = URL_SAFE_NO_PAD.decode(jwk["e"].as_str().unwrap()).unwrap();

    let rsa_public_key = der(0x30, &[der_unsigned_integer(&modulus), der_unsigned_integer(&exponent)].concat());
    let rsa_encryption_oid = [0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];
    let algorithm = der(0x30, &[&rsa_encryption_oid[..], &[0x05, 0x00]].concat());
    let bit_string = der(0x03, &[&[0x00][..], &rsa_public_key].concat());
    let spki = der(0x30, &[algorithm, bit_string].concat());

    let encoded = STANDARD.encode(spki);
    let lines: Vec<&str> = encoded.as_bytes().chunks(64).map(|line| std::str::from_utf8(line).unwrap()).collect();
    format!("-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n", lines.join("\n"))
}

fn der(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut encoded = vec![tag];
    if content.len() < 0x80 {
        encoded.push(content.len() as u8);
    } else {
        let length = content.len().to_be_bytes();
        let significant: Vec<u8> = length.iter().copied().skip_while(|byte| *byte == 0).collect();
        encoded.push(0x80 | significant.len() as u8);
        encoded.extend(significant);
    }
    encoded.extend_from_slice(content);
    encoded
}

fn der_unsigned_integer(big_endian: &[u8]) -> Vec<u8> {
    let mut digits: Vec<u8> = big_endian.iter().copied().skip_while(|byte| *byte == 0).collect();
    if digits.first().is_none_or(|byte| byte & 0x80 != 0) {
        digits.insert(0, 0);
    }
    der(0x02, &digits)
}

// ---------------------------------------------------------------------------------------
// Running a table
// ---------------------------------------------------------------------------------------

/// Returns the template's environment for `webhook` with `MAX_BODY_BYTES` set to `LIMIT`.
fn limited_env(stack: &TestStack, webhook: Webhook, jwks_url: &str) -> HashMap<String, String> {
    let mut env = stack.function_env(webhook.binary());
    env.insert("MAX_BODY_BYTES".to_string(), LIMIT.to_string());
    env.insert("GMAIL_JWKS_URL".to_string(), jwks_url.to_string());
    env
}

/// Calls the handler on its own task, so a panic is reported as an error naming the case
/// instead of ending the test.
async fn invoke(
    stack: &TestStack,
    webhook: Webhook,
    jwks_url: &str,
    request: ApiGatewayV2httpRequest,
) -> Result<ApiGatewayV2httpResponse, String> {
    let env = limited_env(stack, webhook, jwks_url);
    let clients = stack.clients.clone();
    let task = tokio::spawn(async move {
        match webhook {
            Webhook::WhatsApp => {
                let deps = commsync::providers::whatsapp::WhatsAppDeps::new(&clients, &env).unwrap();
                commsync::providers::whatsapp::handle(request, &deps).await
            }
            Webhook::LinkedIn => {
                let deps = commsync::providers::linkedin::LinkedInDeps::new(&clients, &env).unwrap();
                commsync::providers::linkedin::handle(request, &deps).await
            }
            Webhook::Gmail => {
                let deps = commsync::providers::gmail::GmailDeps::new(&clients, &env).unwrap();
                commsync::providers::gmail::handle(request, &deps).await
            }
        }
    });
    task.await.map_err(|error| format!("handler did not return: {error}"))
}

async fn scan(stack: &TestStack, table: &str) -> Vec<Item> {
    let mut items = Vec::new();
    let mut start_key = None;
    loop {
        let output = stack
            .clients
            .dynamodb
            .scan()
            .table_name(table)
            .consistent_read(true)
            .set_exclusive_start_key(start_key)
            .send()
            .await
            .unwrap();
        items.extend(output.items.unwrap_or_default());
        start_key = output.last_evaluated_key;
        if start_key.is_none() {
            break;
        }
    }
    items.sort_by_key(|item| (key_of(item, "pk"), key_of(item, "sk")));
    items
}

fn key_of(item: &Item, name: &str) -> String {
    item.get(name).and_then(|value| value.as_s().ok()).cloned().unwrap_or_default()
}

/// Sort keys of the items in `EventsTable` other than quarantined bodies.
fn non_quarantine_keys(items: &[Item]) -> Vec<String> {
    items
        .iter()
        .filter(|item| !key_of(item, "pk").starts_with("QUARANTINE#"))
        .map(|item| format!("{}/{}", key_of(item, "pk"), key_of(item, "sk")))
        .collect()
}

/// Runs every case on a fresh stack with one registered account and returns one line per
/// failed check, each naming its case.
async fn run_table(webhook: Webhook, cases: Vec<Case>) -> Vec<String> {
    let jwks = JwksServer::start().await;
    let mut failures = Vec::new();
    for case in cases {
        let mut fail = |message: String| failures.push(format!("{}: {message}", case.name));
        let stack = TestStack::new().await;
        match webhook {
            Webhook::WhatsApp => stack.register("acme", "support", Provider::WhatsApp, NUMBER).await,
            Webhook::LinkedIn => stack.register("acme", "page", Provider::LinkedIn, ORG).await,
            Webhook::Gmail => stack.register("acme", "mailbox", Provider::Gmail, MAILBOX).await,
        }
        let accounts_table = stack.store.tables().accounts.clone();
        let events_table = stack.store.tables().events.clone();
        let accounts_before = scan(&stack, &accounts_table).await;
        let sent_body = WebhookRequest::from_apigw(case.request.clone()).map(|request| request.body).ok();

        let answer = match invoke(&stack, webhook, &jwks.url, case.request).await {
            Ok(answer) => answer,
            Err(panic) => {
                fail(panic);
                continue;
            }
        };

        let expected_status = match case.expected {
            Expected::Rejected(status) => status,
            Expected::Quarantined | Expected::Stored(_) | Expected::PushRecorded => webhook.accepted_status(),
        };
        if answer.status_code != expected_status {
            fail(format!(
                "status {} (body {:?}), expected {expected_status}",
                answer.status_code,
                commsync::http::body_text(&answer)
            ));
        }

        let events_items = scan(&stack, &events_table).await;
        let written = non_quarantine_keys(&events_items);
        let event_keys: Vec<&String> = written.iter().filter(|key| key.contains("/EVENT#")).collect();
        let push_keys: Vec<&String> = written.iter().filter(|key| key.contains("/PUSH#")).collect();
        let quarantined = stack.store.list_quarantine(webhook.provider()).await.unwrap();
        let queued = stack.drain("EventsQueue").await;
        let jobs = stack.drain("SyncQueue").await;
        let accounts_after = scan(&stack, &accounts_table).await;

        let (expected_events, expected_pushes, expected_quarantine, expected_jobs) = match case.expected {
            Expected::Rejected(_) => (0, 0, 0, 0),
            Expected::Quarantined => (0, 0, 1, 0),
            Expected::Stored(events) => (events, 0, 0, 0),
            Expected::PushRecorded => (0, 1, 0, 1),
        };
        if event_keys.len() != expected_events || written.len() != expected_events + expected_pushes {
            fail(format!(
                "EventsTable holds {written:?}, expected {expected_events} events and {expected_pushes} pushes"
            ));
        }
        if push_keys.len() != expected_pushes {
            fail(format!("{} push records, expected {expected_pushes}", push_keys.len()));
        }
        if queued.len() != expected_events {
            fail(format!("EventsQueue holds {} messages, expected {expected_events}", queued.len()));
        }
        if jobs.len() != expected_jobs {
            fail(format!("SyncQueue holds {} jobs, expected {expected_jobs}", jobs.len()));
        }
        if quarantined.len() != expected_quarantine {
            let reasons: Vec<&str> = quarantined.iter().map(|record| record.reason.as_str()).collect();
            fail(format!("{} bodies in quarantine ({reasons:?}), expected {expected_quarantine}", quarantined.len()));
        }
        if let (Expected::Quarantined, Some(record), Some(sent)) = (case.expected, quarantined.first(), &sent_body) {
            let kept = stack.store.quarantined_body(webhook.provider(), &record.digest).await.unwrap();
            if kept != *sent {
                fail(format!("quarantine keeps {} bytes, not the {} bytes received", kept.len(), sent.len()));
            }
        }
        let may_touch_accounts = matches!(case.expected, Expected::Stored(_) | Expected::PushRecorded);
        if !may_touch_accounts && accounts_after != accounts_before {
            fail("AccountsTable changed".to_string());
        }
    }
    failures
}

fn assert_no_failures(failures: Vec<String>) {
    assert!(failures.is_empty(), "{} failed checks:\n{}", failures.len(), failures.join("\n"));
}

// ---------------------------------------------------------------------------------------
// WhatsApp
// ---------------------------------------------------------------------------------------

fn whatsapp_cases() -> Vec<Case> {
    use Expected::*;
    let body = whatsapp_body(NUMBER, &text_message("wamid.hostile", "hi"), "");
    let bytes = body.as_bytes();
    let signature = whatsapp_signature(bytes);
    let hex_digits = signature.trim_start_matches("sha256=");
    let message = |fields: &str| {
        whatsapp_body(NUMBER, &format!(r#"{{"from":"34600000000","id":"wamid.h","type":"text",{fields}}}"#), "")
    };
    let escaped = whatsapp_body(
        NUMBER,
        r#"{"from":"1","id":"wamid.esc","timestamp":"1796300000","type":"text","text":{"body":"caf\u00e9 http:\/\/x.example"}}"#,
        "",
    );
    let unknown_fields = r#"{"object":"whatsapp_business_account","extra":{"a":[1,2]},"entry":[{"id":"WABA","x":1,"changes":[{"field":"messages","y":true,"value":{"messaging_product":"whatsapp","z":null,"metadata":{"phone_number_id":"106540352242922","w":"v"},"messages":[{"from":"1","id":"wamid.u","timestamp":"1796300000","type":"text","text":{"body":"x"},"new_field":{"deep":[1]}}]}}]}]}"#;
    let invalid_utf8_string = body.replace("\"hi\"", "\"\u{1}\"").into_bytes();
    let invalid_utf8_string: Vec<u8> =
        invalid_utf8_string.iter().flat_map(|&byte| if byte == 1 { vec![0xc3, 0x28] } else { vec![byte] }).collect();
    let deep_in_message = whatsapp_body(
        NUMBER,
        &format!(
            r#"{{"from":"1","id":"wamid.deep","timestamp":"1796300000","type":"text","x":{}}}"#,
            nested_arrays(DEEP)
        ),
        "",
    );
    let over_event_limit = whatsapp_body(NUMBER, &text_message("wamid.big", &"a".repeat(245_000)), "");

    vec![
        // Signature headers
        Case::new("signature missing", whatsapp_post(bytes, None), Rejected(401)),
        Case::new("signature empty", whatsapp_post(bytes, Some("")), Rejected(401)),
        Case::new("signature prefix only", whatsapp_post(bytes, Some("sha256=")), Rejected(401)),
        Case::new("signature truncated to 63 digits", whatsapp_post(bytes, Some(&signature[..70])), Rejected(401)),
        Case::new("signature with a 65th digit", whatsapp_post(bytes, Some(&format!("{signature}0"))), Rejected(401)),
        Case::new(
            "signature with a non-hex digit",
            whatsapp_post(bytes, Some(&format!("{}g", &signature[..70]))),
            Rejected(401),
        ),
        Case::new("signature without prefix", whatsapp_post(bytes, Some(hex_digits)), Rejected(401)),
        Case::new(
            "signature with sha1= prefix",
            whatsapp_post(bytes, Some(&format!("sha1={hex_digits}"))),
            Rejected(401),
        ),
        Case::new(
            "signature hex in uppercase",
            whatsapp_post(bytes, Some(&format!("sha256={}", hex_digits.to_ascii_uppercase()))),
            Stored(1),
        ),
        Case::new(
            "signature and prefix in uppercase",
            whatsapp_post(bytes, Some(&signature.to_ascii_uppercase())),
            Stored(1),
        ),
        Case::new(
            "signature under another secret",
            whatsapp_post(bytes, Some(&format!("sha256={}", hmac_hex("another-app-secret", bytes)))),
            Rejected(401),
        ),
        Case::new(
            "valid signature over different bytes",
            whatsapp_post(bytes, Some(&whatsapp_signature(body.replace("hi", "ho").as_bytes()))),
            Rejected(401),
        ),
        Case::new(
            "body re-serialized after signing",
            whatsapp_post(&reserialized(&escaped), Some(&whatsapp_signature(escaped.as_bytes()))),
            Rejected(401),
        ),
        Case::new("escaped body sent as signed", whatsapp_signed(escaped.as_bytes()), Stored(1)),
        Case::new(
            "wrong signature joined with the valid one",
            whatsapp_post(bytes, Some(&format!("sha256={},{signature}", hmac_hex("other", bytes)))),
            Stored(1),
        ),
        // A malformed value makes the whole joined header malformed, even next to a valid one.
        Case::new(
            "malformed value joined with the valid one",
            whatsapp_post(bytes, Some(&format!("sha256=zz,{signature}"))),
            Rejected(401),
        ),
        // Content types: only the signature decides.
        Case::new("content type text/plain", with_content_type(whatsapp_signed(bytes), Some("text/plain")), Stored(1)),
        Case::new(
            "content type form-urlencoded",
            with_content_type(whatsapp_signed(bytes), Some("application/x-www-form-urlencoded")),
            Stored(1),
        ),
        Case::new(
            "content type multipart",
            with_content_type(whatsapp_signed(bytes), Some("multipart/form-data; boundary=x")),
            Stored(1),
        ),
        Case::new("content type missing", with_content_type(whatsapp_signed(bytes), None), Stored(1)),
        Case::new(
            "unsigned body with JSON content type",
            with_content_type(whatsapp_post(bytes, None), Some("application/json")),
            Rejected(401),
        ),
        // Base64 bodies
        Case::new("base64 body of a signed body", as_base64(whatsapp_signed(bytes)), Stored(1)),
        Case::new("base64 flag with invalid base64", with_invalid_base64(whatsapp_signed(bytes)), Rejected(400)),
        Case::new(
            "signature over the base64 text",
            {
                let encoded = STANDARD.encode(bytes);
                let mut request = as_base64(whatsapp_post(bytes, Some(&whatsapp_signature(encoded.as_bytes()))));
                request.body = Some(encoded);
                request
            },
            Rejected(401),
        ),
        // Bodies that verify but cannot be used
        Case::new("signed invalid UTF-8", whatsapp_signed(b"{\"object\":\xff\xfe\"x\"}"), Quarantined),
        Case::new("signed invalid UTF-8 inside a string", whatsapp_signed(&invalid_utf8_string), Quarantined),
        Case::new("signed empty body", whatsapp_signed(b""), Quarantined),
        Case::new("signed JSON null", whatsapp_signed(b"null"), Quarantined),
        Case::new("100,000 nested arrays", whatsapp_signed(nested_arrays(DEEP).as_bytes()), Quarantined),
        Case::new("40,000 nested objects", whatsapp_signed(nested_objects(DEEP_OBJECTS).as_bytes()), Quarantined),
        Case::new("100,000 nested arrays inside a message", whatsapp_signed(deep_in_message.as_bytes()), Quarantined),
        Case::new(
            "object other than whatsapp_business_account",
            whatsapp_signed(body.replace("whatsapp_business_account", "page").as_bytes()),
            Quarantined,
        ),
        Case::new(
            "duplicate object key",
            whatsapp_signed(body.replacen("{", r#"{"object":"page","#, 1).as_bytes()),
            Quarantined,
        ),
        Case::new(
            "lone surrogate escape",
            whatsapp_signed(body.replace("\"hi\"", r#""\ud800""#).as_bytes()),
            Quarantined,
        ),
        Case::new(
            "NUL escape in message text",
            whatsapp_signed(body.replace("\"hi\"", r#""a\u0000b""#).as_bytes()),
            Stored(1),
        ),
        // Field types
        Case::new("unknown fields at every level", whatsapp_signed(unknown_fields.as_bytes()), Stored(1)),
        Case::new(
            "timestamp as a JSON number",
            whatsapp_signed(message(r#""timestamp":1796300000"#).as_bytes()),
            Stored(1),
        ),
        Case::new("timestamp as a boolean", whatsapp_signed(message(r#""timestamp":true"#).as_bytes()), Quarantined),
        Case::new("timestamp as words", whatsapp_signed(message(r#""timestamp":"yesterday""#).as_bytes()), Quarantined),
        Case::new(
            "timestamp out of range",
            whatsapp_signed(message(r#""timestamp":"99999999999999999""#).as_bytes()),
            Quarantined,
        ),
        Case::new(
            "entry as a string",
            whatsapp_signed(br#"{"object":"whatsapp_business_account","entry":"x"}"#),
            Quarantined,
        ),
        Case::new(
            "phone_number_id as a number",
            whatsapp_signed(body.replace(&format!(r#""{NUMBER}""#), NUMBER).as_bytes()),
            Quarantined,
        ),
        Case::new(
            "wamid with a colon",
            whatsapp_signed(body.replace("wamid.hostile", "wamid:hostile").as_bytes()),
            Quarantined,
        ),
        Case::new(
            "wamid over 512 bytes",
            whatsapp_signed(body.replace("wamid.hostile", &"w".repeat(513)).as_bytes()),
            Quarantined,
        ),
        // Sizes
        Case::new("body of exactly MAX_BODY_BYTES", whatsapp_signed(&padded(&body, LIMIT)), Stored(1)),
        Case::new(
            "signed body one byte over MAX_BODY_BYTES",
            whatsapp_signed(&padded(&body, LIMIT + 1)),
            Rejected(413),
        ),
        Case::new("unsigned body over MAX_BODY_BYTES", whatsapp_post(&padded(&body, LIMIT + 1), None), Rejected(413)),
        Case::new("event over MAX_EVENT_BYTES", whatsapp_signed(over_event_limit.as_bytes()), Quarantined),
        // Methods
        Case::new("PUT", with_method(whatsapp_signed(bytes), Method::PUT), Rejected(405)),
        Case::new("DELETE", with_method(whatsapp_signed(bytes), Method::DELETE), Rejected(405)),
        Case::new("GET without handshake parameters", with_method(whatsapp_signed(bytes), Method::GET), Rejected(403)),
    ]
}

#[tokio::test]
async fn whatsapp_hostile_corpus() {
    assert_no_failures(run_table(Webhook::WhatsApp, whatsapp_cases()).await);
}

// ---------------------------------------------------------------------------------------
// LinkedIn
// ---------------------------------------------------------------------------------------

fn linkedin_cases() -> Vec<Case> {
    use Expected::*;
    let body = linkedin_notifications(&[(2001, ORG, "COMMENT")]);
    let bytes = body.as_bytes();
    let mac = linkedin_mac(LINKEDIN_SECRET, bytes);
    let notification = |fields: &str| {
        format!(
            r#"{{"type":"ORGANIZATION_SOCIAL_ACTION_NOTIFICATIONS","notifications":[{{"organizationalEntity":"{ORG}","action":"LIKE",{fields}}}]}}"#
        )
    };
    let escaped = format!(
        r#"{{"type":"ORGANIZATION_SOCIAL_ACTION_NOTIFICATIONS","notifications":[{{"notificationId":7,"organizationalEntity":"{ORG}","action":"COMMENT","text":"caf\u00e9 http:\/\/x.example"}}]}}"#
    );
    let unknown_fields = format!(
        r#"{{"type":"ORGANIZATION_SOCIAL_ACTION_NOTIFICATIONS","extra":[1,{{"a":null}}],"notifications":[{{"notificationId":9,"organizationalEntity":"{ORG}","action":"SHARE","lastModifiedAt":1796300000000,"newField":{{"x":[true]}}}}]}}"#
    );
    let deep_in_notification = notification(&format!(r#""notificationId":5,"x":{}"#, nested_arrays(DEEP)));

    vec![
        // Signature headers
        Case::new("signature missing", linkedin_post(bytes, None), Rejected(401)),
        Case::new("signature empty", linkedin_post(bytes, Some("")), Rejected(401)),
        Case::new("signature prefix only", linkedin_post(bytes, Some("hmacsha256=")), Rejected(401)),
        Case::new("signature truncated to 63 digits", linkedin_post(bytes, Some(&mac[..63])), Rejected(401)),
        Case::new("signature with a 65th digit", linkedin_post(bytes, Some(&format!("{mac}0"))), Rejected(401)),
        Case::new(
            "signature with a non-hex digit",
            linkedin_post(bytes, Some(&format!("{}g", &mac[..63]))),
            Rejected(401),
        ),
        Case::new(
            "signature with hmacsha256= prefix",
            linkedin_post(bytes, Some(&format!("hmacsha256={mac}"))),
            Stored(1),
        ),
        Case::new("signature hex in uppercase", linkedin_post(bytes, Some(&mac.to_ascii_uppercase())), Stored(1)),
        Case::new(
            "signature and prefix in uppercase",
            linkedin_post(bytes, Some(&format!("hmacsha256={mac}").to_ascii_uppercase())),
            Stored(1),
        ),
        Case::new("signature with sha256= prefix", linkedin_post(bytes, Some(&format!("sha256={mac}"))), Rejected(401)),
        Case::new(
            "HMAC of the body without the hmacsha256= prefix",
            linkedin_post(bytes, Some(&hmac_hex(LINKEDIN_SECRET, bytes))),
            Rejected(401),
        ),
        Case::new(
            "signature under another secret",
            linkedin_post(bytes, Some(&linkedin_mac("another-client-secret", bytes))),
            Rejected(401),
        ),
        // Every configured app secret verifies, and LINKEDIN_APP_SECRETS contains a second one.
        Case::new(
            "signature under the second app secret",
            linkedin_post(bytes, Some(&linkedin_mac(LINKEDIN_CHILD_SECRET, bytes))),
            Stored(1),
        ),
        Case::new(
            "valid signature over different bytes",
            linkedin_post(bytes, Some(&linkedin_mac(LINKEDIN_SECRET, body.replace("COMMENT", "LIKE").as_bytes()))),
            Rejected(401),
        ),
        Case::new(
            "body re-serialized after signing",
            linkedin_post(&reserialized(&escaped), Some(&linkedin_mac(LINKEDIN_SECRET, escaped.as_bytes()))),
            Rejected(401),
        ),
        Case::new("escaped body sent as signed", linkedin_signed(escaped.as_bytes()), Stored(1)),
        // Content types: only the signature decides.
        Case::new("content type text/plain", with_content_type(linkedin_signed(bytes), Some("text/plain")), Stored(1)),
        Case::new(
            "content type form-urlencoded",
            with_content_type(linkedin_signed(bytes), Some("application/x-www-form-urlencoded")),
            Stored(1),
        ),
        Case::new("content type missing", with_content_type(linkedin_signed(bytes), None), Stored(1)),
        // Base64 bodies
        Case::new("base64 body of a signed body", as_base64(linkedin_signed(bytes)), Stored(1)),
        Case::new("base64 flag with invalid base64", with_invalid_base64(linkedin_signed(bytes)), Rejected(400)),
        // Bodies that verify but cannot be used
        Case::new("signed invalid UTF-8", linkedin_signed(b"{\"type\":\xff\xfe}"), Quarantined),
        Case::new("signed empty body", linkedin_signed(b""), Quarantined),
        Case::new("100,000 nested arrays", linkedin_signed(nested_arrays(DEEP).as_bytes()), Quarantined),
        Case::new("40,000 nested objects", linkedin_signed(nested_objects(DEEP_OBJECTS).as_bytes()), Quarantined),
        Case::new(
            "100,000 nested arrays inside a notification",
            linkedin_signed(deep_in_notification.as_bytes()),
            Quarantined,
        ),
        Case::new("unknown type", linkedin_signed(br#"{"type":"PAGE_VIEW","notifications":[]}"#), Quarantined),
        Case::new("type missing", linkedin_signed(br#"{"notifications":[]}"#), Quarantined),
        // Field types
        Case::new("unknown fields at every level", linkedin_signed(unknown_fields.as_bytes()), Stored(1)),
        Case::new(
            "notifications as an object",
            linkedin_signed(br#"{"type":"ORGANIZATION_SOCIAL_ACTION_NOTIFICATIONS","notifications":{}}"#),
            Quarantined,
        ),
        Case::new(
            "notificationId as a string",
            linkedin_signed(notification(r#""notificationId":"1""#).as_bytes()),
            Quarantined,
        ),
        Case::new(
            "notificationId negative",
            linkedin_signed(notification(r#""notificationId":-1"#).as_bytes()),
            Quarantined,
        ),
        Case::new(
            "notificationId fractional",
            linkedin_signed(notification(r#""notificationId":1.5"#).as_bytes()),
            Quarantined,
        ),
        Case::new(
            "notificationId above u64",
            linkedin_signed(notification(r#""notificationId":18446744073709551616"#).as_bytes()),
            Quarantined,
        ),
        Case::new(
            "organizationalEntity with #",
            linkedin_signed(body.replace(ORG, "urn:li:organization:1#2").as_bytes()),
            Quarantined,
        ),
        Case::new(
            "lastModifiedAt as a JSON number",
            linkedin_signed(notification(r#""notificationId":3,"lastModifiedAt":1796300000000"#).as_bytes()),
            Stored(1),
        ),
        // LinkedIn sends lastModifiedAt as a number. A string is not read, so the event takes the time it was received.
        Case::new(
            "lastModifiedAt as a string",
            linkedin_signed(notification(r#""notificationId":4,"lastModifiedAt":"1796300000000""#).as_bytes()),
            Stored(1),
        ),
        // Sizes
        Case::new("body of exactly MAX_BODY_BYTES", linkedin_signed(&padded(&body, LIMIT)), Stored(1)),
        Case::new(
            "signed body one byte over MAX_BODY_BYTES",
            linkedin_signed(&padded(&body, LIMIT + 1)),
            Rejected(413),
        ),
        Case::new("unsigned body over MAX_BODY_BYTES", linkedin_post(&padded(&body, LIMIT + 1), None), Rejected(413)),
        // Methods
        Case::new("PUT", with_method(linkedin_signed(bytes), Method::PUT), Rejected(405)),
        Case::new("GET without challengeCode", with_method(linkedin_signed(bytes), Method::GET), Rejected(400)),
    ]
}

#[tokio::test]
async fn linkedin_hostile_corpus() {
    assert_no_failures(run_table(Webhook::LinkedIn, linkedin_cases()).await);
}

// ---------------------------------------------------------------------------------------
// Gmail
// ---------------------------------------------------------------------------------------

fn gmail_cases() -> Vec<Case> {
    use Expected::*;
    let body = gmail_push_body("pubsub-1", MAILBOX, "100");
    let bytes = body.as_bytes();
    let token = valid_token();
    let push_with_data = |data: &str| {
        format!(
            r#"{{"message":{{"data":"{data}","messageId":"pubsub-2"}},"subscription":"projects/p/subscriptions/s"}}"#
        )
    };
    let notification = |json: &str| push_with_data(&STANDARD.encode(json));
    let unknown_fields = format!(
        r#"{{"message":{{"data":"{}","messageId":"pubsub-3","attributes":{{"a":"b"}},"extra":[1]}},"subscription":"s","deliveryAttempt":3}}"#,
        STANDARD.encode(format!(r#"{{"emailAddress":"{MAILBOX}","historyId":100,"newField":{{"x":1}}}}"#))
    );

    vec![
        // Authorization headers
        Case::new("authorization missing", gmail_post(bytes, None), Rejected(401)),
        Case::new("authorization empty", gmail_post(bytes, Some("")), Rejected(401)),
        Case::new("scheme other than Bearer", gmail_post(bytes, Some(&format!("Basic {token}"))), Rejected(401)),
        Case::new("Bearer without a token", gmail_post(bytes, Some("Bearer ")), Rejected(401)),
        Case::new("token of two parts", gmail_with_token(bytes, "e30.e30"), Rejected(401)),
        Case::new("token header not base64url", gmail_with_token(bytes, "%%%.e30.sig"), Rejected(401)),
        Case::new(
            "token over 8 KiB",
            gmail_post(bytes, Some(&format!("Bearer {token}{}", "A".repeat(8 * 1024)))),
            Rejected(401),
        ),
        Case::new("scheme in lowercase", gmail_post(bytes, Some(&format!("bearer {token}"))), PushRecorded),
        // Forged and invalid tokens
        Case::new("alg none", gmail_with_token(bytes, &alg_none_token()), Rejected(401)),
        Case::new(
            "HS256 keyed with the public key",
            gmail_with_token(bytes, &hs256_with_public_key_token()),
            Rejected(401),
        ),
        Case::new(
            "signed by an unpublished key under the published kid",
            gmail_with_token(bytes, &sign_rs256(&valid_claims(), DEV_KID, true)),
            Rejected(401),
        ),
        Case::new(
            "unknown kid",
            gmail_with_token(bytes, &sign_rs256(&valid_claims(), "no-such-key", false)),
            Rejected(401),
        ),
        Case::new(
            "expired",
            gmail_with_token(
                bytes,
                &token_with_claims(|claims| claims["exp"] = json!(chrono::Utc::now().timestamp() - 600)),
            ),
            Rejected(401),
        ),
        Case::new(
            "exp missing",
            gmail_with_token(bytes, &token_with_claims(|claims| drop(claims.as_object_mut().unwrap().remove("exp")))),
            Rejected(401),
        ),
        Case::new(
            "iat an hour ahead",
            gmail_with_token(
                bytes,
                &token_with_claims(|claims| claims["iat"] = json!(chrono::Utc::now().timestamp() + 3600)),
            ),
            Rejected(401),
        ),
        Case::new(
            "nbf an hour ahead",
            gmail_with_token(
                bytes,
                &token_with_claims(|claims| claims["nbf"] = json!(chrono::Utc::now().timestamp() + 3600)),
            ),
            Rejected(401),
        ),
        Case::new(
            "wrong aud",
            gmail_with_token(bytes, &token_with_claims(|claims| claims["aud"] = json!("https://other.example/push"))),
            Rejected(401),
        ),
        Case::new(
            "token with a flipped signature byte",
            {
                let mut forged = token.clone().into_bytes();
                let last = forged.len() - 2;
                forged[last] = if forged[last] == b'A' { b'B' } else { b'A' };
                gmail_with_token(bytes, &String::from_utf8(forged).unwrap())
            },
            Rejected(401),
        ),
        // Content types: only the token decides.
        Case::new(
            "content type text/plain",
            with_content_type(gmail_with_token(bytes, &token), Some("text/plain")),
            PushRecorded,
        ),
        Case::new("content type missing", with_content_type(gmail_with_token(bytes, &token), None), PushRecorded),
        // Base64 bodies
        Case::new("base64 body", as_base64(gmail_with_token(bytes, &token)), PushRecorded),
        Case::new(
            "base64 flag with invalid base64",
            with_invalid_base64(gmail_with_token(bytes, &token)),
            Rejected(400),
        ),
        // Bodies that pass the token check but cannot be used
        Case::new("invalid UTF-8", gmail_with_token(b"{\"message\":\xff}", &token), Quarantined),
        Case::new("empty body", gmail_with_token(b"", &token), Quarantined),
        Case::new("100,000 nested arrays", gmail_with_token(nested_arrays(DEEP).as_bytes(), &token), Quarantined),
        Case::new(
            "40,000 nested objects",
            gmail_with_token(nested_objects(DEEP_OBJECTS).as_bytes(), &token),
            Quarantined,
        ),
        Case::new(
            "50,000 nested arrays inside message.data",
            gmail_with_token(notification(&nested_arrays(50_000)).as_bytes(), &token),
            Quarantined,
        ),
        Case::new("data not base64", gmail_with_token(push_with_data("%%%").as_bytes(), &token), Quarantined),
        Case::new(
            "messageId missing",
            gmail_with_token(body.replace(r#""messageId":"pubsub-1","#, "").as_bytes(), &token),
            Quarantined,
        ),
        Case::new(
            "unknown mailbox",
            gmail_with_token(gmail_push_body("pubsub-4", "nobody@acme.example", "100").as_bytes(), &token),
            Quarantined,
        ),
        // Field types
        Case::new("unknown fields at every level", gmail_with_token(unknown_fields.as_bytes(), &token), PushRecorded),
        Case::new(
            "historyId as a string",
            gmail_with_token(
                notification(&format!(r#"{{"emailAddress":"{MAILBOX}","historyId":"100"}}"#)).as_bytes(),
                &token,
            ),
            PushRecorded,
        ),
        Case::new(
            "historyId as a boolean",
            gmail_with_token(
                notification(&format!(r#"{{"emailAddress":"{MAILBOX}","historyId":true}}"#)).as_bytes(),
                &token,
            ),
            Quarantined,
        ),
        Case::new(
            "historyId zero",
            gmail_with_token(
                notification(&format!(r#"{{"emailAddress":"{MAILBOX}","historyId":0}}"#)).as_bytes(),
                &token,
            ),
            Quarantined,
        ),
        Case::new(
            "emailAddress as a number",
            gmail_with_token(notification(r#"{"emailAddress":7,"historyId":100}"#).as_bytes(), &token),
            Quarantined,
        ),
        // Sizes
        Case::new("body of exactly MAX_BODY_BYTES", gmail_with_token(&padded(&body, LIMIT), &token), PushRecorded),
        Case::new(
            "body one byte over MAX_BODY_BYTES",
            gmail_with_token(&padded(&body, LIMIT + 1), &token),
            Rejected(413),
        ),
        Case::new(
            "unauthenticated body over MAX_BODY_BYTES",
            gmail_post(&padded(&body, LIMIT + 1), None),
            Rejected(413),
        ),
        // Methods
        Case::new("GET", with_method(gmail_with_token(bytes, &token), Method::GET), Rejected(405)),
    ]
}

#[tokio::test]
async fn gmail_hostile_corpus() {
    assert_no_failures(run_table(Webhook::Gmail, gmail_cases()).await);
}

// ---------------------------------------------------------------------------------------
// Nesting at serde_json's recursion limit
// ---------------------------------------------------------------------------------------

/// Returns the body `build(depth)` for the largest depth up to 200 that serde_json still parses.
fn deepest_parseable(build: impl Fn(usize) -> String) -> String {
    (1..=200).rev().map(build).find(|body| serde_json::from_str::<Value>(body).is_ok()).expect("a shallow body parses")
}

/// Sends a body nested as deep as serde_json parses and checks that its events can be read
/// back from `EventsTable` and `EventsQueue`, whose readers use the same recursion limit.
async fn assert_deepest_body_reads_back(webhook: Webhook, body: &str) {
    let stack = TestStack::new().await;
    let (account, request) = match webhook {
        Webhook::WhatsApp => {
            stack.register("acme", "support", Provider::WhatsApp, NUMBER).await;
            ("support", whatsapp_signed(body.as_bytes()))
        }
        Webhook::LinkedIn => {
            stack.register("acme", "page", Provider::LinkedIn, ORG).await;
            ("page", linkedin_signed(body.as_bytes()))
        }
        Webhook::Gmail => unreachable!("Gmail pushes carry no event content"),
    };

    let answer = invoke(&stack, webhook, "http://127.0.0.1:9/unused", request).await.unwrap();

    assert_eq!(answer.status_code, 200);
    assert!(stack.store.list_quarantine(webhook.provider()).await.unwrap().is_empty());
    let tenant = commsync::ids::TenantId::parse("acme").unwrap();
    let account = commsync::ids::AccountId::parse(account).unwrap();
    let stored = stack.store.list_events(&tenant, &account).await;
    assert!(stored.is_ok(), "list_events fails: {}", stored.unwrap_err());
    assert_eq!(stored.unwrap().len(), 1);
    let queued = stack.drain("EventsQueue").await;
    assert_eq!(queued.len(), 1);
    let parsed = serde_json::from_str::<commsync::event::CanonicalEvent>(&queued[0]);
    assert!(parsed.is_ok(), "the queued event does not parse: {}", parsed.unwrap_err());
}

#[tokio::test]
async fn whatsapp_deepest_message_reads_back() {
    let body = deepest_parseable(|depth| {
        whatsapp_body(
            NUMBER,
            &format!(
                r#"{{"from":"1","id":"wamid.d","timestamp":"1796300000","type":"text","x":{}}}"#,
                nested_arrays(depth)
            ),
            "",
        )
    });
    assert_deepest_body_reads_back(Webhook::WhatsApp, &body).await;
}

#[tokio::test]
async fn whatsapp_deepest_other_field_reads_back() {
    let body = deepest_parseable(|depth| {
        format!(
            r#"{{"object":"whatsapp_business_account","entry":[{{"id":"WABA","changes":[{{"field":"account_update","value":{{"metadata":{{"phone_number_id":"{NUMBER}"}},"x":{}}}}}]}}]}}"#,
            nested_arrays(depth)
        )
    });
    assert_deepest_body_reads_back(Webhook::WhatsApp, &body).await;
}

#[tokio::test]
async fn linkedin_deepest_notification_reads_back() {
    let body = deepest_parseable(|depth| {
        format!(
            r#"{{"type":"ORGANIZATION_SOCIAL_ACTION_NOTIFICATIONS","notifications":[{{"notificationId":1,"organizationalEntity":"{ORG}","action":"LIKE","x":{}}}]}}"#,
            nested_arrays(depth)
        )
    });
    assert_deepest_body_reads_back(Webhook::LinkedIn, &body).await;
}

/// A lead event embeds the whole body two levels down, so the deepest parseable lead body
/// would make an event too deep to read back: it is quarantined instead, and the account's
/// events stay readable.
#[tokio::test]
async fn linkedin_deepest_lead_is_quarantined() {
    let body = deepest_parseable(|depth| {
        format!(
            r#"{{"type":"LEAD_ACTION","leadGenFormResponse":"urn:li:leadGenFormResponse:1","owner":{{"organization":"{ORG}"}},"x":{}}}"#,
            nested_arrays(depth)
        )
    });
    let stack = TestStack::new().await;
    stack.register("acme", "page", Provider::LinkedIn, ORG).await;

    let answer =
        invoke(&stack, Webhook::LinkedIn, "http://127.0.0.1:9/unused", linkedin_signed(body.as_bytes())).await.unwrap();

    assert_eq!(answer.status_code, 200);
    let quarantined = stack.store.list_quarantine(Provider::LinkedIn).await.unwrap();
    assert_eq!(quarantined.len(), 1);
    assert!(quarantined[0].reason.contains("levels deep"), "{}", quarantined[0].reason);
    let tenant = commsync::ids::TenantId::parse("acme").unwrap();
    let account = commsync::ids::AccountId::parse("page").unwrap();
    let stored = stack.store.list_events(&tenant, &account).await;
    assert!(stored.is_ok(), "list_events fails: {}", stored.unwrap_err());
    assert!(stored.unwrap().is_empty());
    assert!(stack.drain("EventsQueue").await.is_empty());
}
