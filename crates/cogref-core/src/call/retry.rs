//! Retry settings, backoff and the retry quota (docs/protocol.md §6), as the AWS SDKs' standard mode
//! does them.
//!
//! # Retries and refresh-token rotation
//!
//! A retry sends the **same** refresh token again. With rotation on, if the first attempt reached
//! Cognito and only its response was lost, Cognito has already rotated the token: the retry then
//! works only inside the app client's `RetryGracePeriodSeconds`, and with a grace period of 0 it
//! fails and the session is gone. [`RetryPolicy::Standard`] (the SDK's behaviour) accepts that
//! risk; [`RetryPolicy::RotationSafe`] never sends again once the request may have reached the
//! server: it retries only failures known to happen before the request was written (a refused
//! connection, a connect timeout) and error responses from Cognito, which prove the token was not
//! consumed.

use std::time::Duration;

use crate::call::classify::RetryKind;
use crate::error::Error;

/// Which failures may be retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RetryPolicy {
    /// Retry every retryable failure (throttling, 5xx, timeouts, I/O), as the AWS SDKs do.
    /// With rotation and a grace period of 0 a retry after a lost response ends the session.
    #[default]
    Standard,
    /// Retry only when the refresh token provably did not reach Cognito, or Cognito answered
    /// with an error code: connection failures before the request was written, and retryable
    /// service errors (throttling, `InternalErrorException`). Timeouts, resets and proxy 5xx
    /// pages without a Cognito error code are not retried.
    RotationSafe,
}

/// Retry settings. Defaults: standard policy, 3 attempts, backoff from 1 s up to 20 s.
///
/// See the [module docs](self) for how retries interact with refresh-token rotation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryConfig {
    /// Attempts in all, the first included; 1 turns retries off. Values below 1 count as 1.
    pub max_attempts: u32,
    /// Base of the exponential backoff.
    pub initial_backoff: Duration,
    /// Cap of any single wait, the server's `x-amz-retry-after` included.
    pub max_backoff: Duration,
    /// Which failures may be retried.
    pub policy: RetryPolicy,
}

impl Default for RetryConfig {
    fn default() -> Self {
        Self {
            max_attempts: 3,
            initial_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(20),
            policy: RetryPolicy::Standard,
        }
    }
}

impl RetryConfig {
    /// No retries: one attempt.
    pub fn disabled() -> Self {
        Self {
            max_attempts: 1,
            ..Self::default()
        }
    }

    /// The default settings with [`RetryPolicy::RotationSafe`].
    pub fn rotation_safe() -> Self {
        Self {
            policy: RetryPolicy::RotationSafe,
            ..Self::default()
        }
    }

    /// The effective attempt count (at least 1).
    pub fn attempts(&self) -> u32 {
        self.max_attempts.max(1)
    }

    /// The wait before the next attempt, after `attempts_made` attempts (at least 1).
    ///
    /// Full jitter: `jitter × min(initial × 2^(attempts_made−1), max)`, with `jitter` in
    /// `[0, 1)` drawn by the caller. A server hint replaces it, capped at `max_backoff`.
    ///
    /// ```
    /// use std::time::Duration;
    /// use cogref_core::retry::RetryConfig;
    /// let c = RetryConfig::default();
    /// assert_eq!(c.backoff(1, 0.5, None), Duration::from_millis(500));
    /// assert_eq!(c.backoff(2, 0.5, None), Duration::from_secs(1));
    /// assert_eq!(c.backoff(9, 0.5, None), Duration::from_secs(10)); // capped at 20 s
    /// assert_eq!(c.backoff(1, 0.5, Some(Duration::from_secs(60))), Duration::from_secs(20));
    /// ```
    pub fn backoff(
        &self,
        attempts_made: u32,
        jitter: f64,
        retry_after: Option<Duration>,
    ) -> Duration {
        if let Some(hint) = retry_after {
            return hint.min(self.max_backoff);
        }
        let exponent = attempts_made.saturating_sub(1).min(62);
        let ceiling = self
            .initial_backoff
            .checked_mul(1u32.checked_shl(exponent).unwrap_or(u32::MAX))
            .unwrap_or(self.max_backoff)
            .min(self.max_backoff);
        ceiling.mul_f64(jitter.clamp(0.0, 1.0))
    }

