//! One error taxonomy for the whole call.
//!
//! [`Error`] has one variant per place a refresh can fail:
//!
//! | variant | meaning | typical remedy |
//! |---|---|---|
//! | [`Error::InvalidInput`] | the request failed validation before anything was sent | fix the input |
//! | [`Error::Endpoint`] | no endpoint could be resolved from the configuration | fix the configuration |
//! | [`Error::Service`] | Cognito answered with an error code | depends on the code: see [`ServiceErrorKind`] |
//! | [`Error::Response`] | a response arrived but is not a valid answer | retry if the status is 5xx |
//! | [`Error::Transport`] | the HTTP exchange itself failed | usually retry |
//!
//! The questions a caller asks of any error have methods: [`Error::retry_kind`] (may I retry,
//! and as what?), [`Error::retry_after`], [`Error::requires_sign_in`] (is the refresh token
//! dead?), [`Error::request_id`] and [`Error::status`].
//!
//! No `Display` or `Debug` here ever contains a token, client secret or device key: input errors
//! name the field and the rule, never the value, and text taken from a response is passed through
//! [`crate::redact`].

use std::fmt;
use std::time::Duration;

use http::StatusCode;
use secrecy::SecretString;

pub mod not_authorized;

use crate::call::classify::{self, RetryKind};
use crate::ops::shapes::InvalidInput;
use crate::protocol::endpoint::EndpointError;
use not_authorized::NotAuthorizedCause;

