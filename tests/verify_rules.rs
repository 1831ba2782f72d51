//! Every verify-session option and refusal, driven by the system `ssh`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::Stdio;

use common::keys::TestKey;
use common::ssh::{command, run, ssh_with};
use common::ws::{EVENTS_SUBSCRIPTION, WsClient, WsEvent};
use common::{TestApp, WAIT, eventually};
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;

/// Collects the kinds of every event of a subscription until it completes.
async fn kinds_until_complete(ws: &mut WsClient, id: &str) -> Vec<(String, Value)> {
    let mut events = Vec::new();
    loop {
        match ws.next_event(id).await {
            WsEvent::Next(payload) => {
                let event = payload["data"]["verifySessionEvents"].clone();
                events.push((event["kind"].as_str().unwrap_or_default().to_owned(), event));
            }
            WsEvent::Complete => return events,
            other => panic!("unexpected {other:?}"),
        }
    }
}

/// `ssh` to the session with `input` written to its standard input (then closed).
async fn ssh_answering(
    app: &TestApp,
    user: &str,
    key: &TestKey,
    input: &[u8],
) -> common::ssh::SshRun {
    let mut command = command(app.ssh_port);
    command
        .arg("-i")
        .arg(&key.private)
        .arg(format!("{user}@127.0.0.1"));
    command.stdin(Stdio::piped());
    let mut child = command.spawn().expect("spawn ssh");
    let mut stdin = child.stdin.take().expect("stdin");
    stdin.write_all(input).await.expect("write answer");
    drop(stdin);
    let output = tokio::time::timeout(WAIT, child.wait_with_output())
        .await
        .expect("ssh in time")
        .expect("ssh");
    common::ssh::SshRun {
        status: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

#[tokio::test]
async fn match_all_keys_needs_every_key_in_one_connection() {
    let app = TestApp::spawn().await;
    let first = TestKey::ed25519(app.dir.path(), "first");
    let second = TestKey::generate(app.dir.path(), "second", "ecdsa", Some(256));
    let keys = [first.public_line(), second.public_line()];
    let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
    let one = app
        .create_session_with(&keys, json!({ "matchAllKeys": true }))
        .await;
    let both = app
        .create_session_with(&keys, json!({ "matchAllKeys": true }))
        .await;

    let alone = ssh_with(app.ssh_port, &one.connection_identifier, &[&first.private]).await;
    let together = ssh_with(
        app.ssh_port,
        &both.connection_identifier,
        &[&first.private, &second.private],
    )
    .await;

    assert_ne!(alone.status, 0);
    assert!(
        alone.stdout.contains("all 2 listed keys"),
        "{}",
        alone.stdout
    );
    let session = app.session(&one.id).await;
    assert_eq!(session["status"], "FAILED");
    assert!(
        session["keys"][0]["verifiedAt"].is_string(),
        "the proven key is still recorded"
    );
    assert_eq!(session["keys"][1]["verifiedAt"], json!(null));
    assert_eq!(together.status, 0, "{}{}", together.stdout, together.stderr);
    let session = app.session(&both.id).await;
    assert_eq!(session["status"], "VERIFIED");
    assert!(
        session["keys"]
            .as_array()
            .unwrap()
            .iter()
            .all(|k| k["verifiedAt"].is_string())
    );
    app.shutdown().await;
}

#[tokio::test]
async fn multi_key_proves_every_offered_listed_key() {
    let app = TestApp::spawn().await;
    let first = TestKey::ed25519(app.dir.path(), "first");
    let second = TestKey::ed25519(app.dir.path(), "second");
    let unused = TestKey::ed25519(app.dir.path(), "unused");
    let keys = [
        first.public_line(),
        second.public_line(),
        unused.public_line(),
    ];
    let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
    let created = app
        .create_session_with(&keys, json!({ "multiKey": true }))
        .await;

    let run = ssh_with(
        app.ssh_port,
        &created.connection_identifier,
        &[&first.private, &second.private],
    )
    .await;

    assert_eq!(run.status, 0, "{}{}", run.stdout, run.stderr);
    let session = app.session(&created.id).await;
    assert_eq!(session["status"], "VERIFIED");
    assert!(session["keys"][0]["verifiedAt"].is_string());
    assert!(session["keys"][1]["verifiedAt"].is_string());
    assert_eq!(session["keys"][2]["verifiedAt"], json!(null));
    app.shutdown().await;
}

#[tokio::test]
async fn multi_connection_accepts_until_completed() {
    let app = TestApp::spawn().await;
    let key = TestKey::ed25519(app.dir.path(), "k");
    let created = app
        .create_session_with(&[&key.public_line()], json!({ "multiConnection": true }))
        .await;
    let single = app.create_session(&[&key.public_line()]).await;
    let complete = "mutation($id: ID!) { completeVerifySession(id: $id) { status completedAt } }";

    let first = ssh_with(
        app.ssh_port,
        &created.connection_identifier,
        &[&key.private],
    )
    .await;
    let second = ssh_with(
        app.ssh_port,
        &created.connection_identifier,
        &[&key.private],
    )
    .await;
    let completed = app.graphql(complete, json!({ "id": created.id })).await;
    let after = ssh_with(
        app.ssh_port,
        &created.connection_identifier,
        &[&key.private],
    )
    .await;
    let conflict = app.graphql(complete, json!({ "id": single.id })).await;

    assert_eq!(first.status, 0);
    assert_eq!(second.status, 0);
    assert_eq!(
        completed["data"]["completeVerifySession"]["status"],
        "VERIFIED"
    );
    assert!(completed["data"]["completeVerifySession"]["completedAt"].is_string());
    assert_ne!(after.status, 0);
    assert!(after.stderr.contains("completed"), "{}", after.stderr);
    assert_eq!(
        app.session(&created.id).await["connections"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    assert_eq!(conflict["errors"][0]["extensions"]["code"], "CONFLICT");
    app.shutdown().await;
}

#[tokio::test]
async fn must_confirm_verifies_on_y_and_fails_on_anything_else() {
    let app = TestApp::spawn().await;
    let key = TestKey::ed25519(app.dir.path(), "k");
    let extra = json!({ "mustConfirm": true, "sshMessage": "Acme wants to link this key", "maxAttempts": 5 });
    let yes = app
        .create_session_with(&[&key.public_line()], extra.clone())
        .await;
    let no = app
        .create_session_with(&[&key.public_line()], extra.clone())
        .await;
    let silent = app.create_session_with(&[&key.public_line()], extra).await;

    let confirmed = ssh_answering(&app, &yes.connection_identifier, &key, b"y\n").await;
    let refused = ssh_answering(&app, &no.connection_identifier, &key, b"n\n").await;
    let ended = ssh_answering(&app, &silent.connection_identifier, &key, b"").await;

    assert_eq!(
        confirmed.status, 0,
        "{}{}",
        confirmed.stdout, confirmed.stderr
    );
    assert!(confirmed.stdout.contains("Acme wants to link this key"));
    assert!(confirmed.stdout.contains(&key.fingerprint("sha256")));
    assert!(confirmed.stdout.contains("[y/N]"));
    assert_eq!(app.session(&yes.id).await["status"], "VERIFIED");
    assert_eq!(refused.status, 1);
    assert!(
        refused.stdout.contains("Not confirmed"),
        "{}",
        refused.stdout
    );
    let session = app.session(&no.id).await;
    assert_eq!(
        (session["status"].clone(), session["failedAttempts"].clone()),
        (json!("PENDING"), json!(1))
    );
    assert!(
        session["keys"][0]["verifiedAt"].is_string(),
        "the signature itself was checked"
    );
    assert_eq!(ended.status, 1);
    assert_eq!(app.session(&silent.id).await["failedAttempts"], 1);
    app.shutdown().await;
}

#[tokio::test]
async fn must_confirm_without_an_answer_times_out() {
    let app = TestApp::spawn_with(|settings| settings.ssh_confirm_timeout = 1).await;
    let key = TestKey::ed25519(app.dir.path(), "k");
    let created = app
        .create_session_with(&[&key.public_line()], json!({ "mustConfirm": true }))
        .await;
    let mut command = command(app.ssh_port);
    command
        .arg("-i")
        .arg(&key.private)
        .arg(format!("{}@127.0.0.1", created.connection_identifier));
    command.stdin(Stdio::piped());
    let mut child = command.spawn().unwrap();
    let _stdin = child.stdin.take();

    let output = tokio::time::timeout(WAIT, child.wait_with_output())
        .await
        .unwrap()
        .unwrap();

    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stdout).contains("No answer in time"));
    let session = app.session(&created.id).await;
    assert_eq!(
        (session["status"].clone(), session["failureReason"].clone()),
        (json!("FAILED"), json!("MAX_ATTEMPTS"))
    );
    app.shutdown().await;
}

#[tokio::test]
async fn banner_and_message_reach_the_terminal_without_control_characters() {
    let app = TestApp::spawn().await;
    let key = TestKey::ed25519(app.dir.path(), "k");
    let extra = json!({ "sshBanner": "Welcome to \u{1b}[31mAcme\u{7}", "sshMessage": "Line one\n\tLine two\r\u{9b}" });
    let created = app.create_session_with(&[&key.public_line()], extra).await;

    let run = ssh_with(
        app.ssh_port,
        &created.connection_identifier,
        &[&key.private],
    )
    .await;

    assert_eq!(run.status, 0);
    assert!(
        run.stdout.contains("Welcome to [31mAcme"),
        "{:?}",
        run.stdout
    );
    assert!(
        run.stdout.contains("Line one\r\n\tLine two"),
        "{:?}",
        run.stdout
    );
    assert!(!run.stdout.contains('\u{1b}') && !run.stdout.contains('\u{7}'));
    let session = app.session(&created.id).await;
    assert_eq!(session["sshBanner"], "Welcome to [31mAcme");
    app.shutdown().await;
}

#[tokio::test]
async fn expiry_fails_the_session_closes_its_connection_and_tells_the_subscriber() {
    let app = TestApp::spawn().await;
    let key = TestKey::ed25519(app.dir.path(), "k");
    let created = app
        .create_session_with(
            &[&key.public_line()],
            json!({ "timeout": 2, "mustConfirm": true }),
        )
        .await;
    let mut ws = WsClient::connect_acked(&app.ws_url(), json!({ "apiKey": app.api_key })).await;
    ws.subscribe("1", EVENTS_SUBSCRIPTION, json!({ "id": created.id }))
        .await;
    let mut command = command(app.ssh_port);
    command
        .arg("-i")
        .arg(&key.private)
        .arg(format!("{}@127.0.0.1", created.connection_identifier));
    command.stdin(Stdio::piped());
    let mut child = command.spawn().unwrap();
    let _stdin = child.stdin.take();

    let events = kinds_until_complete(&mut ws, "1").await;
    let output = tokio::time::timeout(WAIT, child.wait_with_output())
        .await
        .unwrap()
        .unwrap();

    let kinds: Vec<&str> = events.iter().map(|(kind, _)| kind.as_str()).collect();
    assert_eq!(
        kinds,
        ["SNAPSHOT", "NEW_CONNECTION", "VERIFIED", "STATUS_CHANGED"]
    );
    let last = &events.last().unwrap().1["session"];
    assert_eq!(
        (last["status"].clone(), last["failureReason"].clone()),
        (json!("FAILED"), json!("EXPIRED"))
    );
    assert_ne!(output.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&output.stderr).contains("expired"));
    let session = app.session(&created.id).await;
    assert_eq!(
        session["failedAttempts"], 0,
        "an expired session counts no attempt"
    );
    app.shutdown().await;
}

#[tokio::test]
async fn deleted_session_is_gone_and_refuses_connections() {
    let app = TestApp::spawn().await;
    let key = TestKey::ed25519(app.dir.path(), "k");
    let created = app.create_session(&[&key.public_line()]).await;

    let deleted = app
        .graphql(
            "mutation($id: ID!) { deleteVerifySession(id: $id) }",
            json!({ "id": created.id }),
        )
        .await;
    let again = app
        .graphql(
            "mutation($id: ID!) { deleteVerifySession(id: $id) }",
            json!({ "id": created.id }),
        )
        .await;
    let run = ssh_with(
        app.ssh_port,
        &created.connection_identifier,
        &[&key.private],
    )
    .await;

    assert_eq!(deleted["data"]["deleteVerifySession"], created.id.as_str());
    assert_eq!(again["errors"][0]["extensions"]["code"], "NOT_FOUND");
    assert_eq!(app.session(&created.id).await, json!(null));
    assert_eq!(run.status, 255);
    app.shutdown().await;
}

#[tokio::test]
async fn parallel_wrong_keys_never_pass_max_attempts() {
    let app = TestApp::spawn().await;
    let listed = TestKey::ed25519(app.dir.path(), "listed");
    let wrong = TestKey::ed25519(app.dir.path(), "wrong");
    let created = app
        .create_session_with(&[&listed.public_line()], json!({ "maxAttempts": 5 }))
        .await;
    let mut ws = WsClient::connect_acked(&app.ws_url(), json!({ "apiKey": app.api_key })).await;
    ws.subscribe("1", EVENTS_SUBSCRIPTION, json!({ "id": created.id }))
        .await;

    let identities = [wrong.private.as_path()];
    let runs = (0..20).map(|_| ssh_with(app.ssh_port, &created.connection_identifier, &identities));
    let runs = futures_util::future::join_all(runs).await;
    let events = kinds_until_complete(&mut ws, "1").await;

    assert!(runs.iter().all(|run| run.status != 0));
    let count = |kind: &str| events.iter().filter(|(k, _)| k == kind).count();
    assert_eq!(count("FAILED_ATTEMPT"), 5);
    assert_eq!(count("STATUS_CHANGED"), 1);
    assert_eq!(count("VERIFIED"), 0);
    let session = app.session(&created.id).await;
    assert_eq!(session["failedAttempts"], 5);
    assert_eq!(session["failureReason"], "MAX_ATTEMPTS");
    app.shutdown().await;
}

#[tokio::test]
async fn an_agent_with_ten_other_keys_still_verifies() {
    let app = TestApp::spawn().await;
    let socket = app.path("agent.sock");
    let mut agent = tokio::process::Command::new("ssh-agent")
        .arg("-D")
        .arg("-a")
        .arg(&socket)
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("ssh-agent");
    eventually(|| async { socket.exists().then_some(()) }).await;
    let mut keys: Vec<TestKey> = (0..10)
        .map(|n| TestKey::ed25519(app.dir.path(), &format!("other{n}")))
        .collect();
    keys.push(TestKey::ed25519(app.dir.path(), "listed"));
    for key in &keys {
        let added = std::process::Command::new("ssh-add")
            .arg(&key.private)
            .env("SSH_AUTH_SOCK", &socket)
            .stderr(Stdio::null())
            .status()
            .unwrap();
        assert!(added.success());
    }
    let created = app.create_session(&[&keys[10].public_line()]).await;
    let mut command = common::ssh::command_without_identities(app.ssh_port);
    command
        .arg("-o")
        .arg(format!("IdentityAgent={}", socket.display()));
    command.args(["-o", "IdentitiesOnly=no"]);
    command.arg(format!("{}@127.0.0.1", created.connection_identifier));

    let run = run(command).await;

    assert_eq!(run.status, 0, "{}{}", run.stdout, run.stderr);
    let session = app.session(&created.id).await;
    assert_eq!(session["status"], "VERIFIED");
    assert!(session["connections"][0]["keys"].as_array().unwrap().len() >= 11);
    agent.kill().await.ok();
    app.shutdown().await;
}

#[tokio::test]
async fn forwarding_requests_are_refused() {
    let app = TestApp::spawn().await;
    let key = TestKey::ed25519(app.dir.path(), "k");
    let created = app
        .create_session_with(&[&key.public_line()], json!({ "multiConnection": true }))
        .await;
    let target = format!("{}@127.0.0.1", created.connection_identifier);

    let mut stdio = command(app.ssh_port);
    stdio
        .arg("-i")
        .arg(&key.private)
        .args(["-W", "127.0.0.1:9"])
        .arg(&target);
    let stdio = run(stdio).await;
    let mut remote = command(app.ssh_port);
    remote
        .arg("-i")
        .arg(&key.private)
        .args([
            "-o",
            "ExitOnForwardFailure=yes",
            "-R",
            "0:127.0.0.1:9",
            "-N",
        ])
        .arg(&target);
    let remote = run(remote).await;

    assert_eq!(stdio.status, 255, "{}", stdio.stderr);
    assert!(
        stdio.stderr.contains("prohibited") || stdio.stderr.contains("open failed"),
        "{}",
        stdio.stderr
    );
    assert_eq!(remote.status, 255, "{}", remote.stderr);
    assert!(
        remote.stderr.to_lowercase().contains("forwarding failed"),
        "{}",
        remote.stderr
    );
    app.shutdown().await;
}

#[tokio::test]
async fn keys_in_every_input_form_normalise_to_ssh_keygen_fingerprints() {
    let app = TestApp::spawn().await;
    let rsa = TestKey::generate(app.dir.path(), "rsa", "rsa", Some(2048));
    let convert = |format: &str| -> String {
        let output = std::process::Command::new("ssh-keygen")
            .args(["-e", "-m", format, "-f"])
            .arg(&rsa.public)
            .output()
            .unwrap();
        String::from_utf8(output.stdout).unwrap()
    };
    let forms = [
        rsa.public_line(),
        format!(
            "\u{feff}  no-pty,command=\"echo hi\" {}\r\n",
            rsa.public_line()
        ),
        convert("RFC4716"),
        convert("PKCS8"),
        convert("PEM"),
    ];

    for (index, form) in forms.iter().enumerate() {
        let created = app.create_session(&[form]).await;
        let session = app.session(&created.id).await;
        let configured = &session["keys"][0];
        assert_eq!(
            configured["publicKeySha256"],
            rsa.fingerprint("sha256"),
            "form {index}"
        );
        assert_eq!(
            configured["publicKeyMd5"],
            rsa.fingerprint("md5"),
            "form {index}"
        );
        assert_eq!(configured["publicKeySsh"], rsa.public_ssh(), "form {index}");
        assert_eq!(
            configured["publicKeyPem"],
            convert("PKCS8").as_str(),
            "form {index}"
        );
    }
    app.shutdown().await;
}

#[tokio::test]
async fn multi_key_verifies_when_a_publickey_only_client_leaves() {
    let app = TestApp::spawn().await;
    let first = TestKey::ed25519(app.dir.path(), "first");
    let second = TestKey::ed25519(app.dir.path(), "second");
    let keys = [first.public_line(), second.public_line()];
    let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
    let created = app
        .create_session_with(&keys, json!({ "multiKey": true }))
        .await;
    let mut command = command(app.ssh_port);
    // A client that never tries keyboard-interactive, as BatchMode clients may not.
    command.args([
        "-o",
        "PreferredAuthentications=publickey",
        "-o",
        "BatchMode=yes",
    ]);
    command.arg("-i").arg(&first.private);
    command.arg(format!("{}@127.0.0.1", created.connection_identifier));

    run(command).await;

    let session = eventually(|| async {
        let session = app.session(&created.id).await;
        (session["status"] != "PENDING").then_some(session)
    })
    .await;
    assert_eq!(session["status"], "VERIFIED", "{session}");
    assert_eq!(session["failedAttempts"], 0);
    app.shutdown().await;
}

#[tokio::test]
async fn a_confirmation_without_a_shell_still_times_out() {
    let app = TestApp::spawn_with(|settings| {
        settings.ssh_confirm_timeout = 1;
        settings.ssh_auth_timeout = 1;
    })
    .await;
    let key = TestKey::ed25519(app.dir.path(), "k");
    let created = app
        .create_session_with(&[&key.public_line()], json!({ "mustConfirm": true }))
        .await;
    let mut command = command(app.ssh_port);
    command
        .args(["-N", "-o", "ServerAliveInterval=1"])
        .arg("-i")
        .arg(&key.private);
    command.arg(format!("{}@127.0.0.1", created.connection_identifier));

    let run = run(command).await;

    assert_ne!(run.status, 0);
    assert!(run.stderr.contains("time is up"), "{}", run.stderr);
    let session = eventually(|| async {
        let session = app.session(&created.id).await;
        (session["failedAttempts"] == 1).then_some(session)
    })
    .await;
    assert_eq!(session["status"], "FAILED");
    app.shutdown().await;
}

#[tokio::test]
async fn a_verified_multi_connection_session_closes_at_expiry() {
    let app = TestApp::spawn().await;
    let key = TestKey::ed25519(app.dir.path(), "k");
    let created = app
        .create_session_with(
            &[&key.public_line()],
            json!({ "multiConnection": true, "timeout": 5 }),
        )
        .await;
    let mut ws = WsClient::connect_acked(&app.ws_url(), json!({ "apiKey": app.api_key })).await;
    ws.subscribe("1", EVENTS_SUBSCRIPTION, json!({ "id": created.id }))
        .await;
    let run = ssh_with(
        app.ssh_port,
        &created.connection_identifier,
        &[&key.private],
    )
    .await;

    let events = kinds_until_complete(&mut ws, "1").await;
    let after = ssh_with(
        app.ssh_port,
        &created.connection_identifier,
        &[&key.private],
    )
    .await;

    assert_eq!(run.status, 0);
    let kinds: Vec<&str> = events.iter().map(|(kind, _)| kind.as_str()).collect();
    let expected = [
        "SNAPSHOT",
        "NEW_CONNECTION",
        "VERIFIED",
        "STATUS_CHANGED",
        "STATUS_CHANGED",
    ];
    assert_eq!(kinds, expected, "verified, then closed at expiry");
    let session = app.session(&created.id).await;
    assert_eq!(session["status"], "VERIFIED");
    assert!(session["completedAt"].is_string());
    assert_ne!(after.status, 0);
    app.shutdown().await;
}

#[tokio::test]
async fn a_verified_connection_left_open_is_closed_without_a_failed_attempt() {
    let app = TestApp::spawn_with(|settings| {
        settings.ssh_confirm_timeout = 1;
        settings.ssh_auth_timeout = 1;
    })
    .await;
    let key = TestKey::ed25519(app.dir.path(), "k");
    let created = app.create_session(&[&key.public_line()]).await;
    let mut command = command(app.ssh_port);
    command
        .args(["-N", "-o", "ServerAliveInterval=1"])
        .arg("-i")
        .arg(&key.private);
    command.arg(format!("{}@127.0.0.1", created.connection_identifier));

    let run = run(command).await;

    assert!(run.stderr.contains("done its work"), "{}", run.stderr);
    let session = app.session(&created.id).await;
    assert_eq!(session["status"], "VERIFIED");
    assert_eq!(session["failedAttempts"], 0);
    app.shutdown().await;
}
