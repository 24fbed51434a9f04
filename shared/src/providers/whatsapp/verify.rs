//! Verification of WhatsApp webhook requests: the GET handshake and the POST signature.
//!
//! Meta signs the exact bytes it sends (`\u00e9` and `\/` escapes included) with
//! HMAC-SHA256 under the app secret, so verification always runs on the raw body.

use crate::secret::Secret;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;
use thiserror::Error;

type HmacSha256 = Hmac<Sha256>;

/// Reason a POST signature was rejected.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum SignatureError {
    #[error("X-Hub-Signature-256 header is missing")]
    MissingHeader,
    #[error("X-Hub-Signature-256 header is not of the form sha256=<64 hex digits>")]
    MalformedHeader,
    #[error("X-Hub-Signature-256 does not match the body under any configured app secret")]
    Mismatch,
}

/// Reason a GET subscription handshake was rejected.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum HandshakeError {
    #[error("hub.mode is missing or is not \"subscribe\"")]
    WrongMode,
    #[error("hub.challenge is missing, empty or longer than 256 bytes")]
    MissingChallenge,
    #[error("hub.verify_token is missing")]
    MissingToken,
    #[error("hub.verify_token does not match WHATSAPP_VERIFY_TOKEN")]
    WrongToken,
}

/// A parsed `sha256=<hex>` signature value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HubSignature([u8; 32]);

impl HubSignature {
    /// Parses one header value. The `sha256=` prefix and the hex digits are accepted in any case.
    pub fn parse(value: &[u8]) -> Result<Self, SignatureError> {
        let value = std::str::from_utf8(value).map_err(|_| SignatureError::MalformedHeader)?;
        let value = value.trim();
        let (prefix, hex_digest) = value.split_at_checked(7).ok_or(SignatureError::MalformedHeader)?;
        if !prefix.eq_ignore_ascii_case("sha256=") || hex_digest.len() != 64 {
            return Err(SignatureError::MalformedHeader);
        }

        let mut digest = [0u8; 32];
        hex::decode_to_slice(hex_digest, &mut digest).map_err(|_| SignatureError::MalformedHeader)?;
        Ok(Self(digest))
    }
}

/// Verifies WhatsApp webhooks with the current app secret and, during a rotation, the previous one.
#[derive(Debug, Clone)]
pub struct WhatsAppVerifier {
    app_secrets: Vec<Secret>,
    verify_token: Secret,
}

impl WhatsAppVerifier {
    pub fn new(app_secret: Secret, previous_app_secret: Option<Secret>, verify_token: Secret) -> Self {
        let mut app_secrets = vec![app_secret];
        app_secrets.extend(previous_app_secret);
        Self { app_secrets, verify_token }
    }

    /// Checks the `X-Hub-Signature-256` header value against the raw body.
    ///
    /// API Gateway joins repeated headers with commas, so the header may hold several values.
    /// Every value must be well formed, and the request passes when one of them matches
    /// under one app secret.
    pub fn verify_signature(&self, header: Option<&[u8]>, body: &[u8]) -> Result<(), SignatureError> {
        let header = header.ok_or(SignatureError::MissingHeader)?;
        let signatures = header.split(|byte| *byte == b',').map(HubSignature::parse).collect::<Result<Vec<_>, _>>()?;

        for secret in &self.app_secrets {
            for signature in &signatures {
                let mut mac = HmacSha256::new_from_slice(secret.expose().as_bytes())
                    .expect("HMAC-SHA256 accepts keys of any length");
                mac.update(body);
                if mac.verify_slice(&signature.0).is_ok() {
                    return Ok(());
                }
            }
        }
        Err(SignatureError::Mismatch)
    }

    /// Checks a GET handshake and returns the challenge to echo back.
    pub fn verify_handshake<'q>(
        &self,
        mode: Option<&str>,
        verify_token: Option<&str>,
        challenge: Option<&'q str>,
    ) -> Result<&'q str, HandshakeError> {
        if mode != Some("subscribe") {
            return Err(HandshakeError::WrongMode);
        }
        let token = verify_token.ok_or(HandshakeError::MissingToken)?;
        let expected = self.verify_token.expose().as_bytes();
        if !bool::from(token.as_bytes().ct_eq(expected)) {
            return Err(HandshakeError::WrongToken);
        }
        match challenge {
            Some(challenge) if !challenge.is_empty() && challenge.len() <= 256 => Ok(challenge),
            _ => Err(HandshakeError::MissingChallenge),
        }
    }
}

