//! Meta Graph API for WhatsApp: WABA app subscriptions and phone number nodes.

use super::{percent_decode, Incoming, ProviderState, Query, Reply};
use axum::http::{Method, StatusCode};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::{json, Map, Value};
use std::sync::atomic::{AtomicU64, Ordering};

/// A WhatsApp Business Account and the app subscription on it.
#[derive(Debug, Clone)]
pub struct WhatsAppBusinessAccount {
    pub name: String,
    /// Whether the app receives this WABA's webhooks (`subscribed_apps` is non-empty).
    pub subscribed: bool,
    pub app_id: String,
    pub app_name: String,
    pub phone_number_ids: Vec<String>,
    /// Number of `POST subscribed_apps` calls.
    pub subscribe_count: usize,
}

impl ProviderState {
    /// Adds a phone number with status CONNECTED and quality GREEN to a WABA, creating the WABA
    /// when needed. Sets the WABA's app subscription and makes `access_token` valid for Graph.
    pub fn add_waba(&mut self, waba_id: &str, phone_number_id: &str, access_token: &str, subscribed: bool) {
        let waba = self.wabas.entry(waba_id.to_string()).or_insert_with(|| WhatsAppBusinessAccount {
            name: format!("Test WABA {waba_id}"),
            subscribed,
            app_id: "1234567890123456".to_string(),
            app_name: "commsync".to_string(),
            phone_number_ids: Vec::new(),
            subscribe_count: 0,
        });
        waba.subscribed = subscribed;
        if !waba.phone_number_ids.iter().any(|id| id == phone_number_id) {
            waba.phone_number_ids.push(phone_number_id.to_string());
        }

        let fields = json!({
            "verified_name": "Commsync Test",
            "display_phone_number": "+1 555-010-0000",
            "quality_rating": "GREEN",
            "status": "CONNECTED",
        });
        let Value::Object(fields) = fields else { unreachable!("json! of an object literal is an object") };
        self.phone_numbers.insert(phone_number_id.to_string(), fields);
        self.graph_tokens.insert(access_token.to_string());
    }

    /// Returns whether the app is subscribed to the WABA's webhooks.
    pub fn waba_subscribed(&self, waba_id: &str) -> bool {
        self.wabas.get(waba_id).unwrap_or_else(|| panic!("no WABA {waba_id}: call add_waba first")).subscribed
    }

    /// Sets one field of a phone number node, such as `quality_rating` or `status`.
    pub fn set_phone_number_field(&mut self, phone_number_id: &str, field: &str, value: Value) {
        self.phone_numbers
            .get_mut(phone_number_id)
            .unwrap_or_else(|| panic!("no phone number {phone_number_id}: call add_waba first"))
            .insert(field.to_string(), value);
    }

    /// Makes a Graph access token invalid, so calls with it get 401 with code 190.
    pub fn graph_expire_token(&mut self, access_token: &str) {
        self.graph_tokens.remove(access_token);
    }
}

static FBTRACE_COUNTER: AtomicU64 = AtomicU64::new(1);

/// Returns a new `fbtrace_id` in the shape of Meta's request trace ids.
fn fbtrace_id() -> String {
    format!("AtRaCe{:011X}", FBTRACE_COUNTER.fetch_add(1, Ordering::Relaxed))
}

fn graph_error(status: StatusCode, mut error: Value) -> Reply {
    error["fbtrace_id"] = json!(fbtrace_id());
    Reply::json(status, json!({"error": error}))
}

fn graph_invalid_token() -> Reply {
    graph_error(
        StatusCode::UNAUTHORIZED,
        json!({
            "message": "Error validating access token: Session has expired on Thursday, 03-Dec-26 12:00:00 PST.",
            "type": "OAuthException",
            "code": 190,
            "error_subcode": 463,
        }),
    )
}

fn graph_unsupported_request(method: &Method, node_id: &str) -> Reply {
    let verb = method.as_str().to_ascii_lowercase();
    graph_error(
        StatusCode::BAD_REQUEST,
        json!({
            "message": format!(
                "Unsupported {verb} request. Object with ID '{node_id}' does not exist, cannot be loaded due to missing \
                 permissions, or does not support this operation. Please read the Graph API documentation at \
                 https://developers.facebook.com/docs/graph-api"
            ),
            "type": "GraphMethodException",
            "code": 100,
            "error_subcode": 33,
        }),
    )
}

/// Builds the Graph error body that goes with `status`.
pub(super) fn status_error(status: StatusCode) -> Reply {
    match status.as_u16() {
        401 => graph_invalid_token(),
        429 => graph_error(
            status,
            json!({"message": "(#4) Application request limit reached", "type": "OAuthException", "is_transient": true, "code": 4}),
        ),
        400 => {
            graph_error(status, json!({"message": "(#100) Invalid parameter", "type": "OAuthException", "code": 100}))
        }
        403 => graph_error(
            status,
            json!({"message": "(#10) Application does not have permission for this action", "type": "OAuthException", "code": 10}),
        ),
        _ if status.is_server_error() => graph_error(
            status,
            json!({
                "message": "An unexpected error has occurred. Please retry your request later.",
                "type": "OAuthException",
                "is_transient": true,
                "code": 2,
            }),
        ),
        _ => graph_error(
            status,
            json!({"message": "An unknown error has occurred.", "type": "OAuthException", "is_transient": false, "code": 1}),
        ),
    }
}

