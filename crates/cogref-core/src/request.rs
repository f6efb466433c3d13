//! Request bytes: an unsigned AWS JSON 1.1 `POST /` (protocol.md §1.1, §1.3, §5).
//!
//! [`build_request`] turns a validated [`RefreshInput`], a resolved [`Endpoint`] and the
//! caller's [`AttemptInfo`] into an [`OutgoingRequest`], a wrapper of
//! `http::Request<Vec<u8>>` whose `Debug` does not print the body (which holds the refresh
//! token). A transport takes the `http::Request` out with [`OutgoingRequest::into_http`].
//!
//! The body is compact JSON with the fields in model order and unset fields omitted, written by
//! `serde_json`, whose string escaping is byte-for-byte the SDK's (`aws-smithy-json` tests
//! itself against it). No `Authorization`, `X-Amz-Date` or `X-Amz-Security-Token` is sent: the
//! operation is unauthenticated, and the refresh token authorizes it.

use std::collections::BTreeMap;
use std::fmt;

use http::header::{CONTENT_LENGTH, CONTENT_TYPE, HOST, HeaderValue, USER_AGENT};
use secrecy::ExposeSecret;
use serde::Serialize;

use crate::endpoint::Endpoint;
use crate::input::RefreshInput;

/// `Content-Type` of AWS JSON 1.1.
pub const CONTENT_TYPE_JSON_1_1: &str = "application/x-amz-json-1.1";
/// `X-Amz-Target` of the operation.
pub const TARGET: &str = "AWSCognitoIdentityProviderService.GetTokensFromRefreshToken";
/// The `user-agent` sent: cogref and its version.
pub const USER_AGENT_VALUE: &str = concat!("cogref/", env!("CARGO_PKG_VERSION"), " lang/rust");

/// The invocation id shared by every attempt of one call (`amz-sdk-invocation-id`), a UUID v4.
///
/// The core owns no randomness: the caller passes 16 random bytes.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct InvocationId([u8; 16]);

impl InvocationId {
    /// Makes a version-4 UUID from 16 random bytes (the version and variant bits are set).
    pub fn from_random_bytes(mut bytes: [u8; 16]) -> Self {
        bytes[6] = (bytes[6] & 0x0f) | 0x40;
        bytes[8] = (bytes[8] & 0x3f) | 0x80;
        Self(bytes)
    }

    /// The id's 16 bytes.
    pub fn as_bytes(&self) -> &[u8; 16] {
        &self.0
    }
}

impl fmt::Display for InvocationId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, b) in self.0.iter().enumerate() {
            if matches!(i, 4 | 6 | 8 | 10) {
                f.write_str("-")?;
            }
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for InvocationId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "InvocationId({self})")
    }
}

/// Which attempt of a call a request is: drives `amz-sdk-invocation-id` and
/// `amz-sdk-request: attempt=N; max=M`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AttemptInfo {
    /// The call's invocation id, the same on every attempt.
    pub invocation_id: InvocationId,
    /// This attempt's number, starting at 1.
    pub attempt: u32,
    /// The most attempts the call will make.
    pub max_attempts: u32,
}

impl AttemptInfo {
    /// The first attempt of a call that makes at most `max_attempts`.
    pub fn first(invocation_id: InvocationId, max_attempts: u32) -> Self {
        Self {
            invocation_id,
            attempt: 1,
            max_attempts,
        }
    }
}

/// A request ready to send. `Debug` shows method, URL and headers, never the body.
pub struct OutgoingRequest(http::Request<Vec<u8>>);

impl OutgoingRequest {
    /// The request, for transports that send by reference.
    pub fn http(&self) -> &http::Request<Vec<u8>> {
        &self.0
    }

    /// The request, to hand to an HTTP client. Its body contains the refresh token: do not log
    /// it.
    pub fn into_http(self) -> http::Request<Vec<u8>> {
        self.0
    }

    /// The body's length in bytes.
    pub fn body_len(&self) -> usize {
        self.0.body().len()
    }
}

