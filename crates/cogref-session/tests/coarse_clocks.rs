//! Review 18: a session over `StdEnvironment::with_coarse_clocks` (9923947), whose cached path
//! reads coarse clocks lagging by up to `clocks_lag()` and moves both readings on by it. The
//! promise: never a token past its due time or expiry by the true clocks; still served,
//! refreshed once per due time, a sign-out seen, `EndingSoon` on time.
//!
//! At 9923947 (six ticks assumed, a lag of twelve) the stall test failed: a token was served
//! past its due time with the coarse clocks seven ticks behind and the wall clock stepped back.
//! Since the fix the assumption is twelve ticks, the lag 25, and what lies beyond the
//! assumption is documented and bounded here.
//!
//! The clocks are fakes reading statics (function pointers cannot capture), so the tests take
//! turns (`serial()`).

mod common;

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use cogref_core::driver::{CoarseClocks, StdEnvironment};
use cogref_session::secrecy::ExposeSecret;
use cogref_session::{BlockingTokenManager, MemoryStore, SessionError, SessionEvent};
use common::*;

const TICK: Duration = Duration::from_millis(4);
const LAG: Duration = Duration::from_millis(100);
/// The coarse monotonic clock when the fine one stands at `base()`.
const BOOTED: Duration = Duration::from_secs(5_000);
/// The fine clock when each manager refreshes first.
const F0: Duration = Duration::from_secs(100);
/// A token of `ExpiresIn` 3600 (no claims) lives 3599 s from its send; due 300 s before.
const DUE: Duration = Duration::from_secs(3_299);
const EXPIRES: Duration = Duration::from_secs(3_599);

static FINE_NS: AtomicU64 = AtomicU64::new(0);
static BEHIND_NS: AtomicU64 = AtomicU64::new(0);
static STEP_SECS: AtomicI64 = AtomicI64::new(0);
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|p| p.into_inner())
}

fn base() -> Instant {
    static BASE: OnceLock<Instant> = OnceLock::new();
    *BASE.get_or_init(Instant::now)
}

fn wall_at(ns: u64) -> SystemTime {
    let wall = UNIX_EPOCH + Duration::from_secs(T0) + Duration::from_nanos(ns);
    let step = STEP_SECS.load(Ordering::SeqCst);
    if step >= 0 {
        wall + Duration::from_secs(step.unsigned_abs())
    } else {
        wall - Duration::from_secs(step.unsigned_abs())
    }
}

fn fine() -> Instant {
    base() + Duration::from_nanos(FINE_NS.load(Ordering::SeqCst))
}

fn fine_wall() -> SystemTime {
    wall_at(FINE_NS.load(Ordering::SeqCst))
}

fn coarse_ns() -> u64 {
    FINE_NS.load(Ordering::SeqCst) - BEHIND_NS.load(Ordering::SeqCst)
}

fn coarse_clocks() -> CoarseClocks {
    CoarseClocks {
        monotonic: || Some(BOOTED + Duration::from_nanos(coarse_ns())),
        wall: || Some(wall_at(coarse_ns())),
        resolution: TICK,
    }
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).expect("short")
}

/// The true clocks at `at` after `base()`, the coarse ones `behind` them.
fn set(at: Duration, behind: Duration) {
    FINE_NS.store(nanos(at), Ordering::SeqCst);
    BEHIND_NS.store(nanos(behind), Ordering::SeqCst);
}

/// The environment a transport builds on Linux, over the fake clocks.
fn coarse_env() -> StdEnvironment {
    StdEnvironment::new(fine, fine_wall).with_coarse_clocks(coarse_clocks())
}

type Manager = BlockingTokenManager<Scripted, StdEnvironment, MemoryStore>;

fn manager(env: StdEnvironment, answers: &[(u16, String)]) -> (Manager, Scripted) {
    let transport = Scripted::new(&clock(), answers);
    let manager = BlockingTokenManager::builder(
        client_on(transport.clone(), env),
        template("r0"),
        MemoryStore::new(),
    )
    .build()
    .expect("manager");
    (manager, transport)
}

