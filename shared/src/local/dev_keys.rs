//! The development signing key for local Gmail push tokens, the JWKS that publishes it,
//! and the minting of tokens shaped like the ones Pub/Sub push attaches.
//!
//! This key is public (it is in the repository) and exists only for the local stack and
//! tests: deployed functions verify against Google's JWKS, which never contains it.

use super::LocalError;
use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};

/// Key id of the development key in tokens and in the JWKS.
pub const DEV_KID: &str = "commsync-dev-key-1";

/// PKCS#8 PEM of the development RSA key (2048 bits). Never trusted outside local runs.
pub const DEV_PRIVATE_KEY_PEM: &str = "
-----BEGIN PRIVATE KEY-----
MIIEvgIBADANBgkqhkiG9w0BAQEFAASCBKgwggSkAgEAAoIBAQCzyzLyHr1W7lGn
zhpeHfYp1HdF2usNoUvMOw0NzD0AdjEQ1AwpXSa+vZfzFtS6u5wVPDuVy/fqLp/S
ZOgUB0H7dytNz5r+8XhuSZay0BIcUJrDzQEdCJfv1I9z17OXo6dz4Ch/wZhqqT35
rflbX9s6avKBW76qX57cV9aYl3Enxg7nNyOkgU/WM/FNXMLyy9RdageapIyRS4e1
a5lsnzfapBCNQ/7fxsbd1eMY3yN+qguDX0oh/Fyc/knE+qZgbvdaH7b1U//4mmre
DS/QxVWTdk8beZhS+oJ6z89Qc9in07ea5HGtsBqV3P6UnnLjg8pVnyxDT9GwIWFF
zn7Vz82HAgMBAAECggEAJ0R+hH3tOXLEd8NeY+bkUB98y090Xd44CUtuXvCX9CVc
MwI1A8W6BBexe6ClZoE6JjMpCl7pbwau1ks+mr05DnxpA04P2pWPiXreBIDIK9H4
80GveBFb6cABcroOGdTe6kJvZfO437bF9+Wk2+2UGm6oN1N70Ycf0Z0Hm/0bdCWB
77CZGLmOiOND0KTBwTvDOP9WZP4HPmCpM/v3JFBDF7BzMaKm7BBLKEPfeAA+v9dg
dmIRF0ZiEIiZdTaigRkiIr2cVeXyTPuzGK8+/oig3CXQKtNxaccTgmU11Jow+YPQ
Y5uUatEF6a3qK3FPUSSoC6DZh8Jh6vJkGvY7V8kFiQKBgQDvOBJtL6RR4KYVL5Wf
Aou+JJEHz0DwFvTCn6nxz/cyHLgBSEdlzKWGm5T4G84Okf2L1Bz9K3/Egy+DU2RL
lPfBTowgY7DGtvzNYuYoI+YTIr6lh1LqeeIM/ZOnpMgHFizWZZgwbsk3pVB/9yXx
h1vLAByMrkxJmhfai4w84oUbbwKBgQDAZ/WrY4MIoPOkFWW6+rHrBAN/E+EW9R9l
UzBsryIr0gPwQUc9qNfYnOnG6EoKqnFPqH0pTXQ6C0FSOFE037xwypzui81N01gq
WyQH8EU1B8gjVG7cCqWPJ61YsDj57qQQhBd77c+4lXZmbYwzg/OJZNJlxCSUjhzu
SRxl6s7DaQKBgQCYDcMgpezDopDO3J01IlAi/2k0VpeHRIA1iXljW/ZbYwfOwNup
KGh6ZEBPaJUUi9Vm4N/ASLsA9QXpasNQi5Ljy4KkP9mopb2Q63EySIdA2I/n9VlN
80UtTq1hHQuL/Ztod9FBz9mUxj6h6D21BX3iTeLXxR52ljzdTGBKfw1ufwKBgGMP
o07Ah2BT7d0XHy9rj1re0CYHSCaXwbhbYl0ytjc1g82Y7mLyoV7nOv2r7yMaqghH
SVmQhTy1OsZoNHcykkTILJAs7mEZZRU5o41qyVcKUKLP/9vOp3rTBM7avBsCIPpX
5/doc0Anw7PsxvhnAWZFwIWgvOy3VnHgtnxKrnWxAoGBALBTra2mKnbREAzE0AqC
M53DJ6dImb3NRhHiBHSBnBOkpYVFcO7XaLHahh0557I1JHzDkJvxUmpg2WPLM2EI
IQaJxL9nUfp1BjMzT48oua3SeDyecSjiJWxwcRfeO8BzylMXxg3QbzLl3kLjNGsr
v01hFLaXniwSkyleblRKD8FN
-----END PRIVATE KEY-----
";

