//! The contract every cogref transport must pass, unchanged.
//!
//! Each case is an `async fn` taking a [`MakeClient`]: a function that builds the transport's
//! client for an endpoint and a configuration and returns a [`Refresher`]. A transport's test
//! file instantiates every case with [`contract_suite!`]:
//!
//! ```ignore
//! fn make(endpoint: Endpoint, config: CallConfig) -> Refresher {
//!     let client = Arc::new(cogref_reqwest::client(endpoint, config).expect("client"));
//!     Arc::new(move |input| {
//!         let client = client.clone();
//!         Box::pin(async move { client.refresh(&input).await })
//!     })
//! }
//! cogref_contract::contract_suite!(make);
//! ```
//!
//! Servers are wiremock mocks on 127.0.0.1 (random port), plus a raw TCP server for what
//! wiremock cannot do (a connection reset in the middle of a body, a body that never ends).
//! Waits are shortened through the configuration, never by sleeping in the cases.

#![forbid(unsafe_code)]

pub mod clocks;
pub mod raw;
pub mod revoke;
pub mod trace;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cogref_core::secrecy::ExposeSecret;
use cogref_core::{
    CallConfig, CallError, Endpoint, EndpointConfig, Error, RefreshInput, RefreshOutput,
    ResponseErrorKind, RetryConfig, RetryKind, RetryPolicy, ServiceErrorKind, Timeouts,
    TransportErrorKind,
};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

/// A boxed, sendable future.
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// One client under test: call it as often as a case needs; calls share the client's quota.
pub type Refresher =
    Arc<dyn Fn(RefreshInput) -> BoxFuture<Result<RefreshOutput, CallError>> + Send + Sync>;

/// Builds a transport's client.
pub type MakeClient = fn(Endpoint, CallConfig) -> Refresher;

/// One client under test, revoking: call it as often as a case needs.
pub type Revoker = Arc<
    dyn Fn(cogref_core::RevokeInput) -> BoxFuture<Result<cogref_core::RevokeOutput, CallError>>
        + Send
        + Sync,
>;

/// Builds a transport's client, for revocations.
pub type MakeRevoker = fn(Endpoint, CallConfig) -> Revoker;

/// Instantiates every `RevokeToken` case of the suite ([`revoke`]) as a `#[tokio::test]`, for
/// the given [`MakeClient`] (the end-to-end case refreshes too) and [`MakeRevoker`].
#[macro_export]
macro_rules! revoke_suite {
    ($make:path, $make_revoker:path) => {
        $crate::revoke_suite!(@cases $make, $make_revoker;
            revoke_the_server_receives_the_exact_request,
            revoke_succeeds_on_an_empty_object_or_an_empty_body,
            revoke_every_modeled_error_by_header_and_by_body,
            revoke_is_retried_after_throttling_and_server_errors,
            revoke_is_retried_after_a_timeout_even_under_the_rotation_safe_policy,
            revoke_a_2xx_page_that_is_not_json_is_not_a_revocation,
            revoke_a_redirect_is_never_followed,
            revoke_end_to_end_against_the_emulator,
        );
    };
    (@cases $make:path, $make_revoker:path; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                $crate::revoke::$case($make, $make_revoker).await;
            }
        )*
    };
}

/// Instantiates every case of the suite as a `#[tokio::test]` for the given [`MakeClient`].
#[macro_export]
macro_rules! contract_suite {
    ($make:path) => {
        $crate::contract_suite!(@cases $make;
            the_server_receives_the_exact_request,
            success_with_every_field,
            success_with_the_minimal_fields,
            success_with_new_device_metadata,
            every_modeled_error_by_header_and_by_body,
            namespaced_and_uri_suffixed_codes,
            server_errors_are_retried_then_succeed,
            throttling_is_retried_with_backoff,
            retry_after_is_honoured,
            exhausted_attempts_return_the_last_error_and_count,
            non_retryable_errors_are_sent_exactly_once,
            the_quota_stops_a_retry_storm,
            an_html_503_from_a_proxy_is_a_typed_response_error,
            an_empty_200_is_a_typed_response_error,
            a_truncated_body_is_a_typed_response_error,
            an_oversized_body_is_refused,
            an_endless_body_is_cut_at_the_limit,
            a_claimed_terabyte_is_not_reserved_up_front,
            a_response_slower_than_the_attempt_timeout_times_out,
            a_body_that_stalls_after_its_headers_times_out,
            timeouts_of_duration_max_mean_no_limit,
            connection_refused_is_a_connect_error,
            a_reset_in_the_middle_of_the_body_is_a_transport_error,
            a_redirect_is_never_followed,
            connections_are_reused_across_calls,
            concurrent_callers_find_their_connections_kept_for_the_next_burst,
            rotation_safe_policy_never_resends_after_the_request_may_have_arrived,
            end_to_end_against_the_emulator,
        );
    };
    (@cases $make:path; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                $crate::$case($make).await;
            }
        )*
    };
}

