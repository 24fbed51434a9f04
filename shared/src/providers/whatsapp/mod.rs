//! WhatsApp Cloud API webhooks: the GET subscription handshake, `X-Hub-Signature-256`
//! verification, the notification payload and its canonical events.

pub mod api;
pub mod handler;
pub mod normalize;
pub mod payload;
pub mod status;
pub mod verify;

pub use handler::{handle, handle_with_report, WhatsAppDeps};
pub use verify::{HandshakeError, SignatureError, WhatsAppVerifier};
