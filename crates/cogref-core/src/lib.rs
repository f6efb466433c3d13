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
pub mod classify;
pub mod driver;
pub mod endpoint;
pub mod error;
pub mod error_code;
pub mod input;
pub mod jwt;
pub mod not_authorized;
pub mod partition;
pub mod quiet;
pub mod redact;
pub mod request;
pub mod response;
pub mod retry;
pub mod session;

pub use call::{Attempt, CallConfig, CallError, RefreshCall, SendOptions, Step, Timeouts};
pub use classify::RetryKind;
pub use driver::{AsyncTransport, BlockingTransport, Client, Environment};
pub use endpoint::{Endpoint, EndpointConfig, EndpointError};
pub use error::{
    Error, ResponseError, ResponseErrorKind, ServiceError, ServiceErrorKind, TransportError,
    TransportErrorKind,
};
pub use input::{Field, InvalidInput, RefreshInput, RefreshInputBuilder, Rule};
pub use not_authorized::NotAuthorizedCause;
pub use request::{AttemptInfo, InvocationId, OutgoingRequest, build_request};
pub use response::{NewDeviceMetadata, RefreshOutput, ResponseLimits, parse_response};
pub use retry::{RetryConfig, RetryPolicy, RetryQuota};
pub use session::{Decision, Moment, Now, Session, SessionConfig, TokenSet};

/// Re-export of the `secrecy` crate, whose types carry every secret in this API.
pub use secrecy;

/// Re-export of the `http` crate, whose types are this crate's boundary.
pub use http;