/// Any failure of a `GetTokensFromRefreshToken` call.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The input failed validation; nothing was sent.
    #[error(transparent)]
    InvalidInput(#[from] InvalidInput),
    /// The endpoint configuration could not be resolved; nothing was sent.
    #[error(transparent)]
    Endpoint(#[from] EndpointError),
    /// Cognito answered with an error code.
    #[error(transparent)]
    Service(#[from] ServiceError),
    /// A response arrived but could not be understood.
    #[error(transparent)]
    Response(#[from] ResponseError),
    /// The HTTP exchange failed (connect, timeout, I/O).
    #[error(transparent)]
    Transport(#[from] TransportError),
}

impl Error {
    /// Whether the call may be retried, and as what kind of failure (docs/protocol.md §6.2).
    ///
    /// `None` means "do not retry": the same request would fail the same way.
    pub fn retry_kind(&self) -> Option<RetryKind> {
        match self {
            Error::InvalidInput(_) | Error::Endpoint(_) => None,
            Error::Service(e) => e.retry_kind(),
            Error::Response(e) => e.retry_kind(),
            Error::Transport(e) => e.retry_kind(),
        }
    }

    /// Shorthand for `self.retry_kind().is_some()`.
    pub fn is_retryable(&self) -> bool {
        self.retry_kind().is_some()
    }

    /// The server's `x-amz-retry-after` hint, only on errors that may be retried.
    pub fn retry_after(&self) -> Option<Duration> {
        self.retry_kind()?;
        match self {
            Error::Service(e) => e.retry_after,
            Error::Response(e) => e.retry_after,
            _ => None,
        }
    }

    /// Whether the refresh token is dead and the user must sign in again.
    ///
    /// True for `RefreshTokenReuseException` (rotated out), `UserNotFoundException` (user
    /// deleted) and a `NotAuthorizedException` whose message says the token is dead (revoked,
    /// expired, invalid; see [`crate::not_authorized`]). Retrying such an error, or calling
    /// again with the same token, cannot succeed. A `NotAuthorizedException` about the client
    /// secret is [`is_configuration`](Self::is_configuration) instead, and one with a message
    /// this crate does not know is neither.
    pub fn requires_sign_in(&self) -> bool {
        matches!(self, Error::Service(e) if e.requires_sign_in())
    }

    /// Whether the configuration is at fault rather than the session: an input or endpoint the
    /// client was given, a pool or app client that does not exist or does not allow the call,
    /// WAF, or a wrong or missing client secret. The refresh token may well be fine.
    pub fn is_configuration(&self) -> bool {
        match self {
            Error::InvalidInput(_) | Error::Endpoint(_) => true,
            Error::Service(e) => e.is_configuration(),
            Error::Response(_) | Error::Transport(_) => false,
        }
    }

    /// The request id the service gave this response (`x-amzn-requestid`), if any.
    pub fn request_id(&self) -> Option<&str> {
        match self {
            Error::Service(e) => e.request_id.as_deref(),
            Error::Response(e) => e.request_id.as_deref(),
            _ => None,
        }
    }

    /// The HTTP status of the response that produced this error, if one arrived.
    pub fn status(&self) -> Option<StatusCode> {
        match self {
            Error::Service(e) => Some(e.status),
            Error::Response(e) => e.status,
            _ => None,
        }
    }

    /// A refresh token that a 2xx response carried although the response as a whole could
    /// not be used (see [`ResponseError::rotated_refresh_token`]): store it before anything
    /// else, the token that was sent may already be dead.
    pub fn rotated_refresh_token(&self) -> Option<&SecretString> {
        match self {
            Error::Response(e) => e.rotated_refresh_token.as_ref(),
            _ => None,
        }
    }

    /// The service error, if this is one.
    pub fn as_service(&self) -> Option<&ServiceError> {
        match self {
            Error::Service(e) => Some(e),
            _ => None,
        }
    }
}

/// The modeled errors of the operations cogref calls, chosen by error code:
/// `GetTokensFromRefreshToken` (docs/protocol.md §3) and `RevokeToken` (§12.3). Each
/// operation's own list is its [`Operation::MODELED_ERRORS`](crate::Operation::MODELED_ERRORS).
///
/// The variant is chosen from the code alone, never from the HTTP status, as the AWS SDKs do.
///
/// | kind | retry? | configuration? | sign in again? |
/// |---|---|---|---|
/// | `TooManyRequests` | yes (throttling) | no | no |
/// | `InternalError` | yes (its 500) | no | no |
/// | `Forbidden`, `InvalidParameter`, `OperationNotEnabled`, `ResourceNotFound`, `Unauthorized`, `UnsupportedOperation` | no | yes | no |
/// | `RefreshTokenReuse`, `UserNotFound` | no | no | yes |
/// | `NotAuthorized` | no | by its message ([`crate::not_authorized`]) | by its message |
/// | `UnsupportedTokenType`, the Lambda errors, `Unknown` | no | no | no |
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ServiceErrorKind {
    /// `ForbiddenException`: AWS WAF blocked the request.
    Forbidden,
    /// `InternalErrorException`: Cognito failed internally.
    InternalError,
    /// `InvalidLambdaResponseException`: a Lambda trigger gave an invalid response.
    InvalidLambdaResponse,
    /// `InvalidParameterException`: Cognito rejected a parameter.
    InvalidParameter,
    /// `NotAuthorizedException`: the refresh token is invalid, expired or revoked, or the client
    /// secret is wrong.
    NotAuthorized,
    /// `OperationNotEnabledException`: the operation is not available for this pool or region.
    OperationNotEnabled,
    /// `RefreshTokenReuseException`: the refresh token was invalidated by rotation.
    RefreshTokenReuse,
    /// `ResourceNotFoundException`: the app client or user pool does not exist.
    ResourceNotFound,
    /// `TooManyRequestsException`: throttled.
    TooManyRequests,
    /// `UnauthorizedException` (`RevokeToken`): the request is not authorized: a wrong, missing
    /// or unexpected client secret, or a token that was not issued to this app client.
    /// Configuration: the refresh token itself is not known to be dead.
    Unauthorized,
    /// `UnexpectedLambdaException`: a Lambda trigger failed unexpectedly.
    UnexpectedLambda,
    /// `UnsupportedOperationException` (`RevokeToken`): the app client does not allow the
    /// operation (token revocation is off: `EnableTokenRevocation`). Configuration.
    UnsupportedOperation,
    /// `UnsupportedTokenTypeException` (`RevokeToken`): the token given is not one the
    /// operation takes (an access or ID token where a refresh token belongs). The input is at
    /// fault; nothing was revoked.
    UnsupportedTokenType,
    /// `UserLambdaValidationException`: a Lambda trigger rejected the user.
    UserLambdaValidation,
    /// `UserNotFoundException`: the user no longer exists.
    UserNotFound,
    /// A code this crate does not model; see [`ServiceError::code`].
    Unknown,
}

impl ServiceErrorKind {
    /// Every modeled kind with its wire code, in model (alphabetical) order, for every
    /// operation cogref calls.
    pub const MODELED: [(ServiceErrorKind, &'static str); 15] = [
        (ServiceErrorKind::Forbidden, "ForbiddenException"),
        (ServiceErrorKind::InternalError, "InternalErrorException"),
        (
            ServiceErrorKind::InvalidLambdaResponse,
            "InvalidLambdaResponseException",
        ),
        (
            ServiceErrorKind::InvalidParameter,
            "InvalidParameterException",
        ),
        (ServiceErrorKind::NotAuthorized, "NotAuthorizedException"),
        (
            ServiceErrorKind::OperationNotEnabled,
            "OperationNotEnabledException",
        ),
        (
            ServiceErrorKind::RefreshTokenReuse,
            "RefreshTokenReuseException",
        ),
        (
            ServiceErrorKind::ResourceNotFound,
            "ResourceNotFoundException",
        ),
        (
            ServiceErrorKind::TooManyRequests,
            "TooManyRequestsException",
        ),
        (ServiceErrorKind::Unauthorized, "UnauthorizedException"),
        (
            ServiceErrorKind::UnexpectedLambda,
            "UnexpectedLambdaException",
        ),
        (
            ServiceErrorKind::UnsupportedOperation,
            "UnsupportedOperationException",
        ),
        (
            ServiceErrorKind::UnsupportedTokenType,
            "UnsupportedTokenTypeException",
        ),
        (
            ServiceErrorKind::UserLambdaValidation,
            "UserLambdaValidationException",
        ),
        (ServiceErrorKind::UserNotFound, "UserNotFoundException"),
    ];

    /// The kind for a sanitized error code (exact, case-sensitive match).
    pub fn from_code(code: &str) -> Self {
        Self::MODELED
            .iter()
            .find(|(_, c)| *c == code)
            .map_or(ServiceErrorKind::Unknown, |(k, _)| *k)
    }

    /// Whether this code alone means the refresh token can never work again
    /// (`RefreshTokenReuseException`, `UserNotFoundException`). `NotAuthorizedException` is
    /// not among them: its message decides ([`ServiceError::requires_sign_in`]).
    pub fn requires_sign_in(self) -> bool {
        matches!(
            self,
            ServiceErrorKind::RefreshTokenReuse | ServiceErrorKind::UserNotFound
        )
    }

    /// Whether this error points at the client's configuration (pool, app client and its
    /// secret, WAF, region) rather than at the user's session.
    pub fn is_configuration(self) -> bool {
        matches!(
            self,
            ServiceErrorKind::Forbidden
                | ServiceErrorKind::InvalidParameter
                | ServiceErrorKind::OperationNotEnabled
                | ServiceErrorKind::ResourceNotFound
                | ServiceErrorKind::Unauthorized
                | ServiceErrorKind::UnsupportedOperation
        )
    }
}

/// An error response from Cognito that carried an error code.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ServiceError {
    /// The kind, chosen by [`code`](Self::code).
    pub kind: ServiceErrorKind,
    /// The sanitized error code (docs/protocol.md §4.2), e.g. `NotAuthorizedException`, redacted like any
    /// text from the network (see [`crate::redact`]; a real code is never changed by it).
    pub code: String,
    /// The service's message, redacted (see [`crate::redact`]).
    pub message: Option<String>,
    /// `reasonCode` of an `InvalidParameterException`.
    pub reason_code: Option<String>,
    /// The HTTP status of the response.
    pub status: StatusCode,
    /// The `x-amzn-requestid` (or `x-amz-request-id`) header.
    pub request_id: Option<String>,
    /// The `x-amz-retry-after` header, in milliseconds on the wire.
    pub retry_after: Option<Duration>,
}

impl ServiceError {
    /// Retry classification (docs/protocol.md §6.2): the code decides first, then the status.
    pub fn retry_kind(&self) -> Option<RetryKind> {
        classify::by_code(&self.code).or_else(|| classify::by_status(self.status))
    }

    /// For a `NotAuthorizedException`, what its message says (see [`crate::not_authorized`]).
    pub fn not_authorized_cause(&self) -> Option<NotAuthorizedCause> {
        (self.kind == ServiceErrorKind::NotAuthorized)
            .then(|| NotAuthorizedCause::from_message(self.message.as_deref()))
    }

    /// Whether the refresh token is dead: by the code, or for `NotAuthorizedException` by its
    /// message.
    pub fn requires_sign_in(&self) -> bool {
        self.kind.requires_sign_in()
            || self
                .not_authorized_cause()
                .is_some_and(NotAuthorizedCause::requires_sign_in)
    }

    /// Whether the pool or app client configuration is at fault (see
    /// [`Error::is_configuration`]).
    pub fn is_configuration(&self) -> bool {
        self.kind.is_configuration()
            || self
                .not_authorized_cause()
                .is_some_and(NotAuthorizedCause::is_configuration)
    }
}

impl fmt::Display for ServiceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Cognito returned {} (HTTP {}",
            self.code,
            self.status.as_u16()
        )?;
        if let Some(id) = &self.request_id {
            write!(f, ", request id {id}")?;
        }
        f.write_str(")")?;
        if let Some(m) = &self.message {
            // Its own full stop would double the punctuation before what follows.
            write!(f, ": {}", m.trim_end().trim_end_matches('.'))?;
        }
        if let Some(r) = &self.reason_code {
            write!(f, " [reason: {r}]")?;
        }
        match self.not_authorized_cause() {
            _ if self.requires_sign_in() => f.write_str("; the user must sign in again"),
            Some(NotAuthorizedCause::ClientSecret) => f.write_str(
                "; check the app client's secret (the refresh token itself may be fine)",
            ),
            _ if self.kind == ServiceErrorKind::UnsupportedOperation => f.write_str(
                "; the app client does not allow this operation (to revoke tokens, turn on its token revocation)",
            ),
            _ if self.kind == ServiceErrorKind::Unauthorized => f.write_str(
                "; check the app client id and secret (the token may belong to another app client)",
            ),
            _ if self.kind == ServiceErrorKind::UnsupportedTokenType => {
                f.write_str("; only a refresh token can be revoked")
            }
            _ if self.is_configuration() => {
                f.write_str("; check the user pool and app client configuration")
            }
            Some(NotAuthorizedCause::Unknown) => f.write_str(
                "; cogref does not know this message, so the session is not declared dead",
            ),
            _ => Ok(()),
        }
    }
}

impl std::error::Error for ServiceError {}

/// What was wrong with a response that could not be read as an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ResponseErrorKind {
    /// The body is larger than the configured limit.
    BodyTooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// The body is not JSON (for example an HTML page from a proxy or load balancer).
    NotJson,
    /// The body is JSON cut short.
    Truncated,
    /// The body is JSON of the wrong shape (wrong types, not an object, duplicate fields,
    /// trailing data, an `ExpiresIn` out of range).
    Malformed,
    /// A success body without `AuthenticationResult`.
    MissingAuthenticationResult,
    /// A success body whose `AuthenticationResult` has no `AccessToken`.
    MissingAccessToken,
    /// An error status with no error code in the header or the body.
    NoErrorCode,
    /// A 3xx redirect. Redirects are never followed: the body carries the refresh token, and a
    /// redirect could send it to another host.
    Redirect,
}

impl fmt::Display for ResponseErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ResponseErrorKind::BodyTooLarge { limit } => {
                write!(f, "the response body exceeds the {limit}-byte limit")
            }
            ResponseErrorKind::NotJson => f.write_str("the response body is not JSON"),
            ResponseErrorKind::Truncated => f.write_str("the response body is truncated JSON"),
            ResponseErrorKind::Malformed => {
                f.write_str("the response body does not have the expected shape")
            }
            ResponseErrorKind::MissingAuthenticationResult => {
                f.write_str("the success response has no AuthenticationResult")
            }
            ResponseErrorKind::MissingAccessToken => {
                f.write_str("the success response has no AccessToken")
            }
            ResponseErrorKind::NoErrorCode => {
                f.write_str("the error response carries no error code")
            }
            ResponseErrorKind::Redirect => f.write_str(
                "the server answered with a redirect, which is never followed (check the endpoint URL)",
            ),
        }
    }
}

