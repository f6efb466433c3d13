//! The simulated Cognito: one app client and one refresh-token lineage, following the rotation
//! rules the emulator implements (`cogref-emulator/src/state.rs`, `refresh_lineage`), on the
//! simulation's true clock, answering in HTTP bytes so that the real core parses them.
//!
//! - A refresh token is `Active` until a refresh uses it; with rotation on, that refresh marks it
//!   `Superseded(at)` and mints a new `Active` token. A superseded token still refreshes until
//!   `at + grace` (and each such refresh mints another new token, as the emulator does); after
//!   that it is refused with `RefreshTokenReuseException`.
//! - With rotation off, the token is never superseded and no `RefreshToken` comes back.
//! - The lineage ends at its refresh-token validity ("Refresh Token has expired") or when it is
//!   revoked ("Refresh Token has been revoked"); a token Cognito never issued is "Invalid
//!   Refresh Token.".
//! - Access and ID tokens are JWTs whose `iat` is the true second of the grant and `exp` is
//!   `iat + lifetime`; every token string (and the client secret) carries the canary
//!   [`CANARY`], so any leak of one into a log, event or error is found.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use cogref_core::driver::{HttpRequest, HttpResponse};

/// The marker every secret of a simulated world contains.
pub const CANARY: &str = "CNRY7";

/// The state of a refresh token at Cognito.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenState {
    /// Not used yet (or rotation is off).
    Active,
    /// Used by a refresh at this true time (µs); refreshes until the grace period ends.
    Superseded(u64),
}

/// One refresh token Cognito issued.
#[derive(Debug, Clone)]
pub struct RefreshRecord {
    /// The token whose refresh minted this one (`None`: the sign-in's).
    pub parent: Option<usize>,
    /// Its state.
    pub state: TokenState,
    /// Tokens minted by refreshes that used this one.
    pub children: Vec<usize>,
}

/// One access token Cognito issued.
#[derive(Debug, Clone, Copy)]
pub struct AccessRecord {
    /// `exp`, in whole seconds of the true clock (since the simulation's epoch).
    pub exp_s: u64,
}

/// A refresh Cognito granted.
#[derive(Debug, Clone)]
pub struct Grant {
    /// True time of the grant (µs).
    pub at: u64,
    /// The refresh token used.
    pub used: usize,
    /// The refresh token minted (rotation on).
    pub minted: Option<usize>,
    /// The access token issued.
    pub access: usize,
}

/// What Cognito did with one request.
#[derive(Debug, Clone)]
pub enum Answer {
    /// A successful refresh (index into [`Cognito::grants`]).
    Granted(usize),
    /// `RefreshTokenReuseException` for this token.
    Reused(usize),
    /// The lineage is over (revoked or expired).
    LineageOver,
    /// Throttled or a server error: nothing happened.
    Busy,
    /// A request Cognito refused for its shape or an unknown token.
    Refused,
}

/// How the app client is configured.
#[derive(Debug, Clone)]
pub struct CognitoConfig {
    /// Refresh-token rotation.
    pub rotation: bool,
    /// The rotation's grace period (µs), 0..=60 s.
    pub grace_us: u64,
    /// Access- and ID-token lifetime (s); 0 is allowed here (Cognito's floor is 5 min, but
    /// the session must survive whatever comes back).
    pub access_lifetime_s: u64,
    /// When the lineage's refresh tokens expire (true µs).
    pub lineage_end_us: u64,
    /// The app client.
    pub client_id: String,
    /// Its secret, if it has one.
    pub client_secret: Option<String>,
}

/// The simulated service.
#[derive(Debug)]
pub struct Cognito {
    /// Its configuration.
    pub config: CognitoConfig,
    /// Every refresh token issued, by number (0 is the sign-in's).
    pub tokens: Vec<RefreshRecord>,
    /// Every access token issued, by number.
    pub access: Vec<AccessRecord>,
    /// Every granted refresh, in order.
    pub grants: Vec<Grant>,
    /// Revoked at this true time.
    pub revoked_at: Option<u64>,
    /// Requests answered (any outcome).
    pub requests: u64,
    /// The grant (an index into `grants`) that tells the library half its true lifetime
    /// (mutant `short-expires-in`); the records keep the true one.
    pub short_grant: Option<usize>,
    salt: u64,
}

/// The epoch of the true clock, as wall-clock seconds (a date in 2027).
pub const EPOCH_SECS: u64 = 1_800_000_000;

