//! The managers: [`TokenManager`] (async, any [`AsyncTransport`]) and [`BlockingTokenManager`]
//! (threads, any [`BlockingTransport`]), two front-ends over one engine. The steps of a refresh
//! are in the crate docs.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use cogref_core::secrecy::SecretString;
use cogref_core::{
    AsyncTransport, BlockingTransport, Client, Environment, RefreshInput, Session, SessionConfig,
};

use crate::engine::{
    Ask, BACKGROUND_PAUSE, Engine, Fallback, LOCK_POLL, LockPoll, NOTIFIED_POLL, Options, Prepared,
    Quick, Refreshed, Saved, SignOut, TombstoneSaved,
};
use crate::error::SessionError;
use crate::event::SessionEvent;
use crate::store::{AsyncTokenStore, TokenStore};

/// The shortest sleep of a loop that waits for time to pass: a wait computed as a few
/// nanoseconds must still move time on, on a timer of any resolution.
const MIN_SLEEP: Duration = Duration::from_millis(1);

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

        /// The app client's refresh-token validity (30 days unless the app client says
        /// otherwise): the session then knows its deadline (the managers' `deadline()`), reports
        /// [`SessionEvent::EndingSoon`] a day before it (see
        /// [`ending_soon_notice`](Self::ending_soon_notice)), and records the sign-in time in
        /// the store. Rotation does not extend a session: it ends on schedule.
        pub fn refresh_token_validity(mut self, validity: Duration) -> Self {
            self.options.config.refresh_token_validity = Some(validity);
            self
        }

        /// How long before the deadline [`SessionEvent::EndingSoon`] is reported (default 1
        /// day).
        pub fn ending_soon_notice(mut self, notice: Duration) -> Self {
            self.options.config.ending_soon_notice = notice;
            self
        }

        /// When the user signed in, by the server's clock, for a session that starts from the
        /// template's refresh token (a store that holds a set already knows). Without it, the
        /// first access token's `auth_time` claim says.
        pub fn signed_in_at(mut self, at: std::time::SystemTime) -> Self {
            self.options.signed_in_at = Some(at);
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

/// The steps of saving a set (a refresh's, or a rotation saved again), written once for both
/// managers: a compare-and-set, again on a new entry if the store was emptied, or after a look
/// at what a lost race left (the engine adopts it, or writes over an older set). The answer.
macro_rules! save_steps {
    ($engine:expr, $store_ref:expr, $pending:expr, $store:ident, $($aw:tt)*) => {{
        let (engine, store, pending) = ($engine, $store_ref, $pending);
        let saved = $store::save(store, pending.tokens(), pending.expected()) $($aw)*;
        let mut next = engine.saved(pending, saved);
        loop {
            next = match next {
                Saved::Done(result) => break result,
                Saved::Retry(pending) => {
                    let saved = $store::save(store, pending.tokens(), pending.expected()) $($aw)*;
                    engine.saved(pending, saved)
                }
                Saved::Reload(pending) => {
                    let stored = $store::load(store) $($aw)*;
                    engine.after_conflict(pending, stored)
                }
            };
        }
    }};
}

/// A rotation saved again by a caller that has no fresh token to serve meanwhile (the session
/// is refreshing, failing or held back by the floor), written once for both managers: only if
/// the store's lock is free at once, so that the caller's answer is the one it gets without an
/// unsaved rotation, at once; a store that fails is an event, not the caller's error.
macro_rules! resave_steps {
    ($engine:expr, $store_ref:expr, $store:ident, $($aw:tt)*) => {{
        let (engine, store) = ($engine, $store_ref);
        match $store::try_lock(store) $($aw)* {
            Ok(Some(guard)) => {
                engine.locked();
                if let Some(pending) = engine.resave($store::load(store) $($aw)*) {
                    // Its answer is the session's, asked again by the caller.
                    let _ = save_steps!(engine, store, pending, $store, $($aw)*);
                }
                $store::unlock(store, guard) $($aw)*;
            }
            // Another holder's: it may be refreshing, and the next try is a second away.
            Ok(None) => {}
            Err(e) => engine.resave_failed(e),
        }
    }};
}

/// The steps of a refresh once this process has decided to run one, written once for both
/// managers: take the store's lock (or adopt what its holder stores, or serve a still-valid
/// token), reload, refresh if still due, save with a compare-and-set (afresh if the store was
/// emptied meanwhile), adopt the winner after a lost race, look at the store once more before
/// reporting that the user must sign in, release. `$store` is the store trait the calls go
/// through (`TokenStore` or `AsyncTokenStore`), `$refresh` the client's call, `$wait` what to
/// do while another holds the lock, and `$($aw)*` is `.await` or nothing.
macro_rules! refresh_steps {
    ($engine:expr, $store_ref:expr, $ask:expr, $store:ident, $refresh:ident, $wait:expr, $sleep:expr, $($aw:tt)*) => {{
        let engine = $engine;
        let store = $store_ref;
        let ask = $ask;
        let started = engine.now().mono;
        let lock = loop {
            let polled = match $store::try_lock(store) $($aw)* {
                Ok(Some(guard)) => {
                    engine.locked();
                    break Some(guard);
                }
                Ok(None) => engine.peeked($store::load(store) $($aw)*, started, ask),
                Err(e) => Err(e),
            };
            match polled {
                Ok(LockPoll::Serve(token)) => return Ok(token),
                Ok(LockPoll::Fail(error)) => return Err(error),
                Ok(LockPoll::Wait { seen }) => $wait(seen) $($aw)*,
                Err(e) => match engine.store_failed(e, ask)? {
                    Fallback::Serve(token) => return Ok(token),
                    Fallback::RefreshUnlocked => break None,
                },
            }
        };
        let mut loaded = match &lock {
            Some(_) => Some($store::load(store) $($aw)*),
            None => None,
        };
        let mut rechecked = false;
        // Once per call: a rotation saved again is followed by a decision afresh.
        let mut may_resave = true;
        let result = loop {
            // A set to save (a refresh's, or a rotation saved again: `again`), or the answer.
            let to_save = match engine.prepare(loaded.take(), ask, may_resave) {
                Ok(Prepared::Serve(token)) => Err(Ok(token)),
                Ok(Prepared::Wait(wait)) => {
                    $sleep(wait) $($aw)*;
                    // A lease can run out during the wait and a sibling refresh meanwhile:
                    // look again before refreshing.
                    if lock.is_some() {
                        loaded = Some($store::load(store) $($aw)*);
                    }
                    continue;
                }
                Ok(Prepared::Save(pending)) => {
                    may_resave = false;
                    Ok((pending, true))
                }
                Ok(Prepared::Refresh(planned)) => {
                    let outcome = engine.client.$refresh(&planned.input) $($aw)*;
                    match engine.refreshed(outcome, *planned) {
                        Refreshed::Done(result) => Err(result),
                        Refreshed::Save(pending) => Ok((pending, false)),
                    }
                }
                Err(e) => Err(Err(e)),
            };
            let result = match to_save {
                Err(result) => result,
                Ok((pending, again)) => {
                    let result = save_steps!(engine, store, pending, $store, $($aw)*);
                    if again {
                        // Saved (or adopted over, or failed again): now serve, refresh or
                        // fail as the session says.
                        continue;
                    }
                    result
                }
            };
            // Before saying the session is over, look at the store: another process may hold
            // a newer set (it rotated while our lease had run out, or signed in afresh).
            if !rechecked && matches!(result, Err(SessionError::SignInRequired(_))) {
                rechecked = true;
                if engine.recheck($store::load(store) $($aw)*) {
                    continue;
                }
            }
            break result;
        };
        if let Some(guard) = lock {
            $store::unlock(store, guard) $($aw)*;
        }
        result
    }};
}

/// The steps of a sign-out, written once for both managers: take the store's lock (waiting for
/// a holder's refresh to end, at most the lock timeout; without a store, go on: revoking matters
/// more than the mark), read the store (a newer set's token is the one to revoke; a tombstone
/// means it is done), revoke, then replace the set with a tombstone by compare-and-set (over
/// whatever a lost race left, unless it is a tombstone already), release. A failed revocation
/// changes nothing. Arguments as for [`refresh_steps!`].
macro_rules! sign_out_steps {
    ($engine:expr, $store_ref:expr, $store:ident, $revoke:ident, $wait:expr, $($aw:tt)*) => {{
        let engine = $engine;
        let store = $store_ref;
        let started = engine.now().mono;
        let lock = loop {
            match $store::try_lock(store) $($aw)* {
                Ok(Some(guard)) => {
                    engine.locked();
                    break Some(guard);
                }
                Ok(None) if engine.sign_out_lock_wait_over(started) => {
                    tracing::warn!("the refresh lock stayed taken; signing out without it");
                    break None;
                }
                Ok(None) => $wait(engine.store_version()) $($aw)*,
                Err(e) => {
                    tracing::warn!(error = %e, "the store's lock could not be taken; signing out without it");
                    break None;
                }
            }
        };
        let loaded = $store::load(store) $($aw)*;
        let result = match engine.prepare_sign_out(loaded) {
            Err(e) => Err(e),
            Ok(SignOut::Done) => Ok(()),
            Ok(SignOut::Revoke(input)) => {
                let outcome = engine.client.$revoke(&input) $($aw)*;
                match engine.revoked(outcome) {
                    Err(e) => Err(e),
                    Ok(pending) => {
                        let saved =
                            $store::save(store, pending.tokens(), pending.expected()) $($aw)*;
                        let mut next = engine.tombstone_saved(pending, saved);
                        loop {
                            next = match next {
                                TombstoneSaved::Done(result) => break result,
                                TombstoneSaved::Retry(pending) => {
                                    let saved = $store::save(
                                        store,
                                        pending.tokens(),
                                        pending.expected(),
                                    ) $($aw)*;
                                    engine.tombstone_saved(pending, saved)
                                }
                                TombstoneSaved::Reload(pending) => {
                                    let stored = $store::load(store) $($aw)*;
                                    engine.tombstone_after_conflict(pending, stored)
                                }
                            };
                        }
                    }
                }
            }
        };
        if let Some(guard) = lock {
            $store::unlock(store, guard) $($aw)*;
        }
        result
    }};
}

/// How many times one call reads the store because its change stamp moved, before it answers
/// from what it has (a store saved to without pause never keeps a caller waiting).
const LOOKS_PER_CALL: u32 = 2;

/// Builds a [`TokenManager`].
pub struct TokenManagerBuilder<T, E, S> {
    client: Client<T, E>,
    template: RefreshInput,
    store: S,
    options: Options,
}

impl<T, E, S> TokenManagerBuilder<T, E, S>
where
    T: AsyncTransport + 'static,
    E: Environment + 'static,
    S: AsyncTokenStore + 'static,
{
    builder_methods!();

    /// Loads the store (or starts from the template's refresh token) and makes the manager.
    /// Fails if the store cannot be read or holds the session of another app client.
    pub async fn build(mut self) -> Result<TokenManager<T, E, S>, SessionError> {
        self.options.stamp = AsyncTokenStore::change_stamp(&self.store);
        let loaded = AsyncTokenStore::load(&self.store).await?;
        Ok(TokenManager {
            inner: Arc::new(Inner {
                engine: Engine::new(self.client, self.template, loaded, self.options)?,
                store: self.store,
                flight: Mutex::new(None),
            }),
        })
    }
}

/// An async token manager over any [`AsyncTransport`]. How it refreshes: see the [crate docs](crate#how-a-refresh-happens).
///
/// Every refresh runs as a task of its own ([`AsyncTransport::spawn`]), and callers await its
/// shared outcome: a caller whose future is dropped (a timeout, a cancelled request handler)
/// never cuts a refresh short between Cognito's answer and the save. Cheap to clone; clones
/// share the session.
pub struct TokenManager<T, E, S> {
    inner: Arc<Inner<T, E, S>>,
}

impl<T, E, S> Clone for TokenManager<T, E, S> {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
        }
    }
}

