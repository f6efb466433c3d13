//! A hostile review of the emulator: each test states a rule of the real service (or a promise
//! of the emulator's own docs) that a real client would see broken, and checks it over HTTP.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use cogref_emulator::{AppClient, Emulator, EmulatorConfig, Fault, Seeded};
use serde_json::{Value, json};

mod common;

use common::{PASSWORD, T, admin, call, claims};

const POOL: &str = "eu-west-1_review";
async fn emulator() -> Emulator {
    let e = Emulator::start(EmulatorConfig::default())
        .await
        .expect("start");
    e.create_pool(POOL);
    e.create_user_with_password(POOL, "alice", PASSWORD)
        .expect("user");
    e
}

async fn password_sign_in(e: &Emulator, client: &str, username: &str) -> Value {
    let a = call(
        e,
        "InitiateAuth",
        json!({"AuthFlow": "USER_PASSWORD_AUTH", "ClientId": client,
               "AuthParameters": {"USERNAME": username, "PASSWORD": PASSWORD}}),
    )
    .await;
    assert_eq!(a.status, 200, "sign-in: {}", a.body);
    a.body
}

/// API_AdminDisableUser: "Deactivates a user profile and revokes all access tokens for the
/// user." Revoked tokens stay revoked: enabling the user again does not bring them back.
#[tokio::test]
async fn a_disabled_users_access_tokens_stay_revoked_after_the_user_is_enabled_again() {
    let e = emulator().await;
    e.create_client(AppClient::new(POOL, "web"))
        .expect("client");
    let signed = password_sign_in(&e, "web", "alice").await;
    let access = signed["AuthenticationResult"]["AccessToken"]
        .as_str()
        .expect("access")
        .to_owned();
    let user = json!({"UserPoolId": POOL, "Username": "alice"});
    assert_eq!(call(&e, "AdminDisableUser", user.clone()).await.status, 200);
    assert_eq!(call(&e, "AdminEnableUser", user).await.status, 200);
    let a = call(&e, "GetUser", json!({"AccessToken": access})).await;
    assert_eq!(
        a.errortype.as_deref(),
        Some("NotAuthorizedException"),
        "an access token revoked by AdminDisableUser works again after AdminEnableUser: {}",
        a.body
    );
}

/// Cognito's issuer is `https://cognito-idp.{region}.amazonaws.com/{userPoolId}` where the
/// region is the pool's own (the prefix of its id). aws-jwt-verify, Amplify and every verifier
/// that derives the issuer from the pool id expect exactly that.
#[tokio::test]
async fn tokens_and_the_openid_configuration_name_the_region_of_their_own_user_pool() {
    let e = emulator().await;
    let pool = "us-east-1_Demo1";
    assert_eq!(admin(&e, "pools", json!({"pool_id": pool})).await.0, 200);
    assert_eq!(
        admin(
            &e,
            "clients",
            json!({"pool_id": pool, "client_id": "usclient"})
        )
        .await
        .0,
        200
    );
    assert_eq!(
        admin(
            &e,
            "users",
            json!({"pool_id": pool, "username": "u", "password": PASSWORD})
        )
        .await
        .0,
        200
    );
    let signed = password_sign_in(&e, "usclient", "u").await;
    let expected = format!("https://cognito-idp.us-east-1.amazonaws.com/{pool}");
    for kind in ["AccessToken", "IdToken"] {
        let token = signed["AuthenticationResult"][kind]
            .as_str()
            .expect("token");
        assert_eq!(claims(token)["iss"], expected, "{kind}");
    }
    let document: Value = reqwest::get(format!(
        "{}/{pool}/.well-known/openid-configuration",
        e.endpoint_url()
    ))
    .await
    .expect("openid configuration")
    .json()
    .await
    .expect("json");
    assert_eq!(document["issuer"], expected);
}

/// admin_routes.md: "a bad body or value is a 400 InvalidParameterException with the reason".
/// Every admin body but the client's refuses unknown fields; a typo in `rotation` silently
/// gives a client without rotation.
#[tokio::test]
async fn the_clients_admin_route_refuses_unknown_fields_like_every_other_admin_route() {
    let e = emulator().await;
    let (status, answer) = admin(
        &e,
        "clients",
        json!({"pool_id": POOL, "client_id": "typo", "rotaton": {"grace_period_secs": 5}}),
    )
    .await;
    assert_eq!(status, 400, "a misspelt field was ignored: {answer}");
    assert_eq!(answer["__type"], "InvalidParameterException");
}

