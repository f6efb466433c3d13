//! The emulator's HTTP surface as the service shows it: statuses, wording, output shapes, CORS,
//! the OAuth2 endpoint, and admin routes that validate their input and cannot be made to panic.

use std::time::Duration;

use base64::Engine;
use cogref_emulator::{AppClient, Emulator, EmulatorConfig};
use serde_json::{Value, json};

mod common;

use common::{admin, call, claims};

const POOL: &str = "eu-west-1_surface";
async fn emulator() -> Emulator {
    let e = Emulator::start(EmulatorConfig::default())
        .await
        .expect("start");
    e.create_pool(POOL);
    e.create_user_with_password(POOL, "alice", "Passw0rd!x")
        .expect("user");
    e
}

fn refresh_body(client: &str, token: &str) -> Value {
    json!({ "ClientId": client, "RefreshToken": token })
}

#[tokio::test]
async fn throttling_and_missing_resources_are_http_400_as_the_service_sends_them() {
    let e = emulator().await;
    e.create_client(AppClient::new(POOL, "c")).expect("client");
    let token = e.mint_refresh_token("c", "alice").expect("mint");

    e.inject(cogref_emulator::Fault::Throttle { count: 1 });
    let a = call(&e, "GetTokensFromRefreshToken", refresh_body("c", &token)).await;
    assert_eq!(
        (a.status, a.errortype.as_deref()),
        (400, Some("TooManyRequestsException"))
    );

    let a = call(
        &e,
        "GetTokensFromRefreshToken",
        refresh_body("nosuch", &token),
    )
    .await;
    assert_eq!(
        (a.status, a.errortype.as_deref()),
        (400, Some("ResourceNotFoundException"))
    );
    assert_eq!(a.body["message"], "User pool client nosuch does not exist.");

    let a = call(
        &e,
        "DescribeUserPool",
        json!({"UserPoolId": "eu-west-1_none"}),
    )
    .await;
    assert_eq!(
        (a.status, a.errortype.as_deref()),
        (400, Some("ResourceNotFoundException"))
    );

    // The 429 stays available as an explicit fault.
    let (status, _) = admin(&e, "faults", json!({"kind": "throttle_429", "count": 1})).await;
    assert_eq!(status, 200);
    let a = call(&e, "GetTokensFromRefreshToken", refresh_body("c", &token)).await;
    assert_eq!(
        (a.status, a.errortype.as_deref()),
        (429, Some("TooManyRequestsException"))
    );
}

#[tokio::test]
async fn validation_messages_use_the_models_pattern_and_the_services_length_wording() {
    let e = emulator().await;
    let long = "a".repeat(129);
    let cases = [
        (
            refresh_body("bad id", "t"),
            "Value at 'clientId' failed to satisfy constraint: Member must satisfy regular expression pattern: [\\w+]+",
        ),
        (
            refresh_body(&long, "t"),
            "Value at 'clientId' failed to satisfy constraint: Member must have length less than or equal to 128",
        ),
        (
            refresh_body("", "t"),
            "Value at 'clientId' failed to satisfy constraint: Member must have length greater than or equal to 1",
        ),
    ];
    for (body, expected) in cases {
        let a = call(&e, "GetTokensFromRefreshToken", body).await;
        let message = a.body["message"].as_str().unwrap_or_default().to_owned();
        assert_eq!(a.errortype.as_deref(), Some("InvalidParameterException"));
        assert_eq!(message, format!("1 validation error detected: {expected}"));
        assert!(
            !message.contains('^') && !message.contains('$'),
            "{message}"
        );
        assert!(!message.contains("between"), "{message}");
    }
}

#[tokio::test]
async fn get_tokens_from_refresh_token_answers_only_its_output_shape() {
    let e = emulator().await;
    e.create_client(AppClient::new(POOL, "c").with_rotation(0))
        .expect("client");
    let token = e.mint_refresh_token("c", "alice").expect("mint");
    let a = call(&e, "GetTokensFromRefreshToken", refresh_body("c", &token)).await;
    assert_eq!(a.status, 200);
    let keys: Vec<&String> = a.body.as_object().expect("object").keys().collect();
    assert_eq!(keys, ["AuthenticationResult"]);
}