/// The refresh token every case sends (a canary: it must never appear in a message).
pub const REFRESH_TOKEN: &str = "CANARY-contract-refresh.0123456789abcdef.REFRESH_SECRET";
/// The client id every case sends.
pub const CLIENT_ID: &str = "contract1client2id3";
/// The access token the mocks return.
pub const ACCESS_TOKEN: &str = "CANARY-contract-access.0123456789abcdef.ACCESS_SECRET";

pub(crate) fn input() -> RefreshInput {
    RefreshInput::builder()
        .refresh_token(REFRESH_TOKEN)
        .client_id(CLIENT_ID)
        .build()
        .expect("valid input")
}

/// Fast settings: tiny backoff, short timeouts, default attempts and policy.
pub(crate) fn fast_config() -> CallConfig {
    CallConfig {
        retry: RetryConfig {
            initial_backoff: Duration::from_millis(5),
            max_backoff: Duration::from_millis(50),
            ..RetryConfig::default()
        },
        timeouts: Timeouts {
            connect: Duration::from_secs(2),
            attempt: Duration::from_secs(5),
            total: Duration::from_secs(20),
        },
        ..CallConfig::default()
    }
}

pub(crate) fn endpoint_of(server: &MockServer) -> Endpoint {
    EndpointConfig::new()
        .endpoint_url(server.uri())
        .resolve()
        .expect("loopback endpoint")
}

/// A success body of real-world size (~4 KiB): access ~1,100, ID ~1,250 and refresh ~1,700
/// characters, deterministic.
pub fn realistic_success_body() -> String {
    format!(
        r#"{{"AuthenticationResult":{{"AccessToken":"{}","ExpiresIn":3600,"TokenType":"Bearer","RefreshToken":"{}","IdToken":"{}"}},"ChallengeParameters":{{}}}}"#,
        token_like(1_100, 1),
        token_like(1_700, 2),
        token_like(1_250, 3)
    )
}

/// A deterministic JWT-shaped string of `len` base64url characters.
pub fn token_like(len: usize, seed: u64) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut state = seed;
    (0..len)
        .map(|i| {
            if i > 0 && (i == len / 5 || i == 4 * len / 5) {
                return '.';
            }
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            char::from(ALPHABET[(state >> 58) as usize])
        })
        .collect()
}

pub(crate) fn success_body() -> String {
    format!(
        r#"{{"AuthenticationResult":{{"AccessToken":"{ACCESS_TOKEN}","ExpiresIn":3600,"TokenType":"Bearer","RefreshToken":"CANARY-rotated.0123456789abcdef.ROTATED","IdToken":"CANARY-id.0123456789abcdef.ID_SECRET"}},"ChallengeParameters":{{}}}}"#
    )
}

pub(crate) fn json(status: u16, body: impl Into<String>) -> ResponseTemplate {
    ResponseTemplate::new(status)
        .insert_header("content-type", "application/x-amz-json-1.1")
        .insert_header("x-amzn-requestid", "11111111-2222-4333-8444-555555555555")
        .set_body_raw(body.into().into_bytes(), "application/x-amz-json-1.1")
}

