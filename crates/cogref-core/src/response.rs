//! Response bytes to output or typed error (docs/protocol.md §2, §3, §4).
//!
//! [`parse_response`] takes the status, headers and body of a response and the caller's "now",
//! and returns either a [`RefreshOutput`] or an [`Error`]:
//!
//! - any 2xx is a success: the body must be a JSON object (empty counts as `{}`) with an
//!   `AuthenticationResult` that has an `AccessToken`; the content type, when present, must be
//!   JSON (`application/x-amz-json-1.1`, `application/x-amz-json-1.0` or `application/json`);
//! - anything else is an error: the code is found by the rules of [`crate::error_code`] and
//!   mapped to a [`ServiceError`]; an error response with no code at all is a
//!   [`ResponseError`] of kind [`ResponseErrorKind::NoErrorCode`], or [`ResponseErrorKind::NotJson`]
//!   when the body is, for example, a proxy's HTML page.
//!
//! Unlike the official SDK, an error response whose body is not JSON but whose
//! `x-amzn-errortype` header names a code is still a typed service error: the header suffices.

use std::time::{Duration, SystemTime};

use http::header::CONTENT_TYPE;
use http::{HeaderMap, HeaderName, StatusCode};
use secrecy::SecretString;
use serde::Deserialize;

use crate::error::{Error, ResponseError, ResponseErrorKind, ServiceError, ServiceErrorKind};
use crate::error_code::{self, ERROR_TYPE_HEADER, ErrorBodyFault};
use crate::redact::{REDACTED, excerpt, redact};

/// Default limit of a response body: 1 MiB. A success body is about 4 KiB.
pub const DEFAULT_MAX_BODY_BYTES: usize = 1 << 20;

/// Limits applied to responses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResponseLimits {
    /// Largest body accepted, in bytes. Transports enforce it while reading.
    pub max_body_bytes: usize,
}

impl Default for ResponseLimits {
    fn default() -> Self {
        Self {
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
        }
    }
}

/// The tokens and metadata of a successful refresh.
///
/// `Debug` redacts every token and the device key.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct RefreshOutput {
    /// The new access token.
    pub access_token: SecretString,
    /// The new ID token (sent for clients with the `openid` scope).
    pub id_token: Option<SecretString>,
    /// A new refresh token: present only when rotation is on, and then the old one is about to
    /// die. When `None`, keep using the refresh token you sent.
    pub refresh_token: Option<SecretString>,
    /// The token type, normally `Bearer`.
    pub token_type: Option<String>,
    /// Lifetime of the access and ID tokens, from `ExpiresIn` (zero when absent, as in the SDK).
    pub expires_in: Duration,
    /// `now + expires_in`, with `now` as passed to [`parse_response`].
    pub expires_at: SystemTime,
    /// A device Cognito registered because the request carried no (known) device key.
    pub new_device: Option<NewDeviceMetadata>,
    /// The `x-amzn-requestid` header.
    pub request_id: Option<String>,
}

/// `NewDeviceMetadata` of the authentication result.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct NewDeviceMetadata {
    /// The new device's key; send it as `DeviceKey` from now on.
    pub device_key: Option<SecretString>,
    /// The device group key.
    pub device_group_key: Option<String>,
}

