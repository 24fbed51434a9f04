//! Signing keys and a JWKS server for Gmail push token tests.
//!
//! The development key (whose JWKS `commsync::local::dev_keys` publishes) signs valid
//! tokens; the attacker key below signs forgeries. Both keys are public test fixtures.

use axum::routing::get;
use commsync::local::dev_keys::{dev_jwks, DEV_KID, DEV_PRIVATE_KEY_PEM};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// Audience and service account the test stacks configure for Gmail.
pub const GMAIL_AUDIENCE: &str = "https://commsync.test/webhooks/gmail";
pub const GMAIL_SERVICE_ACCOUNT: &str = "push@commsync-test.iam.gserviceaccount.com";

/// A second RSA key, never published in the test JWKS.
pub const ATTACKER_PRIVATE_KEY_PEM: &str = "
-----BEGIN PRIVATE KEY-----
MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQDPE5jtIbSEI1v8
6vQTmfXtGxh230ax/uSOIATf6CpjjyHSO9jOS6iYnpaZ5BTDSv4fFgiqGm5IREO8
jW6El0V/M746QD18oug8gqjb/HyTCOlT2y6NWEs+xB34QFQ1m8U5lJNIKmrTT21u
Bxx9gfsBi6OsRqE9Q1n1juKl+L3vzAHG6AV6NwUS38+SkBm1PxAk8vwZJ1cJuY4u
TCUQEo8ShVQTC4RmAcGtpQ7F81dWscYlBoM3rmV6UFFesjefsG5Uvjy1Z1N7+qhy
UO2D5C2kRebuLlHNl/eGKW/DS9VrgidtfMkm/kqsva1H0Y1ibeFZsvjtDxZ5uveX
cX6oCFQhAgMBAAECggEAC9iLFzcmM4gujCYQcQHd5jrGZC/3BEoQnvME1l56lMwQ
hy1cZGZCensZgkuQdsDOr15wP9Nf309U6OeWFLyO2aVPDrfjsJJk6se+c0mzAmoI
R39WjxhHwysezAeZjaDH6DioMYDYMDcHK3v5iLI/pr2rTvjSIt4cSoJqU6xqaKoS
eoUJT3F/VQ7pqvmA29jtvY2Tg0UtApE2sXIC6d/1ssz+PyXkHXI4hNw96zfsdAPM
GZ+5B4Rhz/8HB10cg3smAsG7Shxebtwihayu9/3T0G/mQStXk5Qo2o6sHDyPhnUO
brx0g9XNDyC+BXHu7wFaZ3VSm0l4RODD7YGJfH4TEQKBgQD505yGhdCwOo35jix/
Tk6DPF1+0FsX8Vt1BKDcMqIcFi/9cowaM2J8Ys56ubfuJ3KeK9YWkqyv7dfqDvGr
J3qSgsg1WYlxc8EJh3ieJZ/NJf3QnjZOJSIyeSSbfYoB4TCBSdXULJvKsYrTTZTL
wwKcyQ3ajv6C8flW8fzCLUB40QKBgQDUMY00e+9LRvccIYJJZd2rEeHsnUpUj/bN
Jdkp8uJ9pVBhW/PpB2FABTn4ylPjLXrWOd/ediCdbEkUyzZeLOhwMtsvkUD48nE0
CD1oOXALeqKZ6oJ36HFeutz7k3TlNjaiGnVneoXyR7/uvFqhVlX5SEL00V17NdkA
mtccv8b6UQKBgQC58+3FH6N3GQ6GW3H5jELaYjtBYjr7tlYZ4skNPc72UvmDkBiC
hA7hgPYp2UTzyn8BBqYDBUfuZ33YJSly+R6+IQR+2Vd5j+x2eFSqelzY6VdkSe8n
+XHb2doKtsXbok9lXJ0BofaQR9iKcWu4wz2Vj/102gzNUOkD83js25vqkQKBgDw3
S6EHQqMUInADOlvl4n/3dSuWf098A0e4Y+Y5nPiW/zaBx7frdjeaxBbMI/4mG+PL
TLJux1alMiAKgwU6rUOZywW2rL943ZMse3CmTBuV06rmF9w7RGDjmm5yLAwX1G0w
IP0akgRtRBRVs0pxm7hAP3AGMgcTAt/fEQiBi8/hAoGAQthSPm6ck8OtwR5ZPJsq
Yo0oKwE9mCnAdKwyuUvdNPvIXj0+YGXJLEDGQ7vJ4QynJ9Wyh1WWlbUquhZGhiaF
16Yi7fb+IlGy1UMuXgHC6kMwQ30UyCh5SpdTodj5/QQ4cJtI7v2K7BqkTQV5fBCh
5gj4Awk9KGejE0KVdUh9R+s=
-----END PRIVATE KEY-----
";

