//! Fleet figures against a real Redis and the emulator:
//!
//! 1. the cost of a cached read: `access_token()` of a manager over a `RedisStore` (it never
//!    touches Redis while the token is fresh), against a floor measured in the same run
//!    (locking a `Mutex<SecretString>` and cloning the token) and against one Redis read;
//! 2. one coordinated refresh seen by N waiting processes: N processes whose token has expired
//!    ask at the same instant; one refreshes, the others wait on the lease and adopt. Reported:
//!    Cognito calls, and the time until the last process holds the new token, as a ratio to
//!    one process refreshing alone with no shared store (a `MemoryStore`), measured in the same
//!    run.
//!
//! `cargo bench -p cogref-redis --bench fleet` (uses `COGREF_REDIS_URL` if set, else starts
//! `redis-server` on a free loopback port).

#[path = "../tests/common/mod.rs"]
mod common;

use std::hint::black_box;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::Instant;

use cogref_core::secrecy::{ExposeSecret, SecretString};
use cogref_core::{CallConfig, EndpointConfig, RefreshInput, RetryConfig, TokenSet};
use cogref_emulator::{Emulator, Seed};
use cogref_redis::RedisStore;
use cogref_session::{BlockingTokenManager, MemoryStore, TokenManager, TokenStore};

const ITERATIONS: u32 = 200_000;
const ROUNDS: usize = 7;
const CLIENT: &str = "cogrefdemoclient";

/// Median nanoseconds per call of `f` over five runs of `iterations`.
fn ns_per_call(iterations: u32, mut f: impl FnMut()) -> f64 {
    let mut runs: Vec<f64> = (0..5)
        .map(|_| {
            let started = Instant::now();
            for _ in 0..iterations {
                f();
            }
            started.elapsed().as_nanos() as f64 / f64::from(iterations)
        })
        .collect();
    runs.sort_by(f64::total_cmp);
    runs[2]
}

