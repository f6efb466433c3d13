//! # cogref-blocking
//!
//! Amazon Cognito `GetTokensFromRefreshToken` for plain threads: a blocking client over
//! [ureq](https://docs.rs/ureq), with no async runtime anywhere in its dependency tree. The
//! protocol, retries and error taxonomy are [`cogref_core`]'s; this crate only moves bytes and
//! sleeps.
//!
//! ```no_run
//! use cogref_blocking::{client, CallConfig, EndpointConfig, RefreshInput};
//! use cogref_blocking::secrecy::ExposeSecret;
//!
//! let endpoint = EndpointConfig::from_env()?.resolve()?;
//! let client = client(endpoint, CallConfig::default());
//! let input = RefreshInput::builder()
//!     .refresh_token(std::fs::read_to_string("refresh-token")?.trim().to_owned())
//!     .client_id("1example23456789abcdefghij")
//!     .build()?;
//! match client.refresh_blocking(&input) {
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
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! The agent never follows redirects, reads at most [`ResponseLimits::max_body_bytes`] of a
//! body, applies the connect, attempt and total timeouts of [`Timeouts`], and keeps connections
//! alive between calls; it looks the endpoint's host up only when it opens a connection, and
//! never an address (ureq on its own resolves on every call, on a new thread when a timeout is
//! set, which it detaches: a race with the thread's exit that can crash the process in glibc's
//! `pthread_detach`; the lookup threads here are joined), and writes a
//! request's head and body at once (ureq on its own writes them apart). As ureq does, it
//! takes a proxy from `ALL_PROXY`, `HTTPS_PROXY` or `HTTP_PROXY` (and `NO_PROXY`) in the
//! environment. Every call and attempt is a `tracing` span; no secret is ever logged:
//! ureq's own wire log (hex dumps of every byte, which `tracing-log` would forward) is kept from
//! the subscriber, see [`cogref_core::quiet`].

#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![deny(clippy::print_stdout, clippy::print_stderr)]

mod coalesce;
mod lookup;

use std::io;
use std::time::Duration;

pub use cogref_core::driver::StdEnvironment;
use cogref_core::driver::{HttpRequest, HttpResponse};
pub use cogref_core::{
    BlockingTransport, CallConfig, CallError, Endpoint, EndpointConfig, Environment, Error,
    RefreshInput, RefreshOutput, ResponseLimits, RetryConfig, RetryPolicy, RevokeInput,
    RevokeOutput, SendOptions, Timeouts, http, secrecy,
};
use cogref_core::{ResponseError, TransportError, TransportErrorKind};
use lookup::{LookupResolver, NameLookupFailed};

/// The blocking client: [`cogref_core::Client`] over ureq and the system clock.
pub type Client = cogref_core::Client<UreqTransport, StdEnvironment>;

/// A client for `endpoint` with `config`, on a new ureq agent set up by [`UreqTransport::new`].
pub fn client(endpoint: Endpoint, config: CallConfig) -> Client {
    let transport = UreqTransport::new(&config.timeouts);
    Client::new(transport, environment(), endpoint, config)
}

/// The clocks and randomness [`client`] gives its client: std's fine clocks, and on Linux the
/// kernel's coarse clocks for a session's cached token (see [`cogref_clocks::environment`]).
pub use cogref_clocks::environment;

/// Idle connections a [`UreqTransport::new`] agent keeps for its next calls (ureq keeps 3).
///
/// A client is shared by the threads that refresh at once; each needs a connection, and one
/// not kept is one more TCP and TLS handshake on a later call (against Cognito, milliseconds
/// of CPU and a round trip). Kept: as many as 64 threads at once need.
///
/// An idle connection holds a socket and its buffers until it is closed, and ureq closes
/// idle connections lazily, not on a timer: one idle for more than 15 seconds when a later
/// call looks in the pool, all of them when the client is dropped. A client that stops
/// calling holds up to this many sockets until then (those the server has closed among
/// them). To choose otherwise, configure a ureq agent and use [`UreqTransport::with_agent`].
pub const IDLE_CONNECTIONS: usize = 64;

