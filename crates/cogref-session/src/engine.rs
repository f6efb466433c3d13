//! The engine both managers drive: the session behind a mutex and every decision about when to
//! take the store's lock, adopt a set someone else stored, save, and what to do when the store
//! fails. It does no I/O: the managers call the store and Cognito (on a task or a thread) and
//! hand the results in, so one engine serves blocking and async stores alike.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use cogref_core::secrecy::SecretString;
use cogref_core::{
    CallError, Client, Decision, Environment, Now, RefreshInput, RefreshOutput, Session,
    SessionConfig, TokenSet,
};

use crate::error::SessionError;
use crate::event::{Listener, SessionEvent};
use crate::store::{StoreError, Versioned};

/// How often a manager looks at a lock held elsewhere (a store that can notify wakes it sooner).
pub(crate) const LOCK_POLL: Duration = Duration::from_millis(20);
/// How long a store that can notify is waited on before looking again anyway.
pub(crate) const NOTIFIED_POLL: Duration = Duration::from_millis(250);
/// After a store failure, how long a still-valid token is served without asking the store again.
pub(crate) const STORE_RETRY: Duration = Duration::from_secs(1);
/// The least a background refresher sleeps after a refresh that left a refresh still due (a
/// failure that changed nothing, a lock held elsewhere): it never spins.
pub(crate) const BACKGROUND_PAUSE: Duration = Duration::from_secs(1);

struct State {
    session: Session,
    /// The store's version that `session` was loaded from or saved as (`None`: nothing stored).
    store_version: Option<u64>,
    /// A rotated token is only in memory: the store holds an older, dead one, which must not be
    /// adopted back.
    store_behind: bool,
    /// The store failed: until then (monotonic), a still-valid token is served without asking
    /// it again.
    store_retry_at: Option<Instant>,
}

/// What the lock holder does after reloading.
pub(crate) enum Prepared {
    Serve(SecretString),
    /// Call Cognito with this input; hand the outcome and the time (when the refresh was
    /// decided on) to [`Engine::refreshed`].
    Refresh(Box<RefreshInput>, Now),
}

/// What to do after a look at the store while another process holds its lock.
pub(crate) enum LockPoll {
    /// Hand this out: a newer valid set someone else stored (adopted), or, when the caller
    /// allowed it, our own still-valid token while another process refreshes.
    Serve(SecretString),
    /// Held elsewhere: wait, then look again. `seen` is the stored version we looked at.
    Wait { seen: Option<u64> },
}

/// Who asks for a refresh, which decides whether to wait for another process's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ask {
    /// A caller of `access_token()`: a still-valid token will do while another process
    /// refreshes.
    Token,
    /// The background refresher: waits for the new set.
    Background,
    /// `refresh_now()`: refreshes even a fresh token (but never twice within the floor).
    Force,
}

/// What a caller of `access_token()` is told without waiting.
pub(crate) enum Quick {
    /// The cached token.
    Serve(SecretString),
    /// A refresh is due; `usable`: the cached token may be served meanwhile.
    Refresh { usable: bool },
    /// No token now: the error, unless a look at the store finds a newer set.
    Fail(SessionError),
}

/// What to do when the store failed.
pub(crate) enum Fallback {
    /// The current token is still valid: hand it out.
    Serve(SecretString),
    /// The application opted into refreshing without the lock.
    RefreshUnlocked,
}

/// Options shared by both managers' builders.
#[derive(Clone)]
pub(crate) struct Options {
    pub(crate) config: SessionConfig,
    pub(crate) listeners: Vec<Listener>,
    pub(crate) lock_timeout: Duration,
    pub(crate) refresh_without_lock: bool,
    /// When the user signed in (the server's clock), for a session started from the template.
    pub(crate) signed_in_at: Option<std::time::SystemTime>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            config: SessionConfig::default(),
            listeners: Vec::new(),
            lock_timeout: crate::DEFAULT_LOCK_TIMEOUT,
            refresh_without_lock: false,
            signed_in_at: None,
        }
    }
}