#[tokio::test]
async fn admin_routes_refuse_what_the_service_never_allows_and_nothing_panics() {
    let e = emulator().await;
    let refused = [
        (
            "clients",
            json!({"pool_id": POOL, "client_id": "g", "rotation": {"grace_period_secs": 61}}),
        ),
        (
            "clients",
            json!({"pool_id": POOL, "client_id": "s", "client_secret": "tooshort"}),
        ),
        (
            "clients",
            json!({"pool_id": POOL, "client_id": "v", "refresh_token_validity_secs": u64::MAX}),
        ),
        (
            "clients",
            json!({"pool_id": POOL, "client_id": "a", "access_token_validity_secs": 10}),
        ),
        ("clients", json!({"pool_id": POOL, "client_id": "bad id"})),
        ("clock", json!({"advance_secs": u64::MAX})),
        ("clock", json!({"advance_secs": -1})),
        (
            "faults",
            json!({"kind": "server_error", "count": 1, "status": 200}),
        ),
        (
            "faults",
            json!({"kind": "delay", "count": 1, "millis": u64::MAX}),
        ),
        ("devices", json!({"device_key": "not-a-device-key"})),
        ("pools", json!({"pool_id": "no underscore"})),
        ("users", json!({"pool_id": POOL, "username": "two words"})),
        ("signing", json!({"wall_clock": "yes"})),
    ];
    for (path, body) in &refused {
        let (status, answer) = admin(&e, path, body.clone()).await;
        assert_eq!(status, 400, "{path} {body}: {answer}");
        assert_eq!(
            answer["__type"], "InvalidParameterException",
            "{path} {body}"
        );
    }
    // Ten years at a time is allowed, up to a hundred in all; past that the clock stays put.
    for _ in 0..10 {
        assert_eq!(
            admin(&e, "clock", json!({"advance_secs": 315_360_000}))
                .await
                .0,
            200
        );
    }
    assert_eq!(
        admin(&e, "clock", json!({"advance_secs": 315_360_000}))
            .await
            .0,
        400
    );
    assert!(!e.advance_clock(Duration::MAX));

    // The emulator still serves: a refresh after all of that is answered, not dropped.
    e.create_client(AppClient::new(POOL, "after").with_refresh_validity(u64::MAX))
        .expect("client");
    let token = e.mint_refresh_token("after", "alice").expect("mint");
    let a = call(
        &e,
        "GetTokensFromRefreshToken",
        refresh_body("after", &token),
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.body);
}

#[tokio::test]
async fn counters_and_devices_are_reachable_over_http() {
    let e = emulator().await;
    e.create_client(AppClient::new(POOL, "c").with_rotation(0))
        .expect("client");
    let token = e.mint_refresh_token("c", "alice").expect("mint");
    let key = "eu-west-1_0f1e2d3c-4b5a-6978-8a9b-0c1d2e3f4a5b";
    assert_eq!(
        admin(&e, "devices", json!({"device_key": key})).await.0,
        200
    );
    let a = call(
        &e,
        "GetTokensFromRefreshToken",
        json!({"ClientId": "c", "RefreshToken": token, "DeviceKey": key}),
    )
    .await;
    assert!(
        a.body["AuthenticationResult"]
            .get("NewDeviceMetadata")
            .is_none()
    );
    let _ = call(&e, "GetTokensFromRefreshToken", refresh_body("c", &token)).await;
    let counters: Value = reqwest::get(format!("{}/_emulator/counters", e.endpoint_url()))
        .await
        .expect("counters")
        .json()
        .await
        .expect("json");
    assert_eq!(counters["requests_served"], 2);
    assert_eq!(counters["refreshes_granted"], 1);
    assert_eq!(counters["refusals"]["RefreshTokenReuseException"], 1);
}

fn wall_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

