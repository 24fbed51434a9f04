//! The `webhook-linkedin` Lambda handler: GET challenge and POST notifications.

use super::normalize::normalize;
use super::verify::LinkedInVerifier;
use crate::aws::AwsClients;
use crate::config::{ConfigError, Env, LinkedInConfig};
use crate::http::{json_response, WebhookRequest};
use crate::ids::Provider;
use crate::ingest::webhook::{ingest_verified, reject_oversized};
use crate::ingest::{IngestDeps, IngestReport, NormalizedBatch};
use lambda_http::aws_lambda_events::apigw::{ApiGatewayV2httpRequest, ApiGatewayV2httpResponse};
use lambda_http::http::Method;
use serde_json::json;
use std::time::Instant;

/// Dependencies of the handler, built once per container.
#[derive(Debug)]
pub struct LinkedInDeps {
    pub ingest: IngestDeps,
    pub verifier: LinkedInVerifier,
}

impl LinkedInDeps {
    pub fn new(clients: &AwsClients, env: &impl Env) -> Result<Self, ConfigError> {
        let config = LinkedInConfig::from_env(env)?;
        Ok(Self {
            ingest: IngestDeps::from_env(clients, env)?,
            verifier: LinkedInVerifier::new(config.client_secret, config.app_secrets),
        })
    }
}

/// Handles one API Gateway request for `/webhooks/linkedin`.
pub async fn handle(event: ApiGatewayV2httpRequest, deps: &LinkedInDeps) -> ApiGatewayV2httpResponse {
    handle_with_report(event, deps).await.0
}

/// Handles a request and also returns what ingest did, for the local demo and tests.
pub async fn handle_with_report(
    event: ApiGatewayV2httpRequest,
    deps: &LinkedInDeps,
) -> (ApiGatewayV2httpResponse, Option<IngestReport>) {
    let started = Instant::now();
    let request = match WebhookRequest::from_apigw(event) {
        Ok(request) => request,
        Err(error) => return (json_response(400, json!({ "error": error.to_string() })), None),
    };
    let (answer, report) = match request.method {
        Method::GET => (challenge(&request, deps), None),
        Method::POST => notification(&request, deps).await,
        _ => (json_response(405, json!({ "error": "use GET for the challenge or POST for notifications" })), None),
    };
    crate::ingest::webhook::finish_request(
        "webhook-linkedin",
        Provider::LinkedIn,
        &request.method,
        &answer,
        report.as_ref(),
        started,
    );
    (answer, report)
}

fn challenge(request: &WebhookRequest, deps: &LinkedInDeps) -> ApiGatewayV2httpResponse {
    let code = request.query_param("challengeCode");
    match deps.verifier.challenge_response(code, request.query_param("applicationId")) {
        Ok(response) => {
            tracing::info!(provider = "linkedin", outcome = "challenge_answered", "endpoint validation answered");
            json_response(200, json!({ "challengeCode": code, "challengeResponse": response }))
        }
        Err(reason) => {
            tracing::warn!(provider = "linkedin", outcome = "challenge_rejected", %reason, "endpoint validation rejected");
            json_response(400, json!({ "error": reason.to_string() }))
        }
    }
}

async fn notification(
    request: &WebhookRequest,
    deps: &LinkedInDeps,
) -> (ApiGatewayV2httpResponse, Option<IngestReport>) {
    if let Some(answer) = reject_oversized(&deps.ingest, Provider::LinkedIn, &request.body) {
        return (answer, None);
    }
    if let Err(reason) = deps.verifier.verify_signature(request.header("x-li-signature"), &request.body) {
        tracing::warn!(provider = "linkedin", outcome = "rejected", %reason, "signature verification failed");
        return (json_response(401, json!({ "error": "invalid signature" })), None);
    }

    let batch = match normalize(&request.body) {
        Ok(batch) => batch,
        Err(error) => NormalizedBatch { events: Vec::new(), problems: vec![error.to_string()] },
    };
    ingest_verified(&deps.ingest, Provider::LinkedIn, &request.body, batch).await
}
