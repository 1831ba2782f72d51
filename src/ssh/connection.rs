//! One client connection: which session it is attributed to, the keys it offered and proved,
//! and the decision it reaches. The russh callbacks in [`super::handler`] only call in here.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use uuid::Uuid;

use super::registry::OpenConnections;
use super::tap::ClientVersion;
use super::terminal::{self, FailureReport, Refusal};
use crate::domain::identifiers::is_connection_identifier;
use crate::domain::keys::PublicKeyInfo;
use crate::domain::session::{AttemptOutcome, Closed, Progress};
use crate::metrics::METRICS;
use crate::public::PublicSsh;
use crate::store::{OfferRecord, ProofOutcome, SessionForConnection, Store, StoreError};

/// What the SSH server shares between connections.
pub struct SshContext {
    pub store: Store,
    pub public: PublicSsh,
    /// How long a person has to answer a `mustConfirm` prompt.
    pub confirm_timeout: std::time::Duration,
    pub open: Arc<OpenConnections>,
}

/// The part of a connection's state that other tasks need: the connection task (which counts
/// a failed attempt when the connection ends undecided), the confirm timer and the closer of
/// finished sessions.
#[derive(Default)]
pub struct Ledger {
    /// The decision token: `Some((session_id, connection_id))` while the attributed
    /// connection has not reached a decision. Whoever takes it decides, exactly once.
    pub undecided: Option<(Uuid, Uuid)>,
    /// The session and connection once attributed, to unregister at the end.
    pub attributed: Option<(Uuid, Uuid)>,
    pub authenticated: bool,
    /// With `multiKey`: the keys proven so far already meet the rule, and no confirmation is
    /// asked, so a client that leaves without offering more keys verifies the session.
    pub rule_met: bool,
    /// Lets other tasks write to or disconnect the client.
    pub handle: Option<russh::server::Handle>,
}

/// Decides a connection that ended without deciding itself (rule 7): one failed attempt, or,
/// when the keys it proved already met the rule (`multiKey`), the verification.
pub async fn conclude_ended(store: &Store, ledger: &Mutex<Ledger>) {
    let Some((session_id, connection_id)) = take_decision(ledger) else {
        return;
    };
    let rule_met = ledger.lock().map(|ledger| ledger.rule_met).unwrap_or(false);

    if rule_met {
        match store.record_rule_met(session_id).await {
            Ok(outcome) => {
                METRICS.verifications.inc("verified");
                tracing::info!(?outcome, "connection ended after meeting the rule");
            }
            Err(error) => tracing::error!(%error, "cannot record a verification"),
        }
        return;
    }
    match store.record_failed_attempt(session_id, connection_id).await {
        Ok(outcome) => {
            crate::metrics::record_attempt(outcome);
            tracing::info!(?outcome, "connection closed without verifying");
        }
        Err(error) => tracing::error!(%error, "cannot record a failed attempt"),
    }
}

/// Takes the decision token of a connection; `None` when someone else decided already.
pub fn take_decision(ledger: &Mutex<Ledger>) -> Option<(Uuid, Uuid)> {
    ledger
        .lock()
        .ok()
        .and_then(|mut ledger| ledger.undecided.take())
}

pub(super) enum Attribution {
    /// No authentication request seen yet.
    Unknown,
    Refused,
    Attributed(Box<Attributed>),
}

pub(super) struct Attributed {
    pub user: String,
    pub session: SessionForConnection,
    pub connection_id: Uuid,
    /// Distinct keys offered on this connection, in order.
    pub offers: Vec<(PublicKeyInfo, OfferRecord)>,
    /// Index into `offers` by canonical `public_key_ssh`.
    pub offer_index: HashMap<String, usize>,
    /// Configured keys proven on this connection, with the fingerprint that proved each.
    pub proven: HashMap<Uuid, String>,
}

/// Where the connection stands.
#[derive(Debug, Clone)]
pub(super) enum Outcome {
    Undecided,
    /// The rule is met; the person must still press `y`.
    AwaitingConfirm {
        fingerprint: String,
    },
    Verified {
        fingerprint: String,
    },
    NotVerified(FailureReport),
    NotConfirmed {
        timed_out: bool,
        report: FailureReport,
    },
    Closed(Closed),
}

