//! The standard user-pool operations (AWS JSON 1.1): set-up, sign-in, sign-out, and
//! `GetTokensFromRefreshToken`. Each reads its input through [`Input`] (the model's
//! constraints, the service's wording) and answers with the operation's output shape.

use std::collections::HashMap;

use serde_json::{Value, json};

use crate::Shared;
use crate::state::{
    AppClient, ClientRecord, DEFAULT_AUTH_SESSION_MINUTES, DEFAULT_TEMPORARY_PASSWORD_DAYS,
    DeviceConfiguration, PasswordPolicy, Pools, Refusal, Request, Rotation, Unit,
};
use crate::validate::{self, Input, invalid};

/// Operations served, by `X-Amz-Target` suffix.
pub(crate) const OPERATIONS: &[&str] = &[
    "GetTokensFromRefreshToken",
    "CreateUserPool",
    "DescribeUserPool",
    "DeleteUserPool",
    "CreateUserPoolClient",
    "UpdateUserPoolClient",
    "DescribeUserPoolClient",
    "DeleteUserPoolClient",
    "AdminCreateUser",
    "AdminGetUser",
    "AdminSetUserPassword",
    "AdminDeleteUser",
    "AdminDisableUser",
    "AdminEnableUser",
    "InitiateAuth",
    "AdminInitiateAuth",
    "RespondToAuthChallenge",
    "AdminRespondToAuthChallenge",
    "RevokeToken",
    "GlobalSignOut",
    "GetUser",
    "ConfirmDevice",
];

const AUTH_FLOWS: &[&str] = &[
    "USER_SRP_AUTH",
    "REFRESH_TOKEN_AUTH",
    "REFRESH_TOKEN",
    "CUSTOM_AUTH",
    "ADMIN_NO_SRP_AUTH",
    "USER_PASSWORD_AUTH",
    "ADMIN_USER_PASSWORD_AUTH",
    "USER_AUTH",
];

const CHALLENGES: &[&str] = &[
    "SMS_MFA",
    "EMAIL_OTP",
    "SOFTWARE_TOKEN_MFA",
    "SELECT_MFA_TYPE",
    "MFA_SETUP",
    "PASSWORD_VERIFIER",
    "CUSTOM_CHALLENGE",
    "SELECT_CHALLENGE",
    "DEVICE_SRP_AUTH",
    "DEVICE_PASSWORD_VERIFIER",
    "ADMIN_NO_SRP_AUTH",
    "NEW_PASSWORD_REQUIRED",
    "SMS_OTP",
    "PASSWORD",
    "WEB_AUTHN",
    "PASSWORD_SRP",
];

/// `ExplicitAuthFlowsType` as botocore 1.44.8 (the interop suite's pin) carries it. The
/// token-exchange flows are kept and described; the emulator implements no token exchange.
const EXPLICIT_FLOWS: &[&str] = &[
    "ADMIN_NO_SRP_AUTH",
    "CUSTOM_AUTH_FLOW_ONLY",
    "USER_PASSWORD_AUTH",
    "ALLOW_ADMIN_USER_PASSWORD_AUTH",
    "ALLOW_CUSTOM_AUTH",
    "ALLOW_USER_PASSWORD_AUTH",
    "ALLOW_USER_SRP_AUTH",
    "ALLOW_REFRESH_TOKEN_AUTH",
    "ALLOW_USER_AUTH",
    "ALLOW_TOKEN_EXCHANGE_DELEGATION",
    "ALLOW_TOKEN_EXCHANGE_IMPERSONATION",
];

/// The values of `EXPLICIT_FLOWS` that do not begin with `ALLOW_`.
const LEGACY_FLOWS: &[&str] = &[
    "ADMIN_NO_SRP_AUTH",
    "CUSTOM_AUTH_FLOW_ONLY",
    "USER_PASSWORD_AUTH",
];

const UNITS: &[&str] = &["seconds", "minutes", "hours", "days"];

