//! The recovery worker against moto and the local provider server.

use commsync::event::{EventKind, Source};
use commsync::ids::{AccountId, Provider, TenantId};
use commsync::jobs::{JobKind, SyncJob};
use commsync_tests::providers::{Fault, ProviderServer};
use commsync_tests::{linkedin_notifications, signed_linkedin, TestStack};

const MAILBOX: &str = "ops@acme.example";
const ORG: &str = "urn:li:organization:5515715";

fn ids(account: &str) -> (TenantId, AccountId) {
    (TenantId::parse("acme").unwrap(), AccountId::parse(account).unwrap())
}

fn job(kind: JobKind, account: &str, provider: Provider, key: &str) -> SyncJob {
    let (tenant, account) = ids(account);
    SyncJob::new(kind, tenant, account, provider, "test", key)
}

/// A mailbox with a cursor at the provider's current historyId and valid tokens.
async fn gmail_setup() -> (TestStack, ProviderServer) {
    let stack = TestStack::new().await;
    let providers = ProviderServer::start().await;
    stack.register("acme", "mailbox", Provider::Gmail, MAILBOX).await;
    providers.state().add_gmail_mailbox(MAILBOX, "access-1", "refresh-1");
    stack.store_tokens("acme", "mailbox", Some("access-1"), Some("refresh-1")).await;
    let current = providers.state().gmail_mailbox(MAILBOX).history_id;
    let (tenant, account) = ids("mailbox");
    stack.store.advance_history_cursor(&tenant, &account, current).await.unwrap();
    (stack, providers)
}

async fn account(stack: &TestStack, name: &str) -> commsync::store::AccountRecord {
    let (tenant, account) = ids(name);
    stack.store.get_account(&tenant, &account).await.unwrap()
}

#[tokio::test]
async fn paged_history_sync_stores_each_message_once() {
    let (stack, providers) = gmail_setup().await;
    providers.state().gmail_mailbox_mut(MAILBOX).history_page_size = 2;
    for index in 0..5 {
        providers.state().gmail_add_message(MAILBOX, &format!("msg{index}"), &["INBOX"]);
    }
    let latest = providers.state().gmail_mailbox(MAILBOX).history_id;
    let deps = stack.recovery_deps(&providers);

    stack.enqueue_job(&job(JobKind::HistorySync, "mailbox", Provider::Gmail, "1")).await;
    let first = stack.run_worker(&deps).await;
    stack.enqueue_job(&job(JobKind::HistorySync, "mailbox", Provider::Gmail, "2")).await;
    let second = stack.run_worker(&deps).await;

    assert_eq!(first.succeeded, 1);
    assert_eq!(second.succeeded, 1);
    assert_eq!(providers.count("/history"), 3 + 1, "three pages, then one empty page");
    let (tenant, account_id) = ids("mailbox");
    let stored = stack.store.list_events(&tenant, &account_id).await.unwrap();
    assert_eq!(stored.len(), 5);
    assert!(stored.iter().all(|event| event.event.source == Source::Recovery));
    assert_eq!(account(&stack, "mailbox").await.history_cursor, Some(latest));
    assert_eq!(stack.drain_events().await.len(), 5);
}

#[tokio::test]
async fn expired_cursor_full_sync_then_incremental() {
    let (stack, providers) = gmail_setup().await;
    providers.state().gmail_add_message(MAILBOX, "old1", &["INBOX"]);
    providers.state().gmail_add_message(MAILBOX, "old2", &["INBOX"]);
    let current = providers.state().gmail_mailbox(MAILBOX).history_id;
    providers.state().gmail_expire_history_before(MAILBOX, current);
    let deps = stack.recovery_deps(&providers);

    stack.enqueue_job(&job(JobKind::HistorySync, "mailbox", Provider::Gmail, "1")).await;
    stack.run_worker(&deps).await;
    let after_full = account(&stack, "mailbox").await;
    let history_calls = providers.count("/history");

    providers.state().gmail_add_message(MAILBOX, "new1", &["INBOX"]);
    stack.enqueue_job(&job(JobKind::HistorySync, "mailbox", Provider::Gmail, "2")).await;
    stack.run_worker(&deps).await;

    assert_eq!(after_full.history_cursor, Some(current));
    assert_eq!(history_calls, 1, "one 404, then the full sync");
    assert_eq!(providers.count("/profile"), 1);
    let (tenant, account_id) = ids("mailbox");
    let stored = stack.store.list_events(&tenant, &account_id).await.unwrap();
    assert_eq!(stored.len(), 3);
    let requests = providers.requests();
    let last_history = requests.iter().rev().find(|request| request.path.contains("/history")).unwrap();
    assert!(last_history.query.contains(&format!("startHistoryId={current}")), "{}", last_history.query);
}

