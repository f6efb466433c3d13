//! Review 18b: the kernel's coarse clocks on this machine, read as the transports read them
//! (`clock_gettime`, `CLOCK_MONOTONIC_COARSE` against `CLOCK_MONOTONIC`), against what the docs of
//! `CoarseClocks` and `StdEnvironment::with_coarse_clocks` say of them; and the transports'
//! environment read from many threads at once. Linux only.
#![cfg(target_os = "linux")]

use std::time::Duration;

use nix::time::{ClockId, clock_getres, clock_gettime};

fn ns(clock: ClockId) -> u128 {
    Duration::from(clock_gettime(clock).expect("a reading")).as_nanos()
}

fn tick() -> u128 {
    Duration::from(clock_getres(ClockId::CLOCK_MONOTONIC_COARSE).expect("a resolution")).as_nanos()
}

/// How far behind `CLOCK_MONOTONIC` each of `n` coarse readings is (ns), read the coarse clock
/// first; a short sleep every thousand readings, as a server between requests.
fn lags(n: usize) -> Vec<u128> {
    (0..n)
        .map(|i| {
            if i % 1_000 == 999 {
                std::thread::sleep(Duration::from_micros(300));
            }
            let coarse = ns(ClockId::CLOCK_MONOTONIC_COARSE);
            let fine = ns(ClockId::CLOCK_MONOTONIC);
            fine.saturating_sub(coarse)
        })
        .collect()
}

/// Busy threads for as long as `f` runs: two per core.
fn under_load<R>(f: impl FnOnce() -> R) -> R {
    cogref_contract::clocks::under_load(2, f)
}

// A test of `CoarseClocks`' doc ("lags by a tick ... normally") failed at ff85d05: here about a
// fifth of readings lag more than a tick. The doc now gives those figures; the test is gone
// (it measured the doc's wording on one machine, not a promise).

/// The assumption of `with_coarse_clocks`: at most twelve ticks of coarse lag, on this machine
/// both idle and with more busy threads than cores.
#[test]
fn the_kernels_coarse_clock_lags_at_most_twelve_ticks_here_idle_and_under_load() {
    let tick = tick();
    for (case, lags) in [
        ("idle", lags(200_000)),
        ("loaded", under_load(|| lags(200_000))),
    ] {
        let worst = lags.iter().max().copied().unwrap_or(0);
        assert!(
            worst <= 12 * tick,
            "{case}: {:.2} ticks",
            worst as f64 / tick as f64
        );
    }
}

/// Promise 1 across threads, on one environment shared by many threads each built afresh under
/// load (so that builders are preempted at any point of construction): every reading lies
/// between the fine clocks read around it less the lag and the fine clocks read after it.
#[test]
fn environments_built_under_load_read_within_the_lag_on_every_thread() {
    under_load(|| {
        std::thread::scope(|s| {
            for _ in 0..8 {
                s.spawn(|| {
                    for round in 0..300 {
                        let env = match round % 3 {
                            0 => cogref_blocking::environment(),
                            1 => cogref_reqwest::environment(),
                            _ => cogref_isahc::environment(),
                        };
                        for _ in 0..50 {
                            if let Err(breach) = cogref_contract::clocks::check_reading(&env) {
                                panic!("{breach}");
                            }
                        }
                    }
                });
            }
        });
    });
}
