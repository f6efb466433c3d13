//! The token session: one refresh-token lineage as a sans-IO state machine.
//!
//! A [`Session`] holds the current [`TokenSet`] and answers, for an instant the caller passes
//! in ([`Now`]: a wall-clock and a monotonic reading), what to do: serve the access token,
//! refresh (ahead of expiry or because it has expired), report that tokens are unavailable for
//! now, or report that the user must sign in again. The caller performs the refresh and hands
//! back the outcome; the session applies it:
//!
//! - success: the new access and ID tokens are adopted; a rotated refresh token replaces the old
//!   one, and when none came back the old one is kept; a confirmed device key is kept, a new one
//!   from `NewDeviceMetadata` adopted;
//! - a dead refresh token ([`Error::requires_sign_in`](crate::Error::requires_sign_in):
//!   `RefreshTokenReuseException`, `UserNotFoundException`, a `NotAuthorizedException` whose
//!   message says the token is revoked, expired or invalid): the session moves to "sign-in
//!   required", and every later decision says so without another call until a set is
//!   [adopted](Session::adopt);
//! - any other failure (a `NotAuthorizedException` about the client secret or with a message
//!   cogref does not know among them): the access token is served while it is still valid;
//!   refreshes are retried with exponential backoff; callers see the failure only once the token
//!   has expired. A failure that carries a rotated refresh token
//!   ([`Error::rotated_refresh_token`](crate::Error::rotated_refresh_token)) still replaces the
//!   refresh token: the one sent is dead.
//!
//! # Expiry, clock steps and clock skew
//!
//! Refreshing starts [`SessionConfig::refresh_margin`] before expiry, never more than half the
//! token's lifetime. The local expiry is the time the request was sent plus the token's own
//! lifetime, `exp − iat` from its claims (falling back to `ExpiresIn`), less one second: that is
//! `exp` corrected by the skew `iat − now`, as Amplify computes it, so a local clock minutes or
//! hours off does not make a fresh token look expired or an expired one fresh. Counting from the
//! send time and taking off the second that `iat` rounds away keep the local expiry at or before
//! the real one whatever the response's latency. The skew is kept for inspection
//! ([`Session::clock_skew_secs`]).
//!
//! The expiry is held on both clocks: the wall clock (what is stored and shared with other
//! processes) and the monotonic clock (which no one can step). A token is valid only while
//! *both* say so, and a refresh is due as soon as *either* says so, so a step of the wall clock
//! in either direction can make a token expire early but never extends it. A set loaded from a
//! store is anchored on the monotonic clock when it is adopted, its remaining life capped at its
//! lifetime.
//!
//! # No refresh storms
//!
//! Two refreshes of one lineage start at least [`SessionConfig::min_refresh_interval`] apart
//! (default 1 s), whatever the caller asks, failures included. When a refresh returns tokens
//! that are due as soon as they arrive (`ExpiresIn: 0`, `exp − iat` of a second, a margin at
//! least the lifetime), the interval doubles with each such refresh, up to
//! [`SessionConfig::failure_backoff_max`]; a caller that finds no valid token meanwhile gets
//! [`Decision::TooSoon`]. So over a span `T`, a session makes at most
//! `1 + T / max(min_refresh_interval, lifetime − margin)` calls plus one per failure (see
//! [`Session::next_refresh_in`]).

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use secrecy::{ExposeSecret, SecretString};

pub mod jwt;
pub mod utc;

use crate::call::CallError;
use crate::ops::refresh::{RefreshInput, RefreshOutput};
use crate::ops::shapes::InvalidInput;
use jwt::decode_claims;

/// The longest lifetime a session believes: ten years. Cognito's tokens live a day at most;
/// the bound keeps every time a session computes (and every store's copy of it) in range.
pub const MAX_LIFETIME: Duration = Duration::from_secs(10 * 365 * 24 * 3600);

/// The longest refresh-token validity an app client can have (Cognito's maximum, 3,650 days).
/// A longer one stated to a session (`Duration::MAX` for "never") is taken as this: the
/// deadline, and every store's copy of the validity, stay in range.
pub const MAX_REFRESH_TOKEN_VALIDITY: Duration = Duration::from_secs(3650 * 24 * 3600);

/// The largest clock skew a session believes, either way: ten years. A `Date` header or an
/// `iat` further from the local clock than that (a server or proxy with a dead clock battery)
/// says nothing about Cognito's clock and is not used.
pub const MAX_CLOCK_SKEW: Duration = MAX_LIFETIME;

/// How a session schedules refreshes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionConfig {
    /// Refresh this long before the access token expires (capped at half its lifetime).
    /// Default 5 minutes.
    pub refresh_margin: Duration,
    /// Wait after the first failed refresh; doubled after each further failure. Default 1 s.
    pub failure_backoff_min: Duration,
    /// Longest wait between failed refreshes, and the cap of the refresh interval when tokens
    /// come back already due. Default 60 s.
    pub failure_backoff_max: Duration,
    /// The least time between the starts of two refreshes of the lineage, whatever asks for
    /// them. Default 1 s; doubled while each refresh returns tokens that are already due.
    pub min_refresh_interval: Duration,
    /// The app client's refresh-token validity, if the application states it: the lineage ends
    /// this long after sign-in whatever rotation does ([`Session::deadline`]). Default `None`.
    pub refresh_token_validity: Option<Duration>,
    /// How long before the deadline the session counts as ending soon
    /// ([`Session::ending_soon`]). Default 1 day.
    pub ending_soon_notice: Duration,
}

impl Default for SessionConfig {
    fn default() -> Self {
        Self {
            refresh_margin: Duration::from_secs(300),
            failure_backoff_min: Duration::from_secs(1),
            failure_backoff_max: Duration::from_secs(60),
            min_refresh_interval: Duration::from_secs(1),
            refresh_token_validity: None,
            ending_soon_notice: Duration::from_secs(24 * 3600),
        }
    }
}

/// A reading of both clocks at one moment: the wall clock (absolute times, shared with other
/// processes through a store) and the monotonic clock (durations no one can step).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Now {
    /// The wall clock, `SystemTime::now()` on a normal platform.
    pub wall: SystemTime,
    /// The monotonic clock, `Instant::now()` on a normal platform.
    pub mono: Instant,
}

impl Now {
    /// A reading of both clocks.
    pub fn new(wall: SystemTime, mono: Instant) -> Self {
        Self { wall, mono }
    }

    /// This reading moved forward by `by` on both clocks (saturating far in the future).
    pub fn after(self, by: Duration) -> Moment {
        Moment {
            wall: self
                .wall
                .checked_add(by)
                .unwrap_or_else(|| far_after_wall(self.wall)),
            mono: self
                .mono
                .checked_add(by)
                .unwrap_or_else(|| far_after_mono(self.mono)),
        }
    }
}

/// A moment held on both clocks (see [`Now`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Moment {
    /// The moment by the wall clock.
    pub wall: SystemTime,
    /// The moment by the monotonic clock.
    pub mono: Instant,
}

impl Moment {
    /// Whether either clock has reached this moment: for deadlines that must never move later.
    pub fn reached_by_either(self, now: Now) -> bool {
        now.wall >= self.wall || now.mono >= self.mono
    }