#[tokio::test]
async fn after_a_clock_move_tokens_run_ahead_unless_signed_with_the_wall_clock() {
    let e = emulator().await;
    e.create_client(AppClient::new(POOL, "c")).expect("client");
    let token = e.mint_refresh_token("c", "alice").expect("mint");
    assert!(e.advance_clock(Duration::from_secs(3600)));
    let a = call(&e, "GetTokensFromRefreshToken", refresh_body("c", &token)).await;
    let ahead = claims(
        a.body["AuthenticationResult"]["AccessToken"]
            .as_str()
            .expect("token"),
    );
    assert!(ahead["iat"].as_i64().unwrap_or(0) >= wall_now() + 3590);

    assert_eq!(
        admin(&e, "signing", json!({"wall_clock": true})).await.0,
        200
    );
    let a = call(&e, "GetTokensFromRefreshToken", refresh_body("c", &token)).await;
    let c = claims(
        a.body["AuthenticationResult"]["AccessToken"]
            .as_str()
            .expect("token"),
    );
    let iat = c["iat"].as_i64().unwrap_or(0);
    assert!((iat - wall_now()).abs() <= 5, "iat {iat}");
    assert_eq!(c["exp"].as_i64().unwrap_or(0) - iat, 3600);
}

#[tokio::test]
async fn a_browser_preflight_passes_on_every_route_and_answers_expose_the_aws_headers() {
    let e = emulator().await;
    let http = reqwest::Client::new();
    for path in [
        "/",
        "/oauth2/token",
        "/_emulator/counters",
        "/eu-west-1_surface/.well-known/jwks.json",
    ] {
        let r = http
            .request(reqwest::Method::OPTIONS, format!("{}{path}", e.endpoint_url()))
            .header("origin", "http://localhost:5173")
            .header("access-control-request-method", "POST")
            .header(
                "access-control-request-headers",
                "content-type,x-amz-target,x-amz-user-agent,amz-sdk-invocation-id,amz-sdk-request,cache-control",
            )
            .send()
            .await
            .expect("preflight");
        assert!(r.status().is_success(), "{path}: {}", r.status());
        let h = r.headers();
        assert_eq!(h["access-control-allow-origin"], "http://localhost:5173");
        let allowed = h["access-control-allow-headers"].to_str().unwrap_or("");
        for name in [
            "content-type",
            "x-amz-target",
            "x-amz-user-agent",
            "amz-sdk-invocation-id",
            "amz-sdk-request",
            "cache-control",
        ] {
            assert!(allowed.contains(name), "{path}: {name} not allowed");
        }
        assert!(
            h["access-control-allow-methods"]
                .to_str()
                .unwrap_or("")
                .contains("POST")
        );
    }
    let a = call(&e, "GetUser", json!({"AccessToken": "a.b.c"})).await;
    assert_eq!(a.errortype.as_deref(), Some("NotAuthorizedException"));
    let exposed = a.headers["access-control-expose-headers"]
        .to_str()
        .unwrap_or("");
    assert!(exposed.contains("x-amzn-errortype") && exposed.contains("x-amzn-requestid"));
    assert!(a.headers.contains_key("access-control-allow-origin"));
}