/// docs/emulator.md: "Ctrl-C (SIGINT) or SIGTERM stops it". The binaries await
/// `Emulator::shutdown` after the signal (and ignore any further one), so a shutdown that
/// waits on a client that sent half a request never ends.
#[tokio::test]
async fn shutdown_finishes_while_a_client_has_sent_half_a_request() {
    use tokio::io::AsyncWriteExt;
    let e = emulator().await;
    let mut stuck = tokio::net::TcpStream::connect(e.address())
        .await
        .expect("connect");
    stuck
        .write_all(b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        .await
        .expect("write");
    tokio::time::sleep(Duration::from_millis(200)).await;
    let done = tokio::time::timeout(Duration::from_secs(10), e.shutdown()).await;
    assert!(
        done.is_ok(),
        "shutdown still waiting 10 s later on a half-sent request"
    );
    drop(stuck);
}

/// The same promise with an injected `delay` fault (up to 300 s): the stop a script asked for
/// should not wait for it.
#[tokio::test]
async fn shutdown_does_not_wait_out_an_injected_delay() {
    let e = emulator().await;
    e.create_client(AppClient::new(POOL, "slow"))
        .expect("client");
    let token = e.mint_refresh_token("slow", "alice").expect("mint");
    e.inject(Fault::Delay {
        count: 1,
        millis: 300_000,
    });
    let url = e.endpoint_url();
    let pending = tokio::spawn(async move {
        let _ = reqwest::Client::new()
            .post(url)
            .header("x-amz-target", format!("{T}GetTokensFromRefreshToken"))
            .header("content-type", "application/x-amz-json-1.1")
            .body(json!({"ClientId": "slow", "RefreshToken": token}).to_string())
            .send()
            .await;
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let done = tokio::time::timeout(Duration::from_secs(10), e.shutdown()).await;
    pending.abort();
    assert!(
        done.is_ok(),
        "shutdown waits out the 300 s delay of an injected fault"
    );
}

/// docs/emulator.md: the first refresh token "is written to the token file (mode 0600)".
/// `OpenOptions::mode` applies only when the file is created: an existing world-readable file
/// keeps its mode and now holds a refresh token.
#[cfg(unix)]
#[test]
fn a_refresh_token_file_is_owner_only_even_when_the_file_already_existed() {
    use std::os::unix::fs::PermissionsExt;
    let path = std::env::temp_dir().join(format!(
        "cogref-review-token-{}-{:x}",
        std::process::id(),
        rand_suffix()
    ));
    std::fs::write(&path, b"old").expect("pre-existing file");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let seeded = Seeded {
        refresh_token: "canary-refresh-token".into(),
    };
    seeded.write_refresh_token(&path).expect("write");
    let mode = std::fs::metadata(&path)
        .expect("metadata")
        .permissions()
        .mode();
    let _ = std::fs::remove_file(&path);
    assert_eq!(
        mode & 0o077,
        0,
        "the token file is left with mode {:o}",
        mode & 0o777
    );
}

fn rand_suffix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::from(d.subsec_nanos()))
}

/// API_CreateUserPoolClient, ClientSecret: "You cannot specify both GenerateSecret as true and
/// provide a ClientSecret value."
#[tokio::test]
async fn create_user_pool_client_refuses_generate_secret_together_with_a_client_secret() {
    let e = emulator().await;
    let a = call(
        &e,
        "CreateUserPoolClient",
        json!({"UserPoolId": POOL, "ClientName": "both", "GenerateSecret": true,
               "ClientSecret": "abcdefghijklmnopqrstuvwxyz0123"}),
    )
    .await;
    assert_eq!(a.status, 400, "{}", a.body);
    assert_eq!(a.errortype.as_deref(), Some("InvalidParameterException"));
}

/// API_CreateUserPoolClient, ExplicitAuthFlows: "You can't assign these legacy
/// ExplicitAuthFlows values to user pool clients at the same time as values that begin with
/// ALLOW_".
#[tokio::test]
async fn create_user_pool_client_refuses_legacy_and_allow_flows_together() {
    let e = emulator().await;
    let a = call(
        &e,
        "CreateUserPoolClient",
        json!({"UserPoolId": POOL, "ClientName": "mixed",
               "ExplicitAuthFlows": ["USER_PASSWORD_AUTH", "ALLOW_REFRESH_TOKEN_AUTH"]}),
    )
    .await;
    assert_eq!(a.status, 400, "{}", a.body);
    assert_eq!(a.errortype.as_deref(), Some("InvalidParameterException"));
}

/// ExplicitAuthFlowsType in the model the pinned botocore (1.44.8) carries has
/// ALLOW_TOKEN_EXCHANGE_DELEGATION and ALLOW_TOKEN_EXCHANGE_IMPERSONATION; the emulator's enum
/// list is older and refuses them.
#[tokio::test]
async fn create_user_pool_client_accepts_every_explicit_auth_flow_of_the_model() {
    let e = emulator().await;
    let a = call(
        &e,
        "CreateUserPoolClient",
        json!({"UserPoolId": POOL, "ClientName": "exchange",
               "ExplicitAuthFlows": ["ALLOW_REFRESH_TOKEN_AUTH", "ALLOW_TOKEN_EXCHANGE_DELEGATION",
                                     "ALLOW_TOKEN_EXCHANGE_IMPERSONATION"]}),
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.body);
}

/// API_AdminCreateUser, MessageAction: "Set to RESEND to resend the invitation message to a
/// user that already exists". RESEND is not a creation: it answers the existing user, and an
/// unknown user is UserNotFoundException (in the operation's error list), not a new account.
#[tokio::test]
async fn admin_create_user_resend_answers_an_existing_user_and_refuses_an_unknown_one() {
    let e = emulator().await;
    let created = call(
        &e,
        "AdminCreateUser",
        json!({"UserPoolId": POOL, "Username": "carol", "MessageAction": "SUPPRESS"}),
    )
    .await;
    assert_eq!(created.status, 200, "{}", created.body);
    let resent = call(
        &e,
        "AdminCreateUser",
        json!({"UserPoolId": POOL, "Username": "carol", "MessageAction": "RESEND"}),
    )
    .await;
    assert_eq!(
        resent.status, 200,
        "RESEND to an existing user: {}",
        resent.body
    );
    assert_eq!(resent.body["User"]["Username"], "carol");
    let unknown = call(
        &e,
        "AdminCreateUser",
        json!({"UserPoolId": POOL, "Username": "nobody", "MessageAction": "RESEND"}),
    )
    .await;
    assert_eq!(
        unknown.errortype.as_deref(),
        Some("UserNotFoundException"),
        "RESEND created a user: {}",
        unknown.body
    );
}

/// API_CreateUserPoolClient, AuthSessionValidity (AuthSessionValidityType, 3..15): what was
/// set comes back from Create/DescribeUserPoolClient; the emulator answers 3 whatever was set.
#[tokio::test]
async fn auth_session_validity_is_described_back_as_set() {
    let e = emulator().await;
    let created = call(
        &e,
        "CreateUserPoolClient",
        json!({"UserPoolId": POOL, "ClientName": "slow-typist", "AuthSessionValidity": 15}),
    )
    .await;
    assert_eq!(created.status, 200, "{}", created.body);
    assert_eq!(created.body["UserPoolClient"]["AuthSessionValidity"], 15);
}

/// API_CreateUserPoolClient, AuthSessionValidity: "the duration, in minutes, of that session
/// token. Your user pool native user must respond to each authentication challenge before the
/// session expires." The emulator expires every challenge after 3 minutes.
#[tokio::test]
async fn challenge_sessions_last_the_clients_auth_session_validity() {
    let e = emulator().await;
    let created = call(
        &e,
        "CreateUserPoolClient",
        json!({"UserPoolId": POOL, "ClientName": "slow-typist", "AuthSessionValidity": 15,
               "ExplicitAuthFlows": ["ALLOW_USER_PASSWORD_AUTH", "ALLOW_REFRESH_TOKEN_AUTH"]}),
    )
    .await;
    assert_eq!(created.status, 200, "{}", created.body);
    let client = created.body["UserPoolClient"]["ClientId"]
        .as_str()
        .expect("id")
        .to_owned();
    let user = call(
        &e,
        "AdminCreateUser",
        json!({"UserPoolId": POOL, "Username": "dave", "TemporaryPassword": "Tmp-Passw0rd!",
               "MessageAction": "SUPPRESS"}),
    )
    .await;
    assert_eq!(user.status, 200, "{}", user.body);
    let challenge = call(
        &e,
        "InitiateAuth",
        json!({"AuthFlow": "USER_PASSWORD_AUTH", "ClientId": client,
               "AuthParameters": {"USERNAME": "dave", "PASSWORD": "Tmp-Passw0rd!"}}),
    )
    .await;
    assert_eq!(challenge.body["ChallengeName"], "NEW_PASSWORD_REQUIRED");
    let session = challenge.body["Session"]
        .as_str()
        .expect("session")
        .to_owned();
    assert!(e.advance_clock(Duration::from_secs(5 * 60)));
    let answered = call(
        &e,
        "RespondToAuthChallenge",
        json!({"ClientId": client, "ChallengeName": "NEW_PASSWORD_REQUIRED", "Session": session,
               "ChallengeResponses": {"USERNAME": "dave", "NEW_PASSWORD": "New-Passw0rd!"}}),
    )
    .await;
    assert_eq!(
        answered.status, 200,
        "answered after 5 of 15 minutes: {}",
        answered.body
    );
}

/// CreateUserPool's settings come back from DescribeUserPool as they were given
/// (DeviceConfiguration, TemporaryPasswordValidityDays); infrastructure tools compare them and
/// would report a drift on every run.
#[tokio::test]
async fn create_user_pool_settings_are_described_back_as_given() {
    let e = emulator().await;
    let created = call(
        &e,
        "CreateUserPool",
        json!({"PoolName": "described",
               "Policies": {"PasswordPolicy": {"MinimumLength": 10, "TemporaryPasswordValidityDays": 2}},
               "DeviceConfiguration": {"ChallengeRequiredOnNewDevice": true,
                                       "DeviceOnlyRememberedOnUserPrompt": true}}),
    )
    .await;
    assert_eq!(created.status, 200, "{}", created.body);
    let pool = &created.body["UserPool"];
    let mut drift = Vec::new();
    let days = &pool["Policies"]["PasswordPolicy"]["TemporaryPasswordValidityDays"];
    if *days != 2 {
        drift.push(format!("TemporaryPasswordValidityDays {days}, set 2"));
    }
    let devices = &pool["DeviceConfiguration"];
    let set =
        json!({"ChallengeRequiredOnNewDevice": true, "DeviceOnlyRememberedOnUserPrompt": true});
    if *devices != set {
        drift.push(format!("DeviceConfiguration {devices}, set {set}"));
    }
    assert!(drift.is_empty(), "{drift:?}");
}

/// With device tracking, refresh tokens are bound to the device they were issued with:
/// API_GetTokensFromRefreshToken, DeviceKey: "You must provide the confirmed device key in
/// this request if device remembering is enabled in your user pool"; field reports of the
/// service's "Invalid Refresh Token." without it or with an unconfirmed device
/// (aws/aws-sdk-cpp#851, aws/aws-sdk-java#2841, aws-sdk-net-extensions-cognito#85,
/// aws-amplify/amplify-android#2506: "cognito mandates all new devices ... to be confirmed
/// using the ConfirmDevice API call otherwise they will not let the refresh token refresh").
/// An app that drops the device key (Amplify in Node without `navigator`, which the emulator's
/// docs mention) works locally and logs its users out in production.
#[tokio::test]
async fn device_bound_refresh_tokens_need_their_confirmed_device_key() {
    let e = emulator().await;
    let pool = call(
        &e,
        "CreateUserPool",
        json!({"PoolName": "devices",
               "DeviceConfiguration": {"ChallengeRequiredOnNewDevice": false,
                                       "DeviceOnlyRememberedOnUserPrompt": false}}),
    )
    .await;
    let pool_id = pool.body["UserPool"]["Id"]
        .as_str()
        .expect("pool")
        .to_owned();
    let client = call(
        &e,
        "CreateUserPoolClient",
        json!({"UserPoolId": pool_id, "ClientName": "app",
               "ExplicitAuthFlows": ["ALLOW_USER_PASSWORD_AUTH", "ALLOW_REFRESH_TOKEN_AUTH"]}),
    )
    .await;
    let client_id = client.body["UserPoolClient"]["ClientId"]
        .as_str()
        .expect("client")
        .to_owned();
    e.create_user_with_password(&pool_id, "erin", PASSWORD)
        .expect("user");

    // Signed in, device never confirmed: the refresh token does not refresh.
    let unconfirmed = password_sign_in(&e, &client_id, "erin").await;
    let result = &unconfirmed["AuthenticationResult"];
    let key = result["NewDeviceMetadata"]["DeviceKey"]
        .as_str()
        .expect("device key")
        .to_owned();
    let a = call(
        &e,
        "GetTokensFromRefreshToken",
        json!({"ClientId": client_id, "RefreshToken": result["RefreshToken"], "DeviceKey": key}),
    )
    .await;
    assert_eq!(
        a.errortype.as_deref(),
        Some("NotAuthorizedException"),
        "an unconfirmed device refreshed: {}",
        a.body
    );

    // Confirmed device, but the refresh leaves its key out.
    let signed = password_sign_in(&e, &client_id, "erin").await;
    let result = &signed["AuthenticationResult"];
    let key = result["NewDeviceMetadata"]["DeviceKey"]
        .as_str()
        .expect("device key");
    let confirmed = call(
        &e,
        "ConfirmDevice",
        json!({"AccessToken": result["AccessToken"], "DeviceKey": key, "DeviceName": "review"}),
    )
    .await;
    assert_eq!(confirmed.status, 200, "{}", confirmed.body);
    let a = call(
        &e,
        "GetTokensFromRefreshToken",
        json!({"ClientId": client_id, "RefreshToken": result["RefreshToken"]}),
    )
    .await;
    assert_eq!(
        a.errortype.as_deref(),
        Some("NotAuthorizedException"),
        "a device-bound refresh token refreshed without its device key: {}",
        a.body
    );
}

/// Cognito's token endpoint takes `Authorization: Basic Base64Encode(client_id:client_secret)`
/// (token-endpoint and revocation-endpoint docs), the raw secret. ClientSecretType allows `+`
/// (`[\w+]+`); the emulator form-decodes the Basic credentials, turns `+` into a space and
/// refuses the right secret.
#[tokio::test]
async fn oauth2_basic_credentials_carry_the_raw_client_secret() {
    let e = emulator().await;
    let secret = "abcdefghijkl+mnopqrstuvwxyz0123";
    e.create_client(AppClient::new(POOL, "plus").with_secret(secret))
        .expect("client");
    let token = e.mint_refresh_token("plus", "alice").expect("mint");
    let r = reqwest::Client::new()
        .post(format!("{}/oauth2/token", e.endpoint_url()))
        .header("content-type", "application/x-www-form-urlencoded")
        .header(
            "authorization",
            format!("Basic {}", STANDARD.encode(format!("plus:{secret}"))),
        )
        .body(format!("grant_type=refresh_token&refresh_token={token}"))
        .send()
        .await
        .expect("token endpoint");
    let status = r.status().as_u16();
    let body: Value = r.json().await.unwrap_or_default();
    assert_eq!(status, 200, "{body}");
}

/// "Creates or replaces an app client" must not let a client id change pools: lineages keep
/// their pool, so a token minted in pool A then refreshes through the client's new pool B as a
/// user B does not have (`sub` "", `iss` naming pool B), and GetUser with that access token
/// answers UserNotFoundException. The service never moves a client between pools.
#[tokio::test]
async fn the_clients_admin_route_cannot_move_a_client_into_another_pool() {
    let e = emulator().await;
    for pool in ["eu-west-1_PoolA", "eu-west-1_PoolB"] {
        assert_eq!(admin(&e, "pools", json!({"pool_id": pool})).await.0, 200);
    }
    assert_eq!(
        admin(
            &e,
            "clients",
            json!({"pool_id": "eu-west-1_PoolA", "client_id": "shared"})
        )
        .await
        .0,
        200
    );
    assert_eq!(
        admin(
            &e,
            "users",
            json!({"pool_id": "eu-west-1_PoolA", "username": "zed"})
        )
        .await
        .0,
        200
    );
    let token = e.mint_refresh_token("shared", "zed").expect("mint");
    let (moved, answer) = admin(
        &e,
        "clients",
        json!({"pool_id": "eu-west-1_PoolB", "client_id": "shared"}),
    )
    .await;
    if moved != 200 {
        return; // Refused: the state below cannot arise.
    }
    let a = call(
        &e,
        "GetTokensFromRefreshToken",
        json!({"ClientId": "shared", "RefreshToken": token}),
    )
    .await;
    if a.status == 200 {
        let access = a.body["AuthenticationResult"]["AccessToken"]
            .as_str()
            .expect("access");
        let c = claims(access);
        assert!(
            c["sub"].as_str().is_some_and(|s| !s.is_empty())
                && c["iss"]
                    .as_str()
                    .is_some_and(|i| i.ends_with("eu-west-1_PoolA")),
            "moved client {answer}: refresh issued sub {} iss {}",
            c["sub"],
            c["iss"]
        );
    }
}

/// The service names list members by their 1-based index: "Value 'phone_number_verified' at
/// 'schema.1.member.name' failed to satisfy constraint" (quoted from the service in
/// aws/aws-cdk#14699), and a missing member is "Value null at …". The emulator writes
/// "Value at 'userAttributes.member.name' … Member must not be null".
#[tokio::test]
async fn validation_names_list_members_by_their_one_based_index() {
    let e = emulator().await;
    let a = call(
        &e,
        "AdminCreateUser",
        json!({"UserPoolId": POOL, "Username": "frank",
               "UserAttributes": [{"Name": "email", "Value": "f@example.com"}, {"Value": "x"}]}),
    )
    .await;
    let message = a.body["message"].as_str().unwrap_or("");
    assert!(
        message.contains(
            "Value null at 'userAttributes.2.member.name' failed to satisfy constraint: Member must not be null"
        ),
        "{message}"
    );
}

/// The service reports every constraint violation of a request in one message ("2 validation
/// errors detected: …; …", the form validate.rs itself implements). Checks made outside that
/// collection (ExplicitAuthFlows' enum, UserAttributes) hide the others.
#[tokio::test]
async fn every_violation_of_a_request_is_counted_in_one_message() {
    let e = emulator().await;
    let a = call(
        &e,
        "CreateUserPoolClient",
        json!({"UserPoolId": POOL, "ClientName": "bad name!", "ExplicitAuthFlows": ["BOGUS"]}),
    )
    .await;
    let message = a.body["message"].as_str().unwrap_or("");
    assert!(
        message.starts_with("2 validation errors detected: ")
            && message.contains("'clientName'")
            && message.contains("'explicitAuthFlows'"),
        "{message}"
    );
    let a = call(
        &e,
        "AdminCreateUser",
        json!({"UserPoolId": POOL, "Username": "two words", "UserAttributes": [{"Value": "x"}]}),
    )
    .await;
    let message = a.body["message"].as_str().unwrap_or("");
    assert!(
        message.starts_with("2 validation errors detected: ") && message.contains("'username'"),
        "{message}"
    );
}

/// API_CreateUserPoolClient, PreventUserExistenceErrors: "When set to LEGACY, those APIs
/// return a UserNotFoundException exception if the user doesn't exist in the user pool.
/// Defaults to LEGACY." (ENABLED is the console's default, not the API's.) A client created
/// through the API without the member describes LEGACY, and sign-in of an unknown user is
/// UserNotFoundException, which Amplify and apps tell apart from a wrong password.
#[tokio::test]
async fn clients_created_through_the_api_default_to_legacy_user_existence_errors() {
    let e = emulator().await;
    let created = call(
        &e,
        "CreateUserPoolClient",
        json!({"UserPoolId": POOL, "ClientName": "defaults",
               "ExplicitAuthFlows": ["ALLOW_USER_PASSWORD_AUTH", "ALLOW_REFRESH_TOKEN_AUTH"]}),
    )
    .await;
    assert_eq!(created.status, 200, "{}", created.body);
    let client = &created.body["UserPoolClient"];
    assert_eq!(client["PreventUserExistenceErrors"], "LEGACY");
    let a = call(
        &e,
        "InitiateAuth",
        json!({"AuthFlow": "USER_PASSWORD_AUTH", "ClientId": client["ClientId"],
               "AuthParameters": {"USERNAME": "nobody", "PASSWORD": PASSWORD}}),
    )
    .await;
    assert_eq!(
        a.errortype.as_deref(),
        Some("UserNotFoundException"),
        "{}",
        a.body
    );
}

/// API_AuthenticationResultType: "GetTokensFromRefreshToken doesn't return NewDeviceMetadata."
/// The emulator issues a new device from a refresh with an unknown DeviceKey (docs/emulator.md
/// promises it), so a client that stores whatever device comes back works locally only.
#[tokio::test]
async fn get_tokens_from_refresh_token_never_returns_new_device_metadata() {
    let e = emulator().await;
    e.create_client(AppClient::new(POOL, "dev"))
        .expect("client");
    let token = e.mint_refresh_token("dev", "alice").expect("mint");
    let a = call(
        &e,
        "GetTokensFromRefreshToken",
        json!({"ClientId": "dev", "RefreshToken": token,
               "DeviceKey": "eu-west-1_00000000-0000-4000-8000-000000000000"}),
    )
    .await;
    if a.status == 200 {
        assert!(
            a.body["AuthenticationResult"]
                .get("NewDeviceMetadata")
                .is_none(),
            "{}",
            a.body["AuthenticationResult"]["NewDeviceMetadata"]
        );
    }
}

/// Developer guide, "Understanding the access token": Cognito signs access tokens with a
/// different key from the one that signs ID tokens, and the access token's `kid` won't match
/// the ID token's from the same session; verify them separately. The emulator signs both with
/// one key, so code that verifies the access token with the ID token's key (or `keys[0]`)
/// passes locally and fails in production.
#[tokio::test]
async fn access_and_id_tokens_are_signed_with_different_keys_of_the_jwks() {
    let e = emulator().await;
    e.create_client(AppClient::new(POOL, "keys"))
        .expect("client");
    let signed = password_sign_in(&e, "keys", "alice").await;
    let kid = |kind: &str| {
        let token = signed["AuthenticationResult"][kind]
            .as_str()
            .expect("token");
        let header = token.split('.').next().expect("header");
        let header: Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header).expect("b64")).expect("json");
        header["kid"].as_str().unwrap_or_default().to_owned()
    };
    let (access, id) = (kid("AccessToken"), kid("IdToken"));
    let jwks: Value = reqwest::get(format!("{}/{POOL}/.well-known/jwks.json", e.endpoint_url()))
        .await
        .expect("jwks")
        .json()
        .await
        .expect("json");
    let kids: Vec<&str> = jwks["keys"]
        .as_array()
        .map(|k| k.iter().filter_map(|k| k["kid"].as_str()).collect())
        .unwrap_or_default();
    assert_ne!(access, id, "one key signs both token kinds");
    assert!(
        kids.contains(&access.as_str()) && kids.contains(&id.as_str()),
        "{kids:?}"
    );
}

