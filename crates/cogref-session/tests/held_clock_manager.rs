//! Review 15b: the session manager over `StdEnvironment::with_monotonic_clock_held_for`
//! (2772438), with clocks the tests move (function pointers reading statics).
//!
//! Failing when written (labelled in their docs), passing since 3861ebc: a held monotonic
//! reading that lagged shortened the refresh floor, and a stopped wall clock kept an expired
//! token served.

mod common;

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use cogref_core::driver::{
    Environment, HttpRequest, HttpResponse, MONOTONIC_CLOCK_HOLD, StdEnvironment,
};
use cogref_core::{BlockingTransport, Error, SendOptions};
use cogref_session::secrecy::ExposeSecret;
use cogref_session::{BlockingTokenManager, MemoryStore, SessionConfig};
use common::{client_on, ok, template};

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

fn held() -> StdEnvironment {
    StdEnvironment::new(mono, wall).with_monotonic_clock_held_for(MONOTONIC_CLOCK_HOLD)
}

/// Answers from a script; records the true monotonic time (ns) of each request; its sleeps
/// move both clocks.
#[derive(Clone, Default)]
struct Timed {
    script: Arc<Mutex<VecDeque<(u16, String)>>>,
    sent_at: Arc<Mutex<Vec<u64>>>,
}

impl Timed {
    fn new(answers: &[(u16, String)]) -> Self {
        Self {
            script: Arc::new(Mutex::new(answers.iter().cloned().collect())),
            sent_at: Arc::default(),
        }
    }
}

impl BlockingTransport for Timed {
    fn send(&self, _: HttpRequest, _: SendOptions) -> Result<HttpResponse, Error> {
        self.sent_at
            .lock()
            .expect("sent_at")
            .push(MONO_NS.load(Ordering::SeqCst));
        let (status, body) = self
            .script
            .lock()
            .expect("script")
            .pop_front()
            .expect("an answer is scripted for every request");
        Ok(cogref_core::http::Response::builder()
            .status(status)
            .body(body.into_bytes())
            .expect("response"))
    }

    fn sleep(&self, duration: Duration) {
        advance_both(u64::try_from(duration.as_nanos()).expect("short sleep"));
    }
}

/// Failed at 2772438 (fixed in 3861ebc): a refresh decided on while the held monotonic reading lagged (here by
/// 0.9 ms) counts its floor from the stale reading, so the next refresh starts less than
/// `min_refresh_interval` after it, by the true monotonic clock.
#[test]
fn two_refreshes_start_at_least_the_floor_apart_by_the_true_monotonic_clock() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    for (name, env) in [
        ("both clocks read", StdEnvironment::new(mono, wall)),
        ("monotonic held", held()),
    ] {
        let probe = env.clone();
        let transport = Timed::new(&[ok("a1", 3600, None), ok("a2", 3600, None)]);
        let manager = BlockingTokenManager::builder(
            client_on(transport.clone(), env),
            template("r0"),
            MemoryStore::default(),
        )
        .build()
        .expect("manager");
        // A reading is held, then 0.9 ms pass: the next refresh is decided on a lagging reading.
        let _ = probe.clocks();
        advance_both(900_000);
        assert_eq!(manager.access_token().expect("a1").expose_secret(), "a1");
        // Just short of the floor since that refresh truly started, by the held reading's count,
        // past it.
        advance_both(999_200_000);
        let _ = manager.refresh_now();
        let sent_at = transport.sent_at.lock().expect("sent_at").clone();
        assert_eq!(sent_at.len(), 2, "two refreshes");
        let apart = Duration::from_nanos(sent_at[1] - sent_at[0]);
        let floor = SessionConfig::default().min_refresh_interval;
        assert!(
            apart >= floor,
            "{name}: two refreshes started {apart:?} apart, the floor is {floor:?}"
        );
    }
}

/// Failed at 2772438 (fixed in 3861ebc): with the wall clock stopped, the held monotonic reading is never renewed,
/// so a token whose lifetime has run out by the monotonic clock is served on and on (with
/// both clocks read fresh, as without the hold, it is refreshed).
#[test]
fn a_token_past_its_lifetime_by_the_monotonic_clock_is_not_served_when_the_wall_clock_stops() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    for (name, env) in [
        ("both clocks read", StdEnvironment::new(mono, wall)),
        ("monotonic held", held()),
    ] {
        let transport = Timed::new(&[ok("a1", 3600, None), ok("a2", 3600, None)]);
        let manager = BlockingTokenManager::builder(
            client_on(transport, env),
            template("r0"),
            MemoryStore::default(),
        )
        .build()
        .expect("manager");
        assert_eq!(manager.access_token().expect("a1").expose_secret(), "a1");
        // Two hours pass; the wall clock has stopped.
        MONO_NS.fetch_add(2 * 3_600_000_000_000, Ordering::SeqCst);
        let token = manager.access_token().expect("a token");
        assert_eq!(
            token.expose_secret(),
            "a2",
            "{name}: an access token past its lifetime was served"
        );
    }
}
