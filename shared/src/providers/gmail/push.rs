//! The Pub/Sub push body and the Gmail notification inside it.

use base64::Engine;
use serde::{Deserialize, Deserializer};
use serde_json::Value;
use thiserror::Error;

/// Reason a verified push body could not be read.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum PushError {
    #[error("body is not a Pub/Sub push: {0}")]
    Envelope(String),
    #[error("message.messageId is missing or empty")]
    MissingMessageId,
    #[error("message.data is not base64 in either alphabet")]
    DataNotBase64,
    #[error("message.data is not a Gmail notification: {0}")]
    Notification(String),
    #[error("historyId {0:?} is not a positive integer")]
    HistoryId(String),
}

/// A Gmail notification as delivered by one push.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GmailPush {
    pub message_id: String,
    pub publish_time: Option<String>,
    pub subscription: Option<String>,
    pub email_address: String,
    pub history_id: u64,
}

#[derive(Deserialize)]
struct Envelope {
    message: Message,
    #[serde(default)]
    subscription: Option<String>,
}

#[derive(Deserialize)]
struct Message {
    #[serde(default)]
    data: Option<String>,
    #[serde(default, rename = "messageId")]
    message_id_camel: Option<String>,
    #[serde(default, rename = "message_id")]
    message_id_snake: Option<String>,
    #[serde(default, rename = "publishTime")]
    publish_time_camel: Option<String>,
    #[serde(default, rename = "publish_time")]
    publish_time_snake: Option<String>,
    #[serde(default)]
    #[allow(dead_code)]
    attributes: Option<Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Notification {
    email_address: String,
    #[serde(deserialize_with = "history_id")]
    history_id: u64,
}

/// Accepts a historyId as a JSON string or number; Gmail sends both.
fn history_id<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u64, D::Error> {
    match Value::deserialize(deserializer)? {
        Value::Number(number) => number
            .as_u64()
            .filter(|id| *id > 0)
            .ok_or_else(|| serde::de::Error::custom(format!("historyId {number} is not a positive integer"))),
        Value::String(text) => text
            .trim()
            .parse::<u64>()
            .ok()
            .filter(|id| *id > 0)
            .ok_or_else(|| serde::de::Error::custom(format!("historyId {text:?} is not a positive integer"))),
        other => Err(serde::de::Error::custom(format!("historyId {other} is not a string or number"))),
    }
}

/// Decodes base64 in the standard or URL-safe alphabet, with or without padding.
pub fn decode_base64_any(text: &str) -> Option<Vec<u8>> {
    let trimmed = text.trim().trim_end_matches('=');
    let engine = if trimmed.contains(['-', '_']) {
        base64::engine::general_purpose::URL_SAFE_NO_PAD
    } else {
        base64::engine::general_purpose::STANDARD_NO_PAD
    };
    engine.decode(trimmed).ok()
}

/// Parses a push body into the Gmail notification it carries.
pub fn parse(body: &[u8]) -> Result<GmailPush, PushError> {
    let envelope: Envelope = serde_json::from_slice(body).map_err(|error| PushError::Envelope(error.to_string()))?;
    let message = envelope.message;
    let message_id = message
        .message_id_camel
        .or(message.message_id_snake)
        .filter(|id| !id.is_empty() && id.len() <= 256)
        .ok_or(PushError::MissingMessageId)?;

    let data = message
        .data
        .as_deref()
        .map(decode_base64_any)
        .ok_or(PushError::DataNotBase64)?
        .ok_or(PushError::DataNotBase64)?;
    let notification: Notification =
        serde_json::from_slice(&data).map_err(|error| PushError::Notification(error.to_string()))?;

    Ok(GmailPush {
        message_id,
        publish_time: message.publish_time_camel.or(message.publish_time_snake),
        subscription: envelope.subscription,
        email_address: notification.email_address,
        history_id: notification.history_id,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn push(data: &str, extra: &str) -> Vec<u8> {
        format!(r#"{{"message":{{"data":"{data}"{extra}}},"subscription":"projects/p/subscriptions/s"}}"#).into_bytes()
    }

    fn encode(json: &str, engine: base64::engine::GeneralPurpose) -> String {
        engine.encode(json)
    }

    #[test]
    fn push_numeric_history_id_parses() {
        let data = encode(
            r#"{"emailAddress":"ops@example.com","historyId":9876543210}"#,
            base64::engine::general_purpose::STANDARD,
        );
        let parsed = parse(&push(&data, r#","messageId":"1","publishTime":"2026-12-04T10:00:00Z""#)).unwrap();
        assert_eq!(parsed.history_id, 9_876_543_210);
        assert_eq!(parsed.publish_time.as_deref(), Some("2026-12-04T10:00:00Z"));
    }

    #[test]
    fn push_string_history_id_in_base64url_parses() {
        let data = encode(
            r#"{"emailAddress":"ops@example.com","historyId":"1234567"}"#,
            base64::engine::general_purpose::URL_SAFE_NO_PAD,
        );
        let parsed = parse(&push(&data, r#","message_id":"2""#)).unwrap();
        assert_eq!(parsed.history_id, 1_234_567);
        assert_eq!(parsed.message_id, "2");
    }

    #[test]
    fn push_without_message_id_rejected() {
        let data = encode(r#"{"emailAddress":"a@b.c","historyId":1}"#, base64::engine::general_purpose::STANDARD);
        assert_eq!(parse(&push(&data, "")), Err(PushError::MissingMessageId));
    }

    #[test]
    fn push_negative_history_id_rejected() {
        let data = encode(r#"{"emailAddress":"a@b.c","historyId":-5}"#, base64::engine::general_purpose::STANDARD);
        assert!(matches!(parse(&push(&data, r#","messageId":"1""#)), Err(PushError::Notification(_))));
    }

    #[test]
    fn push_data_not_base64_rejected() {
        assert_eq!(parse(&push("%%%", r#","messageId":"1""#)), Err(PushError::DataNotBase64));
    }

    #[test]
    fn base64_any_accepts_padded_standard() {
        assert_eq!(decode_base64_any("aGk+Pz8="), Some(b"hi>??".to_vec()));
        assert_eq!(decode_base64_any("aGk-Pz8"), Some(b"hi>??".to_vec()));
    }
}
