//! Gmail API: mailboxes, history, messages, profile and watch.

use super::{percent_decode, Incoming, ProviderState, Query, Reply};
use axum::http::{Method, StatusCode};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashSet};

/// History id of a new Gmail mailbox.
pub const INITIAL_HISTORY_ID: u64 = 1000;

/// Increment of a mailbox's history id per change. Real history ids grow with gaps, so a
/// client that expects `previous + 1` fails against this server as it would against Gmail.
pub const HISTORY_ID_STEP: u64 = 7;

/// Default and maximum `maxResults` of Gmail's `history.list` and `messages.list`.
const GMAIL_DEFAULT_PAGE_SIZE: usize = 100;
const GMAIL_MAX_PAGE_SIZE: usize = 500;

/// One Gmail mailbox.
#[derive(Debug, Clone)]
pub struct GmailMailbox {
    pub email: String,
    /// Current history id, which `profile`, `history.list` and `watch` return.
    pub history_id: u64,
    /// History records in the `history.list` format, oldest first.
    pub history: Vec<Value>,
    /// Messages by id in the `messages.get` format for `format=full`.
    pub messages: BTreeMap<String, Value>,
    /// Smallest `startHistoryId` that `history.list` accepts. Smaller ones get 404, as
    /// Gmail returns when the history has been purged.
    pub oldest_history_id: u64,
    /// Maximum records per `history.list` page, applied on top of `maxResults`.
    pub history_page_size: usize,
    /// Makes `watch` fail with 403, as it does when Gmail may not publish to the topic.
    pub watch_forbidden: bool,
    /// Number of successful `watch` calls.
    pub watch_count: usize,
    /// Body of the last successful `watch` call.
    pub last_watch_request: Option<Value>,
    /// Number of `stop` calls.
    pub stop_count: usize,
}

impl GmailMailbox {
    fn new(email: &str) -> Self {
        Self {
            email: email.to_string(),
            history_id: INITIAL_HISTORY_ID,
            history: Vec::new(),
            messages: BTreeMap::new(),
            oldest_history_id: 1,
            history_page_size: GMAIL_DEFAULT_PAGE_SIZE,
            watch_forbidden: false,
            watch_count: 0,
            last_watch_request: None,
            stop_count: 0,
        }
    }

    /// Advances the history id by [`HISTORY_ID_STEP`] and returns the new value.
    fn next_history_id(&mut self) -> u64 {
        self.history_id += HISTORY_ID_STEP;
        self.history_id
    }

    fn message_mut(&mut self, id: &str) -> &mut Value {
        let email = self.email.clone();
        self.messages.get_mut(id).unwrap_or_else(|| panic!("mailbox {email} has no message {id}"))
    }
}

/// An access token that Google's token endpoint issued, or that a test registered.
#[derive(Debug, Clone)]
pub struct AccessTokenGrant {
    pub email: String,
    /// False once the token expired or its refresh token was revoked.
    pub valid: bool,
    /// Refresh token the access token belongs to, if any.
    pub refresh_token: Option<String>,
    /// Issue order, so the latest token of a mailbox can be found.
    pub sequence: u64,
}

/// A refresh token of one mailbox.
#[derive(Debug, Clone)]
pub struct RefreshTokenGrant {
    pub email: String,
    pub revoked: bool,
}

impl ProviderState {
    /// Creates a mailbox at history id [`INITIAL_HISTORY_ID`] with a valid access token and
    /// refresh token.
    pub fn add_gmail_mailbox(&mut self, email: &str, access_token: &str, refresh_token: &str) {
        self.gmail.insert(email.to_string(), GmailMailbox::new(email));
        self.refresh_tokens
            .insert(refresh_token.to_string(), RefreshTokenGrant { email: email.to_string(), revoked: false });
        self.register_access_token(email, access_token, Some(refresh_token));
    }

    /// Returns the mailbox of `email`, panicking when there is none.
    pub fn gmail_mailbox(&self, email: &str) -> &GmailMailbox {
        self.gmail.get(email).unwrap_or_else(|| panic!("no Gmail mailbox {email}: call add_gmail_mailbox first"))
    }