#[tokio::test]
async fn deleted_message_404_is_skipped() {
    let (stack, providers) = gmail_setup().await;
    providers.state().gmail_add_message(MAILBOX, "kept", &["INBOX"]);
    providers.state().gmail_add_message(MAILBOX, "gone", &["INBOX"]);
    providers.state().gmail_mailbox_mut(MAILBOX).messages.remove("gone");
    let deps = stack.recovery_deps(&providers);

    stack.enqueue_job(&job(JobKind::HistorySync, "mailbox", Provider::Gmail, "1")).await;
    let report = stack.run_worker(&deps).await;

    assert_eq!(report.succeeded, 1);
    let (tenant, account_id) = ids("mailbox");
    let stored = stack.store.list_events(&tenant, &account_id).await.unwrap();
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].event.kind, EventKind::MessageAdded);
}

#[tokio::test]
async fn transient_failure_retried_then_succeeds() {
    let (stack, providers) = gmail_setup().await;
    providers.state().gmail_add_message(MAILBOX, "m1", &["INBOX"]);
    providers.inject("/history", Fault::Status(503), 1);
    let deps = stack.recovery_deps(&providers);

    stack.enqueue_job(&job(JobKind::HistorySync, "mailbox", Provider::Gmail, "1")).await;
    let first = stack.run_worker(&deps).await;
    let failing = account(&stack, "mailbox").await;
    let second = stack.run_worker(&deps).await;

    assert_eq!(first.failed, 1);
    assert_eq!(failing.consecutive_failures, 1);
    assert_eq!(second.succeeded, 1);
    assert_eq!(account(&stack, "mailbox").await.consecutive_failures, 0);
    assert_eq!(stack.drain_events().await.len(), 1);
}

#[tokio::test]
async fn expired_access_token_is_refreshed() {
    let (stack, providers) = gmail_setup().await;
    providers.state().gmail_add_message(MAILBOX, "m1", &["INBOX"]);
    providers.state().gmail_expire_access_token("access-1");
    let deps = stack.recovery_deps(&providers);

    stack.enqueue_job(&job(JobKind::HistorySync, "mailbox", Provider::Gmail, "1")).await;
    let report = stack.run_worker(&deps).await;

    assert_eq!(report.succeeded, 1);
    assert_eq!(providers.count("/token"), 1);
    let (tenant, account_id) = ids("mailbox");
    let credentials = stack.store.get_credentials(&tenant, &account_id).await.unwrap();
    let latest = providers.state().gmail_latest_access_token(MAILBOX).unwrap();
    assert_eq!(credentials.access_token.unwrap().expose(), latest);
}

#[tokio::test]
async fn revoked_token_marks_account_and_stops() {
    let (stack, providers) = gmail_setup().await;
    let bus = stack.capture_bus().await;
    providers.state().gmail_expire_access_token("access-1");
    providers.state().gmail_revoke_refresh_token("refresh-1");
    let deps = stack.recovery_deps(&providers);

    stack.enqueue_job(&job(JobKind::HistorySync, "mailbox", Provider::Gmail, "1")).await;
    let first = stack.run_worker(&deps).await;
    let again = stack.run_worker(&deps).await;

    assert_eq!(first.succeeded, 1, "the job is deleted, not retried");
    assert_eq!(again.received, 0);
    let marked = account(&stack, "mailbox").await;
    assert_eq!(marked.status, "reconnect_required");
    assert!(marked.status_reason.unwrap_or_default().contains("revoked"));
    assert_eq!(providers.count("/token"), 1);
    let events = stack.drain_url(&bus).await;
    assert_eq!(events.len(), 1);
    assert!(events[0].contains("AccountHealthChanged"), "{}", events[0]);
    assert!(events[0].contains("reconnect_required"), "{}", events[0]);
}

