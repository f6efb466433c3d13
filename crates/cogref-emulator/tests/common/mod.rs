//! What the emulator's tests share: calls over HTTP as a client sends them, the admin routes,
//! and a token's claims.
#![allow(dead_code, unreachable_pub)]

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use cogref_emulator::Emulator;
use serde_json::Value;

/// The prefix of every `X-Amz-Target`.
pub const T: &str = "AWSCognitoIdentityProviderService.";
/// A password that meets the default password policy.
pub const PASSWORD: &str = "Passw0rd!x";

/// An answer as a client sees it.
pub struct Answer {
    pub status: u16,
    /// `x-amzn-errortype`, as sent.
    pub errortype: Option<String>,
    pub headers: reqwest::header::HeaderMap,
    /// The body as JSON; `null` when it is not JSON.
    pub body: Value,
}

/// `operation` called with `body`, as the AWS JSON 1.1 protocol sends it.
pub async fn call(e: &Emulator, operation: &str, body: Value) -> Answer {
    let r = reqwest::Client::new()
        .post(e.endpoint_url())
        .header("x-amz-target", format!("{T}{operation}"))
        .header("content-type", "application/x-amz-json-1.1")
        .body(body.to_string())
        .send()
        .await
        .expect("response");
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    let errortype = headers
        .get("x-amzn-errortype")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body = r.json().await.unwrap_or_default();
    Answer {
        status,
        errortype,
        headers,
        body,
    }
}

/// The admin route `/_emulator/{path}` posted `body`: its status and JSON answer.
pub async fn admin(e: &Emulator, path: &str, body: Value) -> (u16, Value) {
    let r = reqwest::Client::new()
        .post(format!("{}/_emulator/{path}", e.endpoint_url()))
        .json(&body)
        .send()
        .await
        .expect("admin");
    (r.status().as_u16(), r.json().await.unwrap_or_default())
}

/// The claims of a JWT, unverified.
pub fn claims(token: &str) -> Value {
    let payload = token.split('.').nth(1).expect("payload");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).expect("base64")).expect("json")
}