/// A [`BlockingTransport`] over a ureq agent.
#[derive(Debug, Clone)]
pub struct UreqTransport {
    agent: ureq::Agent,
    /// The agent's own global timeout; a request needs its own only when it must be shorter.
    agent_timeout: Option<Duration>,
}

impl UreqTransport {
    /// A transport on a new agent: no redirects, HTTP error statuses returned as responses,
    /// `timeouts.connect` for a name lookup and connecting (the lookup made only for a new
    /// connection), `timeouts.attempt` for a whole exchange, connection reuse on, with up to
    /// [`IDLE_CONNECTIONS`] idle connections kept.
    pub fn new(timeouts: &Timeouts) -> Self {
        let timeouts = timeouts.bounded();
        let config = ureq::Agent::config_builder()
            .max_idle_connections(IDLE_CONNECTIONS)
            .max_idle_connections_per_host(IDLE_CONNECTIONS)
            .max_redirects(0)
            .http_status_as_error(false)
            .timeout_connect(Some(timeouts.connect))
            .timeout_global(Some(timeouts.attempt))
            .user_agent(ureq::config::AutoHeaderValue::None)
            .accept(ureq::config::AutoHeaderValue::None)
            .build();
        Self {
            agent: ureq::Agent::with_parts(
                config,
                LookupOnConnect::<LookupResolver>::default(),
                DeferredLookup::<LookupResolver>::default(),
            ),
            agent_timeout: Some(timeouts.attempt),
        }
    }

    /// A transport on an agent you configured. It **must** have `.max_redirects(0)` (a redirect
    /// would carry the refresh token to another host) and `http_status_as_error(false)`. Its
    /// pool is yours to size: ureq keeps 3 idle connections unless told otherwise (see
    /// [`IDLE_CONNECTIONS`]).
    ///
    /// ureq's own resolver reports a failed name lookup as an I/O error, which cannot be told
    /// from one on a connection: through such an agent a lookup failure counts as possibly sent
    /// (never retried by [`RetryConfig::rotation_safe`]). [`UreqTransport::new`]'s agent tells
    /// them apart.
    pub fn with_agent(agent: ureq::Agent) -> Self {
        let agent_timeout = agent.config().timeouts().global;
        Self {
            agent,
            agent_timeout,
        }
    }
}

impl BlockingTransport for UreqTransport {
    fn send(&self, request: HttpRequest, options: SendOptions) -> Result<HttpResponse, Error> {
        // ureq logs hex dumps of every byte at TRACE (`log` crate), which `tracing-log` would
        // hand to the subscriber: the request body holds the refresh token, the response every
        // new token.
        cogref_core::quiet::quietly(|| self.send_unlogged(request, options))
    }
}

impl UreqTransport {
    fn send_unlogged(
        &self,
        request: HttpRequest,
        options: SendOptions,
    ) -> Result<HttpResponse, Error> {
        // Under a millisecond left, ureq gives up before it looks the host up, and names the
        // attempt's budget: which would read as possibly sent. Nothing is.
        if options.timeout < Duration::from_millis(1) {
            return Err(transport_error(ureq::Error::Timeout(
                ureq::Timeout::Connect,
            )));
        }
        // Within it already when the core made the options; not if a caller did.
        let timeout = options.timeout.min(cogref_core::LONGEST_TIMEOUT);
        // ureq writes the Host header itself, from the URI.
        let mut request = request;
        request.headers_mut().remove(http::header::HOST);
        // A request-level configuration costs ureq a config copy and tens of microseconds per
        // call, so it is used only when the call's deadline makes this attempt shorter.
        let mut response = if self.agent_timeout.is_some_and(|t| t <= timeout) {
            self.agent.run(request)
        } else {
            let request = self
                .agent
                .configure_request(request)
                .timeout_global(Some(timeout))
                .build();
            self.agent.run(request)
        }
        .map_err(transport_error)?;
        let limit = options.max_body_bytes;
        let body = response
            .body_mut()
            .with_config()
            .limit(u64::try_from(limit).unwrap_or(u64::MAX))
            .read_to_vec();
        let (parts, _) = response.into_parts();
        match body {
            Ok(body) => Ok(http::Response::from_parts(parts, body)),
            Err(ureq::Error::BodyExceedsLimit(_)) => {
                Err(ResponseError::body_too_large(limit, parts.status, &parts.headers).into())
            }
            Err(e) => Err(transport_error(e)),
        }
    }
}

