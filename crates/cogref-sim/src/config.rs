//! A world drawn from a seed: the stores, the processes, Cognito's settings, the managers'
//! settings, the workload and the fault schedule.

use std::time::Duration;

use cogref_core::{CallConfig, RetryConfig, RetryPolicy, SessionConfig, Timeouts};

use crate::rng::Rng;

/// µs in a second.
pub const SEC: u64 = 1_000_000;

/// The shared store of a world.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreKind {
    /// The real `MemoryStore`, shared by the processes of one OS process.
    Memory,
    /// The model of `FileStore`.
    File,
    /// The model of the Redis store, with this lease time to live (µs).
    Redis {
        /// The lease's time to live.
        lease_ttl_us: u64,
    },
}

/// A change the simulator makes to the library's surroundings to check that the invariants
/// notice (never to the library itself).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mutant {
    /// The store's `try_lock` always succeeds.
    NoLock,
    /// The store's `save` ignores the expected version.
    NoVersion,
    /// A refresh task spawned through the transport belongs to the task that spawned it:
    /// cancelling the caller drops the refresh.
    Attached,
    /// The transport logs each request's body at TRACE, as raw bytes (`Debug` of a byte
    /// slice: a list of numbers), as an HTTP client's wire log would.
    Leaky,
    /// Cognito's third grant tells the library half its true lifetime (`ExpiresIn` and the
    /// JWT's `exp`), so the library refreshes that set about half a lifetime early, once per
    /// run; the checker keeps the true lifetime. Invariant 2's own test (review 17).
    ShortExpiresIn,
    /// The coarse clocks stall two seconds in all, some 1.9 s past the lag their environment
    /// states (100 ms): the cached path serves tokens that much late, past the second by which
    /// the library counts a token's expiry short. Invariant 3's test.
    CoarseStall,
}

impl Mutant {
    /// All of them.
    pub const ALL: [Mutant; 6] = [
        Mutant::NoLock,
        Mutant::NoVersion,
        Mutant::Attached,
        Mutant::Leaky,
        Mutant::ShortExpiresIn,
        Mutant::CoarseStall,
    ];

    /// Its command-line name.
    pub fn name(self) -> &'static str {
        match self {
            Mutant::NoLock => "no-lock",
            Mutant::NoVersion => "no-version",
            Mutant::Attached => "attached",
            Mutant::Leaky => "leaky-transport",
            Mutant::ShortExpiresIn => "short-expires-in",
            Mutant::CoarseStall => "coarse-stall",
        }
    }

    /// The mutant named `name`.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.name() == name)
    }
}

/// One simulated process.
#[derive(Debug, Clone)]
pub struct ProcessConfig {
    /// `BlockingTokenManager` on one caller thread (else `TokenManager` on the executor).
    pub blocking: bool,
    /// The host it runs on (index into [`WorldConfig::host_skews`]): processes of one host
    /// share its wall clock.
    pub host: usize,
    /// Mean time between its callers' calls (µs).
    pub call_mean_us: u64,
    /// Whether it runs `run_background` (async only).
    pub background: bool,
    /// The share of calls that are `refresh_now()`.
    pub force_share: f64,
}

/// How often each dynamic fault strikes, per opportunity.
#[derive(Debug, Clone, Default)]
pub struct Rates {
    /// A request lost before Cognito.
    pub request_lost: f64,
    /// A connection refused (the request provably not sent).
    pub connect_fail: f64,
    /// A response lost after Cognito acted.
    pub response_lost: f64,
    /// A response slower than the attempt timeout.
    pub slow: f64,
    /// A crash of the process at one of its operations (before it, after its effect, or in
    /// the middle of a save).
    pub crash: f64,
    /// A store operation failing (no effect; for Redis, sometimes applied with the reply lost).
    pub store_error: f64,
    /// A caller's call cancelled (dropped) at some point.
    pub cancel: f64,
    /// Redis: a lease just taken runs out while its holder refreshes (the holder paused past
    /// its time to live).
    pub lease_lost: f64,
}

