//! The emulator's rules, each checked through real HTTP on 127.0.0.1.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use cogref_core::secrecy::ExposeSecret;
use cogref_core::{
    CallConfig, EndpointConfig, Error, RefreshInput, RefreshOutput, RetryConfig, ServiceErrorKind,
};
use cogref_emulator::{AppClient, Emulator, EmulatorConfig, Fault};

mod common;

use common::claims;

const POOL: &str = "eu-west-1_testPool";

async fn emulator() -> Emulator {
    let e = Emulator::start(EmulatorConfig::default())
        .await
        .expect("start");
    e.create_pool(POOL);
    e.create_user(POOL, "alice").expect("user");
    e
}

fn client(e: &Emulator, retry: RetryConfig) -> cogref_reqwest::Client {
    let endpoint = EndpointConfig::new()
        .endpoint_url(e.endpoint_url())
        .resolve()
        .expect("endpoint");
    cogref_reqwest::client(
        endpoint,
        CallConfig {
            retry,
            ..CallConfig::default()
        },
    )
    .expect("client")
}

fn input(client_id: &str, token: &str) -> RefreshInput {
    RefreshInput::builder()
        .refresh_token(token.to_owned())
        .client_id(client_id)
        .build()
        .expect("valid")
}

async fn refresh(e: &Emulator, client_id: &str, token: &str) -> Result<RefreshOutput, Error> {
    client(e, RetryConfig::disabled())
        .refresh(&input(client_id, token))
        .await
        .map_err(|c| c.into_error())
}

fn kind(r: Result<RefreshOutput, Error>) -> Option<ServiceErrorKind> {
    r.err().and_then(|e| e.as_service().map(|s| s.kind))
}

#[tokio::test]
async fn without_rotation_no_refresh_token_comes_back_and_the_old_one_keeps_working() {
    let e = emulator().await;
    e.create_client(AppClient::new(POOL, "plain"))
        .expect("client");
    let token = e.mint_refresh_token("plain", "alice").expect("mint");
    for _ in 0..3 {
        let out = refresh(&e, "plain", &token).await.expect("refresh");
        assert!(out.refresh_token.is_none());
        assert_eq!(out.expires_in, Duration::from_secs(3600));
    }
}

#[tokio::test]
async fn rotation_with_grace_zero_kills_the_old_token_at_once() {
    let e = emulator().await;
    e.create_client(AppClient::new(POOL, "rot0").with_rotation(0))
        .expect("client");
    let t0 = e.mint_refresh_token("rot0", "alice").expect("mint");
    let out = refresh(&e, "rot0", &t0).await.expect("first");
    let t1 = out
        .refresh_token
        .expect("rotated")
        .expose_secret()
        .to_owned();
    assert_ne!(t0, t1);
    assert_eq!(
        kind(refresh(&e, "rot0", &t0).await),
        Some(ServiceErrorKind::RefreshTokenReuse)
    );
    refresh(&e, "rot0", &t1).await.expect("the new one works");
    assert_eq!(e.refreshes_granted(), 2);
    assert_eq!(e.refusals("RefreshTokenReuseException"), 1);
}

#[tokio::test]
async fn the_old_token_works_during_the_grace_period_and_is_reused_after_it() {
    let e = emulator().await;
    e.create_client(AppClient::new(POOL, "rot30").with_rotation(30))
        .expect("client");
    let t0 = e.mint_refresh_token("rot30", "alice").expect("mint");
    refresh(&e, "rot30", &t0).await.expect("rotate");
    e.advance_clock(Duration::from_secs(29));
    refresh(&e, "rot30", &t0)
        .await
        .expect("inside the grace period");
    e.advance_clock(Duration::from_secs(2));
    assert_eq!(
        kind(refresh(&e, "rot30", &t0).await),
        Some(ServiceErrorKind::RefreshTokenReuse)
    );
}

