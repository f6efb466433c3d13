//! The `RevokeToken` cases of the contract: every transport sends the same bytes, reads the
//! same answers into the same errors, retries the same way (the rotation-safe policy does not
//! hold a revocation back: sending it twice is harmless), and ends a real session against the
//! emulator. Instantiated with [`revoke_suite!`](crate::revoke_suite).

use std::time::Duration;

use cogref_core::secrecy::ExposeSecret;
use cogref_core::{
    CallConfig, EndpointConfig, Operation, RefreshInput, ResponseErrorKind, RetryConfig,
    RetryPolicy, RevokeInput, RevokeToken, ServiceErrorKind, Timeouts, TransportErrorKind,
};
use wiremock::{MockServer, ResponseTemplate};

use crate::{
    CLIENT_ID, MakeClient, MakeRevoker, REFRESH_TOKEN, assert_no_secret, endpoint_of, error_body,
    fast_config, json, mount, received, response_kind, transport_kind,
};

/// The client secret the cases send (a canary).
const CLIENT_SECRET: &str = "CANARY_contract_client_SECRET_0123";

fn revoke_input() -> RevokeInput {
    RevokeInput::builder()
        .token(REFRESH_TOKEN)
        .client_id(CLIENT_ID)
        .build()
        .expect("valid input")
}

fn no_retries() -> CallConfig {
    CallConfig {
        retry: RetryConfig::disabled(),
        ..fast_config()
    }
}

/// Method, path, headers and body exactly as built by the core; no signing headers.
pub async fn revoke_the_server_receives_the_exact_request(_: MakeClient, make: MakeRevoker) {
    let server = MockServer::start().await;
    mount(&server, json(200, "{}"), None).await;
    let input = RevokeInput::builder()
        .token(REFRESH_TOKEN)
        .client_id(CLIENT_ID)
        .client_secret(CLIENT_SECRET)
        .build()
        .expect("valid input");
    make(endpoint_of(&server), fast_config())(input)
        .await
        .expect("success");
    let requests = received(&server).await;
    assert_eq!(requests.len(), 1);
    let r = &requests[0];
    assert_eq!(
        (r.method.as_str(), r.url.path(), r.url.query()),
        ("POST", "/", None)
    );
    let expected = format!(
        r#"{{"Token":"{REFRESH_TOKEN}","ClientId":"{CLIENT_ID}","ClientSecret":"{CLIENT_SECRET}"}}"#
    );
    assert_eq!(String::from_utf8_lossy(&r.body), expected);
    let header = |name: &str| {
        r.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned()
    };
    assert_eq!(
        header("x-amz-target"),
        "AWSCognitoIdentityProviderService.RevokeToken"
    );
    assert_eq!(header("content-type"), "application/x-amz-json-1.1");
    assert_eq!(header("content-length"), expected.len().to_string());
    assert_eq!(header("amz-sdk-request"), "attempt=1; max=3");
    assert_eq!(header("amz-sdk-invocation-id").len(), 36);
    for signing in ["authorization", "x-amz-date", "x-amz-security-token"] {
        assert!(!r.headers.contains_key(signing));
    }
}

/// `{}` and an empty 200 are both a revocation, with the request id.
pub async fn revoke_succeeds_on_an_empty_object_or_an_empty_body(_: MakeClient, make: MakeRevoker) {
    for body in ["{}", ""] {
        let server = MockServer::start().await;
        mount(&server, json(200, body), None).await;
        let out = make(endpoint_of(&server), fast_config())(revoke_input())
            .await
            .expect("revoked");
        assert_eq!(
            out.request_id.as_deref(),
            Some("11111111-2222-4333-8444-555555555555"),
            "{body:?}"
        );
    }
}

