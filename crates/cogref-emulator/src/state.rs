//! The emulated user pools: pools, app clients, users, refresh-token lineages, access tokens,
//! devices, sign-in challenges, and the service's rules over them.
//!
//! Every time computation is checked: no input, however absurd, can overflow into a panic.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use rand::Rng;
use rsa::BigUint;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::signer::{Signer, Use};
use crate::srp;

/// Stands for a secret in `Debug` output.
pub(crate) struct Redacted;

impl std::fmt::Debug for Redacted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[REDACTED]")
    }
}

/// Refresh-token rotation of an app client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rotation {
    /// `RetryGracePeriodSeconds`, 0..=60: how long a rotated-out token keeps working.
    pub grace_period_secs: u32,
}

/// The sign-in flows an app client created through the Rust API or the admin route allows:
/// all that the emulator implements. (`CreateUserPoolClient` without `ExplicitAuthFlows` gets
/// the service's default instead: refresh, SRP and custom.)
pub const ALL_AUTH_FLOWS: [&str; 4] = [
    "ALLOW_USER_PASSWORD_AUTH",
    "ALLOW_ADMIN_USER_PASSWORD_AUTH",
    "ALLOW_USER_SRP_AUTH",
    "ALLOW_REFRESH_TOKEN_AUTH",
];

/// An app client's settings (also the body of `POST /_emulator/clients`, which refuses
/// unknown fields). Its `Debug` output never shows the client secret.
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppClient {
    /// The client id.
    pub client_id: String,
    /// The user pool it belongs to.
    pub pool_id: String,
    /// The raw client secret, for confidential clients.
    #[serde(default)]
    pub client_secret: Option<String>,
    /// Rotation on (with its grace period) or off.
    #[serde(default)]
    pub rotation: Option<Rotation>,
    /// Lifetime of access and ID tokens, seconds (Cognito: 300..=86400; default 3600).
    #[serde(default = "default_access_validity")]
    pub access_token_validity_secs: u64,
    /// Lifetime of a refresh-token lineage, seconds (default 30 days).
    #[serde(default = "default_refresh_validity")]
    pub refresh_token_validity_secs: u64,
    /// `ExplicitAuthFlows` (`ALLOW_USER_PASSWORD_AUTH`, …); default [`ALL_AUTH_FLOWS`].
    #[serde(default = "default_flows")]
    pub explicit_auth_flows: Vec<String>,
    /// `EnableTokenRevocation` (default on, as for new clients): tokens carry `jti` and
    /// `origin_jti`, and `RevokeToken` works.
    #[serde(default = "default_true")]
    pub enable_token_revocation: bool,
    /// `PreventUserExistenceErrors`: `ENABLED` (`true`) answers a sign-in of an unknown user
    /// as a wrong password; `LEGACY` (`false`, the API's default) with
    /// `UserNotFoundException`.
    #[serde(default)]
    pub prevent_user_existence_errors: bool,
}

impl std::fmt::Debug for AppClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppClient")
            .field("client_id", &self.client_id)
            .field("pool_id", &self.pool_id)
            .field(
                "client_secret",
                &self.client_secret.as_ref().map(|_| Redacted),
            )
            .field("rotation", &self.rotation)
            .field(
                "access_token_validity_secs",
                &self.access_token_validity_secs,
            )
            .field(
                "refresh_token_validity_secs",
                &self.refresh_token_validity_secs,
            )
            .field("explicit_auth_flows", &self.explicit_auth_flows)
            .field("enable_token_revocation", &self.enable_token_revocation)
            .field(
                "prevent_user_existence_errors",
                &self.prevent_user_existence_errors,
            )
            .finish()
    }
}

fn default_access_validity() -> u64 {
    3600
}

fn default_refresh_validity() -> u64 {
    30 * 86_400
}

fn default_flows() -> Vec<String> {
    ALL_AUTH_FLOWS.iter().map(|f| (*f).to_owned()).collect()
}

fn default_true() -> bool {
    true
}

impl AppClient {
    /// A public client (no secret), rotation off, default lifetimes, every implemented flow,
    /// `PreventUserExistenceErrors` `LEGACY` (the API's default).
    pub fn new(pool_id: impl Into<String>, client_id: impl Into<String>) -> Self {
        Self {
            client_id: client_id.into(),
            pool_id: pool_id.into(),
            client_secret: None,
            rotation: None,
            access_token_validity_secs: default_access_validity(),
            refresh_token_validity_secs: default_refresh_validity(),
            explicit_auth_flows: default_flows(),
            enable_token_revocation: true,
            prevent_user_existence_errors: false,
        }
    }

    /// With `PreventUserExistenceErrors` `ENABLED` (`true`) or `LEGACY` (`false`).
    pub fn with_prevent_user_existence_errors(mut self, prevent: bool) -> Self {
        self.prevent_user_existence_errors = prevent;
        self
    }

    /// With a client secret.
    pub fn with_secret(mut self, secret: impl Into<String>) -> Self {
        self.client_secret = Some(secret.into());
        self
    }

    /// With rotation and this grace period (clamped to 0..=60 s, as Cognito allows).
    pub fn with_rotation(mut self, grace_period_secs: u32) -> Self {
        self.rotation = Some(Rotation {
            grace_period_secs: grace_period_secs.min(60),
        });
        self
    }

    /// With this access and ID token lifetime. The Rust API takes any value (tests use
    /// seconds-long tokens); the HTTP routes hold to the service's range.
    pub fn with_access_validity(mut self, secs: u64) -> Self {
        self.access_token_validity_secs = secs;
        self
    }

    /// With this refresh-token lifetime.
    pub fn with_refresh_validity(mut self, secs: u64) -> Self {
        self.refresh_token_validity_secs = secs;
        self
    }

    /// With exactly these `ExplicitAuthFlows`.
    pub fn with_auth_flows<I, S>(mut self, flows: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.explicit_auth_flows = flows.into_iter().map(Into::into).collect();
        self
    }

    fn allows(&self, flow: &str) -> bool {
        // The legacy names (`USER_PASSWORD_AUTH`, `ADMIN_NO_SRP_AUTH`) still count.
        self.explicit_auth_flows.iter().any(|f| {
            f == flow
                || (flow == "ALLOW_USER_PASSWORD_AUTH" && f == "USER_PASSWORD_AUTH")
                || (flow == "ALLOW_ADMIN_USER_PASSWORD_AUTH" && f == "ADMIN_NO_SRP_AUTH")
        })
    }
}

/// The unit a token validity was given in (`TokenValidityUnits`), kept to describe it back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Unit {
    Seconds,
    Minutes,
    Hours,
    Days,
}

impl Unit {
    pub(crate) fn parse(s: &str) -> Self {
        match s {
            "seconds" => Unit::Seconds,
            "minutes" => Unit::Minutes,
            "days" => Unit::Days,
            _ => Unit::Hours,
        }
    }

    pub(crate) fn secs(self) -> u64 {
        match self {
            Unit::Seconds => 1,
            Unit::Minutes => 60,
            Unit::Hours => 3600,
            Unit::Days => 86_400,
        }
    }

    pub(crate) fn name(self) -> &'static str {
        match self {
            Unit::Seconds => "seconds",
            Unit::Minutes => "minutes",
            Unit::Hours => "hours",
            Unit::Days => "days",
        }
    }
}

/// `AuthSessionValidity`'s default, in minutes: how long a sign-in challenge stays answerable.
pub(crate) const DEFAULT_AUTH_SESSION_MINUTES: u64 = 3;

/// What the standard API adds to an [`AppClient`]. (`Debug` shows the client through
/// [`AppClient`]'s, without its secret.)
#[derive(Debug, Clone)]
pub(crate) struct ClientRecord {
    pub(crate) app: AppClient,
    pub(crate) name: String,
    pub(crate) id_token_validity_secs: u64,
    /// Access, ID, refresh.
    pub(crate) units: [Unit; 3],
    /// `AuthSessionValidity`, minutes (3..=15).
    pub(crate) auth_session_minutes: u64,
    pub(crate) created: u64,
    pub(crate) modified: u64,
}