impl Cognito {
    /// A service with one lineage started by a sign-in at time 0.
    pub fn new(config: CognitoConfig, salt: u64) -> Self {
        Self {
            config,
            tokens: vec![RefreshRecord {
                parent: None,
                state: TokenState::Active,
                children: Vec::new(),
            }],
            access: Vec::new(),
            grants: Vec::new(),
            revoked_at: None,
            requests: 0,
            short_grant: None,
            salt: salt & 0xFFFF_FFFF,
        }
    }

    /// The string of refresh token `n`.
    pub fn refresh_token(&self, n: usize) -> String {
        refresh_token_string(n, self.salt)
    }

    /// The number of a refresh token string, if it is one of ours.
    pub fn refresh_number(token: &str) -> Option<usize> {
        let rest = token.strip_prefix(CANARY)?.strip_prefix("rt")?;
        let end = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        rest[..end].parse().ok()
    }

    /// The number of an access token string, if it is one of ours.
    pub fn access_number(token: &str) -> Option<usize> {
        let rest = token.strip_prefix(CANARY)?.strip_prefix("ah")?;
        rest.split('.').next()?.parse().ok()
    }

    /// Whether the lineage is over at `now` (revoked, or its refresh tokens expired).
    pub fn lineage_over(&self, now: u64) -> bool {
        self.revoked_at.is_some_and(|t| t <= now) || now >= self.config.lineage_end_us
    }

    /// Whether token `n` would be refreshed at `now` (active, or superseded within the grace
    /// period, and the lineage alive).
    pub fn usable(&self, n: usize, now: u64) -> bool {
        if self.lineage_over(now) {
            return false;
        }
        match self.tokens.get(n).map(|r| r.state) {
            Some(TokenState::Active) => true,
            Some(TokenState::Superseded(at)) => now < at.saturating_add(self.config.grace_us),
            None => false,
        }
    }

    /// Answers a `GetTokensFromRefreshToken` request arriving at `now` (true µs). `busy`:
    /// throttle (`Some(true)`) or fail with a 5xx (`Some(false)`) instead.
    pub fn handle(
        &mut self,
        now: u64,
        request: &HttpRequest,
        busy: Option<bool>,
    ) -> (HttpResponse, Answer) {
        self.requests += 1;
        match busy {
            Some(true) => {
                return (
                    error(
                        now,
                        400,
                        "TooManyRequestsException",
                        "Rate exceeded",
                        self.requests,
                    ),
                    Answer::Busy,
                );
            }
            Some(false) => {
                let status = if self.requests.is_multiple_of(2) {
                    500
                } else {
                    503
                };
                return (
                    error(
                        now,
                        status,
                        "InternalErrorException",
                        "Internal server error",
                        self.requests,
                    ),
                    Answer::Busy,
                );
            }
            None => {}
        }
        let body: serde_json::Value = match serde_json::from_slice(request.body()) {
            Ok(body) => body,
            Err(_) => {
                return (
                    error(
                        now,
                        400,
                        "SerializationException",
                        "bad body",
                        self.requests,
                    ),
                    Answer::Refused,
                );
            }
        };
        let field = |name: &str| body.get(name).and_then(|v| v.as_str());
        if field("ClientId") != Some(self.config.client_id.as_str()) {
            return (
                error(
                    now,
                    400,
                    "ResourceNotFoundException",
                    "User pool client does not exist.",
                    self.requests,
                ),
                Answer::Refused,
            );
        }
        if field("ClientSecret") != self.config.client_secret.as_deref() {
            return (
                error(
                    now,
                    400,
                    "NotAuthorizedException",
                    "SecretHash does not match for the client: sim",
                    self.requests,
                ),
                Answer::Refused,
            );
        }
        let number = field("RefreshToken")
            .and_then(Self::refresh_number)
            .filter(|n| {
                *n < self.tokens.len() && field("RefreshToken") == Some(&self.refresh_token(*n))
            });
        let Some(n) = number else {
            return (
                error(
                    now,
                    400,
                    "NotAuthorizedException",
                    "Invalid Refresh Token.",
                    self.requests,
                ),
                Answer::Refused,
            );
        };
        if self.revoked_at.is_some_and(|t| t <= now) {
            return (
                error(
                    now,
                    400,
                    "NotAuthorizedException",
                    "Refresh Token has been revoked",
                    self.requests,
                ),
                Answer::LineageOver,
            );
        }
        if now >= self.config.lineage_end_us {
            return (
                error(
                    now,
                    400,
                    "NotAuthorizedException",
                    "Refresh Token has expired",
                    self.requests,
                ),
                Answer::LineageOver,
            );
        }
        if let TokenState::Superseded(at) = self.tokens[n].state
            && now >= at.saturating_add(self.config.grace_us)
        {
            return (
                error(
                    now,
                    400,
                    "RefreshTokenReuseException",
                    "Refresh token has been reused",
                    self.requests,
                ),
                Answer::Reused(n),
            );
        }
        let minted = if self.config.rotation {
            if self.tokens[n].state == TokenState::Active {
                self.tokens[n].state = TokenState::Superseded(now);
            }
            let m = self.tokens.len();
            self.tokens.push(RefreshRecord {
                parent: Some(n),
                state: TokenState::Active,
                children: Vec::new(),
            });
            self.tokens[n].children.push(m);
            Some(m)
        } else {
            None
        };
        let iat = EPOCH_SECS + now / 1_000_000;
        let exp = iat + self.config.access_lifetime_s;
        let access = self.access.len();
        self.access.push(AccessRecord {
            exp_s: exp - EPOCH_SECS,
        });
        self.grants.push(Grant {
            at: now,
            used: n,
            minted,
            access,
        });
        let mut result = serde_json::Map::new();
        let (exp, lifetime_s) = if self.short_grant == Some(self.grants.len() - 1) {
            let half = self.config.access_lifetime_s / 2;
            (iat + half, half)
        } else {
            (exp, self.config.access_lifetime_s)
        };
        result.insert(
            "AccessToken".into(),
            jwt("a", access, iat, exp, self.salt).into(),
        );
        result.insert("ExpiresIn".into(), lifetime_s.min(i32::MAX as u64).into());
        result.insert("TokenType".into(), "Bearer".into());
        result.insert(
            "IdToken".into(),
            jwt("i", access, iat, exp, self.salt).into(),
        );
        if let Some(m) = minted {
            result.insert("RefreshToken".into(), self.refresh_token(m).into());
        }
        let body = serde_json::json!({ "AuthenticationResult": result });
        (
            response(now, 200, body.to_string().into_bytes(), self.requests),
            Answer::Granted(self.grants.len() - 1),
        )
    }
}

