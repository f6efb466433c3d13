//! The AWS JSON 1.1 protocol as Cognito user pools speak it, shared by every operation
//! (docs/protocol.md §1, §2, §4, §5).
//!
//! | module | rules |
//! |---|---|
//! | [`endpoint`], [`partition`] | region, FIPS, dual-stack and override to URL; partitions; `from_env` |
//! | [`request`] | the unsigned `POST /`: headers, `X-Amz-Target`, invocation id, attempt header |
//! | [`response`] | status to success or error, request id, `x-amz-retry-after`, `Date`, body limits |
//! | [`error_code`] | where an error response's code comes from, and how it is sanitized |
//! | [`redact`] | what of the network's text may reach a message |
//! | [`printable`] | how that text is escaped so that a terminal shows it as it is |
//! | [`sent`] | what the request carried: secrets its response must not show back |
//! | `escapes` | how a reader reads the escapes of a text shown (the last screen of [`sent`]) |
//!
//! What differs between operations (target, body, success output) is in [`crate::ops`].

pub mod endpoint;
pub mod error_code;
mod escapes;
pub mod partition;
pub mod printable;
pub mod redact;
pub mod request;
pub mod response;
pub mod sent;