/// Modulus of the development key, base64url without padding.
const DEV_MODULUS: &str = "s8sy8h69Vu5Rp84aXh32KdR3RdrrDaFLzDsNDcw9AHYxENQMKV0mvr2X8xbUurucFTw7lcv36i6f0mToFAdB-3crTc-a_vF4bkmWstASHFCaw80BHQiX79SPc9ezl6Onc-Aof8GYaqk9-a35W1_bOmrygVu-ql-e3FfWmJdxJ8YO5zcjpIFP1jPxTVzC8svUXWoHmqSMkUuHtWuZbJ832qQQjUP-38bG3dXjGN8jfqoLg19KIfxcnP5JxPqmYG73Wh-29VP_-Jpq3g0v0MVVk3ZPG3mYUvqCes_PUHPYp9O3muRxrbAaldz-lJ5y44PKVZ8sQ0_RsCFhRc5-1c_Nhw";

/// The JWKS that publishes the development key.
pub fn dev_jwks() -> Value {
    json!({ "keys": [{ "kty": "RSA", "alg": "RS256", "use": "sig", "kid": DEV_KID, "n": DEV_MODULUS, "e": "AQAB" }] })
}

/// Mints a push token like Google's: RS256, issuer `https://accounts.google.com`, valid
/// for an hour from now, for `audience` and the service account `email`.
pub fn mint_push_token(audience: &str, email: &str) -> String {
    let now = chrono::Utc::now().timestamp();
    let claims = json!({
        "aud": audience,
        "azp": "113774264463038321964",
        "email": email,
        "email_verified": true,
        "exp": now + 3600,
        "iat": now,
        "iss": "https://accounts.google.com",
        "sub": "113774264463038321964",
    });
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some(DEV_KID.to_string());
    let key =
        EncodingKey::from_rsa_pem(DEV_PRIVATE_KEY_PEM.trim().as_bytes()).expect("the development key is valid PEM");
    jsonwebtoken::encode(&header, &claims, &key).expect("RS256 signing with a valid key works")
}

/// Re-mints a development token with the same audience and email, valid from now.
/// Returns `None` for tokens not signed with the development key, which stay untouched.
pub fn refresh_dev_token(authorization: &str) -> Option<String> {
    let token = authorization.strip_prefix("Bearer ")?;
    let mut parts = token.split('.');
    let decode = |part: Option<&str>| -> Option<Value> {
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(part?).ok()?;
        serde_json::from_slice(&bytes).ok()
    };
    let header = decode(parts.next())?;
    if header.get("kid").and_then(Value::as_str) != Some(DEV_KID) {
        return None;
    }
    let claims = decode(parts.next())?;
    let audience = claims.get("aud").and_then(Value::as_str)?;
    let email = claims.get("email").and_then(Value::as_str)?;
    Some(format!("Bearer {}", mint_push_token(audience, email)))
}

/// Serves the development JWKS on 127.0.0.1 at a free port and returns its URL.
pub async fn serve_dev_jwks() -> Result<String, LocalError> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|source| LocalError::Io { what: "bind the development JWKS server".to_string(), source })?;
    let port = listener
        .local_addr()
        .map_err(|source| LocalError::Io { what: "read the JWKS server port".to_string(), source })?
        .port();
    let app = axum::Router::new().route(
        "/jwks.json",
        axum::routing::get(|| async {
            ([(axum::http::header::CONTENT_TYPE, "application/json")], dev_jwks().to_string())
        }),
    );
    tokio::spawn(async move {
        if let Err(error) = axum::serve(listener, app).await {
            tracing::error!(%error, "development JWKS server stopped");
        }
    });
    Ok(format!("http://127.0.0.1:{port}/jwks.json"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dev_token_refresh_keeps_claims() {
        let token =
            format!("Bearer {}", mint_push_token("https://aud.example", "push@example.iam.gserviceaccount.com"));
        let refreshed = refresh_dev_token(&token).unwrap();
        let claims = refreshed.split('.').nth(1).unwrap();
        let claims: Value =
            serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(claims).unwrap()).unwrap();
        assert_eq!(claims["aud"], "https://aud.example");
    }

    #[test]
    fn foreign_token_not_refreshed() {
        assert_eq!(refresh_dev_token("Bearer eyJhbGciOiJSUzI1NiIsImtpZCI6Imdvb2dsZSJ9.e30.sig"), None);
    }
}
