//! The `commsync` binary end to end against moto: every operator command, its `--json`
//! output and its exit codes.

use commsync::ids::Provider;
use commsync_tests::{signed_whatsapp, text_message, whatsapp_body, TestStack};
use std::process::{Command, Output};

const NUMBER: &str = "106540352242922";

/// Runs the CLI against the test stack's tables and queues.
fn commsync(stack: &TestStack, args: &[&str]) -> Output {
    let endpoint = commsync_tests::moto_endpoint();
    Command::new(env!("CARGO_BIN_EXE_commsync"))
        .args(args)
        .env("AWS_ENDPOINT_URL", &endpoint)
        .env_remove("AWS_ACCESS_KEY_ID")
        .env("ACCOUNTS_TABLE", &stack.store.tables().accounts)
        .env("EVENTS_TABLE", &stack.store.tables().events)
        .env("EVENTS_QUEUE_URL", stack.queue_url("EventsQueue"))
        .env("EVENTS_DLQ_URL", stack.queue_url("EventsDLQ"))
        .env("SYNC_QUEUE_URL", stack.queue_url("SyncQueue"))
        .env("SYNC_DLQ_URL", stack.queue_url("SyncDLQ"))
        .output()
        .expect("the commsync binary runs")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn json(output: &Output) -> serde_json::Value {
    serde_json::from_slice(&output.stdout).unwrap_or_else(|error| panic!("not JSON ({error}): {}", stdout(output)))
}

#[tokio::test]
async fn accounts_add_show_list_disable() {
    let stack = TestStack::new().await;
    let add = commsync(
        &stack,
        &[
            "accounts",
            "add",
            "--tenant",
            "acme",
            "--account",
            "line",
            "--provider",
            "whatsapp",
            "--external-id",
            NUMBER,
        ],
    );
    let again = commsync(
        &stack,
        &["accounts", "add", "--tenant", "acme", "--account", "line", "--provider", "whatsapp", "--external-id", "999"],
    );
    let list = commsync(&stack, &["accounts", "list", "--json"]);
    let show = commsync(&stack, &["accounts", "show", "--tenant", "acme", "--account", "line", "--json"]);

    assert!(add.status.success(), "{}", String::from_utf8_lossy(&add.stderr));
    assert_eq!(again.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("already exists"),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    assert_eq!(json(&list)[0]["external_id"], NUMBER);
    assert_eq!(json(&show)["status"], "active");

    let disable = commsync(&stack, &["accounts", "disable", "--tenant", "acme", "--account", "line"]);
    assert!(disable.status.success());
    let body = whatsapp_body(NUMBER, &text_message("wamid.after", "hi"), "");
    commsync::providers::whatsapp::handle(signed_whatsapp(&body), &stack.whatsapp_deps()).await;
    let quarantined = commsync(&stack, &["quarantine", "list", "--provider", "whatsapp", "--json"]);
    assert_eq!(json(&quarantined).as_array().unwrap().len(), 1, "a disabled account's webhooks are quarantined");
}

#[tokio::test]
async fn invalid_arguments_exit_2() {
    let stack = TestStack::new().await;
    let output = commsync(
        &stack,
        &["accounts", "add", "--tenant", "a#b", "--account", "x", "--provider", "whatsapp", "--external-id", "1"],
    );
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("'#'"));
}

#[tokio::test]
async fn quarantine_replay_after_registering() {
    let stack = TestStack::new().await;
    let deps = stack.whatsapp_deps();
    let body = whatsapp_body(NUMBER, &text_message("wamid.q1", "early"), "");
    commsync::providers::whatsapp::handle(signed_whatsapp(&body), &deps).await;

    let too_early = commsync(&stack, &["quarantine", "replay", "--provider", "whatsapp", "--all"]);
    stack.register("acme", "line", Provider::WhatsApp, NUMBER).await;
    let replayed = commsync(&stack, &["quarantine", "replay", "--provider", "whatsapp", "--all"]);
    let left = commsync(&stack, &["quarantine", "list", "--json"]);
    let events = commsync(&stack, &["events", "list", "--tenant", "acme", "--account", "line", "--json"]);

    assert_eq!(too_early.status.code(), Some(3), "{}", stdout(&too_early));
    assert!(replayed.status.success(), "{}", String::from_utf8_lossy(&replayed.stderr));
    assert!(json(&left).as_array().unwrap().is_empty());
    assert_eq!(json(&events)[0]["event"]["event_id"], format!("whatsapp:{NUMBER}:wamid.q1:message"));
    assert_eq!(stack.drain_events().await.len(), 1);
}

#[tokio::test]
async fn dlq_list_and_redrive() {
    let stack = TestStack::new().await;
    let poison = commsync::queue::OutgoingMessage {
        body: "{\"bad\":true}".to_string(),
        attributes: Vec::new(),
        delay_seconds: None,
    };
    commsync::queue::Queue::new(stack.clients.sqs.clone(), stack.queue_url("SyncDLQ"))
        .send_all(&[poison])
        .await
        .unwrap();

    let listed = commsync(&stack, &["dlq", "list", "--queue", "sync", "--json"]);
    let redrive = commsync(&stack, &["dlq", "redrive", "--queue", "sync"]);
    let after = commsync(&stack, &["dlq", "list", "--queue", "sync", "--json"]);

    assert_eq!(json(&listed)[0]["body"], "{\"bad\":true}");
    assert!(redrive.status.success(), "{}", String::from_utf8_lossy(&redrive.stderr));
    assert!(stdout(&redrive).contains("moved 1"));
    assert!(json(&after).as_array().unwrap().is_empty());
    assert_eq!(stack.drain("SyncQueue").await, vec!["{\"bad\":true}".to_string()]);
}

#[tokio::test]
async fn events_replay_and_ledger_and_gaps() {
    let stack = TestStack::new().await;
    stack.register("acme", "line", Provider::WhatsApp, NUMBER).await;
    let body = whatsapp_body(NUMBER, &[text_message("wamid.r1", "a"), text_message("wamid.r2", "b")].join(","), "");
    commsync::providers::whatsapp::handle(signed_whatsapp(&body), &stack.whatsapp_deps()).await;
    stack.drain_events().await;
    let (tenant, account) =
        (commsync::ids::TenantId::parse("acme").unwrap(), commsync::ids::AccountId::parse("line").unwrap());
    let entry = commsync::store::LedgerEntry {
        at: commsync::event::rfc3339(chrono::Utc::now()),
        kind: "recovery:check_subscription".into(),
        provider: Provider::WhatsApp,
        reason: "silence".into(),
        job_id: "job".into(),
        recovered_events: 0,
        api_calls: 3,
        outcome: "nothing_missing".into(),
        detail: "subscription present".into(),
    };
    stack.store.record_ledger(&tenant, &account, &entry).await.unwrap();

    let replay = commsync(&stack, &["events", "replay", "--tenant", "acme", "--account", "line", "--since", "1h"]);
    let ledger = commsync(&stack, &["ledger", "--since", "1h", "--json"]);
    let gaps = commsync(&stack, &["gaps", "--json"]);

    assert!(replay.status.success(), "{}", String::from_utf8_lossy(&replay.stderr));
    assert_eq!(stack.drain_events().await.len(), 2);
    assert_eq!(json(&ledger)["entries"][0]["entry"]["api_calls"], 3);
    assert_eq!(json(&ledger)["providers"][0]["provider"], "whatsapp");
    assert_eq!(json(&gaps)["dry_run"], true);
}