#[derive(Deserialize)]
struct SuccessBody {
    #[serde(rename = "AuthenticationResult")]
    authentication_result: Option<AuthenticationResult>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct AuthenticationResult {
    access_token: Option<SecretString>,
    expires_in: Option<i32>,
    token_type: Option<String>,
    refresh_token: Option<SecretString>,
    id_token: Option<SecretString>,
    new_device_metadata: Option<NewDeviceBody>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct NewDeviceBody {
    device_key: Option<SecretString>,
    device_group_key: Option<String>,
}

const X_AMZN_REQUESTID: HeaderName = HeaderName::from_static("x-amzn-requestid");
const X_AMZ_REQUEST_ID: HeaderName = HeaderName::from_static("x-amz-request-id");
const X_AMZ_RETRY_AFTER: HeaderName = HeaderName::from_static("x-amz-retry-after");
const X_AMZN_ERRORTYPE: HeaderName = HeaderName::from_static(ERROR_TYPE_HEADER);

fn header_str<'a>(headers: &'a HeaderMap, name: &HeaderName) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// Longest request id shown; real ones are UUIDs (36 characters) or, from mocks, up to 52.
pub const MAX_REQUEST_ID_CHARS: usize = 64;

/// The request id: `x-amzn-requestid`, else `x-amz-request-id`.
///
/// Shown only in the shape request ids have: 1 to [`MAX_REQUEST_ID_CHARS`] characters of
/// `[A-Za-z0-9-]`. Anything else, from a hostile or broken server, is `[redacted]`: the value
/// reaches `Display`, `Debug` and the attempt span, and must not carry an echoed token or
/// terminal escape sequences there.
pub fn request_id(headers: &HeaderMap) -> Option<String> {
    let value = headers
        .get(&X_AMZN_REQUESTID)
        .or_else(|| headers.get(&X_AMZ_REQUEST_ID))?;
    let shaped = value.to_str().ok().filter(|id| {
        (1..=MAX_REQUEST_ID_CHARS).contains(&id.len())
            && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    });
    Some(shaped.map_or_else(|| REDACTED.to_owned(), str::to_owned))
}

/// A redirect's target host, for the error: shown only if it is a DNS name (labels of 1 to 63
/// letters, digits and `-`, 253 characters at most) or an IP address; otherwise `[redacted]`.
fn shown_host(host: &str) -> &str {
    let dns_name = host.len() <= 253
        && host.trim_end_matches('.').split('.').all(|label| {
            (1..=63).contains(&label.len())
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        });
    let ip = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<std::net::IpAddr>()
        .is_ok();
    if dns_name || ip { host } else { REDACTED }
}

/// The `x-amz-retry-after` header: a whole number of milliseconds.
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    header_str(headers, &X_AMZ_RETRY_AFTER)
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_millis)
}

fn is_json_content_type(value: &str) -> bool {
    let essence = value.split(';').next().unwrap_or("").trim();
    [
        "application/x-amz-json-1.1",
        "application/x-amz-json-1.0",
        "application/json",
    ]
    .iter()
    .any(|t| essence.eq_ignore_ascii_case(t))
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
    let request_id = request_id(headers);
    let response_error = |kind, detail: Option<String>| ResponseError {
        kind,
        status: Some(status),
        request_id: request_id.clone(),
        retry_after: retry_after(headers),
        detail,
    };
    if body.len() > limits.max_body_bytes {
        return Err(response_error(
            ResponseErrorKind::BodyTooLarge {
                limit: limits.max_body_bytes,
            },
            None,
        )
        .into());
    }
    if status.is_redirection() {
        // Only the host: a Location's path or query could carry anything.
        let location = headers
            .get(http::header::LOCATION)
            .and_then(|l| l.to_str().ok())
            .and_then(|l| l.parse::<http::Uri>().ok())
            .and_then(|uri| uri.host().map(|h| format!("to host {}", shown_host(h))));
        return Err(response_error(ResponseErrorKind::Redirect, location).into());
    }
    if !status.is_success() {
        return Err(parse_error(status, headers, body, request_id.clone()));
    }
    if let Some(ct) = headers.get(CONTENT_TYPE) {
        let ok = ct.to_str().is_ok_and(is_json_content_type);
        if !ok {
            let shown = ct
                .to_str()
                .map(redact)
                .unwrap_or_else(|_| "<not text>".into());
            return Err(response_error(
                ResponseErrorKind::WrongContentType,
                Some(format!(
                    "content-type {shown:?}; body: {}",
                    excerpt(body).unwrap_or_default()
                )),
            )
            .into());
        }
    }
    // An empty body is `{}` (docs/protocol.md §2.1), which then lacks AuthenticationResult.
    let parsed: SuccessBody = if body.iter().all(u8::is_ascii_whitespace) {
        SuccessBody {
            authentication_result: None,
        }
    } else {
        error_code::parse_json::<SuccessBody>(body).map_err(|(fault, (line, column))| {
            response_error(
                fault.into(),
                Some(format!("at line {line} column {column}")),
            )
        })?
    };
    let result = parsed.authentication_result.ok_or_else(|| {
        response_error(
            ResponseErrorKind::MissingAuthenticationResult,
            excerpt(body),
        )
    })?;
    let access_token = result
        .access_token
        .ok_or_else(|| response_error(ResponseErrorKind::MissingAccessToken, None))?;
    let seconds = result.expires_in.unwrap_or(0);
    let expires_in = u64::try_from(seconds)
        .map(Duration::from_secs)
        .map_err(|_| {
            response_error(
                ResponseErrorKind::Malformed,
                Some(format!("ExpiresIn is negative ({seconds})")),
            )
        })?;
    let expires_at = now.checked_add(expires_in).ok_or_else(|| {
        response_error(
            ResponseErrorKind::Malformed,
            Some("ExpiresIn overflows the clock".into()),
        )
    })?;
    Ok(RefreshOutput {
        access_token,
        id_token: result.id_token,
        refresh_token: result.refresh_token,
        token_type: result.token_type,
        expires_in,
        expires_at,
        new_device: result.new_device_metadata.map(|d| NewDeviceMetadata {
            device_key: d.device_key,
            device_group_key: d.device_group_key,
        }),
        request_id,
    })
}

