//! # cogref-reqwest
//!
//! Amazon Cognito `GetTokensFromRefreshToken` for async Rust on tokio, over
//! [reqwest](https://docs.rs/reqwest) (rustls by default, `native-tls` as a feature). The
//! protocol, retries and error taxonomy are [`cogref_core`]'s; this crate only moves bytes and
//! sleeps.
//!
//! ```no_run
//! use cogref_reqwest::{client, CallConfig, EndpointConfig, RefreshInput};
//! use cogref_reqwest::secrecy::ExposeSecret;
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
//! is ever logged. To share an existing `reqwest::Client`, see
//! [`ReqwestTransport::with_client`].

#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![deny(clippy::print_stdout, clippy::print_stderr)]

use std::future::Future;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

pub use cogref_core::driver::StdEnvironment;
use cogref_core::driver::{HttpRequest, HttpResponse};
pub use cogref_core::{
    AsyncTransport, CallConfig, CallError, Endpoint, EndpointConfig, Environment, Error,
    RefreshInput, RefreshOutput, ResponseLimits, RetryConfig, RetryPolicy, RevokeInput,
    RevokeOutput, SendOptions, Timeouts, http, secrecy,
};
use cogref_core::{ResponseError, TransportError, TransportErrorKind};

/// The async client: [`cogref_core::Client`] over reqwest and the system clock.
pub type Client = cogref_core::Client<ReqwestTransport, StdEnvironment>;

mod deadline;
use deadline::Binding;

/// A client for `endpoint` with `config`, on a new `reqwest::Client` set up by
/// [`ReqwestTransport::new`]. Fails only if reqwest cannot initialise TLS.
pub fn client(endpoint: Endpoint, config: CallConfig) -> Result<Client, reqwest::Error> {
    let transport = ReqwestTransport::new(&config.timeouts)?;
    Ok(Client::new(transport, environment(), endpoint, config))
}

/// The clocks and randomness [`client`] gives its client: std's fine clocks, and on Linux the
/// kernel's coarse clocks for a session's cached token (see [`cogref_clocks::environment`]).
pub use cogref_clocks::environment;

/// An [`AsyncTransport`] over a `reqwest::Client`, sleeping and spawning on tokio.
#[derive(Debug, Clone)]
pub struct ReqwestTransport {
    client: reqwest::Client,
    /// The runtime the transport was made on, for tasks spawned from outside any runtime.
    runtime: Option<tokio::runtime::Handle>,
    /// The first endpoint's URL as reqwest wants it, parsed once: turning each request's `Uri`
    /// into a `Url` (formatting it, then parsing) was the largest cost this transport added to
    /// a call. Requests to any other URL are converted one by one.
    url: OnceLock<(http::Uri, reqwest::Url)>,
    /// The attempts' deadlines, on the runtime of the latest attempt (see `deadline.rs`);
    /// shared by the transport's clones.
    deadlines: Arc<Binding>,
}

impl ReqwestTransport {
    /// A transport on a new client: redirects off, reqwest's own retries off (retries are the
    /// core's to decide), `timeouts.connect` for connecting, connection pooling on.
    pub fn new(timeouts: &Timeouts) -> Result<Self, reqwest::Error> {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            // reqwest resends on its own only HTTP/2 refusals, which this client does not
            // speak unless another crate turns reqwest's `http2` on; yet its retry layer clones
            // every request (headers and all) in case, unless it may retry none.
            .retry(reqwest::retry::never().max_retries_per_request(0))
            .connect_timeout(timeouts.bounded().connect)
            .build()?;
        Ok(Self::with_client(client))
    }

    /// A transport on a client you already have. It **must** be built with
    /// `redirect(reqwest::redirect::Policy::none())`: reqwest's default follows redirects, and a
    /// 307 or 308 would resend the refresh token to wherever the redirect points. It should be
    /// built with `retry(reqwest::retry::never().max_retries_per_request(0))` too, as
    /// [`ReqwestTransport::new`]'s is: reqwest's own retry layer clones every request, and
    /// resends an HTTP/2 refusal without the core's attempt count knowing.
    pub fn with_client(client: reqwest::Client) -> Self {
        Self {
            client,
            runtime: tokio::runtime::Handle::try_current().ok(),
            url: OnceLock::new(),
            deadlines: Arc::default(),
        }
    }

