//! Verification of the OIDC token Pub/Sub attaches to each push:
//! `Authorization: Bearer <JWT>`, RS256-signed by Google.

use super::jwks::{JwksCache, JwksError};
use crate::secret::Secret;
use base64::Engine;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, Validation};
use serde::Deserialize;
use serde_json::Value;
use thiserror::Error;

/// Issuers Google uses in OIDC tokens.
const GOOGLE_ISSUERS: [&str; 2] = ["https://accounts.google.com", "accounts.google.com"];
/// Longer headers are rejected before any decoding; Google's tokens are about 1 KB.
const MAX_TOKEN_BYTES: usize = 8 * 1024;

/// Reason a push token was rejected. Every variant is answered 401.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum AuthError {
    #[error("Authorization header is missing")]
    MissingHeader,
    #[error("Authorization header is not `Bearer <token>`")]
    NotBearer,
    #[error("token is malformed: {0}")]
    Malformed(String),
    #[error("token algorithm {0:?} is not RS256")]
    Algorithm(String),
    #[error("token key is unknown: {0}")]
    UnknownKey(String),
    #[error("signing keys are unavailable: {0}")]
    KeysUnavailable(String),
    #[error("token signature is invalid")]
    BadSignature,
    #[error("token has expired")]
    Expired,
    #[error("token is not valid yet (iat or nbf in the future)")]
    NotYetValid,
    #[error("token audience is not the configured GMAIL_PUSH_AUDIENCE")]
    WrongAudience,
    #[error("token issuer is not Google")]
    WrongIssuer,
    #[error("token email is not the configured GMAIL_PUSH_SERVICE_ACCOUNT")]
    WrongEmail,
    #[error("token email is not verified")]
    EmailNotVerified,
}

impl AuthError {
    /// A short stable name for logs and metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            AuthError::MissingHeader => "missing_header",
            AuthError::NotBearer => "not_bearer",
            AuthError::Malformed(_) => "malformed",
            AuthError::Algorithm(_) => "algorithm",
            AuthError::UnknownKey(_) => "unknown_kid",
            AuthError::KeysUnavailable(_) => "jwks_unavailable",
            AuthError::BadSignature => "bad_signature",
            AuthError::Expired => "expired",
            AuthError::NotYetValid => "not_yet_valid",
            AuthError::WrongAudience => "wrong_audience",
            AuthError::WrongIssuer => "wrong_issuer",
            AuthError::WrongEmail => "wrong_email",
            AuthError::EmailNotVerified => "email_not_verified",
        }
    }
}

#[derive(Debug, Deserialize)]
struct Claims {
    aud: Value,
    #[serde(default)]
    email: Option<String>,
    #[serde(default)]
    email_verified: Option<bool>,
    #[serde(default)]
    iat: Option<i64>,
}

#[derive(Debug, Deserialize)]
struct TokenHeader {
    alg: String,
    #[serde(default)]
    kid: Option<String>,
}

/// Checks push tokens against one audience and one service account.
#[derive(Debug)]
pub struct PushAuthenticator {
    /// Both are deployed as NoEcho parameters, so `Debug` must not show them.
    audience: Secret,
    service_account: Secret,
    jwks: JwksCache,
    /// Allowed clock skew, in seconds, for `exp`, `nbf` and `iat`.
    leeway_seconds: u64,
}

impl PushAuthenticator {
    pub fn new(audience: impl Into<String>, service_account: impl Into<String>, jwks: JwksCache) -> Self {
        Self {
            audience: Secret::new(audience.into()),
            service_account: Secret::new(service_account.into()),
            jwks,
            leeway_seconds: 60,
        }
    }

    /// Verifies the `Authorization` header value.
    pub async fn verify(&self, authorization: Option<&[u8]>) -> Result<(), AuthError> {
        let header = authorization.ok_or(AuthError::MissingHeader)?;
        if header.len() > MAX_TOKEN_BYTES {
            return Err(AuthError::Malformed(format!("longer than {MAX_TOKEN_BYTES} bytes")));
        }
        let header = std::str::from_utf8(header).map_err(|_| AuthError::NotBearer)?;
        let token = match header.split_once(' ') {
            Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => token.trim(),
            _ => return Err(AuthError::NotBearer),
        };

        // The header is read by hand first, so `alg: none` and HS256 get a typed rejection
        // before any key is looked up.
        let token_header = read_header(token)?;
        if token_header.alg != "RS256" {
            return Err(AuthError::Algorithm(token_header.alg));
        }
        let kid = token_header.kid.ok_or_else(|| AuthError::Malformed("no kid in the header".to_string()))?;
        let key = self.jwks.key(&kid).await.map_err(|error| match error {
            JwksError::UnknownKid(kid) => AuthError::UnknownKey(kid),
            fetch => AuthError::KeysUnavailable(fetch.to_string()),
        })?;

        let mut validation = Validation::new(Algorithm::RS256);
        validation.set_audience(&[self.audience.expose()]);
        validation.set_issuer(&GOOGLE_ISSUERS);
        validation.set_required_spec_claims(&["exp", "iss", "aud"]);
        validation.leeway = self.leeway_seconds;
        validation.validate_nbf = true;

        let claims = jsonwebtoken::decode::<Claims>(token, &key, &validation).map_err(|error| match error.kind() {
            ErrorKind::InvalidSignature => AuthError::BadSignature,
            ErrorKind::ExpiredSignature => AuthError::Expired,
            ErrorKind::ImmatureSignature => AuthError::NotYetValid,
            ErrorKind::InvalidAudience => AuthError::WrongAudience,
            ErrorKind::InvalidIssuer => AuthError::WrongIssuer,
            ErrorKind::InvalidAlgorithm => AuthError::Algorithm("not RS256".to_string()),
            other => AuthError::Malformed(format!("{other:?}")),
        })?;
        self.check_claims(&claims.claims)
    }

    fn check_claims(&self, claims: &Claims) -> Result<(), AuthError> {
        // Exactly our audience: a token minted for several audiences is not ours alone.
        if claims.aud.as_str() != Some(self.audience.expose()) {
            return Err(AuthError::WrongAudience);
        }
        let now = chrono::Utc::now().timestamp();
        if claims.iat.is_some_and(|iat| iat > now + self.leeway_seconds as i64) {
            return Err(AuthError::NotYetValid);
        }
        if claims.email.as_deref() != Some(self.service_account.expose()) {
            return Err(AuthError::WrongEmail);
        }
        if claims.email_verified != Some(true) {
            return Err(AuthError::EmailNotVerified);
        }
        Ok(())
    }
}

fn read_header(token: &str) -> Result<TokenHeader, AuthError> {
    let segment = token.split('.').next().unwrap_or_default();
    if token.split('.').count() != 3 {
        return Err(AuthError::Malformed("not three dot-separated parts".to_string()));
    }
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(segment.trim_end_matches('='))
        .map_err(|_| AuthError::Malformed("header is not base64url".to_string()))?;
    serde_json::from_slice(&bytes).map_err(|error| AuthError::Malformed(format!("header is not JSON: {error}")))
}
