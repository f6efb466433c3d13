//! The `/_emulator/` routes (documented in `admin_routes.md`): seeding, faults, the clock,
//! signing and counters over HTTP. Input is validated as the service validates its own
//! (ranges, patterns, secret lengths), so that no request can put the emulator in a state the
//! service could not be in, or make it panic.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::http::{refusal, request_id};
use crate::state::{AppClient, Refusal};
use crate::validate::{self, invalid};
use crate::{Fault, MAX_CLOCK_ADVANCE, Shared};

/// Every admin route (method, path), as `admin_routes.md` documents them.
#[cfg(test)]
pub(crate) const ROUTES: &[(&str, &str)] = &[
    ("POST", "/_emulator/pools"),
    ("POST", "/_emulator/clients"),
    ("POST", "/_emulator/users"),
    ("POST", "/_emulator/refresh-tokens"),
    ("POST", "/_emulator/revoke"),
    ("POST", "/_emulator/devices"),
    ("POST", "/_emulator/faults"),
    ("POST", "/_emulator/clock"),
    ("POST", "/_emulator/signing"),
    ("GET", "/_emulator/counters"),
];

pub(crate) fn routes() -> axum::Router<Arc<Shared>> {
    axum::Router::new()
        .route("/_emulator/pools", post(pool))
        .route("/_emulator/clients", post(client))
        .route("/_emulator/users", post(user))
        .route("/_emulator/refresh-tokens", post(mint))
        .route("/_emulator/revoke", post(revoke))
        .route("/_emulator/devices", post(device))
        .route("/_emulator/faults", post(fault))
        .route("/_emulator/clock", post(clock))
        .route("/_emulator/signing", post(signing))
        .route("/_emulator/counters", get(counters))
}

fn answer(result: Result<Value, Refusal>) -> Response {
    match result {
        Ok(value) => axum::Json(value).into_response(),
        Err(r) => refusal(&r, &request_id()),
    }
}

/// The body as `T`; a malformed one is an `InvalidParameterException` naming the problem
/// (serde's message names fields and types, never echoes a value).
fn body<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Refusal> {
    serde_json::from_slice(bytes).map_err(|e| {
        let mut message = e.to_string();
        // serde quotes unknown variants and strings it could not parse; keep only the
        // category and position.
        if let Some(cut) = message.find('`') {
            message.truncate(cut);
        }
        invalid(format!("Invalid request body: {}", message.trim_end()))
    })
}

