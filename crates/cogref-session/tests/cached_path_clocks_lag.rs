//! Review 17b: hostile tests of the cached path after d6ef493 (`Engine::cached_now` moves the
//! monotonic reading on by `Environment::clocks_lag()`; `None`, the slow path, when that
//! overflows). Promises: a token is never served past its expiry by either clock even with a
//! held reading; the shift never changes the managers' answers except by sending a call to the
//! slow path (no extra refresh, no missed store look, no failure where a token should be
//! served, no panic with a `Duration::MAX` hold).
//!
//! The held clocks are thread-local (each test drives a blocking manager on its own thread),
//! so the tests run in parallel without sharing.

mod common;

use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use cogref_core::driver::{
    Environment, HttpRequest, HttpResponse, ManualEnvironment, StdEnvironment,
};
use cogref_core::{BlockingTransport, Error, SendOptions, SessionConfig};
use cogref_session::secrecy::ExposeSecret;
use cogref_session::{
    BlockingTokenManager, MemoryStore, SessionError, SessionEvent, StoreError, StoreGuard,
    TokenSet, TokenStore, Versioned,
};
use common::*;

fn base() -> Instant {
    static BASE: OnceLock<Instant> = OnceLock::new();
    *BASE.get_or_init(Instant::now)
}

thread_local! {
    /// Monotonic nanoseconds since `base()`.
    static MONO: Cell<u64> = const { Cell::new(1_000_000_000) };
    /// Wall nanoseconds since 1970.
    static WALL: Cell<u64> = const { Cell::new(T0 * 1_000_000_000) };
}

fn mono() -> Instant {
    base() + Duration::from_nanos(MONO.with(Cell::get))
}

fn wall() -> SystemTime {
    UNIX_EPOCH + Duration::from_nanos(WALL.with(Cell::get))
}

fn mono_ns() -> u64 {
    MONO.with(Cell::get)
}

fn advance(d: Duration) {
    let ns = u64::try_from(d.as_nanos()).expect("short");
    MONO.with(|m| m.set(m.get() + ns));
    WALL.with(|w| w.set(w.get() + ns));
}

fn step_wall_back(d: Duration) {
    let ns = u64::try_from(d.as_nanos()).expect("short");
    WALL.with(|w| w.set(w.get() - ns));
}

/// The thread's clocks, the monotonic one held for `hold`.
fn held(hold: Duration) -> StdEnvironment {
    StdEnvironment::new(mono, wall).with_monotonic_clock_held_for(hold)
}

/// Answers from a list and records the refresh tokens sent; its sleeps move the thread's
/// clocks.
#[derive(Clone, Default)]
struct Wire {
    script: Arc<Mutex<Vec<(u16, String)>>>,
    sent: Arc<Mutex<Vec<String>>>,
}

impl Wire {
    fn new(answers: &[(u16, String)]) -> Self {
        Self {
            script: Arc::new(Mutex::new(answers.to_vec())),
            sent: Arc::default(),
        }
    }
    fn sent(&self) -> usize {
        self.sent.lock().expect("sent").len()
    }
}

impl BlockingTransport for Wire {
    fn send(&self, request: HttpRequest, _: SendOptions) -> Result<HttpResponse, Error> {
        let body: serde_json::Value = serde_json::from_slice(request.body()).expect("json body");
        self.sent
            .lock()
            .expect("sent")
            .push(body["RefreshToken"].as_str().unwrap_or_default().to_owned());
        let mut script = self.script.lock().expect("script");
        assert!(!script.is_empty(), "an unscripted refresh");
        let (status, body) = script.remove(0);
        Ok(cogref_core::http::Response::builder()
            .status(status)
            .body(body.into_bytes())
            .expect("response"))
    }
    fn sleep(&self, d: Duration) {
        advance(d);
    }
}

fn token(answer: Result<cogref_session::secrecy::SecretString, SessionError>) -> String {
    match answer {
        Ok(t) => t.expose_secret().to_owned(),
        Err(e) => format!("error: {e}"),
    }
}

// ---------------------------------------------------------------------------------------------
// Expiry by the monotonic clock with a held reading
// ---------------------------------------------------------------------------------------------