    /// Returns the mailbox of `email` for changes, panicking when there is none.
    pub fn gmail_mailbox_mut(&mut self, email: &str) -> &mut GmailMailbox {
        self.gmail.get_mut(email).unwrap_or_else(|| panic!("no Gmail mailbox {email}: call add_gmail_mailbox first"))
    }

    /// Inserts a message that starts its own thread, appends a `messagesAdded` record and
    /// returns the new history id.
    pub fn gmail_add_message(&mut self, email: &str, id: &str, label_ids: &[&str]) -> u64 {
        self.gmail_add_message_in_thread(email, id, id, label_ids)
    }

    /// Inserts a message into thread `thread_id`, appends a `messagesAdded` record and
    /// returns the new history id.
    pub fn gmail_add_message_in_thread(&mut self, email: &str, id: &str, thread_id: &str, label_ids: &[&str]) -> u64 {
        let mailbox = self.gmail_mailbox_mut(email);
        assert!(!mailbox.messages.contains_key(id), "mailbox {email} already has a message {id}");

        let history_id = mailbox.next_history_id();
        let message = gmail_message(email, id, thread_id, label_ids, history_id, chrono::Utc::now());
        mailbox.history.push(json!({
            "id": history_id.to_string(),
            "messages": [{"id": id, "threadId": thread_id}],
            "messagesAdded": [{"message": {"id": id, "threadId": thread_id, "labelIds": label_ids}}],
        }));
        mailbox.messages.insert(id.to_string(), message);
        history_id
    }

    /// Removes a message, so `messages.get` returns 404, appends a `messagesDeleted` record
    /// and returns the new history id.
    pub fn gmail_delete_message(&mut self, email: &str, id: &str) -> u64 {
        let mailbox = self.gmail_mailbox_mut(email);
        let message = mailbox.messages.remove(id).unwrap_or_else(|| panic!("mailbox {email} has no message {id}"));

        let history_id = mailbox.next_history_id();
        let summary = json!({"id": id, "threadId": message["threadId"], "labelIds": message["labelIds"]});
        mailbox.history.push(json!({
            "id": history_id.to_string(),
            "messages": [{"id": id, "threadId": message["threadId"]}],
            "messagesDeleted": [{"message": summary}],
        }));
        history_id
    }

    /// Adds labels to a message, appends a `labelsAdded` record and returns the new history id.
    pub fn gmail_add_labels(&mut self, email: &str, id: &str, labels: &[&str]) -> u64 {
        self.change_labels(email, id, labels, "labelsAdded")
    }

    /// Removes labels from a message, appends a `labelsRemoved` record and returns the new history id.
    pub fn gmail_remove_labels(&mut self, email: &str, id: &str, labels: &[&str]) -> u64 {
        self.change_labels(email, id, labels, "labelsRemoved")
    }

    fn change_labels(&mut self, email: &str, id: &str, labels: &[&str], record_key: &str) -> u64 {
        let mailbox = self.gmail_mailbox_mut(email);
        let history_id = mailbox.next_history_id();
        let message = mailbox.message_mut(id);

        let mut current: Vec<String> = message["labelIds"]
            .as_array()
            .map(|values| values.iter().filter_map(|value| value.as_str().map(str::to_string)).collect())
            .unwrap_or_default();
        if record_key == "labelsAdded" {
            for label in labels {
                if !current.iter().any(|existing| existing == label) {
                    current.push(label.to_string());
                }
            }
        } else {
            current.retain(|existing| !labels.contains(&existing.as_str()));
        }
        message["labelIds"] = json!(current);
        message["historyId"] = json!(history_id.to_string());

        let thread_id = message["threadId"].clone();
        let summary = json!({"id": id, "threadId": thread_id, "labelIds": current});
        mailbox.history.push(json!({
            "id": history_id.to_string(),
            "messages": [{"id": id, "threadId": thread_id}],
            record_key: [{"message": summary, "labelIds": labels}],
        }));
        history_id
    }

    /// Makes `history.list` return 404 for every `startHistoryId` below `history_id`.
    pub fn gmail_expire_history_before(&mut self, email: &str, history_id: u64) {
        self.gmail_mailbox_mut(email).oldest_history_id = history_id;
    }

    /// Registers another valid access token for a mailbox.
    pub fn gmail_add_access_token(&mut self, email: &str, access_token: &str) {
        self.register_access_token(email, access_token, None);
    }

