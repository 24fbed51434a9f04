//! The sample events in `events/` are valid Lambda events, signed with the development secret.

use commsync::http::WebhookRequest;
use commsync::local::demo::sample_events;
use commsync::local::stack::DEV_PARAMETERS;
use commsync::providers::whatsapp::WhatsAppVerifier;
use commsync::secret::Secret;
use commsync_tests::project_root;
use lambda_http::aws_lambda_events::apigw::ApiGatewayV2httpRequest;

#[test]
fn sample_whatsapp_posts_verify_with_dev_secret() {
    let verifier = WhatsAppVerifier::new(Secret::new(DEV_PARAMETERS[0].2), None, Secret::new(DEV_PARAMETERS[1].2));
    let files = sample_events(&project_root()).unwrap();
    let posts: Vec<_> = files.iter().filter(|path| path.to_string_lossy().contains("whatsapp")).collect();
    assert!(posts.len() >= 7);

    for path in posts {
        let event: ApiGatewayV2httpRequest = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let request = WebhookRequest::from_apigw(event).unwrap();
        if request.method == lambda_http::http::Method::POST {
            let verified = verifier.verify_signature(request.header("x-hub-signature-256"), &request.body);
            assert_eq!(verified, Ok(()), "{}", path.display());
        }
    }
}

#[test]
fn sample_text_message_keeps_meta_escapes() {
    let text = std::fs::read_to_string(project_root().join("events/whatsapp/02-text-message.json")).unwrap();
    let event: ApiGatewayV2httpRequest = serde_json::from_str(&text).unwrap();
    let body = event.body.unwrap();
    assert!(body.contains(r"\u00e9"));
    assert!(body.contains(r"\/"));
    assert!(body.contains(r"\u0040"));
}

#[test]
fn sample_linkedin_posts_verify_with_dev_secret() {
    let verifier = commsync::providers::linkedin::LinkedInVerifier::new(
        Secret::new(commsync::local::stack::dev_value("LinkedInClientSecret")),
        Vec::new(),
    );
    let files = sample_events(&project_root()).unwrap();
    let posts: Vec<_> = files.iter().filter(|path| path.to_string_lossy().contains("linkedin")).collect();
    assert!(posts.len() >= 5);

    for path in posts {
        let event: ApiGatewayV2httpRequest = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let request = WebhookRequest::from_apigw(event).unwrap();
        if request.method == lambda_http::http::Method::POST {
            let verified = verifier.verify_signature(request.header("x-li-signature"), &request.body);
            assert_eq!(verified, Ok(()), "{}", path.display());
        }
    }
}

#[test]
fn sample_gmail_pushes_carry_dev_tokens() {
    let files = sample_events(&project_root()).unwrap();
    let pushes: Vec<_> = files.iter().filter(|path| path.to_string_lossy().contains("gmail")).collect();
    assert!(pushes.len() >= 4);

    for path in pushes {
        let mut event: ApiGatewayV2httpRequest = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        assert!(commsync::local::demo::refresh_dev_tokens(&mut event), "{}", path.display());
        let request = WebhookRequest::from_apigw(event).unwrap();
        assert!(commsync::providers::gmail::push::parse(&request.body).is_ok(), "{}", path.display());
    }
}
