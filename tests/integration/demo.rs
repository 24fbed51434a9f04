//! `commsync local demo` against the shared moto server.

use commsync::local::demo;
use commsync_tests::{moto_endpoint, project_root};

#[tokio::test]
async fn demo_summary_counts_every_outcome() {
    let mut output = Vec::new();
    let summary = demo::run(&project_root(), Some(moto_endpoint()), &mut output).await.unwrap();
    let text = String::from_utf8(output).unwrap();

    assert_eq!(summary.requests, 17, "{text}");
    assert_eq!(summary.stored, 21, "{text}");
    assert_eq!(summary.duplicates, 4, "{text}");
    assert_eq!(summary.quarantined_bodies, 2, "{text}");
    assert_eq!(summary.enqueued_messages, 27, "{text}");
    assert_eq!(summary.jobs_run, 3, "{text}");
    assert_eq!(summary.recovered, 5, "{text}");
    assert_eq!(summary.detector_jobs, 2, "{text}");
    assert_eq!(summary.sync_jobs, 0, "{text}");
    assert_eq!(summary.rejected, 0, "{text}");
    assert!(text.contains("is read"), "{text}");
    assert!(text.contains("3 new events, cursor 9876590 -> 9876611"), "{text}");
}
