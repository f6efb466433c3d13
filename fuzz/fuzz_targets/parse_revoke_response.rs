//! Arbitrary status, headers and body bytes for `RevokeToken`'s parser: it must never panic, it
//! may answer success only for a 2xx whose body (within the limit) is empty or one JSON object,
//! and whatever error it returns must be consistent (none of the operation's own errors says
//! "sign in again", none carries a refresh token).
#![no_main]

use std::time::{Duration, SystemTime};

use arbitrary::Arbitrary;
use cogref_core::ResponseLimits;
use cogref_core::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use cogref_core::ops::Operation;
use cogref_core::ops::revoke::{RevokeToken, parse_response};
use libfuzzer_sys::fuzz_target;

/// RFC 8259's grammar, the judge the core's proptest uses too.
#[path = "../../crates/cogref-core/tests/common/json_grammar.rs"]
mod json_grammar;

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
            assert!(json_grammar::blank(input.body) || json_grammar::json_object(input.body));
        }
        Err(e) => {
            assert!(!e.to_string().is_empty());
            let _ = format!("{e:?}");
            // A modeled revocation error leaves the token as it was; only a code RevokeToken
            // does not send (RefreshTokenReuseException, UserNotFoundException) keeps saying
            // the token is dead (docs/protocol.md §12.3).
            if e.requires_sign_in() {
                let kind = e.as_service().map(|s| s.kind).expect("only a code says so");
                assert!(!RevokeToken::MODELED_ERRORS.contains(&kind));
            }
            assert!(e.rotated_refresh_token().is_none());
            if e.retry_after().is_some() {
                assert!(e.is_retryable());
            }
        }
    }
});
