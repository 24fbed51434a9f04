//! A fault-injecting HTTP/1.1 proxy on 127.0.0.1 between the AWS SDK and moto.
//!
//! The proxy reads each request, finds its service from the `X-Amz-Target` header and lets
//! the first matching [`FaultRule`] pick at most one fault for it:
//!
//! - [`FaultKind::Reset`]: the connection is reset before moto receives the request;
//! - [`FaultKind::DropResponse`]: moto applies the request, then the connection is reset
//!   before the response reaches the client, as when a network timeout hides a committed write;
//! - [`FaultKind::ServerError`]: HTTP 500 with the service's internal error in its JSON shape;
//! - [`FaultKind::Throttle`]: HTTP 400 with the service's throttling error;
//! - [`FaultKind::Latency`]: the request waits [`FaultConfig::latency`], then is forwarded;
//! - [`FaultKind::FailEntries`] (EventBridge `PutEvents` only): some entries are held back
//!   from moto and come back with an `ErrorCode`, as a partial failure does on AWS.
//!
//! Every other request is forwarded unchanged and moto's response is streamed back.
//!
//! Decisions come from one seeded [`SeededRng`], so the same requests arriving in the same
//! order get the same faults. NOTE: with concurrent clients the arrival order varies between
//! runs, so which request gets which fault varies too; the fault rates do not.

use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

/// Largest request or response head the proxy accepts.
const MAX_HEAD_BYTES: usize = 64 * 1024;

/// Headers the proxy never copies: those that describe one connection, and the body
/// framing, which the proxy sets itself.
const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "upgrade",
    "content-length",
    "transfer-encoding",
];

/// The AWS service of a request, from the prefix of its `X-Amz-Target` header.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Service {
    DynamoDb,
    Sqs,
    EventBridge,
    Other,
}

impl Service {
    pub const ALL: [Service; 4] = [Service::DynamoDb, Service::Sqs, Service::EventBridge, Service::Other];

    /// Maps `DynamoDB_20120810.*`, `AmazonSQS.*` and `AWSEvents.*` to their service.
    pub fn from_target(target: Option<&str>) -> Self {
        match target.and_then(|target| target.split_once('.')).map(|(prefix, _)| prefix) {
            Some("DynamoDB_20120810") => Service::DynamoDb,
            Some("AmazonSQS") => Service::Sqs,
            Some("AWSEvents") => Service::EventBridge,
            _ => Service::Other,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Service::DynamoDb => "dynamodb",
            Service::Sqs => "sqs",
            Service::EventBridge => "eventbridge",
            Service::Other => "other",
        }
    }

    fn index(self) -> usize {
        match self {
            Service::DynamoDb => 0,
            Service::Sqs => 1,
            Service::EventBridge => 2,
            Service::Other => 3,
        }
    }
}

/// One fault the proxy can apply to a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultKind {
    Reset,
    DropResponse,
    ServerError,
    Throttle,
    Latency,
    FailEntries,
}

/// Probability of each fault for one request. The sum must not exceed 1; the rest of the
/// probability forwards the request unchanged.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct FaultRates {
    pub reset: f64,
    pub drop_response: f64,
    pub server_error: f64,
    pub throttle: f64,
    pub latency: f64,
    pub fail_entries: f64,
}

impl FaultRates {
    pub const NONE: FaultRates = FaultRates {
        reset: 0.0,
        drop_response: 0.0,
        server_error: 0.0,
        throttle: 0.0,
        latency: 0.0,
        fail_entries: 0.0,
    };

    fn table(&self) -> [(f64, FaultKind); 6] {
        [
            (self.reset, FaultKind::Reset),
            (self.drop_response, FaultKind::DropResponse),
            (self.server_error, FaultKind::ServerError),
            (self.throttle, FaultKind::Throttle),
            (self.latency, FaultKind::Latency),
            (self.fail_entries, FaultKind::FailEntries),
        ]
    }

    pub fn total(&self) -> f64 {
        self.table().iter().map(|(rate, _)| rate).sum()
    }

    /// Maps a uniform draw in `[0, 1)` to a fault, or `None` to forward unchanged.
    fn pick(&self, draw: f64) -> Option<FaultKind> {
        let mut upper = 0.0;
        for (rate, kind) in self.table() {
            upper += rate;
            if draw < upper {
                return Some(kind);
            }
        }
        None
    }
}

/// Which requests a set of [`FaultRates`] applies to.
#[derive(Clone, Debug, PartialEq)]
pub struct FaultRule {
    pub service: Service,
    /// The operation after the dot in `X-Amz-Target`, such as `UpdateItem`; `None` matches all.
    pub operation: Option<String>,
    /// A string the request body must contain, such as a table name; `None` matches all.
    pub body_contains: Option<String>,
    pub rates: FaultRates,
    /// The rule stops injecting after this many faults; `None` never stops.
    pub max_faults: Option<u64>,
}

impl FaultRule {
    /// Creates a rule for every request to `service`.
    pub fn service(service: Service, rates: FaultRates) -> Self {
        Self { service, operation: None, body_contains: None, rates, max_faults: None }
    }