    /// `request` as reqwest's, made before any future of the exchange exists, so that none of
    /// them holds the request: a future keeps a local it moved out of for as long as the
    /// local's scope lasts once it was borrowed, and the request, its parts and reqwest's copy
    /// of it made 760 of the 1,056 bytes of a future that took the request (boxed on every
    /// attempt, past glibc's per-thread cache of small blocks, 1,032 bytes).
    fn convert(&self, request: HttpRequest) -> Result<reqwest::Request, Error> {
        let (parts, body) = request.into_parts();
        let mut request = reqwest::Request::new(parts.method, self.url(&parts.uri)?);
        *request.headers_mut() = parts.headers;
        *request.version_mut() = parts.version;
        *request.body_mut() = Some(body.into());
        Ok(request)
    }

    /// Sends a request [`Self::convert`] made and reads its answer, at most
    /// `options.max_body_bytes` of body. reqwest is handed the request when the future is
    /// first polled, as it would be by `client.execute(..).await` (a client with a timeout of
    /// its own arms it then, on the runtime that polls).
    async fn exchange(
        client: &reqwest::Client,
        request: Result<reqwest::Request, Error>,
        options: SendOptions,
    ) -> Result<HttpResponse, Error> {
        let mut response = client.execute(request?).await.map_err(map_error)?;
        let limit = options.max_body_bytes;
        let too_large = |response: &reqwest::Response| -> Error {
            ResponseError::body_too_large(limit, response.status(), response.headers()).into()
        };
        if response
            .content_length()
            .is_some_and(|n| n > u64::try_from(limit).unwrap_or(u64::MAX))
        {
            return Err(too_large(&response));
        }
        // Sized once from Content-Length when there is one (within the core's cap).
        let length = response.content_length();
        let mut body = Vec::with_capacity(options.body_capacity(length));
        // A body with a length ends at its last byte: polling on for the end-of-stream signal
        // would wait for the connection's task to run once more (a wake-up of the thread that
        // runs it, and a sleep of this one, per call) to learn nothing. The connection is still
        // reused: hyper finds nothing left to drain when the response is dropped.
        while length != u64::try_from(body.len()).ok() {
            let Some(chunk) = response.chunk().await.map_err(map_error)? else {
                break;
            };
            if body.len() + chunk.len() > limit {
                return Err(too_large(&response));
            }
            body.extend_from_slice(&chunk);
        }
        let mut out = http::Response::new(body);
        *out.status_mut() = response.status();
        *out.version_mut() = response.version();
        *out.headers_mut() = std::mem::take(response.headers_mut());
        Ok(out)
    }

    /// `uri` as a `reqwest::Url`.
    fn url(&self, uri: &http::Uri) -> Result<reqwest::Url, Error> {
        // Byte for byte (the core sends one endpoint's Uri, cloned): cheaper than `Uri`'s
        // case-insensitive equality, and a spelling that differs only parses again.
        if let Some((cached, url)) = self.url.get()
            && same_text(cached, uri)
        {
            return Ok(url.clone());
        }
        let url = reqwest::Url::parse(&uri.to_string())
            .map_err(|e| transport_error(TransportErrorKind::Other, false, e))?;
        let _ = self.url.set((uri.clone(), url.clone()));
        Ok(url)
    }
}

impl AsyncTransport for ReqwestTransport {
    fn send(
        &self,
        request: HttpRequest,
        options: SendOptions,
    ) -> impl Future<Output = Result<HttpResponse, Error>> + Send {
        // Converted before the future is made, which then does not hold it (see `convert`).
        // On the heap: reqwest's in-flight state is most of the exchange, and a future that
        // holds it inline is copied whole each time the call's futures are moved.
        let exchange = Box::pin(Self::exchange(&self.client, self.convert(request), options));
        async move {
            // One deadline over the whole exchange, body included (reqwest's own request
            // timeout would arm a boxed timer per request and poll a wrapper on every body
            // frame). The attempts on one runtime share one timer (see `deadline.rs`).
            let deadlines = self.deadlines.current();
            let deadline = tokio::time::Instant::now().checked_add(options.timeout);
            let outcome = match (&deadlines, deadline) {
                (Some(deadlines), Some(deadline)) => deadlines
                    .within(deadline, exchange)
                    .await
                    .map_err(|elapsed| elapsed.into()),
                // The same error as the shared timer's: a timeout reads alike on every runtime.
                _ => tokio::time::timeout(options.timeout, exchange)
                    .await
                    .map_err(|_| deadline::Elapsed.into()),
            };
            // Past the connect timeout (shorter by default), so the request may have left.
            outcome.unwrap_or_else(|elapsed: Box<dyn std::error::Error + Send + Sync>| {
                Err(transport_error(TransportErrorKind::Timeout, true, elapsed))
            })
        }
    }

