//! The Gmail push webhook: token verification against a local JWKS, deduplication,
//! historyId raising and `history_sync` jobs on moto.

use base64::Engine;
use commsync::ids::{AccountId, Provider, TenantId};
use commsync::jobs::{JobKind, SyncJob};
use commsync::local::dev_keys::DEV_KID;
use commsync::providers::gmail::{handle, AuthError};
use commsync_tests::jwt::{sign_rs256, valid_claims, valid_token, JwksServer, GMAIL_AUDIENCE};
use commsync_tests::{gmail_push, gmail_push_body, TestStack};
use serde_json::json;

const MAILBOX: &str = "ops@acme.example";

async fn gmail_stack() -> (TestStack, JwksServer) {
    let stack = TestStack::new().await;
    stack.register("acme", "mailbox", Provider::Gmail, MAILBOX).await;
    (stack, JwksServer::start().await)
}

fn ids() -> (TenantId, AccountId) {
    (TenantId::parse("acme").unwrap(), AccountId::parse("mailbox").unwrap())
}

/// Sends a push with `token`; returns the HTTP status and the authenticator's own verdict.
async fn verdict(token: &str) -> (i64, Result<(), AuthError>) {
    let (stack, jwks) = gmail_stack().await;
    let deps = stack.gmail_deps(&jwks.url);
    let header = format!("Bearer {token}");
    let reason = deps.auth.verify(Some(header.as_bytes())).await;
    let status = handle(gmail_push(token, &gmail_push_body("m1", MAILBOX, "100")), &deps).await.status_code;
    (status, reason)
}

#[tokio::test]
async fn valid_token_push_sends_history_sync() {
    let (stack, jwks) = gmail_stack().await;
    let deps = stack.gmail_deps(&jwks.url);

    let answer = handle(gmail_push(&valid_token(), &gmail_push_body("m1", MAILBOX, "100")), &deps).await;

    assert_eq!(answer.status_code, 204);
    let jobs = stack.drain("SyncQueue").await;
    assert_eq!(jobs.len(), 1);
    let job: SyncJob = serde_json::from_str(&jobs[0]).unwrap();
    assert_eq!(job.kind, JobKind::HistorySync);
    assert_eq!(job.notified_history_id, Some(100));
    let (tenant, account) = ids();
    assert_eq!(stack.store.get_account(&tenant, &account).await.unwrap().notified_history_id, Some(100));
}

#[tokio::test]
async fn expired_token_rejected() {
    let mut claims = valid_claims();
    claims["exp"] = json!(chrono::Utc::now().timestamp() - 600);
    let (status, reason) = verdict(&sign_rs256(&claims, DEV_KID, false)).await;
    assert_eq!(status, 401);
    assert_eq!(reason, Err(AuthError::Expired));
}

#[tokio::test]
async fn wrong_audience_rejected() {
    let mut claims = valid_claims();
    claims["aud"] = json!("https://someone-else.example/push");
    let (status, reason) = verdict(&sign_rs256(&claims, DEV_KID, false)).await;
    assert_eq!(status, 401);
    assert_eq!(reason, Err(AuthError::WrongAudience));
}

#[tokio::test]
async fn audience_list_rejected() {
    let mut claims = valid_claims();
    claims["aud"] = json!([GMAIL_AUDIENCE, "https://other.example"]);
    let (status, reason) = verdict(&sign_rs256(&claims, DEV_KID, false)).await;
    assert_eq!(status, 401);
    assert_eq!(reason, Err(AuthError::WrongAudience));
}

#[tokio::test]
async fn wrong_issuer_rejected() {
    let mut claims = valid_claims();
    claims["iss"] = json!("https://evil.example");
    let (status, reason) = verdict(&sign_rs256(&claims, DEV_KID, false)).await;
    assert_eq!(status, 401);
    assert_eq!(reason, Err(AuthError::WrongIssuer));
}

#[tokio::test]
async fn wrong_email_rejected() {
    let mut claims = valid_claims();
    claims["email"] = json!("attacker@evil.iam.gserviceaccount.com");
    let (status, reason) = verdict(&sign_rs256(&claims, DEV_KID, false)).await;
    assert_eq!(status, 401);
    assert_eq!(reason, Err(AuthError::WrongEmail));
}

#[tokio::test]
async fn unverified_email_rejected() {
    let mut claims = valid_claims();
    claims["email_verified"] = json!(false);
    let (status, reason) = verdict(&sign_rs256(&claims, DEV_KID, false)).await;
    assert_eq!(status, 401);
    assert_eq!(reason, Err(AuthError::EmailNotVerified));
}

