//! Where a driver's time and randomness come from: the [`Environment`] trait, the system's
//! clocks ([`StdEnvironment`]) and a clock that moves only when told ([`ManualEnvironment`]).
//! The core reads no clock itself; a transport hands its driver one of these.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::session::Now;

/// Clocks and randomness for the drivers; the core reads neither itself.
pub trait Environment: Send + Sync {
    /// A monotonic clock (for deadlines and durations).
    fn now(&self) -> Instant;
    /// The wall clock (for the tokens' absolute expiry).
    fn wall_clock(&self) -> SystemTime;
    /// A random number seeding one call's invocation id and backoff jitter.
    fn random_seed(&self) -> u64;
    /// Both clocks at one moment, as the session machine reads them on every call (twice the
    /// cost of one clock on the cached path). The default reads each;
    /// [`StdEnvironment::with_monotonic_clock_held_for`] reads the wall clock alone between two
    /// readings of the monotonic clock.
    fn clocks(&self) -> Now {
        Now::new(self.wall_clock(), self.now())
    }

    /// The most [`clocks`](Self::clocks)' monotonic reading may lag the monotonic clock (zero
    /// when it reads the clock each time; for a held reading, see the limit in
    /// [`StdEnvironment::with_monotonic_clock_held_for`]): a session serves a cached token from
    /// `clocks` only if the token is still good this much later.
    fn clocks_lag(&self) -> Duration {
        Duration::ZERO
    }
}

/// An [`Environment`] over clocks the caller names and the standard library's randomness.
///
/// The clocks are function pointers so that the core itself reads no clock (it also builds for
/// `wasm32-unknown-unknown`, where `Instant::now` panics); a transport on a normal platform
/// passes `Instant::now` and `SystemTime::now`:
///
/// ```
/// use std::time::{Instant, SystemTime};
/// use cogref_core::driver::{Environment, StdEnvironment};
/// let env = StdEnvironment::new(Instant::now, SystemTime::now);
/// assert_ne!(env.random_seed(), env.random_seed());
/// ```
#[derive(Debug, Clone)]
pub struct StdEnvironment {
    now: fn() -> Instant,
    wall_clock: fn() -> SystemTime,
    held: Option<Arc<HeldMonotonic>>,
}

/// A hold for [`StdEnvironment::with_monotonic_clock_held_for`], for an application that opts
/// in (the transports do not): 1 ms of wall-clock time.
pub const MONOTONIC_CLOCK_HOLD: Duration = Duration::from_millis(1);

/// The last reading of the monotonic clock, and the wall clock's at that moment.
#[derive(Debug)]
struct HeldMonotonic {
    /// The monotonic clock's zero for `mono_ns`.
    base: Instant,
    /// How long a reading is held, in wall-clock time (at most `u64::MAX` nanoseconds).
    max_age: Duration,
    /// The latest reading (ns since `base`). Only ever raised (`fetch_max`), and stored before
    /// `wall_ns`: a reader that sees a wall reading sees this reading or a later one.
    mono_ns: AtomicU64,
    /// The wall clock when the monotonic one was read (ns since the Unix epoch, plus one; 0:
    /// none yet).
    wall_ns: AtomicU64,
}

impl StdEnvironment {
    /// An environment reading these clocks.
    pub const fn new(now: fn() -> Instant, wall_clock: fn() -> SystemTime) -> Self {
        Self {
            now,
            wall_clock,
            held: None,
        }
    }