    fn sleep(&self, duration: Duration) -> impl Future<Output = ()> + Send {
        tokio::time::sleep(duration)
    }

    /// Spawns on the current tokio runtime, else on the one the transport was made on, else on
    /// a thread of its own with a runtime of its own.
    fn spawn(&self, task: cogref_core::driver::DetachedTask) {
        if let Some(runtime) = tokio::runtime::Handle::try_current()
            .ok()
            .or_else(|| self.runtime.clone())
        {
            runtime.spawn(task);
            return;
        }
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build();
        // On failure the task is dropped, which its waiters are told of.
        if let Ok(runtime) = runtime {
            let _ = std::thread::Builder::new()
                .name("cogref-refresh".into())
                .spawn(move || runtime.block_on(task));
        }
    }
}

/// Whether two URIs are spelt alike: scheme, authority, path and query, byte for byte.
fn same_text(a: &http::Uri, b: &http::Uri) -> bool {
    a.scheme_str() == b.scheme_str()
        && a.authority().map(|x| x.as_str()) == b.authority().map(|x| x.as_str())
        && a.path_and_query().map(|x| x.as_str()) == b.path_and_query().map(|x| x.as_str())
}

fn transport_error(
    kind: TransportErrorKind,
    sent: bool,
    source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
) -> Error {
    let e = TransportError::new(kind, source);
    if sent { e.into() } else { e.not_sent().into() }
}

