//! Tenant isolation: an item lands only under the account whose route item owns the
//! provider id that the item itself names (`metadata.phone_number_id`, a notification's
//! `organizationalEntity`, a lead's owner, a push's `emailAddress`). Fields that claim
//! another tenant or account cannot move it, and no registration can take over a route.
//!
//! Every test checks each stored event twice: its item's partition key and the
//! `tenant_id` and `account_id` inside the canonical event.

use base64::Engine;
use commsync::event::CanonicalEvent;
use commsync::ids::{AccountId, ExternalId, Provider, TenantId};
use commsync::store::{keys, NewAccount, StoreError};
use commsync_tests::jwt::{valid_token, JwksServer};
use commsync_tests::{
    gmail_push, gmail_push_body, linkedin_notifications, signed_linkedin, signed_whatsapp, TestStack,
};

const ACME_NUMBER: &str = "106540352242922";
const GLOBEX_NUMBER: &str = "109876543210987";
const UNKNOWN_NUMBER: &str = "100000000000001";
const ACME_ORG: &str = "urn:li:organization:5515715";
const GLOBEX_ORG: &str = "urn:li:organization:7000001";
const UNKNOWN_ORG: &str = "urn:li:organization:9999999";
const ACME_MAILBOX: &str = "ops@acme.example";
const GLOBEX_MAILBOX: &str = "ops@globex.example";

/// Registers one account of each provider for `acme` and for `globex`.
async fn two_tenants() -> TestStack {
    let stack = TestStack::new().await;
    stack.register("acme", "support", Provider::WhatsApp, ACME_NUMBER).await;
    stack.register("globex", "sales", Provider::WhatsApp, GLOBEX_NUMBER).await;
    stack.register("acme", "page", Provider::LinkedIn, ACME_ORG).await;
    stack.register("globex", "page", Provider::LinkedIn, GLOBEX_ORG).await;
    stack.register("acme", "mailbox", Provider::Gmail, ACME_MAILBOX).await;
    stack.register("globex", "mailbox", Provider::Gmail, GLOBEX_MAILBOX).await;
    stack
}

fn ids(tenant: &str, account: &str) -> (TenantId, AccountId) {
    (TenantId::parse(tenant).unwrap(), AccountId::parse(account).unwrap())
}

/// A stored canonical event with the partition key of the item that contains it.
struct StoredItem {
    partition: String,
    event: CanonicalEvent,
}

impl StoredItem {
    fn owner(&self) -> (String, String) {
        (self.event.tenant_id.to_string(), self.event.account_id.to_string())
    }
}

/// Reads every canonical event in `EventsTable`, across all partitions, and asserts that
/// each item's partition is the one its event's `tenant_id` and `account_id` name.
async fn all_stored_events(stack: &TestStack) -> Vec<StoredItem> {
    let output = stack
        .clients
        .dynamodb
        .scan()
        .table_name(&stack.store.tables().events)
        .consistent_read(true)
        .send()
        .await
        .unwrap();
    assert!(output.last_evaluated_key.is_none(), "the scan fits one page");

    let mut stored = Vec::new();
    for item in output.items.unwrap_or_default() {
        let text = |name: &str| item.get(name).and_then(|value| value.as_s().ok()).cloned().unwrap_or_default();
        if !text("sk").starts_with("EVENT#") {
            continue;
        }
        let event: CanonicalEvent = serde_json::from_str(&text("body")).expect("the item body is a canonical event");
        let partition = text("pk");
        assert_eq!(
            partition,
            keys::account_partition(&event.tenant_id, &event.account_id),
            "event {} is stored outside its own account partition",
            event.event_id
        );
        stored.push(StoredItem { partition, event });
    }
    stored
}

fn find<'a>(stored: &'a [StoredItem], event_id_part: &str) -> &'a StoredItem {
    let matching: Vec<&StoredItem> =
        stored.iter().filter(|item| item.event.event_id.as_str().contains(event_id_part)).collect();
    assert_eq!(matching.len(), 1, "events matching {event_id_part}");
    matching[0]
}

fn owned_by(tenant: &str, account: &str) -> (String, String) {
    (tenant.to_string(), account.to_string())
}

/// Returns the owner of each canonical event waiting in `EventsQueue`, sorted by event id.
async fn queued_owners(stack: &TestStack) -> Vec<(String, (String, String))> {
    let mut owners: Vec<(String, (String, String))> = stack
        .drain_events()
        .await
        .into_iter()
        .map(|event| (event.event_id.to_string(), (event.tenant_id.to_string(), event.account_id.to_string())))
        .collect();
    owners.sort();
    owners
}