#[tokio::test]
async fn poison_job_reaches_dlq() {
    let (stack, providers) = gmail_setup().await;
    let deps = stack.recovery_deps(&providers);
    let queue = commsync::queue::Queue::new(stack.clients.sqs.clone(), stack.queue_url("SyncQueue"));
    let poison = commsync::queue::OutgoingMessage {
        body: "{not a job".to_string(),
        attributes: Vec::new(),
        delay_seconds: None,
    };
    queue.send_all(&[poison]).await.unwrap();
    stack.enqueue_job(&job(JobKind::Probe, "mailbox", Provider::Gmail, "good")).await;

    let mut reports = Vec::new();
    for _ in 0..8 {
        reports.push(stack.run_worker(&deps).await);
    }

    let dead = stack.drain("SyncDLQ").await;
    assert_eq!(dead, vec!["{not a job".to_string()], "{reports:?}");
    assert_eq!(reports.iter().map(|report| report.succeeded).sum::<usize>(), 1);
    assert!(stack.drain("SyncQueue").await.is_empty());
}

#[tokio::test]
async fn failing_record_reported_alone() {
    let (stack, providers) = gmail_setup().await;
    stack.register("acme", "page", Provider::LinkedIn, ORG).await;
    stack.store_tokens("acme", "page", Some("li-token"), None).await;
    providers.state().add_linkedin_token("li-token");
    providers.inject("organizationalEntityNotifications", Fault::Status(500), 1);
    let deps = stack.recovery_deps(&providers);

    stack.enqueue_job(&job(JobKind::Probe, "mailbox", Provider::Gmail, "ok")).await;
    stack.enqueue_job(&job(JobKind::NotificationsPull, "page", Provider::LinkedIn, "fails")).await;
    let report = stack.run_worker(&deps).await;

    assert_eq!(report.received, 2);
    assert_eq!(report.succeeded, 1);
    assert_eq!(report.failed, 1);
    let left = stack.drain("SyncQueue").await;
    assert_eq!(left.len(), 1);
    assert!(left[0].contains("notifications_pull"));
}

#[tokio::test]
async fn job_run_twice_changes_nothing_more() {
    let (stack, providers) = gmail_setup().await;
    providers.state().gmail_add_message(MAILBOX, "m1", &["INBOX"]);
    providers.state().gmail_add_labels(MAILBOX, "m1", &["STARRED"]);
    let deps = stack.recovery_deps(&providers);
    let (tenant, account_id) = ids("mailbox");
    let sync = job(JobKind::HistorySync, "mailbox", Provider::Gmail, "same");

    stack.enqueue_job(&sync).await;
    stack.run_worker(&deps).await;
    let after_first = stack.store.list_events(&tenant, &account_id).await.unwrap().len();
    // Moving the cursor back replays the same history, as a redelivered job after a crash would.
    let original = providers
        .state()
        .gmail_mailbox(MAILBOX)
        .history
        .first()
        .map(|record| record["id"].as_str().unwrap().parse::<u64>().unwrap() - 1)
        .unwrap();
    stack
        .store
        .client()
        .update_item()
        .table_name(&stack.store.tables().accounts)
        .key("pk", aws_sdk_dynamodb::types::AttributeValue::S("TENANT#acme".into()))
        .key("sk", aws_sdk_dynamodb::types::AttributeValue::S("ACCOUNT#mailbox".into()))
        .update_expression("SET history_cursor = :c")
        .expression_attribute_values(":c", aws_sdk_dynamodb::types::AttributeValue::N(original.to_string()))
        .send()
        .await
        .unwrap();
    stack.enqueue_job(&sync).await;
    stack.run_worker(&deps).await;

    assert_eq!(after_first, 2, "message added and labels changed");
    assert_eq!(stack.store.list_events(&tenant, &account_id).await.unwrap().len(), 2);
    assert_eq!(stack.drain_events().await.len(), 2);
}

#[tokio::test]
async fn empty_history_with_newer_push_is_requeued() {
    let (stack, providers) = gmail_setup().await;
    let deps = stack.recovery_deps(&providers);
    let mut sync = job(JobKind::HistorySync, "mailbox", Provider::Gmail, "ahead");
    sync.notified_history_id = Some(providers.state().gmail_mailbox(MAILBOX).history_id + 50);

    stack.enqueue_job(&sync).await;
    stack.run_worker(&deps).await;
    let queued = stack.drain("SyncQueue").await;

    assert_eq!(queued.len(), 1);
    let retry: SyncJob = serde_json::from_str(&queued[0]).unwrap();
    assert_eq!(retry.attempt, 1);
}

