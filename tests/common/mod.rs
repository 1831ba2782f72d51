//! The harness every integration test shares: a real keyproof on port 0 against a fresh
//! database, and real clients (the system `ssh`, `ssh-keygen`, HTTP and websocket GraphQL).

// Test helpers fail the test loudly rather than handle errors.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

pub mod keys;
pub mod postgres;
pub mod process;
pub mod receiver;
pub mod ssh;
pub mod ws;

use std::path::PathBuf;
use std::time::Duration;

use keyproof::app::App;
use keyproof::config::{LogFormat, Settings};
use serde_json::{Value, json};
use tempfile::TempDir;
use tokio::net::TcpListener;

/// How long any single wait in a test may take before the test fails.
pub const WAIT: Duration = Duration::from_secs(20);

pub struct TestApp {
    pub app: Option<App>,
    pub api_key: String,
    pub dir: TempDir,
    pub http: reqwest::Client,
    pub base_url: String,
    pub ssh_port: u16,
}

impl TestApp {
    pub async fn spawn() -> Self {
        Self::spawn_with(|_| {}).await
    }

    /// Starts keyproof with settings adjusted by `adjust`.
    pub async fn spawn_with(adjust: impl FnOnce(&mut Settings)) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let api_key = format!("kp_test_{}", uuid::Uuid::now_v7().simple());
        let mut settings = test_settings(dir.path().join("data"), &api_key);
        settings.database_url = fresh_database().await;
        adjust(&mut settings);

        let http_listener = TcpListener::bind("127.0.0.1:0").await.expect("bind http");
        let ssh_listener = TcpListener::bind("127.0.0.1:0").await.expect("bind ssh");
        let app = App::start(&settings, http_listener, ssh_listener)
            .await
            .expect("start keyproof");
        let base_url = format!("http://{}", app.http_addr);
        let ssh_port = app.ssh_addr.port();

        Self {
            app: Some(app),
            api_key,
            dir,
            http: reqwest::Client::builder()
                .timeout(WAIT)
                .build()
                .expect("http client"),
            base_url,
            ssh_port,
        }
    }

    /// A GraphQL request with the given credential header (or none).
    pub async fn graphql_as(
        &self,
        credential: Option<&str>,
        query: &str,
        variables: Value,
    ) -> Value {
        let mut request = self
            .http
            .post(format!("{}/graphql", self.base_url))
            .json(&json!({ "query": query, "variables": variables }));
        if let Some(credential) = credential {
            request = request.header("x-api-key", credential);
        }
        let response = request.send().await.expect("graphql request");
        assert!(
            response.status().is_success(),
            "HTTP status {}",
            response.status()
        );
        response.json().await.expect("graphql json")
    }

    /// A GraphQL request with the project's API key.
    pub async fn graphql(&self, query: &str, variables: Value) -> Value {
        self.graphql_as(Some(&self.api_key), query, variables).await
    }

    /// Creates a session listing `keys` with extra input fields, and returns the payload.
    pub async fn create_session_with(&self, keys: &[&str], extra: Value) -> CreatedSession {
        let mut input = json!({
            "keys": keys.iter().map(|key| json!({ "publicKey": key })).collect::<Vec<_>>(),
        });
        if let (Some(input), Some(extra)) = (input.as_object_mut(), extra.as_object()) {
            input.extend(extra.clone());
        }
        let response = self
            .graphql(
                "mutation($input: CreateVerifySessionInput!) { createVerifySession(input: $input) {
                    clientToken session { id connectionIdentifier sshCommand status } } }",
                json!({ "input": input }),
            )
            .await;
        assert!(
            response.get("errors").is_none(),
            "create failed: {response}"
        );
        let payload = &response["data"]["createVerifySession"];
        CreatedSession {
            id: payload["session"]["id"].as_str().expect("id").to_owned(),
            connection_identifier: payload["session"]["connectionIdentifier"]
                .as_str()
                .expect("identifier")
                .to_owned(),
            ssh_command: payload["session"]["sshCommand"]
                .as_str()
                .expect("cmd")
                .to_owned(),
            client_token: payload["clientToken"].as_str().expect("token").to_owned(),
        }
    }

    pub async fn create_session(&self, keys: &[&str]) -> CreatedSession {
        self.create_session_with(keys, json!({})).await
    }

    /// The whole session as the API key sees it.
    pub async fn session(&self, id: &str) -> Value {
        let response = self.graphql(SESSION_QUERY, json!({ "id": id })).await;
        assert!(response.get("errors").is_none(), "query failed: {response}");
        response["data"]["verifySession"].clone()
    }

    pub fn ws_url(&self) -> String {
        format!("{}/graphql/ws", self.base_url.replacen("http", "ws", 1))
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub async fn shutdown(mut self) {
        if let Some(app) = self.app.take() {
            app.shutdown().await;
        }
    }
}

