//! Drivers of the attempt loop, generic over the HTTP client, and the client they make.
//!
//! A transport is one small trait: [`AsyncTransport`] or [`BlockingTransport`], whose `send`
//! moves one request's bytes and reads the response (honouring [`SendOptions`]) and whose
//! `sleep` waits. Everything else, the retry decisions, the quota, the deadline, the tracing,
//! happens here, once, for every transport. Time and randomness come from an
//! [`Environment`], so the core itself still reads no clock.
//!
//! The transport crates (`cogref-reqwest`, `cogref-isahc`, `cogref-blocking`) implement these
//! traits; to plug in another HTTP client, implement one of them, or pass closures to
//! [`transport_fn`] / a plain closure for [`BlockingTransport`]. To choose the transport at run
//! time, see [`DynAsyncTransport`] and [`Client::into_dyn`].
//!
//! Each call runs in a span of its operation (`cogref.refresh`: client id, invocation id,
//! attempts, outcome) and
//! each attempt in a `cogref.attempt` span (attempt number, status, request id, duration in
//! milliseconds). No span or event carries a secret.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tracing::Instrument;
use tracing::field::Empty;

use crate::call::retry::RetryQuota;
use crate::call::{Call, CallConfig, CallError, SendOptions, Step};
use crate::error::Error;
use crate::ops::Operation;
use crate::ops::refresh::{GetTokensFromRefreshToken, RefreshInput, RefreshOutput};
use crate::ops::revoke::{RevokeInput, RevokeOutput, RevokeToken};
use crate::protocol::endpoint::Endpoint;
use crate::protocol::response::request_id_sent;
use crate::session::Now;

pub use crate::call::dyn_transport::{BoxFuture, DynAsyncTransport, DynBlockingClient, DynClient};

/// A response as a transport returns it: status, headers and the whole body.
pub type HttpResponse = http::Response<Vec<u8>>;

/// A request as a transport receives it. Its body holds the refresh token: never log it.
pub type HttpRequest = http::Request<Vec<u8>>;

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

/// An async HTTP client.
///
/// `send` must not follow redirects, must stop reading a body larger than
/// `options.max_body_bytes` (returning [`ResponseErrorKind::BodyTooLarge`]), must give up after
/// `options.timeout` (returning a [`TransportErrorKind::Timeout`]), and should reuse connections.
///
/// [`ResponseErrorKind::BodyTooLarge`]: crate::ResponseErrorKind::BodyTooLarge
/// [`TransportErrorKind::Timeout`]: crate::TransportErrorKind::Timeout
pub trait AsyncTransport: Send + Sync {
    /// Sends one request and reads its response.
    fn send(
        &self,
        request: HttpRequest,
        options: SendOptions,
    ) -> impl Future<Output = Result<HttpResponse, Error>> + Send;

    /// Waits `duration` on this transport's runtime.
    fn sleep(&self, duration: Duration) -> impl Future<Output = ()> + Send;

    /// Runs `task` to completion on its own, whether or not anyone is still waiting for it.
    ///
    /// The session managers run every refresh this way: once a request may have reached
    /// Cognito, its result must be stored even if the caller's future is dropped (a timeout, a
    /// cancelled request handler), or under rotation the session is lost. The default runs the
    /// task on a new thread with [`block_on`], which suits transports whose futures need no
    /// runtime (`cogref-isahc`, closures over a blocking client); a transport whose futures
    /// need one (reqwest needs tokio) spawns on it instead. If the task cannot be run, drop
    /// it: whoever waits for it is told.
    fn spawn(&self, task: DetachedTask) {
        spawn_thread(task);
    }
}

/// A task handed to [`AsyncTransport::spawn`]: it owns all it needs and returns nothing.
pub type DetachedTask = std::pin::Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

/// Runs `task` on a new thread with [`block_on`] (dropping it if no thread can be started):
/// the default of [`AsyncTransport::spawn`].
pub fn spawn_thread(task: DetachedTask) {
    // On failure the task is dropped, which its waiters are told of.
    let _ = std::thread::Builder::new()
        .name("cogref-refresh".into())
        .spawn(move || block_on(task));
}

