//! # cogref-core
//!
//! The sans-IO core of cogref: everything about Amazon Cognito's `GetTokensFromRefreshToken`
//! (AWS JSON 1.1, service `cognito-idp`) except moving bytes. No sockets, no clocks, no
//! randomness, no async runtime and no HTTP client: time and random bytes are passed in, and
//! requests and responses cross the boundary as [`http`] types. Transports (`cogref-reqwest`,
//! `cogref-isahc`, `cogref-blocking`) are thin drivers over it.
//!
//! ## What goes in, what comes out
//!
//! | in | function | out |
//! |---|---|---|
//! | fields of the request | [`RefreshInput::builder`] → [`RefreshInputBuilder::build`] | [`RefreshInput`] or [`InvalidInput`] (field and rule, never the value) |
//! | region, FIPS, dual-stack, override | [`EndpointConfig::resolve`] | [`Endpoint`] or [`EndpointError`] |
//! | endpoint, input, attempt number, invocation id | [`build_request`] | [`OutgoingRequest`] wrapping `http::Request<Vec<u8>>` |
//! | status, headers, body bytes, "now" | [`parse_response`] | [`RefreshOutput`] or [`Error`] |
//! | an [`Error`] | [`Error::retry_kind`], [`Error::retry_after`], [`Error::requires_sign_in`] | what to do next |
//! | any [`Operation`]'s input, endpoint, config, "now", a seed | [`Call::new`], then [`Call::poll`] / [`Call::on_response`] | the attempts to send, the waits, then the output or a [`CallError`] |
//! | a transport, clocks, endpoint, config | [`Client::new`], then [`Client::refresh`] / [`Client::revoke`] / [`Client::call`] | the output, or a [`CallError`] after the attempts |
//! | the refresh token to revoke, client id, secret | [`RevokeInput::builder`] (or [`RevokeInput::from_refresh`]) → [`Client::revoke`] | [`RevokeOutput`] or a [`CallError`] |
//!
//! ## Layout
//!
//! | module | what it holds |
//! |---|---|
//! | [`protocol`] | the AWS JSON 1.1 rules every operation shares: endpoint and partitions, request headers, invocation id and attempt header, status to success or error, error-code rules, request id, retry-after and `Date`, body limits, redaction |
//! | [`ops`] | the [`Operation`] trait and each operation's own rules: [`ops::refresh`] (`GetTokensFromRefreshToken`: input, body, output with the last-key-wins reading and the rotated-token salvage), [`ops::revoke`] (`RevokeToken`); [`ops::shapes`] the fields they share |
//! | [`call`] | the attempt state machine generic over the operation, retry policy and quota, classification, the transport traits and drivers, `quiet` |
//! | [`session`] | the session state machine and the JWT claims it reads |
//! | [`error`] | the error taxonomy, and what a `NotAuthorizedException` means |
//!
//! The module paths of earlier versions (`cogref_core::driver`, `jwt`, `redact`, `quiet`,
//! `retry`, `response`, `request`, `input`, `endpoint`, `error_code`, `classify`, `partition`,
//! `not_authorized`) still work: each is an alias of the module that now holds it, or (`input`,
//! `request`, `response`) a module re-exporting the parts it had.
//!
//! ## The loop a driver runs
//!
//! ```text
//! input    = RefreshInput::builder()…build()?          // once
//! endpoint = EndpointConfig::…resolve()?                // once
//! id       = InvocationId::from_random_bytes(rand16)    // once per call
//! for attempt in 1..=max:
//!     request  = build_request(&endpoint, &input, &AttemptInfo { id, attempt, max })
//!     response = transport.send(request.into_http())    // body read up to ResponseLimits
//!     match parse_response(status, &headers, &body, SystemTime::now(), &limits):
//!         Ok(output)                        => return output   // store output.refresh_token if Some
//!         Err(e) if e.retry_kind().is_some() => sleep(backoff or e.retry_after()); continue
//!         Err(e)                            => return e        // e.requires_sign_in(): sign in again
//! ```
//!
//! ## A complete exchange, without a network
//!
//! ```
//! use std::time::{Duration, SystemTime};
//! use cogref_core::{
//!     build_request, parse_response, AttemptInfo, EndpointConfig, InvocationId, RefreshInput,
//!     ResponseLimits,
//! };
//! use secrecy::ExposeSecret;
//!
//! let input = RefreshInput::builder()
//!     .refresh_token("eyJjdHkiOiJKV1QifQ.canary-refresh")
//!     .client_id("1example23456789abcdefghij")
//!     .build()?;
//! let endpoint = EndpointConfig::new().region("us-east-1").resolve()?;
//! let attempt = AttemptInfo::first(InvocationId::from_random_bytes([42; 16]), 3);
//!
//! let request = build_request(&endpoint, &input, &attempt);
//! assert_eq!(request.http().headers()["x-amz-target"],
//!            "AWSCognitoIdentityProviderService.GetTokensFromRefreshToken");
//!
//! // … a transport sends `request.into_http()` and reads the response …
//! let body = br#"{"AuthenticationResult":{"AccessToken":"new.access.token","ExpiresIn":3600,
//!                 "TokenType":"Bearer","RefreshToken":"rotated.refresh.token"}}"#;
//! let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_750_000_000);
//! let output = parse_response(http::StatusCode::OK, &http::HeaderMap::new(), body, now,
//!                             &ResponseLimits::default())?;
//! assert_eq!(output.access_token.expose_secret(), "new.access.token");
//! // Rotation returned a new refresh token: the next call must use it.
//! let next = input.with_refresh_token(output.refresh_token.expect("rotated"))?;
//! assert_eq!(next.refresh_token().expose_secret(), "rotated.refresh.token");
//! # Ok::<(), cogref_core::Error>(())
//! ```
//!
//! ## Secrets
//!
//! The refresh, access and ID tokens, the client secret and the device key are
//! [`secrecy::SecretString`]s. No `Debug` or `Display` of a type of this crate shows one: input
//! errors name fields, never values, and any text taken from a response passes through
//! [`redact::redact`]. The only way to see a secret is `ExposeSecret::expose_secret`, or the
//! body of the `http::Request` that [`OutgoingRequest::into_http`] hands to the transport.
//!
//! ## Fidelity
//!
//! The wire format, endpoint rules, error-code rules and retry classification follow the AWS
//! Smithy model and the official Rust SDK; each module cites the section of the project's
//! `docs/protocol.md` it implements and says where it deliberately differs.

