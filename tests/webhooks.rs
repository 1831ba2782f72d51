//! Webhooks end to end: events produced by the system `ssh`, delivered to a real HTTP receiver
//! on 127.0.0.1, signed, retried, kept, and kept away from private targets unless allowed.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, Utc};
use common::keys::TestKey;
use common::process::KeyproofProcess;
use common::receiver::{Received, Receiver, Reply};
use common::ssh::{client_version_prefix, ssh_with};
use common::{CreatedSession, TestApp, WAIT, eventually, test_settings};
use hmac::{Hmac, KeyInit, Mac};
use keyproof::app::App;
use keyproof::webhooks::targets::{TargetPolicy, TargetRefusal};
use serde_json::{Value, json};
use sha2::Sha256;
use tokio::net::TcpListener;

const WEBHOOKS_QUERY: &str = "query($id: ID!) { verifySession(id: $id) { webhooks {
    id url method secret events retries initialBackoff backoffMultiplier headers { name values }
    deliveries(first: 100) { id webhookId event status attemptCount nextAttemptAt completedAt
      responseStatus responseBody error durationMs
      attempts { attempt status responseStatus responseBody error durationMs startedAt } }
} } }";

const ADD_WEBHOOK: &str = "mutation($session: ID!, $input: WebhookInput!) {
    addWebhook(sessionId: $session, input: $input) { id url secret } }";

const UPDATE_WEBHOOK: &str = "mutation($id: ID!, $input: WebhookUpdateInput!) {
    updateWebhook(id: $id, input: $input) { id url method secret headers { name values } } }";

/// The receivers run on 127.0.0.1, so these tests allow private targets.
async fn spawn_app() -> TestApp {
    TestApp::spawn_with(|settings| settings.webhook_allow_private_targets = true).await
}

/// An app without `--webhook-allow-private-targets`, on its own SQLite database even when the
/// suite runs on PostgreSQL: workers that share a database share its outbox, so a strict
/// worker would refuse other tests' deliveries, and theirs would send this test's.
async fn spawn_strict_app() -> TestApp {
    TestApp::spawn_with(|settings| settings.database_url = None).await
}

/// A fixed secret the tests sign with independently.
fn known_secret() -> String {
    format!("whsec_{}", STANDARD.encode([7u8; 32]))
}

fn webhook(url: &str, extra: Value) -> Value {
    let mut webhook = json!({ "url": url });
    if let (Some(object), Some(extra)) = (webhook.as_object_mut(), extra.as_object()) {
        object.extend(extra.clone());
    }
    webhook
}

async fn create_with_webhooks(
    app: &TestApp,
    key: &TestKey,
    webhooks: Vec<Value>,
    mut extra: Value,
) -> CreatedSession {
    extra["webhooks"] = json!(webhooks);
    app.create_session_with(&[&key.public_line()], extra).await
}

async fn webhooks_of(app: &TestApp, session_id: &str) -> Vec<Value> {
    let response = app
        .graphql(WEBHOOKS_QUERY, json!({ "id": session_id }))
        .await;
    assert!(response.get("errors").is_none(), "query failed: {response}");
    response["data"]["verifySession"]["webhooks"]
        .as_array()
        .expect("webhooks")
        .clone()
}

/// Polls until the webhook at `index` has a delivery for which `done` holds; returns it.
async fn delivery_when(
    app: &TestApp,
    session_id: &str,
    index: usize,
    done: impl Fn(&Value) -> bool,
) -> Value {
    eventually(|| async {
        let webhooks = webhooks_of(app, session_id).await;
        webhooks[index]["deliveries"]
            .as_array()?
            .iter()
            .find(|delivery| done(delivery))
            .cloned()
    })
    .await
}

/// Checks a request's Standard Webhooks signature with the secret, independently of keyproof.
fn assert_signed(request: &Received, secret: &str) {
    let id = request.header("webhook-id").expect("webhook-id");
    let timestamp = request
        .header("webhook-timestamp")
        .expect("webhook-timestamp");
    let key = STANDARD
        .decode(secret.strip_prefix("whsec_").expect("whsec_ prefix"))
        .expect("secret is base64");
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&key).expect("hmac key");
    mac.update(format!("{id}.{timestamp}.").as_bytes());
    mac.update(&request.body);
    let expected = format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()));

    let signatures = request.header("webhook-signature").expect("signature");
    assert!(
        signatures.split(' ').any(|signature| signature == expected),
        "signature {signatures} does not verify"
    );
    let sent_at: i64 = timestamp.parse().expect("numeric timestamp");
    assert!(
        (Utc::now().timestamp() - sent_at).abs() < 300,
        "stale timestamp"
    );
}

fn time_of(value: &Value) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(value.as_str().expect("a time"))
        .expect("RFC 3339")
        .with_timezone(&Utc)
}

fn sorted_keys(value: &Value) -> Vec<String> {
    let mut keys: Vec<String> = value
        .as_object()
        .expect("an object")
        .keys()
        .cloned()
        .collect();
    keys.sort();
    keys
}

fn strings(names: &[&str]) -> Vec<String> {
    let mut names: Vec<String> = names.iter().map(|name| (*name).to_owned()).collect();
    names.sort();
    names
}

fn by_event(requests: &[Received], event: &str) -> Received {
    requests
        .iter()
        .find(|request| request.json()["event"] == event)
        .unwrap_or_else(|| panic!("no {event} request"))
        .clone()
}

fn error_locations(response: &Value) -> Vec<String> {
    let error = &response["errors"][0];
    assert_eq!(
        error["extensions"]["code"], "BAD_USER_INPUT",
        "expected an input error: {response}"
    );
    error["extensions"]["errors"]
        .as_array()
        .expect("located errors")
        .iter()
        .map(|e| e["location"].as_str().expect("location").to_owned())
        .collect()
}

