//! Newtypes for the identifiers that cross module boundaries, parsed once at the edge.

use serde::{Deserialize, Serialize};
use std::fmt;
use thiserror::Error;

/// The reason an identifier was rejected.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum IdError {
    #[error("{kind} is empty")]
    Empty { kind: &'static str },
    #[error("{kind} is longer than {max} bytes")]
    TooLong { kind: &'static str, max: usize },
    #[error("{kind} contains '{character}', which is not allowed (use letters, digits and - _ . @ : +)")]
    InvalidCharacter { kind: &'static str, character: char },
    #[error("unknown provider {0:?}: expected whatsapp, gmail or linkedin")]
    UnknownProvider(String),
    #[error("{value:?} is not a {provider} id: expected {expected}")]
    WrongShape { provider: &'static str, value: String, expected: &'static str },
}

/// Maximum length of a tenant or account id, well below DynamoDB's 2 KB key limit.
const MAX_ID_BYTES: usize = 128;

fn check_id(kind: &'static str, value: &str, max: usize) -> Result<(), IdError> {
    if value.is_empty() {
        return Err(IdError::Empty { kind });
    }
    if value.len() > max {
        return Err(IdError::TooLong { kind, max });
    }
    // `#` separates key parts, so it must never appear inside one.
    if let Some(character) =
        value.chars().find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '@' | ':' | '+')))
    {
        return Err(IdError::InvalidCharacter { kind, character });
    }
    Ok(())
}

macro_rules! string_id {
    ($(#[$doc:meta])* $name:ident, $kind:literal, $max:expr) => {
        $(#[$doc])*
        #[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            pub fn parse(value: impl Into<String>) -> Result<Self, IdError> {
                let value = value.into();
                check_id($kind, &value, $max)?;
                Ok(Self(value))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = IdError;
            fn try_from(value: String) -> Result<Self, IdError> {
                Self::parse(value)
            }
        }

        impl From<$name> for String {
            fn from(value: $name) -> String {
                value.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.pad(&self.0)
            }
        }

        impl std::str::FromStr for $name {
            type Err = IdError;
            fn from_str(value: &str) -> Result<Self, IdError> {
                Self::parse(value)
            }
        }
    };
}

string_id!(
    /// The customer of commsync that owns accounts. Every key of tenant data starts with it.
    TenantId, "tenant id", MAX_ID_BYTES
);
string_id!(
    /// One connected messaging account of a tenant (a number, a mailbox, a page).
    AccountId, "account id", MAX_ID_BYTES
);
string_id!(
    /// The provider's id for an account: WhatsApp `phone_number_id`, Gmail address, LinkedIn organization URN.
    ExternalId, "external id", 512
);

impl ExternalId {
    /// Parses an external id in the form the route items store for `provider`
    /// (Gmail addresses are lower-cased, because Gmail treats them case-insensitively).
    /// Rejects values that cannot be that provider's id: a `phone_number_id` is digits,
    /// a mailbox has an `@`, a LinkedIn owner is a `urn:li:` URN.
    pub fn for_provider(provider: Provider, value: &str) -> Result<Self, IdError> {
        let value = value.trim();
        let wrong_shape =
            |expected| IdError::WrongShape { provider: provider.as_str(), value: value.to_string(), expected };
        match provider {
            Provider::WhatsApp if !value.chars().all(|c| c.is_ascii_digit()) => {
                Err(wrong_shape("the phone_number_id, digits only"))
            }
            Provider::Gmail if !value.contains('@') => Err(wrong_shape("the mailbox address, such as ops@example.com")),
            Provider::LinkedIn if !value.starts_with("urn:li:") => {
                Err(wrong_shape("the organization URN, such as urn:li:organization:5515715"))
            }
            Provider::Gmail => Self::parse(value.to_ascii_lowercase()),
            Provider::WhatsApp | Provider::LinkedIn => Self::parse(value),
        }
    }
}

/// A stable canonical event id, such as `whatsapp:{phone_number_id}:{wamid}:message`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct EventId(String);

impl EventId {
    /// Builds an event id from its parts, joined with `:`. Parts come from verified payloads.
    pub fn from_parts(parts: &[&str]) -> Self {
        Self(parts.join(":"))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(&self.0)
    }
}

/// A messaging provider commsync syncs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Provider {
    #[serde(rename = "whatsapp")]
    WhatsApp,
    #[serde(rename = "gmail")]
    Gmail,
    #[serde(rename = "linkedin")]
    LinkedIn,
}

impl Provider {
    pub const ALL: [Provider; 3] = [Provider::WhatsApp, Provider::Gmail, Provider::LinkedIn];

    pub fn as_str(self) -> &'static str {
        match self {
            Provider::WhatsApp => "whatsapp",
            Provider::Gmail => "gmail",
            Provider::LinkedIn => "linkedin",
        }
    }
}

impl fmt::Display for Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

impl std::str::FromStr for Provider {
    type Err = IdError;
    fn from_str(value: &str) -> Result<Self, IdError> {
        match value.to_ascii_lowercase().as_str() {
            "whatsapp" => Ok(Provider::WhatsApp),
            "gmail" => Ok(Provider::Gmail),
            "linkedin" => Ok(Provider::LinkedIn),
            _ => Err(IdError::UnknownProvider(value.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenant_id_rejects_key_separator() {
        assert_eq!(TenantId::parse("acme#other"), Err(IdError::InvalidCharacter { kind: "tenant id", character: '#' }));
    }

    #[test]
    fn tenant_id_rejects_empty() {
        assert_eq!(TenantId::parse(""), Err(IdError::Empty { kind: "tenant id" }));
    }

    #[test]
    fn external_id_lowercases_gmail_address() {
        let id = ExternalId::for_provider(Provider::Gmail, "Ops@Example.COM").unwrap();
        assert_eq!(id.as_str(), "ops@example.com");
    }

    #[test]
    fn external_id_rejects_non_numeric_phone_number_id() {
        assert!(matches!(
            ExternalId::for_provider(Provider::WhatsApp, "not-a-number"),
            Err(IdError::WrongShape { .. })
        ));
    }

    #[test]
    fn external_id_rejects_linkedin_without_urn() {
        assert!(matches!(ExternalId::for_provider(Provider::LinkedIn, "5515715"), Err(IdError::WrongShape { .. })));
    }

    #[test]
    fn display_honours_width() {
        assert_eq!(format!("{:<6}|", TenantId::parse("acme").unwrap()), "acme  |");
    }

    #[test]
    fn provider_parses_case_insensitively() {
        assert_eq!("WhatsApp".parse::<Provider>(), Ok(Provider::WhatsApp));
        assert!("telegram".parse::<Provider>().is_err());
    }
}
