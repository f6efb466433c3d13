//! Set-up through the standard API as the API reference describes it: client defaults and
//! refusals, temporary passwords and their validity, `RESEND`, challenge lifetimes, disabled
//! users, and the model's patterns on empty tokens.

use std::time::Duration;

use cogref_emulator::{AppClient, Emulator, EmulatorConfig};
use serde_json::{Value, json};

mod common;

use common::{PASSWORD, call};

const POOL: &str = "eu-west-1_setup";
async fn emulator() -> Emulator {
    let e = Emulator::start(EmulatorConfig::default())
        .await
        .expect("start");
    e.create_pool(POOL);
    e
}

fn password_sign_in(client: &str, user: &str, password: &str) -> Value {
    json!({"AuthFlow": "USER_PASSWORD_AUTH", "ClientId": client,
           "AuthParameters": {"USERNAME": user, "PASSWORD": password}})
}

#[tokio::test]
async fn temporary_password_validity_days_of_zero_is_the_default_and_a_set_value_is_enforced() {
    let e = emulator().await;
    let zero = call(
        &e,
        "CreateUserPool",
        json!({"PoolName": "zero", "Policies": {"PasswordPolicy": {"TemporaryPasswordValidityDays": 0}}}),
    )
    .await;
    assert_eq!(
        zero.body["UserPool"]["Policies"]["PasswordPolicy"]["TemporaryPasswordValidityDays"], 7,
        "{}",
        zero.body
    );

    let two = call(
        &e,
        "CreateUserPool",
        json!({"PoolName": "two", "Policies": {"PasswordPolicy": {"TemporaryPasswordValidityDays": 2}}}),
    )
    .await;
    let pool = two.body["UserPool"]["Id"].as_str().expect("id").to_owned();
    e.create_client(AppClient::new(&pool, "twoclient"))
        .expect("client");
    let created = call(
        &e,
        "AdminCreateUser",
        json!({"UserPoolId": pool, "Username": "hana", "TemporaryPassword": "Tmp-Passw0rd!",
               "MessageAction": "SUPPRESS"}),
    )
    .await;
    assert_eq!(created.status, 200, "{}", created.body);
    assert!(e.advance_clock(Duration::from_secs(86_400)));
    let a = call(
        &e,
        "InitiateAuth",
        password_sign_in("twoclient", "hana", "Tmp-Passw0rd!"),
    )
    .await;
    assert_eq!(
        a.body["ChallengeName"], "NEW_PASSWORD_REQUIRED",
        "one day of two: {}",
        a.body
    );
    assert!(e.advance_clock(Duration::from_secs(86_400)));
    let a = call(
        &e,
        "InitiateAuth",
        password_sign_in("twoclient", "hana", "Tmp-Passw0rd!"),
    )
    .await;
    assert_eq!(a.errortype.as_deref(), Some("NotAuthorizedException"));
    assert_eq!(
        a.body["message"],
        "Temporary password has expired and must be reset by an administrator."
    );

    // RESEND resets the expiration limit, with the new temporary password it carries.
    let resent = call(
        &e,
        "AdminCreateUser",
        json!({"UserPoolId": pool, "Username": "hana", "TemporaryPassword": "Tmp-Passw0rd!2",
               "MessageAction": "RESEND"}),
    )
    .await;
    assert_eq!(resent.status, 200, "{}", resent.body);
    assert_eq!(resent.body["User"]["UserStatus"], "FORCE_CHANGE_PASSWORD");
    let a = call(
        &e,
        "InitiateAuth",
        password_sign_in("twoclient", "hana", "Tmp-Passw0rd!2"),
    )
    .await;
    assert_eq!(
        a.body["ChallengeName"], "NEW_PASSWORD_REQUIRED",
        "{}",
        a.body
    );
}