/// Maps a reqwest error to the taxonomy, recording whether the request can have been sent.
fn map_error(error: reqwest::Error) -> Error {
    // reqwest's Display names the URL, never the body: safe to keep as the source.
    let error = error.without_url();
    if error.is_timeout() {
        transport_error(TransportErrorKind::Timeout, !error.is_connect(), error)
    } else if error.is_connect() {
        transport_error(TransportErrorKind::Connect, false, error)
    } else if error.is_redirect() {
        transport_error(TransportErrorKind::Redirect, true, error)
    } else if error.is_body() || error.is_decode() || error.is_request() {
        transport_error(TransportErrorKind::Io, true, error)
    } else {
        transport_error(TransportErrorKind::Other, true, error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A loopback server that accepts connections and never answers.
    fn silent_server() -> std::net::SocketAddr {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let address = listener.local_addr().expect("address");
        std::thread::spawn(move || {
            let held: Vec<_> = listener.incoming().flatten().collect();
            drop(held);
        });
        address
    }

    /// A URI nothing listens on.
    const ANYWHERE: &str = "http://127.0.0.1:1/";

    fn request(uri: &str) -> HttpRequest {
        let mut request = http::Request::new(b"{}".to_vec());
        *request.method_mut() = http::Method::POST;
        *request.uri_mut() = uri.parse().expect("uri");
        request
    }

    fn options(timeout: Duration) -> SendOptions {
        SendOptions::new(timeout, Duration::from_secs(1), 1 << 20)
    }

    #[test]
    fn attempts_time_out_on_every_runtime_the_transport_is_used_on() {
        let address = silent_server();
        let endpoint = EndpointConfig::new()
            .endpoint_url(format!("http://{address}"))
            .resolve()
            .expect("endpoint");
        let config = CallConfig {
            retry: RetryConfig {
                max_attempts: 1,
                ..RetryConfig::default()
            },
            timeouts: Timeouts {
                attempt: Duration::from_millis(300),
                ..Timeouts::default()
            },
            ..CallConfig::default()
        };
        let input = RefreshInput::builder()
            .refresh_token("a-refresh-token-for-the-test")
            .client_id("1example23456789abcdefghij")
            .build()
            .expect("valid");
        // Made outside any runtime; the first attempt's runtime runs the shared timer, the
        // second runtime's attempts arm their own (and the third's, after the first is gone).
        let client = client(endpoint, config).expect("client");
        let runtime = || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime")
        };
        let first = runtime();
        for (name, runtime) in [("first", &first), ("second", &runtime())]
            .into_iter()
            .chain([("first again", &first)])
        {
            for _ in 0..2 {
                let started = std::time::Instant::now();
                let e = runtime
                    .block_on(client.refresh(&input))
                    .expect_err("timeout");
                assert!(
                    matches!(e.error(), Error::Transport(t) if t.kind() == TransportErrorKind::Timeout),
                    "{name}: {e}"
                );
                assert!(
                    started.elapsed() < Duration::from_secs(3),
                    "{name}: {:?}",
                    started.elapsed()
                );
            }
        }
        drop(first);
        let started = std::time::Instant::now();
        assert!(runtime().block_on(client.refresh(&input)).is_err());
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "after the first runtime is gone"
        );
    }

    /// `send` hands reqwest nothing until its future is polled: a client with a timeout of its
    /// own arms that timer then, on the runtime that polls, so a send made outside any runtime
    /// runs on the one that awaits it.
    #[test]
    fn a_send_made_outside_a_runtime_runs_on_the_runtime_that_awaits_it() {
        let address = silent_server();
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(5))
            .read_timeout(Duration::from_secs(5))
            .build()
            .expect("client");
        let transport = ReqwestTransport::with_client(client);
        let send = transport.send(
            request(&format!("http://{address}/")),
            options(Duration::from_millis(200)),
        );
        let outcome = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime")
            .block_on(send);
        assert!(
            matches!(&outcome, Err(Error::Transport(t)) if t.kind() == TransportErrorKind::Timeout),
            "{outcome:?}"
        );
    }

    #[test]
    fn a_transport_shared_by_two_endpoints_sends_each_request_to_its_own_url() {
        let transport = ReqwestTransport::new(&Timeouts::default()).expect("transport");
        let first: http::Uri = "http://127.0.0.1:9229/".parse().expect("uri");
        let second: http::Uri = "https://cognito-idp.eu-west-1.amazonaws.com/"
            .parse()
            .expect("uri");
        for _ in 0..2 {
            assert_eq!(
                transport.url(&first).expect("url").as_str(),
                "http://127.0.0.1:9229/"
            );
            assert_eq!(
                transport.url(&second).expect("url").as_str(),
                "https://cognito-idp.eu-west-1.amazonaws.com/"
            );
        }
        // A path or query of its own is not the cached endpoint.
        let with_path: http::Uri = "http://127.0.0.1:9229/x?y".parse().expect("uri");
        assert_eq!(
            transport.url(&with_path).expect("url").as_str(),
            "http://127.0.0.1:9229/x?y"
        );
    }

    /// A loopback server that answers every request on a connection with `answer` (keeping the
    /// connection open unless the answer says `connection: close`); returns its address and
    /// the number of connections it accepted.
    fn answering_server(
        answer: String,
    ) -> (
        std::net::SocketAddr,
        std::sync::Arc<std::sync::atomic::AtomicUsize>,
    ) {
        use std::io::{BufRead, Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let address = listener.local_addr().expect("address");
        let accepted = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = accepted.clone();
        let answer: std::sync::Arc<str> = answer.into();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let answer = answer.clone();
                std::thread::spawn(move || {
                    let mut writer = stream.try_clone().expect("clone");
                    let mut reader = std::io::BufReader::new(stream);
                    loop {
                        let mut length = 0;
                        loop {
                            let mut line = String::new();
                            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                                return;
                            }
                            if line == "\r\n" {
                                break;
                            }
                            if let Some(v) =
                                line.to_ascii_lowercase().strip_prefix("content-length:")
                            {
                                length = v.trim().parse().expect("length");
                            }
                        }
                        let mut body = vec![0; length];
                        reader.read_exact(&mut body).expect("body");
                        writer.write_all(answer.as_bytes()).expect("answer");
                        if answer.contains("connection: close") {
                            return;
                        }
                    }
                });
            }
        });
        (address, accepted)
    }

    const TOKENS: &str = r#"{"AuthenticationResult":{"AccessToken":"an-access-token","ExpiresIn":3600,"TokenType":"Bearer"}}"#;

    fn refresh_from(address: std::net::SocketAddr, calls: usize) -> Vec<Result<(), String>> {
        let endpoint = EndpointConfig::new()
            .endpoint_url(format!("http://{address}"))
            .resolve()
            .expect("endpoint");
        let input = RefreshInput::builder()
            .refresh_token("a-refresh-token-for-the-test")
            .client_id("1example23456789abcdefghij")
            .build()
            .expect("valid");
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let client = runtime.block_on(async { client(endpoint, CallConfig::default()) });
        let client = client.expect("client");
        (0..calls)
            .map(|_| {
                // hyper takes a connection back into its pool on the runtime's worker after
                // the response: a call made at once can race it and open a second connection
                // whatever the body's reading did. A pause lets the pool settle, so that a
                // count above one means a connection the reading left unusable.
                std::thread::sleep(Duration::from_millis(50));
                runtime
                    .block_on(client.refresh(&input))
                    .map(|out| assert_eq!(out.expires_in, Duration::from_secs(3600)))
                    .map_err(|e| e.to_string())
            })
            .collect()
    }

    #[test]
    fn a_body_read_to_its_content_length_leaves_the_connection_reusable() {
        let answer = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/x-amz-json-1.1\r\ncontent-length: {}\r\n\r\n{TOKENS}",
            TOKENS.len()
        );
        let (address, accepted) = answering_server(answer);
        let results = refresh_from(address, 6);
        assert!(results.iter().all(Result::is_ok), "{results:?}");
        assert_eq!(accepted.load(std::sync::atomic::Ordering::SeqCst), 1);
    }

    #[test]
    fn a_chunked_body_is_read_to_its_end_and_a_closed_connection_replaced() {
        let half = TOKENS.len() / 2;
        let chunked = format!(
            "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n{:x}\r\n{}\r\n{:x}\r\n{}\r\n0\r\n\r\n",
            half,
            &TOKENS[..half],
            TOKENS.len() - half,
            &TOKENS[half..]
        );
        let (address, accepted) = answering_server(chunked);
        let results = refresh_from(address, 3);
        assert!(results.iter().all(Result::is_ok), "{results:?}");
        assert_eq!(accepted.load(std::sync::atomic::Ordering::SeqCst), 1);

        let closing = format!(
            "HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{TOKENS}",
            TOKENS.len()
        );
        let (address, accepted) = answering_server(closing);
        let results = refresh_from(address, 3);
        assert!(results.iter().all(Result::is_ok), "{results:?}");
        assert_eq!(accepted.load(std::sync::atomic::Ordering::SeqCst), 3);
    }

    /// A refresh's future is moved whole as callers move theirs, and the boxed exchange is
    /// allocated on every attempt: neither may hold the request and its parts (they did,
    /// 1,496 and 1,056 bytes, through locals a future keeps once borrowed). The exchange, which
    /// holds reqwest's request until its first poll, stays within glibc's per-thread cache of
    /// small blocks (1,032 bytes).
    #[test]
    fn neither_the_call_nor_the_exchange_holds_the_request() {
        let transport = ReqwestTransport::with_client(reqwest::Client::new());
        let exchange = ReqwestTransport::exchange(
            &transport.client,
            transport.convert(request(ANYWHERE)),
            options(Duration::from_secs(1)),
        );
        assert!(
            std::mem::size_of_val(&exchange) <= 1024,
            "exchange: {} bytes",
            std::mem::size_of_val(&exchange)
        );
        let send = transport.send(request(ANYWHERE), options(Duration::from_secs(1)));
        assert!(
            std::mem::size_of_val(&send) <= 256,
            "send: {} bytes",
            std::mem::size_of_val(&send)
        );
        let endpoint = EndpointConfig::new()
            .endpoint_url("http://127.0.0.1:1")
            .resolve()
            .expect("endpoint");
        let client = client(endpoint, CallConfig::default()).expect("client");
        let input = RefreshInput::builder()
            .refresh_token("a-refresh-token-for-the-test")
            .client_id("1example23456789abcdefghij")
            .build()
            .expect("valid");
        let refresh = client.refresh(&input);
        assert!(
            std::mem::size_of_val(&refresh) <= 896,
            "refresh: {} bytes",
            std::mem::size_of_val(&refresh)
        );
    }
}
