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

/// Something to do when the next request arrives (Cognito acting, the store losing its data).
pub type Hook = Box<dyn FnOnce() + Send>;

/// A blocking transport answering from a script; its sleeps move the manual clock.
#[derive(Clone)]
pub struct Scripted {
    pub script: Arc<Mutex<VecDeque<(u16, String)>>>,
    pub requests: Arc<Mutex<Vec<String>>>,
    pub clock: ManualEnvironment,
    pub hook: Arc<Mutex<Option<Hook>>>,
}

impl Scripted {
    pub fn new(clock: &ManualEnvironment, answers: &[(u16, String)]) -> Self {
        Self {
            script: Arc::new(Mutex::new(answers.iter().cloned().collect())),
            requests: Arc::default(),
            clock: clock.clone(),
            hook: Arc::default(),
        }
    }

    /// Runs `hook` when the next request arrives, before it is answered.
    pub fn on_next_request(&self, hook: impl FnOnce() + Send + 'static) {
        *self.hook.lock().expect("hook") = Some(Box::new(hook));
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
        let hook = self.hook.lock().expect("hook").take();
        if let Some(hook) = hook {
            hook();
        }
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
    client_on(transport, clock.clone())
}

/// A client over any clocks, retries off, for eu-west-1.
pub fn client_on<T, E: cogref_core::Environment>(transport: T, env: E) -> Client<T, E> {
    let endpoint = EndpointConfig::new()
        .region("eu-west-1")
        .resolve()
        .expect("valid");
    let config = CallConfig {
        retry: RetryConfig::disabled(),
        ..CallConfig::default()
    };
    Client::new(transport, env, endpoint, config)
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

/// An async face for a blocking transport, on tokio: each answer comes after `delay` of real
/// time (a slow Cognito), sleeps are tokio's and spawned tasks run on tokio.
#[derive(Clone)]
pub struct OnTokio<T> {
    pub inner: T,
    pub delay: Duration,
}

impl<T: BlockingTransport + Clone + 'static> cogref_core::AsyncTransport for OnTokio<T> {
    async fn send(
        &self,
        request: HttpRequest,
        options: SendOptions,
    ) -> Result<HttpResponse, Error> {
        tokio::time::sleep(self.delay).await;
        self.inner.send(request, options)
    }

    async fn sleep(&self, duration: Duration) {
        tokio::time::sleep(duration).await;
    }

    fn spawn(&self, task: cogref_core::driver::DetachedTask) {
        tokio::spawn(task);
    }
}

/// Clocks whose wall clock can be stepped apart from the monotonic one, as an administrator or
/// a broken NTP daemon does. Clones share them.
#[derive(Debug, Clone)]
pub struct SteppedClock {
    mono_base: Instant,
    elapsed: Arc<Mutex<Duration>>,
    /// Seconds added to the wall clock (negative: stepped back).
    step_secs: Arc<Mutex<i64>>,
    seed: Arc<AtomicUsize>,
}

impl SteppedClock {
    pub fn new() -> Self {
        Self {
            mono_base: Instant::now(),
            elapsed: Arc::default(),
            step_secs: Arc::default(),
            seed: Arc::default(),
        }
    }

    /// Both clocks move forward.
    pub fn advance(&self, by: Duration) {
        *self.elapsed.lock().expect("clock") += by;
    }

    /// The wall clock jumps by `secs` (back if negative); the monotonic one does not move.
    pub fn step_wall(&self, secs: i64) {
        *self.step_secs.lock().expect("clock") += secs;
    }
}

impl cogref_core::Environment for SteppedClock {
    fn now(&self) -> Instant {
        self.mono_base + *self.elapsed.lock().expect("clock")
    }

    fn wall_clock(&self) -> SystemTime {
        let step = *self.step_secs.lock().expect("clock");
        let wall =
            SystemTime::UNIX_EPOCH + Duration::from_secs(T0) + *self.elapsed.lock().expect("clock");
        if step >= 0 {
            wall + Duration::from_secs(step.unsigned_abs())
        } else {
            wall - Duration::from_secs(step.unsigned_abs())
        }
    }