    pub fn operation(mut self, operation: &str) -> Self {
        self.operation = Some(operation.to_string());
        self
    }

    pub fn body_contains(mut self, text: &str) -> Self {
        self.body_contains = Some(text.to_string());
        self
    }

    pub fn max_faults(mut self, count: u64) -> Self {
        self.max_faults = Some(count);
        self
    }

    fn matches(&self, service: Service, operation: &str, body: &[u8]) -> bool {
        self.service == service
            && self.operation.as_deref().is_none_or(|expected| expected == operation)
            && self.body_contains.as_deref().is_none_or(|text| contains(body, text.as_bytes()))
    }
}

/// The faults the proxy injects. The first rule that matches a request decides its fault.
#[derive(Clone, Debug, PartialEq)]
pub struct FaultConfig {
    pub seed: u64,
    pub rules: Vec<FaultRule>,
    /// How long a [`FaultKind::Latency`] fault delays the request before forwarding it.
    pub latency: Duration,
    /// Share of the entries of a `PutEvents` call that a [`FaultKind::FailEntries`] fault
    /// fails; at least one entry always fails.
    pub entry_failure_rate: f64,
}

impl FaultConfig {
    /// No faults: every request is forwarded.
    pub fn none() -> Self {
        Self::new(0)
    }

    pub fn new(seed: u64) -> Self {
        Self { seed, rules: Vec::new(), latency: Duration::from_millis(200), entry_failure_rate: 0.5 }
    }

    pub fn rule(mut self, rule: FaultRule) -> Self {
        self.rules.push(rule);
        self
    }

    pub fn latency(mut self, latency: Duration) -> Self {
        self.latency = latency;
        self
    }

    fn validate(&self) {
        for rule in &self.rules {
            let total = rule.rates.total();
            assert!(
                (0.0..=1.0 + 1e-9).contains(&total),
                "fault rates of the {} rule add up to {total}; they must be between 0 and 1",
                rule.service.name()
            );
        }
        assert!(
            (0.0..=1.0).contains(&self.entry_failure_rate),
            "entry_failure_rate is {}; it must be between 0 and 1",
            self.entry_failure_rate
        );
    }
}

/// A small deterministic generator (SplitMix64), so every seeded choice of the tests is
/// repeatable without another dependency.
#[derive(Clone, Debug)]
pub struct SeededRng(u64);

impl SeededRng {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Returns a uniform draw in `[0, 1)`.
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Returns a uniform integer in `[0, bound)`; `bound` must be positive.
    pub fn below(&mut self, bound: usize) -> usize {
        assert!(bound > 0, "SeededRng::below needs a positive bound");
        (self.next_u64() % bound as u64) as usize
    }

    /// Returns a uniform integer in `low..=high`.
    pub fn between(&mut self, low: usize, high: usize) -> usize {
        low + self.below(high - low + 1)
    }

    pub fn chance(&mut self, probability: f64) -> bool {
        self.next_f64() < probability
    }

    /// Shuffles `items` in place (Fisher-Yates).
    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for index in (1..items.len()).rev() {
            items.swap(index, self.below(index + 1));
        }
    }
}

/// Request and fault counts of one service.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ServiceStats {
    pub requests: u64,
    /// Requests moto received, including those whose response was then dropped.
    pub forwarded: u64,
    pub resets: u64,
    pub dropped_responses: u64,
    pub server_errors: u64,
    pub throttles: u64,
    pub delays: u64,
    /// `PutEvents` calls that got a response with some failed entries.
    pub partial_failures: u64,
    /// Entries of those calls that failed.
    pub failed_entries: u64,
    /// Requests that got HTTP 502 because moto could not be reached.
    pub upstream_errors: u64,
}

impl ServiceStats {
    /// Faults that make the call fail or partly fail; latency alone does not.
    pub fn failures(&self) -> u64 {
        self.resets + self.dropped_responses + self.server_errors + self.throttles + self.partial_failures
    }

    fn add(&mut self, other: &ServiceStats) {
        self.requests += other.requests;
        self.forwarded += other.forwarded;
        self.resets += other.resets;
        self.dropped_responses += other.dropped_responses;
        self.server_errors += other.server_errors;
        self.throttles += other.throttles;
        self.delays += other.delays;
        self.partial_failures += other.partial_failures;
        self.failed_entries += other.failed_entries;
        self.upstream_errors += other.upstream_errors;
    }
}

impl fmt::Display for ServiceStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} requests, {} forwarded, {} resets, {} dropped responses, {} HTTP 500, {} throttled, {} delayed, \
             {} partial failures ({} entries), {} upstream errors",
            self.requests,
            self.forwarded,
            self.resets,
            self.dropped_responses,
            self.server_errors,
            self.throttles,
            self.delays,
            self.partial_failures,
            self.failed_entries,
            self.upstream_errors
        )
    }
}

/// A snapshot of the proxy's counters per service.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ProxyStats {
    services: [ServiceStats; 4],
}

impl ProxyStats {
    pub fn service(&self, service: Service) -> &ServiceStats {
        &self.services[service.index()]
    }