fn stored_owners(stored: &[StoredItem]) -> Vec<(String, (String, String))> {
    let mut owners: Vec<(String, (String, String))> =
        stored.iter().map(|item| (item.event.event_id.to_string(), item.owner())).collect();
    owners.sort();
    owners
}

#[tokio::test]
async fn whatsapp_claimed_tenant_fields_ignored() {
    let stack = two_tenants().await;
    let deps = stack.whatsapp_deps();
    // Every level claims globex: the root, the entry (globex's WABA id), the value, the
    // metadata and the message, which also nests globex's number in a metadata of its own.
    let body = format!(
        r#"{{"object":"whatsapp_business_account","tenant_id":"globex","account_id":"sales","entry":[{{"id":"WABA-{GLOBEX_NUMBER}","tenant_id":"globex","changes":[{{"field":"messages","value":{{"messaging_product":"whatsapp","tenant_id":"globex","account_id":"sales","metadata":{{"display_phone_number":"15550000000","phone_number_id":"{ACME_NUMBER}","tenant_id":"globex"}},"messages":[{{"from":"34600000000","id":"wamid.claim","timestamp":"1796300000","type":"text","text":{{"body":"hi"}},"tenant_id":"globex","account_id":"sales","metadata":{{"phone_number_id":"{GLOBEX_NUMBER}"}}}}]}}}}]}}]}}"#
    );

    let answer = commsync::providers::whatsapp::handle(signed_whatsapp(&body), &deps).await;

    assert_eq!(answer.status_code, 200);
    let stored = all_stored_events(&stack).await;
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].owner(), owned_by("acme", "support"));
    assert_eq!(stored[0].partition, "ACCOUNT#acme#support".to_string());
    assert_eq!(queued_owners(&stack).await, stored_owners(&stored));
    let (globex, sales) = ids("globex", "sales");
    assert!(stack.store.list_events(&globex, &sales).await.unwrap().is_empty());
    assert_eq!(stack.store.get_account(&globex, &sales).await.unwrap().webhook_events, 0);
    assert!(stack.store.list_quarantine(Provider::WhatsApp).await.unwrap().is_empty());
}

#[tokio::test]
async fn whatsapp_mixed_numbers_route_per_change() {
    let stack = two_tenants().await;
    let deps = stack.whatsapp_deps();
    let change = |number: &str, wamid: &str| {
        format!(
            r#"{{"field":"messages","value":{{"metadata":{{"phone_number_id":"{number}"}},"messages":[{{"from":"1","id":"{wamid}","timestamp":"1796300000","type":"text","text":{{"body":"x"}}}}]}}}}"#
        )
    };
    let status_change = format!(
        r#"{{"field":"messages","value":{{"metadata":{{"phone_number_id":"{GLOBEX_NUMBER}"}},"statuses":[{{"id":"wamid.out","status":"sent","timestamp":"1796300001","recipient_id":"1"}}]}}}}"#
    );
    let body = format!(
        r#"{{"object":"whatsapp_business_account","entry":[{{"id":"WABA-{ACME_NUMBER}","changes":[{},{},{}]}},{{"id":"WABA-{ACME_NUMBER}","changes":[{status_change}]}}]}}"#,
        change(ACME_NUMBER, "wamid.acme"),
        change(GLOBEX_NUMBER, "wamid.globex"),
        change(UNKNOWN_NUMBER, "wamid.unknown"),
    );

    let answer = commsync::providers::whatsapp::handle(signed_whatsapp(&body), &deps).await;

    assert_eq!(answer.status_code, 200);
    let stored = all_stored_events(&stack).await;
    assert_eq!(stored.len(), 3);
    assert_eq!(find(&stored, "wamid.acme").owner(), owned_by("acme", "support"));
    assert_eq!(find(&stored, "wamid.globex").owner(), owned_by("globex", "sales"));
    assert_eq!(find(&stored, "wamid.out").owner(), owned_by("globex", "sales"));
    assert!(!stored.iter().any(|item| item.event.event_id.as_str().contains("wamid.unknown")));
    assert_eq!(queued_owners(&stack).await, stored_owners(&stored));
    let quarantined = stack.store.list_quarantine(Provider::WhatsApp).await.unwrap();
    assert_eq!(quarantined.len(), 1);
    assert!(quarantined[0].reason.contains(UNKNOWN_NUMBER), "{}", quarantined[0].reason);
    let (acme, support) = ids("acme", "support");
    let (globex, sales) = ids("globex", "sales");
    assert_eq!(stack.store.get_account(&acme, &support).await.unwrap().webhook_events, 1);
    assert_eq!(stack.store.get_account(&globex, &sales).await.unwrap().webhook_events, 2);
}

