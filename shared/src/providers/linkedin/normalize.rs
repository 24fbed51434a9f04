//! Turns a verified LinkedIn webhook body into provider-neutral pending events.
//!
//! `ORGANIZATION_SOCIAL_ACTION_NOTIFICATIONS` carries up to 10 notifications, each keyed
//! by its numeric `notificationId` and routed by `organizationalEntity`. `LEAD_ACTION`
//! carries one lead, routed by its owner (organization or sponsored account).

use crate::event::{rfc3339, rfc3339_from_unix_millis, EventKind};
use crate::ids::{EventId, ExternalId};
use crate::ingest::{NormalizedBatch, PendingEvent};
use serde_json::{json, Value};
use thiserror::Error;

/// Failure to read a verified body as a LinkedIn webhook at all.
#[derive(Debug, Error)]
pub enum EnvelopeError {
    #[error("body is not JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("type is {0:?}, expected ORGANIZATION_SOCIAL_ACTION_NOTIFICATIONS or LEAD_ACTION")]
    UnknownType(String),
    #[error("notifications is missing or not a list")]
    MissingNotifications,
}

/// Maximum length of a URN or id taken into a key.
const MAX_ID_BYTES: usize = 512;

/// Parses the body and normalizes every notification or the lead action.
pub fn normalize(body: &[u8]) -> Result<NormalizedBatch, EnvelopeError> {
    let value: Value = serde_json::from_slice(body)?;
    let kind = value.get("type").and_then(Value::as_str).unwrap_or_default();
    let mut batch = NormalizedBatch::default();

    match kind {
        "ORGANIZATION_SOCIAL_ACTION_NOTIFICATIONS" => {
            let notifications =
                value.get("notifications").and_then(Value::as_array).ok_or(EnvelopeError::MissingNotifications)?;
            for (index, notification) in notifications.iter().enumerate() {
                match social_action(notification) {
                    Ok(event) => batch.events.push(event),
                    Err(problem) => batch.problems.push(format!("notification {index}: {problem}")),
                }
            }
        }
        "LEAD_ACTION" => match lead_action(&value) {
            Ok(event) => batch.events.push(event),
            Err(problem) => batch.problems.push(format!("lead action: {problem}")),
        },
        other => return Err(EnvelopeError::UnknownType(other.to_string())),
    }
    Ok(batch)
}

/// Normalizes one organization social action notification, as a webhook or a pull delivers it.
pub fn social_action(notification: &Value) -> Result<PendingEvent, String> {
    // notificationId is a JSON number (a long); it is kept as a string from here on.
    let notification_id = match notification.get("notificationId") {
        Some(Value::Number(number)) if number.as_u64().is_some() => number.to_string(),
        Some(other) => return Err(format!("notificationId {other} is not a non-negative integer")),
        None => return Err("notificationId is missing".to_string()),
    };
    let organization = urn(notification, "organizationalEntity")?;
    let action = notification.get("action").and_then(Value::as_str).ok_or("action is missing")?;
    let occurred_at = notification
        .get("lastModifiedAt")
        .and_then(epoch_millis)
        .and_then(rfc3339_from_unix_millis)
        .unwrap_or_else(|| rfc3339(chrono::Utc::now()));

    Ok(PendingEvent {
        external_id: ExternalId::parse(organization).map_err(|error| error.to_string())?,
        event_id: EventId::from_parts(&["linkedin", organization, &notification_id]),
        kind: EventKind::SocialAction,
        occurred_at,
        data: json!({
            "notification_id": notification_id,
            "organizational_entity": organization,
            "action": action,
            "source_post": notification.get("sourcePost"),
            "generated_activity": notification.get("generatedActivity"),
            "subscriber": notification.get("subscriber"),
            "notification": notification,
        }),
        status: None,
    })
}

fn lead_action(value: &Value) -> Result<PendingEvent, String> {
    let response = urn(value, "leadGenFormResponse")?;
    let owner = value.get("owner").ok_or("owner is missing")?;
    let owner_urn = owner
        .get("organization")
        .or_else(|| owner.get("sponsoredAccount"))
        .and_then(Value::as_str)
        .ok_or("owner has neither organization nor sponsoredAccount")?;
    let owner_urn = checked(owner_urn, "owner")?;
    let action = value.get("leadAction").and_then(Value::as_str).unwrap_or("CREATED");
    let occurred_at = value
        .get("occurredAt")
        .and_then(epoch_millis)
        .and_then(rfc3339_from_unix_millis)
        .unwrap_or_else(|| rfc3339(chrono::Utc::now()));

    Ok(PendingEvent {
        external_id: ExternalId::parse(owner_urn).map_err(|error| error.to_string())?,
        event_id: EventId::from_parts(&["linkedin", owner_urn, response, &action.to_ascii_lowercase()]),
        kind: EventKind::LeadAction,
        occurred_at,
        data: json!({
            "lead_gen_form_response": response,
            "lead_gen_form": value.get("leadGenForm"),
            "owner": owner,
            "lead_type": value.get("leadType"),
            "lead_action": action,
            "associated_entity": value.get("associatedEntity"),
            "notification": value,
        }),
        status: None,
    })
}

