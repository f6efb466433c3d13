//! [`AsyncRedisStore`]: the same lineage, lease and version as [`RedisStore`](crate::RedisStore),
//! over redis-rs's multiplexed tokio connection, so that an async
//! [`TokenManager`](cogref_session::TokenManager) never blocks a runtime thread on Redis.

use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use cogref_core::TokenSet;
use cogref_session::{AsyncTokenStore, StoreError, StoreGuard, Versioned};
use futures_lite::StreamExt;
use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, Client};

use crate::connection::{is_dropped, redis_error, server_name};
use crate::error::RedisStoreError;
use crate::lineage::{Lineage, random_owner};
use crate::watch::{RESUBSCRIBE_PAUSE, WATCH_TICK, Watch};

/// Runs `$call` (an expression on the connection `$c`, giving a redis-rs future) and gives a
/// `Result<_, RedisStoreError>`. A pooled connection that turns out dead is replaced and `$call`
/// run once more (every command given here is safe to run twice, as for the blocking store).
/// A macro rather than a closure-taking function: the futures must stay `Send` for
/// [`AsyncTokenStore`], which async closures cannot promise yet.
macro_rules! run {
    ($inner:expr, $action:expr, |$c:ident| $call:expr) => {{
        let inner: &Inner = $inner;
        match inner.connection().await {
            Err(e) => Err(e),
            Ok((mut $c, pooled)) => match $call.await {
                Ok(reply) => Ok(reply),
                Err(e) if pooled && is_dropped(&e) => {
                    inner.forget();
                    tracing::debug!(server = %inner.server, error = %e, "redis connection lost; reconnecting once");
                    match inner.connection().await {
                        Err(e) => Err(e),
                        Ok((mut $c, _)) => $call.await.map_err(|e| {
                            inner.forget();
                            inner.error($action, e)
                        }),
                    }
                }
                Err(e) => {
                    inner.forget();
                    Err(inner.error($action, e))
                }
            },
        }
    }};
}

struct Inner {
    client: Client,
    server: String,
    config: AsyncConnectionConfig,
    connect_timeout: Duration,
    pooled: Mutex<Option<MultiplexedConnection>>,
    lineage: Lineage,
    /// The change stamp, kept by a task subscribed to the lineage's channel.
    watch: Watch,
}

/// An [`AsyncTokenStore`] in Redis (or Valkey) over an async connection: what
/// [`RedisStore`](crate::RedisStore) is for threads, for a
/// [`TokenManager`](cogref_session::TokenManager) on a tokio runtime. Built with
/// [`RedisStoreBuilder::build_async`](crate::RedisStoreBuilder::build_async); both kinds share
/// one lineage's keys, so blocking and async processes can serve one fleet.
///
/// Its calls must run inside a tokio runtime. Cloning shares the connection.
#[derive(Clone)]
pub struct AsyncRedisStore {
    inner: Arc<Inner>,
}

impl AsyncRedisStore {
    pub(crate) fn new(
        client: Client,
        lineage: Lineage,
        connect_timeout: Duration,
        io_timeout: Duration,
    ) -> Self {
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(connect_timeout))
            .set_response_timeout(Some(io_timeout));
        Self {
            inner: Arc::new(Inner {
                server: server_name(&client),
                client,
                config,
                connect_timeout,
                pooled: Mutex::new(None),
                lineage,
                watch: Watch::default(),
            }),
        }
    }

    /// The key holding the token set.
    pub fn tokens_key(&self) -> &str {
        &self.inner.lineage.keys.tokens
    }

    /// The key of the refresh lease.
    pub fn lease_key(&self) -> &str {
        &self.inner.lineage.keys.lease
    }

    /// Deletes the stored set. This is no sign-out: the fleet takes an empty lineage for lost
    /// data and writes its set again at its next refresh. To end the session everywhere, call
    /// the manager's `sign_out()`, which leaves a tombstone.
    pub async fn clear(&self) -> Result<(), StoreError> {
        let cmd = self.inner.lineage.clear_cmd();
        run!(&self.inner, "deleting the token set", |c| cmd
            .query_async::<i64>(&mut c))?;
        Ok(())
    }
}

