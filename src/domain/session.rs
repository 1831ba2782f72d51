//! The verify-session state machine.
//!
//! The store loads a session, asks these functions what the next state is, and writes the
//! answer in one transaction with the events it produces. Keeping the rules here keeps them
//! testable without a database or a socket.

use chrono::{DateTime, Utc};

/// Where a session stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionStatus {
    Pending,
    Verified,
    Failed,
}

impl SessionStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Verified => "verified",
            Self::Failed => "failed",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "pending" => Some(Self::Pending),
            "verified" => Some(Self::Verified),
            "failed" => Some(Self::Failed),
            _ => None,
        }
    }
}

/// Why a session failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureReason {
    MaxAttempts,
    Expired,
}

impl FailureReason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::MaxAttempts => "max_attempts",
            Self::Expired => "expired",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "max_attempts" => Some(Self::MaxAttempts),
            "expired" => Some(Self::Expired),
            _ => None,
        }
    }
}

/// The kinds of event a session produces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventKind {
    NewConnection,
    Verified,
    FailedAttempt,
    StatusChanged,
}

impl EventKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NewConnection => "new_connection",
            Self::Verified => "verified",
            Self::FailedAttempt => "failed_attempt",
            Self::StatusChanged => "status_changed",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "new_connection" => Some(Self::NewConnection),
            "verified" => Some(Self::Verified),
            "failed_attempt" => Some(Self::FailedAttempt),
            "status_changed" => Some(Self::StatusChanged),
            _ => None,
        }
    }
}

/// The part of a session the rules look at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionState {
    pub status: SessionStatus,
    pub failure_reason: Option<FailureReason>,
    pub failed_attempts: i32,
    pub max_attempts: i32,
    pub multi_connection: bool,
    pub expired_at: DateTime<Utc>,
    pub completed_at: Option<DateTime<Utc>>,
}

/// Why a session no longer takes connections, in words a person can read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Closed {
    Verified,
    Failed,
    Expired,
    Completed,
    /// The application deleted the session.
    Deleted,
}

impl Closed {
    /// The sentence shown in the terminal of a refused client.
    pub fn explain(self) -> &'static str {
        match self {
            Self::Verified => {
                "This verification session is already verified and takes no more connections."
            }
            Self::Failed => "This verification session has failed: too many unsuccessful attempts.",
            Self::Expired => "This verification session has expired. Ask for a new one.",
            Self::Completed => {
                "This verification session has been completed and takes no more connections."
            }
            Self::Deleted => {
                "This verification session was withdrawn by the application that created it."
            }
        }
    }
}

/// What a finished connection does to its session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptOutcome {
    /// The session was not open any more: the attempt is not counted.
    NotCounted,
    /// One more failed attempt; the session stays pending.
    Counted { failed_attempts: i32 },
    /// One more failed attempt, and it was the last allowed: the session failed.
    CountedAndFailed { failed_attempts: i32 },
}

impl SessionState {
    /// Rule 1 and 9: whether the session takes a new connection at `now`.
    pub fn check_open(&self, now: DateTime<Utc>) -> Result<(), Closed> {
        if self.completed_at.is_some() {
            return Err(Closed::Completed);
        }

        match self.status {
            SessionStatus::Failed if self.failure_reason == Some(FailureReason::Expired) => {
                Err(Closed::Expired)
            }
            SessionStatus::Failed => Err(Closed::Failed),
            _ if now >= self.expired_at => Err(Closed::Expired),
            SessionStatus::Verified if !self.multi_connection => Err(Closed::Verified),
            _ => Ok(()),
        }
    }

    /// Rule 7: a connection ended without meeting the rule.
    ///
    /// Only a pending session counts failed attempts, so parallel connections can never push
    /// `failed_attempts` past `max_attempts`.
    pub fn failed_attempt(&self, now: DateTime<Utc>) -> AttemptOutcome {
        if self.status != SessionStatus::Pending || now >= self.expired_at {
            return AttemptOutcome::NotCounted;
        }

        let failed_attempts = self.failed_attempts + 1;
        if failed_attempts >= self.max_attempts {
            AttemptOutcome::CountedAndFailed { failed_attempts }
        } else {
            AttemptOutcome::Counted { failed_attempts }
        }
    }

    /// Rule 6: whether meeting the rule now turns the session `VERIFIED`. `None` when the
    /// session cannot be verified (failed, expired, completed); `Some(false)` when it already
    /// is verified.
    pub fn verify(&self, now: DateTime<Utc>) -> Option<bool> {
        if self.completed_at.is_some() {
            return None;
        }

        match self.status {
            SessionStatus::Pending if now < self.expired_at => Some(true),
            SessionStatus::Verified if self.multi_connection && now < self.expired_at => {
                Some(false)
            }
            _ => None,
        }
    }

    /// Rule 8: whether the session fails by expiry at `now`.
    pub fn expires(&self, now: DateTime<Utc>) -> bool {
        self.status == SessionStatus::Pending && now >= self.expired_at
    }

    /// Rule 9: whether a verified multi-connection session closes by expiry at `now`, as if
    /// completed.
    pub fn closes_by_expiry(&self, now: DateTime<Utc>) -> bool {
        self.status == SessionStatus::Verified
            && self.multi_connection
            && self.completed_at.is_none()
            && now >= self.expired_at
    }

