//! The drivers' spans under a `tracing` subscriber, in a test binary of its own: a callsite
//! first reached by a test on another thread while this test's scoped subscriber was being
//! registered could keep the interest "never" (tracing's callsite registry races with scoped
//! dispatchers), and the attempt spans then went missing from the capture now and then.

mod common;
use common::Captured;

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use cogref_core::driver::{HttpRequest, HttpResponse, ManualEnvironment};
use cogref_core::{CallConfig, Client, EndpointConfig, Error, RefreshInput, SendOptions};

fn sim_clock() -> ManualEnvironment {
    ManualEnvironment::new(
        Instant::now(),
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_750_000_000),
    )
}

type Script = Arc<Mutex<VecDeque<Result<HttpResponse, Error>>>>;

fn response(status: u16, body: &str) -> Result<HttpResponse, Error> {
    Ok(http::Response::builder()
        .status(status)
        .header("x-amzn-requestid", "req")
        .body(body.as_bytes().to_vec())
        .expect("valid response"))
}

#[test]
fn spans_carry_attempt_status_request_id_and_duration_but_never_a_secret() {
    let (captured, subscriber) = Captured::subscriber(tracing::Level::DEBUG);
    let clock = sim_clock();
    let script: Script = Arc::new(Mutex::new(
        [
            response(500, r#"{"__type":"InternalErrorException","message":"CANARY-in-message.0123456789abcdef"}"#),
            response(200, r#"{"AuthenticationResult":{"AccessToken":"CANARY-access.0123456789abcdef.SECRET","ExpiresIn":60}}"#),
        ]
        .into(),
    ));
    let endpoint = EndpointConfig::new()
        .region("eu-west-1")
        .resolve()
        .expect("valid");
    let config = CallConfig {
        retry: cogref_core::RetryConfig {
            initial_backoff: Duration::ZERO,
            ..Default::default()
        },
        ..Default::default()
    };
    let client = Client::new(
        move |_: HttpRequest, _: SendOptions| {
            script
                .lock()
                .expect("script")
                .pop_front()
                .expect("scripted")
        },
        clock,
        endpoint,
        config,
    );
    let secret_input = RefreshInput::builder()
        .refresh_token("CANARY-refresh.0123456789abcdef.SECRET")
        .client_id("client")
        .client_secret("CANARY_client_secret_0123456789")
        .build()
        .expect("valid");
    tracing::subscriber::with_default(subscriber, || {
        // tracing caches each callsite's interest process-wide: ask again under this
        // subscriber rather than trust what was cached before it existed.
        tracing::callsite::rebuild_interest_cache();
        client
            .refresh_blocking(&secret_input)
            .expect("second attempt succeeds");
    });
    let logs = String::from_utf8(captured.0.lock().expect("buffer").clone()).expect("utf-8");
    assert!(logs.contains("cogref.refresh"), "{logs}");
    assert!(
        logs.contains("attempt=1") && logs.contains("attempt=2"),
        "{logs}"
    );
    assert!(
        logs.contains("status=500") && logs.contains("status=200"),
        "{logs}"
    );
    assert!(
        logs.contains("request_id=\"req\"") || logs.contains("request_id=req"),
        "{logs}"
    );
    assert!(logs.contains("duration_ms="), "{logs}");
    assert!(
        logs.contains("outcome=\"ok\"") || logs.contains("outcome=ok"),
        "{logs}"
    );
    assert!(
        !logs.contains("CANARY"),
        "a secret reached the logs: {logs}"
    );
}

/// Polls `future` to its end on this thread: the scripted transport never waits.
fn run<F: std::future::Future>(future: F) -> F::Output {
    let mut future = std::pin::pin!(future);
    let mut context = std::task::Context::from_waker(std::task::Waker::noop());
    loop {
        if let std::task::Poll::Ready(output) = future.as_mut().poll(&mut context) {
            return output;
        }
    }
}

/// A refresh through the async driver, inside the caller's span `app.request`, of a refused
/// connection then a 400: the transport logs from its send and its sleep (when they are called,
/// before their futures are polled). The lines the subscriber wrote.
fn async_refresh_logs(call_span_enabled: bool) -> String {
    use tracing_subscriber::Layer;
    use tracing_subscriber::layer::SubscriberExt;
    let captured = Captured::default();
    let writer = captured.clone();
    let layer = tracing_subscriber::fmt::layer()
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .with_filter(tracing_subscriber::filter::filter_fn(move |m| {
            call_span_enabled || m.name() != "cogref.refresh"
        }));
    let subscriber = tracing_subscriber::registry().with(layer);
    let script: Script = Arc::new(Mutex::new(
        [
            Err(cogref_core::TransportError::new(
                cogref_core::TransportErrorKind::Connect,
                "connection refused",
            )
            .not_sent()
            .into()),
            response(
                400,
                r#"{"__type":"NotAuthorizedException","message":"Invalid Refresh Token"}"#,
            ),
        ]
        .into(),
    ));
    let clock = sim_clock();
    let sleeper = clock.clone();
    let transport = cogref_core::driver::transport_fn(
        move |_: HttpRequest, _: SendOptions| {
            tracing::info!(target: "transport", "sending");
            let answer = script
                .lock()
                .expect("script")
                .pop_front()
                .expect("scripted");
            async move { answer }
        },
        move |duration: Duration| {
            tracing::info!(target: "transport", "sleeping");
            sleeper.advance(duration);
            async {}
        },
    );
    let config = CallConfig {
        retry: cogref_core::RetryConfig {
            initial_backoff: Duration::from_millis(10),
            ..Default::default()
        },
        ..Default::default()
    };
    let endpoint = EndpointConfig::new()
        .region("eu-west-1")
        .resolve()
        .expect("valid");
    let client = Client::new(transport, clock, endpoint, config);
    let input = RefreshInput::builder()
        .refresh_token("a-refresh-token.0123456789")
        .client_id("client")
        .build()
        .expect("valid");
    tracing::subscriber::with_default(subscriber, || {
        tracing::callsite::rebuild_interest_cache();
        let app = tracing::info_span!("app.request");
        let refreshed = run(tracing::Instrument::instrument(client.refresh(&input), app));
        assert!(refreshed.is_err(), "the script ends with a 400");
    });
    String::from_utf8(captured.0.lock().expect("buffer").clone()).expect("utf-8")
}

/// The line of `logs` that holds `message`, and the spans it names, in order.
fn scope_of<'a>(logs: &'a str, message: &str) -> Vec<&'a str> {
    let line = logs
        .lines()
        .find(|l| l.contains(message))
        .unwrap_or_else(|| panic!("no {message:?} in {logs}"));
    ["app.request", "cogref.refresh", "cogref.attempt"]
        .into_iter()
        .filter(|span| line.contains(&format!("{span}{{")) || line.contains(&format!("{span}:")))
        .collect()
}