/// Failed at 83bbddd over the transports' environment of then (the monotonic clock held 1 ms):
/// a call at wall time X held the monotonic reading; the wall clock was stepped back an hour
/// between calls (no call saw the step); an hour and 0.5 ms later the wall clock was at
/// X + 0.5 ms, inside the hold, and the reading of an hour before was served, with it a token
/// ~100 s past its expiry by the monotonic clock. No single-clock hold can see such a step, so
/// the transports read both clocks since a86f10e; this runs over their
/// environment (`StdEnvironment::new`, here on the test's clocks).
#[test]
fn a_token_past_its_monotonic_expiry_is_never_served_after_a_wall_step_back_between_calls() {
    let wire = Wire::new(&[ok("a1", 3600, Some("r1")), ok("a2", 3600, Some("r2"))]);
    let manager = BlockingTokenManager::builder(
        client_on(wire.clone(), StdEnvironment::new(mono, wall)),
        template("r0"),
        MemoryStore::new(),
    )
    .build()
    .expect("manager");
    let started = mono_ns();
    assert_eq!(token(manager.access_token()), "a1");
    // 3600 s counted as 3599 s.
    let expiry = started + 3_599_000_000_000;
    // 100 s on: not due; this call reads (and holds) the monotonic clock.
    advance(Duration::from_secs(100));
    assert_eq!(token(manager.access_token()), "a1");
    let step = Duration::from_secs(3600);
    step_wall_back(step);
    advance(step + Duration::from_micros(500));
    assert!(
        mono_ns() > expiry,
        "the premise: expired by the monotonic clock"
    );
    let answer = token(manager.access_token());
    assert_ne!(
        answer,
        "a1",
        "a1 served {:?} past its monotonic expiry",
        Duration::from_nanos(mono_ns() - expiry)
    );
}

// ---------------------------------------------------------------------------------------------
// A huge hold: every call goes the slow path, and the answers are the same
// ---------------------------------------------------------------------------------------------

/// One manager's life over `env` (the thread's clocks): served from one refresh until due,
/// refreshed once when due, never served past expiry (margin 5 min, 1-hour tokens).
fn a_life_with_one_refresh_per_due_time(env: StdEnvironment) {
    let wire = Wire::new(&[ok("a1", 3600, Some("r1")), ok("a2", 3600, Some("r2"))]);
    let manager = BlockingTokenManager::builder(
        client_on(wire.clone(), env),
        template("r0"),
        MemoryStore::new(),
    )
    .build()
    .expect("manager");
    for _ in 0..3 {
        assert_eq!(token(manager.access_token()), "a1");
    }
    // Just short of due (3599 s − 300 s): served, no refresh.
    advance(Duration::from_secs(3299) - Duration::from_millis(1));
    for _ in 0..3 {
        assert_eq!(token(manager.access_token()), "a1");
    }
    assert_eq!(wire.sent(), 1, "a refresh before the token was due");
    // Due: one refresh, then served from it.
    advance(Duration::from_millis(2));
    for _ in 0..3 {
        assert_eq!(token(manager.access_token()), "a2");
    }
    assert_eq!(wire.sent(), 2, "one refresh per due time");
}

#[test]
fn a_manager_whose_clock_is_held_for_duration_max_serves_and_refreshes_as_on_fresh_clocks() {
    a_life_with_one_refresh_per_due_time(held(Duration::MAX));
}

#[test]
fn a_manager_whose_clock_is_held_for_ten_years_serves_and_refreshes_as_on_fresh_clocks() {
    a_life_with_one_refresh_per_due_time(held(Duration::from_secs(10 * 365 * 86_400)));
}

/// An environment that reads both clocks each time but states a lag that cannot be added to
/// any `Instant` (a wrapper's honest "unbounded"): the cached path must give way to the slow
/// path for every call, which answers as usual.
#[derive(Clone)]
struct Unbounded(ManualEnvironment);

