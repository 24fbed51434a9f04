//! A JSON Web Key Set fetched over HTTPS and cached across invocations.
//!
//! Keys are fetched on first use (never at init, so a cold start makes no network call)
//! and again when a token names an unknown `kid`, at most once per `min_refresh`, so a
//! flood of forged `kid` values cannot turn into a flood of fetches.

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::DecodingKey;
use std::collections::HashMap;
use std::time::{Duration, Instant};
use thiserror::Error;
use tokio::sync::Mutex;

/// Failures of getting a key.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum JwksError {
    #[error("no key with kid {0:?} in the JWKS, even after a refresh")]
    UnknownKid(String),
    #[error("fetching the JWKS from {url} failed: {message}")]
    Fetch { url: String, message: String },
}

struct CachedKeys {
    keys: HashMap<String, DecodingKey>,
    fetched_at: Instant,
}

/// The cache of one JWKS URL.
pub struct JwksCache {
    url: String,
    client: reqwest::Client,
    /// Keys older than this are fetched again on the next lookup.
    max_age: Duration,
    /// Minimum time between two fetches caused by unknown `kid` values.
    min_refresh: Duration,
    state: Mutex<Option<CachedKeys>>,
}

impl std::fmt::Debug for JwksCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwksCache").field("url", &self.url).finish_non_exhaustive()
    }
}

impl JwksCache {
    pub fn new(url: impl Into<String>) -> Self {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(3))
            .build()
            .expect("the HTTP client builds with default TLS settings");
        Self {
            url: url.into(),
            client,
            max_age: Duration::from_secs(3600),
            min_refresh: Duration::from_secs(30),
            state: Mutex::new(None),
        }
    }

    /// Sets the minimum time between fetches caused by unknown `kid` values (default 30 s).
    pub fn with_min_refresh(mut self, min_refresh: Duration) -> Self {
        self.min_refresh = min_refresh;
        self
    }

    /// Returns the decoding key for `kid`, fetching the set when needed.
    pub async fn key(&self, kid: &str) -> Result<DecodingKey, JwksError> {
        let mut state = self.state.lock().await;

        let stale = state.as_ref().is_none_or(|cached| cached.fetched_at.elapsed() > self.max_age);
        let unknown = state.as_ref().is_some_and(|cached| !cached.keys.contains_key(kid));
        let may_refresh = state.as_ref().is_none_or(|cached| cached.fetched_at.elapsed() >= self.min_refresh);
        if stale || (unknown && may_refresh) {
            match self.fetch().await {
                Ok(keys) => *state = Some(CachedKeys { keys, fetched_at: Instant::now() }),
                // Keep serving the old keys when a refresh fails; fail only with none at all.
                Err(error) if state.is_some() => tracing::warn!(%error, "JWKS refresh failed; using cached keys"),
                Err(error) => return Err(error),
            }
        }

        let cached = state.as_ref().expect("keys were fetched above");
        cached.keys.get(kid).cloned().ok_or_else(|| JwksError::UnknownKid(kid.to_string()))
    }

    async fn fetch(&self) -> Result<HashMap<String, DecodingKey>, JwksError> {
        let fetch_error = |message: String| JwksError::Fetch { url: self.url.clone(), message };
        let response = self.client.get(&self.url).send().await.map_err(|error| fetch_error(error.to_string()))?;
        if !response.status().is_success() {
            return Err(fetch_error(format!("HTTP {}", response.status())));
        }
        let set: JwkSet = response.json().await.map_err(|error| fetch_error(format!("invalid JWKS: {error}")))?;

        let mut keys = HashMap::new();
        for jwk in &set.keys {
            let Some(kid) = jwk.common.key_id.clone() else { continue };
            match DecodingKey::from_jwk(jwk) {
                Ok(key) => {
                    keys.insert(kid, key);
                }
                Err(error) => tracing::warn!(kid = %kid, %error, "JWKS key skipped"),
            }
        }
        tracing::info!(url = %self.url, keys = keys.len(), "JWKS fetched");
        Ok(keys)
    }
}