/// Runs one operation (anything but `GetTokensFromRefreshToken`, which the HTTP layer routes
/// through its faults and counters first).
pub(crate) fn call(shared: &Shared, operation: &str, body: &Value) -> Result<Value, Refusal> {
    let mut input = Input::new(body)?;
    let i = &mut input;
    match operation {
        "CreateUserPool" => create_user_pool(shared, input),
        "DescribeUserPool" | "DeleteUserPool" => {
            let pool_id = i.req_str("UserPoolId", validate::POOL_ID)?;
            input.finish()?;
            let mut pools = shared.pools();
            if operation == "DeleteUserPool" {
                pools.delete_pool(pool_id)?;
                return Ok(json!({}));
            }
            let pool = pools.pool(pool_id)?.clone();
            Ok(json!({ "UserPool": pools.describe_pool(&pool) }))
        }
        "CreateUserPoolClient" | "UpdateUserPoolClient" => {
            client_settings(shared, operation, input)
        }
        "DescribeUserPoolClient" | "DeleteUserPoolClient" => {
            let pool_id = i.req_str("UserPoolId", validate::POOL_ID)?;
            let client_id = i.req_str("ClientId", validate::CLIENT_ID)?;
            input.finish()?;
            let mut pools = shared.pools();
            if operation == "DeleteUserPoolClient" {
                pools.delete_client(pool_id, client_id)?;
                return Ok(json!({}));
            }
            Ok(json!({ "UserPoolClient": pools.client_in(pool_id, client_id)?.describe() }))
        }
        "AdminCreateUser" => admin_create_user(shared, input),
        "AdminGetUser" | "AdminDeleteUser" | "AdminDisableUser" | "AdminEnableUser" => {
            let pool_id = i.req_str("UserPoolId", validate::POOL_ID)?;
            let username = i.req_str("Username", validate::USERNAME)?;
            input.finish()?;
            let mut pools = shared.pools();
            match operation {
                "AdminGetUser" => {
                    let user = pools.user(pool_id, username)?;
                    let mut out = user.describe();
                    if let Some(map) = out.as_object_mut()
                        && let Some(attributes) = map.remove("Attributes")
                    {
                        map.insert("UserAttributes".into(), attributes);
                    }
                    Ok(out)
                }
                "AdminDeleteUser" => pools.delete_user(pool_id, username).map(|()| json!({})),
                "AdminDisableUser" => pools
                    .set_enabled(pool_id, username, false)
                    .map(|()| json!({})),
                _ => pools
                    .set_enabled(pool_id, username, true)
                    .map(|()| json!({})),
            }
        }
        "AdminSetUserPassword" => {
            let pool_id = i.req_str("UserPoolId", validate::POOL_ID)?;
            let username = i.req_str("Username", validate::USERNAME)?;
            let password = i.req_str("Password", validate::PASSWORD)?;
            let permanent = i.opt_bool("Permanent")?.unwrap_or(false);
            input.finish()?;
            let now = shared.epoch_now();
            shared
                .pools()
                .set_password(pool_id, username, password, permanent, now)
                .map(|()| json!({}))
        }
        "InitiateAuth" | "AdminInitiateAuth" => initiate_auth(shared, operation, input),
        "RespondToAuthChallenge" | "AdminRespondToAuthChallenge" => {
            let admin = operation.starts_with("Admin");
            let pool_id = if admin {
                Some(i.req_str("UserPoolId", validate::POOL_ID)?)
            } else {
                None
            };
            let client_id = i.req_str("ClientId", validate::CLIENT_ID)?;
            let challenge = i.enum_str("ChallengeName", CHALLENGES, true)?;
            let session = i.opt_str("Session", validate::SESSION)?;
            let responses = i.opt_str_map("ChallengeResponses", validate::STRING)?;
            let _ = i.opt_str_map("ClientMetadata", validate::STRING)?;
            input.finish()?;
            let responses: HashMap<&str, &str> =
                responses.unwrap_or_default().into_iter().collect();
            let ctx = shared.ctx();
            let mut pools = shared.pools();
            if let Some(pool_id) = pool_id {
                pools.client_in(pool_id, client_id)?;
            }
            pools.respond(
                &ctx,
                client_id,
                challenge.unwrap_or_default(),
                session,
                &responses,
            )
        }
        "RevokeToken" => {
            let token = i.req_str("Token", validate::TOKEN)?;
            let client_id = i.req_str("ClientId", validate::CLIENT_ID)?;
            let secret = i.opt_str("ClientSecret", validate::CLIENT_SECRET)?;
            let _ = i.enum_str("RevokeAssociatedSessions", &["NONE", "LINKED"], false)?;
            input.finish()?;
            shared
                .pools()
                .revoke_token(client_id, secret, token)
                .map(|()| json!({}))
        }
        "GlobalSignOut" | "GetUser" => {
            let token = i.req_str("AccessToken", validate::TOKEN)?;
            input.finish()?;
            let ctx = shared.ctx();
            let mut pools = shared.pools();
            if operation == "GlobalSignOut" {
                return pools.global_sign_out(&ctx, token).map(|()| json!({}));
            }
            let record = pools.check_access(&ctx, token)?;
            let user = pools.user(&record.pool_id, &record.username)?;
            Ok(json!({ "Username": user.username, "UserAttributes": user.attributes_json() }))
        }
        "ConfirmDevice" => {
            let token = i.req_str("AccessToken", validate::TOKEN)?;
            let device_key = i.req_str("DeviceKey", validate::DEVICE_KEY)?;
            i.nested("DeviceSecretVerifierConfig", |c| {
                c.opt_str("PasswordVerifier", validate::STRING)?;
                c.opt_str("Salt", validate::STRING)?;
                Ok(())
            })?;
            let _ = i.opt_str("DeviceName", validate::DEVICE_NAME)?;
            input.finish()?;
            let ctx = shared.ctx();
            shared
                .pools()
                .confirm_device(&ctx, token, device_key)
                // The device is remembered without the user's confirmation.
                .map(|()| json!({ "UserConfirmationNecessary": false }))
        }
        _ => Err(Refusal::new(
            400,
            "UnknownOperationException",
            "Unknown operation",
        )),
    }
}

