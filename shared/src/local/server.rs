//! Serves the template's HTTP routes on 127.0.0.1, turning each request into the API
//! Gateway HTTP API (2.0) event Lambda would receive.

use super::functions::LocalFunctions;
use super::LocalError;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use lambda_http::aws_lambda_events::apigw::ApiGatewayV2httpRequest;
use lambda_http::aws_lambda_events::encodings::Body;
use std::future::Future;
use std::sync::Arc;

/// Larger requests are refused by the local server itself; API Gateway's limit is 10 MB.
const MAX_LOCAL_BODY_BYTES: usize = 16 * 1024 * 1024;

struct ServerState {
    functions: Arc<LocalFunctions>,
    routes: Vec<(String, String, String)>,
}

/// Serves until `shutdown` completes.
pub async fn serve(
    listener: tokio::net::TcpListener,
    functions: Arc<LocalFunctions>,
    routes: Vec<(String, String, String)>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), LocalError> {
    let state = Arc::new(ServerState { functions, routes });
    let app = axum::Router::new().fallback(route).layer(DefaultBodyLimit::max(MAX_LOCAL_BODY_BYTES)).with_state(state);
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(|source| LocalError::Io { what: "serve HTTP".to_string(), source })
}

async fn route(
    State(state): State<Arc<ServerState>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().to_string();
    let Some((_, _, binary)) = state.routes.iter().find(|(route_method, route_path, _)| {
        *route_path == path && (route_method == method.as_str() || route_method == "ANY")
    }) else {
        return (StatusCode::NOT_FOUND, format!("no route for {method} {path} in template.yaml\n")).into_response();
    };

    let event = apigw_event(&method, &uri, headers, &body);
    match state.functions.invoke_http(binary, event).await {
        Ok((response, _)) => {
            let status = StatusCode::from_u16(response.status_code as u16).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            let body = match response.body {
                Some(Body::Text(text)) => text.into_bytes(),
                Some(Body::Binary(bytes)) => bytes,
                _ => Vec::new(),
            };
            (status, response.headers, body).into_response()
        }
        Err(error) => (StatusCode::BAD_GATEWAY, format!("{error}\n")).into_response(),
    }
}

/// Builds the event API Gateway would send: text bodies as they are, others in base64.
pub fn apigw_event(method: &Method, uri: &Uri, headers: HeaderMap, body: &[u8]) -> ApiGatewayV2httpRequest {
    let mut event = ApiGatewayV2httpRequest::default();
    event.version = Some("2.0".to_string());
    event.route_key = Some(format!("{method} {}", uri.path()));
    event.raw_path = Some(uri.path().to_string());
    event.raw_query_string = Some(uri.query().unwrap_or_default().to_string());
    event.headers = headers;
    event.request_context.http.method = method.clone();
    event.request_context.http.path = Some(uri.path().to_string());
    event.request_context.http.source_ip = Some("127.0.0.1".to_string());

    if !body.is_empty() {
        match std::str::from_utf8(body) {
            Ok(text) => event.body = Some(text.to_string()),
            Err(_) => {
                event.body = Some(base64::engine::general_purpose::STANDARD.encode(body));
                event.is_base64_encoded = true;
            }
        }
    }
    event
}
