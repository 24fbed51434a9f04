//! Typed configuration read from the environment once, at init. A missing or invalid
//! variable fails the cold start with a message naming it.

use crate::ingest::Limits;
use crate::secret::Secret;
use crate::store::Tables;
use std::time::Duration;
use thiserror::Error;

/// A configuration problem, naming the variable to set.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error("environment variable {0} is not set; set it (the SAM template passes it to every function)")]
    Missing(&'static str),
    #[error("environment variable {name} is invalid: {problem}")]
    Invalid { name: &'static str, problem: String },
}

/// Reads a variable through `lookup`, so tests can pass a map instead of the process environment.
pub trait Env {
    fn get(&self, name: &str) -> Option<String>;

    fn required(&self, name: &'static str) -> Result<String, ConfigError> {
        self.get(name).filter(|value| !value.is_empty()).ok_or(ConfigError::Missing(name))
    }

    fn secret(&self, name: &'static str) -> Result<Secret, ConfigError> {
        self.required(name).map(Secret::new)
    }

    fn optional_secret(&self, name: &'static str) -> Option<Secret> {
        self.get(name).filter(|value| !value.is_empty()).map(Secret::new)
    }

    fn number(&self, name: &'static str, default: u64) -> Result<u64, ConfigError> {
        match self.get(name).filter(|value| !value.is_empty()) {
            None => Ok(default),
            Some(value) => value
                .parse()
                .map_err(|_| ConfigError::Invalid { name, problem: format!("{value:?} is not a whole number") }),
        }
    }
}

/// The process environment.
pub struct ProcessEnv;

impl Env for ProcessEnv {
    fn get(&self, name: &str) -> Option<String> {
        std::env::var(name).ok()
    }
}

impl Env for std::collections::HashMap<String, String> {
    fn get(&self, name: &str) -> Option<String> {
        std::collections::HashMap::get(self, name).cloned()
    }
}

/// Names of the deployed tables and queues.
#[derive(Debug, Clone)]
pub struct ResourceConfig {
    pub tables: Tables,
    pub events_queue_url: String,
    /// How long canonical events are kept (`EVENT_RETENTION_DAYS`, default 30).
    pub event_retention: Duration,
    /// How long a route lookup is cached per container (`ROUTE_CACHE_SECONDS`, default 60).
    pub route_cache_ttl: Duration,
}

impl ResourceConfig {
    pub fn from_env(env: &impl Env) -> Result<Self, ConfigError> {
        Ok(Self {
            tables: Tables { accounts: env.required("ACCOUNTS_TABLE")?, events: env.required("EVENTS_TABLE")? },
            events_queue_url: env.required("EVENTS_QUEUE_URL")?,
            event_retention: Duration::from_secs(env.number("EVENT_RETENTION_DAYS", 30)? * 86_400),
            route_cache_ttl: Duration::from_secs(env.number("ROUTE_CACHE_SECONDS", 60)?),
        })
    }
}

/// Size limits (`MAX_BODY_BYTES`, `MAX_EVENT_BYTES`).
pub fn limits_from_env(env: &impl Env) -> Result<Limits, ConfigError> {
    let defaults = Limits::default();
    Ok(Limits {
        max_body_bytes: env.number("MAX_BODY_BYTES", defaults.max_body_bytes as u64)? as usize,
        max_event_bytes: env.number("MAX_EVENT_BYTES", defaults.max_event_bytes as u64)? as usize,
    })
}

/// WhatsApp secrets: `WHATSAPP_APP_SECRET`, optional `WHATSAPP_APP_SECRET_PREVIOUS` during a
/// rotation, and `WHATSAPP_VERIFY_TOKEN`.
#[derive(Debug, Clone)]
pub struct WhatsAppConfig {
    pub app_secret: Secret,
    pub previous_app_secret: Option<Secret>,
    pub verify_token: Secret,
}

impl WhatsAppConfig {
    pub fn from_env(env: &impl Env) -> Result<Self, ConfigError> {
        Ok(Self {
            app_secret: env.secret("WHATSAPP_APP_SECRET")?,
            previous_app_secret: env.optional_secret("WHATSAPP_APP_SECRET_PREVIOUS"),
            verify_token: env.secret("WHATSAPP_VERIFY_TOKEN")?,
        })
    }
}

/// Google's JWKS for the OIDC tokens Pub/Sub push attaches.
pub const GOOGLE_JWKS_URL: &str = "https://www.googleapis.com/oauth2/v3/certs";

/// Gmail push settings: `GMAIL_PUSH_AUDIENCE`, `GMAIL_PUSH_SERVICE_ACCOUNT`,
/// `GMAIL_JWKS_URL` (Google's by default), `SYNC_QUEUE_URL`, `RECOVERY_LEASE_SECONDS`.
#[derive(Debug, Clone)]
pub struct GmailConfig {
    /// The exact `aud` of push tokens: the audience set on the push subscription.
    pub audience: Secret,
    /// The service account whose `email` push tokens must carry.
    pub service_account: Secret,
    pub jwks_url: String,
    pub sync_queue_url: String,
    /// How long a sent recovery job blocks another one for the same account (default 900 s).
    pub recovery_lease: Duration,
}

impl GmailConfig {
    pub fn from_env(env: &impl Env) -> Result<Self, ConfigError> {
        Ok(Self {
            audience: env.secret("GMAIL_PUSH_AUDIENCE")?,
            service_account: env.secret("GMAIL_PUSH_SERVICE_ACCOUNT")?,
            jwks_url: env
                .get("GMAIL_JWKS_URL")
                .filter(|url| !url.is_empty())
                .unwrap_or_else(|| GOOGLE_JWKS_URL.to_string()),
            sync_queue_url: env.required("SYNC_QUEUE_URL")?,
            recovery_lease: Duration::from_secs(env.number("RECOVERY_LEASE_SECONDS", 900)?),
        })
    }
}

/// LinkedIn secrets: `LINKEDIN_CLIENT_SECRET`, and `LINKEDIN_APP_SECRETS` as
/// `applicationId=secret,applicationId=secret` when several apps share the endpoint.
#[derive(Debug, Clone)]
pub struct LinkedInConfig {
    pub client_secret: Secret,
    pub app_secrets: Vec<(String, Secret)>,
}

impl LinkedInConfig {
    pub fn from_env(env: &impl Env) -> Result<Self, ConfigError> {
        let mut app_secrets = Vec::new();
        for pair in
            env.get("LINKEDIN_APP_SECRETS").unwrap_or_default().split(',').filter(|pair| !pair.trim().is_empty())
        {
            let (application_id, secret) = pair.split_once('=').ok_or(ConfigError::Invalid {
                name: "LINKEDIN_APP_SECRETS",
                problem: "expected applicationId=secret pairs separated by commas".to_string(),
            })?;
            app_secrets.push((application_id.trim().to_string(), Secret::new(secret.trim())));
        }
        Ok(Self { client_secret: env.secret("LINKEDIN_CLIENT_SECRET")?, app_secrets })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn config_missing_variable_named() {
        let env: HashMap<String, String> = HashMap::new();
        assert_eq!(WhatsAppConfig::from_env(&env).unwrap_err(), ConfigError::Missing("WHATSAPP_APP_SECRET"));
    }

    #[test]
    fn config_linkedin_app_secrets_parse() {
        let env = HashMap::from([
            ("LINKEDIN_CLIENT_SECRET".to_string(), "main".to_string()),
            ("LINKEDIN_APP_SECRETS".to_string(), "77=seven, 88=eight".to_string()),
        ]);
        let config = LinkedInConfig::from_env(&env).unwrap();
        assert_eq!(config.app_secrets.len(), 2);
        assert_eq!(config.app_secrets[1].0, "88");
        assert_eq!(config.app_secrets[1].1.expose(), "eight");
    }

    #[test]
    fn config_linkedin_app_secret_without_equals_rejected() {
        let env = HashMap::from([
            ("LINKEDIN_CLIENT_SECRET".to_string(), "main".to_string()),
            ("LINKEDIN_APP_SECRETS".to_string(), "77".to_string()),
        ]);
        assert!(matches!(
            LinkedInConfig::from_env(&env),
            Err(ConfigError::Invalid { name: "LINKEDIN_APP_SECRETS", .. })
        ));
    }

    #[test]
    fn config_invalid_number_rejected() {
        let env = HashMap::from([("MAX_BODY_BYTES".to_string(), "lots".to_string())]);
        assert!(matches!(limits_from_env(&env), Err(ConfigError::Invalid { name: "MAX_BODY_BYTES", .. })));
    }
}
