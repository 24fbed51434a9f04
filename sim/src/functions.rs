//! Cold start, size and memory of each Lambda binary, measured locally: each release
//! binary runs against a fake Lambda Runtime API on 127.0.0.1, with moto and the provider
//! simulator behind it. Init time is from process start to its first `invocation/next`
//! request; peak RSS is `VmHWM` after it served the demo load.

use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, HeaderValue};
use axum::routing::{get, post};
use commsync::local::demo::{refresh_dev_tokens, sample_events};
use commsync::local::dev_keys::serve_dev_jwks;
use commsync::local::providers::ProviderServer;
use commsync::local::{tools_dir, LocalStack, MotoServer, Template};
use lambda_http::aws_lambda_events::apigw::ApiGatewayV2httpRequest;
use std::collections::VecDeque;
use std::fmt::Write;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::Notify;

#[derive(Default)]
struct Runtime {
    queue: Mutex<VecDeque<String>>,
    first_next: Mutex<Option<Instant>>,
    answered: Mutex<usize>,
    errors: Mutex<usize>,
    wake: Notify,
}

async fn next(State(runtime): State<Arc<Runtime>>) -> (HeaderMap, String) {
    runtime.first_next.lock().unwrap().get_or_insert_with(Instant::now);
    loop {
        if let Some(event) = runtime.queue.lock().unwrap().pop_front() {
            let mut headers = HeaderMap::new();
            let id = format!("req-{}", uuid_like());
            headers.insert("lambda-runtime-aws-request-id", HeaderValue::from_str(&id).unwrap());
            let deadline =
                std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() + 60_000;
            headers.insert("lambda-runtime-deadline-ms", HeaderValue::from_str(&deadline.to_string()).unwrap());
            headers.insert(
                "lambda-runtime-invoked-function-arn",
                HeaderValue::from_static("arn:aws:lambda:us-east-1:123456789012:function:commsync"),
            );
            headers.insert(
                "lambda-runtime-trace-id",
                HeaderValue::from_static("Root=1-00000000-000000000000000000000000"),
            );
            return (headers, event);
        }
        runtime.wake.notified().await;
    }
}

fn uuid_like() -> u128 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos()
}

async fn response(State(runtime): State<Arc<Runtime>>, UrlPath(_id): UrlPath<String>) -> &'static str {
    *runtime.answered.lock().unwrap() += 1;
    ""
}

async fn error(State(runtime): State<Arc<Runtime>>, UrlPath(_id): UrlPath<String>) -> &'static str {
    *runtime.errors.lock().unwrap() += 1;
    *runtime.answered.lock().unwrap() += 1;
    ""
}

struct Measured {
    binary: String,
    size_bytes: u64,
    init: Duration,
    invocations: usize,
    errors: usize,
    peak_rss_kib: u64,
}

/// Builds the demo load for a function: its sample events, repeated.
fn load(root: &Path, binary: &str) -> anyhow::Result<Vec<String>> {
    let repeat = 20;
    let mut events = Vec::new();
    match binary {
        "recovery-worker" => events.push(std::fs::read_to_string(root.join("events/sqs/history-sync-job.json"))?),
        "gap-detector" => events.push(std::fs::read_to_string(root.join("events/schedule/detection-run.json"))?),
        webhook => {
            let provider = webhook.trim_start_matches("webhook-");
            for path in sample_events(root)?
                .into_iter()
                .filter(|path| path.to_string_lossy().contains(&format!("/{provider}/")))
            {
                let mut event: ApiGatewayV2httpRequest = serde_json::from_str(&std::fs::read_to_string(path)?)?;
                refresh_dev_tokens(&mut event);
                events.push(serde_json::to_string(&event)?);
            }
        }
    }
    Ok(events.iter().cycle().take(events.len() * repeat).cloned().collect())
}

