//! Several keyproof processes sharing one PostgreSQL database, as in production. These tests
//! need `KEYPROOF_TEST_DATABASE_URL` (set by `.ci/run`); without it they say so and pass.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::keys::TestKey;
use common::process::KeyproofProcess;
use common::receiver::{Receiver, Reply};
use common::ssh::ssh_with;
use common::ws::{EVENTS_SUBSCRIPTION, WsClient, WsEvent};
use serde_json::{Value, json};

const API_KEY: &str = "kp_replica_test_key_0123456789";

/// Two replicas on one fresh PostgreSQL database, sharing a copy of the host key. Webhooks may
/// target 127.0.0.1, where the tests' receivers listen.
async fn two_replicas(dir: &std::path::Path) -> Option<(KeyproofProcess, KeyproofProcess)> {
    let Some(url) = common::fresh_database().await else {
        eprintln!("skipped: set KEYPROOF_TEST_DATABASE_URL to a PostgreSQL server to run this");
        return None;
    };
    let (dir_a, dir_b) = (dir.join("a"), dir.join("b"));
    let args = ["--database-url", &url, "--webhook-allow-private-targets"];
    let a = KeyproofProcess::start(&dir_a, API_KEY, &args).await;
    std::fs::create_dir_all(&dir_b).unwrap();
    for file in ["ssh_host_ed25519_key", "ssh_host_ed25519_key.pub"] {
        std::fs::copy(dir_a.join(file), dir_b.join(file)).unwrap();
    }
    let b = KeyproofProcess::start(&dir_b, API_KEY, &args).await;
    Some((a, b))
}

async fn graphql(process: &KeyproofProcess, query: &str, variables: Value) -> Value {
    reqwest::Client::new()
        .post(format!("{}/graphql", process.base_url()))
        .header("x-api-key", API_KEY)
        .json(&json!({ "query": query, "variables": variables }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

#[tokio::test]
async fn subscriber_on_one_replica_sees_ssh_on_the_other() {
    let dir = tempfile::tempdir().unwrap();
    let Some((a, b)) = two_replicas(dir.path()).await else {
        return;
    };
    let key = TestKey::ed25519(dir.path(), "k");
    let created = graphql(
        &a,
        "mutation($key: String!) { createVerifySession(input: { keys: [{ publicKey: $key }] }) {
            session { id connectionIdentifier } } }",
        json!({ "key": key.public_line() }),
    )
    .await;
    let session = &created["data"]["createVerifySession"]["session"];
    let id = session["id"].as_str().unwrap();
    let ws_url = format!("ws://{}/graphql/ws", b.http_addr);
    let mut ws = WsClient::connect_acked(&ws_url, json!({ "apiKey": API_KEY })).await;
    ws.subscribe("1", EVENTS_SUBSCRIPTION, json!({ "id": id }))
        .await;
    let WsEvent::Next(first) = ws.next_event("1").await else {
        panic!("no snapshot")
    };

    let user = session["connectionIdentifier"].as_str().unwrap();
    let run = ssh_with(a.ssh_addr.port(), user, &[&key.private]).await;

    assert_eq!(first["data"]["verifySessionEvents"]["kind"], "SNAPSHOT");
    assert_eq!(run.status, 0, "{}{}", run.stdout, run.stderr);
    let mut kinds = Vec::new();
    let mut last = Value::Null;
    loop {
        match ws.next_event("1").await {
            WsEvent::Next(payload) => {
                last = payload["data"]["verifySessionEvents"].clone();
                kinds.push(last["kind"].as_str().unwrap().to_owned());
            }
            WsEvent::Complete => break,
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(kinds, ["NEW_CONNECTION", "VERIFIED", "STATUS_CHANGED"]);
    assert_eq!(last["session"]["status"], "VERIFIED");
    let hosts_a = graphql(&a, "{ sshHostKeys { fingerprintSha256 } }", json!({})).await;
    let hosts_b = graphql(&b, "{ sshHostKeys { fingerprintSha256 } }", json!({})).await;
    assert_eq!(
        hosts_a["data"], hosts_b["data"],
        "replicas share the host key"
    );
    a.terminate().await;
    b.terminate().await;
}

const CREATE_WITH_WEBHOOK: &str = "mutation($key: String!, $webhook: WebhookInput!) {
    createVerifySession(input: { keys: [{ publicKey: $key }], webhooks: [$webhook] }) {
      session { id connectionIdentifier webhooks { id } } } }";

const DELIVERIES: &str = "query($id: ID!) { verifySession(id: $id) { webhooks {
    deliveries { id status attemptCount attempts { attempt status } } } } }";

