//! No `Debug`, `Display` or error message shows a secret: checked with canary values on every
//! public value and on errors built from responses that echo the canaries.

mod common;

use std::time::{Duration, SystemTime};

use cogref_core::http::{HeaderMap, HeaderValue, StatusCode};
use cogref_core::{
    AttemptInfo, EndpointConfig, Error, InvocationId, RefreshInput, ResponseLimits, TransportError,
    TransportErrorKind, build_request, parse_response,
};
use common::*;
use proptest::prelude::*;

fn shown<T: std::fmt::Debug>(value: &T) -> String {
    format!("{value:?} {value:#?}")
}

fn shown_error(e: &Error) -> String {
    let mut s = format!("{e} {e:?} {e:#?}");
    let mut source = std::error::Error::source(e);
    while let Some(inner) = source {
        s.push_str(&format!(" {inner}"));
        source = inner.source();
    }
    s
}

fn full_input() -> RefreshInput {
    RefreshInput::builder()
        .refresh_token(REFRESH)
        .client_id(CLIENT_ID)
        .client_secret(CLIENT_SECRET)
        .device_key(DEVICE_KEY)
        .client_metadata_entry("k", "v")
        .build()
        .expect("valid")
}

fn parse(
    status: u16,
    headers: &[(&'static str, &str)],
    body: &str,
) -> Result<cogref_core::RefreshOutput, Error> {
    let mut map = HeaderMap::new();
    for (k, v) in headers {
        map.insert(*k, HeaderValue::from_str(v).expect("ascii"));
    }
    parse_response(
        StatusCode::from_u16(status).expect("valid"),
        &map,
        body.as_bytes(),
        SystemTime::UNIX_EPOCH + Duration::from_secs(1),
        &ResponseLimits::default(),
    )
}

fn success_body() -> String {
    format!(
        r#"{{"AuthenticationResult":{{"AccessToken":"{ACCESS}","ExpiresIn":3600,"TokenType":"Bearer","RefreshToken":"{ROTATED}","IdToken":"{ID}","NewDeviceMetadata":{{"DeviceKey":"{DEVICE_KEY}","DeviceGroupKey":"g"}}}}}}"#
    )
}

#[test]
fn input_builder_and_input_debug_redact_every_secret() {
    let builder = RefreshInput::builder()
        .refresh_token(REFRESH)
        .client_id(CLIENT_ID)
        .client_secret(CLIENT_SECRET)
        .device_key(DEVICE_KEY);
    assert_no_canary(&shown(&builder));
    let input = full_input();
    let text = shown(&input);
    assert_no_canary(&text);
    assert!(
        text.contains(CLIENT_ID),
        "the client id is not secret: {text}"
    );
}

#[test]
fn outgoing_request_debug_hides_the_body() {
    let endpoint = EndpointConfig::new()
        .region("us-east-1")
        .resolve()
        .expect("valid");
    let request = build_request(
        &endpoint,
        &full_input(),
        &AttemptInfo::first(InvocationId::from_random_bytes([1; 16]), 3),
    );
    assert_no_canary(&shown(&request));
}

#[test]
fn output_debug_redacts_every_token_and_the_device_key() {
    let out = parse(200, &[], &success_body()).expect("success");
    assert_no_canary(&shown(&out));
}

#[test]
fn invalid_input_errors_name_the_field_not_the_value() {
    let too_long_secret = format!("{CLIENT_SECRET}{}", "x".repeat(40));
    let cases = [
        RefreshInput::builder()
            .refresh_token(format!("{REFRESH} "))
            .client_id(CLIENT_ID)
            .build(),
        RefreshInput::builder()
            .refresh_token(REFRESH)
            .client_id(CLIENT_ID)
            .client_secret(too_long_secret)
            .build(),
        RefreshInput::builder()
            .refresh_token(REFRESH)
            .client_id(CLIENT_ID)
            .device_key(format!("{DEVICE_KEY}Z"))
            .build(),
    ];
    for case in cases {
        let e: Error = case.expect_err("invalid").into();
        assert_no_canary(&shown_error(&e));
    }
}

#[test]
fn errors_from_bodies_that_echo_secrets_do_not_show_them() {
    let body = success_body();
    let truncated = &body[..body.len() - 30];
    let echoes = [
        (200, vec![], truncated.to_owned()),
        (
            200,
            vec![("content-type", "text/html")],
            truncated.to_owned(),
        ),
        (200, vec![], format!("{body} trailing {REFRESH}")),
        (
            200,
            vec![],
            format!(r#"{{"AuthenticationResult":{{"AccessToken":7,"IdToken":"{ID}"}}}}"#),
        ),
        (200, vec![], format!(r#"{{"Echo":"{REFRESH}"}}"#)),
        (
            400,
            vec![],
            format!(
                r#"{{"__type":"InvalidParameterException","message":"bad token {REFRESH} and {CLIENT_SECRET}"}}"#
            ),
        ),
        (
            400,
            vec![],
            format!(r#"{{"__type":"{ACCESS}","message":"x"}}"#),
        ),
        (
            503,
            vec![("content-type", "text/html")],
            format!("<html><p>request: RefreshToken={REFRESH}&secret={CLIENT_SECRET}</p></html>"),
        ),
        (500, vec![], format!("{{\"no-code\":\"{DEVICE_KEY}\"")),
    ];
    for (status, headers, body) in echoes {
        let e = parse(status, &headers, &body).expect_err("an error");
        assert_no_canary(&shown_error(&e));
    }
}

#[test]
fn a_transport_error_shows_its_kind_and_source_only() {
    let e: Error =
        TransportError::new(TransportErrorKind::Timeout, "attempt timed out after 5s").into();
    assert_eq!(
        e.to_string(),
        "transport error: timed out: attempt timed out after 5s"
    );
}

proptest! {
    /// Wherever a canary lands in a response body, no error built from it shows it.
    #[test]
    fn canaries_anywhere_in_a_response_never_reach_an_error_message(
        status in prop_oneof![Just(200u16), Just(400), Just(403), Just(500), Just(503)],
        prefix in "[ -~]{0,200}",
        suffix in "[ -~]{0,200}",
        canary in proptest::sample::select(CANARIES.to_vec()),
        content_type in prop_oneof![Just("application/x-amz-json-1.1"), Just("text/html")],
    ) {
        let body = format!("{prefix}{canary}{suffix}");
        if let Err(e) = parse(status, &[("content-type", content_type)], &body) {
            let text = shown_error(&e);
            prop_assert!(!text.contains(canary), "leaked: {}", text);
        }
    }
}
