//! What the simulated processes share with the scheduler: the pending operations their
//! transports and stores register, the tasks they spawn, the guards they drop, and the true
//! clock. Only one thing runs at a time (the scheduler, one task, or one parked-and-resumed
//! blocking thread), so the mutex is never contended; it is there to satisfy `Send + Sync`.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, Sender};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use cogref_core::driver::{DetachedTask, HttpRequest, HttpResponse};
use cogref_core::secrecy::SecretString;
use cogref_core::{Environment, Error, Now, TokenSet, TransportError, TransportErrorKind};
use cogref_session::{SessionError, StoreError, Versioned};

use crate::cognito::EPOCH_SECS;
use crate::model::Ticket;
use crate::rng::Rng;

/// One incarnation of one simulated process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Actor {
    /// Which process.
    pub process: usize,
    /// Which life of it (1 for the first; a restart adds one).
    pub incarnation: u32,
}

/// A task of the executor.
pub type TaskId = u64;

/// A caller's call.
pub type CallId = u64;

/// An operation a process waits on.
pub enum OpKind {
    /// An HTTP exchange with Cognito.
    Send {
        /// The request.
        request: HttpRequest,
        /// The attempt timeout the transport enforces.
        timeout: Duration,
    },
    /// A sleep on the transport's timer.
    Sleep(Duration),
    /// A store call.
    Store(StoreCall),
}

/// A store call.
// A save carries a whole token set; the simulator makes a few hundred of these a run, so boxing
// it would buy nothing.
#[allow(clippy::large_enum_variant)]
pub enum StoreCall {
    /// `load`.
    Load,
    /// `save`.
    Save {
        /// The set.
        tokens: TokenSet,
        /// The version expected.
        expected: Option<u64>,
    },
    /// `try_lock`.
    TryLock,
    /// `unlock`.
    Unlock(Ticket),
    /// `wait_for_change`.
    Wait {
        /// The version seen.
        seen: Option<u64>,
        /// How long at most.
        timeout: Duration,
    },
}

/// The result of an operation.
pub enum OpResult {
    /// Of a send.
    Http(Result<HttpResponse, Error>),
    /// Of a sleep.
    Slept,
    /// Of a load.
    Loaded(Result<Option<Versioned>, StoreError>),
    /// Of a save.
    Saved(Result<u64, StoreError>),
    /// Of a lock attempt.
    Locked(Result<Option<Ticket>, StoreError>),
    /// Of an unlock.
    Unlocked,
    /// Of a wait.
    Waited(Result<bool, StoreError>),
}

/// What a dead incarnation's operation returns at once (and it has no effect).
pub fn dead_result(kind: &OpKind) -> OpResult {
    match kind {
        OpKind::Send { .. } => OpResult::Http(Err(TransportError::new(
            TransportErrorKind::Other,
            "the process is dead",
        )
        .into())),
        OpKind::Sleep(_) => OpResult::Slept,
        OpKind::Store(call) => {
            let dead = || StoreError::Other("the process is dead".into());
            match call {
                StoreCall::Load => OpResult::Loaded(Err(dead())),
                StoreCall::Save { .. } => OpResult::Saved(Err(dead())),
                StoreCall::TryLock => OpResult::Locked(Err(dead())),
                StoreCall::Unlock(_) => OpResult::Unlocked,
                StoreCall::Wait { .. } => OpResult::Waited(Err(dead())),
            }
        }
    }
}

/// A registered operation.
pub struct Op {
    /// Whose.
    pub actor: Actor,
    /// The task that registered it (`None`: a blocking thread).
    pub task: Option<TaskId>,
    /// What it is, until the scheduler takes it.
    pub kind: Option<OpKind>,
    /// Its result, once complete.
    pub result: Option<OpResult>,
    /// The task to wake.
    pub waker: Option<Waker>,
    /// Its future was dropped before completing.
    pub abandoned: bool,
}

/// A task a transport was asked to spawn.
pub struct Spawned {
    /// The task.
    pub task: DetachedTask,
    /// Whose.
    pub actor: Actor,
    /// The task running when it was spawned.
    pub parent: Option<TaskId>,
}

/// Something that happened outside an operation.
pub enum Notice {
    /// A lock guard was dropped without `unlock`.
    GuardDropped {
        /// Its ticket.
        ticket: Ticket,
        /// Its owner.
        actor: Actor,
    },
    /// A caller's call ended.
    Outcome {
        /// Which call.
        call: CallId,
        /// What it returned.
        result: Result<SecretString, SessionError>,
    },
    /// A blocking process's thread panicked (a bug).
    Panic(String),
    /// A manager was built (`Ok`) or its build failed.
    Built {
        /// Whose.
        actor: Actor,
        /// The build's error, if any.
        error: Option<SessionError>,
    },
}