    /// Returns the counters of every service added up.
    pub fn total(&self) -> ServiceStats {
        let mut total = ServiceStats::default();
        for stats in &self.services {
            total.add(stats);
        }
        total
    }
}

impl fmt::Display for ProxyStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let lines: Vec<String> = Service::ALL
            .iter()
            .filter(|service| self.service(**service).requests > 0)
            .map(|service| format!("{}: {}", service.name(), self.service(*service)))
            .collect();
        write!(f, "{}", lines.join("\n"))
    }
}

struct FaultState {
    config: FaultConfig,
    rng: SeededRng,
    /// Faults injected so far by each rule of `config`, for `max_faults`.
    rule_faults: Vec<u64>,
}

struct Shared {
    upstream: SocketAddr,
    faults: Mutex<FaultState>,
    stats: Mutex<ProxyStats>,
    /// Requests read from a client whose response is not yet sent or dropped.
    in_flight: AtomicUsize,
    /// Requests per `X-Amz-Target` value.
    operations: Mutex<BTreeMap<String, u64>>,
}

/// Counts one request as in flight until it is dropped.
struct InFlight<'a>(&'a AtomicUsize);

impl<'a> InFlight<'a> {
    fn enter(counter: &'a AtomicUsize) -> Self {
        counter.fetch_add(1, Ordering::SeqCst);
        Self(counter)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Shared {
    fn count(&self, service: Service, update: impl FnOnce(&mut ServiceStats)) {
        let mut stats = self.stats.lock().expect("proxy stats lock poisoned");
        update(&mut stats.services[service.index()]);
    }

    fn decide(&self, service: Service, operation: &str, body: &[u8]) -> Option<FaultKind> {
        let mut state = self.faults.lock().expect("fault state lock poisoned");
        let index = state.config.rules.iter().position(|rule| rule.matches(service, operation, body))?;
        let rule = &state.config.rules[index];
        if rule.max_faults.is_some_and(|max| state.rule_faults[index] >= max) {
            return None;
        }
        let rates = rule.rates;
        let draw = state.rng.next_f64();
        let kind = rates.pick(draw)?;
        // Only `PutEvents` has entries to fail; for other operations this draw forwards.
        if kind == FaultKind::FailEntries && !(service == Service::EventBridge && operation == "PutEvents") {
            return None;
        }
        state.rule_faults[index] += 1;
        Some(kind)
    }

    fn latency(&self) -> Duration {
        self.faults.lock().expect("fault state lock poisoned").config.latency
    }

    /// Picks which of `count` entries fail: each with `entry_failure_rate`, at least one.
    fn failed_entries(&self, count: usize) -> Vec<bool> {
        let mut state = self.faults.lock().expect("fault state lock poisoned");
        let rate = state.config.entry_failure_rate;
        let mut failed: Vec<bool> = (0..count).map(|_| state.rng.chance(rate)).collect();
        if count > 0 && !failed.contains(&true) {
            let index = state.rng.below(count);
            failed[index] = true;
        }
        failed
    }
}

/// A running proxy. Dropping it stops accepting connections.
pub struct FaultProxy {
    endpoint: String,
    shared: Arc<Shared>,
    accept_task: tokio::task::JoinHandle<()>,
}

impl FaultProxy {
    /// Starts the proxy on a free port of 127.0.0.1, forwarding to `upstream`
    /// (`http://127.0.0.1:PORT` or `http://localhost:PORT`).
    pub async fn start(upstream: &str, faults: FaultConfig) -> Self {
        faults.validate();
        let upstream = parse_local_endpoint(upstream);
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("the fault proxy binds a port on 127.0.0.1");
        let endpoint = format!("http://{}", listener.local_addr().expect("a bound listener has an address"));
        let shared = Arc::new(Shared {
            upstream,
            faults: Mutex::new(FaultState {
                rng: SeededRng::new(faults.seed),
                rule_faults: vec![0; faults.rules.len()],
                config: faults,
            }),
            stats: Mutex::new(ProxyStats::default()),
            in_flight: AtomicUsize::new(0),
            operations: Mutex::new(BTreeMap::new()),
        });

        let accepting = shared.clone();
        let accept_task = tokio::spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    // Accept errors, such as running out of file descriptors, pass; wait before retrying.
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                };
                let shared = accepting.clone();
                tokio::spawn(async move {
                    // A client that goes away mid-request ends only its own connection.
                    let _ = serve_connection(client, shared).await;
                });
            }
        });
        Self { endpoint, shared, accept_task }
    }

    /// Returns the URL to give the SDK as its endpoint.
    pub fn endpoint(&self) -> String {
        self.endpoint.clone()
    }

    pub fn stats(&self) -> ProxyStats {
        *self.shared.stats.lock().expect("proxy stats lock poisoned")
    }

    /// Requests so far per `X-Amz-Target` value, such as `DynamoDB_20120810.PutItem`.
    pub fn operations(&self) -> BTreeMap<String, u64> {
        self.shared.operations.lock().expect("operation counts lock poisoned").clone()
    }

    /// Returns the requests read and not yet responded to. A client that gave up on a request
    /// (a cancelled future) does not stop it: moto may still be applying it.
    pub fn in_flight(&self) -> usize {
        self.shared.in_flight.load(Ordering::SeqCst)
    }

    /// Waits until no request has been in flight for 20 ms. A caller that abandoned requests
    /// can then rely on moto having finished them, including one written just before the
    /// caller gave up. Panics after `timeout`.
    pub async fn wait_idle(&self, timeout: Duration) {
        const QUIET: Duration = Duration::from_millis(20);
        let deadline = tokio::time::Instant::now() + timeout;
        let mut idle_since = None;
        loop {
            let now = tokio::time::Instant::now();
            if self.in_flight() > 0 {
                idle_since = None;
            } else if now - *idle_since.get_or_insert(now) >= QUIET {
                return;
            }
            assert!(
                now < deadline,
                "{} requests still in flight through the fault proxy after {timeout:?}",
                self.in_flight()
            );
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    /// Replaces the faults from the next request on, restarting the generator from the new seed.
    pub fn set_faults(&self, faults: FaultConfig) {
        faults.validate();
        let mut state = self.shared.faults.lock().expect("fault state lock poisoned");
        state.rng = SeededRng::new(faults.seed);
        state.rule_faults = vec![0; faults.rules.len()];
        state.config = faults;
    }

    /// Stops injecting faults, so the system can settle.
    pub fn clear_faults(&self) {
        self.set_faults(FaultConfig::none());
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.accept_task.abort();
    }
}

/// Parses `http://127.0.0.1:PORT`; the proxy never forwards anywhere else.
fn parse_local_endpoint(endpoint: &str) -> SocketAddr {
    let authority = endpoint
        .strip_prefix("http://")
        .unwrap_or_else(|| panic!("upstream {endpoint:?} is not a plain http:// URL"))
        .split('/')
        .next()
        .unwrap_or_default();
    let (host, port) =
        authority.rsplit_once(':').unwrap_or_else(|| panic!("upstream {endpoint:?} has no port; pass host:port"));
    assert!(
        host == "127.0.0.1" || host == "localhost",
        "upstream {endpoint:?} is not on 127.0.0.1; the fault proxy forwards only to local servers"
    );
    let port: u16 = port.parse().unwrap_or_else(|_| panic!("upstream {endpoint:?} has an invalid port"));
    SocketAddr::from(([127, 0, 0, 1], port))
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || haystack.windows(needle.len()).any(|window| window == needle)
}

/// A parsed HTTP/1.1 message head: the start line and the headers in order.
struct Head {
    start_line: String,
    headers: Vec<(String, String)>,
}

impl Head {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(key, _)| key.eq_ignore_ascii_case(name)).map(|(_, value)| value.as_str())
    }

    fn has_token(&self, name: &str, token: &str) -> bool {
        self.headers
            .iter()
            .filter(|(key, _)| key.eq_ignore_ascii_case(name))
            .flat_map(|(_, value)| value.split(','))
            .any(|part| part.trim().eq_ignore_ascii_case(token))
    }

    fn is_http10(&self) -> bool {
        self.start_line.starts_with("HTTP/1.0") || self.start_line.ends_with("HTTP/1.0")
    }

    /// Returns whether the sender keeps the connection open after this message.
    fn keep_alive(&self) -> bool {
        if self.has_token("connection", "close") {
            return false;
        }
        !self.is_http10() || self.has_token("connection", "keep-alive")
    }

    fn is_chunked(&self) -> bool {
        self.has_token("transfer-encoding", "chunked")
    }

    fn content_length(&self) -> io::Result<Option<u64>> {
        match self.header("content-length") {
            None => Ok(None),
            Some(value) => value.trim().parse().map(Some).map_err(|_| invalid(format!("bad Content-Length {value:?}"))),
        }
    }

    /// Writes the start line and the end-to-end headers, then `extra` headers.
    fn encode(&self, extra: &[(&str, String)]) -> Vec<u8> {
        let mut bytes = format!("{}\r\n", self.start_line).into_bytes();
        for (name, value) in &self.headers {
            if !HOP_BY_HOP.contains(&name.to_ascii_lowercase().as_str()) {
                bytes.extend_from_slice(format!("{name}: {value}\r\n").as_bytes());
            }
        }
        for (name, value) in extra {
            bytes.extend_from_slice(format!("{name}: {value}\r\n").as_bytes());
        }
        bytes.extend_from_slice(b"\r\n");
        bytes
    }
}

