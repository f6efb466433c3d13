//! The token session: one refresh-token lineage as a sans-IO state machine.
//!
//! A [`Session`] holds the current [`TokenSet`] and answers, for an instant the caller passes
//! in, what to do: serve the access token, refresh (ahead of expiry or because it has expired),
//! report that tokens are unavailable for now, or report that the user must sign in again. The
//! caller performs the refresh and hands back the outcome; the session applies it:
//!
//! - success: the new access and ID tokens are adopted; a rotated refresh token replaces the old
//!   one, and when none came back the old one is kept; a confirmed device key is kept, a new one
//!   from `NewDeviceMetadata` adopted;
//! - a dead refresh token (`NotAuthorizedException`, `RefreshTokenReuseException`,
//!   `UserNotFoundException`): the session moves to "sign-in required" for good, and every
//!   later decision says so without another call;
//! - any other failure: the access token is served while it is still valid; refreshes are retried
//!   with exponential backoff; callers see the failure only once the token has expired.
//!
//! # Expiry and clock skew
//!
//! Refreshing starts [`SessionConfig::refresh_margin`] before expiry, never more than half the
//! token's lifetime. The local expiry is the time the request was sent plus the token's own
//! lifetime, `exp − iat` from its claims (falling back to `ExpiresIn`), less one second: that is
//! `exp` corrected by the skew `iat − now`, as Amplify computes it, so a local clock minutes or
//! hours off does not make a fresh token look expired or an expired one fresh. Counting from the
//! send time and taking off the second that `iat` rounds away keep the local expiry at or before
//! the real one whatever the response's latency: a token is never served past its `exp`. The
//! skew is kept for inspection ([`Session::clock_skew_secs`]).

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use secrecy::{ExposeSecret, SecretString};

use crate::call::CallError;
use crate::input::{InvalidInput, RefreshInput};
use crate::jwt::decode_claims;
use crate::response::RefreshOutput;

/// How a session schedules refreshes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionConfig {
    /// Refresh this long before the access token expires (capped at half its lifetime).
    /// Default 5 minutes.
    pub refresh_margin: Duration,
    /// Wait after the first failed refresh; doubled after each further failure. Default 1 s.
    pub failure_backoff_min: Duration,
    /// Longest wait between failed refreshes. Default 60 s.
    pub failure_backoff_max: Duration,
}

impl Default for SessionConfig {
    fn default() -> Self {
        Self {
            refresh_margin: Duration::from_secs(300),
            failure_backoff_min: Duration::from_secs(1),
            failure_backoff_max: Duration::from_secs(60),
        }
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
    /// When the access and ID tokens expire, by the local clock.
    pub expires_at: Option<SystemTime>,
    /// Their lifetime counted locally: from the request's sending to `expires_at`.
    pub lifetime: Option<Duration>,
}

impl TokenSet {
    /// A session that so far has only a refresh token (and maybe a device key).
    pub fn from_refresh_token(
        refresh_token: impl Into<SecretString>,
        device_key: Option<SecretString>,
    ) -> Self {
        Self {
            refresh_token: refresh_token.into(),
            access_token: None,
            id_token: None,
            device_key,
            expires_at: None,
            lifetime: None,
        }
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
        }
    }

    /// Whether the access token exists and has not expired at `now`.
    pub fn is_valid_at(&self, now: SystemTime) -> bool {
        self.access_token.is_some() && self.expires_at.is_some_and(|at| now < at)
    }

    /// Whether this set holds the same refresh token as `other` (one lineage, same step).
    pub fn same_refresh_token(&self, other: &TokenSet) -> bool {
        self.refresh_token.expose_secret() == other.refresh_token.expose_secret()
    }
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
        retry_at: SystemTime,
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
}

impl Session {
    /// A healthy session over `tokens`.
    pub fn new(tokens: TokenSet, config: SessionConfig) -> Self {
        Self {
            tokens,
            config,
            health: Health::Healthy,
            clock_skew_secs: None,
        }
    }

