//! Fault injection: the webhook handlers and the recovery worker talk to moto through
//! [`FaultProxy`], which resets connections, drops responses after moto applied the request,
//! returns HTTP 500 or throttling errors, adds latency and fails `PutEvents` entries.
//! Every check reads moto directly, never through the proxy.

use aws_sdk_sqs::types::{MessageSystemAttributeName, QueueAttributeName};
use commsync::aws::AwsClients;
use commsync::bus::{BusError, BusEvent, EventBus};
use commsync::ids::{AccountId, Provider, TenantId};
use commsync::jobs::{JobKind, SyncJob};
use commsync::providers::{gmail, linkedin, whatsapp};
use commsync::store::{keys, Store};
use commsync_tests::fault_proxy::{FaultConfig, FaultProxy, FaultRates, FaultRule, SeededRng, Service};
use commsync_tests::jwt::{valid_token, JwksServer};
use commsync_tests::providers::ProviderServer;
use commsync_tests::{
    gmail_push, gmail_push_body, linkedin_notifications, moto_endpoint, signed_linkedin, signed_whatsapp, status,
    text_message, whatsapp_body, TestStack,
};
use lambda_http::aws_lambda_events::event::sqs::{SqsEvent, SqsMessage};
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

const TENANT: &str = "acme";
const NUMBER: &str = "106540352242922";

fn ids(account: &str) -> (TenantId, AccountId) {
    (TenantId::parse(TENANT).unwrap(), AccountId::parse(account).unwrap())
}

/// SDK clients that reach moto through `proxy`.
///
/// The clients keep the SDK's standard retry mode, which makes 3 attempts and retries
/// throttling, 5xx and connection errors. Two settings differ from `local_sdk_config`. The
/// throttling backoff base is 20 ms instead of 1 s, so thousands of injected throttles fit in
/// minutes. Each test gets its own retry partition, so a test that drains its retry quota
/// does not change how many attempts another test's clients get.
fn proxied_clients(proxy: &FaultProxy, partition: &str) -> AwsClients {
    use aws_sdk_dynamodb::config::retry::{RetryConfig, RetryPartition};

    let config = commsync::local::local_sdk_config(&proxy.endpoint())
        .into_builder()
        .retry_config(RetryConfig::standard().with_initial_backoff(Duration::from_millis(20)))
        .build();
    let dynamodb = aws_sdk_dynamodb::config::Builder::from(&config)
        .retry_partition(RetryPartition::new(format!("{partition}-dynamodb")))
        .build();
    let sqs = aws_sdk_sqs::config::Builder::from(&config)
        .retry_partition(aws_sdk_sqs::config::retry::RetryPartition::new(format!("{partition}-sqs")))
        .build();
    let eventbridge = aws_sdk_eventbridge::config::Builder::from(&config)
        .retry_partition(aws_sdk_eventbridge::config::retry::RetryPartition::new(format!("{partition}-eventbridge")))
        .build();
    AwsClients {
        dynamodb: aws_sdk_dynamodb::Client::from_conf(dynamodb),
        sqs: aws_sdk_sqs::Client::from_conf(sqs),
        eventbridge: aws_sdk_eventbridge::Client::from_conf(eventbridge),
    }
}

/// Returns a copy of `stack` that reaches the same tables and queues with `clients`, so the
/// harness's deps builders give handlers and workers that go through the proxy.
fn through(stack: &TestStack, clients: &AwsClients) -> TestStack {
    let store = Store::new(clients.dynamodb.clone(), stack.store.tables().clone(), Duration::from_secs(86_400));
    TestStack { stack: stack.stack.clone(), store, clients: clients.clone() }
}

/// Returns faults on about 20% of all AWS calls: 5% connection resets, 2% responses dropped
/// after moto applied the request, 5% HTTP 500, 5% throttling and 3% latency of 150 ms.
fn twenty_percent_faults(seed: u64) -> FaultConfig {
    let rates = FaultRates {
        reset: 0.05,
        drop_response: 0.02,
        server_error: 0.05,
        throttle: 0.05,
        latency: 0.03,
        fail_entries: 0.0,
    };
    FaultConfig::new(seed)
        .latency(Duration::from_millis(150))
        .rule(FaultRule::service(Service::DynamoDb, rates))
        .rule(FaultRule::service(Service::Sqs, rates))
        .rule(FaultRule::service(Service::EventBridge, FaultRates { fail_entries: 0.05, ..rates }))
}

fn event_ids(events: &[commsync::store::StoredEvent]) -> BTreeSet<String> {
    events.iter().map(|stored| stored.event.event_id.to_string()).collect()
}

// ---------------------------------------------------------------------------------------
// Webhooks under 20% AWS faults
// ---------------------------------------------------------------------------------------

/// Webhook deliveries of the main chaos test; `CHAOS_DELIVERIES` overrides it.
///
/// Measured with `cargo test -p commsync-tests chaos_webhooks -- --nocapture` on this
/// project's 2-core machine while other builds and fuzzers ran (load average 5 to 7).
/// 10,000 deliveries took 535 s and 4,000 took 185 to 231 s, so the default is 4,000.
const DELIVERIES: usize = 4_000;
const DUPLICATE_SHARE: f64 = 0.3;
const CONCURRENCY: usize = 8;
/// A provider gives up on a delivery after this many non-2xx responses. The real ones keep
/// retrying for hours; the bound keeps the test finite and shows up as `gave up`.
const MAX_ATTEMPTS: u32 = 50;
/// moto 2025.9.1 deep-copies the whole table once per item of a `TransactWriteItems` call
/// (`moto/dynamodb/models/__init__.py`, `transact_write_items`). On this project's 2-core
/// machine a 10-item transaction took 12 ms on an empty table and 3.1 s on a 6,000-item one,
/// so the deliveries are spread over several stacks and each events table stays small.
const DELIVERIES_PER_STACK: usize = 125;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Channel {
    WhatsApp,
    LinkedIn,
    Gmail,
}

/// One distinct webhook body; duplicates deliver the same body again.
struct Body {
    stack: usize,
    channel: Channel,
    text: String,
}

/// What one stack must contain once every delivery got a 2xx response.
#[derive(Default)]
struct Expected {
    whatsapp_events: BTreeSet<String>,
    linkedin_events: BTreeSet<String>,
    /// Highest status delivered for each outbound wamid.
    final_status: BTreeMap<String, &'static str>,
    gmail_pushes: BTreeSet<String>,
    gmail_max_history_id: u64,
}

struct Workload {
    bodies: Vec<Body>,
    /// Indices into `bodies`, in delivery order; duplicates included.
    deliveries: Vec<usize>,
    expected: Vec<Expected>,
}

fn phone_number(stack: usize) -> String {
    format!("10654035{stack:07}")
}

fn organization(stack: usize) -> String {
    format!("urn:li:organization:{}", 5_515_000 + stack)
}

fn mailbox(stack: usize) -> String {
    format!("ops{stack}@acme.example")
}

/// An outbound message whose statuses are still to be delivered, in lifecycle order.
struct Outbound {
    wamid: String,
    pending: Vec<&'static str>,
}

