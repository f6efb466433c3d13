//! What every comparison binary shares: the request's data, the check that the call ended as
//! the server's mode requires, and the worker loop the harness drives.
//!
//! A comparison binary is a worker: it sets up its client once, then reads commands from stdin
//! and answers each on stdout, until stdin closes. The harness (`cargo xtask bench`) keeps one
//! worker per client alive and sends them commands in rounds, the order rotated each round, so
//! that every client is measured next to the floor under the same machine conditions.
//!
//! | command | does | answers |
//! |---|---|---|
//! | `seq N` | `N` calls in sequence | `SEQ` and each call's nanoseconds |
//! | `conc C P` | `C` concurrent callers making `P` calls each | `CONC calls nanoseconds` |
//!
//! Standard library only (tokio behind the `tokio` feature, for the binaries that use it
//! anyway), so that it adds nothing to the binaries' size or dependency count.

use std::io::{BufRead, Write};
use std::sync::Barrier;
use std::time::{Duration, Instant};

/// The app client id every binary sends.
pub const CLIENT_ID: &str = "1example23456789abcdefghij";

/// The headers cogref sends besides `host` and `content-length` (which every client derives
/// from the URL and the body), with the values of a first attempt: the floor sends the same
/// request, so that the difference to it is the library's own work.
pub const COGREF_HEADERS: [(&str, &str); 5] = [
    ("content-type", "application/x-amz-json-1.1"),
    (
        "x-amz-target",
        "AWSCognitoIdentityProviderService.GetTokensFromRefreshToken",
    ),
    ("user-agent", "cogref/0.1.0 lang/rust"),
    (
        "amz-sdk-invocation-id",
        "3f2c1b9e-8d4a-4b6c-9e1f-2a3b4c5d6e7f",
    ),
    ("amz-sdk-request", "attempt=1; max=3"),
];

/// What the harness set in the environment.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The loopback server's URL.
    pub endpoint: String,
    /// The server answers NotAuthorizedException: every call must fail with it.
    pub expect_error: bool,
}

/// Reads the settings (`BENCH_ENDPOINT`, `BENCH_MODE`).
pub fn settings() -> Settings {
    Settings {
        endpoint: std::env::var("BENCH_ENDPOINT").expect("BENCH_ENDPOINT is set by the harness"),
        expect_error: std::env::var("BENCH_MODE").is_ok_and(|m| m == "error"),
    }
}

/// A deterministic 1,700-character refresh token, shaped like Cognito's JWE.
pub fn refresh_token() -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut state: u64 = 0x5eed;
    (0..1_700)
        .map(|i| {
            if matches!(i, 340 | 357 | 1_677) {
                return '.';
            }
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            char::from(ALPHABET[(state >> 58) as usize])
        })
        .collect()
}

/// The body cogref sends for [`refresh_token`] and [`CLIENT_ID`].
pub fn request_body() -> String {
    format!(
        r#"{{"RefreshToken":"{}","ClientId":"{CLIENT_ID}"}}"#,
        refresh_token()
    )
}

/// How a call ended, as [`check`] reads it: `Ok` with the tokens, `Err(Some(code))` with the
/// service error `code`, `Err(None)` any other way (a transport error, an unreadable answer).
pub type Answer<'a> = Result<(), Option<&'a str>>;

/// The error code the loopback server answers in error mode.
pub const EXPECTED_CODE: &str = "NotAuthorizedException";

/// Checks that a call ended as the mode requires (so that the right thing is measured): with
/// the tokens, or with the server's [`EXPECTED_CODE`]. Any other failure, which is usually
/// much faster than a call, stops the worker rather than counting as the expected error.
pub fn check(settings: &Settings, answer: Answer<'_>, what: &str) {
    let expected: Answer<'_> = if settings.expect_error {
        Err(Some(EXPECTED_CODE))
    } else {
        Ok(())
    };
    assert_eq!(
        answer, expected,
        "{what}: the call did not end as the mode requires (Ok: the tokens; Err(Some): a service \
         error code; Err(None): any other failure)"
    );
}

/// [`Answer`] of a raw client: a 2xx whose JSON has an `AuthenticationResult`, or the `__type`
/// of an error's JSON.
pub fn answer_of_json<'a>(
    success: bool,
    has_result: bool,
    error_type: Option<&'a str>,
) -> Answer<'a> {
    match (success, has_result) {
        (true, true) => Ok(()),
        (false, _) => Err(error_type),
        (true, false) => Err(None),
    }
}

/// A command from the harness.
#[derive(Debug, Clone, Copy)]
pub enum Command {
    /// Calls in sequence, each timed.
    Sequential(usize),
    /// Concurrent callers, each making this many calls; timed as a whole.
    Concurrent {
        /// Callers at once.
        callers: usize,
        /// Calls each caller makes.
        per_caller: usize,
    },
}

