//! Device tracking as the service keeps it: each lineage of a pool that tracks devices is bound
//! to the device of its sign-in, refreshes need that device's key once it is confirmed, and
//! every key, ARN and issuer names the pool's own region.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use cogref_emulator::{Emulator, EmulatorConfig};
use serde_json::{Value, json};

mod common;

use common::{Answer, PASSWORD, call};

/// A pool made by `CreateUserPool` with `device_configuration`, a password client, and users.
async fn pool(e: &Emulator, device_configuration: Value, users: &[&str]) -> (String, String) {
    let created = call(
        e,
        "CreateUserPool",
        json!({"PoolName": "devices", "DeviceConfiguration": device_configuration}),
    )
    .await;
    assert_eq!(created.status, 200, "{}", created.body);
    let pool_id = created.body["UserPool"]["Id"]
        .as_str()
        .expect("pool id")
        .to_owned();
    let client = call(
        e,
        "CreateUserPoolClient",
        json!({"UserPoolId": pool_id, "ClientName": "app",
               "ExplicitAuthFlows": ["ALLOW_USER_PASSWORD_AUTH", "ALLOW_REFRESH_TOKEN_AUTH"]}),
    )
    .await;
    let client_id = client.body["UserPoolClient"]["ClientId"]
        .as_str()
        .expect("client id")
        .to_owned();
    for user in users {
        e.create_user_with_password(&pool_id, user, PASSWORD)
            .expect("user");
    }
    (pool_id, client_id)
}

async fn sign_in(e: &Emulator, client: &str, user: &str, device_key: Option<&str>) -> Value {
    let mut parameters = json!({"USERNAME": user, "PASSWORD": PASSWORD});
    if let Some(key) = device_key {
        parameters["DEVICE_KEY"] = json!(key);
    }
    let a = call(
        e,
        "InitiateAuth",
        json!({"AuthFlow": "USER_PASSWORD_AUTH", "ClientId": client, "AuthParameters": parameters}),
    )
    .await;
    assert_eq!(a.status, 200, "sign-in: {}", a.body);
    a.body["AuthenticationResult"].clone()
}

async fn confirm(e: &Emulator, result: &Value) -> Answer {
    call(
        e,
        "ConfirmDevice",
        json!({"AccessToken": result["AccessToken"], "DeviceKey": result["NewDeviceMetadata"]["DeviceKey"]}),
    )
    .await
}

async fn refresh(e: &Emulator, client: &str, token: &Value, device_key: Option<&str>) -> Answer {
    let mut body = json!({"ClientId": client, "RefreshToken": token});
    if let Some(key) = device_key {
        body["DeviceKey"] = json!(key);
    }
    call(e, "GetTokensFromRefreshToken", body).await
}

fn tracking() -> Value {
    json!({"ChallengeRequiredOnNewDevice": false, "DeviceOnlyRememberedOnUserPrompt": false})
}

#[tokio::test]
async fn a_lineage_refreshes_only_with_its_own_confirmed_device_key_whatever_the_flow() {
    let e = Emulator::start(EmulatorConfig::default())
        .await
        .expect("start");
    let (_pool, client) = pool(&e, tracking(), &["erin"]).await;
    let signed = sign_in(&e, &client, "erin", None).await;
    let key = signed["NewDeviceMetadata"]["DeviceKey"]
        .as_str()
        .expect("device key")
        .to_owned();
    assert_eq!(confirm(&e, &signed).await.status, 200);
    let token = &signed["RefreshToken"];

    let granted = refresh(&e, &client, token, Some(&key)).await;
    assert_eq!(granted.status, 200, "{}", granted.body);
    assert!(
        granted.body["AuthenticationResult"]
            .get("NewDeviceMetadata")
            .is_none()
    );

    // Another confirmed device's key is not this lineage's.
    let other = "eu-west-1_0f1e2d3c-4b5a-6978-8a9b-0c1d2e3f4a5b";
    e.register_device(other);
    let a = refresh(&e, &client, token, Some(other)).await;
    assert_eq!(a.errortype.as_deref(), Some("NotAuthorizedException"));
    assert_eq!(a.body["message"], "Invalid Refresh Token.");

    // REFRESH_TOKEN_AUTH holds to the same binding, through DEVICE_KEY.
    let auth = |device: Option<&str>| {
        let mut parameters = json!({"REFRESH_TOKEN": token});
        if let Some(k) = device {
            parameters["DEVICE_KEY"] = json!(k);
        }
        json!({"AuthFlow": "REFRESH_TOKEN_AUTH", "ClientId": client, "AuthParameters": parameters})
    };
    let a = call(&e, "InitiateAuth", auth(None)).await;
    assert_eq!(a.errortype.as_deref(), Some("NotAuthorizedException"));
    let a = call(&e, "InitiateAuth", auth(Some(&key))).await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert!(
        a.body["AuthenticationResult"]
            .get("NewDeviceMetadata")
            .is_none()
    );

    // The OAuth2 endpoint takes no device key: it cannot refresh a device-bound lineage.
    let r = reqwest::Client::new()
        .post(format!("{}/oauth2/token", e.endpoint_url()))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!(
            "grant_type=refresh_token&client_id={client}&refresh_token={}",
            token.as_str().expect("token")
        ))
        .send()
        .await
        .expect("token endpoint");
    assert_eq!(r.status().as_u16(), 400);
    let body: Value = r.json().await.expect("json");
    assert_eq!(body["error"], "invalid_grant");
}

