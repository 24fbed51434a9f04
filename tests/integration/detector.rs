//! The gap detector against moto, with the worker and the provider simulator.

use commsync::gaps::run::run;
use commsync::gaps::FindingKind;
use commsync::ids::{AccountId, Provider, TenantId};
use commsync::jobs::{JobKind, SyncJob};
use commsync_tests::providers::ProviderServer;
use commsync_tests::TestStack;

const ORG: &str = "urn:li:organization:5515715";

fn ids(tenant: &str, account: &str) -> (TenantId, AccountId) {
    (TenantId::parse(tenant).unwrap(), AccountId::parse(account).unwrap())
}

fn jobs(bodies: &[String]) -> Vec<SyncJob> {
    bodies.iter().map(|body| serde_json::from_str(body).unwrap()).collect()
}

/// A Gmail account with a valid watch and a fresh cursor, so it produces no finding.
async fn quiet_gmail(stack: &TestStack, account: &str, email: &str) {
    stack.register("acme", account, Provider::Gmail, email).await;
    let (tenant_id, account_id) = ids("acme", account);
    stack.store.advance_history_cursor(&tenant_id, &account_id, 100).await.unwrap();
    let expires = (chrono::Utc::now().timestamp() + 5 * 86_400) * 1000;
    stack.store.record_watch(&tenant_id, &account_id, 100, expires as u64).await.unwrap();
}

#[tokio::test]
async fn silent_busy_page_is_recovered_end_to_end() {
    let stack = TestStack::new().await;
    let providers = ProviderServer::start().await;
    stack.register("acme", "page", Provider::LinkedIn, ORG).await;
    stack.store_tokens("acme", "page", Some("li-token"), None).await;
    providers.state().add_linkedin_token("li-token");
    let now = chrono::Utc::now().timestamp();
    stack.make_busy_and_silent("acme", "page", 40.0, now - 3600).await;
    for id in 1..=7u64 {
        providers.state().linkedin_add_notification(ORG, id, "COMMENT", (now - 3000 + id as i64 * 60) * 1000);
    }
    let detector = stack.detector_deps(&[]);

    let report = run(&detector, chrono::Utc::now(), false).await.unwrap();
    let sent = stack.drain("SyncQueue").await;
    for body in &sent {
        let job: SyncJob = serde_json::from_str(body).unwrap();
        stack.enqueue_job(&job).await;
    }
    let worker = stack.run_worker(&stack.recovery_deps(&providers)).await;

    assert_eq!(report.jobs_sent, 1);
    assert_eq!(report.findings[0].kind, FindingKind::Silence);
    let job = &jobs(&sent)[0];
    assert_eq!(job.kind, JobKind::NotificationsPull);
    assert!(job.window_start_ms.unwrap() <= (now - 3600) * 1000);
    assert_eq!(worker.succeeded, 1);
    let (tenant_id, account_id) = ids("acme", "page");
    assert_eq!(stack.store.list_events(&tenant_id, &account_id).await.unwrap().len(), 7);
    let ledger = stack.store.list_ledger(&tenant_id, &account_id).await.unwrap();
    assert!(ledger.iter().any(|entry| entry.kind == "silence"));
    assert!(ledger.iter().any(|entry| entry.kind == "recovery:notifications_pull" && entry.recovered_events == 7));
}

#[tokio::test]
async fn quiet_account_is_not_suspect() {
    let stack = TestStack::new().await;
    stack.register("acme", "page", Provider::LinkedIn, ORG).await;
    let now = chrono::Utc::now().timestamp();
    // One notification a week, silent for three days: normal for this page.
    stack.make_busy_and_silent("acme", "page", 1.0 / 168.0, now - 3 * 86_400).await;

    let report = run(&stack.detector_deps(&[]), chrono::Utc::now(), false).await.unwrap();

    assert!(report.findings.is_empty(), "{:?}", report.findings);
    assert!(stack.drain("SyncQueue").await.is_empty());
}

#[tokio::test]
async fn budget_spends_on_highest_scores_first() {
    let stack = TestStack::new().await;
    let now = chrono::Utc::now().timestamp();
    for (index, rate) in [5.0, 80.0, 20.0, 200.0].iter().enumerate() {
        let account = format!("page{index}");
        stack.register("acme", &account, Provider::LinkedIn, &format!("urn:li:organization:{index}")).await;
        stack.make_busy_and_silent("acme", &account, *rate, now - 4 * 3600).await;
    }

    let report =
        run(&stack.detector_deps(&[("DETECTOR_BUDGET_LINKEDIN", "2")]), chrono::Utc::now(), false).await.unwrap();

    let mut sent: Vec<String> =
        jobs(&stack.drain("SyncQueue").await).iter().map(|job| job.account_id.to_string()).collect();
    sent.sort();
    assert_eq!(sent, vec!["page1", "page3"], "the two busiest silent pages");
    assert_eq!(report.plan.deferred.len(), 2);
}

