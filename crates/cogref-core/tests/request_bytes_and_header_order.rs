//! Review of 09b41fb (constant header values made at compile time): the request bytes, header
//! order included, are pinned for both operations through every way of building a request
//! (`build_request`, `request::build`, `Call::poll`, the blocking and async drivers); every
//! attempt of a retried call carries the operation's `X-Amz-Target`; the public
//! `request::build` still takes any valid static target and still panics on an invalid one;
//! `Debug` of every built request shows its headers and never a secret.

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use cogref_core::driver::{HttpRequest, HttpResponse, ManualEnvironment, transport_fn};
use cogref_core::http::{HeaderMap, Request, StatusCode};
use cogref_core::{
    AttemptInfo, Call, CallConfig, Client, Endpoint, EndpointConfig, Error,
    GetTokensFromRefreshToken, InvocationId, Operation, OutgoingRequest, RefreshInput, RetryQuota,
    RevokeInput, RevokeToken, SendOptions, Step,
};
use common::*;

const SERVICE: &str = "AWSCognitoIdentityProviderService.";

// ---------------------------------------------------------------------------------------------
// Helpers

fn eu_west_1() -> Endpoint {
    EndpointConfig::new()
        .region("eu-west-1")
        .resolve()
        .expect("valid endpoint")
}

fn local() -> Endpoint {
    EndpointConfig::new()
        .endpoint_url("http://127.0.0.1:9229")
        .resolve()
        .expect("valid endpoint")
}

fn refresh_input() -> RefreshInput {
    RefreshInput::builder()
        .refresh_token(REFRESH)
        .client_id(CLIENT_ID)
        .client_secret(CLIENT_SECRET)
        .device_key(DEVICE_KEY)
        .client_metadata_entry("tenant", "acme")
        .client_metadata_entry("note", "line1\nline2 \"quoted\" \u{1} é")
        .build()
        .expect("valid")
}

fn revoke_input() -> RevokeInput {
    RevokeInput::builder()
        .token(REFRESH)
        .client_id(CLIENT_ID)
        .client_secret(CLIENT_SECRET)
        .build()
        .expect("valid")
}

/// Every header in the order the map yields it (the order a transport writes them), as text.
fn ordered_headers(request: &Request<Vec<u8>>) -> Vec<(String, Vec<u8>)> {
    request
        .headers()
        .iter()
        .map(|(k, v)| (k.as_str().to_owned(), v.as_bytes().to_vec()))
        .collect()
}

/// Method, URI, version, every header in order, body.
type Wire = (String, String, String, Vec<(String, Vec<u8>)>, Vec<u8>);

/// Method, URI, version, every header in order, body: everything a transport sends.
fn wire(request: &Request<Vec<u8>>) -> Wire {
    (
        request.method().to_string(),
        request.uri().to_string(),
        format!("{:?}", request.version()),
        ordered_headers(request),
        request.body().clone(),
    )
}

fn expected_headers(target: &str, len: usize, host: &str, attempt: &str) -> Vec<(String, Vec<u8>)> {
    [
        ("content-type", "application/x-amz-json-1.1".to_owned()),
        ("x-amz-target", target.to_owned()),
        ("content-length", len.to_string()),
        ("host", host.to_owned()),
        ("user-agent", "cogref/0.1.0 lang/rust".to_owned()),
        (
            "amz-sdk-invocation-id",
            "636f6772-6566-4d73-ae61-7073686f7421".to_owned(),
        ),
        ("amz-sdk-request", attempt.to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.into_bytes()))
    .collect()
}

const REFRESH_BODY: &str = r#"{"RefreshToken":"CANARY-refresh-token.0123456789abcdef.REFRESH_SECRET_VALUE","ClientId":"1example23456789abcdefghij","ClientSecret":"CANARY_client_secret_0123456789","DeviceKey":"CANARY-device-key_0123abcd-ef45-6789","ClientMetadata":{"note":"line1\nline2 \"quoted\" \u0001 é","tenant":"acme"}}"#;
const REVOKE_BODY: &str = r#"{"Token":"CANARY-refresh-token.0123456789abcdef.REFRESH_SECRET_VALUE","ClientId":"1example23456789abcdefghij","ClientSecret":"CANARY_client_secret_0123456789"}"#;

fn sim_clock() -> ManualEnvironment {
    ManualEnvironment::new(
        Instant::now(),
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_750_000_000),
    )
}

fn response(status: u16, body: &str) -> HttpResponse {
    cogref_core::http::Response::builder()
        .status(status)
        .header("x-amzn-requestid", "req")
        .body(body.as_bytes().to_vec())
        .expect("valid response")
}

const REFRESH_OK: &str = r#"{"AuthenticationResult":{"AccessToken":"a.b.c","ExpiresIn":3600}}"#;
const BUSY: &str = r#"{"__type":"InternalErrorException"}"#;

