//! The GraphQL API over real HTTP and websocket clients: authentication, project isolation,
//! input errors, pagination and the committed schema.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::keys::{TestKey, fingerprint_of};
use common::ws::{EVENTS_SUBSCRIPTION, WsClient, WsEvent};
use common::{SESSION_QUERY, TestApp};
use serde_json::{Value, json};

fn error_code(response: &Value) -> &str {
    response["errors"][0]["extensions"]["code"]
        .as_str()
        .unwrap_or("<none>")
}

const CREATE: &str = "mutation($input: CreateVerifySessionInput!) {
    createVerifySession(input: $input) { clientToken session { id } } }";
const LIST: &str =
    "query($first: Int, $after: String, $status: VerifySessionStatus, $externalId: String) {
    verifySessions(first: $first, after: $after, status: $status, externalId: $externalId) {
      edges { cursor node { id externalId } } pageInfo { hasNextPage endCursor } } }";

#[tokio::test]
async fn schema_file_matches_the_code() {
    let committed = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/schema.graphql"))
        .expect("schema.graphql");

    assert_eq!(
        committed,
        keyproof::graphql::sdl(),
        "schema.graphql is stale: run `cargo run -- print-schema > schema.graphql`"
    );
}

#[tokio::test]
async fn requests_without_a_valid_key_are_unauthenticated() {
    let app = TestApp::spawn().await;
    let key = TestKey::ed25519(app.dir.path(), "k");

    for credential in [None, Some("kp_not_a_real_key_at_all"), Some("kpct_forged")] {
        let read = app
            .graphql_as(credential, "{ authInfo { project { name } } }", json!({}))
            .await;
        assert_eq!(
            error_code(&read),
            "UNAUTHENTICATED",
            "{credential:?}: {read}"
        );

        let input = json!({ "keys": [{ "publicKey": key.public_line() }] });
        let create = app
            .graphql_as(credential, CREATE, json!({ "input": input }))
            .await;
        assert_eq!(error_code(&create), "UNAUTHENTICATED");
    }
    let bearer = app
        .http
        .post(format!("{}/graphql", app.base_url))
        .bearer_auth(&app.api_key)
        .json(&json!({ "query": "{ authInfo { project { name } } }" }))
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap();
    assert_eq!(bearer["data"]["authInfo"]["project"]["name"], "default");
    app.shutdown().await;
}

#[tokio::test]
async fn one_project_never_sees_another_projects_sessions() {
    let app = TestApp::spawn().await;
    let store = &app.app.as_ref().unwrap().store;
    let other = store.ensure_project("other").await.unwrap();
    let other_key = "kp_other_project_key_0123456789";
    store
        .ensure_api_key(other.id, "other", other_key)
        .await
        .unwrap();
    let key = TestKey::ed25519(app.dir.path(), "k");
    let created = app.create_session(&[&key.public_line()]).await;

    let read = app
        .graphql_as(Some(other_key), SESSION_QUERY, json!({ "id": created.id }))
        .await;
    let list = app.graphql_as(Some(other_key), LIST, json!({})).await;

    assert_eq!(read["data"]["verifySession"], json!(null), "{read}");
    assert!(read.get("errors").is_none());
    assert_eq!(list["data"]["verifySessions"]["edges"], json!([]));
    assert_eq!(app.session(&created.id).await["id"], created.id.as_str());
    app.shutdown().await;
}

