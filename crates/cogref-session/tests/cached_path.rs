//! Review 17: hostile tests of the cached path after 3099369 (`Engine::cached_token` returns
//! `Option<SecretString>`, the slow path decides again on fresh clocks). Each promise is checked
//! on both managers: a cached token only when it may be served, the ending-soon notice on the
//! cached path, a moved change stamp read first, a signed-out manager failing, no token past
//! its expiry, the usable token served in the store-retry window.

mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use cogref_core::driver::{Environment, HttpRequest, HttpResponse, StdEnvironment};
use cogref_core::{BlockingTransport, Error, SendOptions};
use cogref_session::secrecy::ExposeSecret;
use cogref_session::{
    BlockingTokenManager, MemoryStore, SessionError, SessionEvent, StoreError, StoreGuard,
    TokenManager, TokenSet, TokenStore, Versioned,
};
use common::*;

fn on_tokio(inner: Scripted) -> OnTokio<Scripted> {
    OnTokio {
        inner,
        delay: Duration::ZERO,
    }
}

fn ending_soon_count(told: &Arc<AtomicUsize>) -> impl Fn(&SessionEvent) + Send + Sync + 'static {
    let told = told.clone();
    move |e| {
        if matches!(e, SessionEvent::EndingSoon { .. }) {
            told.fetch_add(1, Ordering::SeqCst);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The ending-soon notice on the cached path
// ---------------------------------------------------------------------------------------------

/// Deadline 30 min after T0 (1-day validity), notice 10 min, tokens living an hour: at
/// T0 + 25 min the token is cached (no refresh falls in the notice), and the notice is due.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_async_cached_path_tells_ending_soon_once_inside_the_notice() {
    let clock = clock();
    let scripted = Scripted::new(&clock, &[ok("a1", 3600, None)]);
    let told = Arc::new(AtomicUsize::new(0));
    let validity = Duration::from_secs(86_400);
    let manager = TokenManager::builder(
        client(on_tokio(scripted.clone()), &clock),
        template("r0"),
        MemoryStore::new(),
    )
    .refresh_token_validity(validity)
    .ending_soon_notice(Duration::from_secs(600))
    .signed_in_at(UNIX_EPOCH + Duration::from_secs(T0 + 1800) - validity)
    .on_event(ending_soon_count(&told))
    .build()
    .await
    .expect("manager");
    assert_eq!(
        manager.access_token().await.expect("a1").expose_secret(),
        "a1"
    );
    assert_eq!(told.load(Ordering::SeqCst), 0, "not yet");
    clock.advance(Duration::from_secs(25 * 60));
    for _ in 0..3 {
        assert_eq!(
            manager
                .access_token()
                .await
                .expect("cached")
                .expose_secret(),
            "a1"
        );
    }
    assert_eq!(scripted.sent().len(), 1, "served from the cache");
    assert_eq!(
        told.load(Ordering::SeqCst),
        1,
        "told once on the cached path"
    );
}

#[test]
fn the_blocking_cached_path_tells_ending_soon_once_inside_the_notice_with_a_stamped_store() {
    // MemoryStore has a change stamp: the cached path reads it on every call.
    let clock = clock();
    let scripted = Scripted::new(&clock, &[ok("a1", 3600, None)]);
    let told = Arc::new(AtomicUsize::new(0));
    let validity = Duration::from_secs(86_400);
    let manager = BlockingTokenManager::builder(
        client(scripted.clone(), &clock),
        template("r0"),
        MemoryStore::new(),
    )
    .refresh_token_validity(validity)
    .ending_soon_notice(Duration::from_secs(600))
    // Another deadline than the async test's: the notice is told once per lineage end per
    // process.
    .signed_in_at(UNIX_EPOCH + Duration::from_secs(T0 + 1700) - validity)
    .on_event(ending_soon_count(&told))
    .build()
    .expect("manager");
    manager.access_token().expect("a1");
    clock.advance(Duration::from_secs(25 * 60));
    for _ in 0..3 {
        assert_eq!(
            manager.access_token().expect("cached").expose_secret(),
            "a1"
        );
    }
    assert_eq!(scripted.sent().len(), 1, "served from the cache");
    assert_eq!(told.load(Ordering::SeqCst), 1);
}

// ---------------------------------------------------------------------------------------------
// A moved change stamp: the store is read before the cached token is served
// ---------------------------------------------------------------------------------------------

#[test]
fn a_blocking_manager_serves_the_set_another_holder_stored_on_its_next_call() {
    let clock = clock();
    let store = MemoryStore::new();
    let a_wire = Scripted::new(&clock, &[ok("a1", 3600, Some("r1"))]);
    let a = BlockingTokenManager::builder(
        client(a_wire.clone(), &clock),
        template("r0"),
        store.clone(),
    )
    .build()
    .expect("a");
    assert_eq!(a.access_token().expect("a1").expose_secret(), "a1");
    let b_wire = Scripted::new(&clock, &[ok("b2", 3600, Some("r2"))]);
    let b = BlockingTokenManager::builder(client(b_wire.clone(), &clock), template("r0"), store)
        .build()
        .expect("b");
    clock.advance(Duration::from_secs(30));
    assert_eq!(b.refresh_now().expect("b2").expose_secret(), "b2");
    // A's cached a1 is still fresh, but the stamp moved: the store is read first.
    assert_eq!(a.access_token().expect("adopted").expose_secret(), "b2");
    assert_eq!(a_wire.sent(), ["r0"], "A did not refresh");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_async_manager_serves_the_set_another_holder_stored_on_its_next_call() {
    let clock = clock();
    let store = MemoryStore::new();
    let a_wire = Scripted::new(&clock, &[ok("a1", 3600, Some("r1"))]);
    let a = TokenManager::builder(
        client(on_tokio(a_wire.clone()), &clock),
        template("r0"),
        store.clone(),
    )
    .build()
    .await
    .expect("a");
    assert_eq!(a.access_token().await.expect("a1").expose_secret(), "a1");
    let b_wire = Scripted::new(&clock, &[ok("b2", 3600, Some("r2"))]);
    let b = TokenManager::builder(client(on_tokio(b_wire), &clock), template("r0"), store)
        .build()
        .await
        .expect("b");
    clock.advance(Duration::from_secs(30));
    assert_eq!(b.refresh_now().await.expect("b2").expose_secret(), "b2");
    assert_eq!(
        a.access_token().await.expect("adopted").expose_secret(),
        "b2"
    );
    assert_eq!(a_wire.sent(), ["r0"], "A did not refresh");
}

/// Revocation answers `{}`; the Scripted transport records the request's (absent)
/// `RefreshToken` as "".
fn revoked() -> (u16, String) {
    (200, "{}".to_owned())
}

#[test]
fn a_sign_out_by_another_blocking_holder_fails_the_next_call_and_every_later_one() {
    let clock = clock();
    let store = MemoryStore::new();
    let a_wire = Scripted::new(&clock, &[ok("a1", 3600, Some("r1"))]);
    let a = BlockingTokenManager::builder(
        client(a_wire.clone(), &clock),
        template("r0"),
        store.clone(),
    )
    .build()
    .expect("a");
    assert_eq!(a.access_token().expect("a1").expose_secret(), "a1");
    let b = BlockingTokenManager::builder(
        client(Scripted::new(&clock, &[revoked()]), &clock),
        template("r0"),
        store,
    )
    .build()
    .expect("b");
    b.sign_out().expect("signed out");
    clock.advance(Duration::from_secs(1));
    for _ in 0..3 {
        let answer = a.access_token();
        assert!(
            matches!(answer, Err(SessionError::SignedOut)),
            "A answered {:?} after B signed out",
            answer.map(|t| t.expose_secret().to_owned())
        );
    }
    assert_eq!(a_wire.sent(), ["r0"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sign_out_by_another_async_holder_fails_the_next_call_and_every_later_one() {
    let clock = clock();
    let store = MemoryStore::new();
    let a_wire = Scripted::new(&clock, &[ok("a1", 3600, Some("r1"))]);
    let a = TokenManager::builder(
        client(on_tokio(a_wire.clone()), &clock),
        template("r0"),
        store.clone(),
    )
    .build()
    .await
    .expect("a");
    assert_eq!(a.access_token().await.expect("a1").expose_secret(), "a1");
    let b = TokenManager::builder(
        client(on_tokio(Scripted::new(&clock, &[revoked()])), &clock),
        template("r0"),
        store,
    )
    .build()
    .await
    .expect("b");
    b.sign_out().await.expect("signed out");
    for _ in 0..3 {
        let answer = a.access_token().await;
        assert!(
            matches!(answer, Err(SessionError::SignedOut)),
            "A answered {:?} after B signed out",
            answer.map(|t| t.expose_secret().to_owned())
        );
    }
    assert_eq!(a_wire.sent(), ["r0"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_manager_signed_out_itself_fails_at_once_with_a_fresh_token_cached() {
    let clock = clock();
    let wire = Scripted::new(&clock, &[ok("a1", 3600, Some("r1")), revoked()]);
    let blocking = BlockingTokenManager::builder(
        client(wire.clone(), &clock),
        template("r0"),
        MemoryStore::new(),
    )
    .build()
    .expect("blocking");
    tokio::task::block_in_place(|| {
        blocking.access_token().expect("a1");
        blocking.sign_out().expect("signed out");
        assert!(matches!(
            blocking.access_token(),
            Err(SessionError::SignedOut)
        ));
    });
    let wire = Scripted::new(&clock, &[ok("a1", 3600, Some("r1")), revoked()]);
    let manager = TokenManager::builder(
        client(on_tokio(wire), &clock),
        template("r0"),
        MemoryStore::new(),
    )
    .build()
    .await
    .expect("async");
    manager.access_token().await.expect("a1");
    manager.sign_out().await.expect("signed out");
    assert!(matches!(
        manager.access_token().await,
        Err(SessionError::SignedOut)
    ));
}

// ---------------------------------------------------------------------------------------------
// The store-retry window, and expiry
// ---------------------------------------------------------------------------------------------

/// A MemoryStore whose lock and reads fail while `failing`; counts them.
#[derive(Clone, Default)]
struct Flaky {
    inner: MemoryStore,
    failing: Arc<AtomicBool>,
    calls: Arc<AtomicUsize>,
}

impl Flaky {
    fn check(&self) -> Result<(), StoreError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        if self.failing.load(Ordering::SeqCst) {
            Err(StoreError::Io {
                path: "flaky".into(),
                action: "reading",
                source: std::io::Error::other("scripted outage"),
            })
        } else {
            Ok(())
        }
    }
}

impl TokenStore for Flaky {
    fn load(&self) -> Result<Option<Versioned>, StoreError> {
        self.check()?;
        self.inner.load()
    }
    fn save(&self, tokens: &TokenSet, expected: Option<u64>) -> Result<u64, StoreError> {
        self.check()?;
        self.inner.save(tokens, expected)
    }
    fn try_lock(&self) -> Result<Option<StoreGuard>, StoreError> {
        self.check()?;
        self.inner.try_lock()
    }
    fn change_stamp(&self) -> Option<u64> {
        self.inner.change_stamp()
    }
}

#[test]
fn in_the_store_retry_window_the_usable_token_is_served_without_asking_the_store_until_it_expires()
{
    let clock = clock();
    let store = Flaky::default();
    let wire = Scripted::new(&clock, &[ok("a1", 3600, Some("r1"))]);
    let manager =
        BlockingTokenManager::builder(client(wire.clone(), &clock), template("r0"), store.clone())
            .build()
            .expect("manager");
    manager.access_token().expect("a1");
    // Due (inside the 5-minute margin), still valid for 0.9 s (a token of 3600 s is counted as
    // 3599 s); the store goes down.
    clock.advance(Duration::from_millis(3_598_100));
    store.failing.store(true, Ordering::SeqCst);
    assert_eq!(
        manager.access_token().expect("served").expose_secret(),
        "a1"
    );
    let asked = store.calls.load(Ordering::SeqCst);
    // 0.5 s later: inside the window, the token still valid: served, the store not asked.
    clock.advance(Duration::from_millis(500));
    assert_eq!(
        manager.access_token().expect("served").expose_secret(),
        "a1"
    );
    assert_eq!(
        store.calls.load(Ordering::SeqCst),
        asked,
        "store asked in the window"
    );
    // 0.5 s more: inside the window (1 s), but the token expired 0.1 s ago: never served.
    clock.advance(Duration::from_millis(500));
    let answer = manager.access_token();
    assert!(
        answer.is_err(),
        "an expired token was served: {:?}",
        answer.map(|t| t.expose_secret().to_owned())
    );
    assert_eq!(wire.sent(), ["r0"], "no refresh without the lock");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_async_manager_serves_the_usable_token_in_the_store_retry_window_until_it_expires() {
    let clock = clock();
    let store = Flaky::default();
    let wire = Scripted::new(&clock, &[ok("a1", 3600, Some("r1"))]);
    let manager = TokenManager::builder(
        client(on_tokio(wire.clone()), &clock),
        template("r0"),
        store.clone(),
    )
    .build()
    .await
    .expect("manager");
    manager.access_token().await.expect("a1");
    clock.advance(Duration::from_millis(3_598_100));
    store.failing.store(true, Ordering::SeqCst);
    assert_eq!(
        manager
            .access_token()
            .await
            .expect("served")
            .expose_secret(),
        "a1"
    );
    let asked = store.calls.load(Ordering::SeqCst);
    clock.advance(Duration::from_millis(500));
    assert_eq!(
        manager
            .access_token()
            .await
            .expect("served")
            .expose_secret(),
        "a1"
    );
    assert_eq!(
        store.calls.load(Ordering::SeqCst),
        asked,
        "store asked in the window"
    );
    clock.advance(Duration::from_millis(500));
    let answer = manager.access_token().await;
    assert!(
        answer.is_err(),
        "an expired token was served: {:?}",
        answer.map(|t| t.expose_secret().to_owned())
    );
    // The window over, the store is asked again.
    clock.advance(Duration::from_secs(1));
    let _ = manager.access_token().await;
    assert!(
        store.calls.load(Ordering::SeqCst) > asked,
        "never asked again"
    );
}

// The held monotonic clock under the cached path: clocks the test moves.
static MONO_NS: AtomicU64 = AtomicU64::new(0);
static WALL_NS: AtomicU64 = AtomicU64::new(1_800_000_000_000_000_000);
static SERIAL: Mutex<()> = Mutex::new(());

fn base() -> Instant {
    static BASE: OnceLock<Instant> = OnceLock::new();
    *BASE.get_or_init(Instant::now)
}

fn mono() -> Instant {
    base() + Duration::from_nanos(MONO_NS.load(Ordering::SeqCst))
}

fn wall() -> SystemTime {
    UNIX_EPOCH + Duration::from_nanos(WALL_NS.load(Ordering::SeqCst))
}

fn advance_both(ns: u64) {
    MONO_NS.fetch_add(ns, Ordering::SeqCst);
    WALL_NS.fetch_add(ns, Ordering::SeqCst);
}

/// Answers from a list; its sleeps move both clocks.
#[derive(Clone)]
struct Timed(Arc<Mutex<Vec<(u16, String)>>>);

impl BlockingTransport for Timed {
    fn send(&self, _: HttpRequest, _: SendOptions) -> Result<HttpResponse, Error> {
        let (status, body) = self.0.lock().expect("script").remove(0);
        Ok(cogref_core::http::Response::builder()
            .status(status)
            .body(body.into_bytes())
            .expect("response"))
    }
    fn sleep(&self, d: Duration) {
        advance_both(u64::try_from(d.as_nanos()).expect("short"));
    }
}

/// Failed at 3099369, fixed in d6ef493 (and before it: the cached path has decided on `cached_now` since the
/// held monotonic clock came in): `cached_now`'s doc says a held reading (up to 1 ms behind)
/// is used "only to serve a cached token, which is due at least a second before it expires".
/// In the store-retry window (and a failure's backoff) a due but still usable token is served
/// right up to its expiry, so a reading 0.6 ms behind serves it 0.3 ms after its expiry by the
/// monotonic clock, when the wall clock was stepped back (then only the monotonic clock can
/// tell it expired; a step back makes the environment read the monotonic clock and hold it).
#[test]
fn a_token_past_its_monotonic_expiry_is_never_served_from_a_held_reading() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let env = StdEnvironment::new(mono, wall)
        .with_monotonic_clock_held_for(cogref_core::driver::MONOTONIC_CLOCK_HOLD);
    let probe = env.clone();
    let store = Flaky::default();
    let transport = Timed(Arc::new(Mutex::new(vec![ok("a1", 3600, Some("r1"))])));
    let manager =
        BlockingTokenManager::builder(client_on(transport, env), template("r0"), store.clone())
            .build()
            .expect("manager");
    let started = MONO_NS.load(Ordering::SeqCst);
    assert_eq!(manager.access_token().expect("a1").expose_secret(), "a1");
    // 0.5 s before the expiry (counted from the request's start): due, the store down, served.
    // 3600 s counted as 3599 s (the token may be a second older than it says).
    let expiry = started + 3_599_000_000_000;
    advance_both(expiry - 500_000_000 - MONO_NS.load(Ordering::SeqCst));
    store.failing.store(true, Ordering::SeqCst);
    assert_eq!(
        manager.access_token().expect("window").expose_secret(),
        "a1"
    );
    // The wall clock is stepped back an hour; 0.3 ms before the expiry a call reads (and holds)
    // the monotonic clock.
    WALL_NS.fetch_sub(3_600_000_000_000, Ordering::SeqCst);
    advance_both(expiry - 300_000 - MONO_NS.load(Ordering::SeqCst));
    assert_eq!(
        manager.access_token().expect("window").expose_secret(),
        "a1"
    );
    // 0.6 ms later, 0.3 ms past the expiry by the true monotonic clock.
    advance_both(600_000);
    assert!(MONO_NS.load(Ordering::SeqCst) > expiry);
    let held = probe.clocks().mono;
    assert!(held < mono(), "the reading is held (the premise)");
    let answer = manager.access_token();
    assert!(
        answer.is_err(),
        "a token {:?} past its expiry was served",
        Duration::from_nanos(MONO_NS.load(Ordering::SeqCst) - expiry)
    );
}
