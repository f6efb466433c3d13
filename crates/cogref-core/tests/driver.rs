//! The generic drivers, run over scripted transports and a simulated clock: no sockets and no
//! real sleeping. The transport crates run the same loop over real HTTP in the contract suite.

use std::collections::VecDeque;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant, SystemTime};

use cogref_core::driver::{HttpRequest, HttpResponse, ManualEnvironment, transport_fn};
use cogref_core::{
    CallConfig, Client, EndpointConfig, Error, RefreshInput, SendOptions, TransportError,
    TransportErrorKind,
};

/// A clock that only moves when the transport "sleeps".
type SimClock = ManualEnvironment;

fn sim_clock() -> SimClock {
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

fn input() -> RefreshInput {
    RefreshInput::builder()
        .refresh_token("canary.refresh.token")
        .client_id("client")
        .build()
        .expect("valid")
}

const OK: &str = r#"{"AuthenticationResult":{"AccessToken":"a.b.c","ExpiresIn":3600}}"#;

/// Polls a future whose pieces are all immediately ready.
fn block_on<F: Future>(f: F) -> F::Output {
    let mut f = std::pin::pin!(f);
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(out) = f.as_mut().poll(&mut cx) {
            return out;
        }
    }
}

#[test]
fn blocking_driver_retries_5xx_then_succeeds_on_simulated_time() {
    let clock = sim_clock();
    let script: Script = Arc::new(Mutex::new(
        [
            response(503, "<html>busy</html>"),
            response(500, r#"{"__type":"InternalErrorException"}"#),
            response(200, OK),
        ]
        .into(),
    ));
    let seen: Arc<Mutex<Vec<String>>> = Arc::default();
    struct Scripted {
        script: Script,
        seen: Arc<Mutex<Vec<String>>>,
        clock: SimClock,
    }
    impl cogref_core::BlockingTransport for Scripted {
        fn send(&self, request: HttpRequest, _: SendOptions) -> Result<HttpResponse, Error> {
            let header = request.headers()["amz-sdk-request"]
                .to_str()
                .unwrap_or("")
                .to_owned();
            self.seen.lock().expect("seen").push(header);
            self.script
                .lock()
                .expect("script")
                .pop_front()
                .expect("scripted response")
        }
        fn sleep(&self, d: Duration) {
            self.clock.advance(d);
        }
    }
    let endpoint = EndpointConfig::new()
        .region("eu-west-1")
        .resolve()
        .expect("valid");
    let client = Client::new(
        Scripted {
            script,
            seen: seen.clone(),
            clock: clock.clone(),
        },
        clock.clone(),
        endpoint,
        CallConfig::default(),
    );
    let out = client
        .refresh_blocking(&input())
        .expect("third attempt succeeds");
    assert_eq!(
        out.expires_at,
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_750_003_600) + clock.elapsed()
    );
    assert_eq!(
        *seen.lock().expect("seen"),
        ["attempt=1; max=3", "attempt=2; max=3", "attempt=3; max=3"]
    );
    assert!(
        clock.elapsed() < Duration::from_secs(3),
        "waits are at most 1 s then 2 s"
    );
    assert_eq!(
        client.retry_quota_available(),
        490,
        "the last retry's permit came back"
    );
}

#[test]
fn a_closure_is_a_blocking_transport_and_transport_errors_end_the_call_with_their_count() {
    let clock = sim_clock();
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
        |_: HttpRequest, _: SendOptions| -> Result<HttpResponse, Error> {
            Err(TransportError::new(TransportErrorKind::Connect, "connection refused").into())
        },
        clock,
        endpoint,
        config,
    );
    let e = client
        .refresh_blocking(&input())
        .expect_err("never connects");
    assert_eq!(e.attempts(), 3);
    assert!(matches!(&*e, Error::Transport(t) if t.kind() == TransportErrorKind::Connect));
}

#[test]
fn async_driver_runs_the_same_loop_over_closures() {
    let clock = sim_clock();
    let script: Script = Arc::new(Mutex::new(
        [
            response(429, r#"{"__type":"TooManyRequestsException"}"#),
            response(200, OK),
        ]
        .into(),
    ));
    let sleeper = clock.clone();
    let transport = transport_fn(
        move |_: HttpRequest, _: SendOptions| {
            let next = script
                .lock()
                .expect("script")
                .pop_front()
                .expect("scripted");
            async move { next }
        },
        move |d: Duration| {
            sleeper.advance(d);
            async {}
        },
    );
    let endpoint = EndpointConfig::new()
        .region("eu-west-1")
        .resolve()
        .expect("valid");
    let client = Client::new(transport, clock.clone(), endpoint, CallConfig::default());
    let out = block_on(client.refresh(&input())).expect("second attempt succeeds");
    assert_eq!(out.request_id.as_deref(), Some("req"));
    assert!(clock.elapsed() < Duration::from_secs(1));
}

/// A writer the fmt subscriber appends to, readable afterwards.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("buffer").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
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
        // Another test's thread may have cached the spans' interest as "never" while no
        // subscriber existed (tracing caches it per callsite, process-wide): ask again.
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