fn invalid(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message)
}

type Reader = BufReader<TcpStream>;

/// Reads one CRLF-terminated line without the line ending; `None` at end of stream.
async fn read_line(reader: &mut Reader, budget: &mut usize) -> io::Result<Option<String>> {
    let mut line = Vec::new();
    let read = (&mut *reader).take(*budget as u64 + 1).read_until(b'\n', &mut line).await?;
    if read == 0 {
        return Ok(None);
    }
    if read > *budget || !line.ends_with(b"\n") {
        return Err(invalid(format!("message head longer than {MAX_HEAD_BYTES} bytes or cut off")));
    }
    *budget -= read;
    while line.last().is_some_and(|byte| *byte == b'\n' || *byte == b'\r') {
        line.pop();
    }
    String::from_utf8(line).map(Some).map_err(|_| invalid("message head is not UTF-8".to_string()))
}

/// Reads a message head; `None` when the peer closed the connection before sending one.
async fn read_head(reader: &mut Reader) -> io::Result<Option<Head>> {
    let mut budget = MAX_HEAD_BYTES;
    let start_line = loop {
        match read_line(reader, &mut budget).await? {
            None => return Ok(None),
            // Empty lines before a request line are allowed and ignored.
            Some(line) if line.is_empty() => continue,
            Some(line) => break line,
        }
    };
    let mut headers = Vec::new();
    loop {
        let line = read_line(reader, &mut budget).await?.ok_or_else(|| invalid("head cut off".to_string()))?;
        if line.is_empty() {
            return Ok(Some(Head { start_line, headers }));
        }
        let (name, value) =
            line.split_once(':').ok_or_else(|| invalid(format!("header line without a colon: {line:?}")))?;
        headers.push((name.trim().to_string(), value.trim().to_string()));
    }
}

