//! Turns a verified WhatsApp notification into provider-neutral pending events.

use super::payload::{Change, Contact, MessageHead, MessagesValue, Notification, StatusHead};
use super::status;
use crate::event::{rfc3339_from_unix_seconds, EventKind};
use crate::ids::{EventId, ExternalId};
use crate::ingest::{NormalizedBatch, PendingEvent, StatusUpdate};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use thiserror::Error;

/// Failure to read a verified body as a WhatsApp notification at all.
#[derive(Debug, Error)]
pub enum EnvelopeError {
    #[error("body is not a JSON notification: {0}")]
    Json(#[from] serde_json::Error),
    #[error("object is {0:?}, expected \"whatsapp_business_account\"")]
    WrongObject(String),
}

/// Maximum length of a provider id (wamid, phone_number_id) taken into a key.
const MAX_PROVIDER_ID_BYTES: usize = 512;

/// Parses the body and normalizes every entry, change, message, status and error.
///
/// A change that cannot be read is reported in `problems` while the rest of the body is
/// still normalized, so one bad change never holds back the others.
pub fn normalize(body: &[u8]) -> Result<NormalizedBatch, EnvelopeError> {
    let notification: Notification = serde_json::from_slice(body)?;
    if notification.object != "whatsapp_business_account" {
        return Err(EnvelopeError::WrongObject(notification.object));
    }

    let mut batch = NormalizedBatch::default();
    for entry in &notification.entry {
        for (index, change) in entry.changes.iter().enumerate() {
            if let Err(problem) = normalize_change(&entry.id, change, &mut batch) {
                batch.problems.push(format!("entry {} change {index} ({}): {problem}", entry.id, change.field));
            }
        }
    }
    Ok(batch)
}

fn normalize_change(waba_id: &str, change: &Change, batch: &mut NormalizedBatch) -> Result<(), String> {
    if change.field != "messages" {
        return normalize_other_field(waba_id, change, batch);
    }

    let value: MessagesValue = serde_json::from_value(change.value.clone()).map_err(|error| error.to_string())?;
    let phone_number_id = checked_id("metadata.phone_number_id", &value.metadata.phone_number_id)?;
    let external_id = ExternalId::parse(phone_number_id).map_err(|error| error.to_string())?;
    let context = ChangeContext {
        waba_id,
        phone_number_id,
        display_phone_number: value.metadata.display_phone_number.as_deref(),
        external_id: &external_id,
    };

    // Each item is read on its own, so one malformed message leaves its siblings intact.
    let mut problems = Vec::new();
    for message in &value.messages {
        match message_event(&context, &value.contacts, message) {
            Ok(event) => batch.events.push(event),
            Err(problem) => problems.push(format!("message: {problem}")),
        }
    }
    for status in &value.statuses {
        match status_event(&context, status) {
            Ok(event) => batch.events.push(event),
            Err(problem) => problems.push(format!("status: {problem}")),
        }
    }
    for error in &value.errors {
        batch.events.push(alert_event(&context, "error", error));
    }

    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("; "))
    }
}

struct ChangeContext<'a> {
    waba_id: &'a str,
    phone_number_id: &'a str,
    display_phone_number: Option<&'a str>,
    external_id: &'a ExternalId,
}

fn message_event(context: &ChangeContext, contacts: &[Contact], message: &Value) -> Result<PendingEvent, String> {
    let head: MessageHead = serde_json::from_value(message.clone()).map_err(|error| error.to_string())?;
    let wamid = checked_id("message id", &head.id)?;
    let occurred_at = rfc3339_from_unix_seconds(head.timestamp).ok_or("timestamp out of range")?;

    let contact_name = contacts
        .iter()
        .find(|contact| contact.wa_id.as_deref() == Some(head.from.as_str()))
        .and_then(|contact| contact.profile.as_ref())
        .and_then(|profile| profile.name.clone());
    let text = message.pointer("/text/body").and_then(Value::as_str);

    Ok(PendingEvent {
        external_id: context.external_id.clone(),
        event_id: EventId::from_parts(&["whatsapp", context.phone_number_id, wamid, "message"]),
        kind: EventKind::MessageReceived,
        occurred_at,
        data: json!({
            "waba_id": context.waba_id,
            "phone_number_id": context.phone_number_id,
            "display_phone_number": context.display_phone_number,
            "wamid": wamid,
            "from": head.from,
            "contact_name": contact_name,
            "type": head.message_type,
            "text": text,
            "message": message,
        }),
        status: None,
    })
}

fn status_event(context: &ChangeContext, status_value: &Value) -> Result<PendingEvent, String> {
    let head: StatusHead = serde_json::from_value(status_value.clone()).map_err(|error| error.to_string())?;
    let wamid = checked_id("status id", &head.id)?;
    let status_name = checked_id("status", &head.status)?;
    let occurred_at = rfc3339_from_unix_seconds(head.timestamp).ok_or("timestamp out of range")?;

    Ok(PendingEvent {
        external_id: context.external_id.clone(),
        event_id: EventId::from_parts(&["whatsapp", context.phone_number_id, wamid, "status", status_name]),
        kind: EventKind::MessageStatus,
        occurred_at: occurred_at.clone(),
        data: json!({
            "waba_id": context.waba_id,
            "phone_number_id": context.phone_number_id,
            "wamid": wamid,
            "status": status_name,
            "recipient_id": head.recipient_id,
            "errors": head.errors,
            "status_object": status_value,
        }),
        status: Some(StatusUpdate {
            provider_message_id: wamid.to_string(),
            status: status_name.to_string(),
            rank: status::rank(status_name),
            orphan_if_first: status::is_orphan_first_status(status_name),
            occurred_at,
            errors: Value::Array(head.errors),
        }),
    })
}

