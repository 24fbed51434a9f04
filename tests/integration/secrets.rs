//! Secrets never appear in logs or in the `Debug` output of the handlers' dependencies.
//!
//! Each test drives every webhook through accepted, rejected and failing requests, and
//! the recovery worker through successful and failing jobs. Meanwhile it captures what
//! `tracing` emits at TRACE level from commsync and from the AWS SDK, HTTP clients and
//! local servers it calls. Every secret has a value unique to this file, so a match in
//! the captured text can only be a leak.
//!
//! A subscriber is installed with `tracing::subscriber::set_default`, which applies to the
//! current thread only. The tests run on a current-thread runtime, so every task they
//! spawn (including the local JWKS and provider servers) logs into the same capture.

use commsync::event::Source;
use commsync::ids::{AccountId, Provider, TenantId};
use commsync::jobs::{JobKind, SyncJob};
use commsync::local::dev_keys::DEV_KID;
use commsync::store::Credentials;
use commsync_tests::jwt::{sign_rs256, valid_claims, valid_token, JwksServer};
use commsync_tests::providers::{Fault, ProviderServer};
use commsync_tests::{
    gmail_push, gmail_push_body, hmac_hex, linkedin_notifications, post_event, text_message, whatsapp_body, TestStack,
};
use hmac::{Hmac, Mac};
use lambda_http::aws_lambda_events::apigw::ApiGatewayV2httpRequest;
use lambda_http::http::{Method, Uri};
use sha2::Sha256;
use std::collections::HashMap;
use std::io::Write;
use std::sync::{Arc, Mutex};
use tracing_subscriber::fmt::format::FmtSpan;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::EnvFilter;

const NUMBER: &str = "106540352242922";
const ORG: &str = "urn:li:organization:5515715";
const MAILBOX: &str = "ops@acme.example";

const APP_SECRET: &str = "wa-app-secret-5f1c9e2a";
const PREVIOUS_APP_SECRET: &str = "wa-previous-app-secret-0d4b7713";
const VERIFY_TOKEN: &str = "wa-verify-token-7b2d41c6";
const LINKEDIN_CLIENT_SECRET: &str = "li-client-secret-a93e0c55";
const LINKEDIN_APP_SECRET: &str = "li-app-secret-41d8aa90";
const OAUTH_CLIENT_SECRET: &str = "GOCSPX-oauth-client-secret-77aa3b";
const GMAIL_ACCESS_TOKEN: &str = "ya29.gmail-access-token-c0ffee11";
const GMAIL_REFRESH_TOKEN: &str = "1//gmail-refresh-token-d00d2468";
const GRAPH_ACCESS_TOKEN: &str = "EAAG-graph-access-token-9a8b7c6d";
const LINKEDIN_ACCESS_TOKEN: &str = "AQV-linkedin-access-token-3e4f5a6b";

/// Every configured or stored secret, with the name an assertion reports.
const SECRETS: [(&str, &str); 10] = [
    ("WHATSAPP_APP_SECRET", APP_SECRET),
    ("WHATSAPP_APP_SECRET_PREVIOUS", PREVIOUS_APP_SECRET),
    ("WHATSAPP_VERIFY_TOKEN", VERIFY_TOKEN),
    ("LINKEDIN_CLIENT_SECRET", LINKEDIN_CLIENT_SECRET),
    ("LINKEDIN_APP_SECRETS", LINKEDIN_APP_SECRET),
    ("GMAIL_OAUTH_CLIENT_SECRET", OAUTH_CLIENT_SECRET),
    ("Gmail access token", GMAIL_ACCESS_TOKEN),
    ("Gmail refresh token", GMAIL_REFRESH_TOKEN),
    ("Graph access token", GRAPH_ACCESS_TOKEN),
    ("LinkedIn access token", LINKEDIN_ACCESS_TOKEN),
];

/// A `tracing` writer that appends everything to one shared buffer.
#[derive(Clone, Default)]
struct CapturedLogs(Arc<Mutex<Vec<u8>>>);