impl ClientRecord {
    pub(crate) fn from_app(app: AppClient, now: u64) -> Self {
        Self {
            name: app.client_id.clone(),
            id_token_validity_secs: app.access_token_validity_secs,
            units: [Unit::Seconds; 3],
            auth_session_minutes: DEFAULT_AUTH_SESSION_MINUTES,
            created: now,
            modified: now,
            app,
        }
    }

    /// When a challenge issued at `now` stops being answerable.
    fn challenge_expiry(&self, now: SystemTime) -> SystemTime {
        later(now, self.auth_session_minutes.saturating_mul(60))
    }

    /// `UserPoolClientType`, as `DescribeUserPoolClient` answers.
    pub(crate) fn describe(&self) -> Value {
        let [access, id, refresh] = self.units;
        let mut out = json!({
            "UserPoolId": self.app.pool_id,
            "ClientName": self.name,
            "ClientId": self.app.client_id,
            "LastModifiedDate": self.modified,
            "CreationDate": self.created,
            "RefreshTokenValidity": self.app.refresh_token_validity_secs / refresh.secs(),
            "AccessTokenValidity": self.app.access_token_validity_secs / access.secs(),
            "IdTokenValidity": self.id_token_validity_secs / id.secs(),
            "TokenValidityUnits": {
                "AccessToken": access.name(),
                "IdToken": id.name(),
                "RefreshToken": refresh.name(),
            },
            "ExplicitAuthFlows": self.app.explicit_auth_flows,
            "AllowedOAuthFlowsUserPoolClient": false,
            "PreventUserExistenceErrors": if self.app.prevent_user_existence_errors { "ENABLED" } else { "LEGACY" },
            "EnableTokenRevocation": self.app.enable_token_revocation,
            "EnablePropagateAdditionalUserContextData": false,
            "AuthSessionValidity": self.auth_session_minutes,
            "RefreshTokenRotation": match self.app.rotation {
                Some(r) => json!({"Feature": "ENABLED", "RetryGracePeriodSeconds": r.grace_period_secs}),
                None => json!({"Feature": "DISABLED"}),
            },
        });
        if let (Some(secret), Some(map)) = (&self.app.client_secret, out.as_object_mut()) {
            map.insert("ClientSecret".into(), secret.clone().into());
        }
        out
    }
}

/// The password policy of a pool (`PasswordPolicyType`); the service's defaults.
#[derive(Debug, Clone)]
pub(crate) struct PasswordPolicy {
    pub(crate) minimum_length: usize,
    pub(crate) require_uppercase: bool,
    pub(crate) require_lowercase: bool,
    pub(crate) require_numbers: bool,
    pub(crate) require_symbols: bool,
    /// How long a temporary password works, days (1..=365).
    pub(crate) temporary_password_validity_days: u64,
}

/// `TemporaryPasswordValidityDays`' default.
pub(crate) const DEFAULT_TEMPORARY_PASSWORD_DAYS: u64 = 7;

impl Default for PasswordPolicy {
    fn default() -> Self {
        Self {
            minimum_length: 8,
            require_uppercase: true,
            require_lowercase: true,
            require_numbers: true,
            require_symbols: true,
            temporary_password_validity_days: DEFAULT_TEMPORARY_PASSWORD_DAYS,
        }
    }
}

impl PasswordPolicy {
    /// The service's `InvalidPasswordException` wording ("Password did not conform with
    /// policy: …", widely reported, e.g. in Amplify issues).
    fn check(&self, password: &str) -> Result<(), Refusal> {
        let fail = |why: &str| {
            Err(Refusal::new(
                400,
                "InvalidPasswordException",
                format!("Password did not conform with policy: {why}"),
            ))
        };
        if password.chars().count() < self.minimum_length {
            return fail("Password not long enough");
        }
        if self.require_lowercase && !password.chars().any(|c| c.is_lowercase()) {
            return fail("Password must have lowercase characters");
        }
        if self.require_uppercase && !password.chars().any(|c| c.is_uppercase()) {
            return fail("Password must have uppercase characters");
        }
        if self.require_numbers && !password.chars().any(|c| c.is_ascii_digit()) {
            return fail("Password must have numeric characters");
        }
        if self.require_symbols
            && !password
                .chars()
                .any(|c| "^$*.[]{}()?\"!@#%&/\\,><':;|_~`=+- ".contains(c))
        {
            return fail("Password must have symbol characters");
        }
        Ok(())
    }

    pub(crate) fn describe(&self) -> Value {
        json!({
            "MinimumLength": self.minimum_length,
            "RequireUppercase": self.require_uppercase,
            "RequireLowercase": self.require_lowercase,
            "RequireNumbers": self.require_numbers,
            "RequireSymbols": self.require_symbols,
            "TemporaryPasswordValidityDays": self.temporary_password_validity_days,
        })
    }
}

/// `DeviceConfigurationType`, as given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct DeviceConfiguration {
    pub(crate) challenge_required_on_new_device: bool,
    pub(crate) device_only_remembered_on_user_prompt: bool,
}

/// A user pool.
#[derive(Debug, Clone)]
pub(crate) struct Pool {
    pub(crate) id: String,
    pub(crate) name: String,
    /// `DeviceConfiguration`, when a member of it was given ("when you provide a value for any
    /// property of DeviceConfiguration, you activate the device remembering"): sign-ins return
    /// `NewDeviceMetadata`, and each lineage is bound to its device.
    pub(crate) devices: Option<DeviceConfiguration>,
    pub(crate) policy: PasswordPolicy,
    pub(crate) created: u64,
}

impl Pool {
    fn new(id: &str, name: &str, now: u64) -> Self {
        Self {
            id: id.to_owned(),
            name: name.to_owned(),
            devices: None,
            policy: PasswordPolicy::default(),
            created: now,
        }
    }

    fn tracks_devices(&self) -> bool {
        self.devices.is_some()
    }
}

/// The region a pool id names (`us-east-1_AbC` → `us-east-1`): what the service's tokens,
/// ARNs and device keys for that pool carry.
pub(crate) fn region_of(pool_id: &str) -> &str {
    pool_id
        .rsplit_once('_')
        .map_or(pool_id, |(region, _)| region)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum UserStatus {
    Confirmed,
    ForceChangePassword,
}

/// A user of a pool. Its `Debug` output never shows the password.
#[derive(Clone)]
pub(crate) struct User {
    pub(crate) username: String,
    pub(crate) sub: String,
    pub(crate) password: Option<String>,
    /// When the password was set (Unix seconds, the emulator's clock): a temporary one
    /// expires after the pool's `TemporaryPasswordValidityDays`.
    pub(crate) password_set: u64,
    pub(crate) status: UserStatus,
    pub(crate) enabled: bool,
    /// Attributes other than `sub`.
    pub(crate) attributes: Vec<(String, String)>,
    pub(crate) created: u64,
}

impl std::fmt::Debug for User {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("User")
            .field("username", &self.username)
            .field("sub", &self.sub)
            .field("password", &self.password.as_ref().map(|_| Redacted))
            .field("status", &self.status)
            .field("enabled", &self.enabled)
            .field("attributes", &self.attributes)
            .finish_non_exhaustive()
    }
}

impl User {
    pub(crate) fn attributes_json(&self) -> Value {
        let mut list = vec![json!({"Name": "sub", "Value": self.sub})];
        list.extend(
            self.attributes
                .iter()
                .map(|(n, v)| json!({"Name": n, "Value": v})),
        );
        Value::Array(list)
    }

    pub(crate) fn describe(&self) -> Value {
        json!({
            "Username": self.username,
            "Attributes": self.attributes_json(),
            "UserCreateDate": self.created,
            "UserLastModifiedDate": self.created,
            "Enabled": self.enabled,
            "UserStatus": match self.status {
                UserStatus::Confirmed => "CONFIRMED",
                UserStatus::ForceChangePassword => "FORCE_CHANGE_PASSWORD",
            },
        })
    }
}

#[derive(Clone)]
enum TokenState {
    Active,
    /// Rotated out at this instant.
    Superseded(SystemTime),
}

