//! The WhatsApp Cloud API notification payload, as Meta sends it.
//!
//! Only the fields commsync routes and keys on are typed; the original objects are kept
//! as JSON so a canonical event loses nothing Meta sent.

use serde::{Deserialize, Deserializer};
use serde_json::Value;

/// The envelope of every POST.
#[derive(Debug, Deserialize)]
pub struct Notification {
    pub object: String,
    pub entry: Vec<Entry>,
}

/// One WhatsApp Business Account (`id` is the WABA id).
#[derive(Debug, Deserialize)]
pub struct Entry {
    pub id: String,
    #[serde(default)]
    pub changes: Vec<Change>,
}

/// One change on a WABA: `field` names the kind, `value` its content.
#[derive(Debug, Deserialize)]
pub struct Change {
    pub field: String,
    pub value: Value,
}

/// The `value` of a `messages` change.
#[derive(Debug, Deserialize)]
pub struct MessagesValue {
    pub metadata: Metadata,
    #[serde(default)]
    pub contacts: Vec<Contact>,
    #[serde(default)]
    pub messages: Vec<Value>,
    #[serde(default)]
    pub statuses: Vec<Value>,
    #[serde(default)]
    pub errors: Vec<Value>,
}

#[derive(Debug, Deserialize)]
pub struct Metadata {
    #[serde(default)]
    pub display_phone_number: Option<String>,
    pub phone_number_id: String,
}

#[derive(Debug, Deserialize)]
pub struct Contact {
    #[serde(default)]
    pub wa_id: Option<String>,
    #[serde(default)]
    pub profile: Option<Profile>,
}

#[derive(Debug, Deserialize)]
pub struct Profile {
    #[serde(default)]
    pub name: Option<String>,
}

/// The fields of an inbound message that commsync keys and orders on.
#[derive(Debug, Deserialize)]
pub struct MessageHead {
    pub id: String,
    pub from: String,
    #[serde(deserialize_with = "unix_seconds")]
    pub timestamp: i64,
    #[serde(rename = "type")]
    pub message_type: String,
}

/// The fields of a status update that commsync keys and ranks on.
#[derive(Debug, Deserialize)]
pub struct StatusHead {
    pub id: String,
    pub status: String,
    #[serde(deserialize_with = "unix_seconds")]
    pub timestamp: i64,
    #[serde(default)]
    pub recipient_id: Option<String>,
    #[serde(default)]
    pub errors: Vec<Value>,
}

/// Accepts Unix seconds as Meta sends them (a string of digits) and as a JSON number.
fn unix_seconds<'de, D: Deserializer<'de>>(deserializer: D) -> Result<i64, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Seconds {
        Text(String),
        Number(i64),
    }

    match Seconds::deserialize(deserializer)? {
        Seconds::Number(seconds) => Ok(seconds),
        Seconds::Text(text) => {
            text.trim().parse().map_err(|_| serde::de::Error::custom(format!("timestamp {text:?} is not Unix seconds")))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_head_accepts_string_timestamp() {
        let head: MessageHead =
            serde_json::from_str(r#"{"id":"wamid.1","from":"1","timestamp":"1700000000","type":"text"}"#).unwrap();
        assert_eq!(head.timestamp, 1_700_000_000);
    }

    #[test]
    fn message_head_accepts_number_timestamp() {
        let head: MessageHead =
            serde_json::from_str(r#"{"id":"wamid.1","from":"1","timestamp":1700000000,"type":"text"}"#).unwrap();
        assert_eq!(head.timestamp, 1_700_000_000);
    }

    #[test]
    fn message_head_rejects_text_timestamp() {
        let result =
            serde_json::from_str::<MessageHead>(r#"{"id":"wamid.1","from":"1","timestamp":"soon","type":"text"}"#);
        assert!(result.is_err());
    }
}