/// A fault planned at a time.
#[derive(Debug, Clone)]
pub enum Planned {
    /// The process crashes, and restarts after `down_us`.
    Crash {
        /// Which.
        process: usize,
        /// How long it stays down.
        down_us: u64,
    },
    /// A host's wall clock steps (every process on it sees the step).
    Step {
        /// Which host.
        host: usize,
        /// By how much (µs; negative: back).
        delta_us: i64,
    },
    /// The store is unreachable for a while.
    Outage {
        /// How long.
        for_us: u64,
    },
    /// The store loses its data (file deleted; Redis restarted without persistence; the
    /// memory store replaced).
    LoseData,
    /// The Redis lease disappears early (its holder was paused past its time to live).
    DropLease,
    /// The lineage is revoked.
    Revoke,
    /// Cognito throttles (`true`) or fails with 5xx (`false`) for a while.
    Busy {
        /// How long.
        for_us: u64,
        /// Throttling or server errors.
        throttle: bool,
    },
    /// A background refresher is cancelled (dropped), and started again later.
    CancelBackground {
        /// Which process.
        process: usize,
    },
}

/// Coarse clocks for the session's cached path, as the transports read on Linux
/// (`StdEnvironment::with_coarse_clocks`): each reading behind the true clock by the time since
/// the host's last tick plus a stall of whole ticks, the monotonic reading by a process's
/// anchor too, all within the assumption (twelve ticks of coarse lag; the anchor up to
/// thirteen, twelve and the gap the transports allow); the lag stated is 25 ticks. Each host
/// draws its own tick (1, 4 or 10 ms) and phase; `tick_us` is the mutant's, and the tick the
/// stall is counted in for the summary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CoarseSim {
    /// The kernel's tick (µs) under the `coarse-stall` mutant; otherwise each host draws its
    /// own (world.rs), and this draw only keeps the stream's later draws where they were.
    pub tick_us: u64,
    /// Whole ticks the timekeeping stalls by, on top of the tick's own lag (0 to 11; the
    /// `coarse-stall` mutant: 500).
    pub stall_ticks: u64,
}

impl CoarseSim {
    /// The lag the environment states: 25 ticks.
    pub fn lag_us(self) -> u64 {
        25 * self.tick_us
    }
}

/// Everything a seed fixes before the run starts.
#[derive(Debug, Clone)]
pub struct WorldConfig {
    /// The seed.
    pub seed: u64,
    /// The store.
    pub store: StoreKind,
    /// The processes.
    pub processes: Vec<ProcessConfig>,
    /// Each host's wall-clock offset from the true clock at start (µs). A memory store's
    /// managers are one OS process on one host; a file store's processes share one host; a
    /// Redis store's processes each run on a host of their own.
    pub host_skews: Vec<i64>,
    /// Whether every process is a manager inside one OS process (memory store): they share
    /// the monotonic clock too, and no crash or data loss can hit one without the others.
    pub one_os_process: bool,
    /// Rotation.
    pub rotation: bool,
    /// Grace period (µs).
    pub grace_us: u64,
    /// Access-token lifetime (s).
    pub access_lifetime_s: u64,
    /// When the lineage's refresh tokens expire (true µs).
    pub lineage_end_us: u64,
    /// The app client's secret, if any.
    pub client_secret: Option<String>,
    /// The managers' session settings.
    pub session: SessionConfig,
    /// The clients' call settings.
    pub call: CallConfig,
    /// The managers' lock timeout.
    pub lock_timeout: Duration,
    /// Whether the managers refresh without the store's lock when the store fails.
    pub unlocked_opt_in: bool,
    /// Whether the store starts with the sign-in's set (else empty: processes start from the
    /// template).
    pub seeded_store: bool,
    /// Calls stop arriving at this true time.
    pub horizon_us: u64,
    /// Dynamic fault rates.
    pub rates: Rates,
    /// Planned faults, in time order.
    pub planned: Vec<(u64, Planned)>,
    /// Coarse clocks on the cached path (else the true clocks), drawn from a stream of their
    /// own so that every other draw of a seed stays as it was.
    pub coarse: Option<CoarseSim>,
}

