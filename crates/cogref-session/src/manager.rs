//! The managers: [`TokenManager`] (async, any [`AsyncTransport`]) and [`BlockingTokenManager`]
//! (threads, any [`BlockingTransport`]), two front-ends over one engine. The steps of a refresh
//! are in the crate docs.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use cogref_core::secrecy::SecretString;
use cogref_core::{
    AsyncTransport, BlockingTransport, Client, Decision, Environment, RefreshInput, Session,
    SessionConfig,
};

use crate::engine::{
    Ask, Engine, Fallback, LOCK_POLL, LockPoll, NOTIFIED_POLL, Options, Prepared, Refreshed, Saved,
};
use crate::error::SessionError;
use crate::event::SessionEvent;
use crate::store::{AsyncTokenStore, TokenStore};

/// How long a manager waits for another process's refresh lock before giving up.
pub const DEFAULT_LOCK_TIMEOUT: Duration = Duration::from_secs(60);

macro_rules! builder_methods {
    () => {
        /// Refresh scheduling (margin, failure backoff).
        pub fn session_config(mut self, config: SessionConfig) -> Self {
            self.options.config = config;
            self
        }

        /// Calls `listener` for every [`SessionEvent`], on the refreshing task or thread.
        pub fn on_event(
            mut self,
            listener: impl Fn(&SessionEvent) + Send + Sync + 'static,
        ) -> Self {
            self.options.listeners.push(Arc::new(listener));
            self
        }

        /// How long to wait for a refresh lock another process holds (default 60 s). After
        /// that the wait counts as a store failure (see
        /// [`refresh_without_store_lock`](Self::refresh_without_store_lock)).
        pub fn lock_timeout(mut self, timeout: Duration) -> Self {
            self.options.lock_timeout = timeout;
            self
        }

        /// What to do when a refresh is due and the store cannot be reached, read or locked.
        ///
        /// Always: a still-valid access token is handed out and the failure reported as
        /// [`SessionEvent::StoreFailed`]. Once the token has expired, by default (`false`) the
        /// caller gets [`SessionError::Store`] and nothing is refreshed, because a refresh
        /// without the lock can race another holder's and, with rotation, sign the whole
        /// lineage out. `true` refreshes anyway (and saves if the store is back by then): for
        /// a single process where being signed in matters more than that race.
        pub fn refresh_without_store_lock(mut self, opted_in: bool) -> Self {
            self.options.refresh_without_lock = opted_in;
            self
        }
    };
}

/// The steps of a refresh once the in-process gate is held, written once for both managers:
/// take the store's lock (or adopt what its holder stores, or serve a still-valid token), reload,
/// refresh if still due, save with a compare-and-set, adopt the winner after a lost race,
/// release. `$store` is the store trait the calls go through (`TokenStore` or
/// `AsyncTokenStore`), `$refresh` the client's call, `$wait` what to do while another holds the
/// lock, and `$($aw)*` is `.await` or nothing.
macro_rules! refresh_steps {
    ($this:ident, $ask:ident, $store:ident, $refresh:ident, $wait:ident, $($aw:tt)*) => {{
        let engine = &$this.engine;
        let store = &$this.store;
        let force = $ask == Ask::Force;
        let started = engine.client.environment().now();
        let lock = loop {
            let polled = match $store::try_lock(store) $($aw)* {
                Ok(Some(guard)) => {
                    engine.locked();
                    break Some(guard);
                }
                Ok(None) => match $store::load(store) $($aw)* {
                    Ok(stored) => engine.peeked(stored, started, $ask == Ask::Token),
                    Err(e) => Err(e),
                },
                Err(e) => Err(e),
            };
            match polled {
                Ok(LockPoll::Serve(token)) => return Ok(token),
                Ok(LockPoll::Wait { seen }) => $this.$wait(seen) $($aw)*,
                Err(e) => match engine.store_failed(e, force)? {
                    Fallback::Serve(token) => return Ok(token),
                    Fallback::RefreshUnlocked => break None,
                },
            }
        };
        let loaded = match &lock {
            Some(_) => Some($store::load(store) $($aw)*),
            None => None,
        };
        let result = match engine.prepare(loaded, force) {
            Ok(Prepared::Serve(token)) => Ok(token),
            Ok(Prepared::Refresh(input, started)) => {
                let outcome = engine.client.$refresh(&input) $($aw)*;
                match engine.refreshed(outcome, started) {
                    Refreshed::Done(result) => result,
                    Refreshed::Save(pending) => {
                        let saved = $store::save(store, pending.tokens(), pending.expected()) $($aw)*;
                        match engine.saved(pending, saved) {
                            Saved::Done(result) => result,
                            Saved::Conflict(pending) => {
                                let stored = $store::load(store) $($aw)*;
                                engine.after_conflict(pending, stored)
                            }
                        }
                    }
                }
            }
            Err(e) => Err(e),
        };
        if let Some(guard) = lock {
            $store::unlock(store, guard) $($aw)*;
        }
        result
    }};
}