fn poll_ready<F: std::future::Future>(future: F) -> F::Output {
    use std::task::{Context, Poll, Waker};
    let mut future = std::pin::pin!(future);
    match future
        .as_mut()
        .poll(&mut Context::from_waker(Waker::noop()))
    {
        Poll::Ready(out) => out,
        Poll::Pending => panic!("a cached access_token() must not wait"),
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn template() -> RefreshInput {
    RefreshInput::builder()
        .refresh_token("unused-placeholder")
        .client_id(CLIENT)
        .build()
        .expect("valid")
}

fn client(endpoint_url: &str) -> cogref_blocking::Client {
    let endpoint = EndpointConfig::new()
        .endpoint_url(endpoint_url)
        .resolve()
        .expect("endpoint");
    cogref_blocking::client(
        endpoint,
        CallConfig {
            retry: RetryConfig::rotation_safe(),
            ..CallConfig::default()
        },
    )
}

/// The child: builds its manager, says ready, waits for the go line, asks once, reports the
/// microseconds from go to token.
fn child(endpoint_url: &str, redis_url: &str, lineage: &str) {
    let store = RedisStore::builder(redis_url, lineage)
        .build()
        .expect("store");
    let manager = BlockingTokenManager::builder(client(endpoint_url), template(), store)
        .build()
        .expect("manager");
    let stdout = std::io::stdout();
    writeln!(stdout.lock(), "ready").expect("stdout");
    let mut go = String::new();
    std::io::stdin().read_line(&mut go).expect("stdin");
    let started = Instant::now();
    let token = manager.access_token().expect("token");
    let micros = started.elapsed().as_micros();
    black_box(token.expose_secret().len());
    writeln!(stdout.lock(), "took_us={micros}").expect("stdout");
}

struct Setup {
    emulator: Emulator,
    redis_url: String,
    runtime: tokio::runtime::Runtime,
}

impl Setup {
    /// A fresh lineage (1-hour tokens, no grace period): every process must refresh or adopt.
    fn lineage(&self, name: &str) -> String {
        common::seeded_lineage(&self.emulator, &self.redis_url, name, 0, 3600)
    }
}

/// N processes ask at once; returns (Cognito calls, µs until the last one had its token).
fn coordinated_round(setup: &Setup, n: usize) -> (usize, f64) {
    let lineage = setup.lineage("bench");
    let exe = std::env::current_exe().expect("bench binary");
    let mut children: Vec<_> = (0..n)
        .map(|_| {
            Command::new(&exe)
                .env("COGREF_BENCH_CHILD", "1")
                .env("COGREF_BENCH_ENDPOINT", setup.emulator.endpoint_url())
                .env("COGREF_BENCH_REDIS", &setup.redis_url)
                .env("COGREF_BENCH_LINEAGE", &lineage)
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .expect("spawn")
        })
        .collect();
    let mut readers: Vec<_> = children
        .iter_mut()
        .map(|c| BufReader::new(c.stdout.take().expect("stdout")))
        .collect();
    for reader in &mut readers {
        let mut line = String::new();
        reader.read_line(&mut line).expect("ready");
        assert_eq!(line.trim(), "ready");
    }
    let before = setup.emulator.requests_served();
    let started = Instant::now();
    for child in &mut children {
        writeln!(child.stdin.as_mut().expect("stdin"), "go").expect("go");
    }
    let mut slowest = 0f64;
    for reader in &mut readers {
        let mut line = String::new();
        reader.read_line(&mut line).expect("result");
        let took: f64 = line
            .trim()
            .strip_prefix("took_us=")
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("child said {line:?}"));
        slowest = slowest.max(took);
    }
    let wall = started.elapsed();
    for mut child in children {
        assert!(child.wait().expect("wait").success());
    }
    black_box(wall);
    (setup.emulator.requests_served() - before, slowest)
}

/// One process, no shared store: the refresh itself (µs).
fn solo_round(setup: &Setup) -> f64 {
    let seeded = setup
        .emulator
        .seed(&Seed {
            rotation_grace_secs: Some(0),
            ..Seed::default()
        })
        .expect("seed");
    let store = MemoryStore::with_tokens(TokenSet::from_refresh_token(seeded.refresh_token, None));
    let manager =
        BlockingTokenManager::builder(client(&setup.emulator.endpoint_url()), template(), store)
            .build()
            .expect("manager");
    let started = Instant::now();
    black_box(manager.access_token().expect("token"));
    started.elapsed().as_secs_f64() * 1e6
}

#[allow(clippy::print_stdout)]
fn main() {
    if std::env::var("COGREF_BENCH_CHILD").is_ok() {
        let var = |n: &str| std::env::var(n).expect("set by the parent");
        child(
            &var("COGREF_BENCH_ENDPOINT"),
            &var("COGREF_BENCH_REDIS"),
            &var("COGREF_BENCH_LINEAGE"),
        );
        return;
    }
    // `cargo bench` passes --bench; `cargo test --benches` does not: then a smoke run.
    let quick = !std::env::args().any(|a| a == "--bench");
    let (iterations, rounds) = if quick {
        (1_000, 1)
    } else {
        (ITERATIONS, ROUNDS)
    };

    let redis = common::redis();
    let (runtime, emulator) = common::emulator();
    let setup = Setup {
        emulator,
        redis_url: redis.url.clone(),
        runtime,
    };

    // 1. Cached reads.
    let lineage = setup.lineage("cached");
    let store = RedisStore::builder(&setup.redis_url, &lineage)
        .build()
        .expect("store");
    let manager = BlockingTokenManager::builder(
        client(&setup.emulator.endpoint_url()),
        template(),
        store.clone(),
    )
    .build()
    .expect("manager");
    let token = manager.access_token().expect("first refresh");
    let floor_cache = Mutex::new(SecretString::from(token.expose_secret().to_owned()));
    let floor = ns_per_call(iterations, || {
        black_box(floor_cache.lock().expect("lock").clone());
    });
    let cached = ns_per_call(iterations, || {
        black_box(manager.access_token().expect("cached"));
    });
    let redis_read = ns_per_call(iterations / 100, || {
        black_box(TokenStore::load(&store).expect("load"));
    });
    // The async manager over the async store: built and first refreshed on the runtime; a cached
    // access_token() is then ready at the first poll and never touches Redis.
    let async_manager = setup.runtime.block_on(async {
        let async_store = RedisStore::builder(&setup.redis_url, &lineage)
            .build_async()
            .expect("store");
        let endpoint = EndpointConfig::new()
            .endpoint_url(setup.emulator.endpoint_url())
            .resolve()
            .expect("endpoint");
        let client = cogref_reqwest::client(endpoint, CallConfig::default()).expect("client");
        let manager = TokenManager::builder(client, template(), async_store)
            .build()
            .await
            .expect("manager");
        manager.access_token().await.expect("adopted");
        manager
    });
    let async_cached = ns_per_call(iterations, || {
        black_box(poll_ready(async_manager.access_token()).expect("cached"));
    });
    println!("cached read (median of 5 × {iterations} calls)");
    println!("| what | ns per call | × floor |");
    println!("|---|---|---|");
    println!("| floor: lock a Mutex<SecretString> and clone it | {floor:.1} | 1.00 |");
    println!(
        "| BlockingTokenManager over RedisStore, access_token() cached | {cached:.1} | {:.2} |",
        cached / floor
    );
    println!(
        "| TokenManager over AsyncRedisStore, access_token() cached (polled once) | {async_cached:.1} | {:.2} |",
        async_cached / floor
    );
    println!(
        "| RedisStore::load() (one HMGET round trip + decode) | {redis_read:.0} | {:.0} |",
        redis_read / floor
    );

    // 2. One coordinated refresh seen by N processes.
    let solo = median((0..rounds.max(3)).map(|_| solo_round(&setup)).collect());
    println!();
    println!(
        "one refresh seen by N processes (median of {rounds} rounds; baseline: one process refreshing alone, no shared store, {solo:.0} µs)"
    );
    println!("| N | Cognito calls per round | last process has the token, µs | × baseline |");
    println!("|---|---|---|---|");
    for n in [1usize, 2, 4, 8, 16] {
        let mut calls = Vec::new();
        let mut slowest = Vec::new();
        for _ in 0..rounds {
            let (c, s) = coordinated_round(&setup, n);
            calls.push(c);
            slowest.push(s);
        }
        let calls_max = calls.iter().max().copied().unwrap_or(0);
        let t = median(slowest);
        println!(
            "| {n} | {} | {t:.0} | {:.2} |",
            if calls.iter().all(|c| *c == 1) {
                "1".to_owned()
            } else {
                format!("up to {calls_max}")
            },
            t / solo
        );
    }
}
