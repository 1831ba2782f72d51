//! The russh `Handler`: a thin adapter between the SSH protocol and the verification rules.
//!
//! Only [`auth_publickey`](Handler::auth_publickey), which russh calls after it has checked
//! the client's signature, may mark a key proven. An offer (a key sent without a signature) is
//! recorded and, when it matches a listed key, answered "acceptable" so the client signs —
//! nothing more. Keyboard-interactive with zero prompts is accepted once the client has no
//! more keys, only to open a channel that explains the result; it never proves anything.

use russh::server::{Auth, Handler, Msg, PublicKeyOffer, Response, Session, VerifiedPublicKey};
use russh::{Channel, ChannelId, MethodKind, MethodSet};

use super::connection::{ConnectionHandler, Outcome, take_decision};
use super::terminal;
use crate::domain::keys::describe_key_data;

/// Once the outcome is known, only keyboard-interactive is left: it opens a channel to show
/// the person the result.
fn reject_towards_explanation() -> Auth {
    Auth::Reject {
        proceed_with_methods: Some(MethodSet::from(&[MethodKind::KeyboardInteractive][..])),
        partial_success: false,
    }
}

/// A refused connection is offered no method at all; the disconnect reason tells it why.
fn reject_refused() -> Auth {
    Auth::Reject {
        proceed_with_methods: Some(MethodSet::empty()),
        partial_success: false,
    }
}

/// RSA keys prove something only with SHA-2 signatures (`rsa-sha2-256`, `rsa-sha2-512`);
/// the legacy `ssh-rsa` algorithm signs with SHA-1.
fn is_sha1_rsa(algorithm: &russh::keys::Algorithm) -> bool {
    matches!(algorithm, russh::keys::Algorithm::Rsa { hash: None })
}

impl ConnectionHandler {
    /// Writes the result of a decided connection and closes the channel.
    fn finish(&self, channel: ChannelId, session: &mut Session) -> Result<(), russh::Error> {
        let (text, status) = match &self.outcome {
            Outcome::Verified { fingerprint } => (terminal::verified(fingerprint), 0),
            Outcome::NotVerified(report) => (terminal::not_verified(report), 1),
            Outcome::NotConfirmed { timed_out, report } => {
                (terminal::not_confirmed(*timed_out, report), 1)
            }
            Outcome::Closed(closed) => (terminal::block(closed.explain()), 1),
            Outcome::Undecided | Outcome::AwaitingConfirm { .. } => {
                ("Not verified.\r\n".to_owned(), 1)
            }
        };
        session.data(channel, text.into_bytes())?;
        session.exit_status_request(channel, status)?;
        session.eof(channel)?;
        session.close(channel)
    }

    /// Rule 6: the person answered the `[y/N]` prompt (or the input ended).
    async fn answer(&mut self, channel: ChannelId, confirmed: bool, session: &mut Session) {
        let Outcome::AwaitingConfirm { fingerprint } = self.outcome.clone() else {
            return;
        };
        if !self.prompted {
            return;
        }
        if confirmed {
            session.data(channel, b"y\r\n".to_vec()).ok();
            self.confirm_rule_met(fingerprint).await;
        } else {
            let report = self.failure_report();
            let attempt = self.fail_attempt().await;
            let report = terminal::FailureReport { attempt, ..report };
            self.outcome = Outcome::NotConfirmed {
                timed_out: false,
                report,
            };
        }
        if !matches!(self.outcome, Outcome::AwaitingConfirm { .. }) {
            let _ = self.finish(channel, session);
        }
    }

