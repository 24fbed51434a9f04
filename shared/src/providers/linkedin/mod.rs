//! LinkedIn webhooks: the GET challenge, `X-LI-Signature` verification, organization
//! social action notifications and lead actions.

pub mod api;
pub mod handler;
pub mod normalize;
pub mod verify;

pub use handler::{handle, handle_with_report, LinkedInDeps};
pub use verify::{LinkedInVerifier, SignatureError};
