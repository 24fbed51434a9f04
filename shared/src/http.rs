//! The webhook functions' view of an API Gateway HTTP API (payload 2.0) request, and the
//! responses they send back.

use base64::Engine;
use lambda_http::aws_lambda_events::apigw::{ApiGatewayV2httpRequest, ApiGatewayV2httpResponse};
use lambda_http::aws_lambda_events::encodings::Body;
use lambda_http::http::{header, HeaderMap, HeaderValue, Method};
use thiserror::Error;

/// A request with its body decoded to the exact bytes the provider sent.
#[derive(Debug)]
pub struct WebhookRequest {
    pub method: Method,
    pub path: String,
    pub headers: HeaderMap,
    pub query: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// Reasons an API Gateway event cannot be turned into a request.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum RequestError {
    #[error("isBase64Encoded is true but the body is not valid base64")]
    InvalidBase64,
}

impl WebhookRequest {
    /// Builds the request from an API Gateway event, decoding a base64 body when
    /// `isBase64Encoded` is true. The body is never re-encoded, so signatures verify.
    pub fn from_apigw(event: ApiGatewayV2httpRequest) -> Result<Self, RequestError> {
        let body = match event.body {
            None => Vec::new(),
            Some(text) if event.is_base64_encoded => base64::engine::general_purpose::STANDARD
                .decode(text.as_bytes())
                .map_err(|_| RequestError::InvalidBase64)?,
            Some(text) => text.into_bytes(),
        };

        let query = match event.raw_query_string.as_deref() {
            Some(raw) => url::form_urlencoded::parse(raw.as_bytes()).into_owned().collect(),
            None => event
                .query_string_parameters
                .iter()
                .map(|(name, value)| (name.to_string(), value.to_string()))
                .collect(),
        };

        Ok(Self {
            method: event.request_context.http.method,
            path: event.raw_path.unwrap_or_default(),
            headers: event.headers,
            query,
            body,
        })
    }

    /// Returns the first value of a query parameter.
    pub fn query_param(&self, name: &str) -> Option<&str> {
        self.query.iter().find(|(key, _)| key == name).map(|(_, value)| value.as_str())
    }

    /// Returns a header's raw bytes; `HeaderMap` compares names case-insensitively.
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers.get(name).map(HeaderValue::as_bytes)
    }
}

/// Builds a response with a body and content type.
pub fn response(status: u16, content_type: &str, body: impl Into<String>) -> ApiGatewayV2httpResponse {
    let mut response = ApiGatewayV2httpResponse::default();
    response.status_code = i64::from(status);
    response
        .headers
        .insert(header::CONTENT_TYPE, HeaderValue::from_str(content_type).expect("content types are ASCII"));
    response.body = Some(Body::Text(body.into()));
    response
}

/// A JSON response `{"status": ..., "message": ...}` for machine-readable responses.
pub fn json_response(status: u16, value: serde_json::Value) -> ApiGatewayV2httpResponse {
    response(status, "application/json", value.to_string())
}

/// Returns the response body as text, for logs and tests.
pub fn body_text(response: &ApiGatewayV2httpResponse) -> String {
    match &response.body {
        Some(Body::Text(text)) => text.clone(),
        Some(Body::Binary(bytes)) => String::from_utf8_lossy(bytes).into_owned(),
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(json: &str) -> ApiGatewayV2httpRequest {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn request_base64_body_is_decoded() {
        let request = WebhookRequest::from_apigw(event(
            r#"{"version":"2.0","rawPath":"/w","requestContext":{"http":{"method":"POST"}},"body":"aGk=","isBase64Encoded":true}"#,
        ))
        .unwrap();
        assert_eq!(request.body, b"hi");
    }

    #[test]
    fn request_invalid_base64_rejected() {
        let result = WebhookRequest::from_apigw(event(
            r#"{"version":"2.0","rawPath":"/w","requestContext":{"http":{"method":"POST"}},"body":"!!","isBase64Encoded":true}"#,
        ));
        assert_eq!(result.unwrap_err(), RequestError::InvalidBase64);
    }

    #[test]
    fn request_raw_query_is_decoded() {
        let request = WebhookRequest::from_apigw(event(
            r#"{"version":"2.0","rawPath":"/w","rawQueryString":"hub.mode=subscribe&hub.challenge=a%20b","requestContext":{"http":{"method":"GET"}}}"#,
        ))
        .unwrap();
        assert_eq!(request.query_param("hub.challenge"), Some("a b"));
    }

    #[test]
    fn request_header_lookup_ignores_case() {
        let request = WebhookRequest::from_apigw(event(
            r#"{"version":"2.0","rawPath":"/w","headers":{"X-Hub-Signature-256":"sha256=00"},"requestContext":{"http":{"method":"POST"}}}"#,
        ))
        .unwrap();
        assert_eq!(request.header("x-hub-signature-256"), Some(&b"sha256=00"[..]));
    }
}
