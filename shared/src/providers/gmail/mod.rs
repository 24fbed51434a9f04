//! Gmail through Pub/Sub push: the OIDC token Google attaches to each push, the push
//! body, and the handler that records the notification and asks for a history sync.

pub mod api;
pub mod auth;
pub mod handler;
pub mod jwks;
pub mod push;

pub use auth::{AuthError, PushAuthenticator};
pub use handler::{handle, handle_with_report, GmailDeps};
pub use jwks::JwksCache;
