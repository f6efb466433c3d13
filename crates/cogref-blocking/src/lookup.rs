//! The endpoint's name lookup, for the connections the agent opens.
//!
//! ureq's own resolver, given a timeout (this transport always sets one), looks the host up on
//! a new thread and drops its handle at once, which detaches the thread while it may be ending.
//! glibc's `pthread_detach` reads the thread's descriptor after marking it detached, and the
//! ending thread can free that descriptor, stack and all, in between: the process then dies of
//! a segmentation fault in `pthread_detach` (seen on this project's machine: raw ureq's bench
//! worker, which looks up on every call, died so about once in ten runs; a Rust program with
//! the same pattern, astral-sh/uv#21428). Here an address needs no lookup and no thread, and a
//! lookup thread that answers in time is joined, never detached; one that does not is kept, for
//! the whole process (a client dropped meanwhile does not detach it), and joined at a later
//! lookup once it has ended.

use std::io;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs as _};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;

use cogref_core::http;
use ureq::unversioned::resolver::{ResolvedSocketAddrs, Resolver};
use ureq::unversioned::transport::NextTimeout;
use ureq::unversioned::transport::time::Duration as Budget;

/// Resolves the request's host (see the module): its failures are [`NameLookupFailed`], as
/// ureq reports a failed `getaddrinfo` as `ureq::Error::Io`, as it does a reset connection,
/// and only the second can follow a request that went out.
#[derive(Debug)]
pub(crate) struct LookupResolver {
    /// The lookup itself (`getaddrinfo`, through the standard library; tests give others).
    look_up: LookUp,
}

/// Lookup threads that outlived their budget, joined once they have ended. The process's, not
/// a resolver's: a resolver dropped with one still running would detach it.
static LINGERING: Mutex<Vec<JoinHandle<()>>> = Mutex::new(Vec::new());

fn lingering() -> MutexGuard<'static, Vec<JoinHandle<()>>> {
    // A list of handles stays whole whatever panicked while it was held.
    LINGERING.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Joins the lookup threads that outlived their budget and have ended since.
fn join_ended() {
    let mut kept = lingering();
    if kept.is_empty() {
        return;
    }
    let (ended, running) = std::mem::take(&mut *kept)
        .into_iter()
        .partition::<Vec<_>, _>(JoinHandle::is_finished);
    *kept = running;
    drop(kept);
    for thread in ended {
        let _ = thread.join();
    }
}

/// Whether the lookup thread `id` outlived its budget and is kept, not yet joined.
#[cfg(test)]
pub(crate) fn is_kept(id: std::thread::ThreadId) -> bool {
    lingering().iter().any(|t| t.thread().id() == id)
}

type LookUp = fn(&str) -> Result<Vec<SocketAddr>, ureq::Error>;

impl Default for LookupResolver {
    fn default() -> Self {
        Self::with(lookup)
    }
}

impl LookupResolver {
    fn with(look_up: LookUp) -> Self {
        Self { look_up }
    }

    /// `host:port` looked up within `budget`.
    fn look_up(&self, host_port: String, budget: Budget) -> Result<Vec<SocketAddr>, ureq::Error> {
        let look_up = self.look_up;
        let Budget::Exact(budget) = budget else {
            return look_up(&host_port);
        };
        let (tx, rx) = mpsc::sync_channel(1);
        let thread = std::thread::Builder::new()
            .name("cogref-lookup".into())
            .spawn(move || {
                let _ = tx.send(look_up(&host_port));
            })
            // Nothing was sent: as a failed lookup.
            .map_err(|e| ureq::Error::Other(Box::new(NameLookupFailed(e))))?;
        match rx.recv_timeout(budget) {
            Ok(found) => {
                // It has sent its answer and is ending: joined, not detached (see the module).
                let _ = thread.join();
                found
            }
            Err(RecvTimeoutError::Disconnected) => {
                // It ended without an answer (it panicked): ended, so joined at once.
                let _ = thread.join();
                let ended = io::Error::other("the lookup ended without an answer");
                Err(ureq::Error::Other(Box::new(NameLookupFailed(ended))))
            }
            Err(RecvTimeoutError::Timeout) => {
                lingering().push(thread);
                Err(ureq::Error::Timeout(ureq::Timeout::Resolve))
            }
        }
    }
}

