//! Hole detection for providers whose events carry contiguous sequence numbers. None of
//! WhatsApp, Gmail or LinkedIn do today (Gmail history ids increase but skip values), so
//! no account produces sequence findings yet; a provider that has them plugs in here.

use std::ops::RangeInclusive;

/// A source of contiguous sequence numbers for one account.
pub trait SequencedEvents {
    /// The sequence numbers seen, in any order, possibly with duplicates.
    fn seen_sequence_numbers(&self) -> Vec<u64>;
}

/// Returns the missing ranges between the lowest and highest number seen.
pub fn find_holes(seen: &[u64]) -> Vec<RangeInclusive<u64>> {
    let mut sorted = seen.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    sorted.windows(2).filter(|pair| pair[1] > pair[0] + 1).map(|pair| (pair[0] + 1)..=(pair[1] - 1)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holes_found_between_runs() {
        assert_eq!(find_holes(&[5, 1, 2, 9, 5]), vec![3..=4, 6..=8]);
    }

    #[test]
    fn holes_none_in_contiguous_run() {
        assert!(find_holes(&[3, 4, 5]).is_empty());
    }
}
