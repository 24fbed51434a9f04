//! Builders of synthetic account states for property tests, simulations and benchmarks.

use crate::ids::{AccountId, ExternalId, Provider, TenantId};
use crate::store::AccountRecord;

/// A healthy, active account of `provider` created at `created_at` (epoch seconds), with
/// no traffic yet. Gmail accounts get a cursor and a watch valid for a week.
pub fn account(index: usize, provider: Provider, created_at: i64) -> AccountRecord {
    let external_id = match provider {
        Provider::WhatsApp => format!("{}", 100_000_000_000_000u64 + index as u64),
        Provider::Gmail => format!("mailbox{index}@example.com"),
        Provider::LinkedIn => format!("urn:li:organization:{index}"),
    };
    AccountRecord {
        tenant_id: TenantId::parse(format!("tenant{}", index % 50)).expect("valid id"),
        account_id: AccountId::parse(format!("account{index}")).expect("valid id"),
        provider,
        external_id: ExternalId::parse(external_id).expect("valid id"),
        status: "active".to_string(),
        created_at: crate::event::rfc3339_from_unix_seconds(created_at).unwrap_or_default(),
        webhook_events: 0,
        webhook_requests: 0,
        orphan_statuses: 0,
        last_webhook_at: None,
        notified_history_id: None,
        recovery_lease_until: None,
        recovery_lease_holder: None,
        history_cursor: (provider == Provider::Gmail).then_some(1000),
        history_cursor_at: (provider == Provider::Gmail).then_some(created_at),
        watch_expiration_ms: (provider == Provider::Gmail).then_some(((created_at + 400 * 86_400) * 1000) as u64),
        waba_id: None,
        consecutive_failures: 0,
        last_recovery_at: None,
        last_error: None,
        status_reason: None,
        last_webhook_epoch: None,
        last_status_epoch: None,
        notified_epoch: None,
        status_sent: 0,
        status_delivered: 0,
        status_read: 0,
        status_failed: 0,
        detector: Default::default(),
    }
}

/// A small deterministic random number generator (SplitMix64), so simulations repeat.
#[derive(Debug, Clone)]
pub struct SplitMix(pub u64);

impl SplitMix {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A uniform number in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}