/// A manager built (its environment too) while the coarse clocks lag `built_behind`, its first
/// token fetched at `F0`; then the true clocks at `F0 + DUE ± offset_ns`, the coarse ones
/// `read_behind`: the token the next call gets, and how many refreshes were sent by then.
fn around_due(
    env: fn() -> StdEnvironment,
    built_behind: Duration,
    offset_ns: i64,
    read_behind: Duration,
    step_secs: i64,
) -> (String, usize, Manager, Scripted) {
    STEP_SECS.store(0, Ordering::SeqCst);
    set(F0, built_behind);
    let (manager, transport) = manager(env(), &[ok("a1", 3600, None), ok("a2", 3600, None)]);
    set(F0, Duration::ZERO);
    // Twice: the second call reads the store once (its change stamp moved with the save), so
    // that the probe below takes the cached path.
    for _ in 0..2 {
        assert_eq!(manager.access_token().expect("a1").expose_secret(), "a1");
    }
    let due = F0 + DUE;
    let at = if offset_ns >= 0 {
        due + Duration::from_nanos(offset_ns.unsigned_abs())
    } else {
        due - Duration::from_nanos(offset_ns.unsigned_abs())
    };
    STEP_SECS.store(step_secs, Ordering::SeqCst);
    set(at, read_behind);
    let token = manager.access_token().expect("a token");
    STEP_SECS.store(0, Ordering::SeqCst);
    let sent = transport.sent().len();
    (token.expose_secret().to_owned(), sent, manager, transport)
}

/// Control: over the fine clocks alone the due time is exactly `F0 + DUE`.
#[test]
fn over_the_fine_clocks_the_token_is_due_exactly_at_its_due_time() {
    let _serial = serial();
    let fine_env = || StdEnvironment::new(fine, fine_wall);
    let (token, sent, ..) = around_due(fine_env, Duration::ZERO, -1, Duration::ZERO, 0);
    assert_eq!((token.as_str(), sent), ("a1", 1));
    let (token, sent, ..) = around_due(fine_env, Duration::ZERO, 0, Duration::ZERO, 0);
    assert_eq!((token.as_str(), sent), ("a2", 2));
}

/// Coarse clocks lagging anything from nothing to twelve ticks, at construction and at the call:
/// the token is served from the cache until its true due time, never at or after it, and the
/// refresh at the due time happens once.
#[test]
fn over_coarse_clocks_lagging_within_their_allowance_a_token_is_served_until_its_due_time_and_refreshed_once()
 {
    let _serial = serial();
    let behinds = [
        Duration::ZERO,
        Duration::from_nanos(1),
        TICK,
        TICK * 6,
        TICK * 12,
    ];
    let offsets: [i64; 9] = [
        -160_000_000,
        -100_000_001,
        -100_000_000,
        -99_999_999,
        -1,
        0,
        1,
        24_000_000,
        60_000_000,
    ];
    for built in behinds {
        for read in behinds {
            for offset in offsets {
                let case = format!("built {built:?} behind, read {read:?} behind, {offset} ns");
                let (token, sent, manager, transport) =
                    around_due(coarse_env, built, offset, read, 0);
                if offset < 0 {
                    assert_eq!((token.as_str(), sent), ("a1", 1), "{case}: served");
                } else {
                    assert_eq!((token.as_str(), sent), ("a2", 2), "{case}: refreshed");
                    // Once: the next calls are served a2 from the cache.
                    for behind in behinds {
                        BEHIND_NS.store(nanos(behind), Ordering::SeqCst);
                        assert_eq!(manager.access_token().expect("a2").expose_secret(), "a2");
                    }
                    assert_eq!(transport.sent().len(), 2, "{case}: refreshed once");
                }
            }
        }
    }
}

/// The doc's allowance was six ticks at 9923947; Linux does not bound a coarse clock's lag by
/// it. Even the stall take-over counts five ticks of another CPU after the first one that sees
/// jiffies unchanged, from a clock already up to a tick behind at the stall: about seven ticks.
/// This machine (a 2-vCPU VM, tick 4 ms) showed the coarse monotonic clock 13 ms (3.3 ticks)
/// behind in 5 s of load. Now twelve ticks are assumed: within them, with the wall clock
/// stepped back too (then only the monotonic clock speaks), never a token past its due time.
#[test]
fn a_token_is_never_served_past_its_due_time_when_the_coarse_clocks_stall_up_to_twelve_ticks() {
    let _serial = serial();
    for (stall, offset, step) in [
        (TICK * 7, 1i64, 0i64),
        (TICK * 7, 1, -600),
        (TICK * 7, 3_999_999, -600),
        (TICK * 12, 1, 0),
        (TICK * 12, 1, -600),
        (Duration::from_millis(100), 1, 0),
        (Duration::from_millis(100), 10_000_000, 0),
    ] {
        let (token, sent, ..) = around_due(coarse_env, Duration::ZERO, offset, stall, step);
        assert_eq!(
            (token.as_str(), sent),
            ("a2", 2),
            "a1 served {offset} ns past its due time (the coarse clocks {stall:?} behind, \
             the wall clock stepped {step} s)"
        );
    }
}

