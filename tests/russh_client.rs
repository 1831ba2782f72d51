//! Cases the OpenSSH client cannot produce, driven by a russh client.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;

use common::TestApp;
use common::keys::TestKey;
use russh::client::{self, AuthResult};
use russh::keys::{HashAlg, PrivateKeyWithHashAlg, load_secret_key};
use serde_json::json;

struct AcceptAnyHostKey;

impl client::Handler for AcceptAnyHostKey {
    type Error = russh::Error;

    async fn check_server_key(
        &mut self,
        _key: &russh::keys::PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        Ok(true)
    }
}

async fn connect(app: &TestApp) -> client::Handle<AcceptAnyHostKey> {
    let config = Arc::new(client::Config::default());
    client::connect(config, ("127.0.0.1", app.ssh_port), AcceptAnyHostKey)
        .await
        .expect("connect")
}

fn signer(key: &TestKey, hash: Option<HashAlg>) -> PrivateKeyWithHashAlg {
    let private = load_secret_key(&key.private, None).expect("load key");
    PrivateKeyWithHashAlg::new(Arc::new(private), hash)
}

#[tokio::test]
async fn rsa_signature_with_sha1_never_verifies() {
    let app = TestApp::spawn().await;
    let key = TestKey::generate(app.dir.path(), "rsa", "rsa", Some(2048));
    let created = app
        .create_session_with(&[&key.public_line()], json!({ "maxAttempts": 3 }))
        .await;
    let user = created.connection_identifier.as_str();

    let mut sha1 = connect(&app).await;
    let legacy = sha1
        .authenticate_publickey(user, signer(&key, None))
        .await
        .unwrap();
    let mut sha2 = connect(&app).await;
    let modern = sha2
        .authenticate_publickey(user, signer(&key, Some(HashAlg::Sha256)))
        .await
        .unwrap();

    drop((sha1, sha2));

    assert!(matches!(legacy, AuthResult::Failure { .. }), "{legacy:?}");
    assert!(matches!(modern, AuthResult::Success), "{modern:?}");
    let session = app.session(&created.id).await;
    assert_eq!(session["status"], "VERIFIED");
    assert_eq!(
        session["connections"][0]["keys"],
        json!([]),
        "a SHA-1 offer is not even recorded"
    );
    assert!(session["connections"][1]["keys"][0]["verifiedAt"].is_string());
    app.shutdown().await;
}

#[tokio::test]
async fn a_connection_cannot_switch_to_another_session_mid_authentication() {
    let app = TestApp::spawn().await;
    let key = TestKey::ed25519(app.dir.path(), "k");
    let first = app
        .create_session_with(&[&key.public_line()], json!({ "maxAttempts": 3 }))
        .await;
    let second = app.create_session(&[&key.public_line()]).await;

    let mut client = connect(&app).await;
    let none = client
        .authenticate_none(first.connection_identifier.as_str())
        .await
        .unwrap();
    let switched = client
        .authenticate_publickey(second.connection_identifier.as_str(), signer(&key, None))
        .await
        .unwrap();
    drop(client);

    assert!(matches!(none, AuthResult::Failure { .. }));
    assert!(
        matches!(switched, AuthResult::Failure { .. }),
        "{switched:?}"
    );
    let second_view = app.session(&second.id).await;
    assert_eq!(second_view["status"], "PENDING");
    assert_eq!(second_view["connections"], json!([]));
    assert_eq!(app.session(&first.id).await["status"], "PENDING");
    app.shutdown().await;
}
