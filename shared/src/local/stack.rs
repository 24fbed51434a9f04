//! Creates every table, queue and bus of `template.yaml` on a local endpoint, under its
//! logical id (plus an optional prefix, so tests get fresh resources on one server).

use super::template::{Expr, ResourceDef, Template};
use super::LocalError;
use crate::aws::AwsClients;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType, TimeToLiveSpecification,
};
use aws_sdk_sqs::types::QueueAttributeName;
use serde_yaml::Value;
use std::collections::{BTreeMap, HashMap};

/// Template parameters without a default get these values locally unless the process
/// environment sets the named variable. The sample events in `events/` are signed with them.
pub const DEV_PARAMETERS: &[(&str, &str, &str)] = &[
    ("WhatsAppAppSecret", "WHATSAPP_APP_SECRET", "commsync-dev-whatsapp-app-secret"),
    ("WhatsAppVerifyToken", "WHATSAPP_VERIFY_TOKEN", "commsync-dev-verify-token"),
    ("GmailPushAudience", "GMAIL_PUSH_AUDIENCE", "https://commsync.local/webhooks/gmail"),
    ("GmailPushServiceAccount", "GMAIL_PUSH_SERVICE_ACCOUNT", "gmail-push@commsync-dev.iam.gserviceaccount.com"),
    ("LinkedInClientSecret", "LINKEDIN_CLIENT_SECRET", "commsync-dev-linkedin-client-secret"),
];

/// Returns the local value of a development parameter by its template name.
pub fn dev_value(parameter: &str) -> String {
    let (_, variable, dev_value) = DEV_PARAMETERS
        .iter()
        .find(|(name, _, _)| *name == parameter)
        .unwrap_or_else(|| panic!("{parameter} is not a development parameter"));
    std::env::var(variable).ok().filter(|value| !value.is_empty()).unwrap_or_else(|| dev_value.to_string())
}

/// The local name, URL and ARN of one created resource.
#[derive(Debug, Clone)]
pub struct Physical {
    pub name: String,
    /// The queue URL for SQS queues.
    pub url: Option<String>,
    pub arn: String,
}

/// A template's resources created on one endpoint.
#[derive(Debug, Clone)]
pub struct LocalStack {
    pub endpoint: String,
    pub prefix: String,
    pub template: Template,
    pub physical: BTreeMap<String, Physical>,
    pub parameters: BTreeMap<String, String>,
    /// Variables every function gets on top of the template's, such as provider base URLs
    /// that point at the local provider simulator.
    pub env_overrides: BTreeMap<String, String>,
    pub sdk_config: SdkConfig,
}

/// SDK configuration for a local endpoint: dummy credentials, `us-east-1`, no metadata lookups.
pub fn local_sdk_config(endpoint: &str) -> SdkConfig {
    let credentials = aws_sdk_dynamodb::config::Credentials::new("test", "test", None, None, "commsync-local");
    SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(endpoint)
        .credentials_provider(aws_sdk_dynamodb::config::SharedCredentialsProvider::new(credentials))
        .build()
}

impl LocalStack {
    /// Creates (or finds) every table, queue and event bus of the template.
    pub async fn create(template: Template, endpoint: &str, prefix: &str) -> Result<Self, LocalError> {
        let sdk_config = local_sdk_config(endpoint);
        let clients = AwsClients::new(&sdk_config);
        let mut physical = BTreeMap::new();

        let mut parameters = BTreeMap::new();
        for (name, default) in &template.parameters {
            if let Some(value) = default {
                parameters.insert(name.clone(), value.clone());
            }
        }
        for (parameter, variable, dev_value) in DEV_PARAMETERS {
            let value =
                std::env::var(variable).ok().filter(|value| !value.is_empty()).unwrap_or_else(|| dev_value.to_string());
            parameters.insert(parameter.to_string(), value);
        }

        for resource in template.resources.iter().filter(|r| r.resource_type == "AWS::DynamoDB::Table") {
            let name = format!("{prefix}{}", resource.logical_id);
            create_table(&clients.dynamodb, &name, resource).await?;
            let arn = format!("arn:aws:dynamodb:us-east-1:123456789012:table/{name}");
            physical.insert(resource.logical_id.clone(), Physical { name, url: None, arn });
        }

        // Dead-letter queues first, so a redrive policy can name their ARN.
        let mut queues: Vec<&ResourceDef> =
            template.resources.iter().filter(|r| r.resource_type == "AWS::SQS::Queue").collect();
        queues.sort_by_key(|queue| queue.properties.get("RedrivePolicy").is_some());
        for resource in queues {
            let name = format!("{prefix}{}", resource.logical_id);
            let created = create_queue(&clients.sqs, &name, resource, &physical).await?;
            physical.insert(resource.logical_id.clone(), created);
        }

        for resource in template.resources.iter().filter(|r| r.resource_type == "AWS::Events::EventBus") {
            let name = format!("{prefix}{}", resource.logical_id);
            let arn = match clients.eventbridge.create_event_bus().name(&name).send().await {
                Ok(output) => output.event_bus_arn.unwrap_or_default(),
                Err(error) if error.as_service_error().is_some_and(|e| e.is_resource_already_exists_exception()) => {
                    format!("arn:aws:events:us-east-1:123456789012:event-bus/{name}")
                }
                Err(error) => return Err(LocalError::aws("CreateEventBus", &name, &error)),
            };
            physical.insert(resource.logical_id.clone(), Physical { name, url: None, arn });
        }

        Ok(Self {
            endpoint: endpoint.to_string(),
            prefix: prefix.to_string(),
            template,
            physical,
            parameters,
            env_overrides: BTreeMap::new(),
            sdk_config,
        })
    }

