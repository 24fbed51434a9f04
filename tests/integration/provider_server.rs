//! The local provider server: Gmail, Google OAuth, Graph and LinkedIn wire formats and faults.

use commsync_tests::providers::{Fault, ProviderServer, HISTORY_ID_STEP, INITIAL_HISTORY_ID};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

const EMAIL: &str = "owner@example.com";
const ACCESS_TOKEN: &str = "ya29.initial";
const REFRESH_TOKEN: &str = "1//refresh";
const WABA: &str = "102290129340398";
const PHONE: &str = "106540352242922";
const GRAPH_TOKEN: &str = "EAAG-graph-token";
const ORG: &str = "urn:li:organization:5515715";
const LINKEDIN_TOKEN: &str = "AQV-linkedin-token";

async fn gmail_server() -> ProviderServer {
    let server = ProviderServer::start().await;
    server.state().add_gmail_mailbox(EMAIL, ACCESS_TOKEN, REFRESH_TOKEN);
    server
}

async fn fetch_json(request: reqwest::RequestBuilder) -> (u16, Value) {
    let response = request.send().await.expect("request reaches the provider server");
    let status = response.status().as_u16();
    let body = response.json().await.expect("response body is JSON");
    (status, body)
}

async fn gmail_get(server: &ProviderServer, path_and_query: &str, token: &str) -> (u16, Value) {
    let url = format!("{}/gmail/v1/users/me/{path_and_query}", server.gmail_base_url());
    fetch_json(reqwest::Client::new().get(url).bearer_auth(token)).await
}

async fn refresh(server: &ProviderServer, refresh_token: &str) -> (u16, Value) {
    let body = format!("grant_type=refresh_token&refresh_token={refresh_token}&client_id=client&client_secret=secret");
    let request = reqwest::Client::new()
        .post(server.token_url())
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body);
    fetch_json(request).await
}

fn linkedin_get(server: &ProviderServer, query: &str) -> reqwest::RequestBuilder {
    let url = format!("{}/rest/organizationalEntityNotifications?{query}", server.linkedin_base_url());
    reqwest::Client::new()
        .get(url)
        .bearer_auth(LINKEDIN_TOKEN)
        .header("LinkedIn-Version", "202509")
        .header("X-Restli-Protocol-Version", "2.0.0")
}

fn history_ids(records: &[Value]) -> Vec<u64> {
    records.iter().map(|record| record["id"].as_str().unwrap().parse().unwrap()).collect()
}

#[tokio::test]
async fn gmail_history_paged_walk_matches_unpaged() {
    let server = gmail_server().await;
    {
        let mut state = server.state();
        for index in 0..12 {
            state.gmail_add_message(EMAIL, &format!("m{index}"), &["INBOX", "UNREAD"]);
        }
        state.gmail_delete_message(EMAIL, "m3");
        state.gmail_add_labels(EMAIL, "m4", &["STARRED"]);
        state.gmail_mailbox_mut(EMAIL).history_page_size = 4;
    }
    let current = server.state().gmail_mailbox(EMAIL).history_id;
    assert_eq!(current, INITIAL_HISTORY_ID + 14 * HISTORY_ID_STEP);

    let mut all = Vec::new();
    let mut page_token: Option<String> = None;
    let mut pages = 0;
    loop {
        let mut query = format!("history?startHistoryId={INITIAL_HISTORY_ID}&maxResults=500");
        if let Some(token) = &page_token {
            query.push_str(&format!("&pageToken={token}"));
        }
        let (status, body) = gmail_get(&server, &query, ACCESS_TOKEN).await;
        assert_eq!(status, 200);
        assert_eq!(body["historyId"], current.to_string());
        all.extend(body["history"].as_array().unwrap().iter().cloned());
        pages += 1;
        match body["nextPageToken"].as_str() {
            Some(token) => page_token = Some(token.to_string()),
            None => break,
        }
    }
    assert_eq!(pages, 4);

    server.state().gmail_mailbox_mut(EMAIL).history_page_size = 100;
    let (_, unpaged) = gmail_get(&server, &format!("history?startHistoryId={INITIAL_HISTORY_ID}"), ACCESS_TOKEN).await;
    assert!(unpaged.get("nextPageToken").is_none());
    assert_eq!(unpaged["history"].as_array().unwrap(), &all);
    assert_eq!(all.len(), 14);

    let ids = history_ids(&all);
    assert!(ids.windows(2).all(|pair| pair[1] > pair[0] + 1), "history ids skip values: {ids:?}");
    assert_eq!(all[0]["messagesAdded"][0]["message"]["id"], "m0");
    assert_eq!(all[12]["messagesDeleted"][0]["message"]["id"], "m3");
    assert_eq!(all[13]["labelsAdded"][0]["labelIds"], json!(["STARRED"]));
}