/// Checks the envelope and headers every request carries.
fn assert_envelope(request: &Received, session_id: &str, webhook_id: &str, event: &str) {
    let body = request.json();
    assert_eq!(request.method, "POST");
    assert_eq!(request.header("content-type"), Some("application/json"));
    assert_eq!(
        request.header("user-agent"),
        Some(concat!("keyproof/", env!("CARGO_PKG_VERSION")))
    );
    assert_eq!(
        sorted_keys(&body),
        strings(&[
            "entity",
            "id",
            "event",
            "webhook_id",
            "webhook_invocation_id",
            "trigger_time",
            "request_time",
            "attempt",
            "payload",
        ])
    );
    assert_eq!(body["entity"], "verify_session");
    assert_eq!(body["id"], session_id);
    assert_eq!(body["event"], event);
    assert_eq!(body["webhook_id"], webhook_id);
    assert_eq!(
        body["webhook_invocation_id"].as_str(),
        request.header("webhook-id")
    );
    assert_eq!(body["attempt"], 1);
    assert!(time_of(&body["trigger_time"]) <= time_of(&body["request_time"]));
    assert!(time_of(&body["request_time"]) <= request.received_at + chrono::Duration::seconds(1));
    assert_eq!(body["payload"]["verify_session_id"], session_id);
}

#[tokio::test]
async fn every_event_arrives_signed_with_its_envelope_and_payload() {
    let app = spawn_app().await;
    let receiver = Receiver::start().await;
    let generated = Receiver::start().await;
    let key = TestKey::ed25519(app.dir.path(), "alice");
    let wrong = TestKey::ed25519(app.dir.path(), "mallory");
    let secret = known_secret();
    let verified = create_with_webhooks(
        &app,
        &key,
        vec![
            webhook(&receiver.url("/hooks/kp"), json!({ "secret": secret })),
            webhook(&generated.url("/generated"), json!({})),
        ],
        json!({ "externalId": "account-42" }),
    )
    .await;

    let run = ssh_with(
        app.ssh_port,
        &verified.connection_identifier,
        &[&key.private],
    )
    .await;

    assert_eq!(run.status, 0, "ssh failed: {}{}", run.stdout, run.stderr);
    let requests = receiver.take(3).await;
    let session = app.session(&verified.id).await;
    let hooks = webhooks_of(&app, &verified.id).await;
    let webhook_id = hooks[0]["id"].as_str().unwrap();
    for request in &requests {
        assert_eq!(request.path, "/hooks/kp");
        assert_signed(request, &secret);
    }
    let connection = &session["connections"][0];

    let new_connection = by_event(&requests, "new_connection");
    assert_envelope(&new_connection, &verified.id, webhook_id, "new_connection");
    let payload = new_connection.json()["payload"].clone();
    assert_eq!(
        sorted_keys(&payload),
        strings(&[
            "verify_session_id",
            "verify_session_external_id",
            "verify_session_connection_identifier",
            "verify_session_connection_id",
            "ip_address",
            "client_version",
        ])
    );
    assert_eq!(payload["verify_session_external_id"], "account-42");
    assert_eq!(
        payload["verify_session_connection_identifier"],
        verified.connection_identifier
    );
    assert_eq!(payload["verify_session_connection_id"], connection["id"]);
    assert_eq!(payload["ip_address"], "127.0.0.1");
    assert!(
        payload["client_version"]
            .as_str()
            .unwrap()
            .starts_with(&client_version_prefix())
    );

    let proof = by_event(&requests, "verified");
    assert_envelope(&proof, &verified.id, webhook_id, "verified");
    let payload = proof.json()["payload"].clone();
    assert_eq!(
        sorted_keys(&payload),
        strings(&[
            "verify_session_id",
            "verify_session_external_id",
            "verify_session_connection_identifier",
            "verify_session_connection_id",
            "verify_session_key_id",
            "verify_session_connection_key_id",
            "public_key_ssh",
            "public_key_pem",
            "public_key_md5",
            "public_key_sha256",
            "public_key_algorithm",
        ])
    );
    assert_eq!(payload["verify_session_connection_id"], connection["id"]);
    assert_eq!(payload["verify_session_key_id"], session["keys"][0]["id"]);
    assert_eq!(
        payload["verify_session_connection_key_id"],
        connection["keys"][0]["id"]
    );
    assert_eq!(payload["public_key_ssh"], key.public_ssh());
    assert_eq!(payload["public_key_sha256"], key.fingerprint("sha256"));
    assert_eq!(payload["public_key_md5"], key.fingerprint("md5"));
    assert_eq!(payload["public_key_algorithm"], "ssh-ed25519");
    assert!(
        payload["public_key_pem"]
            .as_str()
            .unwrap()
            .starts_with("-----BEGIN PUBLIC KEY-----")
    );

    let status = by_event(&requests, "status_changed");
    assert_envelope(&status, &verified.id, webhook_id, "status_changed");
    let payload = status.json()["payload"].clone();
    assert_eq!(
        sorted_keys(&payload),
        strings(&[
            "verify_session_id",
            "verify_session_external_id",
            "verify_session_connection_identifier",
            "verify_session_status",
            "failure_reason",
        ])
    );
    assert_eq!(payload["verify_session_status"], "verified");
    assert_eq!(payload["failure_reason"], Value::Null);

    // Every event has its own invocation id.
    let mut ids: Vec<_> = requests
        .iter()
        .map(|r| r.header("webhook-id").unwrap().to_owned())
        .collect();
    ids.dedup();
    assert_eq!(ids.len(), 3);

    // A generated secret is `whsec_…` and signs too.
    let generated_secret = hooks[1]["secret"].as_str().unwrap().to_owned();
    assert!(generated_secret.starts_with("whsec_"));
    for request in generated.take(3).await {
        assert_signed(&request, &generated_secret);
    }

    // A failing session: a wrong key with one attempt allowed.
    let failing = create_with_webhooks(
        &app,
        &key,
        vec![webhook(
            &receiver.url("/hooks/kp"),
            json!({ "secret": secret }),
        )],
        json!({ "maxAttempts": 1 }),
    )
    .await;

    let run = ssh_with(
        app.ssh_port,
        &failing.connection_identifier,
        &[&wrong.private],
    )
    .await;

    assert_ne!(run.status, 0);
    let requests = receiver.take(3).await;
    let failing_hooks = webhooks_of(&app, &failing.id).await;
    let webhook_id = failing_hooks[0]["id"].as_str().unwrap();
    let session = app.session(&failing.id).await;
    for request in &requests {
        assert_signed(request, &secret);
    }
    let attempt = by_event(&requests, "failed_attempt");
    assert_envelope(&attempt, &failing.id, webhook_id, "failed_attempt");
    let payload = attempt.json()["payload"].clone();
    assert_eq!(
        sorted_keys(&payload),
        strings(&[
            "verify_session_id",
            "verify_session_external_id",
            "verify_session_connection_identifier",
            "verify_session_connection_id",
            "ip_address",
            "client_version",
            "failed_attempts",
            "max_attempts",
        ])
    );
    assert_eq!(payload["verify_session_external_id"], Value::Null);
    assert_eq!(
        payload["verify_session_connection_id"],
        session["connections"][0]["id"]
    );
    assert_eq!(payload["ip_address"], "127.0.0.1");
    assert_eq!(payload["failed_attempts"], 1);
    assert_eq!(payload["max_attempts"], 1);
    let status = by_event(&requests, "status_changed");
    assert_eq!(status.json()["payload"]["verify_session_status"], "failed");
    assert_eq!(status.json()["payload"]["failure_reason"], "max_attempts");
    by_event(&requests, "new_connection");
    app.shutdown().await;
}