/// The port a URI of `scheme` means when it names none, as ureq reads it (proxies included:
/// ureq hands a proxy's URI to the agent's resolver); `None` for a scheme ureq does not know.
fn default_port(scheme: &http::uri::Scheme) -> Option<u16> {
    match scheme.as_str().to_ascii_lowercase().as_str() {
        "http" => Some(80),
        "https" => Some(443),
        "socks" | "socks4" | "socks4a" | "socks5" | "socks5h" => Some(1080),
        _ => None,
    }
}

fn lookup(host_port: &str) -> Result<Vec<SocketAddr>, ureq::Error> {
    host_port
        .to_socket_addrs()
        .map(Iterator::collect)
        .map_err(|e| ureq::Error::Other(Box::new(NameLookupFailed(e))))
}

impl Resolver for LookupResolver {
    fn resolve(
        &self,
        uri: &http::Uri,
        config: &ureq::config::Config,
        timeout: NextTimeout,
    ) -> Result<ResolvedSocketAddrs, ureq::Error> {
        join_ended();
        let (Some(scheme), Some(authority)) = (uri.scheme(), uri.authority()) else {
            return Err(ureq::Error::BadUri(uri.to_string()));
        };
        let Some(port) = authority.port_u16().or_else(|| default_port(scheme)) else {
            return Err(ureq::Error::BadUri(uri.to_string()));
        };
        let host = authority.host();
        // `[::1]` as the URI writes it.
        let literal = host.trim_start_matches('[').trim_end_matches(']');
        let found = match literal.parse::<IpAddr>() {
            Ok(ip) => vec![SocketAddr::new(ip, port)],
            Err(_) => self.look_up(format!("{host}:{port}"), timeout.after)?,
        };
        let mut addrs = self.empty();
        for addr in config.ip_family().keep_wanted(found.into_iter()) {
            // As many as ureq takes (16); the rest would not be tried either.
            if addrs.try_push(addr).is_err() {
                break;
            }
        }
        if addrs.is_empty() {
            Err(ureq::Error::HostNotFound)
        } else {
            Ok(addrs)
        }
    }
}

/// A host name that could not be resolved: nothing was sent.
#[derive(Debug)]
pub(crate) struct NameLookupFailed(io::Error);

impl std::fmt::Display for NameLookupFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "name lookup failed: {}", self.0)
    }
}

impl std::error::Error for NameLookupFailed {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    fn resolve(
        resolver: &LookupResolver,
        uri: &str,
        config: &ureq::config::Config,
        budget: Budget,
    ) -> Result<Vec<SocketAddr>, ureq::Error> {
        let uri: http::Uri = uri.parse().expect("a URI");
        let timeout = NextTimeout {
            after: budget,
            reason: ureq::Timeout::Resolve,
            ..NextTimeout::default()
        };
        resolver.resolve(&uri, config, timeout).map(|a| a.to_vec())
    }

    fn config() -> ureq::config::Config {
        ureq::Agent::config_builder().build()
    }

    /// A lookup that must not happen.
    fn no_lookup(host_port: &str) -> Result<Vec<SocketAddr>, ureq::Error> {
        panic!("{host_port} was looked up")
    }

    /// The thread of the last lookup [`slow_localhost`] made.
    static SLOW: Mutex<Option<std::thread::ThreadId>> = Mutex::new(None);

    fn slow_localhost(host_port: &str) -> Result<Vec<SocketAddr>, ureq::Error> {
        *SLOW.lock().expect("not poisoned") = Some(std::thread::current().id());
        std::thread::sleep(Duration::from_millis(300));
        let port = host_port.rsplit(':').next().and_then(|p| p.parse().ok());
        Ok(vec![SocketAddr::new(
            [127, 0, 0, 1].into(),
            port.unwrap_or(0),
        )])
    }

    /// The thread of the last lookup [`localhost_recorded`] made.
    static RECORDED: Mutex<Option<std::thread::ThreadId>> = Mutex::new(None);

    fn localhost_recorded(host_port: &str) -> Result<Vec<SocketAddr>, ureq::Error> {
        *RECORDED.lock().expect("not poisoned") = Some(std::thread::current().id());
        lookup(host_port)
    }