    /// [`clocks`](Environment::clocks) reads the wall clock every time and the monotonic clock
    /// at most once per `max_age` of wall-clock time, holding its last reading while the wall
    /// clock moves on by less than that: one clock read instead of two on a session's cached
    /// path (about 20 ns of a 113 ns call, `cargo bench -p cogref-session --bench session`).
    ///
    /// The wall clock is always exact: a step, or a suspend (which the monotonic clock does not
    /// count), is seen at once, and a wall clock that goes back, jumps ahead by `max_age` or
    /// more, or has not moved since the reading (stopped, or coarser than the calls) has the
    /// monotonic clock read again; so does one before 1970, or one whose hold would reach past
    /// 2554. The monotonic reading never runs ahead and never goes back, and while the wall
    /// clock is not stepped back it lags by at most `max_age`
    /// ([`clocks_lag`](Environment::clocks_lag) says it). `now` and `wall_clock` still read
    /// their clocks; the session managers use `clocks` only to serve a cached token that is
    /// still good `clocks_lag` later, and read both clocks afresh for every decision they
    /// record.
    ///
    /// **The limit, and why the transports do not use it:** the hold is measured on the wall
    /// clock, the only clock read. A wall clock stepped back between two calls (no call sees
    /// the step) by about the time that passes until the next call puts that call inside the
    /// hold again, and it gets the reading of before the step, however old: a session can then
    /// serve a token past its expiry by the monotonic clock (the stepped-back wall clock still
    /// calls it good). Holding the wall clock instead has the same blind spot after a suspend.
    /// Only reading both clocks, or a monotonic clock that counts suspends, has none.
    ///
    /// ```
    /// use std::time::{Duration, Instant, SystemTime};
    /// use cogref_core::driver::{Environment, StdEnvironment};
    /// let env = StdEnvironment::new(Instant::now, SystemTime::now)
    ///     .with_monotonic_clock_held_for(Duration::from_millis(1));
    /// let before = Instant::now();
    /// let both = env.clocks();
    /// assert!(both.mono >= before);
    /// assert!(both.mono <= Instant::now());
    /// ```
    pub fn with_monotonic_clock_held_for(mut self, max_age: Duration) -> Self {
        self.held = Some(Arc::new(HeldMonotonic {
            base: (self.now)(),
            max_age: max_age.min(Duration::from_nanos(u64::MAX)),
            mono_ns: AtomicU64::new(0),
            wall_ns: AtomicU64::new(0),
        }));
        self
    }
}

impl Environment for StdEnvironment {
    fn now(&self) -> Instant {
        (self.now)()
    }

    fn wall_clock(&self) -> SystemTime {
        (self.wall_clock)()
    }

    fn clocks(&self) -> Now {
        let wall = (self.wall_clock)();
        let Some(held) = &self.held else {
            return Now::new(wall, (self.now)());
        };
        // Within (held_at, held_at + max_age): a wall clock that went back, or ahead by a step
        // or a suspend, falls outside and reads the monotonic clock again; so does one that has
        // not moved (stopped, or coarser than the calls), which says nothing of elapsed time.
        // Compared as `SystemTime`s: turning `wall` into nanoseconds (`duration_since`) would
        // cost more than a third of the clock read it saves.
        let held_at = held.wall_ns.load(Ordering::Acquire);
        if let Some(at) = held_at
            .checked_sub(1)
            .and_then(|ns| UNIX_EPOCH.checked_add(Duration::from_nanos(ns)))
            && wall > at
            && at.checked_add(held.max_age).is_some_and(|end| wall < end)
            && let Some(mono) = held
                .base
                .checked_add(Duration::from_nanos(held.mono_ns.load(Ordering::Acquire)))
        {
            return Now::new(wall, mono);
        }
        let mono = (self.now)();
        // Saturates after 584 years of uptime: then the held reading is never used. Raised
        // whatever the wall clock says, so that a reading served later is never older.
        let mono_ns =
            u64::try_from(mono.saturating_duration_since(held.base).as_nanos()).unwrap_or(u64::MAX);
        held.mono_ns.fetch_max(mono_ns, Ordering::AcqRel);
        // A wall clock before 1970, or one whose hold would reach past 2554 (the nanoseconds a
        // u64 counts), holds nothing: both clocks are read each time.
        let max_age_ns = u64::try_from(held.max_age.as_nanos()).unwrap_or(u64::MAX);
        if let Some(wall_ns) = wall
            .duration_since(UNIX_EPOCH)
            .ok()
            .and_then(|d| u64::try_from(d.as_nanos()).ok())
            && wall_ns
                .checked_add(max_age_ns)
                .and_then(|end| end.checked_add(1))
                .is_some()
        {
            held.wall_ns.store(wall_ns + 1, Ordering::Release);
        }
        Now::new(wall, mono)
    }