/// Base64url modulus of the attacker key, for publishing it under another `kid`.
pub const ATTACKER_MODULUS: &str = "zxOY7SG0hCNb_Or0E5n17RsYdt9Gsf7kjiAE3-gqY48h0jvYzkuomJ6WmeQUw0r-HxYIqhpuSERDvI1uhJdFfzO-OkA9fKLoPIKo2_x8kwjpU9sujVhLPsQd-EBUNZvFOZSTSCpq009tbgccfYH7AYujrEahPUNZ9Y7ipfi978wBxugFejcFEt_PkpAZtT8QJPL8GSdXCbmOLkwlEBKPEoVUEwuEZgHBraUOxfNXVrHGJQaDN65lelBRXrI3n7BuVL48tWdTe_qoclDtg-QtpEXm7i5RzZf3hilvw0vVa4InbXzJJv5KrL2tR9GNYm3hWbL47Q8Webr3l3F-qAhUIQ";

/// Claims of a valid push token for the test stacks, issued now.
pub fn valid_claims() -> Value {
    let now = chrono::Utc::now().timestamp();
    json!({
        "aud": GMAIL_AUDIENCE,
        "email": GMAIL_SERVICE_ACCOUNT,
        "email_verified": true,
        "exp": now + 3600,
        "iat": now,
        "iss": "https://accounts.google.com",
        "sub": "1234567890",
    })
}

/// Signs `claims` with RS256 under the development key, or the attacker key, with `kid`.
pub fn sign_rs256(claims: &Value, kid: &str, attacker: bool) -> String {
    let pem = if attacker { ATTACKER_PRIVATE_KEY_PEM } else { DEV_PRIVATE_KEY_PEM };
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some(kid.to_string());
    jsonwebtoken::encode(&header, claims, &EncodingKey::from_rsa_pem(pem.trim().as_bytes()).unwrap()).unwrap()
}

/// A valid token under the development key.
pub fn valid_token() -> String {
    sign_rs256(&valid_claims(), DEV_KID, false)
}

/// A JWKS server on 127.0.0.1 whose key set can change and which counts fetches.
pub struct JwksServer {
    pub url: String,
    keys: Arc<Mutex<Value>>,
    fetches: Arc<AtomicUsize>,
}

impl JwksServer {
    /// Starts a server that publishes the development key.
    pub async fn start() -> Self {
        let keys = Arc::new(Mutex::new(dev_jwks()));
        let fetches = Arc::new(AtomicUsize::new(0));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/certs", listener.local_addr().unwrap());

        let (served_keys, counter) = (keys.clone(), fetches.clone());
        let app = axum::Router::new().route(
            "/certs",
            get(move || {
                let keys = served_keys.clone();
                let counter = counter.clone();
                async move {
                    counter.fetch_add(1, Ordering::SeqCst);
                    let body = keys.lock().unwrap().to_string();
                    ([(axum::http::header::CONTENT_TYPE, "application/json")], body)
                }
            }),
        );
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self { url, keys, fetches }
    }

    /// Adds the attacker key to the published set under `kid`, as a key rotation would.
    pub fn publish_attacker_key(&self, kid: &str) {
        let mut keys = self.keys.lock().unwrap();
        keys["keys"].as_array_mut().unwrap().push(json!({
            "kty": "RSA", "alg": "RS256", "use": "sig", "kid": kid, "n": ATTACKER_MODULUS, "e": "AQAB"
        }));
    }

    pub fn fetches(&self) -> usize {
        self.fetches.load(Ordering::SeqCst)
    }
}
