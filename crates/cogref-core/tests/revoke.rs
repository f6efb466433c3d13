//! `RevokeToken` through the core: the request bytes (insta), the parser on generated responses
//! (proptest), canary secrets in every `Debug`, `Display` and error, and the attempt loop's
//! retries, which the rotation-safe policy does not stop for a revocation.

mod common;
#[path = "common/json_grammar.rs"]
mod json_grammar;

use std::time::{Duration, Instant, SystemTime};

use cogref_core::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use cogref_core::ops::revoke::body::body_bytes;
use cogref_core::ops::revoke::{build_request, parse_response};
use cogref_core::secrecy::ExposeSecret;
use cogref_core::{
    Call, CallConfig, EndpointConfig, Error, Operation, ResponseLimits, RetryConfig, RetryQuota,
    RevokeInput, RevokeToken, ServiceErrorKind, Step, TransportError, TransportErrorKind,
};
use common::*;
use proptest::option;
use proptest::prelude::*;

fn minimal() -> RevokeInput {
    RevokeInput::builder()
        .token(REFRESH)
        .client_id(CLIENT_ID)
        .build()
        .expect("valid")
}

fn with_secret() -> RevokeInput {
    RevokeInput::builder()
        .token(REFRESH)
        .client_id(CLIENT_ID)
        .client_secret(CLIENT_SECRET)
        .build()
        .expect("valid")
}

fn snapshot(config: EndpointConfig, input: &RevokeInput, n: u32) -> String {
    let endpoint = config.resolve().expect("valid endpoint");
    render(build_request(&endpoint, input, &snapshot_attempt(n)).http())
}

#[test]
fn minimal_revoke_request() {
    insta::assert_snapshot!(snapshot(
        EndpointConfig::new().region("us-east-1"),
        &minimal(),
        1
    ));
}

#[test]
fn revoke_request_with_a_client_secret_on_a_retry_to_a_custom_endpoint() {
    insta::assert_snapshot!(snapshot(
        EndpointConfig::new().endpoint_url("http://127.0.0.1:9229"),
        &with_secret(),
        2
    ));
}

fn now() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_750_000_000)
}