#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![deny(clippy::print_stdout, clippy::print_stderr)]

pub mod call;
pub mod error;
pub mod ops;
pub mod protocol;
pub mod session;

// The modules' paths before the core was arranged by protocol, operation and call (kept working,
// each an alias of the module that now holds it).
/// Old path of [`call::classify`].
pub use call::classify;
/// Old path of [`call::driver`].
pub use call::driver;
/// Old path of [`call::quiet`].
pub use call::quiet;
/// Old path of [`call::retry`].
pub use call::retry;
/// Old path of [`error::not_authorized`].
pub use error::not_authorized;
/// Old path of [`protocol::endpoint`].
pub use protocol::endpoint;
/// Old path of [`protocol::error_code`].
pub use protocol::error_code;
/// Old path of [`protocol::partition`].
pub use protocol::partition;
/// Short path of [`protocol::printable`].
pub use protocol::printable;
/// Old path of [`protocol::redact`].
pub use protocol::redact;
/// Old path of [`session::jwt`].
pub use session::jwt;

/// Old path of the input: [`ops::shapes`] (fields, rules, patterns) and
/// [`ops::refresh::input`] ([`RefreshInput`]), re-exported.
pub mod input {
    pub use crate::ops::refresh::input::{RefreshInput, RefreshInputBuilder};
    pub use crate::ops::shapes::*;
}

/// Old path of the request: [`protocol::request`] (headers, invocation id, attempt header) and
/// [`ops::refresh`]'s target, body and [`build_request`], re-exported.
pub mod request {
    pub use crate::ops::refresh::body::body_bytes;
    pub use crate::ops::refresh::{TARGET, build_request};
    pub use crate::protocol::request::*;
}

/// Old path of the response: [`protocol::response`] (dispatch, request id, retry-after, date,
/// limits) and [`ops::refresh::output`] with [`parse_response`],
/// re-exported.
pub mod response {
    pub use crate::ops::refresh::output::{NewDeviceMetadata, RefreshOutput};
    pub use crate::ops::refresh::parse_response;
    pub use crate::protocol::response::*;
}

pub use call::classify::RetryKind;
pub use call::driver::{AsyncTransport, BlockingTransport, Client, Environment};
pub use call::dyn_transport::{DynAsyncTransport, DynBlockingClient, DynClient};
pub use call::retry::{RetryConfig, RetryPolicy, RetryQuota};
pub use call::{
    Attempt, Call, CallConfig, CallError, LONGEST_TIMEOUT, RefreshCall, SendOptions, Step, Timeouts,
};
pub use error::not_authorized::NotAuthorizedCause;
pub use error::{
    Error, ResponseError, ResponseErrorKind, ServiceError, ServiceErrorKind, TransportError,
    TransportErrorKind,
};
pub use ops::Operation;
pub use ops::refresh::{
    GetTokensFromRefreshToken, NewDeviceMetadata, RefreshInput, RefreshInputBuilder, RefreshOutput,
    build_request, parse_response,
};
pub use ops::revoke::{RevokeInput, RevokeInputBuilder, RevokeOutput, RevokeToken};
pub use ops::shapes::{Field, InvalidInput, Rule};
pub use protocol::endpoint::{Endpoint, EndpointConfig, EndpointError};
pub use protocol::request::{AttemptInfo, InvocationId, OutgoingRequest};
pub use protocol::response::ResponseLimits;
pub use session::{Decision, Moment, Now, Session, SessionConfig, TokenSet};

/// Re-export of the `secrecy` crate, whose types carry every secret in this API.
pub use secrecy;

/// Re-export of the `http` crate, whose types are this crate's boundary.
pub use http;
