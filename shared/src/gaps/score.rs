//! The priority score that orders findings when the API-call budget cannot cover them all.
//!
//! `score = 100 × severity × confidence × activity × age`, where
//! - `severity` is the weight of the finding's severity (0.2 for info to 1.0 for critical),
//! - `confidence` is the probability that the gap is real (0 to 1),
//! - `activity = 1 + ln(1 + rate)`, with `rate` the account's learned events per hour, so
//!   a busy account's gap (more events at stake) ranks higher, with diminishing returns,
//! - `age = 1 + min(hours, 48) / 48`, so a gap left waiting rises to at most twice its
//!   starting priority instead of starving behind fresh ones.

/// Computes the priority score of a finding.
pub fn priority(severity_weight: f64, confidence: f64, rate_per_hour: f64, age_hours: f64) -> f64 {
    let activity = 1.0 + (1.0 + rate_per_hour.max(0.0)).ln();
    let age = 1.0 + age_hours.clamp(0.0, 48.0) / 48.0;
    100.0 * severity_weight * confidence.clamp(0.0, 1.0) * activity * age
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn score_grows_with_severity() {
        assert!(priority(0.8, 0.9, 5.0, 1.0) > priority(0.4, 0.9, 5.0, 1.0));
    }

    #[test]
    fn score_grows_with_confidence() {
        assert!(priority(0.6, 0.99, 5.0, 1.0) > priority(0.6, 0.5, 5.0, 1.0));
    }

    #[test]
    fn score_grows_with_activity() {
        assert!(priority(0.6, 0.9, 50.0, 1.0) > priority(0.6, 0.9, 0.1, 1.0));
    }

    #[test]
    fn score_grows_with_age_then_caps() {
        assert!(priority(0.6, 0.9, 5.0, 10.0) > priority(0.6, 0.9, 5.0, 1.0));
        assert_eq!(priority(0.6, 0.9, 5.0, 48.0), priority(0.6, 0.9, 5.0, 500.0));
    }

    #[test]
    fn score_known_value() {
        // 100 × 1.0 × 1.0 × (1 + ln 1) × (1 + 0) = 100 for a critical, certain, idle, fresh finding.
        assert!((priority(1.0, 1.0, 0.0, 0.0) - 100.0).abs() < 1e-9);
    }
}
