//! Review 18b: hostile tests of `StdEnvironment::with_coarse_clocks` after 795d595 (anchor = a
//! fine reading taken before the coarse `zero`, a second fine reading at most a tick later,
//! three tries, twelve ticks of coarse lag assumed, 25 ticks stated). Two failed at ff85d05,
//! both on the doc of `with_coarse_clocks` (fixed in the commit that brought these tests in).
//!
//! The clocks are fakes over a thread-local script: a true time (ns), how far the coarse clocks
//! stand behind it (at construction, and later at the reading), and preemptions that move the
//! true time on just after a given clock read of the construction. Each test thread has its own
//! script, so the tests run in parallel.

use std::cell::Cell;
use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use cogref_core::driver::{CoarseClocks, Environment, StdEnvironment};

const TICK: Duration = Duration::from_millis(4);
const TICK_NS: u64 = 4_000_000;
/// The coarse monotonic clock's reading when the fine one stands at `base()`.
const BOOTED: Duration = Duration::from_secs(7_000);
const WALL_AT: Duration = Duration::from_secs(1_800_000_000);

fn base() -> Instant {
    static BASE: OnceLock<Instant> = OnceLock::new();
    *BASE.get_or_init(Instant::now)
}

thread_local! {
    /// True time, ns after `base()` (the fine clocks read it exactly).
    static TRUE: Cell<u64> = const { Cell::new(60_000_000_000) };
    /// How far both coarse clocks stand behind the true time (ns).
    static BEHIND: Cell<u64> = const { Cell::new(0) };
    /// Clock reads so far (fine monotonic and coarse monotonic, in order).
    static READS: Cell<usize> = const { Cell::new(0) };
    /// Preemption: after read number `.0` (0-based), the true time moves on by `.1` ns.
    static PREEMPT: Cell<[(usize, u64); 3]> = const { Cell::new([(usize::MAX, 0); 3]) };
    /// Every fine monotonic read moves the true time on by this much (a thread always
    /// preempted).
    static FINE_STEP: Cell<u64> = const { Cell::new(0) };
    static FINE_READS: Cell<usize> = const { Cell::new(0) };
    static COARSE_READS: Cell<usize> = const { Cell::new(0) };
}

fn after_read() {
    let i = READS.with(|r| {
        let i = r.get();
        r.set(i + 1);
        i
    });
    for (at, by) in PREEMPT.with(Cell::get) {
        if at == i {
            TRUE.with(|t| t.set(t.get() + by));
        }
    }
}

fn fine() -> Instant {
    FINE_READS.with(|r| r.set(r.get() + 1));
    let at = base() + Duration::from_nanos(TRUE.with(Cell::get));
    TRUE.with(|t| t.set(t.get() + FINE_STEP.with(Cell::get)));
    after_read();
    at
}

fn peek_fine() -> Instant {
    base() + Duration::from_nanos(TRUE.with(Cell::get))
}

fn wall_at(ns: u64) -> SystemTime {
    UNIX_EPOCH + WALL_AT + Duration::from_nanos(ns)
}

fn fine_wall() -> SystemTime {
    wall_at(TRUE.with(Cell::get))
}

fn coarse_mono() -> Option<Duration> {
    COARSE_READS.with(|r| r.set(r.get() + 1));
    let at = BOOTED + Duration::from_nanos(TRUE.with(Cell::get) - BEHIND.with(Cell::get));
    after_read();
    Some(at)
}

fn coarse_wall() -> Option<SystemTime> {
    Some(wall_at(TRUE.with(Cell::get) - BEHIND.with(Cell::get)))
}

fn coarse(resolution: Duration) -> CoarseClocks {
    CoarseClocks {
        monotonic: coarse_mono,
        wall: coarse_wall,
        resolution,
    }
}

fn reset(behind_ns: u64, preempt: [(usize, u64); 3]) {
    TRUE.with(|t| t.set(60_000_000_000));
    BEHIND.with(|b| b.set(behind_ns));
    READS.with(|r| r.set(0));
    PREEMPT.with(|p| p.set(preempt));
    FINE_STEP.with(|s| s.set(0));
    FINE_READS.with(|r| r.set(0));
    COARSE_READS.with(|r| r.set(0));
}

/// Construction's reads are numbered 0 (fine), 1 (coarse), 2 (fine), then 3, 4, 5 for a second
/// try and so on. Preemptions by these amounts, anywhere among the first try's three reads.
const PREEMPTIONS_NS: [u64; 9] = [
    0,
    1,
    TICK_NS / 2,
    TICK_NS - 1,
    TICK_NS,
    TICK_NS + 1,
    13 * TICK_NS,
    30_000_000,
    1_000_000_000,
];

/// Coarse lags from none to the assumption's twelve ticks, and just under it.
fn lags_within_the_assumption() -> Vec<u64> {
    let mut lags = vec![0, 1, TICK_NS - 1, TICK_NS, 12 * TICK_NS - 1, 12 * TICK_NS];
    lags.extend((2..12).map(|t| t * TICK_NS + 1_234_567));
    lags
}

