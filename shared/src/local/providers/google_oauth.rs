//! Google's OAuth token endpoint for the refresh token grant.

use super::{form_decode, Incoming, ProviderState, Query, Reply};
use axum::http::{Method, StatusCode};
use base64::Engine;
use serde_json::json;

fn oauth_error(status: StatusCode, error: &str, description: &str) -> Reply {
    Reply::json(status, json!({"error": error, "error_description": description}))
}

/// Builds the token endpoint's error body that goes with `status`.
pub(super) fn status_error(status: StatusCode) -> Reply {
    match status.as_u16() {
        400 => oauth_error(status, "invalid_request", "Bad Request"),
        401 => oauth_error(status, "invalid_client", "Unauthorized"),
        429 => oauth_error(status, "rate_limit_exceeded", "Rate Limit Exceeded"),
        _ if status.is_server_error() => oauth_error(status, "internal_failure", "Backend Error"),
        _ => oauth_error(status, "invalid_request", status.canonical_reason().unwrap_or("Unknown error")),
    }
}

/// Returns the client id and secret from HTTP Basic authentication or the form body.
fn oauth_client_credentials(incoming: &Incoming, form: &Query) -> (Option<String>, Option<String>) {
    let basic = incoming
        .header("authorization")
        .and_then(|value| value.strip_prefix("Basic "))
        .and_then(|encoded| base64::engine::general_purpose::STANDARD.decode(encoded.trim()).ok())
        .and_then(|decoded| String::from_utf8(decoded).ok())
        .and_then(|text| text.split_once(':').map(|(id, secret)| (form_decode(id), form_decode(secret))));
    match basic {
        Some((id, secret)) => (Some(id), Some(secret)),
        None => (form.get("client_id").map(str::to_string), form.get("client_secret").map(str::to_string)),
    }
}

pub(super) fn handle(state: &mut ProviderState, incoming: &Incoming) -> Reply {
    if incoming.method != Method::POST {
        return oauth_error(StatusCode::METHOD_NOT_ALLOWED, "invalid_request", "The token endpoint accepts only POST.");
    }
    let form = Query::parse(&String::from_utf8_lossy(&incoming.body));

    let (client_id, client_secret) = oauth_client_credentials(incoming, &form);
    let Some(client_id) = client_id.filter(|id| !id.is_empty()) else {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_request", "Could not determine client ID from request.");
    };
    if let Some((expected_id, expected_secret)) = &state.oauth_client {
        if &client_id != expected_id {
            return oauth_error(StatusCode::UNAUTHORIZED, "invalid_client", "The OAuth client was not found.");
        }
        if client_secret.as_deref() != Some(expected_secret.as_str()) {
            return oauth_error(StatusCode::UNAUTHORIZED, "invalid_client", "Unauthorized");
        }
    }

    // NOTE: only the refresh grant is served. An `authorization_code` request gets `unsupported_grant_type`
    // here, where Google would exchange the code.
    match form.get("grant_type") {
        Some("refresh_token") => {}
        Some(other) => {
            return oauth_error(
                StatusCode::BAD_REQUEST,
                "unsupported_grant_type",
                &format!("Invalid grant_type: {other}"),
            )
        }
        None => return oauth_error(StatusCode::BAD_REQUEST, "unsupported_grant_type", "Invalid grant_type: "),
    }
    let Some(refresh_token) = form.get("refresh_token") else {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_request", "Missing required parameter: refresh_token");
    };
    let email = match state.refresh_tokens.get(refresh_token) {
        Some(grant) if !grant.revoked => grant.email.clone(),
        _ => return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant", "Token has been expired or revoked."),
    };

    let access_token = state.issue_access_token(&email, refresh_token);
    Reply::json(
        StatusCode::OK,
        json!({
            "access_token": access_token,
            "expires_in": 3599,
            "scope": "https://www.googleapis.com/auth/gmail.readonly",
            "token_type": "Bearer",
        }),
    )
}