    fn clocks_lag(&self) -> Duration {
        self.held
            .as_ref()
            .map_or(Duration::ZERO, |held| held.max_age)
    }

    /// Randomly keyed SipHash of a process-wide counter: distinct per call, unpredictable
    /// across processes. Jitter and invocation ids need no more.
    fn random_seed(&self) -> u64 {
        use std::hash::{BuildHasher, RandomState};
        static CALLS: AtomicU64 = AtomicU64::new(0);
        RandomState::new().hash_one(CALLS.fetch_add(1, Ordering::Relaxed))
    }
}

/// An [`Environment`] whose time moves only when told to: for deterministic tests and
/// simulations of sessions that last hours. Clones share one clock.
///
/// ```
/// use std::time::{Duration, Instant, SystemTime};
/// use cogref_core::driver::{Environment, ManualEnvironment};
/// let env = ManualEnvironment::new(Instant::now(), SystemTime::UNIX_EPOCH);
/// env.advance(Duration::from_secs(3600));
/// assert_eq!(env.wall_clock(), SystemTime::UNIX_EPOCH + Duration::from_secs(3600));
/// ```
#[derive(Debug, Clone)]
pub struct ManualEnvironment {
    base: Instant,
    wall_base: SystemTime,
    elapsed: Arc<Mutex<Duration>>,
    seed: Arc<std::sync::atomic::AtomicU64>,
}

impl ManualEnvironment {
    /// A clock standing at `base` (monotonic) and `wall_base` (wall clock).
    pub fn new(base: Instant, wall_base: SystemTime) -> Self {
        Self {
            base,
            wall_base,
            elapsed: Arc::default(),
            seed: Arc::default(),
        }
    }

    /// Moves both clocks forward.
    pub fn advance(&self, by: Duration) {
        let mut elapsed = self.elapsed.lock().unwrap_or_else(|p| p.into_inner());
        *elapsed = elapsed.saturating_add(by);
    }

