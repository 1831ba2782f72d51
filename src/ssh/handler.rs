//! The russh `Handler`: a thin adapter between the SSH protocol and the verification rules.
//!
//! Only [`auth_publickey`](russh::server::Handler::auth_publickey), which russh calls after it
//! has checked the client's signature, may mark a key proven. An offer (a key sent without a
//! signature) is recorded and, when it matches a listed key, answered "acceptable" so the
//! client signs — nothing more.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use russh::server::{Auth, Handler, Msg, PublicKeyOffer, Response, Session, VerifiedPublicKey};
use russh::{Channel, ChannelId, MethodKind, MethodSet};
use uuid::Uuid;

use super::tap::ClientVersion;
use super::terminal::{self, FailureReport, Refusal};
use crate::domain::identifiers::is_connection_identifier;
use crate::domain::keys::{PublicKeyInfo, describe_key_data};
use crate::domain::session::{Closed, Progress};
use crate::public::PublicSsh;
use crate::store::{OfferRecord, ProofOutcome, SessionForConnection, Store};

/// What the SSH server shares between connections.
pub struct SshContext {
    pub store: Store,
    pub public: PublicSsh,
}

/// State the connection task reads after the SSH session ends.
#[derive(Default)]
pub struct Ledger {
    /// Set while an attributed connection has not reached a decision: when the connection
    /// ends in this state, it counts as one failed attempt (rule 7).
    pub undecided: Option<(Uuid, Uuid)>,
    pub authenticated: bool,
    /// Lets the handler disconnect the client from outside the protocol callbacks.
    pub handle: Option<russh::server::Handle>,
}

/// One client connection.
pub struct ConnectionHandler {
    ctx: Arc<SshContext>,
    peer: SocketAddr,
    client_version: ClientVersion,
    ledger: Arc<Mutex<Ledger>>,
    /// The connection's span; russh runs the handler in a task of its own, outside it.
    span: tracing::Span,
    attribution: Attribution,
    outcome: Outcome,
}

enum Attribution {
    /// No authentication request seen yet.
    Unknown,
    Refused,
    Attributed(Box<Attributed>),
}

struct Attributed {
    user: String,
    session: SessionForConnection,
    connection_id: Uuid,
    /// Distinct keys offered on this connection, by canonical `public_key_ssh`, in order.
    offers: Vec<(PublicKeyInfo, OfferRecord)>,
    offer_index: HashMap<String, usize>,
    /// Configured keys proven on this connection.
    proven: HashSet<Uuid>,
}