/// Computes the `X-Hub-Signature-256` header value Meta would send for `body`.
pub fn sign(app_secret: &Secret, body: &[u8]) -> String {
    let mut mac =
        HmacSha256::new_from_slice(app_secret.expose().as_bytes()).expect("HMAC-SHA256 accepts keys of any length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "test-app-secret";

    fn verifier() -> WhatsAppVerifier {
        WhatsAppVerifier::new(Secret::new(SECRET), None, Secret::new("verify-me"))
    }

    /// A body as Meta sends it: non-ASCII escaped as `\u00e9`, `/` escaped as `\/`.
    const ESCAPED_BODY: &[u8] = br#"{"object":"whatsapp_business_account","entry":[{"id":"1","changes":[{"field":"messages","value":{"messages":[{"text":{"body":"caf\u00e9 http:\/\/x.example @home"}}]}}]}]}"#;

    #[test]
    fn signature_raw_escaped_body_verifies() {
        let header = sign(&Secret::new(SECRET), ESCAPED_BODY);
        assert_eq!(verifier().verify_signature(Some(header.as_bytes()), ESCAPED_BODY), Ok(()));
    }

    #[test]
    fn signature_reserialized_body_fails() {
        let header = sign(&Secret::new(SECRET), ESCAPED_BODY);
        let value: serde_json::Value = serde_json::from_slice(ESCAPED_BODY).unwrap();
        let reserialized = serde_json::to_vec(&value).unwrap();

        assert_ne!(reserialized, ESCAPED_BODY);
        assert_eq!(verifier().verify_signature(Some(header.as_bytes()), &reserialized), Err(SignatureError::Mismatch));
    }

    #[test]
    fn signature_known_vector_matches() {
        // HMAC-SHA256("test-app-secret", "{}") computed independently with `openssl dgst -sha256 -hmac`.
        let header = b"sha256=c1ea56948b53132ad57904aac904aa087052a6f88de4d1236961d54b6003c28c";
        assert_eq!(verifier().verify_signature(Some(header), b"{}"), Ok(()));
    }

    #[test]
    fn signature_missing_header_rejected() {
        assert_eq!(verifier().verify_signature(None, b"{}"), Err(SignatureError::MissingHeader));
    }

    #[test]
    fn signature_malformed_headers_rejected() {
        let cases: [&[u8]; 7] = [
            b"",
            b"sha256=",
            b"sha1=0000000000000000000000000000000000000000",
            b"sha256=zz00000000000000000000000000000000000000000000000000000000000000",
            b"sha256=00",
            b"00000000000000000000000000000000000000000000000000000000000000000000000",
            b"\xff\xfe",
        ];
        for case in cases {
            assert_eq!(
                verifier().verify_signature(Some(case), b"{}"),
                Err(SignatureError::MalformedHeader),
                "header {case:?}"
            );
        }
    }

    #[test]
    fn signature_uppercase_hex_verifies() {
        let header = sign(&Secret::new(SECRET), b"{}").replace("sha256=", "SHA256=").to_uppercase();
        assert_eq!(verifier().verify_signature(Some(header.as_bytes()), b"{}"), Ok(()));
    }

    #[test]
    fn signature_wrong_secret_rejected() {
        let header = sign(&Secret::new("another-secret"), b"{}");
        assert_eq!(verifier().verify_signature(Some(header.as_bytes()), b"{}"), Err(SignatureError::Mismatch));
    }

    #[test]
    fn signature_previous_secret_accepted_during_rotation() {
        let rotating =
            WhatsAppVerifier::new(Secret::new("new-secret"), Some(Secret::new(SECRET)), Secret::new("verify-me"));
        let header = sign(&Secret::new(SECRET), b"{}");
        assert_eq!(rotating.verify_signature(Some(header.as_bytes()), b"{}"), Ok(()));
    }

    #[test]
    fn signature_one_of_joined_values_matches() {
        let good = sign(&Secret::new(SECRET), b"{}");
        let bad = sign(&Secret::new("other"), b"{}");
        let joined = format!("{bad},{good}");
        assert_eq!(verifier().verify_signature(Some(joined.as_bytes()), b"{}"), Ok(()));
    }

    #[test]
    fn handshake_matching_token_returns_challenge() {
        let challenge = verifier().verify_handshake(Some("subscribe"), Some("verify-me"), Some("1158201444"));
        assert_eq!(challenge, Ok("1158201444"));
    }

    #[test]
    fn handshake_wrong_token_rejected() {
        let result = verifier().verify_handshake(Some("subscribe"), Some("guess"), Some("1"));
        assert_eq!(result, Err(HandshakeError::WrongToken));
    }

    #[test]
    fn handshake_missing_parts_rejected() {
        let v = verifier();
        assert_eq!(v.verify_handshake(None, Some("verify-me"), Some("1")), Err(HandshakeError::WrongMode));
        assert_eq!(v.verify_handshake(Some("subscribe"), None, Some("1")), Err(HandshakeError::MissingToken));
        assert_eq!(
            v.verify_handshake(Some("subscribe"), Some("verify-me"), None),
            Err(HandshakeError::MissingChallenge)
        );
    }
}
