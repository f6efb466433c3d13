//! Arbitrary status, headers and body bytes: the parser must never panic, and whatever it
//! returns must be internally consistent.
#![no_main]

use std::time::{Duration, SystemTime};

use arbitrary::Arbitrary;
use cogref_core::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use cogref_core::{ResponseLimits, parse_response};
use libfuzzer_sys::fuzz_target;

const NAMES: [&str; 6] = [
    "x-amzn-errortype",
    "x-amzn-requestid",
    "x-amz-request-id",
    "x-amz-retry-after",
    "content-type",
    "location",
];

#[derive(Arbitrary, Debug)]
struct Input<'a> {
    status: u16,
    headers: Vec<(u8, &'a [u8])>,
    max_body: u16,
    body: &'a [u8],
}

fuzz_target!(|input: Input<'_>| {
    let Ok(status) = StatusCode::from_u16(input.status) else {
        return;
    };
    let mut headers = HeaderMap::new();
    for (name, value) in input.headers {
        let name = HeaderName::from_static(NAMES[usize::from(name) % NAMES.len()]);
        if let Ok(value) = HeaderValue::from_bytes(value) {
            headers.append(name, value);
        }
    }
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_750_000_000);
    let limits = ResponseLimits {
        max_body_bytes: usize::from(input.max_body).max(1),
    };
    match parse_response(status, &headers, input.body, now, &limits) {
        Ok(out) => {
            assert!(status.is_success());
            assert!(input.body.len() <= limits.max_body_bytes);
            assert_eq!(out.expires_at, now + out.expires_in);
        }
        Err(e) => {
            assert!(!e.to_string().is_empty());
            let _ = format!("{e:?}");
            // A dead token is final, but for a 500, 502, 503 or 504, which the SDK retries
            // whatever its code (docs/protocol.md §6.2): retried as transient, never throttled.
            if e.requires_sign_in() && e.is_retryable() {
                assert!(cogref_core::call::classify::by_status(status).is_some());
                assert_eq!(e.retry_kind(), Some(cogref_core::RetryKind::Transient));
            }
            if e.retry_after().is_some() {
                assert!(e.is_retryable());
            }
        }
    }
});
