//! Review 17b: hostile tests of `Environment::clocks_lag` (d6ef493), the bound the session's
//! cached path adds to a held monotonic reading before it serves a cached token.
//!
//! Thread-local clocks, so that the tests run in parallel without sharing.

use std::cell::Cell;
use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use cogref_core::driver::{Environment, ManualEnvironment, StdEnvironment};

fn base() -> Instant {
    static BASE: OnceLock<Instant> = OnceLock::new();
    *BASE.get_or_init(Instant::now)
}

thread_local! {
    /// Monotonic nanoseconds since `base()`.
    static MONO: Cell<u64> = const { Cell::new(1_000_000_000) };
    /// The wall clock.
    static WALL: Cell<SystemTime> = const { Cell::new(UNIX_EPOCH) };
}

fn mono() -> Instant {
    base() + Duration::from_nanos(MONO.with(Cell::get))
}

fn wall() -> SystemTime {
    WALL.with(Cell::get)
}

/// Both clocks move on by `d`.
fn advance(d: Duration) {
    MONO.with(|m| m.set(m.get() + u64::try_from(d.as_nanos()).expect("small")));
    WALL.with(|w| w.set(w.get() + d));
}

const NOW_ISH: Duration = Duration::from_secs(1_800_000_000);

#[test]
fn clocks_lag_is_zero_without_a_hold_and_the_hold_clamped_to_u64_nanoseconds_with_one() {
    assert_eq!(StdEnvironment::new(mono, wall).clocks_lag(), Duration::ZERO);
    let manual = ManualEnvironment::new(Instant::now(), UNIX_EPOCH + NOW_ISH);
    assert_eq!(manual.clocks_lag(), Duration::ZERO);
    for hold in [
        Duration::ZERO,
        Duration::from_nanos(1),
        cogref_core::driver::MONOTONIC_CLOCK_HOLD,
        Duration::from_secs(365 * 86_400),
    ] {
        let env = StdEnvironment::new(mono, wall).with_monotonic_clock_held_for(hold);
        assert_eq!(env.clocks_lag(), hold);
        // Clones share the hold, and say so.
        assert_eq!(env.clone().clocks_lag(), hold);
    }
    let env = StdEnvironment::new(mono, wall).with_monotonic_clock_held_for(Duration::MAX);
    assert_eq!(env.clocks_lag(), Duration::from_nanos(u64::MAX));
    // The engine adds the lag to a reading: with the largest hold, that must not panic.
    WALL.with(|w| w.set(UNIX_EPOCH + NOW_ISH));
    let now = env.clocks();
    let _ = now.mono.checked_add(env.clocks_lag());
}

/// Failed at 83bbddd, as a promise of `clocks_lag` ("the most `clocks`' monotonic reading may
/// lag"): the hold is measured on the wall clock, and a wall clock stepped back between two
/// calls (no call sees the step) that comes back within the hold is served the old reading
/// however much monotonic time went by: an hour here, against a stated lag of 1 ms. No hold
/// on one clock can see that step. Since a86f10e the bound is documented as
/// holding only while the wall clock is not stepped back, the limit is spelt out in
/// `with_monotonic_clock_held_for`, and the transports read both clocks. This test pins the
/// limit as documented (an opt-in hold does show it), and that an environment reading both
/// clocks does not.
#[test]
fn a_held_reading_can_come_back_after_a_wall_step_back_between_calls_and_a_fresh_one_cannot() {
    WALL.with(|w| w.set(UNIX_EPOCH + NOW_ISH));
    let held_env = StdEnvironment::new(mono, wall)
        .with_monotonic_clock_held_for(cogref_core::driver::MONOTONIC_CLOCK_HOLD);
    let fresh_env = StdEnvironment::new(mono, wall);
    let held = held_env.clocks().mono;
    assert_eq!(held, mono(), "the first reading is fresh");
    // An NTP step back of an hour, seen by no call; an hour and 0.5 ms later the wall clock is
    // 0.5 ms past the held reading's.
    let step = Duration::from_secs(3600);
    WALL.with(|w| w.set(w.get() - step));
    advance(step + Duration::from_micros(500));
    let now = held_env.clocks();
    assert_eq!(now.wall, wall(), "the wall clock is exact");
    assert_eq!(now.mono, held, "the documented limit of the opt-in hold");
    let fresh = fresh_env.clocks();
    assert_eq!(fresh.mono, mono(), "both clocks read: no lag");
    assert_eq!(fresh_env.clocks_lag(), Duration::ZERO);
}