#[tokio::test]
async fn pending_recovery_gets_no_second_job() {
    let stack = TestStack::new().await;
    stack.register("acme", "page", Provider::LinkedIn, ORG).await;
    let now = chrono::Utc::now();
    stack.make_busy_and_silent("acme", "page", 40.0, now.timestamp() - 3600).await;
    let (tenant_id, account_id) = ids("acme", "page");
    stack
        .store
        .claim_recovery_lease(&tenant_id, &account_id, JobKind::NotificationsPull, now + chrono::Duration::minutes(10))
        .await
        .unwrap();

    let report = run(&stack.detector_deps(&[]), now, false).await.unwrap();

    assert_eq!(report.jobs_sent, 0);
    assert_eq!(report.plan.pending, 1);
    assert!(stack.drain("SyncQueue").await.is_empty());
}

#[tokio::test]
async fn overlapping_runs_send_one_job_per_account() {
    let stack = TestStack::new().await;
    let now = chrono::Utc::now().timestamp();
    for index in 0..3 {
        let account = format!("page{index}");
        stack.register("acme", &account, Provider::LinkedIn, &format!("urn:li:organization:{index}")).await;
        stack.make_busy_and_silent("acme", &account, 50.0, now - 3600).await;
    }
    let (first, second) = (stack.detector_deps(&[]), stack.detector_deps(&[]));

    let (a, b) = tokio::join!(run(&first, chrono::Utc::now(), false), run(&second, chrono::Utc::now(), false));

    assert_eq!(a.unwrap().jobs_sent + b.unwrap().jobs_sent, 3);
    assert_eq!(stack.drain("SyncQueue").await.len(), 3);
}

#[tokio::test]
async fn lasting_finding_published_once() {
    let stack = TestStack::new().await;
    let bus = stack.capture_bus().await;
    quiet_gmail(&stack, "mailbox", "ops@acme.example").await;
    let (tenant_id, account_id) = ids("acme", "mailbox");
    stack.store.set_account_status(&tenant_id, &account_id, "reconnect_required", "invalid_grant").await.unwrap();
    let detector = stack.detector_deps(&[]);

    let first = run(&detector, chrono::Utc::now(), false).await.unwrap();
    let second = run(&detector, chrono::Utc::now(), false).await.unwrap();

    assert_eq!(first.findings[0].kind, FindingKind::ReconnectRequired);
    assert_eq!(first.jobs_sent, 0, "reconnect_required is emitted, never retried");
    assert_eq!(first.published, 1);
    assert_eq!(second.published, 0);
    let events = stack.drain_url(&bus).await;
    assert_eq!(events.len(), 1);
    assert!(events[0].contains("AccountHealthChanged"));
}

#[tokio::test]
async fn expiring_watch_gets_renew_watch() {
    let stack = TestStack::new().await;
    quiet_gmail(&stack, "mailbox", "ops@acme.example").await;
    let (tenant_id, account_id) = ids("acme", "mailbox");
    let soon = (chrono::Utc::now().timestamp() + 3600) * 1000;
    stack.store.record_watch(&tenant_id, &account_id, 100, soon as u64).await.unwrap();

    run(&stack.detector_deps(&[]), chrono::Utc::now(), false).await.unwrap();

    let sent = jobs(&stack.drain("SyncQueue").await);
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].kind, JobKind::RenewWatch);
}

#[tokio::test]
async fn dry_run_sends_and_writes_nothing() {
    let stack = TestStack::new().await;
    stack.register("acme", "page", Provider::LinkedIn, ORG).await;
    stack.make_busy_and_silent("acme", "page", 40.0, chrono::Utc::now().timestamp() - 3600).await;
    let (tenant_id, account_id) = ids("acme", "page");
    let before = stack.store.get_account(&tenant_id, &account_id).await.unwrap();

    let report = run(&stack.detector_deps(&[]), chrono::Utc::now(), true).await.unwrap();

    assert_eq!(report.plan.jobs.len(), 1);
    assert!(stack.drain("SyncQueue").await.is_empty());
    let after = stack.store.get_account(&tenant_id, &account_id).await.unwrap();
    assert_eq!(before.detector, after.detector);
    assert!(stack.store.list_ledger(&tenant_id, &account_id).await.unwrap().is_empty());
}