#[tokio::test]
async fn gmail_history_up_to_date_omits_history() {
    let server = gmail_server().await;
    let added = server.state().gmail_add_message(EMAIL, "m1", &["INBOX"]);

    let (status, body) = gmail_get(&server, &format!("history?startHistoryId={added}"), ACCESS_TOKEN).await;

    assert_eq!(status, 200);
    assert_eq!(body, json!({"historyId": added.to_string()}));
}

#[tokio::test]
async fn gmail_history_filters_by_type_and_label() {
    let server = gmail_server().await;
    {
        let mut state = server.state();
        state.gmail_add_message(EMAIL, "inbox", &["INBOX"]);
        state.gmail_add_message(EMAIL, "sent", &["SENT"]);
        state.gmail_add_labels(EMAIL, "inbox", &["STARRED"]);
    }

    let query = format!("history?startHistoryId={INITIAL_HISTORY_ID}&historyTypes=messageAdded&labelId=INBOX");
    let (status, body) = gmail_get(&server, &query, ACCESS_TOKEN).await;

    assert_eq!(status, 200);
    let records = body["history"].as_array().unwrap();
    assert_eq!(records.len(), 1);
    assert_eq!(records[0]["messagesAdded"][0]["message"]["id"], "inbox");
    assert!(records[0].get("labelsAdded").is_none());
}

#[tokio::test]
async fn gmail_expired_history_returns_404() {
    let server = gmail_server().await;
    let added = server.state().gmail_add_message(EMAIL, "m1", &["INBOX"]);
    server.state().gmail_expire_history_before(EMAIL, added);

    let (status, body) =
        gmail_get(&server, &format!("history?startHistoryId={INITIAL_HISTORY_ID}"), ACCESS_TOKEN).await;

    assert_eq!(status, 404);
    let expected = json!({"error": {
        "code": 404,
        "message": "Requested entity was not found.",
        "errors": [{"message": "Requested entity was not found.", "domain": "global", "reason": "notFound"}],
        "status": "NOT_FOUND",
    }});
    assert_eq!(body, expected);
}

#[tokio::test]
async fn gmail_invalid_token_returns_401() {
    let server = gmail_server().await;

    let (status, body) = gmail_get(&server, "profile", "ya29.unknown").await;

    assert_eq!(status, 401);
    assert_eq!(body["error"]["status"], "UNAUTHENTICATED");
    assert_eq!(body["error"]["errors"][0]["reason"], "authError");
    assert_eq!(body["error"]["errors"][0]["message"], "Invalid Credentials");
    assert_eq!(
        body["error"]["message"],
        "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential."
    );
}

#[tokio::test]
async fn gmail_expired_access_token_returns_401() {
    let server = gmail_server().await;
    server.state().gmail_expire_access_token(ACCESS_TOKEN);

    let (status, _) = gmail_get(&server, "profile", ACCESS_TOKEN).await;

    assert_eq!(status, 401);
}

#[tokio::test]
async fn gmail_user_id_is_me_or_own_address() {
    let server = ProviderServer::start().await;
    server.state().add_gmail_mailbox("owner+sync@example.com", ACCESS_TOKEN, REFRESH_TOKEN);
    let client = reqwest::Client::new();
    let profile_url = |user_id: &str| format!("{}/gmail/v1/users/{user_id}/profile", server.gmail_base_url());

    let (status, body) =
        fetch_json(client.get(profile_url("owner%2Bsync%40example.com")).bearer_auth(ACCESS_TOKEN)).await;
    assert_eq!(status, 200);
    assert_eq!(body["emailAddress"], "owner+sync@example.com");

    let (status, body) = fetch_json(client.get(profile_url("other@example.com")).bearer_auth(ACCESS_TOKEN)).await;
    assert_eq!(status, 403);
    assert_eq!(body["error"]["message"], "Delegation denied for other@example.com");
}

