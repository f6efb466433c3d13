//! The world and its scheduler: processes running the real managers, the simulated Cognito,
//! the store, the network, the faults, and one event queue on the true clock.
//!
//! One step is: take the earliest event (ties in the order they were scheduled), apply it
//! (complete an operation, deliver a response, crash a process, start a call…), then poll every
//! task it made ready and run every blocking thread it resumed until nothing can move without
//! time passing, then check the invariants (see the [crate docs](crate#invariants)).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use cogref_core::driver::{HttpRequest, HttpResponse};
use cogref_core::secrecy::{ExposeSecret, SecretString};
use cogref_core::{
    Client, Endpoint, EndpointConfig, RefreshInput, TokenSet, TransportError, TransportErrorKind,
};
use cogref_session::{
    BlockingTokenManager, MemoryStore, SessionError, SessionEvent, StoreError, StoreGuard,
    TokenManager, TokenStore, Versioned,
};

use crate::adapters::{SimBlockingNet, SimBlockingStore, SimNet, SimStore, StampReader};
use crate::capture::Capture;
use crate::check::Ghost;
use crate::cognito::{Answer, Cognito, CognitoConfig};
use crate::config::{Mutant, Planned, SEC, StoreKind, WorldConfig};
use crate::executor::{Executor, Polled, Task, TaskKind};
use crate::model::{Handle, Kind, StoreModel, Ticket};
use crate::rng::Rng;
use crate::shared::{
    Actor, CallId, Notice, OpKind, OpResult, ProcessDead, Shared, SharedRef, SimEnv, StoreCall,
    TaskId, ThreadLink, ThreadMsg, TrueClock, lock,
};

/// The async manager as the simulation runs it.
pub type AsyncManager = TokenManager<SimNet, SimEnv, SimStore>;
/// The blocking manager as the simulation runs it.
pub type BlockingManager = BlockingTokenManager<SimBlockingNet, SimEnv, SimBlockingStore>;

/// What a caller asks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallKind {
    /// `access_token()`.
    Token,
    /// `refresh_now()`.
    Force,
}

/// A command for a blocking process's caller thread.
pub enum Command {
    /// Build the manager (it loads the store).
    Build,
    /// Make a call.
    Call(CallId, CallKind),
}

/// An invariant broken.
#[derive(Debug, Clone)]
pub struct Violation {
    /// Which invariant (see the crate docs).
    pub invariant: &'static str,
    /// True time (µs).
    pub at_us: u64,
    /// What happened.
    pub detail: String,
}

/// How a store operation goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fate {
    Normal,
    /// Fails without effect.
    Fail,
    /// Applied, then the process dies before the reply.
    CrashAfter,
    /// A file save whose writer dies between its temporary file and the rename.
    Torn,
    /// Applied, but the reply is an error (a Redis command that timed out on the client).
    AppliedButFailed,
}

enum Event {
    Complete(u64, OpResult),
    Arrive {
        op: u64,
        request: HttpRequest,
        reply_us: u64,
        lose: bool,
        late: bool,
    },
    Deliver {
        op: u64,
        response: HttpResponse,
        token: Option<usize>,
        grant: Option<usize>,
    },
    Timeout(u64),
    Apply {
        op: u64,
        call: StoreCall,
        fate: Fate,
    },
    WaitTimeout(u64),
    Arrival(usize),
    Cancel(CallId),
    Planned(Planned),
    Crash(usize),
    Restart(usize),
    StartBackground(usize),
    Release(Ticket),
    End,
}

/// Dynamic fault decisions, numbered in the order the fault stream fires them; a replay may
/// enable only some (the shrinker's handle).
pub struct Faults {
    only: Option<BTreeSet<u32>>,
    next: u32,
    /// Faults injected: number, true time, what.
    pub log: Vec<(u32, u64, String)>,
}

impl Faults {
    fn fire(&mut self, now: u64, decided: bool, what: impl FnOnce() -> String) -> bool {
        if !decided {
            return false;
        }
        let n = self.next;
        self.next += 1;
        let on = self.only.as_ref().is_none_or(|s| s.contains(&n));
        if on {
            self.log.push((n, now, what()));
        }
        on
    }
}

/// The shared store, real (memory) or modelled.
pub(crate) enum Backend {
    Memory {
        store: MemoryStore,
        guards: BTreeMap<Ticket, StoreGuard>,
        next: u64,
    },
    Model(StoreModel),
}

impl Backend {
    fn load(&mut self, handle: Handle, now: u64) -> Result<Option<Versioned>, StoreError> {
        match self {
            Backend::Memory { store, .. } => TokenStore::load(store),
            Backend::Model(m) => m.load(handle, now),
        }
    }

    fn save(
        &mut self,
        handle: Handle,
        now: u64,
        wall_us: u64,
        tokens: &TokenSet,
        expected: Option<u64>,
        ignore_expected: bool,
    ) -> Result<u64, StoreError> {
        match self {
            Backend::Memory { store, .. } => {
                let expected = if ignore_expected {
                    TokenStore::load(store)?.map(|v| v.version)
                } else {
                    expected
                };
                TokenStore::save(store, tokens, expected)
            }
            Backend::Model(m) => m.save(handle, now, wall_us, tokens, expected, ignore_expected),
        }
    }

    fn try_lock(&mut self, handle: Handle, now: u64, always: bool) -> Option<Ticket> {
        match self {
            Backend::Memory {
                store,
                guards,
                next,
            } => {
                *next += 1;
                let ticket = Ticket(*next);
                if always {
                    return Some(ticket);
                }
                let guard = TokenStore::try_lock(store).ok().flatten()?;
                guards.insert(ticket, guard);
                Some(ticket)
            }
            Backend::Model(m) => m.try_lock(handle, now, always),
        }
    }

    fn unlock(&mut self, ticket: Ticket, now: u64) -> bool {
        match self {
            Backend::Memory { guards, .. } => guards.remove(&ticket).is_some(),
            Backend::Model(m) => m.unlock(ticket, now),
        }
    }

    fn stored(&self) -> Option<(TokenSet, u64)> {
        match self {
            Backend::Memory { store, .. } => TokenStore::load(store)
                .ok()
                .flatten()
                .map(|v| (v.tokens, v.version)),
            Backend::Model(m) => m.peek(),
        }
    }

    fn publishes(&self) -> u64 {
        match self {
            Backend::Model(m) => m.publishes,
            Backend::Memory { .. } => 0,
        }
    }

    /// The change stamp every handle reports: the real memory store's own, or the model's count
    /// of changes.
    fn stamp(&self) -> Option<u64> {
        match self {
            Backend::Memory { store, .. } => TokenStore::change_stamp(store),
            Backend::Model(m) => Some(m.stamp()),
        }
    }

    fn leases_lost(&self) -> u64 {
        match self {
            Backend::Model(m) => m.leases_lost,
            Backend::Memory { .. } => 0,
        }
    }
}

struct ThreadProc {
    to_thread: Sender<Option<Command>>,
    from_thread: Receiver<ThreadMsg>,
    join: JoinHandle<()>,
    manager: Arc<Mutex<Option<Arc<BlockingManager>>>>,
    busy: bool,
}

pub(crate) struct Proc {
    pub(crate) blocking: bool,
    pub(crate) env: SimEnv,
    pub(crate) inc: u32,
    pub(crate) up: bool,
    pub(crate) ready: bool,
    pub(crate) handle: Handle,
    asyncm: Arc<Mutex<Option<AsyncManager>>>,
    thread: Option<ThreadProc>,
    background: Option<TaskId>,
    /// The refresh token of its manager's session, as last read.
    pub(crate) token: Option<usize>,
    pub(crate) dirty: bool,
}

impl Proc {
    pub(crate) fn actor(&self, process: usize) -> Actor {
        Actor {
            process,
            incarnation: self.inc,
        }
    }

    /// Its manager's session, as it is now (`None` before the manager is built or when down).
    fn session(&self) -> Option<cogref_core::Session> {
        if self.blocking {
            let slot = self.thread.as_ref()?.manager.lock().ok()?.clone()?;
            Some(slot.session())
        } else {
            let slot = self.asyncm.lock().ok()?.clone()?;
            Some(slot.session())
        }
    }

    pub(crate) fn debug_session(&self) -> Option<String> {
        let session = self.session()?;
        Some(format!("{session:?}"))
    }

