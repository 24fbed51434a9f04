//! What one strategy did in one scenario.

/// Counters of one strategy run.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    pub api_calls: u64,
    /// Sync operations: polls, push-triggered syncs and recovery jobs.
    pub syncs: u64,
    /// Events neither delivered by a webhook nor recovered by the end of the day.
    pub missed: u64,
    /// Seconds from a lost event to its recovery, for every recovered lost event.
    pub latencies: Vec<f64>,
}

impl Outcome {
    /// Returns the `q` quantile (0 to 1) of the recovery latencies, in minutes.
    pub fn latency_minutes(&self, q: f64) -> Option<f64> {
        if self.latencies.is_empty() {
            return None;
        }
        let mut sorted = self.latencies.clone();
        sorted.sort_by(f64::total_cmp);
        let index = ((sorted.len() - 1) as f64 * q).round() as usize;
        Some(sorted[index] / 60.0)
    }
}

/// Counts extra LinkedIn pages: one call returns 50 notifications.
pub fn pages(notifications: usize) -> u64 {
    notifications.div_ceil(50).max(1) as u64
}