#[tokio::test]
async fn gmail_messages_get_list_and_delete() {
    let server = gmail_server().await;
    let added = server.state().gmail_add_message(EMAIL, "m1", &["INBOX"]);
    server.state().gmail_add_message(EMAIL, "m2", &["INBOX"]);

    let (status, message) = gmail_get(&server, "messages/m1?format=metadata", ACCESS_TOKEN).await;
    assert_eq!(status, 200);
    assert_eq!(message["id"], "m1");
    assert_eq!(message["threadId"], "m1");
    assert_eq!(message["historyId"], added.to_string());
    assert!(message["internalDate"].as_str().unwrap().parse::<i64>().is_ok());
    let header_names: Vec<&str> = message["payload"]["headers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|header| header["name"].as_str().unwrap())
        .collect();
    for name in ["Subject", "From", "Date"] {
        assert!(header_names.contains(&name), "metadata has a {name} header: {header_names:?}");
    }

    let (status, list) = gmail_get(&server, "messages?maxResults=1", ACCESS_TOKEN).await;
    assert_eq!(status, 200);
    assert_eq!(list["messages"], json!([{"id": "m2", "threadId": "m2"}]));
    assert_eq!(list["resultSizeEstimate"], 2);
    let token = list["nextPageToken"].as_str().unwrap().to_string();
    let (_, second) = gmail_get(&server, &format!("messages?maxResults=1&pageToken={token}"), ACCESS_TOKEN).await;
    assert_eq!(second["messages"], json!([{"id": "m1", "threadId": "m1"}]));
    assert!(second.get("nextPageToken").is_none());

    server.state().gmail_delete_message(EMAIL, "m1");
    let (status, body) = gmail_get(&server, "messages/m1", ACCESS_TOKEN).await;
    assert_eq!(status, 404);
    assert_eq!(body["error"]["status"], "NOT_FOUND");
}

#[tokio::test]
async fn gmail_profile_and_watch() {
    let server = gmail_server().await;
    server.state().gmail_add_message(EMAIL, "m1", &["INBOX"]);
    let current = server.state().gmail_mailbox(EMAIL).history_id;

    let (status, profile) = gmail_get(&server, "profile", ACCESS_TOKEN).await;
    assert_eq!(status, 200);
    assert_eq!(
        profile,
        json!({"emailAddress": EMAIL, "messagesTotal": 1, "threadsTotal": 1, "historyId": current.to_string()})
    );

    let watch_url = format!("{}/gmail/v1/users/me/watch", server.gmail_base_url());
    let watch_body =
        json!({"topicName": "projects/p/topics/t", "labelIds": ["INBOX"], "labelFilterBehavior": "INCLUDE"});
    let request = reqwest::Client::new().post(&watch_url).bearer_auth(ACCESS_TOKEN).json(&watch_body);
    let (status, body) = fetch_json(request).await;
    assert_eq!(status, 200);
    assert_eq!(body["historyId"], current.to_string());
    let expiration: i64 = body["expiration"].as_str().unwrap().parse().unwrap();
    let in_seven_days = chrono::Utc::now().timestamp_millis() + 7 * 86_400_000;
    assert!((expiration - in_seven_days).abs() < 60_000, "expiration {expiration} is about 7 days ahead");
    assert_eq!(server.state().gmail_mailbox(EMAIL).watch_count, 1);

    server.state().gmail_mailbox_mut(EMAIL).watch_forbidden = true;
    let request = reqwest::Client::new().post(&watch_url).bearer_auth(ACCESS_TOKEN).json(&watch_body);
    let (status, body) = fetch_json(request).await;
    assert_eq!(status, 403);
    assert_eq!(body["error"]["status"], "PERMISSION_DENIED");
    assert_eq!(
        body["error"]["message"],
        "Error sending test message to Cloud PubSub projects/p/topics/t : User not authorized to perform this action."
    );
}

#[tokio::test]
async fn token_refresh_issues_working_token() {
    let server = gmail_server().await;

    let (status, body) = refresh(&server, REFRESH_TOKEN).await;

    assert_eq!(status, 200);
    assert_eq!(body["expires_in"], 3599);
    assert_eq!(body["token_type"], "Bearer");
    let new_token = body["access_token"].as_str().unwrap();
    assert_ne!(new_token, ACCESS_TOKEN);
    assert_eq!(server.state().gmail_latest_access_token(EMAIL).as_deref(), Some(new_token));
    let (status, _) = gmail_get(&server, "profile", new_token).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn token_refresh_revoked_is_invalid_grant() {
    let server = gmail_server().await;
    server.state().gmail_revoke_refresh_token(REFRESH_TOKEN);

    let (status, body) = refresh(&server, REFRESH_TOKEN).await;
    assert_eq!(status, 400);
    assert_eq!(body, json!({"error": "invalid_grant", "error_description": "Token has been expired or revoked."}));

    let (status, _) = gmail_get(&server, "profile", ACCESS_TOKEN).await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn graph_subscribed_apps_post_subscribes() {
    let server = ProviderServer::start().await;
    server.state().add_waba(WABA, PHONE, GRAPH_TOKEN, false);
    let url = format!("{}/{WABA}/subscribed_apps", server.graph_base_url());

    let (status, body) = fetch_json(reqwest::Client::new().get(&url).bearer_auth(GRAPH_TOKEN)).await;
    assert_eq!(status, 200);
    assert_eq!(body, json!({"data": []}));

    let (status, body) = fetch_json(reqwest::Client::new().post(&url).bearer_auth(GRAPH_TOKEN)).await;
    assert_eq!(status, 200);
    assert_eq!(body, json!({"success": true}));
    assert!(server.state().waba_subscribed(WABA));

    // Graph also accepts the token as the `access_token` query parameter.
    let (status, body) = fetch_json(reqwest::Client::new().get(format!("{url}?access_token={GRAPH_TOKEN}"))).await;
    assert_eq!(status, 200);
    assert_eq!(body["data"][0]["whatsapp_business_api_data"]["name"], "commsync");
}

#[tokio::test]
async fn graph_phone_number_fields() {
    let server = ProviderServer::start().await;
    server.state().add_waba(WABA, PHONE, GRAPH_TOKEN, true);
    server.state().set_phone_number_field(PHONE, "quality_rating", json!("YELLOW"));
    let url = format!("{}/{PHONE}?fields=quality_rating,status", server.graph_base_url());

    let (status, body) = fetch_json(reqwest::Client::new().get(url).bearer_auth(GRAPH_TOKEN)).await;

    assert_eq!(status, 200);
    assert_eq!(body, json!({"quality_rating": "YELLOW", "status": "CONNECTED", "id": PHONE}));
}

#[tokio::test]
async fn graph_invalid_token_returns_401() {
    let server = ProviderServer::start().await;
    server.state().add_waba(WABA, PHONE, GRAPH_TOKEN, true);
    let url = format!("{}/{WABA}/subscribed_apps", server.graph_base_url());

    let (status, body) = fetch_json(reqwest::Client::new().get(url).bearer_auth("EAAG-wrong")).await;

    assert_eq!(status, 401);
    assert_eq!(body["error"]["code"], 190);
    assert_eq!(body["error"]["error_subcode"], 463);
    assert_eq!(body["error"]["type"], "OAuthException");
}

#[tokio::test]
async fn linkedin_pages_within_time_window() {
    let server = ProviderServer::start().await;
    {
        let mut state = server.state();
        state.add_linkedin_token(LINKEDIN_TOKEN);
        for id in 1..=5u64 {
            state.linkedin_add_notification(ORG, id, "COMMENT", 1_000 * id as i64);
        }
        state.linkedin_add_notification(ORG, 6, "LIKE", 3_500);
        state.linkedin_add_notification("urn:li:organization:1", 7, "COMMENT", 2_000);
    }
    let organization = "urn%3Ali%3Aorganization%3A5515715";
    let base = format!(
        "q=criteria&organizationalEntity={organization}&actions=List(COMMENT,SHARE_MENTION)&timeRange=(start:2000,end:5000)"
    );

    let (status, first) = fetch_json(linkedin_get(&server, &format!("{base}&start=0&count=2"))).await;
    assert_eq!(status, 200);
    let ids: Vec<u64> =
        first["elements"].as_array().unwrap().iter().map(|n| n["notificationId"].as_u64().unwrap()).collect();
    assert_eq!(ids, [4, 3], "newest first, end bound excluded");
    assert_eq!(first["paging"]["start"], 0);
    assert_eq!(first["paging"]["count"], 2);
    assert_eq!(first["paging"]["links"][0]["rel"], "next");

    let (_, second) = fetch_json(linkedin_get(&server, &format!("{base}&start=2&count=2"))).await;
    let ids: Vec<u64> =
        second["elements"].as_array().unwrap().iter().map(|n| n["notificationId"].as_u64().unwrap()).collect();
    assert_eq!(ids, [2], "start bound included, other actions and organizations excluded");
    let rels: Vec<&str> =
        second["paging"]["links"].as_array().unwrap().iter().map(|link| link["rel"].as_str().unwrap()).collect();
    assert_eq!(rels, ["prev"]);
}

#[tokio::test]
async fn linkedin_rejects_missing_version_and_bad_token() {
    let server = ProviderServer::start().await;
    server.state().add_linkedin_token(LINKEDIN_TOKEN);
    let url = format!(
        "{}/rest/organizationalEntityNotifications?q=criteria&organizationalEntity=urn%3Ali%3Aorganization%3A1",
        server.linkedin_base_url()
    );

    let request =
        reqwest::Client::new().get(&url).bearer_auth(LINKEDIN_TOKEN).header("X-Restli-Protocol-Version", "2.0.0");
    let (status, body) = fetch_json(request).await;
    assert_eq!(status, 400);
    assert_eq!(body["code"], "VERSION_MISSING");

    let request = reqwest::Client::new()
        .get(&url)
        .bearer_auth("wrong")
        .header("LinkedIn-Version", "202509")
        .header("X-Restli-Protocol-Version", "2.0.0");
    let (status, body) = fetch_json(request).await;
    assert_eq!(status, 401);
    assert_eq!(
        body,
        json!({"status": 401, "serviceErrorCode": 65600, "code": "INVALID_ACCESS_TOKEN", "message": "Invalid access token"})
    );
}

#[tokio::test]
async fn linkedin_rejects_encoded_restli_syntax() {
    let server = ProviderServer::start().await;
    server.state().add_linkedin_token(LINKEDIN_TOKEN);
    let query = "q=criteria&organizationalEntity=urn%3Ali%3Aorganization%3A1&timeRange=%28start%3A1%2Cend%3A2%29";

    let (status, body) = fetch_json(linkedin_get(&server, query)).await;

    assert_eq!(status, 400);
    assert!(body["message"].as_str().unwrap().contains("timeRange"));
}

#[tokio::test]
async fn injected_503_then_success() {
    let server = gmail_server().await;
    server.inject("/profile", Fault::Status(503), 1);

    let (status, body) = gmail_get(&server, "profile", ACCESS_TOKEN).await;
    assert_eq!(status, 503);
    assert_eq!(body["error"]["code"], 503);
    assert_eq!(body["error"]["status"], "UNAVAILABLE");

    let (status, _) = gmail_get(&server, "profile", ACCESS_TOKEN).await;
    assert_eq!(status, 200);
    assert_eq!(server.state().pending_faults(), 0);
}

#[tokio::test]
async fn injected_429_sets_retry_after() {
    let server = ProviderServer::start().await;
    server.state().add_linkedin_token(LINKEDIN_TOKEN);
    server.inject("organizationalEntityNotifications", Fault::TooManyRequests { retry_after_seconds: 7 }, 1);

    let response =
        linkedin_get(&server, "q=criteria&organizationalEntity=urn%3Ali%3Aorganization%3A1").send().await.unwrap();

    assert_eq!(response.status().as_u16(), 429);
    assert_eq!(response.headers()["retry-after"], "7");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["code"], "TOO_MANY_REQUESTS");
    assert_eq!(body["serviceErrorCode"], 101);
}

#[tokio::test]
async fn injected_graph_500_is_transient() {
    let server = ProviderServer::start().await;
    server.state().add_waba(WABA, PHONE, GRAPH_TOKEN, true);
    server.inject("subscribed_apps", Fault::Status(500), 1);
    let url = format!("{}/{WABA}/subscribed_apps", server.graph_base_url());

    let (status, body) = fetch_json(reqwest::Client::new().get(url).bearer_auth(GRAPH_TOKEN)).await;

    assert_eq!(status, 500);
    assert_eq!(body["error"]["code"], 2);
    assert_eq!(body["error"]["is_transient"], true);
}

#[tokio::test]
async fn injected_delay_then_normal_response() {
    let server = gmail_server().await;
    server.inject("/profile", Fault::Delay(Duration::from_millis(300)), 1);

    let started = Instant::now();
    let (status, _) = gmail_get(&server, "profile", ACCESS_TOKEN).await;

    assert_eq!(status, 200);
    assert!(started.elapsed() >= Duration::from_millis(300));
}

#[tokio::test]
async fn count_and_requests_record_traffic() {
    let server = gmail_server().await;
    server.inject("/history", Fault::Status(500), 1);

    gmail_get(&server, &format!("history?startHistoryId={INITIAL_HISTORY_ID}"), ACCESS_TOKEN).await;
    gmail_get(&server, &format!("history?startHistoryId={INITIAL_HISTORY_ID}"), ACCESS_TOKEN).await;
    gmail_get(&server, "profile", ACCESS_TOKEN).await;

    assert_eq!(server.count("/history"), 2);
    assert_eq!(server.count("/profile"), 1);
    assert_eq!(server.count("/gmail/v1/users/me/"), 3);
    let requests = server.requests();
    assert_eq!(requests.len(), 3);
    assert_eq!(requests[0].method, "GET");
    assert_eq!(requests[0].path, "/gmail/v1/users/me/history");
    assert_eq!(requests[0].query, format!("startHistoryId={INITIAL_HISTORY_ID}"));
    assert_eq!(requests[0].authorization.as_deref(), Some("Bearer ya29.initial"));
}