fn check(ok: bool, message: &str) -> Result<(), Refusal> {
    if ok { Ok(()) } else { Err(invalid(message)) }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PoolBody {
    pool_id: String,
}

async fn pool(State(shared): State<Arc<Shared>>, bytes: Bytes) -> Response {
    answer((|| {
        let b: PoolBody = body(&bytes)?;
        check(
            validate::is_pool_id(&b.pool_id),
            "pool_id must match [\\w-]+_[0-9a-zA-Z]+ and have 1..55 characters",
        )?;
        let now = shared.epoch_now();
        shared.pools().add_pool(&b.pool_id, now);
        Ok(json!({ "pool_id": b.pool_id }))
    })())
}

async fn client(State(shared): State<Arc<Shared>>, bytes: Bytes) -> Response {
    answer((|| {
        let c: AppClient = body(&bytes)?;
        check(
            validate::is_client_id(&c.client_id),
            "client_id must match [\\w+]+ and have 1..128 characters",
        )?;
        if let Some(secret) = &c.client_secret {
            // ClientSecretType: 24..64 characters of [\w+].
            check(
                validate::is_client_secret(secret),
                "client_secret must match [\\w+]+ and have 24..64 characters",
            )?;
        }
        if let Some(r) = c.rotation {
            check(
                r.grace_period_secs <= 60,
                "rotation.grace_period_secs must be 0..60 (RetryGracePeriodSeconds)",
            )?;
        }
        check(
            (300..=86_400).contains(&c.access_token_validity_secs),
            "access_token_validity_secs must be 300..86400 (5 minutes to 1 day)",
        )?;
        check(
            (3_600..=315_360_000).contains(&c.refresh_token_validity_secs),
            "refresh_token_validity_secs must be 3600..315360000 (60 minutes to 10 years)",
        )?;
        for flow in &c.explicit_auth_flows {
            check(
                crate::state::ALL_AUTH_FLOWS.contains(&flow.as_str()),
                "explicit_auth_flows may hold ALLOW_USER_PASSWORD_AUTH, ALLOW_ADMIN_USER_PASSWORD_AUTH, ALLOW_USER_SRP_AUTH, ALLOW_REFRESH_TOKEN_AUTH",
            )?;
        }
        let id = c.client_id.clone();
        let now = shared.epoch_now();
        shared.pools().add_client(c, now)?;
        Ok(json!({ "client_id": id }))
    })())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UserBody {
    pool_id: String,
    username: String,
    #[serde(default)]
    password: Option<String>,
}

async fn user(State(shared): State<Arc<Shared>>, bytes: Bytes) -> Response {
    answer((|| {
        let b: UserBody = body(&bytes)?;
        check(
            validate::is_username(&b.username),
            "username must have 1..128 characters, none of them whitespace or control",
        )?;
        let now = shared.epoch_now();
        let mut pools = shared.pools();
        let sub = pools.add_user(&b.pool_id, &b.username, now)?;
        if let Some(p) = &b.password {
            pools.set_password(&b.pool_id, &b.username, p, true, now)?;
        }
        Ok(json!({ "sub": sub }))
    })())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MintBody {
    client_id: String,
    username: String,
}

async fn mint(State(shared): State<Arc<Shared>>, bytes: Bytes) -> Response {
    answer((|| {
        let b: MintBody = body(&bytes)?;
        let now = shared.now();
        let token = shared.pools().mint(&b.client_id, &b.username, now)?;
        Ok(json!({ "refresh_token": token }))
    })())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RevokeBody {
    refresh_token: String,
}

async fn revoke(State(shared): State<Arc<Shared>>, bytes: Bytes) -> Response {
    answer((|| {
        let b: RevokeBody = body(&bytes)?;
        Ok(json!({ "revoked": shared.pools().revoke(&b.refresh_token) }))
    })())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DeviceBody {
    device_key: String,
}

async fn device(State(shared): State<Arc<Shared>>, bytes: Bytes) -> Response {
    answer((|| {
        let b: DeviceBody = body(&bytes)?;
        check(
            validate::is_device_key(&b.device_key),
            "device_key must match [\\w-]+_[0-9a-f-]+ and have 1..55 characters",
        )?;
        shared.pools().add_device(&b.device_key);
        Ok(json!({ "device_key": b.device_key }))
    })())
}

/// The longest injected delay: long enough for any client timeout, short enough that a typo
/// cannot hang a test run.
const MAX_DELAY_MILLIS: u64 = 300_000;

async fn fault(State(shared): State<Arc<Shared>>, bytes: Bytes) -> Response {
    answer((|| {
        let f: Fault = body(&bytes)?;
        match f {
            Fault::ServerError { status, .. } => {
                check((500..=599).contains(&status), "status must be 500..599")?;
            }
            Fault::Delay { millis, .. } => {
                check(millis <= MAX_DELAY_MILLIS, "millis must be 0..300000")?;
            }
            _ => {}
        }
        shared.inject(f);
        Ok(json!({ "ok": true }))
    })())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ClockBody {
    advance_secs: u64,
}

async fn clock(State(shared): State<Arc<Shared>>, bytes: Bytes) -> Response {
    answer((|| {
        let b: ClockBody = body(&bytes)?;
        // Ten years at a time (the longest refresh-token validity), a hundred in all.
        check(
            b.advance_secs <= 315_360_000,
            "advance_secs must be 0..315360000 (10 years)",
        )?;
        check(
            shared.advance(Duration::from_secs(b.advance_secs)),
            &format!(
                "the clock cannot move more than {} seconds ahead in all",
                MAX_CLOCK_ADVANCE.as_secs()
            ),
        )?;
        Ok(json!({ "now": shared.epoch_now() }))
    })())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SigningBody {
    wall_clock: bool,
}

async fn signing(State(shared): State<Arc<Shared>>, bytes: Bytes) -> Response {
    answer((|| {
        let b: SigningBody = body(&bytes)?;
        shared.set_wall_clock_signing(b.wall_clock);
        Ok(json!({ "wall_clock": b.wall_clock }))
    })())
}

async fn counters(State(shared): State<Arc<Shared>>) -> Response {
    answer(serde_json::to_value(shared.counters()).map_err(|e| invalid(e.to_string())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_is_documented() {
        for (method, path) in ROUTES {
            assert!(
                crate::ADMIN_ROUTES.contains(&format!("{method:<4} {path}")),
                "{method} {path} is missing from admin_routes.md"
            );
        }
    }
}
