//! Arbitrary status, headers and body bytes for `RevokeToken`'s parser: it must never panic, it
//! may answer success only for a 2xx whose body (within the limit) is empty or one JSON object,
//! and whatever error it returns must be consistent (a revocation never says "sign in again",
//! never carries a refresh token).
#![no_main]

use std::time::{Duration, SystemTime};

use arbitrary::Arbitrary;
use cogref_core::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use cogref_core::ops::revoke::parse_response;
use cogref_core::ResponseLimits;
use libfuzzer_sys::fuzz_target;

const NAMES: [&str; 7] = [
    "x-amzn-errortype",
    "x-amzn-requestid",
    "x-amz-request-id",
    "x-amz-retry-after",
    "content-type",
    "location",
    "date",
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
        Ok(_) => {
            assert!(status.is_success());
            assert!(input.body.len() <= limits.max_body_bytes);
            let blank = input.body.iter().all(u8::is_ascii_whitespace);
            let object = matches!(
                serde_json::from_slice::<serde_json::Value>(input.body),
                Ok(serde_json::Value::Object(_))
            );
            assert!(blank || object);
        }
        Err(e) => {
            assert!(!e.to_string().is_empty());
            let _ = format!("{e:?}");
            assert!(!e.requires_sign_in());
            assert!(e.rotated_refresh_token().is_none());
            if e.retry_after().is_some() {
                assert!(e.is_retryable());
            }
        }
    }
});
