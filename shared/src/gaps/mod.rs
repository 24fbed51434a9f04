//! Gap detection: scheduled analysis of account state (never of events) that finds what
//! the webhooks missed and plans the cheapest recoveries within an API-call budget.
//!
//! The analyses are pure functions over account items and the time, so they are tested
//! and benchmarked without AWS; `run` does the reading and writing around them.

pub mod analyze;
pub mod model;
pub mod plan;
#[cfg(test)]
mod properties;
pub mod rate;
pub mod run;
pub mod score;
pub mod sequence;
pub mod silence;
#[doc(hidden)]
pub mod testkit;

pub use model::{DetectorConfig, DetectorState, Finding, FindingKind, Recommendation, Severity};
pub use plan::{Plan, PlannedJob};
pub use run::{DetectorDeps, RunReport};