#[tokio::test]
async fn events_filter_what_a_webhook_receives() {
    let app = spawn_app().await;
    let filtered = Receiver::start().await;
    let everything = Receiver::start().await;
    let key = TestKey::ed25519(app.dir.path(), "alice");
    let created = create_with_webhooks(
        &app,
        &key,
        vec![
            webhook(&filtered.url("/"), json!({ "events": ["VERIFIED"] })),
            webhook(&everything.url("/"), json!({ "events": [] })),
        ],
        json!({}),
    )
    .await;

    ssh_with(
        app.ssh_port,
        &created.connection_identifier,
        &[&key.private],
    )
    .await;

    // The unfiltered webhook gets all three events; deliveries are written with their events,
    // so by then the filtered webhook's deliveries are all known.
    everything.take(3).await;
    let hooks = webhooks_of(&app, &created.id).await;
    assert_eq!(hooks[0]["events"], json!(["VERIFIED"]));
    assert_eq!(hooks[1]["events"], json!([]));
    let deliveries = hooks[0]["deliveries"].as_array().unwrap();
    assert_eq!(deliveries.len(), 1, "{deliveries:?}");
    assert_eq!(deliveries[0]["event"], "VERIFIED");
    let only = filtered.next().await;
    assert_eq!(only.json()["event"], "verified");
    delivery_when(&app, &created.id, 0, |d| d["status"] == "SUCCEEDED").await;
    assert_eq!(filtered.count(), 1);
    app.shutdown().await;
}

#[tokio::test]
async fn method_and_custom_headers_are_honoured() {
    let app = spawn_app().await;
    let receiver = Receiver::start().await;
    let key = TestKey::ed25519(app.dir.path(), "alice");
    let created = create_with_webhooks(
        &app,
        &key,
        vec![webhook(
            &receiver.url("/put?tenant=7"),
            json!({
                "method": "PUT",
                "events": ["STATUS_CHANGED"],
                "headers": [
                    { "name": "Authorization", "values": ["Bearer receiver-token"] },
                    { "name": "X-Multi", "values": ["one", "two"] },
                ],
            }),
        )],
        json!({}),
    )
    .await;
    let hooks = webhooks_of(&app, &created.id).await;
    assert_eq!(hooks[0]["method"], "PUT");
    assert_eq!(
        hooks[0]["headers"][1],
        json!({ "name": "X-Multi", "values": ["one", "two"] })
    );

    ssh_with(
        app.ssh_port,
        &created.connection_identifier,
        &[&key.private],
    )
    .await;

    let request = receiver.next().await;
    assert_eq!(request.method, "PUT");
    assert_eq!(request.path, "/put");
    assert_eq!(
        request.header("authorization"),
        Some("Bearer receiver-token")
    );
    assert_eq!(request.header_values("x-multi"), ["one", "two"]);
    assert_eq!(request.header("content-type"), Some("application/json"));
    assert_signed(&request, hooks[0]["secret"].as_str().unwrap());
    app.shutdown().await;
}

#[tokio::test]
async fn reserved_headers_and_line_breaks_are_refused_at_input() {
    let app = spawn_app().await;
    let key = TestKey::ed25519(app.dir.path(), "alice");
    let reserved = [
        "Content-Type",
        "user-agent",
        "Webhook-Id",
        "webhook-timestamp",
        "WEBHOOK-SIGNATURE",
        "Host",
        "Content-Length",
    ];

    for name in reserved {
        let input = json!({
            "keys": [{ "publicKey": key.public_line() }],
            "webhooks": [{ "url": "http://127.0.0.1:9/", "headers": [{ "name": name, "values": ["x"] }] }],
        });
        let response = app
            .graphql(
                "mutation($input: CreateVerifySessionInput!) { createVerifySession(input: $input) { clientToken } }",
                json!({ "input": input }),
            )
            .await;

        assert_eq!(
            error_locations(&response),
            ["input.webhooks[0].headers[0].name"],
            "{name}"
        );
        assert!(
            response["errors"][0]["extensions"]["errors"][0]["message"]
                .as_str()
                .unwrap()
                .contains("cannot be replaced"),
            "{response}"
        );
    }

    let created = app.create_session(&[&key.public_line()]).await;
    let response = app
        .graphql(
            ADD_WEBHOOK,
            json!({ "session": created.id, "input": {
                "url": "http://127.0.0.1:9/",
                "headers": [
                    { "name": "X-Ok", "values": ["fine"] },
                    { "name": "X-Split\r\nInjected", "values": ["1"] },
                    { "name": "X-Value", "values": ["a\nInjected: 1"] },
                    { "name": "webhook-signature", "values": ["v1,forged"] },
                ],
            } }),
        )
        .await;
    assert_eq!(
        error_locations(&response),
        [
            "input.headers[1].name",
            "input.headers[2].values[0]",
            "input.headers[3].name"
        ]
    );

    let response = app
        .graphql(
            ADD_WEBHOOK,
            json!({ "session": created.id, "input": { "url": "http://127.0.0.1:9/" } }),
        )
        .await;
    let webhook_id = response["data"]["addWebhook"]["id"].as_str().unwrap();
    let response = app
        .graphql(
            UPDATE_WEBHOOK,
            json!({ "id": webhook_id, "input": {
                "headers": [{ "name": "User-Agent", "values": ["spoof"] }],
            } }),
        )
        .await;
    assert_eq!(error_locations(&response), ["input.headers[0].name"]);
    app.shutdown().await;
}