#[derive(Debug, Clone)]
enum Outcome {
    Undecided,
    Verified { fingerprint: String },
    NotVerified(FailureReport),
    Closed(Closed),
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
        }
    }

    /// Rule 1 and 2: attributes the connection on its first authentication request. Later
    /// requests must use the same user name.
    async fn attribute(&mut self, user: &str) -> bool {
        match &self.attribution {
            Attribution::Attributed(attributed) => return attributed.user == user,
            Attribution::Refused => return false,
            Attribution::Unknown => {}
        }

        self.attribution = match self.try_attribute(user).await {
            Ok(attributed) => {
                self.span.record(
                    "session_id",
                    tracing::field::display(attributed.session.session.id),
                );
                tracing::info!(
                    parent: &self.span,
                    session_id = %attributed.session.session.id,
                    connection_id = %attributed.connection_id,
                    "connection attributed"
                );
                self.set_undecided(Some((
                    attributed.session.session.id,
                    attributed.connection_id,
                )));
                Attribution::Attributed(Box::new(attributed))
            }
            Err(reason) => {
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
        let connection = match store
            .record_connection(session.session.id, &ip, client_version)
            .await
        {
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
            proven: HashSet::new(),
        })
    }

    /// Rule 1: tells the client why in plain words, as the reason of an SSH disconnect,
    /// which OpenSSH prints and then exits with its own failure status.
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

    fn set_undecided(&self, value: Option<(Uuid, Uuid)>) {
        if let Ok(mut ledger) = self.ledger.lock() {
            ledger.undecided = value;
        }
    }

    fn attributed(&mut self) -> Option<&mut Attributed> {
        match &mut self.attribution {
            Attribution::Attributed(attributed) => Some(attributed),
            _ => None,
        }
    }

    /// Once the outcome is known only keyboard-interactive is left, which opens a channel to
    /// show the person the result.
    fn reject_towards_explanation() -> Auth {
        Auth::Reject {
            proceed_with_methods: Some(MethodSet::from(&[MethodKind::KeyboardInteractive][..])),
            partial_success: false,
        }
    }

    /// A refused connection is offered no method at all; the disconnect tells it why.
    fn reject_refused() -> Auth {
        Auth::Reject {
            proceed_with_methods: Some(MethodSet::empty()),
            partial_success: false,
        }
    }

    /// Rule 7: this connection is over without meeting the rule.
    async fn fail_attempt(&mut self) {
        let Some(attributed) = self.attributed() else {
            return;
        };
        let session_id = attributed.session.session.id;
        let connection_id = attributed.connection_id;
        let report = FailureReport {
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
                        .is_some_and(|id| !attributed.proven.contains(&id))
                })
                .map(|(info, _)| info.sha256.clone())
                .collect(),
            attempt: None,
            max_attempts: attributed.session.session.max_attempts,
            ssh_command: String::new(),
        };
        let identifier = attributed.user.clone();

        let attempt = match self
            .ctx
            .store
            .record_failed_attempt(session_id, connection_id)
            .await
        {
            Ok(attempt) => Some(attempt),
            Err(error) => {
                tracing::error!(parent: &self.span, %error, "cannot record a failed attempt");
                None
            }
        };
        if attempt.is_some() {
            self.set_undecided(None);
        }
        tracing::info!(parent: &self.span, ?attempt, "connection did not verify");

        self.outcome = Outcome::NotVerified(FailureReport {
            attempt,
            ssh_command: self.ctx.public.ssh_command(&identifier),
            ..report
        });
    }

    /// The text for the terminal and the exit status, once authentication is over.
    fn result(&self) -> (String, u32) {
        match &self.outcome {
            Outcome::Verified { fingerprint } => {
                let message = match &self.attribution {
                    Attribution::Attributed(a) => a.session.session.ssh_message.as_deref(),
                    _ => None,
                };
                (terminal::verified(fingerprint, message), 0)
            }
            Outcome::NotVerified(report) => (terminal::not_verified(report), 1),
            Outcome::Closed(closed) => (format!("{}\r\n", closed.explain()), 1),
            Outcome::Undecided => ("Not verified.\r\n".to_owned(), 1),
        }
    }
}

fn unavailable(error: &crate::store::StoreError) -> Refusal {
    tracing::error!(%error, "store unavailable while attributing a connection");
    Refusal::Unavailable
}

impl Handler for ConnectionHandler {
    type Error = anyhow::Error;

    async fn auth_none(&mut self, user: &str) -> Result<Auth, Self::Error> {
        if self.attribute(user).await {
            Ok(Auth::reject())
        } else {
            Ok(Self::reject_refused())
        }
    }

    async fn auth_password(&mut self, _user: &str, _password: &str) -> Result<Auth, Self::Error> {
        Ok(Auth::Reject {
            proceed_with_methods: None,
            partial_success: false,
        })
    }

    async fn auth_publickey_offered(
        &mut self,
        user: &str,
        offer: PublicKeyOffer<'_>,
    ) -> Result<Auth, Self::Error> {
        if !self.attribute(user).await {
            return Ok(Self::reject_refused());
        }
        if !matches!(self.outcome, Outcome::Undecided) {
            return Ok(Self::reject_towards_explanation());
        }
        let info = match describe_key_data(offer.public_key.key_data()) {
            Ok(info) => info,
            Err(reason) => {
                tracing::info!(parent: &self.span, %reason, "refused an offered key of an unsupported kind");
                return Ok(Auth::reject());
            }
        };

        let store = self.ctx.store.clone();
        let span = self.span.clone();
        let Some(attributed) = self.attributed() else {
            return Ok(Auth::reject());
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
                let record = store
                    .record_offer(
                        attributed.session.session.id,
                        attributed.connection_id,
                        &info,
                        matched,
                    )
                    .await?;
                tracing::info!(
                    parent: &span,
                    fingerprint = %info.sha256,
                    matched = matched.is_some(),
                    "key offered"
                );
                attributed
                    .offer_index
                    .insert(info.public_key_ssh.clone(), attributed.offers.len());
                attributed.offers.push((info, record.clone()));
                record
            }
        };