    /// The access token of its manager's session (not shown anywhere).
    pub(crate) fn held_access(&self) -> Option<usize> {
        let session = self.session()?;
        access_of(session.tokens())
    }

    /// The manager's session refresh token, read afresh; the session's `Debug` goes through
    /// the canary scan (invariant 5).
    pub(crate) fn read_token(&self, capture: &Capture) -> Option<usize> {
        let session = self.session()?;
        capture.scan("a session's Debug", &format!("{session:?}"));
        Cognito::refresh_number(session.tokens().refresh_token.expose_secret())
    }
}

/// A caller's call under way.
pub(crate) struct CallRec {
    pub(crate) actor: Actor,
    pub(crate) kind: CallKind,
    pub(crate) start: u64,
    pub(crate) deadline: u64,
    task: Option<TaskId>,
}

/// What a send is, for the ghost.
pub(crate) struct SendInfo {
    pub(crate) actor: Actor,
    /// Whether a `refresh_now()` of its process was under way.
    pub(crate) forced: bool,
    /// The access token its call started from, when it was the stored set's.
    pub(crate) basis: Option<usize>,
    pub(crate) task: Option<TaskId>,
    /// When the call it belongs to started.
    pub(crate) started: u64,
    pub(crate) timed_out: bool,
    /// When this attempt times out (true µs).
    pub(crate) deadline: u64,
}

/// Counts of what a run did.
#[derive(Debug, Default, Clone)]
pub struct Stats {
    /// Events processed.
    pub events: u64,
    /// Requests Cognito answered.
    pub requests: u64,
    /// Refreshes granted.
    pub grants: u64,
    /// Calls made by callers.
    pub calls: u64,
    /// Calls that returned a token.
    pub tokens: u64,
    /// Process crashes.
    pub crashes: u64,
    /// `refresh_now()` calls.
    pub forced: u64,
}

/// One simulated world.
pub struct World {
    pub(crate) cfg: WorldConfig,
    pub(crate) mutant: Option<Mutant>,
    pub(crate) shared: SharedRef,
    pub(crate) clock: Arc<TrueClock>,
    exec: Executor,
    events: BTreeMap<(u64, u64), Event>,
    seq: u64,
    rng: Rng,
    frng: Rng,
    /// The fault stream.
    pub faults: Faults,
    pub(crate) cognito: Cognito,
    pub(crate) backend: Backend,
    pub(crate) procs: Vec<Proc>,
    pub(crate) ghost: Ghost,
    /// Invariants broken so far.
    pub violations: Vec<Violation>,
    pub(crate) capture: Arc<Capture>,
    pub(crate) calls: BTreeMap<CallId, CallRec>,
    next_call: CallId,
    next_handle: Handle,
    pub(crate) sends: BTreeMap<u64, SendInfo>,
    /// Lock releases under way: when each was issued (by operation).
    unlocks: BTreeMap<u64, (Actor, u64)>,
    /// Each process life's last lock release: when it was issued and when it completed. A
    /// call that returns as its release completes judged its token before the release.
    pub(crate) released: BTreeMap<Actor, (u64, u64)>,
    waiters: BTreeMap<u64, ()>,
    /// Set by a Redis wait that subscribed: its timeout.
    pending_wait: Option<Duration>,
    outage_until: u64,
    busy: Option<(u64, bool)>,
    endpoint: Endpoint,
    template: RefreshInput,
    pub(crate) bounds: (u64, u64),
    ended: bool,
    same_instant: u64,
    /// What the run did.
    pub stats: Stats,
    _dispatch: tracing::dispatcher::DefaultGuard,
}

/// How long (real time) a blocking process's caller thread may run between two calls into the
/// simulation before the run is declared stuck: a simulated call never takes real time, so
/// this only trips on a thread blocked outside the simulation.
const THREAD_WATCHDOG: std::time::Duration = std::time::Duration::from_secs(30);

fn store_latency(rng: &mut Rng) -> u64 {
    if rng.chance(0.05) {
        rng.range(5_000, 200_000)
    } else {
        rng.range(50, 3_000)
    }
}

fn net_latency(rng: &mut Rng) -> u64 {
    if rng.chance(0.05) {
        rng.range(200_000, 2_000_000)
    } else {
        rng.range(2_000, 80_000)
    }
}

impl World {
    /// Builds the world of `cfg`. `only`: enable only these faults (all when `None`); `trace`:
    /// keep a trace of the run.
    pub fn new(
        cfg: WorldConfig,
        mutant: Option<Mutant>,
        only: Option<BTreeSet<u32>>,
        trace: bool,
    ) -> Self {
        let seed = cfg.seed;
        let mut rng = Rng::stream(seed, 2);
        let clock = Arc::new(TrueClock::new(&cfg.host_skews));
        let capture = Capture::new(clock.clone(), trace);
        let dispatch = tracing::dispatcher::set_default(&capture.dispatch());
        let mut cognito = Cognito::new(
            CognitoConfig {
                rotation: cfg.rotation,
                grace_us: cfg.grace_us,
                access_lifetime_s: cfg.access_lifetime_s,
                lineage_end_us: cfg.lineage_end_us,
                client_id: "simclient".into(),
                client_secret: cfg.client_secret.clone(),
            },
            rng.next_u64(),
        );
        if mutant == Some(Mutant::ShortExpiresIn) {
            cognito.short_grant = Some(2);
        }
        let mut backend = match cfg.store {
            StoreKind::Memory => Backend::Memory {
                store: MemoryStore::new(),
                guards: BTreeMap::new(),
                next: 0,
            },
            StoreKind::File => Backend::Model(StoreModel::new(Kind::File)),
            StoreKind::Redis { lease_ttl_us } => {
                Backend::Model(StoreModel::new(Kind::Redis { lease_ttl_us }))
            }
        };
        let endpoint = EndpointConfig::new()
            .region("eu-west-1")
            .resolve()
            .expect("a valid region");
        let mut template = RefreshInput::builder()
            .refresh_token(cognito.refresh_token(0))
            .client_id("simclient");
        if let Some(secret) = &cfg.client_secret {
            template = template.client_secret(secret.clone());
        }
        let template = template.build().expect("a valid template");
        if cfg.seeded_store {
            let set = TokenSet::from_refresh_token(cognito.refresh_token(0), None)
                .bound_to(Some("simclient".into()), Some(endpoint.url().to_owned()));
            let wall = wall_us(0, cfg.host_skews[0]);
            let _ = backend.save(0, 0, wall, &set, None, false);
        }
        let shared: SharedRef = Arc::new(Mutex::new(Shared {
            alive: vec![0; cfg.processes.len()],
            stamp: None,
            ..Shared::default()
        }));
        let base = Instant::now();
        // Managers of one OS process read one monotonic clock; separate processes each count
        // from a base of their own.
        let shared_base = base + Duration::from_secs(rng.range(0, 1_000_000));
        // Coarse clocks: the mutant's stall, else the seed's; drawn from streams of their own
        // (every other draw stays as it was).
        let coarse = match mutant {
            Some(Mutant::CoarseStall) => Some(crate::config::CoarseSim {
                tick_us: 4_000,
                stall_ticks: 500,
            }),
            _ => cfg.coarse,
        };
        let mut coarse_rng = Rng::stream(seed, 5);
        let procs = cfg
            .processes
            .iter()
            .map(|p| Proc {
                blocking: p.blocking,
                env: {
                    let env = SimEnv::new(
                        clock.clone(),
                        p.host,
                        if cfg.one_os_process {
                            shared_base
                        } else {
                            base + Duration::from_secs(rng.range(0, 1_000_000))
                        },
                        rng.next_u64(),
                    );
                    match coarse {
                        Some(coarse) => {
                            // The host's kernel: its own tick (the mutant's is fixed) and phase.
                            let mut host = Rng::stream(seed, 6 + p.host as u64);
                            let tick_us = match mutant {
                                Some(Mutant::CoarseStall) => coarse.tick_us,
                                _ => host.pick(&[1_000, 4_000, 4_000, 10_000]),
                            };
                            env.with_coarse(
                                crate::config::CoarseSim { tick_us, ..coarse },
                                host.below(tick_us),
                                coarse_rng.below(13 * tick_us + 1),
                            )
                        }
                        None => env,
                    }
                },
                inc: 0,
                up: false,
                ready: false,
                handle: 0,
                asyncm: Arc::new(Mutex::new(None)),
                thread: None,
                background: None,
                token: None,
                dirty: false,
            })
            .collect();
        let mut faults = Faults {
            only,
            next: 0,
            log: Vec::new(),
        };
        let mut events = BTreeMap::new();
        let mut seq = 0;
        for (at, planned) in &cfg.planned {
            if faults.fire(*at, true, || format!("{planned:?}")) {
                seq += 1;
                events.insert((*at, seq), Event::Planned(planned.clone()));
            }
        }
        let bounds = crate::check::call_bounds(&cfg);
        let ghost = Ghost::new(&cfg);
        let mut world = Self {
            mutant,
            shared,
            clock,
            exec: Executor::default(),
            events,
            seq,
            rng,
            frng: Rng::stream(seed, 3),
            faults,
            cognito,
            backend,
            procs,
            ghost,
            violations: Vec::new(),
            capture,
            calls: BTreeMap::new(),
            next_call: 0,
            next_handle: 0,
            sends: BTreeMap::new(),
            unlocks: BTreeMap::new(),
            released: BTreeMap::new(),
            waiters: BTreeMap::new(),
            pending_wait: None,
            outage_until: 0,
            busy: None,
            endpoint,
            template,
            bounds,
            ended: false,
            same_instant: 0,
            stats: Stats::default(),
            _dispatch: dispatch,
            cfg,
        };
        world.ghost.stored = world.stored_token();
        for p in 0..world.procs.len() {
            world.start(p);
        }
        let end = world.cfg.horizon_us + world.bounds.1 + SEC;
        world.schedule(end, Event::End);
        world
    }

