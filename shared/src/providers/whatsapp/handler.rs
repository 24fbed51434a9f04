//! The `webhook-whatsapp` Lambda handler: GET handshake and POST notifications.

use super::normalize::normalize;
use super::verify::WhatsAppVerifier;
use crate::aws::AwsClients;
use crate::config::{ConfigError, Env, WhatsAppConfig};
use crate::http::{json_response, response, WebhookRequest};
use crate::ids::Provider;
use crate::ingest::webhook::{ingest_verified, reject_oversized};
use crate::ingest::{IngestDeps, IngestReport, NormalizedBatch};
use lambda_http::aws_lambda_events::apigw::{ApiGatewayV2httpRequest, ApiGatewayV2httpResponse};
use lambda_http::http::Method;
use serde_json::json;
use std::time::Instant;

/// Dependencies of the handler, built once per container.
#[derive(Debug)]
pub struct WhatsAppDeps {
    pub ingest: IngestDeps,
    pub verifier: WhatsAppVerifier,
}

impl WhatsAppDeps {
    /// Builds the dependencies from configuration and SDK clients; makes no network call.
    pub fn new(clients: &AwsClients, env: &impl Env) -> Result<Self, ConfigError> {
        let secrets = WhatsAppConfig::from_env(env)?;
        Ok(Self {
            ingest: IngestDeps::from_env(clients, env)?,
            verifier: WhatsAppVerifier::new(secrets.app_secret, secrets.previous_app_secret, secrets.verify_token),
        })
    }
}

/// Handles one API Gateway request for `/webhooks/whatsapp`.
pub async fn handle(event: ApiGatewayV2httpRequest, deps: &WhatsAppDeps) -> ApiGatewayV2httpResponse {
    handle_with_report(event, deps).await.0
}

/// Handles a request and also returns what ingest did, for the local demo and tests.
pub async fn handle_with_report(
    event: ApiGatewayV2httpRequest,
    deps: &WhatsAppDeps,
) -> (ApiGatewayV2httpResponse, Option<IngestReport>) {
    let started = Instant::now();
    let request = match WebhookRequest::from_apigw(event) {
        Ok(request) => request,
        Err(error) => {
            tracing::warn!(provider = "whatsapp", outcome = "bad_request", %error, "request rejected");
            return (json_response(400, json!({ "error": error.to_string() })), None);
        }
    };

    let (answer, report) = match request.method {
        Method::GET => (handshake(&request, deps), None),
        Method::POST => notification(&request, deps).await,
        _ => (json_response(405, json!({ "error": "use GET for the handshake or POST for notifications" })), None),
    };
    crate::ingest::webhook::finish_request(
        "webhook-whatsapp",
        Provider::WhatsApp,
        &request.method,
        &answer,
        report.as_ref(),
        started,
    );
    (answer, report)
}

fn handshake(request: &WebhookRequest, deps: &WhatsAppDeps) -> ApiGatewayV2httpResponse {
    let result = deps.verifier.verify_handshake(
        request.query_param("hub.mode"),
        request.query_param("hub.verify_token"),
        request.query_param("hub.challenge"),
    );
    match result {
        Ok(challenge) => {
            tracing::info!(provider = "whatsapp", outcome = "handshake_accepted", "subscription handshake accepted");
            response(200, "text/plain", challenge)
        }
        Err(reason) => {
            tracing::warn!(provider = "whatsapp", outcome = "handshake_rejected", %reason, "subscription handshake rejected");
            response(403, "text/plain", "verification failed")
        }
    }
}

async fn notification(
    request: &WebhookRequest,
    deps: &WhatsAppDeps,
) -> (ApiGatewayV2httpResponse, Option<IngestReport>) {
    if let Some(answer) = reject_oversized(&deps.ingest, Provider::WhatsApp, &request.body) {
        return (answer, None);
    }

    if let Err(reason) = deps.verifier.verify_signature(request.header("x-hub-signature-256"), &request.body) {
        tracing::warn!(provider = "whatsapp", outcome = "rejected", %reason, "signature verification failed");
        return (json_response(401, json!({ "error": "invalid signature" })), None);
    }

    let batch = match normalize(&request.body) {
        Ok(batch) => batch,
        Err(error) => NormalizedBatch { events: Vec::new(), problems: vec![error.to_string()] },
    };
    ingest_verified(&deps.ingest, Provider::WhatsApp, &request.body, batch).await
}

#[cfg(test)]
mod tests {
    //! The answers that need no AWS call: every rejection happens before storage is touched,
    //! so these deps point at a closed port and any AWS call would fail the test.

