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

    /// Loads the shared SDK configuration from the environment and builds every client.
    pub async fn from_env() -> Self {
        let config = aws_config::defaults(BehaviorVersion::latest()).load().await;
        Self::new(&config)
    }
}