    fn random_seed(&self) -> u64 {
        self.seed.fetch_add(1, Ordering::Relaxed) as u64
    }
}

/// A fresh folder under the system's temporary one, removed when dropped.
pub struct TempDir(pub std::path::PathBuf);

impl TempDir {
    /// A new empty folder whose name starts with `name`.
    pub fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!(
            "cogref-session-{name}-{}-{}",
            std::process::id(),
            SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos())
        ));
        std::fs::create_dir_all(&dir).expect("temp dir");
        Self(dir)
    }

    /// A path in the folder.
    pub fn file(&self, name: &str) -> std::path::PathBuf {
        self.0.join(name)
    }
}

impl std::ops::Deref for TempDir {
    type Target = std::path::Path;
    fn deref(&self) -> &std::path::Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The refresh token a store holds, if any.
pub fn stored_refresh_token(store: &impl cogref_session::TokenStore) -> Option<String> {
    use cogref_session::secrecy::ExposeSecret;
    store
        .load()
        .expect("readable")
        .map(|v| v.tokens.refresh_token.expose_secret().to_owned())
}

/// The names of the events a manager told, in order.
pub type Events = Arc<Mutex<Vec<String>>>;

/// A listener that records each event's name in [`Events`].
pub fn recorder() -> (
    Events,
    impl Fn(&cogref_session::SessionEvent) + Send + Sync + 'static,
) {
    use cogref_session::SessionEvent;
    let events: Events = Arc::default();
    let seen = events.clone();
    (events, move |e: &SessionEvent| {
        let name = match e {
            SessionEvent::Stored => "stored",
            SessionEvent::StoreFailed(_) => "store-failed",
            SessionEvent::Refreshed { .. } => "refreshed",
            SessionEvent::Adopted => "adopted",
            SessionEvent::SignedOut => "signed-out",
            _ => "other",
        };
        seen.lock().expect("events").push(name.to_owned());
    })
}

/// How many events of `name` were told.
pub fn count(events: &Events, name: &str) -> usize {
    events
        .lock()
        .expect("events")
        .iter()
        .filter(|e| *e == name)
        .count()
}

/// Another holder's set for this app client and endpoint, expiring at `T0 + expires`.
pub fn theirs(refresh: &str, access: &str, expires: u64) -> cogref_core::TokenSet {
    cogref_core::TokenSet::new(
        refresh.to_owned().into(),
        Some(access.to_owned().into()),
        None,
        None,
        Some(SystemTime::UNIX_EPOCH + Duration::from_secs(T0 + expires)),
        Some(Duration::from_secs(3600)),
    )
    .bound_to(
        Some("client".to_owned()),
        Some("https://cognito-idp.eu-west-1.amazonaws.com/".to_owned()),
    )
}

/// A memory store whose saves fail while `full` is set (a full disk, Redis down); it counts
/// the saves tried.
#[derive(Clone, Default)]
pub struct FullDisk {
    pub inner: cogref_session::MemoryStore,
    pub full: Arc<std::sync::atomic::AtomicBool>,
    pub saves: Arc<AtomicUsize>,
}

impl cogref_session::TokenStore for FullDisk {
    fn load(&self) -> Result<Option<cogref_session::Versioned>, cogref_session::StoreError> {
        self.inner.load()
    }
    fn save(
        &self,
        tokens: &cogref_core::TokenSet,
        expected: Option<u64>,
    ) -> Result<u64, cogref_session::StoreError> {
        self.saves.fetch_add(1, Ordering::SeqCst);
        if self.full.load(Ordering::SeqCst) {
            return Err(cogref_session::StoreError::Other(
                "no space left on device".into(),
            ));
        }
        self.inner.save(tokens, expected)
    }
    fn try_lock(&self) -> Result<Option<cogref_session::StoreGuard>, cogref_session::StoreError> {
        self.inner.try_lock()
    }
}