    /// Time moved so far.
    pub fn elapsed(&self) -> Duration {
        *self.elapsed.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Environment for ManualEnvironment {
    fn now(&self) -> Instant {
        self.base + self.elapsed()
    }

    fn wall_clock(&self) -> SystemTime {
        self.wall_base + self.elapsed()
    }

    /// 0, 1, 2, …: deterministic.
    fn random_seed(&self) -> u64 {
        self.seed.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::OnceLock;

    // Clocks the test moves: function pointers cannot capture, so they read statics.
    static MONO_NS: AtomicU64 = AtomicU64::new(0);
    static WALL_NS: AtomicU64 = AtomicU64::new(1_800_000_000_000_000_000);
    static MONO_READS: AtomicU64 = AtomicU64::new(0);
    /// The tests share the clocks above: one at a time.
    static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

    fn base() -> Instant {
        static BASE: OnceLock<Instant> = OnceLock::new();
        *BASE.get_or_init(Instant::now)
    }

    /// The monotonic clock, counted: the clock `held()` reads.
    fn mono() -> Instant {
        MONO_READS.fetch_add(1, Ordering::SeqCst);
        base() + Duration::from_nanos(MONO_NS.load(Ordering::SeqCst))
    }

    fn wall() -> SystemTime {
        UNIX_EPOCH + Duration::from_nanos(WALL_NS.load(Ordering::SeqCst))
    }

    fn advance(ns: u64) {
        MONO_NS.fetch_add(ns, Ordering::SeqCst);
        WALL_NS.fetch_add(ns, Ordering::SeqCst);
    }

    fn held() -> StdEnvironment {
        StdEnvironment::new(mono, wall).with_monotonic_clock_held_for(MONOTONIC_CLOCK_HOLD)
    }

    #[test]
    fn a_held_monotonic_clock_is_read_once_per_millisecond_and_lags_by_at_most_that() {
        let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
        let env = held();
        let first = env.clocks();
        assert_eq!((first.wall, first.mono), (wall(), mono()));
        let reads = MONO_READS.load(Ordering::SeqCst);
        // 0.4 ms later: the wall clock exact, the monotonic reading held, without a read.
        advance(400_000);
        let later = env.clocks();
        assert_eq!(
            MONO_READS.load(Ordering::SeqCst),
            reads,
            "the monotonic clock was read"
        );
        assert_eq!(later.wall, wall());
        assert_eq!(later.mono, first.mono);
        // 1 ms after the reading: read again.
        advance(600_000);
        let fresh = env.clocks();
        assert_eq!(MONO_READS.load(Ordering::SeqCst), reads + 1);
        assert_eq!((fresh.wall, fresh.mono), (wall(), mono()));
        // Without the option every call reads both clocks.
        let plain = StdEnvironment::new(mono, wall);
        let reads = MONO_READS.load(Ordering::SeqCst);
        let _ = plain.clocks();
        let _ = plain.clocks();
        assert_eq!(MONO_READS.load(Ordering::SeqCst), reads + 2);
    }

    #[test]
    fn a_suspend_or_a_wall_clock_step_is_seen_at_once_and_the_monotonic_clock_read_again() {
        let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
        let env = held();
        let _ = env.clocks();
        advance(100_000);
        // A suspend of 8 hours: the wall clock moves, the monotonic one does not.
        WALL_NS.fetch_add(8 * 3_600_000_000_000, Ordering::SeqCst);
        let reads = MONO_READS.load(Ordering::SeqCst);
        let resumed = env.clocks();
        assert_eq!(MONO_READS.load(Ordering::SeqCst), reads + 1);
        assert_eq!(resumed.wall, wall(), "the suspend is seen at once");
        assert_eq!(resumed.mono, mono());
        // A step back of an hour: seen at once, the monotonic clock read again and not back.
        advance(100_000);
        WALL_NS.fetch_sub(3_600_000_000_000, Ordering::SeqCst);
        let stepped = env.clocks();
        assert_eq!((stepped.wall, stepped.mono), (wall(), mono()));
        assert!(stepped.mono >= resumed.mono);
        // A step ahead of 2 ms: likewise.
        WALL_NS.fetch_add(2_000_000, Ordering::SeqCst);
        let ahead = env.clocks();
        assert_eq!((ahead.wall, ahead.mono), (wall(), mono()));
    }

    #[test]
    fn a_held_monotonic_reading_never_goes_back_nor_runs_ahead() {
        let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
        let env = held();
        let mut last = env.clocks().mono;
        // The wall clock runs fast (a small step ahead each time), then steps back a little:
        // every reading lies between the previous one and the true monotonic clock.
        for step in 0..50u64 {
            MONO_NS.fetch_add(30_000, Ordering::SeqCst);
            WALL_NS.fetch_add(30_000 + (step % 7) * 40_000, Ordering::SeqCst);
            if step % 11 == 10 {
                WALL_NS.fetch_sub(500_000, Ordering::SeqCst);
            }
            let now = env.clocks();
            assert!(now.mono >= last, "went back at step {step}");
            assert!(now.mono <= mono(), "ran ahead at step {step}");
            assert!(mono().duration_since(now.mono) <= MONOTONIC_CLOCK_HOLD);
            assert_eq!(now.wall, wall());
            last = now.mono;
        }
    }

    #[test]
    fn a_wall_clock_before_the_epoch_holds_nothing() {
        fn early() -> SystemTime {
            UNIX_EPOCH - Duration::from_secs(10)
        }
        let env = StdEnvironment::new(Instant::now, early)
            .with_monotonic_clock_held_for(MONOTONIC_CLOCK_HOLD);
        let first = env.clocks();
        std::thread::sleep(Duration::from_millis(2));
        let second = env.clocks();
        assert_eq!(second.wall, early());
        assert!(second.mono >= first.mono + Duration::from_millis(2));
    }
}
