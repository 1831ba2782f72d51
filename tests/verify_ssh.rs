//! End to end: the system OpenSSH client proves (or fails to prove) a key.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::keys::TestKey;
use common::ssh::{client_version_prefix, ssh_with};
use common::ws::{EVENTS_SUBSCRIPTION, WsClient, WsEvent};
use common::{TestApp, eventually};
use serde_json::json;

#[tokio::test]
async fn listed_key_verifies_and_subscriber_sees_every_event_in_order() {
    let app = TestApp::spawn().await;
    let key = TestKey::ed25519(app.dir.path(), "alice");
    let created = app.create_session(&[&key.public_line()]).await;
    let mut ws = WsClient::connect_acked(&app.ws_url(), json!({ "apiKey": app.api_key })).await;
    ws.subscribe("1", EVENTS_SUBSCRIPTION, json!({ "id": created.id }))
        .await;
    let WsEvent::Next(first) = ws.next_event("1").await else {
        panic!("no snapshot")
    };
    assert_eq!(first["data"]["verifySessionEvents"]["kind"], "SNAPSHOT");

    let run = ssh_with(
        app.ssh_port,
        &created.connection_identifier,
        &[&key.private],
    )
    .await;

    assert_eq!(run.status, 0, "ssh failed: {}{}", run.stdout, run.stderr);
    assert!(run.stdout.contains("Verified"), "stdout: {}", run.stdout);
    assert!(
        run.stdout.contains(&key.fingerprint("sha256")),
        "stdout: {}",
        run.stdout
    );
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

    let session = app.session(&created.id).await;
    assert_eq!(session["status"], "VERIFIED");
    assert_eq!(session["failureReason"], json!(null));
    assert_eq!(session["failedAttempts"], 0);
    let configured = &session["keys"][0];
    assert!(configured["verifiedAt"].is_string());
    assert_eq!(configured["publicKeySha256"], key.fingerprint("sha256"));
    assert_eq!(configured["publicKeyMd5"], key.fingerprint("md5"));
    assert_eq!(configured["publicKeySsh"], key.public_ssh());
    let connection = &session["connections"][0];
    assert_eq!(connection["ipAddress"], "127.0.0.1");
    let client_version = connection["clientVersion"].as_str().unwrap();
    assert!(
        client_version.starts_with(&client_version_prefix()),
        "{client_version}"
    );
    assert_eq!(connection["keys"][0]["matchedKeyId"], configured["id"]);
    assert!(connection["keys"][0]["verifiedAt"].is_string());
    app.shutdown().await;
}

#[tokio::test]
async fn every_supported_key_type_verifies() {
    let app = TestApp::spawn().await;
    for (kind, bits) in [
        ("ecdsa", Some(256)),
        ("ecdsa", Some(384)),
        ("ecdsa", Some(521)),
        ("rsa", Some(3072)),
    ] {
        let key = TestKey::generate(
            app.dir.path(),
            &format!("{kind}{}", bits.unwrap_or(0)),
            kind,
            bits,
        );
        let created = app.create_session(&[&key.public_line()]).await;

        let run = ssh_with(
            app.ssh_port,
            &created.connection_identifier,
            &[&key.private],
        )
        .await;

        assert_eq!(
            run.status, 0,
            "{kind} {bits:?}: {}{}",
            run.stdout, run.stderr
        );
        let session = app.session(&created.id).await;
        assert_eq!(session["status"], "VERIFIED", "{kind} {bits:?}");
        assert_eq!(
            session["keys"][0]["publicKeySha256"],
            key.fingerprint("sha256")
        );
        assert_eq!(session["keys"][0]["publicKeyMd5"], key.fingerprint("md5"));
    }
    app.shutdown().await;
}