impl WorldConfig {
    /// The world of `seed`.
    pub fn from_seed(seed: u64) -> Self {
        let mut r = Rng::stream(seed, 1);
        let n = match r.below(100) {
            0..30 => 2,
            30..55 => 3,
            55..75 => 4,
            75..90 => r.range(5, 8) as usize,
            _ => r.range(9, 16) as usize,
        };
        let store = match r.below(100) {
            0..25 => StoreKind::Memory,
            25..60 => StoreKind::File,
            _ => StoreKind::Redis {
                lease_ttl_us: r.pick(&[1, 3, 10, 45]) * SEC,
            },
        };
        let rotation = r.chance(0.85);
        let grace_us = if r.chance(0.4) {
            0
        } else {
            r.pick(&[1, 5, 10, 30, 60]) * SEC
        };
        let access_lifetime_s: u64 = r.pick(&[
            0, 1, 2, 3, 5, 10, 30, 60, 120, 300, 300, 600, 900, 1800, 3600, 3600, 7200, 86_400,
        ]);
        let session = SessionConfig {
            refresh_margin: Duration::from_secs(r.pick(&[0, 1, 5, 30, 60, 300, 300, 900])),
            failure_backoff_min: Duration::from_millis(r.pick(&[100, 1000, 1000])),
            failure_backoff_max: Duration::from_secs(r.pick(&[10, 60, 60])),
            min_refresh_interval: Duration::from_secs(r.pick(&[1, 1, 1, 2, 5])),
            ..SessionConfig::default()
        };
        let attempts = r.range(1, 3) as u32;
        let attempt = Duration::from_millis(r.pick(&[500, 2000, 5000, 10_000]));
        let total = attempt * attempts + Duration::from_millis(r.range(0, 5000));
        let call = CallConfig {
            retry: RetryConfig {
                max_attempts: attempts,
                initial_backoff: Duration::from_millis(r.pick(&[100, 500, 1000])),
                max_backoff: Duration::from_secs(20),
                policy: if r.chance(0.5) {
                    RetryPolicy::Standard
                } else {
                    RetryPolicy::RotationSafe
                },
            },
            timeouts: Timeouts {
                connect: Duration::from_secs(3),
                attempt,
                total,
            },
            ..CallConfig::default()
        };
        // Long enough for several due times, short enough to run fast.
        let lifetime = access_lifetime_s.saturating_sub(1);
        let margin = session.refresh_margin.as_secs().min(lifetime / 2);
        let interval = (lifetime - margin).max(session.min_refresh_interval.as_secs());
        let horizon_us = (interval * r.range(3, 12) * SEC).clamp(30 * SEC, 6 * 3600 * SEC);
        let calls_per_process = (320 / n as u64).clamp(6, 80);
        let hosts = match store {
            StoreKind::Memory | StoreKind::File => 1,
            StoreKind::Redis { .. } => n,
        };
        let host_skews: Vec<i64> = (0..hosts)
            .map(|_| match r.below(10) {
                0..6 => 0,
                6..9 => r.range(0, 60 * SEC) as i64 - 30 * SEC as i64,
                _ => r.range(0, 4 * 3600 * SEC) as i64 - 2 * 3600 * SEC as i64,
            })
            .collect();
        let processes = (0..n)
            .map(|i| {
                let blocking = r.chance(0.4);
                ProcessConfig {
                    blocking,
                    host: if hosts == 1 { 0 } else { i },
                    call_mean_us: (horizon_us / r.range(calls_per_process / 2, calls_per_process))
                        .max(1000),
                    background: !blocking && r.chance(0.4),
                    force_share: if r.chance(0.3) { 0.1 } else { 0.0 },
                }
            })
            .collect();
        let one_os_process = store == StoreKind::Memory;
        let clean = r.chance(0.1);
        let mut rate = |on: f64, lo: f64, hi: f64| {
            if !clean && r.chance(on) {
                lo + (hi - lo) * (r.below(1000) as f64 / 1000.0)
            } else {
                0.0
            }
        };
        let rates = Rates {
            request_lost: rate(0.2, 0.01, 0.2),
            connect_fail: rate(0.15, 0.01, 0.2),
            response_lost: rate(0.25, 0.01, 0.2),
            slow: rate(0.2, 0.01, 0.2),
            // One OS process: a crash would take the memory store with it.
            crash: if one_os_process {
                0.0
            } else {
                rate(0.3, 0.002, 0.03)
            },
            // A memory store cannot fail.
            store_error: if one_os_process {
                0.0
            } else {
                rate(0.15, 0.01, 0.1)
            },
            cancel: rate(0.4, 0.1, 0.6),
            lease_lost: if matches!(store, StoreKind::Redis { .. }) {
                rate(0.5, 0.05, 0.4)
            } else {
                0.0
            },
        };
        let mut planned = Vec::new();
        if !clean {
            let at = |r: &mut Rng| r.range(0, horizon_us);
            for _ in 0..r.range(0, 3) {
                let t = at(&mut r);
                if one_os_process {
                    continue;
                }
                planned.push((
                    t,
                    Planned::Crash {
                        process: r.below(n as u64) as usize,
                        down_us: r.range(SEC / 10, 120 * SEC),
                    },
                ));
            }
            for _ in 0..r.range(0, 3) {
                let t = at(&mut r);
                let delta = r.pick(&[1, 30, 600, 7200]) as i64 * SEC as i64;
                planned.push((
                    t,
                    Planned::Step {
                        host: r.below(hosts as u64) as usize,
                        delta_us: if r.chance(0.5) { delta } else { -delta },
                    },
                ));
            }
            for _ in 0..r.range(0, 2) {
                let t = at(&mut r);
                if one_os_process {
                    continue;
                }
                planned.push((
                    t,
                    Planned::Outage {
                        for_us: r.range(SEC / 10, 120 * SEC),
                    },
                ));
            }
            for _ in 0..r.range(0, 2) {
                let t = at(&mut r);
                // A memory store loses its data only with its process.
                if !one_os_process {
                    planned.push((t, Planned::LoseData));
                }
            }
            if let StoreKind::Redis { .. } = store {
                for _ in 0..r.range(0, 3) {
                    let t = at(&mut r);
                    planned.push((t, Planned::DropLease));
                }
            }
            if r.chance(0.05) {
                let t = at(&mut r);
                planned.push((t, Planned::Revoke));
            }
            for _ in 0..r.range(0, 3) {
                let t = at(&mut r);
                planned.push((
                    t,
                    Planned::Busy {
                        for_us: r.range(SEC, 60 * SEC),
                        throttle: r.chance(0.5),
                    },
                ));
            }
            for _ in 0..r.range(0, 2) {
                let t = at(&mut r);
                planned.push((
                    t,
                    Planned::CancelBackground {
                        process: r.below(n as u64) as usize,
                    },
                ));
            }
        }
        planned.sort_by_key(|(t, _)| *t);
        let lineage_end_us = if r.chance(0.1) {
            r.range(horizon_us / 4, horizon_us)
        } else {
            u64::MAX / 4
        };
        let client_secret = r.chance(0.5).then(|| {
            let canary = crate::cognito::CANARY;
            // The canary at both ends and in the middle: any piece of it longer than 14
            // characters shows one.
            let n = r.next_u64();
            format!(
                "{canary}secret{:08x}{canary}{:08x}{canary}",
                n >> 32,
                n & 0xFFFF_FFFF
            )
        });
        Self {
            seed,
            store,
            processes,
            host_skews,
            one_os_process,
            rotation,
            grace_us,
            access_lifetime_s,
            lineage_end_us,
            client_secret,
            session,
            call,
            lock_timeout: Duration::from_secs(r.pick(&[1, 5, 20, 60])),
            unlocked_opt_in: r.chance(0.1),
            seeded_store: r.chance(0.5),
            horizon_us,
            rates,
            planned,
            coarse: {
                let mut c = Rng::stream(seed, 4);
                c.chance(0.5).then(|| CoarseSim {
                    tick_us: c.pick(&[1_000, 4_000, 4_000, 10_000]),
                    stall_ticks: c.below(12),
                })
            },
        }
    }