    /// Whether `error` may be retried under this policy, and as what.
    ///
    /// `None` for a final error, and under [`RetryPolicy::RotationSafe`] for any failure after
    /// which the token may have been consumed.
    pub fn verdict(&self, error: &Error) -> Option<RetryKind> {
        let kind = error.retry_kind()?;
        match self.policy {
            RetryPolicy::Standard => Some(kind),
            RetryPolicy::RotationSafe => match error {
                // A Cognito error code proves Cognito rejected the request whole.
                Error::Service(_) => Some(kind),
                Error::Transport(t) if !t.request_may_have_been_sent() => Some(kind),
                _ => None,
            },
        }
    }
}

/// The retry quota: a token bucket shared by one client's calls, so that an outage does not
/// turn into a retry storm (docs/protocol.md §6.4).
///
/// A retry costs [`RetryQuota::TRANSIENT_COST`] or [`RetryQuota::THROTTLING_COST`]; when the
/// bucket cannot pay, the call stops retrying and returns its last error. A call that succeeds
/// after retrying returns what its last retry took; one that succeeds at once adds one token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryQuota {
    capacity: u32,
    available: u32,
}

impl Default for RetryQuota {
    fn default() -> Self {
        Self::new(Self::DEFAULT_CAPACITY)
    }
}

impl RetryQuota {
    /// The SDKs' capacity.
    pub const DEFAULT_CAPACITY: u32 = 500;
    /// Cost of retrying a transient error.
    pub const TRANSIENT_COST: u32 = 10;
    /// Cost of retrying a throttling error.
    pub const THROTTLING_COST: u32 = 5;

    /// A full bucket of `capacity` tokens.
    pub fn new(capacity: u32) -> Self {
        Self {
            capacity,
            available: capacity,
        }
    }

    /// Tokens left.
    pub fn available(&self) -> u32 {
        self.available
    }

    /// Takes the cost of one retry of `kind`; `None` when the bucket cannot pay.
    pub fn try_acquire(&mut self, kind: RetryKind) -> Option<u32> {
        let cost = match kind {
            RetryKind::Transient => Self::TRANSIENT_COST,
            RetryKind::Throttling => Self::THROTTLING_COST,
        };
        self.available = self.available.checked_sub(cost)?;
        Some(cost)
    }

    /// Returns `tokens` (the permit of a retry that led to success), up to capacity.
    pub fn release(&mut self, tokens: u32) {
        self.available = self.available.saturating_add(tokens).min(self.capacity);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::{TransportError, TransportErrorKind};

    #[test]
    fn backoff_grows_exponentially_up_to_the_cap() {
        let c = RetryConfig::default();
        let waits: Vec<u64> = (1..=7)
            .map(|n| c.backoff(n, 0.999_999, None).as_secs())
            .collect();
        assert_eq!(waits, [0, 1, 3, 7, 15, 19, 19]);
    }

    #[test]
    fn jitter_zero_means_no_wait_and_out_of_range_jitter_is_clamped() {
        let c = RetryConfig::default();
        assert_eq!(c.backoff(3, 0.0, None), Duration::ZERO);
        assert_eq!(c.backoff(1, 7.0, None), Duration::from_secs(1));
        assert_eq!(c.backoff(1, f64::NAN.max(-1.0), None), Duration::ZERO);
    }

    #[test]
    fn a_huge_attempt_count_does_not_overflow() {
        let c = RetryConfig::default();
        assert_eq!(c.backoff(u32::MAX, 0.5, None), Duration::from_secs(10));
    }

    #[test]
    fn quota_pays_transient_10_and_throttling_5_until_empty() {
        let mut q = RetryQuota::new(24);
        assert_eq!(q.try_acquire(RetryKind::Transient), Some(10));
        assert_eq!(q.try_acquire(RetryKind::Throttling), Some(5));
        assert_eq!(q.try_acquire(RetryKind::Transient), None);
        assert_eq!(q.available(), 9);
        assert_eq!(q.try_acquire(RetryKind::Throttling), Some(5));
        q.release(100);
        assert_eq!(q.available(), 24);
    }

    #[test]
    fn rotation_safe_retries_only_what_cannot_have_consumed_the_token() {
        let safe = RetryConfig::rotation_safe();
        let refused: Error = TransportError::new(TransportErrorKind::Connect, "refused").into();
        let timeout: Error = TransportError::new(TransportErrorKind::Timeout, "slow").into();
        let connect_timeout: Error = TransportError::new(TransportErrorKind::Timeout, "connect")
            .not_sent()
            .into();
        assert_eq!(safe.verdict(&refused), Some(RetryKind::Transient));
        assert_eq!(safe.verdict(&connect_timeout), Some(RetryKind::Transient));
        assert_eq!(safe.verdict(&timeout), None);
        assert_eq!(
            RetryConfig::default().verdict(&timeout),
            Some(RetryKind::Transient)
        );
    }
}
