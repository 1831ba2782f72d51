//! What the running binary writes to its log: structured lines, and never a secret.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::keys::TestKey;
use common::process::KeyproofProcess;
use common::ssh::ssh_with;
use serde_json::{Value, json};

#[tokio::test]
async fn pasted_private_key_and_api_key_never_reach_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let api_key = "kp_log_test_key_0123456789abcdef";
    let process =
        KeyproofProcess::start(&dir.path().join("data"), api_key, &["--log-format", "json"]).await;
    let http = reqwest::Client::new();
    let key = TestKey::ed25519(dir.path(), "secret");
    let private = std::fs::read_to_string(&key.private).unwrap();
    let create = "mutation($input: CreateVerifySessionInput!) {
        createVerifySession(input: $input) { session { id connectionIdentifier } } }";
    let graphql = |input: Value| {
        http.post(format!("{}/graphql", process.base_url()))
            .header("x-api-key", api_key)
            .json(&json!({ "query": create, "variables": { "input": input } }))
            .send()
    };

    let refused: Value = graphql(json!({ "keys": [{ "publicKey": private }] }))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let created: Value = graphql(json!({ "keys": [{ "publicKey": key.public_line() }] }))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let user = created["data"]["createVerifySession"]["session"]["connectionIdentifier"]
        .as_str()
        .unwrap();
    let wrong = TestKey::ed25519(dir.path(), "wrong");
    let run = ssh_with(process.ssh_addr.port(), user, &[&wrong.private]).await;
    let lines = process.stderr();
    let exit = process.terminate().await;

    assert_eq!(refused["errors"][0]["extensions"]["code"], "BAD_USER_INPUT");
    assert_ne!(run.status, 0);
    assert_eq!(exit, Some(0), "SIGTERM shuts down cleanly");
    assert!(lines.len() > 3, "{lines:?}");
    let secret_lines: Vec<&str> = private
        .lines()
        .filter(|line| !line.starts_with("-----"))
        .collect();
    for line in &lines {
        let parsed: Result<Value, _> = serde_json::from_str(line);
        assert!(parsed.is_ok(), "not a JSON log line: {line}");
        assert!(!line.contains(api_key), "API key logged: {line}");
        for secret in &secret_lines {
            assert!(!line.contains(secret), "private key logged: {line}");
        }
    }
    assert!(
        lines
            .iter()
            .any(|line| line.contains(&wrong.fingerprint("sha256"))),
        "offers are logged by fingerprint"
    );
    assert!(
        !lines
            .iter()
            .any(|line| line.contains(&wrong.public_ssh()[12..])),
        "whole keys are never logged"
    );
}
