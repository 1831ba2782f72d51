//! Wiring: prepares the data directory and database, then runs the SSH server, the HTTP server,
//! the expiry sweep and the webhook worker from already-bound listeners until shutdown.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::task::JoinSet;

use crate::config::Settings;
use crate::domain::identifiers::new_secret;
use crate::events::EventBus;
use crate::graphql::auth::API_KEY_PREFIX;
use crate::graphql::types::SshHostKey;
use crate::graphql::{GraphqlState, build_schema};
use crate::http::{HttpState, router};
use crate::public::PublicSsh;
use crate::shutdown::{self, Shutdown, ShutdownTrigger};
use crate::ssh::connection::SshContext;
use crate::ssh::{SshLimits, host_key, russh_config};
use crate::store::Store;
use crate::webhooks::WebhookConfig;
use crate::webhooks::sender::Sender;
use crate::webhooks::targets::TargetPolicy;

/// The project every fresh installation starts with.
pub const DEFAULT_PROJECT: &str = "default";
/// File in the data directory holding the first API key (mode 0600).
pub const ADMIN_KEY_FILE: &str = "admin-api-key";
/// How often the expiry sweep runs; sessions fail within this much of their expiry.
pub const EXPIRY_SWEEP_INTERVAL: Duration = Duration::from_millis(250);

/// A running keyproof.
pub struct App {
    pub http_addr: SocketAddr,
    pub ssh_addr: SocketAddr,
    pub store: Store,
    /// The API key created on first start, to be shown once.
    pub created_api_key: Option<String>,
    trigger: ShutdownTrigger,
    tasks: JoinSet<()>,
}

impl App {
    /// Prepares storage and starts every server on the given listeners.
    pub async fn start(
        settings: &Settings,
        http_listener: TcpListener,
        ssh_listener: TcpListener,
    ) -> anyhow::Result<Self> {
        let http_addr = http_listener.local_addr()?;
        let ssh_addr = ssh_listener.local_addr()?;

        std::fs::create_dir_all(&settings.data_dir).with_context(|| {
            format!(
                "cannot create the data directory {}",
                settings.data_dir.display()
            )
        })?;
        let store = open_store(settings).await?;
        let created_api_key = bootstrap_api_keys(&store, settings).await?;
        let host_key = host_key::load_or_generate(&settings.data_dir)?;
        let host_keys = vec![describe_host_key(&host_key)?];

        let public = PublicSsh {
            host: settings
                .public_ssh_host
                .clone()
                .unwrap_or_else(|| default_public_host(ssh_addr)),
            port: settings.public_ssh_port.unwrap_or(ssh_addr.port()),
        };
        let limits = SshLimits {
            max_connections: settings.ssh_max_connections,
            max_connections_per_ip: settings.ssh_max_connections_per_ip,
            auth_timeout: Duration::from_secs(settings.ssh_auth_timeout),
            confirm_timeout: Duration::from_secs(settings.ssh_confirm_timeout),
            proxy_protocol: settings.ssh_proxy_protocol,
        };

        let webhook_targets = TargetPolicy {
            allow_private: settings.webhook_allow_private_targets,
        };
        let webhook_sender = Sender::new(webhook_targets, settings.webhook_timeout())?;
        if webhook_targets.allow_private {
            tracing::warn!("webhooks may target private and loopback addresses");
        }

        let (trigger, shutdown) = shutdown::channel();
        let mut tasks = JoinSet::new();

        let ssh_config = Arc::new(russh_config(host_key, &limits));
        let ctx = Arc::new(SshContext {
            store: store.clone(),
            public: public.clone(),
            confirm_timeout: limits.confirm_timeout,
            open: Default::default(),
        });
        tasks.spawn(crate::ssh::serve(
            ssh_listener,
            ssh_config,
            ctx,
            limits,
            shutdown.clone(),
        ));

        let schema = build_schema(
            GraphqlState {
                store: store.clone(),
                host_keys,
                default_session_timeout: settings.default_session_timeout(),
                webhook_targets,
            },
            public,
        );
        let app = router(HttpState {
            schema,
            store: store.clone(),
        });
        let mut http_shutdown = shutdown.clone();
        tasks.spawn(async move {
            let served = axum::serve(http_listener, app)
                .with_graceful_shutdown(async move { http_shutdown.wait().await })
                .await;
            if let Err(error) = served {
                tracing::error!(%error, "HTTP server stopped");
            }
        });

        tasks.spawn(crate::webhooks::run(
            store.clone(),
            webhook_sender,
            WebhookConfig {
                request_timeout: settings.webhook_timeout(),
                max_in_flight: settings.webhook_concurrency,
            },
            shutdown.clone(),
        ));
        tasks.spawn(crate::store::notify::relay_other_replicas(
            store.clone(),
            shutdown.clone(),
        ));
        tasks.spawn(expiry_sweep(store.clone(), shutdown));

        tracing::info!(%http_addr, %ssh_addr, "keyproof is running");
        Ok(Self {
            http_addr,
            ssh_addr,
            store,
            created_api_key,
            trigger,
            tasks,
        })
    }