/// One client connection.
pub struct ConnectionHandler {
    pub(super) ctx: Arc<SshContext>,
    pub(super) peer: SocketAddr,
    pub(super) client_version: ClientVersion,
    pub(super) ledger: Arc<Mutex<Ledger>>,
    /// The connection's span; russh runs the handler in a task of its own, outside it.
    pub(super) span: tracing::Span,
    pub(super) attribution: Attribution,
    pub(super) outcome: Outcome,
    /// Whether the `[y/N]` prompt has been written; only input after it answers.
    pub(super) prompted: bool,
    /// When the first authentication request arrived, for the decision-time metric.
    started: std::time::Instant,
}

impl ConnectionHandler {
    pub fn new(
        ctx: Arc<SshContext>,
        peer: SocketAddr,
        client_version: ClientVersion,
        ledger: Arc<Mutex<Ledger>>,
    ) -> Self {
        Self {
            ctx,
            peer,
            client_version,
            ledger,
            span: tracing::Span::current(),
            attribution: Attribution::Unknown,
            outcome: Outcome::Undecided,
            prompted: false,
            started: std::time::Instant::now(),
        }
    }

    /// Rules 1 and 2: attributes the connection on its first authentication request. Later
    /// requests must use the same user name.
    pub(super) async fn attribute(&mut self, user: &str) -> bool {
        match &self.attribution {
            Attribution::Attributed(attributed) => return attributed.user == user,
            Attribution::Refused => return false,
            Attribution::Unknown => {}
        }
        self.started = std::time::Instant::now();

        self.attribution = match self.try_attribute(user).await {
            Ok(attributed) => {
                let ids = (attributed.session.session.id, attributed.connection_id);
                self.span
                    .record("session_id", tracing::field::display(ids.0));
                tracing::info!(parent: &self.span, connection_id = %ids.1, "connection attributed");
                if let Ok(mut ledger) = self.ledger.lock() {
                    ledger.undecided = Some(ids);
                    ledger.attributed = Some(ids);
                }
                self.ctx.open.insert(ids.0, ids.1, self.ledger.clone());
                Attribution::Attributed(Box::new(attributed))
            }
            Err(reason) => {
                METRICS.auth_outcomes.inc("refused_connection");
                tracing::info!(parent: &self.span, ?reason, "connection refused");
                self.disconnect_explaining(reason);
                Attribution::Refused
            }
        };

        matches!(self.attribution, Attribution::Attributed(_))
    }

    async fn try_attribute(&self, user: &str) -> Result<Attributed, Refusal> {
        if !is_connection_identifier(user) {
            return Err(Refusal::Unknown);
        }
        let store = &self.ctx.store;
        let session = match store.session_for_identifier(user).await {
            Ok(Some(session)) => session,
            Ok(None) => return Err(Refusal::Unknown),
            Err(error) => return Err(unavailable(&error)),
        };

        let client_version = self.client_version.get().map(String::as_str).unwrap_or("");
        let ip = self.peer.ip().to_canonical().to_string();
        let recorded = store
            .record_connection(session.session.id, &ip, client_version)
            .await;
        let connection = match recorded {
            Ok(Ok(connection)) => connection,
            Ok(Err(closed)) => return Err(Refusal::Closed(closed)),
            Err(error) => return Err(unavailable(&error)),
        };

        Ok(Attributed {
            user: user.to_owned(),
            session,
            connection_id: connection.id,
            offers: Vec::new(),
            offer_index: HashMap::new(),
            proven: HashMap::new(),
        })
    }

    /// Rule 1: tells the client why in plain words, as the reason of an SSH disconnect,
    /// which OpenSSH prints before it exits with its own failure status.
    fn disconnect_explaining(&self, reason: Refusal) {
        let handle = self
            .ledger
            .lock()
            .ok()
            .and_then(|ledger| ledger.handle.clone());
        let Some(handle) = handle else {
            return;
        };
        tokio::spawn(async move {
            let text = terminal::refused(reason);
            let _ = handle
                .disconnect(russh::Disconnect::ByApplication, text, String::new())
                .await;
        });
    }

    pub(super) fn attributed(&self) -> Option<&Attributed> {
        match &self.attribution {
            Attribution::Attributed(attributed) => Some(attributed),
            _ => None,
        }
    }

