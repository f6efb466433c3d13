//! Review 18: the transports' `environment()` on this machine (9923947: on Linux the kernel's
//! coarse clocks). Each reading of `clocks()` must lie between the fine clocks read around it
//! less `clocks_lag()` and the fine clocks read after it: right after construction, on several
//! threads, over many kernel ticks, with the machine busy (more runnable threads than cores, as
//! on a loaded server or a VM whose vCPUs are descheduled). Held at 9923947; the lag is 25
//! ticks since the fix of review 18's findings.

use std::time::{Duration, Instant};

use cogref_core::Environment;
use cogref_core::driver::StdEnvironment;

/// Busy threads for as long as `f` runs: three per core.
fn under_load<R>(f: impl FnOnce() -> R) -> R {
    cogref_contract::clocks::under_load(3, f)
}

/// One reading of `env`, checked against the fine clocks read around it. An error names the
/// breach.
fn check_one(env: &StdEnvironment) -> Result<(), String> {
    cogref_contract::clocks::check_reading(env).map(drop)
}

type Maker = fn() -> StdEnvironment;

fn transports() -> [(&'static str, Maker); 3] {
    [
        ("blocking", cogref_blocking::environment),
        ("reqwest", cogref_reqwest::environment),
        ("isahc", cogref_isahc::environment),
    ]
}

#[test]
fn the_transports_environment_states_twenty_five_kernel_ticks_on_linux() {
    for (name, make) in transports() {
        let lag = make().clocks_lag();
        if cfg!(target_os = "linux") {
            // This machine's tick (CLOCK_MONOTONIC_COARSE's resolution) is 1 to 10 ms.
            assert!(
                lag >= Duration::from_millis(25) && lag <= Duration::from_millis(250),
                "{name}: {lag:?}"
            );
            assert_eq!(lag.as_nanos() % 25, 0, "{name}: {lag:?}");
        } else {
            assert_eq!(lag, Duration::ZERO, "{name}");
        }
    }
}

/// Environments built one after another, each read at once, for a second per transport with
/// the machine busy: the first reading of each is within the promise.
#[test]
fn the_transports_readings_right_after_construction_are_never_ahead_nor_behind_by_more_than_the_lag_under_load()
 {
    let breaches = under_load(|| {
        let mut breaches = Vec::new();
        for (name, make) in transports() {
            let end = Instant::now() + Duration::from_millis(1_000);
            let mut built = 0u64;
            while Instant::now() < end {
                let env = make();
                if let Err(e) = check_one(&env) {
                    breaches.push(format!("{name}, environment {built}: {e}"));
                }
                built += 1;
            }
        }
        breaches
    });
    assert!(
        breaches.is_empty(),
        "{} breaches: {:?}",
        breaches.len(),
        &breaches[..breaches.len().min(10)]
    );
}

/// One environment per transport, clones read on four threads for 1.5 s (hundreds of ticks),
/// in bursts with sleeps of different lengths between them (reads just after a wake-up), the
/// machine busy: every reading within the promise.
#[test]
fn the_transports_readings_stay_within_the_lag_on_every_thread_over_many_ticks_under_load() {
    let envs: Vec<_> = transports()
        .into_iter()
        .map(|(name, make)| (name, make()))
        .collect();
    let breaches = under_load(|| {
        std::thread::scope(|s| {
            let workers: Vec<_> = (0..4u64)
                .map(|t| {
                    let envs = envs.clone();
                    s.spawn(move || {
                        let mut breaches = Vec::new();
                        let end = Instant::now() + Duration::from_millis(1_500);
                        let mut round = 0u64;
                        while Instant::now() < end {
                            for (name, env) in &envs {
                                for _ in 0..200 {
                                    if let Err(e) = check_one(env) {
                                        breaches.push(format!("{name}, thread {t}: {e}"));
                                    }
                                }
                            }
                            round += 1;
                            std::thread::sleep(Duration::from_micros(
                                300 + (round * 733 + t * 311) % 9_000,
                            ));
                        }
                        breaches
                    })
                })
                .collect();
            workers
                .into_iter()
                .flat_map(|w| w.join().expect("worker"))
                .collect::<Vec<_>>()
        })
    });
    assert!(
        breaches.is_empty(),
        "{} breaches: {:?}",
        breaches.len(),
        &breaches[..breaches.len().min(10)]
    );
}
