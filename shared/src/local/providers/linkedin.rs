//! LinkedIn REST API: the `organizationalEntityNotifications` criteria finder.

use super::{form_decode, Incoming, ProviderState, Reply};
use axum::http::{Method, StatusCode};
use serde_json::{json, Value};

/// Default `count` of LinkedIn's Rest.li finders.
const LINKEDIN_DEFAULT_COUNT: usize = 10;

impl ProviderState {
    /// Makes `access_token` valid for the LinkedIn REST API.
    pub fn add_linkedin_token(&mut self, access_token: &str) {
        self.linkedin_tokens.insert(access_token.to_string());
    }

    /// Makes a LinkedIn access token invalid, so calls with it get 401.
    pub fn linkedin_revoke_token(&mut self, access_token: &str) {
        self.linkedin_tokens.remove(access_token);
    }

    /// Appends a notification on a post of organization `org_urn`.
    pub fn linkedin_add_notification(
        &mut self,
        org_urn: &str,
        notification_id: u64,
        action: &str,
        last_modified_at_ms: i64,
    ) {
        let notification = json!({
            "notificationId": notification_id,
            "organizationalEntity": org_urn,
            "action": action,
            "sourcePost": format!("urn:li:share:{}", 7_100_000_000_000_000_000u64.saturating_add(notification_id)),
            "lastModifiedAt": last_modified_at_ms,
        });
        self.linkedin_notifications.entry(org_urn.to_string()).or_default().push(notification);
    }
}

fn linkedin_error(status: StatusCode, code: &str, message: &str, service_error_code: Option<u64>) -> Reply {
    let mut body = json!({"status": status.as_u16(), "code": code, "message": message});
    if let Some(service_error_code) = service_error_code {
        body["serviceErrorCode"] = json!(service_error_code);
    }
    Reply::json(status, body)
}

fn linkedin_bad_request(message: &str) -> Reply {
    linkedin_error(StatusCode::BAD_REQUEST, "ILLEGAL_ARGUMENT", message, None)
}

/// Builds LinkedIn's error body that goes with `status`.
pub(super) fn status_error(status: StatusCode) -> Reply {
    match status.as_u16() {
        400 => linkedin_bad_request("Bad Request"),
        401 => linkedin_error(status, "INVALID_ACCESS_TOKEN", "Invalid access token", Some(65600)),
        403 => linkedin_error(status, "ACCESS_DENIED", "Not enough permissions to access this resource.", Some(100)),
        404 => linkedin_error(status, "NOT_FOUND", "No virtual resource found", None),
        429 => linkedin_error(
            status,
            "TOO_MANY_REQUESTS",
            "Resource level throttle limit for calls to this resource is reached.",
            Some(101),
        ),
        503 => linkedin_error(status, "SERVICE_UNAVAILABLE", "Service Unavailable", None),
        504 => linkedin_error(status, "GATEWAY_TIMEOUT", "Gateway Timeout", None),
        _ if status.is_server_error() => linkedin_error(status, "INTERNAL_SERVER_ERROR", "Internal Server Error", None),
        _ => linkedin_error(status, "ILLEGAL_ARGUMENT", status.canonical_reason().unwrap_or("Unknown error"), None),
    }
}

/// Returns whether `version` is a `LinkedIn-Version` value: `YYYYMM`, optionally followed by `.NN`.
fn is_linkedin_version(version: &str) -> bool {
    let (month_version, patch) = match version.split_once('.') {
        Some((month_version, patch)) => (month_version, Some(patch)),
        None => (version, None),
    };
    let digits = |text: &str| !text.is_empty() && text.bytes().all(|byte| byte.is_ascii_digit());
    if month_version.len() != 6 || !digits(month_version) || !patch.is_none_or(digits) {
        return false;
    }
    let month: u32 = month_version[4..].parse().unwrap_or(0);
    (1..=12).contains(&month)
}