#[tokio::test]
async fn resend_to_a_user_who_has_set_a_password_is_an_unsupported_user_state() {
    let e = emulator().await;
    e.create_user_with_password(POOL, "ivan", PASSWORD)
        .expect("user");
    let a = call(
        &e,
        "AdminCreateUser",
        json!({"UserPoolId": POOL, "Username": "ivan", "MessageAction": "RESEND"}),
    )
    .await;
    assert_eq!(
        a.errortype.as_deref(),
        Some("UnsupportedUserStateException"),
        "{}",
        a.body
    );
    // Without RESEND an existing user is still UsernameExistsException.
    let a = call(
        &e,
        "AdminCreateUser",
        json!({"UserPoolId": POOL, "Username": "ivan"}),
    )
    .await;
    assert_eq!(a.errortype.as_deref(), Some("UsernameExistsException"));
}

#[tokio::test]
async fn prevent_user_existence_errors_enabled_answers_an_unknown_user_as_a_wrong_password() {
    let e = emulator().await;
    let created = call(
        &e,
        "CreateUserPoolClient",
        json!({"UserPoolId": POOL, "ClientName": "enabled", "PreventUserExistenceErrors": "ENABLED",
               "ExplicitAuthFlows": ["ALLOW_USER_PASSWORD_AUTH"]}),
    )
    .await;
    assert_eq!(
        created.body["UserPoolClient"]["PreventUserExistenceErrors"],
        "ENABLED"
    );
    let client = created.body["UserPoolClient"]["ClientId"]
        .as_str()
        .expect("id")
        .to_owned();
    e.create_client(AppClient::new(POOL, "rustenabled").with_prevent_user_existence_errors(true))
        .expect("client");
    e.create_client(AppClient::new(POOL, "rustlegacy"))
        .expect("client");
    for (client, expected) in [
        (client.as_str(), "NotAuthorizedException"),
        ("rustenabled", "NotAuthorizedException"),
        ("rustlegacy", "UserNotFoundException"),
    ] {
        let a = call(
            &e,
            "InitiateAuth",
            password_sign_in(client, "nobody", PASSWORD),
        )
        .await;
        assert_eq!(
            a.errortype.as_deref(),
            Some(expected),
            "{client}: {}",
            a.body
        );
    }
}

#[tokio::test]
async fn a_challenge_expires_after_the_default_auth_session_validity_of_three_minutes() {
    let e = emulator().await;
    let created = call(
        &e,
        "CreateUserPoolClient",
        json!({"UserPoolId": POOL, "ClientName": "default",
               "ExplicitAuthFlows": ["ALLOW_USER_PASSWORD_AUTH"]}),
    )
    .await;
    assert_eq!(created.body["UserPoolClient"]["AuthSessionValidity"], 3);
    let client = created.body["UserPoolClient"]["ClientId"]
        .as_str()
        .expect("id")
        .to_owned();
    let user = call(
        &e,
        "AdminCreateUser",
        json!({"UserPoolId": POOL, "Username": "jo", "TemporaryPassword": "Tmp-Passw0rd!",
               "MessageAction": "SUPPRESS"}),
    )
    .await;
    assert_eq!(user.status, 200, "{}", user.body);
    let challenge = call(
        &e,
        "InitiateAuth",
        password_sign_in(&client, "jo", "Tmp-Passw0rd!"),
    )
    .await;
    let session = challenge.body["Session"]
        .as_str()
        .expect("session")
        .to_owned();
    assert!(e.advance_clock(Duration::from_secs(4 * 60)));
    let a = call(
        &e,
        "RespondToAuthChallenge",
        json!({"ClientId": client, "ChallengeName": "NEW_PASSWORD_REQUIRED", "Session": session,
               "ChallengeResponses": {"USERNAME": "jo", "NEW_PASSWORD": "New-Passw0rd!"}}),
    )
    .await;
    assert_eq!(
        a.errortype.as_deref(),
        Some("NotAuthorizedException"),
        "{}",
        a.body
    );
}