/// Reads a chunked body and returns it decoded, trailers dropped.
async fn read_chunked(reader: &mut Reader) -> io::Result<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let mut budget = MAX_HEAD_BYTES;
        let line = read_line(reader, &mut budget).await?.ok_or_else(|| invalid("chunked body cut off".to_string()))?;
        let size_text = line.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_text, 16).map_err(|_| invalid(format!("bad chunk size {line:?}")))?;
        if size == 0 {
            while read_line(reader, &mut budget).await?.is_some_and(|trailer| !trailer.is_empty()) {}
            return Ok(body);
        }
        let start = body.len();
        body.resize(start + size, 0);
        reader.read_exact(&mut body[start..]).await?;
        let mut crlf = [0u8; 2];
        reader.read_exact(&mut crlf).await?;
    }
}

/// Reads a request body framed by `Content-Length` or chunked encoding.
async fn read_request_body(reader: &mut Reader, head: &Head) -> io::Result<Vec<u8>> {
    if head.is_chunked() {
        return read_chunked(reader).await;
    }
    let length = head.content_length()?.unwrap_or(0);
    let mut body = vec![0u8; length as usize];
    reader.read_exact(&mut body).await?;
    Ok(body)
}

/// How the body of a response is delimited.
enum Framing {
    Empty,
    Length(u64),
    Chunked,
    UntilClose,
}

fn response_framing(head: &Head, request_method: &str) -> io::Result<Framing> {
    let status = status_code(head);
    if request_method.eq_ignore_ascii_case("HEAD") || (100..200).contains(&status) || status == 204 || status == 304 {
        return Ok(Framing::Empty);
    }
    if head.is_chunked() {
        return Ok(Framing::Chunked);
    }
    Ok(match head.content_length()? {
        Some(length) => Framing::Length(length),
        None => Framing::UntilClose,
    })
}

fn status_code(head: &Head) -> u16 {
    head.start_line.split_whitespace().nth(1).and_then(|code| code.parse().ok()).unwrap_or(0)
}

/// One request read from the client.
struct Request {
    head: Head,
    body: Vec<u8>,
}

impl Request {
    fn method(&self) -> &str {
        self.head.start_line.split_whitespace().next().unwrap_or("GET")
    }

    /// Encodes the request as forwarded: the same start line and headers, `body` framed by
    /// `Content-Length`, and a persistent upstream connection.
    fn encode_with_body(&self, body: &[u8]) -> Vec<u8> {
        let extra = [("Content-Length", body.len().to_string()), ("Connection", "keep-alive".to_string())];
        let mut bytes = self.head.encode(&extra);
        bytes.extend_from_slice(body);
        bytes
    }
}

/// A kept-alive connection to moto, reopened when moto closes it.
struct Upstream {
    address: SocketAddr,
    connection: Option<Reader>,
}

impl Upstream {
    /// Sends the request and reads the response head. A reused connection that moto closed
    /// in the meantime is replaced once, before any response byte was read.
    async fn send(&mut self, request_bytes: &[u8]) -> io::Result<(&mut Reader, Head)> {
        for attempt in 0..2 {
            let reused = self.connection.is_some();
            if self.connection.is_none() {
                let stream = TcpStream::connect(self.address).await?;
                stream.set_nodelay(true)?;
                self.connection = Some(BufReader::new(stream));
            }
            let connection = self.connection.as_mut().expect("connection was just opened");
            let sent = connection.get_mut().write_all(request_bytes).await;
            let head = match sent {
                Ok(()) => read_response_head(connection).await,
                Err(error) => Err(error),
            };
            match head {
                Ok(Some(head)) => return Ok((self.connection.as_mut().expect("connection is open"), head)),
                Ok(None) | Err(_) if reused && attempt == 0 => self.connection = None,
                Ok(None) => {
                    self.connection = None;
                    return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "moto closed the connection"));
                }
                Err(error) => {
                    self.connection = None;
                    return Err(error);
                }
            }
        }
        unreachable!("the second attempt always returns")
    }
}