struct Inner<T, E, S> {
    engine: Engine<T, E>,
    store: S,
    /// The refresh under way, if any: one at a time per manager.
    flight: Mutex<Option<Arc<Flight>>>,
}

/// One refresh task and its outcome, which every caller that joined it receives.
struct Flight {
    ask: Ask,
    outcome: async_lock::OnceCell<Result<SecretString, SessionError>>,
}

impl Flight {
    async fn outcome(&self) -> Result<SecretString, SessionError> {
        self.outcome.wait().await.clone()
    }
}

/// Owned by the refresh task: settles the flight when the task ends, and if the task is dropped
/// unfinished, tells its waiters so instead of leaving them waiting forever.
struct FlightGuard<T, E, S> {
    inner: Arc<Inner<T, E, S>>,
    flight: Arc<Flight>,
}

impl<T, E, S> FlightGuard<T, E, S> {
    fn settle(&self, result: Result<SecretString, SessionError>) {
        // Out of the slot first: a caller woken by the outcome never finds this flight there
        // and takes it for a refresh that started after it asked.
        {
            let mut slot = lock(&self.inner.flight);
            if slot.as_ref().is_some_and(|f| Arc::ptr_eq(f, &self.flight)) {
                *slot = None;
            }
        }
        // Only this guard sets the cell, so this never waits.
        let _ = self.flight.outcome.set_blocking(result);
    }
}