/// What each attempt carried: every `x-amz-target` value, and its `amz-sdk-request`.
type Seen = Arc<Mutex<Vec<(Vec<Vec<u8>>, String)>>>;

fn record(seen: &Seen, request: &HttpRequest) {
    let targets = request
        .headers()
        .get_all("x-amz-target")
        .iter()
        .map(|v| v.as_bytes().to_vec())
        .collect();
    let attempt = request.headers()["amz-sdk-request"]
        .to_str()
        .expect("ascii")
        .to_owned();
    seen.lock().expect("seen").push((targets, attempt));
}

/// A script of two 500s then `ok`, answered in order.
fn script(ok: &'static str) -> Arc<Mutex<Vec<HttpResponse>>> {
    Arc::new(Mutex::new(vec![
        response(200, ok),
        response(500, BUSY),
        response(500, BUSY),
    ]))
}

fn assert_three_attempts_with_target<O: Operation>(seen: &Seen) {
    let target = format!("{SERVICE}{}", O::NAME);
    assert_eq!(O::TARGET, target);
    let seen = seen.lock().expect("seen");
    let expected: Vec<(Vec<Vec<u8>>, String)> = (1..=3)
        .map(|n| {
            (
                vec![target.clone().into_bytes()],
                format!("attempt={n}; max=3"),
            )
        })
        .collect();
    assert_eq!(*seen, expected, "{}", O::NAME);
}

struct Scripted {
    script: Arc<Mutex<Vec<HttpResponse>>>,
    seen: Seen,
    clock: ManualEnvironment,
}

impl cogref_core::BlockingTransport for Scripted {
    fn send(&self, request: HttpRequest, _: SendOptions) -> Result<HttpResponse, Error> {
        record(&self.seen, &request);
        Ok(self.script.lock().expect("script").pop().expect("scripted"))
    }
    fn sleep(&self, d: Duration) {
        self.clock.advance(d);
    }
}

fn blocking_client(ok: &'static str, seen: &Seen) -> Client<Scripted, ManualEnvironment> {
    let clock = sim_clock();
    Client::new(
        Scripted {
            script: script(ok),
            seen: seen.clone(),
            clock: clock.clone(),
        },
        clock,
        local(),
        CallConfig::default(),
    )
}

fn async_client(
    ok: &'static str,
    seen: &Seen,
) -> Client<impl cogref_core::AsyncTransport, ManualEnvironment> {
    let clock = sim_clock();
    let sleeper = clock.clone();
    let script = script(ok);
    let seen = seen.clone();
    let transport = transport_fn(
        move |request: HttpRequest, _: SendOptions| {
            record(&seen, &request);
            let next = script.lock().expect("script").pop().expect("scripted");
            async move { Ok::<HttpResponse, Error>(next) }
        },
        move |d: Duration| {
            sleeper.advance(d);
            async {}
        },
    );
    Client::new(transport, clock, local(), CallConfig::default())
}

/// The requests `Call::poll` makes for `O` when every attempt fails with a 500, and the call's
/// invocation id.
fn polled_requests<O: Operation>(
    endpoint: &Endpoint,
    input: &O::Input,
) -> (Vec<OutgoingRequest>, InvocationId) {
    let config = CallConfig::default();
    let mut now = Instant::now();
    let mut quota = RetryQuota::default();
    let mut call = Call::<O>::new(endpoint, input, &config, now, 31);
    let mut requests = Vec::new();
    loop {
        match call.poll(now) {
            Step::Send(attempt) => {
                assert_eq!(attempt.number as usize, requests.len() + 1);
                requests.push(attempt.request);
                call.on_response(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    &HeaderMap::new(),
                    BUSY.as_bytes(),
                    now,
                    SystemTime::UNIX_EPOCH + Duration::from_secs(1_750_000_000),
                    &mut quota,
                );
            }
            Step::Wait(d) => now += d,
            Step::Done(result) => {
                assert!(result.is_err(), "every attempt failed");
                break;
            }
        }
    }
    (requests, call.invocation_id())
}

// ---------------------------------------------------------------------------------------------
// Promise 1: the bytes, header order included

#[test]
fn a_refresh_request_has_the_pinned_headers_in_the_pinned_order_uri_and_body() {
    let request = cogref_core::build_request(&eu_west_1(), &refresh_input(), &snapshot_attempt(2));
    let request = request.http();
    assert_eq!(request.method(), "POST");
    assert_eq!(
        request.uri().to_string(),
        "https://cognito-idp.eu-west-1.amazonaws.com/"
    );
    assert_eq!(
        ordered_headers(request),
        expected_headers(
            "AWSCognitoIdentityProviderService.GetTokensFromRefreshToken",
            REFRESH_BODY.len(),
            "cognito-idp.eu-west-1.amazonaws.com",
            "attempt=2; max=3",
        )
    );
    assert_eq!(request.body().as_slice(), REFRESH_BODY.as_bytes());
}

