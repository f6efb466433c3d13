//! The managers: [`TokenManager`] (async, any [`AsyncTransport`]) and [`BlockingTokenManager`]
//! (threads, any [`BlockingTransport`]), two front-ends over one engine. The steps of a refresh
//! are in the crate docs.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use cogref_core::secrecy::SecretString;
use cogref_core::{
    AsyncTransport, BlockingTransport, CallError, Client, Decision, Environment, RefreshInput,
    RefreshOutput, Session, SessionConfig, TokenSet,
};

use crate::error::SessionError;
use crate::event::{Listener, SessionEvent};
use crate::store::{StoreError, StoreGuard, TokenStore};

/// How long a manager waits for another process's refresh lock before giving up.
pub const DEFAULT_LOCK_TIMEOUT: Duration = Duration::from_secs(60);
/// How often it looks at a lock held elsewhere.
const LOCK_POLL: Duration = Duration::from_millis(20);

struct State {
    session: Session,
    /// A rotated token is only in memory: the store holds an older, dead one, which must not be
    /// adopted back.
    store_behind: bool,
}

/// What the gate holder does after reloading.
enum Prepared {
    Serve(SecretString),
    Refresh(Box<RefreshInput>),
}

/// The engine both managers drive.
struct Engine<T, E, S> {
    client: Client<T, E>,
    template: RefreshInput,
    store: S,
    state: Mutex<State>,
    listeners: Vec<Listener>,
    lock_timeout: Duration,
}

impl<T, E: Environment, S: TokenStore> Engine<T, E, S> {
    fn new(
        client: Client<T, E>,
        template: RefreshInput,
        store: S,
        config: SessionConfig,
        listeners: Vec<Listener>,
        lock_timeout: Duration,
    ) -> Result<Self, SessionError> {
        let tokens = match store.load()? {
            Some(stored) => stored,
            None => TokenSet::from_refresh_token(
                template.refresh_token().clone(),
                template.device_key().cloned(),
            ),
        };
        Ok(Self {
            client,
            template,
            store,
            state: Mutex::new(State {
                session: Session::new(tokens, config),
                store_behind: false,
            }),
            listeners,
            lock_timeout,
        })
    }

    fn now(&self) -> SystemTime {
        self.client.environment().wall_clock()
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // The session is replaced whole under the lock: a panic elsewhere cannot tear it.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn emit(&self, event: SessionEvent) {
        tracing::debug!(?event, "session event");
        for listener in &self.listeners {
            listener(&event);
        }
    }

    /// The decision at `now`, answered without waiting when it can be.
    fn quick(&self, now: SystemTime) -> Result<Result<SecretString, Decision>, SessionError> {
        let state = self.state();
        let session = &state.session;
        match session.decide(now) {
            Decision::Serve => Ok(Ok(current_token(session))),
            Decision::SignInRequired => Err(SessionError::SignInRequired(last_error(session))),
            Decision::Unavailable { retry_at } => Err(SessionError::Unavailable {
                error: last_error(session),
                retry_at,
            }),
            refresh => Ok(Err(refresh)),
        }
    }

    /// With the gate and the store lock held: adopt what the store has if it is newer, then
    /// decide again.
    fn prepare(&self, force: bool) -> Result<Prepared, SessionError> {
        let stored = self.store.load()?;
        let now = self.now();
        let mut state = self.state();
        if let Some(stored) = stored
            && !state.store_behind
            && is_newer(&stored, state.session.tokens())
        {
            state.session.adopt(stored);
            drop(state);
            self.emit(SessionEvent::Adopted);
            state = self.state();
        }
        let session = &state.session;
        match session.decide(now) {
            Decision::Serve if !force => Ok(Prepared::Serve(current_token(session))),
            Decision::SignInRequired => Err(SessionError::SignInRequired(last_error(session))),
            Decision::Unavailable { retry_at } if !force => Err(SessionError::Unavailable {
                error: last_error(session),
                retry_at,
            }),
            _ => Ok(Prepared::Refresh(Box::new(
                session.refresh_input(&self.template)?,
            ))),
        }
    }

