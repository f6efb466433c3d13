//! Review 19b: a failed sign-out whose revocation error says the refresh token is dead
//! (RefreshTokenReuseException, UserNotFoundException; since review 19 `requires_sign_in` on
//! RevokeToken too).

use std::sync::Arc;
use std::time::SystemTime;

use cogref_core::http::{HeaderMap, HeaderValue, StatusCode};
use cogref_core::ops::revoke::parse_response;
use cogref_core::{CallError, ResponseLimits};
use cogref_session::SessionError;

fn failed_sign_out(status: u16, code: &str) -> SessionError {
    let mut headers = HeaderMap::new();
    headers.insert(
        "x-amzn-errortype",
        HeaderValue::from_str(code).expect("code"),
    );
    let e = parse_response(
        StatusCode::from_u16(status).expect("status"),
        &headers,
        b"{}",
        SystemTime::UNIX_EPOCH,
        &ResponseLimits::default(),
    )
    .expect_err(code);
    SessionError::SignOutFailed(Arc::new(CallError::new(e, 1)))
}
#[test]
fn a_failed_sign_out_whose_message_says_sign_in_again_requires_sign_in() {
    for (status, code) in [
        (400, "RefreshTokenReuseException"),
        (400, "UserNotFoundException"),
        (500, "RefreshTokenReuseException"),
    ] {
        let e = failed_sign_out(status, code);
        let message = e.to_string();
        assert!(message.contains("sign in again"), "{message}");
        assert!(
            e.requires_sign_in(),
            "{status} {code}: the message says sign in again, requires_sign_in() says no: {message}"
        );
    }
}

/// Holds: a refusal that is not about the token still says it works; one with a dead-token code
/// never does, on a 4xx as on a 5xx.
#[test]
fn a_failed_sign_out_says_the_token_works_only_when_nothing_says_it_is_dead() {
    for (status, code) in [
        (400, "UnsupportedOperationException"),
        (500, "InternalErrorException"),
        (429, "TooManyRequestsException"),
    ] {
        let m = failed_sign_out(status, code).to_string();
        assert!(
            m.contains("still works") && !m.contains("no longer works"),
            "{m}"
        );
    }
    for (status, code) in [
        (400, "RefreshTokenReuseException"),
        (503, "UserNotFoundException"),
    ] {
        let m = failed_sign_out(status, code).to_string();
        assert!(
            !m.contains("still works") && m.contains("no longer works"),
            "{m}"
        );
    }
}

fn failed_sign_out_with_message(status: u16, code: &str, message: &str) -> SessionError {
    let e = parse_response(
        StatusCode::from_u16(status).expect("status"),
        &HeaderMap::new(),
        format!(r#"{{"__type":"{code}","message":"{message}"}}"#).as_bytes(),
        SystemTime::UNIX_EPOCH,
        &ResponseLimits::default(),
    )
    .expect_err(code);
    SessionError::SignOutFailed(Arc::new(CallError::new(e, 1)))
}
#[test]
fn a_failed_sign_out_does_not_claim_the_token_works_when_cognito_refused_it_for_an_unknown_reason()
{
    let m =
        failed_sign_out_with_message(400, "NotAuthorizedException", "Access denied").to_string();
    assert!(!m.contains("no longer works"), "{m}");
    assert!(!m.contains("still works"), "{m}");
}