/// An `errors[]` item or a non-message change, keyed by a digest of its content so a
/// redelivery gets the same event id.
fn alert_event(context: &ChangeContext, alert_type: &str, value: &Value) -> PendingEvent {
    PendingEvent {
        external_id: context.external_id.clone(),
        event_id: EventId::from_parts(&["whatsapp", context.phone_number_id, "alert", &content_digest(value)]),
        kind: EventKind::AccountAlert,
        occurred_at: crate::event::rfc3339(chrono::Utc::now()),
        data: json!({
            "waba_id": context.waba_id,
            "phone_number_id": context.phone_number_id,
            "alert_type": alert_type,
            "detail": value,
        }),
        status: None,
    }
}

/// Changes other than `messages` (quality ratings, template reviews, account updates)
/// become alerts when they name a phone number to route by.
fn normalize_other_field(waba_id: &str, change: &Change, batch: &mut NormalizedBatch) -> Result<(), String> {
    let phone_number_id = change
        .value
        .pointer("/metadata/phone_number_id")
        .and_then(Value::as_str)
        .ok_or("no metadata.phone_number_id to route this field by")?;
    let phone_number_id = checked_id("metadata.phone_number_id", phone_number_id)?;
    let external_id = ExternalId::parse(phone_number_id).map_err(|error| error.to_string())?;
    let context = ChangeContext { waba_id, phone_number_id, display_phone_number: None, external_id: &external_id };

    let value = json!({ "field": change.field, "value": change.value });
    batch.events.push(alert_event(&context, &change.field, &value));
    Ok(())
}

fn checked_id<'a>(name: &str, value: &'a str) -> Result<&'a str, String> {
    if value.is_empty() || value.len() > MAX_PROVIDER_ID_BYTES || value.contains(|c: char| c.is_control() || c == ':') {
        return Err(format!(
            "{name} is empty, longer than {MAX_PROVIDER_ID_BYTES} bytes, or contains ':' or control characters"
        ));
    }
    Ok(value)
}

/// First 16 bytes of SHA-256 over the value's JSON with sorted keys, as hex.
fn content_digest(value: &Value) -> String {
    let canonical = serde_json::to_vec(value).expect("a JSON value always serializes");
    hex::encode(&Sha256::digest(canonical)[..16])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(changes: &str) -> Vec<u8> {
        format!(r#"{{"object":"whatsapp_business_account","entry":[{{"id":"WABA1","changes":[{changes}]}}]}}"#)
            .into_bytes()
    }

    const MESSAGE_CHANGE: &str = r#"{"field":"messages","value":{"messaging_product":"whatsapp","metadata":{"display_phone_number":"15550001111","phone_number_id":"PN1"},"contacts":[{"wa_id":"4915100","profile":{"name":"Zo\u00eb"}}],"messages":[{"from":"4915100","id":"wamid.A","timestamp":"1700000000","type":"text","text":{"body":"hi"}}]}}"#;

    #[test]
    fn normalize_message_builds_event_id() {
        let batch = normalize(&body(MESSAGE_CHANGE)).unwrap();
        assert_eq!(batch.events.len(), 1);
        assert_eq!(batch.events[0].event_id.as_str(), "whatsapp:PN1:wamid.A:message");
        assert_eq!(batch.events[0].data["contact_name"], "Zoë");
    }

    #[test]
    fn normalize_status_carries_rank() {
        let change = r#"{"field":"messages","value":{"metadata":{"phone_number_id":"PN1"},"statuses":[{"id":"wamid.B","status":"read","timestamp":"1700000001","recipient_id":"4915100"}]}}"#;
        let batch = normalize(&body(change)).unwrap();
        let status = batch.events[0].status.as_ref().unwrap();
        assert_eq!(batch.events[0].event_id.as_str(), "whatsapp:PN1:wamid.B:status:read");
        assert_eq!(status.rank, 3);
    }

    #[test]
    fn normalize_bad_message_keeps_siblings() {
        let change = r#"{"field":"messages","value":{"metadata":{"phone_number_id":"PN1"},"messages":[{"id":"wamid.C"},{"from":"1","id":"wamid.D","timestamp":"1700000000","type":"text"}]}}"#;
        let batch = normalize(&body(change)).unwrap();
        assert_eq!(batch.events.len(), 1);
        assert_eq!(batch.problems.len(), 1);
    }

    #[test]
    fn normalize_wrong_object_rejected() {
        let result = normalize(br#"{"object":"page","entry":[]}"#);
        assert!(matches!(result, Err(EnvelopeError::WrongObject(_))));
    }

    #[test]
    fn normalize_not_json_rejected() {
        assert!(matches!(normalize(b"\xff{"), Err(EnvelopeError::Json(_))));
    }

    #[test]
    fn normalize_error_item_becomes_alert() {
        let change = r#"{"field":"messages","value":{"metadata":{"phone_number_id":"PN1"},"errors":[{"code":131047,"title":"Re-engagement message"}]}}"#;
        let batch = normalize(&body(change)).unwrap();
        assert_eq!(batch.events[0].kind, EventKind::AccountAlert);
        assert!(batch.events[0].event_id.as_str().starts_with("whatsapp:PN1:alert:"));
    }

    #[test]
    fn normalize_colon_in_wamid_rejected() {
        let change = r#"{"field":"messages","value":{"metadata":{"phone_number_id":"PN1"},"messages":[{"from":"1","id":"wamid:evil","timestamp":"1","type":"text"}]}}"#;
        let batch = normalize(&body(change)).unwrap();
        assert!(batch.events.is_empty());
        assert_eq!(batch.problems.len(), 1);
    }
}
