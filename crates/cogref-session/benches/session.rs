//! Session figures: the cost of a cached `access_token()`, and how many refresh requests
//! 10,000 concurrent callers cause at expiry.
//!
//! `cargo bench -p cogref-session --bench session`. The cached-call cost is quoted against a
//! floor measured in the same rounds: locking a `Mutex<SecretString>` and cloning the token, the
//! least any shared cache does. The cases take turns in rounds; each figure is the median over
//! the rounds.
//! Every manager reads both clocks on every call through the transports' environment
//! (`cogref_blocking::environment()`: on Linux the kernel's coarse clocks); the blocking manager
//! is also measured over the fine clocks (`Instant::now`, `SystemTime::now`: what the coarse
//! ones save), and over a `FileStore`, whose cached path includes the store's change stamp (a
//! `stat` reused for at most a millisecond), by which a sign-out by another process is seen.

use std::future::Future;
use std::hint::black_box;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant, SystemTime};

use cogref_core::driver::{
    DetachedTask, HttpRequest, HttpResponse, ManualEnvironment, StdEnvironment, block_on,
};
use cogref_core::secrecy::SecretString;
use cogref_core::{
    AsyncTransport, CallConfig, Client, EndpointConfig, Error, RefreshInput, SendOptions,
};
use cogref_session::{BlockingTokenManager, FileStore, MemoryStore, TokenManager};

