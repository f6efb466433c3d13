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
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tracing::Instrument;
use tracing::field::Empty;

use crate::call::retry::RetryQuota;
use crate::call::{Attempt, Call, CallConfig, CallError, SendOptions, Step};
use crate::error::Error;
use crate::ops::Operation;
use crate::ops::refresh::{GetTokensFromRefreshToken, RefreshInput, RefreshOutput};
use crate::ops::revoke::{RevokeInput, RevokeOutput, RevokeToken};
use crate::protocol::endpoint::Endpoint;
use crate::protocol::response::request_id_sent;

pub use crate::call::dyn_transport::{BoxFuture, DynAsyncTransport, DynBlockingClient, DynClient};
pub use crate::call::environment::{
    CoarseClocks, Environment, MONOTONIC_CLOCK_HOLD, ManualEnvironment, StdEnvironment,
};

/// A response as a transport returns it: status, headers and the whole body.
pub type HttpResponse = http::Response<Vec<u8>>;

/// A request as a transport receives it. Its body holds the refresh token: never log it.
pub type HttpRequest = http::Request<Vec<u8>>;

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
        match outcome {
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
                let read = call.read_response(
                    response.status(),
                    response.headers(),
                    response.body(),
                    wall,
                );
                call.settle_vetted(read, now, &mut self.lock_quota());
            }
            Err(mut error) => {
                // Vetted before it is logged: a transport builds some errors from a response
                // head (a body over the limit), their request id read by its shape alone.
                error.hide_echoes(&call.sent());
                attempt_span.in_scope(|| tracing::debug!(error = %error, "attempt failed"));
                call.settle_vetted(Err(error), now, &mut self.lock_quota());
            }
        }
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
        // The call's span is entered where work happens in its name (the transport's send, in
        // the attempt's span, a child of it; a sleep; the settling and the outcome's event),
        // rather than around the whole loop: a future wrapped in another is moved whole on its
        // first poll, and this one is most of a call's state (the call and the send).
        // Each step is taken out of its `Step` before anything is awaited: a future keeps the
        // value a `match` moved out of for as long as the match lasts, and a step to send holds
        // the request (296 bytes kept through the send, and the sleep, were it awaited there).
        let mut pause = None;
        loop {
            if let Some(duration) = pause.take() {
                span.in_scope(|| self.transport.sleep(duration))
                    .instrument(span.clone())
                    .await;
                now = self.env.now();
            }
            let Attempt {
                request,
                number,
                options,
            } = match call.poll(now) {
                Step::Send(attempt) => attempt,
                Step::Wait(duration) => {
                    pause = Some(duration);
                    continue;
                }
                Step::Done(result) => return finish::<O>(&span, result, call.attempts()),
            };
            // Made in the call's span, its parent (or, when that one is disabled, the caller's
            // span, as for any span made in a disabled one).
            let attempt_span = span.in_scope(|| attempt_span(number));
            // The send is made in the attempt's span too: a transport may do work (and log)
            // before it returns its future.
            let outcome = attempt_span
                .in_scope(|| self.transport.send(request.into_http(), options))
                .instrument(attempt_span.clone())
                .await;
            now = self.settle(&mut call, outcome, &attempt_span, now);
        }
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