/// Checks the token and the versioning headers that every LinkedIn REST call needs.
fn check_linkedin_headers(state: &ProviderState, incoming: &Incoming) -> Result<(), Reply> {
    match incoming.bearer_token() {
        Some(token) if state.linkedin_tokens.contains(token) => {}
        _ => {
            return Err(linkedin_error(
                StatusCode::UNAUTHORIZED,
                "INVALID_ACCESS_TOKEN",
                "Invalid access token",
                Some(65600),
            ))
        }
    }
    match incoming.header("linkedin-version") {
        None => {
            return Err(linkedin_error(
                StatusCode::BAD_REQUEST,
                "VERSION_MISSING",
                "A version must be present. Please specify a version by adding the LinkedIn-Version header.",
                None,
            ))
        }
        Some(version) if !is_linkedin_version(version) => {
            let message = format!("Requested version {version} is not active");
            return Err(linkedin_error(StatusCode::UPGRADE_REQUIRED, "NONEXISTENT_VERSION", &message, None));
        }
        Some(_) => {}
    }
    // NOTE: without this header LinkedIn reads the query as Rest.li protocol 1.0, where `List(...)` and
    // `(start:..,end:..)` are not valid syntax. This server rejects every such request up front instead.
    if incoming.header("x-restli-protocol-version") != Some("2.0.0") {
        return Err(linkedin_bad_request(
            "The X-Restli-Protocol-Version header must be 2.0.0 for Rest.li 2.0 parameters.",
        ));
    }
    Ok(())
}

/// Filters of an `organizationalEntityNotifications` criteria finder request.
struct NotificationCriteria {
    organization: String,
    actions: Option<Vec<String>>,
    source_post: Option<String>,
    /// Inclusive lower bound of `lastModifiedAt`, in epoch milliseconds.
    time_start: Option<i64>,
    /// Exclusive upper bound of `lastModifiedAt`, in epoch milliseconds.
    time_end: Option<i64>,
    start: usize,
    count: usize,
}

/// Rejects a Rest.li 2.0 value whose structural characters arrive percent-encoded. The Rest.li
/// protocol reads `%28` as a literal character, not as the start of a list or record.
fn reject_encoded_restli(name: &str, raw: &str) -> Result<(), Reply> {
    let upper = raw.to_ascii_uppercase();
    if upper.starts_with("%28") || upper.starts_with("LIST%28") {
        let message = format!("Parameter {name} has percent-encoded Rest.li syntax: {raw}. Send ( ) , : unencoded.");
        return Err(linkedin_bad_request(&message));
    }
    Ok(())
}

/// Parses a Rest.li 2.0 list such as `List(COMMENT,SHARE_MENTION)`, decoding each item.
fn parse_restli_list(name: &str, raw: &str) -> Result<Vec<String>, Reply> {
    reject_encoded_restli(name, raw)?;
    let Some(inner) = raw.strip_prefix("List(").and_then(|rest| rest.strip_suffix(')')) else {
        return Err(linkedin_bad_request(&format!("Parameter {name} must be a Rest.li list such as List(A,B): {raw}")));
    };
    Ok(inner.split(',').filter(|item| !item.is_empty()).map(form_decode).collect())
}

/// Parses a Rest.li 2.0 `timeRange=(start:<ms>,end:<ms>)`. Either bound may be absent.
fn parse_time_range(raw: &str) -> Result<(Option<i64>, Option<i64>), Reply> {
    reject_encoded_restli("timeRange", raw)?;
    let invalid = || linkedin_bad_request(&format!("Parameter timeRange must look like (start:<ms>,end:<ms>): {raw}"));
    let inner = raw.strip_prefix('(').and_then(|rest| rest.strip_suffix(')')).ok_or_else(invalid)?;

    let (mut start, mut end) = (None, None);
    for field in inner.split(',').filter(|field| !field.is_empty()) {
        let (key, value) = field.split_once(':').ok_or_else(invalid)?;
        let value: i64 = form_decode(value).parse().map_err(|_| invalid())?;
        match key {
            "start" => start = Some(value),
            "end" => end = Some(value),
            _ => return Err(invalid()),
        }
    }
    Ok((start, end))
}

fn parse_paging_parameter(pairs: &[(String, String)], name: &str, default: usize) -> Result<usize, Reply> {
    match pairs.iter().find(|(key, _)| key == name) {
        None => Ok(default),
        Some((_, raw)) => form_decode(raw)
            .parse()
            .map_err(|_| linkedin_bad_request(&format!("Parameter {name} must be a non-negative integer: {raw}"))),
    }
}