/// Drives `future` to completion on the current thread, parking it while the future waits: the
/// smallest executor there is, for futures that need no runtime of their own.
///
/// ```
/// assert_eq!(cogref_core::driver::block_on(async { 40 + 2 }), 42);
/// ```
pub fn block_on<F: Future>(future: F) -> F::Output {
    struct Unpark(std::thread::Thread);
    impl std::task::Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
        fn wake_by_ref(self: &Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = std::task::Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = std::task::Context::from_waker(&waker);
    let mut future = std::pin::pin!(future);
    loop {
        if let std::task::Poll::Ready(out) = future.as_mut().poll(&mut cx) {
            return out;
        }
        std::thread::park();
    }
}

/// A blocking HTTP client, with the same duties as [`AsyncTransport::send`].
///
/// Any `Fn(HttpRequest, SendOptions) -> Result<HttpResponse, Error>` is one.
pub trait BlockingTransport: Send + Sync {
    /// Sends one request and reads its response.
    fn send(&self, request: HttpRequest, options: SendOptions) -> Result<HttpResponse, Error>;

    /// Waits `duration`; the default blocks the thread.
    fn sleep(&self, duration: Duration) {
        std::thread::sleep(duration);
    }
}

impl<F> BlockingTransport for F
where
    F: Fn(HttpRequest, SendOptions) -> Result<HttpResponse, Error> + Send + Sync,
{
    fn send(&self, request: HttpRequest, options: SendOptions) -> Result<HttpResponse, Error> {
        self(request, options)
    }
}

/// An [`AsyncTransport`] made of two closures: one that sends, one that sleeps.
///
/// ```
/// use std::time::Duration;
/// use cogref_core::driver::{transport_fn, AsyncTransport, HttpRequest, HttpResponse};
/// use cogref_core::{Error, SendOptions};
///
/// let transport = transport_fn(
///     |_request: HttpRequest, _options: SendOptions| async move {
///         Ok::<HttpResponse, Error>(http::Response::new(Vec::new()))
///     },
///     |_duration: Duration| async {},
/// );
/// # fn is_transport(_: &impl AsyncTransport) {}
/// # is_transport(&transport);
/// ```
pub fn transport_fn<S, SF, W, WF>(send: S, sleep: W) -> FnTransport<S, W>
where
    S: Fn(HttpRequest, SendOptions) -> SF + Send + Sync,
    SF: Future<Output = Result<HttpResponse, Error>> + Send,
    W: Fn(Duration) -> WF + Send + Sync,
    WF: Future<Output = ()> + Send,
{
    FnTransport { send, sleep }
}

/// See [`transport_fn`].
#[derive(Debug, Clone)]
pub struct FnTransport<S, W> {
    send: S,
    sleep: W,
}

impl<S, SF, W, WF> AsyncTransport for FnTransport<S, W>
where
    S: Fn(HttpRequest, SendOptions) -> SF + Send + Sync,
    SF: Future<Output = Result<HttpResponse, Error>> + Send,
    W: Fn(Duration) -> WF + Send + Sync,
    WF: Future<Output = ()> + Send,
{
    fn send(
        &self,
        request: HttpRequest,
        options: SendOptions,
    ) -> impl Future<Output = Result<HttpResponse, Error>> + Send {
        (self.send)(request, options)
    }

    fn sleep(&self, duration: Duration) -> impl Future<Output = ()> + Send {
        (self.sleep)(duration)
    }
}

/// A client for one endpoint over transport `T`: configuration, the retry quota its calls
/// share, and the drivers. Cheap to clone; clones share the quota.
#[derive(Debug, Clone)]
pub struct Client<T, E> {
    transport: T,
    env: E,
    endpoint: Endpoint,
    config: CallConfig,
    quota: Arc<Mutex<RetryQuota>>,
}

impl<T, E: Environment> Client<T, E> {
    /// A client with a full retry quota.
    pub fn new(transport: T, env: E, endpoint: Endpoint, config: CallConfig) -> Self {
        Self {
            transport,
            env,
            endpoint,
            config,
            quota: Arc::new(Mutex::new(RetryQuota::default())),
        }
    }

    /// The endpoint every call goes to.
    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// The call configuration.
    pub fn config(&self) -> &CallConfig {
        &self.config
    }

    /// The transport.
    pub fn transport(&self) -> &T {
        &self.transport
    }

    /// The clocks and randomness the client runs on.
    pub fn environment(&self) -> &E {
        &self.env
    }

    /// This client over another transport made from its own, with the same endpoint,
    /// configuration, clocks and retry quota.
    pub(crate) fn map_transport<U>(self, f: impl FnOnce(T) -> U) -> Client<U, E> {
        Client {
            transport: f(self.transport),
            env: self.env,
            endpoint: self.endpoint,
            config: self.config,
            quota: self.quota,
        }
    }

    /// Tokens left in the shared retry quota.
    pub fn retry_quota_available(&self) -> u32 {
        self.lock_quota().available()
    }

    fn lock_quota(&self) -> MutexGuard<'_, RetryQuota> {
        // The quota is a counter: a panic elsewhere cannot leave it inconsistent.
        self.quota.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn start<'a, O: Operation>(
        &'a self,
        input: &'a O::Input,
        now: Instant,
    ) -> (Call<'a, O>, tracing::Span) {
        let call = Call::<O>::new(
            &self.endpoint,
            input,
            &self.config,
            now,
            self.env.random_seed(),
        );
        let span = O::span(input, call.invocation_id());
        (call, span)
    }

    /// Feeds an attempt's outcome to the call, with the attempt span's fields; returns the
    /// moment it did, for the call's next step.
    ///
    /// Both clocks are read once here and the moment is reused for the next step: three clock
    /// readings for a call of one attempt, not one per step.
    fn settle<O: Operation>(
        &self,
        call: &mut Call<'_, O>,
        outcome: Result<HttpResponse, Error>,
        attempt_span: &tracing::Span,
        started: Instant,
    ) -> Instant {
        // Fresh readings: a held one (see `StdEnvironment::with_monotonic_clock_held_for`) may
        // lag, and the call's deadlines and the tokens' expiry are computed from these.
        let now = self.env.now();
        let wall = self.env.wall_clock();
        attempt_span.record(
            "duration_ms",
            now.duration_since(started).as_millis() as u64,
        );
        let outcome = match outcome {
            Ok(response) => {
                // Reading the request id costs an allocation: only for a span that records.
                if !attempt_span.is_disabled() {
                    attempt_span.record("status", response.status().as_u16());
                    if let Some(id) = request_id_sent(response.headers(), &call.sent()) {
                        attempt_span.record("request_id", id.as_str());
                    }
                }
                // Parsed before the quota's lock is taken: callers sharing this client wait
                // for each other only over a counter, not over each other's JSON.
                call.read_response(response.status(), response.headers(), response.body(), wall)
            }
            Err(error) => {
                attempt_span.in_scope(|| tracing::debug!(error = %error, "attempt failed"));
                Err(error)
            }
        };
        call.settle(outcome, now, &mut self.lock_quota());
        now
    }
}