#[tokio::test]
async fn sign_in_rotation_and_sign_out_through_the_standard_api() {
    let e = emulator().await;
    let created = call(
        &e,
        "CreateUserPoolClient",
        json!({"UserPoolId": POOL, "ClientName": "app", "GenerateSecret": true,
               "ExplicitAuthFlows": ["ALLOW_USER_PASSWORD_AUTH", "ALLOW_REFRESH_TOKEN_AUTH"],
               "RefreshTokenRotation": {"Feature": "ENABLED", "RetryGracePeriodSeconds": 0}}),
    )
    .await;
    assert_eq!(created.status, 200, "{}", created.body);
    let client = created.body["UserPoolClient"]["ClientId"]
        .as_str()
        .expect("id")
        .to_owned();
    let secret = created.body["UserPoolClient"]["ClientSecret"]
        .as_str()
        .expect("secret")
        .to_owned();

    // Without SECRET_HASH: a configuration refusal that names the secret.
    let a = call(
        &e,
        "InitiateAuth",
        json!({"AuthFlow": "USER_PASSWORD_AUTH", "ClientId": client,
               "AuthParameters": {"USERNAME": "alice", "PASSWORD": "Passw0rd!x"}}),
    )
    .await;
    assert_eq!(a.errortype.as_deref(), Some("NotAuthorizedException"));
    assert!(
        a.body["message"]
            .as_str()
            .unwrap_or("")
            .contains("SECRET_HASH")
    );

    let hash = secret_hash(&secret, "alice", &client);
    let a = call(
        &e,
        "InitiateAuth",
        json!({"AuthFlow": "USER_PASSWORD_AUTH", "ClientId": client,
               "AuthParameters": {"USERNAME": "alice", "PASSWORD": "Passw0rd!x", "SECRET_HASH": hash}}),
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.body);
    let result = &a.body["AuthenticationResult"];
    let refresh = result["RefreshToken"].as_str().expect("refresh").to_owned();
    let access = result["AccessToken"].as_str().expect("access").to_owned();

    // REFRESH_TOKEN_AUTH is refused on a rotating client.
    let a = call(
        &e,
        "InitiateAuth",
        json!({"AuthFlow": "REFRESH_TOKEN_AUTH", "ClientId": client,
               "AuthParameters": {"REFRESH_TOKEN": refresh, "SECRET_HASH": hash}}),
    )
    .await;
    assert_eq!(a.errortype.as_deref(), Some("InvalidParameterException"));

    // Wrong raw secret on the refresh operation: NotAuthorized, worded with "secret".
    let a = call(
        &e,
        "GetTokensFromRefreshToken",
        json!({"ClientId": client, "RefreshToken": refresh, "ClientSecret": "x".repeat(30)}),
    )
    .await;
    assert_eq!(a.errortype.as_deref(), Some("NotAuthorizedException"));
    assert!(
        a.body["message"]
            .as_str()
            .unwrap_or("")
            .to_lowercase()
            .contains("secret")
    );

    let a = call(&e, "GetUser", json!({"AccessToken": access})).await;
    assert_eq!(a.body["Username"], "alice");
    let a = call(&e, "GlobalSignOut", json!({"AccessToken": access})).await;
    assert_eq!(a.status, 200);
    let a = call(
        &e,
        "GetTokensFromRefreshToken",
        json!({"ClientId": client, "RefreshToken": refresh, "ClientSecret": secret}),
    )
    .await;
    assert_eq!(a.errortype.as_deref(), Some("NotAuthorizedException"));
    assert_eq!(a.body["message"], "Refresh Token has been revoked");
}

fn secret_hash(secret: &str, username: &str, client: &str) -> String {
    // HMAC-SHA256 by hand (RFC 2104) with the sha2 the emulator already depends on.
    use rsa::sha2::{Digest, Sha256};
    let mut key = [0u8; 64];
    key[..secret.len()].copy_from_slice(secret.as_bytes());
    let mut inner = Sha256::new();
    inner.update(key.map(|b| b ^ 0x36));
    inner.update(username.as_bytes());
    inner.update(client.as_bytes());
    let mut outer = Sha256::new();
    outer.update(key.map(|b| b ^ 0x5c));
    outer.update(inner.finalize());
    base64::engine::general_purpose::STANDARD.encode(outer.finalize())
}

#[tokio::test]
async fn the_oauth2_refresh_grant_rotates_and_the_openid_configuration_names_the_keys() {
    let e = emulator().await;
    e.create_client(AppClient::new(POOL, "web").with_rotation(0))
        .expect("client");
    let token = e.mint_refresh_token("web", "alice").expect("mint");
    let http = reqwest::Client::new();
    let grant = |t: String| {
        http.post(format!("{}/oauth2/token", e.endpoint_url()))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(format!(
                "grant_type=refresh_token&client_id=web&refresh_token={t}"
            ))
            .send()
    };
    let r = grant(token.clone()).await.expect("grant");
    assert_eq!(r.status(), 200);
    let out: Value = r.json().await.expect("json");
    assert_ne!(out["refresh_token"].as_str(), Some(token.as_str()));
    assert_eq!(out["token_type"], "Bearer");
    let r = grant(token).await.expect("reuse");
    assert_eq!(r.status(), 400);
    assert_eq!(
        r.json::<Value>().await.expect("json"),
        json!({"error": "invalid_grant"})
    );

    let oidc: Value = reqwest::get(format!(
        "{}/{POOL}/.well-known/openid-configuration",
        e.endpoint_url()
    ))
    .await
    .expect("oidc")
    .json()
    .await
    .expect("json");
    assert_eq!(
        oidc["issuer"],
        format!("https://cognito-idp.eu-west-1.amazonaws.com/{POOL}")
    );
    assert_eq!(
        oidc["jwks_uri"],
        format!("{}/{POOL}/.well-known/jwks.json", e.endpoint_url())
    );
    assert_eq!(
        oidc["token_endpoint"],
        format!("{}/oauth2/token", e.endpoint_url())
    );
}

