//! The engine both managers drive: the session behind a mutex and every decision about when to
//! take the store's lock, adopt a set someone else stored, save, and what to do when the store
//! fails. It does no I/O: the managers call the store and Cognito (on a task or a thread) and
//! hand the results in, so one engine serves blocking and async stores alike.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use cogref_core::secrecy::SecretString;
use cogref_core::{
    CallError, Client, Decision, Environment, RefreshInput, RefreshOutput, Session, SessionConfig,
    TokenSet,
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

struct State {
    session: Session,
    /// The store's version that `session` was loaded from or saved as (`None`: nothing stored).
    store_version: Option<u64>,
    /// A rotated token is only in memory: the store holds an older, dead one, which must not be
    /// adopted back.
    store_behind: bool,
    /// The store failed: until then, a still-valid token is served without asking it again.
    store_retry_at: Option<SystemTime>,
}

/// What the lock holder does after reloading.
pub(crate) enum Prepared {
    Serve(SecretString),
    /// Call Cognito with this input; hand the outcome and the time (when the refresh was
    /// decided on) to [`Engine::refreshed`].
    Refresh(Box<RefreshInput>, SystemTime),
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
    /// `refresh_now()`: refreshes even a fresh token.
    Force,
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
}

impl Default for Options {
    fn default() -> Self {
        Self {
            config: SessionConfig::default(),
            listeners: Vec::new(),
            lock_timeout: crate::DEFAULT_LOCK_TIMEOUT,
            refresh_without_lock: false,
        }
    }
}

/// A refreshed session waiting to be saved: handed out only once the save is done.
pub(crate) struct PendingSave {
    next: Session,
    expected: Option<u64>,
    rotated: bool,
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
    Save(PendingSave),
}

/// After a save.
pub(crate) enum Saved {
    /// The answer.
    Done(Result<SecretString, SessionError>),
    /// Another holder saved first: reload the store and call [`Engine::after_conflict`].
    Conflict(PendingSave),
}

pub(crate) struct Engine<T, E> {
    pub(crate) client: Client<T, E>,
    template: RefreshInput,
    state: Mutex<State>,
    options: Options,
}

impl<T, E: Environment> Engine<T, E> {
    /// An engine over what the store held at start (`loaded`).
    pub(crate) fn new(
        client: Client<T, E>,
        template: RefreshInput,
        loaded: Option<Versioned>,
        options: Options,
    ) -> Self {
        let (tokens, store_version) = match loaded {
            Some(stored) => (stored.tokens, Some(stored.version)),
            None => (
                TokenSet::from_refresh_token(
                    template.refresh_token().clone(),
                    template.device_key().cloned(),
                ),
                None,
            ),
        };
        Self {
            client,
            template,
            state: Mutex::new(State {
                session: Session::new(tokens, options.config),
                store_version,
                store_behind: false,
                store_retry_at: None,
            }),
            options,
        }
    }

    pub(crate) fn now(&self) -> SystemTime {
        self.client.environment().wall_clock()
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

    /// The decision at `now`, answered without waiting when it can be.
    pub(crate) fn quick(
        &self,
        now: SystemTime,
    ) -> Result<Result<SecretString, Decision>, SessionError> {
        let state = self.state();
        let session = &state.session;
        match session.decide(now) {
            Decision::Serve => Ok(Ok(current_token(session))),
            // The store failed a moment ago and the token is still good: do not ask it again yet.
            Decision::Refresh { usable: true } if state.store_retry_at.is_some_and(|t| now < t) => {
                Ok(Ok(current_token(session)))
            }
            Decision::SignInRequired => Err(SessionError::SignInRequired(last_error(session))),
            Decision::Unavailable { retry_at } => Err(SessionError::Unavailable {
                error: last_error(session),
                retry_at,
            }),
            refresh => Ok(Err(refresh)),
        }
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
        stored: Option<Versioned>,
        started: Instant,
        serve_usable: bool,
    ) -> Result<LockPoll, StoreError> {
        let seen = stored.as_ref().map(|s| s.version);
        let now = self.now();
        let mut state = self.state();
        if let Some(stored) = stored
            && state.store_version != Some(stored.version)
            && self.adopt_if_newer(&mut state, stored)
        {
            let serve = matches!(state.session.decide(now), Decision::Serve);
            let token = current_token(&state.session);
            drop(state);
            self.emit(SessionEvent::Adopted);
            if serve {
                return Ok(LockPoll::Serve(token));
            }
            state = self.state();
        }
        if serve_usable
            && matches!(
                state.session.decide(now),
                Decision::Serve | Decision::Refresh { usable: true }
            )
        {
            return Ok(LockPoll::Serve(current_token(&state.session)));
        }
        drop(state);
        let waited = self.client.environment().now().duration_since(started);
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
    fn adopt_if_newer(&self, state: &mut State, stored: Versioned) -> bool {
        if state.store_behind {
            // Ours is the only live token; the stored one is dead. Save over it next time.
            state.store_version = Some(stored.version);
            return false;
        }
        let newer = is_newer(&stored.tokens, state.session.tokens());
        state.store_version = Some(stored.version);
        if newer {
            state.session.adopt(stored.tokens);
        }
        newer
    }

    /// The store failed (unreachable, lock held too long, unreadable): serve a still-valid token,
    /// refresh without the lock if the application opted in, or report the failure.
    pub(crate) fn store_failed(
        &self,
        error: StoreError,
        force: bool,
    ) -> Result<Fallback, SessionError> {
        let now = self.now();
        let error = Arc::new(error);
        tracing::warn!(error = %error, "token store failed");
        self.emit(SessionEvent::StoreFailed(error.clone()));
        let mut state = self.state();
        state.store_retry_at = Some(now + STORE_RETRY);
        let usable = matches!(
            state.session.decide(now),
            Decision::Serve | Decision::Refresh { usable: true }
        );
        if usable && !force {
            Ok(Fallback::Serve(current_token(&state.session)))
        } else if self.options.refresh_without_lock
            && !matches!(state.session.decide(now), Decision::SignInRequired)
        {
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
        force: bool,
    ) -> Result<Prepared, SessionError> {
        if let Some(loaded) = loaded {
            match loaded {
                Ok(Some(stored)) => {
                    let mut state = self.state();
                    if self.adopt_if_newer(&mut state, stored) {
                        drop(state);
                        self.emit(SessionEvent::Adopted);
                    }
                }
                Ok(None) => self.state().store_version = None,
                Err(e) => match self.store_failed(e, force)? {
                    Fallback::Serve(token) => return Ok(Prepared::Serve(token)),
                    Fallback::RefreshUnlocked => {}
                },
            }
        }
        let now = self.now();
        let state = self.state();
        let session = &state.session;
        match session.decide(now) {
            Decision::Serve if !force => Ok(Prepared::Serve(current_token(session))),
            Decision::SignInRequired => Err(SessionError::SignInRequired(last_error(session))),
            Decision::Unavailable { retry_at } if !force => Err(SessionError::Unavailable {
                error: last_error(session),
                retry_at,
            }),
            _ => Ok(Prepared::Refresh(
                Box::new(session.refresh_input(&self.template)?),
                now,
            )),
        }
    }

    /// Applies the outcome of a refresh decided on at `started`: a success must be saved (a
    /// compare-and-set on the version loaded) before anything of it is handed out. Its tokens'
    /// lifetime counts from `started`, so the response's latency never lengthens it.
    pub(crate) fn refreshed(
        &self,
        outcome: Result<RefreshOutput, CallError>,
        started: SystemTime,
    ) -> Refreshed {
        let output = match outcome {
            Ok(output) => output,
            Err(error) => return Refreshed::Done(self.failed(error, self.now())),
        };
        let (mut next, expected) = {
            let state = self.state();
            (state.session.clone(), state.store_version)
        };
        let applied = next.apply_success(output, started);
        Refreshed::Save(PendingSave {
            next,
            expected,
            rotated: applied.rotated,
        })
    }

    /// The save of `pending` ended with `result`.
    pub(crate) fn saved(&self, pending: PendingSave, result: Result<u64, StoreError>) -> Saved {
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
        self.emit(SessionEvent::Refreshed {
            expires_at,
            rotated,
        });
        Saved::Done(Ok(token))
    }

    /// After a lost save race: adopt what the winner stored (`stored`, reloaded).
    pub(crate) fn after_conflict(
        &self,
        pending: PendingSave,
        stored: Result<Option<Versioned>, StoreError>,
    ) -> Result<SecretString, SessionError> {
        let now = self.now();
        let token = current_token(&pending.next);
        let mut state = self.state();
        state.session = pending.next;
        state.store_behind = false;
        if let Ok(Some(stored)) = stored
            && self.adopt_if_newer(&mut state, stored)
        {
            let adopted = matches!(state.session.decide(now), Decision::Serve)
                .then(|| current_token(&state.session));
            drop(state);
            self.emit(SessionEvent::Adopted);
            return Ok(adopted.unwrap_or(token));
        }
        Ok(token)
    }

    fn failed(&self, error: CallError, now: SystemTime) -> Result<SecretString, SessionError> {
        let mut state = self.state();
        let decision = state.session.apply_failure(error, now);
        let session = &state.session;
        let error = last_error(session);
        let result = match decision {
            Decision::Serve | Decision::Refresh { usable: true } => Ok(current_token(session)),
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

    /// How long until the next refresh is due (`None` when the session is over).
    pub(crate) fn next_due_in(&self, now: SystemTime) -> Option<Duration> {
        let state = self.state();
        let session = &state.session;
        let until = |at: Option<SystemTime>| {
            at.and_then(|at| at.duration_since(now).ok())
                .unwrap_or(Duration::ZERO)
        };
        match session.decide(now) {
            Decision::SignInRequired => None,
            // Due, but the store failed a moment ago: wait for the store, not in a hot loop.
            Decision::Refresh { .. } => Some(until(state.store_retry_at)),
            Decision::Unavailable { retry_at } => Some(until(Some(retry_at))),
            // Fresh, or backing off after a failure while the token is still valid: sleep
            // until the later of the refresh time and the end of the backoff.
            Decision::Serve => Some(
                until(session.refresh_due_at().max(session.retry_at()))
                    .max(Duration::from_millis(10)),
            ),
        }
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
