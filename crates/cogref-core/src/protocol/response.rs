//! Response bytes to output or typed error, the same for every operation (docs/protocol.md §2,
//! §3, §4).
//!
//! [`dispatch`] takes the status, headers and body of a response and the caller's "now", and
//! for an [`Operation`] returns its output or an [`Error`]:
//!
//! - a 3xx is never followed: a [`ResponseError`] of kind [`ResponseErrorKind::Redirect`]
//!   naming only the target's host;
//! - any 2xx is a success, whose body the operation reads
//!   ([`Operation::parse_success`]);
//! - anything else is an error: the code is found by the rules of
//!   [`crate::protocol::error_code`] and mapped to a [`ServiceError`]; an error response with no
//!   code at all is a [`ResponseError`] of kind [`ResponseErrorKind::NoErrorCode`], or
//!   [`ResponseErrorKind::NotJson`] when the body is, for example, a proxy's HTML page.
//!
//! Unlike the official SDK, an error response whose body is not JSON but whose
//! `x-amzn-errortype` header names a code is still a typed service error: the header suffices.
//! The request id, `x-amz-retry-after` and `Date` headers are read here too, and the body limit
//! ([`ResponseLimits`]) applies to every operation.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::{HeaderMap, HeaderName, StatusCode};

use crate::error::{Error, ResponseError, ResponseErrorKind, ServiceError, ServiceErrorKind};
use crate::ops::Operation;
use crate::protocol::error_code::{self, ERROR_TYPE_HEADER, ErrorBodyFault};
use crate::protocol::redact::{REDACTED, excerpt_sent, network_text};
use crate::protocol::sent::Sent;

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
    request_id_sent(headers, &Sent::nothing())
}

/// [`request_id`], knowing what the request carried: an id that shows back one of its secrets
/// (a client secret in Cognito's format has a request id's shape) is `[redacted]` too.
pub fn request_id_sent(headers: &HeaderMap, sent: &Sent<'_>) -> Option<String> {
    let value = headers
        .get(&X_AMZN_REQUESTID)
        .or_else(|| headers.get(&X_AMZ_REQUEST_ID))?;
    // The shape alone makes it ASCII: no separate check that it is visible text first.
    let bytes = value.as_bytes();
    let shaped = ((1..=MAX_REQUEST_ID_CHARS).contains(&bytes.len())
        && bytes
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || b == b'-'))
    .then(|| std::str::from_utf8(bytes).ok())
    .flatten()
    .filter(|id| !sent.is_echoed_in(id));
    Some(shaped.map_or_else(|| REDACTED.to_owned(), str::to_owned))
}

/// A redirect's target host, for the error: shown only if it is a DNS name (labels of 1 to 63
/// letters, digits and `-`, 253 characters at most) or an IP address, and shows back no secret
/// of the request; otherwise `[redacted]`.
fn shown_host<'h>(host: &'h str, sent: &Sent<'_>) -> &'h str {
    if sent.is_echoed_in(host) {
        return REDACTED;
    }
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

/// A 2xx response, as an [`Operation`] reads it: status, headers, body, the caller's "now" and
/// the limits, with the request id already taken from the headers.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct Success<'a> {
    /// The status (a 2xx).
    pub status: StatusCode,
    /// The headers.
    pub headers: &'a HeaderMap,
    /// The whole body.
    pub body: &'a [u8],
    /// The caller's wall clock at receipt.
    pub now: SystemTime,
    /// The limits the call runs with.
    pub limits: &'a ResponseLimits,
    /// What the request carried.
    sent: &'a Sent<'a>,
}

impl Success<'_> {
    /// The request id ([`request_id_sent`]).
    pub fn request_id(&self) -> Option<String> {
        request_id_sent(self.headers, self.sent)
    }

    /// The `Date` header: the server's clock when it answered.
    pub fn server_date(&self) -> Option<SystemTime> {
        header_str(self.headers, &http::header::DATE).and_then(http_date)
    }

    /// A [`ResponseError`] of `kind` for this response, with its status, request id and
    /// `x-amz-retry-after`.
    pub fn error(&self, kind: ResponseErrorKind, detail: Option<String>) -> ResponseError {
        response_error(self.status, self.headers, kind, detail, self.sent)
    }

    /// A short redacted excerpt of `body` for an error ([`excerpt_sent`]).
    pub fn excerpt(&self, body: &[u8]) -> Option<String> {
        excerpt_sent(body, self.sent)
    }
}

fn response_error(
    status: StatusCode,
    headers: &HeaderMap,
    kind: ResponseErrorKind,
    detail: Option<String>,
    sent: &Sent<'_>,
) -> ResponseError {
    ResponseError {
        kind,
        status: Some(status),
        request_id: request_id_sent(headers, sent),
        retry_after: retry_after(headers),
        detail,
        rotated_refresh_token: None,
    }
}

/// Parses a complete response to operation `O`: a redirect or an error status into an
/// [`Error`] by the protocol's rules, a 2xx by `O`'s own ([`Operation::parse_success`]).
///
/// `now` is the caller's clock at receipt (for an output's absolute expiry).
pub fn dispatch<O: Operation>(
    status: StatusCode,
    headers: &HeaderMap,
    body: &[u8],
    now: SystemTime,
    limits: &ResponseLimits,
) -> Result<O::Output, Error> {
    dispatch_sent::<O>(status, headers, body, now, limits, &Sent::nothing())
}

