//! The endpoint's name lookup, for the connections the agent opens.
//!
//! ureq's own resolver, given a timeout (this transport always sets one), looks the host up on
//! a new thread and drops its handle at once, which detaches the thread while it may be ending.
//! glibc's `pthread_detach` reads the thread's descriptor after marking it detached, and the
//! ending thread can free that descriptor, stack and all, in between: the process then dies of
//! a segmentation fault in `pthread_detach` (seen on this project's machine: raw ureq's bench
//! worker, which looks up on every call, died so about once in ten runs; a Rust program with
//! the same pattern, astral-sh/uv#21428). Here an address needs no lookup and no thread, and a
//! lookup thread that answers in time is joined, never detached; one that does not is kept
//! and joined at a later lookup once it has ended.

use std::io;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs as _};
use std::sync::Mutex;
use std::sync::mpsc;
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
    /// Lookup threads that outlived their budget: joined once they have ended.
    lingering: Mutex<Vec<JoinHandle<()>>>,
    /// The lookup itself (`getaddrinfo`, through the standard library; tests give others).
    look_up: LookUp,
}

type LookUp = fn(&str) -> Result<Vec<SocketAddr>, ureq::Error>;

impl Default for LookupResolver {
    fn default() -> Self {
        Self::with(lookup)
    }
}

impl LookupResolver {
    fn with(look_up: LookUp) -> Self {
        Self {
            lingering: Mutex::default(),
            look_up,
        }
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
            .map_err(ureq::Error::Io)?;
        match rx.recv_timeout(budget) {
            Ok(found) => {
                // It has sent its answer and is ending: joined, not detached (see the module).
                let _ = thread.join();
                found
            }
            Err(_) => {
                self.lingering().push(thread);
                Err(ureq::Error::Timeout(ureq::Timeout::Resolve))
            }
        }
    }

    fn join_ended(&self) {
        let mut lingering = self.lingering();
        if lingering.is_empty() {
            return;
        }
        let (ended, running) = std::mem::take(&mut *lingering)
            .into_iter()
            .partition::<Vec<_>, _>(JoinHandle::is_finished);
        *lingering = running;
        drop(lingering);
        for thread in ended {
            let _ = thread.join();
        }
    }

    fn lingering(&self) -> std::sync::MutexGuard<'_, Vec<JoinHandle<()>>> {
        // A list of handles stays whole whatever panicked while it was held.
        self.lingering
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// How many lookup threads outlived their budget and have not been joined yet.
    #[cfg(test)]
    pub(crate) fn lingering_count(&self) -> usize {
        self.lingering().len()
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
        self.join_ended();
        let (Some(scheme), Some(authority)) = (uri.scheme(), uri.authority()) else {
            return Err(ureq::Error::BadUri(uri.to_string()));
        };
        let default_port = if *scheme == http::uri::Scheme::HTTPS {
            443
        } else {
            80
        };
        let port = authority.port_u16().unwrap_or(default_port);
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

    fn slow_localhost(host_port: &str) -> Result<Vec<SocketAddr>, ureq::Error> {
        std::thread::sleep(Duration::from_millis(300));
        let port = host_port.rsplit(':').next().and_then(|p| p.parse().ok());
        Ok(vec![SocketAddr::new(
            [127, 0, 0, 1].into(),
            port.unwrap_or(0),
        )])
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
        let resolver = LookupResolver::default();
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
        assert_eq!(resolver.lingering_count(), 0);
    }

    #[test]
    fn a_lookup_past_its_budget_times_out_and_its_thread_is_joined_once_it_ends() {
        let resolver = LookupResolver::with(slow_localhost);
        let budget = Budget::Exact(Duration::from_millis(50));
        let late = resolve(&resolver, "http://cognito.example:1/", &config(), budget);
        assert!(
            matches!(late, Err(ureq::Error::Timeout(ureq::Timeout::Resolve))),
            "{late:?}"
        );
        assert_eq!(resolver.lingering_count(), 1, "kept, not detached");
        // The next lookup joins it once it has ended.
        let started = Instant::now();
        while resolver.lingering_count() > 0 {
            assert!(started.elapsed() < Duration::from_secs(30), "never joined");
            std::thread::sleep(Duration::from_millis(20));
            let _ = resolve(&resolver, "http://127.0.0.1:1/", &config(), budget);
        }
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
}