/// A refreshed session waiting to be saved: nothing of it is handed out before the save.
pub(crate) struct PendingSave {
    next: Session,
    expected: Option<u64>,
    rotated: bool,
    /// What the caller is told once the set is stored: `None` for the new token; the error of
    /// a failed call that nonetheless carried a rotated refresh token.
    then: Option<SessionError>,
}

impl PendingSave {
    /// What to save.
    pub(crate) fn tokens(&self) -> &TokenSet {
        self.next.tokens()
    }

    /// The version the save must find (compare-and-set).
    pub(crate) fn expected(&self) -> Option<u64> {
        self.expected
    }
}

/// After a refresh call.
pub(crate) enum Refreshed {
    /// Nothing to save (the call failed): the answer.
    Done(Result<SecretString, SessionError>),
    /// Save this, then call [`Engine::saved`].
    Save(Box<PendingSave>),
}

/// After a save.
pub(crate) enum Saved {
    /// The answer.
    Done(Result<SecretString, SessionError>),
    /// The store was emptied while the refresh ran (a deleted file, a Redis restarted without
    /// its data): save this again as a new entry, then call [`Engine::saved`] again.
    Create(Box<PendingSave>),
    /// Another holder saved first: reload the store and call [`Engine::after_conflict`].
    Conflict(Box<PendingSave>),
}

pub(crate) struct Engine<T, E> {
    pub(crate) client: Client<T, E>,
    template: RefreshInput,
    state: Mutex<State>,
    options: Options,
    /// The app client and endpoint every stored set must belong to.
    client_id: String,
    endpoint: String,
    /// `EndingSoon` was reported (once per process).
    ending_soon_told: std::sync::atomic::AtomicBool,
}

impl<T, E: Environment> Engine<T, E> {
    /// An engine over what the store held at start (`loaded`); a set stored for another app
    /// client or endpoint is refused.
    pub(crate) fn new(
        client: Client<T, E>,
        template: RefreshInput,
        loaded: Option<Versioned>,
        options: Options,
    ) -> Result<Self, SessionError> {
        let client_id = template.client_id().to_owned();
        let endpoint = client.endpoint().url().to_owned();
        let now = now(&client);
        let (tokens, store_version) = match loaded {
            Some(stored) => {
                check_binding(&stored.tokens, &client_id, &endpoint)?;
                (stored.tokens, Some(stored.version))
            }
            None => (
                TokenSet::from_refresh_token(
                    template.refresh_token().clone(),
                    template.device_key().cloned(),
                )
                .with_signed_in_at(options.signed_in_at),
                None,
            ),
        };
        let tokens = tokens.bound_to(Some(client_id.clone()), Some(endpoint.clone()));
        Ok(Self {
            state: Mutex::new(State {
                session: Session::new(tokens, options.config, now),
                store_version,
                store_behind: false,
                store_retry_at: None,
            }),
            client,
            template,
            options,
            client_id,
            endpoint,
            ending_soon_told: std::sync::atomic::AtomicBool::new(false),
        })
    }

    /// Reports [`SessionEvent::EndingSoon`] once the deadline is near (once per process).
    pub(crate) fn check_deadline(&self) {
        use std::sync::atomic::Ordering;
        if self.ending_soon_told.load(Ordering::Relaxed) {
            return;
        }
        let now = self.now();
        let deadline = {
            let state = self.state();
            state
                .session
                .ending_soon(now)
                .then(|| state.session.deadline())
                .flatten()
        };
        if let Some(deadline) = deadline
            && !self.ending_soon_told.swap(true, Ordering::Relaxed)
        {
            tracing::info!(?deadline, "the session's refresh token is about to expire");
            self.emit(SessionEvent::EndingSoon { deadline });
        }
    }

    /// When the lineage ends, if the application stated the validity.
    pub(crate) fn deadline(&self) -> Option<std::time::SystemTime> {
        self.state().session.deadline()
    }

