//! The HTTP face of the emulator: the AWS JSON 1.1 operation, the JWKS, and the admin routes.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use cogref_core::{Field, RefreshInput, Rule};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::state::{AppClient, Refusal, Request};
use crate::{Fault, Shared};

/// `X-Amz-Target` of the one operation served.
const TARGET: &str = "AWSCognitoIdentityProviderService.GetTokensFromRefreshToken";
const JSON_1_1: &str = "application/x-amz-json-1.1";

pub(crate) fn router(shared: Arc<Shared>) -> axum::Router {
    axum::Router::new()
        .route("/", post(operation))
        .route("/{pool}/.well-known/jwks.json", get(jwks))
        .route("/_emulator/pools", post(admin_pool))
        .route("/_emulator/clients", post(admin_client))
        .route("/_emulator/users", post(admin_user))
        .route("/_emulator/refresh-tokens", post(admin_mint))
        .route("/_emulator/revoke", post(admin_revoke))
        .route("/_emulator/faults", post(admin_fault))
        .route("/_emulator/clock", post(admin_clock))
        .with_state(shared)
}

fn request_id() -> String {
    cogref_core::InvocationId::from_random_bytes(rand::random()).to_string()
}

fn json_response(status: u16, body: &Value, request_id: &str) -> Response {
    let mut response = (
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        body.to_string(),
    )
        .into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(JSON_1_1));
    if let Ok(id) = HeaderValue::from_str(request_id) {
        headers.insert("x-amzn-requestid", id);
    }
    response
}

fn refusal(r: &Refusal, request_id: &str) -> Response {
    let mut response = json_response(
        r.status,
        &json!({ "__type": r.code, "message": r.message }),
        request_id,
    );
    response
        .headers_mut()
        .insert("x-amzn-errortype", HeaderValue::from_static(r.code));
    response
}

/// The body of a request, loosely typed so that wrong types are validation errors.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct OperationBody {
    refresh_token: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
    device_key: Option<String>,
    #[serde(default)]
    client_metadata: Option<std::collections::BTreeMap<String, String>>,
}

/// The service's wording for a constraint violation; never quotes a value.
fn validation_message(field: Field, rule: &Rule) -> String {
    let member = match field {
        Field::RefreshToken => "refreshToken",
        Field::ClientId => "clientId",
        Field::ClientSecret => "clientSecret",
        Field::DeviceKey => "deviceKey",
        Field::ClientMetadataKey | Field::ClientMetadataValue => "clientMetadata",
        _ => "input",
    };
    let constraint = match rule {
        Rule::Missing => {
            return format!(
                "1 validation error detected: Value null at '{member}' failed to satisfy constraint: Member must not be null"
            );
        }
        Rule::Length { min, max, .. } => {
            format!("Member must have length between {min} and {max}, inclusive")
        }
        Rule::Pattern { pattern, .. } => {
            format!("Member must satisfy regular expression pattern: {pattern}")
        }
        _ => "Member is invalid".to_owned(),
    };
    format!(
        "1 validation error detected: Value at '{member}' failed to satisfy constraint: {constraint}"
    )
}