    /// Whether the monotonic clock has reached this moment: for waits, which a step of the
    /// wall clock should neither cut short nor stretch.
    pub fn elapsed_at(self, now: Now) -> bool {
        now.mono >= self.mono
    }

    /// Time until either clock reaches this moment (zero if one has).
    pub fn until_either(self, now: Now) -> Duration {
        let wall = self.wall.duration_since(now.wall).unwrap_or(Duration::ZERO);
        wall.min(self.mono.saturating_duration_since(now.mono))
    }

    /// Time until the monotonic clock reaches this moment.
    pub fn until_elapsed(self, now: Now) -> Duration {
        self.mono.saturating_duration_since(now.mono)
    }

    /// This moment `by` earlier on both clocks (saturating at `not_before`'s clocks).
    fn earlier_by(self, by: Duration) -> Moment {
        Moment {
            wall: self.wall.checked_sub(by).unwrap_or(UNIX_EPOCH),
            mono: self.mono.checked_sub(by).unwrap_or(self.mono),
        }
    }
}

// A century: far enough to be "never" for a token, near enough not to overflow a clock.
const FAR: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

fn far_after_wall(t: SystemTime) -> SystemTime {
    t.checked_add(FAR).unwrap_or(t)
}

fn far_after_mono(t: Instant) -> Instant {
    t.checked_add(FAR).unwrap_or(t)
}

/// `ns` nanoseconds as a duration (saturating at the longest one).
fn nanos_duration(ns: u128) -> Duration {
    const PER_SEC: u128 = 1_000_000_000;
    match u64::try_from(ns / PER_SEC) {
        Ok(secs) => Duration::new(secs, u32::try_from(ns % PER_SEC).unwrap_or(0)),
        Err(_) => Duration::MAX,
    }
}

/// The tokens of one session. `Debug` redacts every secret.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct TokenSet {
    /// The refresh token to send next.
    pub refresh_token: SecretString,
    /// The current access token, if one has been obtained.
    pub access_token: Option<SecretString>,
    /// The current ID token.
    pub id_token: Option<SecretString>,
    /// The confirmed device key to send with every refresh.
    pub device_key: Option<SecretString>,
    /// When the access and ID tokens expire, by the wall clock of the process that obtained
    /// them.
    pub expires_at: Option<SystemTime>,
    /// Their lifetime counted locally: from the request's sending to `expires_at`.
    pub lifetime: Option<Duration>,
    /// When the refresh that obtained these tokens started, by the same wall clock: the
    /// lineage's next refresh waits [`SessionConfig::min_refresh_interval`] from it.
    pub refreshed_at: Option<SystemTime>,
    /// The app client the refresh token belongs to (a store refuses a set of another client).
    pub client_id: Option<String>,
    /// The endpoint URL the tokens were obtained from.
    pub endpoint: Option<String>,
    /// When the user signed in and this lineage began, by the server's clock (the application
    /// says so, or the access token's `auth_time` claim). Rotation does not move it.
    pub signed_in_at: Option<SystemTime>,
    /// The app client's refresh-token validity, as the application stated it
    /// ([`SessionConfig::refresh_token_validity`]): with `signed_in_at`, the lineage's deadline.
    pub refresh_token_validity: Option<Duration>,
    /// Cognito's clock minus the local one, in seconds, when these tokens were obtained
    /// ([`Session::clock_skew_secs`]).
    pub clock_skew_secs: Option<i64>,
    /// The lineage was ended by a sign-out at this time (the local wall clock of the process
    /// that signed out): this set is a tombstone and holds no token (see
    /// [`TokenSet::signed_out`]).
    pub signed_out_at: Option<SystemTime>,
    /// In a tombstone: fingerprints ([`refresh_token_fingerprint`]) of the refresh tokens the
    /// sign-out revoked (the lineage's, and the one it started from). A manager that starts
    /// from one of them over the tombstone is not a new sign-in. Fingerprints of dead tokens:
    /// nothing that works is kept.
    pub revoked: Vec<u64>,
    /// The expiry on this process's monotonic clock, for a set that never left the process
    /// (another manager sharing a memory store): a wall clock stepped back meanwhile must not
    /// lengthen it. Not stored.
    expires_mono: Option<Instant>,
}

impl TokenSet {
    /// A session that so far has only a refresh token (and maybe a device key).
    pub fn from_refresh_token(
        refresh_token: impl Into<SecretString>,
        device_key: Option<SecretString>,
    ) -> Self {
        Self::new(refresh_token.into(), None, None, device_key, None, None)
    }

    /// A full token set, as loaded from a store.
    pub fn new(
        refresh_token: SecretString,
        access_token: Option<SecretString>,
        id_token: Option<SecretString>,
        device_key: Option<SecretString>,
        expires_at: Option<SystemTime>,
        lifetime: Option<Duration>,
    ) -> Self {
        Self {
            refresh_token,
            access_token,
            id_token,
            device_key,
            expires_at,
            lifetime,
            refreshed_at: None,
            client_id: None,
            endpoint: None,
            signed_in_at: None,
            refresh_token_validity: None,
            clock_skew_secs: None,
            signed_out_at: None,
            revoked: Vec::new(),
            expires_mono: None,
        }
    }

    /// A tombstone: what a store keeps of a lineage after a sign-out at `at`, so that every
    /// holder of the store learns the session is over (an empty store would only mean the
    /// data was lost). It holds no token: its refresh token is empty.
    pub fn signed_out(at: SystemTime) -> Self {
        let mut set = Self::from_refresh_token(String::new(), None);
        set.signed_out_at = Some(at);
        set
    }

    /// This tombstone, recording the fingerprints of the refresh tokens its sign-out revoked.
    pub fn with_revoked(mut self, revoked: Vec<u64>) -> Self {
        self.revoked = revoked;
        self
    }

    /// Whether this is a tombstone whose sign-out revoked `refresh_token`.
    pub fn revoked(&self, refresh_token: &SecretString) -> bool {
        self.is_signed_out()
            && self
                .revoked
                .contains(&refresh_token_fingerprint(refresh_token))
    }

    /// Whether this set is a tombstone left by a sign-out ([`TokenSet::signed_out`]).
    pub fn is_signed_out(&self) -> bool {
        self.signed_out_at.is_some()
    }

    /// This set, recorded as obtained by a refresh that started at `at`.
    pub fn with_refreshed_at(mut self, at: Option<SystemTime>) -> Self {
        self.refreshed_at = at;
        self
    }

    /// This set, recorded as the lineage of a sign-in at `at` (the server's clock).
    pub fn with_signed_in_at(mut self, at: Option<SystemTime>) -> Self {
        self.signed_in_at = at;
        self
    }

    /// This set, recorded as belonging to app client `client_id` at `endpoint`.
    pub fn bound_to(mut self, client_id: Option<String>, endpoint: Option<String>) -> Self {
        self.client_id = client_id;
        self.endpoint = endpoint;
        self
    }

    /// Whether the access token exists and has not expired at `now` by the wall clock alone
    /// (a [`Session`] also holds the expiry on the monotonic clock).
    pub fn is_valid_at(&self, now: SystemTime) -> bool {
        self.access_token.is_some() && self.expires_at.is_some_and(|at| now < at)
    }

