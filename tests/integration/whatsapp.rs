//! The WhatsApp webhook end to end: handler, DynamoDB and SQS on moto.

use commsync::http::body_text;
use commsync::ids::{AccountId, Provider, TenantId};
use commsync::providers::whatsapp::{handle, WhatsAppDeps};
use commsync::queue::Queue;
use commsync_tests::{signed_whatsapp, status, text_message, whatsapp_body, TestStack};

const NUMBER: &str = "106540352242922";

async fn stack_with_account() -> (TestStack, WhatsAppDeps) {
    let stack = TestStack::new().await;
    stack.register("acme", "support", Provider::WhatsApp, NUMBER).await;
    let deps = stack.whatsapp_deps();
    (stack, deps)
}

fn ids(tenant: &str, account: &str) -> (TenantId, AccountId) {
    (TenantId::parse(tenant).unwrap(), AccountId::parse(account).unwrap())
}

#[tokio::test]
async fn replayed_batch_stores_each_item_once() {
    let (stack, deps) = stack_with_account().await;
    let messages =
        [text_message("wamid.1", "one"), text_message("wamid.2", "two"), text_message("wamid.3", "three")].join(",");
    let statuses = [status("wamid.out1", "sent", 1), status("wamid.out1", "delivered", 2)].join(",");
    let body = whatsapp_body(NUMBER, &messages, &statuses);

    let first = handle(signed_whatsapp(&body), &deps).await;
    let second = handle(signed_whatsapp(&body), &deps).await;

    assert_eq!(first.status_code, 200);
    assert_eq!(second.status_code, 200);
    let (tenant, account) = ids("acme", "support");
    let stored = stack.store.list_events(&tenant, &account).await.unwrap();
    assert_eq!(stored.len(), 5);
    assert!(stored.iter().all(|event| event.enqueued));
    let queued = stack.drain_events().await;
    assert_eq!(queued.len(), 5);
}

#[tokio::test]
async fn duplicate_delivery_changes_nothing() {
    let (stack, deps) = stack_with_account().await;
    let body = whatsapp_body(NUMBER, &text_message("wamid.dup", "hola"), "");

    handle(signed_whatsapp(&body), &deps).await;
    let (tenant, account) = ids("acme", "support");
    let before = stack.store.get_account(&tenant, &account).await.unwrap();
    let answer = handle(signed_whatsapp(&body), &deps).await;
    let after = stack.store.get_account(&tenant, &account).await.unwrap();

    assert_eq!(answer.status_code, 200);
    assert_eq!(stack.store.list_events(&tenant, &account).await.unwrap().len(), 1);
    assert_eq!(stack.drain_events().await.len(), 1);
    assert_eq!(after.webhook_events, before.webhook_events);
    assert_eq!(after.webhook_events, 1);
}

#[tokio::test]
async fn reordered_statuses_end_at_highest() {
    let (stack, deps) = stack_with_account().await;
    let orders: [[&str; 3]; 6] = [
        ["sent", "delivered", "read"],
        ["sent", "read", "delivered"],
        ["delivered", "sent", "read"],
        ["delivered", "read", "sent"],
        ["read", "sent", "delivered"],
        ["read", "delivered", "sent"],
    ];
    for (index, order) in orders.iter().enumerate() {
        let wamid = format!("wamid.order{index}");
        for (step, name) in order.iter().enumerate() {
            let body = whatsapp_body(NUMBER, "", &status(&wamid, name, 100 + step as u64));
            assert_eq!(handle(signed_whatsapp(&body), &deps).await.status_code, 200);
        }
    }

    let (tenant, account) = ids("acme", "support");
    let messages = stack.store.list_messages(&tenant, &account).await.unwrap();
    assert_eq!(messages.len(), 6);
    for message in &messages {
        assert_eq!(message.status, "read", "message {}", message.provider_message_id);
    }
    // Each status is its own event, stored once: 6 messages x 3 statuses.
    assert_eq!(stack.store.list_events(&tenant, &account).await.unwrap().len(), 18);
}

