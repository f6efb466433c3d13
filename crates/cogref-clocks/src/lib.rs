//! # cogref-clocks
//!
//! The system's clocks for cogref's drivers, the one platform read that [`cogref_core`] leaves
//! out (it reads no clock: time is passed in). The transports (`cogref-blocking`,
//! `cogref-reqwest`, `cogref-isahc`) each give their client [`environment()`], and re-export
//! it; a driver of its own can do the same.
//!
//! ```
//! use cogref_core::Environment;
//!
//! let env = cogref_clocks::environment();
//! let now = env.clocks();
//! // Never ahead of the fine clocks, at most `clocks_lag()` behind them.
//! assert!(now.mono <= std::time::Instant::now());
//! assert!(env.clocks_lag() <= std::time::Duration::from_millis(500));
//! ```

#![forbid(unsafe_code)]
#![deny(missing_docs)]

use std::time::{Instant, SystemTime};

use cogref_core::driver::StdEnvironment;

/// The clocks and randomness a client is given: the system's fine clocks (`Instant::now`,
/// `SystemTime::now`) for every call and every decision a session records and, on Linux, the
/// kernel's coarse clocks for a session's cached token (both clocks read on every call, at a
/// fraction of the cost, up to 25 kernel ticks behind under the assumption spelt out in
/// [`StdEnvironment::with_coarse_clocks`]). Elsewhere, or on a kernel without the coarse
/// clocks, the fine clocks serve the cached token too.
pub fn environment() -> StdEnvironment {
    let env = StdEnvironment::new(Instant::now, SystemTime::now);
    #[cfg(target_os = "linux")]
    let env = coarse::with_coarse_clocks(env);
    env
}

#[cfg(target_os = "linux")]
mod coarse {
    use std::time::{Duration, SystemTime};

    use cogref_core::driver::{CoarseClocks, StdEnvironment};
    use nix::sys::time::TimeSpec;
    use nix::time::{ClockId, clock_getres, clock_gettime};

    /// `env` reading `CLOCK_MONOTONIC_COARSE` and `CLOCK_REALTIME_COARSE` on the cached path;
    /// `env` as it was if the kernel does not have them.
    pub(crate) fn with_coarse_clocks(env: StdEnvironment) -> StdEnvironment {
        match read(ClockId::CLOCK_MONOTONIC_COARSE) {
            // Asked only of a kernel that has the clock.
            Some(_) => env.with_coarse_clocks(CoarseClocks {
                monotonic: || read(ClockId::CLOCK_MONOTONIC_COARSE),
                wall: || SystemTime::UNIX_EPOCH.checked_add(read(ClockId::CLOCK_REALTIME_COARSE)?),
                resolution: clock_getres(ClockId::CLOCK_MONOTONIC_COARSE)
                    .ok()
                    .and_then(duration)
                    .unwrap_or(Duration::ZERO),
            }),
            None => env,
        }
    }

    /// Through the C library's `clock_gettime`, which `Instant::now` calls too: it uses the
    /// vDSO when it can and the system call when it cannot. (rustix's own vDSO reader crashes a
    /// process run under valgrind: bytecodealliance/rustix#1559.) `None` from a kernel, or a
    /// sandbox, without the clock.
    fn read(clock: ClockId) -> Option<Duration> {
        duration(clock_gettime(clock).ok()?)
    }

    /// A reading since the clock's zero; `None` for one before it (a wall clock set before
    /// 1970) or a malformed one.
    fn duration(at: TimeSpec) -> Option<Duration> {
        let nanos = u32::try_from(at.tv_nsec())
            .ok()
            .filter(|n| *n < 1_000_000_000)?;
        Some(Duration::new(u64::try_from(at.tv_sec()).ok()?, nanos))
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn a_reading_before_the_clocks_zero_or_out_of_range_is_none() {
            assert_eq!(duration(TimeSpec::new(-1, 0)), None);
            assert_eq!(duration(TimeSpec::new(5, 7)), Some(Duration::new(5, 7)));
        }
    }
}
