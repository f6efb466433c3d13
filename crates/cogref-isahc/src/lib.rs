//! # cogref-isahc
//!
//! Amazon Cognito `GetTokensFromRefreshToken` for async Rust over
//! [isahc](https://docs.rs/isahc) (libcurl), on any executor: isahc runs its own I/O agent, and
//! waits between attempts use a runtime-independent timer. The protocol, retries and error
//! taxonomy are [`cogref_core`]'s; this crate only moves bytes and sleeps.
//!
//! ```no_run
//! use cogref_isahc::{client, CallConfig, EndpointConfig, RefreshInput};
//! use cogref_isahc::secrecy::ExposeSecret;
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let endpoint = EndpointConfig::new().region("eu-west-1").resolve()?;
//! let client = client(endpoint, CallConfig::default())?;
//! let input = RefreshInput::builder()
//!     .refresh_token(std::env::var("REFRESH_TOKEN")?)
//!     .client_id("1example23456789abcdefghij")
//!     .build()?;
//! match client.refresh(&input).await {
//!     Ok(tokens) => {
//!         let _bearer = tokens.access_token.expose_secret();
//!         if let Some(rotated) = tokens.refresh_token {
//!             // Rotation is on: store `rotated` before using the new tokens.
//!             # drop(rotated);
//!         }
//!     }
//!     Err(e) if e.requires_sign_in() => eprintln!("sign in again: {e}"),
//!     Err(e) => eprintln!("refresh failed: {e}"), // says how many attempts were made
//! }
//! # Ok(())
//! # }
//! ```
//!
//! The client never follows redirects, reads at most [`ResponseLimits::max_body_bytes`] of a
//! body (checked while reading), applies the connect, attempt and total timeouts of
//! [`Timeouts`], and reuses connections. Every call and attempt is a `tracing` span; no secret
//! is ever logged: isahc's own wire log (`isahc::wire`, every byte sent and received) is kept
//! from the subscriber, see [`cogref_core::quiet`]. That log is made on isahc's agent thread,
//! which the transport silences (from the first request body isahc reads there): a client's
//! agent thread logs nothing after its first cogref request.

#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![deny(clippy::print_stdout, clippy::print_stderr)]

use std::future::Future;
use std::io::{self, Cursor, Read as _};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

pub use cogref_core::driver::StdEnvironment;
use cogref_core::driver::{HttpRequest, HttpResponse};
pub use cogref_core::{
    AsyncTransport, CallConfig, CallError, Endpoint, EndpointConfig, Environment, Error,
    RefreshInput, RefreshOutput, ResponseLimits, RetryConfig, RetryPolicy, RevokeInput,
    RevokeOutput, SendOptions, Timeouts, http, secrecy,
};
use cogref_core::{ResponseError, TransportError, TransportErrorKind};
use futures_lite::AsyncReadExt;
use isahc::AsyncBody;
use isahc::config::{Configurable, ExpectContinue, RedirectPolicy};
use isahc::error::ErrorKind;

/// The async client: [`cogref_core::Client`] over isahc and the system clock.
pub type Client = cogref_core::Client<IsahcTransport, StdEnvironment>;

/// A client for `endpoint` with `config`, on a new `isahc::HttpClient` set up by
/// [`IsahcTransport::new`]. Fails only if libcurl cannot be initialised.
pub fn client(endpoint: Endpoint, config: CallConfig) -> Result<Client, isahc::Error> {
    let transport = IsahcTransport::new(&config.timeouts)?;
    Ok(Client::new(transport, environment(), endpoint, config))
}

/// The clocks and randomness [`client`] gives its client: std's fine clocks, and on Linux the
/// kernel's coarse clocks for a session's cached token (see [`cogref_clocks::environment`]).
pub use cogref_clocks::environment;

/// An [`AsyncTransport`] over an `isahc::HttpClient`.
#[derive(Debug, Clone)]
pub struct IsahcTransport {
    client: isahc::HttpClient,
    /// Whether the client's agent thread was silenced ([`SilencingBody`]).
    agent_silenced: Arc<AtomicBool>,
}