    pub(super) fn attributed_mut(&mut self) -> Option<&mut Attributed> {
        match &mut self.attribution {
            Attribution::Attributed(attributed) => Some(attributed),
            _ => None,
        }
    }

    /// Rule 3: records a distinct offered key once; returns the configured key it matches
    /// when that key is not proven on this connection yet (the client may then sign).
    pub(super) async fn offer(&mut self, info: PublicKeyInfo) -> Result<Option<Uuid>, StoreError> {
        let store = self.ctx.store.clone();
        let span = self.span.clone();
        let Some(attributed) = self.attributed_mut() else {
            return Ok(None);
        };

        let record = match attributed.offer_index.get(&info.public_key_ssh) {
            Some(&index) => attributed.offers[index].1.clone(),
            None => {
                let matched = attributed
                    .session
                    .keys
                    .iter()
                    .find(|key| key.public_key_ssh == info.public_key_ssh)
                    .map(|key| key.id);
                let session_id = attributed.session.session.id;
                let record = store
                    .record_offer(session_id, attributed.connection_id, &info, matched)
                    .await?;
                tracing::info!(
                    parent: &span,
                    fingerprint = %info.sha256,
                    matched = matched.is_some(),
                    "key offered"
                );
                METRICS.auth_outcomes.inc("offered");
                attributed
                    .offer_index
                    .insert(info.public_key_ssh.clone(), attributed.offers.len());
                attributed.offers.push((info, record.clone()));
                record
            }
        };

        Ok(record
            .matched_key_id
            .filter(|key_id| !attributed.proven.contains_key(key_id)))
    }

    /// Rules 4 to 6: a signature over an offered key checked out. Returns whether
    /// authentication succeeds now (the rule is met, or awaits confirmation).
    pub(super) async fn prove(&mut self, info: &PublicKeyInfo) -> Result<bool, StoreError> {
        let store = self.ctx.store.clone();
        let Some(attributed) = self.attributed_mut() else {
            return Ok(false);
        };
        // russh asks for the offer before it checks any signature, so the key is recorded;
        // a key that matches nothing, or is proven already, proves nothing new.
        let Some(&index) = attributed.offer_index.get(&info.public_key_ssh) else {
            return Ok(false);
        };
        let record = attributed.offers[index].1.clone();
        let Some(key_id) = record.matched_key_id else {
            return Ok(false);
        };
        if attributed
            .proven
            .insert(key_id, info.sha256.clone())
            .is_some()
        {
            return Ok(false);
        }

        let session = &attributed.session.session;
        let rule = crate::store::rule_of(session);
        let rule_met =
            rule.progress(attributed.session.keys.len(), attributed.proven.len()) == Progress::Met;
        let met_so_far = rule.is_met(attributed.session.keys.len(), attributed.proven.len());
        let must_confirm = session.must_confirm;
        let ids = (session.id, attributed.connection_id);
        tracing::info!(parent: &self.span, fingerprint = %info.sha256, "key proven by signature");
        METRICS.auth_outcomes.inc("proven");

        let verify_now = rule_met && !must_confirm;
        // Take the decision before committing the verification: once it is committed, the
        // closer of finished sessions must not mistake this connection for a bystander.
        if verify_now && take_decision(&self.ledger).is_none() {
            return Ok(false);
        }
        let outcome = store
            .record_proof(ids.0, ids.1, &record, key_id, verify_now)
            .await?;
        if let ProofOutcome::Closed(closed) = outcome {
            take_decision(&self.ledger);
            self.outcome = Outcome::Closed(closed);
            return Ok(false);
        }
        if met_so_far
            && !must_confirm
            && let Ok(mut ledger) = self.ledger.lock()
        {
            ledger.rule_met = true;
        }
        match (rule_met, must_confirm) {
            (false, _) => Ok(false),
            (true, true) => {
                self.outcome = Outcome::AwaitingConfirm {
                    fingerprint: info.sha256.clone(),
                };
                Ok(true)
            }
            (true, false) => {
                self.record_verified();
                self.outcome = Outcome::Verified {
                    fingerprint: info.sha256.clone(),
                };
                Ok(true)
            }
        }
    }