/// The state every simulated process reaches through its transport and store.
#[derive(Default)]
pub struct Shared {
    /// Pending operations.
    pub ops: BTreeMap<u64, Op>,
    pub(crate) next_op: u64,
    /// Operations registered since the scheduler last looked.
    pub fresh: Vec<u64>,
    /// Tasks spawned since the scheduler last looked.
    pub spawned: Vec<Spawned>,
    /// Notices since the scheduler last looked.
    pub notices: Vec<Notice>,
    /// The task being polled.
    pub current: Option<TaskId>,
    /// The live incarnation of each process (0: down).
    pub alive: Vec<u32>,
    /// The store's change stamp as its handles report it (`TokenStore::change_stamp`), set by
    /// the world after every event: read synchronously on the managers' cached path.
    pub stamp: Option<u64>,
}

impl Shared {
    /// Whether `actor` is the live incarnation of its process.
    pub fn is_alive(&self, actor: Actor) -> bool {
        self.alive.get(actor.process).copied() == Some(actor.incarnation)
    }

    /// Registers an operation of `actor`.
    pub fn register(&mut self, actor: Actor, kind: OpKind, task: Option<TaskId>) -> u64 {
        self.next_op += 1;
        let id = self.next_op;
        self.ops.insert(
            id,
            Op {
                actor,
                task,
                kind: Some(kind),
                result: None,
                waker: None,
                abandoned: false,
            },
        );
        self.fresh.push(id);
        id
    }
}

/// The shared state behind its mutex.
pub type SharedRef = Arc<Mutex<Shared>>;

/// Locks the shared state (a panic elsewhere cannot tear it: it is only ever replaced whole).
pub fn lock(shared: &SharedRef) -> MutexGuard<'_, Shared> {
    shared.lock().unwrap_or_else(|p| p.into_inner())
}

/// An operation as a future: registers on first poll, completes when the scheduler sets its
/// result. Dropping it unfinished marks the operation abandoned.
pub struct OpFuture {
    shared: SharedRef,
    actor: Actor,
    kind: Option<OpKind>,
    id: Option<u64>,
}

impl OpFuture {
    /// An operation of `actor`.
    pub fn new(shared: &SharedRef, actor: Actor, kind: OpKind) -> Self {
        Self {
            shared: shared.clone(),
            actor,
            kind: Some(kind),
            id: None,
        }
    }
}

impl Future for OpFuture {
    type Output = OpResult;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<OpResult> {
        let this = self.get_mut();
        let mut shared = lock(&this.shared);
        let id = match this.id {
            Some(id) => id,
            None => {
                let Some(kind) = this.kind.take() else {
                    return Poll::Ready(OpResult::Slept);
                };
                if !shared.is_alive(this.actor) {
                    return Poll::Ready(dead_result(&kind));
                }
                let task = shared.current;
                let id = shared.register(this.actor, kind, task);
                this.id = Some(id);
                id
            }
        };
        let Some(op) = shared.ops.get_mut(&id) else {
            this.id = None;
            return Poll::Ready(OpResult::Slept);
        };
        if let Some(result) = op.result.take() {
            shared.ops.remove(&id);
            this.id = None;
            return Poll::Ready(result);
        }
        op.waker = Some(cx.waker().clone());
        Poll::Pending
    }
}

impl Drop for OpFuture {
    fn drop(&mut self) {
        if let Some(id) = self.id.take() {
            let mut shared = lock(&self.shared);
            if let Some(op) = shared.ops.get_mut(&id) {
                op.abandoned = true;
                op.waker = None;
                if op.result.is_some() {
                    shared.ops.remove(&id);
                }
            }
        }
    }
}

/// From a blocking thread to the scheduler.
pub enum ThreadMsg {
    /// The thread registered an operation and waits for it.
    Parked,
    /// The command is done.
    Done,
}

/// The thread's end of its link to the scheduler.
pub struct ThreadLink {
    /// To the scheduler.
    pub to_scheduler: Sender<ThreadMsg>,
    /// From the scheduler: a resume (`None`) or a command.
    pub from_scheduler: Mutex<Receiver<Option<crate::world::Command>>>,
}

/// The payload a dead process's thread unwinds with: a crashed process runs no further code,
/// so its caller thread stops where it is (its destructors run, as the OS would close its
/// files) rather than looping on failing calls while simulated time stands still.
pub struct ProcessDead;

/// Stops the calling thread of a dead process (see [`ProcessDead`]); while it is already
/// unwinding (a destructor's call), the operation fails at once instead.
fn dead(kind: &OpKind) -> OpResult {
    if std::thread::panicking() {
        return dead_result(kind);
    }
    std::panic::resume_unwind(Box::new(ProcessDead))
}