/// Builds a [`TokenManager`].
pub struct TokenManagerBuilder<T, E, S> {
    client: Client<T, E>,
    template: RefreshInput,
    store: S,
    options: Options,
}

impl<T, E: Environment, S: AsyncTokenStore> TokenManagerBuilder<T, E, S> {
    builder_methods!();

    /// Loads the store (or starts from the template's refresh token) and makes the manager.
    pub async fn build(self) -> Result<TokenManager<T, E, S>, SessionError> {
        let loaded = AsyncTokenStore::load(&self.store).await?;
        Ok(TokenManager {
            engine: Engine::new(self.client, self.template, loaded, self.options),
            store: self.store,
            gate: async_lock::Mutex::new(()),
        })
    }
}

/// An async token manager over any [`AsyncTransport`]. How it refreshes: see the [crate docs](crate#how-a-refresh-happens).
pub struct TokenManager<T, E, S> {
    engine: Engine<T, E>,
    store: S,
    gate: async_lock::Mutex<()>,
}

impl<T: AsyncTransport, E: Environment, S: AsyncTokenStore> TokenManager<T, E, S> {
    /// Starts a builder. `template` gives the client id, secret and metadata of every refresh,
    /// and the refresh token to start from when the store is empty.
    pub fn builder(
        client: Client<T, E>,
        template: RefreshInput,
        store: S,
    ) -> TokenManagerBuilder<T, E, S> {
        TokenManagerBuilder {
            client,
            template,
            store,
            options: Options::default(),
        }
    }

    /// A valid access token: the cached one, or a new one after one shared refresh.
    pub async fn access_token(&self) -> Result<SecretString, SessionError> {
        let now = self.engine.now();
        match self.engine.quick(now)? {
            Ok(token) => Ok(token),
            // Boxed so that the cached path's future stays small: the refresh machinery is
            // built only when a refresh is due.
            Err(decision) => Box::pin(self.refresh_due(decision)).await,
        }
    }

    async fn refresh_due(&self, decision: Decision) -> Result<SecretString, SessionError> {
        if matches!(decision, Decision::Refresh { usable: true }) {
            // Someone else is refreshing ahead of expiry: the current token is still good.
            match self.gate.try_lock() {
                Some(gate) => self.refresh_holding(gate, Ask::Token).await,
                None => Ok(self.engine.current_token()),
            }
        } else {
            let gate = self.gate.lock().await;
            self.refresh_holding(gate, Ask::Token).await
        }
    }

    /// Refreshes now, even if the token is fresh (waiting for a refresh already under way).
    pub async fn refresh_now(&self) -> Result<SecretString, SessionError> {
        let gate = self.gate.lock().await;
        self.refresh_holding(gate, Ask::Force).await
    }

    /// Keeps the session fresh: refreshes whenever one is due, until the user must sign in
    /// again. Spawn it on your runtime; it sleeps on the transport's timer between refreshes.
    pub async fn run_background(&self) {
        loop {
            match self.engine.next_due_in(self.engine.now()) {
                None => return,
                Some(wait) if !wait.is_zero() => self.engine.client.transport().sleep(wait).await,
                Some(_) => {
                    let gate = self.gate.lock().await;
                    if let Err(e) = self.refresh_holding(gate, Ask::Background).await {
                        tracing::debug!(error = %e, "background refresh failed");
                    }
                }
            }
        }
    }

    /// The session as it stands (tokens redacted in `Debug`).
    pub fn session(&self) -> Session {
        self.engine.session()
    }

    async fn refresh_holding(
        &self,
        _gate: async_lock::MutexGuard<'_, ()>,
        ask: Ask,
    ) -> Result<SecretString, SessionError> {
        refresh_steps!(self, ask, AsyncTokenStore, refresh, wait_for_store, .await)
    }