#[tokio::test]
async fn malformed_key_is_refused_by_location_and_nothing_is_stored() {
    let app = TestApp::spawn().await;
    let good = TestKey::ed25519(app.dir.path(), "good");
    let input = json!({ "keys": [
        { "publicKey": good.public_line() },
        { "publicKey": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBroken" },
    ] });

    let response = app.graphql(CREATE, json!({ "input": input })).await;

    assert_eq!(error_code(&response), "BAD_USER_INPUT", "{response}");
    let errors = &response["errors"][0]["extensions"]["errors"];
    assert_eq!(errors[0]["location"], "input.keys[1].publicKey");
    assert!(errors[0]["message"].as_str().unwrap().len() > 10);
    assert_eq!(response["data"], json!(null));
    let list = app.graphql(LIST, json!({})).await;
    assert_eq!(list["data"]["verifySessions"]["edges"], json!([]));
    app.shutdown().await;
}

#[tokio::test]
async fn pasted_private_key_is_refused_and_never_echoed() {
    let app = TestApp::spawn().await;
    let key = TestKey::ed25519(app.dir.path(), "secret");
    let private = std::fs::read_to_string(&key.private).unwrap();
    let input = json!({ "keys": [{ "publicKey": private }] });

    let response = app.graphql(CREATE, json!({ "input": input })).await;

    assert_eq!(error_code(&response), "BAD_USER_INPUT");
    let text = response.to_string();
    let body_line = private.lines().nth(1).unwrap();
    assert!(
        !text.contains(body_line),
        "private key material echoed: {text}"
    );
    assert!(text.contains("private key"));
    app.shutdown().await;
}

#[tokio::test]
async fn sessions_list_newest_first_with_cursors_and_filters() {
    let app = TestApp::spawn().await;
    let key = TestKey::ed25519(app.dir.path(), "k");
    let mut ids = Vec::new();
    for n in 0..3 {
        let extra = json!({ "externalId": format!("ref-{}", n % 2) });
        ids.push(
            app.create_session_with(&[&key.public_line()], extra)
                .await
                .id,
        );
    }

    let first_page = app.graphql(LIST, json!({ "first": 2 })).await;
    let cursor = first_page["data"]["verifySessions"]["pageInfo"]["endCursor"].clone();
    let second_page = app
        .graphql(LIST, json!({ "first": 2, "after": cursor }))
        .await;
    let filtered = app.graphql(LIST, json!({ "externalId": "ref-0" })).await;
    let pending = app.graphql(LIST, json!({ "status": "VERIFIED" })).await;
    let too_many = app.graphql(LIST, json!({ "first": 101 })).await;

    let page_ids = |page: &Value| -> Vec<String> {
        page["data"]["verifySessions"]["edges"]
            .as_array()
            .unwrap()
            .iter()
            .map(|edge| edge["node"]["id"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(page_ids(&first_page), [ids[2].clone(), ids[1].clone()]);
    assert_eq!(
        first_page["data"]["verifySessions"]["pageInfo"]["hasNextPage"],
        true
    );
    assert_eq!(page_ids(&second_page), [ids[0].clone()]);
    assert_eq!(
        second_page["data"]["verifySessions"]["pageInfo"]["hasNextPage"],
        false
    );
    assert_eq!(page_ids(&filtered), [ids[2].clone(), ids[0].clone()]);
    assert!(page_ids(&pending).is_empty());
    assert_eq!(error_code(&too_many), "BAD_USER_INPUT");
    app.shutdown().await;
}

#[tokio::test]
async fn client_token_reads_and_follows_its_own_session_only() {
    let app = TestApp::spawn().await;
    let key = TestKey::ed25519(app.dir.path(), "k");
    let mine = app.create_session(&[&key.public_line()]).await;
    let other = app.create_session(&[&key.public_line()]).await;
    let token = Some(mine.client_token.as_str());

    let own = app
        .graphql_as(token, SESSION_QUERY, json!({ "id": mine.id }))
        .await;
    let foreign = app
        .graphql_as(token, SESSION_QUERY, json!({ "id": other.id }))
        .await;
    let list = app.graphql_as(token, LIST, json!({})).await;
    let create = app
        .graphql_as(
            token,
            CREATE,
            json!({ "input": { "keys": [{ "publicKey": key.public_line() }] } }),
        )
        .await;
    let auth_info = app
        .graphql_as(token, "{ authInfo { project { name } } }", json!({}))
        .await;

    assert_eq!(own["data"]["verifySession"]["id"], mine.id.as_str());
    assert_eq!(foreign["data"]["verifySession"], json!(null));
    assert_eq!(error_code(&list), "FORBIDDEN");
    assert_eq!(error_code(&create), "FORBIDDEN");
    assert_eq!(error_code(&auth_info), "FORBIDDEN");

    let mut ws =
        WsClient::connect_acked(&app.ws_url(), json!({ "clientToken": mine.client_token })).await;
    ws.subscribe("own", EVENTS_SUBSCRIPTION, json!({ "id": mine.id }))
        .await;
    let WsEvent::Next(snapshot) = ws.next_event("own").await else {
        panic!("no snapshot")
    };
    assert_eq!(snapshot["data"]["verifySessionEvents"]["kind"], "SNAPSHOT");
    ws.subscribe("foreign", EVENTS_SUBSCRIPTION, json!({ "id": other.id }))
        .await;
    let errors = match ws.next_event("foreign").await {
        WsEvent::Error(errors) => errors,
        WsEvent::Next(payload) => payload["errors"].clone(),
        other => panic!("foreign session allowed: {other:?}"),
    };
    assert_eq!(errors[0]["extensions"]["code"], "NOT_FOUND");
    app.shutdown().await;
}

#[tokio::test]
async fn websocket_without_a_valid_credential_is_closed_with_4403() {
    let app = TestApp::spawn().await;

    for payload in [json!({}), json!({ "apiKey": "kp_wrong_wrong_wrong" })] {
        let mut ws = WsClient::connect(&app.ws_url(), payload.clone()).await;
        match ws.next_message().await {
            WsEvent::Closed(code) => assert_eq!(code, Some(4403), "{payload}"),
            other => panic!("expected close, got {other:?}"),
        }
    }
    app.shutdown().await;
}

#[tokio::test]
async fn host_keys_match_the_key_file_and_health_endpoints_answer() {
    let app = TestApp::spawn().await;
    let public = app.dir.path().join("data/ssh_host_ed25519_key.pub");

    let response = app
        .graphql(
            "{ sshHostKeys { algorithm publicKeySsh fingerprintSha256 } }",
            json!({}),
        )
        .await;
    let health = app
        .http
        .get(format!("{}/healthz", app.base_url))
        .send()
        .await
        .unwrap();
    let ready = app
        .http
        .get(format!("{}/readyz", app.base_url))
        .send()
        .await
        .unwrap();
    let graphiql = app
        .http
        .get(format!("{}/graphql", app.base_url))
        .send()
        .await
        .unwrap();

    let host_key = &response["data"]["sshHostKeys"][0];
    assert_eq!(host_key["algorithm"], "ssh-ed25519");
    assert_eq!(
        host_key["fingerprintSha256"],
        fingerprint_of(&public, "sha256")
    );
    assert_eq!(health.status(), 200);
    assert_eq!(ready.status(), 200);
    assert!(graphiql.text().await.unwrap().contains("graphiql"));
    app.shutdown().await;
}

#[tokio::test]
async fn timeout_and_expiry_together_are_refused() {
    let app = TestApp::spawn().await;
    let key = TestKey::ed25519(app.dir.path(), "k");
    let input = json!({
        "keys": [{ "publicKey": key.public_line() }],
        "timeout": 60, "expiredAt": "2099-01-01T00:00:00Z",
    });

    let response = app.graphql(CREATE, json!({ "input": input })).await;

    assert_eq!(error_code(&response), "BAD_USER_INPUT");
    assert_eq!(
        response["errors"][0]["extensions"]["errors"][0]["location"],
        "input.expiredAt"
    );
    app.shutdown().await;
}

#[tokio::test]
async fn refused_key_kinds_and_duplicates_name_their_place() {
    let app = TestApp::spawn().await;
    let small_rsa = TestKey::generate(app.dir.path(), "small", "rsa", Some(1024));
    let good = TestKey::ed25519(app.dir.path(), "good");
    let input = json!({ "keys": [
        { "publicKey": good.public_line() },
        { "publicKey": small_rsa.public_line() },
        { "publicKey": format!("{} other comment", good.public_ssh()) },
        { "publicKey": "sk-ssh-ed25519@openssh.com AAAAGnNrLXNzaC1lZDI1NTE5QG9wZW5zc2guY29tAAAAIJ8OQwCRcN0LnwZoGTSclUcfWyVJ7b+fEBNq0u1vFe6RAAAABHNzaDo=" },
    ] });

    let response = app.graphql(CREATE, json!({ "input": input })).await;

    assert_eq!(error_code(&response), "BAD_USER_INPUT");
    let errors = response["errors"][0]["extensions"]["errors"]
        .as_array()
        .unwrap()
        .clone();
    let at = |location: &str| {
        errors
            .iter()
            .find(|error| error["location"] == location)
            .map(|error| error["message"].as_str().unwrap().to_owned())
            .unwrap_or_else(|| panic!("no error at {location}: {errors:?}"))
    };
    assert!(at("input.keys[1].publicKey").contains("1024"));
    assert!(at("input.keys[2].publicKey").contains("input.keys[0]"));
    assert!(at("input.keys[3].publicKey").contains("security-key"));
    assert_eq!(errors.len(), 3);
    app.shutdown().await;
}

#[tokio::test]
async fn oversized_and_malformed_bodies_are_refused_before_the_schema() {
    let app = TestApp::spawn().await;
    let huge = format!(
        "{{\"query\": \"{{ authInfo {{ project {{ name }} }} }}\", \"pad\": \"{}\"}}",
        "x".repeat(5 << 20)
    );

    let too_large = app
        .http
        .post(format!("{}/graphql", app.base_url))
        .header("content-type", "application/json")
        .body(huge)
        .send()
        .await
        .unwrap();
    let malformed = app
        .http
        .post(format!("{}/graphql", app.base_url))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();

    assert_eq!(too_large.status(), 413);
    let body: Value = too_large.json().await.unwrap();
    assert_eq!(error_code(&body), "BAD_USER_INPUT");
    assert_eq!(malformed.status(), 400);
    let body: Value = malformed.json().await.unwrap();
    assert_eq!(error_code(&body), "BAD_USER_INPUT");
    app.shutdown().await;
}

#[tokio::test]
async fn nested_pages_count_towards_query_complexity() {
    let app = TestApp::spawn().await;
    let fields = "id status keys { id publicKeySsh } connections { id keys { id } }";
    let page = format!("{{ verifySessions(first: 100) {{ edges {{ node {{ {fields} }} }} }} }}");
    let fanout = "{ verifySessions(first: 100) { edges { node { id
        webhooks { deliveries(first: 100) { id attempts { attempt status } } } } } } }";

    let allowed = app.graphql(&page, json!({})).await;
    let refused = app.graphql(fanout, json!({})).await;

    assert!(allowed.get("errors").is_none(), "{allowed}");
    assert!(
        refused["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("complex"),
        "{refused}"
    );
    app.shutdown().await;
}
