//! The HTTP face of the emulator: the AWS JSON 1.1 operations, CORS, the JWKS and OpenID
//! configuration, the OAuth2 token endpoint, and the admin routes.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::{Body, Bytes};
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

use crate::state::Refusal;
use crate::{Fault, Shared, admin, api, oauth};

const TARGET_PREFIX: &str = "AWSCognitoIdentityProviderService.";
const JSON_1_1: &str = "application/x-amz-json-1.1";

/// Request headers a browser may send: what the AWS SDK for JavaScript and Amplify set, plus
/// SigV4's for signed calls.
pub(crate) const CORS_ALLOW_HEADERS: &str = "content-type, x-amz-target, x-amz-user-agent, \
amz-sdk-invocation-id, amz-sdk-request, cache-control, authorization, x-amz-date, \
x-amz-security-token, x-amz-content-sha256, x-amz-api-version";
/// Response headers a browser script may read.
pub(crate) const CORS_EXPOSE_HEADERS: &str = "x-amzn-errortype, x-amzn-requestid";

pub(crate) fn router(shared: Arc<Shared>) -> axum::Router {
    axum::Router::new()
        .route("/", post(operation))
        .route("/{pool}/.well-known/jwks.json", get(jwks))
        .route(
            "/{pool}/.well-known/openid-configuration",
            get(oauth::openid_configuration),
        )
        .route("/oauth2/token", post(oauth::token))
        .merge(admin::routes())
        .fallback(not_found)
        .layer(middleware::from_fn(cors))
        .with_state(shared)
}

/// CORS for every route: preflights are answered here, before routing; every other answer
/// gets the origin and exposed headers.
async fn cors(request: Request, next: Next) -> Response {
    let origin = request
        .headers()
        .get(header::ORIGIN)
        .cloned()
        .unwrap_or_else(|| HeaderValue::from_static("*"));
    let mut response = if request.method() == Method::OPTIONS {
        let mut r = StatusCode::NO_CONTENT.into_response();
        let h = r.headers_mut();
        h.insert(
            header::ACCESS_CONTROL_ALLOW_METHODS,
            HeaderValue::from_static("GET, POST, OPTIONS"),
        );
        h.insert(
            header::ACCESS_CONTROL_ALLOW_HEADERS,
            HeaderValue::from_static(CORS_ALLOW_HEADERS),
        );
        h.insert(
            header::ACCESS_CONTROL_MAX_AGE,
            HeaderValue::from_static("600"),
        );
        r
    } else {
        next.run(request).await
    };
    let h = response.headers_mut();
    h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
    h.insert(
        header::ACCESS_CONTROL_EXPOSE_HEADERS,
        HeaderValue::from_static(CORS_EXPOSE_HEADERS),
    );
    h.insert(header::VARY, HeaderValue::from_static("Origin"));
    response
}

async fn not_found() -> Response {
    (StatusCode::NOT_FOUND, "not found").into_response()
}

pub(crate) fn request_id() -> String {
    cogref_core::InvocationId::from_random_bytes(rand::random()).to_string()
}

pub(crate) fn json_response(status: u16, body: &Value, request_id: &str) -> Response {
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

pub(crate) fn refusal(r: &Refusal, request_id: &str) -> Response {
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

fn header<'a>(headers: &'a HeaderMap, name: &str) -> &'a str {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

async fn operation(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    let id = request_id();
    let Some(operation) = header(&headers, "x-amz-target")
        .strip_prefix(TARGET_PREFIX)
        .filter(|op| api::OPERATIONS.contains(op))
    else {
        return refusal(
            &Refusal::new(400, "UnknownOperationException", "Unknown operation"),
            &id,
        );
    };
    if operation == "GetTokensFromRefreshToken" {
        return refresh(&shared, &headers, &body, &id).await;
    }
    let parsed = match parse(&headers, &body) {
        Ok(v) => v,
        Err(r) => return refusal(&r, &id),
    };
    match api::call(&shared, operation, &parsed) {
        Ok(out) => json_response(200, &out, &id),
        Err(r) => refusal(&r, &id),
    }
}

/// The body as JSON; an empty body is `{}` (clients MUST send `{}`, servers accept both).
fn parse(headers: &HeaderMap, body: &[u8]) -> Result<Value, Refusal> {
    if !header(headers, "content-type").starts_with(JSON_1_1) {
        return Err(Refusal::new(
            400,
            "SerializationException",
            format!("Content-Type must be {JSON_1_1}"),
        ));
    }
    // JSON's whitespace only (not a form feed, which Rust's `is_ascii_whitespace` takes): a
    // body of one is not JSON, as the core reads it too.
    if body
        .iter()
        .all(|b| matches!(b, b' ' | b'\t' | b'\n' | b'\r'))
    {
        return Ok(json!({}));
    }
    serde_json::from_slice(body).map_err(|_| {
        Refusal::new(
            400,
            "SerializationException",
            "The request body is not valid JSON",
        )
    })
}

/// `GetTokensFromRefreshToken`: faults first, then validation, then the rules.
async fn refresh(shared: &Shared, headers: &HeaderMap, body: &[u8], id: &str) -> Response {
    shared.count_request();
    let fault = shared.take_fault();
    if let Some(Fault::Delay { millis, .. }) = &fault {
        tokio::time::sleep(std::time::Duration::from_millis(*millis)).await;
    }
    match &fault {
        Some(Fault::Throttle { .. }) => {
            return refusal(
                &Refusal::new(400, "TooManyRequestsException", "Rate exceeded"),
                id,
            );
        }
        Some(Fault::Throttle429 { .. }) => {
            return refusal(
                &Refusal::new(429, "TooManyRequestsException", "Rate exceeded"),
                id,
            );
        }
        Some(Fault::ServerError { status, .. }) => {
            return if *status == 500 {
                refusal(
                    &Refusal::new(500, "InternalErrorException", "Internal error"),
                    id,
                )
            } else {
                // What a load balancer in front of the service sends: HTML, no error code.
                let mut r = (
                    StatusCode::from_u16(*status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE),
                    format!(
                        "<html><body><h1>{status} Service Temporarily Unavailable</h1></body></html>"
                    ),
                )
                    .into_response();
                r.headers_mut()
                    .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html"));
                r
            };
        }
        _ => {}
    }
    let parsed = match parse(headers, body) {
        Ok(v) => v,
        Err(r) => return refusal(&r, id),
    };
    let request = match api::refresh_request(&parsed) {
        Ok(r) => r,
        Err(r) => return refusal(&r, id),
    };
    match shared.refresh(&request) {
        Ok(mut result) => {
            if matches!(fault, Some(Fault::NewDeviceMetadata { .. }))
                && let Some(device) = shared.pools().unsolicited_device(request.client_id)
                && let Some(map) = result.as_object_mut()
            {
                map.insert("NewDeviceMetadata".into(), device);
            }
            if matches!(fault, Some(Fault::DropAfterRotation { .. })) {
                // The rotation is applied; the answer is lost on the way.
                let mut r = Response::new(Body::new(Broken));
                r.headers_mut()
                    .insert(header::CONTENT_TYPE, HeaderValue::from_static(JSON_1_1));
                return r;
            }
            // The operation's output has AuthenticationResult only (no ChallengeParameters,
            // unlike InitiateAuth's).
            json_response(200, &json!({ "AuthenticationResult": result }), id)
        }
        Err(r) => refusal(&r, id),
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
        axum::Json(shared.jwks()).into_response()
    } else {
        (StatusCode::NOT_FOUND, "no such user pool").into_response()
    }
}
