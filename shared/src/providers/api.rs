//! What the provider API clients share: one HTTP client with a timeout, and the
//! classification of every failure into what the recovery worker should do about it.

use reqwest::{RequestBuilder, Response, StatusCode};
use serde::de::DeserializeOwned;
use std::time::Duration;
use thiserror::Error;

/// A failed provider API call, classified by what the caller should do next.
#[derive(Debug, Error)]
pub enum ApiError {
    /// Worth retrying later: 429, 5xx, timeouts, refused connections.
    #[error("{provider} {operation} failed temporarily ({status}): {message}")]
    Transient {
        provider: &'static str,
        operation: &'static str,
        status: String,
        message: String,
        retry_after: Option<Duration>,
    },
    /// The credentials are expired or revoked (401, `invalid_grant`): the user must reconnect.
    #[error("{provider} {operation} rejected the credentials: {message}")]
    Unauthorized { provider: &'static str, operation: &'static str, message: String },
    /// The call is not allowed (403): usually configuration, such as a Pub/Sub topic grant.
    #[error("{provider} {operation} is forbidden: {message}")]
    Forbidden { provider: &'static str, operation: &'static str, message: String },
    #[error("{provider} {operation} found nothing: {message}")]
    NotFound { provider: &'static str, operation: &'static str, message: String },
    /// Any other 4xx: retrying the same request will not help.
    #[error("{provider} {operation} rejected the request (HTTP {status}): {message}")]
    Rejected { provider: &'static str, operation: &'static str, status: u16, message: String },
    #[error("{provider} {operation} returned a body commsync cannot read: {message}")]
    Decode { provider: &'static str, operation: &'static str, message: String },
}

impl ApiError {
    pub fn is_transient(&self) -> bool {
        matches!(self, ApiError::Transient { .. })
    }
}

/// Builds the HTTP client every provider uses, with a per-request timeout.
pub fn http_client(timeout: Duration) -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout.min(Duration::from_secs(5)))
        .build()
        .expect("the HTTP client builds with default TLS settings")
}

/// Sends a request and decodes a JSON answer, classifying every failure.
pub async fn send_json<T: DeserializeOwned>(
    request: RequestBuilder,
    provider: &'static str,
    operation: &'static str,
) -> Result<T, ApiError> {
    let response = send(request, provider, operation).await?;
    let bytes = response.bytes().await.map_err(|error| transport_error(provider, operation, &error))?;
    serde_json::from_slice(&bytes).map_err(|error| ApiError::Decode { provider, operation, message: error.to_string() })
}

/// Sends a request and returns the response when its status is a success.
pub async fn send(
    request: RequestBuilder,
    provider: &'static str,
    operation: &'static str,
) -> Result<Response, ApiError> {
    let response = request.send().await.map_err(|error| transport_error(provider, operation, &error))?;
    let status = response.status();
    if status.is_success() {
        return Ok(response);
    }

    let retry_after = response
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.trim().parse::<u64>().ok())
        .map(Duration::from_secs);
    // The provider's error text, cut short; provider error bodies carry no credentials.
    let body = response.text().await.unwrap_or_default();
    let message: String = error_message(&body).chars().take(300).collect();

    Err(match status {
        StatusCode::TOO_MANY_REQUESTS | StatusCode::REQUEST_TIMEOUT => {
            ApiError::Transient { provider, operation, status: status.as_u16().to_string(), message, retry_after }
        }
        status if status.is_server_error() => {
            ApiError::Transient { provider, operation, status: status.as_u16().to_string(), message, retry_after }
        }
        StatusCode::UNAUTHORIZED => ApiError::Unauthorized { provider, operation, message },
        StatusCode::FORBIDDEN => ApiError::Forbidden { provider, operation, message },
        StatusCode::NOT_FOUND => ApiError::NotFound { provider, operation, message },
        _ if body.contains("invalid_grant") => ApiError::Unauthorized { provider, operation, message },
        status => ApiError::Rejected { provider, operation, status: status.as_u16(), message },
    })
}

fn transport_error(provider: &'static str, operation: &'static str, error: &reqwest::Error) -> ApiError {
    let status = if error.is_timeout() {
        "timeout"
    } else if error.is_connect() {
        "connect"
    } else {
        "transport"
    };
    ApiError::Transient {
        provider,
        operation,
        status: status.to_string(),
        message: error.to_string(),
        retry_after: None,
    }
}

/// Pulls the human-readable message out of the error shapes of Google, Meta and LinkedIn.
fn error_message(body: &str) -> String {
    let Ok(value) = serde_json::from_str::<serde_json::Value>(body) else { return body.to_string() };
    let candidates = ["/error/message", "/error_description", "/message", "/error"];
    candidates
        .iter()
        .find_map(|pointer| value.pointer(pointer).and_then(|found| found.as_str()))
        .map(str::to_string)
        .unwrap_or_else(|| body.to_string())
}