#[tokio::test]
async fn settings_are_bounded_with_located_errors() {
    let app = spawn_app().await;
    let key = TestKey::ed25519(app.dir.path(), "alice");
    let many_headers: Vec<Value> = (0..21)
        .map(|i| json!({ "name": format!("x-h{i}"), "values": ["v"] }))
        .collect();
    let input = json!({
        "keys": [{ "publicKey": key.public_line() }],
        "webhooks": [
            { "url": "ftp://127.0.0.1/" },
            { "url": "http://127.0.0.1/", "retries": 21, "initialBackoff": 0, "backoffMultiplier": 0.5 },
            { "url": "http://127.0.0.1/", "secret": "whsec_short", "headers": many_headers },
            { "url": format!("http://127.0.0.1/{}", "a".repeat(2100)) },
        ],
    });

    let response = app
        .graphql(
            "mutation($input: CreateVerifySessionInput!) { createVerifySession(input: $input) { clientToken } }",
            json!({ "input": input }),
        )
        .await;

    assert_eq!(
        error_locations(&response),
        [
            "input.webhooks[0].url",
            "input.webhooks[1].retries",
            "input.webhooks[1].initialBackoff",
            "input.webhooks[1].backoffMultiplier",
            "input.webhooks[2].headers",
            "input.webhooks[2].secret",
            "input.webhooks[3].url",
        ]
    );
    assert!(
        !response.to_string().contains("whsec_short"),
        "a secret is never echoed"
    );

    let eleven: Vec<Value> = (0..11)
        .map(|_| json!({ "url": "http://127.0.0.1/" }))
        .collect();
    let response = app
        .graphql(
            "mutation($input: CreateVerifySessionInput!) { createVerifySession(input: $input) { clientToken } }",
            json!({ "input": { "keys": [{ "publicKey": key.public_line() }], "webhooks": eleven } }),
        )
        .await;
    assert_eq!(error_locations(&response), ["input.webhooks"]);
    app.shutdown().await;
}

#[tokio::test]
async fn failed_attempts_are_retried_at_the_configured_gaps() {
    let app = spawn_app().await;
    let receiver = Receiver::scripted(vec![
        Reply::status(500).body("first failure"),
        Reply::status(500).body("second failure"),
        Reply::status(200).body("finally"),
    ])
    .await;
    let key = TestKey::ed25519(app.dir.path(), "alice");
    let created = create_with_webhooks(
        &app,
        &key,
        vec![webhook(
            &receiver.url("/"),
            json!({ "events": ["STATUS_CHANGED"], "retries": 3, "initialBackoff": 1, "backoffMultiplier": 2 }),
        )],
        json!({}),
    )
    .await;

    ssh_with(
        app.ssh_port,
        &created.connection_identifier,
        &[&key.private],
    )
    .await;

    let requests = receiver.take(3).await;
    let attempts: Vec<Value> = requests
        .iter()
        .map(|r| r.json()["attempt"].clone())
        .collect();
    assert_eq!(attempts, [1, 2, 3]);
    let ids: Vec<_> = requests.iter().map(|r| r.header("webhook-id")).collect();
    assert!(ids.iter().all(|id| *id == ids[0]), "one delivery, one id");
    let first_gap = requests[1].at - requests[0].at;
    let second_gap = requests[2].at - requests[1].at;
    assert!(
        first_gap >= Duration::from_millis(990) && first_gap < Duration::from_millis(2500),
        "first retry after {first_gap:?}, expected about 1 s"
    );
    assert!(
        second_gap >= Duration::from_millis(1990) && second_gap < Duration::from_millis(3500),
        "second retry after {second_gap:?}, expected about 2 s"
    );
    let delivery = delivery_when(&app, &created.id, 0, |d| d["status"] == "SUCCEEDED").await;
    assert_eq!(delivery["attemptCount"], 3);
    assert_eq!(delivery["responseStatus"], 200);
    assert_eq!(delivery["responseBody"], "finally");
    assert_eq!(delivery["error"], Value::Null);
    let kept: Vec<(Value, Value, Value)> = delivery["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["attempt"].clone(),
                a["status"].clone(),
                a["responseStatus"].clone(),
            )
        })
        .collect();
    assert_eq!(
        kept,
        [
            (json!(1), json!("FAILED"), json!(500)),
            (json!(2), json!("FAILED"), json!(500)),
            (json!(3), json!("SUCCEEDED"), json!(200)),
        ]
    );
    assert_eq!(delivery["attempts"][0]["responseBody"], "first failure");
    assert_eq!(
        delivery["attempts"][0]["error"],
        "the receiver answered 500"
    );
    assert!(delivery["attempts"][0]["durationMs"].as_i64().unwrap() >= 0);
    app.shutdown().await;
}

#[tokio::test]
async fn a_longer_retry_after_is_honoured() {
    let app = spawn_app().await;
    let receiver = Receiver::scripted(vec![Reply::status(503).header("retry-after", "2")]).await;
    let key = TestKey::ed25519(app.dir.path(), "alice");
    let created = create_with_webhooks(
        &app,
        &key,
        vec![webhook(
            &receiver.url("/"),
            json!({ "events": ["STATUS_CHANGED"], "retries": 1, "initialBackoff": 1 }),
        )],
        json!({}),
    )
    .await;

    ssh_with(
        app.ssh_port,
        &created.connection_identifier,
        &[&key.private],
    )
    .await;

    let requests = receiver.take(2).await;
    let gap = requests[1].at - requests[0].at;
    assert!(
        gap >= Duration::from_millis(1990) && gap < Duration::from_millis(3500),
        "retried after {gap:?}, expected the 2 s the receiver asked for"
    );
    delivery_when(&app, &created.id, 0, |d| d["status"] == "SUCCEEDED").await;
    app.shutdown().await;
}

