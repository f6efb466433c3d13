//! The attempt loop of one call, as a sans-IO state machine generic over the operation
//! (docs/protocol.md §6), and what drives it.
//!
//! | module | what |
//! |---|---|
//! | this one | [`Call`] (the attempt state machine; [`RefreshCall`] for `GetTokensFromRefreshToken`), timeouts, [`CallError`] |
//! | [`retry`] | retry settings and policy, backoff, the retry quota |
//! | [`classify`] | which failures may be retried, and as what |
//! | [`driver`] | the transport traits, the [`Client`](driver::Client) and its async and blocking drivers, tracing spans |
//! | [`environment`] | where a driver's time and randomness come from: [`Environment`](environment::Environment), the system's clocks, a manual clock |
//! | [`dyn_transport`] | transports chosen at run time: the object-safe [`DynAsyncTransport`](dyn_transport::DynAsyncTransport), `Box`/`Arc<dyn …>` as transports |
//! | [`quiet`] | keeps an HTTP library's wire log away from the application's subscriber |
//!
//! In the spirit of quinn-proto and str0m, a [`Call`] owns no clock, no randomness and no
//! socket: the driver passes "now" into every method and a random seed at the start, and the
//! call answers with the next [`Step`]: send this request, wait this long, or done.
//!
//! ```text
//! let mut call = RefreshCall::new(&endpoint, &input, &config, now, seed);
//! loop {
//!     match call.poll(now) {
//!         Step::Send(attempt) => match transport.send(attempt.request, attempt.options) {
//!             Ok(response) => call.on_response(status, &headers, &body, now, wall_clock, &mut quota),
//!             Err(e)       => call.on_transport_error(e, now, &mut quota),
//!         },
//!         Step::Wait(d) => sleep(d),
//!         Step::Done(result) => return result,
//!     }
//! }
//! ```
//!
//! One invocation id serves every attempt of the call; each attempt's `amz-sdk-request` header
//! says `attempt=N; max=M`. A retry happens only when the error is retryable under the
//! [`RetryPolicy`](crate::retry::RetryPolicy), attempts remain, the [`RetryQuota`] can pay, and
//! the wait ends before the call's deadline; otherwise the call ends with the last error and the
//! number of attempts made.

pub mod classify;
pub mod driver;
pub mod dyn_transport;
pub mod environment;
pub mod quiet;
pub mod retry;

use std::fmt;
use std::ops::Deref;
use std::time::{Duration, Instant, SystemTime};

use http::{HeaderMap, StatusCode};

use crate::call::retry::{RetryConfig, RetryQuota};
use crate::error::{Error, TransportError, TransportErrorKind};
use crate::ops::Operation;
use crate::ops::refresh::{GetTokensFromRefreshToken, RefreshOutput};
use crate::protocol::endpoint::Endpoint;
use crate::protocol::request::{AttemptInfo, InvocationId, OutgoingRequest};
use crate::protocol::response::{ResponseLimits, dispatch_sent};
use crate::protocol::sent::Sent;

/// Time limits of a call. Defaults: connect 3.1 s (the SDK's), attempt 10 s, whole call 30 s.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// Limit on establishing a connection (TCP and TLS). Enforced by the transport.
    pub connect: Duration,
    /// Limit on one attempt, from sending to the last byte of the body.
    pub attempt: Duration,
    /// Limit on the whole call, waits between attempts included.
    pub total: Duration,
}

/// The longest timeout a transport is handed, a century: HTTP clients add timeouts to their
/// clocks, and `Duration::MAX` (a way to say "no limit" through [`Timeouts`]' public fields)
/// overflowed them (ureq panicked, libcurl refused the request).
pub const LONGEST_TIMEOUT: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

impl Timeouts {
    /// These timeouts, each at most [`LONGEST_TIMEOUT`]: what a transport sets its HTTP
    /// client with. (Each attempt's [`SendOptions::timeout`] is within it already.)
    ///
    /// ```
    /// use std::time::Duration;
    /// use cogref_core::{LONGEST_TIMEOUT, Timeouts};
    ///
    /// let unlimited = Timeouts { connect: Duration::MAX, ..Timeouts::default() };
    /// assert_eq!(unlimited.bounded().connect, LONGEST_TIMEOUT);
    /// assert_eq!(unlimited.bounded().attempt, Timeouts::default().attempt);
    /// ```
    pub fn bounded(self) -> Self {
        Self {
            connect: self.connect.min(LONGEST_TIMEOUT),
            attempt: self.attempt.min(LONGEST_TIMEOUT),
            total: self.total.min(LONGEST_TIMEOUT),
        }
    }
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            connect: Duration::from_millis(3_100),
            attempt: Duration::from_secs(10),
            total: Duration::from_secs(30),
        }
    }
}