impl fmt::Debug for OutgoingRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OutgoingRequest")
            .field("method", self.0.method())
            .field("uri", self.0.uri())
            .field("headers", self.0.headers())
            .field(
                "body",
                &format_args!("<{} bytes, redacted>", self.0.body().len()),
            )
            .finish()
    }
}

/// The JSON body, fields in model order; `None` is omitted, never written as `null`.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct Body<'a> {
    refresh_token: &'a str,
    client_id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    client_secret: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    device_key: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    client_metadata: Option<&'a BTreeMap<String, String>>,
}

/// The JSON body of `input`, exactly as sent.
pub fn body_bytes(input: &RefreshInput) -> Vec<u8> {
    let body = Body {
        refresh_token: input.refresh_token().expose_secret(),
        client_id: input.client_id(),
        client_secret: input.client_secret().map(|s| s.expose_secret()),
        device_key: input.device_key().map(|s| s.expose_secret()),
        client_metadata: input.client_metadata(),
    };
    // Serializing borrowed strings and a string map into a Vec cannot fail.
    serde_json::to_vec(&body).unwrap_or_else(|_| unreachable!("string-only JSON serializes"))
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
    let body = body_bytes(input);
    let mut request = http::Request::new(body);
    *request.method_mut() = http::Method::POST;
    *request.uri_mut() = endpoint
        .url()
        .parse()
        .unwrap_or_else(|_| unreachable!("a resolved endpoint is a valid URI"));
    let len = request.body().len();
    let headers = request.headers_mut();
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static(CONTENT_TYPE_JSON_1_1),
    );
    headers.insert("x-amz-target", HeaderValue::from_static(TARGET));
    headers.insert(CONTENT_LENGTH, HeaderValue::from(len));
    headers.insert(
        HOST,
        HeaderValue::from_str(endpoint.host())
            .unwrap_or_else(|_| unreachable!("a resolved host is a valid header value")),
    );
    headers.insert(USER_AGENT, HeaderValue::from_static(USER_AGENT_VALUE));
    headers.insert(
        "amz-sdk-invocation-id",
        HeaderValue::from_str(&attempt.invocation_id.to_string())
            .unwrap_or_else(|_| unreachable!("a UUID is a valid header value")),
    );
    headers.insert(
        "amz-sdk-request",
        HeaderValue::from_str(&format!(
            "attempt={}; max={}",
            attempt.attempt, attempt.max_attempts
        ))
        .unwrap_or_else(|_| unreachable!("digits are a valid header value")),
    );
    OutgoingRequest(request)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invocation_id_is_a_version_4_uuid() {
        let id = InvocationId::from_random_bytes([0xff; 16]).to_string();
        assert_eq!(id, "ffffffff-ffff-4fff-bfff-ffffffffffff");
        let id = InvocationId::from_random_bytes([0; 16]).to_string();
        assert_eq!(id, "00000000-0000-4000-8000-000000000000");
    }

    #[test]
    fn control_characters_in_metadata_are_escaped_as_the_sdk_does() {
        let input = RefreshInput::builder()
            .refresh_token("t")
            .client_id("c")
            .client_metadata_entry("k", "\u{8}\u{c}\n\r\t\u{1}\u{1f}\"\\é/")
            .build()
            .expect("valid");
        assert_eq!(
            String::from_utf8(body_bytes(&input)).expect("utf-8"),
            r#"{"RefreshToken":"t","ClientId":"c","ClientMetadata":{"k":"\b\f\n\r\t\u0001\u001f\"\\é/"}}"#
        );
    }

    #[test]
    fn empty_metadata_is_sent_as_an_empty_object() {
        let input = RefreshInput::builder()
            .refresh_token("t")
            .client_id("c")
            .set_client_metadata(Some(BTreeMap::new()))
            .build()
            .expect("valid");
        assert_eq!(
            body_bytes(&input),
            br#"{"RefreshToken":"t","ClientId":"c","ClientMetadata":{}}"#
        );
    }
}