/// Beyond the assumption (the documented limit of `with_coarse_clocks`): coarse clocks stalled
/// 100 ms (25 ticks) with the wall clock stepped back, so that only the monotonic clock speaks.
/// A token can then be served past its due time by the stall's excess over the twelve ticks
/// assumed (52 ms here), never by more.
#[test]
fn beyond_twelve_ticks_a_token_is_served_past_its_due_time_by_at_most_the_stalls_excess() {
    let _serial = serial();
    let stall = Duration::from_millis(100);
    let excess = stall - TICK * 12;
    for offset in [
        excess,
        excess + Duration::from_millis(1),
        Duration::from_secs(1),
    ] {
        let offset = i64::try_from(nanos(offset)).expect("short") + 1;
        let (token, sent, ..) = around_due(coarse_env, Duration::ZERO, offset, stall, -600);
        assert_eq!(
            (token.as_str(), sent),
            ("a2", 2),
            "a1 served {offset} ns past its due time, more than the excess {excess:?}"
        );
    }
}

/// A wall clock stepped back ten minutes between two calls, the coarse clocks twelve ticks behind:
/// a token due by the monotonic clock is refreshed, not served from the stepped-back reading.
#[test]
fn over_coarse_clocks_a_wall_clock_stepped_back_never_serves_a_token_past_its_due_time() {
    let _serial = serial();
    STEP_SECS.store(0, Ordering::SeqCst);
    set(F0, Duration::ZERO);
    let (manager, transport) = manager(coarse_env(), &[ok("a1", 3600, None), ok("a2", 3600, None)]);
    manager.access_token().expect("a1");
    set(F0 + DUE - LAG - Duration::from_millis(1), TICK * 12);
    assert_eq!(manager.access_token().expect("a1").expose_secret(), "a1");
    // Stepped back between two calls; the true monotonic clock reaches the due time.
    STEP_SECS.store(-600, Ordering::SeqCst);
    set(F0 + DUE, TICK * 12);
    assert_eq!(manager.access_token().expect("a2").expose_secret(), "a2");
    assert_eq!(transport.sent().len(), 2);
    STEP_SECS.store(0, Ordering::SeqCst);
}

/// A suspend (or a step forward) moves the wall clock past the token's due time while the
/// monotonic one stays: the very next call refreshes, whatever the coarse lag.
#[test]
fn over_coarse_clocks_a_suspend_past_the_due_time_shows_on_the_very_next_call() {
    let _serial = serial();
    for behind in [Duration::ZERO, TICK * 12] {
        STEP_SECS.store(0, Ordering::SeqCst);
        set(F0, Duration::ZERO);
        let (manager, transport) =
            manager(coarse_env(), &[ok("a1", 3600, None), ok("a2", 3600, None)]);
        manager.access_token().expect("a1");
        set(F0 + Duration::from_secs(10), behind);
        assert_eq!(manager.access_token().expect("a1").expose_secret(), "a1");
        // Suspended for 3289 s: due by the wall clock (3299 s after the send) from now on.
        STEP_SECS.store(3_289, Ordering::SeqCst);
        assert_eq!(
            manager.access_token().expect("a2").expose_secret(),
            "a2",
            "{behind:?}"
        );
        assert_eq!(transport.sent().len(), 2);
    }
    STEP_SECS.store(0, Ordering::SeqCst);
}