/// Refresh token `n` of a Cognito salted `salt`: the canary at both ends and in the middle, so
/// that any piece of it longer than 14 characters shows one.
pub fn refresh_token_string(n: usize, salt: u64) -> String {
    format!("{CANARY}rt{n}{CANARY}x{salt:08x}{CANARY}")
}

/// A JWT of kind `a` (access) or `i` (ID) with its canary in the header and signature parts,
/// and in a claim of its payload (found there by its base64 shapes).
fn jwt(kind: &str, n: usize, iat: u64, exp: u64, salt: u64) -> String {
    let payload = URL_SAFE_NO_PAD.encode(format!(
        r#"{{"sub":"u1","iat":{iat},"exp":{exp},"token_use":"{}","jti":"{kind}{n}","c":"{CANARY}{CANARY}{CANARY}"}}"#,
        if kind == "a" { "access" } else { "id" }
    ));
    format!("{CANARY}{kind}h{n}.{payload}.{CANARY}{kind}s{n}x{salt:08x}")
}

/// A response at true time `now`, with the `Date` header Cognito sends (whole seconds).
fn response(now: u64, status: u16, body: Vec<u8>, id: u64) -> HttpResponse {
    let mut response = http::Response::new(body);
    *response.status_mut() = http::StatusCode::from_u16(status).unwrap_or(http::StatusCode::OK);
    let headers = response.headers_mut();
    headers.insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/x-amz-json-1.1"),
    );
    if let Ok(value) = http::HeaderValue::from_str(&format!("sim-{id:08}")) {
        headers.insert("x-amzn-requestid", value);
    }
    if let Ok(value) = http::HeaderValue::from_str(&imf_fixdate(EPOCH_SECS + now / 1_000_000)) {
        headers.insert(http::header::DATE, value);
    }
    response
}

/// `secs` since the Unix epoch as an HTTP date (IMF-fixdate).
fn imf_fixdate(secs: u64) -> String {
    cogref_core::session::utc::imf_fixdate(
        std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs),
    )
}

