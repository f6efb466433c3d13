//! `RevokeToken`: ends a session by revoking its refresh token (docs/protocol.md §12).
//!
//! A revoked refresh token can no longer be refreshed, and the access tokens issued from it stop
//! working wherever Cognito checks them; with refresh-token rotation, revoking any token of a
//! lineage revokes the whole lineage. Cognito answers `{}`. It needs the app client's token
//! revocation (`EnableTokenRevocation`, on by default for new clients); without it the call
//! fails with `UnsupportedOperationException`.
//!
//! | part | where |
//! |---|---|
//! | the input and its validation | [`input`]: [`RevokeInput`] |
//! | the request body | [`body`]: [`body_bytes`](body::body_bytes) |
//! | the success output | [`output`]: [`RevokeOutput`] |
//! | one exchange without the attempt loop | [`build_request`], [`parse_response`] |
//!
//! Sending the same revocation twice does what sending it once does, so
//! [`RetryPolicy::RotationSafe`](crate::call::retry::RetryPolicy::RotationSafe) does not stop
//! its retries ([`Operation::RESEND_IS_HARMLESS`]).

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

pub use input::{RevokeInput, RevokeInputBuilder};
pub use output::RevokeOutput;

/// `X-Amz-Target` of the operation.
pub const TARGET: &str = "AWSCognitoIdentityProviderService.RevokeToken";

/// The operation, for [`Operation`]-generic code (the attempt loop, the client's drivers).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RevokeToken;

impl Operation for RevokeToken {
    type Input = RevokeInput;
    type Output = RevokeOutput;
    const NAME: &'static str = "RevokeToken";
    const ACTION: &'static str = "revocation";
    const TARGET: &'static str = TARGET;
    const RESEND_IS_HARMLESS: bool = true;
    const MODELED_ERRORS: &'static [ServiceErrorKind] = &[
        ServiceErrorKind::Forbidden,
        ServiceErrorKind::InternalError,
        ServiceErrorKind::InvalidParameter,
        ServiceErrorKind::TooManyRequests,
        ServiceErrorKind::Unauthorized,
        ServiceErrorKind::UnsupportedOperation,
        ServiceErrorKind::UnsupportedTokenType,
    ];

    fn body(input: &RevokeInput) -> Vec<u8> {
        body::body_bytes(input)
    }

    fn parse_success(success: &Success<'_>) -> Result<RevokeOutput, Error> {
        output::from_success(success)
    }

    fn sent(input: &RevokeInput) -> Sent<'_> {
        // The builders hold every secret to the token alphabet (their model patterns).
        Sent::of_token_secrets(
            input.client_id(),
            [Some(input.token()), input.client_secret()],
        )
    }

    fn span(input: &RevokeInput, invocation_id: InvocationId) -> tracing::Span {
        tracing::info_span!(
            "cogref.revoke",
            client_id = input.client_id(),
            invocation_id = %invocation_id,
            attempts = tracing::field::Empty,
            outcome = tracing::field::Empty,
        )
    }
}

/// Builds the request for one attempt of `RevokeToken`.
///
/// ```
/// use cogref_core::{AttemptInfo, EndpointConfig, InvocationId, RevokeInput};
/// let input = RevokeInput::builder()
///     .token("canary.refresh.token")
///     .client_id("1example23456789")
///     .build()?;
/// let endpoint = EndpointConfig::new().region("eu-west-1").resolve()?;
/// let attempt = AttemptInfo::first(InvocationId::from_random_bytes([7; 16]), 3);
/// let request = cogref_core::ops::revoke::build_request(&endpoint, &input, &attempt).into_http();
/// assert_eq!(request.headers()["x-amz-target"], "AWSCognitoIdentityProviderService.RevokeToken");
/// assert_eq!(
///     request.body().as_slice(),
///     br#"{"Token":"canary.refresh.token","ClientId":"1example23456789"}"#
/// );
/// # Ok::<(), cogref_core::Error>(())
/// ```
pub fn build_request(
    endpoint: &Endpoint,
    input: &RevokeInput,
    attempt: &AttemptInfo,
) -> OutgoingRequest {
    super::build_request::<RevokeToken>(endpoint, input, attempt)
}

