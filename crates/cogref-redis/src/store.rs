//! [`RedisStore`]: the token set, the refresh lease and the change channel of one lineage.

use std::fmt;
use std::sync::{Arc, Weak};
use std::time::Duration;

use cogref_core::TokenSet;
use cogref_session::{StoreError, StoreGuard, TokenStore, Versioned};

use crate::connection::Connector;
use crate::error::RedisStoreError;
use crate::lineage::{Lineage, MAX_LEASE_TTL, random_owner};
use crate::seal::SealingKey;
use crate::watch::{RESUBSCRIBE_PAUSE, WATCH_TICK, Watch};

/// How long a lease lasts unless released: longer than a refresh call may take with the default
/// [`cogref_core::Timeouts`] (30 s in total), so a live holder keeps it.
pub const DEFAULT_LEASE_TTL: Duration = Duration::from_secs(45);
/// How long connecting may take.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// How long one command may take.
pub const DEFAULT_IO_TIMEOUT: Duration = Duration::from_secs(2);

struct Inner {
    connector: Connector,
    lineage: Lineage,
    /// The change stamp, kept by a thread subscribed to the lineage's channel.
    watch: Watch,
}

/// A [`TokenStore`] in Redis (or Valkey) over a blocking connection, shared by every process of
/// a fleet that holds one Cognito session. How it protects the session: see the
/// [crate docs](crate). For an async manager without blocking calls, see `AsyncRedisStore`.
///
/// Cloning shares the connection.
#[derive(Clone)]
pub struct RedisStore {
    inner: Arc<Inner>,
}

/// Builds a [`RedisStore`].
pub struct RedisStoreBuilder {
    url: String,
    lineage: String,
    prefix: String,
    lease_ttl: Duration,
    connect_timeout: Duration,
    io_timeout: Duration,
    sealing: Option<SealingKey>,
}

impl fmt::Debug for RedisStoreBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The URL may carry a password.
        f.debug_struct("RedisStoreBuilder")
            .field("lineage", &self.lineage)
            .field("prefix", &self.prefix)
            .field("lease_ttl", &self.lease_ttl)
            .field("sealed", &self.sealing.is_some())
            .finish_non_exhaustive()
    }
}

impl RedisStoreBuilder {
    /// The first part of every key (default `cogref`).
    pub fn key_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// How long the refresh lease lasts if its holder dies (default 45 s; 1 ms to a day, or
    /// [`build`](Self::build) refuses it). Keep it above the
    /// longest refresh call (the client's total timeout): a holder whose lease runs out while
    /// its call is still running cannot overwrite a newer set (the version check refuses it),
    /// but a second process may have refreshed meanwhile, which with rotation and no grace
    /// period signs one of them out.
    pub fn lease_ttl(mut self, ttl: Duration) -> Self {
        self.lease_ttl = ttl;
        self
    }

    /// Seals the stored token set with `key`; every process of the lineage needs the same key.
    pub fn sealing_key(mut self, key: SealingKey) -> Self {
        self.sealing = Some(key);
        self
    }

    /// How long connecting may take (default 2 s; zero is refused).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// How long one command may take (default 2 s; zero is refused).
    pub fn io_timeout(mut self, timeout: Duration) -> Self {
        self.io_timeout = timeout;
        self
    }

    /// A store over a blocking connection. Checks the URL and the names; connects only when
    /// first used.
    pub fn build(self) -> Result<RedisStore, RedisStoreError> {
        let (client, lineage) = self.parts()?;
        Ok(RedisStore {
            inner: Arc::new(Inner {
                connector: Connector::new(client, self.connect_timeout, self.io_timeout),
                lineage,
                watch: Watch::default(),
            }),
        })
    }

    /// A store over an async (multiplexed, tokio) connection, for a
    /// [`TokenManager`](cogref_session::TokenManager) on a tokio runtime. Checks the URL and
    /// the names; connects only when first used.
    #[cfg(feature = "tokio")]
    pub fn build_async(self) -> Result<crate::AsyncRedisStore, RedisStoreError> {
        let (client, lineage) = self.parts()?;
        Ok(crate::AsyncRedisStore::new(
            client,
            lineage,
            self.connect_timeout,
            self.io_timeout,
        ))
    }

