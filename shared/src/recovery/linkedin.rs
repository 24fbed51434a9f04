//! The LinkedIn recovery: pull the organization's notifications over the suspect window
//! and keep those not already stored.

use super::gmail::store_events;
use super::{JobContext, JobError, JobReport};
use crate::providers::linkedin::normalize::social_action;
use chrono::Utc;

/// LinkedIn keeps 60 days of notifications.
const RETENTION_MS: i64 = 60 * 86_400 * 1000;
/// The window pulled when the job names none.
const DEFAULT_WINDOW_MS: i64 = 86_400 * 1000;

pub async fn notifications_pull(context: &mut JobContext<'_>) -> Result<JobReport, JobError> {
    let credentials =
        context.deps.ingest.store.get_credentials(&context.job.tenant_id, &context.job.account_id).await?;
    let token = credentials
        .access_token
        .ok_or_else(|| JobError::Reconnect("no access token is stored for the page; reconnect it".to_string()))?;

    let now_ms = Utc::now().timestamp_millis();
    let end_ms = context.job.window_end_ms.unwrap_or(now_ms).min(now_ms);
    let start_ms = context.job.window_start_ms.unwrap_or(end_ms - DEFAULT_WINDOW_MS).max(now_ms - RETENTION_MS);
    let organization = context.account.external_id.as_str();

    let result = context.deps.linkedin.notifications(&token, organization, start_ms, end_ms).await;
    let (notifications, calls) = match result {
        Ok(found) => found,
        Err(error) => {
            context.api_calls += 1;
            return Err(error.into());
        }
    };
    context.api_calls += u64::from(calls);

    let mut events = Vec::new();
    for notification in &notifications {
        match social_action(notification) {
            Ok(event) => events.push(event),
            Err(problem) => {
                tracing::warn!(tenant = %context.job.tenant_id, account = %context.job.account_id, %problem, "pulled notification skipped")
            }
        }
    }
    let found = events.len();
    let recovered = store_events(context, events).await?;
    Ok(JobReport {
        recovered,
        detail: format!("{found} notifications in the window, {recovered} were missing"),
        ..Default::default()
    })
}