/// Everything that shapes a call besides its input and endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CallConfig {
    /// Retry settings.
    pub retry: RetryConfig,
    /// Time limits.
    pub timeouts: Timeouts,
    /// Response limits (body size).
    pub limits: ResponseLimits,
}

/// What a transport must enforce on one exchange.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct SendOptions {
    /// How long this attempt may take, from sending to the last byte of the body: the attempt
    /// timeout, or less if the call's deadline is nearer. Expiry is a
    /// [`TransportErrorKind::Timeout`].
    pub timeout: Duration,
    /// Limit on connecting; the transport's client is built with it.
    pub connect_timeout: Duration,
    /// The largest body to accept: stop reading past it and report
    /// [`ResponseErrorKind::BodyTooLarge`](crate::ResponseErrorKind::BodyTooLarge).
    pub max_body_bytes: usize,
}

impl SendOptions {
    /// Options for a single exchange outside the attempt loop.
    pub fn new(timeout: Duration, connect_timeout: Duration, max_body_bytes: usize) -> Self {
        Self {
            timeout,
            connect_timeout,
            max_body_bytes,
        }
    }

    /// How many bytes to reserve for a body whose `Content-Length` is `content_length`: the
    /// length, but never more than [`max_body_bytes`](Self::max_body_bytes) nor
    /// [`BODY_RESERVE_CAP`] (a server may claim a terabyte and send two bytes; the buffer then
    /// grows as bytes actually arrive).
    ///
    /// ```
    /// # use std::time::Duration;
    /// use cogref_core::{SendOptions, call::BODY_RESERVE_CAP};
    /// let options = SendOptions::new(Duration::from_secs(10), Duration::from_secs(3), usize::MAX);
    /// assert_eq!(options.body_capacity(Some(4096)), 4096);
    /// assert_eq!(options.body_capacity(Some(1 << 40)), BODY_RESERVE_CAP);
    /// assert_eq!(options.body_capacity(None), 0);
    /// ```
    pub fn body_capacity(&self, content_length: Option<u64>) -> usize {
        content_length
            .map_or(0, |n| usize::try_from(n).unwrap_or(usize::MAX))
            .min(self.max_body_bytes)
            .min(BODY_RESERVE_CAP)
    }
}

/// The most a transport reserves for a body up front, whatever `Content-Length` says (64 KiB:
/// sixteen times Cognito's largest answer).
pub const BODY_RESERVE_CAP: usize = 64 * 1024;

/// One attempt to send.
#[derive(Debug)]
#[non_exhaustive]
pub struct Attempt {
    /// The request.
    pub request: OutgoingRequest,
    /// This attempt's number, from 1.
    pub number: u32,
    /// Limits the transport enforces on this attempt.
    pub options: SendOptions,
}

/// What the driver does next; `T` is the operation's output.
#[derive(Debug)]
#[allow(
    clippy::large_enum_variant,
    reason = "as large as it was before it was generic: `Done` carries a RefreshOutput of the same size, and a step lives only on the stack"
)]
pub enum Step<T = RefreshOutput> {
    /// Send this request and report the outcome.
    Send(Attempt),
    /// Sleep this long, then poll again.
    Wait(Duration),
    /// The call is over.
    Done(Result<T, CallError>),
}

/// Why a call ended without tokens: the last attempt's error and how many attempts were made.
///
/// It dereferences to the [`Error`], so `err.requires_sign_in()`, `err.retry_kind()` and a
/// `match &*err` work directly.
#[derive(Debug)]
pub struct CallError {
    // Boxed: keeps `Result<RefreshOutput, CallError>` small on the happy path.
    error: Box<Error>,
    attempts: u32,
}

impl CallError {
    /// Wraps an error that ended a call after `attempts` attempts.
    pub fn new(error: Error, attempts: u32) -> Self {
        Self {
            error: Box::new(error),
            attempts,
        }
    }

    /// Attempts made (0 when the call failed before sending anything).
    pub fn attempts(&self) -> u32 {
        self.attempts
    }