#[tokio::test]
async fn gone_stops_retrying() {
    let app = spawn_app().await;
    let receiver = Receiver::scripted(vec![Reply::status(410)]).await;
    let key = TestKey::ed25519(app.dir.path(), "alice");
    let created = create_with_webhooks(
        &app,
        &key,
        vec![webhook(
            &receiver.url("/"),
            json!({ "events": ["STATUS_CHANGED"], "retries": 3, "initialBackoff": 1 }),
        )],
        json!({}),
    )
    .await;

    ssh_with(
        app.ssh_port,
        &created.connection_identifier,
        &[&key.private],
    )
    .await;

    receiver.next().await;
    let delivery = delivery_when(&app, &created.id, 0, |d| d["status"] == "FAILED").await;
    assert_eq!(delivery["attemptCount"], 1);
    assert_eq!(delivery["responseStatus"], 410);
    assert_eq!(delivery["nextAttemptAt"], Value::Null);
    assert_eq!(receiver.count(), 1);
    app.shutdown().await;
}

#[tokio::test]
async fn redirects_are_failed_attempts_and_never_followed() {
    let app = spawn_app().await;
    let target = Receiver::start().await;
    let redirecting = Receiver::scripted(vec![
        Reply::status(302).header("location", &target.url("/landing")),
    ])
    .await;
    let key = TestKey::ed25519(app.dir.path(), "alice");
    let created = create_with_webhooks(
        &app,
        &key,
        vec![webhook(
            &redirecting.url("/"),
            json!({ "events": ["STATUS_CHANGED"] }),
        )],
        json!({}),
    )
    .await;

    ssh_with(
        app.ssh_port,
        &created.connection_identifier,
        &[&key.private],
    )
    .await;

    redirecting.next().await;
    let delivery = delivery_when(&app, &created.id, 0, |d| d["status"] == "FAILED").await;
    assert_eq!(delivery["responseStatus"], 302);
    assert!(
        delivery["error"].as_str().unwrap().contains("redirect"),
        "{delivery}"
    );
    // The attempt is recorded after the answer: had the redirect been followed, the target
    // would have had its request by then.
    assert_eq!(target.count(), 0);
    app.shutdown().await;
}

#[tokio::test]
async fn webhooks_are_updated_deleted_and_deliveries_sent_again() {
    let app = spawn_app().await;
    let old = Receiver::start().await;
    let new = Receiver::start().await;
    let key = TestKey::ed25519(app.dir.path(), "alice");
    let created = create_with_webhooks(
        &app,
        &key,
        vec![webhook(
            &old.url("/"),
            json!({ "events": ["STATUS_CHANGED"] }),
        )],
        json!({}),
    )
    .await;
    let hooks = webhooks_of(&app, &created.id).await;
    let webhook_id = hooks[0]["id"].as_str().unwrap().to_owned();
    let old_secret = hooks[0]["secret"].as_str().unwrap().to_owned();

    let response = app
        .graphql(
            UPDATE_WEBHOOK,
            json!({ "id": webhook_id, "input": {
                "url": new.url("/moved"),
                "method": "PATCH",
                "headers": [{ "name": "X-Moved", "values": ["yes"] }],
                "rotateSecret": true,
            } }),
        )
        .await;
    let updated = &response["data"]["updateWebhook"];
    assert_eq!(updated["method"], "PATCH", "{response}");
    let secret = updated["secret"].as_str().unwrap().to_owned();
    assert_ne!(secret, old_secret);
    ssh_with(
        app.ssh_port,
        &created.connection_identifier,
        &[&key.private],
    )
    .await;

    let first = new.next().await;
    assert_eq!(first.method, "PATCH");
    assert_eq!(first.path, "/moved");
    assert_eq!(first.header("x-moved"), Some("yes"));
    assert_signed(&first, &secret);
    let delivery = delivery_when(&app, &created.id, 0, |d| d["status"] == "SUCCEEDED").await;
    assert_eq!(old.count(), 0);

    let response = app
        .graphql(
            "mutation($id: ID!) { redeliverWebhookDelivery(id: $id) { id status attemptCount } }",
            json!({ "id": delivery["id"] }),
        )
        .await;
    assert_eq!(
        response["data"]["redeliverWebhookDelivery"]["status"], "PENDING",
        "{response}"
    );
    let again = new.next().await;
    assert_eq!(again.header("webhook-id"), first.header("webhook-id"));
    assert_eq!(again.json()["attempt"], 2);
    assert_eq!(again.json()["payload"], first.json()["payload"]);
    assert_signed(&again, &secret);
    delivery_when(&app, &created.id, 0, |d| {
        d["status"] == "SUCCEEDED" && d["attemptCount"] == 2
    })
    .await;

    let response = app
        .graphql(
            "mutation($id: ID!) { deleteWebhook(id: $id) }",
            json!({ "id": webhook_id }),
        )
        .await;
    assert_eq!(response["data"]["deleteWebhook"], webhook_id.as_str());
    assert_eq!(webhooks_of(&app, &created.id).await, Vec::<Value>::new());
    let response = app
        .graphql(
            "mutation($id: ID!) { deleteWebhook(id: $id) }",
            json!({ "id": webhook_id }),
        )
        .await;
    assert_eq!(response["errors"][0]["extensions"]["code"], "NOT_FOUND");
    app.shutdown().await;
}

