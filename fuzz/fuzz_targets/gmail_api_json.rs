//! Fuzzes the decoding of Gmail API responses that recoveries read: `users.history.list`
//! pages first of all, then `users.messages.list`, `users.getProfile`, `users.watch` and
//! the OAuth token grant. The first input byte picks the type.

#![no_main]

use commsync::providers::gmail::api::{HistoryPage, MessageListPage, Profile, TokenGrant, Watch};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, json)) = data.split_first() else { return };
    match selector % 8 {
        0..=3 => drop(serde_json::from_slice::<HistoryPage>(json)),
        4 => drop(serde_json::from_slice::<MessageListPage>(json)),
        5 => drop(serde_json::from_slice::<Profile>(json)),
        6 => drop(serde_json::from_slice::<Watch>(json)),
        _ => {
            // A grant's Debug output must not depend on the access token at all.
            if let Ok(grant) = serde_json::from_slice::<TokenGrant>(json) {
                let without_token = TokenGrant { access_token: String::new(), expires_in: grant.expires_in };
                assert_eq!(format!("{grant:?}"), format!("{without_token:?}"));
            }
        }
    }
});