fn parse_notification_criteria(pairs: &[(String, String)]) -> Result<NotificationCriteria, Reply> {
    let raw = |name: &str| pairs.iter().find(|(key, _)| key == name).map(|(_, value)| value.as_str());

    match raw("q") {
        Some("criteria") => {}
        Some(other) => return Err(linkedin_bad_request(&format!("Unsupported finder q={other}; expected q=criteria"))),
        None => return Err(linkedin_bad_request("Missing finder parameter q=criteria")),
    }
    let Some(organization) = raw("organizationalEntity").map(form_decode) else {
        return Err(linkedin_bad_request("Missing required parameter organizationalEntity"));
    };
    if !organization.starts_with("urn:li:organization:") {
        return Err(linkedin_bad_request(&format!("organizationalEntity is not an organization URN: {organization}")));
    }
    let actions = raw("actions").map(|value| parse_restli_list("actions", value)).transpose()?;
    let (time_start, time_end) = match raw("timeRange") {
        Some(value) => parse_time_range(value)?,
        None => (None, None),
    };

    Ok(NotificationCriteria {
        organization,
        actions,
        source_post: raw("sourcePost").map(form_decode),
        time_start,
        time_end,
        start: parse_paging_parameter(pairs, "start", 0)?,
        count: parse_paging_parameter(pairs, "count", LINKEDIN_DEFAULT_COUNT)?,
    })
}

fn notification_matches(notification: &Value, criteria: &NotificationCriteria) -> bool {
    let modified = notification["lastModifiedAt"].as_i64().unwrap_or(0);
    let action = notification["action"].as_str().unwrap_or("");
    criteria.actions.as_ref().is_none_or(|actions| actions.iter().any(|requested| requested == action))
        && criteria.source_post.as_ref().is_none_or(|post| notification["sourcePost"].as_str() == Some(post))
        && criteria.time_start.is_none_or(|start| modified >= start)
        && criteria.time_end.is_none_or(|end| modified < end)
}

/// Builds a paging link to the same finder with `start` and `count` replaced.
fn linkedin_page_link(pairs: &[(String, String)], rel: &str, start: usize, count: usize) -> Value {
    let mut query: Vec<String> = pairs
        .iter()
        .filter(|(key, _)| key != "start" && key != "count")
        .map(|(key, value)| format!("{key}={value}"))
        .collect();
    query.push(format!("start={start}"));
    query.push(format!("count={count}"));
    json!({
        "type": "application/json",
        "rel": rel,
        "href": format!("/rest/organizationalEntityNotifications?{}", query.join("&")),
    })
}

pub(super) fn handle(state: &ProviderState, incoming: &Incoming) -> Reply {
    if let Err(reply) = check_linkedin_headers(state, incoming) {
        return reply;
    }
    if incoming.method != Method::GET || incoming.path != "/rest/organizationalEntityNotifications" {
        return linkedin_error(StatusCode::NOT_FOUND, "NOT_FOUND", "No virtual resource found", None);
    }

    // Rest.li 2.0 values keep ( ) , : unencoded, so the raw query is split here and each
    // value is decoded only where its syntax allows.
    let pairs: Vec<(String, String)> = incoming
        .raw_query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| match pair.split_once('=') {
            Some((key, value)) => (form_decode(key), value.to_string()),
            None => (form_decode(pair), String::new()),
        })
        .collect();
    let criteria = match parse_notification_criteria(&pairs) {
        Ok(criteria) => criteria,
        Err(reply) => return reply,
    };

    // Newest first by lastModifiedAt, then by notificationId for equal times.
    let mut matching: Vec<&Value> = state
        .linkedin_notifications
        .get(&criteria.organization)
        .into_iter()
        .flatten()
        .filter(|notification| notification_matches(notification, &criteria))
        .collect();
    matching.sort_by_key(|notification| {
        std::cmp::Reverse((
            notification["lastModifiedAt"].as_i64().unwrap_or(0),
            notification["notificationId"].as_u64(),
        ))
    });

    let elements: Vec<Value> =
        matching.iter().skip(criteria.start).take(criteria.count).map(|notification| (*notification).clone()).collect();
    let mut links = Vec::new();
    if criteria.start > 0 {
        links.push(linkedin_page_link(&pairs, "prev", criteria.start.saturating_sub(criteria.count), criteria.count));
    }
    if criteria.count > 0 && criteria.start + elements.len() < matching.len() {
        links.push(linkedin_page_link(&pairs, "next", criteria.start + criteria.count, criteria.count));
    }
    Reply::json(
        StatusCode::OK,
        json!({
            "elements": elements,
            "paging": {"count": criteria.count, "start": criteria.start, "links": links},
        }),
    )
}
