//! Test harness: one moto server per test process, fresh tables and queues per test,
//! and builders for signed webhook events.
//!
//! Set `AWS_ENDPOINT_URL` to reuse a running moto server; otherwise the harness starts
//! one on a free port from the project-local venv (installing it on first use).

pub mod fault_proxy;
pub mod jwt;
pub use commsync::local::providers;

use commsync::aws::AwsClients;
use commsync::event::CanonicalEvent;
use commsync::ids::{AccountId, ExternalId, Provider, TenantId};
use commsync::local::{LocalStack, Template};
use commsync::store::{NewAccount, Store, Tables};
use hmac::{Hmac, Mac};
use lambda_http::aws_lambda_events::apigw::ApiGatewayV2httpRequest;
use sha2::Sha256;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

/// App secret and verify token every test stack's WhatsApp function uses.
pub const WHATSAPP_SECRET: &str = "test-whatsapp-app-secret";
pub const WHATSAPP_VERIFY_TOKEN: &str = "test-verify-token";
pub const LINKEDIN_SECRET: &str = "test-linkedin-client-secret";

pub fn project_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Returns the endpoint of the process-wide moto server, starting it on first use.
pub fn moto_endpoint() -> String {
    static ENDPOINT: OnceLock<String> = OnceLock::new();
    ENDPOINT
        .get_or_init(|| {
            if let Ok(endpoint) = std::env::var("AWS_ENDPOINT_URL") {
                if !endpoint.is_empty() {
                    return endpoint;
                }
            }
            start_moto()
        })
        .clone()
}

/// Starts moto from a thread that never exits: the child gets `PR_SET_PDEATHSIG`, which
/// fires when the spawning thread ends, and test threads end all the time.
fn start_moto() -> String {
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        let tools = commsync::local::tools_dir(&project_root());
        let server = runtime.block_on(commsync::local::MotoServer::start(&tools, 0));
        match server {
            Ok(server) => {
                sender.send(Ok(server.endpoint.clone())).expect("test thread waits");
                // Keep the server (and this thread, its parent) alive for the whole test process.
                runtime.block_on(std::future::pending::<()>());
                drop(server);
            }
            Err(error) => sender.send(Err(error.to_string())).expect("test thread waits"),
        }
    });
    match receiver.recv().expect("moto thread answers") {
        Ok(endpoint) => endpoint,
        Err(error) => panic!("cannot start moto for the tests: {error}"),
    }
}

/// A fresh set of the template's resources on the shared moto server.
pub struct TestStack {
    pub stack: LocalStack,
    pub store: Store,
    pub clients: AwsClients,
}

static COUNTER: AtomicUsize = AtomicUsize::new(0);

impl TestStack {
    /// Creates every table, queue and bus of `template.yaml` under a prefix unique to this test.
    pub async fn new() -> Self {
        let prefix = format!("t{}x{}-", std::process::id(), COUNTER.fetch_add(1, Ordering::SeqCst));
        let template = Template::load(&project_root().join("template.yaml")).expect("template.yaml parses");
        let stack = LocalStack::create(template, &moto_endpoint(), &prefix).await.expect("local stack is created");
        let clients = stack.clients();
        let store = Store::new(
            clients.dynamodb.clone(),
            Tables {
                accounts: stack.resource("AccountsTable").unwrap().name.clone(),
                events: stack.resource("EventsTable").unwrap().name.clone(),
            },
            Duration::from_secs(86_400),
        );
        Self { stack, store, clients }
    }

    /// Returns the environment the template gives `binary`, with the test secrets.
    pub fn function_env(&self, binary: &str) -> HashMap<String, String> {
        let mut env = self.stack.function_env(binary).expect("function is in the template");
        env.insert("WHATSAPP_APP_SECRET".into(), WHATSAPP_SECRET.into());
        env.insert("WHATSAPP_VERIFY_TOKEN".into(), WHATSAPP_VERIFY_TOKEN.into());
        env.insert("LINKEDIN_CLIENT_SECRET".into(), LINKEDIN_SECRET.into());
        env.insert("LINKEDIN_APP_SECRETS".into(), "77001=test-child-app-secret".into());
        env.insert("GMAIL_PUSH_AUDIENCE".into(), jwt::GMAIL_AUDIENCE.into());
        env.insert("GMAIL_PUSH_SERVICE_ACCOUNT".into(), jwt::GMAIL_SERVICE_ACCOUNT.into());
        env
    }

