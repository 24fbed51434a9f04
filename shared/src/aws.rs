//! AWS SDK clients, built once per process from the standard environment
//! (`AWS_REGION`, credentials, and `AWS_ENDPOINT_URL` for a local endpoint such as moto).

use aws_config::{BehaviorVersion, SdkConfig};

/// The SDK clients commsync uses. Building them makes no network call.
#[derive(Debug, Clone)]
pub struct AwsClients {
    pub dynamodb: aws_sdk_dynamodb::Client,
    pub sqs: aws_sdk_sqs::Client,
    pub eventbridge: aws_sdk_eventbridge::Client,
}

impl AwsClients {
    pub fn new(config: &SdkConfig) -> Self {
        Self {
            dynamodb: aws_sdk_dynamodb::Client::new(config),
            sqs: aws_sdk_sqs::Client::new(config),
            eventbridge: aws_sdk_eventbridge::Client::new(config),
        }
    }

    /// Builds every client with `interceptor` attached, so each operation can be counted.
    pub fn with_interceptor(config: &SdkConfig, interceptor: CallCounter) -> Self {
        let dynamodb = aws_sdk_dynamodb::config::Builder::from(config).interceptor(interceptor.clone()).build();
        let sqs = aws_sdk_sqs::config::Builder::from(config).interceptor(interceptor.clone()).build();
        let eventbridge = aws_sdk_eventbridge::config::Builder::from(config).interceptor(interceptor).build();
        Self {
            dynamodb: aws_sdk_dynamodb::Client::from_conf(dynamodb),
            sqs: aws_sdk_sqs::Client::from_conf(sqs),
            eventbridge: aws_sdk_eventbridge::Client::from_conf(eventbridge),
        }
    }

    /// Loads the shared SDK configuration from the environment and builds every client.
    pub async fn from_env() -> Self {
        let config = aws_config::defaults(BehaviorVersion::latest()).load().await;
        Self::new(&config)
    }
}

/// An SDK interceptor that counts HTTP requests to AWS (each attempt, retries included)
/// by the operation in their `X-Amz-Target` header, for measuring what a webhook costs.
#[derive(Debug, Clone, Default)]
pub struct CallCounter {
    counts: std::sync::Arc<std::sync::Mutex<std::collections::BTreeMap<String, u64>>>,
}

impl CallCounter {
    /// Returns the counts so far and starts again from zero.
    pub fn take(&self) -> std::collections::BTreeMap<String, u64> {
        std::mem::take(&mut *self.counts.lock().expect("counter lock poisoned"))
    }
}

impl aws_smithy_runtime_api::client::interceptors::Intercept for CallCounter {
    fn name(&self) -> &'static str {
        "CallCounter"
    }

    fn read_before_transmit(
        &self,
        context: &aws_smithy_runtime_api::client::interceptors::context::BeforeTransmitInterceptorContextRef<'_>,
        _runtime_components: &aws_smithy_runtime_api::client::runtime_components::RuntimeComponents,
        _cfg: &mut aws_smithy_types::config_bag::ConfigBag,
    ) -> Result<(), aws_smithy_runtime_api::box_error::BoxError> {
        // DynamoDB, SQS (JSON protocol) and EventBridge all name the operation in this header.
        let name = context.request().headers().get("x-amz-target").unwrap_or("unknown").to_string();
        *self.counts.lock().expect("counter lock poisoned").entry(name).or_default() += 1;
        Ok(())
    }
}