/// Reads a response head, skipping interim 1xx responses such as `100 Continue`.
async fn read_response_head(reader: &mut Reader) -> io::Result<Option<Head>> {
    loop {
        let Some(head) = read_head(reader).await? else { return Ok(None) };
        let status = status_code(&head);
        if (100..200).contains(&status) && status != 101 {
            continue;
        }
        return Ok(Some(head));
    }
}

/// Copies exactly `length` body bytes from `from` to `to`.
async fn copy_exact<W: AsyncWrite + Unpin>(from: &mut Reader, to: &mut W, length: u64) -> io::Result<()> {
    let copied = tokio::io::copy(&mut (&mut *from).take(length), to).await?;
    if copied < length {
        return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "moto's response was cut off"));
    }
    Ok(())
}

/// Streams a chunked body through unchanged, chunk by chunk.
async fn copy_chunked<W: AsyncWrite + Unpin>(from: &mut Reader, to: &mut W) -> io::Result<()> {
    loop {
        let mut budget = MAX_HEAD_BYTES;
        let line =
            read_line(from, &mut budget).await?.ok_or_else(|| invalid("chunked response cut off".to_string()))?;
        to.write_all(format!("{line}\r\n").as_bytes()).await?;
        let size_text = line.split(';').next().unwrap_or_default().trim();
        let size = u64::from_str_radix(size_text, 16).map_err(|_| invalid(format!("bad chunk size {line:?}")))?;
        if size == 0 {
            loop {
                let trailer = read_line(from, &mut budget).await?.unwrap_or_default();
                to.write_all(format!("{trailer}\r\n").as_bytes()).await?;
                if trailer.is_empty() {
                    return Ok(());
                }
            }
        }
        copy_exact(from, to, size + 2).await?;
    }
}

/// Reads a whole response body into memory, decoding chunked encoding.
async fn read_response_body(reader: &mut Reader, framing: Framing) -> io::Result<Vec<u8>> {
    match framing {
        Framing::Empty => Ok(Vec::new()),
        Framing::Length(length) => {
            let mut body = vec![0u8; length as usize];
            reader.read_exact(&mut body).await?;
            Ok(body)
        }
        Framing::Chunked => read_chunked(reader).await,
        Framing::UntilClose => {
            let mut body = Vec::new();
            reader.read_to_end(&mut body).await?;
            Ok(body)
        }
    }
}

/// Serves one client connection, request after request, until either side closes it.
async fn serve_connection(client: TcpStream, shared: Arc<Shared>) -> io::Result<()> {
    client.set_nodelay(true)?;
    let mut client = BufReader::new(client);
    let mut upstream = Upstream { address: shared.upstream, connection: None };

    loop {
        let Some(head) = read_head(&mut client).await? else { return Ok(()) };
        let _in_flight = InFlight::enter(&shared.in_flight);
        let body = read_request_body(&mut client, &head).await?;
        let request = Request { head, body };
        let target = request.head.header("x-amz-target");
        let service = Service::from_target(target);
        let operation = target.and_then(|target| target.split_once('.')).map(|(_, operation)| operation).unwrap_or("");
        shared.count(service, |stats| stats.requests += 1);
        *shared
            .operations
            .lock()
            .expect("operation counts lock poisoned")
            .entry(target.unwrap_or("none").to_string())
            .or_default() += 1;

        let fault = shared.decide(service, operation, &request.body);
        let keep_alive = match fault {
            Some(FaultKind::Reset) => {
                shared.count(service, |stats| stats.resets += 1);
                reset(client);
                return Ok(());
            }
            Some(FaultKind::DropResponse) => {
                shared.count(service, |stats| stats.dropped_responses += 1);
                // moto must have applied the request before the client loses the response.
                if let Ok((connection, head)) = upstream.send(&request.encode_with_body(&request.body)).await {
                    shared.count(service, |stats| stats.forwarded += 1);
                    let framing = response_framing(&head, request.method())?;
                    let _ = read_response_body(connection, framing).await;
                }
                reset(client);
                return Ok(());
            }
            Some(kind @ (FaultKind::ServerError | FaultKind::Throttle)) => {
                shared.count(service, |stats| match kind {
                    FaultKind::ServerError => stats.server_errors += 1,
                    _ => stats.throttles += 1,
                });
                let (status, headers, body) = error_response(service, kind);
                write_response(client.get_mut(), status, &headers, body.as_bytes(), request.head.keep_alive()).await?;
                request.head.keep_alive()
            }
            Some(FaultKind::FailEntries) => {
                shared.count(service, |stats| stats.partial_failures += 1);
                fail_entries(&mut client, &mut upstream, &request, &shared).await?
            }
            Some(FaultKind::Latency) => {
                shared.count(service, |stats| stats.delays += 1);
                tokio::time::sleep(shared.latency()).await;
                forward(&mut client, &mut upstream, &request, service, &shared).await?
            }
            None => forward(&mut client, &mut upstream, &request, service, &shared).await?,
        };
        if !keep_alive {
            return Ok(());
        }
    }
}