impl Inner {
    fn slot(&self) -> MutexGuard<'_, Option<MultiplexedConnection>> {
        self.pooled.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn error(&self, action: &'static str, source: redis::RedisError) -> RedisStoreError {
        redis_error(&self.server, action, source)
    }

    /// The pooled connection (a cheap handle to one multiplexed connection), connecting if there
    /// is none; and whether it was pooled.
    async fn connection(&self) -> Result<(MultiplexedConnection, bool), RedisStoreError> {
        if let Some(c) = self.slot().clone() {
            return Ok((c, true));
        }
        let c = self
            .client
            .get_multiplexed_async_connection_with_config(&self.config)
            .await
            .map_err(|e| self.error("connecting", e))?;
        *self.slot() = Some(c.clone());
        Ok((c, false))
    }

    /// Forgets the pooled connection after a failure: it may be dead.
    fn forget(&self) {
        *self.slot() = None;
    }
}

/// Keeps `store`'s change stamp from its channel, on the runtime it was started on, until the
/// store is dropped (checked every [`WATCH_TICK`]) or the runtime shuts down.
async fn watch_channel(store: Weak<Inner>) {
    /// Marks the watcher ended however the task ends, a shut-down runtime included.
    struct Ended(Weak<Inner>);
    impl Drop for Ended {
        fn drop(&mut self) {
            if let Some(inner) = self.0.upgrade() {
                inner.watch.ended();
            }
        }
    }
    let _ended = Ended(store.clone());
    loop {
        // Connect and subscribe holding the store only as long as that takes.
        let subscribed = {
            let Some(inner) = store.upgrade() else { return };
            let pubsub =
                tokio::time::timeout(inner.connect_timeout, inner.client.get_async_pubsub()).await;
            match pubsub {
                Ok(Ok(mut pubsub)) => match pubsub.subscribe(&inner.lineage.keys.channel).await {
                    Ok(()) => {
                        inner.watch.subscribed();
                        Some(pubsub)
                    }
                    Err(e) => {
                        tracing::debug!(error = %e, "subscribing to the lineage's channel failed");
                        None
                    }
                },
                Ok(Err(e)) => {
                    tracing::debug!(error = %e, "connecting for the lineage's channel failed");
                    None
                }
                Err(_) => None,
            }
        };
        if let Some(mut pubsub) = subscribed {
            let mut messages = pubsub.on_message();
            loop {
                match tokio::time::timeout(WATCH_TICK, messages.next()).await {
                    Ok(Some(_)) => match store.upgrade() {
                        Some(inner) => inner.watch.message(),
                        None => return,
                    },
                    // The connection closed (a server restart, a network failure).
                    Ok(None) => break,
                    Err(_) if store.strong_count() == 0 => return,
                    Err(_) => {}
                }
            }
            match store.upgrade() {
                Some(inner) => inner.watch.down(),
                None => return,
            }
        }
        tokio::time::sleep(RESUBSCRIBE_PAUSE).await;
    }
}

impl Inner {
    async fn release(&self, owner: &str) {
        let release = self.lineage.release_script(owner);
        let reply = run!(self, "releasing the refresh lease", |c| release
            .invoke_async::<i64>(&mut c));
        self.lineage.released(reply);
    }
}

/// The lease. [`AsyncTokenStore::unlock`] releases it; if the task is cancelled first, its
/// `Drop` releases it on the runtime (or it runs out).
struct AsyncLease {
    inner: Arc<Inner>,
    owner: Option<String>,
}

impl Drop for AsyncLease {
    fn drop(&mut self) {
        if let Some(owner) = self.owner.take()
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            let inner = self.inner.clone();
            runtime.spawn(async move { inner.release(&owner).await });
        }
    }
}

