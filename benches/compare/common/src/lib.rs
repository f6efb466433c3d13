//! What every comparison binary shares: its settings (from the environment the harness sets),
//! the request's data, and the result line it prints. Standard library only, so that it adds
//! nothing to the binaries' size or dependency count.

use std::time::{Duration, Instant};

/// The app client id every binary sends.
pub const CLIENT_ID: &str = "1example23456789abcdefghij";

/// What to run, from `BENCH_*` environment variables.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The loopback server's URL.
    pub endpoint: String,
    /// Sequential calls measured after warm-up.
    pub calls: usize,
    /// Calls before measuring.
    pub warmup: usize,
    /// Concurrent callers for the throughput figure.
    pub concurrency: usize,
    /// Calls each concurrent caller makes.
    pub per_caller: usize,
    /// The server answers NotAuthorizedException: every call must fail with it.
    pub expect_error: bool,
}

fn var(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Reads the settings.
pub fn settings() -> Settings {
    Settings {
        endpoint: std::env::var("BENCH_ENDPOINT").expect("BENCH_ENDPOINT is set by the harness"),
        calls: var("BENCH_CALLS", 2000),
        warmup: var("BENCH_WARMUP", 200),
        concurrency: var("BENCH_CONCURRENCY", 64),
        per_caller: var("BENCH_PER_CALLER", 50),
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

/// Checks that a call ended as the mode requires (so that the right thing is measured).
pub fn check(settings: &Settings, ok: bool, what: &str) {
    assert_eq!(
        ok,
        !settings.expect_error,
        "{what}: expected {} but the call {}",
        if settings.expect_error {
            "an error"
        } else {
            "success"
        },
        if ok { "succeeded" } else { "failed" }
    );
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

/// Prints the line the harness reads:
/// `RESULT <client> <mode> <median µs> <p99 µs> <calls/s at concurrency>`.
pub fn report(
    client: &str,
    settings: &Settings,
    mut samples: Vec<Duration>,
    throughput_calls: usize,
    throughput_time: Duration,
) {
    samples.sort_unstable();
    let at =
        |p: f64| samples[((samples.len() - 1) as f64 * p).round() as usize].as_secs_f64() * 1e6;
    #[allow(clippy::print_stdout)]
    {
        println!(
            "RESULT {client} {} {:.1} {:.1} {:.0}",
            if settings.expect_error { "error" } else { "ok" },
            at(0.5),
            at(0.99),
            throughput_calls as f64 / throughput_time.as_secs_f64()
        );
    }
}

/// Times `call` `n` times in sequence, for async clients.
pub async fn sequential_async<F, Fut>(n: usize, mut call: F) -> Vec<Duration>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let mut samples = Vec::with_capacity(n);
    for _ in 0..n {
        let started = Instant::now();
        call().await;
        samples.push(started.elapsed());
    }
    samples
}

/// Throughput of a blocking client: `settings.concurrency` threads making `per_caller` calls
/// each. Returns the number of calls and the time they took.
pub fn throughput_threads<C: Fn() + Sync>(settings: &Settings, call: C) -> (usize, Duration) {
    let started = Instant::now();
    std::thread::scope(|scope| {
        for _ in 0..settings.concurrency {
            scope.spawn(|| {
                for _ in 0..settings.per_caller {
                    call();
                }
            });
        }
    });
    (
        settings.concurrency * settings.per_caller,
        started.elapsed(),
    )
}