/// [`dispatch`], knowing what the request carried: no text taken from the response shows back
/// one of its secrets, and its app client id is not redacted (see [`Sent`]).
pub fn dispatch_sent<O: Operation>(
    status: StatusCode,
    headers: &HeaderMap,
    body: &[u8],
    now: SystemTime,
    limits: &ResponseLimits,
    sent: &Sent<'_>,
) -> Result<O::Output, Error> {
    if status.is_redirection() {
        // Only the host: a Location's path or query could carry anything.
        let location = headers
            .get(http::header::LOCATION)
            .and_then(|l| l.to_str().ok())
            .and_then(|l| l.parse::<http::Uri>().ok())
            .and_then(|uri| {
                uri.host()
                    .map(|h| format!("to host {}", shown_host(h, sent)))
            });
        let kind = ResponseErrorKind::Redirect;
        return Err(response_error(status, headers, kind, location, sent).into());
    }
    if !status.is_success() {
        if body.len() > limits.max_body_bytes {
            let limit = limits.max_body_bytes;
            let kind = ResponseErrorKind::BodyTooLarge { limit };
            return Err(response_error(status, headers, kind, None, sent).into());
        }
        return Err(parse_error(status, headers, body, sent));
    }
    O::parse_success(&Success {
        status,
        headers,
        body,
        now,
        limits,
        sent,
    })
}

/// An HTTP date in the IMF-fixdate form every AWS service sends (`Sun, 06 Nov 1994 08:49:37
/// GMT`, RFC 9110 §5.6.7), or `None` for anything else.
///
/// ```
/// use std::time::{Duration, UNIX_EPOCH};
/// use cogref_core::response::http_date;
/// assert_eq!(http_date("Sun, 06 Nov 1994 08:49:37 GMT"), Some(UNIX_EPOCH + Duration::from_secs(784_111_777)));
/// assert_eq!(http_date("yesterday"), None);
/// ```
pub fn http_date(value: &str) -> Option<SystemTime> {
    let b = value.trim().as_bytes();
    if b.len() != 29 || &b[3..5] != b", " || &b[25..] != b" GMT" {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<u64> {
        let digits = b.get(r)?;
        digits.iter().try_fold(0u64, |n, d| {
            d.is_ascii_digit().then(|| n * 10 + u64::from(d - b'0'))
        })
    };
    const MONTHS: [&[u8]; 12] = [
        b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov",
        b"Dec",
    ];
    let (day, year) = (num(5..7)?, num(12..16)?);
    let month = MONTHS.iter().position(|m| *m == &b[8..11])? as u64 + 1;
    let (hour, minute, second) = (num(17..19)?, num(20..22)?, num(23..25)?);
    let separators = [b[7], b[11], b[16], b[19], b[22]];
    if separators != [b' ', b' ', b' ', b':', b':']
        || !(1..=31).contains(&day)
        || year < 1970
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    // Days since the epoch of a proleptic Gregorian date (Howard Hinnant's days_from_civil).
    let (y, m) = if month <= 2 {
        (year - 1, month + 9)
    } else {
        (year, month - 3)
    };
    let era = y / 400;
    let yoe = y - era * 400;
    let doy = (153 * m + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = (era * 146_097 + doe).checked_sub(719_468)?;
    let secs = days * 86_400 + hour * 3600 + minute * 60 + second;
    UNIX_EPOCH.checked_add(Duration::from_secs(secs))
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

fn parse_error(status: StatusCode, headers: &HeaderMap, body: &[u8], sent: &Sent<'_>) -> Error {
    let request_id = request_id_sent(headers, sent);
    let header_code = header_str(headers, &X_AMZN_ERRORTYPE);
    let retry_after = retry_after(headers);
    let (fields, fault) = match error_code::parse_error_body(body) {
        Ok(fields) => (fields, None),
        Err(fault) => (Default::default(), Some(fault)),
    };
    match error_code::pick_code(header_code, &fields) {
        Some(code) => ServiceError {
            kind: ServiceErrorKind::from_code(code),
            // Redacted and escaped like every text from the network; a real code is a plain
            // name and is kept as it is.
            code: network_text(code, sent),
            message: fields.message().map(|m| network_text(m, sent)),
            reason_code: fields.reason_code.as_deref().map(|r| network_text(r, sent)),
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
            detail: excerpt_sent(body, sent),
            rotated_refresh_token: None,
        }
        .into(),
    }
}

#[cfg(test)]
pub(crate) mod tests_support {
    use std::time::{SystemTime, UNIX_EPOCH};

    /// `t` as an IMF-fixdate, for tests that send a `Date` header.
    pub(crate) fn imf_fixdate(t: SystemTime) -> String {
        crate::session::utc::imf_fixdate(t)
    }

    #[test]
    fn formatting_and_parsing_a_date_round_trip() {
        for secs in [
            0u64,
            784_111_777,
            1_795_789_656,
            1_835_481_599,
            4_102_444_800,
        ] {
            let t = UNIX_EPOCH + std::time::Duration::from_secs(secs);
            assert_eq!(super::http_date(&imf_fixdate(t)), Some(t), "{secs}");
        }
    }
}
