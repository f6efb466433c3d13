//! The emulated user pools: app clients, users, refresh-token lineages, devices, and the rules
//! of `GetTokensFromRefreshToken` over them.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rand::Rng;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::signer::Signer;

/// Refresh-token rotation of an app client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rotation {
    /// `RetryGracePeriodSeconds`, 0..=60: how long a rotated-out token keeps working.
    pub grace_period_secs: u32,
}

/// An app client's settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
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
}

fn default_access_validity() -> u64 {
    3600
}

fn default_refresh_validity() -> u64 {
    30 * 86_400
}

impl AppClient {
    /// A public client (no secret), rotation off, default lifetimes.
    pub fn new(pool_id: impl Into<String>, client_id: impl Into<String>) -> Self {
        Self {
            client_id: client_id.into(),
            pool_id: pool_id.into(),
            client_secret: None,
            rotation: None,
            access_token_validity_secs: default_access_validity(),
            refresh_token_validity_secs: default_refresh_validity(),
        }
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

    /// With this access and ID token lifetime.
    pub fn with_access_validity(mut self, secs: u64) -> Self {
        self.access_token_validity_secs = secs;
        self
    }

    /// With this refresh-token lifetime.
    pub fn with_refresh_validity(mut self, secs: u64) -> Self {
        self.refresh_token_validity_secs = secs;
        self
    }
}

#[derive(Debug, Clone)]
enum TokenState {
    Active,
    /// Rotated out at this instant.
    Superseded(SystemTime),
    Revoked,
}

#[derive(Debug, Clone)]
struct RefreshRecord {
    client_id: String,
    username: String,
    /// `origin_jti` of every token of the lineage.
    lineage: String,
    auth_time: SystemTime,
    /// Rotation never extends a session: every token of a lineage shares this.
    expires_at: SystemTime,
    state: TokenState,
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

/// The validated fields of a request.
pub(crate) struct Request<'a> {
    pub(crate) refresh_token: &'a str,
    pub(crate) client_id: &'a str,
    pub(crate) client_secret: Option<&'a str>,
    pub(crate) device_key: Option<&'a str>,
}

/// Everything the emulator knows.
#[derive(Default)]
pub(crate) struct Pools {
    pools: HashSet<String>,
    clients: HashMap<String, AppClient>,
    users: HashMap<(String, String), String>,
    tokens: HashMap<String, RefreshRecord>,
    devices: HashSet<String>,
}

fn secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

fn random_id(len: usize) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::thread_rng();
    (0..len)
        .map(|_| char::from(ALPHABET[rng.gen_range(0..ALPHABET.len())]))
        .collect()
}

fn uuid() -> String {
    let bytes: [u8; 16] = rand::random();
    cogref_core::InvocationId::from_random_bytes(bytes).to_string()
}

/// A refresh token shaped like Cognito's (a JWE: five base64url parts, ~1,700 characters).
fn refresh_token_value() -> String {
    format!(
        "eyJjdHkiOiJKV1QiLCJlbmMiOiJBMjU2R0NNIiwiYWxnIjoiUlNBLU9BRVAifQ.{}.{}.{}.{}",
        random_id(342),
        random_id(16),
        random_id(1_300),
        random_id(22)
    )
}

impl Pools {
    pub(crate) fn add_pool(&mut self, pool_id: &str) {
        self.pools.insert(pool_id.to_owned());
    }

    pub(crate) fn add_client(&mut self, client: AppClient) -> Result<(), Refusal> {
        if !self.pools.contains(&client.pool_id) {
            return Err(Refusal::new(
                404,
                "ResourceNotFoundException",
                "User pool does not exist.",
            ));
        }
        self.clients.insert(client.client_id.clone(), client);
        Ok(())
    }

    pub(crate) fn add_user(&mut self, pool_id: &str, username: &str) -> Result<String, Refusal> {
        if !self.pools.contains(pool_id) {
            return Err(Refusal::new(
                404,
                "ResourceNotFoundException",
                "User pool does not exist.",
            ));
        }
        // Creating an existing user keeps its sub, as a second sign-up would not change it.
        Ok(self
            .users
            .entry((pool_id.to_owned(), username.to_owned()))
            .or_insert_with(uuid)
            .clone())
    }

    pub(crate) fn add_device(&mut self, device_key: &str) {
        self.devices.insert(device_key.to_owned());
    }

    /// Mints a refresh token for `username` as a sign-in would.
    pub(crate) fn mint(
        &mut self,
        client_id: &str,
        username: &str,
        now: SystemTime,
    ) -> Result<String, Refusal> {
        let client = self.clients.get(client_id).ok_or_else(|| {
            Refusal::new(
                404,
                "ResourceNotFoundException",
                "App client does not exist.",
            )
        })?;
        if !self
            .users
            .contains_key(&(client.pool_id.clone(), username.to_owned()))
        {
            return Err(Refusal::new(
                404,
                "UserNotFoundException",
                "User does not exist.",
            ));
        }
        let token = refresh_token_value();
        let record = RefreshRecord {
            client_id: client_id.to_owned(),
            username: username.to_owned(),
            lineage: uuid(),
            auth_time: now,
            expires_at: now + Duration::from_secs(client.refresh_token_validity_secs),
            state: TokenState::Active,
        };
        self.tokens.insert(token.clone(), record);
        Ok(token)
    }