    /// Fails a `mustConfirm` connection whose person does not answer in time.
    fn start_confirm_timer(&self, channel: ChannelId, session: &Session) {
        let handle = session.handle();
        let ledger = self.ledger.clone();
        let store = self.ctx.store.clone();
        let timeout = self.ctx.confirm_timeout;
        let report = self.failure_report();
        let span = self.span.clone();

        tokio::spawn(async move {
            tokio::time::sleep(timeout).await;
            let Some((session_id, connection_id)) = take_decision(&ledger) else {
                return;
            };
            let attempt = match store.record_failed_attempt(session_id, connection_id).await {
                Ok(attempt) => Some(attempt),
                Err(error) => {
                    tracing::error!(parent: &span, %error, "cannot record a failed attempt");
                    None
                }
            };
            tracing::info!(parent: &span, ?attempt, "confirmation timed out");
            let report = terminal::FailureReport { attempt, ..report };
            let text = terminal::not_confirmed(true, &report);
            let _ = handle.data(channel, text.into_bytes()).await;
            let _ = handle.exit_status_request(channel, 1).await;
            let _ = handle.eof(channel).await;
            let _ = handle.close(channel).await;
        });
    }
}

impl Handler for ConnectionHandler {
    type Error = anyhow::Error;

    async fn auth_none(&mut self, user: &str) -> Result<Auth, Self::Error> {
        if self.attribute(user).await {
            Ok(Auth::reject())
        } else {
            Ok(reject_refused())
        }
    }

    async fn auth_password(&mut self, _user: &str, _password: &str) -> Result<Auth, Self::Error> {
        Ok(Auth::reject())
    }

    async fn auth_publickey_offered(
        &mut self,
        user: &str,
        offer: PublicKeyOffer<'_>,
    ) -> Result<Auth, Self::Error> {
        if !self.attribute(user).await {
            return Ok(reject_refused());
        }
        if !matches!(self.outcome, Outcome::Undecided) {
            return Ok(reject_towards_explanation());
        }
        if is_sha1_rsa(offer.algorithm) {
            tracing::info!(parent: &self.span, "refused an RSA key offered with SHA-1 signatures");
            return Ok(Auth::reject());
        }
        let info = match describe_key_data(offer.public_key.key_data()) {
            Ok(info) => info,
            Err(reason) => {
                tracing::info!(parent: &self.span, %reason, "refused an offered key");
                return Ok(Auth::reject());
            }
        };

        match self.offer(info).await? {
            Some(_) => Ok(Auth::Accept),
            None => Ok(Auth::reject()),
        }
    }

    async fn auth_publickey(
        &mut self,
        user: &str,
        key: VerifiedPublicKey<'_>,
    ) -> Result<Auth, Self::Error> {
        if !self.attribute(user).await {
            return Ok(reject_refused());
        }
        if !matches!(self.outcome, Outcome::Undecided) {
            return Ok(reject_towards_explanation());
        }
        if is_sha1_rsa(key.algorithm) {
            return Ok(Auth::reject());
        }
        let Ok(info) = describe_key_data(key.public_key.key_data()) else {
            return Ok(Auth::reject());
        };

        if self.prove(&info).await? {
            Ok(Auth::Accept)
        } else if matches!(self.outcome, Outcome::Undecided) {
            // Keep asking: the next key may be needed (matchAllKeys, multiKey).
            Ok(Auth::reject())
        } else {
            Ok(reject_towards_explanation())
        }
    }

    async fn auth_keyboard_interactive<'a>(
        &'a mut self,
        user: &str,
        _submethods: &str,
        _response: Option<Response<'a>>,
    ) -> Result<Auth, Self::Error> {
        if !self.attribute(user).await {
            return Ok(reject_refused());
        }
        if matches!(self.outcome, Outcome::Undecided) {
            self.conclude_without_more_keys().await;
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
        session.data(channel, self.preamble().into_bytes())?;

        if let Outcome::AwaitingConfirm { fingerprint } = &self.outcome {
            session.data(channel, terminal::confirm_prompt(fingerprint).into_bytes())?;
            self.prompted = true;
            self.start_confirm_timer(channel, session);
            return Ok(());
        }
        self.finish(channel, session)?;
        Ok(())
    }

    async fn data(
        &mut self,
        channel: ChannelId,
        data: &[u8],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        // Only the first key typed after the prompt counts: `y` or `Y` confirms.
        if let Some(&first) = data.first() {
            self.answer(channel, first == b'y' || first == b'Y', session)
                .await;
        }
        Ok(())
    }

    async fn channel_eof(
        &mut self,
        channel: ChannelId,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        // End of input before an answer is a refusal.
        self.answer(channel, false, session).await;
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