/// Reads epoch milliseconds sent as a JSON number or as a string of digits.
fn epoch_millis(value: &Value) -> Option<i64> {
    value.as_i64().or_else(|| value.as_str()?.trim().parse().ok())
}

fn urn<'a>(value: &'a Value, field: &str) -> Result<&'a str, String> {
    let text = value.get(field).and_then(Value::as_str).ok_or_else(|| format!("{field} is missing or not a string"))?;
    checked(text, field)
}

fn checked<'a>(text: &'a str, field: &str) -> Result<&'a str, String> {
    if text.is_empty()
        || text.len() > MAX_ID_BYTES
        || !text.starts_with("urn:li:")
        || text.contains(|c: char| c.is_control() || c == '#')
    {
        return Err(format!("{field} {text:?} is not a LinkedIn URN"));
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    const COMMENT: &str = r#"{"type":"ORGANIZATION_SOCIAL_ACTION_NOTIFICATIONS","notifications":[{"notificationId":2001,"organizationalEntity":"urn:li:organization:5515715","action":"COMMENT","sourcePost":"urn:li:share:7","generatedActivity":"urn:li:comment:(urn:li:activity:7,9)","lastModifiedAt":1796300000000}]}"#;

    #[test]
    fn normalize_comment_keys_on_notification_id() {
        let batch = normalize(COMMENT.as_bytes()).unwrap();
        assert_eq!(batch.events[0].event_id.as_str(), "linkedin:urn:li:organization:5515715:2001");
        assert_eq!(batch.events[0].data["notification_id"], "2001");
        assert_eq!(batch.events[0].occurred_at, "2026-12-03T12:13:20.000Z");
    }

    #[test]
    fn normalize_missing_decorated_fields_accepted() {
        let body = r#"{"type":"ORGANIZATION_SOCIAL_ACTION_NOTIFICATIONS","notifications":[{"notificationId":1,"organizationalEntity":"urn:li:organization:1","action":"LIKE"}]}"#;
        let batch = normalize(body.as_bytes()).unwrap();
        assert_eq!(batch.events.len(), 1);
        assert!(batch.problems.is_empty());
    }

    #[test]
    fn normalize_string_notification_id_is_problem() {
        let body = r#"{"type":"ORGANIZATION_SOCIAL_ACTION_NOTIFICATIONS","notifications":[{"notificationId":"1","organizationalEntity":"urn:li:organization:1","action":"LIKE"}]}"#;
        let batch = normalize(body.as_bytes()).unwrap();
        assert!(batch.events.is_empty());
        assert_eq!(batch.problems.len(), 1);
    }

    #[test]
    fn normalize_lead_routes_by_owner_organization() {
        let body = r#"{"type":"LEAD_ACTION","leadGenFormResponse":"urn:li:leadGenFormResponse:abc","owner":{"organization":"urn:li:organization:9"},"leadAction":"CREATED","occurredAt":1796300000000}"#;
        let batch = normalize(body.as_bytes()).unwrap();
        assert_eq!(batch.events[0].external_id.as_str(), "urn:li:organization:9");
        assert_eq!(
            batch.events[0].event_id.as_str(),
            "linkedin:urn:li:organization:9:urn:li:leadGenFormResponse:abc:created"
        );
    }

    #[test]
    fn normalize_unknown_type_rejected() {
        assert!(matches!(normalize(br#"{"type":"PAGE_VIEW"}"#), Err(EnvelopeError::UnknownType(_))));
    }

    #[test]
    fn normalize_non_urn_entity_is_problem() {
        let body = r#"{"type":"ORGANIZATION_SOCIAL_ACTION_NOTIFICATIONS","notifications":[{"notificationId":1,"organizationalEntity":"acme#1","action":"LIKE"}]}"#;
        assert_eq!(normalize(body.as_bytes()).unwrap().problems.len(), 1);
    }
}
