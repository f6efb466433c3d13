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
    /// Both clocks at one moment, as cheaply as the environment can read them: a session's
    /// cached path reads them on every call, and uses them for nothing else. The default reads
    /// each ([`now`](Self::now) and [`wall_clock`](Self::wall_clock));
    /// [`StdEnvironment::with_coarse_clocks`] reads the kernel's coarse clocks, and
    /// [`StdEnvironment::with_monotonic_clock_held_for`] the wall clock alone between two
    /// readings of the monotonic clock.
    fn clocks(&self) -> Now {
        Now::new(self.wall_clock(), self.now())
    }

    /// The most either of [`clocks`](Self::clocks)' readings may lag its clock (zero when it
    /// reads the clocks themselves; see [`StdEnvironment::with_coarse_clocks`] and the limit in
    /// [`StdEnvironment::with_monotonic_clock_held_for`]): a session serves a cached token from
    /// `clocks` only if the token is still good this much later on both clocks.
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
    quick: Quick,
}

/// How [`StdEnvironment::clocks`](Environment::clocks) reads.
#[derive(Debug, Clone)]
enum Quick {
    /// Both clocks, each time.
    Fresh,
    /// The kernel's coarse clocks.
    Coarse(Coarse),
    /// The wall clock, and a held monotonic reading.
    Held(Arc<HeldMonotonic>),
}

/// The kernel's coarse clocks, as a platform reads them, for
/// [`StdEnvironment::with_coarse_clocks`]. On Linux the transports pass
/// `CLOCK_MONOTONIC_COARSE` and `CLOCK_REALTIME_COARSE` (the C library's `clock_gettime`,
/// through `nix`: `cogref-clocks`).
///
/// A coarse clock is its fine clock as of the timekeeping CPU's last tick: the vDSO reads it
/// without the CPU's time-stamp counter (~8 ns through the C library instead of ~22 in a
/// standalone loop on this project's VM, TSC clock source). It lags by up to a tick (1 to 10 ms, the `resolution`)
/// most of the time, by two or three when that CPU's ticks come late (on this project's VM,
/// with a 4 ms tick: more than a tick in about a fifth of readings, 2.3 ticks at most idle,
/// 3.3 under load); see the assumption in [`StdEnvironment::with_coarse_clocks`].
#[derive(Debug, Clone, Copy)]
pub struct CoarseClocks {
    /// The coarse monotonic clock, as time since its zero: the clock `now` reads, as of the
    /// last tick (Linux: `CLOCK_MONOTONIC_COARSE`, for `Instant::now`'s `CLOCK_MONOTONIC`;
    /// both stop in a suspend). `None`: no reading (both fine clocks are read instead).
    pub monotonic: fn() -> Option<Duration>,
    /// The coarse wall clock (Linux: `CLOCK_REALTIME_COARSE`; a step, or the end of a
    /// suspend, shows in it at once, as in the fine one). `None`: no reading.
    pub wall: fn() -> Option<SystemTime>,
    /// How often the kernel moves them on (`clock_getres` of the coarse monotonic clock).
    pub resolution: Duration,
}

/// How many ticks a coarse clock is taken to lag at most. An assumption about the kernel, not a
/// bound it states: the clock moves on at each tick of the timekeeping CPU, and Linux lets
/// another CPU take over after about seven ticks of a stalled one; measured on this project's
/// VM (2 vCPUs, 4 ms tick), 2.3 ticks idle and 3.3 under load at most. Twelve leaves room.
const COARSE_TICKS_BEHIND: u32 = 12;

/// How many times the anchor is read again when its two fine readings are more than a tick
/// apart (the thread was preempted between them).
const ANCHOR_TRIES: usize = 3;

/// The coarsest clock worth reading coarsely: a tick of 20 ms (Linux's ticks are 1 to 10 ms).
const COARSEST_RESOLUTION: Duration = Duration::from_millis(20);

/// The coarse clocks, and where the monotonic one sits on the timeline of `Instant`.
#[derive(Debug, Clone, Copy)]
struct Coarse {
    clocks: CoarseClocks,
    /// A coarse monotonic reading.
    zero: Duration,
    /// An `Instant` read just before `zero` (and another at most a tick after it), moved back
    /// by the most a coarse clock lags: a reading `anchor + (coarse − zero)` is then never
    /// ahead of `Instant::now` while `zero` lagged by at most that.
    anchor: Instant,
    /// The most a reading lags its clock: the most the coarse clock lags now, plus the anchor's
    /// move back, plus the tick its two fine readings may be apart.
    lag: Duration,
}