    fn schedule(&mut self, at: u64, event: Event) {
        self.seq += 1;
        self.events.insert((at, self.seq), event);
    }

    pub(crate) fn now(&self) -> u64 {
        self.clock.now()
    }

    /// Process `p`'s wall clock now, in µs since the Unix epoch.
    pub(crate) fn wall_us_of(&self, p: usize) -> u64 {
        let host = self.cfg.processes[p].host;
        wall_us(self.now(), self.clock.offset(host))
    }

    pub(crate) fn log(&self, line: impl FnOnce() -> String) {
        self.capture.line(line);
    }

    pub(crate) fn violation(&mut self, invariant: &'static str, detail: String) {
        let at_us = self.now();
        self.log(|| format!("VIOLATION {invariant}: {detail}"));
        self.violations.push(Violation {
            invariant,
            at_us,
            detail,
        });
    }

    fn notifies(&self) -> bool {
        matches!(self.cfg.store, StoreKind::Redis { .. })
    }

    /// A store handle's change stamp: a file store reuses its `stat` for
    /// `FileStore::STAMP_MAX_AGE`; the others read theirs on the spot.
    fn stamp_reader(&self) -> Arc<StampReader> {
        let max_age_us = match self.cfg.store {
            StoreKind::File => {
                u64::try_from(cogref_session::FileStore::STAMP_MAX_AGE.as_micros()).unwrap_or(0)
            }
            _ => 0,
        };
        StampReader::new(&self.shared, self.clock.clone(), max_age_us)
    }

    /// The access token of the stored set.
    pub(crate) fn backend_stored_access(&self) -> Option<usize> {
        self.backend.stored().and_then(|(t, _)| access_of(&t))
    }

    fn stored_token(&self) -> Option<usize> {
        self.backend
            .stored()
            .and_then(|(t, _)| Cognito::refresh_number(t.refresh_token.expose_secret()))
    }

    /// Runs the world to its end; the violations found.
    pub fn run(&mut self) {
        loop {
            let stamp = self.backend.stamp();
            lock(&self.shared).stamp = stamp;
            self.settle();
            self.check();
            if self.ended {
                break;
            }
            if self.now() >= self.cfg.horizon_us && self.calls.is_empty() {
                break;
            }
            let Some(((at, _), event)) = self.events.pop_first() else {
                if !self.calls.is_empty() {
                    let stuck: Vec<CallId> = self.calls.keys().copied().collect();
                    self.violation(
                        "6 (every call returns)",
                        format!("deadlock: nothing left to happen while calls {stuck:?} wait"),
                    );
                }
                break;
            };
            if at == self.now() {
                self.same_instant += 1;
            } else {
                self.same_instant = 0;
            }
            if self.same_instant > 100_000 || self.stats.events > 1_000_000 {
                self.violation(
                    "6 (every call returns)",
                    format!(
                        "runaway: {} events, {} of them at this instant without time passing",
                        self.stats.events, self.same_instant
                    ),
                );
                break;
            }
            self.clock.set(at);
            self.stats.events += 1;
            if std::env::var_os("SIM_DEBUG").is_some() && self.stats.events.is_multiple_of(10_000) {
                eprintln!(
                    "{} events at {} µs; {}",
                    self.stats.events,
                    at,
                    self.debug_event(&event)
                );
            }
            self.handle(event);
        }
        self.finish();
    }

    // ---- processes --------------------------------------------------------------------

    fn start(&mut self, p: usize) {
        let inc = self.procs[p].inc + 1;
        self.next_handle += 1;
        let handle = self.next_handle;
        {
            let proc = &mut self.procs[p];
            proc.inc = inc;
            proc.up = true;
            proc.ready = false;
            proc.handle = handle;
            proc.dirty = true;
            proc.background = None;
        }
        lock(&self.shared).alive[p] = inc;
        let actor = Actor {
            process: p,
            incarnation: inc,
        };
        self.log(|| format!("process {p} starts (life {inc})"));
        let capture = self.capture.clone();
        let listener = move |event: &SessionEvent| scan_event(&capture, event);
        if self.procs[p].blocking {
            self.start_thread(p, actor, listener);
        } else {
            let client = Client::new(
                SimNet::new(&self.shared, actor),
                self.procs[p].env.clone(),
                self.endpoint.clone(),
                self.cfg.call,
            );
            let store = SimStore::new(&self.shared, actor, self.notifies(), self.stamp_reader());
            let builder = TokenManager::builder(client, self.template.clone(), store)
                .session_config(self.cfg.session)
                .lock_timeout(self.cfg.lock_timeout)
                .refresh_without_store_lock(self.cfg.unlocked_opt_in)
                .on_event(listener);
            let slot = self.procs[p].asyncm.clone();
            let shared = self.shared.clone();
            let build = async move {
                let error = match builder.build().await {
                    Ok(manager) => {
                        *slot.lock().unwrap_or_else(|e| e.into_inner()) = Some(manager);
                        None
                    }
                    Err(e) => Some(e),
                };
                lock(&shared).notices.push(Notice::Built { actor, error });
            };
            self.exec
                .spawn(Box::pin(build), actor, TaskKind::Build, None);
        }
    }

    fn start_thread(
        &mut self,
        p: usize,
        actor: Actor,
        listener: impl Fn(&SessionEvent) + Send + Sync + 'static,
    ) {
        let (to_thread, thread_rx) = channel::<Option<Command>>();
        let (thread_tx, from_thread) = channel::<ThreadMsg>();
        let link = Arc::new(ThreadLink {
            to_scheduler: thread_tx,
            from_scheduler: Mutex::new(thread_rx),
        });
        let manager: Arc<Mutex<Option<Arc<BlockingManager>>>> = Arc::new(Mutex::new(None));
        let client = Client::new(
            SimBlockingNet::new(&self.shared, actor, link.clone()),
            self.procs[p].env.clone(),
            self.endpoint.clone(),
            self.cfg.call,
        );
        let store = SimBlockingStore::new(
            &self.shared,
            actor,
            self.notifies(),
            link.clone(),
            self.stamp_reader(),
        );
        let builder = BlockingTokenManager::builder(client, self.template.clone(), store)
            .session_config(self.cfg.session)
            .lock_timeout(self.cfg.lock_timeout)
            .refresh_without_store_lock(self.cfg.unlocked_opt_in)
            .on_event(listener);
        let dispatch = self.capture.dispatch();
        let shared = self.shared.clone();
        let slot = manager.clone();
        let join = std::thread::Builder::new()
            .name(format!("sim-p{p}"))
            .stack_size(512 * 1024)
            .spawn(move || {
                let _guard = tracing::dispatcher::set_default(&dispatch);
                blocking_main(builder, link, slot, shared, actor);
            })
            .expect("a thread for a blocking process");
        self.procs[p].thread = Some(ThreadProc {
            to_thread,
            from_thread,
            join,
            manager,
            busy: true,
        });
        self.command(p, Command::Build);
    }