    pub(crate) fn now(&self) -> Now {
        now(&self.client)
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // The session is replaced whole under the lock: a panic elsewhere cannot tear it.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn session(&self) -> Session {
        self.state().session.clone()
    }

    pub(crate) fn current_token(&self) -> SecretString {
        current_token(&self.state().session)
    }

    fn emit(&self, event: SessionEvent) {
        tracing::debug!(?event, "session event");
        for listener in &self.options.listeners {
            listener(&event);
        }
    }

    /// The answer at `now` without waiting, when there is one.
    pub(crate) fn quick(&self, now: Now) -> Quick {
        let state = self.state();
        let session = &state.session;
        match session.decide(now) {
            Decision::Serve => Quick::Serve(current_token(session)),
            // The store failed a moment ago and the token is still good: do not ask it again yet.
            Decision::Refresh { usable: true }
                if state.store_retry_at.is_some_and(|t| now.mono < t) =>
            {
                Quick::Serve(current_token(session))
            }
            Decision::Refresh { usable } => Quick::Refresh { usable },
            decision => Quick::Fail(error_of(session, decision)),
        }
    }

    /// A look at the store by a caller that has no token to give (the session is dead, failing
    /// or held back): adopts a newer set if the store has one. Whether it did.
    pub(crate) fn recheck(&self, loaded: Result<Option<Versioned>, StoreError>) -> bool {
        let stored = match self.checked(loaded) {
            Ok(Some(stored)) => stored,
            Ok(None) => return false,
            Err(e) => {
                tracing::debug!(error = %e, "looking at the store for a newer set failed");
                return false;
            }
        };
        let now = self.now();
        let mut state = self.state();
        if state.store_version == Some(stored.version)
            || !self.adopt_if_newer(&mut state, stored, now)
        {
            return false;
        }
        drop(state);
        self.emit(SessionEvent::Adopted);
        self.check_deadline();
        true
    }

    /// `loaded`, with a set stored for another app client or endpoint turned into an error.
    fn checked(
        &self,
        loaded: Result<Option<Versioned>, StoreError>,
    ) -> Result<Option<Versioned>, StoreError> {
        let loaded = loaded?;
        if let Some(stored) = &loaded {
            check_binding(&stored.tokens, &self.client_id, &self.endpoint)?;
        }
        Ok(loaded)
    }

    /// The store's lock was taken.
    pub(crate) fn locked(&self) {
        self.state().store_retry_at = None;
    }

    /// Another process holds the lock and the store held `stored`: adopt it if newer, serve, or
    /// wait; an error once `lock_timeout` has passed since `started`. With `serve_usable`, a
    /// still-valid token is served at once rather than waiting for the other's result.
    pub(crate) fn peeked(
        &self,
        stored: Result<Option<Versioned>, StoreError>,
        started: Instant,
        serve_usable: bool,
    ) -> Result<LockPoll, StoreError> {
        let stored = self.checked(stored)?;
        let seen = stored.as_ref().map(|s| s.version);
        let now = self.now();
        let mut state = self.state();
        if let Some(stored) = stored
            && state.store_version != Some(stored.version)
            && self.adopt_if_newer(&mut state, stored, now)
        {
            let serve = matches!(state.session.decide(now), Decision::Serve);
            let token = current_token(&state.session);
            drop(state);
            self.emit(SessionEvent::Adopted);
            self.check_deadline();
            if serve {
                return Ok(LockPoll::Serve(token));
            }
            state = self.state();
        }
        if serve_usable && state.session.is_valid_at(now) {
            return Ok(LockPoll::Serve(current_token(&state.session)));
        }
        drop(state);
        let waited = now.mono.saturating_duration_since(started);
        if waited >= self.options.lock_timeout {
            return Err(StoreError::LockTimeout {
                path: "the refresh lock".into(),
                waited,
            });
        }
        Ok(LockPoll::Wait { seen })
    }

