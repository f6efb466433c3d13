//! One `GetTokensFromRefreshToken` exchange through the sans-IO core, with no network: build
//! the request a transport would send, then parse the responses Cognito can give.
//!
//! Run with `cargo run -p cogref-core --example exchange`.

use std::time::SystemTime;

use cogref_core::http::{HeaderMap, HeaderValue, StatusCode};
use cogref_core::secrecy::ExposeSecret;
use cogref_core::{
    AttemptInfo, EndpointConfig, Error, InvocationId, RefreshInput, ResponseLimits, build_request,
    parse_response,
};

fn main() -> Result<(), Error> {
    let input = RefreshInput::builder()
        .refresh_token("eyJjdHkiOiJKV1QiLCJlbmMiOiJBMjU2R0NNIn0.example-refresh-token")
        .client_id("1example23456789abcdefghij")
        .build()?;
    let endpoint = EndpointConfig::new().region("eu-west-1").resolve()?;
    // The core owns no randomness; a transport passes 16 random bytes here.
    let attempt = AttemptInfo::first(InvocationId::from_random_bytes(*b"0123456789abcdef"), 3);

    let request = build_request(&endpoint, &input, &attempt);
    eprintln!("request (its Debug never shows the body): {request:#?}");

    let now = SystemTime::now();
    let limits = ResponseLimits::default();
    let mut headers = HeaderMap::new();
    headers.insert(
        "content-type",
        HeaderValue::from_static("application/x-amz-json-1.1"),
    );
    headers.insert(
        "x-amzn-requestid",
        HeaderValue::from_static("d1b4c2a0-example"),
    );

    let success = br#"{"AuthenticationResult":{"AccessToken":"eyJraWQiOiJhIn0.eyJzdWIiOiJ1In0.c2ln","ExpiresIn":3600,"TokenType":"Bearer","RefreshToken":"eyJjdHkiOiJKV1QifQ.rotated-refresh-token"}}"#;
    let output = parse_response(StatusCode::OK, &headers, success, now, &limits)?;
    eprintln!("\nsuccess: {output:#?}");
    eprintln!(
        "access token has {} characters and expires in {:?}; rotation returned a new refresh token: {}",
        output.access_token.expose_secret().len(),
        output.expires_in,
        output.refresh_token.is_some()
    );

    for (status, body) in [
        (StatusCode::BAD_REQUEST, &br#"{"__type":"RefreshTokenReuseException","message":"Refresh token has been reused"}"#[..]),
        (StatusCode::TOO_MANY_REQUESTS, br#"{"__type":"TooManyRequestsException","message":"Rate exceeded"}"#),
        (StatusCode::SERVICE_UNAVAILABLE, b"<html><body>503 Service Unavailable</body></html>"),
    ] {
        let e = parse_response(status, &headers, body, now, &limits)
            .expect_err("an error status is an error");
        eprintln!(
            "\n{e}\n  retry: {:?}, sign in again: {}, request id: {:?}",
            e.retry_kind(),
            e.requires_sign_in(),
            e.request_id()
        );
    }
    Ok(())
}