/// Promise 1, exhaustively over the scripts above: the coarse lag at construction and at the
/// reading both within twelve ticks, any preemption before, between or after the three reads of
/// construction (one, two or all three at once), the reading taken up to an hour later.
#[test]
fn a_coarse_reading_within_the_assumption_is_never_ahead_and_never_behind_by_more_than_the_lag_whatever_the_preemption()
 {
    let lags = lags_within_the_assumption();
    let mut coarse_built = 0;
    for &at_build in &lags {
        for &p0 in &PREEMPTIONS_NS {
            for &p1 in &PREEMPTIONS_NS {
                for &p2 in &[0, TICK_NS, 1_000_000_000] {
                    reset(at_build, [(0, p0), (1, p1), (2, p2)]);
                    let env = StdEnvironment::new(fine, fine_wall).with_coarse_clocks(coarse(TICK));
                    let lag = env.clocks_lag();
                    if lag.is_zero() {
                        continue;
                    }
                    coarse_built += 1;
                    assert_eq!(lag, TICK * 25);
                    for &later in &[0, 1, TICK_NS / 3, 5 * TICK_NS, 3_600_000_000_000] {
                        for &at_read in &lags {
                            TRUE.with(|t| t.set(t.get() + later));
                            BEHIND.with(|b| b.set(at_read));
                            let now = env.clocks();
                            let case = format!(
                                "built {at_build} ns behind, preempted {p0}/{p1}/{p2} ns, read {later} ns later {at_read} ns behind"
                            );
                            let (f, w) = (peek_fine(), fine_wall());
                            assert!(now.mono <= f, "{case}: mono ahead by {:?}", now.mono - f);
                            assert!(
                                f - now.mono <= lag,
                                "{case}: mono behind by {:?}",
                                f - now.mono
                            );
                            assert!(now.wall <= w, "{case}: wall ahead");
                            assert!(
                                w.duration_since(now.wall).expect("behind") <= lag,
                                "{case}: wall behind too far"
                            );
                        }
                    }
                }
            }
        }
    }
    assert!(
        coarse_built > 1000,
        "the coarse clocks were used: {coarse_built}"
    );
}

/// The retries: preempted past a tick on the first and second try, the third try's anchor is
/// used, and the promise still holds.
#[test]
fn a_coarse_reading_anchored_on_a_retry_is_within_the_lag() {
    for &at_build in &lags_within_the_assumption() {
        for &(i, j) in &[(0, 3), (1, 4), (0, 5), (2, 3)] {
            reset(at_build, [(i, 2 * TICK_NS), (j, 50_000_000), (7, TICK_NS)]);
            let env = StdEnvironment::new(fine, fine_wall).with_coarse_clocks(coarse(TICK));
            assert_eq!(env.clocks_lag(), TICK * 25, "third try succeeds");
            for &at_read in &lags_within_the_assumption() {
                BEHIND.with(|b| b.set(at_read));
                let now = env.clocks();
                assert!(
                    now.mono <= peek_fine(),
                    "ahead ({at_build}, {i}, {j}, {at_read})"
                );
                assert!(peek_fine() - now.mono <= env.clocks_lag());
            }
        }
    }
}

/// Promise 2: beyond the assumption (a stall of more than twelve ticks at the reading, and any
/// coarse lag at construction, even past the assumption), a reading moved on by the lag (what
/// the session serves by) is behind the true clocks by at most the stall's excess over twelve
/// ticks.
#[test]
fn a_stall_beyond_twelve_ticks_serves_past_the_due_time_by_at_most_its_excess_over_twelve_ticks() {
    let mut lags = lags_within_the_assumption();
    lags.extend([13 * TICK_NS, 40 * TICK_NS, 2_000_000_000]);
    for &at_build in &lags {
        for &p0 in &PREEMPTIONS_NS {
            for &p1 in &[0, TICK_NS] {
                reset(at_build, [(0, p0), (1, p1), (usize::MAX, 0)]);
                let env = StdEnvironment::new(fine, fine_wall).with_coarse_clocks(coarse(TICK));
                let lag = env.clocks_lag();
                if lag.is_zero() {
                    continue;
                }
                for &stall in &[12 * TICK_NS + 1, 13 * TICK_NS, 25 * TICK_NS, 5_000_000_000] {
                    TRUE.with(|t| t.set(t.get() + 10_000_000_000));
                    BEHIND.with(|b| b.set(stall));
                    let now = env.clocks();
                    let excess = Duration::from_nanos(stall - 12 * TICK_NS);
                    let served_at_mono = now.mono + lag;
                    let served_at_wall = now.wall + lag;
                    let late_mono = peek_fine().saturating_duration_since(served_at_mono);
                    let late_wall = fine_wall()
                        .duration_since(served_at_wall)
                        .unwrap_or_default();
                    assert!(
                        late_mono <= excess && late_wall <= excess,
                        "built {at_build} behind, preempted {p0}/{p1}, stall {stall}: late by {late_mono:?}/{late_wall:?}, excess {excess:?}"
                    );
                }
            }
        }
    }
}

