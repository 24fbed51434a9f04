//! The template's functions, built locally from their resolved environment and invoked
//! with Lambda events, as `sam local invoke -e` would.

use super::stack::LocalStack;
use super::LocalError;
use crate::ingest::IngestReport;
use crate::providers::gmail::{self, GmailDeps};
use crate::providers::linkedin::{self, LinkedInDeps};
use crate::providers::whatsapp::{self, WhatsAppDeps};
use crate::recovery::RecoveryDeps;
use lambda_http::aws_lambda_events::apigw::{ApiGatewayV2httpRequest, ApiGatewayV2httpResponse};
use std::collections::HashMap;
use std::sync::Arc;

/// One function's handler with its dependencies.
#[derive(Debug)]
pub enum LocalFunction {
    WhatsApp(Box<WhatsAppDeps>),
    Gmail(Box<GmailDeps>),
    LinkedIn(Box<LinkedInDeps>),
    Recovery(Arc<RecoveryDeps>),
    Detector(Box<crate::gaps::DetectorDeps>),
}

/// Every function of the template that runs locally, by binary name.
#[derive(Debug)]
pub struct LocalFunctions {
    functions: HashMap<String, LocalFunction>,
}

impl LocalFunctions {
    /// Builds each function's dependencies from the environment the template gives it.
    pub fn build(stack: &LocalStack) -> Result<Self, LocalError> {
        let clients = stack.clients();
        let mut functions = HashMap::new();
        for definition in &stack.template.functions {
            let env = stack.function_env(&definition.binary)?;
            let function = match definition.binary.as_str() {
                "webhook-whatsapp" => LocalFunction::WhatsApp(Box::new(WhatsAppDeps::new(&clients, &env)?)),
                "webhook-gmail" => LocalFunction::Gmail(Box::new(GmailDeps::new(&clients, &env)?)),
                "webhook-linkedin" => LocalFunction::LinkedIn(Box::new(LinkedInDeps::new(&clients, &env)?)),
                "recovery-worker" => LocalFunction::Recovery(Arc::new(RecoveryDeps::new(&clients, &env)?)),
                "gap-detector" => LocalFunction::Detector(Box::new(crate::gaps::DetectorDeps::new(&clients, &env)?)),
                other => {
                    tracing::warn!(binary = other, "no local runner for this function yet; skipped");
                    continue;
                }
            };
            functions.insert(definition.binary.clone(), function);
        }
        Ok(Self { functions })
    }

    pub fn get(&self, binary: &str) -> Result<&LocalFunction, LocalError> {
        self.functions.get(binary).ok_or_else(|| {
            let mut known: Vec<&str> = self.functions.keys().map(String::as_str).collect();
            known.sort();
            LocalError::Setup(format!("unknown function {binary:?}; expected one of: {}", known.join(", ")))
        })
    }

    /// Runs an HTTP function on an API Gateway event.
    pub async fn invoke_http(
        &self,
        binary: &str,
        event: ApiGatewayV2httpRequest,
    ) -> Result<(ApiGatewayV2httpResponse, Option<IngestReport>), LocalError> {
        match self.get(binary)? {
            LocalFunction::WhatsApp(deps) => Ok(whatsapp::handle_with_report(event, deps).await),
            LocalFunction::Gmail(deps) => Ok(gmail::handle_with_report(event, deps).await),
            LocalFunction::LinkedIn(deps) => Ok(linkedin::handle_with_report(event, deps).await),
            LocalFunction::Recovery(_) | LocalFunction::Detector(_) => {
                Err(LocalError::Setup(format!("{binary} does not serve HTTP requests")))
            }
        }
    }

    /// Runs a function on a Lambda event file's JSON and returns the response JSON.
    pub async fn invoke_json(&self, binary: &str, event_json: &str) -> Result<serde_json::Value, LocalError> {
        if let LocalFunction::Detector(deps) = self.get(binary)? {
            let report = crate::gaps::run::run(deps, chrono::Utc::now(), false)
                .await
                .map_err(|error| LocalError::Setup(format!("detector run failed: {error}")))?;
            return Ok(serde_json::to_value(report).expect("reports serialize"));
        }
        if let LocalFunction::Recovery(deps) = self.get(binary)? {
            let event: aws_lambda_events::event::sqs::SqsEvent = serde_json::from_str(event_json)
                .map_err(|error| LocalError::Setup(format!("event is not an SQS event: {error}")))?;
            let response = crate::recovery::handle(event, None, deps.clone()).await;
            return Ok(serde_json::to_value(response).expect("responses serialize"));
        }
        let event: ApiGatewayV2httpRequest = serde_json::from_str(event_json).map_err(|error| {
            LocalError::Setup(format!("event is not an API Gateway HTTP API (2.0) request: {error}"))
        })?;
        let (response, _) = self.invoke_http(binary, event).await?;
        Ok(serde_json::to_value(response).expect("responses serialize"))
    }

    /// Polls the queue a function consumes once, as the SQS event source mapping would.
    pub async fn poll_queue(
        &self,
        stack: &super::LocalStack,
        binary: &str,
    ) -> Result<super::worker::PollReport, LocalError> {
        let LocalFunction::Recovery(deps) = self.get(binary)? else {
            return Err(LocalError::Setup(format!("{binary} does not consume a queue")));
        };
        let deps = deps.clone();
        let queue_url = deps.sync_queue.url().to_string();
        let sqs = stack.clients().sqs;
        super::worker::poll_once(&sqs, &queue_url, |event| crate::recovery::handle(event, None, deps)).await
    }

    /// Runs one detector pass now and returns its report.
    pub async fn run_detector(&self, now: chrono::DateTime<chrono::Utc>) -> Result<crate::gaps::RunReport, LocalError> {
        let LocalFunction::Detector(deps) = self.get("gap-detector")? else {
            return Err(LocalError::Setup("gap-detector is not a detector".to_string()));
        };
        crate::gaps::run::run(deps, now, false)
            .await
            .map_err(|error| LocalError::Setup(format!("detector run failed: {error}")))
    }

    /// Binaries served over HTTP with their routes, from the template.
    pub fn http_routes(stack: &LocalStack) -> Vec<(String, String, String)> {
        stack
            .template
            .functions
            .iter()
            .flat_map(|function| {
                function.routes.iter().map(|(method, path)| (method.clone(), path.clone(), function.binary.clone()))
            })
            .collect()
    }
}