    /// Marks an access token expired, so Gmail calls with it get 401.
    pub fn gmail_expire_access_token(&mut self, access_token: &str) {
        let grant =
            self.access_tokens.get_mut(access_token).unwrap_or_else(|| panic!("unknown access token {access_token:?}"));
        grant.valid = false;
    }

    /// Revokes a refresh token, so `/token` returns `invalid_grant` for it. Every access token
    /// issued from it stops working too, as when a user removes the app from their Google
    /// account, so Gmail calls with them get 401.
    pub fn gmail_revoke_refresh_token(&mut self, refresh_token: &str) {
        let grant = self
            .refresh_tokens
            .get_mut(refresh_token)
            .unwrap_or_else(|| panic!("unknown refresh token {refresh_token:?}"));
        grant.revoked = true;
        for access in self.access_tokens.values_mut() {
            if access.refresh_token.as_deref() == Some(refresh_token) {
                access.valid = false;
            }
        }
    }

    /// Returns the access token of `email` that was issued or registered last.
    pub fn gmail_latest_access_token(&self, email: &str) -> Option<String> {
        self.access_tokens
            .iter()
            .filter(|(_, grant)| grant.email == email)
            .max_by_key(|(_, grant)| grant.sequence)
            .map(|(token, _)| token.clone())
    }

    fn register_access_token(&mut self, email: &str, access_token: &str, refresh_token: Option<&str>) {
        self.issued_tokens += 1;
        let grant = AccessTokenGrant {
            email: email.to_string(),
            valid: true,
            refresh_token: refresh_token.map(str::to_string),
            sequence: self.issued_tokens,
        };
        self.access_tokens.insert(access_token.to_string(), grant);
    }

    /// Issues a new access token for `refresh_token`, unique within this process.
    pub(super) fn issue_access_token(&mut self, email: &str, refresh_token: &str) -> String {
        let mut hasher = Sha256::new();
        hasher.update(self.issued_tokens.to_be_bytes());
        hasher.update(refresh_token.as_bytes());
        hasher.update(chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default().to_be_bytes());
        let token = format!("ya29.test-{}", &hex::encode(hasher.finalize())[..40]);
        self.register_access_token(email, &token, Some(refresh_token));
        token
    }
}

/// Builds a message in the `messages.get` format for `format=full`.
fn gmail_message(
    email: &str,
    id: &str,
    thread_id: &str,
    label_ids: &[&str],
    history_id: u64,
    date: chrono::DateTime<chrono::Utc>,
) -> Value {
    let subject = format!("Test message {id}");
    let body = format!("Body of test message {id}.");
    let headers = json!([
        {"name": "From", "value": "Test Sender <sender@example.com>"},
        {"name": "To", "value": email},
        {"name": "Subject", "value": subject},
        {"name": "Date", "value": date.to_rfc2822()},
        {"name": "Message-ID", "value": format!("<{id}@mail.example.com>")},
    ]);
    let header_bytes: usize = headers
        .as_array()
        .into_iter()
        .flatten()
        .map(|header| header["name"].as_str().unwrap_or("").len() + header["value"].as_str().unwrap_or("").len() + 4)
        .sum();

    json!({
        "id": id,
        "threadId": thread_id,
        "labelIds": label_ids,
        "snippet": body,
        "historyId": history_id.to_string(),
        "internalDate": date.timestamp_millis().to_string(),
        "sizeEstimate": header_bytes + body.len() + 2,
        "payload": {
            "partId": "",
            "mimeType": "text/plain",
            "filename": "",
            "headers": headers,
            "body": {"size": body.len(), "data": URL_SAFE_NO_PAD.encode(body.as_bytes())},
        },
    })
}

fn google_error(status: StatusCode, message: &str, reason: &str, status_name: &str) -> Reply {
    Reply::json(
        status,
        json!({"error": {
            "code": status.as_u16(),
            "message": message,
            "errors": [{"message": message, "domain": "global", "reason": reason}],
            "status": status_name,
        }}),
    )
}

fn gmail_unauthenticated() -> Reply {
    Reply::json(
        StatusCode::UNAUTHORIZED,
        json!({"error": {
            "code": 401,
            "message": "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential.",
            "errors": [{
                "message": "Invalid Credentials",
                "domain": "global",
                "reason": "authError",
                "location": "Authorization",
                "locationType": "header",
            }],
            "status": "UNAUTHENTICATED",
        }}),
    )
}