fn attempt_span(number: u32) -> tracing::Span {
    tracing::debug_span!(
        "cogref.attempt",
        attempt = number,
        status = Empty,
        request_id = Empty,
        duration_ms = Empty,
    )
}

fn finish<O: Operation>(
    span: &tracing::Span,
    result: Result<O::Output, CallError>,
    attempts: u32,
) -> Result<O::Output, CallError> {
    span.record("attempts", attempts);
    match &result {
        Ok(_) => {
            span.record("outcome", "ok");
        }
        Err(e) => {
            span.record("outcome", "error");
            span.in_scope(|| tracing::warn!(error = %e, "{} failed", O::ACTION));
        }
    }
    result
}

impl<T: AsyncTransport, E: Environment> Client<T, E> {
    /// Refreshes: builds, sends, parses and retries until tokens, a final error, or the end of
    /// attempts, quota or time.
    ///
    /// # Dropping the future
    ///
    /// This is a plain future: dropping it (a `tokio::time::timeout`, a `select!`, a cancelled
    /// request handler) stops it wherever it is. Once a request may have been sent, Cognito may
    /// already have answered it: with refresh-token rotation it has then invalidated the token
    /// you sent (at once with a grace period of 0) and the new one is lost with the dropped
    /// future, so the session is over and the user must sign in again. Either never drop it
    /// once it has started, or use `cogref-session`'s `TokenManager`, which runs every refresh
    /// as a task of its own and stores its result whoever is still waiting.
    pub async fn refresh(&self, input: &RefreshInput) -> Result<RefreshOutput, CallError> {
        self.call::<GetTokensFromRefreshToken>(input).await
    }

