//! Verify + parse + normalize per provider on realistic payloads of about 1 KB and 100 KB,
//! next to HMAC-SHA256 alone on the same bytes, which is the floor for the HMAC providers.
//!
//! Run with `cargo bench -p commsync --bench ingest`; criterion prints bytes per second.

use commsync::local::dev_keys::{dev_jwks, mint_push_token};
use commsync::providers::{gmail, linkedin, whatsapp};
use commsync::secret::Secret;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use hmac::{Hmac, Mac};
use sha2::Sha256;

const SECRET: &str = "bench-secret";

/// A WhatsApp notification with `messages` inbound texts (about 1 KB each), escaped as Meta sends it.
fn whatsapp_body(messages: usize) -> Vec<u8> {
    let text = "Ol\\u00e1, voc\\u00ea pode confirmar o pedido? https:\\/\\/example.com\\/p\\/42 ".repeat(10);
    let items: Vec<String> = (0..messages)
        .map(|index| format!(r#"{{"from":"5511987654321","id":"wamid.HBgNNTUxMTk4NzY1NDMyMRUCABIYFDNB{index:012}AA==","timestamp":"1796300000","type":"text","text":{{"body":"{text}"}}}}"#))
        .collect();
    format!(r#"{{"object":"whatsapp_business_account","entry":[{{"id":"102290129340398","changes":[{{"value":{{"messaging_product":"whatsapp","metadata":{{"display_phone_number":"15550783881","phone_number_id":"106540352242922"}},"contacts":[{{"profile":{{"name":"Jo\u00e3o"}},"wa_id":"5511987654321"}}],"messages":[{}]}},"field":"messages"}}]}}]}}"#, items.join(",")).into_bytes()
}

/// A LinkedIn social action batch with `count` notifications (about 1 KB each).
fn linkedin_body(count: usize) -> Vec<u8> {
    let comment = "Great update, congratulations to the whole team on the launch! ".repeat(12);
    let items: Vec<String> = (0..count)
        .map(|index| format!(r#"{{"notificationId":{},"organizationalEntity":"urn:li:organization:5515715","action":"COMMENT","sourcePost":"urn:li:share:7272401119813087232","generatedActivity":"urn:li:comment:(urn:li:activity:7272401120966524928,{index})","decoratedGeneratedActivity":{{"comment":{{"fullText":"{comment}"}}}},"lastModifiedAt":1796300000000}}"#, 7_391_045_518u64 + index as u64))
        .collect();
    format!(r#"{{"type":"ORGANIZATION_SOCIAL_ACTION_NOTIFICATIONS","notifications":[{}]}}"#, items.join(","))
        .into_bytes()
}

fn hmac_hex(body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

fn ingest(criterion: &mut Criterion) {
    let whatsapp_verifier = whatsapp::WhatsAppVerifier::new(Secret::new(SECRET), None, Secret::new("token"));
    let linkedin_verifier = linkedin::LinkedInVerifier::new(Secret::new(SECRET), Vec::new());
    let mut group = criterion.benchmark_group("verify_parse_normalize");
    group.sample_size(30);

    for (label, items) in [("1KB", 1usize), ("100KB", 100)] {
        let body = whatsapp_body(items);
        let header = whatsapp::verify::sign(&Secret::new(SECRET), &body);
        group.throughput(Throughput::Bytes(body.len() as u64));
        group.bench_with_input(BenchmarkId::new("whatsapp", label), &body, |bench, body| {
            bench.iter(|| {
                whatsapp_verifier.verify_signature(Some(header.as_bytes()), body).unwrap();
                whatsapp::normalize::normalize(body).unwrap()
            })
        });
        group.bench_with_input(
            BenchmarkId::new("hmac_sha256_only", format!("whatsapp_{label}")),
            &body,
            |bench, body| bench.iter(|| hmac_hex(body)),
        );

        let body = linkedin_body(items);
        let header = linkedin::verify::sign(&Secret::new(SECRET), &body);
        group.throughput(Throughput::Bytes(body.len() as u64));
        group.bench_with_input(BenchmarkId::new("linkedin", label), &body, |bench, body| {
            bench.iter(|| {
                linkedin_verifier.verify_signature(Some(header.as_bytes()), body).unwrap();
                linkedin::normalize::normalize(body).unwrap()
            })
        });
        group.bench_with_input(
            BenchmarkId::new("hmac_sha256_only", format!("linkedin_{label}")),
            &body,
            |bench, body| bench.iter(|| hmac_hex(body)),
        );
    }

    // Gmail pushes are small (about 0.4 KB); the cost is the RS256 check of the token.
    let data = base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        r#"{"emailAddress":"ops@acme.example","historyId":9876543}"#,
    );
    let body = format!(r#"{{"message":{{"data":"{data}","messageId":"13741856473645298","publishTime":"2026-12-04T10:13:20.417Z"}},"subscription":"projects/acme-mail/subscriptions/gmail-push"}}"#).into_bytes();
    let token = mint_push_token("https://aud.example", "push@example.iam.gserviceaccount.com");
    let jwks: jsonwebtoken::jwk::JwkSet = serde_json::from_value(dev_jwks()).unwrap();
    let key = jsonwebtoken::DecodingKey::from_jwk(&jwks.keys[0]).unwrap();
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
    validation.set_audience(&["https://aud.example"]);
    group.throughput(Throughput::Bytes((body.len() + token.len()) as u64));
    group.bench_function(BenchmarkId::new("gmail_push_rs256_and_parse", "0.4KB"), |bench| {
        bench.iter(|| {
            jsonwebtoken::decode::<serde_json::Value>(&token, &key, &validation).unwrap();
            gmail::push::parse(&body).unwrap()
        })
    });
    group.finish();
}

criterion_group!(benches, ingest);
criterion_main!(benches);