fn gmail_login_required() -> Reply {
    Reply::json(
        StatusCode::UNAUTHORIZED,
        json!({"error": {
            "code": 401,
            "message": "Request is missing required authentication credential. Expected OAuth 2 access token, login cookie or other valid authentication credential.",
            "errors": [{
                "message": "Login Required.",
                "domain": "global",
                "reason": "required",
                "location": "Authorization",
                "locationType": "header",
            }],
            "status": "UNAUTHENTICATED",
        }}),
    )
}

fn gmail_not_found() -> Reply {
    google_error(StatusCode::NOT_FOUND, "Requested entity was not found.", "notFound", "NOT_FOUND")
}

fn gmail_invalid_argument(message: &str) -> Reply {
    google_error(StatusCode::BAD_REQUEST, message, "invalidArgument", "INVALID_ARGUMENT")
}

/// Builds the Google API error body that goes with `status`.
pub(super) fn status_error(status: StatusCode) -> Reply {
    match status.as_u16() {
        400 => google_error(status, "Bad Request", "badRequest", "INVALID_ARGUMENT"),
        401 => gmail_unauthenticated(),
        403 => google_error(status, "The caller does not have permission", "forbidden", "PERMISSION_DENIED"),
        404 => gmail_not_found(),
        429 => Reply::json(
            status,
            json!({"error": {
                "code": 429,
                "message": "User-rate limit exceeded.",
                "errors": [{"message": "User-rate limit exceeded.", "domain": "usageLimits", "reason": "rateLimitExceeded"}],
                "status": "RESOURCE_EXHAUSTED",
            }}),
        ),
        500 => google_error(status, "Internal error encountered.", "backendError", "INTERNAL"),
        502 | 503 => google_error(status, "The service is currently unavailable.", "backendError", "UNAVAILABLE"),
        504 => google_error(status, "The request timed out.", "backendError", "DEADLINE_EXCEEDED"),
        _ => {
            let message = status.canonical_reason().unwrap_or("Unknown error");
            google_error(status, message, "unknown", "UNKNOWN")
        }
    }
}

/// Returns the email of the mailbox that the bearer token belongs to, or the 401 response.
fn authorize_gmail(state: &ProviderState, incoming: &Incoming) -> Result<String, Reply> {
    let Some(token) = incoming.bearer_token() else {
        return Err(gmail_login_required());
    };
    match state.access_tokens.get(token) {
        Some(grant) if grant.valid => Ok(grant.email.clone()),
        _ => Err(gmail_unauthenticated()),
    }
}

pub(super) fn handle(state: &mut ProviderState, incoming: &Incoming) -> Reply {
    let email = match authorize_gmail(state, incoming) {
        Ok(email) => email,
        Err(reply) => return reply,
    };
    let Some(rest) = incoming.path.strip_prefix("/gmail/v1/users/") else {
        return gmail_not_found();
    };
    let segments: Vec<String> = rest.split('/').map(percent_decode).collect();
    let Some(user_id) = segments.first() else {
        return gmail_not_found();
    };
    if user_id != "me" && !user_id.eq_ignore_ascii_case(&email) {
        let message = format!("Delegation denied for {user_id}");
        return google_error(StatusCode::FORBIDDEN, &message, "forbidden", "PERMISSION_DENIED");
    }
    let Some(mailbox) = state.gmail.get_mut(&email) else {
        return google_error(
            StatusCode::BAD_REQUEST,
            "Mail service not enabled",
            "failedPrecondition",
            "FAILED_PRECONDITION",
        );
    };

    let resource: Vec<&str> = segments[1..].iter().map(String::as_str).collect();
    match (&incoming.method, resource.as_slice()) {
        (&Method::GET, ["history"]) => gmail_history(mailbox, &incoming.query),
        (&Method::GET, ["messages"]) => gmail_list_messages(mailbox, &incoming.query),
        (&Method::GET, ["messages", id]) => gmail_get_message(mailbox, id, &incoming.query),
        (&Method::GET, ["profile"]) => gmail_profile(mailbox),
        (&Method::POST, ["watch"]) => gmail_watch(mailbox, &incoming.body),
        (&Method::POST, ["stop"]) => {
            mailbox.stop_count += 1;
            Reply::empty(StatusCode::NO_CONTENT)
        }
        _ => gmail_not_found(),
    }
}