    /// Adopts `stored` if it is a later step of the lineage than ours; records its version
    /// either way unless ours is newer and unsaved.
    fn adopt_if_newer(&self, state: &mut State, stored: Versioned, now: Now) -> bool {
        if state.store_behind {
            // Ours is the only live token; the stored one is dead. Save over it next time.
            state.store_version = Some(stored.version);
            return false;
        }
        let newer = is_newer(&stored.tokens, state.session.tokens());
        state.store_version = Some(stored.version);
        if newer {
            state.session.adopt(self.bind(stored.tokens), now);
        }
        newer
    }

    fn bind(&self, tokens: TokenSet) -> TokenSet {
        tokens.bound_to(Some(self.client_id.clone()), Some(self.endpoint.clone()))
    }

    /// The store failed (unreachable, lock held too long, unreadable): serve a still-valid token,
    /// refresh without the lock if the application opted in, or report the failure.
    pub(crate) fn store_failed(
        &self,
        error: StoreError,
        ask: Ask,
    ) -> Result<Fallback, SessionError> {
        let now = self.now();
        let error = Arc::new(error);
        tracing::warn!(error = %error, "token store failed");
        self.emit(SessionEvent::StoreFailed(error.clone()));
        let mut state = self.state();
        state.store_retry_at = Some(now.after(STORE_RETRY).mono);
        let usable = state.session.is_valid_at(now);
        if usable && ask != Ask::Force {
            Ok(Fallback::Serve(current_token(&state.session)))
        } else if self.options.refresh_without_lock && !state.session.requires_sign_in() {
            Ok(Fallback::RefreshUnlocked)
        } else {
            Err(SessionError::Store(error))
        }
    }

    /// Decides what to do once the lock is held (`loaded` is the store's content, reloaded under
    /// it) or given up on (`None`): adopt a newer set if another process refreshed meanwhile,
    /// then decide again.
    pub(crate) fn prepare(
        &self,
        loaded: Option<Result<Option<Versioned>, StoreError>>,
        ask: Ask,
    ) -> Result<Prepared, SessionError> {
        let force = ask == Ask::Force;
        if let Some(loaded) = loaded {
            match self.checked(loaded) {
                Ok(Some(stored)) => {
                    let now = self.now();
                    let mut state = self.state();
                    if self.adopt_if_newer(&mut state, stored, now) {
                        drop(state);
                        self.emit(SessionEvent::Adopted);
                        self.check_deadline();
                    }
                }
                Ok(None) => self.state().store_version = None,
                Err(e) => match self.store_failed(e, ask)? {
                    Fallback::Serve(token) => return Ok(Prepared::Serve(token)),
                    Fallback::RefreshUnlocked => {}
                },
            }
        }
        let now = self.now();
        let state = self.state();
        let session = &state.session;
        let decision = if force {
            session.decide_forced(now)
        } else {
            session.decide(now)
        };
        match decision {
            Decision::Serve => Ok(Prepared::Serve(current_token(session))),
            Decision::Refresh { .. } => Ok(Prepared::Refresh(
                Box::new(session.refresh_input(&self.template)?),
                now,
            )),
            decision => Err(error_of(session, decision)),
        }
    }

    /// Applies the outcome of a refresh decided on at `started`: a success, or a failure that
    /// carried a rotated refresh token, must be saved (a compare-and-set on the version loaded)
    /// before anything of it is handed out. The tokens' lifetime counts from `started`, so the
    /// response's latency never lengthens it.
    pub(crate) fn refreshed(
        &self,
        outcome: Result<RefreshOutput, CallError>,
        started: Now,
    ) -> Refreshed {
        let (mut next, expected) = {
            let state = self.state();
            (state.session.clone(), state.store_version)
        };
        match outcome {
            Ok(output) => {
                let applied = next.apply_success(output, started);
                Refreshed::Save(Box::new(PendingSave {
                    next,
                    expected,
                    rotated: applied.rotated,
                    then: None,
                }))
            }
            Err(error) if error.rotated_refresh_token().is_some() => {
                // Cognito rotated and the answer was unusable: the new refresh token is the
                // lineage now. Store it, then report the failure.
                let now = self.now();
                let decision = next.apply_failure(error, started, now);
                let then = failure_result(&next, decision, now).err();
                self.emit_failure(&next, decision);
                Refreshed::Save(Box::new(PendingSave {
                    next,
                    expected,
                    rotated: true,
                    then,
                }))
            }
            Err(error) => Refreshed::Done(self.failed(error, started)),
        }
    }