#[tokio::test]
async fn wrong_key_counts_failed_attempts_until_the_session_fails() {
    let app = TestApp::spawn().await;
    let listed = TestKey::ed25519(app.dir.path(), "listed");
    let wrong = TestKey::ed25519(app.dir.path(), "wrong");
    let created = app
        .create_session_with(&[&listed.public_line()], json!({ "maxAttempts": 2 }))
        .await;

    let first = ssh_with(
        app.ssh_port,
        &created.connection_identifier,
        &[&wrong.private],
    )
    .await;

    assert_ne!(first.status, 0);
    assert!(
        first.stdout.contains(&wrong.fingerprint("sha256")),
        "stdout: {}",
        first.stdout
    );
    assert!(
        first.stdout.contains("IdentitiesOnly=yes"),
        "stdout: {}",
        first.stdout
    );
    let session = app.session(&created.id).await;
    assert_eq!(session["failedAttempts"], 1);
    assert_eq!(session["status"], "PENDING");
    assert_eq!(session["keys"][0]["verifiedAt"], json!(null));

    let second = ssh_with(
        app.ssh_port,
        &created.connection_identifier,
        &[&wrong.private],
    )
    .await;

    assert_ne!(second.status, 0);
    let session = app.session(&created.id).await;
    assert_eq!(session["failedAttempts"], 2);
    assert_eq!(session["status"], "FAILED");
    assert_eq!(session["failureReason"], "MAX_ATTEMPTS");

    let refused = ssh_with(
        app.ssh_port,
        &created.connection_identifier,
        &[&listed.private],
    )
    .await;

    assert_ne!(refused.status, 0);
    assert!(
        refused.stderr.contains("has failed"),
        "a refused client is told why: {}",
        refused.stderr
    );
    let session = app.session(&created.id).await;
    assert_eq!(session["status"], "FAILED");
    assert_eq!(session["failedAttempts"], 2);
    assert_eq!(session["keys"][0]["verifiedAt"], json!(null));
    app.shutdown().await;
}

#[tokio::test]
async fn key_only_offered_never_verifies() {
    let app = TestApp::spawn().await;
    let key = TestKey::ed25519(app.dir.path(), "holder");
    let created = app
        .create_session_with(&[&key.public_line()], json!({ "maxAttempts": 3 }))
        .await;
    let public_only_dir = app.path("public-only");
    std::fs::create_dir_all(&public_only_dir).unwrap();
    let public_only = key.public_only(&public_only_dir, "holder");

    let run = ssh_with(
        app.ssh_port,
        &created.connection_identifier,
        &[&public_only],
    )
    .await;

    assert_ne!(run.status, 0, "stdout: {}", run.stdout);
    let session = app.session(&created.id).await;
    assert_eq!(session["status"], "PENDING");
    assert_eq!(session["keys"][0]["verifiedAt"], json!(null));
    let offered = &session["connections"][0]["keys"][0];
    assert_eq!(offered["publicKeySha256"], key.fingerprint("sha256"));
    assert_eq!(offered["matchedKeyId"], session["keys"][0]["id"]);
    assert_eq!(offered["verifiedAt"], json!(null));
    assert_eq!(session["failedAttempts"], 1);
    app.shutdown().await;
}

#[tokio::test]
async fn unknown_identifier_is_refused_with_a_message() {
    let app = TestApp::spawn().await;
    let key = TestKey::ed25519(app.dir.path(), "nobody");

    let run = ssh_with(app.ssh_port, "abcdefghijklmnopqrstuvwx", &[&key.private]).await;

    assert_eq!(run.status, 255);
    assert!(
        run.stderr.contains("no verification session"),
        "stderr: {}",
        run.stderr
    );
    app.shutdown().await;
}

#[tokio::test]
async fn exec_requests_are_refused() {
    let app = TestApp::spawn().await;
    let key = TestKey::ed25519(app.dir.path(), "exec");
    let created = app.create_session(&[&key.public_line()]).await;
    let mut command = common::ssh::command(app.ssh_port);
    command.arg("-i").arg(&key.private);
    command
        .arg(format!("{}@127.0.0.1", created.connection_identifier))
        .arg("id");

    let run = common::ssh::run(command).await;

    assert_ne!(run.status, 0);
    assert!(!run.stdout.contains("uid="));
    app.shutdown().await;
}

#[tokio::test]
async fn a_failed_attempt_is_counted_once_the_client_reports_it() {
    let app = TestApp::spawn().await;
    let listed = TestKey::ed25519(app.dir.path(), "l");
    let created = app.create_session(&[&listed.public_line()]).await;
    let mut command = common::ssh::command(app.ssh_port);
    // No keyboard-interactive: the client just gives up after its keys are refused.
    command.args([
        "-o",
        "KbdInteractiveAuthentication=no",
        "-o",
        "PreferredAuthentications=publickey",
    ]);
    let wrong = TestKey::ed25519(app.dir.path(), "w");
    command.arg("-i").arg(&wrong.private);
    command.arg(format!("{}@127.0.0.1", created.connection_identifier));

    let run = common::ssh::run(command).await;

    assert_eq!(run.status, 255);
    let attempts = eventually(|| async {
        let session = app.session(&created.id).await;
        (session["failedAttempts"] == 1).then_some(session)
    })
    .await;
    assert_eq!(attempts["status"], "FAILED");
    app.shutdown().await;
}
