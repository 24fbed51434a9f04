//! A learned event rate: exponentially decayed event count over exponentially decayed
//! exposure time, so old behaviour fades with a half-life and irregular update intervals
//! weigh correctly.

/// Decayed event count and decayed observed hours.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct RateEstimate {
    pub count: f64,
    pub exposure_hours: f64,
}

/// Pseudo-observations every estimate starts with. A new account is assumed to see
/// `events` per `hours` until its own traffic outweighs the prior.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Prior {
    pub events: f64,
    pub hours: f64,
}

impl RateEstimate {
    /// Adds `new_events` seen over `elapsed_hours`, decaying what was known before.
    pub fn observe(self, new_events: u64, elapsed_hours: f64, half_life_hours: f64) -> Self {
        let elapsed_hours = elapsed_hours.max(0.0);
        let decay = (-(elapsed_hours * std::f64::consts::LN_2) / half_life_hours).exp();
        Self {
            count: self.count * decay + new_events as f64,
            exposure_hours: self.exposure_hours * decay + elapsed_hours,
        }
    }

    /// Events per hour, with the prior blended in.
    pub fn per_hour(&self, prior: Prior) -> f64 {
        (self.count + prior.events) / (self.exposure_hours + prior.hours)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PRIOR: Prior = Prior { events: 0.25, hours: 6.0 };

    #[test]
    fn rate_new_account_uses_prior() {
        assert!((RateEstimate::default().per_hour(PRIOR) - 1.0 / 24.0).abs() < 1e-9);
    }

    #[test]
    fn rate_converges_to_observed() {
        let mut estimate = RateEstimate::default();
        for _ in 0..(28 * 24 * 4) {
            estimate = estimate.observe(5, 0.25, 168.0);
        }
        let rate = estimate.per_hour(PRIOR);
        assert!((rate - 20.0).abs() < 1.5, "rate {rate}");
    }

    #[test]
    fn rate_old_traffic_fades() {
        let busy = RateEstimate { count: 2000.0, exposure_hours: 100.0 };
        let quiet = busy.observe(0, 24.0 * 28.0, 168.0);
        assert!(quiet.per_hour(PRIOR) < 2.0, "rate {}", quiet.per_hour(PRIOR));
    }
}