impl Coarse {
    /// Both coarse clocks; `None` if either has no reading or the monotonic one cannot be
    /// placed (then both fine clocks are read).
    #[inline]
    fn read(&self) -> Option<Now> {
        let since = (self.clocks.monotonic)()?.checked_sub(self.zero)?;
        let mono = self.anchor.checked_add(since)?;
        Some(Now::new((self.clocks.wall)()?, mono))
    }
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
            quick: Quick::Fresh,
        }
    }

    /// [`clocks`](Environment::clocks) reads the kernel's coarse clocks (see
    /// [`CoarseClocks`]) instead of the fine ones: both clocks on every call, at a fraction of
    /// the cost, each up to [`clocks_lag`](Environment::clocks_lag) behind its clock. What the
    /// transports do on Linux: a session's cached `access_token()` reads the clocks on every
    /// call, and the fine ones were most of its cost (`cargo bench -p cogref-session --bench
    /// session`: about 90 ns a call instead of about 115 on this project's VM).
    ///
    /// **The assumption:** a coarse clock lags its fine clock by at most twelve ticks (it
    /// moves on at each tick of the timekeeping CPU; Linux lets another CPU take over after
    /// about seven ticks of a stalled one; 3.3 ticks at most measured here under load). The
    /// monotonic reading is placed on `now`'s timeline by a fine reading taken before a coarse
    /// one and moved back by twelve ticks, so that it is never ahead of `now` while the
    /// assumption holds; the lag stated is twenty-five ticks (twelve for the clock now, twelve
    /// for the move back, one for the gap between the two readings): 100 ms with Linux's usual
    /// 4 ms tick. A session serves a cached token only if it is still good that much later on
    /// both clocks; in the last 100 ms before a refresh is due, calls read both fine clocks
    /// instead. Should the kernel's clocks stall longer than the assumption (a host that stops
    /// the virtual machine's timekeeping CPU for more than 48 ms while another runs the call),
    /// a cached token can be served past its due time by the excess; the expiry itself is
    /// counted a second short of Cognito's.
    ///
    /// Unlike a [held](Self::with_monotonic_clock_held_for) reading, nothing depends on the
    /// calls: a wall clock stepped, forward or back, or a suspend, shows in the next reading.
    /// `now` and `wall_clock` still read the fine clocks, for every decision a session
    /// records.
    ///
    /// Left as it was (a hold kept, if it had one; else both fine clocks read each time) if
    /// the resolution is zero or coarser than 20 ms, or if the coarse monotonic clock cannot
    /// be placed on `now`'s timeline (no reading; an `Instant` that cannot be moved back twelve
    /// ticks; the fine readings around the coarse one more than a tick apart three times in a
    /// row); otherwise replaces a hold. A call whose coarse readings are missing or cannot be
    /// placed reads the fine clocks.
    ///
    /// ```
    /// use std::time::{Duration, Instant, SystemTime};
    /// use cogref_core::driver::{CoarseClocks, Environment, StdEnvironment};
    /// // A platform's coarse clocks (made-up ones here: a transport reads the kernel's).
    /// let clocks = CoarseClocks {
    ///     monotonic: || Some(Duration::from_secs(1_000)),
    ///     wall: || Some(SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000)),
    ///     resolution: Duration::from_millis(4),
    /// };
    /// let env = StdEnvironment::new(Instant::now, SystemTime::now).with_coarse_clocks(clocks);
    /// assert_eq!(env.clocks_lag(), Duration::from_millis(100));
    /// assert_eq!(env.clocks().wall, SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000));
    /// assert!(env.clocks().mono <= Instant::now());
    /// ```
    pub fn with_coarse_clocks(mut self, clocks: CoarseClocks) -> Self {
        if clocks.resolution.is_zero() || clocks.resolution > COARSEST_RESOLUTION {
            return self;
        }
        let behind = clocks.resolution * COARSE_TICKS_BEHIND;
        // Fine, coarse, fine. Anchored on the fine reading before `zero`, so a thread preempted
        // between the reads makes readings lag more, never run ahead; the second fine reading
        // bounds by how much (a tick, else read again).
        for _ in 0..ANCHOR_TRIES {
            let before = (self.now)();
            let Some(zero) = (clocks.monotonic)() else {
                return self;
            };
            if (self.now)().saturating_duration_since(before) > clocks.resolution {
                continue;
            }
            let Some(anchor) = before.checked_sub(behind) else {
                return self;
            };
            self.quick = Quick::Coarse(Coarse {
                clocks,
                zero,
                anchor,
                lag: behind * 2 + clocks.resolution,
            });
            return self;
        }
        self
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
    /// Only reading both clocks, fine or [coarse](Self::with_coarse_clocks) (what the
    /// transports do), or a monotonic clock that counts suspends, has none.
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
        self.quick = Quick::Held(Arc::new(HeldMonotonic {
            base: (self.now)(),
            max_age: max_age.min(Duration::from_nanos(u64::MAX)),
            mono_ns: AtomicU64::new(0),
            wall_ns: AtomicU64::new(0),
        }));
        self
    }
}