#[tokio::test]
async fn future_iat_rejected() {
    let mut claims = valid_claims();
    claims["iat"] = json!(chrono::Utc::now().timestamp() + 3600);
    let (status, reason) = verdict(&sign_rs256(&claims, DEV_KID, false)).await;
    assert_eq!(status, 401);
    assert_eq!(reason, Err(AuthError::NotYetValid));
}

#[tokio::test]
async fn unknown_kid_rejected() {
    let (status, reason) = verdict(&sign_rs256(&valid_claims(), "no-such-key", false)).await;
    assert_eq!(status, 401);
    assert_eq!(reason, Err(AuthError::UnknownKey("no-such-key".to_string())));
}

#[tokio::test]
async fn forged_signature_rejected() {
    // Signed by a key the JWKS does not publish, under the published key's kid.
    let (status, reason) = verdict(&sign_rs256(&valid_claims(), DEV_KID, true)).await;
    assert_eq!(status, 401);
    assert_eq!(reason, Err(AuthError::BadSignature));
}

#[tokio::test]
async fn alg_none_rejected() {
    let encode = |value: serde_json::Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(value.to_string());
    let token = format!("{}.{}.", encode(json!({"alg": "none", "kid": DEV_KID})), encode(valid_claims()));
    let (status, reason) = verdict(&token).await;
    assert_eq!(status, 401);
    assert_eq!(reason, Err(AuthError::Algorithm("none".to_string())));
}

#[tokio::test]
async fn hs256_keyed_with_public_key_rejected() {
    let public_modulus = commsync::local::dev_keys::dev_jwks()["keys"][0]["n"].as_str().unwrap().to_string();
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
    header.kid = Some(DEV_KID.to_string());
    let key = jsonwebtoken::EncodingKey::from_secret(public_modulus.as_bytes()).unwrap();
    let token = jsonwebtoken::encode(&header, &valid_claims(), &key).unwrap();
    let (status, reason) = verdict(&token).await;
    assert_eq!(status, 401);
    assert_eq!(reason, Err(AuthError::Algorithm("HS256".to_string())));
}

#[tokio::test]
async fn missing_authorization_rejected() {
    let (stack, jwks) = gmail_stack().await;
    let deps = stack.gmail_deps(&jwks.url);
    let event = commsync_tests::post_event("/webhooks/gmail", &[], gmail_push_body("m1", MAILBOX, "1").as_bytes());
    assert_eq!(handle(event, &deps).await.status_code, 401);
    assert!(stack.drain("SyncQueue").await.is_empty());
}

#[tokio::test]
async fn jwks_cached_across_requests() {
    let (stack, jwks) = gmail_stack().await;
    let deps = stack.gmail_deps(&jwks.url);
    for index in 0..3 {
        let body = gmail_push_body(&format!("m{index}"), MAILBOX, &format!("{}", 100 + index));
        assert_eq!(handle(gmail_push(&valid_token(), &body), &deps).await.status_code, 204);
    }
    assert_eq!(jwks.fetches(), 1);
}

#[tokio::test]
async fn jwks_refreshed_on_unknown_kid() {
    let (stack, jwks) = gmail_stack().await;
    let deps = stack.gmail_deps(&jwks.url);
    let rotated = sign_rs256(&valid_claims(), "rotated-key", true);

    let before = handle(gmail_push(&rotated, &gmail_push_body("m1", MAILBOX, "100")), &deps).await;
    jwks.publish_attacker_key("rotated-key");
    let after = handle(gmail_push(&rotated, &gmail_push_body("m2", MAILBOX, "101")), &deps).await;

    assert_eq!(before.status_code, 401);
    assert_eq!(after.status_code, 204);
    assert_eq!(jwks.fetches(), 2);
}

#[tokio::test]
async fn duplicate_push_sends_one_job() {
    let (stack, jwks) = gmail_stack().await;
    let deps = stack.gmail_deps(&jwks.url);
    let body = gmail_push_body("same-id", MAILBOX, "500");

    let first = handle(gmail_push(&valid_token(), &body), &deps).await;
    let second = handle(gmail_push(&valid_token(), &body), &deps).await;

    assert_eq!(first.status_code, 204);
    assert_eq!(second.status_code, 204);
    assert_eq!(stack.drain("SyncQueue").await.len(), 1);
}