fn error(now: u64, status: u16, code: &str, message: &str, id: u64) -> HttpResponse {
    let body = serde_json::json!({ "__type": code, "message": message });
    response(now, status, body.to_string().into_bytes(), id)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(rotation: bool, grace_s: u64) -> CognitoConfig {
        CognitoConfig {
            rotation,
            grace_us: grace_s * 1_000_000,
            access_lifetime_s: 3600,
            lineage_end_us: 100 * 3600 * 1_000_000,
            client_id: "simclient".into(),
            client_secret: None,
        }
    }

    fn request(cognito: &Cognito, n: usize) -> HttpRequest {
        let body =
            serde_json::json!({"ClientId": "simclient", "RefreshToken": cognito.refresh_token(n)});
        http::Request::new(body.to_string().into_bytes())
    }

    #[test]
    fn rotation_supersedes_the_token_used_and_the_grace_period_bounds_its_reuse() {
        let mut c = Cognito::new(config(true, 10), 1);
        let (r, a) = c.handle(1_000_000, &request(&c, 0), None);
        assert_eq!(r.status(), 200);
        assert!(matches!(a, Answer::Granted(0)));
        assert_eq!(c.tokens[0].state, TokenState::Superseded(1_000_000));
        assert!(c.usable(0, 10_999_999) && !c.usable(0, 11_000_000));
        // Inside the grace period the old token refreshes again, minting another token.
        let (_, a) = c.handle(5_000_000, &request(&c, 0), None);
        assert!(matches!(a, Answer::Granted(1)));
        assert_eq!(c.tokens[0].children, vec![1, 2]);
        let (r, a) = c.handle(11_000_000, &request(&c, 0), None);
        assert_eq!(r.status(), 400);
        assert!(matches!(a, Answer::Reused(0)));
        assert!(String::from_utf8_lossy(r.body()).contains("RefreshTokenReuseException"));
    }

    #[test]
    fn without_rotation_the_token_lives_until_the_lineage_ends_or_is_revoked() {
        let mut c = Cognito::new(config(false, 0), 1);
        for t in 0..3 {
            let (r, a) = c.handle(t * 1_000_000, &request(&c, 0), None);
            assert!(matches!(a, Answer::Granted(_)), "{r:?}");
            assert!(!String::from_utf8_lossy(r.body()).contains("RefreshToken"));
        }
        c.revoked_at = Some(5_000_000);
        let (r, a) = c.handle(5_000_000, &request(&c, 0), None);
        assert!(matches!(a, Answer::LineageOver));
        assert!(String::from_utf8_lossy(r.body()).contains("revoked"));
        let mut c = Cognito::new(config(false, 0), 1);
        let end = c.config.lineage_end_us;
        let (r, _) = c.handle(end, &request(&c, 0), None);
        assert!(String::from_utf8_lossy(r.body()).contains("Refresh Token has expired"));
    }

    #[test]
    fn token_strings_carry_the_canary_and_parse_back() {
        let mut c = Cognito::new(config(true, 0), 0xabc);
        assert_eq!(Cognito::refresh_number(&c.refresh_token(17)), Some(17));
        let (r, _) = c.handle(0, &request(&c, 0), None);
        let body: serde_json::Value = serde_json::from_slice(r.body()).expect("json");
        let access = body["AuthenticationResult"]["AccessToken"]
            .as_str()
            .expect("access");
        assert!(access.starts_with(CANARY) && access.ends_with("00000abc"));
        assert_eq!(Cognito::access_number(access), Some(0));
        let claims = cogref_core::jwt::decode_claims(access).expect("claims");
        assert_eq!(
            (claims.iat, claims.exp),
            (Some(EPOCH_SECS as i64), Some(EPOCH_SECS as i64 + 3600))
        );
    }

    #[test]
    fn every_answer_carries_cognitos_clock_in_its_date_header() {
        let mut c = Cognito::new(config(true, 0), 1);
        let (r, _) = c.handle(2_500_000, &request(&c, 0), None);
        let date = r
            .headers()
            .get(http::header::DATE)
            .and_then(|v| v.to_str().ok())
            .expect("a Date header");
        assert_eq!(
            cogref_core::response::http_date(date),
            Some(std::time::UNIX_EPOCH + std::time::Duration::from_secs(EPOCH_SECS + 2))
        );
    }
}