/// The agent's resolver in [`UreqTransport::new`]: no lookup here (an empty address list),
/// [`LookupOnConnect`] makes it. ureq resolves a request's host before it looks in its pool,
/// and with a timeout set (this transport always sets one) it does so on a new thread: every
/// call, over a pooled connection or not, started a thread and ran a name lookup. An agent
/// with a proxy keeps ureq's order (the proxy may be the one to resolve the host).
#[derive(Debug, Default)]
struct DeferredLookup<R = LookupResolver>(R);

impl<R: ureq::unversioned::resolver::Resolver> ureq::unversioned::resolver::Resolver
    for DeferredLookup<R>
{
    fn resolve(
        &self,
        uri: &http::Uri,
        config: &ureq::config::Config,
        timeout: ureq::unversioned::transport::NextTimeout,
    ) -> Result<ureq::unversioned::resolver::ResolvedSocketAddrs, ureq::Error> {
        if config.proxy().is_some() {
            return self.0.resolve(uri, config, timeout);
        }
        Ok(self.0.empty())
    }
}

/// ureq's default connectors, after a name lookup made only when a new connection is needed
/// (as hyper does), within the connect timeout: a lookup and the connection it leads to share
/// one budget.
#[derive(Debug, Default)]
struct LookupOnConnect<R = LookupResolver> {
    lookup: R,
    connect: ureq::unversioned::transport::DefaultConnector,
}

impl<R: ureq::unversioned::resolver::Resolver> ureq::unversioned::transport::Connector
    for LookupOnConnect<R>
{
    type Out = Box<dyn ureq::unversioned::transport::Transport>;

    fn connect(
        &self,
        details: &ureq::unversioned::transport::ConnectionDetails<'_>,
        chained: Option<()>,
    ) -> Result<Option<Self::Out>, ureq::Error> {
        use ureq::unversioned::transport::{ConnectionDetails, NextTimeout, time::Duration};
        // Nothing is sent while a connection is made: whichever budget ends it (the connect
        // timeout, or the attempt's when it is the nearer), it is a connect timeout.
        let mut timeout = NextTimeout {
            reason: ureq::Timeout::Connect,
            ..details.timeout
        };
        let mut now = details.now;
        let addrs = if details.addrs.is_empty() && details.config.proxy().is_none() {
            let started = std::time::Instant::now();
            let lookup = NextTimeout {
                reason: ureq::Timeout::Resolve,
                ..details.timeout
            };
            let addrs = self.lookup.resolve(details.uri, details.config, lookup)?;
            if let Duration::Exact(after) = timeout.after {
                let left = after.saturating_sub(started.elapsed());
                // ureq reads a zero budget as none given (a second for the connect).
                if left.is_zero() {
                    return Err(ureq::Error::Timeout(ureq::Timeout::Connect));
                }
                timeout.after = Duration::Exact(left);
            }
            // The connectors measure the budget from `now`: after the lookup, so that its time
            // is not taken off twice.
            now = (details.current_time)();
            addrs
        } else {
            details.addrs.clone()
        };
        let details = ConnectionDetails {
            uri: details.uri,
            addrs,
            config: details.config,
            request_level: details.request_level,
            resolver: &self.lookup,
            now,
            timeout,
            current_time: details.current_time.clone(),
            run_connector: details.run_connector.clone(),
            register_shutdown: details.register_shutdown.clone(),
        };
        // Every connection writes a request's head and body at once (see `coalesce`).
        let connection = self.connect.connect(&details, chained)?;
        Ok(connection.map(|c| Box::new(coalesce::Coalescing::new(c)) as Self::Out))
    }
}