#[tokio::test]
async fn update_user_pool_client_refuses_legacy_and_allow_flows_together_too() {
    let e = emulator().await;
    let created = call(
        &e,
        "CreateUserPoolClient",
        json!({"UserPoolId": POOL, "ClientName": "legacy",
               "ExplicitAuthFlows": ["USER_PASSWORD_AUTH", "ADMIN_NO_SRP_AUTH"]}),
    )
    .await;
    assert_eq!(created.status, 200, "legacy values alone: {}", created.body);
    let client = created.body["UserPoolClient"]["ClientId"]
        .as_str()
        .expect("id")
        .to_owned();
    let a = call(
        &e,
        "UpdateUserPoolClient",
        json!({"UserPoolId": POOL, "ClientId": client,
               "ExplicitAuthFlows": ["ADMIN_NO_SRP_AUTH", "ALLOW_USER_SRP_AUTH"]}),
    )
    .await;
    assert_eq!(
        a.errortype.as_deref(),
        Some("InvalidParameterException"),
        "{}",
        a.body
    );
    // A secret given without GenerateSecret (or with it false) is taken.
    let a = call(
        &e,
        "CreateUserPoolClient",
        json!({"UserPoolId": POOL, "ClientName": "own", "GenerateSecret": false,
               "ClientSecret": "abcdefghijklmnopqrstuvwxyz0123"}),
    )
    .await;
    assert_eq!(
        a.body["UserPoolClient"]["ClientSecret"], "abcdefghijklmnopqrstuvwxyz0123",
        "{}",
        a.body
    );
}

/// `TokenModelType` has no minimum length, but its pattern `[A-Za-z0-9-_=.]+` refuses an
/// empty string.
#[tokio::test]
async fn empty_tokens_fail_the_models_pattern() {
    let e = emulator().await;
    e.create_client(AppClient::new(POOL, "c")).expect("client");
    for (operation, body, member) in [
        (
            "GetTokensFromRefreshToken",
            json!({"ClientId": "c", "RefreshToken": ""}),
            "refreshToken",
        ),
        ("GetUser", json!({"AccessToken": ""}), "accessToken"),
        (
            "RevokeToken",
            json!({"ClientId": "c", "Token": ""}),
            "token",
        ),
    ] {
        let a = call(&e, operation, body).await;
        assert_eq!(
            a.errortype.as_deref(),
            Some("InvalidParameterException"),
            "{operation}"
        );
        assert_eq!(
            a.body["message"],
            format!(
                "1 validation error detected: Value at '{member}' failed to satisfy constraint: Member must satisfy regular expression pattern: [A-Za-z0-9-_=.]+"
            ),
            "{operation}"
        );
    }
}

/// AdminDisableUser revokes access tokens; the refresh tokens are refused while the user is
/// disabled and refresh again once it is enabled (the reference says nothing of them).
#[tokio::test]
async fn a_disabled_users_refresh_tokens_are_refused_until_the_user_is_enabled() {
    let e = emulator().await;
    e.create_client(AppClient::new(POOL, "c")).expect("client");
    e.create_user_with_password(POOL, "kim", PASSWORD)
        .expect("user");
    let token = e.mint_refresh_token("c", "kim").expect("mint");
    let user = json!({"UserPoolId": POOL, "Username": "kim"});
    let refresh = json!({"ClientId": "c", "RefreshToken": token});
    assert_eq!(call(&e, "AdminDisableUser", user.clone()).await.status, 200);
    let a = call(&e, "GetTokensFromRefreshToken", refresh.clone()).await;
    assert_eq!(a.body["message"], "User is disabled.");
    assert_eq!(call(&e, "AdminEnableUser", user).await.status, 200);
    let a = call(&e, "GetTokensFromRefreshToken", refresh).await;
    assert_eq!(a.status, 200, "{}", a.body);
    // The access token issued after re-enabling works.
    let access = a.body["AuthenticationResult"]["AccessToken"].clone();
    let a = call(&e, "GetUser", json!({"AccessToken": access})).await;
    assert_eq!(a.status, 200, "{}", a.body);
}