#[tokio::test]
async fn a_sign_in_with_a_known_device_binds_its_lineage_to_that_device() {
    let e = Emulator::start(EmulatorConfig::default())
        .await
        .expect("start");
    let (_pool, client) = pool(&e, tracking(), &["erin"]).await;
    let first = sign_in(&e, &client, "erin", None).await;
    let key = first["NewDeviceMetadata"]["DeviceKey"]
        .as_str()
        .expect("device key")
        .to_owned();
    assert_eq!(confirm(&e, &first).await.status, 200);

    let again = sign_in(&e, &client, "erin", Some(&key)).await;
    assert!(
        again.get("NewDeviceMetadata").is_none(),
        "a known device gets no new metadata: {again}"
    );
    let token = &again["RefreshToken"];
    assert_eq!(refresh(&e, &client, token, Some(&key)).await.status, 200);
    let a = refresh(&e, &client, token, None).await;
    assert_eq!(a.errortype.as_deref(), Some("NotAuthorizedException"));
}

#[tokio::test]
async fn a_device_belongs_to_the_user_it_was_issued_to() {
    let e = Emulator::start(EmulatorConfig::default())
        .await
        .expect("start");
    let (_pool, client) = pool(&e, tracking(), &["erin", "fred"]).await;
    let erin = sign_in(&e, &client, "erin", None).await;
    let erins = erin["NewDeviceMetadata"]["DeviceKey"]
        .as_str()
        .expect("device key")
        .to_owned();
    let fred = sign_in(&e, &client, "fred", None).await;
    let a = call(
        &e,
        "ConfirmDevice",
        json!({"AccessToken": fred["AccessToken"], "DeviceKey": erins}),
    )
    .await;
    assert_eq!(
        a.errortype.as_deref(),
        Some("ResourceNotFoundException"),
        "{}",
        a.body
    );
    // Signing in with someone else's device key issues a device of one's own.
    let fred = sign_in(&e, &client, "fred", Some(&erins)).await;
    let freds = fred["NewDeviceMetadata"]["DeviceKey"]
        .as_str()
        .expect("a new device");
    assert_ne!(freds, erins);
}

/// DeviceConfigurationType: "When you provide a value for any property of
/// DeviceConfiguration, you activate the device remembering for the user pool."
#[tokio::test]
async fn an_empty_device_configuration_does_not_turn_device_tracking_on() {
    let e = Emulator::start(EmulatorConfig::default())
        .await
        .expect("start");
    let (pool_id, client) = pool(&e, json!({}), &["erin"]).await;
    let described = call(&e, "DescribeUserPool", json!({"UserPoolId": pool_id})).await;
    assert!(
        described.body["UserPool"]
            .get("DeviceConfiguration")
            .is_none(),
        "{}",
        described.body
    );
    let signed = sign_in(&e, &client, "erin", None).await;
    assert!(signed.get("NewDeviceMetadata").is_none());
    assert_eq!(
        refresh(&e, &client, &signed["RefreshToken"], None)
            .await
            .status,
        200
    );
}

#[tokio::test]
async fn device_keys_arns_and_issuers_name_the_pools_region() {
    let e = Emulator::start(EmulatorConfig {
        region: "us-west-2".into(),
        ..EmulatorConfig::default()
    })
    .await
    .expect("start");
    let (pool_id, client) = pool(&e, tracking(), &["erin"]).await;
    assert!(pool_id.starts_with("us-west-2_"), "{pool_id}");
    let described = call(&e, "DescribeUserPool", json!({"UserPoolId": pool_id})).await;
    assert_eq!(
        described.body["UserPool"]["Arn"],
        format!("arn:aws:cognito-idp:us-west-2:000000000000:userpool/{pool_id}")
    );
    let signed = sign_in(&e, &client, "erin", None).await;
    let key = signed["NewDeviceMetadata"]["DeviceKey"]
        .as_str()
        .expect("device key");
    assert!(key.starts_with("us-west-2_"), "{key}");
    let payload = signed["IdToken"]
        .as_str()
        .and_then(|t| t.split('.').nth(1))
        .expect("payload");
    let claims: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).expect("b64")).expect("json");
    assert_eq!(
        claims["iss"],
        format!("https://cognito-idp.us-west-2.amazonaws.com/{pool_id}")
    );
}