    /// The last attempt's error.
    pub fn error(&self) -> &Error {
        &self.error
    }

    /// The last attempt's error, by value.
    pub fn into_error(self) -> Error {
        *self.error
    }
}

impl Deref for CallError {
    type Target = Error;

    fn deref(&self) -> &Error {
        &self.error
    }
}

impl fmt::Display for CallError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.attempts {
            0 | 1 => write!(f, "{}", self.error),
            n => write!(f, "{} (after {n} attempts)", self.error),
        }
    }
}

impl std::error::Error for CallError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&*self.error)
    }
}

impl From<Error> for CallError {
    fn from(error: Error) -> Self {
        Self::new(error, 0)
    }
}

#[derive(Debug)]
enum State<T> {
    /// Ready to send the next attempt at or after this instant.
    ReadyAt(Instant),
    /// An attempt is in flight.
    InFlight,
    /// Finished; the result has been handed out or is waiting to be.
    Finished(Option<Result<T, CallError>>),
}

/// A small deterministic generator (SplitMix64) seeded by the caller: the invocation id and the
/// jitter come from it, so a test with a fixed seed sees fixed waits.
#[derive(Debug, Clone)]
struct SplitMix64(u64);

impl SplitMix64 {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, 1)`.
    fn next_unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// The state machine of one call of operation `O` with retries.
pub struct Call<'a, O: Operation> {
    endpoint: &'a Endpoint,
    input: &'a O::Input,
    config: &'a CallConfig,
    invocation_id: InvocationId,
    deadline: Instant,
    attempts: u32,
    held_permit: Option<u32>,
    rng: SplitMix64,
    state: State<O::Output>,
}

/// The state machine of one `GetTokensFromRefreshToken` call with retries.
pub type RefreshCall<'a> = Call<'a, GetTokensFromRefreshToken>;

impl<O: Operation> fmt::Debug for Call<'_, O>
where
    O::Input: fmt::Debug,
    O::Output: fmt::Debug,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Call")
            .field("operation", &O::NAME)
            .field("endpoint", self.endpoint)
            .field("input", self.input)
            .field("config", self.config)
            .field("invocation_id", &self.invocation_id)
            .field("deadline", &self.deadline)
            .field("attempts", &self.attempts)
            .field("held_permit", &self.held_permit)
            .field("rng", &self.rng)
            .field("state", &self.state)
            .finish()
    }
}

/// `now + total`; a `total` too long for an `Instant` (such as `Duration::MAX`, for "no
/// limit") counts as [`LONGEST_TIMEOUT`], not as no time at all. Every attempt's timeout is
/// within it, then.
fn deadline_after(now: Instant, total: Duration) -> Instant {
    now.checked_add(total.min(LONGEST_TIMEOUT))
        .or_else(|| now.checked_add(Duration::from_secs(365 * 24 * 3600)))
        .unwrap_or(now)
}

impl<'a, O: Operation> Call<'a, O> {
    /// Starts a call at `now`; `seed` is the caller's randomness for the invocation id and the
    /// backoff jitter.
    pub fn new(
        endpoint: &'a Endpoint,
        input: &'a O::Input,
        config: &'a CallConfig,
        now: Instant,
        seed: u64,
    ) -> Self {
        let mut rng = SplitMix64(seed);
        let mut id = [0u8; 16];
        id[..8].copy_from_slice(&rng.next_u64().to_le_bytes());
        id[8..].copy_from_slice(&rng.next_u64().to_le_bytes());
        Self {
            endpoint,
            input,
            config,
            invocation_id: InvocationId::from_random_bytes(id),
            deadline: deadline_after(now, config.timeouts.total),
            attempts: 0,
            held_permit: None,
            rng,
            state: State::ReadyAt(now),
        }
    }

    /// The invocation id every attempt of this call carries.
    pub fn invocation_id(&self) -> InvocationId {
        self.invocation_id
    }

    /// Attempts sent so far.
    pub fn attempts(&self) -> u32 {
        self.attempts
    }

    /// What this call's request carries ([`Operation::sent`]), for reading its responses.
    pub fn sent(&self) -> Sent<'a> {
        O::sent(self.input)
    }

    /// The next step at `now`.
    ///
    /// After [`Step::Done`] has been returned once, further polls return
    /// `Done(Err(..))` with a [`TransportErrorKind::Other`] error saying the call is over.
    pub fn poll(&mut self, now: Instant) -> Step<O::Output> {
        match &mut self.state {
            State::Finished(result) => Step::Done(result.take().unwrap_or_else(|| {
                Err(CallError::new(
                    TransportError::new(TransportErrorKind::Other, "the call has already ended")
                        .not_sent()
                        .into(),
                    self.attempts,
                ))
            })),
            State::InFlight => Step::Done(Err(CallError::new(
                TransportError::new(
                    TransportErrorKind::Other,
                    "polled while an attempt is in flight: report its outcome first",
                )
                .into(),
                self.attempts,
            ))),
            State::ReadyAt(at) if *at > now => Step::Wait(*at - now),
            State::ReadyAt(_) => {
                let remaining = self.deadline.saturating_duration_since(now);
                if remaining.is_zero() {
                    let e = TransportError::new(
                        TransportErrorKind::Timeout,
                        "the call's total timeout expired before an attempt could start",
                    )
                    .not_sent();
                    return Step::Done(Err(CallError::new(e.into(), self.attempts)));
                }
                self.attempts += 1;
                self.state = State::InFlight;
                let info = AttemptInfo {
                    invocation_id: self.invocation_id,
                    attempt: self.attempts,
                    max_attempts: self.config.retry.attempts(),
                };
                Step::Send(Attempt {
                    request: crate::ops::build_request::<O>(self.endpoint, self.input, &info),
                    number: self.attempts,
                    options: SendOptions {
                        timeout: self.config.timeouts.attempt.min(remaining),
                        connect_timeout: self.config.timeouts.connect,
                        max_body_bytes: self.config.limits.max_body_bytes,
                    },
                })
            }
        }
    }

    /// Reports the response of the attempt in flight. `wall_clock` is the time of receipt, for
    /// the tokens' absolute expiry.
    pub fn on_response(
        &mut self,
        status: StatusCode,
        headers: &HeaderMap,
        body: &[u8],
        now: Instant,
        wall_clock: SystemTime,
        quota: &mut RetryQuota,
    ) {
        let parsed = self.read_response(status, headers, body, wall_clock);
        self.settle_vetted(parsed, now, quota);
    }

    /// Reads a response of the attempt in flight into output or a typed error, without
    /// settling it: a driver shared by many callers parses before it takes the retry quota's
    /// lock, then hands the result to [`settle`](Self::settle).
    pub fn read_response(
        &self,
        status: StatusCode,
        headers: &HeaderMap,
        body: &[u8],
        wall_clock: SystemTime,
    ) -> Result<O::Output, Error> {
        let sent = O::sent(self.input);
        let limits = &self.config.limits;
        dispatch_sent::<O>(status, headers, body, wall_clock, limits, &sent)
    }

    /// Reports that the attempt in flight failed without a complete response.
    pub fn on_transport_error(
        &mut self,
        error: TransportError,
        now: Instant,
        quota: &mut RetryQuota,
    ) {
        self.settle(Err(error.into()), now, quota);
    }

    /// Reports any outcome of the attempt in flight: a parsed response, a transport failure,
    /// or an error a transport met while reading (a body over the limit).
    pub fn settle(
        &mut self,
        outcome: Result<O::Output, Error>,
        now: Instant,
        quota: &mut RetryQuota,
    ) {
        // A transport builds some errors from a response head (a body over the limit).
        let outcome = outcome.map_err(|mut error| {
            error.hide_echoes(&O::sent(self.input));
            error
        });
        self.settle_vetted(outcome, now, quota);
    }

    /// [`settle`](Self::settle) for an outcome whose errors were vetted against what the
    /// request carried: those [`read_response`](Self::read_response) returns, and the driver's
    /// transport errors, vetted before it logs them (checked again, they cost a search of
    /// every secret sent per error).
    pub(crate) fn settle_vetted(
        &mut self,
        outcome: Result<O::Output, Error>,
        now: Instant,
        quota: &mut RetryQuota,
    ) {
        if !matches!(self.state, State::InFlight) {
            return;
        }
        let result = match outcome {
            Err(error) => match self.retry_at(&error, now, quota) {
                Some(at) => {
                    self.state = State::ReadyAt(at);
                    return;
                }
                None => Err(CallError::new(error, self.attempts)),
            },
            Ok(output) => {
                // A successful retry returns its permit; a first-try success earns a token.
                quota.release(self.held_permit.take().unwrap_or(1));
                Ok(output)
            }
        };
        self.state = State::Finished(Some(result));
    }

    /// When to send again after `error`, or `None` to stop.
    fn retry_at(&mut self, error: &Error, now: Instant, quota: &mut RetryQuota) -> Option<Instant> {
        let retry = &self.config.retry;
        let kind = if O::RESEND_IS_HARMLESS {
            error.retry_kind()?
        } else {
            retry.verdict(error)?
        };
        if self.attempts >= retry.attempts() {
            return None;
        }
        let wait = retry.backoff(self.attempts, self.rng.next_unit(), error.retry_after());
        let at = now.checked_add(wait)?;
        if at >= self.deadline {
            return None;
        }
        let permit = quota.try_acquire(kind)?;
        self.held_permit = Some(permit);
        Some(at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::EndpointConfig;
    use crate::call::classify::RetryKind;
    use crate::call::retry::RetryPolicy;
    use crate::ops::refresh::RefreshInput;
    use http::HeaderValue;

    const OK_BODY: &[u8] = br#"{"AuthenticationResult":{"AccessToken":"a.b.c","ExpiresIn":3600}}"#;

    struct Fixture {
        endpoint: Endpoint,
        input: RefreshInput,
        config: CallConfig,
        t0: Instant,
        wall: SystemTime,
    }

    fn fixture(retry: RetryConfig) -> Fixture {
        Fixture {
            endpoint: EndpointConfig::new()
                .region("eu-west-1")
                .resolve()
                .expect("valid"),
            input: RefreshInput::builder()
                .refresh_token("canary.refresh.token")
                .client_id("client")
                .build()
                .expect("valid"),
            config: CallConfig {
                retry,
                ..CallConfig::default()
            },
            t0: Instant::now(),
            wall: SystemTime::UNIX_EPOCH + Duration::from_secs(1_750_000_000),
        }
    }

    fn send(call: &mut RefreshCall<'_>, now: Instant) -> Attempt {
        match call.poll(now) {
            Step::Send(a) => a,
            other => panic!("expected Send, got {other:?}"),
        }
    }

    fn error(status: u16, code: &str) -> (StatusCode, HeaderMap, Vec<u8>) {
        (
            StatusCode::from_u16(status).expect("status"),
            HeaderMap::new(),
            format!(r#"{{"__type":"{code}","message":"m"}}"#).into_bytes(),
        )
    }

    fn respond(
        call: &mut RefreshCall<'_>,
        f: &Fixture,
        now: Instant,
        quota: &mut RetryQuota,
        r: (StatusCode, HeaderMap, Vec<u8>),
    ) {
        call.on_response(r.0, &r.1, &r.2, now, f.wall, quota);
    }

    #[test]
    fn a_first_try_success_ends_the_call_and_earns_a_quota_token() {
        let f = fixture(RetryConfig::default());
        let mut quota = RetryQuota::new(500);
        quota.try_acquire(RetryKind::Transient);
        let mut call = RefreshCall::new(&f.endpoint, &f.input, &f.config, f.t0, 1);
        let a = send(&mut call, f.t0);
        assert_eq!(a.number, 1);
        assert_eq!(
            a.request.http().headers()["amz-sdk-request"],
            "attempt=1; max=3"
        );
        call.on_response(
            StatusCode::OK,
            &HeaderMap::new(),
            OK_BODY,
            f.t0,
            f.wall,
            &mut quota,
        );
        assert!(matches!(call.poll(f.t0), Step::Done(Ok(_))));
        assert_eq!(quota.available(), 491);
    }

    #[test]
    fn a_500_is_retried_after_a_jittered_wait_with_the_same_invocation_id() {
        let f = fixture(RetryConfig::default());
        let mut quota = RetryQuota::default();
        let mut call = RefreshCall::new(&f.endpoint, &f.input, &f.config, f.t0, 42);
        let first = send(&mut call, f.t0);
        respond(
            &mut call,
            &f,
            f.t0,
            &mut quota,
            error(500, "InternalErrorException"),
        );
        let Step::Wait(wait) = call.poll(f.t0) else {
            panic!("expected a wait")
        };
        assert!(
            wait < Duration::from_secs(1),
            "first backoff is in [0, 1s): {wait:?}"
        );
        assert_eq!(quota.available(), 490);
        let second = send(&mut call, f.t0 + wait);
        assert_eq!(
            second.request.http().headers()["amz-sdk-request"],
            "attempt=2; max=3"
        );
        assert_eq!(
            first.request.http().headers()["amz-sdk-invocation-id"],
            second.request.http().headers()["amz-sdk-invocation-id"]
        );
        call.on_response(
            StatusCode::OK,
            &HeaderMap::new(),
            OK_BODY,
            f.t0 + wait,
            f.wall,
            &mut quota,
        );
        assert!(matches!(call.poll(f.t0 + wait), Step::Done(Ok(_))));
        assert_eq!(
            quota.available(),
            500,
            "a successful retry returns its permit"
        );
    }

    #[test]
    fn the_same_seed_gives_the_same_waits() {
        let f = fixture(RetryConfig::default());
        let waits = |seed| {
            let mut quota = RetryQuota::default();
            let mut call = RefreshCall::new(&f.endpoint, &f.input, &f.config, f.t0, seed);
            let mut now = f.t0;
            let mut waits = Vec::new();
            for _ in 0..2 {
                send(&mut call, now);
                respond(&mut call, &f, now, &mut quota, error(503, "X"));
                let Step::Wait(w) = call.poll(now) else {
                    panic!("wait")
                };
                waits.push(w);
                now += w;
            }
            waits
        };
        assert_eq!(waits(7), waits(7));
        assert_ne!(waits(7), waits(8));
    }

    #[test]
    fn attempts_run_out_and_the_last_error_comes_back_with_the_count() {
        let f = fixture(RetryConfig::default());
        let mut quota = RetryQuota::default();
        let mut call = RefreshCall::new(&f.endpoint, &f.input, &f.config, f.t0, 3);
        let mut now = f.t0;
        loop {
            match call.poll(now) {
                Step::Send(_) => respond(
                    &mut call,
                    &f,
                    now,
                    &mut quota,
                    error(429, "TooManyRequestsException"),
                ),
                Step::Wait(w) => now += w,
                Step::Done(r) => {
                    let e = r.expect_err("exhausted");
                    assert_eq!(e.attempts(), 3);
                    assert_eq!(e.retry_kind(), Some(RetryKind::Throttling));
                    assert!(e.to_string().ends_with("(after 3 attempts)"), "{e}");
                    break;
                }
            }
        }
        assert_eq!(quota.available(), 490, "two throttling retries cost 5 each");
    }

    #[test]
    fn a_non_retryable_error_is_sent_exactly_once() {
        let f = fixture(RetryConfig::default());
        let mut quota = RetryQuota::default();
        let mut call = RefreshCall::new(&f.endpoint, &f.input, &f.config, f.t0, 3);
        send(&mut call, f.t0);
        respond(
            &mut call,
            &f,
            f.t0,
            &mut quota,
            error(400, "RefreshTokenReuseException"),
        );
        let Step::Done(Err(e)) = call.poll(f.t0) else {
            panic!("done")
        };
        assert_eq!((e.attempts(), e.requires_sign_in()), (1, true));
    }

    #[test]
    fn retry_after_replaces_the_backoff() {
        let f = fixture(RetryConfig::default());
        let mut quota = RetryQuota::default();
        let mut call = RefreshCall::new(&f.endpoint, &f.input, &f.config, f.t0, 3);
        send(&mut call, f.t0);
        let (s, mut h, b) = error(429, "TooManyRequestsException");
        h.insert("x-amz-retry-after", HeaderValue::from_static("2500"));
        call.on_response(s, &h, &b, f.t0, f.wall, &mut quota);
        assert!(matches!(call.poll(f.t0), Step::Wait(w) if w == Duration::from_millis(2500)));
        assert!(
            matches!(call.poll(f.t0 + Duration::from_millis(1000)), Step::Wait(w) if w == Duration::from_millis(1500))
        );
    }

    #[test]
    fn an_empty_quota_stops_retries() {
        let f = fixture(RetryConfig::default());
        let mut quota = RetryQuota::new(9);
        let mut call = RefreshCall::new(&f.endpoint, &f.input, &f.config, f.t0, 3);
        send(&mut call, f.t0);
        respond(
            &mut call,
            &f,
            f.t0,
            &mut quota,
            error(503, "ServiceUnavailable"),
        );
        let Step::Done(Err(e)) = call.poll(f.t0) else {
            panic!("no retry without quota")
        };
        assert_eq!(e.attempts(), 1);
    }

    #[test]
    fn rotation_safe_policy_does_not_resend_after_a_timeout_but_does_after_a_refused_connect() {
        let f = fixture(RetryConfig {
            policy: RetryPolicy::RotationSafe,
            ..RetryConfig::default()
        });
        let mut quota = RetryQuota::default();
        let mut call = RefreshCall::new(&f.endpoint, &f.input, &f.config, f.t0, 3);
        send(&mut call, f.t0);
        call.on_transport_error(
            TransportError::new(TransportErrorKind::Connect, "refused"),
            f.t0,
            &mut quota,
        );
        let Step::Wait(w) = call.poll(f.t0) else {
            panic!("refused connect is retried")
        };
        send(&mut call, f.t0 + w);
        call.on_transport_error(
            TransportError::new(TransportErrorKind::Timeout, "read"),
            f.t0 + w,
            &mut quota,
        );
        let Step::Done(Err(e)) = call.poll(f.t0 + w) else {
            panic!("timeout is final")
        };
        assert_eq!(e.attempts(), 2);
    }

    #[test]
    fn a_total_timeout_too_long_for_an_instant_leaves_the_attempt_its_own_timeout() {
        let mut f = fixture(RetryConfig::default());
        f.config.timeouts.total = Duration::MAX;
        let mut call = RefreshCall::new(&f.endpoint, &f.input, &f.config, f.t0, 3);
        // Read as no time at all before: every attempt got a zero timeout.
        assert_eq!(
            send(&mut call, f.t0).options.timeout,
            f.config.timeouts.attempt
        );
    }

    #[test]
    fn the_total_timeout_bounds_attempt_timeouts_and_stops_waits_past_it() {
        let mut f = fixture(RetryConfig::default());
        f.config.timeouts = Timeouts {
            connect: Duration::from_secs(1),
            attempt: Duration::from_secs(10),
            total: Duration::from_secs(12),
        };
        let mut quota = RetryQuota::default();
        let mut call = RefreshCall::new(&f.endpoint, &f.input, &f.config, f.t0, 3);
        assert_eq!(
            send(&mut call, f.t0).options.timeout,
            Duration::from_secs(10)
        );
        let later = f.t0 + Duration::from_secs(10);
        respond(
            &mut call,
            &f,
            later,
            &mut quota,
            error(500, "InternalErrorException"),
        );
        let Step::Wait(w) = call.poll(later) else {
            panic!("retry")
        };
        assert_eq!(
            send(&mut call, later + w).options.timeout,
            Duration::from_secs(2) - w
        );
        // A server hint that reaches past the deadline ends the call instead of waiting.
        let (s, mut h, b) = error(429, "TooManyRequestsException");
        h.insert("x-amz-retry-after", HeaderValue::from_static("5000"));
        call.on_response(s, &h, &b, later + w, f.wall, &mut quota);
        assert!(matches!(call.poll(later + w), Step::Done(Err(_))));
    }

    #[test]
    fn polling_after_done_or_while_in_flight_is_an_error_not_a_panic() {
        let f = fixture(RetryConfig::default());
        let mut quota = RetryQuota::default();
        let mut call = RefreshCall::new(&f.endpoint, &f.input, &f.config, f.t0, 3);
        send(&mut call, f.t0);
        assert!(matches!(call.poll(f.t0), Step::Done(Err(_))));
        call.on_response(
            StatusCode::OK,
            &HeaderMap::new(),
            OK_BODY,
            f.t0,
            f.wall,
            &mut quota,
        );
        assert!(matches!(call.poll(f.t0), Step::Done(Ok(_))));
        assert!(matches!(call.poll(f.t0), Step::Done(Err(_))));
    }

    #[test]
    fn disabled_retries_make_one_attempt_with_max_1() {
        let f = fixture(RetryConfig::disabled());
        let mut quota = RetryQuota::default();
        let mut call = RefreshCall::new(&f.endpoint, &f.input, &f.config, f.t0, 3);
        let a = send(&mut call, f.t0);
        assert_eq!(
            a.request.http().headers()["amz-sdk-request"],
            "attempt=1; max=1"
        );
        respond(
            &mut call,
            &f,
            f.t0,
            &mut quota,
            error(500, "InternalErrorException"),
        );
        assert!(matches!(call.poll(f.t0), Step::Done(Err(e)) if e.attempts() == 1));
    }
}