impl HeldMonotonic {
    /// The wall clock's reading `wall`, and the held monotonic reading or a new one from `now`.
    fn read(&self, now: fn() -> Instant, wall: SystemTime) -> Now {
        // Within (held_at, held_at + max_age): a wall clock that went back, or ahead by a step
        // or a suspend, falls outside and reads the monotonic clock again; so does one that has
        // not moved (stopped, or coarser than the calls), which says nothing of elapsed time.
        // Compared as `SystemTime`s: turning `wall` into nanoseconds (`duration_since`) would
        // cost more than a third of the clock read it saves.
        let held_at = self.wall_ns.load(Ordering::Acquire);
        if let Some(at) = held_at
            .checked_sub(1)
            .and_then(|ns| UNIX_EPOCH.checked_add(Duration::from_nanos(ns)))
            && wall > at
            && at.checked_add(self.max_age).is_some_and(|end| wall < end)
            && let Some(mono) = self
                .base
                .checked_add(Duration::from_nanos(self.mono_ns.load(Ordering::Acquire)))
        {
            return Now::new(wall, mono);
        }
        let mono = now();
        // Saturates after 584 years of uptime: then the held reading is never used. Raised
        // whatever the wall clock says, so that a reading served later is never older.
        let mono_ns =
            u64::try_from(mono.saturating_duration_since(self.base).as_nanos()).unwrap_or(u64::MAX);
        self.mono_ns.fetch_max(mono_ns, Ordering::AcqRel);
        // A wall clock before 1970, or one whose hold would reach past 2554 (the nanoseconds a
        // u64 counts), holds nothing: both clocks are read each time.
        let max_age_ns = u64::try_from(self.max_age.as_nanos()).unwrap_or(u64::MAX);
        if let Some(wall_ns) = wall
            .duration_since(UNIX_EPOCH)
            .ok()
            .and_then(|d| u64::try_from(d.as_nanos()).ok())
            && wall_ns
                .checked_add(max_age_ns)
                .and_then(|end| end.checked_add(1))
                .is_some()
        {
            self.wall_ns.store(wall_ns + 1, Ordering::Release);
        }
        Now::new(wall, mono)
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
        match &self.quick {
            Quick::Fresh => {}
            Quick::Coarse(coarse) => {
                if let Some(now) = coarse.read() {
                    return now;
                }
            }
            Quick::Held(held) => return held.read(self.now, (self.wall_clock)()),
        }
        Now::new((self.wall_clock)(), (self.now)())
    }

    fn clocks_lag(&self) -> Duration {
        match &self.quick {
            Quick::Fresh => Duration::ZERO,
            Quick::Coarse(coarse) => coarse.lag,
            Quick::Held(held) => held.max_age,
        }
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

#[cfg(test)]
mod coarse_tests {
    use super::*;
    use std::sync::OnceLock;

    // Clocks the tests move (function pointers cannot capture): the fine monotonic clock as
    // nanoseconds after `base()`, the coarse one as nanoseconds since its zero (`u64::MAX`: no
    // reading), the coarse wall clock as nanoseconds since 1970 (`u64::MAX`: no reading).
    static FINE_NS: AtomicU64 = AtomicU64::new(0);
    static COARSE_MONO_NS: AtomicU64 = AtomicU64::new(0);
    static COARSE_WALL_NS: AtomicU64 = AtomicU64::new(WALL_AT);
    static SERIAL: Mutex<()> = Mutex::new(());

    const TICK: Duration = Duration::from_millis(4);
    const WALL_AT: u64 = 1_800_000_000_000_000_000;
    /// The coarse monotonic clock's zero, before `base()`.
    const BOOTED_NS: u64 = 5_000_000_000_000;

    fn base() -> Instant {
        static BASE: OnceLock<Instant> = OnceLock::new();
        *BASE.get_or_init(Instant::now)
    }

    fn fine() -> Instant {
        base() + Duration::from_nanos(FINE_NS.load(Ordering::SeqCst))
    }

    fn fine_wall() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_900_000_000)
    }

    fn reading(ns: u64) -> Option<Duration> {
        (ns != u64::MAX).then(|| Duration::from_nanos(ns))
    }