pub struct CreatedSession {
    pub id: String,
    pub connection_identifier: String,
    pub ssh_command: String,
    pub client_token: String,
}

pub const KEY_FIELDS: &str =
    "publicKeyAlgorithm publicKeySsh publicKeyPem publicKeyMd5 publicKeySha256 verifiedAt";

pub const SESSION_QUERY: &str = "query($id: ID!) { verifySession(id: $id) {
    id connectionIdentifier sshCommand status failureReason externalId
    matchAllKeys maxAttempts failedAttempts multiConnection multiKey mustConfirm
    sshBanner sshMessage createdAt updatedAt expiredAt completedAt
    keys { id name externalId publicKeyAlgorithm publicKeySsh publicKeyPem publicKeyMd5 publicKeySha256 verifiedAt }
    connections { id ipAddress clientVersion createdAt
      keys { id matchedKeyId publicKeyAlgorithm publicKeySsh publicKeyPem publicKeyMd5 publicKeySha256 verifiedAt } }
} }";

pub fn test_settings(data_dir: PathBuf, api_key: &str) -> Settings {
    Settings {
        data_dir,
        database_url: None,
        ssh_listen: "127.0.0.1:0".parse().expect("addr"),
        http_listen: "127.0.0.1:0".parse().expect("addr"),
        public_ssh_host: None,
        public_ssh_port: None,
        bootstrap_api_key: Some(api_key.to_owned()),
        default_session_timeout: 3600,
        ssh_max_connections: 1024,
        ssh_max_connections_per_ip: 256,
        ssh_auth_timeout: 60,
        ssh_confirm_timeout: 60,
        ssh_proxy_protocol: false,
        webhook_allow_private_targets: false,
        webhook_timeout: 10,
        webhook_concurrency: 32,
        log_format: LogFormat::Text,
    }
}

/// With `KEYPROOF_TEST_DATABASE_URL` set (a PostgreSQL server URL), a new empty database on
/// that server for one test; otherwise `None`, which means SQLite in the test's data directory.
pub async fn fresh_database() -> Option<String> {
    use sea_orm::ConnectionTrait;

    let server = std::env::var("KEYPROOF_TEST_DATABASE_URL").ok()?;
    let name = format!("keyproof_test_{}", uuid::Uuid::now_v7().simple());
    let admin = sea_orm::Database::connect(server.as_str())
        .await
        .expect("connect to test server");
    admin
        .execute_unprepared(&format!("CREATE DATABASE \"{name}\""))
        .await
        .expect("create db");
    admin.close().await.ok();

    let (base, _) = server.rsplit_once('/').expect("database URL with a path");
    Some(format!("{base}/{name}"))
}

/// Waits for `check` to return `Some`, polling the API; fails the test after [`WAIT`].
pub async fn eventually<T, F, Fut>(mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "condition not met within {WAIT:?}"
        );
        tokio::task::yield_now().await;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
