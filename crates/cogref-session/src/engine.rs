//! The engine both managers drive: the session behind a mutex and every decision about when to
//! take the store's lock, adopt a set someone else stored, save, and what to do when the store
//! fails, and how a sign-out revokes and marks the lineage. It does no I/O: the managers call
//! the store and Cognito (on a task or a thread) and hand the results in, so one engine serves
//! blocking and async stores alike.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use cogref_core::secrecy::SecretString;
use cogref_core::{
    CallError, Client, Decision, Environment, Now, RefreshInput, RefreshOutput, RevokeInput,
    RevokeOutput, Session, SessionConfig, TokenSet,
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
    /// What the store held when last seen: the version the next save must find
    /// (compare-and-set). `None`: nothing stored.
    store_version: Option<u64>,
    /// The stored version that `session`'s set is (`None`: it is not known to be stored).
    known_version: Option<u64>,
    /// A refresh replaced the set stored at this version (`Some(None)`: the store was empty)
    /// but could not be saved: that version holds older tokens than the session's (after a
    /// rotation, a dead refresh token) and is never adopted back, whatever its writer's clock
    /// stamped on it; any later write is.
    behind_version: Option<Option<u64>>,
    /// When (monotonic) the refresh that obtained `session`'s tokens started, if this process
    /// made it (`None`: the set was loaded or adopted).
    own_refresh: Option<Instant>,
    /// The refresh tokens this process's last rotations replaced (the newest last, a few at
    /// most): a stored set holding one is older than ours, whatever its version says (a save
    /// of ours applied though it reported a failure leaves one under a version we never saw).
    rotated_away: Vec<SecretString>,
    /// The store failed: until then (monotonic), a still-valid token is served without asking
    /// it again.
    store_retry_at: Option<Instant>,
    /// The lineage was signed out (here, or by another holder whose tombstone was found): no
    /// token is handed out and nothing refreshed until a new sign-in is stored.
    signed_out: bool,
    /// The version of a tombstone this manager started over (a new sign-in from the template):
    /// it is the previous session's, not a sign-out of this one.
    started_over: Option<u64>,
    /// The store's change stamp when this manager last read the store, if it gives one.
    seen_stamp: Option<u64>,
    /// Reading the store after its stamp moved failed: not again before then (monotonic).
    look_retry_at: Option<Instant>,
    /// A rotated refresh token that only this process holds: its save failed (with
    /// `behind_version` set). It is saved again, on its own, as soon as the store takes it.
    unsaved: Option<Unsaved>,
}

/// A rotation whose save failed (see [`State::unsaved`]).
struct Unsaved {
    /// When the refresh that obtained it started.
    started: Now,
    /// The refresh token it replaced.
    sent: SecretString,
    /// Calls do not ask for a save again before then (monotonic): a store that keeps failing,
    /// or whose lock another holder keeps, is not asked on every call.
    retry_at: Instant,
    /// When a save of it was last tried (monotonic): at most one a second, whatever asks.
    tried_at: Instant,
}

/// What a set found in the store did to the session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Seen {
    /// Nothing: not newer than ours.
    Nothing,
    /// A later step of the lineage (or a new sign-in), adopted.
    Adopted,
    /// A tombstone: the lineage was signed out.
    SignedOut,
}

/// What the lock holder does after reloading.
pub(crate) enum Prepared {
    Serve(SecretString),
    /// Call Cognito with the plan's input; hand the outcome and the plan to
    /// [`Engine::refreshed`].
    Refresh(Box<Planned>),
    /// A forced refresh must wait for the floor between refreshes: sleep, then prepare again.
    Wait(Duration),
    /// A rotated refresh token whose save failed is saved again, first, under the lock: save
    /// it, hand the result to [`Engine::saved`] as after a refresh, then prepare again (without
    /// another resave) to serve, refresh or fail as the session says.
    Save(Box<PendingSave>),
}

/// A refresh decided on: what to send, when, and what its result replaces.
pub(crate) struct Planned {
    /// The request's input.
    pub(crate) input: RefreshInput,
    /// When the refresh was decided on: the new tokens' lifetime counts from it.
    started: Now,
    /// The session the refresh was decided from; its refresh token is the one sent.
    base: Session,
    /// The stored version seen when it was decided on (under the lock): the version its save
    /// must find. A set that another caller of this manager adopted from the store while the
    /// call ran, or a tombstone (a sign-out, here or elsewhere), is a write the save must not
    /// pass over unseen: it is judged after a conflict.
    expected: Option<u64>,
}

/// What to do after a look at the store while another process holds its lock.
pub(crate) enum LockPoll {
    /// Hand this out: a newer valid set someone else stored (adopted), or, when the caller
    /// allowed it, our own still-valid token while another process refreshes.
    Serve(SecretString),
    /// Held elsewhere: wait, then look again. `seen` is the stored version we looked at.
    Wait { seen: Option<u64> },
    /// No token to give: the store holds a tombstone, the lineage was signed out.
    Fail(SessionError),
}

/// Who asks for a refresh, which decides whether to wait for another process's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ask {
    /// A caller of `access_token()`: a still-valid token will do while another process
    /// refreshes.
    Token,
    /// The background refresher: waits for the new set.
    Background,
    /// `refresh_now()` called at `since`: only tokens from a refresh that started then or
    /// later will do, and never two refreshes within the floor. This process's refreshes are
    /// judged on the monotonic clock (a wall clock stepped back must not make them look older
    /// than the call), a sibling's by its stored wall-clock time.
    Force {
        /// When the caller asked.
        since: Now,
    },
}

impl Ask {
    fn is_force(self) -> bool {
        matches!(self, Ask::Force { .. })
    }

    /// Whether the session's tokens answer this ask.
    fn accepts(self, state: &State) -> bool {
        match self {
            Ask::Force { since } => match state.own_refresh {
                Some(started) => started >= since.mono,
                None => state
                    .session
                    .tokens()
                    .refreshed_at
                    .is_some_and(|at| at >= since.wall),
            },
            Ask::Token | Ask::Background => true,
        }
    }
}

/// What a caller of `access_token()` is told without waiting.
pub(crate) enum Quick {
    /// The cached token.
    Serve(SecretString),
    /// A refresh is due; `usable`: the cached token may be served meanwhile.
    Refresh { usable: bool },
    /// No token now: the error, unless a look at the store finds a newer set.
    Fail(SessionError),
    /// The store's change stamp moved to this since the manager last read it (another holder
    /// saved, perhaps a sign-out): read the store, hand it to [`Engine::looked`], ask again.
    Look(u64),
    /// A rotated refresh token only this process holds is due to be saved again, and there is
    /// no fresh token to serve meanwhile: save it if the store's lock is free at once (see
    /// [`Engine::resave`]), then ask again.
    Resave,
}