/// A worker's answer to a [`Command`].
#[derive(Debug)]
pub enum Reply {
    /// Each call's duration.
    Samples(Vec<Duration>),
    /// Calls made and the time they took.
    Throughput(usize, Duration),
}

fn parse(line: &str) -> Command {
    let words: Vec<usize> = line
        .split_whitespace()
        .skip(1)
        .map(|w| w.parse().expect("a number"))
        .collect();
    match (line.split_whitespace().next(), words.as_slice()) {
        (Some("seq"), [n]) => Command::Sequential(*n),
        (Some("conc"), [callers, per_caller]) => Command::Concurrent {
            callers: *callers,
            per_caller: *per_caller,
        },
        _ => panic!("unknown command {line:?}"),
    }
}

/// Answers the harness's commands with `run` until stdin closes.
pub fn serve(mut run: impl FnMut(Command) -> Reply) {
    let stdin = std::io::stdin();
    let mut stdout = std::io::stdout().lock();
    for line in stdin.lock().lines() {
        let line = line.expect("stdin");
        if line.trim().is_empty() {
            continue;
        }
        let mut answer = String::new();
        match run(parse(&line)) {
            Reply::Samples(samples) => {
                answer.push_str("SEQ");
                for s in samples {
                    answer.push(' ');
                    answer.push_str(&s.as_nanos().to_string());
                }
            }
            Reply::Throughput(calls, time) => {
                answer = format!("CONC {calls} {}", time.as_nanos());
            }
        }
        answer.push('\n');
        stdout.write_all(answer.as_bytes()).expect("stdout");
        stdout.flush().expect("stdout");
    }
}

/// Times `call` `n` times in sequence.
pub fn sequential(n: usize, mut call: impl FnMut()) -> Vec<Duration> {
    (0..n)
        .map(|_| {
            let started = Instant::now();
            call();
            started.elapsed()
        })
        .collect()
}

/// `callers` threads making `per_caller` calls each, timed from the moment all have started.
pub fn throughput_threads(callers: usize, per_caller: usize, call: &(impl Fn() + Sync)) -> Reply {
    // Every caller arrives at `ready`, then waits at `go`, which only this thread's arrival
    // opens: the clock is read once all callers exist and before any call. (Read after a
    // single barrier's release, on one core, it came once the 64 callers had run most of their
    // calls, and a burst read up to thousands of times faster than it was.)
    let (ready, go) = (Barrier::new(callers + 1), Barrier::new(callers + 1));
    let mut started = Instant::now();
    std::thread::scope(|scope| {
        for _ in 0..callers {
            scope.spawn(|| {
                ready.wait();
                go.wait();
                for _ in 0..per_caller {
                    call();
                }
            });
        }
        ready.wait();
        started = Instant::now();
        go.wait();
    });
    Reply::Throughput(callers * per_caller, started.elapsed())
}

/// The worker of a blocking client (or an async one driven by `block_on` per call): sequential
/// calls on the main thread, one thread per concurrent caller.
pub fn run_threads(call: impl Fn() + Sync) {
    serve(|command| match command {
        Command::Sequential(n) => Reply::Samples(sequential(n, &call)),
        Command::Concurrent {
            callers,
            per_caller,
        } => throughput_threads(callers, per_caller, &call),
    });
}

/// The worker of a tokio client, on a multi-threaded runtime with one worker per core (what
/// `#[tokio::main]` makes): `setup` runs inside the runtime and returns the call; sequential
/// calls run from `block_on`, one task per concurrent caller.
#[cfg(feature = "tokio")]
pub fn run_tokio<S, F, Fut>(setup: S)
where
    S: FnOnce() -> F,
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    let call = {
        let _inside = runtime.enter();
        std::sync::Arc::new(setup())
    };
    serve(|command| match command {
        Command::Sequential(n) => Reply::Samples(runtime.block_on(async {
            let mut samples = Vec::with_capacity(n);
            for _ in 0..n {
                let started = Instant::now();
                call().await;
                samples.push(started.elapsed());
            }
            samples
        })),
        Command::Concurrent {
            callers,
            per_caller,
        } => runtime.block_on(async {
            let started = Instant::now();
            let tasks: Vec<_> = (0..callers)
                .map(|_| {
                    let call = call.clone();
                    tokio::spawn(async move {
                        for _ in 0..per_caller {
                            call().await;
                        }
                    })
                })
                .collect();
            for task in tasks {
                task.await.expect("caller task");
            }
            Reply::Throughput(callers * per_caller, started.elapsed())
        }),
    });
}