#[tokio::test]
async fn lower_history_id_is_noop() {
    let (stack, jwks) = gmail_stack().await;
    let deps = stack.gmail_deps(&jwks.url);

    handle(gmail_push(&valid_token(), &gmail_push_body("m1", MAILBOX, "900")), &deps).await;
    let lower = handle(gmail_push(&valid_token(), &gmail_push_body("m2", MAILBOX, "\"800\"")), &deps).await;

    assert_eq!(lower.status_code, 204);
    let (tenant, account) = ids();
    assert_eq!(stack.store.get_account(&tenant, &account).await.unwrap().notified_history_id, Some(900));
}

#[tokio::test]
async fn pending_job_blocks_second_job() {
    let (stack, jwks) = gmail_stack().await;
    let deps = stack.gmail_deps(&jwks.url);

    handle(gmail_push(&valid_token(), &gmail_push_body("m1", MAILBOX, "100")), &deps).await;
    handle(gmail_push(&valid_token(), &gmail_push_body("m2", MAILBOX, "200")), &deps).await;

    let (tenant, account) = ids();
    assert_eq!(stack.drain("SyncQueue").await.len(), 1);
    assert_eq!(stack.store.get_account(&tenant, &account).await.unwrap().notified_history_id, Some(200));
}

#[tokio::test]
async fn mailbox_address_case_is_ignored() {
    let (stack, jwks) = gmail_stack().await;
    let deps = stack.gmail_deps(&jwks.url);
    let answer = handle(gmail_push(&valid_token(), &gmail_push_body("m1", "Ops@ACME.example", "100")), &deps).await;
    assert_eq!(answer.status_code, 204);
    assert_eq!(stack.drain("SyncQueue").await.len(), 1);
}

#[tokio::test]
async fn unknown_mailbox_quarantined() {
    let (stack, jwks) = gmail_stack().await;
    let deps = stack.gmail_deps(&jwks.url);
    let answer = handle(gmail_push(&valid_token(), &gmail_push_body("m1", "nobody@else.example", "100")), &deps).await;

    assert_eq!(answer.status_code, 204);
    let quarantined = stack.store.list_quarantine(Provider::Gmail).await.unwrap();
    assert_eq!(quarantined.len(), 1);
    assert!(quarantined[0].reason.contains("nobody@else.example"));
    assert!(stack.drain("SyncQueue").await.is_empty());
}

#[tokio::test]
async fn unparseable_push_quarantined() {
    let (stack, jwks) = gmail_stack().await;
    let deps = stack.gmail_deps(&jwks.url);
    let answer = handle(gmail_push(&valid_token(), r#"{"message":{"data":"%%%","messageId":"1"}}"#), &deps).await;

    assert_eq!(answer.status_code, 204);
    assert_eq!(stack.store.list_quarantine(Provider::Gmail).await.unwrap().len(), 1);
}

#[tokio::test]
async fn storage_failure_answers_500() {
    let (stack, jwks) = gmail_stack().await;
    let mut deps = stack.gmail_deps(&jwks.url);
    deps.ingest.store = commsync::store::Store::new(
        stack.clients.dynamodb.clone(),
        commsync::store::Tables { accounts: stack.store.tables().accounts.clone(), events: "no-such-table".into() },
        std::time::Duration::from_secs(60),
    );
    let answer = handle(gmail_push(&valid_token(), &gmail_push_body("m1", MAILBOX, "100")), &deps).await;
    assert_eq!(answer.status_code, 500);
}

#[tokio::test]
async fn queue_failure_still_acks_and_releases_lease() {
    let (stack, jwks) = gmail_stack().await;
    let mut deps = stack.gmail_deps(&jwks.url);
    let working = deps.sync_queue.clone();
    deps.sync_queue = commsync::queue::Queue::new(stack.clients.sqs.clone(), format!("{}-missing", working.url()));

    let failed = handle(gmail_push(&valid_token(), &gmail_push_body("m1", MAILBOX, "100")), &deps).await;
    let (tenant, account) = ids();
    let after_failure = stack.store.get_account(&tenant, &account).await.unwrap();
    deps.sync_queue = working;
    let next = handle(gmail_push(&valid_token(), &gmail_push_body("m2", MAILBOX, "101")), &deps).await;

    assert_eq!(failed.status_code, 204);
    assert_eq!(after_failure.notified_history_id, Some(100));
    assert_eq!(after_failure.recovery_lease_until, None);
    assert_eq!(next.status_code, 204);
    assert_eq!(stack.drain("SyncQueue").await.len(), 1);
}