/// A JSON object with the same key twice keeps the last value when parsed into a
/// `serde_json::Value`. commsync must then route by the id it records in the event, so
/// the two can never disagree.
#[tokio::test]
async fn whatsapp_duplicate_number_key_routes_by_recorded_id() {
    let stack = two_tenants().await;
    let deps = stack.whatsapp_deps();
    let body = format!(
        r#"{{"object":"whatsapp_business_account","entry":[{{"id":"WABA","changes":[{{"field":"messages","value":{{"metadata":{{"phone_number_id":"{ACME_NUMBER}","phone_number_id":"{GLOBEX_NUMBER}"}},"messages":[{{"from":"1","id":"wamid.dupkey","timestamp":"1796300000","type":"text"}}]}}}}]}}]}}"#
    );

    let answer = commsync::providers::whatsapp::handle(signed_whatsapp(&body), &deps).await;

    assert_eq!(answer.status_code, 200);
    let stored = all_stored_events(&stack).await;
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].event.data["phone_number_id"], GLOBEX_NUMBER);
    assert_eq!(stored[0].owner(), owned_by("globex", "sales"));
    assert_eq!(queued_owners(&stack).await, stored_owners(&stored));
}

#[tokio::test]
async fn linkedin_batch_routes_per_notification() {
    let stack = two_tenants().await;
    let deps = stack.linkedin_deps();
    // The acme notification also claims globex in fields of its own.
    let body = format!(
        r#"{{"type":"ORGANIZATION_SOCIAL_ACTION_NOTIFICATIONS","tenant_id":"globex","notifications":[{{"notificationId":1,"organizationalEntity":"{ACME_ORG}","action":"COMMENT","tenant_id":"globex","account_id":"page","subscriber":"{GLOBEX_ORG}","sourcePost":"urn:li:share:{GLOBEX_ORG}"}},{{"notificationId":2,"organizationalEntity":"{GLOBEX_ORG}","action":"LIKE"}},{{"notificationId":3,"organizationalEntity":"{UNKNOWN_ORG}","action":"LIKE"}}]}}"#
    );

    let answer = commsync::providers::linkedin::handle(signed_linkedin(&body), &deps).await;

    assert_eq!(answer.status_code, 200);
    let stored = all_stored_events(&stack).await;
    assert_eq!(stored.len(), 2);
    assert_eq!(find(&stored, &format!("{ACME_ORG}:1")).owner(), owned_by("acme", "page"));
    assert_eq!(find(&stored, &format!("{GLOBEX_ORG}:2")).owner(), owned_by("globex", "page"));
    assert_eq!(queued_owners(&stack).await, stored_owners(&stored));
    let quarantined = stack.store.list_quarantine(Provider::LinkedIn).await.unwrap();
    assert_eq!(quarantined.len(), 1);
    assert!(quarantined[0].reason.contains(UNKNOWN_ORG), "{}", quarantined[0].reason);
}

#[tokio::test]
async fn linkedin_same_notification_id_stays_per_organization() {
    let stack = two_tenants().await;
    let deps = stack.linkedin_deps();
    // Both organizations use notificationId 7: the event ids differ by organization.
    let body = linkedin_notifications(&[(7, ACME_ORG, "COMMENT"), (7, GLOBEX_ORG, "COMMENT")]);

    let answer = commsync::providers::linkedin::handle(signed_linkedin(&body), &deps).await;

    assert_eq!(answer.status_code, 200);
    let stored = all_stored_events(&stack).await;
    assert_eq!(stored.len(), 2);
    assert_eq!(find(&stored, &format!("{ACME_ORG}:7")).owner(), owned_by("acme", "page"));
    assert_eq!(find(&stored, &format!("{GLOBEX_ORG}:7")).owner(), owned_by("globex", "page"));
    assert_eq!(queued_owners(&stack).await, stored_owners(&stored));
}