#[derive(Clone)]
struct RefreshRecord {
    client_id: String,
    pool_id: String,
    username: String,
    /// `origin_jti` of every token of the lineage.
    lineage: String,
    auth_time: SystemTime,
    /// Rotation never extends a session: every token of a lineage shares this.
    expires_at: SystemTime,
    state: TokenState,
    /// In a pool that tracks devices, the device the lineage was issued to at sign-in: a
    /// refresh must send its key, and the device must be confirmed.
    device: Option<String>,
}

/// What the emulator remembers of an access token it issued.
#[derive(Clone)]
pub(crate) struct AccessRecord {
    pub(crate) pool_id: String,
    pub(crate) username: String,
    lineage: String,
    expires_at: SystemTime,
    /// Revoked by itself (`AdminDisableUser`), for good.
    revoked: bool,
}

/// A device key the emulator issued or had registered.
#[derive(Clone)]
struct Device {
    confirmed: bool,
    /// The pool and user it was issued to at sign-in; `None` for one registered through the
    /// Rust API or the admin route, which any user of any pool may use.
    owner: Option<(String, String)>,
}

/// A `USER_SRP_AUTH` sign-in waiting for its `PASSWORD_VERIFIER` answer.
struct SrpPending {
    client_id: String,
    pool_id: String,
    username: String,
    a: BigUint,
    b: BigUint,
    big_b: BigUint,
    v: BigUint,
    secret_block: Vec<u8>,
    /// The client's `AuthSessionValidity` after the challenge was issued.
    expires: SystemTime,
}

/// A sign-in waiting for `NEW_PASSWORD_REQUIRED`.
struct ChallengePending {
    client_id: String,
    pool_id: String,
    username: String,
    /// The client's `AuthSessionValidity` after the challenge was issued.
    expires: SystemTime,
}

/// A refusal, as the service words it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code} (HTTP {status}): {message}")]
pub struct Refusal {
    /// HTTP status.
    pub status: u16,
    /// Error code (`x-amzn-errortype` and `__type`).
    pub code: &'static str,
    /// Message.
    pub message: String,
}

impl Refusal {
    pub(crate) fn new(status: u16, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }
}

fn not_authorized(message: impl Into<String>) -> Refusal {
    Refusal::new(400, "NotAuthorizedException", message)
}

fn invalid_parameter(message: impl Into<String>) -> Refusal {
    Refusal::new(400, "InvalidParameterException", message)
}

pub(crate) fn pool_not_found(pool_id: &str) -> Refusal {
    // "User pool eu-west-1_x does not exist." is the service's wording (seen in SDK and CLI
    // reports); ResourceNotFoundException comes back as HTTP 400 (aws/aws-sdk-java#2301,
    // boto/botocore#1756).
    Refusal::new(
        400,
        "ResourceNotFoundException",
        format!("User pool {pool_id} does not exist."),
    )
}

pub(crate) fn client_not_found(client_id: &str) -> Refusal {
    Refusal::new(
        400,
        "ResourceNotFoundException",
        format!("User pool client {client_id} does not exist."),
    )
}

fn user_not_found() -> Refusal {
    Refusal::new(400, "UserNotFoundException", "User does not exist.")
}

/// "Incorrect username or password." is the service's answer to a wrong password and, with
/// `PreventUserExistenceErrors` `ENABLED` (the console's default; the API's is `LEGACY`), to an
/// unknown user.
fn incorrect_credentials() -> Refusal {
    not_authorized("Incorrect username or password.")
}

/// The validated fields of a `GetTokensFromRefreshToken` request.
pub(crate) struct Request<'a> {
    pub(crate) refresh_token: &'a str,
    pub(crate) client_id: &'a str,
    pub(crate) client_secret: Option<&'a str>,
    pub(crate) device_key: Option<&'a str>,
}

/// Time and keys for one decision.
pub(crate) struct Ctx<'a> {
    /// The emulator's clock: expiry, grace periods.
    pub(crate) now: SystemTime,
    /// The time written into `iat`/`exp`/`auth_time` (the emulator's clock, or the wall clock
    /// with wall-clock signing).
    pub(crate) signing_now: SystemTime,
    pub(crate) signer: &'a Signer,
    pub(crate) srp: &'a srp::Group,
}

impl Ctx<'_> {
    /// `t` on the emulator's clock, moved onto the signing clock.
    fn signed(&self, t: SystemTime) -> u64 {
        let skew = secs(self.now) as i128 - secs(self.signing_now) as i128;
        u64::try_from((secs(t) as i128 - skew).max(0)).unwrap_or(0)
    }
}

/// Everything the emulator knows.
#[derive(Default)]
pub(crate) struct Pools {
    pools: HashMap<String, Pool>,
    clients: HashMap<String, ClientRecord>,
    users: HashMap<(String, String), User>,
    tokens: HashMap<String, RefreshRecord>,
    revoked_lineages: HashSet<String>,
    /// Keyed by the token's signature segment.
    access: HashMap<String, AccessRecord>,
    devices: HashMap<String, Device>,
    srp: HashMap<String, SrpPending>,
    challenges: HashMap<String, ChallengePending>,
}

pub(crate) fn secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// `t + secs`, saturating far in the future instead of overflowing.
pub(crate) fn later(t: SystemTime, secs: u64) -> SystemTime {
    t.checked_add(Duration::from_secs(secs))
        .or_else(|| t.checked_add(Duration::from_secs(1 << 40)))
        .unwrap_or(t)
}

pub(crate) fn random_id(len: usize, alphabet: &[u8]) -> String {
    let mut rng = rand::thread_rng();
    (0..len)
        .map(|_| char::from(alphabet[rng.gen_range(0..alphabet.len())]))
        .collect()
}

const ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
const LOWER_ALNUM: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";

pub(crate) fn uuid() -> String {
    let bytes: [u8; 16] = rand::random();
    cogref_core::InvocationId::from_random_bytes(bytes).to_string()
}

/// A refresh token shaped like Cognito's (a JWE: five base64url parts, ~1,700 characters).
fn refresh_token_value() -> String {
    format!(
        "eyJjdHkiOiJKV1QiLCJlbmMiOiJBMjU2R0NNIiwiYWxnIjoiUlNBLU9BRVAifQ.{}.{}.{}.{}",
        random_id(342, ALNUM),
        random_id(16, ALNUM),
        random_id(1_300, ALNUM),
        random_id(22, ALNUM)
    )
}

/// The issuer of a pool's tokens: `https://cognito-idp.{region}.amazonaws.com/{userPoolId}`,
/// the region being the pool's own.
pub(crate) fn issuer(pool_id: &str) -> String {
    format!(
        "https://cognito-idp.{}.amazonaws.com/{pool_id}",
        region_of(pool_id)
    )
}

/// The part of a pool id Cognito's SRP hashes (`eu-west-1_AbC` → `AbC`).
fn pool_name(pool_id: &str) -> &str {
    pool_id.split('_').nth(1).unwrap_or("")
}

impl Pools {
    // ---- pools, clients, users ------------------------------------------------------------

    pub(crate) fn add_pool(&mut self, pool_id: &str, now: u64) {
        self.pools
            .entry(pool_id.to_owned())
            .or_insert_with(|| Pool::new(pool_id, pool_id, now));
    }

    pub(crate) fn create_pool(&mut self, region: &str, pool: Pool) -> Pool {
        let mut pool = pool;
        loop {
            let id = format!("{region}_{}", random_id(9, ALNUM));
            if !self.pools.contains_key(&id) {
                pool.id = id;
                break;
            }
        }
        self.pools.insert(pool.id.clone(), pool.clone());
        pool
    }

    pub(crate) fn pool(&self, pool_id: &str) -> Result<&Pool, Refusal> {
        self.pools
            .get(pool_id)
            .ok_or_else(|| pool_not_found(pool_id))
    }

    pub(crate) fn new_pool(name: &str, now: u64) -> Pool {
        Pool::new("", name, now)
    }