/// Promise 3: a thread preempted past a tick at every try gives up after three tries (six fine
/// reads and three coarse ones) and reads the fine clocks.
#[test]
fn the_anchor_is_read_at_most_three_times_and_then_the_fine_clocks_are_read() {
    reset(0, [(usize::MAX, 0); 3]);
    FINE_STEP.with(|s| s.set(TICK_NS + 1));
    let env = StdEnvironment::new(fine, fine_wall).with_coarse_clocks(coarse(TICK));
    assert_eq!(FINE_READS.with(Cell::get), 6);
    assert_eq!(COARSE_READS.with(Cell::get), 3);
    assert_eq!(env.clocks_lag(), Duration::ZERO);
    FINE_STEP.with(|s| s.set(0));
    assert_eq!(env.clocks().mono, peek_fine());
}

/// Promise 3: no resolution, however hostile, overflows `resolution * 12` or
/// `behind * 2 + resolution`; the lag is 25 ticks for every resolution up to 20 ms.
#[test]
fn no_resolution_overflows_and_the_lag_is_twenty_five_ticks_up_to_twenty_ms() {
    for res in [
        Duration::from_nanos(1),
        Duration::from_micros(1),
        Duration::from_millis(1),
        Duration::from_millis(10),
        Duration::from_millis(20),
        Duration::from_millis(20) + Duration::from_nanos(1),
        Duration::from_secs(u64::MAX / 12),
        Duration::from_secs(u64::MAX / 12 + 1),
        Duration::MAX,
    ] {
        reset(0, [(usize::MAX, 0); 3]);
        let env = StdEnvironment::new(fine, fine_wall).with_coarse_clocks(coarse(res));
        let lag = env.clocks_lag();
        if res <= Duration::from_millis(20) && res >= Duration::from_millis(1) {
            assert_eq!(lag, res * 25, "{res:?}");
        } else if res > Duration::from_millis(20) {
            assert_eq!(lag, Duration::ZERO, "{res:?}");
        }
        let _ = env.clocks();
    }
}

/// The doc: "Left as it was ... if the resolution is zero or coarser than 20 ms ...". Failed
/// at ff85d05: an environment holding its monotonic reading (lag 1 ms) given unusable coarse
/// clocks lost its hold (lag 0). Fixed: it is left as it was.
#[test]
fn with_coarse_clocks_that_cannot_be_used_leaves_the_environment_as_it_was() {
    let held = StdEnvironment::new(Instant::now, SystemTime::now)
        .with_monotonic_clock_held_for(Duration::from_millis(1));
    assert_eq!(held.clocks_lag(), Duration::from_millis(1));
    let unusable = CoarseClocks {
        monotonic: || Some(Duration::from_secs(1)),
        wall: || Some(SystemTime::now()),
        resolution: Duration::ZERO,
    };
    let after = held.with_coarse_clocks(unusable);
    assert_eq!(
        after.clocks_lag(),
        Duration::from_millis(1),
        "'left as it was': the hold kept"
    );
}

/// The `Instant` at the zero of the monotonic clock, on Linux (where `Instant` is a signed
/// `timespec` of `CLOCK_MONOTONIC`), from `Instant`'s `Debug`.
#[cfg(target_os = "linux")]
fn instant_zero() -> Instant {
    let now = Instant::now();
    let text = format!("{now:?}");
    let number = |key: &str| -> u64 {
        let at = text.find(key).unwrap_or_else(|| panic!("{key} in {text}")) + key.len();
        text[at..]
            .chars()
            .skip_while(|c| !c.is_ascii_digit())
            .take_while(char::is_ascii_digit)
            .collect::<String>()
            .parse()
            .expect("a number")
    };
    let since = Duration::new(
        number("tv_sec"),
        u32::try_from(number("tv_nsec")).expect("ns"),
    );
    now.checked_sub(since).expect("the zero")
}

#[cfg(target_os = "linux")]
fn just_after_zero() -> Instant {
    static AT: OnceLock<Instant> = OnceLock::new();
    *AT.get_or_init(|| instant_zero() + Duration::from_millis(1))
}

/// Failed at ff85d05 as a test of the doc, which said a `now` less than twelve ticks after its
/// zero leaves the fine clocks. On Linux `Instant` is a signed `timespec`: `checked_sub` goes
/// below the clock's zero, and a `now` 1 ms after it gets the coarse clocks all the same. The
/// doc no longer says so; what must hold there is the promise itself.
#[cfg(target_os = "linux")]
#[test]
fn a_now_just_after_the_monotonic_clocks_zero_still_reads_within_the_lag() {
    assert!(
        just_after_zero()
            .checked_sub(Duration::from_secs(1))
            .is_some(),
        "on Linux an Instant goes below its zero"
    );
    let env =
        StdEnvironment::new(just_after_zero, SystemTime::now).with_coarse_clocks(CoarseClocks {
            monotonic: || Some(Duration::from_micros(500)),
            wall: || Some(SystemTime::now()),
            resolution: TICK,
        });
    assert_eq!(env.clocks_lag(), TICK * 25);
    let now = env.clocks();
    assert!(now.mono <= just_after_zero(), "ahead");
    assert!(
        just_after_zero() - now.mono <= env.clocks_lag(),
        "lags too far"
    );
}