    /// Waits for the lock holder: on the store's notification if it can give one without
    /// blocking, else a short sleep on the transport's timer.
    async fn wait_for_store(&self, seen: Option<u64>) {
        match AsyncTokenStore::wait_for_change(&self.store, seen, NOTIFIED_POLL).await {
            Ok(true) => {}
            Ok(false) => self.engine.client.transport().sleep(LOCK_POLL).await,
            Err(e) => {
                tracing::debug!(error = %e, "waiting for a store notification failed; polling");
                self.engine.client.transport().sleep(LOCK_POLL).await;
            }
        }
    }
}

/// Builds a [`BlockingTokenManager`].
pub struct BlockingTokenManagerBuilder<T, E, S> {
    client: Client<T, E>,
    template: RefreshInput,
    store: S,
    options: Options,
}

impl<T, E: Environment, S: TokenStore> BlockingTokenManagerBuilder<T, E, S> {
    builder_methods!();

    /// Loads the store (or starts from the template's refresh token) and makes the manager.
    pub fn build(self) -> Result<BlockingTokenManager<T, E, S>, SessionError> {
        let loaded = TokenStore::load(&self.store)?;
        Ok(BlockingTokenManager {
            engine: Engine::new(self.client, self.template, loaded, self.options),
            store: self.store,
            gate: Mutex::new(()),
        })
    }
}

/// A token manager for threads over any [`BlockingTransport`]. How it refreshes: see the [crate docs](crate#how-a-refresh-happens).
pub struct BlockingTokenManager<T, E, S> {
    engine: Engine<T, E>,
    store: S,
    gate: Mutex<()>,
}

impl<T: BlockingTransport, E: Environment, S: TokenStore> BlockingTokenManager<T, E, S> {
    /// Starts a builder; see [`TokenManager::builder`].
    pub fn builder(
        client: Client<T, E>,
        template: RefreshInput,
        store: S,
    ) -> BlockingTokenManagerBuilder<T, E, S> {
        BlockingTokenManagerBuilder {
            client,
            template,
            store,
            options: Options::default(),
        }
    }

    /// A valid access token: the cached one, or a new one after one shared refresh.
    pub fn access_token(&self) -> Result<SecretString, SessionError> {
        let now = self.engine.now();
        let usable = match self.engine.quick(now)? {
            Ok(token) => return Ok(token),
            Err(decision) => matches!(decision, Decision::Refresh { usable: true }),
        };
        if usable {
            match self.gate.try_lock() {
                Ok(gate) => self.refresh_holding(gate, Ask::Token),
                Err(_) => Ok(self.engine.current_token()),
            }
        } else {
            let gate = self.gate.lock().unwrap_or_else(|p| p.into_inner());
            self.refresh_holding(gate, Ask::Token)
        }
    }

    /// Refreshes now, even if the token is fresh.
    pub fn refresh_now(&self) -> Result<SecretString, SessionError> {
        let gate = self.gate.lock().unwrap_or_else(|p| p.into_inner());
        self.refresh_holding(gate, Ask::Force)
    }

    /// Keeps the session fresh on a thread of its own until the user must sign in again.
    pub fn spawn_background(self: &Arc<Self>) -> std::thread::JoinHandle<()>
    where
        T: 'static,
        E: 'static,
        S: 'static,
    {
        let manager = Arc::clone(self);
        std::thread::spawn(move || {
            while let Some(wait) = manager.engine.next_due_in(manager.engine.now()) {
                if wait.is_zero() {
                    let gate = manager.gate.lock().unwrap_or_else(|p| p.into_inner());
                    if let Err(e) = manager.refresh_holding(gate, Ask::Background) {
                        tracing::debug!(error = %e, "background refresh failed");
                    }
                } else {
                    manager.engine.client.transport().sleep(wait);
                }
            }
        })
    }

    /// The session as it stands (tokens redacted in `Debug`).
    pub fn session(&self) -> Session {
        self.engine.session()
    }

    fn refresh_holding(
        &self,
        _gate: MutexGuard<'_, ()>,
        ask: Ask,
    ) -> Result<SecretString, SessionError> {
        refresh_steps!(self, ask, TokenStore, refresh_blocking, wait_for_store,)
    }

    /// Waits for the lock holder: on the store's notification if it has one, else a short sleep.
    fn wait_for_store(&self, seen: Option<u64>) {
        match TokenStore::wait_for_change(&self.store, seen, NOTIFIED_POLL) {
            Ok(true) => {}
            Ok(false) => self.engine.client.transport().sleep(LOCK_POLL),
            Err(e) => {
                tracing::debug!(error = %e, "waiting for a store notification failed; polling");
                self.engine.client.transport().sleep(LOCK_POLL);
            }
        }
    }
}