/// Parses `maxResults`, applying Gmail's default and maximum.
fn gmail_max_results(query: &Query) -> Result<usize, Reply> {
    match query.get("maxResults") {
        None => Ok(GMAIL_DEFAULT_PAGE_SIZE),
        Some(text) => match text.parse::<usize>() {
            Ok(0) | Err(_) => Err(gmail_invalid_argument(&format!("Invalid value for maxResults: {text}"))),
            Ok(value) => Ok(value.min(GMAIL_MAX_PAGE_SIZE)),
        },
    }
}

/// Encodes a page token that only this server understands, bound to a query `scope`.
fn encode_page_token(scope: &str, offset: usize) -> String {
    URL_SAFE_NO_PAD.encode(format!("{scope}|{offset}"))
}

/// Decodes a page token of `encode_page_token`, or returns `None` when it belongs to another query.
fn decode_page_token(token: &str, scope: &str) -> Option<usize> {
    let text = String::from_utf8(URL_SAFE_NO_PAD.decode(token).ok()?).ok()?;
    let (token_scope, offset) = text.rsplit_once('|')?;
    (token_scope == scope).then_some(())?;
    offset.parse().ok()
}

/// Maps a `historyTypes` value to the record key that it selects.
fn history_type_key(history_type: &str) -> Option<&'static str> {
    match history_type {
        "messageAdded" => Some("messagesAdded"),
        "messageDeleted" => Some("messagesDeleted"),
        "labelAdded" => Some("labelsAdded"),
        "labelRemoved" => Some("labelsRemoved"),
        _ => None,
    }
}

/// Returns whether any change in a history record concerns a message with `label`, or adds or removes it.
fn history_record_has_label(record: &Value, label: &str) -> bool {
    let has_label = |labels: &Value| labels.as_array().is_some_and(|labels| labels.iter().any(|value| value == label));
    ["messagesAdded", "messagesDeleted", "labelsAdded", "labelsRemoved"].iter().any(|key| {
        record[*key].as_array().is_some_and(|changes| {
            changes.iter().any(|change| has_label(&change["labelIds"]) || has_label(&change["message"]["labelIds"]))
        })
    })
}

fn gmail_history(mailbox: &GmailMailbox, query: &Query) -> Reply {
    let Some(start) = query.get("startHistoryId").and_then(|text| text.parse::<u64>().ok()) else {
        return gmail_invalid_argument("Missing/invalid parameter: startHistoryId");
    };
    if start < mailbox.oldest_history_id {
        return gmail_not_found();
    }
    let page_size = match gmail_max_results(query) {
        Ok(max_results) => max_results.min(mailbox.history_page_size.max(1)),
        Err(reply) => return reply,
    };

    // Repeated `historyTypes` parameters are the documented form, but comma-separated values are accepted too.
    let mut type_keys = Vec::new();
    for value in query.all("historyTypes").iter().flat_map(|value| value.split(',')) {
        match history_type_key(value.trim()) {
            Some(key) => type_keys.push(key),
            None => return gmail_invalid_argument(&format!("Invalid value for historyTypes: {value}")),
        }
    }
    let label = query.get("labelId");

    let matching: Vec<Value> = mailbox
        .history
        .iter()
        .filter(|record| record["id"].as_str().and_then(|id| id.parse::<u64>().ok()).is_some_and(|id| id > start))
        .filter(|record| label.is_none_or(|label| history_record_has_label(record, label)))
        .filter_map(|record| select_history_types(record, &type_keys))
        .collect();

    // The token names the query it belongs to, so a token reused with other filters is rejected.
    let scope = format!("history:{start}:{}:{}", label.unwrap_or(""), type_keys.join(","));
    let offset = match query.get("pageToken") {
        None => 0,
        Some(token) => match decode_page_token(token, &scope) {
            Some(offset) => offset,
            None => return gmail_invalid_argument("Invalid pageToken"),
        },
    };

    let page: Vec<Value> = matching.iter().skip(offset).take(page_size).cloned().collect();
    let mut body = json!({"historyId": mailbox.history_id.to_string()});
    if !page.is_empty() {
        body["history"] = json!(page);
    }
    if offset + page.len() < matching.len() {
        body["nextPageToken"] = json!(encode_page_token(&scope, offset + page.len()));
    }
    Reply::json(StatusCode::OK, body)
}

