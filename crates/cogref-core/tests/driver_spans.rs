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
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::DEBUG)
        .with_ansi(false)
        .with_span_events(tracing_subscriber::fmt::format::FmtSpan::CLOSE)
        .with_writer(move || writer.clone())
        .finish();
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