/// Expiry by the monotonic clock, a refresh failing since the due time (the token is served
/// while it is good, the failure's backoff holding the next try): never past its expiry.
#[test]
fn over_coarse_clocks_a_token_whose_refresh_keeps_failing_is_never_served_past_its_expiry() {
    let _serial = serial();
    STEP_SECS.store(0, Ordering::SeqCst);
    set(F0, Duration::ZERO);
    let mut answers = vec![ok("a1", 3600, None)];
    answers.extend((0..400).map(|_| err(500, "InternalErrorException")));
    let (manager, transport) = manager(coarse_env(), &answers);
    manager.access_token().expect("a1");
    // From the due time to past the expiry, a call every 0.25 s of true time, the coarse
    // clocks from 0 to 12 ticks behind.
    let mut at = F0 + DUE;
    let mut i = 0u32;
    while at < F0 + EXPIRES + Duration::from_secs(2) {
        set(at, TICK * (i % 13));
        // An error (the refresh failed, no token good enough to serve) is allowed.
        if let Ok(token) = manager.access_token() {
            assert_eq!(token.expose_secret(), "a1");
            assert!(
                at < F0 + EXPIRES,
                "a1 served {:?} past its expiry",
                at - (F0 + EXPIRES)
            );
        }
        at += Duration::from_millis(250) + Duration::from_nanos(u64::from(i % 5));
        i += 1;
    }
    assert!(transport.sent().len() > 2, "the refresh was retried");
}

/// Another manager signs out: the next call of the manager over coarse clocks answers
/// `SignedOut`, though its cached token is good by every clock.
#[test]
fn over_coarse_clocks_another_managers_sign_out_shows_on_the_next_call() {
    let _serial = serial();
    STEP_SECS.store(0, Ordering::SeqCst);
    set(F0, Duration::ZERO);
    let store = MemoryStore::new();
    let a_transport = Scripted::new(&clock(), &[ok("a1", 3600, None), (200, "{}".to_owned())]);
    let b_transport = Scripted::new(&clock(), &[]);
    let build = |transport: &Scripted| {
        BlockingTokenManager::builder(
            client_on(transport.clone(), coarse_env()),
            template("r0"),
            store.clone(),
        )
        .build()
        .expect("manager")
    };
    let (a, b) = (build(&a_transport), build(&b_transport));
    a.access_token().expect("a1");
    set(F0 + Duration::from_secs(1), TICK * 12);
    assert_eq!(b.access_token().expect("adopted").expose_secret(), "a1");
    assert_eq!(b.access_token().expect("cached").expose_secret(), "a1");
    a.sign_out().expect("signed out");
    assert!(
        matches!(b.access_token(), Err(SessionError::SignedOut)),
        "b served its cached token after the sign-out"
    );
    assert!(b_transport.sent().is_empty());
}

/// `EndingSoon` is heard on the cached path at the true start of the notice, not earlier (the
/// readings moved on by the lag would say so 100 ms early; the engine checks again on the fine
/// clocks), whatever the coarse lag.
#[test]
fn over_coarse_clocks_ending_soon_is_told_at_the_true_start_of_the_notice_and_not_before() {
    let _serial = serial();
    STEP_SECS.store(0, Ordering::SeqCst);
    // EndingSoon is told once per process and lineage: each case ends at another time.
    for (k, behind) in [Duration::ZERO, TICK, TICK * 12].into_iter().enumerate() {
        set(F0, Duration::ZERO);
        let told = Arc::new(Mutex::new(0u32));
        let counted = told.clone();
        let validity = Duration::from_secs(86_400);
        let notice = Duration::from_secs(600);
        // The deadline 2000 s after F0: the notice starts at F0 + 1400 s, between refreshes.
        let end = Duration::from_secs(2_000 + 10 * k as u64);
        let signed_in = fine_wall() + end - validity;
        let transport = Scripted::new(&clock(), &[ok("a1", 3600, None)]);
        let manager = BlockingTokenManager::builder(
            client_on(transport, coarse_env()),
            template("r0"),
            MemoryStore::new(),
        )
        .refresh_token_validity(validity)
        .ending_soon_notice(notice)
        .signed_in_at(signed_in)
        .on_event(move |e| {
            if matches!(e, SessionEvent::EndingSoon { .. }) {
                *counted.lock().expect("told") += 1;
            }
        })
        .build()
        .expect("manager");
        manager.access_token().expect("a1");
        let starts = manager.deadline().expect("a deadline") - notice;
        let starts_at = F0 + starts.duration_since(fine_wall()).expect("later");
        for before_ns in [100_000_000u64, 99_999_999, 48_000_000, 1] {
            set(starts_at - Duration::from_nanos(before_ns), behind);
            manager.access_token().expect("a1");
            assert_eq!(
                *told.lock().expect("told"),
                0,
                "{behind:?}: told {before_ns} ns early"
            );
        }
        set(starts_at, behind);
        manager.access_token().expect("a1");
        assert_eq!(
            *told.lock().expect("told"),
            1,
            "{behind:?}: told at the start"
        );
    }
}