    /// The current tokens.
    pub fn tokens(&self) -> &TokenSet {
        &self.tokens
    }

    /// The configuration.
    pub fn config(&self) -> &SessionConfig {
        &self.config
    }

    /// Server clock minus local clock, in seconds, estimated from the last access token's
    /// `iat` at receipt (`None` before the first refresh or for a token without claims).
    pub fn clock_skew_secs(&self) -> Option<i64> {
        self.clock_skew_secs
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
            Health::Failing { retry_at, .. } => Some(retry_at),
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

    /// The margin in force: the configured one, capped at half the token's lifetime.
    pub fn effective_margin(&self) -> Duration {
        match self.tokens.lifetime {
            Some(lifetime) => self.config.refresh_margin.min(lifetime / 2),
            None => self.config.refresh_margin,
        }
    }

    /// When a refresh becomes due (ahead of expiry by the margin), if the expiry is known.
    pub fn refresh_due_at(&self) -> Option<SystemTime> {
        let expires_at = self.tokens.expires_at?;
        Some(
            expires_at
                .checked_sub(self.effective_margin())
                .unwrap_or(expires_at),
        )
    }

    /// What to do at `now`.
    pub fn decide(&self, now: SystemTime) -> Decision {
        let retry_at = match &self.health {
            Health::SignInRequired { .. } => return Decision::SignInRequired,
            Health::Failing { retry_at, .. } => Some(*retry_at),
            Health::Healthy => None,
        };
        let usable = self.tokens.is_valid_at(now);
        let due = !usable || self.refresh_due_at().is_none_or(|at| now >= at);
        match (due, retry_at) {
            (false, _) => Decision::Serve,
            // Backing off after a failure: serve what is still valid, else report.
            (true, Some(retry_at)) if now < retry_at => {
                if usable {
                    Decision::Serve
                } else {
                    Decision::Unavailable { retry_at }
                }
            }
            (true, _) => Decision::Refresh { usable },
        }
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

    /// Applies a successful refresh whose request was sent at `now` (the receipt time also
    /// works, but can overstate the token's life by the response's latency; see the module
    /// docs for the rules).
    pub fn apply_success(&mut self, output: RefreshOutput, now: SystemTime) -> Applied {
        let claims = decode_claims(output.access_token.expose_secret()).ok();
        let now_secs = now
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
        let (iat, exp) = claims.map_or((None, None), |c| (c.iat, c.exp));
        self.clock_skew_secs = iat.map(|iat| iat.saturating_sub(now_secs));
        let claimed_lifetime = iat
            .zip(exp)
            .and_then(|(iat, exp)| u64::try_from(exp.saturating_sub(iat)).ok())
            .filter(|secs| *secs > 0)
            .map(Duration::from_secs);
        // `iat` is whole seconds: the token may be up to one older than `exp − iat` says.
        let lifetime = claimed_lifetime
            .unwrap_or(output.expires_in)
            .saturating_sub(Duration::from_secs(1));
        let rotated = output.refresh_token.is_some();
        let new_device_key = output.new_device.and_then(|d| d.device_key);
        let new_device = new_device_key.is_some();
        self.tokens = TokenSet {
            refresh_token: output
                .refresh_token
                .unwrap_or_else(|| self.tokens.refresh_token.clone()),
            access_token: Some(output.access_token),
            id_token: output.id_token,
            device_key: new_device_key.or_else(|| self.tokens.device_key.take()),
            expires_at: Some(now.checked_add(lifetime).unwrap_or(output.expires_at)),
            lifetime: Some(lifetime),
        };
        self.health = Health::Healthy;
        Applied {
            rotated,
            new_device,
        }
    }

    /// Applies a failed refresh at `now`. Returns the decision that now holds.
    pub fn apply_failure(&mut self, error: CallError, now: SystemTime) -> Decision {
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
            retry_at: now.checked_add(wait).unwrap_or(now),
            last_error,
        };
        self.decide(now)
    }

    /// Replaces the tokens with a newer set obtained elsewhere (a store another process wrote),
    /// and clears any failure: the new set has not failed yet.
    pub fn adopt(&mut self, tokens: TokenSet) {
        self.tokens = tokens;
        self.health = Health::Healthy;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::{Error, TransportError, TransportErrorKind};
    use crate::response::ResponseLimits;
    use crate::response::parse_response;
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use http::{HeaderMap, StatusCode};

    const T0: u64 = 1_800_000_000;

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    fn access_token(iat: i64, exp: i64) -> String {
        let payload = URL_SAFE_NO_PAD.encode(format!(
            r#"{{"iat":{iat},"exp":{exp},"token_use":"access"}}"#
        ));
        format!("eyJhbGciOiJSUzI1NiJ9.{payload}.c2ln")
    }

    fn output(body: &str, now: SystemTime) -> RefreshOutput {
        parse_response(
            StatusCode::OK,
            &HeaderMap::new(),
            body.as_bytes(),
            now,
            &ResponseLimits::default(),
        )
        .expect("success body")
    }

    fn success(
        access: &str,
        expires_in: u32,
        refresh: Option<&str>,
        now: SystemTime,
    ) -> RefreshOutput {
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

    fn service_error(code: &str) -> CallError {
        parse_response(
            StatusCode::BAD_REQUEST,
            &HeaderMap::new(),
            format!(r#"{{"__type":"{code}"}}"#).as_bytes(),
            at(T0),
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
        assert_eq!(s.tokens().expires_at, Some(at(T0 + 3599)));
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
    fn a_dead_refresh_token_requires_sign_in_for_good() {
        for code in [
            "NotAuthorizedException",
            "RefreshTokenReuseException",
            "UserNotFoundException",
        ] {
            let mut s = fresh_session();
            s.apply_success(success("a1", 3600, None, at(T0)), at(T0));
            assert_eq!(
                s.apply_failure(service_error(code), at(T0)),
                Decision::SignInRequired
            );
            assert_eq!(
                s.decide(at(T0 + 100_000)),
                Decision::SignInRequired,
                "{code}"
            );
            assert!(s.last_error().is_some());
        }
    }

    #[test]
    fn a_transient_failure_keeps_serving_the_valid_token_and_backs_off() {
        let mut s = fresh_session();
        s.apply_success(success("a1", 3600, None, at(T0)), at(T0));
        let t = T0 + 3400; // inside the margin
        assert_eq!(s.decide(at(t)), Decision::Refresh { usable: true });
        assert_eq!(s.apply_failure(transient(), at(t)), Decision::Serve);
        assert_eq!(
            s.decide(at(t + 1)),
            Decision::Refresh { usable: true },
            "after 1 s"
        );
        s.apply_failure(transient(), at(t + 1));
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
            s.apply_failure(transient(), at(expired)),
            Decision::Unavailable {
                retry_at: at(expired + 1)
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
            s.apply_failure(transient(), at(T0));
        }
        assert_eq!(
            s.decide(at(T0 + 59)),
            Decision::Unavailable {
                retry_at: at(T0 + 60)
            }
        );
    }

    #[test]
    fn a_success_clears_failures_and_adopting_a_stored_set_clears_them_too() {
        let mut s = fresh_session();
        s.apply_failure(transient(), at(T0));
        s.apply_success(success("a1", 3600, None, at(T0 + 1)), at(T0 + 1));
        assert_eq!(s.consecutive_failures(), 0);
        s.apply_failure(transient(), at(T0 + 3600));
        s.adopt(TokenSet::new(
            "r9".into(),
            Some("a9".into()),
            None,
            None,
            Some(at(T0 + 7200)),
            None,
        ));
        assert_eq!(s.decide(at(T0 + 3600)), Decision::Serve);
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