    /// Whether no further event can ever change this session; subscriptions complete then.
    pub fn is_final(&self) -> bool {
        match self.status {
            SessionStatus::Pending => false,
            SessionStatus::Failed => true,
            SessionStatus::Verified => !self.multi_connection || self.completed_at.is_some(),
        }
    }
}

/// The options that decide when a connection has met the rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MatchRule {
    pub match_all_keys: bool,
    pub multi_key: bool,
}

/// What to do after a key was proven on a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// Rule 5: the rule is met; decide now.
    Met,
    /// Keep asking the client for further keys.
    KeepAsking,
}

impl MatchRule {
    /// Rule 5: given how many configured keys exist and how many are proven on this
    /// connection, whether the rule is met.
    pub fn is_met(self, configured: usize, proven: usize) -> bool {
        if self.match_all_keys {
            configured > 0 && proven >= configured
        } else {
            proven > 0
        }
    }

    /// After a proof: decide now, or keep asking for more keys (multi-key and match-all keep
    /// asking while unproven configured keys remain).
    pub fn progress(self, configured: usize, proven: usize) -> Progress {
        let all_proven = proven >= configured;
        if self.match_all_keys {
            if all_proven {
                Progress::Met
            } else {
                Progress::KeepAsking
            }
        } else if self.multi_key && !all_proven {
            Progress::KeepAsking
        } else {
            Progress::Met
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Duration;

    fn pending(max_attempts: i32) -> SessionState {
        SessionState {
            status: SessionStatus::Pending,
            failure_reason: None,
            failed_attempts: 0,
            max_attempts,
            multi_connection: false,
            expired_at: Utc::now() + Duration::hours(1),
            completed_at: None,
        }
    }

    #[test]
    fn pending_session_is_open_until_it_expires() {
        let state = pending(1);

        assert_eq!(state.check_open(Utc::now()), Ok(()));
        assert_eq!(state.check_open(state.expired_at), Err(Closed::Expired));
    }

    #[test]
    fn last_allowed_failed_attempt_fails_the_session() {
        let mut state = pending(2);

        assert_eq!(
            state.failed_attempt(Utc::now()),
            AttemptOutcome::Counted { failed_attempts: 1 }
        );
        state.failed_attempts = 1;
        assert_eq!(
            state.failed_attempt(Utc::now()),
            AttemptOutcome::CountedAndFailed { failed_attempts: 2 }
        );
    }

    #[test]
    fn failed_session_counts_no_more_attempts_and_refuses_connections() {
        let mut state = pending(1);
        state.status = SessionStatus::Failed;
        state.failure_reason = Some(FailureReason::MaxAttempts);
        state.failed_attempts = 1;

        assert_eq!(state.failed_attempt(Utc::now()), AttemptOutcome::NotCounted);
        assert_eq!(state.check_open(Utc::now()), Err(Closed::Failed));
        assert_eq!(state.verify(Utc::now()), None);
    }

    #[test]
    fn verified_session_takes_connections_only_with_multi_connection() {
        let mut state = pending(1);
        state.status = SessionStatus::Verified;

        assert_eq!(state.check_open(Utc::now()), Err(Closed::Verified));
        assert!(state.is_final());

        state.multi_connection = true;
        assert_eq!(state.check_open(Utc::now()), Ok(()));
        assert_eq!(state.verify(Utc::now()), Some(false));
        assert!(!state.is_final());

        state.completed_at = Some(Utc::now());
        assert_eq!(state.check_open(Utc::now()), Err(Closed::Completed));
        assert!(state.is_final());
    }

    #[test]
    fn verified_multi_connection_session_closes_at_expiry() {
        let mut state = pending(1);
        state.status = SessionStatus::Verified;
        state.multi_connection = true;

        assert!(!state.closes_by_expiry(Utc::now()));
        assert!(state.closes_by_expiry(state.expired_at));
        assert!(!state.expires(state.expired_at));
    }

    #[test]
    fn expired_pending_session_cannot_verify() {
        let mut state = pending(1);
        state.expired_at = Utc::now() - Duration::seconds(1);

        assert!(state.expires(Utc::now()));
        assert_eq!(state.verify(Utc::now()), None);
        assert_eq!(state.failed_attempt(Utc::now()), AttemptOutcome::NotCounted);
    }

    #[test]
    fn one_proven_key_meets_the_default_rule() {
        let rule = MatchRule {
            match_all_keys: false,
            multi_key: false,
        };

        assert!(rule.is_met(3, 1));
        assert_eq!(rule.progress(3, 1), Progress::Met);
        assert!(!rule.is_met(3, 0));
    }

    #[test]
    fn match_all_keys_needs_every_key_on_one_connection() {
        let rule = MatchRule {
            match_all_keys: true,
            multi_key: false,
        };

        assert!(!rule.is_met(2, 1));
        assert_eq!(rule.progress(2, 1), Progress::KeepAsking);
        assert!(rule.is_met(2, 2));
        assert_eq!(rule.progress(2, 2), Progress::Met);
    }

    #[test]
    fn multi_key_keeps_asking_while_keys_remain() {
        let rule = MatchRule {
            match_all_keys: false,
            multi_key: true,
        };

        assert_eq!(rule.progress(2, 1), Progress::KeepAsking);
        assert!(rule.is_met(2, 1));
        assert_eq!(rule.progress(2, 2), Progress::Met);
    }
}
