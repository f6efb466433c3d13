//! Review 17: hostile tests of the held monotonic clock after 6f45bb8 (wall readings compared
//! as `SystemTime`s), at the edges its doc comment names.
//!
//! The single-threaded tests drive thread-local clocks (each test thread has its own, so they
//! run in parallel without sharing); the concurrent one uses statics of its own.

use std::cell::Cell;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use cogref_core::driver::{Environment, StdEnvironment};

fn base() -> Instant {
    static BASE: OnceLock<Instant> = OnceLock::new();
    *BASE.get_or_init(Instant::now)
}

thread_local! {
    /// Monotonic nanoseconds since `base()`.
    static MONO: Cell<u64> = const { Cell::new(1_000_000_000) };
    /// The wall clock.
    static WALL: Cell<SystemTime> = const { Cell::new(UNIX_EPOCH) };
    /// How many times the monotonic clock was read.
    static MONO_READS: Cell<u64> = const { Cell::new(0) };
}

fn mono() -> Instant {
    MONO_READS.with(|r| r.set(r.get() + 1));
    base() + Duration::from_nanos(MONO.with(Cell::get))
}

fn wall() -> SystemTime {
    WALL.with(Cell::get)
}

fn true_mono() -> Instant {
    base() + Duration::from_nanos(MONO.with(Cell::get))
}

fn reads() -> u64 {
    MONO_READS.with(Cell::get)
}

fn set_wall(t: SystemTime) {
    WALL.with(|w| w.set(t));
}

/// Both clocks move on by `d` (a machine that does not sleep, with a wall clock that ticks
/// in nanoseconds).
fn advance(d: Duration) {
    MONO.with(|m| m.set(m.get() + u64::try_from(d.as_nanos()).expect("small")));
    WALL.with(|w| w.set(w.get() + d));
}

fn start(wall_at: SystemTime, max_age: Duration) -> StdEnvironment {
    set_wall(wall_at);
    StdEnvironment::new(mono, wall).with_monotonic_clock_held_for(max_age)
}

const NOW_ISH: Duration = Duration::from_secs(1_800_000_000);
const HOLD: Duration = Duration::from_millis(1);

/// Whether this call of `clocks()` read the monotonic clock, and its reading is the truth.
fn reads_afresh(env: &StdEnvironment) -> bool {
    let before = reads();
    let now = env.clocks();
    assert_eq!(now.wall, wall(), "the wall clock is always exact");
    let fresh = reads() > before;
    if fresh {
        assert_eq!(now.mono, true_mono());
    }
    fresh
}

#[test]
fn a_wall_clock_exactly_max_age_past_the_reading_reads_the_monotonic_clock_again() {
    let env = start(UNIX_EPOCH + NOW_ISH, HOLD);
    assert!(reads_afresh(&env));
    advance(HOLD);
    assert!(reads_afresh(&env), "held at exactly max_age");
}

#[test]
fn a_wall_clock_one_nanosecond_short_of_max_age_holds_a_reading_lagging_less_than_max_age() {
    let env = start(UNIX_EPOCH + NOW_ISH, HOLD);
    let first = env.clocks().mono;
    advance(HOLD - Duration::from_nanos(1));
    let before = reads();
    let now = env.clocks();
    assert_eq!(reads(), before, "read at most once per max_age");
    assert_eq!(now.mono, first);
    assert!(true_mono() - now.mono < HOLD);
    assert_eq!(now.wall, wall());
}

#[test]
fn a_wall_clock_that_has_not_moved_reads_the_monotonic_clock_again() {
    let env = start(UNIX_EPOCH + NOW_ISH, HOLD);
    assert!(reads_afresh(&env));
    // The monotonic clock moved, the wall clock did not (stopped, or coarse).
    MONO.with(|m| m.set(m.get() + 500_000));
    assert!(reads_afresh(&env), "a wall clock 0 ns on held the reading");
}

#[test]
fn a_wall_clock_one_nanosecond_back_reads_the_monotonic_clock_again() {
    let env = start(UNIX_EPOCH + NOW_ISH, HOLD);
    assert!(reads_afresh(&env));
    MONO.with(|m| m.set(m.get() + 500_000));
    set_wall(wall() - Duration::from_nanos(1));
    assert!(
        reads_afresh(&env),
        "a wall clock 1 ns back held the reading"
    );
}

#[test]
fn a_zero_max_age_reads_the_monotonic_clock_every_time() {
    let env = start(UNIX_EPOCH + NOW_ISH, Duration::ZERO);
    for step in [0, 1, 2, 1_000, 1_000_000] {
        advance(Duration::from_nanos(step));
        assert!(reads_afresh(&env), "held after {step} ns with max_age 0");
    }
}

#[test]
fn a_wall_clock_before_1970_reads_the_monotonic_clock_every_time() {
    let env = start(UNIX_EPOCH - Duration::from_secs(10), HOLD);
    for _ in 0..3 {
        assert!(reads_afresh(&env));
        advance(Duration::from_nanos(100));
    }
    // Before 1970 after a reading was held at 1970 + 1 s.
    set_wall(UNIX_EPOCH + Duration::from_secs(1));
    assert!(reads_afresh(&env));
    set_wall(UNIX_EPOCH - Duration::from_nanos(1));
    assert!(reads_afresh(&env), "a pre-1970 wall clock held the reading");
}