#[tokio::test]
async fn a_rotated_token_keeps_the_lineage_expiry() {
    let e = emulator().await;
    e.create_client(
        AppClient::new(POOL, "short")
            .with_rotation(0)
            .with_refresh_validity(3600),
    )
    .expect("client");
    let mut token = e.mint_refresh_token("short", "alice").expect("mint");
    for _ in 0..3 {
        e.advance_clock(Duration::from_secs(1000));
        let out = refresh(&e, "short", &token)
            .await
            .expect("within the lineage");
        token = out
            .refresh_token
            .expect("rotated")
            .expose_secret()
            .to_owned();
    }
    e.advance_clock(Duration::from_secs(601));
    let err = refresh(&e, "short", &token)
        .await
        .expect_err("lineage over");
    assert!(err.requires_sign_in());
    assert!(err.to_string().contains("expired"), "{err}");
}

#[tokio::test]
async fn a_revoked_or_unknown_token_is_not_authorized_and_an_unknown_client_not_found() {
    let e = emulator().await;
    e.create_client(AppClient::new(POOL, "c1")).expect("client");
    let token = e.mint_refresh_token("c1", "alice").expect("mint");
    assert!(e.revoke(&token));
    let err = refresh(&e, "c1", &token).await.expect_err("revoked");
    assert!(err.to_string().contains("revoked"), "{err}");
    assert_eq!(
        kind(refresh(&e, "c1", "not.a.known.token").await),
        Some(ServiceErrorKind::NotAuthorized)
    );
    assert_eq!(
        kind(refresh(&e, "nosuchclient", &token).await),
        Some(ServiceErrorKind::ResourceNotFound)
    );
}

#[tokio::test]
async fn a_confidential_client_needs_its_raw_secret() {
    let e = emulator().await;
    let secret = "s3cr3tS3cr3tS3cr3tS3cr3t0";
    e.create_client(AppClient::new(POOL, "conf").with_secret(secret))
        .expect("client");
    let token = e.mint_refresh_token("conf", "alice").expect("mint");
    let c = client(&e, RetryConfig::disabled());
    let with = |s: &str| {
        RefreshInput::builder()
            .refresh_token(token.clone())
            .client_id("conf")
            .client_secret(s.to_owned())
            .build()
            .expect("valid")
    };
    c.refresh(&with(secret)).await.expect("right secret");
    let e1 = c
        .refresh(&with("wrongWrongWrongWrongWrong0"))
        .await
        .expect_err("wrong secret");
    assert_eq!(
        e1.as_service().map(|s| s.kind),
        Some(ServiceErrorKind::NotAuthorized)
    );
    assert_eq!(
        kind(refresh(&e, "conf", &token).await),
        Some(ServiceErrorKind::NotAuthorized)
    );
}

/// "GetTokensFromRefreshToken doesn't return NewDeviceMetadata" (API_AuthenticationResultType):
/// neither for a known device key nor for an unknown one. Only the `new_device_metadata`
/// fault, which says it is not the service's behaviour, makes it appear.
#[tokio::test]
async fn a_refresh_never_registers_a_device_unless_a_fault_says_so() {
    let e = emulator().await;
    e.create_client(AppClient::new(POOL, "dev"))
        .expect("client");
    e.register_device("eu-west-1_0f1e2d3c-4b5a-6978-8a9b-0c1d2e3f4a5b");
    let token = e.mint_refresh_token("dev", "alice").expect("mint");
    let c = client(&e, RetryConfig::disabled());
    let with = |k: &str| {
        RefreshInput::builder()
            .refresh_token(token.clone())
            .client_id("dev")
            .device_key(k.to_owned())
            .build()
            .expect("valid")
    };
    let known = c
        .refresh(&with("eu-west-1_0f1e2d3c-4b5a-6978-8a9b-0c1d2e3f4a5b"))
        .await
        .expect("known");
    assert!(known.new_device.is_none());
    let unknown = c
        .refresh(&with("eu-west-1_00000000-0000-4000-8000-000000000000"))
        .await
        .expect("unknown");
    assert!(unknown.new_device.is_none());

    e.inject(Fault::NewDeviceMetadata { count: 1 });
    let faulted = c
        .refresh(&with("eu-west-1_00000000-0000-4000-8000-000000000000"))
        .await
        .expect("faulted");
    let key = faulted
        .new_device
        .and_then(|d| d.device_key)
        .expect("the fault's device key");
    assert!(key.expose_secret().starts_with("eu-west-1_"));
    assert!(e.has_device(key.expose_secret()));
    let after = c
        .refresh(&with("eu-west-1_00000000-0000-4000-8000-000000000000"))
        .await
        .expect("after the fault");
    assert!(after.new_device.is_none(), "the fault applies once");
}

