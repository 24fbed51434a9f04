//! Silence: an account quiet for longer than its own rhythm makes likely.
//!
//! Webhook arrivals are modelled as a Poisson process with the account's learned rate
//! `λ` (events per hour). The probability of no event in `s` hours is `e^(−λ·s)`. A
//! silence is suspect when that probability falls below `alpha`: a busy account
//! (λ = 20/h) is suspect after about 28 minutes at `alpha = 0.0001`, while an account with
//! one message a week (λ ≈ 0.006/h) would need about 64 days.
//!
//! NOTE: real traffic has daily and weekly cycles that a constant rate ignores; a business
//! account quiet every night can look suspect at night. `min_silence_hours` and a small
//! `alpha` keep this rare, and a suspect silence costs one cheap probe.

/// Probability of `silent_hours` without an event at `rate_per_hour`.
pub fn probability(rate_per_hour: f64, silent_hours: f64) -> f64 {
    (-(rate_per_hour.max(0.0) * silent_hours.max(0.0))).exp()
}

/// Whether a silence is improbable enough to check.
pub fn is_suspect(rate_per_hour: f64, silent_hours: f64, alpha: f64, min_silence_hours: f64) -> bool {
    silent_hours >= min_silence_hours && probability(rate_per_hour, silent_hours) < alpha
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn silence_busy_account_hour_is_suspect() {
        assert!(is_suspect(20.0, 1.0, 1e-3, 1.0));
    }

    #[test]
    fn silence_weekly_account_day_is_normal() {
        assert!(!is_suspect(1.0 / 168.0, 24.0, 1e-3, 1.0));
    }

    #[test]
    fn silence_shorter_than_minimum_is_normal() {
        assert!(!is_suspect(500.0, 0.5, 1e-3, 1.0));
    }
}