#[tokio::test]
async fn late_sent_never_overwrites_failed() {
    let (stack, deps) = stack_with_account().await;
    let failed = r#"{"id":"wamid.f","status":"failed","timestamp":"5","recipient_id":"1","errors":[{"code":131026,"title":"Message undeliverable"}]}"#;
    handle(signed_whatsapp(&whatsapp_body(NUMBER, "", failed)), &deps).await;
    handle(signed_whatsapp(&whatsapp_body(NUMBER, "", &status("wamid.f", "sent", 4))), &deps).await;

    let (tenant, account) = ids("acme", "support");
    let messages = stack.store.list_messages(&tenant, &account).await.unwrap();
    assert_eq!(messages[0].status, "failed");
    assert!(messages[0].errors.as_deref().unwrap_or_default().contains("131026"));
}

#[tokio::test]
async fn status_for_unknown_message_counts_orphan() {
    let (stack, deps) = stack_with_account().await;
    handle(signed_whatsapp(&whatsapp_body(NUMBER, "", &status("wamid.o", "delivered", 5))), &deps).await;
    handle(signed_whatsapp(&whatsapp_body(NUMBER, "", &status("wamid.s", "sent", 5))), &deps).await;

    let (tenant, account) = ids("acme", "support");
    let account = stack.store.get_account(&tenant, &account).await.unwrap();
    assert_eq!(account.orphan_statuses, 1);
}

#[tokio::test]
async fn unknown_number_lands_in_quarantine() {
    let (stack, deps) = stack_with_account().await;
    let body = whatsapp_body("999000111222333", &text_message("wamid.q", "hi"), "");

    let first = handle(signed_whatsapp(&body), &deps).await;
    let second = handle(signed_whatsapp(&body), &deps).await;

    assert_eq!(first.status_code, 200);
    assert_eq!(second.status_code, 200);
    let quarantined = stack.store.list_quarantine(Provider::WhatsApp).await.unwrap();
    assert_eq!(quarantined.len(), 1);
    assert_eq!(quarantined[0].deliveries, 2);
    assert!(quarantined[0].reason.contains("999000111222333"));
    let kept = stack.store.quarantined_body(Provider::WhatsApp, &quarantined[0].digest).await.unwrap();
    assert_eq!(kept, body.as_bytes());
    assert!(stack.drain_events().await.is_empty());
}

#[tokio::test]
async fn unparseable_signed_body_is_quarantined() {
    let (stack, deps) = stack_with_account().await;
    let answer = handle(signed_whatsapp("this is not json"), &deps).await;

    assert_eq!(answer.status_code, 200);
    let quarantined = stack.store.list_quarantine(Provider::WhatsApp).await.unwrap();
    assert_eq!(quarantined.len(), 1);
    assert!(quarantined[0].reason.contains("not a JSON notification"));
}

#[tokio::test]
async fn queue_failure_then_retry_delivers_event() {
    let (stack, mut deps) = stack_with_account().await;
    let working_queue = deps.ingest.events_queue.clone();
    deps.ingest.events_queue = Queue::new(stack.clients.sqs.clone(), format!("{}-missing", working_queue.url()));
    let body = whatsapp_body(NUMBER, &text_message("wamid.retry", "retry me"), "");

    let failed = handle(signed_whatsapp(&body), &deps).await;
    assert_eq!(failed.status_code, 500);
    let (tenant, account) = ids("acme", "support");
    let stored = stack.store.list_events(&tenant, &account).await.unwrap();
    assert_eq!(stored.len(), 1);
    assert!(!stored[0].enqueued);

    deps.ingest.events_queue = working_queue;
    let retried = handle(signed_whatsapp(&body), &deps).await;
    let again = handle(signed_whatsapp(&body), &deps).await;

    assert_eq!(retried.status_code, 200);
    assert_eq!(again.status_code, 200);
    let queued = stack.drain_events().await;
    assert_eq!(queued.len(), 1);
    assert_eq!(queued[0].event_id.as_str(), format!("whatsapp:{NUMBER}:wamid.retry:message"));
}

