//! Logging for every binary: JSON lines on Lambda, with the AWS SDK's and HTTP clients'
//! wire-level logs capped at INFO whatever `RUST_LOG` asks for, because at DEBUG and TRACE
//! they print whole request and response bodies (credentials items included).

use tracing_subscriber::EnvFilter;

/// Targets that log raw HTTP traffic below INFO; each is capped at INFO.
pub const WIRE_LEVEL_TARGETS: &[&str] = &[
    "aws_smithy_runtime",
    "aws_smithy_runtime_api",
    "aws_smithy_http_client",
    "aws_smithy_types",
    "aws_runtime",
    "aws_config",
    "aws_sdk_dynamodb",
    "aws_sdk_sqs",
    "aws_sdk_eventbridge",
    "hyper",
    "hyper_util",
    "h2",
    "rustls",
    "reqwest",
];

/// Builds the filter: `AWS_LAMBDA_LOG_LEVEL`, else `RUST_LOG`, else `default_level`, then
/// the caps, which come last so they win over any broader or equal directive.
pub fn filter(default_level: &str) -> EnvFilter {
    let base = std::env::var("AWS_LAMBDA_LOG_LEVEL")
        .or_else(|_| std::env::var("RUST_LOG"))
        .unwrap_or_else(|_| default_level.to_string())
        .to_ascii_lowercase();
    filter_from(&base)
}

/// Builds the filter from explicit directives, with the caps applied.
pub fn filter_from(directives: &str) -> EnvFilter {
    let caps: Vec<String> = WIRE_LEVEL_TARGETS.iter().map(|target| format!("{target}=info")).collect();
    EnvFilter::new(format!("{directives},{}", caps.join(",")))
}

/// Installs the JSON subscriber Lambda functions use (one object per line, no colours).
pub fn init_lambda() {
    tracing_subscriber::fmt().json().with_env_filter(filter("info")).with_ansi(false).with_current_span(false).init();
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn filter_caps_sdk_wire_logs_at_trace() {
        let captured = Captured::default();
        let writer = captured.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_env_filter(filter_from("trace"))
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            tracing::trace!(target: "aws_smithy_runtime::client::orchestrator", "response body with a token");
            tracing::trace!(target: "hyper_util::client", "raw bytes");
            tracing::trace!(target: "commsync::store", "commsync detail");
        });
        let text = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
        assert!(text.contains("commsync detail"));
        assert!(!text.contains("response body with a token"));
        assert!(!text.contains("raw bytes"));
    }
}
