//! keyproof's own SSH server. It accepts connections itself (so it can read a PROXY protocol
//! header, bound connections per client address and bound each connection's lifetime) and
//! hands each to russh with a [`ConnectionHandler`](connection::ConnectionHandler).

pub mod connection;
pub mod handler;
pub mod host_key;
pub mod proxy;
pub mod registry;
pub mod tap;
pub mod terminal;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use russh::keys::PrivateKey;
use russh::server::Config;
use russh::{MethodKind, MethodSet};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tracing::Instrument;

use crate::metrics::{GaugeGuard, METRICS};
use crate::shutdown::Shutdown;
use connection::{ConnectionHandler, Ledger, SshContext, conclude_ended, take_decision};

/// How long connections in flight (a person answering a confirmation, say) may go on after a
/// shutdown signal before they are disconnected.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);
/// How long past the confirmation timeout an authenticated connection may stay open.
const LINGER_GRACE: Duration = Duration::from_secs(5);
const FAR_FUTURE: Duration = Duration::from_secs(365 * 24 * 3600);

/// Limits of the SSH server.
#[derive(Debug, Clone)]
pub struct SshLimits {
    pub max_connections: usize,
    pub max_connections_per_ip: usize,
    /// How long a client may take to finish authenticating.
    pub auth_timeout: Duration,
    /// How long a person has to answer a `mustConfirm` prompt.
    pub confirm_timeout: Duration,
    /// Every connection starts with a PROXY protocol header naming the real client.
    pub proxy_protocol: bool,
}

/// The russh configuration keyproof runs with.
pub fn russh_config(host_key: PrivateKey, limits: &SshLimits) -> Config {
    Config {
        server_id: russh::SshId::Standard(
            format!("SSH-2.0-keyproof_{}", env!("CARGO_PKG_VERSION")).into(),
        ),
        methods: MethodSet::from(&[MethodKind::PublicKey, MethodKind::KeyboardInteractive][..]),
        // User names are random secrets and every refusal is explained anyway, so a long
        // constant rejection time protects nothing and would slow an agent with many keys.
        auth_rejection_time: Duration::from_millis(20),
        auth_rejection_time_initial: Some(Duration::ZERO),
        keys: vec![host_key],
        // Enough for an agent holding many keys before the listed one.
        max_auth_attempts: 64,
        inactivity_timeout: Some(limits.auth_timeout.max(Duration::from_secs(120))),
        keepalive_interval: Some(Duration::from_secs(30)),
        nodelay: true,
        ..Default::default()
    }
}

/// What every connection task of one server shares.
struct Shared {
    config: Arc<Config>,
    ctx: Arc<SshContext>,
    limits: SshLimits,
    per_ip: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

/// Serves SSH on `listener` until `shutdown` fires, then waits for open connections.
pub async fn serve(
    listener: TcpListener,
    config: Arc<Config>,
    ctx: Arc<SshContext>,
    limits: SshLimits,
    mut shutdown: Shutdown,
) {
    let closer = registry::close_finished_sessions(
        ctx.open.clone(),
        ctx.store.bus().clone(),
        shutdown.clone(),
    );
    let closer = tokio::spawn(closer);
    let shared = Arc::new(Shared {
        config,
        ctx,
        limits,
        per_ip: Arc::default(),
    });
    let mut connections = JoinSet::new();

    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = shutdown.wait() => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(error) => {
                tracing::warn!(%error, "cannot accept an SSH connection");
                continue;
            }
        };
        METRICS.ssh_connections.fetch_add(1, Ordering::Relaxed);
        if connections.len() >= shared.limits.max_connections {
            tracing::warn!(%peer, "refused an SSH connection: too many open connections");
            continue;
        }

        let span = tracing::info_span!(
            "ssh",
            %peer,
            client = tracing::field::Empty,
            session_id = tracing::field::Empty
        );
        let task = handle_connection(shared.clone(), stream, peer, shutdown.clone());
        connections.spawn(task.instrument(span));
    }

    // Stop accepting; let connections in flight end on their own within their limits.
    drop(listener);
    while connections.join_next().await.is_some() {}
    closer.abort();
}