    /// Stops accepting work and waits for every server to finish.
    pub async fn shutdown(mut self) {
        self.trigger.trigger();
        while self.tasks.join_next().await.is_some() {}
    }

    /// Waits until a server stops on its own (which only happens on a fatal error).
    pub async fn stopped(&mut self) {
        self.tasks.join_next().await;
    }
}

/// Connects to the configured database and applies migrations.
pub async fn open_store(settings: &Settings) -> anyhow::Result<Store> {
    let url = settings.database_url();
    let store = Store::connect(&url, EventBus::new())
        .await
        .with_context(|| format!("cannot open the database {}", redact_url(&url)))?;
    store
        .migrate()
        .await
        .context("cannot apply database migrations")?;
    Ok(store)
}

/// Makes sure project `default` exists with a usable API key. Returns a key created now,
/// which is also written to the data directory; existing keys are never shown again.
async fn bootstrap_api_keys(store: &Store, settings: &Settings) -> anyhow::Result<Option<String>> {
    let project = store.ensure_project(DEFAULT_PROJECT).await?;
    if let Some(key) = &settings.bootstrap_api_key {
        anyhow::ensure!(
            key.len() >= 16,
            "--bootstrap-api-key must be at least 16 characters long"
        );
        store.ensure_api_key(project.id, "bootstrap", key).await?;
    }
    if !store.list_api_keys(project.id).await?.is_empty() {
        return Ok(None);
    }

    let secret = new_secret(API_KEY_PREFIX);
    store.ensure_api_key(project.id, "admin", &secret).await?;
    write_admin_key(&settings.data_dir, &secret)?;
    Ok(Some(secret))
}

fn write_admin_key(data_dir: &Path, secret: &str) -> anyhow::Result<()> {
    let path = data_dir.join(ADMIN_KEY_FILE);
    if path.exists() {
        std::fs::remove_file(&path)
            .with_context(|| format!("cannot replace {}", path.display()))?;
    }
    crate::files::write_private(&path, format!("{secret}\n").as_bytes())
        .with_context(|| format!("cannot write {}", path.display()))
}

fn describe_host_key(key: &russh::keys::PrivateKey) -> anyhow::Result<SshHostKey> {
    let info = host_key::describe(key)?;
    Ok(SshHostKey {
        algorithm: info.algorithm,
        public_key_ssh: info.public_key_ssh,
        fingerprint_sha256: info.fingerprint_sha256,
    })
}

fn default_public_host(addr: SocketAddr) -> String {
    if addr.ip().is_unspecified() {
        "localhost".to_owned()
    } else {
        addr.ip().to_string()
    }
}

/// A database URL without its password, for error messages.
fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            format!("{}://***@{}", &url[..scheme], &url[at + 1..])
        }
        _ => url.to_owned(),
    }
}

/// Rule 8: fails expired pending sessions, within [`EXPIRY_SWEEP_INTERVAL`] of their expiry.
async fn expiry_sweep(store: Store, mut shutdown: Shutdown) {
    let mut interval = tokio::time::interval(EXPIRY_SWEEP_INTERVAL);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = interval.tick() => {}
            () = shutdown.wait() => return,
        }
        match store.expire_due(chrono::Utc::now()).await {
            Ok(0) => {}
            Ok(expired) => tracing::info!(expired, "expired verify sessions"),
            Err(error) => tracing::warn!(%error, "expiry sweep failed; retrying"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_passwords_are_hidden() {
        assert_eq!(
            redact_url("postgres://u:secret@db/kp"),
            "postgres://***@db/kp"
        );
        assert_eq!(
            redact_url("sqlite://data/kp.db?mode=rwc"),
            "sqlite://data/kp.db?mode=rwc"
        );
    }
}