/// Runs an operation from a blocking thread: registers it, parks until the scheduler completes
/// it. A dead incarnation's thread stops (see [`ProcessDead`]).
pub fn block_on_op(shared: &SharedRef, link: &ThreadLink, actor: Actor, kind: OpKind) -> OpResult {
    let id = {
        let mut s = lock(shared);
        if !s.is_alive(actor) {
            drop(s);
            return dead(&kind);
        }
        s.register(actor, kind, None)
    };
    let _ = link.to_scheduler.send(ThreadMsg::Parked);
    // The scheduler sends a resume once the result is set (or the process died).
    let _ = link
        .from_scheduler
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .recv();
    let mut s = lock(shared);
    let op = s.ops.remove(&id);
    let alive = s.is_alive(actor);
    drop(s);
    match op {
        Some(Op {
            result: Some(result),
            ..
        }) if alive => result,
        Some(Op { kind: Some(k), .. }) => dead(&k),
        _ => dead(&OpKind::Sleep(Duration::ZERO)),
    }
}

/// The true clock, in µs since the simulation's epoch, and each host's wall-clock offset.
#[derive(Debug, Default)]
pub struct TrueClock {
    now: AtomicU64,
    offsets: Vec<AtomicI64>,
}

impl TrueClock {
    /// A clock at 0 with these wall-clock offsets (µs).
    pub fn new(offsets: &[i64]) -> Self {
        Self {
            now: AtomicU64::new(0),
            offsets: offsets.iter().map(|o| AtomicI64::new(*o)).collect(),
        }
    }

    /// The true time.
    pub fn now(&self) -> u64 {
        self.now.load(Ordering::Relaxed)
    }

    /// Moves to `t` (never back).
    pub fn set(&self, t: u64) {
        self.now.fetch_max(t, Ordering::Relaxed);
    }

    /// A host's wall-clock offset.
    pub fn offset(&self, host: usize) -> i64 {
        self.offsets[host].load(Ordering::Relaxed)
    }

    /// Steps a host's wall clock by `delta` µs.
    pub fn step(&self, host: usize, delta: i64) {
        self.offsets[host].fetch_add(delta, Ordering::Relaxed);
    }
}

/// A process's view of time: monotonic = true time from its OS process's base; wall = true
/// time plus its host's offset (skew and steps); randomness from the run's seed.
#[derive(Clone)]
pub struct SimEnv {
    clock: Arc<TrueClock>,
    host: usize,
    mono_base: Instant,
    rng: Arc<Mutex<Rng>>,
    coarse: Option<Coarse>,
}

/// A process's coarse clocks ([`crate::config::CoarseSim`]).
#[derive(Debug, Clone, Copy)]
struct Coarse {
    sim: crate::config::CoarseSim,
    /// Where the host's ticks fall (µs into a tick at true time 0).
    phase_us: u64,
    /// How far back the process's monotonic anchor sits (µs, at most thirteen ticks).
    anchor_back_us: u64,
}

impl SimEnv {
    /// The environment of a process on `host` whose monotonic clock reads `mono_base` at 0.
    pub fn new(clock: Arc<TrueClock>, host: usize, mono_base: Instant, seed: u64) -> Self {
        Self {
            clock,
            host,
            mono_base,
            rng: Arc::new(Mutex::new(Rng::new(seed))),
            coarse: None,
        }
    }

    /// The same, whose `clocks()` (a session's cached path) reads coarse clocks: the host's
    /// ticks fall `phase_us` into each tick, the monotonic anchor sits `anchor_back_us` back
    /// (at most thirteen ticks).
    pub fn with_coarse(
        mut self,
        sim: crate::config::CoarseSim,
        phase_us: u64,
        anchor_back_us: u64,
    ) -> Self {
        self.coarse = Some(Coarse {
            sim,
            phase_us: phase_us % sim.tick_us,
            anchor_back_us: anchor_back_us.min(13 * sim.tick_us),
        });
        self
    }

    /// The wall clock at true time `t` for an offset `offset`.
    pub fn wall_at(t: u64, offset: i64) -> SystemTime {
        let micros = (EPOCH_SECS as i128) * 1_000_000 + t as i128 + offset as i128;
        UNIX_EPOCH + Duration::from_micros(micros.max(0) as u64)
    }
}

impl Environment for SimEnv {
    fn now(&self) -> Instant {
        self.mono_base + Duration::from_micros(self.clock.now())
    }

    fn wall_clock(&self) -> SystemTime {
        Self::wall_at(self.clock.now(), self.clock.offset(self.host))
    }

    fn random_seed(&self) -> u64 {
        self.rng
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .next_u64()
    }

    fn clocks(&self) -> Now {
        let Some(c) = self.coarse else {
            return Now::new(self.wall_clock(), self.now());
        };
        let t = self.clock.now();
        // As of the host's last tick, that tick itself up to `stall_ticks` late.
        let ticked =
            t.saturating_sub((t + c.phase_us) % c.sim.tick_us + c.sim.stall_ticks * c.sim.tick_us);
        Now::new(
            Self::wall_at(ticked, self.clock.offset(self.host)),
            self.mono_base + Duration::from_micros(ticked.saturating_sub(c.anchor_back_us)),
        )
    }

    fn clocks_lag(&self) -> Duration {
        self.coarse
            .map_or(Duration::ZERO, |c| Duration::from_micros(c.sim.lag_us()))
    }
}