#[test]
fn async_calls_log_each_attempt_inside_the_call_span_inside_the_callers_span() {
    let logs = async_refresh_logs(true);
    let all = ["app.request", "cogref.refresh", "cogref.attempt"];
    assert_eq!(scope_of(&logs, "sending"), all, "{logs}");
    assert_eq!(scope_of(&logs, "attempt failed"), all, "{logs}");
    assert_eq!(scope_of(&logs, "sleeping"), all[..2], "{logs}");
    assert_eq!(scope_of(&logs, "refresh failed"), all[..2], "{logs}");
    // In that order on the line: the caller's span, the call's, the attempt's.
    let line = logs
        .lines()
        .find(|l| l.contains("sending"))
        .expect("a line");
    let at = |span: &str| line.find(span).expect("named");
    assert!(
        at("app.request") < at("cogref.refresh") && at("cogref.refresh") < at("cogref.attempt"),
        "{line}"
    );
}

#[test]
fn with_the_call_span_filtered_out_attempts_stay_inside_the_callers_span() {
    let logs = async_refresh_logs(false);
    assert_eq!(
        scope_of(&logs, "sending"),
        ["app.request", "cogref.attempt"],
        "{logs}"
    );
    assert_eq!(scope_of(&logs, "sleeping"), ["app.request"], "{logs}");
}

/// Moved from `network_text.rs`, where another test reaching the same callsites on another
/// thread made it fail now and then (see the module docs).
#[test]
fn a_request_id_not_shaped_like_one_is_redacted_in_the_attempt_span() {
    let (captured, subscriber) = Captured::subscriber(tracing::Level::TRACE);
    let hostile = "CANARY-token.0123456789abcdef.SECRET";
    let client = Client::new(
        move |_: HttpRequest, _: SendOptions| {
            Ok(cogref_core::http::Response::builder()
                .status(400)
                .header("x-amzn-requestid", hostile)
                .body(br#"{"__type":"NotAuthorizedException"}"#.to_vec())
                .expect("response"))
        },
        sim_clock(),
        EndpointConfig::new()
            .region("eu-west-1")
            .resolve()
            .expect("endpoint"),
        CallConfig {
            retry: cogref_core::RetryConfig::default(),
            ..CallConfig::default()
        },
    );
    let input = RefreshInput::builder()
        .refresh_token("r.e.f")
        .client_id("client")
        .build()
        .expect("input");
    tracing::subscriber::with_default(subscriber, || {
        let e = client.refresh_blocking(&input).expect_err("refused");
        assert!(!e.to_string().contains("CANARY"), "{e}");
    });
    let logs = String::from_utf8(captured.0.lock().expect("buffer").clone()).expect("utf-8");
    assert!(logs.contains("cogref.attempt"), "{logs}");
    assert!(
        logs.contains("request_id=\"[redacted]\"") || logs.contains("request_id=[redacted]"),
        "{logs}"
    );
    assert!(!logs.contains("CANARY"), "{logs}");
}