    /// Applies a refresh's outcome: save first, then hand out.
    fn finish(
        &self,
        outcome: Result<RefreshOutput, CallError>,
    ) -> Result<SecretString, SessionError> {
        let now = self.now();
        match outcome {
            Ok(output) => {
                let mut next = self.state().session.clone();
                let applied = next.apply_success(output, now);
                let saved = self.store.save(next.tokens());
                let token = current_token(&next);
                let expires_at = next.tokens().expires_at;
                {
                    let mut state = self.state();
                    state.session = next;
                    state.store_behind = saved.is_err() && (applied.rotated || state.store_behind);
                }
                if let Err(e) = saved {
                    let e = Arc::new(e);
                    tracing::warn!(error = %e, rotated = applied.rotated, "saving refreshed tokens failed");
                    self.emit(SessionEvent::StoreFailed(e.clone()));
                    if applied.rotated {
                        return Err(SessionError::RotatedTokenNotSaved(e));
                    }
                }
                self.emit(SessionEvent::Refreshed {
                    expires_at,
                    rotated: applied.rotated,
                });
                Ok(token)
            }
            Err(error) => {
                let mut state = self.state();
                let decision = state.session.apply_failure(error, now);
                let session = &state.session;
                let error = last_error(session);
                let result = match decision {
                    Decision::Serve | Decision::Refresh { usable: true } => {
                        Ok(current_token(session))
                    }
                    Decision::SignInRequired => Err(SessionError::SignInRequired(error.clone())),
                    Decision::Unavailable { retry_at } => Err(SessionError::Unavailable {
                        error: error.clone(),
                        retry_at,
                    }),
                    Decision::Refresh { usable: false } => Err(SessionError::Unavailable {
                        error: error.clone(),
                        retry_at: now,
                    }),
                };
                drop(state);
                self.emit(match decision {
                    Decision::SignInRequired => SessionEvent::SignInRequired(error),
                    Decision::Unavailable { retry_at } => SessionEvent::RefreshFailed {
                        error,
                        retry_at: Some(retry_at),
                    },
                    _ => SessionEvent::RefreshFailed {
                        error,
                        retry_at: None,
                    },
                });
                result
            }
        }
    }

    /// How long until the next refresh is due (`None` when the session is over).
    fn next_due_in(&self, now: SystemTime) -> Option<Duration> {
        let state = self.state();
        let session = &state.session;
        match session.decide(now) {
            Decision::SignInRequired => None,
            Decision::Refresh { .. } => Some(Duration::ZERO),
            Decision::Unavailable { retry_at } => {
                Some(retry_at.duration_since(now).unwrap_or_default())
            }
            // Fresh, or backing off after a failure while the token is still valid: sleep
            // until the later of the refresh time and the end of the backoff.
            Decision::Serve => {
                let due = session.refresh_due_at().max(session.retry_at());
                Some(
                    due.and_then(|at| at.duration_since(now).ok())
                        .unwrap_or(Duration::ZERO)
                        .max(Duration::from_millis(10)),
                )
            }
        }
    }

    /// One look at the store's refresh lock: the guard, or how long to wait before the next
    /// look; an error once `lock_timeout` has passed since `started`.
    fn poll_store_lock(
        &self,
        started: Instant,
    ) -> Result<Result<StoreGuard, Duration>, SessionError> {
        if let Some(guard) = self.store.try_lock()? {
            return Ok(Ok(guard));
        }
        let waited = self.client.environment().now().duration_since(started);
        if waited >= self.lock_timeout {
            return Err(StoreError::LockTimeout {
                path: "the refresh lock".into(),
                waited,
            }
            .into());
        }
        Ok(Err(LOCK_POLL))
    }
}

fn current_token(session: &Session) -> SecretString {
    session
        .tokens()
        .access_token
        .clone()
        .unwrap_or_else(|| SecretString::from(String::new()))
}

fn last_error(session: &Session) -> Arc<CallError> {
    session.last_error().cloned().unwrap_or_else(|| {
        Arc::new(CallError::new(
            cogref_core::TransportError::new(
                cogref_core::TransportErrorKind::Other,
                "no refresh has failed",
            )
            .into(),
            0,
        ))
    })
}

/// Whether a stored set is a later step of the lineage than ours.
fn is_newer(stored: &TokenSet, ours: &TokenSet) -> bool {
    !stored.same_refresh_token(ours) || stored.expires_at > ours.expires_at
}

/// Options shared by both managers' builders.
#[derive(Clone)]
struct Options {
    config: SessionConfig,
    listeners: Vec<Listener>,
    lock_timeout: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            config: SessionConfig::default(),
            listeners: Vec::new(),
            lock_timeout: DEFAULT_LOCK_TIMEOUT,
        }
    }
}

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

        /// How long to wait for a refresh lock another process holds (default 60 s).
        pub fn lock_timeout(mut self, timeout: Duration) -> Self {
            self.options.lock_timeout = timeout;
            self
        }

        fn into_engine(self) -> Result<Engine<T, E, S>, SessionError> {
            Engine::new(
                self.client,
                self.template,
                self.store,
                self.options.config,
                self.options.listeners,
                self.options.lock_timeout,
            )
        }
    };
}

