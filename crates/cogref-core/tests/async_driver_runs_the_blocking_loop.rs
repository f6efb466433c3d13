//! Review 30: the async driver (which now takes each `Step` apart before it awaits, and sleeps
//! at the top of the next turn of its loop) runs exactly the loop the blocking driver runs
//! (unchanged): the same attempts at the same simulated instants with the same options, the
//! same sleeps, the same outcome, the same quota left. Also: a dropped call sends nothing more.

mod common;

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::task::{Context, Waker};
use std::time::{Duration, Instant, SystemTime};

use cogref_core::driver::{HttpRequest, HttpResponse, ManualEnvironment, transport_fn};
use cogref_core::retry::{RetryConfig, RetryPolicy};
use cogref_core::{
    CallConfig, Client, EndpointConfig, Error, SendOptions, Timeouts, TransportError,
    TransportErrorKind,
};
use common::{block_on, input};

const OK: &str = r#"{"AuthenticationResult":{"AccessToken":"a.b.c","ExpiresIn":3600}}"#;

/// What one scripted attempt does: how long it takes on the simulated clock, and its outcome.
#[derive(Clone, Copy, Debug)]
struct Turn {
    outcome: u8,
    takes_ms: u64,
}

fn outcome(code: u8) -> Result<HttpResponse, Error> {
    let answer = |status: u16, body: &str, hint: Option<&str>| {
        let mut b = http::Response::builder()
            .status(status)
            .header("x-amzn-requestid", "req");
        if let Some(hint) = hint {
            b = b.header("x-amz-retry-after", hint);
        }
        Ok(b.body(body.as_bytes().to_vec()).expect("response"))
    };
    match code {
        0 => answer(200, OK, None),
        1 => answer(503, "<html>busy</html>", None),
        2 => answer(500, r#"{"__type":"InternalErrorException"}"#, None),
        3 => answer(
            429,
            r#"{"__type":"TooManyRequestsException"}"#,
            Some("2500"),
        ),
        4 => answer(400, r#"{"__type":"NotAuthorizedException"}"#, None),
        5 => Err(TransportError::new(TransportErrorKind::Connect, "refused")
            .not_sent()
            .into()),
        6 => Err(TransportError::new(TransportErrorKind::Timeout, "slow").into()),
        _ => Err(TransportError::new(TransportErrorKind::Io, "reset").into()),
    }
}

#[derive(Debug, PartialEq, Eq, Clone)]
enum Event {
    /// Elapsed simulated time, attempt header, the attempt's timeout.
    Send(Duration, String, Duration),
    /// Elapsed simulated time, asked duration.
    Sleep(Duration, Duration),
}

fn clock() -> ManualEnvironment {
    ManualEnvironment::new(
        Instant::now(),
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_750_000_000),
    )
}

fn endpoint() -> cogref_core::Endpoint {
    EndpointConfig::new()
        .region("eu-west-1")
        .resolve()
        .expect("valid")
}

/// State shared by a scripted transport: the script, the log, the clock.
#[derive(Clone)]
struct Script {
    turns: Arc<Mutex<std::collections::VecDeque<Turn>>>,
    log: Arc<Mutex<Vec<Event>>>,
    clock: ManualEnvironment,
    oversleep: Duration,
}

impl Script {
    fn new(turns: &[Turn], oversleep: Duration) -> Self {
        Self {
            turns: Arc::new(Mutex::new(turns.iter().copied().collect())),
            log: Arc::default(),
            clock: clock(),
            oversleep,
        }
    }

    fn send(&self, request: &HttpRequest, options: SendOptions) -> Result<HttpResponse, Error> {
        let header = request.headers()["amz-sdk-request"]
            .to_str()
            .unwrap_or("")
            .to_owned();
        self.log.lock().expect("lock").push(Event::Send(
            self.clock.elapsed(),
            header,
            options.timeout,
        ));
        let turn = self
            .turns
            .lock()
            .expect("lock")
            .pop_front()
            .unwrap_or(Turn {
                outcome: 1,
                takes_ms: 700,
            });
        self.clock.advance(Duration::from_millis(turn.takes_ms));
        outcome(turn.outcome)
    }

    fn sleep(&self, d: Duration) {
        self.log
            .lock()
            .expect("lock")
            .push(Event::Sleep(self.clock.elapsed(), d));
        self.clock.advance(d + self.oversleep);
    }
}

/// What a run of calls on one client produced.
type Run = (Vec<Event>, Vec<(String, u32)>, Vec<u32>);

fn summarize(result: Result<cogref_core::RefreshOutput, cogref_core::CallError>) -> (String, u32) {
    match result {
        Ok(out) => (format!("ok {:?}", out.request_id), 0),
        Err(e) => {
            let detail = match &*e {
                Error::Transport(t) => format!(
                    "transport {:?} sent={}",
                    t.kind(),
                    t.request_may_have_been_sent()
                ),
                other => format!("{other}"),
            };
            (detail, e.attempts())
        }
    }
}

fn run_blocking(turns: &[Turn], config: CallConfig, calls: usize, oversleep: Duration) -> Run {
    let script = Script::new(turns, oversleep);
    struct T(Script);
    impl cogref_core::BlockingTransport for T {
        fn send(&self, request: HttpRequest, options: SendOptions) -> Result<HttpResponse, Error> {
            self.0.send(&request, options)
        }
        fn sleep(&self, d: Duration) {
            self.0.sleep(d);
        }
    }
    let client = Client::new(T(script.clone()), script.clock.clone(), endpoint(), config);
    let mut outcomes = Vec::new();
    let mut quota = Vec::new();
    for _ in 0..calls {
        outcomes.push(summarize(client.refresh_blocking(&input())));
        quota.push(client.retry_quota_available());
    }
    let log = script.log.lock().expect("lock").clone();
    (log, outcomes, quota)
}

fn run_async(turns: &[Turn], config: CallConfig, calls: usize, oversleep: Duration) -> Run {
    let script = Script::new(turns, oversleep);
    let (sender, sleeper) = (script.clone(), script.clone());
    let sleeps_made = std::sync::atomic::AtomicUsize::new(0);
    let transport = transport_fn(
        move |request: HttpRequest, options: SendOptions| {
            // The work happens when the future is polled, as over a real transport.
            let sender = sender.clone();
            async move { sender.send(&request, options) }
        },
        move |d: Duration| {
            // Bounded: a driver that drops its sleep unawaited spins inside one poll.
            let made = sleeps_made.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            assert!(made < 100_000, "sleeps made but never awaited");
            let sleeper = sleeper.clone();
            // The clock moves only when the sleep is awaited: a driver that dropped its sleep
            // unpolled, or polled the next step before it, is seen.
            async move { sleeper.sleep(d) }
        },
    );
    let client = Client::new(transport, script.clock.clone(), endpoint(), config);
    let mut outcomes = Vec::new();
    let mut quota = Vec::new();
    for _ in 0..calls {
        outcomes.push(summarize(block_on(client.refresh(&input()))));
        quota.push(client.retry_quota_available());
    }
    let log = script.log.lock().expect("lock").clone();
    (log, outcomes, quota)
}

fn configs() -> Vec<CallConfig> {
    let short = Timeouts {
        connect: Duration::from_secs(1),
        attempt: Duration::from_secs(4),
        total: Duration::from_secs(9),
    };
    vec![
        CallConfig::default(),
        CallConfig {
            retry: RetryConfig::rotation_safe(),
            ..CallConfig::default()
        },
        CallConfig {
            retry: RetryConfig {
                max_attempts: 6,
                initial_backoff: Duration::from_secs(2),
                max_backoff: Duration::from_secs(5),
                policy: RetryPolicy::Standard,
            },
            timeouts: short,
            ..CallConfig::default()
        },
        CallConfig {
            retry: RetryConfig {
                max_attempts: 4,
                initial_backoff: Duration::from_secs(3),
                max_backoff: Duration::from_secs(8),
                policy: RetryPolicy::RotationSafe,
            },
            timeouts: short,
            ..CallConfig::default()
        },
    ]
}

/// Deterministic pseudo-random scripts (xorshift), so that a failure reproduces.
fn scripts(count: usize) -> Vec<Vec<Turn>> {
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    (0..count)
        .map(|_| {
            let len = 1 + (next() % 24) as usize;
            (0..len)
                .map(|_| Turn {
                    // Mostly retryable failures, so that retries, deadlines and the quota run.
                    outcome: match next() % 10 {
                        0 => 0,
                        1 => 4,
                        n => (n % 7) as u8 + 1,
                    },
                    takes_ms: next() % 6_000,
                })
                .collect()
        })
        .collect()
}

#[test]
fn the_async_driver_runs_the_blocking_drivers_loop_step_for_step() {
    let mut waits = 0;
    let mut deadline_in_wait = 0;
    for (i, turns) in scripts(120).iter().enumerate() {
        for (c, config) in configs().into_iter().enumerate() {
            for oversleep in [Duration::ZERO, Duration::from_millis(1_900)] {
                let blocking = run_blocking(turns, config, 6, oversleep);
                let r#async = run_async(turns, config, 6, oversleep);
                assert_eq!(
                    blocking, r#async,
                    "script {i} config {c} oversleep {oversleep:?}: {turns:?}"
                );
                waits += blocking
                    .0
                    .iter()
                    .filter(|e| matches!(e, Event::Sleep(..)))
                    .count();
                deadline_in_wait += blocking
                    .1
                    .iter()
                    .filter(|(o, _)| o.starts_with("transport Timeout sent=false"))
                    .count();
            }
        }
    }
    // The comparison covered what it is meant to: backoffs, and calls whose deadline passed
    // during a wait (`Wait` then `Done`).
    assert!(waits > 1_000, "{waits}");
    assert!(deadline_in_wait > 10, "{deadline_in_wait}");
}

/// A `Wait` followed by `Done`: the deadline passes while the driver sleeps, and the call ends
/// with the not-sent timeout after exactly one sleep, with nothing sent after it.
#[test]
fn a_deadline_that_passes_during_the_backoff_ends_the_call_not_sent_after_that_sleep() {
    let config = CallConfig {
        retry: RetryConfig {
            max_attempts: 5,
            initial_backoff: Duration::from_secs(4),
            max_backoff: Duration::from_secs(4),
            policy: RetryPolicy::Standard,
        },
        timeouts: Timeouts {
            connect: Duration::from_secs(1),
            attempt: Duration::from_secs(2),
            total: Duration::from_secs(2),
        },
        ..CallConfig::default()
    };
    let turns = [Turn {
        outcome: 1,
        takes_ms: 500,
    }];
    // Sleeps last 3 s longer than asked: whatever the jitter, the deadline has passed.
    let (log, outcomes, _) = run_async(&turns, config, 1, Duration::from_secs(3));
    assert_eq!(
        outcomes,
        [("transport Timeout sent=false".to_owned(), 1)],
        "{log:?}"
    );
    assert!(
        matches!(&log[..], [Event::Send(..), Event::Sleep(..)]),
        "{log:?}"
    );
}

/// A call dropped during its backoff sends nothing more; one dropped before its first poll
/// sends nothing at all.
#[test]
fn a_call_dropped_before_its_first_poll_or_during_its_backoff_sends_nothing_more() {
    let sent = Arc::new(Mutex::new(0_u32));
    let sleeps = Arc::new(Mutex::new(0_u32));
    let (s, z) = (sent.clone(), sleeps.clone());
    let transport = transport_fn(
        move |_: HttpRequest, _: SendOptions| {
            *s.lock().expect("lock") += 1;
            async { outcome(1) }
        },
        move |_: Duration| {
            *z.lock().expect("lock") += 1;
            std::future::pending::<()>()
        },
    );
    let client = Client::new(transport, clock(), endpoint(), CallConfig::default());
    let input = input();
    drop(client.refresh(&input));
    assert_eq!(*sent.lock().expect("lock"), 0);

    let mut call = Box::pin(client.refresh(&input));
    let mut cx = Context::from_waker(Waker::noop());
    for _ in 0..5 {
        assert!(call.as_mut().poll(&mut cx).is_pending());
    }
    assert_eq!(
        (*sent.lock().expect("lock"), *sleeps.lock().expect("lock")),
        (1, 1)
    );
    drop(call);
    assert_eq!(
        (*sent.lock().expect("lock"), *sleeps.lock().expect("lock")),
        (1, 1)
    );
}