impl AsyncTokenStore for AsyncRedisStore {
    async fn load(&self) -> Result<Option<Versioned>, StoreError> {
        let load = self.inner.lineage.load_script();
        let reply = run!(&self.inner, "reading the token set", |c| load
            .invoke_async(&mut c))?;
        self.inner.lineage.loaded(reply)
    }

    async fn save(&self, tokens: &TokenSet, expected: Option<u64>) -> Result<u64, StoreError> {
        let lineage = &self.inner.lineage;
        // The version is sealed with the data, so it is chosen before the script runs.
        let server_time = match expected {
            Some(_) => None,
            None => {
                let time = lineage.time_cmd();
                Some(run!(&self.inner, "reading the server's clock", |c| time
                    .query_async(&mut c))?)
            }
        };
        let version = lineage.next_version(expected, server_time)?;
        let encoded = lineage.encode(tokens, version)?;
        let save = lineage.save_script(expected, version, encoded.bytes());
        let reply = run!(&self.inner, "saving the token set", |c| save
            .invoke_async(&mut c))?;
        lineage.saved(reply, expected)
    }

    async fn try_lock(&self) -> Result<Option<StoreGuard>, StoreError> {
        let owner = random_owner()?;
        let acquire = self.inner.lineage.acquire_script(&owner);
        let reply = run!(&self.inner, "taking the refresh lease", |c| acquire
            .invoke_async(&mut c))?;
        Ok(self.inner.lineage.acquired(owner, reply).map(|owner| {
            StoreGuard::new(AsyncLease {
                inner: self.inner.clone(),
                owner: Some(owner),
            })
        }))
    }

    async fn unlock(&self, guard: StoreGuard) {
        if let Ok(mut lease) = guard.downcast::<AsyncLease>()
            && let Some(owner) = lease.owner.take()
        {
            self.inner.release(&owner).await;
        }
    }

    /// A counter moved by every message on the lineage's channel (every save announces its
    /// version there), kept by a task subscribed to it (started on the first call, on the
    /// current tokio runtime; none outside one). `None` while that subscription is not up:
    /// connecting, or lost (it subscribes again every 250 ms, and the stamp moves when it is
    /// back, so a save announced meanwhile is not missed). A save by any process of the fleet
    /// moves it as soon as its message arrives.
    fn change_stamp(&self) -> Option<u64> {
        let watch = &self.inner.watch;
        if watch.should_start() {
            match tokio::runtime::Handle::try_current() {
                Ok(runtime) => {
                    runtime.spawn(watch_channel(Arc::downgrade(&self.inner)));
                }
                Err(_) => watch.ended(),
            }
        }
        watch.stamp()
    }

    async fn wait_for_change(
        &self,
        seen: Option<u64>,
        timeout: Duration,
    ) -> Result<bool, StoreError> {
        let inner = &self.inner;
        let lineage = &inner.lineage;
        let mut subscription =
            tokio::time::timeout(inner.connect_timeout, inner.client.get_async_pubsub())
                .await
                .map_err(|_| {
                    inner.error(
                        "subscribing",
                        redis::RedisError::from(std::io::Error::from(std::io::ErrorKind::TimedOut)),
                    )
                })?
                .map_err(|e| inner.error("subscribing", e))?;
        subscription
            .subscribe(&lineage.keys.channel)
            .await
            .map_err(|e| inner.error("subscribing", e))?;
        // Anything that happened before we listened would never be announced to us.
        let probe = lineage.probe_pipe();
        let reply = run!(inner, "reading the version and the lease", |c| probe
            .query_async(&mut c))?;
        if lineage.changed(reply, seen) {
            return Ok(true);
        }
        // A message or the timeout: either way, look again.
        let _ = tokio::time::timeout(timeout, subscription.on_message().next()).await;
        Ok(true)
    }
}

impl fmt::Debug for AsyncRedisStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AsyncRedisStore")
            .field("server", &self.inner.server)
            .field("tokens_key", &self.inner.lineage.keys.tokens)
            .field("lease_ttl", &self.inner.lineage.lease_ttl)
            .field("sealed", &self.inner.lineage.is_sealed())
            .finish()
    }
}