#[test]
fn a_revoke_request_has_the_pinned_headers_in_the_pinned_order_uri_and_body() {
    let request =
        cogref_core::ops::revoke::build_request(&local(), &revoke_input(), &snapshot_attempt(3));
    let request = request.http();
    assert_eq!(request.method(), "POST");
    assert_eq!(request.uri().to_string(), "http://127.0.0.1:9229/");
    assert_eq!(
        ordered_headers(request),
        expected_headers(
            "AWSCognitoIdentityProviderService.RevokeToken",
            REVOKE_BODY.len(),
            "127.0.0.1:9229",
            "attempt=3; max=3",
        )
    );
    assert_eq!(request.body().as_slice(), REVOKE_BODY.as_bytes());
}

#[test]
fn the_public_request_build_makes_the_same_bytes_as_each_operations_build_request() {
    use cogref_core::request::build;
    for n in 1..=4 {
        let info = snapshot_attempt(n);
        let endpoint = eu_west_1();
        let refresh = refresh_input();
        assert_eq!(
            wire(
                build(
                    &endpoint,
                    cogref_core::request::TARGET,
                    REFRESH_BODY.into(),
                    &info
                )
                .http()
            ),
            wire(cogref_core::build_request(&endpoint, &refresh, &info).http()),
        );
        let revoke = revoke_input();
        assert_eq!(
            wire(
                build(
                    &endpoint,
                    cogref_core::ops::revoke::TARGET,
                    REVOKE_BODY.into(),
                    &info
                )
                .http()
            ),
            wire(cogref_core::ops::revoke::build_request(&endpoint, &revoke, &info).http()),
        );
    }
}

fn call_poll_matches_build_request<O: Operation>(
    input: &O::Input,
    target: &'static str,
    body: &str,
    build_request: fn(&Endpoint, &O::Input, &AttemptInfo) -> OutgoingRequest,
) {
    let endpoint = local();
    let (requests, id) = polled_requests::<O>(&endpoint, input);
    assert_eq!(requests.len(), 3, "{}", O::NAME);
    for (i, polled) in requests.iter().enumerate() {
        let info = AttemptInfo {
            invocation_id: id,
            attempt: i as u32 + 1,
            max_attempts: 3,
        };
        let built = build_request(&endpoint, input, &info);
        let public = cogref_core::request::build(&endpoint, target, body.into(), &info);
        assert_eq!(
            wire(polled.http()),
            wire(built.http()),
            "{} {}",
            O::NAME,
            i + 1
        );
        assert_eq!(
            wire(polled.http()),
            wire(public.http()),
            "{} {}",
            O::NAME,
            i + 1
        );
        let names: Vec<_> = ordered_headers(polled.http())
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        assert_eq!(
            names,
            [
                "content-type",
                "x-amz-target",
                "content-length",
                "host",
                "user-agent",
                "amz-sdk-invocation-id",
                "amz-sdk-request"
            ]
        );
    }
}

#[test]
fn call_poll_sends_for_each_attempt_of_a_refresh_the_bytes_build_request_makes() {
    call_poll_matches_build_request::<GetTokensFromRefreshToken>(
        &refresh_input(),
        cogref_core::request::TARGET,
        REFRESH_BODY,
        cogref_core::build_request,
    );
}

#[test]
fn call_poll_sends_for_each_attempt_of_a_revocation_the_bytes_build_request_makes() {
    call_poll_matches_build_request::<RevokeToken>(
        &revoke_input(),
        cogref_core::ops::revoke::TARGET,
        REVOKE_BODY,
        cogref_core::ops::revoke::build_request,
    );
}

// ---------------------------------------------------------------------------------------------
// Promise 2: X-Amz-Target on every attempt, every path

/// The `x-amz-target` values of each attempt of a call of `O` that `Call::poll` retries twice.
fn targets_of_each_attempt<O: Operation>(input: &O::Input) -> Vec<Vec<String>> {
    let endpoint = eu_west_1();
    let (requests, _) = polled_requests::<O>(&endpoint, input);
    requests
        .iter()
        .map(|request| {
            let values = request.http().headers().get_all("x-amz-target");
            values
                .iter()
                .map(|v| v.to_str().expect("visible ASCII").to_owned())
                .collect()
        })
        .collect()
}

#[test]
fn every_attempt_of_a_retried_refresh_carries_the_operation_target() {
    let one = vec![format!("{SERVICE}GetTokensFromRefreshToken")];
    assert_eq!(
        targets_of_each_attempt::<GetTokensFromRefreshToken>(&refresh_input()),
        vec![one; 3]
    );
}