/// A response that arrived but is not a valid answer.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ResponseError {
    /// What was wrong.
    pub kind: ResponseErrorKind,
    /// The HTTP status, when the error came from a complete response.
    pub status: Option<StatusCode>,
    /// The request id header, if present.
    pub request_id: Option<String>,
    /// The `x-amz-retry-after` header.
    pub retry_after: Option<Duration>,
    /// A short redacted excerpt of the body, or a parser position; never a secret.
    pub detail: Option<String>,
    /// A refresh token found in a success (2xx) body that was otherwise unusable. Under
    /// rotation the token that was sent is dead once Cognito answered 2xx, so this one is the
    /// session's only way on: store it before reporting the error. Never displayed.
    pub rotated_refresh_token: Option<SecretString>,
}

impl ResponseError {
    /// A response error of `kind` with nothing else known; transports use this for a body that
    /// exceeded the limit while being read.
    pub fn new(kind: ResponseErrorKind) -> Self {
        Self {
            kind,
            status: None,
            request_id: None,
            retry_after: None,
            detail: None,
            rotated_refresh_token: None,
        }
    }

    /// The error a transport reports when a body grows past `limit` bytes while it is read:
    /// status and request id come from the response head already received.
    pub fn body_too_large(limit: usize, status: StatusCode, headers: &http::HeaderMap) -> Self {
        Self {
            kind: ResponseErrorKind::BodyTooLarge { limit },
            status: Some(status),
            request_id: crate::protocol::response::request_id(headers),
            retry_after: None,
            detail: None,
            rotated_refresh_token: None,
        }
    }