    /// The save of `pending` ended with `result`.
    pub(crate) fn saved(
        &self,
        mut pending: Box<PendingSave>,
        result: Result<u64, StoreError>,
    ) -> Saved {
        let token = current_token(&pending.next);
        let expires_at = pending.next.tokens().expires_at;
        let rotated = pending.rotated;
        match result {
            Ok(version) => {
                let mut state = self.state();
                state.session = pending.next;
                state.store_version = Some(version);
                state.store_behind = false;
            }
            Err(StoreError::Conflict {
                expected: Some(_),
                found: None,
            }) if pending.expected.is_some() => {
                // Nothing is stored any more: no one won a race, the store lost its data. The
                // new set is the only live one; write it as a new entry.
                tracing::warn!(
                    "the token store was emptied while a refresh ran; storing the new set afresh"
                );
                pending.expected = None;
                return Saved::Create(pending);
            }
            Err(StoreError::Conflict { expected, found }) => {
                // Our lock ran out during the refresh and another holder stored a newer set: it
                // is the fleet's lineage now. Ours stays unwritten.
                tracing::warn!(
                    ?expected,
                    ?found,
                    "another holder saved while this refresh ran; adopting the stored set"
                );
                return Saved::Conflict(pending);
            }
            Err(e) => {
                let e = Arc::new(e);
                {
                    let mut state = self.state();
                    state.session = pending.next;
                    state.store_behind = rotated || state.store_behind;
                }
                tracing::warn!(error = %e, rotated, "saving refreshed tokens failed");
                self.emit(SessionEvent::StoreFailed(e.clone()));
                if rotated {
                    return Saved::Done(Err(SessionError::RotatedTokenNotSaved(e)));
                }
            }
        }
        if let Some(error) = pending.then {
            return Saved::Done(Err(error));
        }
        self.emit(SessionEvent::Refreshed {
            expires_at,
            rotated,
        });
        self.check_deadline();
        Saved::Done(self.fresh(token))
    }

    /// `token`, just obtained or adopted, if it is still valid now: tokens that expire as they
    /// arrive are never handed out.
    fn fresh(&self, token: SecretString) -> Result<SecretString, SessionError> {
        let now = self.now();
        let state = self.state();
        let session = &state.session;
        if session.is_valid_at(now) {
            return Ok(token);
        }
        Err(match session.decide(now) {
            Decision::SignInRequired => SessionError::SignInRequired(last_error(session)),
            Decision::Unavailable { retry_at } | Decision::TooSoon { retry_at } => {
                SessionError::TooSoon {
                    retry_at,
                    lifetime: session.tokens().lifetime,
                }
            }
            Decision::Serve | Decision::Refresh { .. } => SessionError::TooSoon {
                retry_at: now.wall,
                lifetime: session.tokens().lifetime,
            },
        })
    }

    /// After a lost save race: adopt what the winner stored (`stored`, reloaded).
    pub(crate) fn after_conflict(
        &self,
        pending: Box<PendingSave>,
        stored: Result<Option<Versioned>, StoreError>,
    ) -> Result<SecretString, SessionError> {
        let now = self.now();
        let token = current_token(&pending.next);
        let then = pending.then;
        let mut state = self.state();
        state.session = pending.next;
        state.store_behind = false;
        let adopted = match self.checked(stored) {
            Ok(Some(stored)) => self.adopt_if_newer(&mut state, stored, now),
            _ => false,
        };
        let serve = matches!(state.session.decide(now), Decision::Serve)
            .then(|| current_token(&state.session));
        drop(state);
        if adopted {
            self.emit(SessionEvent::Adopted);
            self.check_deadline();
        }
        match (serve, then) {
            (Some(token), _) if adopted => Ok(token),
            (_, Some(error)) => Err(error),
            (_, None) => self.fresh(token),
        }
    }

