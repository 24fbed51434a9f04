//! Ranking of WhatsApp message statuses, so that a late or duplicate status never moves
//! a message backwards.

/// Returns the rank of a status: `sent` 1 < `delivered` 2 < `read` 3 < `played` 4, and
/// `failed` 5 because Meta sends nothing after a failure. Unknown statuses rank 0 and
/// never change the stored status.
pub fn rank(status: &str) -> u8 {
    match status {
        "sent" => 1,
        "delivered" => 2,
        "read" => 3,
        "played" => 4,
        "failed" => 5,
        _ => 0,
    }
}

/// Whether a first status for an unknown message means we missed earlier ones: every
/// outbound message starts at `sent`, except one that failed before it was sent.
pub fn is_orphan_first_status(status: &str) -> bool {
    !matches!(status, "sent" | "failed")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_rank_orders_lifecycle() {
        assert!(rank("sent") < rank("delivered"));
        assert!(rank("delivered") < rank("read"));
        assert!(rank("read") < rank("played"));
    }

    #[test]
    fn status_failed_outranks_sent() {
        assert!(rank("failed") > rank("sent"));
    }

    #[test]
    fn status_unknown_ranks_zero() {
        assert_eq!(rank("deleted"), 0);
    }

    #[test]
    fn status_first_delivered_is_orphan() {
        assert!(is_orphan_first_status("delivered"));
        assert!(!is_orphan_first_status("sent"));
    }
}