#[tokio::test]
async fn both_replicas_deliver_each_event_once() {
    let dir = tempfile::tempdir().unwrap();
    let Some((a, b)) = two_replicas(dir.path()).await else {
        return;
    };
    let receiver = Receiver::start().await;
    let key = TestKey::ed25519(dir.path(), "k");
    let webhook = json!({ "url": receiver.url("/hook") });
    let created = graphql(
        &a,
        CREATE_WITH_WEBHOOK,
        json!({ "key": key.public_line(), "webhook": webhook }),
    )
    .await;
    let session = &created["data"]["createVerifySession"]["session"];

    let user = session["connectionIdentifier"].as_str().unwrap();
    let run = ssh_with(b.ssh_addr.port(), user, &[&key.private]).await;
    let received = receiver.take(3).await;

    assert_eq!(run.status, 0, "{}{}", run.stdout, run.stderr);
    let mut events: Vec<String> = received
        .iter()
        .map(|r| r.json()["event"].as_str().unwrap().to_owned())
        .collect();
    events.sort();
    assert_eq!(events, ["new_connection", "status_changed", "verified"]);
    let id = session["id"].as_str().unwrap();
    let deliveries = common::eventually(|| async {
        let view = graphql(&a, DELIVERIES, json!({ "id": id })).await;
        let deliveries = view["data"]["verifySession"]["webhooks"][0]["deliveries"].clone();
        let done = deliveries
            .as_array()?
            .iter()
            .all(|d| d["status"] == "SUCCEEDED");
        done.then_some(deliveries)
    })
    .await;
    let deliveries = deliveries.as_array().unwrap();
    assert_eq!(deliveries.len(), 3);
    assert!(
        deliveries.iter().all(|d| d["attemptCount"] == 1),
        "sent twice: {deliveries:?}"
    );
    assert_eq!(receiver.count(), 3, "each event is delivered once");
    a.terminate().await;
    b.terminate().await;
}

#[tokio::test]
async fn a_delivery_due_on_a_killed_replica_is_sent_by_the_other() {
    let dir = tempfile::tempdir().unwrap();
    let Some((a, b)) = two_replicas(dir.path()).await else {
        return;
    };
    let receiver = Receiver::scripted(vec![Reply::status(500)]).await;
    let key = TestKey::ed25519(dir.path(), "k");
    let webhook = json!({
        "url": receiver.url("/hook"), "events": ["NEW_CONNECTION"],
        "retries": 1, "initialBackoff": 2,
    });
    let created = graphql(
        &a,
        CREATE_WITH_WEBHOOK,
        json!({ "key": key.public_line(), "webhook": webhook }),
    )
    .await;
    let session = &created["data"]["createVerifySession"]["session"];
    let user = session["connectionIdentifier"].as_str().unwrap();

    ssh_with(a.ssh_addr.port(), user, &[&key.private]).await;
    let first = receiver.next().await;
    a.kill().await;
    let retry = receiver.next().await;

    assert_eq!(first.json()["attempt"], 1);
    assert_eq!(retry.json()["attempt"], 2);
    assert_eq!(first.header("webhook-id"), retry.header("webhook-id"));
    let id = session["id"].as_str().unwrap();
    let view = graphql(&b, DELIVERIES, json!({ "id": id })).await;
    let delivery = &view["data"]["verifySession"]["webhooks"][0]["deliveries"][0];
    assert_eq!(delivery["status"], "SUCCEEDED", "{view}");
    assert_eq!(delivery["attemptCount"], 2);
    b.terminate().await;
}

#[tokio::test]
async fn concurrent_events_from_both_replicas_reach_a_subscriber_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let Some((a, b)) = two_replicas(dir.path()).await else {
        return;
    };
    let listed = TestKey::ed25519(dir.path(), "listed");
    let wrong = TestKey::ed25519(dir.path(), "wrong");
    let created = graphql(
        &a,
        "mutation($key: String!) { createVerifySession(input: {
            keys: [{ publicKey: $key }], maxAttempts: 10 }) { session { id connectionIdentifier } } }",
        json!({ "key": listed.public_line() }),
    )
    .await;
    let session = &created["data"]["createVerifySession"]["session"];
    let user = session["connectionIdentifier"].as_str().unwrap();
    let ws_url = format!("ws://{}/graphql/ws", b.http_addr);
    let mut ws = WsClient::connect_acked(&ws_url, json!({ "apiKey": API_KEY })).await;
    ws.subscribe("1", EVENTS_SUBSCRIPTION, json!({ "id": session["id"] }))
        .await;
    let WsEvent::Next(_) = ws.next_event("1").await else {
        panic!("no snapshot")
    };

    let identities = [wrong.private.as_path()];
    let ports = [a.ssh_addr.port(), b.ssh_addr.port()];
    let runs = (0..6).map(|n| ssh_with(ports[n % 2], user, &identities));
    futures_util::future::join_all(runs).await;

    let mut kinds = Vec::new();
    while kinds.len() < 12 {
        let WsEvent::Next(payload) = ws.next_event("1").await else {
            panic!("ended early")
        };
        kinds.push(
            payload["data"]["verifySessionEvents"]["kind"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    let count = |kind: &str| kinds.iter().filter(|k| k.as_str() == kind).count();
    assert_eq!(
        (count("NEW_CONNECTION"), count("FAILED_ATTEMPT")),
        (6, 6),
        "{kinds:?}"
    );
    assert_eq!(
        count("SNAPSHOT"),
        0,
        "no event was replaced by a snapshot: {kinds:?}"
    );
    a.terminate().await;
    b.terminate().await;
}
