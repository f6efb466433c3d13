//! The hosted domain's OAuth2 surface the refresh story needs: `POST /oauth2/token` with
//! `grant_type=refresh_token` (rotating like the API), and the pool's OpenID configuration.
//!
//! Errors follow RFC 6749 §5.2 as Cognito's token endpoint does (`{"error": "invalid_grant"}`
//! and so on, HTTP 400; the endpoint's documentation lists the codes but not every status, so
//! the emulator sends 400 for each).

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use serde_json::{Value, json};

use crate::Shared;
use crate::state::Refusal;

fn oauth_error(error: &str) -> Response {
    (
        StatusCode::BAD_REQUEST,
        [(header::CONTENT_TYPE, "application/json;charset=UTF-8")],
        json!({ "error": error }).to_string(),
    )
        .into_response()
}

fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = s.get(i + 1..i + 3)?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

/// `application/x-www-form-urlencoded`; `None` for a malformed body or a repeated field.
pub(crate) fn parse_form(body: &[u8]) -> Option<Vec<(String, String)>> {
    let text = std::str::from_utf8(body).ok()?;
    let mut fields: Vec<(String, String)> = Vec::new();
    for pair in text.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let (k, v) = (percent_decode(k)?, percent_decode(v)?);
        if fields.iter().any(|(seen, _)| *seen == k) {
            return None;
        }
        fields.push((k, v));
    }
    Some(fields)
}

/// Client credentials from `Authorization: Basic`. Cognito takes
/// `Base64Encode(client_id:client_secret)` of the raw values (token-endpoint and
/// revocation-endpoint docs), not RFC 6749 §2.3.1's form-encoded ones: decoding them would turn
/// the `+` a secret may hold (`ClientSecretType`: `[\w+]+`) into a space.
fn basic_credentials(headers: &HeaderMap) -> Option<Option<(String, String)>> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Some(None);
    };
    let value = value.to_str().ok()?;
    let encoded = value
        .strip_prefix("Basic ")
        .or_else(|| value.strip_prefix("basic "))?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let decoded = String::from_utf8(decoded).ok()?;
    let (id, secret) = decoded.split_once(':')?;
    Some(Some((id.to_owned(), secret.to_owned())))
}

pub(crate) async fn token(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !content_type.starts_with("application/x-www-form-urlencoded") {
        return oauth_error("invalid_request");
    }
    let Some(fields) = parse_form(&body) else {
        return oauth_error("invalid_request");
    };
    let field = |name: &str| {
        fields
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    match field("grant_type") {
        None => return oauth_error("invalid_request"),
        Some("refresh_token") => {}
        Some(_) => return oauth_error("unsupported_grant_type"),
    }
    let Some(basic) = basic_credentials(&headers) else {
        return oauth_error("invalid_client");
    };
    // Credentials in the header, or client_id (and client_secret) in the body; not both.
    let (client_id, client_secret) = match (basic, field("client_id")) {
        (Some(_), Some(_)) if field("client_secret").is_some() => {
            return oauth_error("invalid_request");
        }
        (Some((id, secret)), body_id) => {
            if body_id.is_some_and(|b| b != id) {
                return oauth_error("invalid_client");
            }
            (id, Some(secret))
        }
        (None, Some(id)) => (id.to_owned(), field("client_secret").map(str::to_owned)),
        (None, None) => return oauth_error("invalid_request"),
    };
    let Some(refresh_token) = field("refresh_token") else {
        return oauth_error("invalid_request");
    };
    let ctx = shared.ctx();
    let outcome =
        shared
            .pools()
            .refresh_grant(&ctx, &client_id, client_secret.as_deref(), refresh_token);
    match outcome {
        Ok(result) => {
            let mut out = json!({
                "id_token": result["IdToken"],
                "access_token": result["AccessToken"],
                "expires_in": result["ExpiresIn"],
                "token_type": "Bearer",
            });
            if let (Some(map), Some(r)) = (out.as_object_mut(), result.get("RefreshToken")) {
                map.insert("refresh_token".into(), r.clone());
            }
            (
                StatusCode::OK,
                [
                    (header::CONTENT_TYPE, "application/json;charset=UTF-8"),
                    (header::CACHE_CONTROL, "no-store"),
                ],
                out.to_string(),
            )
                .into_response()
        }
        Err(r) => oauth_error(grant_error(&r)),
    }
}

/// The RFC 6749 code for a refusal of the API.
fn grant_error(r: &Refusal) -> &'static str {
    match r.code {
        "ResourceNotFoundException" => "invalid_client",
        "NotAuthorizedException" if r.message.to_lowercase().contains("secret") => "invalid_client",
        _ => "invalid_grant",
    }
}

/// `/{userPoolId}/.well-known/openid-configuration`. The issuer is the one the tokens carry
/// (`https://cognito-idp.{region}.amazonaws.com/{pool}`, the pool's own region); the endpoints
/// point at this emulator, by the `Host` the request came to.
pub(crate) async fn openid_configuration(
    State(shared): State<Arc<Shared>>,
    Path(pool): Path<String>,
    headers: HeaderMap,
) -> Response {
    if !shared.has_pool(&pool) {
        return (StatusCode::NOT_FOUND, "no such user pool").into_response();
    }
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .filter(|h| {
            h.chars()
                .all(|c| c.is_ascii_alphanumeric() || ".:-[]".contains(c))
        })
        .unwrap_or("127.0.0.1");
    let base = format!("http://{host}");
    let document: Value = json!({
        "issuer": crate::state::issuer(&pool),
        "jwks_uri": format!("{base}/{pool}/.well-known/jwks.json"),
        "token_endpoint": format!("{base}/oauth2/token"),
        "authorization_endpoint": format!("{base}/oauth2/authorize"),
        "userinfo_endpoint": format!("{base}/oauth2/userInfo"),
        "response_types_supported": ["code", "token"],
        "grant_types_supported": ["refresh_token"],
        "scopes_supported": ["openid", "email", "phone", "profile"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
    });
    axum::Json(document).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms_decode_plus_and_percent_and_refuse_repeats() {
        let f = parse_form(b"a=x+y%2Bz&b=&c").expect("form");
        assert_eq!(
            f,
            vec![
                ("a".into(), "x y+z".into()),
                ("b".into(), String::new()),
                ("c".into(), String::new())
            ]
        );
        assert!(parse_form(b"a=1&a=2").is_none());
        assert!(parse_form(b"a=%zz").is_none());
    }
}