    /// Points the Gmail function at a JWKS URL (the development JWKS server locally),
    /// unless `GMAIL_JWKS_URL` is set in the environment.
    pub fn use_jwks_url(&mut self, url: &str) {
        let url =
            std::env::var("GMAIL_JWKS_URL").ok().filter(|value| !value.is_empty()).unwrap_or_else(|| url.to_string());
        self.parameters.insert("GmailJwksUrl".to_string(), url);
    }

    /// Points every provider base URL of the recovery worker at the local provider
    /// simulator, so no recovery reaches a real provider.
    pub fn use_provider_simulator(&mut self, providers: &super::providers::ProviderServer) {
        for (name, value) in [
            ("GMAIL_API_BASE_URL", providers.gmail_base_url()),
            ("GMAIL_OAUTH_TOKEN_URL", providers.token_url()),
            ("GMAIL_OAUTH_CLIENT_ID", "commsync-local-client".to_string()),
            ("GMAIL_OAUTH_CLIENT_SECRET", "commsync-local-client-secret".to_string()),
            ("GMAIL_PUBSUB_TOPIC", "projects/commsync-local/topics/gmail".to_string()),
            ("WHATSAPP_GRAPH_BASE_URL", providers.graph_base_url()),
            ("LINKEDIN_API_BASE_URL", providers.linkedin_base_url()),
            ("RETRY_BASE_SECONDS", "1".to_string()),
        ] {
            self.env_overrides.insert(name.to_string(), value);
        }
    }

    pub fn clients(&self) -> AwsClients {
        AwsClients::new(&self.sdk_config)
    }

    /// Returns the local physical resource of a logical id.
    pub fn resource(&self, logical_id: &str) -> Result<&Physical, LocalError> {
        self.physical
            .get(logical_id)
            .ok_or_else(|| LocalError::Setup(format!("template.yaml has no table, queue or bus named {logical_id}")))
    }

    /// Resolves a template value as CloudFormation would for this local stack.
    pub fn resolve(&self, expr: &Expr) -> String {
        match expr {
            Expr::Literal(text) => text.clone(),
            Expr::Ref(name) => {
                if let Some(value) = self.parameters.get(name) {
                    return value.clone();
                }
                match self.physical.get(name) {
                    Some(resource) => resource.url.clone().unwrap_or_else(|| resource.name.clone()),
                    None => String::new(),
                }
            }
            Expr::GetAtt(name, attribute) => match (self.physical.get(name), attribute.as_str()) {
                (Some(resource), "Arn") => resource.arn.clone(),
                (Some(resource), "QueueUrl") => resource.url.clone().unwrap_or_default(),
                (Some(resource), _) => resource.name.clone(),
                (None, _) => String::new(),
            },
            Expr::Sub(text) => {
                let mut resolved =
                    text.replace("${AWS::Region}", "us-east-1").replace("${AWS::StackName}", "commsync-local");
                for (name, value) in &self.parameters {
                    resolved = resolved.replace(&format!("${{{name}}}"), value);
                }
                resolved
            }
        }
    }

    /// The environment a function gets from the template, resolved locally.
    pub fn function_env(&self, binary: &str) -> Result<HashMap<String, String>, LocalError> {
        let function = self
            .template
            .function_by_binary(binary)
            .ok_or_else(|| LocalError::Setup(format!("template.yaml has no function with binary {binary}")))?;
        let mut env: HashMap<String, String> =
            function.environment.iter().map(|(name, expr)| (name.clone(), self.resolve(expr))).collect();
        env.extend(self.env_overrides.clone());
        Ok(env)
    }
}

