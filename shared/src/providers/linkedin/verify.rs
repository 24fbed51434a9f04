//! LinkedIn webhook verification.
//!
//! The challenge answer is hex HMAC-SHA256 of the `challengeCode` under the client secret.
//! A POST's `X-LI-Signature` is hex HMAC-SHA256 of `"hmacsha256=" + raw body`, so a plain
//! HMAC of the body alone does not verify.

use crate::secret::Secret;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use thiserror::Error;

type HmacSha256 = Hmac<Sha256>;

/// The prefix LinkedIn puts before the body when signing, and may put before the header value.
const SIGNATURE_PREFIX: &str = "hmacsha256=";

/// Reason a POST signature was rejected.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum SignatureError {
    #[error("X-LI-Signature header is missing")]
    MissingHeader,
    #[error("X-LI-Signature header is not 64 hex digits, with or without a hmacsha256= prefix")]
    MalformedHeader,
    #[error("X-LI-Signature does not match the body under any configured client secret")]
    Mismatch,
}

/// Reason a GET challenge was not answered.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum ChallengeError {
    #[error("challengeCode is missing, empty or longer than 256 bytes")]
    MissingCode,
    #[error("applicationId {0:?} has no secret in LINKEDIN_APP_SECRETS")]
    UnknownApplication(String),
}

/// Verifies LinkedIn webhooks for one default app and any number of per-application secrets.
#[derive(Debug, Clone)]
pub struct LinkedInVerifier {
    client_secret: Secret,
    app_secrets: Vec<(String, Secret)>,
}

impl LinkedInVerifier {
    pub fn new(client_secret: Secret, app_secrets: Vec<(String, Secret)>) -> Self {
        Self { client_secret, app_secrets }
    }

    /// Computes the `challengeResponse` for a challenge, with the secret `application_id` selects.
    pub fn challenge_response(
        &self,
        code: Option<&str>,
        application_id: Option<&str>,
    ) -> Result<String, ChallengeError> {
        let code = code.filter(|code| !code.is_empty() && code.len() <= 256).ok_or(ChallengeError::MissingCode)?;
        let secret = match application_id.filter(|id| !id.is_empty()) {
            None => &self.client_secret,
            Some(id) => self
                .app_secrets
                .iter()
                .find(|(application, _)| application == id)
                .map(|(_, secret)| secret)
                .ok_or_else(|| ChallengeError::UnknownApplication(id.to_string()))?,
        };
        Ok(hex::encode(mac(secret, &[code.as_bytes()]).finalize().into_bytes()))
    }

    /// Checks the `X-LI-Signature` header value against the raw body under every secret.
    pub fn verify_signature(&self, header: Option<&[u8]>, body: &[u8]) -> Result<(), SignatureError> {
        let header = header.ok_or(SignatureError::MissingHeader)?;
        let header = std::str::from_utf8(header).map_err(|_| SignatureError::MalformedHeader)?.trim();
        let hex_digest = match header.get(..SIGNATURE_PREFIX.len()) {
            Some(prefix) if prefix.eq_ignore_ascii_case(SIGNATURE_PREFIX) => &header[SIGNATURE_PREFIX.len()..],
            _ => header,
        };
        let mut digest = [0u8; 32];
        if hex_digest.len() != 64 {
            return Err(SignatureError::MalformedHeader);
        }
        hex::decode_to_slice(hex_digest, &mut digest).map_err(|_| SignatureError::MalformedHeader)?;

        let secrets = std::iter::once(&self.client_secret).chain(self.app_secrets.iter().map(|(_, secret)| secret));
        for secret in secrets {
            if mac(secret, &[SIGNATURE_PREFIX.as_bytes(), body]).verify_slice(&digest).is_ok() {
                return Ok(());
            }
        }
        Err(SignatureError::Mismatch)
    }
}

fn mac(secret: &Secret, parts: &[&[u8]]) -> HmacSha256 {
    let mut mac =
        HmacSha256::new_from_slice(secret.expose().as_bytes()).expect("HMAC-SHA256 accepts keys of any length");
    for part in parts {
        mac.update(part);
    }
    mac
}

/// Computes the `X-LI-Signature` header value LinkedIn would send for `body`.
pub fn sign(secret: &Secret, body: &[u8]) -> String {
    hex::encode(mac(secret, &[SIGNATURE_PREFIX.as_bytes(), body]).finalize().into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verifier() -> LinkedInVerifier {
        LinkedInVerifier::new(Secret::new("client-secret"), vec![("4242".to_string(), Secret::new("child-secret"))])
    }

    #[test]
    fn challenge_known_vector_matches() {
        // HMAC-SHA256 under "client-secret" of the code, computed with `openssl dgst -sha256 -hmac`.
        let response = verifier().challenge_response(Some("890e4665-4dfe-4ab3-b5e4-2f3f2d9a5f23"), None).unwrap();
        assert_eq!(response, "fde8dda44321a9a46c7b262b0473207cabbe6d4188b927b5450f753ff725c512");
    }

    #[test]
    fn challenge_application_id_selects_secret() {
        let default = verifier().challenge_response(Some("code"), None).unwrap();
        let child = verifier().challenge_response(Some("code"), Some("4242")).unwrap();
        assert_ne!(default, child);
        assert_eq!(child, hex::encode(mac(&Secret::new("child-secret"), &[b"code"]).finalize().into_bytes()));
    }

    #[test]
    fn challenge_unknown_application_rejected() {
        let result = verifier().challenge_response(Some("code"), Some("9999"));
        assert_eq!(result, Err(ChallengeError::UnknownApplication("9999".to_string())));
    }

    #[test]
    fn signature_with_prefix_verifies() {
        let header = format!("hmacsha256={}", sign(&Secret::new("client-secret"), b"{\"a\":1}"));
        assert_eq!(verifier().verify_signature(Some(header.as_bytes()), b"{\"a\":1}"), Ok(()));
    }

    #[test]
    fn signature_without_prefix_verifies() {
        let header = sign(&Secret::new("client-secret"), b"{\"a\":1}");
        assert_eq!(verifier().verify_signature(Some(header.as_bytes()), b"{\"a\":1}"), Ok(()));
    }

    #[test]
    fn signature_plain_body_hmac_rejected() {
        let plain = hex::encode(mac(&Secret::new("client-secret"), &[b"{\"a\":1}"]).finalize().into_bytes());
        assert_eq!(verifier().verify_signature(Some(plain.as_bytes()), b"{\"a\":1}"), Err(SignatureError::Mismatch));
    }

    #[test]
    fn signature_child_application_secret_verifies() {
        let header = sign(&Secret::new("child-secret"), b"{}");
        assert_eq!(verifier().verify_signature(Some(header.as_bytes()), b"{}"), Ok(()));
    }

    #[test]
    fn signature_malformed_rejected() {
        for header in [&b""[..], b"hmacsha256=", b"hmacsha256=zz", b"abc", b"\xff"] {
            assert_eq!(
                verifier().verify_signature(Some(header), b"{}"),
                Err(SignatureError::MalformedHeader),
                "{header:?}"
            );
        }
    }

    #[test]
    fn signature_missing_rejected() {
        assert_eq!(verifier().verify_signature(None, b"{}"), Err(SignatureError::MissingHeader));
    }
}