impl From<ErrorBodyFault> for ResponseErrorKind {
    fn from(fault: ErrorBodyFault) -> Self {
        match fault {
            ErrorBodyFault::NotJson => ResponseErrorKind::NotJson,
            ErrorBodyFault::Truncated => ResponseErrorKind::Truncated,
            ErrorBodyFault::Malformed => ResponseErrorKind::Malformed,
        }
    }
}

fn parse_error(
    status: StatusCode,
    headers: &HeaderMap,
    body: &[u8],
    request_id: Option<String>,
) -> Error {
    let header_code = header_str(headers, &X_AMZN_ERRORTYPE);
    let retry_after = retry_after(headers);
    let (fields, fault) = match error_code::parse_error_body(body) {
        Ok(fields) => (fields, None),
        Err(fault) => (Default::default(), Some(fault)),
    };
    match error_code::pick_code(header_code, &fields) {
        Some(code) => ServiceError {
            kind: ServiceErrorKind::from_code(code),
            // Redacted like every text from the network; a real code is a plain name and is
            // kept as it is.
            code: redact(code),
            message: fields.message().map(redact),
            reason_code: fields.reason_code.as_deref().map(redact),
            status,
            request_id,
            retry_after,
        }
        .into(),
        None => ResponseError {
            kind: fault.map_or(ResponseErrorKind::NoErrorCode, Into::into),
            status: Some(status),
            request_id,
            retry_after,
            detail: excerpt(body),
        }
        .into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::classify::RetryKind;
    use http::HeaderValue;
    use secrecy::ExposeSecret;

    fn now() -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000)
    }

    fn parse(
        status: u16,
        headers: &[(&'static str, &str)],
        body: &str,
    ) -> Result<RefreshOutput, Error> {
        let mut map = HeaderMap::new();
        for (k, v) in headers {
            map.insert(*k, HeaderValue::from_str(v).expect("header"));
        }
        parse_response(
            StatusCode::from_u16(status).expect("status"),
            &map,
            body.as_bytes(),
            now(),
            &ResponseLimits::default(),
        )
    }

    fn response_kind(e: Error) -> ResponseErrorKind {
        match e {
            Error::Response(r) => r.kind,
            other => panic!("expected a response error, got {other:?}"),
        }
    }

    #[test]
    fn full_success_body_yields_every_field() {
        let out = parse(
            200,
            &[("x-amzn-requestid", "req-1"), ("content-type", "application/x-amz-json-1.1")],
            r#"{"AuthenticationResult":{"AccessToken":"acc","ExpiresIn":300,"TokenType":"Bearer","RefreshToken":"ref","IdToken":"id","NewDeviceMetadata":{"DeviceKey":"us-east-1_ab","DeviceGroupKey":"grp"}},"Unknown":1}"#,
        )
        .expect("success");
        assert_eq!(out.access_token.expose_secret(), "acc");
        assert_eq!(out.id_token.as_ref().map(|t| t.expose_secret()), Some("id"));
        assert_eq!(
            out.refresh_token.as_ref().map(|t| t.expose_secret()),
            Some("ref")
        );
        assert_eq!(out.token_type.as_deref(), Some("Bearer"));
        assert_eq!(out.expires_at, now() + Duration::from_secs(300));
        let dev = out.new_device.expect("device");
        assert_eq!(
            dev.device_key.as_ref().map(|k| k.expose_secret()),
            Some("us-east-1_ab")
        );
        assert_eq!(dev.device_group_key.as_deref(), Some("grp"));
        assert_eq!(out.request_id.as_deref(), Some("req-1"));
    }

    #[test]
    fn nulls_count_as_absent_and_expires_in_defaults_to_zero() {
        let out = parse(
            200,
            &[],
            r#"{"AuthenticationResult":{"AccessToken":"acc","ExpiresIn":null,"RefreshToken":null}}"#,
        )
        .expect("success");
        assert_eq!(out.expires_in, Duration::ZERO);
        assert!(out.refresh_token.is_none());
    }

    #[test]
    fn an_empty_200_has_no_authentication_result() {
        assert_eq!(
            response_kind(parse(200, &[], "").expect_err("error")),
            ResponseErrorKind::MissingAuthenticationResult
        );
        assert_eq!(
            response_kind(parse(200, &[], r#"{"AuthenticationResult":null}"#).expect_err("error")),
            ResponseErrorKind::MissingAuthenticationResult
        );
    }

    #[test]
    fn a_result_without_access_token_is_an_error() {
        assert_eq!(
            response_kind(
                parse(200, &[], r#"{"AuthenticationResult":{"IdToken":"x"}}"#).expect_err("error")
            ),
            ResponseErrorKind::MissingAccessToken
        );
    }

    #[test]
    fn truncated_and_non_json_success_bodies_are_typed() {
        assert_eq!(
            response_kind(
                parse(200, &[], r#"{"AuthenticationResult":{"AccessToken":"ab"#).expect_err("e")
            ),
            ResponseErrorKind::Truncated
        );
        assert_eq!(
            response_kind(parse(200, &[], "<html>hi</html>").expect_err("e")),
            ResponseErrorKind::NotJson
        );
        assert_eq!(
            response_kind(
                parse(200, &[], r#"{"AuthenticationResult":{"ExpiresIn":"soon"}}"#).expect_err("e")
            ),
            ResponseErrorKind::Malformed
        );
        assert_eq!(
            response_kind(parse(200, &[], r#"{} {}"#).expect_err("e")),
            ResponseErrorKind::Malformed
        );
    }

    #[test]
    fn expires_in_must_be_a_non_negative_i32() {
        for body in [
            r#"{"AuthenticationResult":{"AccessToken":"a","ExpiresIn":-1}}"#,
            r#"{"AuthenticationResult":{"AccessToken":"a","ExpiresIn":2147483648}}"#,
        ] {
            assert_eq!(
                response_kind(parse(200, &[], body).expect_err(body)),
                ResponseErrorKind::Malformed
            );
        }
    }

    #[test]
    fn a_success_with_a_non_json_content_type_is_rejected() {
        let e = parse(
            200,
            &[("content-type", "text/html")],
            r#"{"AuthenticationResult":{"AccessToken":"a"}}"#,
        )
        .expect_err("wrong type");
        assert_eq!(response_kind(e), ResponseErrorKind::WrongContentType);
        assert!(
            parse(
                200,
                &[("content-type", "application/json; charset=utf-8")],
                r#"{"AuthenticationResult":{"AccessToken":"a"}}"#
            )
            .is_ok()
        );
    }

    #[test]
    fn a_body_over_the_limit_is_rejected_before_parsing() {
        let limits = ResponseLimits { max_body_bytes: 10 };
        let e = parse_response(
            StatusCode::OK,
            &HeaderMap::new(),
            &[b' '; 11],
            now(),
            &limits,
        )
        .expect_err("too large");
        assert_eq!(
            response_kind(e),
            ResponseErrorKind::BodyTooLarge { limit: 10 }
        );
    }

    #[test]
    fn every_modeled_error_code_maps_to_its_kind() {
        for (kind, code) in ServiceErrorKind::MODELED {
            let e = parse(400, &[], &format!(r#"{{"__type":"{code}","message":"m"}}"#))
                .expect_err("error");
            let s = e.as_service().expect("service error");
            assert_eq!(
                (s.kind, s.code.as_str(), s.message.as_deref()),
                (kind, code, Some("m"))
            );
        }
    }

    #[test]
    fn an_unknown_code_keeps_code_and_message() {
        let e = parse(
            400,
            &[],
            r#"{"__type":"ShinyNewException","message":"what"}"#,
        )
        .expect_err("e");
        let s = e.as_service().expect("service");
        assert_eq!(s.kind, ServiceErrorKind::Unknown);
        assert_eq!(s.code, "ShinyNewException");
        assert_eq!(s.message.as_deref(), Some("what"));
    }

    #[test]
    fn a_mock_style_error_with_header_and_json_content_type_parses() {
        let e = parse(
            400,
            &[
                ("x-amzn-errortype", "NotAuthorizedException"),
                ("content-type", "application/json"),
                ("x-amzn-requestid", "VTldbBcW"),
            ],
            r#"{"__type": "NotAuthorizedException", "message": "Refresh Token has been revoked"}"#,
        )
        .expect_err("e");
        assert!(e.requires_sign_in());
        assert_eq!(e.request_id(), Some("VTldbBcW"));
        assert_eq!(
            e.as_service().and_then(|s| s.message.as_deref()),
            Some("Refresh Token has been revoked")
        );
    }

    #[test]
    fn an_html_503_is_a_retryable_response_error() {
        let e = parse(
            503,
            &[("content-type", "text/html")],
            "<html><body>Service Unavailable</body></html>",
        )
        .expect_err("e");
        assert_eq!(e.retry_kind(), Some(RetryKind::Transient));
        assert_eq!(response_kind(e), ResponseErrorKind::NotJson);
    }

    #[test]
    fn a_header_code_survives_a_non_json_body() {
        let e = parse(
            429,
            &[("x-amzn-errortype", "TooManyRequestsException")],
            "<html>slow down</html>",
        )
        .expect_err("e");
        assert_eq!(e.retry_kind(), Some(RetryKind::Throttling));
    }

    #[test]
    fn retry_after_is_reported_only_for_retryable_errors() {
        let e = parse(
            429,
            &[("x-amz-retry-after", "1500")],
            r#"{"__type":"TooManyRequestsException"}"#,
        )
        .expect_err("e");
        assert_eq!(e.retry_after(), Some(Duration::from_millis(1500)));
        let e = parse(
            400,
            &[("x-amz-retry-after", "1500")],
            r#"{"__type":"NotAuthorizedException"}"#,
        )
        .expect_err("e");
        assert_eq!(e.retry_after(), None);
    }

    #[test]
    fn a_500_without_code_is_transient_and_a_429_without_code_is_not() {
        let e = parse(500, &[], "").expect_err("e");
        assert_eq!(e.retry_kind(), Some(RetryKind::Transient));
        let e = parse(429, &[], r#"{"__type":"Whatever"}"#).expect_err("e");
        assert_eq!(e.retry_kind(), None);
    }

    #[test]
    fn internal_error_is_retried_because_of_its_500() {
        let e = parse(500, &[], r#"{"__type":"InternalErrorException"}"#).expect_err("e");
        assert_eq!(e.retry_kind(), Some(RetryKind::Transient));
        assert!(!e.requires_sign_in());
    }

    #[test]
    fn invalid_parameter_keeps_its_reason_code() {
        let e = parse(
            400,
            &[],
            r#"{"__type":"InvalidParameterException","message":"m","reasonCode":"INVALID_X"}"#,
        )
        .expect_err("e");
        assert_eq!(
            e.as_service().and_then(|s| s.reason_code.as_deref()),
            Some("INVALID_X")
        );
    }

    #[test]
    fn a_redirect_is_a_typed_error_naming_its_location() {
        let e = parse(307, &[("location", "https://elsewhere.example/")], "").expect_err("e");
        assert!(e.to_string().contains("elsewhere.example"), "{e}");
        assert!(!e.is_retryable());
        assert_eq!(response_kind(e), ResponseErrorKind::Redirect);
    }
}
