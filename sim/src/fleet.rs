//! The simulated fleet: accounts with rates from near-silent to very busy, their events
//! over the simulated day, and what each scenario does to webhook delivery.

use commsync::gaps::testkit::SplitMix;
use commsync::ids::Provider;

/// One simulated account and its day of events.
#[derive(Debug, Clone)]
pub struct SimAccount {
    pub provider: Provider,
    /// True event rate, per hour.
    pub rate_per_hour: f64,
    /// Event times in seconds from the start, ascending.
    pub events: Vec<i64>,
    /// Whether each event's webhook is lost by the scenario (not counting channel outages).
    pub dropped: Vec<bool>,
}

/// What breaks during the day.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scenario {
    Healthy,
    /// 1% of webhooks lost at random.
    RandomDrops,
    /// One busy account's webhooks stop for 3 hours.
    AccountStops,
    /// Every LinkedIn webhook lost for 1 hour.
    ProviderOutage,
    /// One busy Gmail mailbox's watch expires after 6 hours unless renewed.
    WatchExpires,
    /// One busy WhatsApp number's app subscription is removed after 8 hours.
    WhatsAppUnsubscribed,
}

impl Scenario {
    pub const ALL: [Scenario; 6] = [
        Scenario::Healthy,
        Scenario::RandomDrops,
        Scenario::AccountStops,
        Scenario::ProviderOutage,
        Scenario::WatchExpires,
        Scenario::WhatsAppUnsubscribed,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Scenario::Healthy => "healthy",
            Scenario::RandomDrops => "1% webhooks dropped",
            Scenario::AccountStops => "one account stops 3 h",
            Scenario::ProviderOutage => "LinkedIn outage 1 h",
            Scenario::WatchExpires => "Gmail watch expires",
            Scenario::WhatsAppUnsubscribed => "WhatsApp app unsubscribed",
        }
    }
}

/// Channel breaks that a strategy may repair: a watch that expires, a subscription removed.
#[derive(Debug, Clone, Copy, Default)]
pub struct Breaks {
    /// Gmail account index and the second its watch expires.
    pub watch_expires: Option<(usize, i64)>,
    /// WhatsApp account index and the second its subscription is removed.
    pub unsubscribed: Option<(usize, i64)>,
}

/// Builds `count` accounts over `hours` with rates log-uniform from 0.01 to 100 events
/// per hour, a third per provider, and Poisson arrivals.
pub fn generate(count: usize, hours: i64, seed: u64) -> Vec<SimAccount> {
    let mut rng = SplitMix(seed);
    let end = hours * 3600;
    (0..count)
        .map(|index| {
            let provider = [Provider::WhatsApp, Provider::Gmail, Provider::LinkedIn][index % 3];
            let rate_per_hour = 10f64.powf(rng.unit() * 4.0 - 2.0);
            let mut events = Vec::new();
            let mut at = 0.0;
            loop {
                at += -(3600.0 / rate_per_hour) * (1.0 - rng.unit()).ln();
                if at >= end as f64 {
                    break;
                }
                events.push(at as i64);
            }
            let dropped = vec![false; events.len()];
            SimAccount { provider, rate_per_hour, events, dropped }
        })
        .collect()
}

/// Applies a scenario: marks lost webhooks and returns the channel breaks.
pub fn apply(scenario: Scenario, accounts: &mut [SimAccount], seed: u64) -> Breaks {
    let mut rng = SplitMix(seed ^ 0x5EED);
    let busiest = |provider: Provider, accounts: &[SimAccount]| {
        accounts
            .iter()
            .enumerate()
            .filter(|(_, account)| account.provider == provider && account.rate_per_hour < 60.0)
            .max_by(|(_, a), (_, b)| a.rate_per_hour.total_cmp(&b.rate_per_hour))
            .map(|(index, _)| index)
            .expect("the fleet has accounts of every provider")
    };
    let mut breaks = Breaks::default();
    match scenario {
        Scenario::Healthy => {}
        Scenario::RandomDrops => {
            for account in accounts.iter_mut() {
                for dropped in account.dropped.iter_mut() {
                    *dropped = rng.unit() < 0.01;
                }
            }
        }
        Scenario::AccountStops => {
            let index = busiest(Provider::LinkedIn, accounts);
            let account = &mut accounts[index];
            for (at, dropped) in account.events.iter().zip(account.dropped.iter_mut()) {
                *dropped = (10 * 3600..13 * 3600).contains(at);
            }
        }
        Scenario::ProviderOutage => {
            for account in accounts.iter_mut().filter(|account| account.provider == Provider::LinkedIn) {
                for (at, dropped) in account.events.iter().zip(account.dropped.iter_mut()) {
                    *dropped = (14 * 3600..15 * 3600).contains(at);
                }
            }
        }
        Scenario::WatchExpires => breaks.watch_expires = Some((busiest(Provider::Gmail, accounts), 6 * 3600)),
        Scenario::WhatsAppUnsubscribed => breaks.unsubscribed = Some((busiest(Provider::WhatsApp, accounts), 8 * 3600)),
    }
    breaks
}