    use super::*;
    use crate::http::body_text;
    use crate::providers::whatsapp::verify::sign;
    use crate::secret::Secret;
    use lambda_http::http::{HeaderMap, HeaderValue};
    use std::collections::HashMap;

    const SECRET: &str = "unit-secret";

    fn deps() -> WhatsAppDeps {
        let config = aws_config::SdkConfig::builder()
            .behavior_version(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new("us-east-1"))
            .endpoint_url("http://127.0.0.1:9")
            .build();
        let env: HashMap<String, String> = [
            ("ACCOUNTS_TABLE", "accounts"),
            ("EVENTS_TABLE", "events"),
            ("EVENTS_QUEUE_URL", "http://127.0.0.1:9/queue"),
            ("WHATSAPP_APP_SECRET", SECRET),
            ("WHATSAPP_VERIFY_TOKEN", "token"),
            ("MAX_BODY_BYTES", "1024"),
        ]
        .into_iter()
        .map(|(name, value)| (name.to_string(), value.to_string()))
        .collect();
        WhatsAppDeps::new(&AwsClients::new(&config), &env).unwrap()
    }

    fn request(
        method: Method,
        query: &str,
        headers: &[(&str, &str)],
        body: Option<&str>,
        base64: bool,
    ) -> ApiGatewayV2httpRequest {
        let mut event = ApiGatewayV2httpRequest::default();
        event.raw_path = Some("/webhooks/whatsapp".into());
        event.raw_query_string = Some(query.into());
        event.request_context.http.method = method;
        let mut header_map = HeaderMap::new();
        for (name, value) in headers {
            header_map.insert(
                lambda_http::http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        event.headers = header_map;
        event.body = body.map(str::to_string);
        event.is_base64_encoded = base64;
        event
    }

    #[tokio::test]
    async fn answer_handshake_echoes_challenge() {
        let query = "hub.mode=subscribe&hub.verify_token=token&hub.challenge=8812";
        let answer = handle(request(Method::GET, query, &[], None, false), &deps()).await;
        assert_eq!(answer.status_code, 200);
        assert_eq!(body_text(&answer), "8812");
        assert_eq!(answer.headers.get("content-type").unwrap(), "text/plain");
    }

    #[tokio::test]
    async fn answer_handshake_wrong_token_is_403() {
        let query = "hub.mode=subscribe&hub.verify_token=nope&hub.challenge=8812";
        let answer = handle(request(Method::GET, query, &[], None, false), &deps()).await;
        assert_eq!(answer.status_code, 403);
        assert!(!body_text(&answer).contains("8812"));
    }

    #[tokio::test]
    async fn answer_missing_signature_is_401() {
        let answer = handle(request(Method::POST, "", &[], Some("{}"), false), &deps()).await;
        assert_eq!(answer.status_code, 401);
    }

    #[tokio::test]
    async fn answer_wrong_signature_is_401() {
        let signature = sign(&Secret::new("other"), b"{}");
        let headers = [("X-Hub-Signature-256", signature.as_str())];
        let answer = handle(request(Method::POST, "", &headers, Some("{}"), false), &deps()).await;
        assert_eq!(answer.status_code, 401);
    }

    #[tokio::test]
    async fn answer_body_over_limit_is_413() {
        let body = "x".repeat(1025);
        let signature = sign(&Secret::new(SECRET), body.as_bytes());
        let headers = [("x-hub-signature-256", signature.as_str())];
        let answer = handle(request(Method::POST, "", &headers, Some(&body), false), &deps()).await;
        assert_eq!(answer.status_code, 413);
    }

    #[tokio::test]
    async fn answer_invalid_base64_is_400() {
        let answer = handle(request(Method::POST, "", &[], Some("%%%"), true), &deps()).await;
        assert_eq!(answer.status_code, 400);
    }

    #[tokio::test]
    async fn answer_other_method_is_405() {
        let answer = handle(request(Method::PUT, "", &[], None, false), &deps()).await;
        assert_eq!(answer.status_code, 405);
    }

    #[tokio::test]
    async fn answer_base64_body_is_verified_after_decoding() {
        // A signature over the base64 text must fail: only the decoded bytes are signed.
        let signature = sign(&Secret::new(SECRET), b"e30=");
        let headers = [("x-hub-signature-256", signature.as_str())];
        let answer = handle(request(Method::POST, "", &headers, Some("e30="), true), &deps()).await;
        assert_eq!(answer.status_code, 401);
    }
}