    /// A one-line summary (no secret).
    pub fn summary(&self) -> String {
        let blocking = self.processes.iter().filter(|p| p.blocking).count();
        format!(
            "{:?} store, {} processes ({} blocking) on {} host(s) with clocks off by {:?} s{}, rotation {} grace {} s, lifetime {} s, margin {} s, floor {} s, {} attempts {:?} (attempt {:?}, total {:?}), lock timeout {} s{}, horizon {} s, {} planned faults",
            self.store,
            self.processes.len(),
            blocking,
            self.host_skews.len(),
            self.host_skews
                .iter()
                .map(|s| (*s as f64 / 1e6 * 10.0).round() / 10.0)
                .collect::<Vec<_>>(),
            match self.coarse {
                Some(c) => format!(", coarse clocks (stalled {} ticks)", c.stall_ticks),
                None => String::new(),
            },
            if self.rotation { "on" } else { "off" },
            self.grace_us / SEC,
            self.access_lifetime_s,
            self.session.refresh_margin.as_secs(),
            self.session.min_refresh_interval.as_secs(),
            self.call.retry.max_attempts,
            self.call.retry.policy,
            self.call.timeouts.attempt,
            self.call.timeouts.total,
            self.lock_timeout.as_secs(),
            if self.unlocked_opt_in {
                ", refresh without lock opted in"
            } else {
                ""
            },
            self.horizon_us / SEC,
            self.planned.len(),
        )
    }
}