async fn create_table(
    dynamodb: &aws_sdk_dynamodb::Client,
    name: &str,
    resource: &ResourceDef,
) -> Result<(), LocalError> {
    let properties = &resource.properties;
    let mut request = dynamodb.create_table().table_name(name).billing_mode(BillingMode::PayPerRequest);

    for definition in sequence(properties, "AttributeDefinitions") {
        let attribute_type = match text(definition, "AttributeType").as_str() {
            "N" => ScalarAttributeType::N,
            "B" => ScalarAttributeType::B,
            _ => ScalarAttributeType::S,
        };
        request = request.attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name(text(definition, "AttributeName"))
                .attribute_type(attribute_type)
                .build()
                .map_err(|error| LocalError::Setup(format!("{}: {error}", resource.logical_id)))?,
        );
    }
    for key in sequence(properties, "KeySchema") {
        let key_type = if text(key, "KeyType") == "RANGE" { KeyType::Range } else { KeyType::Hash };
        request = request.key_schema(
            KeySchemaElement::builder()
                .attribute_name(text(key, "AttributeName"))
                .key_type(key_type)
                .build()
                .map_err(|error| LocalError::Setup(format!("{}: {error}", resource.logical_id)))?,
        );
    }

    match request.send().await {
        Ok(_) => {}
        Err(error) if error.as_service_error().is_some_and(|e| e.is_resource_in_use_exception()) => return Ok(()),
        Err(error) => return Err(LocalError::aws("CreateTable", name, &error)),
    }

    if let Some(ttl) = properties.get("TimeToLiveSpecification") {
        let specification = TimeToLiveSpecification::builder()
            .attribute_name(text(ttl, "AttributeName"))
            .enabled(true)
            .build()
            .map_err(|error| LocalError::Setup(format!("{}: {error}", resource.logical_id)))?;
        dynamodb
            .update_time_to_live()
            .table_name(name)
            .time_to_live_specification(specification)
            .send()
            .await
            .map_err(|error| LocalError::aws("UpdateTimeToLive", name, &error))?;
    }
    Ok(())
}

async fn create_queue(
    sqs: &aws_sdk_sqs::Client,
    name: &str,
    resource: &ResourceDef,
    created: &BTreeMap<String, Physical>,
) -> Result<Physical, LocalError> {
    let properties = &resource.properties;
    let mut request = sqs.create_queue().queue_name(name);
    for (property, attribute) in [
        ("VisibilityTimeout", QueueAttributeName::VisibilityTimeout),
        ("MessageRetentionPeriod", QueueAttributeName::MessageRetentionPeriod),
        ("DelaySeconds", QueueAttributeName::DelaySeconds),
        ("ReceiveMessageWaitTimeSeconds", QueueAttributeName::ReceiveMessageWaitTimeSeconds),
        ("MaximumMessageSize", QueueAttributeName::MaximumMessageSize),
    ] {
        if let Some(value) = properties.get(property) {
            request = request.attributes(attribute, scalar(value));
        }
    }
    if let Some(redrive) = properties.get("RedrivePolicy") {
        let target = match redrive.get("deadLetterTargetArn").map(super::template::parse_expr) {
            Some(Expr::GetAtt(dlq, _)) => created.get(&dlq).map(|queue| queue.arn.clone()).unwrap_or_default(),
            Some(Expr::Literal(arn)) => arn,
            _ => String::new(),
        };
        let max_receive_count = redrive.get("maxReceiveCount").map(scalar).unwrap_or_else(|| "5".to_string());
        let policy = serde_json::json!({ "deadLetterTargetArn": target, "maxReceiveCount": max_receive_count });
        request = request.attributes(QueueAttributeName::RedrivePolicy, policy.to_string());
    }

    let url = request
        .send()
        .await
        .map_err(|error| LocalError::aws("CreateQueue", name, &error))?
        .queue_url
        .unwrap_or_default();
    let attributes = sqs
        .get_queue_attributes()
        .queue_url(&url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .map_err(|error| LocalError::aws("GetQueueAttributes", name, &error))?;
    let arn = attributes.attributes.and_then(|mut map| map.remove(&QueueAttributeName::QueueArn)).unwrap_or_default();
    Ok(Physical { name: name.to_string(), url: Some(url), arn })
}

fn sequence<'a>(value: &'a Value, key: &str) -> impl Iterator<Item = &'a Value> {
    value.get(key).and_then(Value::as_sequence).into_iter().flatten()
}

fn text(value: &Value, key: &str) -> String {
    value.get(key).map(scalar).unwrap_or_default()
}

fn scalar(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        Value::Number(number) => number.to_string(),
        Value::Bool(flag) => flag.to_string(),
        _ => String::new(),
    }
}