#[tokio::test]
async fn linkedin_lead_routes_by_owner_only() {
    let stack = two_tenants().await;
    let deps = stack.linkedin_deps();
    let body = format!(
        r#"{{"type":"LEAD_ACTION","leadGenFormResponse":"urn:li:leadGenFormResponse:abc","owner":{{"organization":"{ACME_ORG}","sponsoredAccount":"urn:li:sponsoredAccount:1"}},"associatedEntity":"{GLOBEX_ORG}","organizationalEntity":"{GLOBEX_ORG}","tenant_id":"globex","leadAction":"CREATED","occurredAt":1796300000000}}"#
    );

    let answer = commsync::providers::linkedin::handle(signed_linkedin(&body), &deps).await;

    assert_eq!(answer.status_code, 200);
    let stored = all_stored_events(&stack).await;
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].owner(), owned_by("acme", "page"));
    assert_eq!(queued_owners(&stack).await, stored_owners(&stored));
}

#[tokio::test]
async fn gmail_push_routes_by_email_address_only() {
    let stack = two_tenants().await;
    let jwks = JwksServer::start().await;
    let deps = stack.gmail_deps(&jwks.url);
    let data = base64::engine::general_purpose::STANDARD
        .encode(format!(r#"{{"emailAddress":"{GLOBEX_MAILBOX}","historyId":500,"tenant_id":"acme"}}"#));
    let body = format!(
        r#"{{"message":{{"data":"{data}","messageId":"claim-1","attributes":{{"tenant_id":"acme","emailAddress":"{ACME_MAILBOX}"}}}},"subscription":"projects/acme/subscriptions/acme","tenant_id":"acme"}}"#
    );

    let answer = commsync::providers::gmail::handle(gmail_push(&valid_token(), &body), &deps).await;

    assert_eq!(answer.status_code, 204);
    let (acme, mailbox) = ids("acme", "mailbox");
    let (globex, _) = ids("globex", "mailbox");
    assert_eq!(stack.store.get_account(&globex, &mailbox).await.unwrap().notified_history_id, Some(500));
    assert_eq!(stack.store.get_account(&acme, &mailbox).await.unwrap().notified_history_id, None);
    let jobs = stack.drain("SyncQueue").await;
    assert_eq!(jobs.len(), 1);
    let job: commsync::jobs::SyncJob = serde_json::from_str(&jobs[0]).unwrap();
    assert_eq!(job.tenant_id, globex);
    assert_eq!(job.account_id, mailbox);
    let push_partitions = push_record_partitions(&stack).await;
    assert_eq!(push_partitions, vec![keys::account_partition(&globex, &mailbox)]);
}

/// Gmail addresses are case-insensitive, so an address in other letter case routes to the
/// same account, and only to it.
#[tokio::test]
async fn gmail_address_case_routes_to_same_tenant() {
    let stack = two_tenants().await;
    let jwks = JwksServer::start().await;
    let deps = stack.gmail_deps(&jwks.url);
    let body = gmail_push_body("case-1", &ACME_MAILBOX.to_ascii_uppercase(), "42");

    let answer = commsync::providers::gmail::handle(gmail_push(&valid_token(), &body), &deps).await;

    assert_eq!(answer.status_code, 204);
    let (acme, mailbox) = ids("acme", "mailbox");
    let (globex, _) = ids("globex", "mailbox");
    assert_eq!(stack.store.get_account(&acme, &mailbox).await.unwrap().notified_history_id, Some(42));
    assert_eq!(stack.store.get_account(&globex, &mailbox).await.unwrap().notified_history_id, None);
    assert_eq!(push_record_partitions(&stack).await, vec![keys::account_partition(&acme, &mailbox)]);
}

async fn push_record_partitions(stack: &TestStack) -> Vec<String> {
    let output = stack.clients.dynamodb.scan().table_name(&stack.store.tables().events).send().await.unwrap();
    output
        .items
        .unwrap_or_default()
        .iter()
        .filter(|item| item.get("sk").and_then(|value| value.as_s().ok()).is_some_and(|sk| sk.starts_with("PUSH#")))
        .map(|item| item.get("pk").unwrap().as_s().unwrap().clone())
        .collect()
}

fn new_account(tenant: &str, account: &str, provider: Provider, external_id: &str) -> NewAccount {
    NewAccount {
        tenant_id: TenantId::parse(tenant).unwrap(),
        account_id: AccountId::parse(account).unwrap(),
        provider,
        external_id: ExternalId::for_provider(provider, external_id).unwrap(),
        waba_id: None,
    }
}

/// Asserts that `result` is `RouteTaken` naming the account that owns the route.
fn assert_route_taken(result: Result<(), StoreError>, owner_tenant: &str, owner_account: &str) {
    match result {
        Err(StoreError::RouteTaken { tenant_id, account_id, .. }) => {
            assert_eq!(tenant_id, owner_tenant);
            assert_eq!(account_id, owner_account);
        }
        other => panic!("expected RouteTaken, got {other:?}"),
    }
}

#[tokio::test]
async fn registering_taken_route_rejected() {
    let stack = two_tenants().await;
    let attempts = [
        ("globex", "hijack", Provider::WhatsApp, ACME_NUMBER, "acme", "support"),
        ("acme", "second", Provider::WhatsApp, ACME_NUMBER, "acme", "support"),
        ("globex", "hijack", Provider::LinkedIn, ACME_ORG, "acme", "page"),
        ("globex", "hijack", Provider::Gmail, ACME_MAILBOX, "acme", "mailbox"),
        ("globex", "hijack-upper", Provider::Gmail, "OPS@ACME.EXAMPLE", "acme", "mailbox"),
        ("acme", "hijack", Provider::Gmail, GLOBEX_MAILBOX, "globex", "mailbox"),
    ];

    for (tenant, account, provider, external_id, owner_tenant, owner_account) in attempts {
        let result = stack.store.register_account(&new_account(tenant, account, provider, external_id)).await;
        assert_route_taken(result, owner_tenant, owner_account);
        let (tenant_id, account_id) = ids(tenant, account);
        let created = stack.store.get_account(&tenant_id, &account_id).await;
        assert!(
            matches!(created, Err(StoreError::AccountNotFound { .. })),
            "{tenant}/{account} for {external_id}: {created:?}"
        );
    }

    // The routes are unchanged: webhooks still land under the first owners.
    let whatsapp = commsync::providers::whatsapp::handle(
        signed_whatsapp(&commsync_tests::whatsapp_body(
            ACME_NUMBER,
            &commsync_tests::text_message("wamid.after", "x"),
            "",
        )),
        &stack.whatsapp_deps(),
    )
    .await;
    let linkedin = commsync::providers::linkedin::handle(
        signed_linkedin(&linkedin_notifications(&[(11, ACME_ORG, "LIKE")])),
        &stack.linkedin_deps(),
    )
    .await;
    assert_eq!(whatsapp.status_code, 200);
    assert_eq!(linkedin.status_code, 200);
    let stored = all_stored_events(&stack).await;
    assert_eq!(stored.len(), 2);
    assert_eq!(find(&stored, "wamid.after").owner(), owned_by("acme", "support"));
    assert_eq!(find(&stored, &format!("{ACME_ORG}:11")).owner(), owned_by("acme", "page"));
}

#[tokio::test]
async fn concurrent_registrations_leave_one_owner() {
    let stack = TestStack::new().await;
    let contested = "105555555555555";
    let globex = new_account("globex", "sales", Provider::WhatsApp, contested);
    let initech = new_account("initech", "support", Provider::WhatsApp, contested);

    let (globex_result, initech_result) =
        tokio::join!(stack.store.register_account(&globex), stack.store.register_account(&initech));

    let (winner, loser_result, loser) = match (&globex_result, &initech_result) {
        (Ok(()), _) => (("globex", "sales"), initech_result, ("initech", "support")),
        (_, Ok(())) => (("initech", "support"), globex_result, ("globex", "sales")),
        _ => panic!("no registration succeeded: {globex_result:?}, {initech_result:?}"),
    };
    assert_route_taken(loser_result, winner.0, winner.1);
    let (loser_tenant, loser_account) = ids(loser.0, loser.1);
    assert!(matches!(
        stack.store.get_account(&loser_tenant, &loser_account).await,
        Err(StoreError::AccountNotFound { .. })
    ));

    let body = commsync_tests::whatsapp_body(contested, &commsync_tests::text_message("wamid.race", "x"), "");
    let answer = commsync::providers::whatsapp::handle(signed_whatsapp(&body), &stack.whatsapp_deps()).await;
    assert_eq!(answer.status_code, 200);
    let stored = all_stored_events(&stack).await;
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].owner(), owned_by(winner.0, winner.1));
}