/// Status lifecycles of outbound messages: most are read, some stop early, a few fail.
fn lifecycle(rng: &mut SeededRng) -> Vec<&'static str> {
    let draw = rng.next_f64();
    if draw < 0.55 {
        vec!["sent", "delivered", "read"]
    } else if draw < 0.8 {
        vec!["sent", "delivered"]
    } else if draw < 0.95 {
        vec!["sent"]
    } else {
        vec!["sent", "failed"]
    }
}

fn status_item(wamid: &str, name: &str, timestamp: u64) -> String {
    if name == "failed" {
        return format!(
            r#"{{"id":"{wamid}","status":"failed","timestamp":"{timestamp}","recipient_id":"34600000000","errors":[{{"code":131026,"title":"Message undeliverable"}}]}}"#
        );
    }
    status(wamid, name, timestamp)
}

fn rank(status: &str) -> u8 {
    commsync::providers::whatsapp::status::rank(status)
}

/// Builds `deliveries` webhook deliveries over `stacks` stacks.
///
/// Of the distinct bodies, 45% are WhatsApp bodies (60% with one item, the rest with 2 to 6
/// messages and statuses), 30% LinkedIn bodies (70% with one notification, the rest with 2 to
/// 4) and 25% Gmail pushes. Then 30% of the deliveries repeat a body, and the list is shuffled.
fn workload(deliveries: usize, stacks: usize, seed: u64) -> Workload {
    let mut rng = SeededRng::new(seed);
    let duplicates = (deliveries as f64 * DUPLICATE_SHARE).round() as usize;
    let distinct = deliveries - duplicates;
    let mut expected: Vec<Expected> = (0..stacks).map(|_| Expected::default()).collect();
    let mut outbound: Vec<Vec<Outbound>> = (0..stacks).map(|_| Vec::new()).collect();
    let mut counters = vec![0u64; stacks];
    let mut bodies = Vec::with_capacity(distinct);

    for index in 0..distinct {
        let stack = index % stacks;
        let draw = rng.next_f64();
        counters[stack] += 1;
        let serial = counters[stack];
        let body = if draw < 0.45 {
            let items = if rng.chance(0.6) { 1 } else { rng.between(2, 6) };
            let (mut messages, mut statuses) = (Vec::new(), Vec::new());
            for item in 0..items {
                if rng.chance(0.45) {
                    let wamid = format!("wamid.in.{stack}.{serial}.{item}");
                    messages.push(text_message(&wamid, "hola"));
                    expected[stack].whatsapp_events.insert(format!("whatsapp:{}:{wamid}:message", phone_number(stack)));
                    continue;
                }
                if outbound[stack].is_empty() || rng.chance(0.35) {
                    let wamid = format!("wamid.out.{stack}.{serial}.{item}");
                    outbound[stack].push(Outbound { wamid, pending: lifecycle(&mut rng) });
                }
                let open = rng.below(outbound[stack].len());
                let message = &mut outbound[stack][open];
                let name = message.pending.remove(0);
                let wamid = message.wamid.clone();
                if message.pending.is_empty() {
                    outbound[stack].swap_remove(open);
                }
                statuses.push(status_item(&wamid, name, 1_796_300_000 + u64::from(rank(name))));
                let events = &mut expected[stack].whatsapp_events;
                events.insert(format!("whatsapp:{}:{wamid}:status:{name}", phone_number(stack)));
                let best = expected[stack].final_status.entry(wamid).or_insert(name);
                if rank(name) > rank(best) {
                    *best = name;
                }
            }
            let text = whatsapp_body(&phone_number(stack), &messages.join(","), &statuses.join(","));
            Body { stack, channel: Channel::WhatsApp, text }
        } else if draw < 0.75 {
            let count = if rng.chance(0.7) { 1 } else { rng.between(2, 4) };
            let org = organization(stack);
            let actions = ["COMMENT", "LIKE", "SHARE_MENTION"];
            let notifications: Vec<(u64, &str, &str)> = (0..count as u64)
                .map(|item| (serial * 10 + item, org.as_str(), actions[rng.below(actions.len())]))
                .collect();
            for (id, _, _) in &notifications {
                expected[stack].linkedin_events.insert(format!("linkedin:{org}:{id}"));
            }
            Body { stack, channel: Channel::LinkedIn, text: linkedin_notifications(&notifications) }
        } else {
            let message_id = format!("push-{stack}-{serial}");
            let history_id = 100_000 + serial * 3;
            expected[stack].gmail_pushes.insert(message_id.clone());
            expected[stack].gmail_max_history_id = expected[stack].gmail_max_history_id.max(history_id);
            let text = gmail_push_body(&message_id, &mailbox(stack), &history_id.to_string());
            Body { stack, channel: Channel::Gmail, text }
        };
        bodies.push(body);
    }

    let mut order: Vec<usize> = (0..distinct).collect();
    order.extend((0..duplicates).map(|_| rng.below(distinct)));
    rng.shuffle(&mut order);
    Workload { bodies, deliveries: order, expected }
}

/// One stack of the chaos test: moto directly for checks, handlers through the proxy.
struct ChaosStack {
    stack: TestStack,
    whatsapp: whatsapp::WhatsAppDeps,
    linkedin: linkedin::LinkedInDeps,
    gmail: gmail::GmailDeps,
}

async fn chaos_stacks(count: usize, clients: &AwsClients, jwks_url: &str) -> Vec<ChaosStack> {
    let mut creating = tokio::task::JoinSet::new();
    for index in 0..count {
        creating.spawn(async move {
            let stack = TestStack::new().await;
            stack.register(TENANT, "wa", Provider::WhatsApp, &phone_number(index)).await;
            stack.register(TENANT, "li", Provider::LinkedIn, &organization(index)).await;
            stack.register(TENANT, "gm", Provider::Gmail, &mailbox(index)).await;
            (index, stack)
        });
    }
    let mut created: Vec<(usize, TestStack)> = creating.join_all().await;
    created.sort_by_key(|(index, _)| *index);
    created
        .into_iter()
        .map(|(_, stack)| {
            let proxied = through(&stack, clients);
            ChaosStack {
                whatsapp: proxied.whatsapp_deps(),
                linkedin: proxied.linkedin_deps(),
                gmail: proxied.gmail_deps(jwks_url),
                stack,
            }
        })
        .collect()
}

/// Handler responses of one delivery worker.
#[derive(Default)]
struct Tally {
    handler_requests: u64,
    responses_5xx: u64,
    retried: u64,
    gave_up: u64,
    unexpected: Vec<String>,
    duplicates_suppressed: u64,
}

impl Tally {
    fn add(&mut self, other: Tally) {
        self.handler_requests += other.handler_requests;
        self.responses_5xx += other.responses_5xx;
        self.retried += other.retried;
        self.gave_up += other.gave_up;
        self.unexpected.extend(other.unexpected);
        self.duplicates_suppressed += other.duplicates_suppressed;
    }
}