    /// Creates or replaces an app client. A client id stays in the pool it was created in, as
    /// the service's do: moving it would leave its lineages naming a pool their user is not
    /// in.
    pub(crate) fn add_client(&mut self, client: AppClient, now: u64) -> Result<(), Refusal> {
        self.pool(&client.pool_id)?;
        if let Some(existing) = self.clients.get(&client.client_id)
            && existing.app.pool_id != client.pool_id
        {
            return Err(invalid_parameter(format!(
                "App client {} belongs to user pool {}; a client cannot move to another pool",
                client.client_id, existing.app.pool_id
            )));
        }
        let record = ClientRecord::from_app(client, now);
        self.clients.insert(record.app.client_id.clone(), record);
        Ok(())
    }

    pub(crate) fn insert_client(&mut self, record: ClientRecord) {
        self.clients.insert(record.app.client_id.clone(), record);
    }

    pub(crate) fn new_client_id(&self) -> String {
        loop {
            let id = random_id(26, LOWER_ALNUM);
            if !self.clients.contains_key(&id) {
                return id;
            }
        }
    }

    pub(crate) fn new_client_secret() -> String {
        random_id(51, LOWER_ALNUM)
    }

    pub(crate) fn client(&self, client_id: &str) -> Result<&ClientRecord, Refusal> {
        self.clients
            .get(client_id)
            .ok_or_else(|| client_not_found(client_id))
    }

    /// The client, if it belongs to `pool_id`.
    pub(crate) fn client_in(
        &self,
        pool_id: &str,
        client_id: &str,
    ) -> Result<&ClientRecord, Refusal> {
        self.pool(pool_id)?;
        match self.clients.get(client_id) {
            Some(c) if c.app.pool_id == pool_id => Ok(c),
            _ => Err(client_not_found(client_id)),
        }
    }

    pub(crate) fn delete_client(&mut self, pool_id: &str, client_id: &str) -> Result<(), Refusal> {
        self.client_in(pool_id, client_id)?;
        self.clients.remove(client_id);
        Ok(())
    }

    pub(crate) fn delete_pool(&mut self, pool_id: &str) -> Result<(), Refusal> {
        self.pool(pool_id)?;
        self.pools.remove(pool_id);
        self.clients.retain(|_, c| c.app.pool_id != pool_id);
        self.users.retain(|(p, _), _| p != pool_id);
        Ok(())
    }

    /// Creates a confirmed user without a password (it signs in through minted tokens); an
    /// existing user keeps its `sub`.
    pub(crate) fn add_user(
        &mut self,
        pool_id: &str,
        username: &str,
        now: u64,
    ) -> Result<String, Refusal> {
        self.pool(pool_id)?;
        Ok(self
            .users
            .entry((pool_id.to_owned(), username.to_owned()))
            .or_insert_with(|| User {
                username: username.to_owned(),
                sub: uuid(),
                password: None,
                password_set: now,
                status: UserStatus::Confirmed,
                enabled: true,
                attributes: Vec::new(),
                created: now,
            })
            .sub
            .clone())
    }

    /// `AdminCreateUser`.
    pub(crate) fn create_user(
        &mut self,
        pool_id: &str,
        username: &str,
        temporary_password: Option<&str>,
        attributes: Vec<(String, String)>,
        now: u64,
    ) -> Result<Value, Refusal> {
        let pool = self.pool(pool_id)?;
        if let Some(p) = temporary_password {
            pool.policy.check(p)?;
        }
        let key = (pool_id.to_owned(), username.to_owned());
        if self.users.contains_key(&key) {
            return Err(Refusal::new(
                400,
                "UsernameExistsException",
                "User account already exists",
            ));
        }
        let user = User {
            username: username.to_owned(),
            sub: uuid(),
            // Without one the service mails a generated password; here nobody could read it.
            password: Some(
                temporary_password
                    .map_or_else(|| format!("Tmp-{}1a!", random_id(12, ALNUM)), str::to_owned),
            ),
            password_set: now,
            status: UserStatus::ForceChangePassword,
            enabled: true,
            attributes,
            created: now,
        };
        let described = user.describe();
        self.users.insert(key, user);
        Ok(described)
    }

    /// `AdminCreateUser` with `MessageAction` `RESEND`: "resend the invitation message to a
    /// user that already exists and reset the expiration limit on the user's account" (API
    /// reference). Not a creation: an unknown user is `UserNotFoundException`. The invitation
    /// carries the `TemporaryPassword` given, or else the one the user has (here nobody would
    /// read a generated one). A user who is past `FORCE_CHANGE_PASSWORD` has no invitation to
    /// resend: `UnsupportedUserStateException` (the operation's error for a user "in an
    /// unsupported state"; the service's wording is not public).
    pub(crate) fn resend_invitation(
        &mut self,
        pool_id: &str,
        username: &str,
        temporary_password: Option<&str>,
        now: u64,
    ) -> Result<Value, Refusal> {
        let policy = self.pool(pool_id)?.policy.clone();
        let user = self.user_mut(pool_id, username)?;
        if user.status != UserStatus::ForceChangePassword {
            return Err(Refusal::new(
                400,
                "UnsupportedUserStateException",
                format!(
                    "User {} is not in FORCE_CHANGE_PASSWORD status: there is no invitation to resend",
                    user.username
                ),
            ));
        }
        if let Some(p) = temporary_password {
            policy.check(p)?;
            user.password = Some(p.to_owned());
        }
        user.password_set = now;
        Ok(user.describe())
    }

    pub(crate) fn user_mut(&mut self, pool_id: &str, username: &str) -> Result<&mut User, Refusal> {
        self.pool(pool_id)?;
        self.users
            .get_mut(&(pool_id.to_owned(), username.to_owned()))
            .ok_or_else(user_not_found)
    }

    pub(crate) fn user(&self, pool_id: &str, username: &str) -> Result<&User, Refusal> {
        self.pool(pool_id)?;
        self.users
            .get(&(pool_id.to_owned(), username.to_owned()))
            .ok_or_else(user_not_found)
    }

    /// `AdminSetUserPassword`; a password that is not `permanent` is temporary, and its
    /// validity starts `now`.
    pub(crate) fn set_password(
        &mut self,
        pool_id: &str,
        username: &str,
        password: &str,
        permanent: bool,
        now: u64,
    ) -> Result<(), Refusal> {
        self.pool(pool_id)?.policy.check(password)?;
        let user = self.user_mut(pool_id, username)?;
        user.password = Some(password.to_owned());
        user.password_set = now;
        user.status = if permanent {
            UserStatus::Confirmed
        } else {
            UserStatus::ForceChangePassword
        };
        Ok(())
    }

    /// `AdminDeleteUser`: the user's sessions end with it.
    pub(crate) fn delete_user(&mut self, pool_id: &str, username: &str) -> Result<(), Refusal> {
        self.user(pool_id, username)?;
        self.users
            .remove(&(pool_id.to_owned(), username.to_owned()));
        self.revoke_user(pool_id, username);
        Ok(())
    }

    /// `AdminDisableUser` ("deactivates a user profile and revokes all access tokens for the
    /// user", API reference): the access tokens stay revoked when `AdminEnableUser` enables
    /// the user again. The refresh tokens are refused while the user is disabled and work
    /// again afterwards: the reference revokes access tokens only (whether the service also
    /// ends the refresh tokens is not public).
    pub(crate) fn set_enabled(
        &mut self,
        pool_id: &str,
        username: &str,
        enabled: bool,
    ) -> Result<(), Refusal> {
        self.user_mut(pool_id, username)?.enabled = enabled;
        if !enabled {
            for record in self.access.values_mut() {
                if record.pool_id == pool_id && record.username == username {
                    record.revoked = true;
                }
            }
        }
        Ok(())
    }

    /// Registers a confirmed device key any user may use.
    pub(crate) fn add_device(&mut self, device_key: &str) {
        self.devices.insert(
            device_key.to_owned(),
            Device {
                confirmed: true,
                owner: None,
            },
        );
    }

    pub(crate) fn has_pool(&self, pool_id: &str) -> bool {
        self.pools.contains_key(pool_id)
    }