fn parse(status: u16, headers: &[(&'static str, &str)], body: &str) -> Result<(), Error> {
    let mut map = HeaderMap::new();
    for (k, v) in headers {
        map.insert(*k, HeaderValue::from_str(v).expect("ascii"));
    }
    parse_response(
        StatusCode::from_u16(status).expect("valid"),
        &map,
        body.as_bytes(),
        now(),
        &ResponseLimits::default(),
    )
    .map(|_| ())
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

#[test]
fn the_input_its_builder_and_the_request_never_show_a_secret() {
    let builder = RevokeInput::builder()
        .token(REFRESH)
        .client_id(CLIENT_ID)
        .client_secret(CLIENT_SECRET);
    assert_no_canary(&format!("{builder:?} {builder:#?}"));
    let input = builder.build().expect("valid");
    assert_no_canary(&format!("{input:?} {input:#?}"));
    let endpoint = EndpointConfig::new()
        .region("eu-west-1")
        .resolve()
        .expect("valid");
    let request = build_request(&endpoint, &input, &snapshot_attempt(1));
    assert_no_canary(&format!("{request:?}"));
    // The secrets are in the body the transport sends, and nowhere else.
    let body = String::from_utf8(request.into_http().into_body()).expect("utf-8");
    assert!(body.contains(REFRESH) && body.contains(CLIENT_SECRET));
}

#[test]
fn an_invalid_token_or_secret_is_named_never_shown() {
    let e = RevokeInput::builder()
        .token(format!("{REFRESH} with a space"))
        .client_id(CLIENT_ID)
        .build()
        .expect_err("pattern");
    assert_no_canary(&format!("{e} {e:?}"));
    assert!(e.to_string().contains("Token"), "{e}");
    let e = RevokeInput::builder()
        .token(REFRESH)
        .client_id(CLIENT_ID)
        .client_secret("CANARY_client_secret") // 20 characters: too short
        .build()
        .expect_err("length");
    assert!(!format!("{e} {e:?}").contains("CANARY_client_secret"));
}

#[test]
fn errors_from_bodies_that_echo_the_token_do_not_show_it() {
    for (status, body) in [
        (
            400,
            format!(
                r#"{{"__type":"UnauthorizedException","message":"token {REFRESH} is not yours"}}"#
            ),
        ),
        (
            400,
            format!(r#"{{"__type":"UnsupportedTokenTypeException","message":"{ACCESS}"}}"#),
        ),
        (200, format!("<html>{REFRESH}</html>")),
        (502, format!("bad gateway {CLIENT_SECRET}")),
    ] {
        let e = parse(status, &[], &body).expect_err("an error");
        assert_no_canary(&shown_error(&e));
    }
}

#[test]
fn unauthorized_and_unsupported_operation_are_configuration_and_say_what_to_check() {
    let e = parse(
        400,
        &[("x-amzn-requestid", "req-1")],
        r#"{"__type":"UnsupportedOperationException","message":"Token revocation is not enabled for this app client"}"#,
    )
    .expect_err("error");
    assert!(e.is_configuration() && !e.is_retryable() && !e.requires_sign_in());
    assert!(
        e.to_string().contains("turn on its token revocation"),
        "{e}"
    );
    let e = parse(
        400,
        &[],
        r#"{"__type":"UnauthorizedException","message":"Unable to verify secret"}"#,
    )
    .expect_err("error");
    assert_eq!(
        e.as_service().map(|s| s.kind),
        Some(ServiceErrorKind::Unauthorized)
    );
    assert!(e.is_configuration(), "{e}");
    let e = parse(400, &[], r#"{"__type":"UnsupportedTokenTypeException"}"#).expect_err("error");
    assert!(!e.is_configuration() && !e.is_retryable());
    assert!(
        e.to_string()
            .contains("only a refresh token can be revoked"),
        "{e}"
    );
}

#[test]
fn revocation_errors_are_modeled_in_the_order_of_the_model() {
    let codes: Vec<&str> = RevokeToken::MODELED_ERRORS
        .iter()
        .map(|k| {
            ServiceErrorKind::MODELED
                .iter()
                .find(|(m, _)| m == k)
                .map(|(_, c)| *c)
                .expect("every revocation error is modeled")
        })
        .collect();
    assert_eq!(
        codes,
        [
            "ForbiddenException",
            "InternalErrorException",
            "InvalidParameterException",
            "TooManyRequestsException",
            "UnauthorizedException",
            "UnsupportedOperationException",
            "UnsupportedTokenTypeException",
        ]
    );
}

/// The outcome of a revocation call whose first attempt timed out after it may have arrived.
fn after_a_timeout(retry: RetryConfig) -> Step<cogref_core::RevokeOutput> {
    let endpoint = EndpointConfig::new()
        .region("eu-west-1")
        .resolve()
        .expect("valid");
    let input = minimal();
    let config = CallConfig {
        retry,
        ..CallConfig::default()
    };
    let t0 = Instant::now();
    let mut quota = RetryQuota::default();
    let mut call = Call::<RevokeToken>::new(&endpoint, &input, &config, t0, 7);
    let Step::Send(first) = call.poll(t0) else {
        panic!("first attempt")
    };
    assert_eq!(
        first.request.http().headers()["x-amz-target"],
        "AWSCognitoIdentityProviderService.RevokeToken"
    );
    call.on_transport_error(
        TransportError::new(TransportErrorKind::Timeout, "read"),
        t0,
        &mut quota,
    );
    call.poll(t0)
}

#[test]
fn the_rotation_safe_policy_still_retries_a_revocation_that_may_have_arrived() {
    // A refresh is not resent after a timeout under this policy; a revocation is: sending it
    // twice does what sending it once does.
    assert!(matches!(
        after_a_timeout(RetryConfig::rotation_safe()),
        Step::Wait(_)
    ));
    assert!(matches!(
        after_a_timeout(RetryConfig::default()),
        Step::Wait(_)
    ));
    assert!(matches!(
        after_a_timeout(RetryConfig::disabled()),
        Step::Done(Err(_))
    ));
}

fn header_name() -> impl Strategy<Value = HeaderName> {
    prop_oneof![
        Just(HeaderName::from_static("x-amzn-errortype")),
        Just(HeaderName::from_static("x-amzn-requestid")),
        Just(HeaderName::from_static("x-amz-retry-after")),
        Just(HeaderName::from_static("content-type")),
        Just(HeaderName::from_static("date")),
        Just(HeaderName::from_static("location")),
    ]
}

fn headers() -> impl Strategy<Value = HeaderMap> {
    proptest::collection::vec(
        (header_name(), proptest::collection::vec(any::<u8>(), 0..40)),
        0..5,
    )
    .prop_map(|pairs| {
        let mut map = HeaderMap::new();
        for (name, bytes) in pairs {
            if let Ok(value) = HeaderValue::from_bytes(&bytes) {
                map.append(name, value);
            }
        }
        map
    })
}

/// Bodies that are mostly JSON-shaped, so the parser gets past its first byte.
fn body() -> impl Strategy<Value = Vec<u8>> {
    let fragments = prop_oneof![
        Just("{".to_owned()),
        Just("}".to_owned()),
        Just("[".to_owned()),
        Just("]".to_owned()),
        Just(",".to_owned()),
        Just(":".to_owned()),
        Just(" ".to_owned()),
        Just("null".to_owned()),
        Just("\"__type\"".to_owned()),
        Just("\"UnauthorizedException\"".to_owned()),
        Just("\"message\"".to_owned()),
        "-?[0-9]{1,12}",
        "\"[ -~]{0,12}\"",
        // What the grammar allows and serde_json's `Value` refuses (nesting past 128 levels does
        // not fit in the 200-byte limit); and a form feed, which is not JSON's whitespace.
        Just("-1e99999".to_owned()),
        Just("\"\\uD800\"".to_owned()),
        Just("\u{c}".to_owned()),
    ];
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..256),
        proptest::collection::vec(fragments, 0..30).prop_map(|f| f.concat().into_bytes()),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Whatever arrives, the parser answers without panicking, a success only for a 2xx whose
    /// body is empty or one JSON object, and an error that is consistent with itself.
    #[test]
    fn the_revocation_parser_never_panics_and_succeeds_only_on_a_2xx_object(
        status in 100u16..=599,
        headers in headers(),
        body in body(),
    ) {
        let status = StatusCode::from_u16(status).expect("in range");
        let limits = ResponseLimits { max_body_bytes: 200 };
        match parse_response(status, &headers, &body, now(), &limits) {
            Ok(_) => {
                prop_assert!(status.is_success());
                prop_assert!(body.len() <= 200);
                prop_assert!(json_grammar::blank(&body) || json_grammar::json_object(&body));
            }
            Err(e) => {
                prop_assert!(!e.to_string().is_empty());
                // Only a code the operation does not send says the token is dead.
                if e.requires_sign_in() {
                    let kind = e.as_service().map(|s| s.kind);
                    prop_assert!(kind.is_some_and(|k| !RevokeToken::MODELED_ERRORS.contains(&k)));
                }
                prop_assert!(e.rotated_refresh_token().is_none());
                if e.retry_after().is_some() { prop_assert!(e.is_retryable()); }
            }
        }
    }

    /// Every valid input round-trips through the body: JSON with exactly the values given.
    #[test]
    fn every_valid_revocation_input_round_trips_through_the_body(
        token in "[A-Za-z0-9=_.-]{1,300}",
        client_id in "[A-Za-z0-9_+]{1,128}",
        secret in option::of("[A-Za-z0-9_+]{24,64}"),
    ) {
        let input = RevokeInput::builder()
            .token(token.clone())
            .client_id(client_id.clone())
            .set_client_secret(secret.clone().map(Into::into))
            .build()
            .expect("generated input satisfies the model");
        let body: serde_json::Value = serde_json::from_slice(&body_bytes(&input)).expect("JSON");
        let object = body.as_object().expect("an object");
        prop_assert_eq!(object.len(), 2 + usize::from(secret.is_some()));
        prop_assert_eq!(body["Token"].as_str(), Some(input.token().expose_secret()));
        prop_assert_eq!(body["ClientId"].as_str(), Some(client_id.as_str()));
        prop_assert_eq!(body["ClientSecret"].as_str(), secret.as_deref());
    }

    /// Wherever a canary lands in a response body, no error built from it shows it.
    #[test]
    fn canaries_anywhere_in_a_revocation_response_never_reach_an_error_message(
        status in prop_oneof![Just(200u16), Just(400), Just(403), Just(500), Just(503)],
        prefix in "[ -~]{0,200}",
        suffix in "[ -~]{0,200}",
        canary in proptest::sample::select(CANARIES.to_vec()),
    ) {
        let body = format!("{prefix}{canary}{suffix}");
        if let Err(e) = parse(status, &[("content-type", "application/x-amz-json-1.1")], &body) {
            let text = shown_error(&e);
            prop_assert!(!text.contains(canary), "leaked: {}", text);
        }
    }
}
