//! Local stand-ins for the Gmail API, Google's OAuth token endpoint, Meta's Graph API
//! (WhatsApp) and LinkedIn's REST API, all served by one HTTP server on 127.0.0.1.
//!
//! Tests set up mailboxes, tokens, WABAs and notifications through [`ProviderServer::state`],
//! inject faults with [`ProviderState::inject`], and inspect [`ProviderServer::requests`]
//! afterwards. Responses follow the providers' wire formats: status codes, JSON error bodies,
//! string-typed int64 fields and paging. The server never contacts another host.
//!
//! Accepted requests:
//! - Gmail: `GET /gmail/v1/users/{userId}/history`, `GET .../messages`, `GET .../messages/{id}`,
//!   `GET .../profile`, `POST .../watch` and `POST .../stop`, where `userId` is `me` or the
//!   address of the mailbox that the bearer token belongs to.
//! - Google OAuth: `POST /token` with a form body and `grant_type=refresh_token`.
//! - Graph: `/{version}/{waba_id}/subscribed_apps` (GET, POST, DELETE),
//!   `GET /{version}/{waba_id}/phone_numbers` and `GET /{version}/{node_id}` for phone numbers
//!   and WABAs, where `version` looks like `v21.0`.
//! - LinkedIn: `GET /rest/organizationalEntityNotifications?q=criteria&...`.
//!
//! NOTE: status codes, error shapes and the documented messages follow the providers' public
//! documentation. The other message texts are approximations, so clients should branch on
//! status and error code, not on message text.
//!
//! Do not hold the guard from [`ProviderServer::state`] across an `.await` that waits for a
//! response from this server: the handlers lock the same mutex, so the request would deadlock.

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Map, Value};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

mod gmail;
mod google_oauth;
mod graph;
mod linkedin;

pub use gmail::{AccessTokenGrant, GmailMailbox, RefreshTokenGrant, HISTORY_ID_STEP, INITIAL_HISTORY_ID};
pub use graph::WhatsAppBusinessAccount;

/// Largest request body the server reads.
const MAX_BODY_BYTES: usize = 1 << 20;

/// A fault that the server applies to the next matching requests before normal handling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Respond with this status and the provider's error body for it.
    Status(u16),
    /// Respond 429 with the provider's rate-limit body and a `Retry-After` header in seconds.
    TooManyRequests { retry_after_seconds: u64 },
    /// Wait this long, then handle the request normally.
    Delay(Duration),
}

/// One request as the server received it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedRequest {
    pub method: String,
    /// Path as sent, still percent-encoded.
    pub path: String,
    /// Raw query string without the leading `?`, empty when absent.
    pub query: String,
    /// Value of the `Authorization` header.
    pub authorization: Option<String>,
    /// Headers with lowercase names, in the order received.
    pub headers: Vec<(String, String)>,
    /// Body decoded as UTF-8, with invalid bytes replaced.
    pub body: String,
}

impl RecordedRequest {
    /// Returns the first value of the header `name`, compared case-insensitively.
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers.iter().find(|(key, _)| *key == name).map(|(_, value)| value.as_str())
    }
}

/// A pending fault and the number of requests it still applies to.
#[derive(Debug, Clone)]
struct FaultRule {
    path_contains: String,
    fault: Fault,
    remaining: usize,
}

/// Everything the provider server stores. Tests change it directly or through the helpers.
#[derive(Debug, Default)]
pub struct ProviderState {
    /// Gmail mailboxes by email address.
    pub gmail: HashMap<String, GmailMailbox>,
    /// Google access tokens by token value.
    pub access_tokens: HashMap<String, AccessTokenGrant>,
    /// Google refresh tokens by token value.
    pub refresh_tokens: HashMap<String, RefreshTokenGrant>,
    /// OAuth client id and secret that `/token` requires. `None` accepts any non-empty client id.
    pub oauth_client: Option<(String, String)>,
    /// WhatsApp Business Accounts by WABA id.
    pub wabas: HashMap<String, WhatsAppBusinessAccount>,
    /// WhatsApp phone number nodes by phone number id, without the `id` field.
    pub phone_numbers: HashMap<String, Map<String, Value>>,
    /// Graph access tokens that are valid.
    pub graph_tokens: HashSet<String>,
    /// LinkedIn notifications by organization URN, in the `organizationalEntityNotifications` format.
    pub linkedin_notifications: HashMap<String, Vec<Value>>,
    /// LinkedIn access tokens that are valid.
    pub linkedin_tokens: HashSet<String>,
    faults: Vec<FaultRule>,
    issued_tokens: u64,
}

impl ProviderState {
    /// Applies `fault` to the next `times` requests whose path contains `path_contains`.
    /// When several pending faults match a request, the one injected first applies.
    pub fn inject(&mut self, path_contains: &str, fault: Fault, times: usize) {
        if let Fault::Status(code) = fault {
            assert!(StatusCode::from_u16(code).is_ok(), "Fault::Status({code}) is not a valid HTTP status code");
        }
        self.faults.push(FaultRule { path_contains: path_contains.to_string(), fault, remaining: times });
    }

