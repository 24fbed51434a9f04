//! The WhatsApp recovery: no API returns past messages, so recovering means making sure
//! the app is still subscribed to the WABA (an empty `subscribed_apps` sends nothing) and
//! recording the number's health.

use super::{JobContext, JobError, JobReport};

pub async fn check_subscription(context: &mut JobContext<'_>) -> Result<JobReport, JobError> {
    let waba_id = context.account.waba_id.clone().ok_or_else(|| {
        JobError::Configuration("the account has no WABA id; register it again with --waba-id".to_string())
    })?;
    let credentials =
        context.deps.ingest.store.get_credentials(&context.job.tenant_id, &context.job.account_id).await?;
    let token = credentials
        .access_token
        .ok_or_else(|| JobError::Reconnect("no access token is stored for the number; reconnect it".to_string()))?;
    let graph = &context.deps.graph;

    context.api_calls += 1;
    let subscribed = graph.subscribed_apps(&token, &waba_id).await?;
    let resubscribed = subscribed == 0;
    if resubscribed {
        context.api_calls += 1;
        graph.subscribe(&token, &waba_id).await?;
        tracing::warn!(tenant = %context.job.tenant_id, account = %context.job.account_id, waba_id = %waba_id, "app was not subscribed to the WABA; subscribed again");
    }

    context.api_calls += 1;
    let health = graph.phone_health(&token, context.account.external_id.as_str()).await?;
    context
        .deps
        .ingest
        .store
        .record_subscription_check(
            &context.job.tenant_id,
            &context.job.account_id,
            resubscribed,
            health.quality_rating.as_deref(),
            health.status.as_deref(),
        )
        .await?;

    let detail = format!(
        "{}; quality {}, status {}",
        if resubscribed { "subscribed_apps was empty: subscribed again" } else { "subscription present" },
        health.quality_rating.as_deref().unwrap_or("unknown"),
        health.status.as_deref().unwrap_or("unknown"),
    );
    Ok(JobReport { detail, ..Default::default() })
}