    fn parts(&self) -> Result<(redis::Client, Lineage), RedisStoreError> {
        check_name("lineage", &self.lineage)?;
        check_name("key prefix", &self.prefix)?;
        if self.lease_ttl < Duration::from_millis(1) || self.lease_ttl > MAX_LEASE_TTL {
            return Err(RedisStoreError::InvalidConfig(
                "the lease time to live must be between 1 ms and a day".into(),
            ));
        }
        // A zero timeout makes every connection or command fail at once.
        if self.connect_timeout.is_zero() || self.io_timeout.is_zero() {
            return Err(RedisStoreError::InvalidConfig(
                "the connect and I/O timeouts must be above zero".into(),
            ));
        }
        let client = redis::Client::open(self.url.as_str()).map_err(RedisStoreError::Url)?;
        let lineage = Lineage::new(
            &self.prefix,
            &self.lineage,
            self.lease_ttl,
            self.sealing.clone(),
        );
        Ok((client, lineage))
    }
}

/// Names go into keys: printable, no braces (the hash tag), no spaces.
fn check_name(what: &'static str, name: &str) -> Result<(), RedisStoreError> {
    let bad = name
        .chars()
        .find(|c| !c.is_ascii_graphic() || *c == '{' || *c == '}');
    if name.is_empty() || name.len() > 256 || bad.is_some() {
        return Err(RedisStoreError::InvalidConfig(format!(
            "the {what} must be 1 to 256 printable ASCII characters without spaces or braces"
        )));
    }
    Ok(())
}

impl RedisStore {
    /// Starts a builder for the lineage `lineage` (a name you choose for one refresh-token
    /// lineage, for example `"{client_id}:{username}"`) at `url`: `redis://[user:password@]host[:port][/db]`,
    /// `rediss://…` with the `tls-rustls` feature, or `redis+unix:///path`.
    pub fn builder(url: impl Into<String>, lineage: impl Into<String>) -> RedisStoreBuilder {
        RedisStoreBuilder {
            url: url.into(),
            lineage: lineage.into(),
            prefix: "cogref".into(),
            lease_ttl: DEFAULT_LEASE_TTL,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            io_timeout: DEFAULT_IO_TIMEOUT,
            sealing: None,
        }
    }

    /// The key holding the token set (a hash: `v` the version, `d` the data).
    pub fn tokens_key(&self) -> &str {
        &self.inner.lineage.keys.tokens
    }

    /// The key of the refresh lease.
    pub fn lease_key(&self) -> &str {
        &self.inner.lineage.keys.lease
    }

    /// The channel on which saves and lease releases are announced.
    pub fn channel(&self) -> &str {
        &self.inner.lineage.keys.channel
    }

    /// Deletes the stored set. This is no sign-out: the fleet takes an empty lineage for lost
    /// data and writes its set again at its next refresh. To end the session everywhere, call
    /// the manager's `sign_out()`, which leaves a tombstone.
    pub fn clear(&self) -> Result<(), StoreError> {
        let cmd = self.inner.lineage.clear_cmd();
        self.inner
            .connector
            .run("deleting the token set", |c| cmd.query::<i64>(c))?;
        Ok(())
    }
}

impl fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStore")
            .field("server", &self.inner.connector.server())
            .field("tokens_key", &self.inner.lineage.keys.tokens)
            .field("lease_ttl", &self.inner.lineage.lease_ttl)
            .field("sealed", &self.inner.lineage.is_sealed())
            .finish()
    }
}

/// Keeps `store`'s change stamp from its channel, on a thread of its own, until the store is
/// dropped (checked every [`WATCH_TICK`]).
fn watch_channel(store: Weak<Inner>) {
    loop {
        let connection = match store.upgrade() {
            Some(inner) => inner.connector.dedicated(),
            None => return,
        };
        if let Ok(mut connection) = connection {
            let mut subscription = connection.as_pubsub();
            let subscribed = store.upgrade().is_some_and(|inner| {
                subscription
                    .subscribe(&inner.lineage.keys.channel)
                    .and_then(|()| subscription.set_read_timeout(Some(WATCH_TICK)))
                    .is_ok()
            });
            if subscribed {
                if let Some(inner) = store.upgrade() {
                    inner.watch.subscribed();
                }
                loop {
                    match subscription.get_message() {
                        Ok(_) => match store.upgrade() {
                            Some(inner) => inner.watch.message(),
                            None => return,
                        },
                        Err(e) if e.is_timeout() => {
                            if store.strong_count() == 0 {
                                return;
                            }
                        }
                        // The connection failed (a server restart, a network failure).
                        Err(_) => break,
                    }
                }
            }
            match store.upgrade() {
                Some(inner) => inner.watch.down(),
                None => return,
            }
        }
        std::thread::sleep(RESUBSCRIBE_PAUSE);
    }
}

