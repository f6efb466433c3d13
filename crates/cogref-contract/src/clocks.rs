//! The promise of a transport's environment: [`Environment::clocks`] reads both clocks on every
//! call, each reading never ahead of its clock and behind it by at most
//! [`Environment::clocks_lag`]; on Linux through the kernel's coarse clocks (a lag of 25
//! ticks, at most 500 ms), elsewhere the fine clocks themselves (no lag).

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

use cogref_core::{Environment, Now};

/// One reading of `env`'s quick clocks, checked against the system's fine clocks read around
/// it: never ahead of either, behind neither by more than `clocks_lag()`. An error names the
/// breach.
pub fn check_reading(env: &dyn Environment) -> Result<Now, String> {
    let lag = env.clocks_lag();
    let (mono_before, wall_before) = (Instant::now(), SystemTime::now());
    let now = env.clocks();
    let (mono_after, wall_after) = (Instant::now(), SystemTime::now());
    if now.mono > mono_after {
        return Err(format!(
            "monotonic reading {:?} ahead of the fine clock",
            now.mono - mono_after
        ));
    }
    if now.mono + lag < mono_before {
        return Err(format!(
            "monotonic reading {:?} behind, more than the lag {lag:?}",
            mono_before - now.mono
        ));
    }
    if let Ok(ahead) = now.wall.duration_since(wall_after)
        && !ahead.is_zero()
    {
        return Err(format!("wall reading {ahead:?} ahead of the fine clock"));
    }
    if now.wall + lag < wall_before {
        return Err(format!(
            "wall reading {:?} behind, more than the lag {lag:?}",
            wall_before.duration_since(now.wall).unwrap_or_default()
        ));
    }
    Ok(now)
}

/// Runs `f` with `per_core` busy threads per core beside it: more runnable threads than the
/// machine has cores, as on a loaded server or a VM whose vCPUs are descheduled.
pub fn under_load<R>(per_core: usize, f: impl FnOnce() -> R) -> R {
    let stop = AtomicBool::new(false);
    let cores = std::thread::available_parallelism().map_or(2, usize::from);
    std::thread::scope(|s| {
        for _ in 0..cores * per_core {
            s.spawn(|| {
                let mut x = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(1));
                }
            });
        }
        let result = f();
        stop.store(true, Ordering::Relaxed);
        result
    })
}

/// Checks `env`'s quick readings ([`check_reading`]) over a quarter of a second of calls (many
/// kernel ticks) with short sleeps between bursts; they must never go back, and must move.
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
            let now = check_reading(env).unwrap_or_else(|breach| panic!("{breach}"));
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