    #[test]
    fn an_address_is_its_own_answer_with_no_lookup() {
        let resolver = LookupResolver::with(no_lookup);
        let second = Budget::Exact(Duration::from_secs(1));
        let found = |uri| resolve(&resolver, uri, &config(), second).expect("resolved");
        assert_eq!(
            found("http://127.0.0.1:9229/"),
            ["127.0.0.1:9229".parse().expect("addr")]
        );
        assert_eq!(found("http://[::1]/"), ["[::1]:80".parse().expect("addr")]);
        assert_eq!(
            found("https://10.0.0.7/"),
            ["10.0.0.7:443".parse().expect("addr")]
        );
        let v6_only = ureq::Agent::config_builder()
            .ip_family(ureq::config::IpFamily::Ipv6Only)
            .build();
        let v4 = resolve(&resolver, "http://127.0.0.1:1/", &v6_only, second);
        assert!(matches!(v4, Err(ureq::Error::HostNotFound)), "{v4:?}");
    }

    #[test]
    fn a_name_is_looked_up_and_its_thread_joined_not_detached() {
        let resolver = LookupResolver::with(localhost_recorded);
        let found = resolve(
            &resolver,
            "http://localhost:8080/",
            &config(),
            Budget::Exact(Duration::from_secs(10)),
        )
        .expect("localhost resolves");
        assert!(
            found
                .iter()
                .all(|a| a.port() == 8080 && a.ip().is_loopback()),
            "{found:?}"
        );
        let thread = RECORDED.lock().expect("not poisoned").expect("looked up");
        assert_ne!(
            thread,
            std::thread::current().id(),
            "on a thread of its own"
        );
        assert!(!is_kept(thread), "answered in time: joined, not kept");
    }

    #[test]
    fn a_lookup_past_its_budget_times_out_and_its_thread_is_kept_even_past_its_resolver() {
        let budget = Budget::Exact(Duration::from_millis(50));
        // Its resolver (its client) is gone once the lookup has timed out.
        let late = {
            let resolver = LookupResolver::with(slow_localhost);
            resolve(&resolver, "http://cognito.example:1/", &config(), budget)
        };
        assert!(
            matches!(late, Err(ureq::Error::Timeout(ureq::Timeout::Resolve))),
            "{late:?}"
        );
        let thread = SLOW.lock().expect("not poisoned").expect("looked up");
        assert!(is_kept(thread), "kept, not detached with its resolver");
        // A later lookup, by any resolver, joins it once it has ended.
        let other = LookupResolver::with(no_lookup);
        let started = Instant::now();
        while is_kept(thread) {
            assert!(started.elapsed() < Duration::from_secs(30), "never joined");
            std::thread::sleep(Duration::from_millis(20));
            let _ = resolve(&other, "http://127.0.0.1:1/", &config(), budget);
        }
    }

    #[test]
    fn a_lookup_that_ends_without_an_answer_is_a_failed_lookup_not_a_timeout() {
        fn gives_up(host_port: &str) -> Result<Vec<SocketAddr>, ureq::Error> {
            panic!("no answer for {host_port} (this panic is the test's)")
        }
        let resolver = LookupResolver::with(gives_up);
        let budget = Budget::Exact(Duration::from_secs(30));
        let started = Instant::now();
        let failed = resolve(&resolver, "http://cognito.example:1/", &config(), budget);
        match failed {
            Err(ureq::Error::Other(e)) => assert!(e.is::<NameLookupFailed>(), "{e}"),
            other => panic!("{other:?}"),
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "waited out its budget"
        );
    }

    #[test]
    fn a_lookup_with_no_budget_runs_on_the_calling_thread() {
        fn on_caller(host_port: &str) -> Result<Vec<SocketAddr>, ureq::Error> {
            assert_eq!(std::thread::current().name(), Some("caller"), "{host_port}");
            Ok(vec![SocketAddr::new([127, 0, 0, 1].into(), 1)])
        }
        let found = std::thread::Builder::new()
            .name("caller".into())
            .spawn(|| {
                let resolver = LookupResolver::with(on_caller);
                resolve(
                    &resolver,
                    "http://cognito.example:1/",
                    &config(),
                    Budget::NotHappening,
                )
            })
            .expect("spawn")
            .join()
            .expect("no panic");
        assert!(found.is_ok(), "{found:?}");
    }