    fn clocks(resolution: Duration) -> CoarseClocks {
        CoarseClocks {
            monotonic: || reading(COARSE_MONO_NS.load(Ordering::SeqCst)),
            wall: || reading(COARSE_WALL_NS.load(Ordering::SeqCst)).map(|d| UNIX_EPOCH + d),
            resolution,
        }
    }

    /// The fine clock at `fine_ns`, the coarse one `behind` it.
    fn set(fine_ns: u64, behind: Duration) {
        FINE_NS.store(fine_ns, Ordering::SeqCst);
        let behind = u64::try_from(behind.as_nanos()).expect("a short lag");
        COARSE_MONO_NS.store(BOOTED_NS + fine_ns - behind, Ordering::SeqCst);
        COARSE_WALL_NS.store(WALL_AT, Ordering::SeqCst);
    }

    fn coarse_env(resolution: Duration) -> StdEnvironment {
        StdEnvironment::new(fine, fine_wall).with_coarse_clocks(clocks(resolution))
    }

    fn serial() -> std::sync::MutexGuard<'static, ()> {
        SERIAL.lock().unwrap_or_else(|p| p.into_inner())
    }

    #[test]
    fn the_lag_of_coarse_clocks_is_twenty_five_of_their_ticks() {
        let _serial = serial();
        set(1_000_000_000, Duration::ZERO);
        for (tick_ms, lag_ms) in [(4, 100), (1, 25), (10, 250), (20, 500)] {
            let env = coarse_env(Duration::from_millis(tick_ms));
            assert_eq!(env.clocks_lag(), Duration::from_millis(lag_ms));
        }
    }

    #[test]
    fn a_coarse_monotonic_reading_is_never_ahead_of_the_fine_clock_nor_behind_it_by_more_than_the_lag()
     {
        let _serial = serial();
        // Built while the coarse clock is anywhere from 0 to 12 ticks behind; read while it is
        // anywhere from 0 to 12 ticks behind, from at once to an hour later.
        for built_behind in [0, 1, 3, 6, 12] {
            set(10_000_000_000, TICK * built_behind);
            let env = coarse_env(TICK);
            let lag = env.clocks_lag();
            for later_ns in [0, 1, 3_999_999, 4_000_000, 123_456_789, 3_600_000_000_000] {
                for behind in [0, 1, 2, 5, 6, 12] {
                    set(10_000_000_000 + later_ns, TICK * behind);
                    let now = env.clocks();
                    let case = format!("built {built_behind} ticks behind, read {behind} behind");
                    assert!(now.mono <= fine(), "ahead: {case}");
                    assert!(
                        fine().duration_since(now.mono) <= lag,
                        "lags too far: {case}"
                    );
                }
            }
        }
    }

    /// How far the fine clock moves on while the coarse clock is read (a preempted thread).
    static PREEMPTED_NS: AtomicU64 = AtomicU64::new(0);

    fn preempted_coarse_mono() -> Option<Duration> {
        let reading = reading(COARSE_MONO_NS.load(Ordering::SeqCst));
        FINE_NS.fetch_add(PREEMPTED_NS.load(Ordering::SeqCst), Ordering::SeqCst);
        COARSE_MONO_NS.fetch_add(PREEMPTED_NS.load(Ordering::SeqCst), Ordering::SeqCst);
        reading
    }

    #[test]
    fn a_builder_preempted_around_its_coarse_reading_never_makes_a_reading_run_ahead() {
        let _serial = serial();
        let build = |preempted: Duration| {
            set(80_000_000_000, TICK * 12);
            PREEMPTED_NS.store(
                u64::try_from(preempted.as_nanos()).expect("short"),
                Ordering::SeqCst,
            );
            let env = StdEnvironment::new(fine, fine_wall).with_coarse_clocks(CoarseClocks {
                monotonic: preempted_coarse_mono,
                ..clocks(TICK)
            });
            PREEMPTED_NS.store(0, Ordering::SeqCst);
            env
        };
        // Preempted for up to a tick between the fine and the coarse reading, with the coarse
        // clock twelve ticks behind: readings lag more, and never run ahead.
        for preempted in [Duration::ZERO, Duration::from_millis(1), TICK] {
            let env = build(preempted);
            assert_eq!(env.clocks_lag(), TICK * 25);
            for behind in [0, 1, 12] {
                set(80_100_000_000, TICK * behind);
                let now = env.clocks();
                assert!(now.mono <= fine(), "ahead, preempted {preempted:?}");
                assert!(fine().duration_since(now.mono) <= env.clocks_lag());
            }
        }
        // Preempted longer, every time: the fine clocks are read.
        let env = build(Duration::from_millis(30));
        assert_eq!(env.clocks_lag(), Duration::ZERO);
        assert_eq!(env.clocks(), Now::new(fine_wall(), fine()));
    }

    #[test]
    fn a_coarse_monotonic_reading_moves_with_the_coarse_clock() {
        let _serial = serial();
        set(20_000_000_000, Duration::from_millis(2));
        let env = coarse_env(TICK);
        let first = env.clocks().mono;
        set(20_004_000_000, Duration::ZERO);
        let second = env.clocks().mono;
        assert_eq!(second - first, Duration::from_millis(6));
        set(20_005_000_000, Duration::from_millis(1));
        assert_eq!(env.clocks().mono, second, "no tick since: the same reading");
    }

    #[test]
    fn a_wall_clock_step_or_a_suspend_shows_in_the_next_coarse_reading() {
        let _serial = serial();
        set(30_000_000_000, Duration::ZERO);
        let env = coarse_env(TICK);
        let at = UNIX_EPOCH + Duration::from_nanos(WALL_AT);
        assert_eq!(env.clocks().wall, at);
        // Stepped back an hour between two calls: the next one sees it.
        COARSE_WALL_NS.store(WALL_AT - 3_600_000_000_000, Ordering::SeqCst);
        assert_eq!(env.clocks().wall, at - Duration::from_secs(3_600));
        // A suspend of eight hours: the wall clock moves on, the monotonic one does not.
        let mono = env.clocks().mono;
        COARSE_WALL_NS.store(WALL_AT + 8 * 3_600_000_000_000, Ordering::SeqCst);
        let resumed = env.clocks();
        assert_eq!(resumed.wall, at + Duration::from_secs(8 * 3_600));
        assert_eq!(resumed.mono, mono);
    }

    #[test]
    fn coarse_clocks_too_coarse_or_without_a_resolution_leave_the_fine_clocks_read() {
        let _serial = serial();
        set(50_000_000_000, Duration::ZERO);
        for resolution in [
            Duration::ZERO,
            Duration::from_nanos(20_000_001),
            Duration::from_secs(1),
            Duration::MAX,
        ] {
            let env = coarse_env(resolution);
            assert_eq!(env.clocks_lag(), Duration::ZERO, "{resolution:?}");
            assert_eq!(
                env.clocks(),
                Now::new(fine_wall(), fine()),
                "{resolution:?}"
            );
        }
        // Nor without a monotonic reading to place the clock by.
        COARSE_MONO_NS.store(u64::MAX, Ordering::SeqCst);
        let env = coarse_env(TICK);
        set(50_000_000_000, Duration::ZERO);
        assert_eq!(env.clocks_lag(), Duration::ZERO);
        assert_eq!(env.clocks(), Now::new(fine_wall(), fine()));
    }

    #[test]
    fn a_call_whose_coarse_readings_are_missing_or_cannot_be_placed_reads_the_fine_clocks() {
        let _serial = serial();
        set(60_000_000_000, Duration::ZERO);
        let env = coarse_env(TICK);
        let fresh = || Now::new(fine_wall(), fine());
        // No monotonic reading; one behind where the clock stood when the environment was
        // built (no kernel does that); no wall reading.
        COARSE_MONO_NS.store(u64::MAX, Ordering::SeqCst);
        assert_eq!(env.clocks(), fresh());
        COARSE_MONO_NS.store(BOOTED_NS, Ordering::SeqCst);
        assert_eq!(env.clocks(), fresh());
        set(60_000_000_000, Duration::ZERO);
        COARSE_WALL_NS.store(u64::MAX, Ordering::SeqCst);
        assert_eq!(env.clocks(), fresh());
        // A coarse monotonic clock 584 years on: read as such.
        set(60_000_000_000, Duration::ZERO);
        COARSE_MONO_NS.store(u64::MAX - 1, Ordering::SeqCst);
        assert!(env.clocks().mono > fine() + Duration::from_secs(580 * 365 * 86_400));
    }

    #[test]
    fn coarse_clocks_replace_a_hold_and_a_hold_replaces_them() {
        let _serial = serial();
        set(70_000_000_000, Duration::ZERO);
        let env = StdEnvironment::new(fine, fine_wall)
            .with_monotonic_clock_held_for(Duration::from_secs(5))
            .with_coarse_clocks(clocks(TICK));
        assert_eq!(env.clocks_lag(), Duration::from_millis(100));
        let env = env.with_monotonic_clock_held_for(Duration::from_secs(5));
        assert_eq!(env.clocks_lag(), Duration::from_secs(5));
    }
}