#[tokio::test]
async fn storage_failure_answers_500_and_sends_nothing() {
    let (stack, mut deps) = stack_with_account().await;
    deps.ingest.store = commsync::store::Store::new(
        stack.clients.dynamodb.clone(),
        commsync::store::Tables {
            accounts: stack.store.tables().accounts.clone(),
            events: "no-such-table".to_string(),
        },
        std::time::Duration::from_secs(60),
    );
    let answer = handle(signed_whatsapp(&whatsapp_body(NUMBER, &text_message("wamid.s", "x"), "")), &deps).await;

    assert_eq!(answer.status_code, 500);
    assert!(body_text(&answer).contains("retry"));
    assert!(stack.drain_events().await.is_empty());
}

#[tokio::test]
async fn event_lands_under_routed_tenant_only() {
    let stack = TestStack::new().await;
    stack.register("acme", "support", Provider::WhatsApp, NUMBER).await;
    stack.register("globex", "sales", Provider::WhatsApp, "109876543210987").await;
    let deps = stack.whatsapp_deps();
    // The body names another tenant and account in its own fields; only phone_number_id routes.
    let message = r#"{"from":"1","id":"wamid.t","timestamp":"1","type":"text","text":{"body":"x"},"tenant_id":"globex","account_id":"sales"}"#;

    handle(signed_whatsapp(&whatsapp_body(NUMBER, message, "")), &deps).await;

    let (acme, support) = ids("acme", "support");
    let (globex, sales) = ids("globex", "sales");
    assert_eq!(stack.store.list_events(&acme, &support).await.unwrap().len(), 1);
    assert!(stack.store.list_events(&globex, &sales).await.unwrap().is_empty());
    let queued = stack.drain_events().await;
    assert_eq!(queued[0].tenant_id, acme);
}

#[tokio::test]
async fn registering_taken_number_is_rejected() {
    let stack = TestStack::new().await;
    stack.register("acme", "support", Provider::WhatsApp, NUMBER).await;
    let result = stack
        .store
        .register_account(&commsync::store::NewAccount {
            tenant_id: TenantId::parse("globex").unwrap(),
            account_id: AccountId::parse("sales").unwrap(),
            provider: Provider::WhatsApp,
            external_id: commsync::ids::ExternalId::parse(NUMBER).unwrap(),
            waba_id: None,
        })
        .await;
    assert!(matches!(result, Err(commsync::store::StoreError::RouteTaken { .. })));
}

#[tokio::test]
async fn large_batch_crosses_transaction_and_queue_chunks() {
    let (stack, deps) = stack_with_account().await;
    let messages: Vec<String> = (0..150).map(|index| text_message(&format!("wamid.big{index}"), "bulk")).collect();
    let body = whatsapp_body(NUMBER, &messages.join(","), "");

    let answer = handle(signed_whatsapp(&body), &deps).await;

    assert_eq!(answer.status_code, 200);
    let (tenant, account) = ids("acme", "support");
    assert_eq!(stack.store.list_events(&tenant, &account).await.unwrap().len(), 150);
    assert_eq!(stack.drain_events().await.len(), 150);
}

#[tokio::test]
async fn partially_duplicate_batch_sends_only_new() {
    let (stack, deps) = stack_with_account().await;
    let first = whatsapp_body(NUMBER, &[text_message("wamid.a", "a"), text_message("wamid.b", "b")].join(","), "");
    let second = whatsapp_body(NUMBER, &[text_message("wamid.b", "b"), text_message("wamid.c", "c")].join(","), "");

    handle(signed_whatsapp(&first), &deps).await;
    handle(signed_whatsapp(&second), &deps).await;

    let mut queued: Vec<String> = stack.drain_events().await.iter().map(|event| event.event_id.to_string()).collect();
    queued.sort();
    assert_eq!(
        queued,
        vec![
            format!("whatsapp:{NUMBER}:wamid.a:message"),
            format!("whatsapp:{NUMBER}:wamid.b:message"),
            format!("whatsapp:{NUMBER}:wamid.c:message"),
        ]
    );
}
