//! `GetTokensFromRefreshToken`: a refresh token in, new access and ID tokens (and, under
//! rotation, a new refresh token) out (docs/protocol.md §1.3, §2.2, §3).
//!
//! | part | where |
//! |---|---|
//! | the input and its validation | [`input`]: [`RefreshInput`] |
//! | the request body | [`body`]: [`body_bytes`](body::body_bytes) |
//! | the success output, the last-key-wins reading, the rotated-token salvage | [`output`]: [`RefreshOutput`] |
//! | one exchange without the attempt loop | [`build_request`], [`parse_response`] |
//!
//! Resending is not harmless: under rotation a second send of a token Cognito already rotated
//! fails outside the grace period, which is what
//! [`RetryPolicy::RotationSafe`](crate::call::retry::RetryPolicy::RotationSafe) guards against.

pub mod body;
pub mod input;
pub mod output;

use std::time::SystemTime;

use http::{HeaderMap, StatusCode};

use crate::error::{Error, ServiceErrorKind};
use crate::ops::Operation;
use crate::protocol::endpoint::Endpoint;
use crate::protocol::request::{AttemptInfo, InvocationId, OutgoingRequest};
use crate::protocol::response::{ResponseLimits, Success};
use crate::protocol::sent::Sent;

pub use input::{RefreshInput, RefreshInputBuilder};
pub use output::{NewDeviceMetadata, RefreshOutput};

/// `X-Amz-Target` of the operation.
pub const TARGET: &str = "AWSCognitoIdentityProviderService.GetTokensFromRefreshToken";

/// The operation, for [`Operation`]-generic code (the attempt loop, the client's drivers).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct GetTokensFromRefreshToken;

impl Operation for GetTokensFromRefreshToken {
    type Input = RefreshInput;
    type Output = RefreshOutput;
    const NAME: &'static str = "GetTokensFromRefreshToken";
    const ACTION: &'static str = "refresh";
    const TARGET: &'static str = TARGET;
    const RESEND_IS_HARMLESS: bool = false;
    const MODELED_ERRORS: &'static [ServiceErrorKind] = &[
        ServiceErrorKind::Forbidden,
        ServiceErrorKind::InternalError,
        ServiceErrorKind::InvalidLambdaResponse,
        ServiceErrorKind::InvalidParameter,
        ServiceErrorKind::NotAuthorized,
        ServiceErrorKind::OperationNotEnabled,
        ServiceErrorKind::RefreshTokenReuse,
        ServiceErrorKind::ResourceNotFound,
        ServiceErrorKind::TooManyRequests,
        ServiceErrorKind::UnexpectedLambda,
        ServiceErrorKind::UserLambdaValidation,
        ServiceErrorKind::UserNotFound,
    ];

    fn body(input: &RefreshInput) -> Vec<u8> {
        body::body_bytes(input)
    }

    fn parse_success(success: &Success<'_>) -> Result<RefreshOutput, Error> {
        output::from_success(success)
    }

    fn sent(input: &RefreshInput) -> Sent<'_> {
        // The builders hold every secret to the token alphabet (their model patterns).
        Sent::of_token_secrets(
            input.client_id(),
            [
                Some(input.refresh_token()),
                input.client_secret(),
                input.device_key(),
            ],
        )
    }

    fn span(input: &RefreshInput, invocation_id: InvocationId) -> tracing::Span {
        tracing::info_span!(
            "cogref.refresh",
            client_id = input.client_id(),
            invocation_id = %invocation_id,
            attempts = tracing::field::Empty,
            outcome = tracing::field::Empty,
        )
    }
}

/// Builds the request for one attempt.
///
/// ```
/// use cogref_core::{build_request, AttemptInfo, EndpointConfig, InvocationId, RefreshInput};
/// let input = RefreshInput::builder()
///     .refresh_token("canary.refresh.token")
///     .client_id("1example23456789")
///     .build()?;
/// let endpoint = EndpointConfig::new().region("eu-west-1").resolve()?;
/// let attempt = AttemptInfo::first(InvocationId::from_random_bytes([7; 16]), 3);
/// let request = build_request(&endpoint, &input, &attempt).into_http();
/// assert_eq!(request.uri(), "https://cognito-idp.eu-west-1.amazonaws.com/");
/// assert_eq!(request.headers()["amz-sdk-request"], "attempt=1; max=3");
/// assert_eq!(
///     request.body().as_slice(),
///     br#"{"RefreshToken":"canary.refresh.token","ClientId":"1example23456789"}"#
/// );
/// # Ok::<(), cogref_core::Error>(())
/// ```
pub fn build_request(
    endpoint: &Endpoint,
    input: &RefreshInput,
    attempt: &AttemptInfo,
) -> OutgoingRequest {
    super::build_request::<GetTokensFromRefreshToken>(endpoint, input, attempt)
}

/// Parses a complete response.
///
/// `now` is the caller's clock at receipt; it only serves to compute
/// [`RefreshOutput::expires_at`].
///
/// ```
/// use std::time::{Duration, SystemTime};
/// use cogref_core::{parse_response, ResponseLimits};
/// use http::{HeaderMap, HeaderName, StatusCode};
///
/// let body = br#"{"AuthenticationResult":{"AccessToken":"a.b.c","ExpiresIn":3600,"TokenType":"Bearer"}}"#;
/// let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
/// let out = parse_response(StatusCode::OK, &HeaderMap::new(), body, now, &ResponseLimits::default())?;
/// assert_eq!(out.expires_in, Duration::from_secs(3600));
/// assert_eq!(out.expires_at, now + Duration::from_secs(3600));
/// assert!(out.refresh_token.is_none()); // no rotation: keep the old refresh token
///
/// let err = parse_response(
///     StatusCode::BAD_REQUEST,
///     &HeaderMap::new(),
///     br#"{"__type":"NotAuthorizedException","message":"Refresh Token has been revoked"}"#,
///     now,
///     &ResponseLimits::default(),
/// ).unwrap_err();
/// assert!(err.requires_sign_in());
/// assert!(!err.is_retryable());
/// # Ok::<(), cogref_core::Error>(())
/// ```
pub fn parse_response(
    status: StatusCode,
    headers: &HeaderMap,
    body: &[u8],
    now: SystemTime,
    limits: &ResponseLimits,
) -> Result<RefreshOutput, Error> {
    crate::protocol::response::dispatch::<GetTokensFromRefreshToken>(
        status, headers, body, now, limits,
    )
}