    // ---- lineages -------------------------------------------------------------------------

    /// Starts a lineage for `username` through `client_id`, as a sign-in does; returns the
    /// refresh token and the lineage id.
    fn start_lineage(
        &mut self,
        client: &AppClient,
        username: &str,
        device: Option<String>,
        now: SystemTime,
    ) -> (String, String) {
        let token = refresh_token_value();
        let lineage = uuid();
        self.tokens.insert(
            token.clone(),
            RefreshRecord {
                client_id: client.client_id.clone(),
                pool_id: client.pool_id.clone(),
                username: username.to_owned(),
                lineage: lineage.clone(),
                auth_time: now,
                expires_at: later(now, client.refresh_token_validity_secs),
                state: TokenState::Active,
                device,
            },
        );
        (token, lineage)
    }

    /// Mints a refresh token for `username` as a sign-in would.
    pub(crate) fn mint(
        &mut self,
        client_id: &str,
        username: &str,
        now: SystemTime,
    ) -> Result<String, Refusal> {
        let client = self.client(client_id)?.app.clone();
        if !self
            .users
            .contains_key(&(client.pool_id.clone(), username.to_owned()))
        {
            return Err(user_not_found());
        }
        Ok(self.start_lineage(&client, username, None, now).0)
    }

    /// Revokes every token of the lineage `token` belongs to, and the access tokens issued
    /// from it (as `RevokeToken` does).
    pub(crate) fn revoke(&mut self, token: &str) -> bool {
        let Some(lineage) = self.tokens.get(token).map(|r| r.lineage.clone()) else {
            return false;
        };
        self.revoked_lineages.insert(lineage);
        true
    }

    /// Revokes every lineage of a user (`GlobalSignOut`, `AdminDeleteUser`).
    fn revoke_user(&mut self, pool_id: &str, username: &str) {
        let lineages: Vec<String> = self
            .tokens
            .values()
            .filter(|r| r.pool_id == pool_id && r.username == username)
            .map(|r| r.lineage.clone())
            .collect();
        self.revoked_lineages.extend(lineages);
    }

    /// The client's secret check for operations that take the raw `ClientSecret`
    /// (`GetTokensFromRefreshToken`, `/oauth2/token`). Every message names the secret, so
    /// that a client can tell a configuration fault from a dead token.
    pub(crate) fn check_client_secret(
        client: &AppClient,
        given: Option<&str>,
    ) -> Result<(), Refusal> {
        match (&client.client_secret, given) {
            // The service's wording for a confidential client called without its secret
            // ("Client … is configured for secret but secret was not received", as reported
            // against Cognito's token endpoints; the same check with SECRET_HASH reads "…
            // configured with secret but SECRET_HASH was not received",
            // aws-amplify/amplify-android#2504).
            (Some(_), None) => Err(not_authorized(format!(
                "Client {} is configured for secret but secret was not received",
                client.client_id
            ))),
            // A wrong secret on a refresh: "SecretHash does not match for the client: …" is the
            // service's wording for refreshes (boto/boto3#2736); which text it uses for a wrong
            // raw ClientSecret is not public, and this one names the secret as every secret
            // refusal does.
            (Some(expected), Some(given)) if expected != given => Err(not_authorized(format!(
                "SecretHash does not match for the client: {}",
                client.client_id
            ))),
            // A secret sent to a public client: not pinned down by any public source; the
            // emulator refuses it rather than ignore it, so that a misconfigured client is
            // found locally.
            (None, Some(_)) => Err(not_authorized("Client is not configured with a secret.")),
            _ => Ok(()),
        }
    }

    /// The `SECRET_HASH` check of the sign-in operations: computed over the username (or,
    /// for refreshes, the user's `sub`, which the service accepts where the username is an
    /// alias).
    fn check_secret_hash(
        client: &AppClient,
        given: Option<&str>,
        names: &[&str],
        refresh: bool,
    ) -> Result<(), Refusal> {
        let Some(secret) = &client.client_secret else {
            return Ok(());
        };
        let Some(given) = given else {
            // aws-amplify/amplify-android#2504.
            return Err(not_authorized(format!(
                "Client {} is configured with secret but SECRET_HASH was not received",
                client.client_id
            )));
        };
        if names
            .iter()
            .any(|n| srp::secret_hash(secret, n, &client.client_id) == given)
        {
            return Ok(());
        }
        Err(not_authorized(if refresh {
            // boto/boto3#2736 (REFRESH_TOKEN_AUTH).
            format!(
                "SecretHash does not match for the client: {}",
                client.client_id
            )
        } else {
            // serverless-stack-demo-client#6, aws/aws-sdk-java#1917 (sign-in).
            format!(
                "Unable to verify secret hash for client {}",
                client.client_id
            )
        }))
    }

    /// Whether a refresh with `token` at `ctx.now` is valid; on success rotates (when `rotate`
    /// and the client rotates) and returns the `AuthenticationResult`. A refresh never
    /// registers a device: "GetTokensFromRefreshToken doesn't return NewDeviceMetadata"
    /// (API_AuthenticationResultType), and neither does the emulator's `REFRESH_TOKEN_AUTH`.
    fn refresh_lineage(
        &mut self,
        ctx: &Ctx<'_>,
        client: &ClientRecord,
        token: &str,
        device_key: Option<&str>,
        rotate: bool,
    ) -> Result<Value, Refusal> {
        // "Invalid Refresh Token." with its period: aws/aws-sdk-js-v3#7162.
        let invalid = || not_authorized("Invalid Refresh Token.");
        let record = self.tokens.get(token).cloned().ok_or_else(invalid)?;
        if record.client_id != client.app.client_id {
            return Err(invalid());
        }
        // A lineage bound to a device refreshes only with that device's key, once confirmed:
        // "You must provide the confirmed device key in this request if device remembering is
        // enabled in your user pool" (GetTokensFromRefreshToken, DeviceKey); without it, or
        // with an unconfirmed device, the service answers "Invalid Refresh Token."
        // (aws/aws-sdk-cpp#851, aws/aws-sdk-java#2841, aws-amplify/amplify-android#2506).
        if let Some(bound) = &record.device {
            let confirmed = self.devices.get(bound).is_some_and(|d| d.confirmed);
            if device_key != Some(bound.as_str()) || !confirmed {
                return Err(invalid());
            }
        }
        if self.revoked_lineages.contains(&record.lineage) {
            return Err(not_authorized("Refresh Token has been revoked"));
        }
        if ctx.now >= record.expires_at {
            return Err(not_authorized("Refresh Token has expired"));
        }
        if let TokenState::Superseded(at) = record.state {
            let grace = client
                .app
                .rotation
                .map_or(0, |r| u64::from(r.grace_period_secs));
            if ctx.now >= later(at, grace) {
                return Err(Refusal::new(
                    400,
                    "RefreshTokenReuseException",
                    "Refresh token has been reused",
                ));
            }
        }
        let user = self
            .users
            .get(&(record.pool_id.clone(), record.username.clone()))
            .cloned()
            .ok_or_else(user_not_found)?;
        if !user.enabled {
            return Err(not_authorized("User is disabled."));
        }

        let mut next = None;
        if rotate && client.app.rotation.is_some() {
            if let Some(r) = self.tokens.get_mut(token)
                && matches!(r.state, TokenState::Active)
            {
                r.state = TokenState::Superseded(ctx.now);
            }
            let value = refresh_token_value();
            self.tokens.insert(
                value.clone(),
                RefreshRecord {
                    state: TokenState::Active,
                    ..record.clone()
                },
            );
            next = Some(value);
        }
        Ok(self.issue(
            ctx,
            client,
            &user,
            &record.lineage,
            record.auth_time,
            next,
            None,
        ))
    }

    /// Issues an unconfirmed device key in `pool_id`'s region (`NewDeviceMetadataType`).
    fn new_device(&mut self, pool_id: &str, owner: Option<(String, String)>) -> (String, Value) {
        let key = format!("{}_{}", region_of(pool_id), uuid());
        self.devices.insert(
            key.clone(),
            Device {
                confirmed: false,
                owner,
            },
        );
        let metadata =
            json!({ "DeviceKey": key, "DeviceGroupKey": format!("-{}", random_id(9, ALNUM)) });
        (key, metadata)
    }