    /// Returns the number of requests that pending faults still apply to.
    pub fn pending_faults(&self) -> usize {
        self.faults.iter().map(|rule| rule.remaining).sum()
    }

    /// Removes one use of the first pending fault that matches `path` and returns it.
    fn take_fault(&mut self, path: &str) -> Option<Fault> {
        let index = self.faults.iter().position(|rule| rule.remaining > 0 && path.contains(&rule.path_contains))?;
        let rule = &mut self.faults[index];
        rule.remaining -= 1;
        let fault = rule.fault.clone();
        if rule.remaining == 0 {
            self.faults.remove(index);
        }
        Some(fault)
    }
}

struct Shared {
    state: Mutex<ProviderState>,
    requests: Mutex<Vec<RecordedRequest>>,
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, ProviderState> {
        // A test that panicked while holding the guard must not hide its own failure behind ours.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Local HTTP server with the Gmail, Google OAuth, Graph and LinkedIn APIs. Dropping it
/// stops the server.
pub struct ProviderServer {
    base_url: String,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl ProviderServer {
    /// Binds 127.0.0.1 on a port the OS chooses and serves on the current Tokio runtime.
    pub async fn start() -> Self {
        let listener =
            tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind 127.0.0.1:0 for the provider server");
        let address = listener.local_addr().expect("provider server has a local address");
        let shared = Arc::new(Shared { state: Mutex::new(ProviderState::default()), requests: Mutex::new(Vec::new()) });

        let app = axum::Router::new().fallback(dispatch).with_state(shared.clone());
        let task = tokio::spawn(async move {
            if let Err(error) = axum::serve(listener, app).await {
                eprintln!("provider server on {address} stopped: {error}");
            }
        });
        Self { base_url: format!("http://{address}"), shared, task }
    }

    /// Base URL for the Gmail client, which appends `/gmail/v1/users/me/...`.
    pub fn gmail_base_url(&self) -> String {
        self.base_url.clone()
    }

    /// URL of the Google OAuth token endpoint.
    pub fn token_url(&self) -> String {
        format!("{}/token", self.base_url)
    }

    /// Graph API base URL including the version, such as `http://127.0.0.1:PORT/v21.0`.
    pub fn graph_base_url(&self) -> String {
        format!("{}/v21.0", self.base_url)
    }

    /// Base URL for the LinkedIn client, which appends `/rest/...`.
    pub fn linkedin_base_url(&self) -> String {
        self.base_url.clone()
    }

    /// Locks the provider state. Release the guard before awaiting a request to this server.
    pub fn state(&self) -> MutexGuard<'_, ProviderState> {
        self.shared.state()
    }

    /// Applies `fault` to the next `times` requests whose path contains `path_contains`.
    pub fn inject(&self, path_contains: &str, fault: Fault, times: usize) {
        self.state().inject(path_contains, fault, times);
    }

    /// Returns every request received so far, in arrival order, including faulted ones.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared.requests.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Returns the number of received requests whose path contains `path_contains`.
    pub fn count(&self, path_contains: &str) -> usize {
        let requests = self.shared.requests.lock().unwrap_or_else(PoisonError::into_inner);
        requests.iter().filter(|request| request.path.contains(path_contains)).count()
    }
}

impl Drop for ProviderServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The provider API that a path belongs to, which decides the error body format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Api {
    Gmail,
    GoogleOAuth,
    Graph,
    LinkedIn,
    Unknown,
}

impl Api {
    fn for_path(path: &str) -> Self {
        if path.starts_with("/gmail/") {
            Api::Gmail
        } else if path == "/token" {
            Api::GoogleOAuth
        } else if path.starts_with("/rest/") {
            Api::LinkedIn
        } else if graph::split_version(path).is_some() {
            Api::Graph
        } else {
            Api::Unknown
        }
    }
}

/// A request after its body has been read.
struct Incoming {
    method: Method,
    path: String,
    raw_query: String,
    query: Query,
    headers: HeaderMap,
    body: Vec<u8>,
}

impl Incoming {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|value| value.to_str().ok())
    }

    /// Returns the token of an `Authorization: Bearer` header.
    fn bearer_token(&self) -> Option<&str> {
        let value = self.header("authorization")?;
        let (scheme, token) = value.split_once(' ')?;
        scheme.eq_ignore_ascii_case("bearer").then(|| token.trim()).filter(|token| !token.is_empty())
    }
}