impl IsahcTransport {
    /// A transport on a new client: redirects off, no automatic decompression and no
    /// `Expect: 100-continue` (the request stays exactly as the core built it),
    /// `timeouts.connect` for connecting, connection reuse on.
    pub fn new(timeouts: &Timeouts) -> Result<Self, isahc::Error> {
        let client = isahc::HttpClient::builder()
            .redirect_policy(RedirectPolicy::None)
            .automatic_decompression(false)
            // libcurl may send `Expect: 100-continue` for larger bodies (over 1 KiB before
            // curl 8) and then wait a round trip, or a second, before the body.
            .expect_continue(ExpectContinue::disabled())
            .connect_timeout(timeouts.bounded().connect)
            .build()?;
        Ok(Self::with_client(client))
    }

    /// A transport on a client you already have. It **must** keep isahc's default
    /// `RedirectPolicy::None`: a followed redirect would resend the refresh token elsewhere.
    ///
    /// The client's agent thread is silenced by the first request this transport sends (see
    /// the crate docs): the `tracing` events isahc makes there for the client's other requests
    /// are not seen either.
    pub fn with_client(client: isahc::HttpClient) -> Self {
        Self {
            client,
            agent_silenced: Arc::new(AtomicBool::new(false)),
        }
    }
}

impl AsyncTransport for IsahcTransport {
    fn send(
        &self,
        request: HttpRequest,
        options: SendOptions,
    ) -> impl Future<Output = Result<HttpResponse, Error>> + Send {
        // isahc logs every byte it moves (`isahc::wire`, TRACE) when a subscriber listens:
        // the request body holds the refresh token, the response every new token. Handed the
        // request and polled quietly, isahc finds its spans disabled and never turns libcurl's
        // debug output on. Handed it before the future is made, which then does not hold it
        // (see `start`).
        let started = cogref_core::quiet::quietly(|| self.start(request, options));
        cogref_core::quiet::quiet(Self::exchange(started, options))
    }

    fn sleep(&self, duration: Duration) -> impl Future<Output = ()> + Send {
        futures_timer::Delay::new(duration)
    }
}

impl IsahcTransport {
    /// Hands `request` to isahc, which makes its span now and sends the request when the
    /// returned future is first polled.
    ///
    /// Done before any future of the exchange exists, so that none of them holds the request:
    /// a future keeps a local it moved out of for as long as the local's scope lasts once it
    /// was borrowed, and the request and its parts made a future of 1,072 bytes, boxed on
    /// every attempt past glibc's per-thread cache of small blocks (1,032 bytes).
    fn start(
        &self,
        request: HttpRequest,
        options: SendOptions,
    ) -> Result<isahc::ResponseFuture<'_>, Error> {
        // isahc reads a request's settings from its extensions; a builder puts them there.
        // Covers the whole exchange, body included.
        let (settings, ()) = http::Request::builder()
            // Within the longest already when the core made the options; not if a caller did.
            .timeout(options.timeout.min(cogref_core::LONGEST_TIMEOUT))
            .body(())
            .map_err(|e| TransportError::new(TransportErrorKind::Other, e).not_sent())?
            .into_parts();
        let (mut parts, body) = request.into_parts();
        parts.extensions.extend(settings.extensions);
        let body = if self.agent_silenced.load(Ordering::Acquire) {
            AsyncBody::from(body)
        } else {
            let length = u64::try_from(body.len()).unwrap_or(u64::MAX);
            AsyncBody::from_reader_sized(
                SilencingBody {
                    bytes: Cursor::new(body),
                    agent_silenced: Arc::clone(&self.agent_silenced),
                },
                length,
            )
        };
        Ok(self
            .client
            .send_async(http::Request::from_parts(parts, body)))
    }

    /// Awaits the response of a request isahc has (what [`Self::start`] returned) and reads
    /// its answer, at most `options.max_body_bytes` of body.
    async fn exchange(
        started: Result<isahc::ResponseFuture<'_>, Error>,
        options: SendOptions,
    ) -> Result<HttpResponse, Error> {
        let response = started?.await.map_err(map_error)?;
        let (parts, mut body) = response.into_parts();
        let limit = options.max_body_bytes;
        let too_large = || -> Error {
            ResponseError::body_too_large(limit, parts.status, &parts.headers).into()
        };
        let limit_u64 = u64::try_from(limit).unwrap_or(u64::MAX);
        if body.len().is_some_and(|n| n > limit_u64) {
            return Err(too_large());
        }
        // One byte past the limit tells "too large" from "exactly at the limit". Sized once from
        // Content-Length when there is one (within the core's cap).
        let mut bytes = Vec::with_capacity(options.body_capacity(body.len()).saturating_add(1));
        (&mut body)
            .take(limit_u64.saturating_add(1))
            .read_to_end(&mut bytes)
            .await
            .map_err(|e| {
                // isahc's timeout covers the body: it ends the read with `TimedOut`.
                let kind = if e.kind() == std::io::ErrorKind::TimedOut {
                    TransportErrorKind::Timeout
                } else {
                    TransportErrorKind::Io
                };
                TransportError::new(kind, e)
            })?;
        if bytes.len() > limit {
            return Err(too_large());
        }
        Ok(http::Response::from_parts(parts, bytes))
    }
}