impl<T, E, S> Drop for FlightGuard<T, E, S> {
    fn drop(&mut self) {
        self.settle(Err(SessionError::Interrupted));
    }
}

fn lock<V>(mutex: &Mutex<V>) -> MutexGuard<'_, V> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

impl<T, E, S> TokenManager<T, E, S>
where
    T: AsyncTransport + 'static,
    E: Environment + 'static,
    S: AsyncTokenStore + 'static,
{
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
    ///
    /// Dropping the returned future is safe at any point: a refresh it started goes on, and its
    /// result is stored.
    pub async fn access_token(&self) -> Result<SecretString, SessionError> {
        let stamp = AsyncTokenStore::change_stamp(&self.inner.store);
        match self.inner.engine.cached_token(stamp) {
            Some(token) => Ok(token),
            // Decided again on fresh clocks (an environment may hold the cached reading), and
            // boxed so that the cached path's future stays small: the refresh machinery is
            // built only when a refresh is due.
            None => Box::pin(self.slow_path(stamp)).await,
        }
    }

    /// The answers other than a cached token, decided on fresh clocks.
    async fn slow_path(&self, stamp: Option<u64>) -> Result<SecretString, SessionError> {
        let engine = &self.inner.engine;
        let mut quick = engine.quick(engine.now(), stamp);
        let mut rechecked = false;
        let mut looks = 0;
        loop {
            match quick {
                // Another holder saved (perhaps a sign-out): read the store first.
                Quick::Look(stamp) => {
                    looks += 1;
                    engine.looked(AsyncTokenStore::load(&self.inner.store).await, stamp);
                }
                Quick::Serve(token) => return Ok(token),
                // Inline, not on a task: it never waits for the lock, and a call dropped
                // halfway leaves the rotation to the next try.
                Quick::Resave => resave_steps!(engine, &self.inner.store, AsyncTokenStore, .await),
                Quick::Refresh { usable } => {
                    let (flight, ours) = self.join_or_start(Ask::Token);
                    if usable && !ours {
                        // Someone else is refreshing ahead of expiry: the current token is
                        // still good.
                        return Ok(engine.current_token());
                    }
                    return flight.outcome().await;
                }
                // No token to give: a newer set in the store (another process refreshed, or
                // signed in afresh) beats the error.
                Quick::Fail(error) => {
                    if rechecked || !engine.recheck(AsyncTokenStore::load(&self.inner.store).await)
                    {
                        return Err(error);
                    }
                    rechecked = true;
                }
            }
            let stamp = if looks < LOOKS_PER_CALL {
                AsyncTokenStore::change_stamp(&self.inner.store)
            } else {
                None
            };
            quick = engine.quick(engine.now(), stamp);
        }
    }

    /// The refresh under way, or a new one started for `ask`; whether it is new.
    fn join_or_start(&self, ask: Ask) -> (Arc<Flight>, bool) {
        let mut slot = lock(&self.inner.flight);
        if let Some(flight) = slot.as_ref() {
            return (Arc::clone(flight), false);
        }
        let flight = Arc::new(Flight {
            ask,
            outcome: async_lock::OnceCell::new(),
        });
        *slot = Some(Arc::clone(&flight));
        drop(slot);
        let guard = FlightGuard {
            inner: Arc::clone(&self.inner),
            flight: Arc::clone(&flight),
        };
        let task = async move {
            let result = guard.inner.refresh(ask).await;
            guard.settle(result);
        };
        self.inner.engine.client.transport().spawn(Box::pin(task));
        (flight, true)
    }

    /// Refreshes now, even if the token is fresh, and returns a token obtained by a refresh that
    /// started after this call: after a refresh already under way, and never sooner than
    /// [`SessionConfig::min_refresh_interval`] after the lineage's last refresh (it waits that
    /// out holding the store's lock). When that refresh fails, the answer is its error, not
    /// the token held before the call (which [`access_token`](Self::access_token) still
    /// serves while it is valid).
    pub async fn refresh_now(&self) -> Result<SecretString, SessionError> {
        let engine = &self.inner.engine;
        let since = engine.now();
        loop {
            // A refresh another caller (the background refresher, `access_token`) started
            // after this call is the refresh asked for: waiting out the floor again after it
            // could go on forever while they keep refreshing as soon as the floor allows.
            if let Some(answer) = engine.refreshed_since(since, engine.now()) {
                return answer;
            }
            let current = lock(&self.inner.flight).clone();
            match current {
                // Asked for after this call began: it is the refresh asked for.
                Some(flight) if matches!(flight.ask, Ask::Force { since: theirs } if theirs.mono >= since.mono) =>
                {
                    return engine.forced_answer(since, flight.outcome().await);
                }
                Some(flight) => {
                    let _ = flight.outcome().await;
                }
                // Ours starts now and waits out the floor holding the store's lock, as the
                // blocking manager's does: sleeping first, outside the lock, let a sibling
                // refresh at the end of each floor and restart it, for as long as a clock
                // stepped back made their refreshes look older than this call.
                None => {
                    let (flight, ours) = self.join_or_start(Ask::Force { since });
                    let outcome = flight.outcome().await;
                    if ours {
                        return engine.forced_answer(since, outcome);
                    }
                }
            }
        }
    }

    /// Keeps the session fresh: refreshes whenever one is due, until the user must sign in
    /// again. Spawn it on your runtime; it sleeps on the transport's timer between refreshes,
    /// and never more often than once a second when a refresh leaves another due at once.
    /// Dropping it never cuts a refresh short.
    pub async fn run_background(&self) {
        let engine = &self.inner.engine;
        let mut pause = Duration::ZERO;
        while let Some(wait) = engine.next_due_in(engine.now()) {
            let wait = wait.max(pause);
            if !wait.is_zero() {
                engine.client.transport().sleep(wait.max(MIN_SLEEP)).await;
                pause = Duration::ZERO;
                continue;
            }
            let (flight, _) = self.join_or_start(Ask::Background);
            if let Err(e) = flight.outcome().await {
                tracing::debug!(error = %e, "background refresh failed");
            }
            pause = BACKGROUND_PAUSE;
        }
    }

    /// Signs the session out: revokes its refresh token (`RevokeToken`: the token, the access
    /// tokens issued from it and, under rotation, its whole lineage stop working), then replaces
    /// the stored set with a tombstone and releases the store's lock. Every later call of this
    /// manager answers [`SessionError::SignedOut`], and so does every other manager sharing the
    /// store from its next call (see the store's change stamp,
    /// [`TokenStore::change_stamp`](crate::TokenStore::change_stamp)). Listeners hear
    /// [`SessionEvent::SignedOut`].
    ///
    /// The newest refresh token is revoked: the store is read under its lock first, and a set
    /// another holder stored is adopted. A lock another process holds (its refresh under way)
    /// is waited for, at most the [`lock_timeout`](TokenManagerBuilder::lock_timeout); past it,
    /// or if the store cannot give the lock, the sign-out goes on without it: the revocation
    /// matters more than the mark, and a set that refresh stores afterwards is overwritten by
    /// the tombstone or refused by Cognito (whether revoking one token of a rotated lineage ends
    /// the tokens rotated from it is open for the live service: docs/protocol.md §11). If the revocation fails (Cognito unreachable,
    /// throttled, the app client without token revocation), nothing changes, neither here nor
    /// in the store, and the error is [`SessionError::SignOutFailed`]: the session goes on, try
    /// again (unless the error says the token no longer works: see its
    /// [`requires_sign_in`](SessionError::requires_sign_in)). If only recording the sign-out in the store fails, the error is
    /// [`SessionError::SignOutNotStored`]. Signing out a session already signed out does
    /// nothing.
    ///
    /// Like a refresh it runs as a task of its own: dropping the returned future does not cut
    /// it short between the revocation and the tombstone.
    pub async fn sign_out(&self) -> Result<(), SessionError> {
        struct Settle(Arc<async_lock::OnceCell<Result<(), SessionError>>>);
        impl Drop for Settle {
            fn drop(&mut self) {
                // A task dropped unfinished: its caller is told, not left waiting.
                let _ = self.0.set_blocking(Err(SessionError::Interrupted));
            }
        }
        let outcome = Arc::new(async_lock::OnceCell::new());
        let settle = Settle(Arc::clone(&outcome));
        let inner = Arc::clone(&self.inner);
        let task = async move {
            let result = inner.sign_out().await;
            let _ = settle.0.set_blocking(result);
        };
        self.inner.engine.client.transport().spawn(Box::pin(task));
        outcome.wait().await.clone()
    }

    /// The session as it stands (tokens redacted in `Debug`).
    pub fn session(&self) -> Session {
        self.inner.engine.session()
    }

    /// When the lineage ends by the local clock (sign-in plus the stated
    /// [`refresh_token_validity`](TokenManagerBuilder::refresh_token_validity)), if known.
    pub fn deadline(&self) -> Option<std::time::SystemTime> {
        self.inner.engine.deadline()
    }

    /// Cognito's clock minus ours, in seconds, from the last response (`Date`, else `iat`).
    pub fn clock_skew_secs(&self) -> Option<i64> {
        self.inner.engine.session().clock_skew_secs()
    }
}

