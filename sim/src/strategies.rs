//! The strategies commsync is compared with: polling every N minutes, webhooks only, and
//! an oracle that is given exactly which accounts lost events.

use crate::fleet::{Breaks, SimAccount};
use crate::outcome::{pages, Outcome};
use commsync::ids::Provider;

/// Whether the account's webhook channel is up at `at`, given a break and when (if ever)
/// the strategy repaired it.
pub fn channel_up(index: usize, provider: Provider, at: i64, breaks: &Breaks, repaired_at: Option<i64>) -> bool {
    let broken = match (provider, breaks.watch_expires, breaks.unsubscribed) {
        (Provider::Gmail, Some((broken, from)), _) if broken == index => Some(from),
        (Provider::WhatsApp, _, Some((broken, from))) if broken == index => Some(from),
        _ => None,
    };
    match broken {
        Some(from) if at >= from => repaired_at.is_some_and(|repaired| at >= repaired),
        _ => true,
    }
}

/// Polling every `interval` seconds. Gmail and LinkedIn are polled instead of using
/// webhooks (`history.list` plus `messages.get` per message; one notifications call per 50).
/// WhatsApp has no API for past messages, so its content still comes from webhooks and the
/// poll checks `subscribed_apps`.
pub fn poll(accounts: &[SimAccount], breaks: &Breaks, end: i64, interval: i64) -> Outcome {
    let mut outcome = Outcome::default();
    let polls = end / interval;
    for (index, account) in accounts.iter().enumerate() {
        outcome.syncs += polls as u64;
        outcome.api_calls += polls as u64;
        match account.provider {
            Provider::Gmail | Provider::LinkedIn => {
                if account.provider == Provider::Gmail {
                    outcome.api_calls += account.events.len() as u64;
                } else {
                    let mut per_poll = vec![0usize; polls as usize + 1];
                    for at in &account.events {
                        per_poll[(*at / interval) as usize] += 1;
                    }
                    outcome.api_calls += per_poll.iter().map(|count| pages(*count) - 1).sum::<u64>();
                }
                for (at, lost) in account.events.iter().zip(&account.dropped) {
                    if *lost {
                        let next_poll = (at / interval + 1) * interval;
                        outcome.latencies.push((next_poll - at) as f64);
                    }
                }
            }
            Provider::WhatsApp => {
                let repaired = breaks.unsubscribed.filter(|(broken, _)| *broken == index).map(|(_, from)| {
                    outcome.api_calls += 1;
                    (from / interval + 1) * interval
                });
                for (at, lost) in account.events.iter().zip(&account.dropped) {
                    if *lost || !channel_up(index, account.provider, *at, breaks, repaired) {
                        outcome.missed += 1;
                    }
                }
            }
        }
    }
    outcome
}

/// Gmail: a delivered push syncs history from the cursor, fetching every message not yet
/// fetched, so it also brings earlier lost changes. Returns the new cursor position.
fn push_sync(account: &SimAccount, at: i64, fetched: &mut usize, lost_pending: &mut Vec<i64>, outcome: &mut Outcome) {
    outcome.syncs += 1;
    outcome.api_calls += 1;
    let upto = account.events.partition_point(|event| *event <= at);
    outcome.api_calls += upto.saturating_sub(*fetched) as u64;
    *fetched = upto.max(*fetched);
    for lost_at in lost_pending.drain(..) {
        outcome.latencies.push((at - lost_at) as f64);
    }
}

/// Webhooks only: no polling and no recovery. Gmail pushes still need a history sync to
/// fetch content.
pub fn webhooks_only(accounts: &[SimAccount], breaks: &Breaks) -> Outcome {
    let mut outcome = Outcome::default();
    for (index, account) in accounts.iter().enumerate() {
        let mut fetched = 0;
        let mut lost_pending = Vec::new();
        for (at, dropped) in account.events.iter().zip(&account.dropped) {
            let delivered = !dropped && channel_up(index, account.provider, *at, breaks, None);
            match (account.provider, delivered) {
                (Provider::Gmail, true) => push_sync(account, *at, &mut fetched, &mut lost_pending, &mut outcome),
                (Provider::Gmail, false) => lost_pending.push(*at),
                (_, true) => {}
                (_, false) => outcome.missed += 1,
            }
        }
        outcome.missed += lost_pending.len() as u64;
    }
    outcome
}

/// The oracle: repairs a broken channel the moment it breaks (one call), and recovers each
/// run of lost events once, right after its last loss, the cheapest way (a Gmail push that
/// follows costs nothing extra). WhatsApp messages whose webhook is lost cannot be recovered
/// by anyone.
pub fn oracle(accounts: &[SimAccount], breaks: &Breaks, end: i64) -> Outcome {
    let mut outcome = Outcome::default();
    for (index, account) in accounts.iter().enumerate() {
        let repaired = match account.provider {
            Provider::Gmail => breaks.watch_expires.filter(|(broken, _)| *broken == index).map(|(_, from)| from),
            Provider::WhatsApp => breaks.unsubscribed.filter(|(broken, _)| *broken == index).map(|(_, from)| from),
            Provider::LinkedIn => None,
        };
        if repaired.is_some() {
            outcome.api_calls += 1;
            outcome.syncs += 1;
        }
        let mut fetched = 0;
        let mut lost_pending: Vec<i64> = Vec::new();
        for (position, (at, dropped)) in account.events.iter().zip(&account.dropped).enumerate() {
            let delivered = !dropped && channel_up(index, account.provider, *at, breaks, repaired);
            match account.provider {
                Provider::Gmail if delivered => push_sync(account, *at, &mut fetched, &mut lost_pending, &mut outcome),
                Provider::Gmail => lost_pending.push(*at),
                Provider::WhatsApp if !delivered => outcome.missed += 1,
                Provider::LinkedIn if !delivered => {
                    lost_pending.push(*at);
                    let next_lost = account.dropped.get(position + 1).copied().unwrap_or(false);
                    if !next_lost {
                        outcome.api_calls += pages(lost_pending.len());
                        outcome.syncs += 1;
                        for lost_at in lost_pending.drain(..) {
                            outcome.latencies.push((at - lost_at) as f64);
                        }
                    }
                }
                _ => {}
            }
        }
        if account.provider == Provider::Gmail && !lost_pending.is_empty() {
            // No push follows the last loss: one history sync right after it.
            let last = *lost_pending.last().expect("not empty");
            push_sync(account, last.min(end), &mut fetched, &mut lost_pending, &mut outcome);
        }
    }
    outcome
}