/// Closes the connection with a TCP reset, without a response.
fn reset(client: Reader) {
    let stream = client.into_inner();
    // SO_LINGER 0 makes the close a reset instead of an orderly FIN, as a crashed peer would.
    let _ = stream.set_zero_linger();
    drop(stream);
}

/// Forwards the request and streams moto's response back. Returns whether the client
/// connection stays open.
async fn forward(
    client: &mut Reader,
    upstream: &mut Upstream,
    request: &Request,
    service: Service,
    shared: &Shared,
) -> io::Result<bool> {
    let client_keep_alive = request.head.keep_alive();
    let (connection, head) = match upstream.send(&request.encode_with_body(&request.body)).await {
        Ok(sent) => sent,
        Err(error) => {
            shared.count(service, |stats| stats.upstream_errors += 1);
            let body = json!({ "message": format!("the fault proxy could not reach moto: {error}") }).to_string();
            write_response(client.get_mut(), 502, &[], body.as_bytes(), false).await?;
            return Ok(false);
        }
    };
    shared.count(service, |stats| stats.forwarded += 1);

    let framing = response_framing(&head, request.method())?;
    let upstream_keep_alive = head.keep_alive() && !matches!(framing, Framing::UntilClose);
    let keep_alive = client_keep_alive && !matches!(framing, Framing::UntilClose);
    let mut extra = vec![("Connection", if keep_alive { "keep-alive" } else { "close" }.to_string())];
    match framing {
        Framing::Length(length) => extra.push(("Content-Length", length.to_string())),
        Framing::Chunked => extra.push(("Transfer-Encoding", "chunked".to_string())),
        Framing::Empty | Framing::UntilClose => {}
    }

    let writer = client.get_mut();
    writer.write_all(&head.encode(&extra)).await?;
    match framing {
        Framing::Empty => {}
        Framing::Length(length) => copy_exact(connection, writer, length).await?,
        Framing::Chunked => copy_chunked(connection, writer).await?,
        Framing::UntilClose => {
            tokio::io::copy(connection, writer).await?;
        }
    }
    writer.flush().await?;
    if !upstream_keep_alive {
        upstream.connection = None;
    }
    Ok(keep_alive)
}

/// Responds to a `PutEvents` call with some entries failed: the failed entries never reach
/// moto, the rest are forwarded, and the response lists results in request order.
async fn fail_entries(
    client: &mut Reader,
    upstream: &mut Upstream,
    request: &Request,
    shared: &Shared,
) -> io::Result<bool> {
    let keep_alive = request.head.keep_alive();
    let Ok(mut call) = serde_json::from_slice::<Value>(&request.body) else {
        return forward(client, upstream, request, Service::EventBridge, shared).await;
    };
    let entries = call.get("Entries").and_then(Value::as_array).cloned().unwrap_or_default();
    let failed = shared.failed_entries(entries.len());
    let kept: Vec<Value> =
        entries.iter().zip(&failed).filter(|(_, failed)| !**failed).map(|(entry, _)| entry.clone()).collect();
    let injected = failed.iter().filter(|failed| **failed).count() as u64;
    shared.count(Service::EventBridge, |stats| stats.failed_entries += injected);

    let mut accepted = Vec::new();
    let mut moto_failures = 0;
    if !kept.is_empty() {
        call["Entries"] = Value::Array(kept);
        let body = serde_json::to_vec(&call).expect("JSON values serialize");
        let (connection, head) = match upstream.send(&request.encode_with_body(&body)).await {
            Ok(sent) => sent,
            Err(error) => {
                shared.count(Service::EventBridge, |stats| stats.upstream_errors += 1);
                let body = json!({ "message": format!("the fault proxy could not reach moto: {error}") }).to_string();
                write_response(client.get_mut(), 502, &[], body.as_bytes(), false).await?;
                return Ok(false);
            }
        };
        shared.count(Service::EventBridge, |stats| stats.forwarded += 1);
        let framing = response_framing(&head, request.method())?;
        let reusable = head.keep_alive() && !matches!(framing, Framing::UntilClose);
        let moto_body = read_response_body(connection, framing).await?;
        if !reusable {
            upstream.connection = None;
        }
        let status = status_code(&head);
        let parsed: Option<Value> = serde_json::from_slice(&moto_body).ok();
        let Some(results) = parsed.as_ref().and_then(|value| value.get("Entries")).and_then(Value::as_array) else {
            // moto failed the whole call, so its response goes to the client as it is.
            write_response(client.get_mut(), status, &[], &moto_body, keep_alive).await?;
            return Ok(keep_alive);
        };
        moto_failures = parsed.as_ref().and_then(|value| value["FailedEntryCount"].as_u64()).unwrap_or(0);
        accepted = results.clone();
    }

    let mut accepted = accepted.into_iter();
    let results: Vec<Value> = failed
        .iter()
        .map(|failed| match failed {
            true => {
                json!({ "ErrorCode": "InternalFailure", "ErrorMessage": "entry failed (injected by the fault proxy)" })
            }
            false => accepted.next().unwrap_or_else(|| json!({ "ErrorCode": "InternalFailure" })),
        })
        .collect();
    let merged = json!({ "FailedEntryCount": injected + moto_failures, "Entries": results }).to_string();
    let headers = [("Content-Type", "application/x-amz-json-1.1".to_string())];
    write_response(client.get_mut(), 200, &headers, merged.as_bytes(), keep_alive).await?;
    Ok(keep_alive)
}