    /// Whether this set holds the same refresh token as `other` (one lineage, same step).
    pub fn same_refresh_token(&self, other: &TokenSet) -> bool {
        self.refresh_token.expose_secret() == other.refresh_token.expose_secret()
    }
}

/// A refresh token's fingerprint: 64-bit FNV-1a of its bytes, the same in every build and
/// process. It identifies a token a tombstone records as revoked; 64 bits of a token of
/// hundreds of random bytes cannot give the token back.
pub fn refresh_token_fingerprint(token: &SecretString) -> u64 {
    token
        .expose_secret()
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
        })
}

/// What the caller should do at a given instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// The access token is fresh: serve it.
    Serve,
    /// A refresh is due. `usable` says whether the current access token is still valid, and so
    /// may be served if the refresh fails for a passing reason.
    Refresh {
        /// The current access token can still be served.
        usable: bool,
    },
    /// The access token has expired and the last refresh failed; the next try is due at
    /// `retry_at`. Report [`Session::last_error`].
    Unavailable {
        /// When the next refresh may be tried.
        retry_at: SystemTime,
    },
    /// The access token has expired, but the lineage was refreshed too recently to refresh it
    /// again (the tokens came back already due: see the [module docs](self#no-refresh-storms)).
    TooSoon {
        /// When the next refresh may start.
        retry_at: SystemTime,
    },
    /// The refresh token is dead: the user must sign in again. No further call will be made.
    SignInRequired,
}

/// What applying a refresh result changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Applied {
    /// Rotation returned a new refresh token, which replaced the old one.
    pub rotated: bool,
    /// Cognito registered a new device, whose key replaced the old one.
    pub new_device: bool,
}

#[derive(Debug, Clone)]
enum Health {
    Healthy,
    Failing {
        failures: u32,
        retry_at: Moment,
        last_error: Arc<CallError>,
    },
    SignInRequired {
        last_error: Arc<CallError>,
    },
}

/// One refresh-token lineage: tokens, health and schedule. See the [module docs](self).
#[derive(Debug, Clone)]
pub struct Session {
    tokens: TokenSet,
    config: SessionConfig,
    health: Health,
    clock_skew_secs: Option<i64>,
    /// The access token's expiry on both clocks.
    expires: Option<Moment>,
    /// When a refresh becomes due: `expires` less the effective margin, kept with it (see
    /// [`Session::set_expires`]) because a cached `access_token()` asks on every call.
    due: Option<Moment>,
    /// No refresh starts before this (the floor between refreshes).
    not_before: Option<Moment>,
    /// Refreshes in a row whose tokens were due as soon as they came back.
    already_due_streak: u32,
    /// The most the server's clock can be ahead of ours, in nanoseconds (negative: behind),
    /// from the last response's `Date` header and the access token's `iat`. Kept to the
    /// nanosecond: the send time rounded to a coarser unit would overstate it, and the cap at
    /// `exp` it sets would cut a token this process just obtained short of its local expiry.
    offset_upper_ns: Option<i128>,
}

impl Session {
    /// A healthy session over `tokens` (a fresh refresh token, or a set loaded from a store),
    /// anchored on the clocks at `now`.
    pub fn new(tokens: TokenSet, config: SessionConfig, now: Now) -> Self {
        let mut session = Self {
            tokens: TokenSet::from_refresh_token(String::new(), None),
            config,
            health: Health::Healthy,
            clock_skew_secs: None,
            expires: None,
            due: None,
            not_before: None,
            already_due_streak: 0,
            offset_upper_ns: None,
        };
        session.adopt(tokens, now);
        session
    }

    /// The current tokens.
    pub fn tokens(&self) -> &TokenSet {
        &self.tokens
    }

    /// The configuration.
    pub fn config(&self) -> &SessionConfig {
        &self.config
    }

    /// Server clock minus local clock, in seconds, estimated from the last response's `Date`
    /// header, else the access token's `iat` (`None` before the first refresh, or when neither
    /// was there).
    pub fn clock_skew_secs(&self) -> Option<i64> {
        self.clock_skew_secs
    }

    /// When the lineage ends by the local wall clock: sign-in plus
    /// [`SessionConfig::refresh_token_validity`] (or, when this session was not told it, the
    /// validity recorded with the tokens by the process that obtained them), moved onto this
    /// machine's clock by the skew (at its most pessimistic). `None` unless both are known.
    /// Rotation does not move it.
    pub fn deadline(&self) -> Option<SystemTime> {
        let validity = self
            .config
            .refresh_token_validity
            .or(self.tokens.refresh_token_validity)?
            .min(MAX_REFRESH_TOKEN_VALIDITY);
        let end = self.tokens.signed_in_at?.checked_add(validity)?;
        Some(self.to_local(end))
    }

    /// Whether the deadline is less than [`SessionConfig::ending_soon_notice`] away at `now`.
    pub fn ending_soon(&self, now: Now) -> bool {
        self.deadline().is_some_and(|d| {
            d.checked_sub(self.config.ending_soon_notice)
                .is_none_or(|notice| now.wall >= notice)
        })
    }

    /// A time on the server's clock moved onto ours, assuming the server as far ahead as it
    /// can be (so a server deadline never lands later here than it really is).
    fn to_local(&self, server: SystemTime) -> SystemTime {
        match self.offset_upper_ns {
            Some(ns) if ns >= 0 => server
                .checked_sub(nanos_duration(ns.unsigned_abs()))
                .unwrap_or(UNIX_EPOCH),
            Some(ns) => server
                .checked_add(nanos_duration(ns.unsigned_abs()))
                .unwrap_or_else(|| far_after_wall(server)),
            None => server,
        }
    }

    /// `expires` capped at the access token's own `exp` moved onto our clocks, if the skew is
    /// known.
    fn capped_by_exp(&self, expires: Moment, exp: Option<i64>, now: Now) -> Moment {
        let Some(exp) = exp.and_then(|e| u64::try_from(e).ok()) else {
            return expires;
        };
        if self.offset_upper_ns.is_none() {
            return expires;
        }
        let Some(server_exp) = UNIX_EPOCH.checked_add(Duration::from_secs(exp)) else {
            return expires;
        };
        let local = self.to_local(server_exp);
        if local >= expires.wall {
            return expires;
        }
        let remaining = local.duration_since(now.wall).unwrap_or(Duration::ZERO);
        Moment {
            wall: local,
            mono: now.after(remaining).mono.min(expires.mono),
        }
    }

    /// The error of the last failed refresh, while the session is failing or dead.
    pub fn last_error(&self) -> Option<&Arc<CallError>> {
        match &self.health {
            Health::Healthy => None,
            Health::Failing { last_error, .. } | Health::SignInRequired { last_error } => {
                Some(last_error)
            }
        }
    }

    /// When the next refresh may be tried after a failure (`None` while healthy or dead).
    pub fn retry_at(&self) -> Option<SystemTime> {
        match self.health {
            Health::Failing { retry_at, .. } => Some(retry_at.wall),
            _ => None,
        }
    }

    /// Failed refreshes since the last success.
    pub fn consecutive_failures(&self) -> u32 {
        match self.health {
            Health::Failing { failures, .. } => failures,
            _ => 0,
        }
    }

    /// Whether the refresh token is known to be dead.
    pub fn requires_sign_in(&self) -> bool {
        matches!(self.health, Health::SignInRequired { .. })
    }