/// Splits a Graph path such as `/v21.0/123/subscribed_apps` into `("v21.0", "123/subscribed_apps")`.
pub(super) fn split_version(path: &str) -> Option<(&str, &str)> {
    let trimmed = path.strip_prefix('/')?;
    let (version, rest) = trimmed.split_once('/').unwrap_or((trimmed, ""));
    let (major, minor) = version.strip_prefix('v')?.split_once('.')?;
    let is_number = |text: &str| !text.is_empty() && text.bytes().all(|byte| byte.is_ascii_digit());
    (is_number(major) && is_number(minor)).then_some((version, rest))
}

/// Returns the Graph access token from the `Authorization` header (`Bearer` or `OAuth`) or
/// the `access_token` query parameter.
fn graph_access_token(incoming: &Incoming) -> Option<String> {
    if let Some((scheme, token)) = incoming.header("authorization").and_then(|value| value.split_once(' ')) {
        if scheme.eq_ignore_ascii_case("bearer") || scheme.eq_ignore_ascii_case("oauth") {
            return Some(token.trim().to_string());
        }
    }
    incoming.query.get("access_token").map(str::to_string)
}

/// Returns the names in a Graph `fields` parameter, or `None` when it is absent.
fn graph_fields(query: &Query) -> Option<Vec<String>> {
    let fields = query.get("fields")?;
    Some(fields.split(',').map(|field| field.trim().to_string()).filter(|field| !field.is_empty()).collect())
}

/// Builds a node with `id` and the `fields` requested, or every field when `fields` is absent.
/// NOTE: requested fields that the node lacks are left out, where Graph would return error 100.
fn graph_node(id: &str, stored: &Map<String, Value>, fields: Option<&[String]>) -> Value {
    let mut node = Map::new();
    for (name, value) in stored {
        if fields.is_none_or(|fields| fields.iter().any(|field| field == name)) {
            node.insert(name.clone(), value.clone());
        }
    }
    node.insert("id".to_string(), json!(id));
    Value::Object(node)
}

pub(super) fn handle(state: &mut ProviderState, incoming: &Incoming) -> Reply {
    let Some((_, rest)) = split_version(&incoming.path) else {
        return graph_unsupported_request(&incoming.method, "");
    };
    match graph_access_token(incoming) {
        None => {
            return graph_error(
                StatusCode::BAD_REQUEST,
                json!({
                    "message": "An active access token must be used to query information about the current user.",
                    "type": "OAuthException",
                    "code": 2500,
                }),
            )
        }
        Some(token) if !state.graph_tokens.contains(&token) => return graph_invalid_token(),
        Some(_) => {}
    }

    let segments: Vec<String> = rest.split('/').filter(|segment| !segment.is_empty()).map(percent_decode).collect();
    let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
    let fields = graph_fields(&incoming.query);
    match (&incoming.method, segments.as_slice()) {
        (&Method::GET, [node_id]) => {
            if let Some(stored) = state.phone_numbers.get(*node_id) {
                return Reply::json(StatusCode::OK, graph_node(node_id, stored, fields.as_deref()));
            }
            if let Some(waba) = state.wabas.get(*node_id) {
                let mut stored = Map::new();
                stored.insert("name".to_string(), json!(waba.name));
                return Reply::json(StatusCode::OK, graph_node(node_id, &stored, fields.as_deref()));
            }
            graph_unsupported_request(&incoming.method, node_id)
        }
        (method, [waba_id, "subscribed_apps"]) => match state.wabas.get_mut(*waba_id) {
            Some(waba) => subscribed_apps(waba, method, waba_id),
            None => graph_unsupported_request(method, waba_id),
        },
        (&Method::GET, [waba_id, "phone_numbers"]) => match state.wabas.get(*waba_id) {
            Some(waba) => phone_numbers(state, waba, fields.as_deref()),
            None => graph_unsupported_request(&incoming.method, waba_id),
        },
        (method, segments) => graph_unsupported_request(method, segments.first().copied().unwrap_or("")),
    }
}

/// Serves the `subscribed_apps` edge of a WABA: GET lists the app, POST subscribes it and
/// DELETE unsubscribes it.
fn subscribed_apps(waba: &mut WhatsAppBusinessAccount, method: &Method, waba_id: &str) -> Reply {
    match *method {
        Method::GET => {
            let data = if waba.subscribed {
                json!([{"whatsapp_business_api_data": {
                    "id": waba.app_id,
                    "link": format!("https://www.facebook.com/games/?app_id={}", waba.app_id),
                    "name": waba.app_name,
                }}])
            } else {
                json!([])
            };
            Reply::json(StatusCode::OK, json!({"data": data}))
        }
        Method::POST => {
            waba.subscribed = true;
            waba.subscribe_count += 1;
            Reply::json(StatusCode::OK, json!({"success": true}))
        }
        Method::DELETE => {
            waba.subscribed = false;
            Reply::json(StatusCode::OK, json!({"success": true}))
        }
        _ => graph_unsupported_request(method, waba_id),
    }
}

/// Serves the `phone_numbers` edge of a WABA as one page with cursors.
fn phone_numbers(state: &ProviderState, waba: &WhatsAppBusinessAccount, fields: Option<&[String]>) -> Reply {
    let data: Vec<Value> = waba
        .phone_number_ids
        .iter()
        .filter_map(|id| state.phone_numbers.get(id).map(|stored| graph_node(id, stored, fields)))
        .collect();
    let mut body = json!({"data": data});
    if let (Some(first), Some(last)) = (waba.phone_number_ids.first(), waba.phone_number_ids.last()) {
        let cursors = json!({"before": URL_SAFE_NO_PAD.encode(first), "after": URL_SAFE_NO_PAD.encode(last)});
        body["paging"] = json!({"cursors": cursors});
    }
    Reply::json(StatusCode::OK, body)
}