impl Environment for Unbounded {
    fn now(&self) -> Instant {
        self.0.now()
    }
    fn wall_clock(&self) -> SystemTime {
        self.0.wall_clock()
    }
    fn random_seed(&self) -> u64 {
        self.0.random_seed()
    }
    fn clocks_lag(&self) -> Duration {
        Duration::MAX
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

#[test]
fn with_a_lag_that_overflows_the_slow_path_serves_adopts_tells_the_notice_and_fails_after_sign_out()
{
    let clock = clock();
    let store = MemoryStore::new();
    let wire = Scripted::new(&clock, &[ok("a1", 3600, Some("r1"))]);
    let told = Arc::new(AtomicUsize::new(0));
    let validity = Duration::from_secs(86_400);
    // The notice (10 min) starts at T0 + 20 min exactly.
    let manager = BlockingTokenManager::builder(
        client_on(wire.clone(), Unbounded(clock.clone())),
        template("r0"),
        store.clone(),
    )
    .refresh_token_validity(validity)
    .ending_soon_notice(Duration::from_secs(600))
    .signed_in_at(UNIX_EPOCH + Duration::from_secs(T0 + 1800) - validity)
    .on_event(ending_soon_count(&told))
    .build()
    .expect("manager");
    assert_eq!(token(manager.access_token()), "a1");
    clock.advance(Duration::from_secs(1200) - Duration::from_nanos(1));
    assert_eq!(token(manager.access_token()), "a1");
    assert_eq!(told.load(Ordering::SeqCst), 0, "told before the notice");
    clock.advance(Duration::from_nanos(1));
    for _ in 0..3 {
        assert_eq!(token(manager.access_token()), "a1");
    }
    assert_eq!(told.load(Ordering::SeqCst), 1, "told once, at the notice");
    assert_eq!(wire.sent(), ["r0"], "no refresh of a fresh token");
    // Another holder refreshes: the store is looked at, its set served.
    let other_wire = Scripted::new(&clock, &[ok("b2", 3600, Some("r2")), (200, "{}".into())]);
    let other = BlockingTokenManager::builder(client(other_wire, &clock), template("r0"), store)
        .build()
        .expect("other");
    clock.advance(Duration::from_secs(5));
    assert_eq!(token(other.refresh_now()), "b2");
    assert_eq!(
        token(manager.access_token()),
        "b2",
        "the store was not looked at"
    );
    // It signs out: every later call fails.
    other.sign_out().expect("signed out");
    clock.advance(Duration::from_secs(1));
    for _ in 0..2 {
        assert!(matches!(
            manager.access_token(),
            Err(SessionError::SignedOut)
        ));
    }
    assert_eq!(wire.sent(), ["r0"]);
}

// ---------------------------------------------------------------------------------------------
// Within the lag of the due time or the expiry
// ---------------------------------------------------------------------------------------------

/// With `refresh_margin = 0` a token is due at its expiry; 10 s of lag puts the cached
/// decision past it for the last 10 s, where the slow path must still serve it (no refresh,
/// no error), and must refresh once it is expired.
#[test]
fn with_no_margin_a_token_within_the_lag_of_its_expiry_is_served_without_a_refresh_and_not_after() {
    let wire = Wire::new(&[ok("a1", 3600, Some("r1")), ok("a2", 3600, Some("r2"))]);
    let config = SessionConfig {
        refresh_margin: Duration::ZERO,
        ..SessionConfig::default()
    };
    let manager = BlockingTokenManager::builder(
        client_on(wire.clone(), held(Duration::from_secs(10))),
        template("r0"),
        MemoryStore::new(),
    )
    .session_config(config)
    .build()
    .expect("manager");
    let started = mono_ns();
    assert_eq!(token(manager.access_token()), "a1");
    let expiry = started + 3_599_000_000_000;
    advance(Duration::from_nanos(expiry - 5_000_000_000 - mono_ns()));
    for _ in 0..3 {
        assert_eq!(token(manager.access_token()), "a1");
        advance(Duration::from_secs(1));
    }
    advance(Duration::from_nanos(expiry - 1 - mono_ns()));
    assert_eq!(token(manager.access_token()), "a1", "1 ns before expiry");
    assert_eq!(wire.sent(), 1, "refreshed before due");
    advance(Duration::from_nanos(1));
    assert_eq!(token(manager.access_token()), "a2", "served at its expiry");
    assert_eq!(wire.sent(), 2);
}

/// A MemoryStore whose lock, loads and saves fail while `failing`; counts them.
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

/// In the store-retry window (1 s after the store failed) a due, usable token is served
/// without asking the store; a 10-second lag sends those calls to the slow path, which must
/// answer the same: served, the store not asked.
#[test]
fn with_a_long_hold_the_store_retry_window_still_serves_the_usable_token_without_asking_the_store()
{
    let store = Flaky::default();
    let wire = Wire::new(&[ok("a1", 3600, Some("r1"))]);
    let manager = BlockingTokenManager::builder(
        client_on(wire.clone(), held(Duration::from_secs(10))),
        template("r0"),
        store.clone(),
    )
    .build()
    .expect("manager");
    assert_eq!(token(manager.access_token()), "a1");
    // Due (inside the 5-minute margin), 60 s before expiry; the store goes down.
    advance(Duration::from_secs(3599 - 60));
    store.failing.store(true, Ordering::SeqCst);
    assert_eq!(token(manager.access_token()), "a1");
    let asked = store.calls.load(Ordering::SeqCst);
    advance(Duration::from_millis(400));
    for _ in 0..3 {
        assert_eq!(token(manager.access_token()), "a1");
    }
    assert_eq!(
        store.calls.load(Ordering::SeqCst),
        asked,
        "the store was asked inside its retry window"
    );
    assert_eq!(wire.sent(), 1);
}