#[tokio::test]
async fn tokens_are_rs256_jwts_with_cognito_claims_signed_by_the_served_key() {
    let e = emulator().await;
    e.create_client(AppClient::new(POOL, "jwt").with_access_validity(900))
        .expect("client");
    let token = e.mint_refresh_token("jwt", "alice").expect("mint");
    let out = refresh(&e, "jwt", &token).await.expect("refresh");
    let access = out.access_token.expose_secret();
    let id = out.id_token.as_ref().expect("id token").expose_secret();
    assert!(e.verify_signature(access) && e.verify_signature(id));
    let a = claims(access);
    for claim in [
        "sub",
        "iss",
        "client_id",
        "token_use",
        "auth_time",
        "iat",
        "exp",
        "jti",
        "origin_jti",
        "username",
        "event_id",
    ] {
        assert!(a.get(claim).is_some(), "access token lacks {claim}: {a}");
    }
    assert_eq!(a["token_use"], "access");
    assert_eq!(
        a["iss"],
        format!("https://cognito-idp.eu-west-1.amazonaws.com/{POOL}")
    );
    assert_eq!(
        a["exp"].as_i64().unwrap_or(0) - a["iat"].as_i64().unwrap_or(0),
        900
    );
    let i = claims(id);
    assert_eq!(
        (i["token_use"].as_str(), i["aud"].as_str()),
        (Some("id"), Some("jwt"))
    );
    assert_eq!(i["origin_jti"], a["origin_jti"]);

    let jwks: serde_json::Value =
        reqwest::get(format!("{}/{POOL}/.well-known/jwks.json", e.endpoint_url()))
            .await
            .expect("jwks")
            .json()
            .await
            .expect("json");
    let keys = jwks["keys"].as_array().expect("keys");
    for token in [access, id] {
        let header: serde_json::Value = serde_json::from_slice(
            &URL_SAFE_NO_PAD
                .decode(token.split('.').next().expect("header"))
                .expect("b64"),
        )
        .expect("json");
        let key = keys
            .iter()
            .find(|k| k["kid"] == header["kid"])
            .expect("the token's key is in the JWKS");
        assert_eq!(key["alg"], "RS256");
    }
}