/// A request body that silences the thread isahc reads it on, its agent thread.
///
/// libcurl's debug output (the `isahc::wire` events with every byte sent and received) is made
/// on that thread, outside the caller's [`cogref_core::quiet::quiet`] scope, and isahc turns it
/// on whenever `tracing`'s `log` feature is on anywhere in the application (a disabled span is
/// then not `is_none()`) or a `log` logger is at DEBUG. Nothing in isahc's API reaches that
/// thread but the body it reads there, so the body silences it before its first byte is sent;
/// later requests of the client use a plain buffered body. Only the headers of the first
/// request (no secret in them) can be logged before.
///
/// A reader body cannot be rewound, which libcurl would need to resend it on a reused
/// connection found dead; a client's first request has no reused connection.
struct SilencingBody {
    bytes: Cursor<Vec<u8>>,
    agent_silenced: Arc<AtomicBool>,
}

impl futures_lite::AsyncRead for SilencingBody {
    fn poll_read(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        // isahc names its agent threads `isahc-agent-N`; any other thread (one of the
        // application's) is left alone.
        let on_agent = std::thread::current()
            .name()
            .is_some_and(|name| name.starts_with("isahc-agent"));
        if on_agent && !this.agent_silenced.load(Ordering::Acquire) {
            cogref_core::quiet::silence_current_thread();
            this.agent_silenced.store(true, Ordering::Release);
        }
        Poll::Ready(this.bytes.read(buf))
    }
}

/// Maps an isahc error to the taxonomy, recording whether the request can have been sent.
fn map_error(error: isahc::Error) -> Error {
    let (kind, sent) = match error.kind() {
        ErrorKind::ConnectionFailed | ErrorKind::NameResolution => {
            (TransportErrorKind::Connect, false)
        }
        ErrorKind::BadServerCertificate
        | ErrorKind::BadClientCertificate
        | ErrorKind::InvalidTlsConfiguration
        | ErrorKind::TlsEngine => (TransportErrorKind::Connect, false),
        // libcurl reports connect and transfer timeouts alike: assume the worst.
        ErrorKind::Timeout => (TransportErrorKind::Timeout, true),
        ErrorKind::TooManyRedirects => (TransportErrorKind::Redirect, true),
        ErrorKind::Io | ErrorKind::ProtocolViolation => (TransportErrorKind::Io, true),
        _ => (TransportErrorKind::Other, true),
    };
    let e = TransportError::new(kind, error);
    if sent { e.into() } else { e.not_sent().into() }
}

#[cfg(test)]
mod future_size {
    use super::*;

    /// The exchange, boxed on every attempt (`quiet`), does not hold the request isahc was
    /// handed (it did: 1,072 bytes), and stays within glibc's per-thread cache of small blocks
    /// (1,032 bytes).
    #[test]
    fn the_exchange_does_not_hold_the_request() {
        let transport = IsahcTransport::with_client(isahc::HttpClient::new().expect("client"));
        let mut request = http::Request::new(b"{}".to_vec());
        *request.uri_mut() = http::Uri::from_static("http://127.0.0.1:1/");
        let options = SendOptions::new(Duration::from_secs(1), Duration::from_secs(1), 1 << 20);
        let exchange = IsahcTransport::exchange(transport.start(request, options), options);
        assert!(
            std::mem::size_of_val(&exchange) <= 640,
            "exchange: {} bytes",
            std::mem::size_of_val(&exchange)
        );
    }
}