    // Review 32 (d95a7d7). Every lookup below is a stub: no name but `localhost` is ever
    // given to getaddrinfo, and no traffic leaves loopback.

    use crate::{BlockingTransport as _, DeferredLookup, LookupOnConnect, UreqTransport};

    /// A lookup that fails at once, as getaddrinfo does for a name it refuses.
    fn refused(_: &str) -> Result<Vec<SocketAddr>, ureq::Error> {
        Err(ureq::Error::Other(Box::new(NameLookupFailed(
            io::Error::new(io::ErrorKind::NotFound, "review32: no such name"),
        ))))
    }

    /// A lookup far slower than any budget below.
    fn three_seconds(_: &str) -> Result<Vec<SocketAddr>, ureq::Error> {
        std::thread::sleep(Duration::from_secs(3));
        Ok(vec![SocketAddr::new([127, 0, 0, 1].into(), 1)])
    }

    /// A transport set up as `UreqTransport::new`'s, its connect lookups made by `look_up`.
    fn transport_with(look_up: LookUp, connect: Duration) -> UreqTransport {
        let config = ureq::Agent::config_builder()
            .max_redirects(0)
            .http_status_as_error(false)
            .timeout_connect(Some(connect))
            .timeout_global(Some(Duration::from_secs(20)))
            .build();
        UreqTransport {
            agent: ureq::Agent::with_parts(
                config,
                LookupOnConnect {
                    lookup: LookupResolver::with(look_up),
                    connect: ureq::unversioned::transport::DefaultConnector::default(),
                },
                DeferredLookup(LookupResolver::with(no_lookup)),
            ),
            agent_timeout: Some(Duration::from_secs(20)),
        }
    }

    fn post(transport: &UreqTransport, url: &str) -> crate::Error {
        let request = http::Request::post(url)
            .body(b"{}".to_vec())
            .expect("request");
        let options =
            crate::SendOptions::new(Duration::from_secs(20), Duration::from_secs(5), 1 << 20);
        transport
            .send(request, options)
            .expect_err("no answer is possible")
    }

    fn assert_not_sent(e: &crate::Error, kind: cogref_core::TransportErrorKind) {
        let crate::Error::Transport(t) = e else {
            panic!("a transport error, not {e}");
        };
        assert_eq!(t.kind(), kind, "{e}");
        assert!(
            !t.request_may_have_been_sent(),
            "counted as possibly sent: {e}"
        );
    }

    /// Promise 1: an address is its own answer, so it needs no budget at all: with none left
    /// it still resolves (a lookup thread would not be waited for).
    #[test]
    fn an_address_resolves_with_a_zero_budget_as_no_thread_is_waited_for() {
        let resolver = LookupResolver::with(no_lookup);
        let none = Budget::Exact(Duration::ZERO);
        for (uri, want) in [
            ("http://127.0.0.1:9/", "127.0.0.1:9"),
            ("https://[::1]/", "[::1]:443"),
            ("http://[::ffff:127.0.0.1]:8/", "[::ffff:127.0.0.1]:8"),
            ("http://127.0.0.1:0/", "127.0.0.1:0"),
        ] {
            let found = resolve(&resolver, uri, &config(), none);
            assert_eq!(
                found.expect(uri),
                [want.parse::<SocketAddr>().expect("addr")],
                "{uri}"
            );
        }
    }

    /// Promise 1: `ip_family` filters an IPv6 address out as it does an IPv4 one.
    #[test]
    fn an_ipv6_address_under_ipv4_only_is_host_not_found() {
        let resolver = LookupResolver::with(no_lookup);
        let v4_only = ureq::Agent::config_builder()
            .ip_family(ureq::config::IpFamily::Ipv4Only)
            .build();
        let second = Budget::Exact(Duration::from_secs(1));
        for uri in ["http://[::1]:1/", "http://[::ffff:127.0.0.1]:1/"] {
            let found = resolve(&resolver, uri, &v4_only, second);
            assert!(
                matches!(found, Err(ureq::Error::HostNotFound)),
                "{uri}: {found:?}"
            );
        }
    }