/// Maps a ureq error to the taxonomy, recording whether the request can have been sent.
fn transport_error(error: ureq::Error) -> Error {
    use ureq::Timeout;
    let (kind, sent) = match &error {
        ureq::Error::Timeout(Timeout::Resolve | Timeout::Connect) => {
            (TransportErrorKind::Timeout, false)
        }
        ureq::Error::Timeout(_) => (TransportErrorKind::Timeout, true),
        ureq::Error::HostNotFound | ureq::Error::ConnectionFailed => {
            (TransportErrorKind::Connect, false)
        }
        ureq::Error::Other(e) if e.is::<NameLookupFailed>() => (TransportErrorKind::Connect, false),
        ureq::Error::Io(e) => match e.kind() {
            io::ErrorKind::ConnectionRefused | io::ErrorKind::NotFound => {
                (TransportErrorKind::Connect, false)
            }
            io::ErrorKind::TimedOut => (TransportErrorKind::Timeout, true),
            _ => (TransportErrorKind::Io, true),
        },
        ureq::Error::TooManyRedirects | ureq::Error::RedirectFailed => {
            (TransportErrorKind::Redirect, true)
        }
        ureq::Error::Tls(_) => (TransportErrorKind::Connect, false),
        ureq::Error::Protocol(_) | ureq::Error::BodyStalled => (TransportErrorKind::Io, true),
        _ => (TransportErrorKind::Other, true),
    };
    let e = TransportError::new(kind, error);
    if sent { e.into() } else { e.not_sent().into() }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader, Read, Write};
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A resolver that counts its lookups.
    #[derive(Debug, Default, Clone)]
    struct Counting(Arc<AtomicUsize>, Arc<LookupResolver>);

    impl ureq::unversioned::resolver::Resolver for Counting {
        fn resolve(
            &self,
            uri: &http::Uri,
            config: &ureq::config::Config,
            timeout: ureq::unversioned::transport::NextTimeout,
        ) -> Result<ureq::unversioned::resolver::ResolvedSocketAddrs, ureq::Error> {
            self.0.fetch_add(1, Ordering::SeqCst);
            self.1.resolve(uri, config, timeout)
        }
    }

    /// A loopback server answering `{}` to every request; `close` ends each connection after
    /// its answer. Counts the connections it accepted.
    fn server(close: bool) -> (u16, Arc<AtomicUsize>) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("address").port();
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = accepted.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                count.fetch_add(1, Ordering::SeqCst);
                std::thread::spawn(move || -> std::io::Result<()> {
                    let mut writer = stream.try_clone()?;
                    let mut reader = BufReader::new(stream);
                    loop {
                        let mut length = 0;
                        loop {
                            let mut line = String::new();
                            if reader.read_line(&mut line)? == 0 {
                                return Ok(());
                            }
                            if let Some(v) =
                                line.to_ascii_lowercase().strip_prefix("content-length:")
                            {
                                length = v.trim().parse().unwrap_or(0);
                            }
                            if line == "\r\n" {
                                break;
                            }
                        }
                        reader.read_exact(&mut vec![0; length])?;
                        let connection = if close { "close" } else { "keep-alive" };
                        write!(
                            writer,
                            "HTTP/1.1 200 OK\r\nconnection: {connection}\r\ncontent-length: 2\r\n\r\n{{}}"
                        )?;
                        if close {
                            return Ok(());
                        }
                    }
                });
            }
        });
        (port, accepted)
    }

    /// An agent set up as [`UreqTransport::new`]'s, its lookups counted (wherever made).
    fn agent(lookups: &Counting) -> ureq::Agent {
        let config = ureq::Agent::config_builder()
            .timeout_connect(Some(Duration::from_secs(3)))
            .timeout_global(Some(Duration::from_secs(10)))
            .http_status_as_error(false)
            .build();
        ureq::Agent::with_parts(
            config,
            LookupOnConnect {
                lookup: lookups.clone(),
                connect: ureq::unversioned::transport::DefaultConnector::default(),
            },
            DeferredLookup(lookups.clone()),
        )
    }

    /// `times` calls through `agent` to the server on `port`, each answer read to the end (only
    /// then does the connection go back to the pool).
    fn call(agent: &ureq::Agent, port: u16, times: usize) {
        for _ in 0..times {
            let mut response = agent
                .post(format!("http://localhost:{port}/"))
                .send("{}")
                .expect("answer");
            assert_eq!(response.status(), 200);
            assert_eq!(response.body_mut().read_to_string().expect("body"), "{}");
        }
    }

    #[test]
    fn calls_over_a_kept_connection_look_the_host_up_once() {
        let (port, connections) = server(false);
        let lookups = Counting::default();
        let agent = agent(&lookups);
        call(&agent, port, 5);
        assert_eq!(connections.load(Ordering::SeqCst), 1);
        assert_eq!(
            lookups.0.load(Ordering::SeqCst),
            1,
            "one lookup, for the one connection"
        );
    }

    #[test]
    fn each_new_connection_looks_the_host_up_again() {
        let (port, connections) = server(true);
        let lookups = Counting::default();
        let agent = agent(&lookups);
        call(&agent, port, 3);
        assert_eq!(connections.load(Ordering::SeqCst), 3);
        assert_eq!(lookups.0.load(Ordering::SeqCst), 3);
    }
    /// Review 22: a resolver that answers as the default one does, `0` later.
    #[derive(Debug, Default)]
    struct Slow(Duration, LookupResolver);

    impl ureq::unversioned::resolver::Resolver for Slow {
        fn resolve(
            &self,
            uri: &http::Uri,
            config: &ureq::config::Config,
            timeout: ureq::unversioned::transport::NextTimeout,
        ) -> Result<ureq::unversioned::resolver::ResolvedSocketAddrs, ureq::Error> {
            std::thread::sleep(self.0);
            self.1.resolve(uri, config, timeout)
        }
    }

    /// Review 22: a lookup and the connection it leads to share the connect budget, so a
    /// lookup that took 1.2 s of a 2 s budget leaves the TCP connection and the TLS handshake
    /// 0.8 s. The listener stands in for a TLS server: it only records whether a ClientHello
    /// (first byte 0x16) arrived. Fails on 900a9fe: `LookupOnConnect` passes on `details.now`
    /// (taken before the lookup) with the reduced budget, and rustls's connector sets its
    /// deadline at `now + budget`, so the lookup's time is taken off twice and the handshake's
    /// deadline has passed before it starts: no ClientHello is written, the call fails at once
    /// with a connect timeout.
    #[test]
    fn a_slow_lookup_leaves_the_tls_handshake_its_connect_budget() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("address").port();
        let (hello_tx, hello_rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || -> std::io::Result<()> {
            let (mut stream, _) = listener.accept()?;
            stream.set_read_timeout(Some(Duration::from_secs(5)))?;
            let mut first = [0u8; 1];
            let n = stream.read(&mut first).unwrap_or(0);
            let _ = hello_tx.send(n == 1 && first[0] == 0x16);
            // Hold the connection (no ServerHello) until the client gives up.
            std::thread::sleep(Duration::from_secs(5));
            Ok(())
        });
        let config = ureq::Agent::config_builder()
            .timeout_connect(Some(Duration::from_secs(2)))
            .timeout_global(Some(Duration::from_secs(10)))
            .http_status_as_error(false)
            .build();
        let agent = ureq::Agent::with_parts(
            config,
            LookupOnConnect {
                lookup: Slow(Duration::from_millis(1200), LookupResolver::default()),
                connect: ureq::unversioned::transport::DefaultConnector::default(),
            },
            DeferredLookup(LookupResolver::default()),
        );
        let started = std::time::Instant::now();
        let e = agent
            .post(format!("https://localhost:{port}/"))
            .send("{}")
            .expect_err("no TLS server there");
        let took = started.elapsed();
        let hello = hello_rx
            .recv_timeout(Duration::from_secs(5))
            .unwrap_or(false);
        assert!(
            hello,
            "no ClientHello reached the server: the handshake had no budget left ({e} after {took:?})"
        );
        assert!(
            matches!(e, ureq::Error::Timeout(ureq::Timeout::Connect)),
            "a connect timeout, not {e}"
        );
        // The whole connect budget, lookup included, and not much more.
        assert!(
            took >= Duration::from_millis(1900) && took < Duration::from_millis(3500),
            "{took:?} for a 2 s connect budget"
        );
    }
}
