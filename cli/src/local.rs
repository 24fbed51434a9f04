//! `commsync local`: the local stack on moto, single invocations, the demo, and event signing.

use anyhow::{bail, Context};
use base64::Engine;
use commsync::local::providers::ProviderServer;
use commsync::local::stack::dev_value;
use commsync::local::{
    demo, dev_keys, project_root, server, state_file, tools_dir, LocalFunctions, LocalStack, MotoServer, Template,
};
use commsync::secret::Secret;
use lambda_http::aws_lambda_events::apigw::ApiGatewayV2httpRequest;
use std::path::PathBuf;
use std::sync::Arc;

#[derive(Debug, clap::Subcommand)]
pub enum LocalCommand {
    /// Start moto (unless AWS_ENDPOINT_URL is set), create the template's resources and
    /// serve its HTTP routes on 127.0.0.1 until Ctrl-C.
    Up(UpArgs),
    /// Run one function on one Lambda event file against the running local stack.
    Invoke {
        /// Function binary or logical id, e.g. webhook-whatsapp.
        function: String,
        /// Lambda event JSON, e.g. events/whatsapp/02-text-message.json.
        event: PathBuf,
    },
    /// Start a local stack, register the sample accounts, replay every sample webhook and
    /// print what was stored, deduplicated, quarantined and enqueued.
    Demo,
    /// Recompute the signature or push token of sample events after editing them, using the
    /// development secrets (or WHATSAPP_APP_SECRET, LINKEDIN_CLIENT_SECRET, ... when set).
    Sign {
        /// Event files to re-sign in place.
        #[arg(required = true)]
        events: Vec<PathBuf>,
    },
}