        match record.matched_key_id {
            Some(key_id) if !attributed.proven.contains(&key_id) => Ok(Auth::Accept),
            _ => Ok(Auth::reject()),
        }
    }

    async fn auth_publickey(
        &mut self,
        user: &str,
        key: VerifiedPublicKey<'_>,
    ) -> Result<Auth, Self::Error> {
        if !self.attribute(user).await {
            return Ok(Self::reject_refused());
        }
        if !matches!(self.outcome, Outcome::Undecided) {
            return Ok(Self::reject_towards_explanation());
        }
        let Ok(info) = describe_key_data(key.public_key.key_data()) else {
            return Ok(Auth::reject());
        };
        let store = self.ctx.store.clone();
        let Some(attributed) = self.attributed() else {
            return Ok(Auth::reject());
        };
        // russh asks `auth_publickey_offered` before checking any signature, so the key has
        // been recorded; a key that does not match, or is proven already, proves nothing new.
        let Some(&index) = attributed.offer_index.get(&info.public_key_ssh) else {
            return Ok(Auth::reject());
        };
        let record = attributed.offers[index].1.clone();
        let Some(key_id) = record.matched_key_id else {
            return Ok(Auth::reject());
        };
        if !attributed.proven.insert(key_id) {
            return Ok(Auth::reject());
        }

        let rule = crate::store::rule_of(&attributed.session.session);
        let progress = rule.progress(attributed.session.keys.len(), attributed.proven.len());
        let rule_met = progress == Progress::Met;
        let session_id = attributed.session.session.id;
        let connection_id = attributed.connection_id;
        tracing::info!(parent: &self.span, fingerprint = %info.sha256, "key proven by signature");

        match store
            .record_proof(session_id, connection_id, &record, key_id, rule_met)
            .await?
        {
            ProofOutcome::Recorded { .. } if rule_met => {
                self.set_undecided(None);
                self.outcome = Outcome::Verified {
                    fingerprint: info.sha256,
                };
                tracing::info!(parent: &self.span, "session verified");
                Ok(Auth::Accept)
            }
            ProofOutcome::Recorded { .. } => Ok(Auth::reject()),
            ProofOutcome::Closed(closed) => {
                self.set_undecided(None);
                self.outcome = Outcome::Closed(closed);
                Ok(Self::reject_towards_explanation())
            }
        }
    }

    async fn auth_keyboard_interactive<'a>(
        &'a mut self,
        user: &str,
        _submethods: &str,
        _response: Option<Response<'a>>,
    ) -> Result<Auth, Self::Error> {
        if !self.attribute(user).await {
            return Ok(Self::reject_refused());
        }

        // The client has no more keys to offer. Accepting keyboard-interactive with zero
        // prompts proves nothing; it only opens a channel to explain the result.
        if matches!(self.outcome, Outcome::Undecided) {
            self.fail_attempt().await;
        }
        Ok(Auth::Accept)
    }

    async fn auth_succeeded(&mut self, _session: &mut Session) -> Result<(), Self::Error> {
        if let Ok(mut ledger) = self.ledger.lock() {
            ledger.authenticated = true;
        }
        Ok(())
    }

    async fn channel_open_session(
        &mut self,
        _channel: Channel<Msg>,
        reply: russh::server::ChannelOpenHandle,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        reply.accept().await;
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    async fn pty_request(
        &mut self,
        channel: ChannelId,
        _term: &str,
        _col_width: u32,
        _row_height: u32,
        _pix_width: u32,
        _pix_height: u32,
        _modes: &[(russh::Pty, u32)],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        session.channel_success(channel)?;
        Ok(())
    }

    async fn shell_request(
        &mut self,
        channel: ChannelId,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        session.channel_success(channel)?;
        let (text, status) = self.result();
        session.data(channel, text.into_bytes())?;
        session.exit_status_request(channel, status)?;
        session.eof(channel)?;
        session.close(channel)?;
        Ok(())
    }

    async fn exec_request(
        &mut self,
        channel: ChannelId,
        _data: &[u8],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        tracing::info!(parent: &self.span, "refused an exec request");
        session.channel_failure(channel)?;
        Ok(())
    }

    async fn subsystem_request(
        &mut self,
        channel: ChannelId,
        _name: &str,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        session.channel_failure(channel)?;
        Ok(())
    }

    async fn x11_request(
        &mut self,
        channel: ChannelId,
        _single_connection: bool,
        _x11_auth_protocol: &str,
        _x11_auth_cookie: &str,
        _x11_screen_number: u32,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        session.channel_failure(channel)?;
        Ok(())
    }

    async fn env_request(
        &mut self,
        channel: ChannelId,
        _variable_name: &str,
        _variable_value: &str,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        session.channel_failure(channel)?;
        Ok(())
    }

    async fn agent_request(
        &mut self,
        channel: ChannelId,
        session: &mut Session,
    ) -> Result<bool, Self::Error> {
        session.channel_failure(channel)?;
        Ok(false)
    }
}