    /// The margin in force: the configured one, capped at half the token's lifetime.
    pub fn effective_margin(&self) -> Duration {
        match self.tokens.lifetime {
            Some(lifetime) => self.config.refresh_margin.min(lifetime / 2),
            None => self.config.refresh_margin,
        }
    }

    /// When a refresh becomes due (ahead of expiry by the margin), by the wall clock, if the
    /// expiry is known.
    pub fn refresh_due_at(&self) -> Option<SystemTime> {
        self.due().map(|m| m.wall)
    }

    fn due(&self) -> Option<Moment> {
        debug_assert_eq!(
            self.due,
            self.due_from_expires(),
            "due not kept with expires"
        );
        self.due
    }

    fn due_from_expires(&self) -> Option<Moment> {
        Some(self.expires?.earlier_by(self.effective_margin()))
    }

    /// Sets the expiry, and with it when a refresh is due; after the tokens (their lifetime
    /// caps the margin).
    fn set_expires(&mut self, expires: Option<Moment>) {
        self.expires = expires;
        self.due = self.due_from_expires();
    }

    /// Whether the access token exists and is valid at `now` on both clocks.
    pub fn is_valid_at(&self, now: Now) -> bool {
        self.tokens.access_token.is_some()
            && self.expires.is_some_and(|at| !at.reached_by_either(now))
    }

    /// The interval the floor enforces after the last refresh.
    fn floor_interval(&self) -> Duration {
        let doubled = self
            .config
            .min_refresh_interval
            .saturating_mul(1u32 << self.already_due_streak.min(30));
        doubled.min(
            self.config
                .failure_backoff_max
                .max(self.config.min_refresh_interval),
        )
    }

    /// Until when refreshing is held back at `now` (by the floor, or a failure's backoff
    /// unless `forced`), and whether by a failure.
    fn blocked_until(&self, now: Now, forced: bool) -> Option<(Moment, bool)> {
        let failure = match &self.health {
            Health::Failing { retry_at, .. } if !forced => Some(*retry_at),
            _ => None,
        };
        let floor = self.not_before;
        let later = match (failure, floor) {
            (Some(f), Some(n)) if n.mono > f.mono => Some((n, false)),
            (Some(f), _) => Some((f, true)),
            (None, Some(n)) => Some((n, false)),
            (None, None) => None,
        };
        later.filter(|(at, _)| !at.elapsed_at(now))
    }

    /// What to do at `now`.
    pub fn decide(&self, now: Now) -> Decision {
        if self.requires_sign_in() {
            return Decision::SignInRequired;
        }
        let usable = self.is_valid_at(now);
        let due = !usable || self.due().is_none_or(|at| at.reached_by_either(now));
        if !due {
            return Decision::Serve;
        }
        self.due_decision(now, usable, false)
    }

    /// What to do at `now` when the caller wants a refresh even of a fresh token
    /// (`refresh_now`): a refresh, unless the lineage was refreshed less than the floor ago
    /// (then the token that refresh obtained is served, or [`Decision::TooSoon`]). A failure's
    /// backoff does not hold it back.
    pub fn decide_forced(&self, now: Now) -> Decision {
        if self.requires_sign_in() {
            return Decision::SignInRequired;
        }
        self.due_decision(now, self.is_valid_at(now), true)
    }

    fn due_decision(&self, now: Now, usable: bool, forced: bool) -> Decision {
        match self.blocked_until(now, forced) {
            None => Decision::Refresh { usable },
            Some(_) if usable => Decision::Serve,
            Some((at, true)) => Decision::Unavailable { retry_at: at.wall },
            Some((at, false)) => match self.health {
                // The failure is what the caller should hear about.
                Health::Failing { .. } if !forced => Decision::Unavailable { retry_at: at.wall },
                _ => Decision::TooSoon { retry_at: at.wall },
            },
        }
    }

    /// How long from `now` until the floor between refreshes lets another one start (zero if
    /// it does now). `refresh_now` waits this long rather than hand out a token obtained before
    /// it was called.
    pub fn until_refresh_allowed(&self, now: Now) -> Duration {
        self.not_before
            .map_or(Duration::ZERO, |at| at.until_elapsed(now))
    }

    /// How long from `now` until [`decide`](Self::decide) next asks for a refresh: zero if it
    /// does now, `None` once the user must sign in again. A background refresher sleeps this
    /// long; it never returns zero twice for one refresh, because each refresh (success or
    /// failure) moves the floor.
    pub fn next_refresh_in(&self, now: Now) -> Option<Duration> {
        if self.requires_sign_in() {
            return None;
        }
        let due_in = if self.is_valid_at(now) {
            self.due().map_or(Duration::ZERO, |d| d.until_either(now))
        } else {
            Duration::ZERO
        };
        let blocked_in = self
            .blocked_until(now, false)
            .map_or(Duration::ZERO, |(at, _)| at.until_elapsed(now));
        Some(due_in.max(blocked_in))
    }

    /// The input of the next refresh: `template` (client id, secret, metadata) with this
    /// session's refresh token and device key.
    pub fn refresh_input(&self, template: &RefreshInput) -> Result<RefreshInput, InvalidInput> {
        template
            .to_builder()
            .refresh_token(self.tokens.refresh_token.clone())
            .set_device_key(self.tokens.device_key.clone())
            .build()
    }

    /// Applies a successful refresh whose request was sent at `started` (the receipt time also
    /// works, but can overstate the token's life by the response's latency; see the module
    /// docs for the rules).
    pub fn apply_success(&mut self, output: RefreshOutput, started: Now) -> Applied {
        let claims = decode_claims(output.access_token.expose_secret()).ok();
        let (iat, exp, auth_time) =
            claims.map_or((None, None, None), |c| (c.iat, c.exp, c.auth_time));
        self.learn_clock_offset(&output, iat, started);
        // A token whose claims say it expired when it was issued lives 0 s, whatever
        // `ExpiresIn` says.
        let claimed_lifetime = iat.zip(exp).map(|(iat, exp)| {
            Duration::from_secs(u64::try_from(exp.saturating_sub(iat)).unwrap_or(0))
        });
        // `iat` is whole seconds: the token may be up to one older than `exp − iat` says.
        let lifetime = claimed_lifetime
            .unwrap_or(output.expires_in)
            .min(MAX_LIFETIME)
            .saturating_sub(Duration::from_secs(1));
        let rotated = output.refresh_token.is_some();
        let new_device_key = output.new_device.and_then(|d| d.device_key);
        let new_device = new_device_key.is_some();
        let expires = self.capped_by_exp(started.after(lifetime), exp, started);
        let previous = std::mem::replace(
            &mut self.tokens,
            TokenSet::from_refresh_token(String::new(), None),
        );
        let signed_in_at = previous.signed_in_at.or_else(|| {
            auth_time
                .and_then(|t| u64::try_from(t).ok())
                .and_then(|t| UNIX_EPOCH.checked_add(Duration::from_secs(t)))
        });
        self.tokens = TokenSet {
            refresh_token: output.refresh_token.unwrap_or(previous.refresh_token),
            access_token: Some(output.access_token),
            id_token: output.id_token,
            device_key: new_device_key.or(previous.device_key),
            expires_at: Some(expires.wall),
            lifetime: Some(lifetime),
            refreshed_at: Some(started.wall),
            client_id: previous.client_id,
            endpoint: previous.endpoint,
            signed_in_at,
            refresh_token_validity: self
                .config
                .refresh_token_validity
                .or(previous.refresh_token_validity)
                .map(|v| v.min(MAX_REFRESH_TOKEN_VALIDITY)),
            clock_skew_secs: self.clock_skew_secs.or(previous.clock_skew_secs),
            signed_out_at: None,
            revoked: Vec::new(),
            expires_mono: Some(expires.mono),
        };
        self.set_expires(Some(expires));
        // Tokens due the moment they arrive would make every call a refresh: back off. Judged
        // on the expiry the session will act on, not the claimed lifetime: `exp` moved onto our
        // clock (a `Date` header hours ahead of `iat`) can make a one-hour token due at once.
        if self.effective_margin() >= expires.until_either(started) {
            self.already_due_streak = self.already_due_streak.saturating_add(1);
        } else {
            self.already_due_streak = 0;
        }
        self.not_before = Some(started.after(self.floor_interval()));
        self.health = Health::Healthy;
        Applied {
            rotated,
            new_device,
        }
    }

