//! `commsync local demo` against the shared moto server.

use commsync::local::demo;
use commsync_tests::{moto_endpoint, project_root};

#[tokio::test]
async fn demo_summary_counts_every_outcome() {
    let mut output = Vec::new();
    let summary = demo::run(&project_root(), Some(moto_endpoint()), &mut output).await.unwrap();
    let text = String::from_utf8(output).unwrap();

    assert_eq!(summary.requests, 8, "{text}");
    assert_eq!(summary.stored, 13, "{text}");
    assert_eq!(summary.duplicates, 2, "{text}");
    assert_eq!(summary.quarantined_bodies, 1, "{text}");
    assert_eq!(summary.enqueued_messages, 13, "{text}");
    assert_eq!(summary.rejected, 0, "{text}");
    assert!(text.contains("is read"), "{text}");
}
