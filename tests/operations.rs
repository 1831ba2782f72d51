//! What an operator relies on: metrics, clear start-up errors, readiness.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::Stdio;

use common::TestApp;
use common::keys::TestKey;
use common::ssh::ssh_with;

#[tokio::test]
async fn metrics_count_connections_and_verifications() {
    let app = TestApp::spawn().await;
    let key = TestKey::ed25519(app.dir.path(), "k");
    let created = app.create_session(&[&key.public_line()]).await;

    let run = ssh_with(
        app.ssh_port,
        &created.connection_identifier,
        &[&key.private],
    )
    .await;
    let response = app
        .http
        .get(format!("{}/metrics", app.base_url))
        .send()
        .await
        .unwrap();

    assert_eq!(run.status, 0);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    let text = response.text().await.unwrap();
    for expected in [
        "# TYPE keyproof_ssh_connections_total counter",
        "keyproof_verifications_total{result=\"verified\"}",
        "keyproof_ssh_auth_outcomes_total{outcome=\"proven\"}",
        "keyproof_ssh_decision_seconds_count",
        "keyproof_subscriptions_open",
        "keyproof_http_request_seconds_bucket{le=\"+Inf\"}",
    ] {
        assert!(text.contains(expected), "missing {expected}:\n{text}");
    }
    app.shutdown().await;
}

/// Runs `keyproof serve` with `args` and expects it to exit at once with status 1.
async fn start_fails(args: &[&str], data_dir: &std::path::Path) -> String {
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_keyproof"))
        .arg("serve")
        .arg("--data-dir")
        .arg(data_dir)
        .args(args)
        .env_remove("KEYPROOF_DATABASE_URL")
        .stdin(Stdio::null())
        .output();
    let output = tokio::time::timeout(common::WAIT, output)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[tokio::test]
async fn start_up_errors_say_what_is_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let busy = busy.local_addr().unwrap().to_string();
    let free = ["--ssh-listen", "127.0.0.1:0"];

    let port = start_fails(
        &["--http-listen", &busy, free[0], free[1]],
        &dir.path().join("a"),
    )
    .await;
    let database = start_fails(
        &[
            "--database-url",
            "postgres://keyproof:hunter2@127.0.0.1:1/keyproof",
            "--http-listen",
            "127.0.0.1:0",
            free[0],
            free[1],
        ],
        &dir.path().join("b"),
    )
    .await;
    let key_dir = dir.path().join("c");
    std::fs::create_dir_all(&key_dir).unwrap();
    std::fs::write(key_dir.join("ssh_host_ed25519_key"), "not a key").unwrap();
    let host_key = start_fails(
        &["--http-listen", "127.0.0.1:0", free[0], free[1]],
        &key_dir,
    )
    .await;

    assert!(
        port.contains(&format!("cannot listen for HTTP on {busy}")),
        "{port}"
    );
    assert!(
        database.contains("cannot open the database postgres://***@127.0.0.1:1/keyproof"),
        "{database}"
    );
    assert!(
        !database.contains("hunter2"),
        "the password is never printed: {database}"
    );
    assert!(
        host_key.contains("cannot read the SSH host key"),
        "{host_key}"
    );
}

#[tokio::test]
async fn sigterm_lets_a_confirmation_in_flight_finish() {
    use common::process::KeyproofProcess;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let api_key = "kp_shutdown_test_key_0123456789";
    let process = KeyproofProcess::start(&data, api_key, &[]).await;
    let key = TestKey::ed25519(dir.path(), "k");
    let create = "mutation($key: String!) { createVerifySession(input: {
        keys: [{ publicKey: $key }], mustConfirm: true }) { session { id connectionIdentifier } } }";
    let created: serde_json::Value = reqwest::Client::new()
        .post(format!("{}/graphql", process.base_url()))
        .header("x-api-key", api_key)
        .json(&serde_json::json!({ "query": create, "variables": { "key": key.public_line() } }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let session = &created["data"]["createVerifySession"]["session"];
    let mut ssh = common::ssh::command(process.ssh_addr.port());
    ssh.arg("-i").arg(&key.private);
    ssh.arg(format!(
        "{}@127.0.0.1",
        session["connectionIdentifier"].as_str().unwrap()
    ));
    ssh.stdin(Stdio::piped());
    let mut child = ssh.spawn().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut shown = Vec::new();
    while !String::from_utf8_lossy(&shown).contains("[y/N]") {
        let mut chunk = [0u8; 256];
        let read = tokio::time::timeout(common::WAIT, stdout.read(&mut chunk))
            .await
            .unwrap()
            .unwrap();
        assert!(
            read > 0,
            "ssh ended before the prompt: {}",
            String::from_utf8_lossy(&shown)
        );
        shown.extend_from_slice(&chunk[..read]);
    }

    process.signal_terminate();
    stdin.write_all(b"y\n").await.unwrap();
    drop(stdin);
    let status = tokio::time::timeout(common::WAIT, child.wait())
        .await
        .unwrap()
        .unwrap();
    let exit = process.wait().await;

    assert_eq!(
        status.code(),
        Some(0),
        "the confirmation in flight finished"
    );
    assert_eq!(exit, Some(0));
    let restarted = KeyproofProcess::start(&data, api_key, &[]).await;
    let query = "query($id: ID!) { verifySession(id: $id) { status } }";
    let read: serde_json::Value = reqwest::Client::new()
        .post(format!("{}/graphql", restarted.base_url()))
        .header("x-api-key", api_key)
        .json(&serde_json::json!({ "query": query, "variables": { "id": session["id"] } }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(read["data"]["verifySession"]["status"], "VERIFIED");
    restarted.terminate().await;
}