/// `GetTokensFromRefreshToken`'s input, validated.
pub(crate) fn refresh_request(body: &Value) -> Result<Request<'_>, Refusal> {
    let mut input = Input::new(body)?;
    let refresh_token = input.req_str("RefreshToken", validate::TOKEN)?;
    let client_id = input.req_str("ClientId", validate::CLIENT_ID)?;
    let client_secret = input.opt_str("ClientSecret", validate::CLIENT_SECRET)?;
    let device_key = input.opt_str("DeviceKey", validate::DEVICE_KEY)?;
    let _ = input.opt_str_map("ClientMetadata", validate::STRING)?;
    input.finish()?;
    Ok(Request {
        refresh_token,
        client_id,
        client_secret,
        device_key,
    })
}

fn create_user_pool(shared: &Shared, mut input: Input<'_>) -> Result<Value, Refusal> {
    let name = input.req_str("PoolName", validate::NAME)?;
    let policy = input.nested("Policies", |p| {
        p.nested("PasswordPolicy", |pp| {
            let mut policy = PasswordPolicy::default();
            if let Some(n) = pp.opt_int("MinimumLength", 6, 99)? {
                policy.minimum_length = usize::try_from(n).unwrap_or(8);
            }
            policy.require_uppercase = pp.opt_bool("RequireUppercase")?.unwrap_or(false);
            policy.require_lowercase = pp.opt_bool("RequireLowercase")?.unwrap_or(false);
            policy.require_numbers = pp.opt_bool("RequireNumbers")?.unwrap_or(false);
            policy.require_symbols = pp.opt_bool("RequireSymbols")?.unwrap_or(false);
            // "If you submit a value of 0, Amazon Cognito treats it as a null value and sets
            // TemporaryPasswordValidityDays to its default value" (PasswordPolicyType).
            policy.temporary_password_validity_days =
                match pp.opt_int("TemporaryPasswordValidityDays", 0, 365)? {
                    Some(days @ 1..) => {
                        u64::try_from(days).unwrap_or(DEFAULT_TEMPORARY_PASSWORD_DAYS)
                    }
                    _ => DEFAULT_TEMPORARY_PASSWORD_DAYS,
                };
            Ok(policy)
        })
    })?;
    // "When you provide a value for any property of DeviceConfiguration, you activate the
    // device remembering for the user pool" (DeviceConfigurationType): an empty structure
    // does not.
    let devices = input.nested("DeviceConfiguration", |d| {
        let challenge = d.opt_bool("ChallengeRequiredOnNewDevice")?;
        let on_prompt = d.opt_bool("DeviceOnlyRememberedOnUserPrompt")?;
        Ok(
            (challenge.is_some() || on_prompt.is_some()).then(|| DeviceConfiguration {
                challenge_required_on_new_device: challenge.unwrap_or(false),
                device_only_remembered_on_user_prompt: on_prompt.unwrap_or(false),
            }),
        )
    })?;
    let _ = input.enum_str("MfaConfiguration", &["OFF", "ON", "OPTIONAL"], false)?;
    input.finish()?;
    let mut pool = Pools::new_pool(name, shared.epoch_now());
    if let Some(Some(policy)) = policy {
        pool.policy = policy;
    }
    pool.devices = devices.flatten();
    let mut pools = shared.pools();
    let pool = pools.create_pool(shared.region(), pool);
    Ok(json!({ "UserPool": pools.describe_pool(&pool) }))
}

