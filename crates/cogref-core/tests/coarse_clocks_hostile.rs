//! Review 19b: `StdEnvironment::with_coarse_clocks` fed hostile `CoarseClocks` (and a hostile
//! fine clock): no panic ever; and, for coarse clocks within the stated assumption (lagging
//! their fine clock by 0 to 12 ticks, a thread preempted anywhere), readings never ahead of the
//! fine clock and never further behind than `clocks_lag()`.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use cogref_core::Environment;
use cogref_core::driver::{CoarseClocks, StdEnvironment};
use proptest::prelude::*;

static SERIAL: Mutex<()> = Mutex::new(());
/// Hostile sequences, indexed by a counter each fn bumps.
static STEP: AtomicU64 = AtomicU64::new(0);

fn hostile_mono() -> Option<Duration> {
    let n = STEP.fetch_add(1, Ordering::SeqCst);
    match n % 7 {
        0 => Some(Duration::ZERO),
        1 => Some(Duration::MAX),
        2 => None,
        3 => Some(Duration::from_nanos(1)),
        4 => Some(Duration::new(u64::MAX, 999_999_999)),
        5 => Some(Duration::from_secs(n)),
        _ => Some(Duration::from_secs(u64::MAX / 2)),
    }
}

fn hostile_wall() -> Option<SystemTime> {
    let n = STEP.fetch_add(1, Ordering::SeqCst);
    match n % 5 {
        0 => UNIX_EPOCH.checked_sub(Duration::from_secs(i64::MAX as u64 / 2)),
        1 => UNIX_EPOCH.checked_add(Duration::from_secs(i64::MAX as u64 / 2)),
        2 => None,
        3 => Some(UNIX_EPOCH - Duration::from_nanos(1)),
        _ => Some(UNIX_EPOCH),
    }
}

fn hostile_now() -> Instant {
    let n = STEP.fetch_add(1, Ordering::SeqCst);
    let now = Instant::now();
    match n % 4 {
        // As far back as an Instant goes from here.
        0 => now
            .checked_sub(Duration::from_secs(i64::MAX as u64))
            .or_else(|| now.checked_sub(Duration::from_secs(i64::MAX as u64 / 2)))
            .unwrap_or(now),
        1 => now + Duration::from_secs(1 << 40),
        2 => now.checked_sub(Duration::from_millis(1)).unwrap_or(now),
        _ => now,
    }
}

fn hostile_wall_fine() -> SystemTime {
    UNIX_EPOCH - Duration::from_secs(86_400 * 365 * 100)
}

/// Promise: "no panic anywhere" (a kernel or sandbox without the clock, or hostile readings).
#[test]
fn hostile_coarse_clocks_and_a_hostile_fine_clock_never_panic() {
    let _s = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    for resolution in [
        Duration::from_nanos(1),
        Duration::from_millis(1),
        Duration::from_millis(4),
        Duration::from_millis(20),
        Duration::from_nanos(20_000_001),
        Duration::MAX,
    ] {
        for start in 0..40 {
            STEP.store(start, Ordering::SeqCst);
            let clocks = CoarseClocks {
                monotonic: hostile_mono,
                wall: hostile_wall,
                resolution,
            };
            for env in [
                StdEnvironment::new(hostile_now, hostile_wall_fine).with_coarse_clocks(clocks),
                StdEnvironment::new(Instant::now, SystemTime::now).with_coarse_clocks(clocks),
                StdEnvironment::new(hostile_now, SystemTime::now)
                    .with_monotonic_clock_held_for(Duration::MAX)
                    .with_coarse_clocks(clocks),
            ] {
                for _ in 0..50 {
                    let _ = env.clocks();
                    let _ = env.clocks_lag();
                }
            }
        }
    }
}

// A simulated world: the fine clock (ns after BASE) and the coarse one lagging it.
static FINE_NS: AtomicU64 = AtomicU64::new(0);
static COARSE_NS: AtomicU64 = AtomicU64::new(0);
/// How far the fine clock moves on inside the next coarse read (preemption), and the coarse lag
/// to show at that read.
static PREEMPT_NS: AtomicU64 = AtomicU64::new(0);
static NEXT_LAG_NS: AtomicU64 = AtomicU64::new(0);
const TICK_NS: u64 = 4_000_000;
const BOOT_NS: u64 = 1_000_000_000_000;

fn base() -> Instant {
    static BASE: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    *BASE.get_or_init(Instant::now)
}

fn sim_fine() -> Instant {
    base() + Duration::from_nanos(FINE_NS.load(Ordering::SeqCst))
}

fn sim_coarse() -> Option<Duration> {
    let fine = FINE_NS.fetch_add(PREEMPT_NS.swap(0, Ordering::SeqCst), Ordering::SeqCst);
    // The coarse clock at this moment: the fine one less a lag within the assumption, and never
    // going back.
    let at = BOOT_NS + fine - NEXT_LAG_NS.load(Ordering::SeqCst).min(BOOT_NS + fine);
    let at = COARSE_NS.fetch_max(at, Ordering::SeqCst).max(at);
    Some(Duration::from_nanos(at))
}

fn sim_wall() -> Option<SystemTime> {
    Some(UNIX_EPOCH + Duration::from_secs(1_800_000_000))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3_000))]

    /// Promise (`with_coarse_clocks`): never ahead of `now`, at most `clocks_lag()` behind it,
    /// while the coarse clock lags by at most twelve ticks, whatever the preemption at build.
    #[test]
    fn within_the_assumption_a_coarse_reading_is_never_ahead_nor_too_far_behind(
        built_lag in 0..=12 * TICK_NS,
        preempt in 0..=2 * TICK_NS,
        steps in proptest::collection::vec((0u64..50 * TICK_NS, 0..=12 * TICK_NS), 1..20),
    ) {
        let _s = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
        FINE_NS.store(10_000_000_000, Ordering::SeqCst);
        COARSE_NS.store(0, Ordering::SeqCst);
        NEXT_LAG_NS.store(built_lag, Ordering::SeqCst);
        PREEMPT_NS.store(preempt, Ordering::SeqCst);
        let env = StdEnvironment::new(sim_fine, SystemTime::now).with_coarse_clocks(CoarseClocks {
            monotonic: sim_coarse,
            wall: sim_wall,
            resolution: Duration::from_nanos(TICK_NS),
        });
        PREEMPT_NS.store(0, Ordering::SeqCst);
        let lag = env.clocks_lag();
        for (advance, coarse_lag) in steps {
            FINE_NS.fetch_add(advance, Ordering::SeqCst);
            NEXT_LAG_NS.store(coarse_lag, Ordering::SeqCst);
            let now = env.clocks();
            let fine = sim_fine();
            prop_assert!(now.mono <= fine, "ahead by {:?}", now.mono - fine);
            prop_assert!(fine.duration_since(now.mono) <= lag, "behind by {:?} > {lag:?}", fine.duration_since(now.mono));
        }
    }
}