    /// The `new_device_metadata` fault: `NewDeviceMetadata` for a new, unconfirmed device,
    /// bound to no lineage, added to a granted refresh of `client_id`'s. The service never
    /// sends it from a refresh; this checks that a client keeps what it is sent.
    pub(crate) fn unsolicited_device(&mut self, client_id: &str) -> Option<Value> {
        let pool_id = self.clients.get(client_id)?.app.pool_id.clone();
        Some(self.new_device(&pool_id, None).1)
    }

    /// Signs an access and an ID token of the lineage; returns `AuthenticationResultType`.
    #[allow(clippy::too_many_arguments)]
    fn issue(
        &mut self,
        ctx: &Ctx<'_>,
        client: &ClientRecord,
        user: &User,
        lineage: &str,
        auth_time: SystemTime,
        refresh_token: Option<String>,
        new_device: Option<Value>,
    ) -> Value {
        let (username, sub, attributes) = (user.username.as_str(), &user.sub, &user.attributes);
        let issuer = issuer(&client.app.pool_id);
        let iat = secs(ctx.signing_now);
        let access_exp = iat.saturating_add(client.app.access_token_validity_secs);
        let id_exp = iat.saturating_add(client.id_token_validity_secs);
        let auth_time = ctx.signed(auth_time);
        let event_id = uuid();
        let revocable = client.app.enable_token_revocation;
        let mut access = json!({
            "sub": sub, "iss": issuer, "client_id": client.app.client_id,
            "event_id": event_id, "token_use": "access", "scope": "aws.cognito.signin.user.admin",
            "auth_time": auth_time, "exp": access_exp, "iat": iat, "username": username,
        });
        let mut id = json!({
            "sub": sub, "aud": client.app.client_id, "iss": issuer, "token_use": "id",
            "auth_time": auth_time, "exp": id_exp, "iat": iat, "event_id": event_id,
            "cognito:username": username,
        });
        if let (Some(a), Some(i)) = (access.as_object_mut(), id.as_object_mut()) {
            if revocable {
                // EnableTokenRevocation adds jti and origin_jti (token-revocation guide).
                a.insert("jti".into(), uuid().into());
                a.insert("origin_jti".into(), lineage.into());
                i.insert("jti".into(), uuid().into());
                i.insert("origin_jti".into(), lineage.into());
            }
            for (name, value) in attributes {
                let value = match value.as_str() {
                    "true" if name.ends_with("_verified") => Value::Bool(true),
                    "false" if name.ends_with("_verified") => Value::Bool(false),
                    _ => Value::String(value.clone()),
                };
                i.insert(name.clone(), value);
            }
        }
        let access = ctx.signer.sign(Use::Access, &access);
        let id = ctx.signer.sign(Use::Id, &id);
        if let Some((_, signature)) = access.rsplit_once('.') {
            self.access.insert(
                signature.to_owned(),
                AccessRecord {
                    pool_id: client.app.pool_id.clone(),
                    username: username.to_owned(),
                    lineage: lineage.to_owned(),
                    expires_at: later(ctx.now, client.app.access_token_validity_secs),
                    revoked: false,
                },
            );
        }
        let mut result = serde_json::Map::new();
        result.insert("AccessToken".into(), access.into());
        // ExpiresIn is an i32 on every client.
        result.insert(
            "ExpiresIn".into(),
            client
                .app
                .access_token_validity_secs
                .min(i32::MAX as u64)
                .into(),
        );
        result.insert("TokenType".into(), "Bearer".into());
        if let Some(r) = refresh_token {
            result.insert("RefreshToken".into(), r.into());
        }
        result.insert("IdToken".into(), id.into());
        if let Some(d) = new_device {
            result.insert("NewDeviceMetadata".into(), d);
        }
        Value::Object(result)
    }

    /// `GetTokensFromRefreshToken`.
    pub(crate) fn refresh(
        &mut self,
        request: &Request<'_>,
        ctx: &Ctx<'_>,
    ) -> Result<Value, Refusal> {
        let client = self.client(request.client_id)?.clone();
        Self::check_client_secret(&client.app, request.client_secret)?;
        self.refresh_lineage(
            ctx,
            &client,
            request.refresh_token,
            request.device_key,
            true,
        )
    }

    /// The `/oauth2/token` refresh grant: rotates like the API. The endpoint takes no device
    /// key, so a lineage bound to a device cannot refresh through it (whether the service's
    /// endpoint lets it is not public; the emulator holds to the binding).
    pub(crate) fn refresh_grant(
        &mut self,
        ctx: &Ctx<'_>,
        client_id: &str,
        client_secret: Option<&str>,
        token: &str,
    ) -> Result<Value, Refusal> {
        let client = self.client(client_id)?.clone();
        Self::check_client_secret(&client.app, client_secret)?;
        self.refresh_lineage(ctx, &client, token, None, true)
    }

    // ---- sign-in --------------------------------------------------------------------------

    /// A completed sign-in: a new lineage and, when the pool tracks devices, the device it is
    /// bound to: the known device whose key the sign-in sent, or a new one (`NewDeviceMetadata`)
    /// that must be confirmed before the lineage can refresh.
    fn signed_in(
        &mut self,
        ctx: &Ctx<'_>,
        client: &ClientRecord,
        user: &User,
        device_key: Option<&str>,
    ) -> Value {
        let pool_id = client.app.pool_id.clone();
        let tracking = self.pools.get(&pool_id).is_some_and(Pool::tracks_devices);
        let owner = (pool_id.clone(), user.username.clone());
        let known = device_key.filter(|k| {
            self.devices
                .get(*k)
                .is_some_and(|d| d.owner.as_ref().is_none_or(|o| *o == owner))
        });
        let (device, new_device) = match known {
            _ if !tracking => (None, None),
            Some(k) => (Some(k.to_owned()), None),
            None => {
                let (key, metadata) = self.new_device(&pool_id, Some(owner));
                (Some(key), Some(metadata))
            }
        };
        let (refresh, lineage) = self.start_lineage(&client.app, &user.username, device, ctx.now);
        let result = self.issue(
            ctx,
            client,
            user,
            &lineage,
            ctx.now,
            Some(refresh),
            new_device,
        );
        json!({ "AuthenticationResult": result, "ChallengeParameters": {} })
    }

    /// A temporary password the pool's `TemporaryPasswordValidityDays` has run out on: "If
    /// the user doesn't sign in during this time, an administrator must reset their password"
    /// (PasswordPolicyType). The wording is the service's as users report it.
    fn check_temporary_password(
        &self,
        ctx: &Ctx<'_>,
        client: &ClientRecord,
        user: &User,
    ) -> Result<(), Refusal> {
        if user.status != UserStatus::ForceChangePassword {
            return Ok(());
        }
        let days = self
            .pools
            .get(&client.app.pool_id)
            .map_or(DEFAULT_TEMPORARY_PASSWORD_DAYS, |p| {
                p.policy.temporary_password_validity_days
            });
        let expires = user
            .password_set
            .saturating_add(days.saturating_mul(86_400));
        if secs(ctx.now) >= expires {
            return Err(not_authorized(
                "Temporary password has expired and must be reset by an administrator.",
            ));
        }
        Ok(())
    }

    fn require_flow(client: &ClientRecord, flow: &str) -> Result<(), Refusal> {
        if client.app.allows(flow) {
            return Ok(());
        }
        // "USER_PASSWORD_AUTH flow not enabled for this client" and "Auth flow not enabled for
        // this client" are the service's InvalidParameterException texts (widely reported).
        Err(invalid_parameter(match flow {
            "ALLOW_USER_PASSWORD_AUTH" => "USER_PASSWORD_AUTH flow not enabled for this client",
            "ALLOW_USER_SRP_AUTH" => "USER_SRP_AUTH is not enabled for the client.",
            _ => "Auth flow not enabled for this client",
        }))
    }

