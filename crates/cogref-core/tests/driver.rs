//! The generic drivers, run over scripted transports and a simulated clock: no sockets and no
//! real sleeping. The transport crates run the same loop over real HTTP in the contract suite.

mod common;

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use cogref_core::driver::{HttpRequest, HttpResponse, ManualEnvironment, transport_fn};
use cogref_core::{
    CallConfig, Client, EndpointConfig, Error, SendOptions, TransportError, TransportErrorKind,
};
use common::{block_on, input};

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

const OK: &str = r#"{"AuthenticationResult":{"AccessToken":"a.b.c","ExpiresIn":3600}}"#;

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