/// Keeps only the changes of `type_keys` in a record, or drops it when it has none of them.
/// An empty `type_keys` keeps every record whole.
fn select_history_types(record: &Value, type_keys: &[&str]) -> Option<Value> {
    if type_keys.is_empty() {
        return Some(record.clone());
    }
    let mut selected = json!({"id": record["id"], "messages": record["messages"]});
    for key in type_keys {
        if let Some(changes) = record.get(*key) {
            selected[*key] = changes.clone();
        }
    }
    let has_change = type_keys.iter().any(|key| selected.get(*key).is_some());
    has_change.then_some(selected)
}

fn gmail_get_message(mailbox: &GmailMailbox, id: &str, query: &Query) -> Reply {
    let Some(message) = mailbox.messages.get(id) else {
        return gmail_not_found();
    };
    let mut message = message.clone();
    match query.get("format").unwrap_or("full") {
        "full" => {}
        "metadata" => {
            let requested_headers: Vec<String> =
                query.all("metadataHeaders").iter().map(|name| name.to_ascii_lowercase()).collect();
            let payload = &mut message["payload"];
            if let Some(object) = payload.as_object_mut() {
                object.remove("body");
            }
            if !requested_headers.is_empty() {
                if let Some(headers) = payload["headers"].as_array_mut() {
                    headers.retain(|header| {
                        header["name"]
                            .as_str()
                            .is_some_and(|name| requested_headers.contains(&name.to_ascii_lowercase()))
                    });
                }
            }
        }
        "minimal" => {
            if let Some(object) = message.as_object_mut() {
                object.remove("payload");
            }
        }
        "raw" => {
            let raw = raw_rfc822(&message);
            if let Some(object) = message.as_object_mut() {
                object.remove("payload");
                object.insert("raw".to_string(), json!(URL_SAFE_NO_PAD.encode(raw)));
            }
        }
        other => return gmail_invalid_argument(&format!("Invalid value for format: {other}")),
    }
    Reply::json(StatusCode::OK, message)
}

/// Builds the RFC 822 text of a stored message for `format=raw`.
fn raw_rfc822(message: &Value) -> String {
    let mut text = String::new();
    for header in message["payload"]["headers"].as_array().into_iter().flatten() {
        text.push_str(&format!(
            "{}: {}\r\n",
            header["name"].as_str().unwrap_or(""),
            header["value"].as_str().unwrap_or("")
        ));
    }
    text.push_str("\r\n");
    let body = message["payload"]["body"]["data"].as_str().unwrap_or("");
    text.push_str(&String::from_utf8_lossy(&URL_SAFE_NO_PAD.decode(body).unwrap_or_default()));
    text
}

/// Returns whether a message matches the `newer_than:` and `older_than:` terms of a Gmail search.
/// NOTE: every other search term is ignored, so `q` only narrows the result by age.
fn gmail_query_matches(message: &Value, search: &str, now_ms: i64) -> bool {
    let internal_date: i64 = message["internalDate"].as_str().and_then(|text| text.parse().ok()).unwrap_or(0);
    search.split_whitespace().all(|term| {
        let (is_newer, age) = match (term.strip_prefix("newer_than:"), term.strip_prefix("older_than:")) {
            (Some(age), _) => (true, age),
            (_, Some(age)) => (false, age),
            _ => return true,
        };
        let Some(age_ms) = gmail_age_ms(age) else {
            return true;
        };
        if is_newer {
            internal_date > now_ms - age_ms
        } else {
            internal_date < now_ms - age_ms
        }
    })
}

/// Parses a Gmail search age such as `2d`, `3m` or `1y`, counting a month as 30 days and a
/// year as 365 days.
fn gmail_age_ms(age: &str) -> Option<i64> {
    const DAY_MS: i64 = 86_400_000;
    let unit = age.chars().last()?;
    let amount: i64 = age[..age.len() - unit.len_utf8()].parse().ok()?;
    let unit_ms = match unit {
        'd' => DAY_MS,
        'm' => 30 * DAY_MS,
        'y' => 365 * DAY_MS,
        _ => return None,
    };
    Some(amount * unit_ms)
}