    fn sign_in_user(&self, client: &ClientRecord, username: &str) -> Result<User, Refusal> {
        match self
            .users
            .get(&(client.app.pool_id.clone(), username.to_owned()))
        {
            Some(u) if !u.enabled => Err(not_authorized("User is disabled.")),
            Some(u) => Ok(u.clone()),
            None if client.app.prevent_user_existence_errors => Err(incorrect_credentials()),
            None => Err(user_not_found()),
        }
    }

    fn new_password_challenge(
        &mut self,
        ctx: &Ctx<'_>,
        client: &ClientRecord,
        user: &User,
    ) -> Value {
        let session = random_id(192, ALNUM);
        self.challenges.retain(|_, p| ctx.now < p.expires);
        self.challenges.insert(
            session.clone(),
            ChallengePending {
                client_id: client.app.client_id.clone(),
                pool_id: client.app.pool_id.clone(),
                username: user.username.clone(),
                expires: client.challenge_expiry(ctx.now),
            },
        );
        let attributes: serde_json::Map<String, Value> = user
            .attributes
            .iter()
            .map(|(n, v)| (n.clone(), Value::String(v.clone())))
            .collect();
        json!({
            "ChallengeName": "NEW_PASSWORD_REQUIRED",
            "Session": session,
            "ChallengeParameters": {
                "USER_ID_FOR_SRP": user.username,
                "requiredAttributes": "[]",
                "userAttributes": Value::Object(attributes).to_string(),
            },
        })
    }

    /// `USER_PASSWORD_AUTH` and `ADMIN_USER_PASSWORD_AUTH`.
    pub(crate) fn password_auth(
        &mut self,
        ctx: &Ctx<'_>,
        client_id: &str,
        admin_pool: Option<&str>,
        params: &HashMap<&str, &str>,
    ) -> Result<Value, Refusal> {
        let client = self.auth_client(client_id, admin_pool)?;
        Self::require_flow(
            &client,
            if admin_pool.is_some() {
                "ALLOW_ADMIN_USER_PASSWORD_AUTH"
            } else {
                "ALLOW_USER_PASSWORD_AUTH"
            },
        )?;
        let username = required_param(params, "USERNAME")?;
        let password = required_param(params, "PASSWORD")?;
        Self::check_secret_hash(
            &client.app,
            params.get("SECRET_HASH").copied(),
            &[username],
            false,
        )?;
        let user = self.sign_in_user(&client, username)?;
        if user.password.as_deref() != Some(password) {
            return Err(incorrect_credentials());
        }
        self.check_temporary_password(ctx, &client, &user)?;
        if user.status == UserStatus::ForceChangePassword {
            return Ok(self.new_password_challenge(ctx, &client, &user));
        }
        Ok(self.signed_in(ctx, &client, &user, params.get("DEVICE_KEY").copied()))
    }

    /// `REFRESH_TOKEN_AUTH` (and its alias `REFRESH_TOKEN`): no new refresh token.
    pub(crate) fn refresh_token_auth(
        &mut self,
        ctx: &Ctx<'_>,
        client_id: &str,
        admin_pool: Option<&str>,
        params: &HashMap<&str, &str>,
    ) -> Result<Value, Refusal> {
        let client = self.auth_client(client_id, admin_pool)?;
        if client.app.rotation.is_some() {
            // "Refresh token rotation must be completed with GetTokensFromRefreshToken"
            // (API_RefreshTokenRotationType); the developer guide asks to disable
            // ALLOW_REFRESH_TOKEN_AUTH on such clients. The service's exact error for the call
            // is not public: the emulator answers as for a flow the client does not allow.
            return Err(invalid_parameter(
                "Refresh token rotation is enabled for this client: REFRESH_TOKEN_AUTH flow not enabled for this client; use GetTokensFromRefreshToken",
            ));
        }
        Self::require_flow(&client, "ALLOW_REFRESH_TOKEN_AUTH")?;
        let token = required_param(params, "REFRESH_TOKEN")?;
        if client.app.client_secret.is_some() {
            let (username, sub) = self
                .tokens
                .get(token)
                .and_then(|r| self.users.get(&(r.pool_id.clone(), r.username.clone())))
                .map(|u| (u.username.clone(), u.sub.clone()))
                .unwrap_or_default();
            Self::check_secret_hash(
                &client.app,
                params.get("SECRET_HASH").copied(),
                &[&username, &sub],
                true,
            )?;
        }
        let result = self.refresh_lineage(
            ctx,
            &client,
            token,
            params.get("DEVICE_KEY").copied(),
            false,
        )?;
        Ok(json!({ "AuthenticationResult": result, "ChallengeParameters": {} }))
    }

    fn auth_client(
        &self,
        client_id: &str,
        admin_pool: Option<&str>,
    ) -> Result<ClientRecord, Refusal> {
        Ok(match admin_pool {
            Some(pool) => self.client_in(pool, client_id)?.clone(),
            None => self.client(client_id)?.clone(),
        })
    }

    /// `USER_SRP_AUTH`: answers `PASSWORD_VERIFIER`.
    pub(crate) fn srp_start(
        &mut self,
        ctx: &Ctx<'_>,
        client_id: &str,
        admin_pool: Option<&str>,
        params: &HashMap<&str, &str>,
    ) -> Result<Value, Refusal> {
        let client = self.auth_client(client_id, admin_pool)?;
        Self::require_flow(&client, "ALLOW_USER_SRP_AUTH")?;
        let username = required_param(params, "USERNAME")?;
        let srp_a = required_param(params, "SRP_A")?;
        Self::check_secret_hash(
            &client.app,
            params.get("SECRET_HASH").copied(),
            &[username],
            false,
        )?;
        let a = BigUint::parse_bytes(srp_a.as_bytes(), 16)
            .ok_or_else(|| invalid_parameter("SRP_A is not a hexadecimal number"))?;
        let user = self.sign_in_user(&client, username)?;
        // A user without a password (created through the Rust API) cannot pass; a random
        // verifier makes the proof fail as a wrong password would.
        let password = user
            .password
            .clone()
            .unwrap_or_else(|| random_id(32, ALNUM));
        let salt = BigUint::from_bytes_be(&rand::random::<[u8; 16]>());
        let v = ctx.srp.verifier(
            pool_name(&client.app.pool_id),
            &user.username,
            &password,
            &salt,
        );
        let (b, big_b) = ctx.srp.server_ephemeral(&v);
        let secret_block: Vec<u8> = (0..64).map(|_| rand::random::<u8>()).collect();
        let block = STANDARD.encode(&secret_block);
        self.srp.retain(|_, p| ctx.now < p.expires);
        self.srp.insert(
            block.clone(),
            SrpPending {
                client_id: client.app.client_id.clone(),
                pool_id: client.app.pool_id.clone(),
                username: user.username.clone(),
                a,
                b,
                big_b: big_b.clone(),
                v,
                secret_block,
                expires: client.challenge_expiry(ctx.now),
            },
        );
        Ok(json!({
            "ChallengeName": "PASSWORD_VERIFIER",
            "ChallengeParameters": {
                "SALT": salt.to_str_radix(16),
                "SECRET_BLOCK": block,
                "SRP_B": big_b.to_str_radix(16),
                "USERNAME": user.username,
                "USER_ID_FOR_SRP": user.username,
            },
        }))
    }

    /// `RespondToAuthChallenge` / `AdminRespondToAuthChallenge`.
    pub(crate) fn respond(
        &mut self,
        ctx: &Ctx<'_>,
        client_id: &str,
        challenge: &str,
        session: Option<&str>,
        responses: &HashMap<&str, &str>,
    ) -> Result<Value, Refusal> {
        let client = self.client(client_id)?.clone();
        match challenge {
            "PASSWORD_VERIFIER" => self.password_verifier(ctx, &client, responses),
            "NEW_PASSWORD_REQUIRED" => self.new_password(ctx, &client, session, responses),
            other => Err(invalid_parameter(format!(
                "The challenge {other} is not supported by the cogref emulator"
            ))),
        }
    }