pub(crate) fn error_body(code: &str) -> String {
    format!(r#"{{"__type":"{code}","message":"contract says {code}"}}"#)
}

pub(crate) async fn mount(server: &MockServer, template: ResponseTemplate, times: Option<u64>) {
    let mock = Mock::given(method("POST"))
        .and(path("/"))
        .respond_with(template);
    match times {
        Some(n) => mock.up_to_n_times(n).mount(server).await,
        None => mock.mount(server).await,
    }
}

pub(crate) async fn received(server: &MockServer) -> Vec<Request> {
    server.received_requests().await.unwrap_or_default()
}

pub(crate) fn assert_no_secret(e: &CallError) {
    let shown = format!("{e} {e:?}");
    for secret in ["REFRESH_SECRET", "ACCESS_SECRET", "ROTATED", "ID_SECRET"] {
        assert!(!shown.contains(secret), "a secret leaked: {shown}");
    }
}

pub(crate) fn response_kind(e: &CallError) -> Option<ResponseErrorKind> {
    match e.error() {
        Error::Response(r) => Some(r.kind),
        _ => None,
    }
}

pub(crate) fn transport_kind(e: &CallError) -> Option<TransportErrorKind> {
    match e.error() {
        Error::Transport(t) => Some(t.kind()),
        _ => None,
    }
}

/// Method, path, headers and body exactly as built by the core; no signing headers.
pub async fn the_server_receives_the_exact_request(make: MakeClient) {
    let server = MockServer::start().await;
    mount(&server, json(200, success_body()), None).await;
    let refresh = make(endpoint_of(&server), fast_config());
    // A real refresh token is ~1,700 characters; libcurl, for one, treats bodies over 1 KiB
    // differently.
    let long_token = format!("{REFRESH_TOKEN}.{}", "x".repeat(1_700));
    let long_input = RefreshInput::builder()
        .refresh_token(long_token.clone())
        .client_id(CLIENT_ID)
        .build()
        .expect("valid input");
    refresh(long_input).await.expect("success");

    let requests = received(&server).await;
    assert_eq!(requests.len(), 1);
    let r = &requests[0];
    assert_eq!(r.method.as_str(), "POST");
    assert_eq!(r.url.path(), "/");
    assert_eq!(r.url.query(), None);
    let expected_body = format!(r#"{{"RefreshToken":"{long_token}","ClientId":"{CLIENT_ID}"}}"#);
    assert_eq!(String::from_utf8_lossy(&r.body), expected_body);
    let header = |name: &str| {
        let values: Vec<&str> = r
            .headers
            .get_all(name)
            .iter()
            .map(|v| v.to_str().unwrap_or("<binary>"))
            .collect();
        values.join(" | ")
    };
    assert_eq!(header("content-type"), "application/x-amz-json-1.1");
    assert_eq!(
        header("x-amz-target"),
        "AWSCognitoIdentityProviderService.GetTokensFromRefreshToken"
    );
    assert_eq!(header("content-length"), expected_body.len().to_string());
    let address = server.address();
    assert_eq!(
        header("host"),
        format!("{}:{}", address.ip(), address.port())
    );
    assert!(
        header("user-agent").starts_with("cogref/"),
        "{}",
        header("user-agent")
    );
    assert_eq!(header("amz-sdk-request"), "attempt=1; max=3");
    let id = header("amz-sdk-invocation-id");
    assert_eq!(id.len(), 36, "{id}");
    assert_eq!(&id[14..15], "4", "a version-4 UUID: {id}");
    // Nothing else but connection management headers a client may add.
    let allowed = [
        "content-type",
        "x-amz-target",
        "content-length",
        "host",
        "user-agent",
        "amz-sdk-request",
        "amz-sdk-invocation-id",
        "accept",
        "connection",
    ];
    for name in r.headers.keys() {
        assert!(
            allowed.contains(&name.as_str()),
            "unexpected header {name}: {}",
            header(name.as_str())
        );
    }
    for signing in ["authorization", "x-amz-date", "x-amz-security-token"] {
        assert!(!r.headers.contains_key(signing));
    }
}

/// Every field of the authentication result reaches the output.
pub async fn success_with_every_field(make: MakeClient) {
    let server = MockServer::start().await;
    mount(&server, json(200, success_body()), None).await;
    let before = std::time::SystemTime::now();
    let out = make(endpoint_of(&server), fast_config())(input())
        .await
        .expect("success");
    assert_eq!(out.access_token.expose_secret(), ACCESS_TOKEN);
    assert!(out.refresh_token.is_some() && out.id_token.is_some());
    assert_eq!(out.token_type.as_deref(), Some("Bearer"));
    assert_eq!(out.expires_in, Duration::from_secs(3600));
    assert!(out.expires_at >= before + Duration::from_secs(3600));
    assert_eq!(
        out.request_id.as_deref(),
        Some("11111111-2222-4333-8444-555555555555")
    );
    assert!(!format!("{out:?}").contains("SECRET"));
}

/// Only an access token: no rotation, no ID token.
pub async fn success_with_the_minimal_fields(make: MakeClient) {
    let server = MockServer::start().await;
    let body = format!(r#"{{"AuthenticationResult":{{"AccessToken":"{ACCESS_TOKEN}"}}}}"#);
    mount(&server, json(200, body), None).await;
    let out = make(endpoint_of(&server), fast_config())(input())
        .await
        .expect("success");
    assert!(out.refresh_token.is_none() && out.id_token.is_none());
    assert_eq!(out.expires_in, Duration::ZERO);
}

/// A new device is reported with its key and group.
pub async fn success_with_new_device_metadata(make: MakeClient) {
    let server = MockServer::start().await;
    let body = format!(
        r#"{{"AuthenticationResult":{{"AccessToken":"{ACCESS_TOKEN}","ExpiresIn":300,"NewDeviceMetadata":{{"DeviceKey":"eu-west-1_0f1e2d3c-4b5a","DeviceGroupKey":"-group"}}}}}}"#
    );
    mount(&server, json(200, body), None).await;
    let out = make(endpoint_of(&server), fast_config())(input())
        .await
        .expect("success");
    let device = out.new_device.expect("new device");
    assert_eq!(
        device.device_key.as_ref().map(|k| k.expose_secret()),
        Some("eu-west-1_0f1e2d3c-4b5a")
    );
    assert_eq!(device.device_group_key.as_deref(), Some("-group"));
}

/// Each modeled error arrives as its kind, whether the code is in the header or the body.
pub async fn every_modeled_error_by_header_and_by_body(make: MakeClient) {
    let config = CallConfig {
        retry: RetryConfig::disabled(),
        ..fast_config()
    };
    for (kind, code) in ServiceErrorKind::MODELED {
        for by_header in [false, true] {
            let server = MockServer::start().await;
            let template = if by_header {
                json(400, r#"{"message":"from the header case"}"#)
                    .insert_header("x-amzn-errortype", code)
            } else {
                json(400, error_body(code))
            };
            mount(&server, template, None).await;
            let e = make(endpoint_of(&server), config)(input())
                .await
                .expect_err("an error");
            let service = e.as_service().expect("a service error");
            assert_eq!((service.kind, service.code.as_str()), (kind, code));
            assert_eq!(
                service.request_id.as_deref(),
                Some("11111111-2222-4333-8444-555555555555")
            );
            assert_eq!(e.requires_sign_in(), kind.requires_sign_in());
            assert_no_secret(&e);
        }
    }
}

/// `namespace#Code` and `Code:uri` forms resolve to the code.
pub async fn namespaced_and_uri_suffixed_codes(make: MakeClient) {
    let config = CallConfig {
        retry: RetryConfig::disabled(),
        ..fast_config()
    };
    let forms = [
        json(
            400,
            r#"{"__type":"com.amazonaws.cognitoidentityprovider#RefreshTokenReuseException"}"#,
        ),
        json(400, "{}").insert_header(
            "x-amzn-errortype",
            "RefreshTokenReuseException:http://internal.amazon.com/coral/com.amazon.coral.validate/",
        ),
        json(400, "").insert_header(
            "x-amzn-errortype",
            "aws.protocoltests.json#RefreshTokenReuseException:http://internal.amazon.com/",
        ),
    ];
    for template in forms {
        let server = MockServer::start().await;
        mount(&server, template, None).await;
        let e = make(endpoint_of(&server), config)(input())
            .await
            .expect_err("an error");
        assert_eq!(
            e.as_service().map(|s| s.kind),
            Some(ServiceErrorKind::RefreshTokenReuse)
        );
        assert!(e.requires_sign_in());
    }
}

/// 500, 502, 503 and 504 are retried and the retry's success is returned.
pub async fn server_errors_are_retried_then_succeed(make: MakeClient) {
    for status in [500, 502, 503, 504] {
        let server = MockServer::start().await;
        mount(
            &server,
            json(status, error_body("InternalErrorException")),
            Some(2),
        )
        .await;
        mount(&server, json(200, success_body()), None).await;
        let out = make(endpoint_of(&server), fast_config())(input()).await;
        assert!(out.is_ok(), "status {status}: {:?}", out.err());
        let attempts: Vec<String> = received(&server)
            .await
            .iter()
            .map(|r| {
                r.headers["amz-sdk-request"]
                    .to_str()
                    .unwrap_or_default()
                    .to_owned()
            })
            .collect();
        assert_eq!(
            attempts,
            ["attempt=1; max=3", "attempt=2; max=3", "attempt=3; max=3"]
        );
    }
}

/// A 429 `TooManyRequestsException` is retried after a backoff.
pub async fn throttling_is_retried_with_backoff(make: MakeClient) {
    let server = MockServer::start().await;
    mount(
        &server,
        json(429, error_body("TooManyRequestsException")),
        Some(1),
    )
    .await;
    mount(&server, json(200, success_body()), None).await;
    let config = CallConfig {
        retry: RetryConfig {
            // Full jitter over [0, 400 ms): the wait is random but the retry happens.
            initial_backoff: Duration::from_millis(400),
            ..fast_config().retry
        },
        ..fast_config()
    };
    make(endpoint_of(&server), config)(input())
        .await
        .expect("retried after throttling");
    let requests = received(&server).await;
    assert_eq!(requests.len(), 2);
    assert_eq!(
        requests[0].headers["amz-sdk-invocation-id"], requests[1].headers["amz-sdk-invocation-id"],
        "one invocation id per call"
    );
}

/// `x-amz-retry-after` (milliseconds) sets the wait.
pub async fn retry_after_is_honoured(make: MakeClient) {
    let server = MockServer::start().await;
    mount(
        &server,
        json(429, error_body("TooManyRequestsException")).insert_header("x-amz-retry-after", "300"),
        Some(1),
    )
    .await;
    mount(&server, json(200, success_body()), None).await;
    let config = CallConfig {
        retry: RetryConfig {
            max_backoff: Duration::from_secs(5),
            ..fast_config().retry
        },
        ..fast_config()
    };
    let started = Instant::now();
    make(endpoint_of(&server), config)(input())
        .await
        .expect("retried");
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "waited {:?}",
        started.elapsed()
    );
}

/// After the last attempt the last error comes back, with the number of attempts.
pub async fn exhausted_attempts_return_the_last_error_and_count(make: MakeClient) {
    let server = MockServer::start().await;
    mount(
        &server,
        json(503, error_body("InternalErrorException")),
        Some(2),
    )
    .await;
    mount(
        &server,
        json(429, error_body("TooManyRequestsException")),
        None,
    )
    .await;
    let e = make(endpoint_of(&server), fast_config())(input())
        .await
        .expect_err("exhausted");
    assert_eq!(e.attempts(), 3);
    assert_eq!(
        e.as_service().map(|s| s.kind),
        Some(ServiceErrorKind::TooManyRequests)
    );
    assert_eq!(e.retry_kind(), Some(RetryKind::Throttling));
    assert_eq!(received(&server).await.len(), 3);
    assert_no_secret(&e);
}

/// NotAuthorized, RefreshTokenReuse and the other final errors are sent once.
pub async fn non_retryable_errors_are_sent_exactly_once(make: MakeClient) {
    for code in [
        "NotAuthorizedException",
        "RefreshTokenReuseException",
        "InvalidParameterException",
        "ResourceNotFoundException",
    ] {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(json(400, error_body(code)))
            .expect(1)
            .mount(&server)
            .await;
        let e = make(endpoint_of(&server), fast_config())(input())
            .await
            .expect_err("final");
        assert_eq!(e.attempts(), 1, "{code}");
        server.verify().await;
    }
}

/// Once the client's retry quota is spent, calls stop retrying.
pub async fn the_quota_stops_a_retry_storm(make: MakeClient) {
    let server = MockServer::start().await;
    mount(
        &server,
        json(503, error_body("InternalErrorException")),
        None,
    )
    .await;
    let config = CallConfig {
        retry: RetryConfig {
            initial_backoff: Duration::ZERO,
            ..fast_config().retry
        },
        ..fast_config()
    };
    let refresh = make(endpoint_of(&server), config);
    // 500 tokens at 10 per transient retry: 25 calls of 3 attempts spend them all.
    for _ in 0..25 {
        let e = refresh(input()).await.expect_err("always 503");
        assert_eq!(e.attempts(), 3);
    }
    let e = refresh(input()).await.expect_err("always 503");
    assert_eq!(e.attempts(), 1, "no quota left: no retry");
    assert_eq!(received(&server).await.len(), 25 * 3 + 1);
}

/// An HTML 503 (a proxy or load balancer) is retried and ends as a response error.
pub async fn an_html_503_from_a_proxy_is_a_typed_response_error(make: MakeClient) {
    let server = MockServer::start().await;
    let html = ResponseTemplate::new(503).set_body_raw(
        b"<html><body><h1>503 Service Temporarily Unavailable</h1></body></html>".to_vec(),
        "text/html",
    );
    mount(&server, html, None).await;
    let e = make(endpoint_of(&server), fast_config())(input())
        .await
        .expect_err("503");
    assert_eq!(response_kind(&e), Some(ResponseErrorKind::NotJson));
    assert_eq!(e.status().map(|s| s.as_u16()), Some(503));
    assert_eq!(e.attempts(), 3);
    assert!(
        e.to_string()
            .contains("503 Service Temporarily Unavailable"),
        "{e}"
    );
}

/// A 200 with no body is not a success.
pub async fn an_empty_200_is_a_typed_response_error(make: MakeClient) {
    let server = MockServer::start().await;
    mount(&server, json(200, ""), None).await;
    let e = make(endpoint_of(&server), fast_config())(input())
        .await
        .expect_err("empty");
    assert_eq!(
        response_kind(&e),
        Some(ResponseErrorKind::MissingAuthenticationResult)
    );
    assert_eq!(e.attempts(), 1, "a malformed 200 is not retried");
}

/// A 200 whose JSON stops halfway is reported as truncated, without echoing the token.
pub async fn a_truncated_body_is_a_typed_response_error(make: MakeClient) {
    let server = MockServer::start().await;
    let body = success_body();
    mount(&server, json(200, &body[..body.len() / 2]), None).await;
    let e = make(endpoint_of(&server), fast_config())(input())
        .await
        .expect_err("truncated");
    assert_eq!(response_kind(&e), Some(ResponseErrorKind::Truncated));
    assert_no_secret(&e);
}

/// A body over the configured limit is refused.
pub async fn an_oversized_body_is_refused(make: MakeClient) {
    let server = MockServer::start().await;
    mount(
        &server,
        json(200, " ".repeat(64 * 1024) + &success_body()),
        None,
    )
    .await;
    let config = CallConfig {
        limits: cogref_core::ResponseLimits {
            max_body_bytes: 16 * 1024,
        },
        ..fast_config()
    };
    let e = make(endpoint_of(&server), config)(input())
        .await
        .expect_err("too large");
    assert_eq!(
        response_kind(&e),
        Some(ResponseErrorKind::BodyTooLarge { limit: 16 * 1024 })
    );
}

/// A body that never ends is cut at the limit instead of being buffered.
pub async fn an_endless_body_is_cut_at_the_limit(make: MakeClient) {
    let server = raw::RawServer::start(raw::Behaviour::EndlessBody).await;
    let config = CallConfig {
        limits: cogref_core::ResponseLimits {
            max_body_bytes: 64 * 1024,
        },
        ..fast_config()
    };
    let e = make(server.endpoint(), config)(input())
        .await
        .expect_err("endless");
    assert_eq!(
        response_kind(&e),
        Some(ResponseErrorKind::BodyTooLarge { limit: 64 * 1024 })
    );
    let sent = server.bytes_sent();
    assert!(
        sent < 64 * 1024 * 1024,
        "the client kept reading: {sent} bytes"
    );
}

/// A `Content-Length` is a claim, not a size to reserve: a server that announces a terabyte
/// and sends two bytes gets a transport error, even with no body limit, not an allocation of a
/// terabyte (which aborts the process).
pub async fn a_claimed_terabyte_is_not_reserved_up_front(make: MakeClient) {
    let server = raw::RawServer::start(raw::Behaviour::LyingLength).await;
    let config = CallConfig {
        retry: RetryConfig::disabled(),
        limits: cogref_core::ResponseLimits {
            max_body_bytes: usize::MAX,
        },
        ..fast_config()
    };
    let e = make(server.endpoint(), config)(input())
        .await
        .expect_err("two bytes of a terabyte");
    assert!(
        matches!(
            transport_kind(&e),
            Some(TransportErrorKind::Io | TransportErrorKind::Other)
        ) || response_kind(&e) == Some(ResponseErrorKind::Truncated),
        "{e:?}"
    );
}

/// [`fast_config`] with one attempt of at most `attempt`.
fn one_attempt_of(attempt: Duration) -> CallConfig {
    CallConfig {
        retry: RetryConfig::disabled(),
        timeouts: Timeouts {
            attempt,
            ..fast_config().timeouts
        },
        ..fast_config()
    }
}

/// A call to `endpoint` with one attempt of 300 ms ends in a timeout, well within 2 s.
async fn times_out_in_one_attempt(make: MakeClient, endpoint: Endpoint) {
    let started = Instant::now();
    let e = make(endpoint, one_attempt_of(Duration::from_millis(300)))(input())
        .await
        .expect_err("timeout");
    assert_eq!(transport_kind(&e), Some(TransportErrorKind::Timeout), "{e}");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
}

/// A response slower than the attempt timeout is a timeout.
pub async fn a_response_slower_than_the_attempt_timeout_times_out(make: MakeClient) {
    let server = MockServer::start().await;
    mount(
        &server,
        json(200, success_body()).set_delay(Duration::from_secs(3)),
        None,
    )
    .await;
    times_out_in_one_attempt(make, endpoint_of(&server)).await;
}

/// `Duration::MAX` for every timeout (a way to say "no limit" through [`Timeouts`]' public
/// fields) neither panics nor cuts the call short: the answer comes back. (ureq's `Instant`
/// arithmetic panicked on it, and the core read such a total timeout as no time at all.)
pub async fn timeouts_of_duration_max_mean_no_limit(make: MakeClient) {
    let server = MockServer::start().await;
    mount(&server, json(200, success_body()), None).await;
    let config = CallConfig {
        timeouts: Timeouts {
            connect: Duration::MAX,
            attempt: Duration::MAX,
            total: Duration::MAX,
        },
        ..fast_config()
    };
    let output = make(endpoint_of(&server), config)(input()).await;
    assert!(output.is_ok(), "{:?}", output.err());
}

/// Headers arrive at once, then the body stops halfway and the connection stays silent: the
/// attempt timeout covers the body too, and the call ends with a timeout, not a hang.
pub async fn a_body_that_stalls_after_its_headers_times_out(make: MakeClient) {
    let server = raw::RawServer::start(raw::Behaviour::StalledBody).await;
    times_out_in_one_attempt(make, server.endpoint()).await;
}

/// Nothing listening: a connect error, retried (the request was never sent).
pub async fn connection_refused_is_a_connect_error(make: MakeClient) {
    let port = raw::unused_port();
    let endpoint = EndpointConfig::new()
        .endpoint_url(format!("http://127.0.0.1:{port}"))
        .resolve()
        .expect("valid");
    let e = make(endpoint, fast_config())(input())
        .await
        .expect_err("refused");
    assert_eq!(transport_kind(&e), Some(TransportErrorKind::Connect), "{e}");
    assert_eq!(e.attempts(), 3);
}

/// The server promises a body and drops the connection halfway.
pub async fn a_reset_in_the_middle_of_the_body_is_a_transport_error(make: MakeClient) {
    let server = raw::RawServer::start(raw::Behaviour::ResetMidBody).await;
    let config = CallConfig {
        retry: RetryConfig::disabled(),
        ..fast_config()
    };
    let e = make(server.endpoint(), config)(input())
        .await
        .expect_err("reset");
    assert!(
        matches!(
            transport_kind(&e),
            Some(TransportErrorKind::Io | TransportErrorKind::Other)
        ),
        "{e:?}"
    );
    assert_eq!(server.requests(), 1);
}

/// A 307 to another server is reported, and the other server sees nothing.
pub async fn a_redirect_is_never_followed(make: MakeClient) {
    let elsewhere = MockServer::start().await;
    mount(&elsewhere, json(200, success_body()), None).await;
    let server = MockServer::start().await;
    for status in [301, 302, 307, 308] {
        server.reset().await;
        mount(
            &server,
            ResponseTemplate::new(status).insert_header("location", elsewhere.uri() + "/"),
            None,
        )
        .await;
        let e = make(endpoint_of(&server), fast_config())(input())
            .await
            .expect_err("redirect");
        assert_eq!(
            response_kind(&e),
            Some(ResponseErrorKind::Redirect),
            "{status}"
        );
        assert_eq!(e.attempts(), 1);
    }
    assert!(
        received(&elsewhere).await.is_empty(),
        "the token went elsewhere"
    );
}

/// Consecutive calls on one client reuse connections.
pub async fn connections_are_reused_across_calls(make: MakeClient) {
    let server = raw::RawServer::start(raw::Behaviour::Success(success_body())).await;
    let refresh = make(server.endpoint(), fast_config());
    for _ in 0..10 {
        refresh(input()).await.expect("success");
    }
    assert_eq!(server.requests(), 10);
    // A pool may open a second connection when the next call starts before the previous
    // connection is back in the pool (hyper returns it from its connection task); what must not
    // happen is a connection per call.
    assert!(
        server.connections() <= 5,
        "{} connections for 10 calls: connections are not reused",
        server.connections()
    );
}

/// Callers at once each need a connection; the next bursts of as many callers find most of
/// them kept, instead of opening (and, against Cognito, TLS-handshaking) new ones: a server that
/// refreshes for many users at once must not pay a handshake per call.
pub async fn concurrent_callers_find_their_connections_kept_for_the_next_burst(make: MakeClient) {
    const CALLERS: usize = 24;
    const BURSTS: usize = 4;
    // Slow enough that every burst's calls are in flight together, one connection each.
    let server = raw::RawServer::start(raw::Behaviour::SlowSuccess(
        success_body(),
        Duration::from_millis(150),
    ))
    .await;
    let refresh = make(server.endpoint(), fast_config());
    for _ in 0..BURSTS {
        let calls: Vec<_> = (0..CALLERS)
            .map(|_| {
                let refresh = refresh.clone();
                tokio::spawn(async move { refresh(input()).await })
            })
            .collect();
        for call in calls {
            call.await
                .expect("the call does not panic")
                .expect("success");
        }
    }
    assert_eq!(server.requests(), CALLERS * BURSTS);
    // The first burst opens up to one connection per caller; a pool that kept them has the
    // next bursts open few more (hyper puts a connection back a moment after its call
    // returned, on a busy machine later still). A pool that keeps three, as ureq's default
    // does, opens 21 a burst: 87 in all.
    assert!(
        server.connections() <= 2 * CALLERS,
        "{} connections for {BURSTS} bursts of {CALLERS} callers: idle connections are not kept",
        server.connections()
    );
}

/// Under the rotation-safe policy, a failure after the request may have reached the server is
/// never retried; a refused connection and a Cognito error code still are.
pub async fn rotation_safe_policy_never_resends_after_the_request_may_have_arrived(
    make: MakeClient,
) {
    let safe = CallConfig {
        retry: RetryConfig {
            policy: RetryPolicy::RotationSafe,
            ..fast_config().retry
        },
        timeouts: Timeouts {
            attempt: Duration::from_millis(300),
            ..fast_config().timeouts
        },
        ..fast_config()
    };

    // A lost response: the server got the request (and may have rotated the token).
    let slow = MockServer::start().await;
    mount(
        &slow,
        json(200, success_body()).set_delay(Duration::from_secs(2)),
        None,
    )
    .await;
    let e = make(endpoint_of(&slow), safe)(input())
        .await
        .expect_err("timeout");
    assert_eq!(e.attempts(), 1);
    assert_eq!(received(&slow).await.len(), 1);

    let reset = raw::RawServer::start(raw::Behaviour::ResetMidBody).await;
    let e = make(reset.endpoint(), safe)(input())
        .await
        .expect_err("reset");
    assert_eq!((e.attempts(), reset.requests()), (1, 1));

    let proxy = MockServer::start().await;
    mount(
        &proxy,
        ResponseTemplate::new(502).set_body_string("bad gateway"),
        None,
    )
    .await;
    let e = make(endpoint_of(&proxy), safe)(input())
        .await
        .expect_err("502");
    assert_eq!(
        e.attempts(),
        1,
        "a proxy 5xx may come after Cognito consumed the token"
    );

    // Cognito's own error code proves the token was not consumed: retried.
    let throttled = MockServer::start().await;
    mount(
        &throttled,
        json(429, error_body("TooManyRequestsException")),
        Some(1),
    )
    .await;
    mount(&throttled, json(200, success_body()), None).await;
    make(endpoint_of(&throttled), safe)(input())
        .await
        .expect("throttling is retried");

    // Nothing was sent: retried.
    let refused = EndpointConfig::new()
        .endpoint_url(format!("http://127.0.0.1:{}", raw::unused_port()))
        .resolve()
        .expect("valid");
    let e = make(refused, safe)(input()).await.expect_err("refused");
    assert_eq!(e.attempts(), 3);
}

/// The whole exchange against the emulator: a real rotation, the new token working, the old one
/// refused as reused, a lost response under rotation-safe retries, and signed tokens.
pub async fn end_to_end_against_the_emulator(make: MakeClient) {
    use cogref_emulator::{AppClient, Emulator, EmulatorConfig, Fault};
    let emulator = Emulator::start(EmulatorConfig::default())
        .await
        .expect("emulator");
    emulator.create_pool("eu-west-1_contract");
    emulator
        .create_client(AppClient::new("eu-west-1_contract", "e2eclient").with_rotation(0))
        .expect("client");
    emulator
        .create_user("eu-west-1_contract", "dana")
        .expect("user");
    let first = emulator
        .mint_refresh_token("e2eclient", "dana")
        .expect("mint");
    let endpoint = EndpointConfig::new()
        .endpoint_url(emulator.endpoint_url())
        .resolve()
        .expect("endpoint");
    let config = CallConfig {
        retry: RetryConfig::rotation_safe(),
        ..fast_config()
    };
    let refresh = make(endpoint, config);
    let with = |token: &str| {
        RefreshInput::builder()
            .refresh_token(token.to_owned())
            .client_id("e2eclient")
            .build()
            .expect("valid input")
    };

    let out = refresh(with(&first)).await.expect("first refresh");
    assert!(emulator.verify_signature(out.access_token.expose_secret()));
    let second = out
        .refresh_token
        .expect("rotation returns a refresh token")
        .expose_secret()
        .to_owned();
    refresh(with(&second))
        .await
        .expect("the rotated token works");
    let e = refresh(with(&first))
        .await
        .expect_err("the old token is dead");
    assert_eq!(
        e.as_service().map(|s| s.kind),
        Some(ServiceErrorKind::RefreshTokenReuse)
    );
    assert!(e.requires_sign_in());

    // The lost response: Cognito rotated, the answer never came; not resent.
    emulator.inject(Fault::DropAfterRotation { count: 1 });
    let served = emulator.requests_served();
    let e = refresh(with(&second)).await.expect_err("dropped");
    assert_eq!(e.attempts(), 1, "{e}");
    assert_eq!(emulator.requests_served(), served + 1);
    emulator.shutdown().await;
}
