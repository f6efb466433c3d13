//! The promise of a transport's environment: [`Environment::clocks`] reads both clocks on every
//! call, each reading never ahead of its clock and behind it by at most
//! [`Environment::clocks_lag`]; on Linux through the kernel's coarse clocks (a lag of 25
//! ticks, at most 500 ms), elsewhere the fine clocks themselves (no lag).

use std::time::{Duration, Instant, SystemTime};

use cogref_core::Environment;

/// Checks `env`'s quick readings against the system's fine clocks read around each of them,
/// over a quarter of a second of calls (many kernel ticks) with short sleeps between bursts.
pub fn assert_quick_readings_within_the_stated_lag(env: &dyn Environment) {
    let lag = env.clocks_lag();
    if cfg!(target_os = "linux") {
        assert!(
            lag > Duration::ZERO && lag <= Duration::from_millis(500),
            "on Linux the coarse clocks are read, with a lag of 25 ticks: {lag:?}"
        );
    } else {
        assert_eq!(lag, Duration::ZERO, "the fine clocks are read");
    }
    let end = Instant::now() + Duration::from_millis(250);
    let mut calls = 0u32;
    let mut moved = 0u32;
    let mut last = env.clocks();
    while Instant::now() < end {
        for _ in 0..2_000 {
            let (mono_before, wall_before) = (Instant::now(), SystemTime::now());
            let now = env.clocks();
            let (mono_after, wall_after) = (Instant::now(), SystemTime::now());
            assert!(
                now.mono <= mono_after,
                "monotonic reading ahead of the clock"
            );
            assert!(
                now.mono + lag >= mono_before,
                "monotonic reading {:?} behind, more than the lag {lag:?}",
                mono_before - now.mono
            );
            assert!(now.wall <= wall_after, "wall reading ahead of the clock");
            assert!(
                now.wall + lag >= wall_before,
                "wall reading behind by more than the lag {lag:?}"
            );
            assert!(now.mono >= last.mono, "monotonic reading went back");
            moved += u32::from(now.mono > last.mono);
            last = now;
            calls += 1;
        }
        std::thread::sleep(Duration::from_millis(3));
    }
    assert!(
        moved >= 10,
        "the readings moved {moved} times in {calls} calls over 250 ms"
    );
}
