//! Review 18b: a session over `StdEnvironment::with_coarse_clocks` after 795d595, with the
//! builder preempted during construction (the anchor's gap up to a tick, the reading's lag up to
//! the full 25 ticks), and beyond the assumption at construction as well as at the reading.
//!
//! The clocks are fakes reading statics (function pointers cannot capture): the tests take
//! turns (`serial()`).

mod common;

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use cogref_core::driver::{CoarseClocks, StdEnvironment};
use cogref_session::secrecy::ExposeSecret;
use cogref_session::{BlockingTokenManager, MemoryStore};
use common::*;

const TICK: Duration = Duration::from_millis(4);
const BOOTED: Duration = Duration::from_secs(5_000);
const F0: Duration = Duration::from_secs(100);
/// A token of `ExpiresIn` 3600 lives 3599 s from its send; due 300 s before.
const DUE: Duration = Duration::from_secs(3_299);

static FINE_NS: AtomicU64 = AtomicU64::new(0);
static BEHIND_NS: AtomicU64 = AtomicU64::new(0);
/// Nanoseconds the true time moves on just after the next coarse monotonic reading.
static PREEMPT_NS: AtomicU64 = AtomicU64::new(0);
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

fn coarse_mono() -> Option<Duration> {
    let at = BOOTED + Duration::from_nanos(coarse_ns());
    FINE_NS.fetch_add(PREEMPT_NS.swap(0, Ordering::SeqCst), Ordering::SeqCst);
    Some(at)
}

fn coarse_env() -> StdEnvironment {
    StdEnvironment::new(fine, fine_wall).with_coarse_clocks(CoarseClocks {
        monotonic: coarse_mono,
        wall: || Some(wall_at(coarse_ns())),
        resolution: TICK,
    })
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).expect("short")
}

fn set(at: Duration, behind: Duration) {
    FINE_NS.store(nanos(at), Ordering::SeqCst);
    BEHIND_NS.store(nanos(behind), Ordering::SeqCst);
}

/// A manager whose environment was built at `F0 - 1 s` with the coarse clocks `built_behind`
/// and the builder preempted `preempt` between the coarse reading and the second fine one; its
/// token fetched at `F0`; then a call at `F0 + DUE + after_due` (signed ns) with the coarse
/// clocks `read_behind` and the wall clock stepped `step` s: the token it gets.
fn call_around_due(
    built_behind: Duration,
    preempt: Duration,
    after_due: i64,
    read_behind: Duration,
    step: i64,
) -> String {
    STEP_SECS.store(0, Ordering::SeqCst);
    set(F0 - Duration::from_secs(1), built_behind);
    PREEMPT_NS.store(nanos(preempt), Ordering::SeqCst);
    let env = coarse_env();
    PREEMPT_NS.store(0, Ordering::SeqCst);
    assert_eq!(env_lag(&env), TICK * 25, "the coarse clocks in use");
    let transport = Scripted::new(&clock(), &[ok("a1", 3600, None), ok("a2", 3600, None)]);
    let manager = BlockingTokenManager::builder(
        client_on(transport, env),
        template("r0"),
        MemoryStore::new(),
    )
    .build()
    .expect("manager");
    set(F0, Duration::ZERO);
    for _ in 0..2 {
        assert_eq!(manager.access_token().expect("a1").expose_secret(), "a1");
    }
    let due = F0 + DUE;
    let at = if after_due >= 0 {
        due + Duration::from_nanos(after_due.unsigned_abs())
    } else {
        due - Duration::from_nanos(after_due.unsigned_abs())
    };
    STEP_SECS.store(step, Ordering::SeqCst);
    set(at, read_behind);
    let token = manager
        .access_token()
        .expect("a token")
        .expose_secret()
        .to_owned();
    STEP_SECS.store(0, Ordering::SeqCst);
    token
}

fn env_lag(env: &StdEnvironment) -> Duration {
    cogref_core::Environment::clocks_lag(env)
}

/// Within the assumption, with the builder preempted up to a tick between its reads (the
/// reading then lags by up to the full 25 ticks) and the wall clock stepped back (only the
/// monotonic clock speaks): never a token at or past its due time.
#[test]
fn a_token_is_never_served_past_its_due_time_when_the_builder_was_preempted_up_to_a_tick() {
    let _serial = serial();
    for preempt in [Duration::ZERO, TICK / 2, TICK] {
        for built in [Duration::ZERO, TICK * 12] {
            for read in [Duration::ZERO, TICK * 12] {
                for after in [0i64, 1, 3_999_999] {
                    assert_eq!(
                        call_around_due(built, preempt, after, read, -600),
                        "a2",
                        "a1 served {after} ns past its due time (built {built:?} behind, \
                         preempted {preempt:?}, read {read:?} behind)"
                    );
                }
            }
        }
    }
}

/// Beyond the assumption at construction (the coarse clocks 40 ticks behind when built) and at
/// the reading (a stall of 30 ticks): the token is served past its due time by at most the
/// stall's excess over twelve ticks (72 ms), never by more.
#[test]
fn a_stall_beyond_twelve_ticks_at_construction_and_at_the_reading_serves_at_most_its_excess_late() {
    let _serial = serial();
    let stall = TICK * 30;
    let excess = stall - TICK * 12;
    for built in [Duration::ZERO, TICK * 12, TICK * 40] {
        for preempt in [Duration::ZERO, TICK] {
            let after = i64::try_from(nanos(excess)).expect("short") + 1;
            assert_eq!(
                call_around_due(built, preempt, after, stall, -600),
                "a2",
                "a1 served more than {excess:?} past its due time (built {built:?} behind, \
                 preempted {preempt:?})"
            );
        }
    }
    // The cached path is what serves here: built with no lag and no preemption the reading is
    // 42 ticks behind, 17 after the move on, so 60 ms past the due time a1 is still served
    // (the fine clocks would refresh).
    assert_eq!(
        call_around_due(Duration::ZERO, Duration::ZERO, 60_000_000, stall, -600),
        "a1"
    );
}
