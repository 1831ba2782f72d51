//! When to try a delivery again.

use std::time::Duration;

use chrono::{DateTime, Utc};

/// The longest wait before any retry, whatever the backoff or `Retry-After` asks for.
pub const MAX_RETRY_DELAY: Duration = Duration::from_secs(24 * 3600);

/// How one attempt ended, as far as retrying is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptVerdict {
    /// A 2xx answer.
    Delivered,
    /// 410 Gone: the receiver asks never to be called again for this delivery.
    Gone,
    /// Anything else: another status, a refused target, a timeout, a network failure.
    Failed,
}

/// What happens to a delivery after an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NextStep {
    Succeeded,
    /// No retry left (or 410): the delivery failed.
    GaveUp,
    RetryAfter(Duration),
}

/// The retry policy of one webhook.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryPolicy {
    pub retries: i32,
    pub initial_backoff: i32,
    pub backoff_multiplier: f64,
}

impl RetryPolicy {
    /// Retry `n` (1 for the first retry) waits `initialBackoff * backoffMultiplier^(n-1)`
    /// seconds, at most [`MAX_RETRY_DELAY`].
    pub fn backoff(&self, retry: i32) -> Duration {
        let exponent = retry.saturating_sub(1).max(0);
        let seconds = f64::from(self.initial_backoff.max(1))
            * self.backoff_multiplier.max(1.0).powi(exponent);
        if seconds.is_finite() && seconds < MAX_RETRY_DELAY.as_secs_f64() {
            Duration::from_secs_f64(seconds)
        } else {
            MAX_RETRY_DELAY
        }
    }

    /// The step after an attempt that was the `round_attempts`-th of its round (1 for the
    /// first send or redelivery). `retry_after` is the receiver's wish, honoured when longer
    /// than the backoff.
    pub fn next_step(
        &self,
        verdict: AttemptVerdict,
        round_attempts: i32,
        retry_after: Option<Duration>,
    ) -> NextStep {
        match verdict {
            AttemptVerdict::Delivered => NextStep::Succeeded,
            AttemptVerdict::Gone => NextStep::GaveUp,
            AttemptVerdict::Failed if round_attempts > self.retries => NextStep::GaveUp,
            AttemptVerdict::Failed => {
                let backoff = self.backoff(round_attempts);
                let wait = retry_after.map_or(backoff, |asked| asked.max(backoff));
                NextStep::RetryAfter(wait.min(MAX_RETRY_DELAY))
            }
        }
    }
}

/// A `Retry-After` value: delay seconds or an HTTP date.
pub fn parse_retry_after(value: &str, now: DateTime<Utc>) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds.min(MAX_RETRY_DELAY.as_secs())));
    }
    let at = DateTime::parse_from_rfc2822(value).ok()?;
    let wait = at.with_timezone(&Utc) - now;
    Some(wait.to_std().unwrap_or(Duration::ZERO).min(MAX_RETRY_DELAY))
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: RetryPolicy = RetryPolicy {
        retries: 3,
        initial_backoff: 10,
        backoff_multiplier: 2.0,
    };

    #[test]
    fn backoff_grows_geometrically() {
        assert_eq!(POLICY.backoff(1), Duration::from_secs(10));
        assert_eq!(POLICY.backoff(2), Duration::from_secs(20));
        assert_eq!(POLICY.backoff(3), Duration::from_secs(40));
    }

    #[test]
    fn backoff_is_capped() {
        let steep = RetryPolicy {
            retries: 20,
            initial_backoff: 86_400,
            backoff_multiplier: 10.0,
        };

        assert_eq!(steep.backoff(20), MAX_RETRY_DELAY);
    }

    #[test]
    fn retries_run_out() {
        assert_eq!(
            POLICY.next_step(AttemptVerdict::Failed, 1, None),
            NextStep::RetryAfter(Duration::from_secs(10))
        );
        assert_eq!(
            POLICY.next_step(AttemptVerdict::Failed, 3, None),
            NextStep::RetryAfter(Duration::from_secs(40))
        );
        assert_eq!(
            POLICY.next_step(AttemptVerdict::Failed, 4, None),
            NextStep::GaveUp
        );
    }

    #[test]
    fn gone_and_success_end_the_delivery() {
        assert_eq!(
            POLICY.next_step(AttemptVerdict::Gone, 1, None),
            NextStep::GaveUp
        );
        assert_eq!(
            POLICY.next_step(AttemptVerdict::Delivered, 1, None),
            NextStep::Succeeded
        );
    }

    #[test]
    fn a_longer_retry_after_wins_a_shorter_one_does_not() {
        assert_eq!(
            POLICY.next_step(AttemptVerdict::Failed, 1, Some(Duration::from_secs(60))),
            NextStep::RetryAfter(Duration::from_secs(60))
        );
        assert_eq!(
            POLICY.next_step(AttemptVerdict::Failed, 1, Some(Duration::from_secs(1))),
            NextStep::RetryAfter(Duration::from_secs(10))
        );
    }

    #[test]
    fn retry_after_takes_seconds_or_a_date() {
        let now = DateTime::parse_from_rfc3339("2015-10-21T07:27:00Z")
            .unwrap()
            .with_timezone(&Utc);

        assert_eq!(
            parse_retry_after("120", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now),
            Some(Duration::from_secs(60))
        );
        assert_eq!(parse_retry_after("soon", now), None);
    }
}