    /// Retry classification: only a 500, 502, 503 or 504 status makes it transient.
    ///
    /// A malformed 200 is not retried, as the official SDK does not (docs/protocol.md §8): the
    /// server has already acted on the token.
    pub fn retry_kind(&self) -> Option<RetryKind> {
        self.status.and_then(classify::by_status)
    }
}

impl fmt::Display for ResponseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid response")?;
        if let Some(s) = self.status {
            write!(f, " (HTTP {}", s.as_u16())?;
            if let Some(id) = &self.request_id {
                write!(f, ", request id {id}")?;
            }
            f.write_str(")")?;
        }
        write!(f, ": {}", self.kind)?;
        if let Some(d) = &self.detail {
            write!(f, ": {d}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ResponseError {}

/// How an HTTP exchange failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TransportErrorKind {
    /// The connection could not be made (DNS, refused, TLS handshake). The request was not sent.
    Connect,
    /// A timeout expired.
    Timeout,
    /// Reading or writing failed after the connection was made.
    Io,
    /// The server answered with a redirect, which is never followed.
    Redirect,
    /// Any other failure of the HTTP client.
    Other,
}

impl fmt::Display for TransportErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TransportErrorKind::Connect => "could not connect",
            TransportErrorKind::Timeout => "timed out",
            TransportErrorKind::Io => "I/O error",
            TransportErrorKind::Redirect => "redirect refused",
            TransportErrorKind::Other => "HTTP client error",
        })
    }
}