    /// Gmail deps that fetch signing keys from `jwks_url` and refresh on every unknown `kid`.
    pub fn gmail_deps(&self, jwks_url: &str) -> commsync::providers::gmail::GmailDeps {
        let mut env = self.function_env("webhook-gmail");
        env.insert("GMAIL_JWKS_URL".into(), jwks_url.into());
        let mut deps =
            commsync::providers::gmail::GmailDeps::new(&self.clients, &env).expect("gmail config is complete");
        deps.auth = commsync::providers::gmail::PushAuthenticator::new(
            jwt::GMAIL_AUDIENCE,
            jwt::GMAIL_SERVICE_ACCOUNT,
            commsync::providers::gmail::JwksCache::new(jwks_url).with_min_refresh(Duration::ZERO),
        );
        deps
    }

    /// Worker deps pointed at a local provider server, retrying without delay.
    pub fn recovery_deps(
        &self,
        providers: &providers::ProviderServer,
    ) -> std::sync::Arc<commsync::recovery::RecoveryDeps> {
        let mut env = self.function_env("recovery-worker");
        for (name, value) in [
            ("GMAIL_API_BASE_URL", providers.gmail_base_url()),
            ("GMAIL_OAUTH_TOKEN_URL", providers.token_url()),
            ("GMAIL_OAUTH_CLIENT_ID", "test-client-id".to_string()),
            ("GMAIL_OAUTH_CLIENT_SECRET", "test-client-secret".to_string()),
            ("GMAIL_PUBSUB_TOPIC", "projects/commsync-test/topics/gmail".to_string()),
            ("WHATSAPP_GRAPH_BASE_URL", providers.graph_base_url()),
            ("LINKEDIN_API_BASE_URL", providers.linkedin_base_url()),
            ("RETRY_BASE_SECONDS", "0".to_string()),
            ("GMAIL_EMPTY_HISTORY_DELAY_SECONDS", "0".to_string()),
            ("PROVIDER_TIMEOUT_SECONDS", "2".to_string()),
        ] {
            env.insert(name.to_string(), value);
        }
        std::sync::Arc::new(
            commsync::recovery::RecoveryDeps::new(&self.clients, &env).expect("worker config is complete"),
        )
    }

    /// Detector deps with the template's environment plus `overrides`.
    pub fn detector_deps(&self, overrides: &[(&str, &str)]) -> commsync::gaps::DetectorDeps {
        let mut env = self.function_env("gap-detector");
        for (name, value) in overrides {
            env.insert(name.to_string(), value.to_string());
        }
        commsync::gaps::DetectorDeps::new(&self.clients, &env).expect("detector config is complete")
    }

    /// Makes an account look busy (a learned `rate_per_hour` over the last day) and silent
    /// since `silent_since`.
    pub async fn make_busy_and_silent(&self, tenant: &str, account: &str, rate_per_hour: f64, silent_since: i64) {
        let (tenant_id, account_id) = (TenantId::parse(tenant).unwrap(), AccountId::parse(account).unwrap());
        let record = self.store.get_account(&tenant_id, &account_id).await.unwrap();
        let mut state = record.detector.clone();
        state.event_rate = commsync::gaps::rate::RateEstimate { count: rate_per_hour * 24.0, exposure_hours: 24.0 };
        state.seen_events = record.webhook_events;
        state.updated_at = Some(silent_since);
        self.store.write_detector_state(&record, &state).await.unwrap();
        self.store.set_last_webhook_epoch(&tenant_id, &account_id, silent_since).await.unwrap();
    }

    /// Sends a job to `SyncQueue`.
    pub async fn enqueue_job(&self, job: &commsync::jobs::SyncJob) {
        let queue = commsync::queue::Queue::new(self.clients.sqs.clone(), self.queue_url("SyncQueue"));
        queue.send_all(&[job.to_message()]).await.expect("job is sent");
    }

    /// Runs the worker on one batch from `SyncQueue`, as the event source mapping would.
    pub async fn run_worker(
        &self,
        deps: &std::sync::Arc<commsync::recovery::RecoveryDeps>,
    ) -> commsync::local::worker::PollReport {
        let deps = deps.clone();
        commsync::local::worker::poll_once(&self.clients.sqs, &self.queue_url("SyncQueue"), |event| {
            commsync::recovery::handle(event, None, deps)
        })
        .await
        .expect("poll works")
    }

