//! commsync: webhook-first sync for WhatsApp Business numbers, Gmail mailboxes and
//! LinkedIn organization pages.
//!
//! Every Lambda function is a thin binary over a handler in this crate, so tests and the
//! local runner call exactly the code Lambda runs.

pub mod aws;
pub mod bus;
pub mod config;
pub mod event;
pub mod gaps;
pub mod http;
pub mod ids;
pub mod ingest;
pub mod jobs;
pub mod logging;
pub mod metrics;
pub mod providers;
pub mod queue;
pub mod recovery;
pub mod secret;
pub mod store;

#[cfg(feature = "local")]
pub mod local;