async fn measure(root: &Path, bin_dir: &Path, binary: &str, stack: &LocalStack) -> anyhow::Result<Measured> {
    // cargo-lambda (and so `sam build`) lays binaries out as `{binary}/bootstrap`.
    let bootstrap = bin_dir.join(binary).join("bootstrap");
    let path = if bootstrap.is_file() { bootstrap } else { bin_dir.join(binary) };
    let size_bytes = std::fs::metadata(&path)
        .map_err(|error| anyhow::anyhow!("{}: {error}; build it with cargo build --release", path.display()))?
        .len();

    let runtime = Arc::new(Runtime::default());
    let app = axum::Router::new()
        .route("/2018-06-01/runtime/invocation/next", get(next))
        .route("/2018-06-01/runtime/invocation/{id}/response", post(response))
        .route("/2018-06-01/runtime/invocation/{id}/error", post(error))
        .with_state(runtime.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?;
    let server = tokio::spawn(async move { axum::serve(listener, app).await });

    let mut command = tokio::process::Command::new(&path);
    command
        .envs(stack.function_env(binary)?)
        .env("AWS_LAMBDA_RUNTIME_API", address.to_string())
        .env("AWS_LAMBDA_FUNCTION_NAME", binary)
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env("AWS_LAMBDA_LOG_STREAM_NAME", "local")
        .env("AWS_LAMBDA_LOG_GROUP_NAME", "local")
        .env("AWS_LAMBDA_LOG_FORMAT", "JSON")
        .env("AWS_LAMBDA_LOG_LEVEL", "ERROR")
        .env("AWS_ENDPOINT_URL", &stack.endpoint)
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true);
    let started = Instant::now();
    let mut child = command.spawn()?;
    let pid = child.id().unwrap_or_default();

    let first = loop {
        if let Some(first) = *runtime.first_next.lock().unwrap() {
            break first;
        }
        if started.elapsed() > Duration::from_secs(20) {
            anyhow::bail!("{binary} did not ask for an event within 20 s");
        }
        tokio::time::sleep(Duration::from_micros(200)).await;
    };
    let init = first.duration_since(started);

    let events = load(root, binary)?;
    let total = events.len();
    runtime.queue.lock().unwrap().extend(events);
    runtime.wake.notify_waiters();
    let deadline = Instant::now() + Duration::from_secs(120);
    while *runtime.answered.lock().unwrap() < total && Instant::now() < deadline {
        runtime.wake.notify_waiters();
        tokio::time::sleep(Duration::from_millis(5)).await;
    }

    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let peak_rss_kib = status
        .lines()
        .find(|line| line.starts_with("VmHWM:"))
        .and_then(|line| line.split_whitespace().nth(1))
        .and_then(|value| value.parse().ok())
        .unwrap_or(0);
    child.kill().await.ok();
    server.abort();
    let errors = *runtime.errors.lock().unwrap();
    let invocations = *runtime.answered.lock().unwrap();
    Ok(Measured { binary: binary.to_string(), size_bytes, init, invocations, errors, peak_rss_kib })
}

/// Measures every function of the template and writes the Markdown table to `out`.
pub async fn run(root: &Path, bin_dir: &Path, out: &Path) -> anyhow::Result<()> {
    let moto = MotoServer::start(&tools_dir(root), 0).await?;
    let template = Template::load(&root.join("template.yaml"))?;
    let binaries: Vec<String> = template.functions.iter().map(|function| function.binary.clone()).collect();
    let mut stack = LocalStack::create(template, &moto.endpoint, "").await?;
    stack.use_jwks_url(&serve_dev_jwks().await?);
    let providers = ProviderServer::start().await;
    stack.use_provider_simulator(&providers);
    let store = commsync::store::Store::new(
        stack.clients().dynamodb,
        commsync::store::Tables {
            accounts: stack.resource("AccountsTable")?.name.clone(),
            events: stack.resource("EventsTable")?.name.clone(),
        },
        Duration::from_secs(86_400),
    );
    for account in commsync::local::demo::sample_accounts(root)? {
        store.register_account(&account).await?;
    }

    let mut text = format!("Binaries measured: `{}`.\n\n", bin_dir.display());
    text.push_str("| function | binary size | init (process start to first `next`) | invocations (errors) | peak RSS |\n|---|---:|---:|---:|---:|\n");
    for binary in &binaries {
        let measured = measure(root, bin_dir, binary, &stack).await?;
        writeln!(
            text,
            "| {} | {:.1} MiB | {:.1} ms | {} ({}) | {:.1} MiB |",
            measured.binary,
            measured.size_bytes as f64 / 1_048_576.0,
            measured.init.as_secs_f64() * 1000.0,
            measured.invocations,
            measured.errors,
            measured.peak_rss_kib as f64 / 1024.0
        )?;
    }
    if let Some(parent) = out.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(out, &text)?;
    print!("{text}");
    moto.stop().await;
    Ok(())
}