#[derive(Debug, clap::Args)]
pub struct UpArgs {
    /// Port of the HTTP server on 127.0.0.1.
    #[arg(long, default_value_t = 3000)]
    port: u16,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct LocalState {
    endpoint: String,
    http_port: u16,
}

pub async fn run(command: LocalCommand) -> anyhow::Result<()> {
    match command {
        LocalCommand::Up(args) => up(args).await,
        LocalCommand::Invoke { function, event } => invoke(&function, &event).await,
        LocalCommand::Demo => {
            let root = project_root();
            let endpoint = std::env::var("AWS_ENDPOINT_URL").ok().filter(|value| !value.is_empty());
            let summary = demo::run(&root, endpoint, &mut std::io::stdout()).await?;
            if summary.requests == 0 {
                bail!("no sample events found under {}/events", root.display());
            }
            Ok(())
        }
        LocalCommand::Sign { events } => sign(&events),
    }
}

async fn up(args: UpArgs) -> anyhow::Result<()> {
    let root = project_root();
    let template = Template::load(&root.join("template.yaml"))?;
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", args.port))
        .await
        .with_context(|| format!("cannot listen on 127.0.0.1:{}; pass another --port", args.port))?;

    let (moto, endpoint) = match std::env::var("AWS_ENDPOINT_URL").ok().filter(|value| !value.is_empty()) {
        Some(endpoint) => (None, endpoint),
        None => {
            let moto = MotoServer::start(&tools_dir(&root), 0).await?;
            let endpoint = moto.endpoint.clone();
            (Some(moto), endpoint)
        }
    };
    let mut stack = LocalStack::create(template, &endpoint, "").await?;
    let jwks_url = dev_keys::serve_dev_jwks().await?;
    stack.use_jwks_url(&jwks_url);
    let providers = ProviderServer::start().await;
    stack.use_provider_simulator(&providers);
    let functions = Arc::new(LocalFunctions::build(&stack)?);
    let routes = LocalFunctions::http_routes(&stack);

    // Stands in for the SQS event source mapping: the worker takes SyncQueue jobs every second.
    let poller = {
        let (functions, stack) = (functions.clone(), stack.clone());
        tokio::spawn(async move {
            loop {
                if let Err(error) = functions.poll_queue(&stack, "recovery-worker").await {
                    tracing::warn!(%error, "SyncQueue poll failed");
                }
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            }
        })
    };

    let state_path = state_file(&root);
    std::fs::create_dir_all(state_path.parent().expect("state file has a parent"))?;
    std::fs::write(
        &state_path,
        serde_json::to_vec_pretty(&LocalState { endpoint: endpoint.clone(), http_port: args.port })?,
    )?;

    println!("commsync local stack is up");
    println!("  AWS endpoint (moto): {endpoint}");
    println!("  development JWKS for Gmail push tokens: {jwks_url}");
    println!("  provider API simulator (Gmail, Google OAuth, Graph, LinkedIn): {}", providers.gmail_base_url());
    println!("  recovery-worker polls SyncQueue every second");
    for (logical_id, resource) in &stack.physical {
        println!("  {logical_id:<16} {}", resource.url.as_deref().unwrap_or(&resource.name));
    }
    for (method, path, binary) in &routes {
        println!("  {method:<5} http://127.0.0.1:{}{path} -> {binary}", args.port);
    }
    println!("\nIn another terminal:");
    println!("  export AWS_ENDPOINT_URL={endpoint} AWS_REGION=us-east-1 AWS_EC2_METADATA_DISABLED=true");
    println!(
        "  commsync accounts add --tenant acme --account support --provider whatsapp --external-id 106540352242922"
    );
    println!("  commsync local invoke webhook-whatsapp events/whatsapp/02-text-message.json");
    println!("Press Ctrl-C to stop.");

    let shutdown = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let served = server::serve(listener, functions, routes, shutdown).await;
    poller.abort();
    let _ = std::fs::remove_file(&state_path);
    if let Some(moto) = moto {
        moto.stop().await;
    }
    served?;
    println!("stopped");
    Ok(())
}

async fn invoke(function: &str, event_path: &PathBuf) -> anyhow::Result<()> {
    let root = project_root();
    let endpoint = match std::env::var("AWS_ENDPOINT_URL").ok().filter(|value| !value.is_empty()) {
        Some(endpoint) => endpoint,
        None => {
            let text = std::fs::read(state_file(&root))
                .context("no local stack is running: start one with `commsync local up`, or set AWS_ENDPOINT_URL")?;
            serde_json::from_slice::<LocalState>(&text)?.endpoint
        }
    };
    let event = std::fs::read_to_string(event_path).with_context(|| format!("cannot read {}", event_path.display()))?;

    let template = Template::load(&root.join("template.yaml"))?;
    let binary = template
        .function_by_binary(function)
        .map(|definition| definition.binary.clone())
        .with_context(|| format!("template.yaml has no function {function:?}"))?;
    let is_http = template.function_by_binary(&binary).is_some_and(|definition| !definition.routes.is_empty());
    let event = if is_http {
        let mut request: ApiGatewayV2httpRequest = serde_json::from_str(&event)
            .with_context(|| format!("{} is not an API Gateway HTTP API (2.0) event", event_path.display()))?;
        if demo::refresh_dev_tokens(&mut request) {
            eprintln!(
                "note: the development push token in {} was re-minted, because such tokens expire after an hour",
                event_path.display()
            );
        }
        serde_json::to_string(&request)?
    } else {
        event
    };

    let mut stack = LocalStack::create(template, &endpoint, "").await?;
    stack.use_jwks_url(&dev_keys::serve_dev_jwks().await?);
    let providers = ProviderServer::start().await;
    stack.use_provider_simulator(&providers);
    let functions = LocalFunctions::build(&stack)?;
    let response = functions.invoke_json(&binary, &event).await?;
    println!("{}", serde_json::to_string_pretty(&response)?);
    Ok(())
}

fn sign(events: &[PathBuf]) -> anyhow::Result<()> {
    for path in events {
        let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
        let event: serde_json::Value =
            serde_json::from_str(&text).with_context(|| format!("{} is not JSON", path.display()))?;
        let body = event.get("body").and_then(|body| body.as_str()).unwrap_or_default();
        let body = if event.get("isBase64Encoded").and_then(|flag| flag.as_bool()) == Some(true) {
            base64::engine::general_purpose::STANDARD.decode(body).context("body is not valid base64")?
        } else {
            body.as_bytes().to_vec()
        };
        let header = |wanted: &str| {
            event
                .get("headers")
                .and_then(|headers| headers.as_object())
                .and_then(|headers| headers.iter().find(|(name, _)| name.eq_ignore_ascii_case(wanted)))
                .and_then(|(_, value)| value.as_str())
                .map(str::to_string)
        };

        let (old, new) = if let Some(old) = header("x-hub-signature-256") {
            let secret = Secret::new(dev_value("WhatsAppAppSecret"));
            (old, commsync::providers::whatsapp::verify::sign(&secret, &body))
        } else if let Some(old) = header("x-li-signature") {
            let secret = Secret::new(dev_value("LinkedInClientSecret"));
            let digest = commsync::providers::linkedin::verify::sign(&secret, &body);
            // LinkedIn accepts the header with or without the prefix; keep the form the file has.
            let prefixed = old.get(..11).is_some_and(|prefix| prefix.eq_ignore_ascii_case("hmacsha256="));
            (old, if prefixed { format!("hmacsha256={digest}") } else { digest })
        } else if let Some(old) = header("authorization") {
            let token =
                dev_keys::mint_push_token(&dev_value("GmailPushAudience"), &dev_value("GmailPushServiceAccount"));
            (old, format!("Bearer {token}"))
        } else {
            bail!(
                "{} has no x-hub-signature-256, x-li-signature or authorization header to update; add one first",
                path.display()
            );
        };
        std::fs::write(path, text.replace(&old, &new))?;
        println!("signed {}", path.display());
    }
    Ok(())
}
