//! Request bytes: an unsigned AWS JSON 1.1 `POST /` (docs/protocol.md §1.1, §5), the same for
//! every operation.
//!
//! [`build`] turns a resolved [`Endpoint`], an operation's `X-Amz-Target` and JSON body, and the
//! caller's [`AttemptInfo`] into an [`OutgoingRequest`], a wrapper of
//! `http::Request<Vec<u8>>` whose `Debug` does not print the body (which holds a token). A
//! transport takes the `http::Request` out with [`OutgoingRequest::into_http`]. Each operation
//! writes its own body (`crate::ops`); `GetTokensFromRefreshToken`'s is
//! [`body_bytes`](crate::ops::refresh::body::body_bytes).
//!
//! No `Authorization`, `X-Amz-Date` or `X-Amz-Security-Token` is sent: the operations cogref
//! calls are unauthenticated, and the token in the body authorizes them.

use std::fmt;

use http::header::{CONTENT_LENGTH, CONTENT_TYPE, HOST, HeaderName, HeaderValue, USER_AGENT};

use crate::protocol::endpoint::Endpoint;

/// `Content-Type` of AWS JSON 1.1.
pub const CONTENT_TYPE_JSON_1_1: &str = "application/x-amz-json-1.1";
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

impl InvocationId {
    /// The canonical 36-character lowercase form, `xxxxxxxx-xxxx-4xxx-yxxx-xxxxxxxxxxxx`.
    pub fn to_ascii(&self) -> [u8; 36] {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut out = [b'-'; 36];
        let mut at = 0;
        for (i, b) in self.0.iter().enumerate() {
            if matches!(i, 4 | 6 | 8 | 10) {
                at += 1; // keep the '-'
            }
            out[at] = HEX[usize::from(b >> 4)];
            out[at + 1] = HEX[usize::from(b & 0x0f)];
            at += 2;
        }
        out
    }
}

impl fmt::Display for InvocationId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ascii = self.to_ascii();
        f.write_str(std::str::from_utf8(&ascii).map_err(|_| fmt::Error)?)
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

const X_AMZ_TARGET: HeaderName = HeaderName::from_static("x-amz-target");
const AMZ_SDK_INVOCATION_ID: HeaderName = HeaderName::from_static("amz-sdk-invocation-id");
const AMZ_SDK_REQUEST: HeaderName = HeaderName::from_static("amz-sdk-request");

/// `attempt=N; max=M`. Calls of up to three attempts (the default) take a constant: no
/// allocation, and nothing to free, for a header every request carries.
fn attempt_header(attempt: &AttemptInfo) -> HeaderValue {
    match (attempt.attempt, attempt.max_attempts) {
        (1, 1) => const { HeaderValue::from_static("attempt=1; max=1") },
        (1, 2) => const { HeaderValue::from_static("attempt=1; max=2") },
        (2, 2) => const { HeaderValue::from_static("attempt=2; max=2") },
        (1, 3) => const { HeaderValue::from_static("attempt=1; max=3") },
        (2, 3) => const { HeaderValue::from_static("attempt=2; max=3") },
        (3, 3) => const { HeaderValue::from_static("attempt=3; max=3") },
        _ => written_attempt_header(attempt),
    }
}

/// [`attempt_header`], written without the formatting machinery.
fn written_attempt_header(attempt: &AttemptInfo) -> HeaderValue {
    let mut value = Vec::with_capacity(32);
    value.extend_from_slice(b"attempt=");
    value.extend_from_slice(itoa::Buffer::new().format(attempt.attempt).as_bytes());
    value.extend_from_slice(b"; max=");
    value.extend_from_slice(itoa::Buffer::new().format(attempt.max_attempts).as_bytes());
    HeaderValue::from_bytes(&value).unwrap_or_else(|_| unreachable!("ASCII digits are valid"))
}

/// Builds the request for one attempt of the operation whose `X-Amz-Target` is `target`, with
/// `body` (the operation's input as JSON, already serialized by the operation): an unsigned
/// AWS JSON 1.1 `POST /` with the headers of §1.1.
///
/// # Panics
///
/// If `target` is not visible ASCII (as [`HeaderValue::from_static`]): it is meant to be an
/// operation's constant, such as [`crate::ops::refresh::TARGET`].
pub fn build(
    endpoint: &Endpoint,
    target: &'static str,
    body: Vec<u8>,
    attempt: &AttemptInfo,
) -> OutgoingRequest {
    build_for_target(endpoint, HeaderValue::from_static(target), body, attempt)
}

/// [`build`] with the `X-Amz-Target` value made already: an operation's is a constant
/// (`const { HeaderValue::from_static(O::TARGET) }`), checked once by the compiler rather than
/// byte by byte on every request.
pub(crate) fn build_for_target(
    endpoint: &Endpoint,
    target: HeaderValue,
    body: Vec<u8>,
    attempt: &AttemptInfo,
) -> OutgoingRequest {
    let len = body.len();
    let mut request = http::Request::new(body);
    *request.method_mut() = http::Method::POST;
    *request.uri_mut() = endpoint.uri().clone();
    let headers = request.headers_mut();
    headers.reserve(8);
    // `from_static` outside a constant checks its text on every call: these are constants.
    headers.insert(
        CONTENT_TYPE,
        const { HeaderValue::from_static(CONTENT_TYPE_JSON_1_1) },
    );
    headers.insert(X_AMZ_TARGET, target);
    headers.insert(CONTENT_LENGTH, HeaderValue::from(len));
    headers.insert(HOST, endpoint.host_header().clone());
    headers.insert(
        USER_AGENT,
        const { HeaderValue::from_static(USER_AGENT_VALUE) },
    );
    headers.insert(
        AMZ_SDK_INVOCATION_ID,
        HeaderValue::from_bytes(&attempt.invocation_id.to_ascii())
            .unwrap_or_else(|_| unreachable!("a UUID is a valid header value")),
    );
    headers.insert(AMZ_SDK_REQUEST, attempt_header(attempt));
    OutgoingRequest(request)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_constant_attempt_headers_read_as_the_written_ones() {
        for max_attempts in 0..=5 {
            for number in 0..=max_attempts + 1 {
                let attempt = AttemptInfo {
                    invocation_id: InvocationId::from_random_bytes([7; 16]),
                    attempt: number,
                    max_attempts,
                };
                assert_eq!(
                    attempt_header(&attempt),
                    format!("attempt={number}; max={max_attempts}"),
                );
                assert_eq!(attempt_header(&attempt), written_attempt_header(&attempt));
            }
        }
    }

    #[test]
    fn invocation_id_is_a_version_4_uuid() {
        let id = InvocationId::from_random_bytes([0xff; 16]).to_string();
        assert_eq!(id, "ffffffff-ffff-4fff-bfff-ffffffffffff");
        let id = InvocationId::from_random_bytes([0; 16]).to_string();
        assert_eq!(id, "00000000-0000-4000-8000-000000000000");
    }
}