async fn dispatch(State(shared): State<Arc<Shared>>, request: Request) -> Reply {
    let (parts, body) = request.into_parts();
    let body = match axum::body::to_bytes(body, MAX_BODY_BYTES).await {
        Ok(bytes) => bytes.to_vec(),
        Err(error) => {
            let message = format!("request body could not be read: {error}");
            return Reply::json(StatusCode::PAYLOAD_TOO_LARGE, json!({"error": message}));
        }
    };
    let incoming = Incoming {
        method: parts.method,
        path: parts.uri.path().to_string(),
        raw_query: parts.uri.query().unwrap_or("").to_string(),
        query: Query::parse(parts.uri.query().unwrap_or("")),
        headers: parts.headers,
        body,
    };
    record(&shared, &incoming);

    let api = Api::for_path(&incoming.path);
    let fault = shared.state().take_fault(&incoming.path);
    match fault {
        Some(Fault::Status(code)) => return fault_reply(api, code, None),
        Some(Fault::TooManyRequests { retry_after_seconds }) => {
            return fault_reply(api, 429, Some(retry_after_seconds))
        }
        Some(Fault::Delay(duration)) => tokio::time::sleep(duration).await,
        None => {}
    }

    let mut state = shared.state();
    match api {
        Api::Gmail => gmail::handle(&mut state, &incoming),
        Api::GoogleOAuth => google_oauth::handle(&mut state, &incoming),
        Api::Graph => graph::handle(&mut state, &incoming),
        Api::LinkedIn => linkedin::handle(&state, &incoming),
        Api::Unknown => Reply::json(
            StatusCode::NOT_FOUND,
            json!({"error": format!("the provider server has no route for {} {}", incoming.method, incoming.path)}),
        ),
    }
}

fn record(shared: &Shared, incoming: &Incoming) {
    let headers = incoming
        .headers
        .iter()
        .map(|(name, value)| (name.as_str().to_string(), String::from_utf8_lossy(value.as_bytes()).into_owned()))
        .collect();
    let recorded = RecordedRequest {
        method: incoming.method.to_string(),
        path: incoming.path.clone(),
        query: incoming.raw_query.clone(),
        authorization: incoming.header("authorization").map(str::to_string),
        headers,
        body: String::from_utf8_lossy(&incoming.body).into_owned(),
    };
    shared.requests.lock().unwrap_or_else(PoisonError::into_inner).push(recorded);
}

/// A provider response before it becomes HTTP: status, JSON body and `Retry-After` seconds.
/// Handlers return it instead of `Response`, which is too large for an `Err` variant.
struct Reply {
    status: StatusCode,
    body: Option<Value>,
    retry_after_seconds: Option<u64>,
}

impl Reply {
    fn json(status: StatusCode, body: Value) -> Self {
        Self { status, body: Some(body), retry_after_seconds: None }
    }

    fn empty(status: StatusCode) -> Self {
        Self { status, body: None, retry_after_seconds: None }
    }
}

impl IntoResponse for Reply {
    fn into_response(self) -> Response {
        let mut response = match self.body {
            Some(body) => {
                let mut response = (self.status, body.to_string()).into_response();
                let content_type = HeaderValue::from_static("application/json; charset=UTF-8");
                response.headers_mut().insert(header::CONTENT_TYPE, content_type);
                response
            }
            None => self.status.into_response(),
        };
        if let Some(seconds) = self.retry_after_seconds {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

/// Builds the response for an injected fault in the format of `api`.
fn fault_reply(api: Api, code: u16, retry_after_seconds: Option<u64>) -> Reply {
    let status = StatusCode::from_u16(code).expect("inject checks the status code");
    let mut reply = match api {
        Api::Gmail | Api::Unknown => gmail::status_error(status),
        Api::GoogleOAuth => google_oauth::status_error(status),
        Api::Graph => graph::status_error(status),
        Api::LinkedIn => linkedin::status_error(status),
    };
    reply.retry_after_seconds = retry_after_seconds;
    reply
}

/// Decodes `%XX` escapes, as in a URL path. Invalid escapes stay as they are.
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        let escape = bytes.get(index + 1..index + 3).filter(|digits| digits.iter().all(u8::is_ascii_hexdigit));
        match (bytes[index], escape) {
            (b'%', Some(digits)) => {
                let digits = std::str::from_utf8(digits).expect("hex digits are ASCII");
                decoded.push(u8::from_str_radix(digits, 16).expect("two hex digits fit a byte"));
                index += 3;
            }
            (byte, _) => {
                decoded.push(byte);
                index += 1;
            }
        }
    }
    String::from_utf8_lossy(&decoded).into_owned()
}

/// Decodes a query or form value: `+` is a space, then `%XX` escapes as in [`percent_decode`].
fn form_decode(text: &str) -> String {
    percent_decode(&text.replace('+', " "))
}

/// Decoded `name=value` pairs of a query string or form body, in order.
struct Query {
    pairs: Vec<(String, String)>,
}

impl Query {
    fn parse(raw: &str) -> Self {
        let pairs = raw
            .split('&')
            .filter(|pair| !pair.is_empty())
            .map(|pair| match pair.split_once('=') {
                Some((name, value)) => (form_decode(name), form_decode(value)),
                None => (form_decode(pair), String::new()),
            })
            .collect();
        Self { pairs }
    }

    /// Returns the first value of `name`.
    fn get(&self, name: &str) -> Option<&str> {
        self.pairs.iter().find(|(key, _)| key == name).map(|(_, value)| value.as_str())
    }

    /// Returns every value of a repeated parameter, in order.
    fn all(&self, name: &str) -> Vec<&str> {
        self.pairs.iter().filter(|(key, _)| key == name).map(|(_, value)| value.as_str()).collect()
    }
}
