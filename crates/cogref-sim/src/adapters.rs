//! The seams between the real managers and the simulated world: transports and stores whose
//! every call is an operation the scheduler completes on the simulated clock. The managers and
//! the core run unchanged on top of them.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use cogref_core::driver::{DetachedTask, HttpRequest, HttpResponse};
use cogref_core::{
    AsyncTransport, BlockingTransport, Error, SendOptions, TokenSet, TransportError,
    TransportErrorKind,
};
use cogref_session::{AsyncTokenStore, StoreError, StoreGuard, TokenStore, Versioned};

use crate::model::Ticket;
use crate::shared::{
    Actor, Notice, OpFuture, OpKind, OpResult, SharedRef, Spawned, StoreCall, ThreadLink,
    TrueClock, block_on_op, lock,
};

fn odd() -> StoreError {
    StoreError::Other("simulator: an operation returned another operation's result".into())
}

fn http(result: OpResult) -> Result<HttpResponse, Error> {
    match result {
        OpResult::Http(r) => r,
        _ => Err(TransportError::new(TransportErrorKind::Other, "simulator: wrong result").into()),
    }
}

/// The async transport of one process incarnation.
#[derive(Clone)]
pub struct SimNet {
    shared: SharedRef,
    actor: Actor,
}

impl SimNet {
    /// The transport of `actor`.
    pub fn new(shared: &SharedRef, actor: Actor) -> Self {
        Self {
            shared: shared.clone(),
            actor,
        }
    }
}

impl AsyncTransport for SimNet {
    fn send(
        &self,
        request: HttpRequest,
        options: SendOptions,
    ) -> impl Future<Output = Result<HttpResponse, Error>> + Send {
        let op = OpFuture::new(
            &self.shared,
            self.actor,
            OpKind::Send {
                request,
                timeout: options.timeout,
            },
        );
        async move { http(op.await) }
    }

    fn sleep(&self, duration: Duration) -> impl Future<Output = ()> + Send {
        let op = OpFuture::new(&self.shared, self.actor, OpKind::Sleep(duration));
        async move {
            op.await;
        }
    }

    fn spawn(&self, task: DetachedTask) {
        let mut shared = lock(&self.shared);
        let parent = shared.current;
        shared.spawned.push(Spawned {
            task,
            actor: self.actor,
            parent,
        });
    }
}

/// The blocking transport of one process incarnation (its caller thread parks on every call).
pub struct SimBlockingNet {
    shared: SharedRef,
    actor: Actor,
    link: Arc<ThreadLink>,
}

impl SimBlockingNet {
    /// The transport of `actor`, parking through `link`.
    pub fn new(shared: &SharedRef, actor: Actor, link: Arc<ThreadLink>) -> Self {
        Self {
            shared: shared.clone(),
            actor,
            link,
        }
    }
}

impl BlockingTransport for SimBlockingNet {
    fn send(&self, request: HttpRequest, options: SendOptions) -> Result<HttpResponse, Error> {
        http(block_on_op(
            &self.shared,
            &self.link,
            self.actor,
            OpKind::Send {
                request,
                timeout: options.timeout,
            },
        ))
    }

    fn sleep(&self, duration: Duration) {
        block_on_op(
            &self.shared,
            &self.link,
            self.actor,
            OpKind::Sleep(duration),
        );
    }
}

/// A held lock: unlocking names its ticket; dropping it unreleased tells the scheduler (which
/// decides what the store does: a file lock closes, a Redis lease stays until its time to
/// live if the process is dead).
pub struct SimGuard {
    shared: SharedRef,
    ticket: Ticket,
    actor: Actor,
    armed: bool,
}

impl Drop for SimGuard {
    fn drop(&mut self) {
        if self.armed {
            lock(&self.shared).notices.push(Notice::GuardDropped {
                ticket: self.ticket,
                actor: self.actor,
            });
        }
    }
}

fn guard(shared: &SharedRef, actor: Actor, ticket: Ticket) -> StoreGuard {
    StoreGuard::new(SimGuard {
        shared: shared.clone(),
        ticket,
        actor,
        armed: true,
    })
}

/// The ticket of a guard this store gave out, disarmed (the unlock releases it).
fn disarm(guard: StoreGuard) -> Option<Ticket> {
    let mut guard = guard.downcast::<SimGuard>().ok()?;
    guard.armed = false;
    Some(guard.ticket)
}

/// A store handle's change stamp as the real store reports it: the world's stamp, read on
/// the spot, or (a file store's `stat`) reused for a while after it was taken.
pub struct StampReader {
    shared: SharedRef,
    clock: Arc<TrueClock>,
    /// How long a reading is reused (µs; 0: never).
    max_age_us: u64,
    /// The last reading: when, and what.
    last: Mutex<Option<(u64, Option<u64>)>>,
}

impl StampReader {
    /// A reader of the world's stamp that reuses a reading for `max_age_us`.
    pub fn new(shared: &SharedRef, clock: Arc<TrueClock>, max_age_us: u64) -> Arc<Self> {
        Arc::new(Self {
            shared: shared.clone(),
            clock,
            max_age_us,
            last: Mutex::new(None),
        })
    }