/// PasswordPolicyType.TemporaryPasswordValidityDays: "The number of days a temporary password
/// is valid in the password policy. If the user doesn't sign in during this time, an
/// administrator must reset their password. Defaults to 7." (the service's refusal is a
/// NotAuthorizedException). The emulator's temporary passwords never expire.
#[tokio::test]
async fn a_temporary_password_expires_after_the_pools_validity_days() {
    let e = emulator().await;
    e.create_client(AppClient::new(POOL, "tmp"))
        .expect("client");
    let created = call(
        &e,
        "AdminCreateUser",
        json!({"UserPoolId": POOL, "Username": "gina", "TemporaryPassword": "Tmp-Passw0rd!",
               "MessageAction": "SUPPRESS"}),
    )
    .await;
    assert_eq!(created.status, 200, "{}", created.body);
    assert!(e.advance_clock(Duration::from_secs(8 * 86_400)));
    let a = call(
        &e,
        "InitiateAuth",
        json!({"AuthFlow": "USER_PASSWORD_AUTH", "ClientId": "tmp",
               "AuthParameters": {"USERNAME": "gina", "PASSWORD": "Tmp-Passw0rd!"}}),
    )
    .await;
    assert_eq!(
        a.errortype.as_deref(),
        Some("NotAuthorizedException"),
        "an 8-day-old temporary password still works: {}",
        a.body
    );
}
