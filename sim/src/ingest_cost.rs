//! AWS calls per webhook: the real handlers against moto, with an SDK interceptor counting
//! every DynamoDB, SQS and EventBridge operation. Route items are cached after the first
//! request of a container, so each case is measured warm, after one request that fills it.

use commsync::aws::{AwsClients, CallCounter};
use commsync::ids::{AccountId, ExternalId, Provider, TenantId};
use commsync::local::dev_keys::{mint_push_token, serve_dev_jwks};
use commsync::local::server::apigw_event;
use commsync::local::stack::dev_value;
use commsync::local::{tools_dir, LocalStack, MotoServer, Template};
use commsync::secret::Secret;
use commsync::store::NewAccount;
use lambda_http::aws_lambda_events::apigw::ApiGatewayV2httpRequest;
use lambda_http::http::{HeaderMap, HeaderName, HeaderValue, Method};
use std::collections::BTreeMap;
use std::fmt::Write;
use std::path::Path;

const NUMBER: &str = "106540352242922";
const MAILBOX: &str = "ops@acme.example";
const ORG: &str = "urn:li:organization:5515715";

fn post(path: &str, headers: &[(&str, String)], body: &str) -> ApiGatewayV2httpRequest {
    let mut map = HeaderMap::new();
    for (name, value) in headers {
        map.insert(
            HeaderName::from_bytes(name.as_bytes()).expect("valid name"),
            HeaderValue::from_str(value).expect("valid value"),
        );
    }
    apigw_event(&Method::POST, &path.parse().expect("valid path"), map, body.as_bytes())
}

fn whatsapp(body: &str) -> ApiGatewayV2httpRequest {
    let signature =
        commsync::providers::whatsapp::verify::sign(&Secret::new(dev_value("WhatsAppAppSecret")), body.as_bytes());
    post("/webhooks/whatsapp", &[("x-hub-signature-256", signature)], body)
}

fn whatsapp_body(messages: &[String], statuses: &[String]) -> String {
    format!(
        r#"{{"object":"whatsapp_business_account","entry":[{{"id":"WABA","changes":[{{"field":"messages","value":{{"metadata":{{"phone_number_id":"{NUMBER}"}},"messages":[{}],"statuses":[{}]}}}}]}}]}}"#,
        messages.join(","),
        statuses.join(",")
    )
}

fn message(id: &str) -> String {
    format!(
        r#"{{"from":"34600000000","id":"{id}","timestamp":"1796300000","type":"text","text":{{"body":"{}"}}}}"#,
        "x".repeat(200)
    )
}