    /// Revokes every token of the lineage `token` belongs to (as `RevokeToken` does).
    pub(crate) fn revoke(&mut self, token: &str) -> bool {
        let Some(lineage) = self.tokens.get(token).map(|r| r.lineage.clone()) else {
            return false;
        };
        for record in self.tokens.values_mut().filter(|r| r.lineage == lineage) {
            record.state = TokenState::Revoked;
        }
        true
    }

    /// Whether a refresh with `request` at `now` is valid; on success rotates as configured and
    /// returns the `AuthenticationResult` JSON.
    pub(crate) fn refresh(
        &mut self,
        request: &Request<'_>,
        now: SystemTime,
        region: &str,
        signer: &Signer,
    ) -> Result<serde_json::Value, Refusal> {
        let client = self
            .clients
            .get(request.client_id)
            .cloned()
            .ok_or_else(|| {
                Refusal::new(
                    404,
                    "ResourceNotFoundException",
                    format!("User pool client {} does not exist.", request.client_id),
                )
            })?;
        match (&client.client_secret, request.client_secret) {
            (Some(_), None) => {
                return Err(Refusal::new(
                    400,
                    "NotAuthorizedException",
                    format!(
                        "Client {} is configured with secret but ClientSecret was not received",
                        client.client_id
                    ),
                ));
            }
            (Some(expected), Some(given)) if expected != given => {
                return Err(Refusal::new(
                    400,
                    "NotAuthorizedException",
                    "Unable to verify secret for client.",
                ));
            }
            (None, Some(_)) => {
                return Err(Refusal::new(
                    400,
                    "NotAuthorizedException",
                    "Client is not configured with a secret.",
                ));
            }
            _ => {}
        }
        let invalid = || Refusal::new(400, "NotAuthorizedException", "Invalid Refresh Token");
        let record = self
            .tokens
            .get(request.refresh_token)
            .cloned()
            .ok_or_else(invalid)?;
        if record.client_id != client.client_id {
            return Err(invalid());
        }
        match record.state {
            TokenState::Revoked => {
                return Err(Refusal::new(
                    400,
                    "NotAuthorizedException",
                    "Refresh Token has been revoked",
                ));
            }
            _ if now >= record.expires_at => {
                return Err(Refusal::new(
                    400,
                    "NotAuthorizedException",
                    "Refresh Token has expired",
                ));
            }
            TokenState::Superseded(at) => {
                let grace = client.rotation.map_or(Duration::ZERO, |r| {
                    Duration::from_secs(u64::from(r.grace_period_secs))
                });
                if now >= at + grace {
                    return Err(Refusal::new(
                        400,
                        "RefreshTokenReuseException",
                        "Refresh token has been reused",
                    ));
                }
            }
            TokenState::Active => {}
        }
        let sub = self
            .users
            .get(&(client.pool_id.clone(), record.username.clone()))
            .cloned()
            .ok_or_else(|| Refusal::new(404, "UserNotFoundException", "User does not exist."))?;

        let mut result = serde_json::Map::new();
        if client.rotation.is_some() {
            if let Some(r) = self.tokens.get_mut(request.refresh_token)
                && matches!(r.state, TokenState::Active)
            {
                r.state = TokenState::Superseded(now);
            }
            let next = refresh_token_value();
            self.tokens.insert(
                next.clone(),
                RefreshRecord {
                    state: TokenState::Active,
                    ..record.clone()
                },
            );
            result.insert("RefreshToken".into(), next.into());
        }
        match request.device_key {
            Some(key) if self.devices.contains(key) => {}
            Some(_) => {
                let key = format!("{region}_{}", uuid());
                self.devices.insert(key.clone());
                result.insert(
                    "NewDeviceMetadata".into(),
                    json!({ "DeviceKey": key, "DeviceGroupKey": format!("-{}", random_id(9)) }),
                );
            }
            None => {}
        }

        let issuer = format!(
            "https://cognito-idp.{region}.amazonaws.com/{}",
            client.pool_id
        );
        let iat = secs(now);
        let exp = iat + client.access_token_validity_secs;
        let event_id = uuid();
        let access = signer.sign(&json!({
            "sub": sub, "iss": issuer, "client_id": client.client_id, "origin_jti": record.lineage,
            "event_id": event_id, "token_use": "access", "scope": "aws.cognito.signin.user.admin",
            "auth_time": secs(record.auth_time), "exp": exp, "iat": iat, "jti": uuid(),
            "username": record.username,
        }));
        let id = signer.sign(&json!({
            "sub": sub, "aud": client.client_id, "iss": issuer, "token_use": "id",
            "auth_time": secs(record.auth_time), "exp": exp, "iat": iat, "jti": uuid(),
            "origin_jti": record.lineage, "event_id": event_id,
            "cognito:username": record.username,
        }));
        result.insert("AccessToken".into(), access.into());
        result.insert("IdToken".into(), id.into());
        result.insert("ExpiresIn".into(), client.access_token_validity_secs.into());
        result.insert("TokenType".into(), "Bearer".into());
        Ok(serde_json::Value::Object(result))
    }

    pub(crate) fn has_pool(&self, pool_id: &str) -> bool {
        self.pools.contains(pool_id)
    }
}