    fn command(&mut self, p: usize, command: Command) {
        if let Some(t) = &mut self.procs[p].thread {
            t.busy = true;
            let _ = t.to_thread.send(Some(command));
        }
        self.wait_thread(p);
    }

    fn resume(&mut self, p: usize) {
        if let Some(t) = &self.procs[p].thread {
            let _ = t.to_thread.send(None);
        }
        self.wait_thread(p);
    }

    /// Waits until the process's thread parks on an operation or finishes its command.
    fn wait_thread(&mut self, p: usize) {
        self.procs[p].dirty = true;
        let Some(t) = &mut self.procs[p].thread else {
            return;
        };
        match t.from_thread.recv_timeout(THREAD_WATCHDOG) {
            Ok(ThreadMsg::Parked) => {}
            Ok(ThreadMsg::Done) => {
                t.busy = false;
                let actor = self.procs[p].actor(p);
                self.ghost.task_gone(actor, None, false);
            }
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                // Blocked outside the simulation (a real lock, a real sleep, a spin): the run
                // cannot go on. The thread is left behind; its channel is dropped.
                self.procs[p].thread = None;
                self.violation(
                    "6 (every call returns)",
                    format!(
                        "the caller thread of process {p} neither parked nor returned within {} s of real time: it blocks outside the simulation",
                        THREAD_WATCHDOG.as_secs()
                    ),
                );
                self.ended = true;
                return;
            }
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                t.busy = false;
                self.violation(
                    "0 (no panic)",
                    format!("the caller thread of process {p} died"),
                );
            }
        }
        self.drain();
    }

    fn stop_thread(&mut self, p: usize) {
        // Dead now: every operation it makes returns at once; run it to the end of its call.
        while self.procs[p].thread.as_ref().is_some_and(|t| t.busy) {
            self.resume(p);
        }
        if let Some(t) = self.procs[p].thread.take() {
            drop(t.to_thread);
            let _ = t.join.join();
        }
    }

    fn crash(&mut self, p: usize, why: &str) {
        if !self.procs[p].up {
            return;
        }
        let actor = self.procs[p].actor(p);
        self.log(|| format!("process {p} crashes ({why})"));
        self.stats.crashes += 1;
        self.procs[p].up = false;
        self.procs[p].ready = false;
        lock(&self.shared).alive[p] = 0;
        self.ghost.crashed(actor, self.procs[p].token);
        // Answers on their way to it will find nobody: what they carry is lost now.
        let doomed: Vec<u64> = self
            .ghost
            .in_flight
            .keys()
            .copied()
            .filter(|op| self.sends.get(op).is_some_and(|s| s.actor == actor))
            .collect();
        for op in doomed {
            let token = self.ghost.in_flight.remove(&op);
            self.ghost.lost_response(token);
        }
        self.procs[p].token = None;
        self.calls.retain(|_, c| c.actor != actor);
        let handle = self.procs[p].handle;
        if let Backend::Model(m) = &mut self.backend {
            m.crash(handle);
        }
        self.release_all(actor, true);
        let tasks = self.exec.take_where(|_, t| t.actor == actor);
        self.drop_tasks(tasks, true);
        let manager = self.procs[p].asyncm.lock().ok().and_then(|mut m| m.take());
        drop(manager);
        self.stop_thread(p);
        self.drain();
    }

    /// Releases what `actor` held: a file lock and a memory lock die with their holder; a
    /// Redis lease stays until its time to live.
    fn release_all(&mut self, actor: Actor, dead: bool) {
        let tickets: Vec<Ticket> = self
            .ghost
            .locks
            .iter()
            .filter(|(_, a)| **a == actor)
            .map(|(t, _)| *t)
            .collect();
        for ticket in tickets {
            self.ghost.locks.remove(&ticket);
            match &mut self.backend {
                Backend::Memory { guards, .. } => {
                    guards.remove(&ticket);
                }
                Backend::Model(m) if m.kind() == Kind::File => {
                    m.unlock(ticket, self.clock.now());
                }
                Backend::Model(_) if !dead => {
                    let at = self.now() + store_latency(&mut self.rng);
                    self.schedule(at, Event::Release(ticket));
                }
                Backend::Model(_) => {}
            }
        }
    }

    fn drop_tasks(&mut self, tasks: Vec<(TaskId, Task)>, crash: bool) {
        for (id, task) in &tasks {
            self.ghost.task_gone(task.actor, Some(*id), crash);
            if self.procs[task.actor.process].background == Some(*id) {
                self.procs[task.actor.process].background = None;
            }
        }
        // Dropped outside any lock: their futures and guards report through `Shared`.
        drop(tasks);
        self.drain();
    }

    // ---- the settle loop ----------------------------------------------------------------

    /// Issues what tasks and threads registered, adds what they spawned, reads their notices.
    fn drain(&mut self) {
        loop {
            let (fresh, spawned, notices) = {
                let mut s = lock(&self.shared);
                (
                    std::mem::take(&mut s.fresh),
                    std::mem::take(&mut s.spawned),
                    std::mem::take(&mut s.notices),
                )
            };
            if fresh.is_empty() && spawned.is_empty() && notices.is_empty() {
                return;
            }
            for id in fresh {
                self.issue(id);
            }
            for s in spawned {
                if !lock(&self.shared).is_alive(s.actor) {
                    continue;
                }
                let parent = match self.mutant {
                    Some(Mutant::Attached) => s.parent,
                    _ => None,
                };
                self.exec.spawn(s.task, s.actor, TaskKind::Detached, parent);
            }
            for n in notices {
                self.notice(n);
            }
        }
    }

    fn settle(&mut self) {
        loop {
            self.drain();
            let Some((id, polled)) = self.exec.poll_next(&self.shared) else {
                return;
            };
            match polled {
                Polled::Pending => {
                    if let Some(t) = self.exec.get(id) {
                        self.procs[t.actor.process].dirty = true;
                    }
                }
                Polled::Finished(task) => {
                    self.procs[task.actor.process].dirty = true;
                    self.ghost.task_gone(task.actor, Some(id), false);
                    drop(task);
                }
                Polled::Panicked(task, message) => {
                    let actor = task.actor;
                    self.ghost.task_gone(actor, Some(id), false);
                    drop(task);
                    self.violation(
                        "0 (no panic)",
                        format!("a task of process {} panicked: {message}", actor.process),
                    );
                }
            }
        }
    }

    fn notice(&mut self, notice: Notice) {
        match notice {
            Notice::GuardDropped { ticket, actor } => {
                let alive = lock(&self.shared).is_alive(actor);
                self.ghost.locks.remove(&ticket);
                match &mut self.backend {
                    Backend::Memory { guards, .. } => {
                        guards.remove(&ticket);
                    }
                    Backend::Model(m) if m.kind() == Kind::File => {
                        m.unlock(ticket, self.clock.now());
                    }
                    // A live process's dropped lease is released by a command of its own;
                    // a dead one's stays until its time to live.
                    Backend::Model(_) if alive => {
                        let at = self.now() + store_latency(&mut self.rng);
                        self.schedule(at, Event::Release(ticket));
                    }
                    Backend::Model(_) => {}
                }
            }
            Notice::Outcome { call, result } => self.outcome(call, result),
            Notice::Built { actor, error } => {
                let p = actor.process;
                if self.procs[p].inc != actor.incarnation || !self.procs[p].up {
                    return;
                }
                if let Some(e) = error {
                    self.scan_error("build error", &e);
                    self.log(|| format!("process {p} could not build its manager: {e}"));
                    let at = self.now() + SEC;
                    self.schedule(at, Event::Restart(p));
                    return;
                }
                self.procs[p].ready = true;
                self.procs[p].dirty = true;
                if !self.procs[p].blocking && self.cfg.processes[p].background {
                    self.start_background(p);
                }
                let mean = self.cfg.processes[p].call_mean_us;
                let at = self.now() + self.rng.exp(mean);
                self.schedule(at, Event::Arrival(p));
            }
            Notice::Panic(message) => {
                self.violation("0 (no panic)", message);
            }
        }
    }

    fn start_background(&mut self, p: usize) {
        let Some(manager) = self.procs[p].asyncm.lock().ok().and_then(|m| m.clone()) else {
            return;
        };
        let actor = self.procs[p].actor(p);
        let task = async move { manager.run_background().await };
        let id = self
            .exec
            .spawn(Box::pin(task), actor, TaskKind::Background, None);
        self.procs[p].background = Some(id);
    }

    // ---- callers ------------------------------------------------------------------------

    fn arrival(&mut self, p: usize) {
        let now = self.now();
        if now >= self.cfg.horizon_us || !self.procs[p].up {
            return;
        }
        let mean = self.cfg.processes[p].call_mean_us;
        let next = now + self.rng.exp(mean);
        self.schedule(next, Event::Arrival(p));
        if !self.procs[p].ready {
            return;
        }
        let kind = if self.rng.chance(self.cfg.processes[p].force_share) {
            CallKind::Force
        } else {
            CallKind::Token
        };
        let actor = self.procs[p].actor(p);
        self.next_call += 1;
        let call = self.next_call;

        let deadline = now
            + match kind {
                CallKind::Token => self.bounds.0,
                CallKind::Force => self.bounds.1,
            };
        if self.procs[p].blocking {
            if self.procs[p].thread.as_ref().is_none_or(|t| t.busy) {
                return;
            }
            self.stats.calls += 1;
            self.call_started(actor, kind);
            self.calls.insert(
                call,
                CallRec {
                    actor,
                    kind,
                    start: now,
                    deadline,
                    task: None,
                },
            );
            self.log(|| format!("process {p} call {call}: {kind:?}"));
            self.command(p, Command::Call(call, kind));
            return;
        }
        let Some(manager) = self.procs[p].asyncm.lock().ok().and_then(|m| m.clone()) else {
            return;
        };
        let shared = self.shared.clone();
        let task = async move {
            let result = match kind {
                CallKind::Token => manager.access_token().await,
                CallKind::Force => manager.refresh_now().await,
            };
            lock(&shared).notices.push(Notice::Outcome { call, result });
        };
        self.stats.calls += 1;
        self.call_started(actor, kind);
        let id = self
            .exec
            .spawn(Box::pin(task), actor, TaskKind::Caller(call), None);
        self.calls.insert(
            call,
            CallRec {
                actor,
                kind,
                start: now,
                deadline,
                task: Some(id),
            },
        );
        self.log(|| format!("process {p} call {call}: {kind:?}"));
        let cancel = self.cfg.rates.cancel;
        let decided = self.frng.chance(cancel);
        if self.faults.fire(now, decided, || {
            format!("cancel call {call} of process {p}")
        }) {
            let after = match self.rng.below(4) {
                0 => 0,
                1 => self.rng.range(1, 100_000),
                2 => self.rng.range(100_000, 5 * SEC),
                _ => self.rng.range(5 * SEC, 60 * SEC),
            };
            self.schedule(now + after, Event::Cancel(call));
        }
    }

    fn call_started(&mut self, actor: Actor, kind: CallKind) {
        if kind == CallKind::Force {
            self.stats.forced += 1;
            let now = self.now();
            self.ghost.forces.entry(actor).or_default().push_back(now);
        }
    }

    fn cancel(&mut self, call: CallId) {
        let Some(rec) = self.calls.get(&call) else {
            return;
        };
        let Some(task) = rec.task else {
            return;
        };
        self.calls.remove(&call);
        self.log(|| format!("call {call} cancelled"));
        // With the detached completion removed, what the caller spawned goes with it.
        let mut doomed: BTreeSet<TaskId> = BTreeSet::from([task]);
        loop {
            let more: Vec<(TaskId, Task)> = self
                .exec
                .take_where(|_, t| t.parent.is_some_and(|p| doomed.contains(&p)));
            if more.is_empty() {
                break;
            }
            for (id, _) in &more {
                doomed.insert(*id);
            }
            self.drop_tasks(more, false);
        }
        let tasks = self.exec.take_where(|id, _| id == task);
        self.drop_tasks(tasks, false);
    }

    fn outcome(&mut self, call: CallId, result: Result<SecretString, SessionError>) {
        let Some(rec) = self.calls.remove(&call) else {
            return;
        };
        let now = self.now();
        match &result {
            Ok(token) => {
                self.stats.tokens += 1;
                self.log(|| format!("call {call} returns a token"));
                self.served(&rec, token.expose_secret());
            }
            Err(e) => {
                self.log(|| format!("call {call} returns an error: {e}"));
                self.scan_error("a caller's error", e);
            }
        }
        if now > rec.deadline {
            self.violation(
                "6 (every call returns)",
                format!(
                    "call {call} ({:?}) of process {} took {:.3} s, over its bound of {:.3} s",
                    rec.kind,
                    rec.actor.process,
                    (now - rec.start) as f64 / 1e6,
                    (rec.deadline - rec.start) as f64 / 1e6
                ),
            );
        }
    }

    pub(crate) fn scan_error(&self, what: &str, e: &SessionError) {
        self.capture.scan(what, &e.to_string());
        self.capture.scan(what, &format!("{e:?}"));
    }

    // ---- operations ---------------------------------------------------------------------

    fn issue(&mut self, id: u64) {
        let (actor, task, kind) = {
            let mut s = lock(&self.shared);
            let Some(op) = s.ops.get_mut(&id) else {
                return;
            };
            let Some(kind) = op.kind.take() else {
                return;
            };
            (op.actor, op.task, kind)
        };
        let now = self.now();
        match kind {
            OpKind::Sleep(d) => {
                // Rounded up, as a real timer does: a sleep never ends before it is due.
                let micros = d.as_nanos().div_ceil(1000).min(u128::from(u64::MAX / 4)) as u64;
                let at = now.saturating_add(micros);
                self.schedule(at, Event::Complete(id, OpResult::Slept));
            }
            OpKind::Send { request, timeout } => self.issue_send(id, actor, task, request, timeout),
            OpKind::Store(call) => self.issue_store(id, actor, call),
        }
    }

    fn issue_send(
        &mut self,
        id: u64,
        actor: Actor,
        task: Option<TaskId>,
        request: HttpRequest,
        timeout: Duration,
    ) {
        let now = self.now();
        if self.mutant == Some(Mutant::Leaky) {
            tracing::trace!(target: "sim::leaky_transport", body = ?request.body(), "sending");
        }
        let (started, forced, basis) = self.ghost_send(actor, &request);
        self.log(|| {
            let body: serde_json::Value =
                serde_json::from_slice(request.body()).unwrap_or_default();
            let token = body["RefreshToken"]
                .as_str()
                .and_then(Cognito::refresh_number);
            format!(
                "process {} sends refresh token {token:?} (op {id}{})",
                actor.process,
                if forced { ", for refresh_now" } else { "" }
            )
        });
        let timeout = timeout.as_micros().min(u128::from(u64::MAX / 4)) as u64;
        self.sends.insert(
            id,
            SendInfo {
                actor,
                forced,
                basis,
                task,
                started,
                timed_out: false,
                deadline: now + timeout,
            },
        );
        let p = actor.process;
        let rates = self.cfg.rates.clone();
        let d = self.frng.chance(rates.connect_fail);
        if self
            .faults
            .fire(now, d, || format!("connection refused for process {p}"))
        {
            let at = now + self.rng.range(100, 50_000);
            let error = TransportError::new(TransportErrorKind::Connect, "connection refused");
            self.schedule(at, Event::Complete(id, OpResult::Http(Err(error.into()))));
            return;
        }
        let d = self.frng.chance(rates.crash);
        if self.faults.fire(now, d, || {
            format!("process {p} crashes before its request leaves")
        }) {
            self.schedule(now, Event::Crash(p));
            return;
        }
        self.schedule(now + timeout, Event::Timeout(id));
        let d = self.frng.chance(rates.request_lost);
        if self.faults.fire(now, d, || {
            format!("request of process {p} lost before Cognito")
        }) {
            return;
        }
        let d1 = net_latency(&mut self.rng);
        let d = self.frng.chance(rates.slow);
        let slow = self.faults.fire(now, d, || {
            format!("response to process {p} slower than its timeout")
        });
        let reply_us = if slow {
            timeout + self.rng.range(0, timeout.max(1))
        } else {
            net_latency(&mut self.rng)
        };
        let d = self.frng.chance(rates.response_lost);
        let lose = self.faults.fire(now, d, || {
            format!("response to process {p} lost after Cognito acted")
        });
        self.schedule(
            now + d1,
            Event::Arrive {
                op: id,
                request,
                reply_us,
                lose,
                late: slow,
            },
        );
    }

    fn arrive(&mut self, op: u64, request: HttpRequest, reply_us: u64, lose: bool, late: bool) {
        let now = self.now();
        let busy = self.busy.filter(|(until, _)| now < *until).map(|(_, t)| t);
        let (response, answer) = self.cognito.handle(now, &request, busy);
        self.stats.requests += 1;
        // Whether the answer can no longer reach a caller: its attempt timed out (the request
        // itself was slow) or will have before the answer arrives (a fault, or plain latency
        // past a short attempt timeout), or its process died.
        let overdue = self.sends.get(&op).is_some_and(|s| {
            s.timed_out || now + reply_us >= s.deadline || !lock(&self.shared).is_alive(s.actor)
        });
        let (token, grant, lost) = match answer {
            Answer::Granted(g) => {
                self.stats.grants += 1;
                // A granted answer lost excuses one extra grant: its own (when a retry was
                // granted first) or the next.
                let lost = lose || late || overdue;
                if lost {
                    self.ghost.granted_response_faulted();
                }
                self.ghost_grant(op, g);
                (self.cognito.grants[g].minted, Some(g), lost)
            }
            Answer::Reused(t) => {
                // A request that outlived its attempt (and its lock) refused as a reuse: its
                // sender gave up on it long ago, and the refusal goes nowhere.
                if !overdue {
                    self.ghost_reuse(op, t);
                }
                (None, None, false)
            }
            _ => (None, None, false),
        };
        self.log(|| {
            format!(
                "Cognito answers op {op}: {answer:?} (status {})",
                response.status()
            )
        });
        if lost {
            // It never reaches its caller: what it carries is lost now.
            self.ghost.lost_response(token);
        } else if let Some(t) = token {
            self.ghost.in_flight.insert(op, t);
        }
        if lose {
            return;
        }
        self.schedule(
            now + reply_us,
            Event::Deliver {
                op,
                response,
                token,
                grant,
            },
        );
    }

    fn deliver(
        &mut self,
        op: u64,
        response: HttpResponse,
        token: Option<usize>,
        grant: Option<usize>,
    ) {
        let now = self.now();
        self.ghost.in_flight.remove(&op);
        let Some((actor, task, started, timed_out)) = self
            .sends
            .get(&op)
            .map(|s| (s.actor, s.task, s.started, s.timed_out))
        else {
            return;
        };
        let p = actor.process;
        let alive = lock(&self.shared).is_alive(actor);
        if alive && grant.is_some() {
            let d = self.frng.chance(self.cfg.rates.crash);
            if self.faults.fire(now, d, || {
                format!("process {p} crashes as its response arrives")
            }) {
                self.crash(p, "as its response arrives");
            }
        }
        let alive = lock(&self.shared).is_alive(actor);
        if self.complete(op, OpResult::Http(Ok(response))) {
            {
                if let Some(t) = token {
                    self.ghost.delivered(actor, task, t);
                }
                if let Some(g) = grant {
                    let access = self.cognito.grants[g].access;
                    let offset = self.ghost.offset_at(actor.process, started);
                    self.ghost
                        .access_from
                        .insert(access, (actor, started, offset));
                }
            }
        } else {
            {
                // Not delivered: too late (a slow response), to a dead process, or to a future
                // its live process dropped.
                if grant.is_some() {
                    if timed_out || !alive {
                        self.ghost.lost_response(token);
                    } else {
                        self.log(|| format!("response to op {op} reached a dropped future"));
                    }
                }
            }
        }
        self.sends.remove(&op);
    }

    fn timeout(&mut self, op: u64) {
        let error = TransportError::new(TransportErrorKind::Timeout, "attempt timed out");
        if self.complete(op, OpResult::Http(Err(error.into())))
            && let Some(s) = self.sends.get_mut(&op)
        {
            s.timed_out = true;
        }
    }

    /// Sets an operation's result and wakes its task or thread; whether anybody still waited
    /// for it.
    fn complete(&mut self, id: u64, result: OpResult) -> bool {
        let (waker, thread) = {
            let mut s = lock(&self.shared);
            let alive = match s.ops.get(&id) {
                Some(op) => s.is_alive(op.actor),
                None => return false,
            };
            let Some(op) = s.ops.get_mut(&id) else {
                return false;
            };
            if op.abandoned || op.result.is_some() || !alive {
                if op.abandoned || !alive {
                    s.ops.remove(&id);
                }
                return false;
            }
            op.result = Some(result);
            let thread = op.task.is_none().then_some(op.actor.process);
            (op.waker.take(), thread)
        };
        if let Some(w) = waker {
            w.wake();
        }
        if let Some(p) = thread {
            self.resume(p);
        }
        true
    }

    fn issue_store(&mut self, id: u64, actor: Actor, call: StoreCall) {
        let now = self.now();
        if let StoreCall::Unlock(_) = call {
            self.unlocks.insert(id, (actor, now));
        }
        let p = actor.process;
        let rates = self.cfg.rates.clone();
        let torn_possible =
            matches!(call, StoreCall::Save { .. }) && self.cfg.store == StoreKind::File;
        let d = self.frng.chance(rates.crash);
        let fate = if self.faults.fire(now, d, || {
            format!("process {p} crashes at a store operation")
        }) {
            match self.rng.below(3) {
                0 => {
                    self.log(|| format!("process {p} crashes before its store operation"));
                    self.schedule(now, Event::Crash(p));
                    return;
                }
                1 if torn_possible => Fate::Torn,
                _ => Fate::CrashAfter,
            }
        } else {
            let d = self.frng.chance(rates.store_error);
            if self
                .faults
                .fire(now, d, || format!("a store operation of process {p} fails"))
            {
                if self.notifies() && self.rng.chance(0.5) {
                    Fate::AppliedButFailed
                } else {
                    Fate::Fail
                }
            } else {
                Fate::Normal
            }
        };
        let at = now + store_latency(&mut self.rng);
        self.schedule(at, Event::Apply { op: id, call, fate });
    }

    fn apply(&mut self, op: u64, call: StoreCall, fate: Fate) {
        let now = self.now();
        let (actor, alive) = {
            let s = lock(&self.shared);
            match s.ops.get(&op) {
                Some(o) => (o.actor, s.is_alive(o.actor)),
                None => return,
            }
        };
        let p = actor.process;
        // A dead process's file and memory operations never happen (they were its own
        // system calls); a command it sent to Redis still runs.
        if !alive && !self.notifies() {
            lock(&self.shared).ops.remove(&op);
            return;
        }
        let reply = now + store_latency(&mut self.rng);
        let failure = || StoreError::Other("simulated store failure".into());
        // Releasing a file or memory lock is closing a file or dropping a guard: it cannot
        // fail. A Redis release that fails leaves the lease to run out.
        let releases_locally = matches!(call, StoreCall::Unlock(_)) && !self.notifies();
        if (now < self.outage_until || fate == Fate::Fail) && !releases_locally {
            let result = failed(&call, failure());
            self.store_failed(&call);
            let at = if now < self.outage_until {
                now + self.rng.range(1_000, 2 * SEC)
            } else {
                reply
            };
            self.schedule(at, Event::Complete(op, result));
            return;
        }
        if fate == Fate::Torn {
            let wall = self.wall_us_of(p);
            if let (StoreCall::Save { tokens, expected }, Backend::Model(m)) =
                (&call, &mut self.backend)
                && m.save_torn(self.procs[p].handle, wall, tokens, *expected)
            {
                self.ghost.temp = m
                    .peek_temp()
                    .and_then(|t| Cognito::refresh_number(t.refresh_token.expose_secret()));
            }
            self.crash(p, "between writing its temporary file and the rename");
            return;
        }
        let publishes = self.backend.publishes();
        let leases_lost = self.backend.leases_lost();
        let result = self.apply_call(actor, call, now);
        if self.backend.leases_lost() > leases_lost {
            self.log(|| "a lease ran out while held".into());
            self.ghost.anomaly(now);
        }
        if self.backend.publishes() > publishes {
            self.wake_waiters(now);
        }
        match fate {
            Fate::CrashAfter => {
                lock(&self.shared).ops.remove(&op);
                self.crash(p, "after its store operation took effect");
            }
            Fate::AppliedButFailed => {
                let result = match result {
                    OpResult::Saved(Ok(version)) => {
                        self.log(|| {
                            format!("save of version {version} applied but reported failed")
                        });
                        let token = self.stored_token();
                        self.ghost.unsaved(token);
                        OpResult::Saved(Err(failure()))
                    }
                    OpResult::Loaded(_) => {
                        self.store_failed(&StoreCall::Load);
                        OpResult::Loaded(Err(failure()))
                    }
                    OpResult::Locked(Ok(Some(ticket))) => {
                        // Taken, but the taker never hears of it: it stays until its TTL.
                        self.ghost.locks.remove(&ticket);
                        self.store_failed(&StoreCall::TryLock);
                        OpResult::Locked(Err(failure()))
                    }
                    OpResult::Locked(_) => {
                        self.store_failed(&StoreCall::TryLock);
                        OpResult::Locked(Err(failure()))
                    }
                    other => other,
                };
                self.schedule(reply, Event::Complete(op, result));
            }
            _ => {
                if let OpResult::Waited(Ok(false)) = result {
                    // Subscribed: wait for a publish or the timeout.
                    return;
                }
                self.schedule(reply, Event::Complete(op, result));
            }
        }
    }

    fn apply_call(&mut self, actor: Actor, call: StoreCall, now: u64) -> OpResult {
        let handle = self.procs[actor.process].handle;
        match call {
            StoreCall::Load => {
                let loaded = self.backend.load(handle, now);
                self.log(|| {
                    let what = match &loaded {
                        Ok(Some(v)) => format!(
                            "token {:?} version {}",
                            Cognito::refresh_number(v.tokens.refresh_token.expose_secret()),
                            v.version
                        ),
                        Ok(None) => "nothing".into(),
                        Err(e) => format!("an error ({e})"),
                    };
                    format!("process {} loads {what}", actor.process)
                });
                OpResult::Loaded(loaded)
            }
            StoreCall::Save { tokens, expected } => {
                let ignore = self.mutant == Some(Mutant::NoVersion);
                let wall = self.wall_us_of(actor.process);
                let replaced = self.backend_stored_access();
                let ours = access_of(&tokens);
                let result = self
                    .backend
                    .save(handle, now, wall, &tokens, expected, ignore);
                let token = Cognito::refresh_number(tokens.refresh_token.expose_secret());
                self.log(|| {
                    format!(
                        "process {} saves token {token:?} expecting {expected:?}: {result:?}",
                        actor.process
                    )
                });
                if matches!(result, Err(cogref_session::StoreError::Conflict { .. }))
                    && let (Some(ours), Some(theirs)) = (ours, replaced)
                    && ours != theirs
                {
                    self.ghost.lost_to.insert(ours, theirs);
                }
                if let Ok(version) = result {
                    // Written after all (its process re-read the store and wrote over it): it
                    // did not lose to the set it met.
                    if let Some(ours) = ours {
                        self.ghost.lost_to.remove(&ours);
                    }
                    self.ghost.saved(now, token, version, expected.is_none());
                    if let (Some(old), Some(new)) = (replaced, ours) {
                        self.check_forward(actor, old, new);
                    }
                }
                self.ghost.stored = self.stored_token();
                self.ghost.temp = match &self.backend {
                    Backend::Model(m) => m
                        .peek_temp()
                        .and_then(|t| Cognito::refresh_number(t.refresh_token.expose_secret())),
                    Backend::Memory { .. } => None,
                };
                OpResult::Saved(result)
            }
            StoreCall::TryLock => {
                let always = self.mutant == Some(Mutant::NoLock);
                let ticket = self.backend.try_lock(handle, now, always);
                self.log(|| format!("process {} takes the lock: {ticket:?}", actor.process));
                if let Some(t) = ticket {
                    self.ghost.locks.insert(t, actor);
                    let rate = self.cfg.rates.lease_lost;
                    let decided = self.frng.chance(rate);
                    let p = actor.process;
                    if self.faults.fire(now, decided, || {
                        format!("the lease process {p} just took runs out mid-refresh")
                    }) {
                        let at = now + self.rng.range(1_000, 2 * SEC);
                        self.schedule(at, Event::Planned(Planned::DropLease));
                    }
                }
                // Taking a file lock may put a crashed writer's set in place.
                self.ghost.stored = self.stored_token();
                if let Backend::Model(m) = &self.backend {
                    self.ghost.temp = m
                        .peek_temp()
                        .and_then(|t| Cognito::refresh_number(t.refresh_token.expose_secret()));
                }
                OpResult::Locked(Ok(ticket))
            }
            StoreCall::Unlock(ticket) => {
                self.log(|| format!("process {} releases {ticket:?}", actor.process));
                self.ghost.locks.remove(&ticket);
                self.backend.unlock(ticket, now);
                OpResult::Unlocked
            }
            StoreCall::Wait { seen, timeout } => {
                let changed = match &mut self.backend {
                    Backend::Model(m) => m.changed(now, seen),
                    Backend::Memory { .. } => true,
                };
                if changed {
                    OpResult::Waited(Ok(true))
                } else {
                    // The caller's op id is not known here: registered by the caller.
                    self.pending_wait = Some(timeout);
                    OpResult::Waited(Ok(false))
                }
            }
        }
    }

    fn store_failed(&mut self, call: &StoreCall) {
        match call {
            StoreCall::Save { tokens, .. } => {
                let token = Cognito::refresh_number(tokens.refresh_token.expose_secret());
                self.ghost.unsaved(token);
            }
            // With the opt-in, a manager that cannot read or lock the store refreshes with the
            // set it has, which a sibling may have rotated already: the documented risk.
            StoreCall::Load | StoreCall::TryLock if self.cfg.unlocked_opt_in => {
                let now = self.now();
                self.log(|| "a store failure with refresh_without_store_lock(true)".into());
                self.ghost.anomaly(now);
            }
            _ => {}
        }
    }

    fn wake_waiters(&mut self, now: u64) {
        let waiters: Vec<u64> = std::mem::take(&mut self.waiters).into_keys().collect();
        for op in waiters {
            let at = now + store_latency(&mut self.rng);
            self.schedule(at, Event::Complete(op, OpResult::Waited(Ok(true))));
        }
    }

    // ---- events -------------------------------------------------------------------------

    fn handle(&mut self, event: Event) {
        match event {
            Event::Complete(op, result) => {
                if let Some((actor, issued)) = self.unlocks.remove(&op) {
                    let now = self.now();
                    self.released.insert(actor, (issued, now));
                }
                let _ = self.complete(op, result);
            }
            Event::Arrive {
                op,
                request,
                reply_us,
                lose,
                late,
            } => self.arrive(op, request, reply_us, lose, late),
            Event::Deliver {
                op,
                response,
                token,
                grant,
            } => self.deliver(op, response, token, grant),
            Event::Timeout(op) => self.timeout(op),
            Event::Apply { op, call, fate } => {
                let wait = matches!(call, StoreCall::Wait { .. });
                self.pending_wait = None;
                self.apply(op, call, fate);
                if wait && let Some(timeout) = self.pending_wait.take() {
                    self.waiters.insert(op, ());
                    let at = self.now() + timeout.as_micros().min(u128::from(u64::MAX / 4)) as u64;
                    self.schedule(at, Event::WaitTimeout(op));
                }
            }
            Event::WaitTimeout(op) => {
                if self.waiters.remove(&op).is_some() {
                    let _ = self.complete(op, OpResult::Waited(Ok(true)));
                }
            }
            Event::Arrival(p) => self.arrival(p),
            Event::Cancel(call) => self.cancel(call),
            Event::Planned(planned) => self.planned(planned),
            Event::Crash(p) => self.crash(p, "a fault"),
            Event::Restart(p) => {
                if self.procs[p].up && !self.procs[p].ready {
                    // A build that failed: start this life again.
                    let actor = self.procs[p].actor(p);
                    let tasks = self.exec.take_where(|_, t| t.actor == actor);
                    self.drop_tasks(tasks, false);
                    self.stop_thread(p);
                    lock(&self.shared).alive[p] = 0;
                    self.procs[p].up = false;
                }
                if !self.procs[p].up {
                    self.start(p);
                }
            }
            Event::StartBackground(p) => {
                if self.procs[p].up && self.procs[p].ready && self.procs[p].background.is_none() {
                    self.start_background(p);
                }
            }
            Event::Release(ticket) => {
                let now = self.now();
                let publishes = self.backend.publishes();
                self.backend.unlock(ticket, now);
                if self.backend.publishes() > publishes {
                    self.wake_waiters(now);
                }
            }
            Event::End => self.ended = true,
        }
    }

    fn debug_event(&self, event: &Event) -> String {
        match event {
            Event::Complete(op, r) => format!(
                "complete {op} ({})",
                match r {
                    OpResult::Http(_) => "http",
                    OpResult::Slept => "slept",
                    OpResult::Loaded(_) => "loaded",
                    OpResult::Saved(_) => "saved",
                    OpResult::Locked(_) => "locked",
                    OpResult::Unlocked => "unlocked",
                    OpResult::Waited(_) => "waited",
                }
            ),
            Event::Arrive { op, .. } => format!("arrive {op}"),
            Event::Deliver { op, .. } => format!("deliver {op}"),
            Event::Timeout(op) => format!("timeout {op}"),
            Event::Apply { op, .. } => format!("apply {op}"),
            Event::WaitTimeout(op) => format!("wait timeout {op}"),
            Event::Arrival(p) => format!("arrival {p}"),
            Event::Cancel(c) => format!("cancel {c}"),
            Event::Planned(p) => format!("{p:?}"),
            Event::Crash(p) => format!("crash {p}"),
            Event::Restart(p) => format!("restart {p}"),
            Event::StartBackground(p) => format!("background {p}"),
            Event::Release(t) => format!("release {t:?}"),
            Event::End => "end".into(),
        }
    }

    fn planned(&mut self, planned: Planned) {
        let now = self.now();
        self.log(|| format!("fault: {planned:?}"));
        match planned {
            Planned::Crash { process, down_us } => {
                if self.procs[process].up {
                    self.crash(process, "planned");
                    self.schedule(now + down_us, Event::Restart(process));
                }
            }
            Planned::Step { host, delta_us } => {
                self.clock.step(host, delta_us);
                self.ghost.stepped(now, host, self.clock.offset(host));
            }
            Planned::Outage { for_us } => {
                self.outage_until = self.outage_until.max(now + for_us);
            }
            Planned::LoseData => {
                let stored = self.ghost.stored;
                // A memory store loses its data only with its process (never planned).
                if let Backend::Model(m) = &mut self.backend {
                    let leases = m.leases_lost;
                    m.lose_data();
                    if m.leases_lost > leases {
                        self.log(|| "Redis lost the lease with its data".into());
                        self.ghost.anomaly(now);
                    }
                }
                self.ghost.data_lost(now, stored);
                self.ghost.stored = None;
                if self.notifies() {
                    // Subscribers lose their connection.
                    let waiters: Vec<u64> = std::mem::take(&mut self.waiters).into_keys().collect();
                    for op in waiters {
                        let error =
                            StoreError::Other("connection lost: the server restarted".into());
                        self.schedule(
                            now + 1_000,
                            Event::Complete(op, OpResult::Waited(Err(error))),
                        );
                    }
                }
            }
            Planned::DropLease => {
                if let Backend::Model(m) = &mut self.backend
                    && m.drop_lease()
                {
                    self.ghost.anomaly(now);
                    self.wake_waiters(now);
                }
            }
            Planned::Revoke => self.cognito.revoked_at = Some(now),
            Planned::Busy { for_us, throttle } => self.busy = Some((now + for_us, throttle)),
            Planned::CancelBackground { process } => {
                if let Some(id) = self.procs[process].background.take() {
                    let tasks = self.exec.take_where(|tid, _| tid == id);
                    self.drop_tasks(tasks, false);
                    let at = now + self.rng.range(SEC, 60 * SEC);
                    self.schedule(at, Event::StartBackground(process));
                }
            }
        }
    }

    /// Stops every process (without judging it: the run is over).
    fn finish(&mut self) {
        let now = self.now();
        for (call, rec) in std::mem::take(&mut self.calls) {
            if now > rec.deadline {
                self.violation(
                    "6 (every call returns)",
                    format!(
                        "call {call} of process {} never returned",
                        rec.actor.process
                    ),
                );
            }
        }
        {
            let mut s = lock(&self.shared);
            for a in s.alive.iter_mut() {
                *a = 0;
            }
        }
        let tasks = self.exec.take_where(|_, _| true);
        drop(tasks);
        for p in 0..self.procs.len() {
            self.stop_thread(p);
            let manager = self.procs[p].asyncm.lock().ok().and_then(|mut m| m.take());
            drop(manager);
        }
        let _ = lock(&self.shared).notices.drain(..).count();
        let forced = self.stats.forced;
        self.check_fleet_bound(forced);
        for leak in self.capture.take_leaks() {
            self.violation("5 (no canary)", leak);
        }
    }
}

