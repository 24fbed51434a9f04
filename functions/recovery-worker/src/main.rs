//! `recovery-worker`: SQS (`SyncQueue`) -> provider API recoveries, with partial batch failures.

use commsync::aws::AwsClients;
use commsync::config::ProcessEnv;
use commsync::recovery::{handle, RecoveryDeps};
use lambda_http::lambda_runtime::{run, service_fn, Error, LambdaEvent};
use std::sync::Arc;

#[tokio::main]
async fn main() -> Result<(), Error> {
    commsync::logging::init_lambda();
    let clients = AwsClients::from_env().await;
    let deps = Arc::new(RecoveryDeps::new(&clients, &ProcessEnv)?);

    run(service_fn(|event: LambdaEvent<aws_lambda_events::event::sqs::SqsEvent>| {
        let deps = deps.clone();
        async move {
            let deadline = std::time::Instant::now()
                + event.context.deadline().duration_since(std::time::SystemTime::now()).unwrap_or_default();
            Ok::<_, Error>(handle(event.payload, Some(deadline), deps).await)
        }
    }))
    .await
}