async fn handle_connection(
    shared: Arc<Shared>,
    mut stream: TcpStream,
    peer: SocketAddr,
    mut shutdown: Shutdown,
) {
    let Shared {
        config,
        ctx,
        limits,
        per_ip,
    } = shared.as_ref();
    let _open = GaugeGuard::raise(&METRICS.ssh_connections_open);
    let client = if limits.proxy_protocol {
        match proxy::read_header(&mut stream, peer).await {
            Ok(client) => {
                tracing::Span::current().record("client", tracing::field::display(client));
                client
            }
            Err(error) => {
                tracing::warn!(%error, "refused an SSH connection");
                return;
            }
        }
    } else {
        peer
    };
    let Some(_slot) = IpSlot::take(per_ip, client.ip(), limits.max_connections_per_ip) else {
        tracing::warn!("refused an SSH connection: too many from this address");
        return;
    };

    let _ = stream.set_nodelay(true);
    let (stream, client_version) = tap::VersionTap::new(stream);
    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let handler = ConnectionHandler::new(ctx.clone(), client, client_version, ledger.clone());

    let session = match russh::server::run_stream(config.clone(), stream, handler).await {
        Ok(session) => session,
        Err(error) => {
            tracing::debug!(%error, "SSH handshake did not complete");
            return;
        }
    };
    let handle = session.handle();
    if let Ok(mut ledger) = ledger.lock() {
        ledger.handle = Some(handle.clone());
    }
    // One timer serves two limits: the time to authenticate, and after a shutdown signal
    // the grace period for confirmations in flight.
    let deadline = tokio::time::sleep(limits.auth_timeout);
    tokio::pin!(deadline);
    tokio::pin!(session);
    let mut draining = false;
    let mut lingering = false;

    let result = loop {
        tokio::select! {
            result = &mut session => break result,
            () = shutdown.wait(), if !draining => {
                draining = true;
                deadline.as_mut().reset(tokio::time::Instant::now() + SHUTDOWN_GRACE);
            }
            () = &mut deadline => {
                let authenticated = ledger.lock().map(|l| l.authenticated).unwrap_or(true);
                let reason = if draining {
                    // Cut short by us, not by the person: no failed attempt is counted.
                    take_decision(&ledger);
                    Some("keyproof is restarting; please run the command again")
                } else if !authenticated {
                    Some("authentication took too long")
                } else if !lingering {
                    // Authenticated: allow time to answer a confirmation, then end it.
                    lingering = true;
                    let limit = limits.confirm_timeout + LINGER_GRACE;
                    deadline.as_mut().reset(tokio::time::Instant::now() + limit);
                    continue;
                } else if ledger.lock().map(|l| l.undecided.is_some()).unwrap_or(false) {
                    Some("time is up: not verified")
                } else {
                    Some("this connection has done its work and is now closed")
                };
                if let Some(reason) = reason {
                    tracing::info!(reason, "disconnecting a client");
                    let _ = handle
                        .disconnect(russh::Disconnect::ByApplication, reason.into(), String::new())
                        .await;
                }
                deadline.as_mut().reset(tokio::time::Instant::now() + FAR_FUTURE);
            }
        }
    };
    if let Err(error) = result {
        // A client that gives up after a refusal ends the session with an early EOF.
        tracing::debug!(%error, "SSH session ended with an error");
    }

    // Rule 7: an attributed connection that ends undecided is one failed attempt.
    conclude_ended(&ctx.store, &ledger).await;
    let attributed = ledger.lock().ok().and_then(|ledger| ledger.attributed);
    if let Some((session_id, connection_id)) = attributed {
        ctx.open.remove(session_id, connection_id);
    }
}

/// A connection's place in the per-address count, given back when dropped.
struct IpSlot {
    counts: Arc<Mutex<HashMap<IpAddr, usize>>>,
    ip: IpAddr,
}

impl IpSlot {
    fn take(counts: &Arc<Mutex<HashMap<IpAddr, usize>>>, ip: IpAddr, max: usize) -> Option<Self> {
        let mut map = counts.lock().ok()?;
        let count = map.entry(ip).or_insert(0);
        if *count >= max {
            return None;
        }
        *count += 1;
        Some(Self {
            counts: counts.clone(),
            ip,
        })
    }
}

impl Drop for IpSlot {
    fn drop(&mut self) {
        let Ok(mut map) = self.counts.lock() else {
            return;
        };
        if let Some(count) = map.get_mut(&self.ip) {
            *count -= 1;
            if *count == 0 {
                map.remove(&self.ip);
            }
        }
    }
}