/// The number of the access token a set holds, if Cognito issued it.
fn access_of(tokens: &TokenSet) -> Option<usize> {
    Cognito::access_number(tokens.access_token.as_ref()?.expose_secret())
}

/// The wall clock at true time `t` for a host `offset` µs off, in µs since the Unix epoch.
fn wall_us(t: u64, offset: i64) -> u64 {
    SimEnv::wall_at(t, offset)
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

fn failed(call: &StoreCall, error: StoreError) -> OpResult {
    match call {
        StoreCall::Load => OpResult::Loaded(Err(error)),
        StoreCall::Save { .. } => OpResult::Saved(Err(error)),
        StoreCall::TryLock => OpResult::Locked(Err(error)),
        StoreCall::Unlock(_) => OpResult::Unlocked,
        StoreCall::Wait { .. } => OpResult::Waited(Err(error)),
    }
}

fn scan_event(capture: &Capture, event: &SessionEvent) {
    capture.scan("session event", &format!("{event:?}"));
    match event {
        SessionEvent::SignInRequired(e) | SessionEvent::RefreshFailed { error: e, .. } => {
            capture.scan("session event", &e.to_string());
        }
        SessionEvent::StoreFailed(e) => capture.scan("session event", &e.to_string()),
        _ => {}
    }
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| (*s).to_owned()))
        .unwrap_or_else(|| "a panic".into())
}