#[tokio::test]
async fn client_tokens_see_no_secrets_and_manage_nothing() {
    let app = spawn_app().await;
    let key = TestKey::ed25519(app.dir.path(), "alice");
    let created = create_with_webhooks(
        &app,
        &key,
        vec![webhook(
            "http://127.0.0.1:9/hidden/path?token=hidden",
            json!({ "headers": [{ "name": "Authorization", "values": ["Bearer hidden"] }] }),
        )],
        json!({}),
    )
    .await;
    let webhook_id = webhooks_of(&app, &created.id).await[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();

    let response = app
        .graphql_as(
            Some(&created.client_token),
            WEBHOOKS_QUERY,
            json!({ "id": created.id }),
        )
        .await;

    assert!(response.get("errors").is_none(), "{response}");
    let seen = &response["data"]["verifySession"]["webhooks"][0];
    assert_eq!(seen["secret"], Value::Null);
    assert_eq!(seen["headers"], Value::Null);
    assert_eq!(seen["deliveries"], json!([]));
    assert_eq!(
        seen["url"], "http://127.0.0.1:9",
        "client tokens see the origin only"
    );
    assert!(!response.to_string().contains("hidden"));
    for (query, variables) in [
        (
            ADD_WEBHOOK,
            json!({ "session": created.id, "input": { "url": "http://127.0.0.1:9/" } }),
        ),
        (
            UPDATE_WEBHOOK,
            json!({ "id": webhook_id, "input": { "retries": 1 } }),
        ),
        (
            "mutation($id: ID!) { deleteWebhook(id: $id) }",
            json!({ "id": webhook_id }),
        ),
        (
            "mutation($id: ID!) { redeliverWebhookDelivery(id: $id) { id } }",
            json!({ "id": webhook_id }),
        ),
    ] {
        let response = app
            .graphql_as(Some(&created.client_token), query, variables)
            .await;
        assert_eq!(
            response["errors"][0]["extensions"]["code"], "FORBIDDEN",
            "{response}"
        );
    }
    app.shutdown().await;
}

#[tokio::test]
async fn other_projects_cannot_touch_a_webhook() {
    let app = spawn_app().await;
    let key = TestKey::ed25519(app.dir.path(), "alice");
    let created = create_with_webhooks(
        &app,
        &key,
        vec![webhook("http://127.0.0.1:9/", json!({}))],
        json!({}),
    )
    .await;
    let webhook_id = webhooks_of(&app, &created.id).await[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let store = &app.app.as_ref().unwrap().store;
    let other = store.ensure_project("other").await.unwrap();
    let other_key = format!("kp_other_{}", uuid::Uuid::now_v7().simple());
    store
        .ensure_api_key(other.id, "other", &other_key)
        .await
        .unwrap();

    for (query, variables) in [
        (
            ADD_WEBHOOK,
            json!({ "session": created.id, "input": { "url": "http://127.0.0.1:9/" } }),
        ),
        (
            UPDATE_WEBHOOK,
            json!({ "id": webhook_id, "input": { "retries": 1 } }),
        ),
        (
            "mutation($id: ID!) { deleteWebhook(id: $id) }",
            json!({ "id": webhook_id }),
        ),
    ] {
        let response = app.graphql_as(Some(&other_key), query, variables).await;
        assert_eq!(
            response["errors"][0]["extensions"]["code"], "NOT_FOUND",
            "{response}"
        );
    }
    assert_eq!(webhooks_of(&app, &created.id).await.len(), 1);
    app.shutdown().await;
}

/// Every spelling of a private target the guard must catch.
const PRIVATE_TARGETS: &[&str] = &[
    "http://127.0.0.1:9/hook",
    "http://[::1]:9/hook",
    "http://[::ffff:127.0.0.1]:9/hook",
    "http://169.254.169.254/latest/meta-data/",
    "http://10.0.0.1/hook",
    "http://0.0.0.0:9/hook",
    "http://localhost:9/hook",
    "http://LocalHost:9/hook",
    "http://2130706433:9/hook",
    "http://[::ffff:a9fe:a9fe]/hook",
];

#[tokio::test]
async fn private_targets_are_refused_at_input_without_the_flag() {
    let app = spawn_strict_app().await;
    let key = TestKey::ed25519(app.dir.path(), "alice");
    let plain = app.create_session(&[&key.public_line()]).await;

    for url in PRIVATE_TARGETS {
        let input = json!({
            "keys": [{ "publicKey": key.public_line() }],
            "webhooks": [{ "url": url }],
        });
        let response = app
            .graphql(
                "mutation($input: CreateVerifySessionInput!) { createVerifySession(input: $input) { clientToken } }",
                json!({ "input": input }),
            )
            .await;
        assert_eq!(
            error_locations(&response),
            ["input.webhooks[0].url"],
            "{url}"
        );
        assert!(
            response["errors"][0]["message"]
                .as_str()
                .unwrap()
                .contains("refused"),
            "{url}: {response}"
        );

        let response = app
            .graphql(
                ADD_WEBHOOK,
                json!({ "session": plain.id, "input": { "url": url } }),
            )
            .await;
        assert_eq!(error_locations(&response), ["input.url"], "{url}");
    }
    assert_eq!(webhooks_of(&app, &plain.id).await.len(), 0);
    app.shutdown().await;
}

#[tokio::test]
async fn private_targets_are_refused_again_at_delivery_time() {
    // Webhooks configured while private targets were allowed; then keyproof restarts on the
    // same data without the flag, and the worker must refuse every one of them before it
    // connects anywhere. Both run on a database of their own (see `spawn_strict_app`).
    let mut app = TestApp::spawn_with(|settings| {
        settings.webhook_allow_private_targets = true;
        settings.database_url = None;
    })
    .await;
    let receiver = Receiver::start().await;
    let key = TestKey::ed25519(app.dir.path(), "alice");
    let wrong = TestKey::ed25519(app.dir.path(), "mallory");
    let port = receiver.port();
    let targets = [
        format!("http://127.0.0.1:{port}/"),
        format!("http://localhost:{port}/"),
        format!("http://[::1]:{port}/"),
        format!("http://[::ffff:127.0.0.1]:{port}/"),
        format!("http://0.0.0.0:{port}/"),
        "http://10.0.0.1/hook".to_owned(),
        "http://169.254.169.254/latest/meta-data/".to_owned(),
    ];
    let hooks: Vec<Value> = targets
        .iter()
        .map(|url| webhook(url, json!({ "events": ["STATUS_CHANGED"] })))
        .collect();
    // No event happens while private targets are allowed: creating a session emits none.
    let created = create_with_webhooks(&app, &key, hooks, json!({ "maxAttempts": 1 })).await;
    app.app.take().expect("running").shutdown().await;

    // The restarted worker checks exactly as these calls do. Make sure they refuse before any
    // event can send a request to a non-loopback address.
    let strict = TargetPolicy {
        allow_private: false,
    };
    for url in &targets {
        let url = reqwest::Url::parse(url).unwrap();
        if url.host_str() == Some("localhost") {
            let refused = strict.resolver().resolve_checked("localhost").await;
            assert_eq!(refused, Err(TargetRefusal::NonPublic));
        } else {
            assert_eq!(
                strict.check_literal(&url),
                Err(TargetRefusal::NonPublic),
                "{url}"
            );
        }
    }
    let mut settings = test_settings(app.dir.path().join("data"), &app.api_key);
    settings.database_url = None;
    let restarted = App::start(
        &settings,
        TcpListener::bind("127.0.0.1:0").await.unwrap(),
        TcpListener::bind("127.0.0.1:0").await.unwrap(),
    )
    .await
    .expect("restart keyproof");
    app.base_url = format!("http://{}", restarted.http_addr);
    app.ssh_port = restarted.ssh_addr.port();
    app.app = Some(restarted);

    ssh_with(
        app.ssh_port,
        &created.connection_identifier,
        &[&wrong.private],
    )
    .await;

    let refusal = TargetRefusal::NonPublic.to_string();
    let hooks = eventually(|| async {
        let hooks = webhooks_of(&app, &created.id).await;
        hooks
            .iter()
            .all(|hook| hook["deliveries"][0]["status"] == "FAILED")
            .then_some(hooks)
    })
    .await;
    for (hook, url) in hooks.iter().zip(&targets) {
        let delivery = &hook["deliveries"][0];
        assert_eq!(delivery["error"], refusal.as_str(), "{url}");
        assert_eq!(delivery["responseStatus"], Value::Null, "{url}");
    }
    assert_eq!(receiver.count(), 0);
    let response = app
        .graphql(
            UPDATE_WEBHOOK,
            json!({ "id": hooks[0]["id"], "input": { "url": "http://169.254.169.254/" } }),
        )
        .await;
    assert_eq!(error_locations(&response), ["input.url"]);
    app.shutdown().await;
}

/// GraphQL against a keyproof child process.
async fn graphql_at(base_url: &str, api_key: &str, query: &str, variables: Value) -> Value {
    let response = reqwest::Client::new()
        .post(format!("{base_url}/graphql"))
        .header("x-api-key", api_key)
        .json(&json!({ "query": query, "variables": variables }))
        .timeout(WAIT)
        .send()
        .await
        .expect("graphql request");
    response.json().await.expect("graphql json")
}

#[tokio::test]
async fn a_delivery_waiting_for_its_retry_survives_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let api_key = format!("kp_test_{}", uuid::Uuid::now_v7().simple());
    let receiver = Receiver::scripted(vec![Reply::status(500)]).await;
    let key = TestKey::ed25519(dir.path(), "alice");
    let flags = ["--webhook-allow-private-targets"];
    let first = KeyproofProcess::start(&data_dir, &api_key, &flags).await;
    let response = graphql_at(
        &first.base_url(),
        &api_key,
        "mutation($input: CreateVerifySessionInput!) { createVerifySession(input: $input) {
            session { id connectionIdentifier } } }",
        json!({ "input": {
            "keys": [{ "publicKey": key.public_line() }],
            "webhooks": [{ "url": receiver.url("/"), "events": ["STATUS_CHANGED"],
                           "retries": 1, "initialBackoff": 3 }],
        } }),
    )
    .await;
    let session = &response["data"]["createVerifySession"]["session"];
    let session_id = session["id"].as_str().expect("session id").to_owned();
    let identifier = session["connectionIdentifier"].as_str().unwrap().to_owned();

    // The session verifies (and its STATUS_CHANGED commits) whatever the client's exit status.
    ssh_with(first.ssh_addr.port(), &identifier, &[&key.private]).await;
    let failed = receiver.next().await;
    // Wait until the failure is recorded and the retry scheduled, then crash.
    eventually(|| async {
        let response = graphql_at(
            &first.base_url(),
            &api_key,
            WEBHOOKS_QUERY,
            json!({ "id": session_id }),
        )
        .await;
        let delivery = &response["data"]["verifySession"]["webhooks"][0]["deliveries"][0];
        (delivery["attemptCount"] == 1 && delivery["status"] == "PENDING").then_some(())
    })
    .await;
    first.kill().await;
    assert_eq!(receiver.count(), 1);

    let second = KeyproofProcess::start(&data_dir, &api_key, &flags).await;

    let retried = receiver.next().await;
    assert_eq!(retried.header("webhook-id"), failed.header("webhook-id"));
    assert_eq!(retried.json()["attempt"], 2);
    assert_eq!(retried.json()["payload"], failed.json()["payload"]);
    let gap = retried.at - failed.at;
    assert!(gap >= Duration::from_millis(2990), "retried after {gap:?}");
    eventually(|| async {
        let response = graphql_at(
            &second.base_url(),
            &api_key,
            WEBHOOKS_QUERY,
            json!({ "id": session_id }),
        )
        .await;
        let delivery = &response["data"]["verifySession"]["webhooks"][0]["deliveries"][0];
        (delivery["status"] == "SUCCEEDED" && delivery["attemptCount"] == 2).then_some(())
    })
    .await;
    assert_eq!(receiver.count(), 2);
    second.kill().await;
}