async fn raw(
    e: &Emulator,
    target: &str,
    content_type: &str,
    body: &str,
) -> (u16, Option<String>, Option<String>, serde_json::Value) {
    let response = reqwest::Client::new()
        .post(e.endpoint_url())
        .header("x-amz-target", target)
        .header("content-type", content_type)
        .body(body.to_owned())
        .send()
        .await
        .expect("response");
    let status = response.status().as_u16();
    let header = |n: &str| {
        response
            .headers()
            .get(n)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let (errortype, request_id) = (header("x-amzn-errortype"), header("x-amzn-requestid"));
    let json = response.json().await.unwrap_or_default();
    (status, errortype, request_id, json)
}

#[tokio::test]
async fn invalid_input_is_answered_as_the_service_would_without_echoing_values() {
    let e = emulator().await;
    const T: &str = "AWSCognitoIdentityProviderService.GetTokensFromRefreshToken";
    const CT: &str = "application/x-amz-json-1.1";
    let cases = [
        (T, CT, r#"{"ClientId":"c"}"#, "InvalidParameterException"),
        (
            T,
            CT,
            r#"{"RefreshToken":"bad token!","ClientId":"c"}"#,
            "InvalidParameterException",
        ),
        (
            T,
            CT,
            r#"{"RefreshToken":"t","ClientId":"c","ClientSecret":"short"}"#,
            "InvalidParameterException",
        ),
        (T, CT, "{not json", "SerializationException"),
        (
            T,
            "text/plain",
            r#"{"RefreshToken":"t","ClientId":"c"}"#,
            "SerializationException",
        ),
        (
            "AWSCognitoIdentityProviderService.ListUsersInGroup",
            CT,
            "{}",
            "UnknownOperationException",
        ),
    ];
    for (target, content_type, body, code) in cases {
        let (status, errortype, request_id, json) = raw(&e, target, content_type, body).await;
        assert_eq!(status, 400, "{body}");
        assert_eq!(errortype.as_deref(), Some(code), "{body}");
        assert_eq!(json["__type"], code);
        assert!(request_id.is_some_and(|id| id.len() == 36));
        let message = json["message"].as_str().unwrap_or_default();
        assert!(
            !message.contains("bad token") && !message.contains("short"),
            "{message}"
        );
    }
}

#[tokio::test]
async fn faults_throttle_fail_delay_and_drop_the_next_calls() {
    let e = emulator().await;
    e.create_client(AppClient::new(POOL, "f").with_rotation(0))
        .expect("client");
    let t0 = e.mint_refresh_token("f", "alice").expect("mint");

    e.inject(Fault::Throttle { count: 1 });
    assert_eq!(
        kind(refresh(&e, "f", &t0).await),
        Some(ServiceErrorKind::TooManyRequests)
    );
    e.inject(Fault::ServerError {
        count: 1,
        status: 503,
    });
    let err = refresh(&e, "f", &t0).await.expect_err("503");
    assert_eq!(
        (err.status().map(|s| s.as_u16()), err.is_retryable()),
        (Some(503), true)
    );

    // Retries ride through two throttles.
    e.inject(Fault::Throttle { count: 2 });
    let fast = RetryConfig {
        initial_backoff: Duration::from_millis(1),
        ..RetryConfig::default()
    };
    let out = client(&e, fast)
        .refresh(&input("f", &t0))
        .await
        .expect("third attempt");
    let t1 = out
        .refresh_token
        .expect("rotated")
        .expose_secret()
        .to_owned();

    // The lost response: rotation applied, answer dropped; with grace 0 the old token is dead.
    e.inject(Fault::DropAfterRotation { count: 1 });
    let err = refresh(&e, "f", &t1).await.expect_err("dropped");
    assert!(matches!(err, Error::Transport(_)), "{err:?}");
    assert_eq!(
        kind(refresh(&e, "f", &t1).await),
        Some(ServiceErrorKind::RefreshTokenReuse)
    );

    e.inject(Fault::Delay {
        count: 1,
        millis: 300,
    });
    let started = std::time::Instant::now();
    let _ = refresh(&e, "f", "unknown.token").await;
    assert!(started.elapsed() >= Duration::from_millis(300));
}

#[tokio::test]
async fn the_admin_routes_seed_fault_and_move_the_clock_over_http() {
    let e = Emulator::start(EmulatorConfig::default())
        .await
        .expect("start");
    let http = reqwest::Client::new();
    let post = |path: &str, body: serde_json::Value| {
        http.post(format!("{}/_emulator/{path}", e.endpoint_url()))
            .json(&body)
            .send()
    };
    post("pools", serde_json::json!({"pool_id": POOL}))
        .await
        .expect("pool");
    post("clients", serde_json::json!({"pool_id": POOL, "client_id": "adm", "rotation": {"grace_period_secs": 5}})).await.expect("client");
    post(
        "users",
        serde_json::json!({"pool_id": POOL, "username": "bob"}),
    )
    .await
    .expect("user");
    let minted: serde_json::Value = post(
        "refresh-tokens",
        serde_json::json!({"client_id": "adm", "username": "bob"}),
    )
    .await
    .expect("mint")
    .json()
    .await
    .expect("json");
    let t0 = minted["refresh_token"].as_str().expect("token").to_owned();
    refresh(&e, "adm", &t0).await.expect("rotate");
    post("clock", serde_json::json!({"advance_secs": 6}))
        .await
        .expect("clock");
    assert_eq!(
        kind(refresh(&e, "adm", &t0).await),
        Some(ServiceErrorKind::RefreshTokenReuse)
    );
    post(
        "faults",
        serde_json::json!({"kind": "throttle", "count": 1}),
    )
    .await
    .expect("fault");
    assert_eq!(
        kind(refresh(&e, "adm", "x.y").await),
        Some(ServiceErrorKind::TooManyRequests)
    );
}

#[test]
fn debug_output_never_shows_a_client_secret() {
    let canary = "CANARYsecretCANARYsecret0123";
    let client = AppClient::new(POOL, "dbg").with_secret(canary);
    let seed = cogref_emulator::Seed {
        client_secret: Some(canary.into()),
        ..cogref_emulator::Seed::default()
    };
    for shown in [format!("{client:?}"), format!("{seed:?}")] {
        assert!(!shown.contains(canary), "{shown}");
        assert!(shown.contains("REDACTED"), "{shown}");
    }
}

/// The token file is replaced, not rewritten: old content longer than the token does not
/// survive, no temporary file is left beside it, and a link at the path is replaced rather
/// than followed into the file it names.
#[cfg(unix)]
#[test]
fn the_refresh_token_file_is_replaced_by_a_new_owner_only_file() {
    use std::os::unix::fs::PermissionsExt;
    let dir = std::env::temp_dir().join(format!("cogref-emu-tokenfile-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let path = dir.join("rt");
    std::fs::write(&path, "x".repeat(10_000)).expect("old file");
    let seeded = cogref_emulator::Seeded {
        refresh_token: "new-token".into(),
    };
    seeded.write_refresh_token(&path).expect("write");
    assert_eq!(std::fs::read_to_string(&path).expect("read"), "new-token");

    let target = dir.join("elsewhere");
    std::fs::write(&target, "untouched").expect("target");
    let link = dir.join("link");
    std::os::unix::fs::symlink(&target, &link).expect("symlink");
    seeded
        .write_refresh_token(&link)
        .expect("write through the link's path");
    let target_content = std::fs::read_to_string(&target).expect("target");
    let link_mode = std::fs::symlink_metadata(&link).expect("meta");
    let entries: Vec<String> = std::fs::read_dir(&dir)
        .expect("list")
        .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
        .collect();
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(target_content, "untouched");
    assert!(link_mode.file_type().is_file());
    assert_eq!(link_mode.permissions().mode() & 0o777, 0o600);
    let mut entries = entries;
    entries.sort();
    assert_eq!(entries, ["elsewhere", "link", "rt"]);
}

/// A shutdown lets a request in flight finish (within the deadline) rather than cut it.
#[tokio::test]
async fn a_shutdown_lets_a_request_in_flight_finish() {
    let e = emulator().await;
    e.create_client(AppClient::new(POOL, "slow"))
        .expect("client");
    let token = e.mint_refresh_token("slow", "alice").expect("mint");
    e.inject(Fault::Delay {
        count: 1,
        millis: 1_000,
    });
    let c = client(&e, RetryConfig::disabled());
    let pending = tokio::spawn(async move { c.refresh(&input("slow", &token)).await.is_ok() });
    tokio::time::sleep(Duration::from_millis(300)).await;
    e.shutdown().await;
    assert!(
        pending.await.expect("join"),
        "the delayed refresh was cut by the shutdown"
    );
}