/// Delivers one body the way Meta, LinkedIn and Pub/Sub do: again after every non-2xx
/// response, up to [`MAX_ATTEMPTS`] times.
async fn deliver(stack: &ChaosStack, body: &Body, token: &str, tally: &mut Tally) {
    for attempt in 1..=MAX_ATTEMPTS {
        tally.handler_requests += 1;
        if attempt > 1 {
            tally.retried += 1;
        }
        let (response, report) = match body.channel {
            Channel::WhatsApp => whatsapp::handle_with_report(signed_whatsapp(&body.text), &stack.whatsapp).await,
            Channel::LinkedIn => linkedin::handle_with_report(signed_linkedin(&body.text), &stack.linkedin).await,
            Channel::Gmail => gmail::handle_with_report(gmail_push(token, &body.text), &stack.gmail).await,
        };
        match response.status_code {
            200..=299 => {
                tally.duplicates_suppressed += report.map_or(0, |report| report.duplicates as u64);
                return;
            }
            500..=599 => {
                tally.responses_5xx += 1;
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            other => {
                tally.unexpected.push(format!("{:?} body in stack {} got HTTP {other}", body.channel, body.stack));
                return;
            }
        }
    }
    tally.gave_up += 1;
}

/// What the checks found in one stack.
#[derive(Default)]
struct Findings {
    stored: usize,
    enqueued_distinct: usize,
    queue_messages: usize,
    missing_in_table: Vec<String>,
    unexpected_in_table: Vec<String>,
    missing_in_queue: Vec<String>,
    unexpected_in_queue: Vec<String>,
    wrong_status: Vec<String>,
    gmail_pushes: usize,
    gmail_missing_pushes: Vec<String>,
    gmail_wrong_history_id: Vec<String>,
    mailboxes_with_job: usize,
    mailboxes_left_to_detector: usize,
    mailboxes_stalled: Vec<String>,
}

impl Findings {
    fn add(&mut self, other: Findings) {
        self.stored += other.stored;
        self.enqueued_distinct += other.enqueued_distinct;
        self.queue_messages += other.queue_messages;
        self.missing_in_table.extend(other.missing_in_table);
        self.unexpected_in_table.extend(other.unexpected_in_table);
        self.missing_in_queue.extend(other.missing_in_queue);
        self.unexpected_in_queue.extend(other.unexpected_in_queue);
        self.wrong_status.extend(other.wrong_status);
        self.gmail_pushes += other.gmail_pushes;
        self.gmail_missing_pushes.extend(other.gmail_missing_pushes);
        self.gmail_wrong_history_id.extend(other.gmail_wrong_history_id);
        self.mailboxes_with_job += other.mailboxes_with_job;
        self.mailboxes_left_to_detector += other.mailboxes_left_to_detector;
        self.mailboxes_stalled.extend(other.mailboxes_stalled);
    }

    fn lost(&self) -> usize {
        self.missing_in_table.len()
            + self.missing_in_queue.len()
            + self.wrong_status.len()
            + self.gmail_missing_pushes.len()
            + self.gmail_wrong_history_id.len()
            + self.mailboxes_stalled.len()
    }
}

/// Pub/Sub message ids of the push records stored for an account.
async fn push_records(stack: &TestStack, account: &str) -> BTreeSet<String> {
    let (tenant, account_id) = ids(account);
    let mut found = BTreeSet::new();
    let mut start_key = None;
    loop {
        let output = stack
            .store
            .client()
            .query()
            .table_name(&stack.store.tables().events)
            .key_condition_expression("pk = :pk AND begins_with(sk, :prefix)")
            .expression_attribute_values(":pk", commsync::store::s(keys::account_partition(&tenant, &account_id)))
            .expression_attribute_values(":prefix", commsync::store::s("PUSH#"))
            .consistent_read(true)
            .set_exclusive_start_key(start_key)
            .send()
            .await
            .expect("push records can be queried");
        for item in output.items.unwrap_or_default() {
            let sk = commsync::store::get_s(&item, "sk").unwrap_or_default();
            found.insert(sk.trim_start_matches("PUSH#").to_string());
        }
        start_key = output.last_evaluated_key;
        if start_key.is_none() {
            return found;
        }
    }
}

/// Compares one stack's tables and queues, read from moto directly, with `expected`.
///
/// A Gmail push counts as delivered when all three hold:
/// 1. its push record is stored;
/// 2. the account's `notified_history_id` equals the highest historyId pushed to the mailbox;
/// 3. the mailbox has a `history_sync` job waiting in `SyncQueue`, or its recovery lease is
///    free so the next push or the gap detector sends one. The handler logs a failed job send
///    and returns 204 by design.
///
/// A held lease with no job waiting is a stalled mailbox.
async fn check_stack(index: usize, chaos: &ChaosStack, expected: &Expected) -> Findings {
    let stack = &chaos.stack;
    let mut findings = Findings::default();

    let mut stored = BTreeSet::new();
    for account in ["wa", "li"] {
        let (tenant, account_id) = ids(account);
        stored.extend(event_ids(&stack.store.list_events(&tenant, &account_id).await.unwrap()));
    }
    let expected_ids: BTreeSet<String> = expected.whatsapp_events.union(&expected.linkedin_events).cloned().collect();
    findings.stored = stored.len();
    findings.missing_in_table = expected_ids.difference(&stored).map(|id| format!("stack {index}: {id}")).collect();
    findings.unexpected_in_table = stored.difference(&expected_ids).map(|id| format!("stack {index}: {id}")).collect();

    let queued = stack.drain_events().await;
    let queued_ids: BTreeSet<String> = queued.iter().map(|event| event.event_id.to_string()).collect();
    findings.queue_messages = queued.len();
    findings.enqueued_distinct = queued_ids.len();
    findings.missing_in_queue = expected_ids.difference(&queued_ids).map(|id| format!("stack {index}: {id}")).collect();
    findings.unexpected_in_queue =
        queued_ids.difference(&expected_ids).map(|id| format!("stack {index}: {id}")).collect();

    let (tenant, whatsapp_account) = ids("wa");
    let messages = stack.store.list_messages(&tenant, &whatsapp_account).await.unwrap();
    let statuses: HashMap<&str, &str> =
        messages.iter().map(|message| (message.provider_message_id.as_str(), message.status.as_str())).collect();
    for (wamid, best) in &expected.final_status {
        let found = statuses.get(wamid.as_str()).copied().unwrap_or("none");
        if found != *best {
            findings.wrong_status.push(format!("stack {index}: {wamid} ends at {found}, highest sent was {best}"));
        }
    }

    let records = push_records(stack, "gm").await;
    findings.gmail_pushes = expected.gmail_pushes.len();
    findings.gmail_missing_pushes =
        expected.gmail_pushes.difference(&records).map(|id| format!("stack {index}: {id}")).collect();
    let (_, gmail_account) = ids("gm");
    let account = stack.store.get_account(&tenant, &gmail_account).await.unwrap();
    if !expected.gmail_pushes.is_empty() {
        if account.notified_history_id != Some(expected.gmail_max_history_id) {
            findings.gmail_wrong_history_id.push(format!(
                "stack {index}: notified_history_id {:?}, highest pushed {}",
                account.notified_history_id, expected.gmail_max_history_id
            ));
        }
        let jobs = stack.drain("SyncQueue").await;
        let waiting = jobs
            .iter()
            .filter_map(|body| serde_json::from_str::<SyncJob>(body).ok())
            .any(|job| job.kind == JobKind::HistorySync && job.account_id == gmail_account);
        let lease_held = account.recovery_lease_until.is_some_and(|until| until > chrono::Utc::now().timestamp());
        if waiting {
            findings.mailboxes_with_job += 1;
        } else if !lease_held {
            findings.mailboxes_left_to_detector += 1;
        } else {
            findings.mailboxes_stalled.push(format!(
                "stack {index}: mailbox {} has no history_sync job waiting but its recovery lease is held until {:?}",
                mailbox(index),
                account.recovery_lease_until
            ));
        }
    }
    findings
}

fn first<T: std::fmt::Debug>(items: &[T]) -> Vec<&T> {
    items.iter().take(5).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos_webhooks_lose_nothing() {
    let started = Instant::now();
    let deliveries: usize =
        std::env::var("CHAOS_DELIVERIES").ok().and_then(|value| value.parse().ok()).unwrap_or(DELIVERIES);
    let stacks = deliveries.div_ceil(DELIVERIES_PER_STACK).max(CONCURRENCY);
    let workload = workload(deliveries, stacks, 0x00C4_A05E);

    let proxy = FaultProxy::start(&moto_endpoint(), FaultConfig::none()).await;
    let clients = proxied_clients(&proxy, "chaos-webhooks");
    let jwks = JwksServer::start().await;
    let chaos = Arc::new(chaos_stacks(stacks, &clients, &jwks.url).await);
    let setup = started.elapsed();

    proxy.set_faults(twenty_percent_faults(0x00FA_0175));
    let delivering = Instant::now();
    let workload = Arc::new(workload);
    let token = Arc::new(valid_token());
    // Each worker owns the stacks with `stack % CONCURRENCY == worker`, so no two requests
    // touch one table at once. moto snapshots a table for TransactWriteItems, and when the
    // transaction is cancelled it restores the snapshot over writes that other threads had
    // acknowledged meanwhile: against moto 2025.9.1, 2 of 300 such PutItems were lost.
    let mut workers = tokio::task::JoinSet::new();
    for worker in 0..CONCURRENCY {
        let (chaos, workload, token) = (chaos.clone(), workload.clone(), token.clone());
        workers.spawn(async move {
            let mut tally = Tally::default();
            for &body_index in &workload.deliveries {
                let body = &workload.bodies[body_index];
                if body.stack % CONCURRENCY == worker {
                    deliver(&chaos[body.stack], body, &token, &mut tally).await;
                }
            }
            tally
        });
    }
    let mut tally = Tally::default();
    for worker in workers.join_all().await {
        tally.add(worker);
    }
    let delivery_time = delivering.elapsed();
    proxy.clear_faults();
    let faults = proxy.stats();

    // The checks run on CONCURRENCY tasks with the same split of stacks as the deliveries.
    let checking = Instant::now();
    let mut checkers = tokio::task::JoinSet::new();
    for worker in 0..CONCURRENCY {
        let (chaos, workload) = (chaos.clone(), workload.clone());
        checkers.spawn(async move {
            let mut findings = Findings::default();
            for index in (worker..chaos.len()).step_by(CONCURRENCY) {
                findings.add(check_stack(index, &chaos[index], &workload.expected[index]).await);
            }
            findings
        });
    }
    let mut findings = Findings::default();
    for checked in checkers.join_all().await {
        findings.add(checked);
    }
    let expected_events: usize =
        workload.expected.iter().map(|expected| expected.whatsapp_events.len() + expected.linkedin_events.len()).sum();

    println!(
        "chaos webhooks: sent {} deliveries ({} distinct bodies, {} duplicates) over {stacks} stacks; \
         handler requests {}, answered 5xx {}, retried {}, gave up {}; events expected {expected_events}, \
         stored {}, enqueued {} ({} queue messages), duplicates suppressed {}; gmail pushes {}, mailboxes with a \
         job {}, left to the gap detector {}, stalled {}; lost = {}",
        workload.deliveries.len(),
        workload.bodies.len(),
        workload.deliveries.len() - workload.bodies.len(),
        tally.handler_requests,
        tally.responses_5xx,
        tally.retried,
        tally.gave_up,
        findings.stored,
        findings.enqueued_distinct,
        findings.queue_messages,
        tally.duplicates_suppressed,
        findings.gmail_pushes,
        findings.mailboxes_with_job,
        findings.mailboxes_left_to_detector,
        findings.mailboxes_stalled.len(),
        findings.lost(),
    );
    println!("chaos webhooks: proxy under faults\n{faults}");
    println!(
        "chaos webhooks: setup {:.1} s, deliveries {:.1} s, checks {:.1} s, total {:.1} s",
        setup.as_secs_f64(),
        delivery_time.as_secs_f64(),
        checking.elapsed().as_secs_f64(),
        started.elapsed().as_secs_f64()
    );

    assert!(faults.total().failures() > 0, "the proxy injected no failure: {faults}");
    assert!(tally.unexpected.is_empty(), "responses other than 2xx and 5xx: {:?}", first(&tally.unexpected));
    assert_eq!(tally.gave_up, 0, "deliveries still failing after {MAX_ATTEMPTS} attempts");
    assert!(findings.missing_in_table.is_empty(), "events never stored: {:?}", first(&findings.missing_in_table));
    assert!(
        findings.unexpected_in_table.is_empty(),
        "events stored that no webhook carried: {:?}",
        first(&findings.unexpected_in_table)
    );
    assert_eq!(findings.stored, expected_events, "each distinct event is stored exactly once");
    assert!(
        findings.missing_in_queue.is_empty(),
        "events never sent to EventsQueue: {:?}",
        first(&findings.missing_in_queue)
    );
    assert!(
        findings.unexpected_in_queue.is_empty(),
        "EventsQueue carries events no webhook carried: {:?}",
        first(&findings.unexpected_in_queue)
    );
    assert!(
        findings.wrong_status.is_empty(),
        "message statuses not at the highest sent: {:?}",
        first(&findings.wrong_status)
    );
    assert!(
        findings.gmail_missing_pushes.is_empty(),
        "pushes not recorded: {:?}",
        first(&findings.gmail_missing_pushes)
    );
    assert!(
        findings.gmail_wrong_history_id.is_empty(),
        "notified_history_id not at the highest pushed: {:?}",
        first(&findings.gmail_wrong_history_id)
    );
    assert!(findings.mailboxes_stalled.is_empty(), "stalled mailboxes: {:?}", first(&findings.mailboxes_stalled));
}

// ---------------------------------------------------------------------------------------
// Recovery worker: crashes mid-batch, AWS faults and a poison job
// ---------------------------------------------------------------------------------------

const MAILBOXES: usize = 3;
const PAGES: usize = 2;
/// Invocations that die part-way through their batch before the worker runs normally.
const CRASH_ROUNDS: usize = 2;
/// Normal worker invocations allowed before the test gives up on the queue draining.
const MAX_POLLS: usize = 60;

fn worker_mailbox(index: usize) -> String {
    format!("worker{index}@acme.example")
}

fn worker_page(index: usize) -> String {
    format!("urn:li:organization:{}", 7_700_000 + index)
}

/// Returns faults on about 15% of the worker's AWS calls: 13% fail the attempt, 2% only add
/// 100 ms. A job reaches `SyncDLQ` after 5 receives, so a good job must not fail 5 times in a
/// row. With the SDK's 3 attempts, one call fails with an estimated 0.2% probability (0.13³).
fn worker_faults(seed: u64) -> FaultConfig {
    let rates = FaultRates {
        reset: 0.04,
        drop_response: 0.01,
        server_error: 0.04,
        throttle: 0.04,
        latency: 0.02,
        fail_entries: 0.0,
    };
    FaultConfig::new(seed)
        .latency(Duration::from_millis(100))
        .rule(FaultRule::service(Service::DynamoDb, rates))
        .rule(FaultRule::service(Service::Sqs, rates))
        .rule(FaultRule::service(Service::EventBridge, FaultRates { fail_entries: 0.04, ..rates }))
}

/// Receives up to 10 jobs from `SyncQueue` the way the event source mapping does. It reads
/// moto directly, because the mapping is AWS's code, not commsync's.
async fn receive_jobs(stack: &TestStack) -> Vec<aws_sdk_sqs::types::Message> {
    stack
        .clients
        .sqs
        .receive_message()
        .queue_url(stack.queue_url("SyncQueue"))
        .max_number_of_messages(10)
        .message_system_attribute_names(MessageSystemAttributeName::All)
        .send()
        .await
        .expect("SyncQueue receive works")
        .messages
        .unwrap_or_default()
}

/// Builds the Lambda SQS record of a received message, as `commsync::local::worker` does.
fn sqs_record(message: &aws_sdk_sqs::types::Message) -> SqsMessage {
    let mut record = SqsMessage::default();
    record.message_id = message.message_id.clone();
    record.receipt_handle = message.receipt_handle.clone();
    record.body = message.body.clone();
    record.event_source = Some("aws:sqs".to_string());
    record.attributes = message
        .attributes
        .clone()
        .unwrap_or_default()
        .into_iter()
        .map(|(name, value)| (name.as_str().to_string(), value))
        .collect();
    record
}

/// Makes a received job visible at once, as its visibility timeout would after 360 s.
async fn expire_visibility(stack: &TestStack, message: &aws_sdk_sqs::types::Message) {
    stack
        .clients
        .sqs
        .change_message_visibility()
        .queue_url(stack.queue_url("SyncQueue"))
        .receipt_handle(message.receipt_handle.clone().unwrap_or_default())
        .visibility_timeout(0)
        .send()
        .await
        .expect("visibility of a received job can be changed");
}

async fn delete_job(stack: &TestStack, message: &aws_sdk_sqs::types::Message) {
    stack
        .clients
        .sqs
        .delete_message()
        .queue_url(stack.queue_url("SyncQueue"))
        .receipt_handle(message.receipt_handle.clone().unwrap_or_default())
        .send()
        .await
        .expect("a received job can be deleted");
}

/// Returns whether `SyncQueue` is empty: no message visible, in flight or delayed.
async fn sync_queue_empty(stack: &TestStack) -> bool {
    let attributes = stack
        .clients
        .sqs
        .get_queue_attributes()
        .queue_url(stack.queue_url("SyncQueue"))
        .attribute_names(QueueAttributeName::All)
        .send()
        .await
        .expect("SyncQueue attributes can be read")
        .attributes
        .unwrap_or_default();
    [
        QueueAttributeName::ApproximateNumberOfMessages,
        QueueAttributeName::ApproximateNumberOfMessagesNotVisible,
        QueueAttributeName::ApproximateNumberOfMessagesDelayed,
    ]
    .iter()
    .all(|name| attributes.get(name).is_none_or(|count| count == "0"))
}

/// Waits until the proxy has seen `count` requests in total.
async fn requests_reach(proxy: &FaultProxy, count: u64) {
    while proxy.stats().total().requests < count {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// Mailboxes with new messages and label changes, and pages with new notifications, all
/// registered with tokens. Returns the event ids a complete recovery stores per account.
async fn worker_setup(stack: &TestStack, providers: &ProviderServer) -> BTreeMap<String, BTreeSet<String>> {
    let mut expected = BTreeMap::new();
    for index in 0..MAILBOXES {
        let (account, email) = (format!("box{index}"), worker_mailbox(index));
        let (access, refresh) = (format!("access-{index}"), format!("refresh-{index}"));
        stack.register(TENANT, &account, Provider::Gmail, &email).await;
        providers.state().add_gmail_mailbox(&email, &access, &refresh);
        stack.store_tokens(TENANT, &account, Some(&access), Some(&refresh)).await;
        let current = providers.state().gmail_mailbox(&email).history_id;
        let (tenant, account_id) = ids(&account);
        stack.store.advance_history_cursor(&tenant, &account_id, current).await.unwrap();

        let mut events = BTreeSet::new();
        for message in 0..8 {
            let id = format!("m{index}x{message}");
            providers.state().gmail_add_message(&email, &id, &["INBOX"]);
            events.insert(format!("gmail:{email}:{id}:messageAdded"));
        }
        for message in 0..2 {
            let id = format!("m{index}x{message}");
            let record = providers.state().gmail_add_labels(&email, &id, &["STARRED"]);
            events.insert(format!("gmail:{email}:{id}:labelsAdded:{record}"));
        }
        expected.insert(account, events);
    }

    let now_ms = chrono::Utc::now().timestamp_millis();
    for index in 0..PAGES {
        let (account, org, token) = (format!("page{index}"), worker_page(index), format!("li-token-{index}"));
        stack.register(TENANT, &account, Provider::LinkedIn, &org).await;
        stack.store_tokens(TENANT, &account, Some(&token), None).await;
        providers.state().add_linkedin_token(&token);
        let mut events = BTreeSet::new();
        for id in 1..=12u64 {
            providers.state().linkedin_add_notification(&org, id, "COMMENT", now_ms - 60_000 - id as i64);
            events.insert(format!("linkedin:{org}:{id}"));
        }
        expected.insert(account, events);
    }
    expected
}

#[tokio::test]
async fn chaos_worker_crash_loses_no_job() {
    let started = Instant::now();
    let stack = TestStack::new().await;
    let providers = ProviderServer::start().await;
    let expected = worker_setup(&stack, &providers).await;

    let mut jobs = Vec::new();
    for index in 0..MAILBOXES {
        let (tenant, account) = ids(&format!("box{index}"));
        for key in ["first-push", "second-push"] {
            jobs.push(SyncJob::new(
                JobKind::HistorySync,
                tenant.clone(),
                account.clone(),
                Provider::Gmail,
                "test",
                key,
            ));
        }
    }
    for index in 0..PAGES {
        let (tenant, account) = ids(&format!("page{index}"));
        jobs.push(SyncJob::new(JobKind::NotificationsPull, tenant, account, Provider::LinkedIn, "test", "pull"));
    }
    for job in &jobs {
        stack.enqueue_job(job).await;
    }
    let poison = commsync::queue::OutgoingMessage {
        body: "{not a job".to_string(),
        attributes: Vec::new(),
        delay_seconds: None,
    };
    let sync_queue = commsync::queue::Queue::new(stack.clients.sqs.clone(), stack.queue_url("SyncQueue"));
    sync_queue.send_all(&[poison]).await.unwrap();

    let proxy = FaultProxy::start(&moto_endpoint(), worker_faults(0x0057_0B0B)).await;
    let deps = through(&stack, &proxied_clients(&proxy, "chaos-worker")).recovery_deps(&providers);
    let mut rng = SeededRng::new(0x00C2_A5E5);

    // Each crash round is one invocation that dies: some records finish, one is cut off
    // after a seeded number of AWS requests, the rest never start, and nothing is deleted.
    let (mut finished_before_crash, mut cut_off) = (0, 0);
    for _ in 0..CRASH_ROUNDS {
        let messages = receive_jobs(&stack).await;
        assert!(!messages.is_empty(), "SyncQueue returned no job to crash on");
        let records: Vec<SqsMessage> = messages.iter().map(sqs_record).collect();
        let finishing = rng.below(records.len());
        for record in &records[..finishing] {
            commsync::recovery::process_record(record.clone(), &deps).await;
            finished_before_crash += 1;
        }
        let crash_after = rng.between(1, 15) as u64;
        let target = proxy.stats().total().requests + crash_after;
        tokio::select! {
            _ = commsync::recovery::process_record(records[finishing].clone(), &deps) => finished_before_crash += 1,
            _ = requests_reach(&proxy, target) => cut_off += 1,
        }
        // A dead invocation's last request may still be running in moto.
        proxy.wait_idle(Duration::from_secs(10)).await;
        for message in &messages {
            expire_visibility(&stack, message).await;
        }
    }

    // Then the worker runs as the event source mapping drives it.
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut polls = 0;
    let mut failed_records = 0;
    let mut drained = false;
    while polls < MAX_POLLS && Instant::now() < deadline {
        let messages = receive_jobs(&stack).await;
        if messages.is_empty() {
            if sync_queue_empty(&stack).await {
                drained = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        }
        polls += 1;
        let mut event = SqsEvent::default();
        event.records = messages.iter().map(sqs_record).collect();
        let response = commsync::recovery::handle(event, None, deps.clone()).await;
        let failed: HashSet<&str> =
            response.batch_item_failures.iter().map(|failure| failure.item_identifier.as_str()).collect();
        for message in &messages {
            if failed.contains(message.message_id.as_deref().unwrap_or_default()) {
                failed_records += 1;
                // The worker asked for redelivery after 0 s; a failed visibility change would leave 360 s.
                expire_visibility(&stack, message).await;
            } else {
                delete_job(&stack, message).await;
            }
        }
    }
    proxy.clear_faults();
    let faults = proxy.stats();

    let dead_letters = stack.drain("SyncDLQ").await;
    let left_in_queue = stack.drain("SyncQueue").await;
    let queued = stack.drain_events().await;
    let queued_ids: BTreeSet<String> = queued.iter().map(|event| event.event_id.to_string()).collect();
    let mut stored_total = 0;
    let mut ledger_entries = 0;
    let (mut wrong_events, mut unsent_events, mut wrong_cursors) = (Vec::new(), Vec::new(), Vec::new());
    let (mut held_leases, mut failure_streaks, mut missing_ledger, mut overcounted) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for (account, expected_ids) in &expected {
        let (tenant, account_id) = ids(account);
        let stored = event_ids(&stack.store.list_events(&tenant, &account_id).await.unwrap());
        stored_total += stored.len();
        if &stored != expected_ids {
            let missing: Vec<&String> = expected_ids.difference(&stored).collect();
            let extra: Vec<&String> = stored.difference(expected_ids).collect();
            wrong_events.push(format!("{account}: missing {missing:?}, unexpected {extra:?}"));
        }
        let unsent: Vec<&String> = expected_ids.difference(&queued_ids).collect();
        if !unsent.is_empty() {
            unsent_events.push(format!("{account}: {unsent:?}"));
        }

        let record = stack.store.get_account(&tenant, &account_id).await.unwrap();
        if account.starts_with("box") {
            let email = record.external_id.to_string();
            let latest = providers.state().gmail_mailbox(&email).history_id;
            if record.history_cursor != Some(latest) {
                wrong_cursors
                    .push(format!("{account}: history_cursor {:?}, provider at {latest}", record.history_cursor));
            }
        }
        if record.recovery_lease_until.is_some() {
            held_leases.push(format!("{account}: held until {:?}", record.recovery_lease_until));
        }
        if record.consecutive_failures != 0 {
            failure_streaks.push(format!("{account}: {}", record.consecutive_failures));
        }

        let ledger = stack.store.list_ledger(&tenant, &account_id).await.unwrap();
        ledger_entries += ledger.len();
        for job in jobs.iter().filter(|job| job.account_id == account_id) {
            let done = ledger.iter().any(|entry| {
                entry.job_id == job.job_id && ["recovered", "nothing_missing"].contains(&entry.outcome.as_str())
            });
            if !done {
                missing_ledger.push(job.job_id.clone());
            }
        }
        let recovered: u64 = ledger.iter().map(|entry| entry.recovered_events).sum();
        if recovered > stored.len() as u64 {
            overcounted.push(format!("{account}: {recovered} recovered, {} stored", stored.len()));
        }
    }

    println!(
        "chaos worker: {} jobs and 1 poison job; {CRASH_ROUNDS} crashed invocations ({finished_before_crash} records \
         finished before the crash, {cut_off} cut off mid-record); {polls} normal invocations with {failed_records} \
         failed records; events expected {}, stored {stored_total}, enqueued {} ({} queue messages); {ledger_entries} \
         ledger entries; SyncDLQ {dead_letters:?}; took {:.1} s",
        jobs.len(),
        expected.values().map(BTreeSet::len).sum::<usize>(),
        queued_ids.len(),
        queued.len(),
        started.elapsed().as_secs_f64()
    );
    println!("chaos worker: proxy under faults\n{faults}");

    assert!(faults.total().failures() > 0, "the proxy injected no failure: {faults}");
    assert!(cut_off >= 1, "no record was cut off mid-job, so no crash was simulated");
    assert!(drained, "SyncQueue did not drain within {MAX_POLLS} invocations or 120 s");
    assert_eq!(dead_letters, vec!["{not a job".to_string()], "only the poison job reaches SyncDLQ");
    assert!(left_in_queue.is_empty(), "jobs left in SyncQueue: {left_in_queue:?}");
    assert!(wrong_events.is_empty(), "stored events differ from the provider's: {wrong_events:?}");
    assert!(unsent_events.is_empty(), "events never sent to EventsQueue: {unsent_events:?}");
    assert!(wrong_cursors.is_empty(), "cursors not at the provider's historyId: {wrong_cursors:?}");
    assert!(held_leases.is_empty(), "recovery leases still held: {held_leases:?}");
    assert!(failure_streaks.is_empty(), "failure streaks left after the last success: {failure_streaks:?}");
    assert!(overcounted.is_empty(), "ledger counts more recovered events than are stored: {overcounted:?}");
    assert!(missing_ledger.is_empty(), "jobs without a finished ledger entry: {missing_ledger:?}");
}

// ---------------------------------------------------------------------------------------
// Focused faults
// ---------------------------------------------------------------------------------------

/// A stack with one WhatsApp number and handler deps that reach moto through a fresh proxy.
async fn whatsapp_through_proxy(
    faults: FaultConfig,
    partition: &str,
) -> (TestStack, FaultProxy, whatsapp::WhatsAppDeps) {
    let stack = TestStack::new().await;
    stack.register(TENANT, "support", Provider::WhatsApp, NUMBER).await;
    let proxy = FaultProxy::start(&moto_endpoint(), faults).await;
    let deps = through(&stack, &proxied_clients(&proxy, partition)).whatsapp_deps();
    (stack, proxy, deps)
}

fn three_messages(prefix: &str) -> (String, BTreeSet<String>) {
    let wamids: Vec<String> = (1..=3).map(|index| format!("wamid.{prefix}{index}")).collect();
    let messages: Vec<String> = wamids.iter().map(|wamid| text_message(wamid, "hola")).collect();
    let ids = wamids.iter().map(|wamid| format!("whatsapp:{NUMBER}:{wamid}:message")).collect();
    (whatsapp_body(NUMBER, &messages.join(","), ""), ids)
}

#[tokio::test]
async fn sqs_outage_resent_once_on_retry() {
    let outage = FaultRates { server_error: 1.0, ..FaultRates::NONE };
    let faults = FaultConfig::new(1).rule(FaultRule::service(Service::Sqs, outage));
    let (stack, proxy, deps) = whatsapp_through_proxy(faults, "sqs-outage").await;
    let (body, expected) = three_messages("sqs");
    let (tenant, account) = ids("support");

    let during_outage = whatsapp::handle(signed_whatsapp(&body), &deps).await;
    let stored_during_outage = stack.store.list_events(&tenant, &account).await.unwrap();
    let queued_during_outage = stack.drain_events().await;
    let outage_stats = proxy.stats();
    proxy.clear_faults();
    let retry = whatsapp::handle(signed_whatsapp(&body), &deps).await;
    let queued_after_retry = stack.drain_events().await;
    let redelivery = whatsapp::handle(signed_whatsapp(&body), &deps).await;
    let queued_after_redelivery = stack.drain_events().await;
    let stored = stack.store.list_events(&tenant, &account).await.unwrap();

    assert_eq!(during_outage.status_code, 500, "the provider must retry");
    assert_eq!(event_ids(&stored_during_outage), expected, "the events are stored before the send fails");
    assert!(stored_during_outage.iter().all(|event| !event.enqueued), "no event is marked enqueued");
    assert!(queued_during_outage.is_empty());
    assert!(outage_stats.service(Service::Sqs).server_errors >= 1);
    assert_eq!(outage_stats.service(Service::Sqs).forwarded, 0, "no SendMessageBatch reached moto");
    assert_eq!(retry.status_code, 200);
    let mut sent: Vec<String> = queued_after_retry.iter().map(|event| event.event_id.to_string()).collect();
    sent.sort();
    assert_eq!(sent, expected.iter().cloned().collect::<Vec<_>>(), "the retry sends each event exactly once");
    assert_eq!(redelivery.status_code, 200);
    assert!(queued_after_redelivery.is_empty(), "a later duplicate sends nothing");
    assert_eq!(event_ids(&stored), expected);
    assert!(stored.iter().all(|event| event.enqueued));
}

/// Returns faults that throttle every `UpdateItem` on the stack's accounts table.
fn throttled_account_updates(stack_prefix: &str) -> FaultConfig {
    let throttled = FaultRates { throttle: 1.0, ..FaultRates::NONE };
    FaultConfig::new(2).rule(
        FaultRule::service(Service::DynamoDb, throttled)
            .operation("UpdateItem")
            .body_contains(&format!("{stack_prefix}AccountsTable")),
    )
}

#[tokio::test]
async fn throttled_counter_retry_adds_no_event() {
    let stack = TestStack::new().await;
    stack.register(TENANT, "support", Provider::WhatsApp, NUMBER).await;
    let proxy = FaultProxy::start(&moto_endpoint(), throttled_account_updates(&stack.stack.prefix)).await;
    let deps = through(&stack, &proxied_clients(&proxy, "throttled-account")).whatsapp_deps();
    let (body, expected) = three_messages("thr");
    let (tenant, account) = ids("support");

    let throttled = whatsapp::handle(signed_whatsapp(&body), &deps).await;
    let queued_while_throttled = stack.drain_events().await;
    let throttles = proxy.stats().service(Service::DynamoDb).throttles;
    proxy.clear_faults();
    let retry = whatsapp::handle(signed_whatsapp(&body), &deps).await;
    let queued_after_retry = stack.drain_events().await;
    let stored = stack.store.list_events(&tenant, &account).await.unwrap();
    let record = stack.store.get_account(&tenant, &account).await.unwrap();

    // The counter update is the last step, after the events were stored and sent: the
    // throttled request returns 500 although its events already reached EventsQueue.
    assert_eq!(throttled.status_code, 500);
    assert!(throttles >= 1);
    let sent: BTreeSet<String> = queued_while_throttled.iter().map(|event| event.event_id.to_string()).collect();
    assert_eq!(sent, expected, "the events reach EventsQueue before the counter update fails");
    assert_eq!(queued_while_throttled.len(), 3, "each event is sent once");
    assert_eq!(retry.status_code, 200);
    assert!(queued_after_retry.is_empty(), "the retry finds every event sent and sends none again");
    assert_eq!(event_ids(&stored), expected);
    assert_eq!(record.webhook_requests, 1, "only the retry's counter update is applied");
    assert!(record.last_webhook_at.is_some());
}

#[tokio::test]
#[ignore = "documents a known limit: the liveness counters are estimates. A retry of a request whose \
            counter update failed sees its events as duplicates, so webhook_events undercounts them; the \
            detector's learned rates tolerate that"]
async fn throttled_counter_keeps_event_count() {
    let stack = TestStack::new().await;
    stack.register(TENANT, "support", Provider::WhatsApp, NUMBER).await;
    let proxy = FaultProxy::start(&moto_endpoint(), throttled_account_updates(&stack.stack.prefix)).await;
    let deps = through(&stack, &proxied_clients(&proxy, "throttled-count")).whatsapp_deps();
    let (body, _) = three_messages("cnt");
    let (tenant, account) = ids("support");

    let throttled = whatsapp::handle(signed_whatsapp(&body), &deps).await;
    proxy.clear_faults();
    let retry = whatsapp::handle(signed_whatsapp(&body), &deps).await;
    let record = stack.store.get_account(&tenant, &account).await.unwrap();

    assert_eq!(throttled.status_code, 500);
    assert_eq!(retry.status_code, 200);
    assert_eq!(record.webhook_events, 3, "the three new events are counted once");
}

#[tokio::test]
async fn bus_partial_failure_retries_failed_entries() {
    let stack = TestStack::new().await;
    let capture = stack.capture_bus().await;
    let partial = FaultRates { fail_entries: 1.0, ..FaultRates::NONE };
    let faults = FaultConfig::new(3)
        .rule(FaultRule::service(Service::EventBridge, partial).operation("PutEvents").max_faults(2));
    let proxy = FaultProxy::start(&moto_endpoint(), faults).await;
    let clients = proxied_clients(&proxy, "bus-partial");
    let bus = EventBus::new(clients.eventbridge.clone(), stack.stack.resource("CommsEventBus").unwrap().name.clone());
    let events: Vec<BusEvent> = (0..15)
        .map(|sequence| BusEvent { detail_type: "GapDetected", detail: json!({ "sequence": sequence }) })
        .collect();

    let published = bus.publish(&events).await;
    let stats = *proxy.stats().service(Service::EventBridge);
    let delivered = stack.drain_url(&capture).await;
    let mut sequences: Vec<u64> = delivered
        .iter()
        .map(|body| serde_json::from_str::<serde_json::Value>(body).unwrap()["detail"]["sequence"].as_u64().unwrap())
        .collect();
    sequences.sort_unstable();

    assert!(published.is_ok(), "{published:?}");
    assert_eq!(stats.partial_failures, 2);
    assert!(stats.failed_entries >= 2);
    assert_eq!(stats.requests, 4, "two chunks, and the first chunk retried twice for its failed entries");
    assert_eq!(sequences, (0..15).collect::<Vec<u64>>(), "every event reaches the bus exactly once");
}

#[tokio::test]
async fn bus_persistent_entry_failure_reported() {
    let stack = TestStack::new().await;
    let capture = stack.capture_bus().await;
    let partial = FaultRates { fail_entries: 1.0, ..FaultRates::NONE };
    let faults = FaultConfig::new(4).rule(FaultRule::service(Service::EventBridge, partial).operation("PutEvents"));
    let proxy = FaultProxy::start(&moto_endpoint(), faults).await;
    let clients = proxied_clients(&proxy, "bus-exhausted");
    let bus = EventBus::new(clients.eventbridge.clone(), stack.stack.resource("CommsEventBus").unwrap().name.clone());
    let events: Vec<BusEvent> = (0..10)
        .map(|sequence| BusEvent { detail_type: "GapDetected", detail: json!({ "sequence": sequence }) })
        .collect();

    let published = bus.publish(&events).await;
    let stats = *proxy.stats().service(Service::EventBridge);
    let delivered = stack.drain_url(&capture).await;

    let Err(BusError::EntriesFailed { count, attempts, .. }) = published else {
        panic!("expected EntriesFailed, got {published:?}");
    };
    assert_eq!(attempts, 4);
    assert_eq!(stats.requests, 4);
    assert!(count >= 1, "at least one entry fails on every attempt");
    assert_eq!(delivered.len() + count, 10, "every event is either delivered once or reported failed");
}

#[tokio::test]
async fn gmail_lost_claim_response_still_syncs() {
    let stack = TestStack::new().await;
    stack.register(TENANT, "mailbox", Provider::Gmail, "lost@acme.example").await;
    let lost = FaultRates { drop_response: 1.0, ..FaultRates::NONE };
    let accounts_table = format!("{}AccountsTable", stack.stack.prefix);
    let faults = FaultConfig::new(5).rule(
        FaultRule::service(Service::DynamoDb, lost)
            .operation("UpdateItem")
            .body_contains(&accounts_table)
            .max_faults(1),
    );
    let proxy = FaultProxy::start(&moto_endpoint(), faults).await;
    let jwks = JwksServer::start().await;
    let deps = through(&stack, &proxied_clients(&proxy, "gmail-lost")).gmail_deps(&jwks.url);
    let (tenant, account) = ids("mailbox");

    // The push's first accounts-table UpdateItem raises notified_history_id and claims the
    // recovery lease in one call; its response is the one lost.
    let response =
        gmail::handle(gmail_push(&valid_token(), &gmail_push_body("p1", "lost@acme.example", "500")), &deps).await;
    let dropped = proxy.stats().service(Service::DynamoDb).dropped_responses;
    let jobs = stack.drain("SyncQueue").await;
    let record = stack.store.get_account(&tenant, &account).await.unwrap();
    let lease_held = record.recovery_lease_until.is_some_and(|until| until > chrono::Utc::now().timestamp());

    assert_eq!(dropped, 1, "the first accounts-table update reached moto and its response was lost");
    assert_eq!(response.status_code, 204);
    assert_eq!(record.notified_history_id, Some(500));
    assert!(
        !jobs.is_empty() || !lease_held,
        "no history_sync job was sent, yet the recovery lease is held until {:?}, so neither the next push \
         nor the gap detector sends one until it expires",
        record.recovery_lease_until
    );
}

#[tokio::test]
async fn ledger_keeps_jobs_of_one_second() {
    let stack = TestStack::new().await;
    let providers = ProviderServer::start().await;
    stack.register(TENANT, "box0", Provider::Gmail, &worker_mailbox(0)).await;
    providers.state().add_gmail_mailbox(&worker_mailbox(0), "access-0", "refresh-0");
    stack.store_tokens(TENANT, "box0", Some("access-0"), Some("refresh-0")).await;
    providers.state().gmail_add_message(&worker_mailbox(0), "only", &["INBOX"]);
    let deps = stack.recovery_deps(&providers);
    let (tenant, account) = ids("box0");
    for key in ["first", "second"] {
        stack
            .enqueue_job(&SyncJob::new(JobKind::Probe, tenant.clone(), account.clone(), Provider::Gmail, "test", key))
            .await;
    }

    // Start just after a second boundary so both jobs finish within the same second.
    let into_second = chrono::Utc::now().timestamp_subsec_millis();
    tokio::time::sleep(Duration::from_millis(u64::from(1_050 - into_second.min(1_000)))).await;
    let report = stack.run_worker(&deps).await;
    let ledger = stack.store.list_ledger(&tenant, &account).await.unwrap();
    let job_ids: BTreeSet<&str> = ledger.iter().map(|entry| entry.job_id.as_str()).collect();

    let recovered: u64 = ledger.iter().map(|entry| entry.recovered_events).sum();
    let stored = stack.store.list_events(&tenant, &account).await.unwrap();

    assert_eq!(report.succeeded, 2);
    assert_eq!(stored.len(), 1, "the first probe recovers the one message");
    assert_eq!(job_ids.len(), 2, "one ledger entry per finished job, got {ledger:?}");
    assert_eq!(recovered, 1, "the ledger counts the recovered message");
}

#[tokio::test]
#[ignore = "documents a known limit: the liveness counters are estimates. When the response to the counter \
            update is lost, the SDK applies the ADD again and one request counts twice; the detector's learned \
            rates tolerate that"]
async fn lost_counter_response_counts_once() {
    let stack = TestStack::new().await;
    stack.register(TENANT, "support", Provider::WhatsApp, NUMBER).await;
    let lost = FaultRates { drop_response: 1.0, ..FaultRates::NONE };
    let accounts_table = format!("{}AccountsTable", stack.stack.prefix);
    let faults = FaultConfig::new(6).rule(
        FaultRule::service(Service::DynamoDb, lost)
            .operation("UpdateItem")
            .body_contains(&accounts_table)
            .max_faults(1),
    );
    let proxy = FaultProxy::start(&moto_endpoint(), faults).await;
    let deps = through(&stack, &proxied_clients(&proxy, "lost-count")).whatsapp_deps();
    let (body, _) = three_messages("lost");
    let (tenant, account) = ids("support");

    let response = whatsapp::handle(signed_whatsapp(&body), &deps).await;
    let record = stack.store.get_account(&tenant, &account).await.unwrap();

    assert_eq!(proxy.stats().service(Service::DynamoDb).dropped_responses, 1);
    assert_eq!(response.status_code, 200);
    assert_eq!(record.webhook_requests, 1, "one request is counted once");
    assert_eq!(record.webhook_events, 3, "the three new events are counted once");
}