/// Not a timed test: a benchmark that reports deliveries per second to a local receiver and
/// the time from commit to request. Run it with
/// `cargo test --release --test webhooks -- --ignored --nocapture benchmark`.
///
/// Events are `STATUS_CHANGED` commits made by expiring sessions through the store (the path
/// the expiry sweep takes). In the burst every session has ten webhooks, so deliveries pile up
/// faster than events commit and the worker's own rate shows; in the paced run each session
/// has one webhook and events come one every 10 ms, which shows the latency of an idle worker.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark; run explicitly"]
async fn benchmark_delivery_rate_and_latency() {
    use futures_util::StreamExt;

    const BURST_SESSIONS: usize = 500;
    const HOOKS_PER_SESSION: usize = 10;
    const PACED: usize = 300;
    const PACE: Duration = Duration::from_millis(10);
    let app = spawn_app().await;
    let receiver = Receiver::start().await;
    let key = TestKey::ed25519(app.dir.path(), "bench");
    let store = app.app.as_ref().unwrap().store.clone();
    let base = Utc::now() + chrono::Duration::hours(1);
    let create = |expired_at: DateTime<Utc>, hooks: usize| {
        let webhooks: Vec<Value> = (0..hooks)
            .map(|i| json!({ "url": receiver.url(&format!("/bench/{i}")), "events": ["STATUS_CHANGED"] }))
            .collect();
        let input = json!({
            "keys": [{ "publicKey": key.public_line() }],
            "expiredAt": expired_at.to_rfc3339(),
            "webhooks": webhooks,
        });
        let app = &app;
        async move {
            let response = app
                .graphql(
                    "mutation($input: CreateVerifySessionInput!) { createVerifySession(input: $input) { clientToken } }",
                    json!({ "input": input }),
                )
                .await;
            assert!(response.get("errors").is_none(), "{response}");
        }
    };

    futures_util::stream::iter((0..BURST_SESSIONS).map(|_| create(base, HOOKS_PER_SESSION)))
        .buffer_unordered(8)
        .collect::<Vec<_>>()
        .await;
    let started = std::time::Instant::now();
    let mut expired = 0;
    while expired < BURST_SESSIONS {
        expired += store.expire_due(base).await.unwrap();
    }
    let committed = started.elapsed();
    let deliveries = BURST_SESSIONS * HOOKS_PER_SESSION;
    let burst = receiver.take(deliveries).await;
    let elapsed = burst.last().unwrap().at - started;
    let rate = deliveries as f64 / elapsed.as_secs_f64();
    let burst_latency = latencies(&burst);

    for i in 0..PACED {
        create(base + chrono::Duration::seconds(10 + i as i64), 1).await;
    }
    let mut pace = tokio::time::interval(PACE);
    for i in 0..PACED {
        pace.tick().await;
        store
            .expire_due(base + chrono::Duration::seconds(10 + i as i64))
            .await
            .unwrap();
    }
    let paced = receiver.take(PACED).await;
    let paced_latency = latencies(&paced);

    // Drain: every first attempt is answered 503 with the same `Retry-After` date, so all the
    // retries fall due at once and the worker works through a backlog.
    let due = Utc::now() + chrono::Duration::seconds(15);
    let retry_at = due.to_rfc2822();
    let backlog = Receiver::scripted(
        (0..deliveries)
            .map(|_| Reply::status(503).header("retry-after", &retry_at))
            .collect(),
    )
    .await;
    let drain_base = base + chrono::Duration::hours(1);
    let create_failing = || {
        let webhooks: Vec<Value> = (0..HOOKS_PER_SESSION)
            .map(|_| json!({ "url": backlog.url("/"), "events": ["STATUS_CHANGED"], "retries": 1, "initialBackoff": 1 }))
            .collect();
        let input = json!({
            "keys": [{ "publicKey": key.public_line() }],
            "expiredAt": drain_base.to_rfc3339(),
            "webhooks": webhooks,
        });
        let app = &app;
        async move {
            let response = app
                .graphql(
                    "mutation($input: CreateVerifySessionInput!) { createVerifySession(input: $input) { clientToken } }",
                    json!({ "input": input }),
                )
                .await;
            assert!(response.get("errors").is_none(), "{response}");
        }
    };
    futures_util::stream::iter((0..BURST_SESSIONS).map(|_| create_failing()))
        .buffer_unordered(8)
        .collect::<Vec<_>>()
        .await;
    let mut expired = 0;
    while expired < BURST_SESSIONS {
        expired += store.expire_due(drain_base).await.unwrap();
    }
    backlog.take(deliveries).await;
    assert!(
        Utc::now() < due,
        "first attempts took longer than the benchmark allows"
    );
    let retries = backlog.take(deliveries).await;
    let drained = retries.last().unwrap().at - retries[0].at;
    let drain_rate = deliveries as f64 / drained.as_secs_f64();

    println!(
        "webhook benchmark: burst of {BURST_SESSIONS} events x {HOOKS_PER_SESSION} webhooks: \
         events committed in {:.2} s, {deliveries} deliveries done in {:.2} s = {rate:.0} \
         deliveries/s; commit->request p50 {:.0} ms, p99 {:.0} ms",
        committed.as_secs_f64(),
        elapsed.as_secs_f64(),
        burst_latency.0,
        burst_latency.1,
    );
    println!(
        "webhook benchmark: {PACED} events, one per {} ms: commit->request p50 {:.1} ms, \
         p99 {:.1} ms, max {:.1} ms",
        PACE.as_millis(),
        paced_latency.0,
        paced_latency.1,
        paced_latency.2,
    );
    println!(
        "webhook benchmark: backlog of {deliveries} retries due at once drained in {:.2} s = \
         {drain_rate:.0} deliveries/s",
        drained.as_secs_f64(),
    );
    app.shutdown().await;
}

/// p50, p99 and max of the time from `trigger_time` (the commit) to arrival, in milliseconds.
fn latencies(requests: &[Received]) -> (f64, f64, f64) {
    let mut millis: Vec<f64> = requests
        .iter()
        .map(|request| {
            let committed = time_of(&request.json()["trigger_time"]);
            (request.received_at - committed)
                .num_microseconds()
                .unwrap() as f64
                / 1000.0
        })
        .collect();
    millis.sort_by(f64::total_cmp);
    let at =
        |q: f64| millis[((millis.len() as f64 * q).ceil() as usize).clamp(1, millis.len()) - 1];
    (at(0.50), at(0.99), at(1.0))
}