/// Token validity: a value in units (default hours for access and ID tokens, days for refresh
/// tokens, as the service's defaults are 1 hour and 30 days), checked against the service's
/// ranges (access and ID 5 minutes..1 day, refresh 60 minutes..10 years,
/// API_TokenValidityUnitsType).
fn validity(
    value: Option<i64>,
    unit: Unit,
    default_secs: u64,
    range: (u64, u64),
    what: &str,
) -> Result<u64, Refusal> {
    let secs = match value {
        None | Some(0) => return Ok(default_secs),
        Some(v) => u64::try_from(v).unwrap_or(0).saturating_mul(unit.secs()),
    };
    if secs < range.0 || secs > range.1 {
        return Err(invalid(format!(
            "Invalid range for token validity: {what} token validity must be between {} and {} seconds.",
            range.0, range.1
        )));
    }
    Ok(secs)
}

fn client_settings(
    shared: &Shared,
    operation: &str,
    mut input: Input<'_>,
) -> Result<Value, Refusal> {
    let create = operation == "CreateUserPoolClient";
    let pool_id = input.req_str("UserPoolId", validate::POOL_ID)?;
    let client_id = if create {
        None
    } else {
        Some(input.req_str("ClientId", validate::CLIENT_ID)?)
    };
    let name = if create {
        Some(input.req_str("ClientName", validate::NAME)?)
    } else {
        input.opt_str("ClientName", validate::NAME)?
    };
    let generate_secret = if create {
        input.opt_bool("GenerateSecret")?.unwrap_or(false)
    } else {
        false
    };
    let given_secret = if create {
        input.opt_str("ClientSecret", validate::CLIENT_SECRET)?
    } else {
        None
    };
    let refresh = input.opt_int("RefreshTokenValidity", 0, 315_360_000)?;
    let access = input.opt_int("AccessTokenValidity", 1, 86_400)?;
    let id = input.opt_int("IdTokenValidity", 1, 86_400)?;
    let units = input
        .nested("TokenValidityUnits", |u| {
            Ok([
                u.enum_str("AccessToken", UNITS, false)?,
                u.enum_str("IdToken", UNITS, false)?,
                u.enum_str("RefreshToken", UNITS, false)?,
            ])
        })?
        .unwrap_or([None; 3]);
    let flows = input.opt_enum_list("ExplicitAuthFlows", EXPLICIT_FLOWS)?;
    let prevent = input.enum_str("PreventUserExistenceErrors", &["LEGACY", "ENABLED"], false)?;
    let revocation = input.opt_bool("EnableTokenRevocation")?;
    let auth_session = input.opt_int("AuthSessionValidity", 3, 15)?;
    let rotation = input.nested("RefreshTokenRotation", |r| {
        let feature = r.enum_str("Feature", &["ENABLED", "DISABLED"], true)?;
        let grace = r.opt_int("RetryGracePeriodSeconds", 0, 60)?;
        Ok((feature, grace))
    })?;
    input.finish()?;
    // Rules of the operation beyond the model's constraints; the service's wording of these
    // refusals is not public, so each message quotes the API reference's sentence.
    if generate_secret && given_secret.is_some() {
        return Err(invalid(
            "You cannot specify both GenerateSecret as true and provide a ClientSecret value.",
        ));
    }
    if let Some(flows) = &flows
        && flows.iter().any(|f| LEGACY_FLOWS.contains(f))
        && flows.iter().any(|f| f.starts_with("ALLOW_"))
    {
        return Err(invalid(
            "You can't assign the legacy ExplicitAuthFlows values (ADMIN_NO_SRP_AUTH, CUSTOM_AUTH_FLOW_ONLY, USER_PASSWORD_AUTH) to a user pool client at the same time as values that begin with ALLOW_.",
        ));
    }

    let units = [
        units[0].map_or(Unit::Hours, Unit::parse),
        units[1].map_or(Unit::Hours, Unit::parse),
        units[2].map_or(Unit::Days, Unit::parse),
    ];
    let access = validity(access, units[0], 3600, (300, 86_400), "Access")?;
    let id = validity(id, units[1], 3600, (300, 86_400), "Id")?;
    let refresh = validity(
        refresh,
        units[2],
        30 * 86_400,
        (3600, 315_360_000),
        "Refresh",
    )?;
    let rotation = match rotation {
        Some((Some("ENABLED"), grace)) => Some(Rotation {
            // Range-checked above: 0..=60.
            grace_period_secs: u32::try_from(grace.unwrap_or(0)).unwrap_or(0),
        }),
        _ => None,
    };

    let now = shared.epoch_now();
    let mut pools = shared.pools();
    pools.pool(pool_id)?;
    // UpdateUserPoolClient resets every setting it is not given to its default, as the
    // service does ("If you don't provide a value for an attribute, Amazon Cognito sets it to
    // its default value"), except the name, which it keeps.
    let (client_id, secret, created, name) = match client_id {
        None => (
            pools.new_client_id(),
            given_secret
                .map(str::to_owned)
                .or_else(|| generate_secret.then(Pools::new_client_secret)),
            now,
            name.unwrap_or_default().to_owned(),
        ),
        Some(id) => {
            let existing = pools.client_in(pool_id, id)?;
            (
                id.to_owned(),
                existing.app.client_secret.clone(),
                existing.created,
                name.map_or_else(|| existing.name.clone(), str::to_owned),
            )
        }
    };
    let app = AppClient {
        client_id,
        pool_id: pool_id.to_owned(),
        client_secret: secret,
        rotation,
        access_token_validity_secs: access,
        refresh_token_validity_secs: refresh,
        // Without ExplicitAuthFlows the service allows refresh, SRP and custom
        // authentication (API_CreateUserPoolClient).
        explicit_auth_flows: flows.map_or_else(
            || {
                [
                    "ALLOW_REFRESH_TOKEN_AUTH",
                    "ALLOW_USER_SRP_AUTH",
                    "ALLOW_CUSTOM_AUTH",
                ]
                .map(str::to_owned)
                .to_vec()
            },
            |f| f.into_iter().map(str::to_owned).collect(),
        ),
        enable_token_revocation: revocation.unwrap_or(true),
        // "Defaults to LEGACY" (API_CreateUserPoolClient); ENABLED is the console's default.
        prevent_user_existence_errors: prevent == Some("ENABLED"),
    };
    let record = ClientRecord {
        app,
        name,
        id_token_validity_secs: id,
        units,
        // Range-checked above: 3..=15 minutes.
        auth_session_minutes: auth_session
            .and_then(|m| u64::try_from(m).ok())
            .unwrap_or(DEFAULT_AUTH_SESSION_MINUTES),
        created,
        modified: now,
    };
    let described = record.describe();
    pools.insert_client(record);
    Ok(json!({ "UserPoolClient": described }))
}