#[test]
fn every_attempt_of_a_retried_revocation_carries_the_operation_target() {
    let one = vec![format!("{SERVICE}RevokeToken")];
    assert_eq!(
        targets_of_each_attempt::<RevokeToken>(&revoke_input()),
        vec![one; 3]
    );
}

#[test]
fn the_blocking_driver_sends_the_operation_target_on_every_attempt_of_both_operations() {
    let seen = Seen::default();
    blocking_client(REFRESH_OK, &seen)
        .refresh_blocking(&refresh_input())
        .expect("third attempt succeeds");
    assert_three_attempts_with_target::<GetTokensFromRefreshToken>(&seen);

    let seen = Seen::default();
    blocking_client("{}", &seen)
        .revoke_blocking(&revoke_input())
        .expect("third attempt succeeds");
    assert_three_attempts_with_target::<RevokeToken>(&seen);
}

#[test]
fn the_async_driver_sends_the_operation_target_on_every_attempt_of_both_operations() {
    let seen = Seen::default();
    block_on(async_client(REFRESH_OK, &seen).refresh(&refresh_input()))
        .expect("third attempt succeeds");
    assert_three_attempts_with_target::<GetTokensFromRefreshToken>(&seen);

    let seen = Seen::default();
    block_on(async_client("{}", &seen).revoke(&revoke_input())).expect("third attempt succeeds");
    assert_three_attempts_with_target::<RevokeToken>(&seen);
}

// ---------------------------------------------------------------------------------------------
// Promise 3: the public build with any static target

#[test]
fn the_public_build_sends_any_valid_static_target_verbatim() {
    let endpoint = local();
    for target in [
        "AWSCognitoIdentityProviderService.InitiateAuth",
        "",
        "x",
        "tab\tand spaces ~!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}",
    ] {
        let request =
            cogref_core::request::build(&endpoint, target, b"{}".to_vec(), &snapshot_attempt(1));
        let all: Vec<_> = request
            .http()
            .headers()
            .get_all("x-amz-target")
            .iter()
            .collect();
        assert_eq!(all.len(), 1, "{target:?}");
        assert_eq!(all[0].as_bytes(), target.as_bytes(), "{target:?}");
        assert!(!all[0].is_sensitive());
        assert_eq!(request.http().headers().len(), 7);
    }
}

#[test]
fn the_public_build_still_panics_on_a_target_that_is_not_a_visible_header_value() {
    let endpoint = local();
    for target in [
        "Service.Op\n",
        "Service.Op\r\nX-Injected: 1",
        "a\u{7f}",
        "\u{0}",
        "é",
    ] {
        let built = std::panic::catch_unwind(|| {
            cogref_core::request::build(&endpoint, target, b"{}".to_vec(), &snapshot_attempt(1))
        });
        assert!(built.is_err(), "{target:?} was accepted");
    }
}

// ---------------------------------------------------------------------------------------------
// Promise 4: Debug shows the headers, never a secret

#[test]
fn debug_of_every_built_request_shows_its_headers_and_no_secret() {
    let endpoint = eu_west_1();
    let refresh = refresh_input();
    let revoke = revoke_input();
    let mut requests = vec![
        (
            cogref_core::build_request(&endpoint, &refresh, &snapshot_attempt(1)),
            "GetTokensFromRefreshToken",
        ),
        (
            cogref_core::ops::revoke::build_request(&endpoint, &revoke, &snapshot_attempt(1)),
            "RevokeToken",
        ),
        (
            cogref_core::request::build(
                &endpoint,
                cogref_core::request::TARGET,
                REFRESH_BODY.into(),
                &snapshot_attempt(2),
            ),
            "GetTokensFromRefreshToken",
        ),
    ];
    let (polled, _) = polled_requests::<GetTokensFromRefreshToken>(&endpoint, &refresh);
    requests.extend(polled.into_iter().map(|r| (r, "GetTokensFromRefreshToken")));
    let (polled, _) = polled_requests::<RevokeToken>(&endpoint, &revoke);
    requests.extend(polled.into_iter().map(|r| (r, "RevokeToken")));
    for (request, name) in requests {
        for shown in [format!("{request:?}"), format!("{request:#?}")] {
            assert_no_canary(&shown);
            assert!(shown.contains(&format!("{SERVICE}{name}")), "{shown}");
            assert!(shown.contains("application/x-amz-json-1.1"), "{shown}");
            assert!(shown.contains("cogref/0.1.0 lang/rust"), "{shown}");
            assert!(
                shown.contains(&format!("<{} bytes, redacted>", request.body_len())),
                "{shown}"
            );
        }
    }
}