    /// Stores provider tokens for an account.
    pub async fn store_tokens(
        &self,
        tenant: &str,
        account: &str,
        access_token: Option<&str>,
        refresh_token: Option<&str>,
    ) {
        let credentials = commsync::store::Credentials {
            access_token: access_token.map(commsync::secret::Secret::new),
            refresh_token: refresh_token.map(commsync::secret::Secret::new),
            access_token_expires_at: None,
        };
        self.store
            .put_credentials(&TenantId::parse(tenant).unwrap(), &AccountId::parse(account).unwrap(), &credentials)
            .await
            .expect("credentials are stored");
    }

    /// Routes every event on `CommsEventBus` to a fresh queue and returns its URL.
    pub async fn capture_bus(&self) -> String {
        let name = format!("{}BusCapture", self.stack.prefix);
        let url = self.clients.sqs.create_queue().queue_name(&name).send().await.unwrap().queue_url.unwrap();
        let arn = format!("arn:aws:sqs:us-east-1:123456789012:{name}");
        let bus = self.stack.resource("CommsEventBus").unwrap().name.clone();
        self.clients
            .eventbridge
            .put_rule()
            .name(format!("{name}-rule"))
            .event_bus_name(&bus)
            .event_pattern(r#"{"source":["commsync"]}"#)
            .send()
            .await
            .unwrap();
        let target = aws_sdk_eventbridge::types::Target::builder().id("capture").arn(arn).build().unwrap();
        self.clients
            .eventbridge
            .put_targets()
            .rule(format!("{name}-rule"))
            .event_bus_name(&bus)
            .targets(target)
            .send()
            .await
            .unwrap();
        url
    }

    /// Receives every message from a queue by URL.
    pub async fn drain_url(&self, url: &str) -> Vec<String> {
        let mut bodies = Vec::new();
        loop {
            let output =
                self.clients.sqs.receive_message().queue_url(url).max_number_of_messages(10).send().await.unwrap();
            let messages = output.messages.unwrap_or_default();
            if messages.is_empty() {
                return bodies;
            }
            bodies.extend(messages.into_iter().filter_map(|message| message.body));
        }
    }

    pub fn linkedin_deps(&self) -> commsync::providers::linkedin::LinkedInDeps {
        commsync::providers::linkedin::LinkedInDeps::new(&self.clients, &self.function_env("webhook-linkedin"))
            .expect("linkedin config is complete")
    }

    pub fn whatsapp_deps(&self) -> commsync::providers::whatsapp::WhatsAppDeps {
        commsync::providers::whatsapp::WhatsAppDeps::new(&self.clients, &self.function_env("webhook-whatsapp"))
            .expect("whatsapp config is complete")
    }

    pub fn queue_url(&self, logical_id: &str) -> String {
        self.stack.resource(logical_id).unwrap().url.clone().unwrap()
    }

    pub async fn register(&self, tenant: &str, account: &str, provider: Provider, external_id: &str) {
        self.store
            .register_account(&NewAccount {
                tenant_id: TenantId::parse(tenant).unwrap(),
                account_id: AccountId::parse(account).unwrap(),
                provider,
                external_id: ExternalId::for_provider(provider, external_id).unwrap(),
                waba_id: (provider == Provider::WhatsApp).then(|| format!("WABA-{external_id}")),
            })
            .await
            .expect("account registers");
    }

    /// Receives every message waiting in a queue and returns the bodies.
    pub async fn drain(&self, logical_id: &str) -> Vec<String> {
        let url = self.queue_url(logical_id);
        let mut bodies = Vec::new();
        loop {
            let output = self
                .clients
                .sqs
                .receive_message()
                .queue_url(&url)
                .max_number_of_messages(10)
                .visibility_timeout(300)
                .send()
                .await
                .expect("receive works");
            let messages = output.messages.unwrap_or_default();
            if messages.is_empty() {
                return bodies;
            }
            bodies.extend(messages.into_iter().filter_map(|message| message.body));
        }
    }

    /// Receives every canonical event waiting in `EventsQueue`.
    pub async fn drain_events(&self) -> Vec<CanonicalEvent> {
        self.drain("EventsQueue")
            .await
            .iter()
            .map(|body| serde_json::from_str(body).expect("EventsQueue carries canonical events"))
            .collect()
    }
}

pub fn hmac_hex(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

/// Builds an API Gateway HTTP API event for `POST path` with `headers` and a text body.
pub fn post_event(path: &str, headers: &[(&str, &str)], body: &[u8]) -> ApiGatewayV2httpRequest {
    let mut header_map = lambda_http::http::HeaderMap::new();
    for (name, value) in headers {
        header_map.insert(
            lambda_http::http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
            lambda_http::http::HeaderValue::from_bytes(value.as_bytes()).unwrap(),
        );
    }
    let uri: lambda_http::http::Uri = path.parse().unwrap();
    commsync::local::server::apigw_event(&lambda_http::http::Method::POST, &uri, header_map, body)
}

/// Builds a WhatsApp POST signed with the test app secret.
pub fn signed_whatsapp(body: &str) -> ApiGatewayV2httpRequest {
    let signature = format!("sha256={}", hmac_hex(WHATSAPP_SECRET, body.as_bytes()));
    post_event(
        "/webhooks/whatsapp",
        &[("content-type", "application/json"), ("x-hub-signature-256", &signature)],
        body.as_bytes(),
    )
}

/// Builds a WhatsApp notification body with one `messages` change for `phone_number_id`.
pub fn whatsapp_body(phone_number_id: &str, messages: &str, statuses: &str) -> String {
    format!(
        r#"{{"object":"whatsapp_business_account","entry":[{{"id":"WABA","changes":[{{"field":"messages","value":{{"messaging_product":"whatsapp","metadata":{{"display_phone_number":"15550000000","phone_number_id":"{phone_number_id}"}},"messages":[{messages}],"statuses":[{statuses}]}}}}]}}]}}"#
    )
}

pub fn text_message(wamid: &str, text: &str) -> String {
    format!(
        r#"{{"from":"34600000000","id":"{wamid}","timestamp":"1796300000","type":"text","text":{{"body":"{text}"}}}}"#
    )
}

pub fn status(wamid: &str, status: &str, timestamp: u64) -> String {
    format!(r#"{{"id":"{wamid}","status":"{status}","timestamp":"{timestamp}","recipient_id":"34600000000"}}"#)
}

/// Builds a Pub/Sub push body for a Gmail notification, with `data` in standard base64.
pub fn gmail_push_body(message_id: &str, email: &str, history_id: &str) -> String {
    use base64::Engine;
    let data = base64::engine::general_purpose::STANDARD
        .encode(format!(r#"{{"emailAddress":"{email}","historyId":{history_id}}}"#));
    format!(
        r#"{{"message":{{"data":"{data}","messageId":"{message_id}","publishTime":"2026-12-04T10:00:00Z"}},"subscription":"projects/p/subscriptions/s"}}"#
    )
}

/// Builds a Gmail push POST with `Authorization: Bearer {token}`.
pub fn gmail_push(token: &str, body: &str) -> ApiGatewayV2httpRequest {
    let authorization = format!("Bearer {token}");
    post_event(
        "/webhooks/gmail",
        &[("content-type", "application/json"), ("authorization", &authorization)],
        body.as_bytes(),
    )
}

/// Builds a LinkedIn POST signed with the test client secret.
pub fn signed_linkedin(body: &str) -> ApiGatewayV2httpRequest {
    let mut mac = Hmac::<Sha256>::new_from_slice(LINKEDIN_SECRET.as_bytes()).unwrap();
    mac.update(b"hmacsha256=");
    mac.update(body.as_bytes());
    let signature = hex::encode(mac.finalize().into_bytes());
    post_event(
        "/webhooks/linkedin",
        &[("content-type", "application/json"), ("x-li-signature", &signature)],
        body.as_bytes(),
    )
}

/// Builds an organization social action notification body from `(notificationId, organization, action)` tuples.
pub fn linkedin_notifications(notifications: &[(u64, &str, &str)]) -> String {
    let items: Vec<String> = notifications
        .iter()
        .map(|(id, organization, action)| {
            format!(r#"{{"notificationId":{id},"organizationalEntity":"{organization}","action":"{action}","lastModifiedAt":1796300000000}}"#)
        })
        .collect();
    format!(r#"{{"type":"ORGANIZATION_SOCIAL_ACTION_NOTIFICATIONS","notifications":[{}]}}"#, items.join(","))
}