    /// The server's clock against ours, from a response to a request sent at `started`: its
    /// `Date` (the server when it answered) and the token's `iat` (the server when it issued),
    /// both whole seconds. The upper bound (server time rounded up, our time at its earliest)
    /// is what expiry decisions use; the skew shown is the plain difference.
    fn learn_clock_offset(&mut self, output: &RefreshOutput, iat: Option<i64>, started: Now) {
        let millis = |t: SystemTime| -> Option<i64> {
            match t.duration_since(UNIX_EPOCH) {
                Ok(d) => i64::try_from(d.as_millis()).ok(),
                Err(e) => i64::try_from(e.duration().as_millis()).ok().map(|m| -m),
            }
        };
        let nanos = |t: SystemTime| -> Option<i128> {
            match t.duration_since(UNIX_EPOCH) {
                Ok(d) => i128::try_from(d.as_nanos()).ok(),
                Err(e) => i128::try_from(e.duration().as_nanos()).ok().map(|n| -n),
            }
        };
        let Some(sent) = millis(started.wall) else {
            return;
        };
        let received = millis(output.received_at).unwrap_or(sent);
        // A reading further from our clock than any believable skew is a broken clock
        // somewhere between us and Cognito, not Cognito's: left out.
        let max_ms = i64::try_from(MAX_CLOCK_SKEW.as_millis()).unwrap_or(i64::MAX) - 1000;
        let plausible =
            |server: i64, local: i64| server.checked_sub(local).is_some_and(|d| d.abs() <= max_ms);
        let date = output
            .server_date
            .and_then(millis)
            .filter(|&d| plausible(d, received));
        let iat = iat
            .and_then(|s| s.checked_mul(1000))
            .filter(|&i| plausible(i, sent));
        // The bound counts from the send time itself, not rounded down to a millisecond.
        const SECOND_NS: i128 = 1_000_000_000;
        let upper = nanos(started.wall).and_then(|sent_ns| {
            [date, iat]
                .into_iter()
                .flatten()
                .filter_map(|server_ms| {
                    i128::from(server_ms)
                        .checked_mul(1_000_000)?
                        .checked_add(SECOND_NS)?
                        .checked_sub(sent_ns)
                })
                .max()
        });
        if upper.is_some() {
            self.offset_upper_ns = upper;
        }
        let skew_ms = match (date, iat) {
            (Some(date), _) => date.checked_sub(received),
            (None, Some(iat)) => iat.checked_sub(sent),
            (None, None) => None,
        };
        if let Some(ms) = skew_ms {
            self.clock_skew_secs = Some(ms.div_euclid(1000));
        }
    }

    /// Applies a failed refresh that started at `started` and ended at `now`. Returns the
    /// decision that now holds. A rotated refresh token the error carries replaces the current
    /// one (the one sent is dead).
    pub fn apply_failure(&mut self, error: CallError, started: Now, now: Now) -> Decision {
        if let Some(rotated) = error.rotated_refresh_token() {
            self.tokens.refresh_token = rotated.clone();
            self.tokens.refreshed_at = Some(started.wall);
        }
        self.not_before = Some(started.after(self.floor_interval()));
        let last_error = Arc::new(error);
        if last_error.requires_sign_in() {
            self.health = Health::SignInRequired { last_error };
            return Decision::SignInRequired;
        }
        let failures = self.consecutive_failures().saturating_add(1);
        let exponent = (failures - 1).min(30);
        let wait = self
            .config
            .failure_backoff_min
            .saturating_mul(1u32 << exponent)
            .min(self.config.failure_backoff_max);
        self.health = Health::Failing {
            failures,
            retry_at: now.after(wait),
            last_error,
        };
        self.decide(now)
    }

    /// A refresh started at `started` and its answer is not applied here (a refusal of a
    /// refresh token this session had left meanwhile for a set obtained elsewhere, or an answer
    /// that came after a sign-out): the floor between refreshes still counts from it, so that
    /// two refreshes never start closer than [`SessionConfig::min_refresh_interval`] whatever
    /// their answers.
    pub fn refresh_not_applied(&mut self, started: Now) {
        let floor = started.after(self.floor_interval());
        if self.not_before.is_none_or(|n| floor.mono > n.mono) {
            self.not_before = Some(floor);
        }
    }