/// A blocking process's caller thread: runs the scheduler's commands one at a time.
fn blocking_main(
    builder: cogref_session::BlockingTokenManagerBuilder<SimBlockingNet, SimEnv, SimBlockingStore>,
    link: Arc<ThreadLink>,
    slot: Arc<Mutex<Option<Arc<BlockingManager>>>>,
    shared: SharedRef,
    actor: Actor,
) {
    let mut builder = Some(builder);
    loop {
        let command = link
            .from_scheduler
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .recv();
        let notice = match command {
            Ok(Some(Command::Build)) => {
                let Some(builder) = builder.take() else {
                    continue;
                };
                let built =
                    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| builder.build()));
                match built {
                    Ok(Ok(manager)) => {
                        *slot.lock().unwrap_or_else(|p| p.into_inner()) = Some(Arc::new(manager));
                        Notice::Built { actor, error: None }
                    }
                    Ok(Err(e)) => Notice::Built {
                        actor,
                        error: Some(e),
                    },
                    Err(payload) if payload.is::<ProcessDead>() => {
                        let _ = link.to_scheduler.send(ThreadMsg::Done);
                        continue;
                    }
                    Err(payload) => Notice::Panic(format!(
                        "building the manager of process {} panicked: {}",
                        actor.process,
                        panic_message(payload.as_ref())
                    )),
                }
            }
            Ok(Some(Command::Call(call, kind))) => {
                let manager = slot.lock().unwrap_or_else(|p| p.into_inner()).clone();
                let Some(manager) = manager else {
                    let _ = link.to_scheduler.send(ThreadMsg::Done);
                    continue;
                };
                let result =
                    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| match kind {
                        CallKind::Token => manager.access_token(),
                        CallKind::Force => manager.refresh_now(),
                    }));
                match result {
                    Ok(result) => Notice::Outcome { call, result },
                    Err(payload) if payload.is::<ProcessDead>() => {
                        let _ = link.to_scheduler.send(ThreadMsg::Done);
                        continue;
                    }
                    Err(payload) => Notice::Panic(format!(
                        "a call of process {} panicked: {}",
                        actor.process,
                        panic_message(payload.as_ref())
                    )),
                }
            }
            Ok(None) => continue,
            Err(_) => return,
        };
        lock(&shared).notices.push(notice);
        let _ = link.to_scheduler.send(ThreadMsg::Done);
    }
}

impl World {
    /// The trace lines kept (when tracing).
    pub fn capture_lines(&self) -> Vec<String> {
        self.capture.take_lines()
    }
}
