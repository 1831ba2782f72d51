//! The PostgreSQL server restarting under a running keyproof: readiness follows it, nothing
//! committed is lost, and subscriptions resume with a fresh snapshot.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::eventually;
use common::keys::TestKey;
use common::postgres::TestPostgres;
use common::process::KeyproofProcess;
use common::ssh::ssh_with;
use common::ws::{EVENTS_SUBSCRIPTION, WsClient, WsEvent};
use serde_json::{Value, json};

const API_KEY: &str = "kp_restart_test_key_0123456789";

const CREATE: &str = "mutation($key: String!) {
    createVerifySession(input: { keys: [{ publicKey: $key }] }) { session { id connectionIdentifier } } }";

async fn graphql(process: &KeyproofProcess, query: &str, variables: Value) -> Option<Value> {
    let response = reqwest::Client::new()
        .post(format!("{}/graphql", process.base_url()))
        .header("x-api-key", API_KEY)
        .json(&json!({ "query": query, "variables": variables }))
        .send()
        .await
        .ok()?;
    response.json().await.ok()
}

async fn ready(process: &KeyproofProcess) -> u16 {
    let url = format!("{}/readyz", process.base_url());
    match reqwest::get(url).await {
        Ok(response) => response.status().as_u16(),
        Err(_) => 0,
    }
}

#[tokio::test]
async fn database_restart_under_load_loses_nothing_and_subscriptions_resume() {
    let Some(postgres) = TestPostgres::start() else {
        eprintln!("skipped: needs PostgreSQL server binaries and KEYPROOF_TEST_DATABASE_URL");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let process = KeyproofProcess::start(
        &dir.path().join("data"),
        API_KEY,
        &["--database-url", &postgres.url()],
    )
    .await;
    let key = TestKey::ed25519(dir.path(), "k");
    let variables = json!({ "key": key.public_line() });
    let created = graphql(&process, CREATE, variables.clone()).await.unwrap();
    let session = created["data"]["createVerifySession"]["session"].clone();
    let id = session["id"].as_str().unwrap().to_owned();
    let mut ws = WsClient::connect_acked(
        &format!("ws://{}/graphql/ws", process.http_addr),
        json!({ "apiKey": API_KEY }),
    )
    .await;
    ws.subscribe("1", EVENTS_SUBSCRIPTION, json!({ "id": id }))
        .await;
    let WsEvent::Next(_) = ws.next_event("1").await else {
        panic!("no snapshot")
    };

    // Load: sessions created one after another while the server goes away and comes back.
    let mut committed = Vec::new();
    postgres.stop();
    let unready = eventually(|| async { (ready(&process).await == 503).then_some(()) }).await;
    for _ in 0..3 {
        let response = graphql(&process, CREATE, variables.clone()).await;
        let id = response
            .as_ref()
            .and_then(|response| response["data"]["createVerifySession"]["session"]["id"].as_str());
        committed.extend(id.map(str::to_owned));
    }
    postgres.start_again();
    eventually(|| async { (ready(&process).await == 200).then_some(()) }).await;
    for _ in 0..5 {
        let response = graphql(&process, CREATE, variables.clone()).await.unwrap();
        committed.push(
            response["data"]["createVerifySession"]["session"]["id"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }

    assert_eq!(unready, ());
    let WsEvent::Next(resumed) = ws.next_event("1").await else {
        panic!("subscription ended")
    };
    assert_eq!(
        resumed["data"]["verifySessionEvents"]["kind"], "SNAPSHOT",
        "{resumed}"
    );
    let run = ssh_with(
        process.ssh_addr.port(),
        session["connectionIdentifier"].as_str().unwrap(),
        &[&key.private],
    )
    .await;
    assert_eq!(run.status, 0, "{}{}", run.stdout, run.stderr);
    let mut kinds = Vec::new();
    loop {
        match ws.next_event("1").await {
            WsEvent::Next(payload) => kinds.push(
                payload["data"]["verifySessionEvents"]["kind"]
                    .as_str()
                    .unwrap()
                    .to_owned(),
            ),
            WsEvent::Complete => break,
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(kinds, ["NEW_CONNECTION", "VERIFIED", "STATUS_CHANGED"]);
    for id in committed.iter().chain([&id]) {
        let found = graphql(
            &process,
            "query($id: ID!) { verifySession(id: $id) { id } }",
            json!({ "id": id }),
        )
        .await
        .unwrap();
        assert_eq!(
            found["data"]["verifySession"]["id"],
            id.as_str(),
            "committed session lost"
        );
    }
    process.terminate().await;
}