    /// Revokes a refresh token (`RevokeToken`): the token, the access tokens issued from it and,
    /// with rotation, its whole lineage stop working. Retried like a refresh, except that
    /// [`RetryPolicy::RotationSafe`](crate::RetryPolicy::RotationSafe) does not stop a retry
    /// after a request that may have arrived: revoking twice is harmless.
    pub async fn revoke(&self, input: &RevokeInput) -> Result<RevokeOutput, CallError> {
        self.call::<RevokeToken>(input).await
    }

    /// Calls operation `O`: builds, sends, parses and retries until its output, a final error,
    /// or the end of attempts, quota or time. [`refresh`](Self::refresh) is this for
    /// `GetTokensFromRefreshToken`.
    pub async fn call<O: Operation>(&self, input: &O::Input) -> Result<O::Output, CallError> {
        let mut now = self.env.now();
        let (mut call, span) = self.start::<O>(input, now);
        async {
            loop {
                match call.poll(now) {
                    Step::Send(attempt) => {
                        let span = attempt_span(attempt.number);
                        let outcome = self
                            .transport
                            .send(attempt.request.into_http(), attempt.options)
                            .instrument(span.clone())
                            .await;
                        now = self.settle(&mut call, outcome, &span, now);
                    }
                    Step::Wait(duration) => {
                        self.transport.sleep(duration).await;
                        now = self.env.now();
                    }
                    Step::Done(result) => return finish::<O>(&span, result, call.attempts()),
                }
            }
        }
        .instrument(span.clone())
        .await
    }
}

impl<T: BlockingTransport, E: Environment> Client<T, E> {
    /// Refreshes, blocking the thread; see [`Client::refresh`].
    pub fn refresh_blocking(&self, input: &RefreshInput) -> Result<RefreshOutput, CallError> {
        self.call_blocking::<GetTokensFromRefreshToken>(input)
    }

    /// Revokes a refresh token, blocking the thread; see [`Client::revoke`].
    pub fn revoke_blocking(&self, input: &RevokeInput) -> Result<RevokeOutput, CallError> {
        self.call_blocking::<RevokeToken>(input)
    }

    /// Calls operation `O`, blocking the thread; see [`Client::call`].
    pub fn call_blocking<O: Operation>(&self, input: &O::Input) -> Result<O::Output, CallError> {
        let mut now = self.env.now();
        let (mut call, span) = self.start::<O>(input, now);
        let _entered = span.enter();
        loop {
            match call.poll(now) {
                Step::Send(attempt) => {
                    let span = attempt_span(attempt.number);
                    let outcome = span.in_scope(|| {
                        self.transport
                            .send(attempt.request.into_http(), attempt.options)
                    });
                    now = self.settle(&mut call, outcome, &span, now);
                }
                Step::Wait(duration) => {
                    self.transport.sleep(duration);
                    now = self.env.now();
                }
                Step::Done(result) => return finish::<O>(&span, result, call.attempts()),
            }
        }
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