    /// Replaces the tokens with a set obtained elsewhere (a store another process wrote, or
    /// loaded at start) and clears any failure: the new set has not failed yet. Its expiry is
    /// anchored on the monotonic clock at `now`, its remaining life capped at its lifetime and,
    /// once this session knows the server's clock, at the access token's own `exp`; the floor
    /// between refreshes counts from its `refreshed_at`.
    pub fn adopt(&mut self, tokens: TokenSet, now: Now) {
        let exp = tokens
            .access_token
            .as_ref()
            .and_then(|t| decode_claims(t.expose_secret()).ok())
            .and_then(|c| c.exp);
        let expires = tokens.expires_at.map(|wall| {
            let remaining = wall.duration_since(now.wall).unwrap_or(Duration::ZERO);
            let remaining = tokens.lifetime.map_or(remaining, |l| remaining.min(l));
            let mono = now.after(remaining).mono;
            let anchored = Moment {
                wall,
                mono: tokens.expires_mono.map_or(mono, |m| m.min(mono)),
            };
            self.capped_by_exp(anchored, exp, now)
        });
        if let Some(refreshed_at) = tokens.refreshed_at {
            let interval = self.config.min_refresh_interval;
            let since = now
                .wall
                .duration_since(refreshed_at)
                .unwrap_or(Duration::ZERO);
            let floor = now.after(interval.saturating_sub(since));
            if self.not_before.is_none_or(|n| floor.mono > n.mono) {
                self.not_before = Some(floor);
            }
        }
        self.tokens = tokens;
        self.set_expires(expires);
        self.health = Health::Healthy;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::{Error, TransportError, TransportErrorKind};
    use crate::ops::refresh::parse_response;
    use crate::protocol::response::ResponseLimits;
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use http::{HeaderMap, StatusCode};

    const T0: u64 = 1_800_000_000;

    /// Both clocks at `secs` (the monotonic one counting from T0).
    fn at(secs: u64) -> Now {
        static BASE: std::sync::LazyLock<Instant> = std::sync::LazyLock::new(Instant::now);
        Now::new(
            UNIX_EPOCH + Duration::from_secs(secs),
            *BASE + Duration::from_secs(secs - T0),
        )
    }

    fn wall(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    fn access_token(iat: i64, exp: i64) -> String {
        let payload = URL_SAFE_NO_PAD.encode(format!(
            r#"{{"iat":{iat},"exp":{exp},"token_use":"access"}}"#
        ));
        format!("eyJhbGciOiJSUzI1NiJ9.{payload}.c2ln")
    }

    fn output(body: &str, now: Now) -> RefreshOutput {
        parse_response(
            StatusCode::OK,
            &HeaderMap::new(),
            body.as_bytes(),
            now.wall,
            &ResponseLimits::default(),
        )
        .expect("success body")
    }

    fn success(access: &str, expires_in: u32, refresh: Option<&str>, now: Now) -> RefreshOutput {
        let refresh = refresh
            .map(|r| format!(r#","RefreshToken":"{r}""#))
            .unwrap_or_default();
        output(
            &format!(
                r#"{{"AuthenticationResult":{{"AccessToken":"{access}","ExpiresIn":{expires_in}{refresh}}}}}"#
            ),
            now,
        )
    }

    fn service_error(code: &str, message: &str) -> CallError {
        parse_response(
            StatusCode::BAD_REQUEST,
            &HeaderMap::new(),
            format!(r#"{{"__type":"{code}","message":"{message}"}}"#).as_bytes(),
            wall(T0),
            &ResponseLimits::default(),
        )
        .map(|_| ())
        .expect_err("error")
        .into()
    }

    fn transient() -> CallError {
        CallError::new(
            Error::Transport(TransportError::new(TransportErrorKind::Timeout, "slow")),
            3,
        )
    }

    fn fresh_session() -> Session {
        Session::new(
            TokenSet::from_refresh_token("r0", None),
            SessionConfig::default(),
            at(T0),
        )
    }

    #[test]
    fn a_session_without_access_token_must_refresh() {
        assert_eq!(
            fresh_session().decide(at(T0)),
            Decision::Refresh { usable: false }
        );
    }

    #[test]
    fn a_fresh_token_is_served_until_the_margin_then_refreshed_ahead() {
        let mut s = fresh_session();
        s.apply_success(success("a1", 3600, None, at(T0)), at(T0));
        // Local expiry: sent at T0, 3,600 s of life, less the second `iat` may round away.
        assert_eq!(s.decide(at(T0)), Decision::Serve);
        assert_eq!(s.decide(at(T0 + 3599 - 301)), Decision::Serve);
        assert_eq!(
            s.decide(at(T0 + 3599 - 300)),
            Decision::Refresh { usable: true }
        );
        assert_eq!(s.decide(at(T0 + 3599)), Decision::Refresh { usable: false });
    }

    #[test]
    fn the_margin_never_exceeds_half_the_lifetime() {
        let mut s = fresh_session();
        s.apply_success(success("a1", 300, None, at(T0)), at(T0));
        // 300 s tokens live 299 s locally (see the module docs): half of that.
        assert_eq!(s.effective_margin(), Duration::from_millis(149_500));
        assert_eq!(s.decide(at(T0 + 149)), Decision::Serve);
        assert_eq!(s.decide(at(T0 + 150)), Decision::Refresh { usable: true });
    }

    #[test]
    fn a_rotated_refresh_token_replaces_the_old_one_and_none_keeps_it() {
        let mut s = fresh_session();
        let applied = s.apply_success(success("a1", 3600, Some("r1"), at(T0)), at(T0));
        assert!(applied.rotated);
        assert_eq!(s.tokens().refresh_token.expose_secret(), "r1");
        let applied = s.apply_success(success("a2", 3600, None, at(T0 + 10)), at(T0 + 10));
        assert!(!applied.rotated);
        assert_eq!(s.tokens().refresh_token.expose_secret(), "r1");
        assert_eq!(
            s.tokens().access_token.as_ref().map(|t| t.expose_secret()),
            Some("a2")
        );
    }

    #[test]
    fn the_confirmed_device_key_is_kept_and_a_new_device_adopted() {
        let mut s = Session::new(
            TokenSet::from_refresh_token("r0", Some("eu-west-1_aa".into())),
            SessionConfig::default(),
            at(T0),
        );
        s.apply_success(success("a1", 3600, None, at(T0)), at(T0));
        assert_eq!(
            s.tokens().device_key.as_ref().map(|k| k.expose_secret()),
            Some("eu-west-1_aa")
        );
        let out = output(
            r#"{"AuthenticationResult":{"AccessToken":"a2","ExpiresIn":3600,"NewDeviceMetadata":{"DeviceKey":"eu-west-1_bb"}}}"#,
            at(T0),
        );
        assert!(s.apply_success(out, at(T0)).new_device);
        assert_eq!(
            s.tokens().device_key.as_ref().map(|k| k.expose_secret()),
            Some("eu-west-1_bb")
        );
        let template = RefreshInput::builder()
            .refresh_token("x")
            .client_id("c")
            .build()
            .expect("valid");
        let input = s.refresh_input(&template).expect("valid");
        assert_eq!(
            input.device_key().map(|k| k.expose_secret()),
            Some("eu-west-1_bb")
        );
        assert_eq!(input.client_id(), "c");
    }

    #[test]
    fn expiry_follows_the_token_lifetime_whatever_the_local_clock_says() {
        // The local clock is two hours behind the server.
        let local_now = at(T0);
        let server_iat = (T0 + 7200) as i64;
        let token = access_token(server_iat, server_iat + 3600);
        let mut s = fresh_session();
        s.apply_success(success(&token, 3600, None, local_now), local_now);
        assert_eq!(s.clock_skew_secs(), Some(7200));
        assert_eq!(s.tokens().expires_at, Some(wall(T0 + 3599)));
        assert_eq!(s.decide(at(T0 + 60)), Decision::Serve);
    }

    #[test]
    fn claims_win_over_expires_in() {
        let token = access_token(100, 100 + 900);
        let mut s = fresh_session();
        s.apply_success(success(&token, 3600, None, at(T0)), at(T0));
        // 900 s from the claims, less the second `iat` may round away.
        assert_eq!(s.tokens().lifetime, Some(Duration::from_secs(899)));
    }

    #[test]
    fn a_dead_refresh_token_requires_sign_in_until_a_set_is_adopted() {
        for (code, message) in [
            ("NotAuthorizedException", "Refresh Token has been revoked"),
            ("NotAuthorizedException", "Invalid Refresh Token"),
            ("RefreshTokenReuseException", "reused"),
            ("UserNotFoundException", "User does not exist."),
        ] {
            let mut s = fresh_session();
            s.apply_success(success("a1", 3600, None, at(T0)), at(T0));
            assert_eq!(
                s.apply_failure(service_error(code, message), at(T0), at(T0)),
                Decision::SignInRequired
            );
            assert_eq!(
                s.decide(at(T0 + 100_000)),
                Decision::SignInRequired,
                "{code}"
            );
            assert!(s.last_error().is_some());
            assert_eq!(s.next_refresh_in(at(T0 + 1)), None);
            let mut stored = TokenSet::from_refresh_token("r9", None);
            stored.access_token = Some("a9".into());
            stored.expires_at = Some(wall(T0 + 7200));
            s.adopt(stored, at(T0 + 10));
            assert_eq!(s.decide(at(T0 + 10)), Decision::Serve, "{code}");
        }
    }

    #[test]
    fn a_wrong_secret_or_an_unknown_message_is_a_failure_not_a_dead_session() {
        for message in [
            "Unable to verify secret hash for client abc",
            "Client is configured for secret but secret was not received",
            "Something Cognito never said before",
        ] {
            let mut s = fresh_session();
            s.apply_success(success("a1", 3600, None, at(T0)), at(T0));
            let t = T0 + 3400;
            let error = service_error("NotAuthorizedException", message);
            assert_eq!(
                s.apply_failure(error, at(t), at(t)),
                Decision::Serve,
                "{message}"
            );
            assert_eq!(s.consecutive_failures(), 1);
            assert!(!s.requires_sign_in());
        }
    }

    #[test]
    fn a_transient_failure_keeps_serving_the_valid_token_and_backs_off() {
        let mut s = fresh_session();
        s.apply_success(success("a1", 3600, None, at(T0)), at(T0));
        let t = T0 + 3400; // inside the margin
        assert_eq!(s.decide(at(t)), Decision::Refresh { usable: true });
        assert_eq!(s.apply_failure(transient(), at(t), at(t)), Decision::Serve);
        assert_eq!(
            s.decide(at(t + 1)),
            Decision::Refresh { usable: true },
            "after 1 s"
        );
        s.apply_failure(transient(), at(t + 1), at(t + 1));
        assert_eq!(s.decide(at(t + 2)), Decision::Serve, "backing off 2 s");
        assert_eq!(s.decide(at(t + 3)), Decision::Refresh { usable: true });
        assert_eq!(s.consecutive_failures(), 2);
    }

    #[test]
    fn failure_is_reported_only_once_the_token_has_expired() {
        let mut s = fresh_session();
        s.apply_success(success("a1", 3600, None, at(T0)), at(T0));
        let expired = T0 + 3600;
        assert_eq!(
            s.apply_failure(transient(), at(expired), at(expired)),
            Decision::Unavailable {
                retry_at: wall(expired + 1)
            }
        );
        assert_eq!(
            s.decide(at(expired + 1)),
            Decision::Refresh { usable: false }
        );
    }

    #[test]
    fn backoff_is_capped() {
        let mut s = fresh_session();
        for _ in 0..40 {
            s.apply_failure(transient(), at(T0), at(T0));
        }
        assert_eq!(
            s.decide(at(T0 + 59)),
            Decision::Unavailable {
                retry_at: wall(T0 + 60)
            }
        );
    }

    #[test]
    fn a_success_clears_failures_and_adopting_a_stored_set_clears_them_too() {
        let mut s = fresh_session();
        s.apply_failure(transient(), at(T0), at(T0));
        s.apply_success(success("a1", 3600, None, at(T0 + 1)), at(T0 + 1));
        assert_eq!(s.consecutive_failures(), 0);
        s.apply_failure(transient(), at(T0 + 3600), at(T0 + 3600));
        s.adopt(
            TokenSet::new(
                "r9".into(),
                Some("a9".into()),
                None,
                None,
                Some(wall(T0 + 7200)),
                None,
            ),
            at(T0 + 3600),
        );
        assert_eq!(s.decide(at(T0 + 3600)), Decision::Serve);
    }

    /// The wall clock at `wall_secs` while the monotonic one has counted to `mono_secs`.
    fn stepped(wall_secs: u64, mono_secs: u64) -> Now {
        Now::new(wall(wall_secs), at(mono_secs).mono)
    }

    #[test]
    fn a_wall_clock_stepped_back_never_extends_a_token() {
        let mut s = fresh_session();
        s.apply_success(success("a1", 3600, None, at(T0)), at(T0));
        // An hour later the wall clock is stepped back 10 minutes: the token has expired.
        let now = stepped(T0 + 3599 - 600, T0 + 3599);
        assert!(!s.is_valid_at(now));
        assert_eq!(s.decide(now), Decision::Refresh { usable: false });
        // And the refresh is due by the monotonic clock as well.
        let now = stepped(T0 + 3299 - 600, T0 + 3299);
        assert_eq!(s.decide(now), Decision::Refresh { usable: true });
    }

    #[test]
    fn a_wall_clock_stepped_forward_expires_early_but_never_late() {
        let mut s = fresh_session();
        s.apply_success(success("a1", 3600, None, at(T0)), at(T0));
        let now = stepped(T0 + 600 + 3600, T0 + 600);
        assert_eq!(s.decide(now), Decision::Refresh { usable: false });
    }

    #[test]
    fn a_stored_set_is_anchored_on_the_monotonic_clock_and_capped_at_its_lifetime() {
        let mut stored = TokenSet::new(
            "r1".into(),
            Some("a1".into()),
            None,
            None,
            // Written by a host whose clock is an hour ahead: by ours it lasts 2 h.
            Some(wall(T0 + 7200)),
            Some(Duration::from_secs(3600)),
        );
        stored.refreshed_at = Some(wall(T0 + 3600));
        let s = Session::new(stored, SessionConfig::default(), at(T0));
        assert!(s.is_valid_at(at(T0 + 3599)));
        assert!(!s.is_valid_at(at(T0 + 3600)), "never past its lifetime");
        // A wall clock stepped back after loading does not help either.
        assert!(!s.is_valid_at(stepped(T0, T0 + 3600)));
    }

    #[test]
    fn tokens_that_come_back_expired_are_not_refreshed_in_a_loop() {
        let mut s = fresh_session();
        let mut refreshes = vec![];
        let mut t = T0;
        // Every refresh returns ExpiresIn 0: poll every 100 ms for ten minutes.
        while t < T0 + 600 {
            for tenth in 0..10 {
                let now = Now::new(
                    wall(t) + Duration::from_millis(tenth * 100),
                    at(t).mono + Duration::from_millis(tenth * 100),
                );
                match s.decide(now) {
                    Decision::Refresh { .. } => {
                        refreshes.push(now.wall);
                        s.apply_success(success("a0", 0, None, now), now);
                    }
                    Decision::TooSoon { retry_at } => assert!(retry_at > now.wall),
                    other => panic!("{other:?}"),
                }
            }
            t += 1;
        }
        // 2, 4, 8, 16, 32 s apart, then every 60 s: 14 calls in ten minutes, not 6,000.
        assert_eq!(refreshes.len(), 14, "{refreshes:?}");
        let gaps: Vec<u64> = refreshes
            .windows(2)
            .map(|w| w[1].duration_since(w[0]).map_or(0, |d| d.as_secs()))
            .collect();
        assert_eq!(&gaps[..7], &[2, 4, 8, 16, 32, 60, 60]);
    }

    #[test]
    fn two_refreshes_of_a_lineage_are_at_least_the_floor_apart_even_when_forced() {
        let mut s = fresh_session();
        s.apply_success(success("a1", 3600, None, at(T0)), at(T0));
        assert_eq!(s.decide_forced(at(T0)), Decision::Serve, "just refreshed");
        assert_eq!(
            s.decide_forced(at(T0 + 1)),
            Decision::Refresh { usable: true }
        );
        // Failures count too, and the floor outlasts a shorter failure backoff.
        let config = SessionConfig {
            failure_backoff_min: Duration::ZERO,
            min_refresh_interval: Duration::from_secs(5),
            ..SessionConfig::default()
        };
        let mut s = Session::new(TokenSet::from_refresh_token("r0", None), config, at(T0));
        assert_eq!(
            s.apply_failure(transient(), at(T0), at(T0)),
            Decision::Unavailable {
                retry_at: wall(T0 + 5)
            }
        );
        assert_eq!(s.next_refresh_in(at(T0 + 2)), Some(Duration::from_secs(3)));
        assert_eq!(s.decide(at(T0 + 5)), Decision::Refresh { usable: false });
    }

    #[test]
    fn the_background_schedule_never_says_refresh_now_twice_for_one_refresh() {
        for expires_in in [0, 1, 2, 3, 10, 600, 3600] {
            let mut s = fresh_session();
            let mut t = at(T0);
            for _ in 0..50 {
                let wait = s.next_refresh_in(t).expect("alive");
                t = Now::new(t.wall + wait, t.mono + wait);
                assert!(
                    matches!(s.decide(t), Decision::Refresh { .. }),
                    "{expires_in}"
                );
                s.apply_success(success("a", expires_in, None, t), t);
                assert!(
                    s.next_refresh_in(t).expect("alive") >= Duration::from_secs(1),
                    "expires_in {expires_in}"
                );
            }
        }
    }

    #[test]
    fn a_failure_that_carries_a_rotated_token_replaces_the_refresh_token() {
        let mut s = fresh_session();
        s.apply_success(success("a1", 3600, None, at(T0)), at(T0));
        let body = r#"{"AuthenticationResult":{"RefreshToken":"eyJ.r2.x","ExpiresIn":"x"}}"#;
        let error = parse_response(
            StatusCode::OK,
            &HeaderMap::new(),
            body.as_bytes(),
            wall(T0 + 3400),
            &ResponseLimits::default(),
        )
        .map(|_| ())
        .expect_err("malformed");
        let now = at(T0 + 3400);
        assert_eq!(s.apply_failure(error.into(), now, now), Decision::Serve);
        assert_eq!(s.tokens().refresh_token.expose_secret(), "eyJ.r2.x");
        assert_eq!(
            s.tokens().access_token.as_ref().map(|t| t.expose_secret()),
            Some("a1")
        );
    }

    fn jwt(claims: &str) -> String {
        format!(
            "eyJhbGciOiJSUzI1NiJ9.{}.c2ln",
            URL_SAFE_NO_PAD.encode(claims)
        )
    }

    fn success_dated(access: &str, date: Option<u64>, now: Now) -> RefreshOutput {
        let mut headers = HeaderMap::new();
        if let Some(secs) = date {
            let shown = crate::protocol::response::tests_support::imf_fixdate(wall(secs));
            headers.insert(http::header::DATE, shown.parse().expect("header"));
        }
        parse_response(
            StatusCode::OK,
            &headers,
            format!(r#"{{"AuthenticationResult":{{"AccessToken":"{access}","ExpiresIn":3600}}}}"#)
                .as_bytes(),
            now.wall,
            &ResponseLimits::default(),
        )
        .expect("success")
    }

    #[test]
    fn the_clock_skew_comes_from_the_date_header_or_else_iat() {
        // Our clock is ten minutes behind the server's.
        let server = T0 + 600;
        let mut s = fresh_session();
        s.apply_success(success_dated("opaque", Some(server), at(T0)), at(T0));
        assert_eq!(s.clock_skew_secs(), Some(600));
        let token = jwt(&format!(
            r#"{{"iat":{},"exp":{}}}"#,
            T0 - 600,
            T0 - 600 + 3600
        ));
        s.apply_success(success_dated(&token, None, at(T0)), at(T0));
        assert_eq!(s.clock_skew_secs(), Some(-600));
    }

    #[test]
    fn the_deadline_is_sign_in_plus_validity_on_our_clock_and_rotation_does_not_move_it() {
        let config = SessionConfig {
            refresh_token_validity: Some(Duration::from_secs(30 * 24 * 3600)),
            ending_soon_notice: Duration::from_secs(24 * 3600),
            ..SessionConfig::default()
        };
        let mut s = Session::new(TokenSet::from_refresh_token("r0", None), config, at(T0));
        assert_eq!(s.deadline(), None, "sign-in time unknown");
        // Signed in an hour ago by the server's clock, which is ten minutes ahead of ours.
        let token = jwt(&format!(
            r#"{{"iat":{},"exp":{},"auth_time":{}}}"#,
            T0 + 600,
            T0 + 600 + 3600,
            T0 + 600 - 3600
        ));
        s.apply_success(success_dated(&token, Some(T0 + 600), at(T0)), at(T0));
        let deadline = s.deadline().expect("known");
        let exact = wall(T0 - 3600 + 30 * 24 * 3600);
        assert!(
            deadline <= exact && deadline >= exact - Duration::from_secs(2),
            "{deadline:?}"
        );
        let again = jwt(&format!(
            r#"{{"iat":{},"exp":{},"auth_time":{}}}"#,
            T0 + 4000,
            T0 + 4000 + 3600,
            T0 + 3000
        ));
        s.apply_success(
            success_dated(&again, Some(T0 + 4000), at(T0 + 3400)),
            at(T0 + 3400),
        );
        assert_eq!(s.deadline(), Some(deadline), "the first sign-in time stays");
        assert!(!s.ending_soon(at(T0 + 3400)));
        assert!(s.ending_soon(at(T0 + 29 * 24 * 3600)));
    }

    #[test]
    fn an_adopted_set_is_never_valid_past_its_exp_once_the_server_clock_is_known() {
        let mut s = fresh_session();
        // This host's clock is ten minutes behind the server; it learnt so from a response.
        s.apply_success(success_dated("opaque", Some(T0 + 600), at(T0)), at(T0));
        // A set written by a host whose clock is right: it expires at T0 + 600 + 1800 server
        // time, which is T0 + 1800 here, though its stored expiry says T0 + 2400.
        let token = jwt(&format!(
            r#"{{"iat":{},"exp":{}}}"#,
            T0 + 600,
            T0 + 600 + 1800
        ));
        let mut stored = TokenSet::from_refresh_token("r1", None);
        stored.access_token = Some(token.into());
        stored.expires_at = Some(wall(T0 + 2400));
        stored.lifetime = Some(Duration::from_secs(1800));
        s.adopt(stored, at(T0 + 60));
        assert!(s.is_valid_at(at(T0 + 1790)));
        assert!(!s.is_valid_at(at(T0 + 1800)));
    }

    #[test]
    fn tokens_debug_shows_no_secret() {
        let mut s = fresh_session();
        s.apply_success(
            success(
                "CANARY-access.0123456789",
                3600,
                Some("CANARY-refresh.0123456789"),
                at(T0),
            ),
            at(T0),
        );
        let shown = format!("{s:?}");
        assert!(!shown.contains("CANARY"), "{shown}");
    }
}