/// The lease, released (compare-and-delete) when the guard drops.
struct Lease {
    inner: Arc<Inner>,
    owner: String,
}

impl Drop for Lease {
    fn drop(&mut self) {
        let release = self.inner.lineage.release_script(&self.owner);
        let reply = self
            .inner
            .connector
            .run("releasing the refresh lease", |c| release.invoke::<i64>(c));
        self.inner.lineage.released(reply);
    }
}

impl TokenStore for RedisStore {
    fn load(&self) -> Result<Option<Versioned>, StoreError> {
        let load = self.inner.lineage.load_script();
        let reply = self
            .inner
            .connector
            .run("reading the token set", |c| load.invoke(c))?;
        self.inner.lineage.loaded(reply)
    }

    fn save(&self, tokens: &TokenSet, expected: Option<u64>) -> Result<u64, StoreError> {
        let lineage = &self.inner.lineage;
        // The version is sealed with the data, so it is chosen before the script runs.
        let server_time = match expected {
            Some(_) => None,
            None => {
                let time = lineage.time_cmd();
                Some(
                    self.inner
                        .connector
                        .run("reading the server's clock", |c| time.query(c))?,
                )
            }
        };
        let version = lineage.next_version(expected, server_time)?;
        let encoded = lineage.encode(tokens, version)?;
        let save = lineage.save_script(expected, version, encoded.bytes());
        let reply = self
            .inner
            .connector
            .run("saving the token set", |c| save.invoke(c))?;
        lineage.saved(reply, expected)
    }

    fn try_lock(&self) -> Result<Option<StoreGuard>, StoreError> {
        let owner = random_owner()?;
        let acquire = self.inner.lineage.acquire_script(&owner);
        let reply = self
            .inner
            .connector
            .run("taking the refresh lease", |c| acquire.invoke(c))?;
        Ok(self.inner.lineage.acquired(owner, reply).map(|owner| {
            StoreGuard::new(Lease {
                inner: self.inner.clone(),
                owner,
            })
        }))
    }

    /// A counter moved by every message on the lineage's channel (every save announces its
    /// version there), kept by a thread subscribed to it (started on the first call). `None`
    /// while that subscription is not up: connecting, or lost (it subscribes again every
    /// 250 ms, and the stamp moves when it is back, so a save announced meanwhile is not
    /// missed). A save by any process of the fleet moves it as soon as its message arrives.
    fn change_stamp(&self) -> Option<u64> {
        let watch = &self.inner.watch;
        if watch.should_start() {
            let store = Arc::downgrade(&self.inner);
            let spawned = std::thread::Builder::new()
                .name("cogref-redis-watch".into())
                .spawn(move || {
                    watch_channel(store.clone());
                    if let Some(inner) = store.upgrade() {
                        inner.watch.ended();
                    }
                });
            if spawned.is_err() {
                watch.ended();
            }
        }
        watch.stamp()
    }

    fn wait_for_change(&self, seen: Option<u64>, timeout: Duration) -> Result<bool, StoreError> {
        let connector = &self.inner.connector;
        let lineage = &self.inner.lineage;
        let mut connection = connector.dedicated()?;
        let mut subscription = connection.as_pubsub();
        subscription
            .subscribe(&lineage.keys.channel)
            .map_err(|e| connector.error("subscribing", e))?;
        // Anything that happened before we listened would never be announced to us.
        let probe = lineage.probe_pipe();
        let reply = connector.run("reading the version and the lease", |c| probe.query(c))?;
        if lineage.changed(reply, seen) {
            return Ok(true);
        }
        subscription
            .set_read_timeout(Some(timeout.max(Duration::from_millis(1))))
            .map_err(|e| connector.error("subscribing", e))?;
        match subscription.get_message() {
            Ok(_) => Ok(true),
            Err(e) if e.is_timeout() => Ok(true),
            Err(e) => Err(connector.error("waiting for a change", e).into()),
        }
    }
}
