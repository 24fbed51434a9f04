//! The LinkedIn webhook: challenge, signature, notifications and leads on moto.

use commsync::http::body_text;
use commsync::ids::{AccountId, Provider, TenantId};
use commsync::providers::linkedin::handle;
use commsync_tests::{linkedin_notifications, post_event, signed_linkedin, TestStack, LINKEDIN_SECRET};
use hmac::{Hmac, Mac};
use sha2::Sha256;

const ACME: &str = "urn:li:organization:5515715";
const GLOBEX: &str = "urn:li:organization:2414183";

async fn linkedin_stack() -> TestStack {
    let stack = TestStack::new().await;
    stack.register("acme", "page", Provider::LinkedIn, ACME).await;
    stack.register("globex", "page", Provider::LinkedIn, GLOBEX).await;
    stack
}

fn hex_hmac(secret: &str, parts: &[&[u8]]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    for part in parts {
        mac.update(part);
    }
    hex::encode(mac.finalize().into_bytes())
}

fn challenge_event(query: &str) -> lambda_http::aws_lambda_events::apigw::ApiGatewayV2httpRequest {
    let uri: lambda_http::http::Uri = format!("/webhooks/linkedin?{query}").parse().unwrap();
    commsync::local::server::apigw_event(&lambda_http::http::Method::GET, &uri, Default::default(), b"")
}

#[tokio::test]
async fn challenge_answers_hmac_of_code() {
    let stack = linkedin_stack().await;
    let answer = handle(challenge_event("challengeCode=abc-123"), &stack.linkedin_deps()).await;

    assert_eq!(answer.status_code, 200);
    let body: serde_json::Value = serde_json::from_str(&body_text(&answer)).unwrap();
    assert_eq!(body["challengeCode"], "abc-123");
    assert_eq!(body["challengeResponse"], hex_hmac(LINKEDIN_SECRET, &[b"abc-123"]));
}

#[tokio::test]
async fn challenge_application_id_uses_its_secret() {
    let stack = linkedin_stack().await;
    let answer = handle(challenge_event("challengeCode=abc&applicationId=77001"), &stack.linkedin_deps()).await;
    let body: serde_json::Value = serde_json::from_str(&body_text(&answer)).unwrap();
    assert_eq!(body["challengeResponse"], hex_hmac("test-child-app-secret", &[b"abc"]));
}

#[tokio::test]
async fn plain_body_hmac_rejected() {
    let stack = linkedin_stack().await;
    let body = linkedin_notifications(&[(1, ACME, "LIKE")]);
    let plain = hex_hmac(LINKEDIN_SECRET, &[body.as_bytes()]);
    let event = post_event("/webhooks/linkedin", &[("x-li-signature", &plain)], body.as_bytes());

    assert_eq!(handle(event, &stack.linkedin_deps()).await.status_code, 401);
    assert!(stack.drain_events().await.is_empty());
}

#[tokio::test]
async fn prefixed_signature_accepted() {
    let stack = linkedin_stack().await;
    let body = linkedin_notifications(&[(1, ACME, "LIKE")]);
    let signature = format!("hmacsha256={}", hex_hmac(LINKEDIN_SECRET, &[b"hmacsha256=", body.as_bytes()]));
    let event = post_event("/webhooks/linkedin", &[("X-LI-Signature", &signature)], body.as_bytes());

    assert_eq!(handle(event, &stack.linkedin_deps()).await.status_code, 200);
}

#[tokio::test]
async fn duplicate_and_reordered_notifications_stored_once() {
    let stack = linkedin_stack().await;
    let deps = stack.linkedin_deps();

    handle(signed_linkedin(&linkedin_notifications(&[(20, ACME, "COMMENT"), (10, ACME, "LIKE")])), &deps).await;
    handle(signed_linkedin(&linkedin_notifications(&[(10, ACME, "LIKE")])), &deps).await;
    handle(signed_linkedin(&linkedin_notifications(&[(20, ACME, "COMMENT"), (30, ACME, "SHARE")])), &deps).await;

    let tenant = TenantId::parse("acme").unwrap();
    let account = AccountId::parse("page").unwrap();
    let stored = stack.store.list_events(&tenant, &account).await.unwrap();
    assert_eq!(stored.len(), 3);
    let mut queued: Vec<String> = stack.drain_events().await.iter().map(|event| event.event_id.to_string()).collect();
    queued.sort();
    assert_eq!(
        queued,
        vec![format!("linkedin:{ACME}:10"), format!("linkedin:{ACME}:20"), format!("linkedin:{ACME}:30")]
    );
}

#[tokio::test]
async fn batch_routes_each_organization() {
    let stack = linkedin_stack().await;
    handle(
        signed_linkedin(&linkedin_notifications(&[(1, ACME, "LIKE"), (2, GLOBEX, "COMMENT")])),
        &stack.linkedin_deps(),
    )
    .await;

    let acme =
        stack.store.list_events(&TenantId::parse("acme").unwrap(), &AccountId::parse("page").unwrap()).await.unwrap();
    let globex =
        stack.store.list_events(&TenantId::parse("globex").unwrap(), &AccountId::parse("page").unwrap()).await.unwrap();
    assert_eq!(acme.len(), 1);
    assert_eq!(globex.len(), 1);
    assert_eq!(globex[0].event.tenant_id.as_str(), "globex");
}

#[tokio::test]
async fn lead_action_stored_and_enqueued() {
    let stack = linkedin_stack().await;
    let body = format!(
        r#"{{"type":"LEAD_ACTION","leadGenFormResponse":"urn:li:leadGenFormResponse:(urn:li:leadGenForm:1,abc)","owner":{{"organization":"{ACME}"}},"leadType":"COMPANY","leadAction":"CREATED","occurredAt":1796300000000}}"#
    );
    let answer = handle(signed_linkedin(&body), &stack.linkedin_deps()).await;

    assert_eq!(answer.status_code, 200);
    let queued = stack.drain_events().await;
    assert_eq!(queued.len(), 1);
    assert_eq!(queued[0].kind, commsync::event::EventKind::LeadAction);
}

#[tokio::test]
async fn unknown_organization_quarantined() {
    let stack = linkedin_stack().await;
    let answer = handle(
        signed_linkedin(&linkedin_notifications(&[(1, "urn:li:organization:1", "LIKE")])),
        &stack.linkedin_deps(),
    )
    .await;

    assert_eq!(answer.status_code, 200);
    let quarantined = stack.store.list_quarantine(Provider::LinkedIn).await.unwrap();
    assert_eq!(quarantined.len(), 1);
    assert!(quarantined[0].reason.contains("urn:li:organization:1"));
}