#[tokio::test]
async fn a_temporary_password_leads_to_new_password_required_and_the_policy_is_enforced() {
    let e = emulator().await;
    e.create_client(AppClient::new(POOL, "app"))
        .expect("client");
    let a = call(
        &e,
        "AdminCreateUser",
        json!({"UserPoolId": POOL, "Username": "bob", "TemporaryPassword": "short"}),
    )
    .await;
    assert_eq!(a.errortype.as_deref(), Some("InvalidPasswordException"));
    assert_eq!(
        a.body["message"],
        "Password did not conform with policy: Password not long enough"
    );
    let a = call(
        &e,
        "AdminCreateUser",
        json!({"UserPoolId": POOL, "Username": "bob", "TemporaryPassword": "Temp-Passw0rd"}),
    )
    .await;
    assert_eq!(
        a.body["User"]["UserStatus"], "FORCE_CHANGE_PASSWORD",
        "{}",
        a.body
    );
    let a = call(
        &e,
        "AdminCreateUser",
        json!({"UserPoolId": POOL, "Username": "bob"}),
    )
    .await;
    assert_eq!(a.errortype.as_deref(), Some("UsernameExistsException"));

    let sign_in = |password: &'static str| {
        json!({"AuthFlow": "USER_PASSWORD_AUTH", "ClientId": "app",
               "AuthParameters": {"USERNAME": "bob", "PASSWORD": password}})
    };
    let a = call(&e, "InitiateAuth", sign_in("Temp-Passw0rd")).await;
    assert_eq!(
        a.body["ChallengeName"], "NEW_PASSWORD_REQUIRED",
        "{}",
        a.body
    );
    let session = a.body["Session"].as_str().expect("session").to_owned();
    let a = call(
        &e,
        "RespondToAuthChallenge",
        json!({"ClientId": "app", "ChallengeName": "NEW_PASSWORD_REQUIRED", "Session": session,
               "ChallengeResponses": {"USERNAME": "bob", "NEW_PASSWORD": "Final-Passw0rd"}}),
    )
    .await;
    assert!(
        a.body["AuthenticationResult"]["RefreshToken"].is_string(),
        "{}",
        a.body
    );
    let a = call(&e, "InitiateAuth", sign_in("Final-Passw0rd")).await;
    assert!(
        a.body["AuthenticationResult"]["AccessToken"].is_string(),
        "{}",
        a.body
    );
    let a = call(&e, "InitiateAuth", sign_in("Wrong-Passw0rd")).await;
    assert_eq!(a.body["message"], "Incorrect username or password.");

    // A flow the client does not allow, and a disabled user.
    e.create_client(AppClient::new(POOL, "srponly").with_auth_flows(["ALLOW_USER_SRP_AUTH"]))
        .expect("client");
    let mut body = sign_in("Final-Passw0rd");
    body["ClientId"] = json!("srponly");
    let a = call(&e, "InitiateAuth", body).await;
    assert_eq!(a.errortype.as_deref(), Some("InvalidParameterException"));
    assert_eq!(
        a.body["message"],
        "USER_PASSWORD_AUTH flow not enabled for this client"
    );
    let a = call(
        &e,
        "AdminDisableUser",
        json!({"UserPoolId": POOL, "Username": "bob"}),
    )
    .await;
    assert_eq!(a.status, 200);
    let a = call(&e, "InitiateAuth", sign_in("Final-Passw0rd")).await;
    assert_eq!(a.body["message"], "User is disabled.");
}