    fn read(&self) -> Option<u64> {
        let now = self.clock.now();
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((taken_at, stamp)) = *last
            && now.saturating_sub(taken_at) < self.max_age_us
        {
            return stamp;
        }
        let stamp = lock(&self.shared).stamp;
        *last = Some((now, stamp));
        stamp
    }
}

/// The async store of one process incarnation.
#[derive(Clone)]
pub struct SimStore {
    shared: SharedRef,
    actor: Actor,
    /// Whether the store can notify (Redis) or not (file, memory: `Ok(false)` at once).
    notifies: bool,
    stamp: Arc<StampReader>,
}

impl SimStore {
    /// The store of `actor`.
    pub fn new(shared: &SharedRef, actor: Actor, notifies: bool, stamp: Arc<StampReader>) -> Self {
        Self {
            shared: shared.clone(),
            actor,
            notifies,
            stamp,
        }
    }

    fn op(&self, call: StoreCall) -> OpFuture {
        OpFuture::new(&self.shared, self.actor, OpKind::Store(call))
    }
}

impl AsyncTokenStore for SimStore {
    fn load(&self) -> impl Future<Output = Result<Option<Versioned>, StoreError>> + Send {
        let op = self.op(StoreCall::Load);
        async move {
            match op.await {
                OpResult::Loaded(r) => r,
                _ => Err(odd()),
            }
        }
    }

    fn save(
        &self,
        tokens: &TokenSet,
        expected: Option<u64>,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send {
        let op = self.op(StoreCall::Save {
            tokens: tokens.clone(),
            expected,
        });
        async move {
            match op.await {
                OpResult::Saved(r) => r,
                _ => Err(odd()),
            }
        }
    }

    fn try_lock(&self) -> impl Future<Output = Result<Option<StoreGuard>, StoreError>> + Send {
        let op = self.op(StoreCall::TryLock);
        let (shared, actor) = (self.shared.clone(), self.actor);
        async move {
            match op.await {
                OpResult::Locked(r) => r.map(|t| t.map(|t| guard(&shared, actor, t))),
                _ => Err(odd()),
            }
        }
    }

    fn unlock(&self, guard: StoreGuard) -> impl Future<Output = ()> + Send {
        let op = disarm(guard).map(|ticket| self.op(StoreCall::Unlock(ticket)));
        async move {
            if let Some(op) = op {
                op.await;
            }
        }
    }

    fn wait_for_change(
        &self,
        seen: Option<u64>,
        timeout: Duration,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send {
        let op = self
            .notifies
            .then(|| self.op(StoreCall::Wait { seen, timeout }));
        async move {
            match op {
                None => Ok(false),
                Some(op) => match op.await {
                    OpResult::Waited(r) => r,
                    _ => Err(odd()),
                },
            }
        }
    }

    fn change_stamp(&self) -> Option<u64> {
        self.stamp.read()
    }
}

/// The blocking store of one process incarnation.
pub struct SimBlockingStore {
    shared: SharedRef,
    actor: Actor,
    notifies: bool,
    link: Arc<ThreadLink>,
    stamp: Arc<StampReader>,
}

impl SimBlockingStore {
    /// The store of `actor`, parking through `link`.
    pub fn new(
        shared: &SharedRef,
        actor: Actor,
        notifies: bool,
        link: Arc<ThreadLink>,
        stamp: Arc<StampReader>,
    ) -> Self {
        Self {
            shared: shared.clone(),
            actor,
            notifies,
            link,
            stamp,
        }
    }

    fn op(&self, call: StoreCall) -> OpResult {
        block_on_op(&self.shared, &self.link, self.actor, OpKind::Store(call))
    }
}

impl TokenStore for SimBlockingStore {
    fn load(&self) -> Result<Option<Versioned>, StoreError> {
        match self.op(StoreCall::Load) {
            OpResult::Loaded(r) => r,
            _ => Err(odd()),
        }
    }

    fn save(&self, tokens: &TokenSet, expected: Option<u64>) -> Result<u64, StoreError> {
        match self.op(StoreCall::Save {
            tokens: tokens.clone(),
            expected,
        }) {
            OpResult::Saved(r) => r,
            _ => Err(odd()),
        }
    }

    fn try_lock(&self) -> Result<Option<StoreGuard>, StoreError> {
        match self.op(StoreCall::TryLock) {
            OpResult::Locked(r) => r.map(|t| t.map(|t| guard(&self.shared, self.actor, t))),
            _ => Err(odd()),
        }
    }

    fn unlock(&self, guard: StoreGuard) {
        if let Some(ticket) = disarm(guard) {
            self.op(StoreCall::Unlock(ticket));
        }
    }

    fn wait_for_change(&self, seen: Option<u64>, timeout: Duration) -> Result<bool, StoreError> {
        if !self.notifies {
            return Ok(false);
        }
        match self.op(StoreCall::Wait { seen, timeout }) {
            OpResult::Waited(r) => r,
            _ => Err(odd()),
        }
    }

    fn change_stamp(&self) -> Option<u64> {
        self.stamp.read()
    }
}
