//! Test doubles for the session managers: a manual clock and a scripted Cognito.
#![allow(dead_code, unreachable_pub)]

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use cogref_core::driver::{HttpRequest, HttpResponse, ManualEnvironment};
use cogref_core::{
    BlockingTransport, CallConfig, Client, EndpointConfig, Error, RefreshInput, RetryConfig,
    SendOptions,
};

pub const T0: u64 = 1_800_000_000;

pub fn clock() -> ManualEnvironment {
    ManualEnvironment::new(
        Instant::now(),
        SystemTime::UNIX_EPOCH + Duration::from_secs(T0),
    )
}

/// A blocking transport answering from a script; its sleeps move the manual clock.
#[derive(Clone)]
pub struct Scripted {
    pub script: Arc<Mutex<VecDeque<(u16, String)>>>,
    pub requests: Arc<Mutex<Vec<String>>>,
    pub clock: ManualEnvironment,
}

impl Scripted {
    pub fn new(clock: &ManualEnvironment, answers: &[(u16, String)]) -> Self {
        Self {
            script: Arc::new(Mutex::new(answers.iter().cloned().collect())),
            requests: Arc::default(),
            clock: clock.clone(),
        }
    }

    /// The refresh tokens sent, in order.
    pub fn sent(&self) -> Vec<String> {
        self.requests.lock().expect("requests").clone()
    }
}

impl BlockingTransport for Scripted {
    fn send(&self, request: HttpRequest, _: SendOptions) -> Result<HttpResponse, Error> {
        let body: serde_json::Value = serde_json::from_slice(request.body()).expect("json body");
        self.requests
            .lock()
            .expect("requests")
            .push(body["RefreshToken"].as_str().unwrap_or_default().to_owned());
        let (status, body) = self
            .script
            .lock()
            .expect("script")
            .pop_front()
            .expect("an answer is scripted for every request");
        Ok(cogref_core::http::Response::builder()
            .status(status)
            .body(body.into_bytes())
            .expect("response"))
    }

    fn sleep(&self, duration: Duration) {
        self.clock.advance(duration);
    }
}

pub fn ok(access: &str, expires_in: u32, refresh: Option<&str>) -> (u16, String) {
    let refresh = refresh
        .map(|r| format!(r#","RefreshToken":"{r}""#))
        .unwrap_or_default();
    (
        200,
        format!(
            r#"{{"AuthenticationResult":{{"AccessToken":"{access}","ExpiresIn":{expires_in},"TokenType":"Bearer"{refresh}}}}}"#
        ),
    )
}

/// An error answer; a `NotAuthorizedException` says the token was revoked (see
/// [`err_with`] for another message).
pub fn err(status: u16, code: &str) -> (u16, String) {
    let message = match code {
        "NotAuthorizedException" => "Refresh Token has been revoked".to_owned(),
        other => format!("scripted {other}"),
    };
    err_with(status, code, &message)
}

pub fn err_with(status: u16, code: &str, message: &str) -> (u16, String) {
    (
        status,
        format!(r#"{{"__type":"{code}","message":"{message}"}}"#),
    )
}

pub fn client<T>(transport: T, clock: &ManualEnvironment) -> Client<T, ManualEnvironment> {
    let endpoint = EndpointConfig::new()
        .region("eu-west-1")
        .resolve()
        .expect("valid");
    let config = CallConfig {
        retry: RetryConfig::disabled(),
        ..CallConfig::default()
    };
    Client::new(transport, clock.clone(), endpoint, config)
}

pub fn template(refresh: &str) -> RefreshInput {
    RefreshInput::builder()
        .refresh_token(refresh.to_owned())
        .client_id("client")
        .build()
        .expect("valid")
}

/// Counts calls; handy for listeners.
#[derive(Clone, Default)]
pub struct Counter(pub Arc<AtomicUsize>);

impl Counter {
    pub fn bump(&self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
    pub fn get(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }
}