async fn operation(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    let id = request_id();
    shared.count_request();
    let fault = shared.take_fault();
    if let Some(Fault::Delay { millis, .. }) = &fault {
        tokio::time::sleep(std::time::Duration::from_millis(*millis)).await;
    }
    match &fault {
        Some(Fault::Throttle { .. }) => {
            return refusal(
                &Refusal::new(429, "TooManyRequestsException", "Rate exceeded"),
                &id,
            );
        }
        Some(Fault::ServerError { status, .. }) => {
            return if *status == 500 {
                refusal(
                    &Refusal::new(500, "InternalErrorException", "Internal error"),
                    &id,
                )
            } else {
                // What a load balancer in front of the service sends: HTML, no error code.
                let mut r = (
                    StatusCode::from_u16(*status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE),
                    format!("<html><body><h1>{status} Service Temporarily Unavailable</h1></body></html>"),
                )
                    .into_response();
                r.headers_mut()
                    .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html"));
                r
            };
        }
        _ => {}
    }

    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    };
    if header("x-amz-target") != TARGET {
        return refusal(
            &Refusal::new(400, "UnknownOperationException", "Unknown operation"),
            &id,
        );
    }
    if !header("content-type").starts_with(JSON_1_1) {
        return refusal(
            &Refusal::new(
                400,
                "SerializationException",
                format!("Content-Type must be {JSON_1_1}"),
            ),
            &id,
        );
    }
    let Ok(parsed) = serde_json::from_slice::<OperationBody>(&body) else {
        return refusal(
            &Refusal::new(
                400,
                "SerializationException",
                "The request body is not a valid GetTokensFromRefreshToken input",
            ),
            &id,
        );
    };
    // The same model constraints the client library checks, answered as the service would.
    let mut builder = RefreshInput::builder()
        .set_client_secret(parsed.client_secret.clone().map(Into::into))
        .set_device_key(parsed.device_key.clone().map(Into::into))
        .set_client_metadata(parsed.client_metadata.clone());
    if let Some(t) = &parsed.refresh_token {
        builder = builder.refresh_token(t.clone());
    }
    if let Some(c) = &parsed.client_id {
        builder = builder.client_id(c.clone());
    }
    if let Err(e) = builder.build() {
        return refusal(
            &Refusal::new(
                400,
                "InvalidParameterException",
                validation_message(e.field, &e.rule),
            ),
            &id,
        );
    }
    let request = Request {
        refresh_token: parsed.refresh_token.as_deref().unwrap_or_default(),
        client_id: parsed.client_id.as_deref().unwrap_or_default(),
        client_secret: parsed.client_secret.as_deref(),
        device_key: parsed.device_key.as_deref(),
    };
    let outcome = shared.refresh(&request);
    match outcome {
        Ok(result) => {
            if matches!(fault, Some(Fault::DropAfterRotation { .. })) {
                // The rotation is applied; the answer is lost on the way.
                let mut r = Response::new(Body::new(Broken));
                r.headers_mut()
                    .insert(header::CONTENT_TYPE, HeaderValue::from_static(JSON_1_1));
                return r;
            }
            json_response(
                200,
                &json!({ "AuthenticationResult": result, "ChallengeParameters": {} }),
                &id,
            )
        }
        Err(r) => refusal(&r, &id),
    }
}

/// A body that fails at once: the connection drops after the head.
struct Broken;

impl http_body::Body for Broken {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, io::Error>>> {
        Poll::Ready(Some(Err(io::Error::new(
            io::ErrorKind::ConnectionReset,
            "connection dropped by the emulator's fault injection",
        ))))
    }
}

async fn jwks(State(shared): State<Arc<Shared>>, Path(pool): Path<String>) -> Response {
    if shared.has_pool(&pool) {
        Json(shared.jwks()).into_response()
    } else {
        (StatusCode::NOT_FOUND, "no such user pool").into_response()
    }
}

fn admin_result<T: serde::Serialize>(result: Result<T, Refusal>) -> Response {
    match result {
        Ok(value) => Json(value).into_response(),
        Err(r) => refusal(&r, &request_id()),
    }
}

#[derive(Deserialize)]
struct PoolBody {
    pool_id: String,
}

async fn admin_pool(State(shared): State<Arc<Shared>>, Json(body): Json<PoolBody>) -> Response {
    shared.pools().add_pool(&body.pool_id);
    Json(json!({ "pool_id": body.pool_id })).into_response()
}

async fn admin_client(
    State(shared): State<Arc<Shared>>,
    Json(client): Json<AppClient>,
) -> Response {
    let id = client.client_id.clone();
    admin_result(
        shared
            .pools()
            .add_client(client)
            .map(|()| json!({ "client_id": id })),
    )
}

#[derive(Deserialize)]
struct UserBody {
    pool_id: String,
    username: String,
}

async fn admin_user(State(shared): State<Arc<Shared>>, Json(body): Json<UserBody>) -> Response {
    admin_result(
        shared
            .pools()
            .add_user(&body.pool_id, &body.username)
            .map(|sub| json!({ "sub": sub })),
    )
}

#[derive(Deserialize)]
struct MintBody {
    client_id: String,
    username: String,
}

async fn admin_mint(State(shared): State<Arc<Shared>>, Json(body): Json<MintBody>) -> Response {
    let now = shared.now();
    admin_result(
        shared
            .pools()
            .mint(&body.client_id, &body.username, now)
            .map(|t| json!({ "refresh_token": t })),
    )
}

#[derive(Deserialize)]
struct RevokeBody {
    refresh_token: String,
}

async fn admin_revoke(State(shared): State<Arc<Shared>>, Json(body): Json<RevokeBody>) -> Response {
    let revoked = shared.pools().revoke(&body.refresh_token);
    Json(json!({ "revoked": revoked })).into_response()
}

async fn admin_fault(State(shared): State<Arc<Shared>>, Json(fault): Json<Fault>) -> Response {
    shared.inject(fault);
    Json(json!({ "ok": true })).into_response()
}

#[derive(Deserialize)]
struct ClockBody {
    advance_secs: u64,
}

async fn admin_clock(State(shared): State<Arc<Shared>>, Json(body): Json<ClockBody>) -> Response {
    shared.advance(std::time::Duration::from_secs(body.advance_secs));
    let now = shared
        .now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    Json(json!({ "now": now })).into_response()
}