#[tokio::test]
async fn webhook_after_recovery_adds_nothing() {
    let stack = TestStack::new().await;
    let providers = ProviderServer::start().await;
    stack.register("acme", "page", Provider::LinkedIn, ORG).await;
    stack.store_tokens("acme", "page", Some("li-token"), None).await;
    providers.state().add_linkedin_token("li-token");
    let now_ms = chrono::Utc::now().timestamp_millis();
    for id in 1..=12u64 {
        providers.state().linkedin_add_notification(ORG, id, "COMMENT", now_ms - 60_000 - id as i64);
    }
    let deps = stack.recovery_deps(&providers);

    stack.enqueue_job(&job(JobKind::NotificationsPull, "page", Provider::LinkedIn, "1")).await;
    stack.run_worker(&deps).await;
    let recovered = stack.drain_events().await;
    let late = commsync::providers::linkedin::handle(
        signed_linkedin(&linkedin_notifications(&[(3, ORG, "COMMENT")])),
        &stack.linkedin_deps(),
    )
    .await;

    assert_eq!(recovered.len(), 12);
    assert!(recovered.iter().all(|event| event.source == Source::Recovery));
    assert_eq!(late.status_code, 200);
    assert!(stack.drain_events().await.is_empty());
    let (tenant, account_id) = ids("page");
    let ledger = stack.store.list_ledger(&tenant, &account_id).await.unwrap();
    assert_eq!(ledger.last().unwrap().recovered_events, 12);
}

#[tokio::test]
async fn empty_subscription_is_repaired() {
    let stack = TestStack::new().await;
    let providers = ProviderServer::start().await;
    stack.register("acme", "number", Provider::WhatsApp, "106540352242922").await;
    stack.store_tokens("acme", "number", Some("graph-token"), None).await;
    providers.state().add_waba("WABA-106540352242922", "106540352242922", "graph-token", false);
    let deps = stack.recovery_deps(&providers);

    stack.enqueue_job(&job(JobKind::CheckSubscription, "number", Provider::WhatsApp, "1")).await;
    let report = stack.run_worker(&deps).await;

    assert_eq!(report.succeeded, 1);
    assert!(providers.state().waba_subscribed("WABA-106540352242922"));
    let (tenant, account_id) = ids("number");
    let ledger = stack.store.list_ledger(&tenant, &account_id).await.unwrap();
    assert!(ledger[0].detail.contains("subscribed again"), "{}", ledger[0].detail);
    assert_eq!(ledger[0].api_calls, 3);
}

#[tokio::test]
async fn watch_forbidden_is_configuration_error() {
    let (stack, providers) = gmail_setup().await;
    providers.state().gmail_mailbox_mut(MAILBOX).watch_forbidden = true;
    let deps = stack.recovery_deps(&providers);

    stack.enqueue_job(&job(JobKind::RenewWatch, "mailbox", Provider::Gmail, "1")).await;
    let report = stack.run_worker(&deps).await;

    assert_eq!(report.succeeded, 1, "dropped, not retried");
    let marked = account(&stack, "mailbox").await;
    assert_eq!(marked.status, "configuration_error");
    assert!(marked.status_reason.unwrap().contains("Publisher"));
}

#[tokio::test]
async fn watch_renewal_stores_expiration() {
    let (stack, providers) = gmail_setup().await;
    let deps = stack.recovery_deps(&providers);

    stack.enqueue_job(&job(JobKind::RenewWatch, "mailbox", Provider::Gmail, "1")).await;
    stack.run_worker(&deps).await;

    let renewed = account(&stack, "mailbox").await;
    let expiration = renewed.watch_expiration_ms.unwrap() as i64;
    assert!(expiration > chrono::Utc::now().timestamp_millis() + 6 * 86_400_000);
}

#[tokio::test]
async fn recovery_after_failures_publishes_recovered() {
    let (stack, providers) = gmail_setup().await;
    let bus = stack.capture_bus().await;
    providers.inject("/profile", Fault::Status(500), 1);
    let deps = stack.recovery_deps(&providers);

    stack.enqueue_job(&job(JobKind::Probe, "mailbox", Provider::Gmail, "1")).await;
    stack.run_worker(&deps).await;
    stack.run_worker(&deps).await;

    let events = stack.drain_url(&bus).await;
    assert_eq!(events.len(), 1);
    assert!(events[0].contains("AccountRecovered"), "{}", events[0]);
}