/// A failure of the HTTP exchange, reported by a transport.
///
/// It records whether the request may have reached the server, which decides whether a retry
/// can be rotation-safe (see [`crate::retry::RetryPolicy::RotationSafe`]).
#[derive(Debug, thiserror::Error)]
#[error("transport error: {kind}: {source}")]
pub struct TransportError {
    kind: TransportErrorKind,
    may_have_been_sent: bool,
    #[source]
    source: Box<dyn std::error::Error + Send + Sync>,
}

impl TransportError {
    /// Wraps an HTTP client's error. The source's `Display` must not contain a secret; the
    /// request body is never part of it in the transports of this project.
    ///
    /// A [`TransportErrorKind::Connect`] failure counts as not sent; every other kind as
    /// possibly sent, unless [`not_sent`](Self::not_sent) says otherwise.
    pub fn new(
        kind: TransportErrorKind,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        Self {
            kind,
            may_have_been_sent: kind != TransportErrorKind::Connect,
            source: source.into(),
        }
    }

    /// Marks the failure as happening before any byte of the request was written (for example a
    /// connect timeout, or a pool that had no connection to give).
    pub fn not_sent(mut self) -> Self {
        self.may_have_been_sent = false;
        self
    }

    /// How the exchange failed.
    pub fn kind(&self) -> TransportErrorKind {
        self.kind
    }

    /// Whether the server may have received the request (and so consumed the refresh token).
    pub fn request_may_have_been_sent(&self) -> bool {
        self.may_have_been_sent
    }

    /// Connect failures, timeouts and I/O errors are transient (docs/protocol.md §6.2); a refused
    /// redirect and other client errors are not.
    pub fn retry_kind(&self) -> Option<RetryKind> {
        match self.kind {
            TransportErrorKind::Connect | TransportErrorKind::Timeout | TransportErrorKind::Io => {
                Some(RetryKind::Transient)
            }
            TransportErrorKind::Redirect | TransportErrorKind::Other => None,
        }
    }
}