/// Calls per case and round (`COGREF_BENCH_CALLS` overrides, for a run under a profiler).
fn iterations() -> u32 {
    std::env::var("COGREF_BENCH_CALLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200_000)
}
/// Rounds: the cases take turns (rotated order), so that the machine's drift hits them alike.
const ROUNDS: usize = 11;
const CALLERS: usize = 10_000;

/// A ~1,100-character access token, as Cognito issues.
fn access_token() -> String {
    format!(
        "eyJraWQiOiJrMSIsImFsZyI6IlJTMjU2In0.{}.sig",
        "A".repeat(1_060)
    )
}

fn answer() -> Result<HttpResponse, Error> {
    Ok(http_response(format!(
        r#"{{"AuthenticationResult":{{"AccessToken":"{}","ExpiresIn":3600}}}}"#,
        access_token()
    )))
}

fn http_response(body: String) -> HttpResponse {
    let mut response = HttpResponse::new(body.into_bytes());
    *response.status_mut() = cogref_core::http::StatusCode::OK;
    response
}

fn template() -> RefreshInput {
    RefreshInput::builder()
        .refresh_token("r0")
        .client_id("client")
        .build()
        .expect("valid")
}

fn endpoint() -> cogref_core::Endpoint {
    EndpointConfig::new()
        .region("eu-west-1")
        .resolve()
        .expect("valid")
}

/// Nanoseconds per call of each case, round by round: `ROUNDS` rounds in which every case runs
/// [`iterations`] calls, the order rotated each round.
fn interleaved(cases: &mut [&mut dyn FnMut()]) -> Vec<Vec<f64>> {
    let iterations = iterations();
    let mut per_round = vec![Vec::with_capacity(ROUNDS); cases.len()];
    for round in 0..ROUNDS {
        for k in 0..cases.len() {
            let i = (k + round) % cases.len();
            let started = Instant::now();
            for _ in 0..iterations {
                cases[i]();
            }
            per_round[i].push(started.elapsed().as_nanos() as f64 / f64::from(iterations));
        }
    }
    per_round
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn poll_ready<F: Future>(future: F) -> F::Output {
    let mut future = std::pin::pin!(future);
    match future
        .as_mut()
        .poll(&mut Context::from_waker(Waker::noop()))
    {
        Poll::Ready(out) => out,
        Poll::Pending => panic!("a cached access_token() must not wait"),
    }
}

/// A transport over a closure that sleeps and runs refreshes on the current tokio runtime (the
/// managers run each refresh as a task of its own).
struct OnTokio<S>(S);

impl<S, F> AsyncTransport for OnTokio<S>
where
    S: Fn(HttpRequest, SendOptions) -> F + Send + Sync,
    F: Future<Output = Result<HttpResponse, Error>> + Send,
{
    fn send(
        &self,
        request: HttpRequest,
        options: SendOptions,
    ) -> impl Future<Output = Result<HttpResponse, Error>> + Send {
        (self.0)(request, options)
    }

    fn sleep(&self, duration: Duration) -> impl Future<Output = ()> + Send {
        tokio::time::sleep(duration)
    }

    fn spawn(&self, task: DetachedTask) {
        tokio::spawn(task);
    }
}

/// The clocks a real client reads: the transports' environment.
fn system_clock() -> StdEnvironment {
    cogref_blocking::environment()
}

fn main() {
    let floor = Mutex::new(SecretString::from(access_token()));

    let blocking = BlockingTokenManager::builder(
        Client::new(
            |_: HttpRequest, _: SendOptions| answer(),
            system_clock(),
            endpoint(),
            CallConfig::default(),
        ),
        template(),
        MemoryStore::new(),
    )
    .build()
    .expect("manager");
    blocking.access_token().expect("first refresh");

    // The same over the fine clocks, both read on every call: what the coarse ones save.
    let fine_clocks = BlockingTokenManager::builder(
        Client::new(
            |_: HttpRequest, _: SendOptions| answer(),
            StdEnvironment::new(Instant::now, SystemTime::now),
            endpoint(),
            CallConfig::default(),
        ),
        template(),
        MemoryStore::new(),
    )
    .build()
    .expect("manager");
    fine_clocks.access_token().expect("first refresh");

    // Over a file store every call also looks at the token file's change stamp (a `stat`, reused
    // for at most a millisecond), so that a sign-out by another process is seen on the next call.
    let dir = std::env::temp_dir().join(format!("cogref-session-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let file_manager = BlockingTokenManager::builder(
        Client::new(
            |_: HttpRequest, _: SendOptions| answer(),
            system_clock(),
            endpoint(),
            CallConfig::default(),
        ),
        template(),
        FileStore::new(dir.join("tokens.json")),
    )
    .build()
    .expect("manager");
    file_manager.access_token().expect("first refresh");

    let transport = cogref_core::driver::transport_fn(
        |_: HttpRequest, _: SendOptions| async { answer() },
        |_: Duration| async {},
    );
    let manager = TokenManager::builder(
        Client::new(transport, system_clock(), endpoint(), CallConfig::default()),
        template(),
        MemoryStore::new(),
    );
    // The first refresh runs as a task of its own (on a thread: this transport needs no
    // runtime), so it is waited for; only the cached calls must be ready at once.
    let manager = block_on(manager.build()).expect("manager");
    block_on(manager.access_token()).expect("first refresh");

    let per_round = interleaved(&mut [
        &mut || {
            black_box(floor.lock().expect("lock").clone());
        },
        &mut || {
            black_box(blocking.access_token().expect("cached"));
        },
        &mut || {
            black_box(fine_clocks.access_token().expect("cached"));
        },
        &mut || {
            black_box(file_manager.access_token().expect("cached"));
        },
        &mut || {
            black_box(poll_ready(manager.access_token()).expect("cached"));
        },
    ]);

    println!(
        "cached access_token(), {ROUNDS} interleaved rounds of {} calls per case, 1,100-character token",
        iterations()
    );
    println!("{:<48} {:>10} {:>20}", "", "ns/call", "vs floor (spread)");
    let floor_rounds = &per_round[0];
    for (name, rounds) in [
        "floor: Mutex<SecretString> lock + clone",
        "BlockingTokenManager::access_token (cached)",
        "  … over the fine clocks (Instant, SystemTime)",
        "  … over a FileStore (a stat at most every ms)",
        "TokenManager::access_token (cached, polled once)",
    ]
    .into_iter()
    .zip(&per_round)
    {
        let mut ratios: Vec<f64> = rounds
            .iter()
            .zip(floor_rounds)
            .map(|(ns, floor)| ns / floor)
            .collect();
        ratios.sort_by(f64::total_cmp);
        println!(
            "{name:<48} {:>10.1} {:>8.2} ({:.2}–{:.2})",
            median(rounds.clone()),
            median(ratios.clone()),
            ratios[0],
            ratios[ratios.len() - 1]
        );
    }

    let _ = std::fs::remove_dir_all(&dir);

    // 10,000 tasks at expiry (a manual clock moved past it), against a transport that takes
    // 50 ms and counts its calls.
    let clock = ManualEnvironment::new(Instant::now(), SystemTime::now());
    let requests = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = requests.clone();
    let transport = OnTokio(move |_: HttpRequest, _: SendOptions| {
        counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        async {
            tokio::time::sleep(Duration::from_millis(50)).await;
            answer()
        }
    });
    let manager = Arc::new(
        block_on(
            TokenManager::builder(
                Client::new(transport, clock.clone(), endpoint(), CallConfig::default()),
                template(),
                MemoryStore::new(),
            )
            .build(),
        )
        .expect("manager"),
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let started = Instant::now();
    rt.block_on(async {
        clock.advance(Duration::from_secs(86_400)); // well past any expiry
        let tasks: Vec<_> = (0..CALLERS)
            .map(|_| {
                let manager = manager.clone();
                tokio::spawn(async move { manager.access_token().await.map(drop) })
            })
            .collect();
        for task in tasks {
            task.await.expect("task").expect("token");
        }
    });
    println!(
        "{CALLERS} concurrent tasks at expiry: {} refresh request(s); all served in {:?}",
        requests.load(std::sync::atomic::Ordering::SeqCst),
        started.elapsed()
    );
}