/// Builds the status, headers and JSON body of an injected 500 or throttling error, in the
/// error shape of `service`'s JSON protocol.
fn error_response(service: Service, kind: FaultKind) -> (u16, Vec<(&'static str, String)>, String) {
    let throttled = kind == FaultKind::Throttle;
    let (status, code, content_type, query_error) = match (service, throttled) {
        (Service::DynamoDb, false) => {
            (500, "com.amazonaws.dynamodb.v20120810#InternalServerError", "application/x-amz-json-1.0", None)
        }
        (Service::DynamoDb, true) => (
            400,
            "com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException",
            "application/x-amz-json-1.0",
            None,
        ),
        (Service::Sqs, false) => {
            (500, "com.amazonaws.sqs#InternalFailure", "application/x-amz-json-1.0", Some("InternalFailure;Receiver"))
        }
        (Service::Sqs, true) => {
            (400, "com.amazonaws.sqs#RequestThrottled", "application/x-amz-json-1.0", Some("RequestThrottled;Sender"))
        }
        (Service::EventBridge | Service::Other, false) => {
            (500, "InternalException", "application/x-amz-json-1.1", None)
        }
        (Service::EventBridge | Service::Other, true) => {
            (400, "ThrottlingException", "application/x-amz-json-1.1", None)
        }
    };
    let message = if throttled {
        "Rate exceeded (injected by the fault proxy)"
    } else {
        "Internal error (injected by the fault proxy)"
    };
    let mut headers = vec![("Content-Type", content_type.to_string()), ("x-amzn-RequestId", "fault-proxy".to_string())];
    if let Some(query_error) = query_error {
        headers.push(("x-amzn-query-error", query_error.to_string()));
    }
    (status, headers, json!({ "__type": code, "message": message }).to_string())
}

async fn write_response(
    writer: &mut TcpStream,
    status: u16,
    headers: &[(&str, String)],
    body: &[u8],
    keep_alive: bool,
) -> io::Result<()> {
    let reason = match status {
        200 => "OK",
        400 => "Bad Request",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        _ => "Status",
    };
    let mut bytes = format!("HTTP/1.1 {status} {reason}\r\n").into_bytes();
    for (name, value) in headers {
        bytes.extend_from_slice(format!("{name}: {value}\r\n").as_bytes());
    }
    if !headers.iter().any(|(name, _)| name.eq_ignore_ascii_case("content-type")) {
        bytes.extend_from_slice(b"Content-Type: application/json\r\n");
    }
    let connection = if keep_alive { "keep-alive" } else { "close" };
    bytes.extend_from_slice(format!("Content-Length: {}\r\nConnection: {connection}\r\n\r\n", body.len()).as_bytes());
    bytes.extend_from_slice(body);
    writer.write_all(&bytes).await?;
    writer.flush().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn target_prefix_picks_service() {
        assert_eq!(Service::from_target(Some("DynamoDB_20120810.PutItem")), Service::DynamoDb);
        assert_eq!(Service::from_target(Some("AmazonSQS.SendMessageBatch")), Service::Sqs);
        assert_eq!(Service::from_target(Some("AWSEvents.PutEvents")), Service::EventBridge);
        assert_eq!(Service::from_target(None), Service::Other);
    }

    #[test]
    fn rates_pick_each_kind_in_its_band() {
        let rates = FaultRates { reset: 0.1, server_error: 0.2, ..FaultRates::NONE };
        assert_eq!(rates.pick(0.05), Some(FaultKind::Reset));
        assert_eq!(rates.pick(0.25), Some(FaultKind::ServerError));
        assert_eq!(rates.pick(0.35), None);
    }

    #[test]
    fn seeded_rng_repeats() {
        let (mut first, mut second) = (SeededRng::new(7), SeededRng::new(7));
        let drawn: Vec<u64> = (0..4).map(|_| first.next_u64()).collect();
        let again: Vec<u64> = (0..4).map(|_| second.next_u64()).collect();
        assert_eq!(drawn, again);
    }

    #[test]
    fn local_endpoint_parses() {
        assert_eq!(parse_local_endpoint("http://127.0.0.1:5000"), SocketAddr::from(([127, 0, 0, 1], 5000)));
        assert_eq!(parse_local_endpoint("http://localhost:81/"), SocketAddr::from(([127, 0, 0, 1], 81)));
    }

    #[test]
    #[should_panic(expected = "not on 127.0.0.1")]
    fn remote_endpoint_rejected() {
        parse_local_endpoint("http://169.254.169.254:80");
    }
}