/// Parses a complete response to `RevokeToken`.
///
/// ```
/// use std::time::SystemTime;
/// use cogref_core::ops::revoke::parse_response;
/// use cogref_core::{ResponseLimits, ServiceErrorKind};
/// use http::{HeaderMap, StatusCode};
///
/// let now = SystemTime::UNIX_EPOCH;
/// let limits = ResponseLimits::default();
/// assert!(parse_response(StatusCode::OK, &HeaderMap::new(), b"{}", now, &limits).is_ok());
/// let err = parse_response(
///     StatusCode::BAD_REQUEST,
///     &HeaderMap::new(),
///     br#"{"__type":"UnsupportedOperationException","message":"Token revocation is not enabled"}"#,
///     now,
///     &limits,
/// ).unwrap_err();
/// assert_eq!(err.as_service().map(|s| s.kind), Some(ServiceErrorKind::UnsupportedOperation));
/// assert!(err.is_configuration() && !err.is_retryable());
/// ```
pub fn parse_response(
    status: StatusCode,
    headers: &HeaderMap,
    body: &[u8],
    now: SystemTime,
    limits: &ResponseLimits,
) -> Result<RevokeOutput, Error> {
    crate::protocol::response::dispatch::<RevokeToken>(status, headers, body, now, limits)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::call::classify::RetryKind;
    use crate::error::ResponseErrorKind;
    use http::HeaderValue;

    fn parse(
        status: u16,
        headers: &[(&'static str, &str)],
        body: &str,
    ) -> Result<RevokeOutput, Error> {
        let mut map = HeaderMap::new();
        for (k, v) in headers {
            map.insert(*k, HeaderValue::from_str(v).expect("header"));
        }
        parse_response(
            StatusCode::from_u16(status).expect("status"),
            &map,
            body.as_bytes(),
            SystemTime::UNIX_EPOCH,
            &ResponseLimits::default(),
        )
    }

    fn kind(e: Error) -> Option<ResponseErrorKind> {
        match e {
            Error::Response(r) => Some(r.kind),
            _ => None,
        }
    }

    #[test]
    fn a_2xx_that_is_not_utf_8_is_not_a_revocation_even_inside_a_skipped_member() {
        // Found by the fuzz target `parse_revoke_response` (its crash input, minus noise).
        let body = b"{\"__type\":\"Unsd5pme\xff ed~\"}";
        let e = parse_response(
            StatusCode::OK,
            &HeaderMap::new(),
            body,
            SystemTime::UNIX_EPOCH,
            &ResponseLimits::default(),
        )
        .expect_err("not JSON");
        assert_eq!(kind(e), Some(ResponseErrorKind::NotJson));
    }

    #[test]
    fn an_empty_body_or_any_json_object_is_a_success_with_its_request_id() {
        for body in ["", "  ", "{}", r#"{"Unknown":[1,{"x":null}]}"#] {
            let out = parse(200, &[("x-amzn-requestid", "req-9")], body).expect(body);
            assert_eq!(out.request_id.as_deref(), Some("req-9"));
        }
    }

    #[test]
    fn what_the_grammar_allows_in_a_member_is_json_whatever_serde_json_value_would_say() {
        // RFC 8259's grammar has no range, no depth limit and takes any `\uXXXX`; serde_json's
        // `Value` refuses all three, the skip does not, in a key as in a value.
        let deep = format!("{{\"a\":{}{}}}", "[".repeat(1000), "]".repeat(1000));
        for body in [
            r#"{"n":-99999999e99999}"#,
            "\r{\r\"_&_type\":1e400}\n",
            r#"{"a":[1e-99999,123456789012345678901234567890]}"#,
            r#"{"a":"\uD800"}"#,
            r#"{"\uD800":"a"}"#,
            r#"{"\uDC00\u0041":["\uD800\uD800"]}"#,
            &deep,
        ] {
            parse(200, &[], body).expect(body);
        }
    }

    #[test]
    fn a_2xx_of_form_feeds_is_not_an_empty_answer() {
        assert_eq!(
            kind(parse(200, &[], "\x0c").expect_err("form feed")),
            Some(ResponseErrorKind::NotJson)
        );
    }

    #[test]
    fn a_2xx_that_is_not_a_json_object_is_not_taken_for_a_revocation() {
        assert_eq!(
            kind(parse(200, &[], "<html>portal</html>").expect_err("html")),
            Some(ResponseErrorKind::NotJson)
        );
        assert_eq!(
            kind(parse(200, &[], "[]").expect_err("array")),
            Some(ResponseErrorKind::Malformed)
        );
        assert_eq!(
            kind(parse(200, &[], "{\"a\":").expect_err("cut")),
            Some(ResponseErrorKind::Truncated)
        );
        assert_eq!(
            kind(parse(200, &[], "{} {}").expect_err("trailing")),
            Some(ResponseErrorKind::Malformed)
        );
        let limits = ResponseLimits { max_body_bytes: 4 };
        let e = parse_response(
            StatusCode::OK,
            &HeaderMap::new(),
            b"{ }  ",
            SystemTime::UNIX_EPOCH,
            &limits,
        )
        .expect_err("too large");
        assert_eq!(kind(e), Some(ResponseErrorKind::BodyTooLarge { limit: 4 }));
    }

    #[test]
    fn a_code_revoke_does_not_send_keeps_its_meaning_everywhere() {
        for (code, kind) in [
            (
                "RefreshTokenReuseException",
                ServiceErrorKind::RefreshTokenReuse,
            ),
            ("UserNotFoundException", ServiceErrorKind::UserNotFound),
        ] {
            assert!(!RevokeToken::MODELED_ERRORS.contains(&kind));
            let e = parse(400, &[("x-amzn-errortype", code)], "").expect_err(code);
            assert_eq!(e.as_service().map(|s| s.kind), Some(kind));
            assert!(
                e.requires_sign_in(),
                "{code}: the token is dead, whatever was asked"
            );
        }
    }

    #[test]
    fn every_modeled_error_maps_to_its_kind_with_its_verdicts() {
        for kind in RevokeToken::MODELED_ERRORS {
            let code = ServiceErrorKind::MODELED
                .iter()
                .find(|(k, _)| k == kind)
                .map(|(_, c)| *c)
                .expect("modeled");
            let status = if *kind == ServiceErrorKind::InternalError {
                500
            } else {
                400
            };
            let e = parse(
                status,
                &[],
                &format!(r#"{{"__type":"{code}","message":"m"}}"#),
            )
            .expect_err(code);
            let s = e.as_service().expect("service error");
            assert_eq!(s.kind, *kind);
            assert!(
                !e.requires_sign_in(),
                "{code}: a revocation error never means sign in again"
            );
            let retry = e.retry_kind();
            match kind {
                ServiceErrorKind::TooManyRequests => assert_eq!(retry, Some(RetryKind::Throttling)),
                ServiceErrorKind::InternalError => assert_eq!(retry, Some(RetryKind::Transient)),
                _ => assert_eq!(retry, None, "{code}"),
            }
            let configuration = matches!(
                kind,
                ServiceErrorKind::Forbidden
                    | ServiceErrorKind::InvalidParameter
                    | ServiceErrorKind::Unauthorized
                    | ServiceErrorKind::UnsupportedOperation
            );
            assert_eq!(e.is_configuration(), configuration, "{code}");
        }
    }
}