    /// Behaviour change for proxies: with a proxy, `DeferredLookup` and ureq's CONNECT and
    /// SOCKS connectors hand the *proxy's* URI to this resolver. ureq's resolver gave a SOCKS
    /// proxy written without a port (`socks5://host`) port 1080; this one gives it 80.
    #[test]
    fn a_socks_proxy_without_a_port_is_resolved_to_port_1080_as_ureq_did() {
        let resolver = LookupResolver::with(no_lookup);
        let second = Budget::Exact(Duration::from_secs(1));
        for uri in [
            "socks5://127.0.0.1",
            "socks5h://127.0.0.1",
            "socks4://127.0.0.1",
        ] {
            let found = resolve(&resolver, uri, &config(), second).expect(uri);
            assert_eq!(found, ["127.0.0.1:1080".parse().expect("addr")], "{uri}");
        }
    }

    /// Promise 6: odd hosts give an answer or an error, never a panic (stub lookups only).
    #[test]
    fn odd_hosts_resolve_or_fail_without_a_panic() {
        let resolver = LookupResolver::with(refused);
        let second = Budget::Exact(Duration::from_secs(2));
        for uri in [
            "http://localhost./",
            "http://127.0.0.1./",
            "http://[fe80::1%25lo]:80/",
            "http://[::1]:0/",
            "http://example:65535/",
        ] {
            let Ok(parsed) = uri.parse::<http::Uri>() else {
                assert!(uri.contains('%'), "{uri} does not parse");
                continue; // the endpoint config could not hold it either
            };
            let outcome = std::panic::catch_unwind(|| {
                let timeout = NextTimeout {
                    after: second,
                    reason: ureq::Timeout::Resolve,
                    ..NextTimeout::default()
                };
                resolver
                    .resolve(&parsed, &config(), timeout)
                    .map(|a| a.to_vec())
            });
            let found = outcome.unwrap_or_else(|_| panic!("{uri} panicked"));
            assert!(
                !matches!(found, Err(ureq::Error::Timeout(_))),
                "{uri}: an instant answer read as a timeout: {found:?}"
            );
        }
    }

    /// Promises 2 and 4: a lookup that outlives the connect budget ends the attempt when the
    /// connect budget ends (not the attempt's 20 s, nor the lookup's 3 s), as a timeout of a
    /// request not sent; its thread is kept, not detached.
    #[test]
    fn a_lookup_past_the_connect_budget_is_a_timeout_not_sent() {
        let transport = transport_with(three_seconds, Duration::from_millis(200));
        let started = Instant::now();
        let e = post(&transport, "http://cognito.example:1/");
        let took = started.elapsed();
        assert_not_sent(&e, cogref_core::TransportErrorKind::Timeout);
        assert!(
            took < Duration::from_millis(2500),
            "{took:?} for a 200 ms connect budget"
        );
    }

    /// Promise 4: when the attempt's budget is the nearer (a call near its deadline), the
    /// lookup is bounded by it too, and its expiry is still a timeout of a request not sent.
    #[test]
    fn a_lookup_past_a_nearer_attempt_budget_is_a_timeout_not_sent() {
        let transport = transport_with(three_seconds, Duration::from_secs(10));
        let request = http::Request::post("http://cognito.example:1/")
            .body(b"{}".to_vec())
            .expect("request");
        let options =
            crate::SendOptions::new(Duration::from_millis(200), Duration::from_secs(10), 1 << 20);
        let started = Instant::now();
        let e = transport.send(request, options).expect_err("no answer");
        let took = started.elapsed();
        assert_not_sent(&e, cogref_core::TransportErrorKind::Timeout);
        assert!(
            took < Duration::from_millis(2500),
            "{took:?} for a 200 ms attempt"
        );
    }

    /// Promise 3: a lookup that fails within its budget is a connect error, not sent.
    #[test]
    fn a_failed_lookup_is_a_connect_error_not_sent() {
        let transport = transport_with(refused, Duration::from_secs(5));
        let e = post(&transport, "http://cognito.example:1/");
        assert_not_sent(&e, cogref_core::TransportErrorKind::Connect);
    }
}