impl CapturedLogs {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

impl Write for CapturedLogs {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for CapturedLogs {
    type Writer = CapturedLogs;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

/// Asserts that `needle` occurs nowhere in `haystack`, showing the text around the first match.
fn assert_absent(haystack: &str, label: &str, needle: &str, place: &str) {
    if let Some(position) = haystack.find(needle) {
        let start = haystack.floor_char_boundary(position.saturating_sub(200));
        let end = haystack.ceil_char_boundary((position + needle.len() + 200).min(haystack.len()));
        panic!("{label} appears in {place}: ...{}...", &haystack[start..end]);
    }
}

fn ids(account: &str) -> (TenantId, AccountId) {
    (TenantId::parse("acme").unwrap(), AccountId::parse(account).unwrap())
}

fn job(kind: JobKind, account: &str, provider: Provider, key: &str) -> SyncJob {
    let (tenant, account) = ids(account);
    SyncJob::new(kind, tenant, account, provider, "secrets-test", key)
}

fn with_secrets(stack: &TestStack, binary: &str) -> HashMap<String, String> {
    let mut env = stack.function_env(binary);
    for (name, value) in [
        ("WHATSAPP_APP_SECRET", APP_SECRET.to_string()),
        ("WHATSAPP_APP_SECRET_PREVIOUS", PREVIOUS_APP_SECRET.to_string()),
        ("WHATSAPP_VERIFY_TOKEN", VERIFY_TOKEN.to_string()),
        ("LINKEDIN_CLIENT_SECRET", LINKEDIN_CLIENT_SECRET.to_string()),
        ("LINKEDIN_APP_SECRETS", format!("77001={LINKEDIN_APP_SECRET}")),
    ] {
        env.insert(name.to_string(), value);
    }
    env
}

fn whatsapp_post(secret: &str, body: &str) -> ApiGatewayV2httpRequest {
    let signature = format!("sha256={}", hmac_hex(secret, body.as_bytes()));
    post_event("/webhooks/whatsapp", &[("x-hub-signature-256", &signature)], body.as_bytes())
}

fn linkedin_post(secret: &str, body: &str) -> ApiGatewayV2httpRequest {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(b"hmacsha256=");
    mac.update(body.as_bytes());
    let signature = hex::encode(mac.finalize().into_bytes());
    post_event("/webhooks/linkedin", &[("x-li-signature", &signature)], body.as_bytes())
}

fn get(path_and_query: &str) -> ApiGatewayV2httpRequest {
    let uri: Uri = path_and_query.parse().unwrap();
    commsync::local::server::apigw_event(&Method::GET, &uri, Default::default(), b"")
}

/// Returns a store whose events table does not exist, so every write fails.
fn broken_store(stack: &TestStack) -> commsync::store::Store {
    commsync::store::Store::new(
        stack.clients.dynamodb.clone(),
        commsync::store::Tables {
            accounts: stack.store.tables().accounts.clone(),
            events: "no-such-table".to_string(),
        },
        std::time::Duration::from_secs(60),
    )
}

/// Builds the recovery worker's dependencies against `providers`, with this file's OAuth client secret.
fn recovery_deps(stack: &TestStack, providers: &ProviderServer) -> Arc<commsync::recovery::RecoveryDeps> {
    let mut env = stack.function_env("recovery-worker");
    for (name, value) in [
        ("GMAIL_API_BASE_URL", providers.gmail_base_url()),
        ("GMAIL_OAUTH_TOKEN_URL", providers.token_url()),
        ("GMAIL_OAUTH_CLIENT_ID", "secrets-test-client".to_string()),
        ("GMAIL_OAUTH_CLIENT_SECRET", OAUTH_CLIENT_SECRET.to_string()),
        ("GMAIL_PUBSUB_TOPIC", "projects/commsync-test/topics/gmail".to_string()),
        ("WHATSAPP_GRAPH_BASE_URL", providers.graph_base_url()),
        ("LINKEDIN_API_BASE_URL", providers.linkedin_base_url()),
        ("RETRY_BASE_SECONDS", "0".to_string()),
        ("GMAIL_EMPTY_HISTORY_DELAY_SECONDS", "0".to_string()),
        ("PROVIDER_TIMEOUT_SECONDS", "2".to_string()),
    ] {
        env.insert(name.to_string(), value);
    }
    Arc::new(commsync::recovery::RecoveryDeps::new(&stack.clients, &env).expect("worker config is complete"))
}

/// Drives the WhatsApp webhook through accepted, rejected and failing requests.
async fn exercise_whatsapp(stack: &TestStack) -> Vec<String> {
    let mut deps =
        commsync::providers::whatsapp::WhatsAppDeps::new(&stack.clients, &with_secrets(stack, "webhook-whatsapp"))
            .unwrap();
    let handle = commsync::providers::whatsapp::handle;
    let message = |wamid: &str| whatsapp_body(NUMBER, &text_message(wamid, "hello"), "");

    let handshake =
        format!("/webhooks/whatsapp?hub.mode=subscribe&hub.verify_token={VERIFY_TOKEN}&hub.challenge=31337");
    let mut statuses = vec![
        handle(get(&handshake), &deps).await.status_code,
        handle(get("/webhooks/whatsapp?hub.mode=subscribe&hub.verify_token=guess&hub.challenge=1"), &deps)
            .await
            .status_code,
        handle(whatsapp_post(APP_SECRET, &message("wamid.accepted")), &deps).await.status_code,
        handle(whatsapp_post(PREVIOUS_APP_SECRET, &message("wamid.previous")), &deps).await.status_code,
        handle(whatsapp_post("wrong-app-secret", &message("wamid.rejected")), &deps).await.status_code,
        handle(whatsapp_post(APP_SECRET, &whatsapp_body("100000000000001", "", "")), &deps).await.status_code,
    ];
    deps.ingest.store = broken_store(stack);
    statuses.push(handle(whatsapp_post(APP_SECRET, &message("wamid.failing")), &deps).await.status_code);

    assert_eq!(statuses, [200, 403, 200, 200, 401, 200, 500], "WhatsApp answers");
    vec![format!("{deps:?}")]
}

/// Drives the LinkedIn webhook through accepted, rejected and failing requests.
async fn exercise_linkedin(stack: &TestStack) -> Vec<String> {
    let mut deps =
        commsync::providers::linkedin::LinkedInDeps::new(&stack.clients, &with_secrets(stack, "webhook-linkedin"))
            .unwrap();
    let handle = commsync::providers::linkedin::handle;
    let body = |id: u64| linkedin_notifications(&[(id, ORG, "COMMENT")]);

    let mut statuses = vec![
        handle(get("/webhooks/linkedin?challengeCode=890e4665"), &deps).await.status_code,
        handle(get("/webhooks/linkedin?challengeCode=890e4665&applicationId=77001"), &deps).await.status_code,
        handle(linkedin_post(LINKEDIN_CLIENT_SECRET, &body(1)), &deps).await.status_code,
        handle(linkedin_post(LINKEDIN_APP_SECRET, &body(2)), &deps).await.status_code,
        handle(linkedin_post("wrong-client-secret", &body(3)), &deps).await.status_code,
    ];
    deps.ingest.store = broken_store(stack);
    statuses.push(handle(linkedin_post(LINKEDIN_CLIENT_SECRET, &body(4)), &deps).await.status_code);

    assert_eq!(statuses, [200, 200, 200, 200, 401, 500], "LinkedIn answers");
    vec![format!("{deps:?}")]
}

/// Drives the Gmail webhook through accepted, rejected and failing pushes. Returns the
/// Debug output of its deps and every bearer token it sent.
async fn exercise_gmail(stack: &TestStack, jwks: &JwksServer) -> (Vec<String>, Vec<String>) {
    let mut env = stack.function_env("webhook-gmail");
    env.insert("GMAIL_JWKS_URL".to_string(), jwks.url.clone());
    let mut deps = commsync::providers::gmail::GmailDeps::new(&stack.clients, &env).unwrap();
    let handle = commsync::providers::gmail::handle;

    let valid = valid_token();
    let mut expired_claims = valid_claims();
    expired_claims["exp"] = serde_json::json!(chrono::Utc::now().timestamp() - 600);
    let expired = sign_rs256(&expired_claims, DEV_KID, false);
    let forged = sign_rs256(&valid_claims(), DEV_KID, true);
    let unknown_kid = sign_rs256(&valid_claims(), "no-such-kid", false);

    let mut statuses = vec![
        handle(gmail_push(&valid, &gmail_push_body("push-1", MAILBOX, "100")), &deps).await.status_code,
        handle(gmail_push(&expired, &gmail_push_body("push-2", MAILBOX, "101")), &deps).await.status_code,
        handle(gmail_push(&forged, &gmail_push_body("push-3", MAILBOX, "102")), &deps).await.status_code,
        handle(gmail_push(&unknown_kid, &gmail_push_body("push-4", MAILBOX, "103")), &deps).await.status_code,
        handle(gmail_push(&valid, "not a push body"), &deps).await.status_code,
    ];
    deps.ingest.store = broken_store(stack);
    statuses.push(handle(gmail_push(&valid, &gmail_push_body("push-5", MAILBOX, "104")), &deps).await.status_code);

    // No keys at all: the JWKS URL refuses connections.
    let mut unreachable_env = env.clone();
    unreachable_env.insert("GMAIL_JWKS_URL".to_string(), "http://127.0.0.1:9/certs".to_string());
    let unreachable = commsync::providers::gmail::GmailDeps::new(&stack.clients, &unreachable_env).unwrap();
    statuses
        .push(handle(gmail_push(&valid, &gmail_push_body("push-6", MAILBOX, "105")), &unreachable).await.status_code);

    assert_eq!(statuses, [204, 401, 401, 401, 204, 500, 401], "Gmail answers");
    (vec![format!("{deps:?}"), format!("{unreachable:?}")], vec![valid, expired, forged, unknown_kid])
}

/// Runs the recovery worker twice: once with every job succeeding (a Gmail history sync
/// that refreshes an expired access token, a WhatsApp subscription repair, a LinkedIn
/// pull), then with every job failing. Returns the Debug output of its deps and the
/// access token the refresh issued.
async fn exercise_recovery(stack: &TestStack) -> (Vec<String>, String) {
    let providers = ProviderServer::start().await;
    {
        let mut state = providers.state();
        state.oauth_client = Some(("secrets-test-client".to_string(), OAUTH_CLIENT_SECRET.to_string()));
        state.add_gmail_mailbox(MAILBOX, GMAIL_ACCESS_TOKEN, GMAIL_REFRESH_TOKEN);
        state.gmail_add_message(MAILBOX, "recovered-1", &["INBOX"]);
        state.gmail_expire_access_token(GMAIL_ACCESS_TOKEN);
        state.add_waba(&format!("WABA-{NUMBER}"), NUMBER, GRAPH_ACCESS_TOKEN, false);
        state.add_linkedin_token(LINKEDIN_ACCESS_TOKEN);
        state.linkedin_add_notification(ORG, 50, "COMMENT", chrono::Utc::now().timestamp_millis() - 60_000);
    }
    let deps = recovery_deps(stack, &providers);

    for (kind, account, provider) in [
        (JobKind::HistorySync, "mailbox", Provider::Gmail),
        (JobKind::CheckSubscription, "support", Provider::WhatsApp),
        (JobKind::NotificationsPull, "page", Provider::LinkedIn),
    ] {
        stack.enqueue_job(&job(kind, account, provider, "succeeds")).await;
    }
    // The queue also contains the history_sync job that the accepted Gmail push sent.
    let succeeded = stack.run_worker(&deps).await;
    assert!(succeeded.received >= 3, "first worker run: {succeeded:?}");
    assert_eq!(succeeded.failed, 0, "first worker run: {succeeded:?}");
    let refreshed = providers.state().gmail_latest_access_token(MAILBOX).expect("the worker refreshed the token");
    let (tenant, mailbox) = ids("mailbox");
    assert!(stack
        .store
        .list_events(&tenant, &mailbox)
        .await
        .unwrap()
        .iter()
        .all(|e| e.event.source == Source::Recovery));

    {
        let mut state = providers.state();
        state.graph_expire_token(GRAPH_ACCESS_TOKEN);
        state.linkedin_revoke_token(LINKEDIN_ACCESS_TOKEN);
        state.gmail_revoke_refresh_token(GMAIL_REFRESH_TOKEN);
        state.gmail_expire_access_token(&refreshed);
    }
    providers.inject("/history", Fault::Status(500), 1);
    for (kind, account, provider) in [
        (JobKind::HistorySync, "mailbox", Provider::Gmail),
        (JobKind::CheckSubscription, "support", Provider::WhatsApp),
        (JobKind::NotificationsPull, "page", Provider::LinkedIn),
    ] {
        stack.enqueue_job(&job(kind, account, provider, "fails")).await;
    }
    let failing = stack.run_worker(&deps).await;
    assert!(failing.received >= 3, "second worker run: {failing:?}");

    let stored_credentials: Vec<Credentials> = {
        let mut all = Vec::new();
        for account in ["mailbox", "support", "page"] {
            let (tenant, account) = ids(account);
            all.push(stack.store.get_credentials(&tenant, &account).await.unwrap());
        }
        all
    };
    (vec![format!("{deps:?}"), format!("{stored_credentials:?}")], refreshed)
}

/// What one run of every path left behind.
struct Scenario {
    logs: String,
    debug_outputs: Vec<String>,
    bearer_tokens: Vec<String>,
    refreshed_token: String,
}

/// Runs every webhook path and the recovery worker while a subscriber with `filter`
/// captures all log output on this thread.
async fn run_captured(filter: EnvFilter) -> Scenario {
    let logs = CapturedLogs::default();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(logs.clone())
        .with_env_filter(filter)
        .with_span_events(FmtSpan::FULL)
        .with_ansi(false)
        .finish();
    // tracing-core 0.1 lets a thread with no subscriber decide a new callsite's interest on
    // its own while only one dispatcher is registered, so callsites first reached by tests
    // on other threads would stay disabled here. A second registered dispatcher makes every
    // registration ask all of them, this capture included.
    let second_dispatcher = tracing::Dispatch::new(tracing::subscriber::NoSubscriber::default());
    let guard = tracing::subscriber::set_default(subscriber);
    tracing::info!(probe = "captured-probe-value", "capture check");

    let stack = TestStack::new().await;
    let jwks = JwksServer::start().await;
    stack.register("acme", "support", Provider::WhatsApp, NUMBER).await;
    stack.register("acme", "page", Provider::LinkedIn, ORG).await;
    stack.register("acme", "mailbox", Provider::Gmail, MAILBOX).await;
    stack.store_tokens("acme", "mailbox", Some(GMAIL_ACCESS_TOKEN), Some(GMAIL_REFRESH_TOKEN)).await;
    stack.store_tokens("acme", "support", Some(GRAPH_ACCESS_TOKEN), None).await;
    stack.store_tokens("acme", "page", Some(LINKEDIN_ACCESS_TOKEN), None).await;

    let mut debug_outputs = exercise_whatsapp(&stack).await;
    debug_outputs.extend(exercise_linkedin(&stack).await);
    let (gmail_debug, bearer_tokens) = exercise_gmail(&stack, &jwks).await;
    debug_outputs.extend(gmail_debug);
    let (recovery_debug, refreshed_token) = exercise_recovery(&stack).await;
    debug_outputs.extend(recovery_debug);
    drop(guard);
    drop(second_dispatcher);

    Scenario { logs: logs.text(), debug_outputs, bearer_tokens, refreshed_token }
}

fn assert_no_secrets(scenario: &Scenario) {
    let logs = &scenario.logs;
    assert!(logs.contains("captured-probe-value"), "the capture works");
    assert!(logs.contains("webhook ingested"), "handler logs are captured");
    assert!(logs.contains("push token rejected"), "rejections are captured");
    assert!(logs.contains("gmail access token refreshed"), "worker logs are captured");

    for (label, secret) in SECRETS {
        assert_absent(logs, label, secret, "the logs");
    }
    assert_absent(logs, "the refreshed Gmail access token", &scenario.refreshed_token, "the logs");
    for token in &scenario.bearer_tokens {
        assert_absent(logs, "a Gmail push bearer token", token, "the logs");
        let signature = token.rsplit('.').next().unwrap();
        assert_absent(logs, "a Gmail push token signature", signature, "the logs");
    }

    let debug = scenario.debug_outputs.join("\n");
    for (label, secret) in SECRETS {
        assert_absent(&debug, label, secret, "Debug output");
    }
    assert_absent(&debug, "the refreshed Gmail access token", &scenario.refreshed_token, "Debug output");
}

/// Captures everything at TRACE through the filter that every binary installs, as a
/// function with `RUST_LOG=trace` would. It caps the AWS SDK's and HTTP clients'
/// wire-level targets at INFO.
#[tokio::test(flavor = "current_thread")]
async fn secrets_absent_from_logs_and_debug() {
    let scenario = run_captured(commsync::logging::filter_from("trace")).await;
    assert_no_secrets(&scenario);
}

/// Without the cap, the AWS SDK's orchestrator logs each DynamoDB response at TRACE, and a
/// `GetItem` of a credentials item shows the stored tokens. This shows that the capture
/// above would catch a leak and that the cap is what keeps the tokens out. If an SDK
/// upgrade stops logging response bodies, this test fails and the cap can be revisited.
#[tokio::test(flavor = "current_thread")]
async fn uncapped_sdk_trace_shows_stored_tokens() {
    let scenario = run_captured(EnvFilter::new("trace")).await;
    assert!(scenario.logs.contains("aws_smithy_runtime::client::orchestrator"), "SDK logs are captured");
    assert!(scenario.logs.contains(GMAIL_REFRESH_TOKEN), "the uncapped SDK logs the credentials item");
}

/// `GMAIL_PUSH_AUDIENCE` and `GMAIL_PUSH_SERVICE_ACCOUNT` are NoEcho template parameters
/// that `GmailConfig` reads as `Secret`s, so the deps built from them must not print them.
#[tokio::test]
async fn gmail_deps_debug_hides_push_identity() {
    let stack = TestStack::new().await;
    let audience = "https://push-audience-3c1d9f.example/webhooks/gmail";
    let service_account = "push-sa-8e2f0b@commsync-test.iam.gserviceaccount.com";
    let mut env = stack.function_env("webhook-gmail");
    env.insert("GMAIL_PUSH_AUDIENCE".to_string(), audience.to_string());
    env.insert("GMAIL_PUSH_SERVICE_ACCOUNT".to_string(), service_account.to_string());

    let config = commsync::config::GmailConfig::from_env(&env).unwrap();
    let deps = commsync::providers::gmail::GmailDeps::new(&stack.clients, &env).unwrap();

    assert_absent(&format!("{config:?}"), "GMAIL_PUSH_AUDIENCE", audience, "GmailConfig's Debug output");
    assert_absent(&format!("{deps:?}"), "GMAIL_PUSH_AUDIENCE", audience, "GmailDeps' Debug output");
    assert_absent(&format!("{deps:?}"), "GMAIL_PUSH_SERVICE_ACCOUNT", service_account, "GmailDeps' Debug output");
}
