//! Metrics as CloudWatch Embedded Metric Format (EMF): one JSON line on stdout per request
//! or job, which Lambda sends to CloudWatch Logs and CloudWatch turns into metrics, with
//! no API call. Lines are written only inside Lambda (`AWS_LAMBDA_FUNCTION_NAME` is set) or
//! when `COMMSYNC_EMF=1`, so tests and the CLI print nothing.
//!
//! Every metric carries the `Provider` dimension. Tenants are not a dimension: one metric
//! series per tenant would grow without bound; tenant ids are in the log lines instead.

use serde_json::{json, Map, Value};

/// CloudWatch namespace of every commsync metric.
pub const NAMESPACE: &str = "commsync";

/// Metric values of one request or job, with their dimensions.
#[derive(Debug, Clone)]
pub struct Metrics {
    dimensions: Vec<(&'static str, String)>,
    values: Vec<(&'static str, f64, &'static str)>,
}

impl Metrics {
    /// Starts a set of metrics for `provider` (or `all`), emitted by `function`.
    pub fn new(function: &'static str, provider: &str) -> Self {
        Self {
            dimensions: vec![("Function", function.to_string()), ("Provider", provider.to_string())],
            values: Vec::new(),
        }
    }

    /// Adds a dimension, such as `Reason` for rejections or `Outcome` for recoveries.
    pub fn dimension(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.dimensions.push((name, value.into()));
        self
    }

    /// Adds a count.
    pub fn count(&mut self, name: &'static str, value: u64) -> &mut Self {
        self.values.push((name, value as f64, "Count"));
        self
    }

    /// Adds a duration in milliseconds.
    pub fn milliseconds(&mut self, name: &'static str, value: u64) -> &mut Self {
        self.values.push((name, value as f64, "Milliseconds"));
        self
    }

    /// Renders the EMF JSON object.
    pub fn render(&self, timestamp_ms: i64) -> Value {
        let dimension_names: Vec<&str> = self.dimensions.iter().map(|(name, _)| *name).collect();
        let definitions: Vec<Value> =
            self.values.iter().map(|(name, _, unit)| json!({ "Name": name, "Unit": unit })).collect();
        let mut object = Map::new();
        object.insert(
            "_aws".to_string(),
            json!({
                "Timestamp": timestamp_ms,
                "CloudWatchMetrics": [{ "Namespace": NAMESPACE, "Dimensions": [dimension_names], "Metrics": definitions }],
            }),
        );
        for (name, value) in &self.dimensions {
            object.insert(name.to_string(), json!(value));
        }
        for (name, value, _) in &self.values {
            object.insert(name.to_string(), json!(value));
        }
        Value::Object(object)
    }

    /// Writes the line to stdout when running in Lambda (or with `COMMSYNC_EMF=1`).
    pub fn emit(&self) {
        if self.values.is_empty() || !enabled() {
            return;
        }
        println!("{}", self.render(chrono::Utc::now().timestamp_millis()));
    }
}

fn enabled() -> bool {
    std::env::var_os("AWS_LAMBDA_FUNCTION_NAME").is_some()
        || std::env::var("COMMSYNC_EMF").is_ok_and(|value| value == "1")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emf_declares_every_metric_and_dimension() {
        let mut metrics = Metrics::new("webhook-whatsapp", "whatsapp").dimension("Outcome", "accepted");
        metrics.count("WebhooksReceived", 1).count("EventsEnqueued", 3);
        let line = metrics.render(1_796_300_000_000);

        assert_eq!(line["_aws"]["CloudWatchMetrics"][0]["Namespace"], "commsync");
        assert_eq!(line["_aws"]["CloudWatchMetrics"][0]["Dimensions"][0], json!(["Function", "Provider", "Outcome"]));
        assert_eq!(line["_aws"]["CloudWatchMetrics"][0]["Metrics"][1]["Name"], "EventsEnqueued");
        assert_eq!(line["Provider"], "whatsapp");
        assert_eq!(line["EventsEnqueued"], 3.0);
        assert_eq!(line["_aws"]["Timestamp"], 1_796_300_000_000i64);
    }
}
