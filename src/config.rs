//! Command line and environment settings. Every flag has an environment variable twin.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};

/// keyproof proves that a person holds the private half of an SSH key.
#[derive(Debug, Parser)]
#[command(name = "keyproof", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,

    #[command(flatten)]
    pub settings: Settings,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the SSH and HTTP servers (the default).
    Serve,
    /// Apply database migrations and exit.
    Migrate,
    /// Print the GraphQL schema (SDL) and exit.
    PrintSchema,
    /// Manage the API keys of a project.
    #[command(subcommand)]
    ApiKey(ApiKeyCommand),
}

#[derive(Debug, Subcommand)]
pub enum ApiKeyCommand {
    /// Create an API key and print it once.
    Create {
        /// Project the key belongs to; created when missing.
        #[arg(long, default_value = "default")]
        project: String,
        /// A name to recognise the key by.
        #[arg(long, default_value = "cli")]
        name: String,
    },
    /// List a project's API keys (prefixes only; secrets are never stored).
    List {
        #[arg(long, default_value = "default")]
        project: String,
    },
    /// Revoke an API key by its id.
    Revoke {
        #[arg(long, default_value = "default")]
        project: String,
        /// The key's id, as `api-key list` prints it.
        id: uuid::Uuid,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// Settings shared by every subcommand.
#[derive(Debug, Clone, clap::Args)]
pub struct Settings {
    /// Directory for the SQLite database, the SSH host key and the admin API key.
    #[arg(
        long,
        env = "KEYPROOF_DATA_DIR",
        default_value = "keyproof-data",
        global = true
    )]
    pub data_dir: PathBuf,

    /// Database URL: `sqlite://path?mode=rwc` or `postgres://user:pass@host/db`.
    /// Defaults to `keyproof.db` in the data directory.
    #[arg(
        long,
        env = "KEYPROOF_DATABASE_URL",
        hide_env_values = true,
        global = true
    )]
    pub database_url: Option<String>,

    /// Address the SSH server listens on.
    #[arg(
        long,
        env = "KEYPROOF_SSH_LISTEN",
        default_value = "127.0.0.1:2222",
        global = true
    )]
    pub ssh_listen: SocketAddr,

    /// Address the HTTP server (GraphQL, health) listens on.
    #[arg(
        long,
        env = "KEYPROOF_HTTP_LISTEN",
        default_value = "127.0.0.1:8080",
        global = true
    )]
    pub http_listen: SocketAddr,

    /// Host name people use to reach the SSH server, shown in `sshCommand`.
    /// Defaults to the SSH listen address (or `localhost` when it listens on all addresses).
    #[arg(long, env = "KEYPROOF_PUBLIC_SSH_HOST", global = true)]
    pub public_ssh_host: Option<String>,

    /// Port people use to reach the SSH server, shown in `sshCommand`.
    /// Defaults to the port the SSH server is bound to.
    #[arg(long, env = "KEYPROOF_PUBLIC_SSH_PORT", global = true)]
    pub public_ssh_port: Option<u16>,

    /// Make sure this exact API key exists for project `default` (for automated setups).
    #[arg(
        long,
        env = "KEYPROOF_BOOTSTRAP_API_KEY",
        hide_env_values = true,
        global = true
    )]
    pub bootstrap_api_key: Option<String>,

    /// Lifetime of a session created without `timeout` or `expiredAt`, in seconds.
    #[arg(
        long,
        env = "KEYPROOF_DEFAULT_SESSION_TIMEOUT",
        default_value_t = 3600,
        global = true
    )]
    pub default_session_timeout: u64,

    /// Most SSH connections open at once.
    #[arg(
        long,
        env = "KEYPROOF_SSH_MAX_CONNECTIONS",
        default_value_t = 1024,
        global = true
    )]
    pub ssh_max_connections: usize,

    /// Most SSH connections open at once from one IP address.
    #[arg(
        long,
        env = "KEYPROOF_SSH_MAX_CONNECTIONS_PER_IP",
        default_value_t = 32,
        global = true
    )]
    pub ssh_max_connections_per_ip: usize,

    /// Seconds a client has to finish authenticating before it is disconnected.
    #[arg(
        long,
        env = "KEYPROOF_SSH_AUTH_TIMEOUT",
        default_value_t = 60,
        global = true
    )]
    pub ssh_auth_timeout: u64,

    /// Expect a PROXY protocol (v1 or v2) header on every SSH connection, as sent by a TCP load
    /// balancer, and record the client address it names. Connections without one are refused.
    #[arg(long, env = "KEYPROOF_SSH_PROXY_PROTOCOL", global = true)]
    pub ssh_proxy_protocol: bool,

    /// Seconds a person has to answer the `[y/N]` prompt of a `mustConfirm` session.
    #[arg(
        long,
        env = "KEYPROOF_SSH_CONFIRM_TIMEOUT",
        default_value_t = 60,
        global = true
    )]
    pub ssh_confirm_timeout: u64,

    /// Let webhooks reach loopback, private, link-local and other non-public addresses (for
    /// tests and on-premise receivers). Without it such targets are refused when configured
    /// and again when delivering.
    #[arg(long, env = "KEYPROOF_WEBHOOK_ALLOW_PRIVATE_TARGETS", global = true)]
    pub webhook_allow_private_targets: bool,

    /// Seconds a webhook request may take, connecting included, before it counts as failed.
    #[arg(
        long,
        env = "KEYPROOF_WEBHOOK_TIMEOUT",
        default_value_t = 10,
        global = true
    )]
    pub webhook_timeout: u64,

    /// Most webhook requests in flight at once.
    #[arg(
        long,
        env = "KEYPROOF_WEBHOOK_CONCURRENCY",
        default_value_t = 32,
        global = true
    )]
    pub webhook_concurrency: usize,

    /// Log output: human-readable text or one JSON object per line.
    #[arg(
        long,
        env = "KEYPROOF_LOG_FORMAT",
        value_enum,
        default_value = "text",
        global = true
    )]
    pub log_format: LogFormat,
}

impl Settings {
    /// The database URL in force: the flag, or SQLite in the data directory.
    pub fn database_url(&self) -> String {
        match &self.database_url {
            Some(url) => url.clone(),
            None => {
                format!(
                    "sqlite://{}?mode=rwc",
                    self.data_dir.join("keyproof.db").display()
                )
            }
        }
    }

    pub fn default_session_timeout(&self) -> Duration {
        Duration::from_secs(self.default_session_timeout)
    }

    pub fn webhook_timeout(&self) -> Duration {
        Duration::from_secs(self.webhook_timeout.max(1))
    }
}