    /// The client has no more keys to offer. With `multiKey` the rule may be met by the keys
    /// proven so far; otherwise this connection is a failed attempt.
    pub(super) async fn conclude_without_more_keys(&mut self) {
        let Some(attributed) = self.attributed() else {
            return;
        };
        let rule = crate::store::rule_of(&attributed.session.session);
        let first_proven = attributed.offers.iter().find_map(|(info, record)| {
            record
                .matched_key_id
                .filter(|id| attributed.proven.contains_key(id))
                .map(|_| info.sha256.clone())
        });
        let met = rule.is_met(attributed.session.keys.len(), attributed.proven.len());

        match first_proven {
            Some(fingerprint) if met && attributed.session.session.must_confirm => {
                self.outcome = Outcome::AwaitingConfirm { fingerprint };
            }
            Some(fingerprint) if met => self.confirm_rule_met(fingerprint).await,
            _ => {
                let report = self.failure_report();
                let attempt = self.fail_attempt().await;
                self.outcome = Outcome::NotVerified(FailureReport { attempt, ..report });
            }
        }
    }

    /// Rule 6: the rule is met (and confirmed when asked): the session becomes `VERIFIED`.
    pub(super) async fn confirm_rule_met(&mut self, fingerprint: String) {
        let Some((session_id, _)) = take_decision(&self.ledger) else {
            return;
        };
        self.outcome = match self.ctx.store.record_rule_met(session_id).await {
            Ok(ProofOutcome::Recorded { .. }) => {
                self.record_verified();
                Outcome::Verified { fingerprint }
            }
            Ok(ProofOutcome::Closed(closed)) => Outcome::Closed(closed),
            Err(error) => {
                tracing::error!(parent: &self.span, %error, "cannot record a verification");
                Outcome::Closed(Closed::Failed)
            }
        };
    }

    fn record_verified(&self) {
        METRICS.verifications.inc("verified");
        METRICS.ssh_decision_seconds.observe(self.started.elapsed());
        tracing::info!(parent: &self.span, "session verified");
    }

    /// Rule 7: this connection ends without meeting the rule (or without confirming).
    /// `None` when another task decided first, or the store failed (logged).
    pub(super) async fn fail_attempt(&self) -> Option<AttemptOutcome> {
        let (session_id, connection_id) = take_decision(&self.ledger)?;
        match self
            .ctx
            .store
            .record_failed_attempt(session_id, connection_id)
            .await
        {
            Ok(attempt) => {
                crate::metrics::record_attempt(attempt);
                METRICS.ssh_decision_seconds.observe(self.started.elapsed());
                tracing::info!(parent: &self.span, ?attempt, "connection did not verify");
                Some(attempt)
            }
            Err(error) => {
                tracing::error!(parent: &self.span, %error, "cannot record a failed attempt");
                None
            }
        }
    }

    /// What the person is told about the keys of a connection that did not verify.
    pub(super) fn failure_report(&self) -> FailureReport {
        let Some(attributed) = self.attributed() else {
            return FailureReport::default();
        };
        FailureReport {
            offered: attributed
                .offers
                .iter()
                .map(|(info, _)| info.sha256.clone())
                .collect(),
            unsigned_matches: attributed
                .offers
                .iter()
                .filter(|(_, record)| {
                    record
                        .matched_key_id
                        .is_some_and(|id| !attributed.proven.contains_key(&id))
                })
                .map(|(info, _)| info.sha256.clone())
                .collect(),
            proven_of_required: attributed
                .session
                .session
                .match_all_keys
                .then_some((attributed.proven.len(), attributed.session.keys.len())),
            attempt: None,
            max_attempts: attributed.session.session.max_attempts,
            ssh_command: self.ctx.public.ssh_command(&attributed.user),
        }
    }

    /// The session's banner and message, ready for the terminal.
    pub(super) fn preamble(&self) -> String {
        let Some(attributed) = self.attributed() else {
            return String::new();
        };
        let session = &attributed.session.session;
        let mut text = String::new();
        for part in [&session.ssh_banner, &session.ssh_message]
            .into_iter()
            .flatten()
        {
            text.push_str(&terminal::block(part));
        }
        text
    }
}

fn unavailable(error: &StoreError) -> Refusal {
    tracing::error!(%error, "store unavailable while attributing a connection");
    Refusal::Unavailable
}