    fn password_verifier(
        &mut self,
        ctx: &Ctx<'_>,
        client: &ClientRecord,
        responses: &HashMap<&str, &str>,
    ) -> Result<Value, Refusal> {
        let username = required_param(responses, "USERNAME")?;
        let block = required_param(responses, "PASSWORD_CLAIM_SECRET_BLOCK")?;
        let signature = required_param(responses, "PASSWORD_CLAIM_SIGNATURE")?;
        let timestamp = required_param(responses, "TIMESTAMP")?;
        Self::check_secret_hash(
            &client.app,
            responses.get("SECRET_HASH").copied(),
            &[username],
            false,
        )?;
        let pending = self
            .srp
            .remove(block)
            .filter(|p| p.client_id == client.app.client_id && p.username == username)
            .filter(|p| ctx.now < p.expires)
            .ok_or_else(|| not_authorized("Invalid session for the user."))?;
        let key = ctx
            .srp
            .session_key(&pending.a, &pending.big_b, &pending.b, &pending.v)
            .ok_or_else(incorrect_credentials)?;
        let expected = srp::claim_signature(
            &key,
            pool_name(&pending.pool_id),
            &pending.username,
            &pending.secret_block,
            timestamp,
        );
        if expected != signature {
            return Err(incorrect_credentials());
        }
        let user = self.sign_in_user(client, &pending.username)?;
        self.check_temporary_password(ctx, client, &user)?;
        if user.status == UserStatus::ForceChangePassword {
            return Ok(self.new_password_challenge(ctx, client, &user));
        }
        Ok(self.signed_in(ctx, client, &user, responses.get("DEVICE_KEY").copied()))
    }

    fn new_password(
        &mut self,
        ctx: &Ctx<'_>,
        client: &ClientRecord,
        session: Option<&str>,
        responses: &HashMap<&str, &str>,
    ) -> Result<Value, Refusal> {
        let new_password = required_param(responses, "NEW_PASSWORD")?;
        let username = required_param(responses, "USERNAME")?;
        Self::check_secret_hash(
            &client.app,
            responses.get("SECRET_HASH").copied(),
            &[username],
            false,
        )?;
        let pending = session
            .and_then(|s| self.challenges.remove(s))
            .filter(|p| p.client_id == client.app.client_id && p.username == username)
            .filter(|p| ctx.now < p.expires)
            .ok_or_else(|| not_authorized("Invalid session for the user, session is expired."))?;
        self.set_password(
            &pending.pool_id,
            &pending.username,
            new_password,
            true,
            secs(ctx.now),
        )?;
        let user = self.user(&pending.pool_id, &pending.username)?.clone();
        Ok(self.signed_in(ctx, client, &user, responses.get("DEVICE_KEY").copied()))
    }

    // ---- access tokens, sign-out, devices -------------------------------------------------

    /// The record of a valid access token.
    pub(crate) fn check_access(&self, ctx: &Ctx<'_>, token: &str) -> Result<AccessRecord, Refusal> {
        let invalid = || not_authorized("Invalid Access Token");
        if !ctx.signer.verify_as(Use::Access, token) {
            return Err(invalid());
        }
        let signature = token.rsplit_once('.').map(|(_, s)| s).unwrap_or_default();
        let record = self.access.get(signature).cloned().ok_or_else(invalid)?;
        if record.revoked || self.revoked_lineages.contains(&record.lineage) {
            return Err(not_authorized("Access Token has been revoked"));
        }
        if ctx.now >= record.expires_at {
            return Err(not_authorized("Access Token has expired"));
        }
        let user = self.user(&record.pool_id, &record.username)?;
        if !user.enabled {
            return Err(not_authorized("User is disabled."));
        }
        Ok(record)
    }

    /// `GlobalSignOut`: every lineage of the user.
    pub(crate) fn global_sign_out(&mut self, ctx: &Ctx<'_>, token: &str) -> Result<(), Refusal> {
        let record = self.check_access(ctx, token)?;
        self.revoke_user(&record.pool_id, &record.username);
        Ok(())
    }

    /// `RevokeToken`: the refresh token's whole lineage and the access tokens issued from it.
    pub(crate) fn revoke_token(
        &mut self,
        client_id: &str,
        client_secret: Option<&str>,
        token: &str,
    ) -> Result<(), Refusal> {
        let client = self.client(client_id)?.clone();
        // RevokeToken models UnauthorizedException, not NotAuthorizedException, for a client
        // that may not revoke; the texts are the emulator's and name the secret.
        let unauthorized = |m: String| Refusal::new(400, "UnauthorizedException", m);
        match (&client.app.client_secret, client_secret) {
            (Some(_), None) => {
                return Err(unauthorized(format!(
                    "Client {} is configured for secret but secret was not received",
                    client.app.client_id
                )));
            }
            (Some(expected), Some(given)) if expected != given => {
                return Err(unauthorized(format!(
                    "Unable to verify secret for client {}",
                    client.app.client_id
                )));
            }
            (None, Some(_)) => {
                return Err(unauthorized(
                    "Client is not configured with a secret.".to_owned(),
                ));
            }
            _ => {}
        }
        if !client.app.enable_token_revocation {
            return Err(Refusal::new(
                400,
                "UnsupportedOperationException",
                "Token revocation is not enabled for this app client",
            ));
        }
        if token.split('.').count() == 3 {
            return Err(Refusal::new(
                400,
                "UnsupportedTokenTypeException",
                "Only refresh tokens can be revoked",
            ));
        }
        match self.tokens.get(token) {
            Some(r) if r.client_id != client.app.client_id => Err(unauthorized(
                "The token was not issued to this client".to_owned(),
            )),
            Some(_) => {
                self.revoke(token);
                Ok(())
            }
            // RFC 7009 §2.2: an invalid token is not an error for revocation.
            None => Ok(()),
        }
    }

    /// `ConfirmDevice`: remembers a device key issued at sign-in to the access token's user.
    pub(crate) fn confirm_device(
        &mut self,
        ctx: &Ctx<'_>,
        token: &str,
        device_key: &str,
    ) -> Result<(), Refusal> {
        let record = self.check_access(ctx, token)?;
        let user = (record.pool_id, record.username);
        match self.devices.get_mut(device_key) {
            Some(device) if device.owner.as_ref().is_none_or(|o| *o == user) => {
                device.confirmed = true;
                Ok(())
            }
            _ => Err(Refusal::new(
                400,
                "ResourceNotFoundException",
                "Device does not exist.",
            )),
        }
    }

    /// Whether a device key is known (issued at sign-in or registered).
    pub(crate) fn has_device(&self, device_key: &str) -> bool {
        self.devices.contains_key(device_key)
    }

    /// `DescribeUserPool`'s `UserPool`, and `CreateUserPool`'s.
    pub(crate) fn describe_pool(&self, pool: &Pool) -> Value {
        let users = self.users.keys().filter(|(p, _)| *p == pool.id).count();
        let mut out = json!({
            "Id": pool.id,
            "Name": pool.name,
            "Arn": format!(
                "arn:aws:cognito-idp:{}:000000000000:userpool/{}",
                region_of(&pool.id),
                pool.id
            ),
            "Policies": { "PasswordPolicy": pool.policy.describe() },
            "LastModifiedDate": pool.created,
            "CreationDate": pool.created,
            "MfaConfiguration": "OFF",
            "EstimatedNumberOfUsers": users,
        });
        if let Some(d) = pool.devices
            && let Some(map) = out.as_object_mut()
        {
            map.insert(
                "DeviceConfiguration".into(),
                json!({
                    "ChallengeRequiredOnNewDevice": d.challenge_required_on_new_device,
                    "DeviceOnlyRememberedOnUserPrompt": d.device_only_remembered_on_user_prompt,
                }),
            );
        }
        out
    }
}

fn required_param<'a>(params: &HashMap<&str, &'a str>, name: &str) -> Result<&'a str, Refusal> {
    // "Missing required parameter USERNAME" is the service's text for a missing auth parameter.
    params
        .get(name)
        .copied()
        .ok_or_else(|| invalid_parameter(format!("Missing required parameter {name}")))
}
