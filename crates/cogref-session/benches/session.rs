//! Session figures: the cost of a cached `access_token()`, and how many refresh requests
//! 10,000 concurrent callers cause at expiry.
//!
//! `cargo bench -p cogref-session --bench session`. The cached-call cost is quoted against a
//! floor measured in the same run: locking a `Mutex<SecretString>` and cloning the token, the
//! least any shared cache does. The cached path includes the store's change stamp (an atomic
//! load for a memory store, a `stat` for a file store), by which a sign-out elsewhere is seen.

use std::future::Future;
use std::hint::black_box;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant, SystemTime};

use cogref_core::driver::{HttpRequest, HttpResponse, ManualEnvironment, StdEnvironment};
use cogref_core::secrecy::SecretString;
use cogref_core::{CallConfig, Client, EndpointConfig, Error, RefreshInput, SendOptions};
use cogref_session::{BlockingTokenManager, FileStore, MemoryStore, TokenManager};

const ITERATIONS: u32 = 1_000_000;
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

/// Median nanoseconds per call of `f` over five runs of `ITERATIONS`.
fn ns_per_call(mut f: impl FnMut()) -> f64 {
    let mut runs: Vec<f64> = (0..5)
        .map(|_| {
            let started = Instant::now();
            for _ in 0..ITERATIONS {
                f();
            }
            started.elapsed().as_nanos() as f64 / f64::from(ITERATIONS)
        })
        .collect();
    runs.sort_by(f64::total_cmp);
    runs[2]
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

/// A transport that answers after 50 ms and counts its calls, sleeping and spawning on tokio
/// (its refresh tasks need tokio's timer).
struct SlowOnTokio {
    requests: Arc<std::sync::atomic::AtomicUsize>,
}

impl cogref_core::AsyncTransport for SlowOnTokio {
    async fn send(&self, _: HttpRequest, _: SendOptions) -> Result<HttpResponse, Error> {
        self.requests
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(50)).await;
        answer()
    }

    async fn sleep(&self, duration: Duration) {
        tokio::time::sleep(duration).await;
    }

    fn spawn(&self, task: cogref_core::driver::DetachedTask) {
        tokio::spawn(task);
    }
}

/// The clocks a real client reads.
fn system_clock() -> StdEnvironment {
    StdEnvironment::new(Instant::now, SystemTime::now)
}

fn main() {
    let floor = Mutex::new(SecretString::from(access_token()));
    let floor_ns = ns_per_call(|| {
        black_box(floor.lock().expect("lock").clone());
    });

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
    let blocking_ns = ns_per_call(|| {
        black_box(blocking.access_token().expect("cached"));
    });

    // Over a file store every call also looks at the token file's change stamp (a `stat`, reused
    // that a sign-out by another process is seen on the next call.
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
    let file_ns = ns_per_call(|| {
        black_box(file_manager.access_token().expect("cached"));
    });
    let _ = std::fs::remove_dir_all(&dir);

    let transport = cogref_core::driver::transport_fn(
        |_: HttpRequest, _: SendOptions| async { answer() },
        |_: Duration| async {},
    );
    let manager = TokenManager::builder(
        Client::new(transport, system_clock(), endpoint(), CallConfig::default()),
        template(),
        MemoryStore::new(),
    );
    let manager = poll_ready(manager.build()).expect("manager");
    // The first call refreshes on a task of its own (a thread, for this transport): wait for it.
    cogref_core::driver::block_on(manager.access_token()).expect("first refresh");
    let async_ns = ns_per_call(|| {
        black_box(poll_ready(manager.access_token()).expect("cached"));
    });

    println!(
        "cached access_token(), median of 5 runs of {ITERATIONS} calls, 1,100-character token"
    );
    println!("{:<48} {:>10} {:>12}", "", "ns/call", "vs floor");
    for (name, ns) in [
        ("floor: Mutex<SecretString> lock + clone", floor_ns),
        ("BlockingTokenManager::access_token (cached)", blocking_ns),
        ("  … over a FileStore (a stat at most every ms)", file_ns),
        ("TokenManager::access_token (cached, polled once)", async_ns),
    ] {
        println!("{name:<48} {ns:>10.1} {:>12.2}", ns / floor_ns);
    }

    // 10,000 tasks at expiry (a manual clock moved past it), against a transport that takes
    // 50 ms and counts its calls.
    let clock = ManualEnvironment::new(Instant::now(), SystemTime::now());
    let requests = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = requests.clone();
    let transport = SlowOnTokio { requests: counted };
    let manager = Arc::new(
        poll_ready(
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