/// Each error the model lists for `RevokeToken` arrives as its kind, by header and by body,
/// with its verdicts: throttling and internal errors pass, the rest is configuration or input,
/// and none says "sign in again".
pub async fn revoke_every_modeled_error_by_header_and_by_body(_: MakeClient, make: MakeRevoker) {
    for kind in RevokeToken::MODELED_ERRORS {
        let code = ServiceErrorKind::MODELED
            .iter()
            .find(|(k, _)| k == kind)
            .map(|(_, c)| *c)
            .expect("modeled");
        let status = if *kind == ServiceErrorKind::InternalError {
            500
        } else {
            400
        };
        for by_header in [false, true] {
            let server = MockServer::start().await;
            let template = if by_header {
                json(status, r#"{"message":"from the header case"}"#)
                    .insert_header("x-amzn-errortype", code)
            } else {
                json(status, error_body(code))
            };
            mount(&server, template, None).await;
            let e = make(endpoint_of(&server), no_retries())(revoke_input())
                .await
                .expect_err("an error");
            let service = e.as_service().expect("a service error");
            assert_eq!((service.kind, service.code.as_str()), (*kind, code));
            assert!(!e.requires_sign_in(), "{code}");
            assert_eq!(
                e.is_retryable(),
                matches!(
                    kind,
                    ServiceErrorKind::TooManyRequests | ServiceErrorKind::InternalError
                ),
                "{code}"
            );
            assert_eq!(
                e.is_configuration(),
                !matches!(
                    kind,
                    ServiceErrorKind::TooManyRequests
                        | ServiceErrorKind::InternalError
                        | ServiceErrorKind::UnsupportedTokenType
                ),
                "{code}"
            );
            assert_no_secret(&e);
        }
    }
}

/// Throttling and 5xx are retried with the same invocation id, then the success returned.
pub async fn revoke_is_retried_after_throttling_and_server_errors(
    _: MakeClient,
    make: MakeRevoker,
) {
    let server = MockServer::start().await;
    mount(
        &server,
        json(400, error_body("TooManyRequestsException")),
        Some(1),
    )
    .await;
    mount(&server, json(503, "<html>busy</html>"), Some(1)).await;
    mount(&server, json(200, "{}"), None).await;
    let out = make(endpoint_of(&server), fast_config())(revoke_input()).await;
    assert!(out.is_ok(), "{:?}", out.err());
    let requests = received(&server).await;
    assert_eq!(requests.len(), 3);
    let ids: Vec<_> = requests
        .iter()
        .map(|r| r.headers["amz-sdk-invocation-id"].clone())
        .collect();
    assert!(ids.windows(2).all(|w| w[0] == w[1]), "one invocation id");
    assert_eq!(requests[2].headers["amz-sdk-request"], "attempt=3; max=3");
}

/// A revocation whose answer was lost is sent again even under the rotation-safe policy (which
/// never resends a refresh then): revoking twice does what revoking once does.
pub async fn revoke_is_retried_after_a_timeout_even_under_the_rotation_safe_policy(
    _: MakeClient,
    make: MakeRevoker,
) {
    let server = MockServer::start().await;
    mount(
        &server,
        json(200, "{}").set_delay(Duration::from_secs(2)),
        Some(1),
    )
    .await;
    mount(&server, json(200, "{}"), None).await;
    let config = CallConfig {
        retry: RetryConfig {
            policy: RetryPolicy::RotationSafe,
            ..fast_config().retry
        },
        timeouts: Timeouts {
            attempt: Duration::from_millis(300),
            ..fast_config().timeouts
        },
        ..fast_config()
    };
    make(endpoint_of(&server), config)(revoke_input())
        .await
        .expect("the second attempt revokes");
    assert_eq!(received(&server).await.len(), 2);
}

/// A 200 HTML page (a proxy, a captive portal) is not taken for a revocation.
pub async fn revoke_a_2xx_page_that_is_not_json_is_not_a_revocation(
    _: MakeClient,
    make: MakeRevoker,
) {
    let server = MockServer::start().await;
    mount(
        &server,
        ResponseTemplate::new(200).set_body_raw(
            format!("<html>{REFRESH_TOKEN}</html>").into_bytes(),
            "text/html",
        ),
        None,
    )
    .await;
    let e = make(endpoint_of(&server), fast_config())(revoke_input())
        .await
        .expect_err("not a revocation");
    assert_eq!(response_kind(&e), Some(ResponseErrorKind::NotJson), "{e}");
    assert_eq!(e.attempts(), 1);
    assert_no_secret(&e);
}

/// A redirect is reported; the token never goes to the other server.
pub async fn revoke_a_redirect_is_never_followed(_: MakeClient, make: MakeRevoker) {
    let elsewhere = MockServer::start().await;
    mount(&elsewhere, json(200, "{}"), None).await;
    let server = MockServer::start().await;
    mount(
        &server,
        ResponseTemplate::new(307).insert_header("location", elsewhere.uri() + "/"),
        None,
    )
    .await;
    let e = make(endpoint_of(&server), fast_config())(revoke_input())
        .await
        .expect_err("redirect");
    assert_eq!(response_kind(&e), Some(ResponseErrorKind::Redirect));
    assert!(
        received(&elsewhere).await.is_empty(),
        "the token went elsewhere"
    );
    // And nothing listening is a connect error, retried.
    let refused = EndpointConfig::new()
        .endpoint_url(format!("http://127.0.0.1:{}", crate::raw::unused_port()))
        .resolve()
        .expect("valid");
    let e = make(refused, fast_config())(revoke_input())
        .await
        .expect_err("refused");
    assert_eq!(transport_kind(&e), Some(TransportErrorKind::Connect));
    assert_eq!(e.attempts(), 3);
}

/// Against the emulator: revoking the current token of a rotated lineage ends the lineage (the
/// current token and the older one are refused as revoked, which means "sign in again"); the
/// same revocation again succeeds; a client that needs a secret refuses a revocation without
/// it (configuration), one without token revocation refuses it (configuration), and an access
/// token is not a refresh token.
pub async fn revoke_end_to_end_against_the_emulator(make: MakeClient, make_revoker: MakeRevoker) {
    use cogref_emulator::{AppClient, Emulator, EmulatorConfig};
    let emulator = Emulator::start(EmulatorConfig::default())
        .await
        .expect("emulator");
    let pool = "eu-west-1_revoke";
    emulator.create_pool(pool);
    emulator
        .create_client(AppClient::new(pool, "revokeclient").with_rotation(0))
        .expect("client");
    emulator
        .create_client(AppClient::new(pool, "secretclient").with_secret(CLIENT_SECRET))
        .expect("client");
    let mut closed = AppClient::new(pool, "closedclient");
    closed.enable_token_revocation = false;
    emulator.create_client(closed).expect("client");
    emulator.create_user(pool, "erin").expect("user");
    let endpoint = EndpointConfig::new()
        .endpoint_url(emulator.endpoint_url())
        .resolve()
        .expect("endpoint");
    let refresh = make(endpoint.clone(), no_retries());
    let revoke = make_revoker(endpoint, no_retries());
    let refresh_input = |token: &str, client: &str| {
        RefreshInput::builder()
            .refresh_token(token.to_owned())
            .client_id(client)
            .build()
            .expect("valid")
    };
    let revoke_input = |token: &str, client: &str| {
        RevokeInput::builder()
            .token(token.to_owned())
            .client_id(client)
            .build()
            .expect("valid")
    };

    let first = emulator
        .mint_refresh_token("revokeclient", "erin")
        .expect("mint");
    let out = refresh(refresh_input(&first, "revokeclient"))
        .await
        .expect("refresh");
    let access = out.access_token.expose_secret().to_owned();
    let second = out
        .refresh_token
        .expect("rotated")
        .expose_secret()
        .to_owned();
    revoke(revoke_input(&second, "revokeclient"))
        .await
        .expect("revoked");
    for token in [&second, &first] {
        let e = refresh(refresh_input(token, "revokeclient"))
            .await
            .expect_err("the lineage is revoked");
        assert!(e.requires_sign_in(), "{e}");
    }
    revoke(revoke_input(&second, "revokeclient"))
        .await
        .expect("revoking again is harmless");

    let token = emulator
        .mint_refresh_token("secretclient", "erin")
        .expect("mint");
    let e = revoke(revoke_input(&token, "secretclient"))
        .await
        .expect_err("no secret");
    assert_eq!(
        e.as_service().map(|s| s.kind),
        Some(ServiceErrorKind::Unauthorized)
    );
    assert!(e.is_configuration(), "{e}");
    let with_secret = RevokeInput::builder()
        .token(token.clone())
        .client_id("secretclient")
        .client_secret(CLIENT_SECRET)
        .build()
        .expect("valid");
    revoke(with_secret).await.expect("with its secret");

    let token = emulator
        .mint_refresh_token("closedclient", "erin")
        .expect("mint");
    let e = revoke(revoke_input(&token, "closedclient"))
        .await
        .expect_err("revocation off");
    assert_eq!(
        e.as_service().map(|s| s.kind),
        Some(ServiceErrorKind::UnsupportedOperation)
    );
    assert!(e.is_configuration(), "{e}");
    refresh(refresh_input(&token, "closedclient"))
        .await
        .expect("a refused revocation changes nothing");

    let e = revoke(revoke_input(&access, "revokeclient"))
        .await
        .expect_err("an access token");
    assert_eq!(
        e.as_service().map(|s| s.kind),
        Some(ServiceErrorKind::UnsupportedTokenType)
    );
    emulator.shutdown().await;
}