/// Builds a [`TokenManager`].
pub struct TokenManagerBuilder<T, E, S> {
    client: Client<T, E>,
    template: RefreshInput,
    store: S,
    options: Options,
}

impl<T, E: Environment, S: TokenStore> TokenManagerBuilder<T, E, S> {
    builder_methods!();

    /// Loads the store (or starts from the template's refresh token) and makes the manager.
    pub fn build(self) -> Result<TokenManager<T, E, S>, SessionError> {
        Ok(TokenManager {
            engine: self.into_engine()?,
            gate: async_lock::Mutex::new(()),
        })
    }
}

/// An async token manager over any [`AsyncTransport`]. How it refreshes: see the [crate docs](crate#how-a-refresh-happens).
pub struct TokenManager<T, E, S> {
    engine: Engine<T, E, S>,
    gate: async_lock::Mutex<()>,
}

impl<T: AsyncTransport, E: Environment, S: TokenStore> TokenManager<T, E, S> {
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
                Some(gate) => self.refresh_holding(gate, false).await,
                None => Ok(current_token(&self.engine.state().session)),
            }
        } else {
            let gate = self.gate.lock().await;
            self.refresh_holding(gate, false).await
        }
    }

    /// Refreshes now, even if the token is fresh (waiting for a refresh already under way).
    pub async fn refresh_now(&self) -> Result<SecretString, SessionError> {
        let gate = self.gate.lock().await;
        self.refresh_holding(gate, true).await
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
                    if let Err(e) = self.refresh_holding(gate, false).await {
                        tracing::debug!(error = %e, "background refresh failed");
                    }
                }
            }
        }
    }

    /// The session as it stands (tokens redacted in `Debug`).
    pub fn session(&self) -> Session {
        self.engine.state().session.clone()
    }

    async fn refresh_holding(
        &self,
        _gate: async_lock::MutexGuard<'_, ()>,
        force: bool,
    ) -> Result<SecretString, SessionError> {
        let _lock = self.store_lock().await?;
        match self.engine.prepare(force)? {
            Prepared::Serve(token) => Ok(token),
            Prepared::Refresh(input) => {
                let outcome = self.engine.client.refresh(&input).await;
                self.engine.finish(outcome)
            }
        }
    }

    async fn store_lock(&self) -> Result<StoreGuard, SessionError> {
        let started = self.engine.client.environment().now();
        loop {
            match self.engine.poll_store_lock(started)? {
                Ok(guard) => return Ok(guard),
                Err(wait) => self.engine.client.transport().sleep(wait).await,
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
        Ok(BlockingTokenManager {
            engine: self.into_engine()?,
            gate: Mutex::new(()),
        })
    }
}

/// A token manager for threads over any [`BlockingTransport`]. How it refreshes: see the [crate docs](crate#how-a-refresh-happens).
pub struct BlockingTokenManager<T, E, S> {
    engine: Engine<T, E, S>,
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
                Ok(gate) => self.refresh_holding(gate, false),
                Err(_) => Ok(current_token(&self.engine.state().session)),
            }
        } else {
            let gate = self.gate.lock().unwrap_or_else(|p| p.into_inner());
            self.refresh_holding(gate, false)
        }
    }

    /// Refreshes now, even if the token is fresh.
    pub fn refresh_now(&self) -> Result<SecretString, SessionError> {
        let gate = self.gate.lock().unwrap_or_else(|p| p.into_inner());
        self.refresh_holding(gate, true)
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
                    if let Err(e) = manager.refresh_holding(gate, false) {
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
        self.engine.state().session.clone()
    }

    fn refresh_holding(
        &self,
        _gate: MutexGuard<'_, ()>,
        force: bool,
    ) -> Result<SecretString, SessionError> {
        let _lock = self.store_lock()?;
        match self.engine.prepare(force)? {
            Prepared::Serve(token) => Ok(token),
            Prepared::Refresh(input) => {
                let outcome = self.engine.client.refresh_blocking(&input);
                self.engine.finish(outcome)
            }
        }
    }

    fn store_lock(&self) -> Result<StoreGuard, SessionError> {
        let started = self.engine.client.environment().now();
        loop {
            match self.engine.poll_store_lock(started)? {
                Ok(guard) => return Ok(guard),
                Err(wait) => self.engine.client.transport().sleep(wait),
            }
        }
    }
}
