//! `webhook-linkedin`: API Gateway HTTP API -> LinkedIn webhooks.

use commsync::aws::AwsClients;
use commsync::config::ProcessEnv;
use commsync::providers::linkedin::{handle, LinkedInDeps};
use lambda_http::lambda_runtime::{run, service_fn, Error, LambdaEvent};

#[tokio::main]
async fn main() -> Result<(), Error> {
    commsync::logging::init_lambda();
    let clients = AwsClients::from_env().await;
    let deps = LinkedInDeps::new(&clients, &ProcessEnv)?;

    run(service_fn(|event: LambdaEvent<_>| async { Ok::<_, Error>(handle(event.payload, &deps).await) })).await
}