fn gmail_list_messages(mailbox: &GmailMailbox, query: &Query) -> Reply {
    let page_size = match gmail_max_results(query) {
        Ok(max_results) => max_results,
        Err(reply) => return reply,
    };
    let include_spam_trash = query.get("includeSpamTrash") == Some("true");
    let required_labels = query.all("labelIds");
    let search = query.get("q").unwrap_or("");
    let now_ms = chrono::Utc::now().timestamp_millis();

    let label_list = |message: &Value| -> Vec<String> {
        message["labelIds"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|label| label.as_str().map(str::to_string))
            .collect()
    };
    let mut matching: Vec<&Value> = mailbox
        .messages
        .values()
        .filter(|message| {
            let labels = label_list(message);
            let hidden = labels.iter().any(|label| label == "SPAM" || label == "TRASH");
            (include_spam_trash || !hidden)
                && required_labels.iter().all(|required| labels.iter().any(|label| label == required))
                && gmail_query_matches(message, search, now_ms)
        })
        .collect();

    // Newest first. Messages added in the same millisecond keep their insertion order through the history id.
    let sort_key = |message: &Value| -> (i64, u64) {
        let date = message["internalDate"].as_str().and_then(|text| text.parse().ok()).unwrap_or(0);
        let history = message["historyId"].as_str().and_then(|text| text.parse().ok()).unwrap_or(0);
        (date, history)
    };
    matching.sort_by_key(|message| std::cmp::Reverse(sort_key(message)));

    let scope = format!("messages:{}:{search}:{include_spam_trash}", required_labels.join(","));
    let offset = match query.get("pageToken") {
        None => 0,
        Some(token) => match decode_page_token(token, &scope) {
            Some(offset) => offset,
            None => return gmail_invalid_argument("Invalid pageToken"),
        },
    };

    let page: Vec<Value> = matching
        .iter()
        .skip(offset)
        .take(page_size)
        .map(|message| json!({"id": message["id"], "threadId": message["threadId"]}))
        .collect();
    let mut body = json!({"resultSizeEstimate": matching.len()});
    if !page.is_empty() {
        body["messages"] = json!(page);
    }
    if offset + page.len() < matching.len() {
        body["nextPageToken"] = json!(encode_page_token(&scope, offset + page.len()));
    }
    Reply::json(StatusCode::OK, body)
}

fn gmail_profile(mailbox: &GmailMailbox) -> Reply {
    let threads: HashSet<&str> = mailbox.messages.values().filter_map(|message| message["threadId"].as_str()).collect();
    Reply::json(
        StatusCode::OK,
        json!({
            "emailAddress": mailbox.email,
            "messagesTotal": mailbox.messages.len(),
            "threadsTotal": threads.len(),
            "historyId": mailbox.history_id.to_string(),
        }),
    )
}

/// Returns whether `topic` has the form `projects/{project}/topics/{topic}`.
fn is_pubsub_topic(topic: &str) -> bool {
    let parts: Vec<&str> = topic.split('/').collect();
    matches!(parts.as_slice(), ["projects", project, "topics", name] if !project.is_empty() && !name.is_empty())
}

fn gmail_watch(mailbox: &mut GmailMailbox, body: &[u8]) -> Reply {
    let Ok(request) = serde_json::from_slice::<Value>(body) else {
        return gmail_invalid_argument("Invalid JSON payload received.");
    };
    let topic = request["topicName"].as_str().unwrap_or("");
    if !is_pubsub_topic(topic) {
        return gmail_invalid_argument(&format!(
            "Invalid topicName does not match projects/SOME-PROJECT/topics/*: {topic}"
        ));
    }
    if mailbox.watch_forbidden {
        let message =
            format!("Error sending test message to Cloud PubSub {topic} : User not authorized to perform this action.");
        return google_error(StatusCode::FORBIDDEN, &message, "forbidden", "PERMISSION_DENIED");
    }

    mailbox.watch_count += 1;
    mailbox.last_watch_request = Some(request);
    let expiration = chrono::Utc::now() + chrono::Duration::days(7);
    Reply::json(
        StatusCode::OK,
        json!({"historyId": mailbox.history_id.to_string(), "expiration": expiration.timestamp_millis().to_string()}),
    )
}