#[test]
fn duration_max_as_max_age_does_not_panic_and_holds_a_reading_that_never_runs_ahead() {
    let env = start(UNIX_EPOCH + NOW_ISH, Duration::MAX);
    let first = env.clocks().mono;
    // A day later the reading is still the held one (the hold is 584 years): never ahead of
    // the truth, never back.
    advance(Duration::from_secs(86_400));
    let now = env.clocks();
    assert!(now.mono >= first && now.mono <= true_mono());
    assert_eq!(now.wall, wall());
    // A wall clock at the far end of what SystemTime holds, and back, do not panic.
    set_wall(UNIX_EPOCH + Duration::from_secs(i64::MAX as u64 / 2));
    let _ = env.clocks();
    set_wall(UNIX_EPOCH - Duration::from_secs(i64::MAX as u64 / 2));
    let _ = env.clocks();
}

/// Failed at 3099369 (introduced by 6f45bb8), fixed in d6ef493: the comment in `clocks` says "a wall clock before
/// 1970 or past 2554 holds nothing: both clocks are read each time". Before 6f45bb8 a wall
/// reading past 2554 (`u64::MAX` ns since 1970) did not fit in nanoseconds and read both
/// clocks; now the comparison is between `SystemTime`s and a reading held just before 2554 is
/// served to a wall clock past it (the lag bound still holds: it is the stated rule that
/// breaks).
#[test]
fn a_wall_clock_past_2554_reads_the_monotonic_clock_every_time() {
    let end = UNIX_EPOCH + Duration::from_nanos(u64::MAX);
    let env = start(end - Duration::from_millis(10), Duration::from_secs(1));
    assert!(reads_afresh(&env));
    advance(Duration::from_millis(20));
    assert!(wall() > end);
    assert!(
        reads_afresh(&env),
        "a wall clock past 2554 held the reading"
    );
}

/// Failed at 3099369 (also before 6f45bb8), fixed in d6ef493: a wall reading of exactly `u64::MAX` ns since 1970
/// is stored as `u64::MAX` ("plus one" saturates), i.e. as held 1 ns earlier than it was, so
/// the same wall reading again looks 1 ns later and holds the reading, though the doc says a
/// wall clock that has not moved reads the monotonic clock again.
#[test]
fn a_wall_clock_stopped_at_the_last_nanosecond_of_2554_reads_the_monotonic_clock_again() {
    let env = start(UNIX_EPOCH + Duration::from_nanos(u64::MAX), HOLD);
    assert!(reads_afresh(&env));
    MONO.with(|m| m.set(m.get() + 500_000));
    assert!(reads_afresh(&env), "a stopped wall clock held the reading");
}

/// Failed at 3099369 (also before 6f45bb8), fixed in d6ef493: "never goes back". A wall clock before 1970 reads
/// the monotonic clock but does not raise the held reading, so when the wall clock comes back
/// inside the hold, the older held reading is served: behind the one just given.
#[test]
fn the_monotonic_reading_never_goes_back_when_the_wall_clock_visits_1969() {
    let env = start(UNIX_EPOCH + NOW_ISH, HOLD);
    let held = env.clocks().mono;
    let at = wall();
    MONO.with(|m| m.set(m.get() + 100_000));
    set_wall(UNIX_EPOCH - Duration::from_secs(1));
    let during = env.clocks().mono;
    assert!(during > held);
    MONO.with(|m| m.set(m.get() + 100_000));
    set_wall(at + Duration::from_micros(200));
    let after = env.clocks().mono;
    assert!(
        after >= during,
        "went back by {:?}",
        during.saturating_duration_since(after)
    );
}

// Concurrency: one true time, both clocks read from it, moved by every thread.
static SHARED_T: AtomicU64 = AtomicU64::new(0);
const SHARED_WALL0: u64 = 1_800_000_000_000_000_000;

fn shared_mono() -> Instant {
    base() + Duration::from_nanos(SHARED_T.load(Ordering::SeqCst))
}

fn shared_wall() -> SystemTime {
    UNIX_EPOCH + Duration::from_nanos(SHARED_WALL0 + SHARED_T.load(Ordering::SeqCst))
}

#[test]
fn four_threads_on_fake_clocks_never_see_the_reading_go_back_run_ahead_or_lag_max_age() {
    let hold = Duration::from_micros(50);
    let env = StdEnvironment::new(shared_mono, shared_wall).with_monotonic_clock_held_for(hold);
    std::thread::scope(|scope| {
        for thread in 0..4u64 {
            let env = env.clone();
            scope.spawn(move || {
                let mut last = env.clocks().mono;
                for i in 0..200_000u64 {
                    // Steps of 0 to 12 µs, some exactly the hold: crossing the edges often.
                    let step = match (i + thread) % 7 {
                        0 => 0,
                        1 => 50_000,
                        2 => 49_999,
                        k => k * 1_999,
                    };
                    SHARED_T.fetch_add(step, Ordering::SeqCst);
                    let before = shared_mono();
                    let now = env.clocks();
                    let after = shared_mono();
                    assert!(now.mono >= last, "went back by {:?}", last - now.mono);
                    assert!(now.mono <= after, "ran ahead by {:?}", now.mono - after);
                    assert!(
                        now.mono + hold >= before,
                        "lagged by {:?} (hold {hold:?})",
                        before - now.mono
                    );
                    last = now.mono;
                }
            });
        }
    });
}