fn admin_create_user(shared: &Shared, mut input: Input<'_>) -> Result<Value, Refusal> {
    let pool_id = input.req_str("UserPoolId", validate::POOL_ID)?;
    let username = input.req_str("Username", validate::USERNAME)?;
    let temporary = input.opt_str("TemporaryPassword", validate::PASSWORD)?;
    let action = input.enum_str("MessageAction", &["RESEND", "SUPPRESS"], false)?;
    let attributes = input.opt_attribute_list("UserAttributes")?;
    let _ = input.opt_attribute_list("ValidationData")?;
    input.finish()?;
    let attributes: Vec<(String, String)> = attributes
        .unwrap_or_default()
        .into_iter()
        .map(|(n, v)| (n.to_owned(), v.to_owned()))
        .collect();
    if attributes.iter().any(|(n, _)| n == "sub") {
        return Err(invalid("Cannot modify the non-mutable attribute sub"));
    }
    let now = shared.epoch_now();
    let mut pools = shared.pools();
    let user = if action == Some("RESEND") {
        pools.resend_invitation(pool_id, username, temporary, now)?
    } else {
        pools.create_user(pool_id, username, temporary, attributes, now)?
    };
    Ok(json!({ "User": user }))
}

fn initiate_auth(shared: &Shared, operation: &str, mut input: Input<'_>) -> Result<Value, Refusal> {
    let admin = operation == "AdminInitiateAuth";
    let pool_id = if admin {
        Some(input.req_str("UserPoolId", validate::POOL_ID)?)
    } else {
        None
    };
    let client_id = input.req_str("ClientId", validate::CLIENT_ID)?;
    let flow = input.enum_str("AuthFlow", AUTH_FLOWS, true)?;
    let params = input.opt_str_map("AuthParameters", validate::STRING)?;
    let _ = input.opt_str_map("ClientMetadata", validate::STRING)?;
    let _ = input.opt_str("Session", validate::SESSION)?;
    input.finish()?;
    let params: HashMap<&str, &str> = params.unwrap_or_default().into_iter().collect();
    let ctx = shared.ctx();
    let mut pools = shared.pools();
    match (flow.unwrap_or_default(), admin) {
        ("USER_PASSWORD_AUTH", false)
        | ("ADMIN_USER_PASSWORD_AUTH" | "ADMIN_NO_SRP_AUTH", true) => {
            pools.password_auth(&ctx, client_id, pool_id, &params)
        }
        ("USER_SRP_AUTH", _) => pools.srp_start(&ctx, client_id, pool_id, &params),
        ("REFRESH_TOKEN_AUTH" | "REFRESH_TOKEN", _) => {
            pools.refresh_token_auth(&ctx, client_id, pool_id, &params)
        }
        // The service's text for a flow the operation does not take (e.g. ADMIN_NO_SRP_AUTH
        // through InitiateAuth); custom and choice-based flows are not emulated.
        _ => Err(invalid("Initiate Auth method not supported.")),
    }
}