/// [`Quick`] before anything is cloned or built: what the session's state says at an instant.
#[derive(Clone, Copy)]
enum Verdict {
    Look(u64),
    SignedOut,
    Serve,
    /// A rotated refresh token this process alone holds is due to be saved again. With a fresh
    /// token (`usable`), the refresh machinery saves it ([`Prepared::Save`]), then serves;
    /// otherwise [`Quick::Resave`].
    Resave {
        usable: bool,
    },
    Refresh {
        usable: bool,
    },
    Fail(Decision),
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
    /// The store's change stamp, read before the builder loaded it.
    pub(crate) stamp: Option<u64>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            config: SessionConfig::default(),
            listeners: Vec::new(),
            lock_timeout: crate::DEFAULT_LOCK_TIMEOUT,
            refresh_without_lock: false,
            signed_in_at: None,
            stamp: None,
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
    /// Reported once the set is stored (a failure's event), so that no listener hears of it
    /// while the store still holds a dead token.
    event: Option<SessionEvent>,
    /// Saves tried so far.
    attempts: u32,
    /// When the refresh that obtained it started.
    started: Now,
    /// The refresh token the refresh sent (dead once it rotated).
    sent: SecretString,
    /// A save tried again after it failed (its refresh's caller was told then): a new failure
    /// is not reported to this caller again, who gets the still-valid token.
    resave: bool,
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

/// How many saves one refresh tries (a store emptied or rolled back while it ran) before it
/// reports the rotated token as not saved.
const SAVE_ATTEMPTS: u32 = 4;

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
    /// Save this again (with its new expected version), then call [`Engine::saved`] again: the
    /// store was emptied (a deleted file, a Redis restarted without its data) or holds an
    /// older set than the one just obtained.
    Retry(Box<PendingSave>),
    /// Another holder saved first: reload the store and call [`Engine::after_conflict`].
    Reload(Box<PendingSave>),
}