fn status(id: &str) -> String {
    format!(r#"{{"id":"{id}","status":"delivered","timestamp":"1796300000","recipient_id":"34600000000"}}"#)
}

fn linkedin(ids: std::ops::Range<u64>) -> ApiGatewayV2httpRequest {
    let items: Vec<String> = ids
        .map(|id| format!(r#"{{"notificationId":{id},"organizationalEntity":"{ORG}","action":"COMMENT","lastModifiedAt":1796300000000}}"#))
        .collect();
    let body =
        format!(r#"{{"type":"ORGANIZATION_SOCIAL_ACTION_NOTIFICATIONS","notifications":[{}]}}"#, items.join(","));
    let signature =
        commsync::providers::linkedin::verify::sign(&Secret::new(dev_value("LinkedInClientSecret")), body.as_bytes());
    post("/webhooks/linkedin", &[("x-li-signature", signature)], &body)
}

fn gmail(message_id: &str, history_id: u64) -> ApiGatewayV2httpRequest {
    use base64::Engine;
    let data = base64::engine::general_purpose::STANDARD
        .encode(format!(r#"{{"emailAddress":"{MAILBOX}","historyId":{history_id}}}"#));
    let body = format!(
        r#"{{"message":{{"data":"{data}","messageId":"{message_id}"}},"subscription":"projects/p/subscriptions/s"}}"#
    );
    let token = mint_push_token(&dev_value("GmailPushAudience"), &dev_value("GmailPushServiceAccount"));
    post("/webhooks/gmail", &[("authorization", format!("Bearer {token}"))], &body)
}

struct Case {
    name: &'static str,
    events: u64,
    status: i64,
    calls: BTreeMap<String, u64>,
}

/// Measures each case and writes the Markdown table to `out`.
pub async fn run(root: &Path, out: &Path) -> anyhow::Result<()> {
    let moto = MotoServer::start(&tools_dir(root), 0).await?;
    let template = Template::load(&root.join("template.yaml"))?;
    let mut stack = LocalStack::create(template, &moto.endpoint, "").await?;
    stack.use_jwks_url(&serve_dev_jwks().await?);

    let plain = stack.clients();
    let store = commsync::store::Store::new(
        plain.dynamodb.clone(),
        commsync::store::Tables {
            accounts: stack.resource("AccountsTable")?.name.clone(),
            events: stack.resource("EventsTable")?.name.clone(),
        },
        std::time::Duration::from_secs(86_400),
    );
    for (account, provider, external_id) in [
        ("number", Provider::WhatsApp, NUMBER),
        ("mailbox", Provider::Gmail, MAILBOX),
        ("page", Provider::LinkedIn, ORG),
    ] {
        store
            .register_account(&NewAccount {
                tenant_id: TenantId::parse("acme")?,
                account_id: AccountId::parse(account)?,
                provider,
                external_id: ExternalId::for_provider(provider, external_id)?,
                waba_id: None,
            })
            .await?;
    }

    let counter = CallCounter::default();
    let clients = AwsClients::with_interceptor(&stack.sdk_config, counter.clone());
    let whatsapp_deps =
        commsync::providers::whatsapp::WhatsAppDeps::new(&clients, &stack.function_env("webhook-whatsapp")?)?;
    let linkedin_deps =
        commsync::providers::linkedin::LinkedInDeps::new(&clients, &stack.function_env("webhook-linkedin")?)?;
    let gmail_deps = commsync::providers::gmail::GmailDeps::new(&clients, &stack.function_env("webhook-gmail")?)?;

    // Warm every container's route cache (and the JWKS cache) once.
    commsync::providers::whatsapp::handle(whatsapp(&whatsapp_body(&[message("wamid.warm")], &[])), &whatsapp_deps)
        .await;
    commsync::providers::linkedin::handle(linkedin(1..2), &linkedin_deps).await;
    commsync::providers::gmail::handle(gmail("warm", 10), &gmail_deps).await;
    counter.take();

    let mut cases = Vec::new();
    let single = whatsapp(&whatsapp_body(&[message("wamid.single")], &[]));
    let status_code = commsync::providers::whatsapp::handle(single.clone(), &whatsapp_deps).await.status_code;
    cases.push(Case { name: "WhatsApp, one message", events: 1, status: status_code, calls: counter.take() });

    let status_code = commsync::providers::whatsapp::handle(single, &whatsapp_deps).await.status_code;
    cases.push(Case {
        name: "WhatsApp, the same message again (duplicate)",
        events: 1,
        status: status_code,
        calls: counter.take(),
    });

    let batch: Vec<String> = (0..100).map(|index| message(&format!("wamid.batch{index}"))).collect();
    let status_code =
        commsync::providers::whatsapp::handle(whatsapp(&whatsapp_body(&batch, &[])), &whatsapp_deps).await.status_code;
    cases.push(Case {
        name: "WhatsApp, 100 messages in one POST",
        events: 100,
        status: status_code,
        calls: counter.take(),
    });

    let statuses: Vec<String> = (0..100).map(|index| status(&format!("wamid.out{index}"))).collect();
    let status_code = commsync::providers::whatsapp::handle(whatsapp(&whatsapp_body(&[], &statuses)), &whatsapp_deps)
        .await
        .status_code;
    cases.push(Case {
        name: "WhatsApp, 100 statuses in one POST",
        events: 100,
        status: status_code,
        calls: counter.take(),
    });

    let status_code = commsync::providers::linkedin::handle(linkedin(100..101), &linkedin_deps).await.status_code;
    cases.push(Case { name: "LinkedIn, one notification", events: 1, status: status_code, calls: counter.take() });

    let status_code = commsync::providers::linkedin::handle(linkedin(200..210), &linkedin_deps).await.status_code;
    cases.push(Case {
        name: "LinkedIn, 10 notifications (LinkedIn's batch size)",
        events: 10,
        status: status_code,
        calls: counter.take(),
    });

    store.release_recovery_lease(&TenantId::parse("acme")?, &AccountId::parse("mailbox")?).await?;
    counter.take();
    let status_code = commsync::providers::gmail::handle(gmail("push-1", 20), &gmail_deps).await.status_code;
    cases.push(Case {
        name: "Gmail push, history_sync job sent",
        events: 1,
        status: status_code,
        calls: counter.take(),
    });

    let status_code = commsync::providers::gmail::handle(gmail("push-2", 30), &gmail_deps).await.status_code;
    cases.push(Case {
        name: "Gmail push, a job already pending",
        events: 1,
        status: status_code,
        calls: counter.take(),
    });

    let status_code = commsync::providers::gmail::handle(gmail("push-2", 30), &gmail_deps).await.status_code;
    cases.push(Case { name: "Gmail push, duplicate delivery", events: 1, status: status_code, calls: counter.take() });

    let mut text =
        String::from("| webhook | answer | AWS calls | calls per item | operations |\n|---|---:|---:|---:|---|\n");
    for case in &cases {
        let total: u64 = case.calls.values().sum();
        let operations: Vec<String> = case.calls.iter().map(|(name, count)| format!("{name} ×{count}")).collect();
        writeln!(
            text,
            "| {} | {} | {total} | {:.2} | {} |",
            case.name,
            case.status,
            total as f64 / case.events as f64,
            operations.join(", ")
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