impl<T, E, S> Inner<T, E, S>
where
    T: AsyncTransport,
    E: Environment,
    S: AsyncTokenStore,
{
    async fn refresh(&self, ask: Ask) -> Result<SecretString, SessionError> {
        refresh_steps!(
            &self.engine,
            &self.store,
            ask,
            AsyncTokenStore,
            refresh,
            |seen| self.wait_for_store(seen),
            |wait| self.engine.client.transport().sleep(wait),
            .await
        )
    }

    async fn sign_out(&self) -> Result<(), SessionError> {
        sign_out_steps!(
            &self.engine,
            &self.store,
            AsyncTokenStore,
            revoke,
            |seen| self.wait_for_store(seen),
            .await
        )
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
    /// Fails if the store cannot be read or holds the session of another app client.
    pub fn build(mut self) -> Result<BlockingTokenManager<T, E, S>, SessionError> {
        self.options.stamp = TokenStore::change_stamp(&self.store);
        let loaded = TokenStore::load(&self.store)?;
        Ok(BlockingTokenManager {
            engine: Engine::new(self.client, self.template, loaded, self.options)?,
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
        let stamp = TokenStore::change_stamp(&self.store);
        match self.engine.cached_token(stamp) {
            Some(token) => Ok(token),
            // Decided again on fresh clocks (an environment may hold the cached reading), out
            // of line as the async manager's: the cached path stays a few instructions.
            None => self.slow_path(stamp),
        }
    }

    /// See [`TokenManager`]'s: decided on fresh clocks.
    #[cold]
    #[inline(never)]
    fn slow_path(&self, stamp: Option<u64>) -> Result<SecretString, SessionError> {
        let mut quick = self.engine.quick(self.engine.now(), stamp);
        let mut rechecked = false;
        let mut looks = 0;
        loop {
            match quick {
                Quick::Serve(token) => return Ok(token),
                // Another holder saved (perhaps a sign-out): read the store first.
                Quick::Look(stamp) => {
                    looks += 1;
                    self.engine.looked(TokenStore::load(&self.store), stamp);
                }
                Quick::Refresh { usable: true } => {
                    return match self.gate.try_lock() {
                        Ok(gate) => self.refresh_holding(gate, Ask::Token),
                        // A listener panicked while holding it: the session inside is whole.
                        Err(std::sync::TryLockError::Poisoned(p)) => {
                            self.refresh_holding(p.into_inner(), Ask::Token)
                        }
                        // Someone else is refreshing ahead of expiry: the token is still good.
                        Err(std::sync::TryLockError::WouldBlock) => Ok(self.engine.current_token()),
                    };
                }
                Quick::Refresh { usable: false } => {
                    return self.refresh_holding(lock(&self.gate), Ask::Token);
                }
                Quick::Resave => resave_steps!(&self.engine, &self.store, TokenStore,),
                Quick::Fail(error) => {
                    if rechecked || !self.engine.recheck(TokenStore::load(&self.store)) {
                        return Err(error);
                    }
                    rechecked = true;
                }
            }
            let stamp = if looks < LOOKS_PER_CALL {
                TokenStore::change_stamp(&self.store)
            } else {
                None
            };
            quick = self.engine.quick(self.engine.now(), stamp);
        }
    }

    /// Refreshes now, even if the token is fresh, and returns a token obtained by a refresh that
    /// started after this call (see [`TokenManager::refresh_now`]).
    pub fn refresh_now(&self) -> Result<SecretString, SessionError> {
        let since = self.engine.now();
        let gate = lock(&self.gate);
        let wait = self.engine.until_refresh_allowed(self.engine.now());
        if !wait.is_zero() {
            self.engine.client.transport().sleep(wait.max(MIN_SLEEP));
        }
        let result = self.refresh_holding(gate, Ask::Force { since });
        self.engine.forced_answer(since, result)
    }

    /// Keeps the session fresh on a thread of its own until the user must sign in again, never
    /// more often than once a second when a refresh leaves another due at once.
    pub fn spawn_background(self: &Arc<Self>) -> std::thread::JoinHandle<()>
    where
        T: 'static,
        E: 'static,
        S: 'static,
    {
        let manager = Arc::clone(self);
        std::thread::spawn(move || {
            let mut pause = Duration::ZERO;
            while let Some(wait) = manager.engine.next_due_in(manager.engine.now()) {
                let wait = wait.max(pause);
                if wait.is_zero() {
                    if let Err(e) = manager.refresh_holding(lock(&manager.gate), Ask::Background) {
                        tracing::debug!(error = %e, "background refresh failed");
                    }
                    pause = BACKGROUND_PAUSE;
                } else {
                    manager.engine.client.transport().sleep(wait.max(MIN_SLEEP));
                    pause = Duration::ZERO;
                }
            }
        })
    }

    /// Signs the session out, blocking the thread; see [`TokenManager::sign_out`]. It waits
    /// for a refresh of this manager under way to end first.
    pub fn sign_out(&self) -> Result<(), SessionError> {
        let _gate = lock(&self.gate);
        sign_out_steps!(
            &self.engine,
            &self.store,
            TokenStore,
            revoke_blocking,
            |seen| self.wait_for_store(seen),
        )
    }

    /// The session as it stands (tokens redacted in `Debug`).
    pub fn session(&self) -> Session {
        self.engine.session()
    }

    /// When the lineage ends; see [`TokenManager::deadline`].
    pub fn deadline(&self) -> Option<std::time::SystemTime> {
        self.engine.deadline()
    }

    /// Cognito's clock minus ours, in seconds; see [`TokenManager::clock_skew_secs`].
    pub fn clock_skew_secs(&self) -> Option<i64> {
        self.engine.session().clock_skew_secs()
    }

    fn refresh_holding(
        &self,
        _gate: MutexGuard<'_, ()>,
        ask: Ask,
    ) -> Result<SecretString, SessionError> {
        refresh_steps!(
            &self.engine,
            &self.store,
            ask,
            TokenStore,
            refresh_blocking,
            |seen| self.wait_for_store(seen),
            |wait| self.engine.client.transport().sleep(wait),
        )
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