pub(crate) struct Engine<T, E> {
    pub(crate) client: Client<T, E>,
    template: RefreshInput,
    state: Mutex<State>,
    options: Options,
    /// The app client and endpoint every stored set must belong to.
    client_id: String,
    endpoint: String,
    /// The end (server clock, seconds; see [`LineageEnd`]) of the lineage whose `EndingSoon`
    /// this manager has seen to (0: none): reported, or found reported by another manager of
    /// the process.
    ending_soon_told: std::sync::atomic::AtomicU64,
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
        let endpoint = endpoint_key(client.endpoint().url());
        let now = fresh_now(&client);
        let mut started_over = None;
        let mut signed_out = false;
        let (tokens, store_version) = match loaded {
            Some(stored) if !stored.tokens.is_signed_out() => {
                check_binding(&stored.tokens, &client_id, &endpoint)?;
                (stored.tokens, Some(stored.version))
            }
            // A tombstone: the previous session was signed out, and this manager is a new
            // sign-in from the template's refresh token. Its first save replaces the tombstone.
            Some(stored) => {
                check_binding(&stored.tokens, &client_id, &endpoint)?;
                // Starting from a token the sign-out revoked (a restart of the program that
                // signed out) is not a new sign-in: the session stays signed out.
                if stored.tokens.revoked(template.refresh_token()) {
                    signed_out = true;
                } else {
                    started_over = Some(stored.version);
                }
                (
                    TokenSet::from_refresh_token(
                        template.refresh_token().clone(),
                        template.device_key().cloned(),
                    )
                    .with_signed_in_at(options.signed_in_at),
                    Some(stored.version),
                )
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
                known_version: store_version.filter(|_| started_over.is_none()),
                behind_version: None,
                own_refresh: None,
                rotated_away: Vec::new(),
                store_retry_at: None,
                signed_out,
                started_over,
                seen_stamp: options.stamp,
                look_retry_at: None,
                unsaved: None,
            }),
            client,
            template,
            options,
            client_id,
            endpoint,
            ending_soon_told: std::sync::atomic::AtomicU64::new(0),
        })
    }

    /// Reports [`SessionEvent::EndingSoon`] once the deadline is near: once per process and
    /// lineage (a new sign-in is a new lineage with its own notice), by the first manager with
    /// listeners to find it near. A manager without listeners tells nobody, so it does not
    /// count.
    pub(crate) fn check_deadline(&self) {
        use std::sync::atomic::Ordering;
        if self.options.listeners.is_empty() {
            return;
        }
        let now = self.now();
        let (deadline, end) = {
            let state = self.state();
            if !state.session.ending_soon(now) {
                return;
            }
            let Some(deadline) = state.session.deadline() else {
                return;
            };
            // Seen to already by this manager: the hot path of a cached token during the
            // notice stops here, before the key is built.
            let Some(end_secs) = LineageEnd::end_secs(&state.session) else {
                return;
            };
            if self.ending_soon_told.swap(end_secs, Ordering::Relaxed) == end_secs {
                return;
            }
            (
                deadline,
                LineageEnd::of(&state.session, &self.client_id, &self.endpoint),
            )
        };
        let Some(end) = end else { return };
        if end.first_in_process(now.wall) {
            tracing::info!(?deadline, "the session's refresh token is about to expire");
            self.emit(SessionEvent::EndingSoon { deadline });
        }
    }

    /// How long until the notice before the deadline begins, if this manager has a notice to
    /// give then (a background refresher wakes for it).
    fn until_notice(&self, session: &Session, now: Now) -> Option<Duration> {
        if self.options.listeners.is_empty() {
            return None;
        }
        let notice = session
            .deadline()?
            .checked_sub(session.config().ending_soon_notice)?;
        notice
            .duration_since(now.wall)
            .ok()
            .filter(|d| !d.is_zero())
    }

    /// When the lineage ends, if the application stated the validity.
    pub(crate) fn deadline(&self) -> Option<std::time::SystemTime> {
        self.state().session.deadline()
    }

    /// Both clocks, read afresh: for every decision that is recorded or waited on.
    pub(crate) fn now(&self) -> Now {
        fresh_now(&self.client)
    }

    /// Both clocks as cheaply as the environment gives them ([`Environment::clocks`]: coarse
    /// or held readings, each up to [`Environment::clocks_lag`] behind its clock), moved on by
    /// that lag: a token served at this instant is still good at the true one, whichever clock
    /// lags. Only to serve a cached token; any other answer is decided again on
    /// [`now`](Self::now). `None` when the lag cannot be added.
    fn cached_now(&self) -> Option<Now> {
        let env = self.client.environment();
        let now = env.clocks();
        let lag = env.clocks_lag();
        Some(Now::new(
            now.wall.checked_add(lag)?,
            now.mono.checked_add(lag)?,
        ))
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

    /// The answer at `now` without waiting, when there is one. `stamp` is the store's change
    /// stamp, read just before: if it moved since this manager last read the store, the store
    /// is read first.
    pub(crate) fn quick(&self, now: Now, stamp: Option<u64>) -> Quick {
        let (quick, notice) = {
            let mut state = self.state();
            let verdict = self.verdict_in(&state, now, stamp);
            if let (Verdict::Resave { .. }, Some(unsaved)) = (verdict, &mut state.unsaved) {
                // Tried once per interval, whatever becomes of this try (the lock may be held).
                unsaved.retry_at = now.after(STORE_RETRY).mono;
            }
            let session = &state.session;
            let quick = match verdict {
                Verdict::Look(stamp) => Quick::Look(stamp),
                Verdict::SignedOut => Quick::Fail(SessionError::SignedOut),
                Verdict::Serve => Quick::Serve(current_token(session)),
                Verdict::Resave { usable: true } => Quick::Refresh { usable: true },
                Verdict::Resave { usable: false } => Quick::Resave,
                Verdict::Refresh { usable } => Quick::Refresh { usable },
                Verdict::Fail(decision) => Quick::Fail(error_of(session, decision)),
            };
            (quick, self.notice_due(&state, now))
        };
        // The notice is due between two refreshes too (they may be an hour apart).
        if notice {
            self.check_deadline();
        }
        quick
    }

    /// The cached token, when [`quick`](Self::quick) at the clocks as cheaply as the
    /// environment gives them ([`cached_now`](Self::cached_now)) would serve it; `None`: ask
    /// `quick` on fresh clocks. The cached path of both managers: nothing but the token is
    /// built or moved, and it comes back in two registers.
    pub(crate) fn cached_token(&self, stamp: Option<u64>) -> Option<SecretString> {
        let now = self.cached_now()?;
        let (token, notice) = {
            let state = self.state();
            let token = match self.verdict_in(&state, now, stamp) {
                Verdict::Serve => Some(current_token(&state.session)),
                _ => None,
            };
            (token, self.notice_due(&state, now))
        };
        if notice {
            self.check_deadline();
        }
        token
    }

    /// Whether the deadline's notice may be due (listeners are told at most once).
    fn notice_due(&self, state: &State, now: Now) -> bool {
        !self.options.listeners.is_empty() && !state.signed_out && state.session.ending_soon(now)
    }

    fn verdict_in(&self, state: &State, now: Now, stamp: Option<u64>) -> Verdict {
        if let Some(stamp) = stamp
            && state.seen_stamp != Some(stamp)
            && state.look_retry_at.is_none_or(|t| now.mono >= t)
        {
            return Verdict::Look(stamp);
        }
        if state.signed_out {
            return Verdict::SignedOut;
        }
        let decision = state.session.decide(now);
        // Whatever the session's state, short of a dead lineage: a failing refresh must not keep
        // the only live refresh token out of the store. Without a fresh token, the save is tried
        // only where it leaves the caller's answer as it is ([`Quick::Resave`]).
        if state.behind_version.is_some()
            && state
                .unsaved
                .as_ref()
                .is_some_and(|u| now.mono >= u.retry_at)
            && decision != Decision::SignInRequired
        {
            return Verdict::Resave {
                usable: decision == Decision::Serve,
            };
        }
        match decision {
            Decision::Serve => Verdict::Serve,
            // The store failed a moment ago and the token is still good: do not ask it again yet.
            Decision::Refresh { usable: true }
                if state.store_retry_at.is_some_and(|t| now.mono < t) =>
            {
                Verdict::Serve
            }
            Decision::Refresh { usable } => Verdict::Refresh { usable },
            decision => Verdict::Fail(decision),
        }
    }

    /// A look at the store by a caller that has no token to give (the session is dead, failing
    /// or held back): adopts a newer set if the store has one. Whether it did.
    pub(crate) fn recheck(&self, loaded: Result<Option<Versioned>, StoreError>) -> bool {
        match self.checked(loaded) {
            Ok(Some(stored)) => self.take(stored),
            Ok(None) => false,
            Err(e) => {
                tracing::debug!(error = %e, "looking at the store for a newer set failed");
                false
            }
        }
    }

    /// Takes a set found in the store ([`Engine::see`]) and tells the listeners what it did.
    /// Whether it changed the session (a set adopted, or a sign-out seen).
    fn take(&self, stored: Versioned) -> bool {
        let now = self.now();
        let mut state = self.state();
        let seen = self.see(&mut state, stored, now);
        drop(state);
        self.tell(seen)
    }

    /// What the store held, read under its lock: a set is taken ([`Engine::take`]), nothing
    /// stored is recorded as such (the next save creates the entry); an unreadable store, or
    /// another client's set, is the caller's to weigh.
    fn take_loaded(&self, loaded: Result<Option<Versioned>, StoreError>) -> Result<(), StoreError> {
        match self.checked(loaded)? {
            Some(stored) => {
                self.take(stored);
            }
            None => self.state().store_version = None,
        }
        Ok(())
    }

    /// The store was read because its change stamp moved to `stamp`: take what it holds (a
    /// sign-out, a newer set). If it could not be read, it is not read again for a second.
    pub(crate) fn looked(&self, loaded: Result<Option<Versioned>, StoreError>, stamp: u64) {
        let now = self.now();
        match self.checked(loaded) {
            Err(e) => {
                tracing::debug!(error = %e, "reading the store after its change stamp moved failed");
                self.state().look_retry_at = Some(now.after(STORE_RETRY).mono);
            }
            Ok(stored) => {
                let mut state = self.state();
                state.seen_stamp = Some(stamp);
                state.look_retry_at = None;
                let seen = match stored {
                    Some(stored) => self.see(&mut state, stored, now),
                    // Emptied (a deleted file, a Redis restarted without its data): not a
                    // sign-out; the next save writes afresh.
                    None => Seen::Nothing,
                };
                drop(state);
                self.tell(seen);
            }
        }
    }

    /// Tells the listeners what a set found in the store did; whether it changed anything.
    fn tell(&self, seen: Seen) -> bool {
        match seen {
            Seen::Nothing => false,
            Seen::Adopted => {
                self.emit(SessionEvent::Adopted);
                self.check_deadline();
                true
            }
            Seen::SignedOut => {
                tracing::info!("the session was signed out by another holder of the store");
                self.emit(SessionEvent::SignedOut);
                true
            }
        }
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
        ask: Ask,
    ) -> Result<LockPoll, StoreError> {
        let stored = self.checked(stored)?;
        let seen_version = stored.as_ref().map(|s| s.version);
        let now = self.now();
        let mut state = self.state();
        let seen = match stored {
            Some(stored) => self.see(&mut state, stored, now),
            None => Seen::Nothing,
        };
        if seen == Seen::SignedOut || state.signed_out {
            drop(state);
            self.tell(seen);
            return Ok(LockPoll::Fail(SessionError::SignedOut));
        }
        if seen == Seen::Adopted {
            let session = &state.session;
            let serve = matches!(session.decide(now), Decision::Serve) && ask.accepts(&state);
            let token = current_token(session);
            drop(state);
            self.emit(SessionEvent::Adopted);
            self.check_deadline();
            if serve {
                return Ok(LockPoll::Serve(token));
            }
            state = self.state();
        }
        if ask == Ask::Token && state.session.is_valid_at(now) {
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
        Ok(LockPoll::Wait { seen: seen_version })
    }

    /// Takes what the store holds: a tombstone signs the session out (unless it is the one
    /// this manager started over); a later step of the lineage than ours (see [`is_newer`]), or
    /// a new sign-in after a sign-out, is adopted. Records the stored version the next save
    /// must find.
    fn see(&self, state: &mut State, stored: Versioned, now: Now) -> Seen {
        state.store_version = Some(stored.version);
        if stored.tokens.is_signed_out() {
            if state.signed_out || state.started_over == Some(stored.version) {
                return Seen::Nothing;
            }
            state.signed_out = true;
            state.known_version = Some(stored.version);
            return Seen::SignedOut;
        }
        if !is_newer(&stored, state) {
            return Seen::Nothing;
        }
        state.known_version = Some(stored.version);
        state.behind_version = None;
        state.unsaved = None;
        state.signed_out = false;
        state.own_refresh = None;
        state.session.adopt(self.bind(stored.tokens), now);
        Seen::Adopted
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
        if usable && !ask.is_force() {
            Ok(Fallback::Serve(current_token(&state.session)))
        } else if self.options.refresh_without_lock && !state.session.requires_sign_in() {
            Ok(Fallback::RefreshUnlocked)
        } else {
            Err(SessionError::Store(error))
        }
    }

    /// [`Quick::Resave`] with the store's lock taken, `loaded` read under it: a newer set or a
    /// tombstone found there is taken (as [`Engine::prepare`] does), else the rotation to save
    /// again ([`Engine::saved`] then takes the result, as after a refresh).
    pub(crate) fn resave(
        &self,
        loaded: Result<Option<Versioned>, StoreError>,
    ) -> Option<Box<PendingSave>> {
        if let Err(e) = self.take_loaded(loaded) {
            self.resave_failed(e);
            return None;
        }
        let now = self.now();
        resave_of(&mut self.state(), now).map(Box::new)
    }

    /// [`Quick::Resave`] could not reach the store: an event; the caller's answer is the
    /// session's, and the next try a second away.
    pub(crate) fn resave_failed(&self, error: StoreError) {
        let error = Arc::new(error);
        tracing::warn!(error = %error, "saving the unsaved rotation again failed");
        self.emit(SessionEvent::StoreFailed(error));
    }

    /// Decides what to do once the lock is held (`loaded` is the store's content, reloaded under
    /// it) or given up on (`None`): adopt a newer set if another process refreshed meanwhile,
    /// then decide again.
    pub(crate) fn prepare(
        &self,
        loaded: Option<Result<Option<Versioned>, StoreError>>,
        ask: Ask,
        may_resave: bool,
    ) -> Result<Prepared, SessionError> {
        let locked = loaded.is_some();
        if let Some(loaded) = loaded
            && let Err(e) = self.take_loaded(loaded)
        {
            match self.store_failed(e, ask)? {
                Fallback::Serve(token) => return Ok(Prepared::Serve(token)),
                Fallback::RefreshUnlocked => {}
            }
        }
        let now = self.now();
        let mut state = self.state();
        if state.signed_out {
            return Err(SessionError::SignedOut);
        }
        // Under the lock, a rotated token only this process holds is saved again first, on top
        // of what the store holds now (a newer set, just adopted, would have cleared it): the
        // refresh that may follow can fail, and the store must not keep a dead token meanwhile.
        if may_resave
            && locked
            && let Some(pending) = resave_of(&mut state, now)
        {
            return Ok(Prepared::Save(Box::new(pending)));
        }
        let session = &state.session;
        let decision = if ask.is_force() {
            session.decide_forced(now)
        } else {
            session.decide(now)
        };
        match decision {
            // A forced refresh takes only tokens refreshed since it was asked for; others wait
            // out the floor and refresh.
            Decision::Serve | Decision::TooSoon { .. }
                if ask.is_force() && !ask.accepts(&state) =>
            {
                let wait = session
                    .until_refresh_allowed(now)
                    .max(Duration::from_millis(1));
                Ok(Prepared::Wait(wait))
            }
            Decision::Serve => Ok(Prepared::Serve(current_token(session))),
            Decision::Refresh { .. } => Ok(Prepared::Refresh(Box::new(Planned {
                input: session.refresh_input(&self.template)?,
                started: now,
                base: session.clone(),
                expected: state.store_version,
            }))),
            decision => Err(error_of(session, decision)),
        }
    }

    /// Applies the outcome of the refresh `planned`: a success, or a failure that carried a
    /// rotated refresh token, must be saved (a compare-and-set on the version loaded when it
    /// was decided on) before anything of it is handed out. The new set builds on the session
    /// it was decided from, whatever another caller adopted meanwhile. The tokens' lifetime
    /// counts from when it was decided on, so the response's latency never lengthens it.
    pub(crate) fn refreshed(
        &self,
        outcome: Result<RefreshOutput, CallError>,
        planned: Planned,
    ) -> Refreshed {
        let Planned {
            started,
            base: mut next,
            expected,
            ..
        } = planned;
        // Signed out while the call ran (here, or a tombstone this manager has seen): whatever
        // it obtained belongs to the revoked lineage and is neither stored nor handed out.
        {
            let mut state = self.state();
            if state.signed_out {
                // Whatever comes next (a new sign-in adopted) waits the floor from this call.
                state.session.refresh_not_applied(started);
                return Refreshed::Done(Err(SessionError::SignedOut));
            }
        }
        let sent = next.tokens().refresh_token.clone();
        match outcome {
            Ok(output) => {
                let applied = next.apply_success(output, started);
                Refreshed::Save(Box::new(PendingSave {
                    next,
                    expected,
                    rotated: applied.rotated,
                    then: None,
                    event: None,
                    attempts: 0,
                    started,
                    sent: sent.clone(),
                    resave: false,
                }))
            }
            Err(error) if error.rotated_refresh_token().is_some() => {
                // Cognito rotated and the answer was unusable: the new refresh token is the
                // lineage now. Store it, then report the failure.
                let now = self.now();
                let decision = next.apply_failure(error, started, now);
                let then = failure_result(&next, decision, now).err();
                let event = Some(failure_event(&next, decision));
                Refreshed::Save(Box::new(PendingSave {
                    next,
                    expected,
                    rotated: true,
                    then,
                    event,
                    attempts: 0,
                    started,
                    sent: sent.clone(),
                    resave: false,
                }))
            }
            Err(error) if error.requires_sign_in() && self.moved_on_from(&sent) => {
                // The refused refresh token is one the session has left: a caller adopted a
                // later step of the lineage (a sibling's set, stored while this call ran). That
                // set is the lineage now, and the refusal says nothing about it.
                tracing::warn!(
                    error = %error,
                    "a refresh token this session had already left was refused; the set adopted meanwhile stays"
                );
                let now = self.now();
                let mut state = self.state();
                // The refusal did not count, the request did: the floor runs from it.
                state.session.refresh_not_applied(started);
                Refreshed::Done(fresh(&state.session, now))
            }
            Err(error) => Refreshed::Done(self.failed(error, started)),
        }
    }

    /// Whether the session no longer holds refresh token `sent` (it adopted another set).
    fn moved_on_from(&self, sent: &SecretString) -> bool {
        use cogref_core::secrecy::ExposeSecret;
        self.state().session.tokens().refresh_token.expose_secret() != sent.expose_secret()
    }

    /// The save of `pending` ended with `result`.
    pub(crate) fn saved(
        &self,
        mut pending: Box<PendingSave>,
        result: Result<u64, StoreError>,
    ) -> Saved {
        pending.attempts += 1;
        match result {
            Ok(version) => {
                {
                    let mut state = self.state();
                    state.session = pending.next.clone();
                    state.own_refresh = Some(pending.started.mono);
                    remember_rotation(&mut state, &pending);
                    state.store_version = Some(version);
                    state.known_version = Some(version);
                    state.behind_version = None;
                    state.unsaved = None;
                }
                Saved::Done(self.stored(*pending))
            }
            Err(StoreError::Conflict {
                expected: Some(_),
                found: None,
            }) if pending.attempts < SAVE_ATTEMPTS => {
                // Nothing is stored any more: no one won a race, the store lost its data. The
                // new set is the only live one; write it as a new entry.
                tracing::warn!(
                    "the token store was emptied while a refresh ran; storing the new set afresh"
                );
                pending.expected = None;
                Saved::Retry(pending)
            }
            Err(StoreError::Conflict { expected, found }) if pending.attempts < SAVE_ATTEMPTS => {
                tracing::warn!(
                    ?expected,
                    ?found,
                    "the store changed while this refresh ran; looking at what it holds"
                );
                Saved::Reload(pending)
            }
            Err(e) => Saved::Done(self.not_saved(*pending, e)),
        }
    }

    /// After a lost compare-and-set, `stored` is what the store holds now: adopt the winner's
    /// set if it is a later step than ours, write ours afresh if the store is empty, or write
    /// ours over an older set.
    pub(crate) fn after_conflict(
        &self,
        mut pending: Box<PendingSave>,
        stored: Result<Option<Versioned>, StoreError>,
    ) -> Saved {
        let stored = match self.checked(stored) {
            Ok(Some(stored)) => stored,
            Ok(None) => {
                pending.expected = None;
                return Saved::Retry(pending);
            }
            Err(e) => return Saved::Done(self.not_saved(*pending, e)),
        };
        let now = self.now();
        let mut state = self.state();
        // A tombstone this refresh did not start over: signed out while it ran (by this
        // manager or another holder). Its tokens belong to the revoked lineage and stay
        // unwritten, whether or not this manager had heard of the sign-out yet.
        if stored.tokens.is_signed_out() && state.started_over != Some(stored.version) {
            let seen = self.see(&mut state, stored, now);
            // A new sign-in adopted later waits the floor from this refresh.
            state.session.refresh_not_applied(pending.started);
            drop(state);
            self.tell(seen);
            return Saved::Done(Err(SessionError::SignedOut));
        }
        // Ours is the session now, and not stored.
        state.session = pending.next.clone();
        state.own_refresh = Some(pending.started.mono);
        remember_rotation(&mut state, &pending);
        state.known_version = None;
        state.behind_version = None;
        state.unsaved = None;
        let version = stored.version;
        match self.see(&mut state, stored, now) {
            Seen::Nothing => {
                // The store holds an older set than ours (written back, or a race that lost to
                // ours at Cognito): ours goes over it.
                drop(state);
                pending.expected = Some(version);
                return Saved::Retry(pending);
            }
            // Signed out while this refresh ran: its tokens belong to the revoked lineage and
            // stay unwritten.
            Seen::SignedOut => {
                state.session.refresh_not_applied(pending.started);
                drop(state);
                self.tell(Seen::SignedOut);
                return Saved::Done(Err(SessionError::SignedOut));
            }
            Seen::Adopted => {}
        }
        // Another holder's newer set is the lineage now; ours stays unwritten.
        let adopted = state.session.clone();
        drop(state);
        self.emit(SessionEvent::Adopted);
        self.check_deadline();
        if let Some(event) = pending.event.take() {
            self.emit(event);
        }
        if adopted.is_valid_at(now) && adopted.tokens().access_token.is_some() {
            return Saved::Done(Ok(current_token(&adopted)));
        }
        Saved::Done(match pending.then {
            Some(error) => Err(error),
            None => fresh(&pending.next, now),
        })
    }

    /// The set of `pending` is stored: tell the listeners, then the caller.
    fn stored(&self, pending: PendingSave) -> Result<SecretString, SessionError> {
        match pending.event {
            Some(event) => self.emit(event),
            // Told only here, once stored: a resave that lost to a newer set stored nothing.
            None if pending.resave => self.emit(SessionEvent::Stored),
            None => self.emit(SessionEvent::Refreshed {
                expires_at: pending.next.tokens().expires_at,
                rotated: pending.rotated,
            }),
        }
        self.check_deadline();
        match pending.then {
            Some(error) => Err(error),
            None => fresh(&pending.next, self.now()),
        }
    }

    /// The set of `pending` could not be stored: it stays in memory (the only live token, if
    /// it rotated), and the stored set it replaced is never adopted back.
    fn not_saved(
        &self,
        pending: PendingSave,
        error: StoreError,
    ) -> Result<SecretString, SessionError> {
        let error = Arc::new(error);
        {
            let mut state = self.state();
            state.session = pending.next.clone();
            state.own_refresh = Some(pending.started.mono);
            remember_rotation(&mut state, &pending);
            // The stored set is the one this refresh replaced, older than ours even when the
            // refresh token did not rotate: after a wall clock stepped back its times can look
            // later than ours, and adopting it would hand out an expired access token.
            state.behind_version = Some(pending.expected.or(state.store_version));
            state.known_version = None;
            // The live refresh token is in memory only (this rotation's, or an earlier one
            // still unsaved): save it again once the store takes it.
            let now = self.now();
            let retry_at = now.after(STORE_RETRY).mono;
            if pending.rotated {
                // This rotation's token is the live one (a resave carries the same).
                state.unsaved = Some(Unsaved {
                    started: pending.started,
                    sent: pending.sent.clone(),
                    retry_at,
                    tried_at: now.mono,
                });
            } else if let Some(unsaved) = state.unsaved.as_mut() {
                unsaved.retry_at = retry_at;
            }
        }
        tracing::warn!(error = %error, rotated = pending.rotated, "saving refreshed tokens failed");
        self.emit(SessionEvent::StoreFailed(error.clone()));
        if pending.resave {
            // Its caller was told when the rotation's first save failed; the token is good.
            return fresh(&pending.next, self.now());
        }
        if let Some(event) = pending.event {
            self.emit(event);
        }
        if pending.rotated {
            return Err(SessionError::RotatedTokenNotSaved(error));
        }
        match pending.then {
            Some(error) => Err(error),
            None => fresh(&pending.next, self.now()),
        }
    }

    fn failed(&self, error: CallError, started: Now) -> Result<SecretString, SessionError> {
        let now = self.now();
        let mut state = self.state();
        let decision = state.session.apply_failure(error, started, now);
        let result = failure_result(&state.session, decision, now);
        let event = failure_event(&state.session, decision);
        drop(state);
        self.emit(event);
        result
    }

    /// The answer for a forced refresh asked for at `since`, if the session's tokens come
    /// from a refresh that started after then (this process's, by the monotonic clock, or a
    /// sibling's, by its stored wall-clock time).
    pub(crate) fn refreshed_since(
        &self,
        since: Now,
        now: Now,
    ) -> Option<Result<SecretString, SessionError>> {
        let state = self.state();
        let session = &state.session;
        let after = match state.own_refresh {
            Some(started) => started > since.mono,
            None => session
                .tokens()
                .refreshed_at
                .is_some_and(|at| at > since.wall),
        };
        if session.requires_sign_in() || !after {
            return None;
        }
        Some(fresh(session, now))
    }

    /// What `refresh_now()` called at `since` answers, given what its refresh steps gave: a
    /// token only if it comes from a refresh that started then or later. A failed refresh
    /// leaves the older token in place (still served by `access_token()`), but handing it to
    /// the caller who asked for a new one, typically because an API had just refused it,
    /// would say the refresh happened: the refresh's error is the answer.
    pub(crate) fn forced_answer(
        &self,
        since: Now,
        result: Result<SecretString, SessionError>,
    ) -> Result<SecretString, SessionError> {
        let Ok(_) = &result else {
            return result;
        };
        let state = self.state();
        if (Ask::Force { since }).accepts(&state) {
            return result;
        }
        let session = &state.session;
        let decision = if session.requires_sign_in() {
            Decision::SignInRequired
        } else {
            Decision::Unavailable {
                retry_at: session.retry_at().unwrap_or(since.wall),
            }
        };
        Err(error_of(session, decision))
    }

    /// How long a forced refresh must wait for the floor between refreshes.
    pub(crate) fn until_refresh_allowed(&self, now: Now) -> Duration {
        self.state().session.until_refresh_allowed(now)
    }

    /// How long until the next refresh is due (`None` when the session is over).
    pub(crate) fn next_due_in(&self, now: Now) -> Option<Duration> {
        self.check_deadline();
        let state = self.state();
        if state.signed_out {
            return None;
        }
        let mut wait = state.session.next_refresh_in(now)?;
        // A rotated token only this process holds: wake to save it again.
        if let Some(unsaved) = state
            .unsaved
            .as_ref()
            .filter(|_| state.behind_version.is_some())
        {
            wait = wait.min(unsaved.retry_at.saturating_duration_since(now.mono));
        }
        // Wake for the deadline's notice, which may fall between two refreshes.
        if let Some(notice) = self.until_notice(&state.session, now) {
            wait = wait.min(notice);
        }
        // Due, but the store failed a moment ago: wait for the store, not in a hot loop.
        let store = state
            .store_retry_at
            .map_or(Duration::ZERO, |t| t.saturating_duration_since(now.mono));
        Some(wait.max(store))
    }
}

/// What a sign-out does once it has read the store.
pub(crate) enum SignOut {
    /// Nothing left to do: the lineage is signed out already (here, or by another holder whose
    /// tombstone is stored).
    Done,
    /// Revoke this (the newest refresh token known), then hand the outcome to
    /// [`Engine::revoked`].
    Revoke(Box<RevokeInput>),
}

/// The tombstone a successful revocation leaves to save.
pub(crate) struct PendingTombstone {
    tokens: TokenSet,
    expected: Option<u64>,
    attempts: u32,
}

impl PendingTombstone {
    /// What to save.
    pub(crate) fn tokens(&self) -> &TokenSet {
        &self.tokens
    }

    /// The version the save must find (compare-and-set).
    pub(crate) fn expected(&self) -> Option<u64> {
        self.expected
    }
}

/// After a save of the tombstone.
pub(crate) enum TombstoneSaved {
    /// The answer of `sign_out()`.
    Done(Result<(), SessionError>),
    /// Save it again, with its new expected version, then call [`Engine::tombstone_saved`].
    Retry(Box<PendingTombstone>),
    /// Someone saved meanwhile: reload, then call [`Engine::tombstone_after_conflict`].
    Reload(Box<PendingTombstone>),
}

impl<T, E: Environment> Engine<T, E> {
    /// Decides a sign-out from what the store holds (`loaded`, read under its lock when it could
    /// be taken): a newer set is adopted first, so that the newest refresh token is the one
    /// revoked; a tombstone means the work is done.
    pub(crate) fn prepare_sign_out(
        &self,
        loaded: Result<Option<Versioned>, StoreError>,
    ) -> Result<SignOut, SessionError> {
        match self.take_loaded(loaded) {
            Ok(()) => {}
            // Another app client's session: not this manager's to touch.
            Err(e @ StoreError::OtherClient { .. }) => return Err(e.into()),
            // Revoking matters more than the mark: go on with the token this manager holds.
            Err(e) => {
                tracing::warn!(error = %e, "reading the store before signing out failed; revoking the refresh token this manager holds");
            }
        }
        let state = self.state();
        if state.signed_out {
            return Ok(SignOut::Done);
        }
        let input = RevokeInput::builder()
            .token(state.session.tokens().refresh_token.clone())
            .client_id(self.client_id.clone())
            .set_client_secret(self.template.client_secret().cloned())
            .build()?;
        Ok(SignOut::Revoke(Box::new(input)))
    }

    /// The revocation ended: on success this manager is signed out and the tombstone is to be
    /// saved over the version last seen; on failure nothing changed, here or in the store.
    pub(crate) fn revoked(
        &self,
        outcome: Result<RevokeOutput, CallError>,
    ) -> Result<Box<PendingTombstone>, SessionError> {
        match outcome {
            Ok(_) => {
                let now = self.now();
                let mut state = self.state();
                state.signed_out = true;
                tracing::info!("the session's refresh token was revoked");
                // Every token of the family this manager knows is dead now: the one revoked
                // (or the session's newer one), those it rotated from, the template's.
                let mut revoked: Vec<u64> = std::iter::once(&state.session.tokens().refresh_token)
                    .chain(state.rotated_away.iter())
                    .chain(std::iter::once(self.template.refresh_token()))
                    .map(cogref_core::session::refresh_token_fingerprint)
                    .collect();
                revoked.sort_unstable();
                revoked.dedup();
                Ok(Box::new(PendingTombstone {
                    tokens: self.bind(TokenSet::signed_out(now.wall).with_revoked(revoked)),
                    expected: state.store_version,
                    attempts: 0,
                }))
            }
            Err(error) => {
                tracing::warn!(error = %error, "revoking the refresh token failed; the session goes on");
                Err(SessionError::SignOutFailed(Arc::new(error)))
            }
        }
    }

    /// The save of the tombstone ended with `result`.
    pub(crate) fn tombstone_saved(
        &self,
        mut pending: Box<PendingTombstone>,
        result: Result<u64, StoreError>,
    ) -> TombstoneSaved {
        pending.attempts += 1;
        match result {
            Ok(version) => {
                {
                    let mut state = self.state();
                    state.store_version = Some(version);
                    state.known_version = Some(version);
                }
                self.signed_out_here();
                TombstoneSaved::Done(Ok(()))
            }
            Err(StoreError::Conflict { found: None, .. }) if pending.attempts < SAVE_ATTEMPTS => {
                pending.expected = None;
                TombstoneSaved::Retry(pending)
            }
            Err(StoreError::Conflict { .. }) if pending.attempts < SAVE_ATTEMPTS => {
                TombstoneSaved::Reload(pending)
            }
            Err(e) => {
                tracing::warn!(error = %e, "the sign-out could not be recorded in the store");
                self.signed_out_here();
                TombstoneSaved::Done(Err(SessionError::SignOutNotStored(Arc::new(e))))
            }
        }
    }

    /// After a lost compare-and-set of the tombstone, `stored` is what the store holds now: a
    /// tombstone (another holder signed out too) ends it; anything else is a later step of the
    /// revoked lineage and the tombstone goes over it.
    pub(crate) fn tombstone_after_conflict(
        &self,
        mut pending: Box<PendingTombstone>,
        stored: Result<Option<Versioned>, StoreError>,
    ) -> TombstoneSaved {
        match self.checked(stored) {
            Ok(Some(stored)) if stored.tokens.is_signed_out() => {
                {
                    let mut state = self.state();
                    state.store_version = Some(stored.version);
                    state.known_version = Some(stored.version);
                }
                self.signed_out_here();
                TombstoneSaved::Done(Ok(()))
            }
            Ok(stored) => {
                pending.expected = stored.map(|s| s.version);
                TombstoneSaved::Retry(pending)
            }
            Err(e) => {
                self.signed_out_here();
                TombstoneSaved::Done(Err(SessionError::SignOutNotStored(Arc::new(e))))
            }
        }
    }

    fn signed_out_here(&self) {
        self.emit(SessionEvent::SignedOut);
    }

    /// How long a sign-out waits for a lock another holder has, before going on without it.
    pub(crate) fn sign_out_lock_wait_over(&self, started: Instant) -> bool {
        self.now().mono.saturating_duration_since(started) >= self.options.lock_timeout
    }

    /// The stored version last seen, for waiting on the store.
    pub(crate) fn store_version(&self) -> Option<u64> {
        self.state().store_version
    }
}

/// Both of `client`'s clocks, each read afresh (not [`Environment::clocks`], which may hold one).
fn fresh_now<T, E: Environment>(client: &Client<T, E>) -> Now {
    let env = client.environment();
    Now::new(env.wall_clock(), env.now())
}

/// A stored set must belong to this app client and endpoint (a set without a binding was
/// written before cogref recorded one, and is taken as ours).
fn check_binding(tokens: &TokenSet, client_id: &str, endpoint: &str) -> Result<(), StoreError> {
    let other_client = tokens.client_id.as_deref().is_some_and(|c| c != client_id);
    let other_endpoint = tokens
        .endpoint
        .as_deref()
        .is_some_and(|e| endpoint_key(e) != endpoint);
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

/// Whether a stored set is a later step of the lineage than the session's.
///
/// The store's version decides when it can: a version above the one the session's set was
/// stored as is a later write (a sibling rotated, or the user signed in again), and one below
/// it is an older set written back (a restored backup) and never adopted. Without a known
/// version (the session's set was never stored, or its save failed), a different refresh token
/// counts as later unless it was refreshed before ours, and the same one if its tokens expire
/// or were refreshed later. The version a failed save left behind holds older tokens than ours
/// (after a rotation, a dead refresh token) and is never adopted.
fn is_newer(stored: &Versioned, state: &State) -> bool {
    if state.behind_version == Some(Some(stored.version)) {
        return false;
    }
    let ours = state.session.tokens();
    let theirs = &stored.tokens;
    let later = theirs.expires_at > ours.expires_at || theirs.refreshed_at > ours.refreshed_at;
    // Our own set stored again (a save that was applied though it reported a failure): nothing
    // newer, and adopting it would trade our monotonic expiry for one read off the wall clock.
    if theirs.same_refresh_token(ours) && same_access_token(theirs, ours) {
        return false;
    }
    // A set holding a refresh token we rotated away from is older than ours.
    {
        use cogref_core::secrecy::ExposeSecret;
        let stored_token = theirs.refresh_token.expose_secret();
        if state
            .rotated_away
            .iter()
            .any(|t| t.expose_secret() == stored_token)
        {
            return false;
        }
    }
    // Our rotation's save failed on top of the set at `behind` (or of an empty store): any
    // later write is newer (it may well descend from ours, if the save was applied after all),
    // whatever the clocks of its writer and ours say.
    if state
        .behind_version
        .is_some_and(|behind| behind.is_none_or(|behind| stored.version > behind))
    {
        return true;
    }
    if theirs.same_refresh_token(ours) {
        // Newer access and ID tokens on the same refresh token (rotation off): a later write
        // holds them even when its writer's clock, behind the one that wrote ours, stamped
        // them with earlier times.
        return match state.known_version {
            Some(known) => stored.version > known || (stored.version == known && later),
            None => later,
        };
    }
    match state.known_version {
        Some(known) if stored.version > known => true,
        Some(known) if stored.version < known => false,
        _ => match (theirs.refreshed_at, ours.refreshed_at) {
            (Some(theirs), Some(ours)) => theirs >= ours,
            _ => true,
        },
    }
}

/// The save again of a rotated refresh token only this process holds, on top of what the store
/// holds now (`store_version`, just loaded under the lock): `None` if there is none, or the
/// lineage is dead or signed out. The next try is a second away, whatever becomes of this one.
fn resave_of(state: &mut State, now: Now) -> Option<PendingSave> {
    if state.signed_out
        || state.behind_version.is_none()
        || state.session.decide(now) == Decision::SignInRequired
    {
        return None;
    }
    let unsaved = state.unsaved.as_mut()?;
    if now.mono < unsaved.tried_at + STORE_RETRY {
        return None;
    }
    unsaved.tried_at = now.mono;
    unsaved.retry_at = now.after(STORE_RETRY).mono;
    let (started, sent) = (unsaved.started, unsaved.sent.clone());
    Some(PendingSave {
        next: state.session.clone(),
        expected: state.store_version,
        rotated: true,
        then: None,
        event: None,
        attempts: 0,
        started,
        sent,
        resave: true,
    })
}

/// Records the refresh token `pending`'s rotation replaced.
fn remember_rotation(state: &mut State, pending: &PendingSave) {
    use cogref_core::secrecy::ExposeSecret;
    if !pending.rotated
        || state
            .rotated_away
            .last()
            .is_some_and(|t| t.expose_secret() == pending.sent.expose_secret())
    {
        return;
    }
    if state.rotated_away.len() >= 8 {
        state.rotated_away.remove(0);
    }
    state.rotated_away.push(pending.sent.clone());
}

fn same_access_token(a: &TokenSet, b: &TokenSet) -> bool {
    use cogref_core::secrecy::ExposeSecret;
    match (&a.access_token, &b.access_token) {
        (Some(a), Some(b)) => a.expose_secret() == b.expose_secret(),
        _ => false,
    }
}

/// `session`'s token if it is valid at `now`: tokens that expire as they arrive are never
/// handed out.
fn fresh(session: &Session, now: Now) -> Result<SecretString, SessionError> {
    if session.is_valid_at(now) {
        return Ok(current_token(session));
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

/// The event that reports a failed refresh that left the session at `decision`.
fn failure_event(session: &Session, decision: Decision) -> SessionEvent {
    let error = last_error(session);
    match decision {
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
    }
}

/// An endpoint URL as a set's binding records it: scheme and host in lower case, a default port
/// dropped, no trailing slash, so one endpoint spelt two ways is one endpoint.
fn endpoint_key(url: &str) -> String {
    let Ok(uri) = url.parse::<cogref_core::http::Uri>() else {
        return url.trim_end_matches('/').to_ascii_lowercase();
    };
    let scheme = uri.scheme_str().unwrap_or("https").to_ascii_lowercase();
    let host = uri.host().unwrap_or_default().to_ascii_lowercase();
    let port = match (scheme.as_str(), uri.port_u16()) {
        ("https", Some(443)) | ("http", Some(80)) | (_, None) => String::new(),
        (_, Some(port)) => format!(":{port}"),
    };
    let path = uri.path().trim_end_matches('/');
    format!("{scheme}://{host}{port}{path}")
}

/// A lineage's end, as every manager of the process that shares it computes it: the app client,
/// the endpoint, the sign-in time plus the validity (the server's clock, whole seconds, so not
/// moved by this process's skew estimate) and, when the access token says, the authentication
/// it descends from (`origin_jti`, else the user, `sub`).
#[derive(Clone, PartialEq, Eq, Hash)]
struct LineageEnd {
    client_id: String,
    endpoint: String,
    end_secs: u64,
    origin: Option<String>,
}

/// The lineages whose `EndingSoon` was reported in this process.
static ENDING_SOON_TOLD: Mutex<Vec<LineageEnd>> = Mutex::new(Vec::new());

impl LineageEnd {
    /// Sign-in plus validity on the server's clock, in seconds (at least 1).
    fn end_secs(session: &Session) -> Option<u64> {
        let tokens = session.tokens();
        let validity = session
            .config()
            .refresh_token_validity
            .or(tokens.refresh_token_validity)?
            .min(cogref_core::session::MAX_REFRESH_TOKEN_VALIDITY);
        let end = tokens.signed_in_at?.checked_add(validity)?;
        Some(
            end.duration_since(std::time::UNIX_EPOCH)
                .ok()?
                .as_secs()
                .max(1),
        )
    }

    fn of(session: &Session, client_id: &str, endpoint: &str) -> Option<Self> {
        use cogref_core::secrecy::ExposeSecret;
        let tokens = session.tokens();
        let end_secs = Self::end_secs(session)?;
        let origin = tokens
            .access_token
            .as_ref()
            .and_then(|t| cogref_core::jwt::decode_claims(t.expose_secret()).ok())
            .and_then(|c| c.origin_jti.or(c.sub));
        Some(Self {
            client_id: client_id.to_owned(),
            endpoint: endpoint.to_owned(),
            end_secs,
            origin,
        })
    }

    /// Records the lineage as told in this process; whether it was not yet. Lineages that
    /// ended more than a day before `now` are forgotten (the record stays small).
    fn first_in_process(self, now: std::time::SystemTime) -> bool {
        let now_secs = now
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let mut told = ENDING_SOON_TOLD.lock().unwrap_or_else(|p| p.into_inner());
        if told.contains(&self) {
            return false;
        }
        told.retain(|t| t.end_secs.saturating_add(86_400) >= now_secs);
        told.push(self);
        true
    }
}
