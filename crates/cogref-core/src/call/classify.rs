//! Retry classification: which failures may be retried, and as what (docs/protocol.md §6.2).
//!
//! The rules are those of the AWS SDKs' standard mode: a 500, 502, 503 or 504 status is a
//! transient error; an error code in [`THROTTLING_ERRORS`] is a throttling error and one in
//! [`TRANSIENT_ERRORS`] a transient error, the code taking precedence over the status. Every
//! other service error, `NotAuthorizedException` and `RefreshTokenReuseException` among them,
//! is final on any other status; on a 500, 502, 503 or 504 the SDK retries it whatever its code,
//! and so does cogref (an error code proves the request was rejected whole, so resending is
//! safe under rotation; the error then both [`requires_sign_in`](crate::Error::requires_sign_in)
//! and is retryable). A 429 with an unknown code is not retried (429 is not in the status list).

use http::StatusCode;

/// The kind of a retryable failure; the retry quota charges them differently.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RetryKind {
    /// The service asked the caller to slow down.
    Throttling,
    /// A failure that may not recur: 5xx, timeout, connection problem.
    Transient,
}

/// Error codes the AWS SDKs treat as throttling.
pub const THROTTLING_ERRORS: [&str; 14] = [
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "RequestThrottledException",
    "TooManyRequestsException",
    "ProvisionedThroughputExceededException",
    "TransactionInProgressException",
    "RequestLimitExceeded",
    "BandwidthLimitExceeded",
    "LimitExceededException",
    "RequestThrottled",
    "SlowDown",
    "PriorRequestNotComplete",
    "EC2ThrottledException",
];

/// Error codes the AWS SDKs treat as transient.
pub const TRANSIENT_ERRORS: [&str; 2] = ["RequestTimeout", "RequestTimeoutException"];

/// Statuses that make any response a transient error.
pub const TRANSIENT_STATUSES: [u16; 4] = [500, 502, 503, 504];

/// The verdict for a sanitized error code alone.
pub fn by_code(code: &str) -> Option<RetryKind> {
    if THROTTLING_ERRORS.contains(&code) {
        Some(RetryKind::Throttling)
    } else if TRANSIENT_ERRORS.contains(&code) {
        Some(RetryKind::Transient)
    } else {
        None
    }
}

/// The verdict for an HTTP status alone.
pub fn by_status(status: StatusCode) -> Option<RetryKind> {
    TRANSIENT_STATUSES
        .contains(&status.as_u16())
        .then_some(RetryKind::Transient)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn too_many_requests_is_throttling() {
        assert_eq!(
            by_code("TooManyRequestsException"),
            Some(RetryKind::Throttling)
        );
    }

    #[test]
    fn not_authorized_and_reuse_are_not_retried() {
        assert_eq!(by_code("NotAuthorizedException"), None);
        assert_eq!(by_code("RefreshTokenReuseException"), None);
    }

    #[test]
    fn only_500_502_503_504_are_transient_statuses() {
        for s in 100..=599u16 {
            let status = StatusCode::from_u16(s).expect("valid status");
            let expected = [500, 502, 503, 504].contains(&s);
            assert_eq!(by_status(status).is_some(), expected, "status {s}");
        }
    }
}