    fn failed(&self, error: CallError, started: Now) -> Result<SecretString, SessionError> {
        let now = self.now();
        let mut state = self.state();
        let decision = state.session.apply_failure(error, started, now);
        let result = failure_result(&state.session, decision, now);
        let session = state.session.clone();
        drop(state);
        self.emit_failure(&session, decision);
        result
    }

    fn emit_failure(&self, session: &Session, decision: Decision) {
        let error = last_error(session);
        self.emit(match decision {
            Decision::SignInRequired => SessionEvent::SignInRequired(error),
            Decision::Unavailable { retry_at } | Decision::TooSoon { retry_at } => {
                SessionEvent::RefreshFailed {
                    error,
                    retry_at: Some(retry_at),
                }
            }
            _ => SessionEvent::RefreshFailed {
                error,
                retry_at: session.retry_at(),
            },
        });
    }

    /// How long a forced refresh must wait for the floor between refreshes.
    pub(crate) fn until_refresh_allowed(&self, now: Now) -> Duration {
        self.state().session.until_refresh_allowed(now)
    }

    /// How long until the next refresh is due (`None` when the session is over).
    pub(crate) fn next_due_in(&self, now: Now) -> Option<Duration> {
        self.check_deadline();
        let state = self.state();
        let wait = state.session.next_refresh_in(now)?;
        // Due, but the store failed a moment ago: wait for the store, not in a hot loop.
        let store = state
            .store_retry_at
            .map_or(Duration::ZERO, |t| t.saturating_duration_since(now.mono));
        Some(wait.max(store))
    }
}

fn now<T, E: Environment>(client: &Client<T, E>) -> Now {
    let env = client.environment();
    Now::new(env.wall_clock(), env.now())
}

/// A stored set must belong to this app client and endpoint (a set without a binding was
/// written before cogref recorded one, and is taken as ours).
fn check_binding(tokens: &TokenSet, client_id: &str, endpoint: &str) -> Result<(), StoreError> {
    let other_client = tokens.client_id.as_deref().is_some_and(|c| c != client_id);
    let other_endpoint = tokens.endpoint.as_deref().is_some_and(|e| e != endpoint);
    if other_client || other_endpoint {
        return Err(StoreError::OtherClient {
            stored_client: tokens.client_id.clone().unwrap_or_default(),
            stored_endpoint: tokens.endpoint.clone().unwrap_or_default(),
            client: client_id.to_owned(),
            endpoint: endpoint.to_owned(),
        });
    }
    Ok(())
}

/// What a caller is told after a failed refresh left the session at `decision`.
fn failure_result(
    session: &Session,
    decision: Decision,
    now: Now,
) -> Result<SecretString, SessionError> {
    match decision {
        Decision::Serve | Decision::Refresh { usable: true } => Ok(current_token(session)),
        Decision::Refresh { usable: false } => Err(SessionError::Unavailable {
            error: last_error(session),
            retry_at: now.wall,
        }),
        decision => Err(error_of(session, decision)),
    }
}

/// The error for a decision that hands out no token.
fn error_of(session: &Session, decision: Decision) -> SessionError {
    match decision {
        Decision::SignInRequired => SessionError::SignInRequired(last_error(session)),
        Decision::TooSoon { retry_at } => SessionError::TooSoon {
            retry_at,
            lifetime: session.tokens().lifetime,
        },
        Decision::Unavailable { retry_at } => SessionError::Unavailable {
            error: last_error(session),
            retry_at,
        },
        Decision::Serve | Decision::Refresh { .. } => SessionError::Unavailable {
            error: last_error(session),
            retry_at: session.retry_at().unwrap_or(std::time::UNIX_EPOCH),
        },
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
    !stored.same_refresh_token(ours)
        || stored.expires_at > ours.expires_at
        || stored.refreshed_at > ours.refreshed_at
}
