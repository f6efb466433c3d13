//! # cogref-emulator
//!
//! A local Amazon Cognito user pool, faithful where other emulators are not: set-up through
//! the standard API, sign-in (`USER_PASSWORD_AUTH`, `ADMIN_USER_PASSWORD_AUTH`, Cognito's SRP
//! with `PASSWORD_VERIFIER`), `GetTokensFromRefreshToken` with refresh-token rotation, its
//! grace period and `RefreshTokenReuseException`, lineage expiry that rotation never extends,
//! `REFRESH_TOKEN_AUTH` refused on rotating clients, `RevokeToken` and `GlobalSignOut`,
//! `GetUser`, devices (each lineage bound to its confirmed device), confidential clients
//! (`SECRET_HASH` and `ClientSecret`), RS256 JWTs with Cognito's claims, access and ID tokens
//! signed by two keys of a JWKS, the issuer and ARNs in each pool's own region, the OAuth2
//! `/oauth2/token` refresh grant, CORS for browsers, fault injection, and a clock tests move
//! forward instead of sleeping.
//!
//! It speaks AWS JSON 1.1 on 127.0.0.1 as the service does: every response carries
//! `x-amzn-requestid`, every error `x-amzn-errortype`, a `{"__type","message"}` body and the
//! status the service sends (400 for every client error, throttling and missing resources
//! included; 500 for `InternalErrorException`). Requests may be signed; signatures are not
//! checked. [`Emulator::shutdown`] lets requests in flight finish for up to
//! [`SHUTDOWN_DEADLINE`], then drops their connections.
//!
//! ```
//! use cogref_emulator::{AppClient, Emulator, EmulatorConfig};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let emulator = Emulator::start(EmulatorConfig::default()).await?;
//! emulator.create_pool("eu-west-1_demo");
//! emulator.create_client(AppClient::new("eu-west-1_demo", "democlient").with_rotation(0))?;
//! emulator.create_user("eu-west-1_demo", "alice")?;
//! let refresh_token = emulator.mint_refresh_token("democlient", "alice")?;
//! println!("POST {} with {} characters of refresh token", emulator.endpoint_url(), refresh_token.len());
//! emulator.shutdown().await;
//! # Ok(())
//! # }
//! ```
//!
//! ## Operations (`X-Amz-Target: AWSCognitoIdentityProviderService.<Operation>`)
//!
//! `CreateUserPool`, `DescribeUserPool`, `DeleteUserPool`, `CreateUserPoolClient`,
//! `UpdateUserPoolClient`, `DescribeUserPoolClient`, `DeleteUserPoolClient`, `AdminCreateUser`,
//! `AdminGetUser`, `AdminSetUserPassword`, `AdminDeleteUser`, `AdminDisableUser`,
//! `AdminEnableUser`, `InitiateAuth`, `AdminInitiateAuth`, `RespondToAuthChallenge`,
//! `AdminRespondToAuthChallenge`, `GetTokensFromRefreshToken`, `RevokeToken`, `GlobalSignOut`,
//! `GetUser`, `ConfirmDevice`. Also `POST /oauth2/token` (refresh grant),
//! `GET /{userPoolId}/.well-known/jwks.json` and
//! `GET /{userPoolId}/.well-known/openid-configuration`.
//!
#![doc = include_str!("admin_routes.md")]
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod admin;
mod api;
mod http;
mod oauth;
mod serve;
mod signals;
mod signer;
mod srp;
mod state;
mod validate;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

pub use serve::SHUTDOWN_DEADLINE;
pub use signals::ShutdownSignals;
pub use state::{ALL_AUTH_FLOWS, AppClient, Refusal, Rotation};

/// The admin routes, their bodies and answers (what `cogref emulator --help` prints).
pub const ADMIN_ROUTES: &str = include_str!("admin_routes.md");

/// The furthest the clock can be moved in all, 100 years: past it, times would leave what
/// JWT clients parse.
pub const MAX_CLOCK_ADVANCE: Duration = Duration::from_secs(100 * 365 * 86_400);

/// Where and as what the emulator runs.
#[derive(Debug, Clone)]
pub struct EmulatorConfig {
    /// Address to bind; port 0 picks a free one. Default `127.0.0.1:0`.
    pub bind: SocketAddr,
    /// The region of the pools `CreateUserPool` makes (their ids start with it). Default
    /// `eu-west-1`. Tokens, ARNs, device keys and the OpenID configuration of a pool name the
    /// pool's own region, the prefix of its id, as the service's do.
    pub region: String,
    /// Sign `iat`/`exp` with the wall clock instead of the emulator's (movable) clock.
    /// Default off.
    pub wall_clock_signing: bool,
}

impl Default for EmulatorConfig {
    fn default() -> Self {
        Self {
            bind: SocketAddr::from(([127, 0, 0, 1], 0)),
            region: "eu-west-1".into(),
            wall_clock_signing: false,
        }
    }
}

/// A misbehaviour to inject into the next `count` calls of `GetTokensFromRefreshToken`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Fault {
    /// Answer `TooManyRequestsException` with HTTP 400, as the service does
    /// (aws/aws-sdk-java#2301, boto/botocore#1756, aws/aws-sdk-php#2183).
    Throttle {
        /// Calls affected.
        count: u32,
    },
    /// Answer `TooManyRequestsException` with HTTP 429, which the service does not send:
    /// for checking a client that keys on the status.
    #[serde(rename = "throttle_429")]
    Throttle429 {
        /// Calls affected.
        count: u32,
    },
    /// Answer with this 5xx status: 500 as `InternalErrorException`, others as a load
    /// balancer's HTML page.
    ServerError {
        /// Calls affected.
        count: u32,
        /// The status.
        status: u16,
    },
    /// Wait this long before answering.
    Delay {
        /// Calls affected.
        count: u32,
        /// Milliseconds.
        millis: u64,
    },
    /// Apply the refresh (rotation included), then drop the connection instead of answering:
    /// the lost-response case.
    DropAfterRotation {
        /// Calls affected.
        count: u32,
    },
    /// Add `NewDeviceMetadata` for a new, unconfirmed device to a granted refresh. **Not the
    /// service's behaviour** ("GetTokensFromRefreshToken doesn't return NewDeviceMetadata",
    /// API_AuthenticationResultType): for checking that a client keeps device metadata
    /// wherever it comes.
    NewDeviceMetadata {
        /// Calls affected.
        count: u32,
    },
}

impl Fault {
    fn count(&self) -> u32 {
        let mut copy = *self;
        *copy.count_mut()
    }

    fn count_mut(&mut self) -> &mut u32 {
        match self {
            Fault::Throttle { count }
            | Fault::Throttle429 { count }
            | Fault::ServerError { count, .. }
            | Fault::Delay { count, .. }
            | Fault::DropAfterRotation { count }
            | Fault::NewDeviceMetadata { count } => count,
        }
    }
}

/// What [`Emulator::seed`] creates.
#[derive(Clone, PartialEq, Eq)]
pub struct Seed {
    /// The user pool id.
    pub pool_id: String,
    /// The app client id.
    pub client_id: String,
    /// The app client's secret, if it is confidential.
    pub client_secret: Option<String>,
    /// Rotation with this grace period, or `None` for rotation off.
    pub rotation_grace_secs: Option<u32>,
    /// Access and ID token lifetime.
    pub access_token_validity_secs: u64,
    /// The user.
    pub username: String,
}

impl std::fmt::Debug for Seed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Seed")
            .field("pool_id", &self.pool_id)
            .field("client_id", &self.client_id)
            .field(
                "client_secret",
                &self.client_secret.as_ref().map(|_| state::Redacted),
            )
            .field("rotation_grace_secs", &self.rotation_grace_secs)
            .field(
                "access_token_validity_secs",
                &self.access_token_validity_secs,
            )
            .field("username", &self.username)
            .finish()
    }
}

impl Default for Seed {
    /// Pool `eu-west-1_cogrefDemo`, public client `cogrefdemoclient` with rotation and a 10 s
    /// grace period, 1-hour tokens, user `alice`.
    fn default() -> Self {
        Self {
            pool_id: "eu-west-1_cogrefDemo".into(),
            client_id: "cogrefdemoclient".into(),
            client_secret: None,
            rotation_grace_secs: Some(10),
            access_token_validity_secs: 3600,
            username: "alice".into(),
        }
    }
}

/// What seeding produced.
#[derive(Clone, PartialEq, Eq)]
pub struct Seeded {
    /// The user's first refresh token.
    pub refresh_token: String,
}

impl Seeded {
    /// Writes the refresh token to `path`, readable by its owner only (0600 on Unix): where the
    /// binaries put it instead of printing it.
    ///
    /// The token goes into a new file beside `path`, created 0600, which then replaces `path`:
    /// a file already there keeps neither its mode (a world-readable one would otherwise now
    /// hold a token) nor its content, and a link at `path` is replaced, not followed.
    pub fn write_refresh_token(&self, path: &std::path::Path) -> std::io::Result<()> {
        use std::io::Write;
        let name = path.file_name().ok_or_else(|| {
            std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a file name")
        })?;
        let mut temporary = name.to_os_string();
        temporary.push(format!(
            ".{}-{:016x}.tmp",
            std::process::id(),
            rand::random::<u64>()
        ));
        let temporary = path.with_file_name(temporary);
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let written = options.open(&temporary).and_then(|mut file| {
            file.write_all(self.refresh_token.as_bytes())?;
            file.sync_all()
        });
        let renamed = written.and_then(|()| std::fs::rename(&temporary, path));
        if renamed.is_err() {
            let _ = std::fs::remove_file(&temporary);
        }
        renamed
    }
}

impl std::fmt::Debug for Seeded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Seeded { refresh_token: [REDACTED] }")
    }
}

/// Refresh counters, as `GET /_emulator/counters` answers.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counters {
    /// `GetTokensFromRefreshToken` calls received (faults included).
    pub requests_served: usize,
    /// Refreshes granted.
    pub refreshes_granted: usize,
    /// Refusals after validation, by error code.
    pub refusals: std::collections::BTreeMap<String, usize>,
}

/// State shared by the server and the handle.
pub(crate) struct Shared {
    pools: Mutex<state::Pools>,
    signer: signer::Signer,
    srp: srp::Group,
    region: String,
    clock_offset: Mutex<Duration>,
    wall_clock_signing: AtomicBool,
    faults: Mutex<Vec<Fault>>,
    requests: AtomicUsize,
    /// Refresh decisions taken: granted, or refused by error code.
    granted: AtomicUsize,
    refused: Mutex<std::collections::HashMap<&'static str, usize>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Shared {
    pub(crate) fn pools(&self) -> MutexGuard<'_, state::Pools> {
        lock(&self.pools)
    }

    pub(crate) fn region(&self) -> &str {
        &self.region
    }

    pub(crate) fn now(&self) -> SystemTime {
        let now = SystemTime::now();
        now.checked_add(*lock(&self.clock_offset)).unwrap_or(now)
    }

    /// The emulator's clock in Unix seconds.
    pub(crate) fn epoch_now(&self) -> u64 {
        state::secs(self.now())
    }

    /// Moves the clock forward by `by`; refuses (returns `false`) past
    /// [`MAX_CLOCK_ADVANCE`] in all.
    pub(crate) fn advance(&self, by: Duration) -> bool {
        let mut offset = lock(&self.clock_offset);
        match offset.checked_add(by) {
            Some(next) if next <= MAX_CLOCK_ADVANCE => {
                *offset = next;
                true
            }
            _ => false,
        }
    }

    pub(crate) fn set_wall_clock_signing(&self, on: bool) {
        self.wall_clock_signing.store(on, Ordering::SeqCst);
    }

    pub(crate) fn ctx(&self) -> state::Ctx<'_> {
        let now = self.now();
        state::Ctx {
            now,
            signing_now: if self.wall_clock_signing.load(Ordering::SeqCst) {
                SystemTime::now()
            } else {
                now
            },
            signer: &self.signer,
            srp: &self.srp,
        }
    }

    pub(crate) fn inject(&self, fault: Fault) {
        lock(&self.faults).push(fault);
    }

    /// The fault for this call, if any is left.
    pub(crate) fn take_fault(&self) -> Option<Fault> {
        let mut faults = lock(&self.faults);
        let fault = faults.iter_mut().find(|f| f.count() > 0)?;
        *fault.count_mut() -= 1;
        let taken = *fault;
        faults.retain(|f| f.count() > 0);
        Some(taken)
    }

    pub(crate) fn count_request(&self) {
        self.requests.fetch_add(1, Ordering::SeqCst);
    }

    pub(crate) fn refresh(
        &self,
        request: &state::Request<'_>,
    ) -> Result<serde_json::Value, Refusal> {
        let ctx = self.ctx();
        let outcome = self.pools().refresh(request, &ctx);
        match &outcome {
            Ok(_) => {
                self.granted.fetch_add(1, Ordering::SeqCst);
            }
            Err(r) => *lock(&self.refused).entry(r.code).or_default() += 1,
        }
        outcome
    }

    pub(crate) fn counters(&self) -> Counters {
        Counters {
            requests_served: self.requests.load(Ordering::SeqCst),
            refreshes_granted: self.granted.load(Ordering::SeqCst),
            refusals: lock(&self.refused)
                .iter()
                .map(|(k, v)| ((*k).to_owned(), *v))
                .collect(),
        }
    }

    pub(crate) fn jwks(&self) -> serde_json::Value {
        self.signer.jwks()
    }

    pub(crate) fn has_pool(&self, pool_id: &str) -> bool {
        self.pools().has_pool(pool_id)
    }
}

/// Why the emulator could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// Binding the address failed.
    #[error("could not bind {address}: {source}")]
    Bind {
        /// The address.
        address: SocketAddr,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// Generating the signing key failed.
    #[error("could not generate the RSA signing key: {0}")]
    Key(#[from] rsa::Error),
}

/// Registers for SIGINT and SIGTERM (Ctrl-C elsewhere) **now**, and returns a future that
/// completes when one arrives. Call it before printing anything a script waits for: a signal
/// that comes between the print and a later registration would be lost (and in a shell script,
/// where background jobs start with SIGINT ignored, `kill -INT` then does nothing). For the
/// second signal too, use [`ShutdownSignals`] with [`Emulator::run_until_signalled`].
pub fn shutdown_signal() -> std::io::Result<impl Future<Output = ()> + Send + 'static> {
    let mut signals = ShutdownSignals::register()?;
    Ok(async move { signals.recv().await })
}

/// How [`Emulator::run_until_signalled`] ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stopped {
    /// Every connection finished, or was dropped at [`SHUTDOWN_DEADLINE`].
    Shutdown,
    /// A second signal came during the shutdown: every connection was dropped at once.
    Forced,
}

/// A running emulator and the handle to seed it, inject faults and move its clock.
pub struct Emulator {
    shared: Arc<Shared>,
    address: SocketAddr,
    stop: tokio::sync::oneshot::Sender<()>,
    server: tokio::task::JoinHandle<()>,
}

impl Emulator {
    /// Binds, generates a signing key, and serves on the current tokio runtime.
    pub async fn start(config: EmulatorConfig) -> Result<Self, StartError> {
        let listener = tokio::net::TcpListener::bind(config.bind)
            .await
            .map_err(|source| StartError::Bind {
                address: config.bind,
                source,
            })?;
        let address = listener.local_addr().map_err(|source| StartError::Bind {
            address: config.bind,
            source,
        })?;
        // Key generation is CPU work: keep it off the async workers.
        let signer = tokio::task::spawn_blocking(signer::Signer::generate)
            .await
            .map_err(|e| StartError::Bind {
                address,
                source: std::io::Error::other(e),
            })??;
        let shared = Arc::new(Shared {
            pools: Mutex::default(),
            signer,
            srp: srp::Group::new(),
            region: config.region,
            clock_offset: Mutex::default(),
            wall_clock_signing: AtomicBool::new(config.wall_clock_signing),
            faults: Mutex::default(),
            requests: AtomicUsize::new(0),
            granted: AtomicUsize::new(0),
            refused: Mutex::default(),
        });
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let app = http::router(shared.clone());
        let server = tokio::spawn(serve::serve(listener, app, stopped, SHUTDOWN_DEADLINE));
        tracing::info!(%address, "cogref emulator listening");
        Ok(Self {
            shared,
            address,
            stop,
            server,
        })
    }

    /// `http://127.0.0.1:{port}`: the endpoint URL for clients.
    pub fn endpoint_url(&self) -> String {
        format!("http://{}", self.address)
    }

    /// The bound address.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// Creates a user pool (kept if it exists).
    pub fn create_pool(&self, pool_id: &str) {
        let now = self.shared.epoch_now();
        self.shared.pools().add_pool(pool_id, now);
    }

    /// Creates (or replaces) an app client in an existing pool.
    pub fn create_client(&self, client: AppClient) -> Result<(), Refusal> {
        let now = self.shared.epoch_now();
        self.shared.pools().add_client(client, now)
    }

    /// Creates a confirmed user without a password; returns its `sub`.
    pub fn create_user(&self, pool_id: &str, username: &str) -> Result<String, Refusal> {
        let now = self.shared.epoch_now();
        self.shared.pools().add_user(pool_id, username, now)
    }

    /// Creates a confirmed user (or updates one) with a permanent password, for sign-in;
    /// returns its `sub`. The pool's password policy applies.
    pub fn create_user_with_password(
        &self,
        pool_id: &str,
        username: &str,
        password: &str,
    ) -> Result<String, Refusal> {
        let now = self.shared.epoch_now();
        let mut pools = self.shared.pools();
        let sub = pools.add_user(pool_id, username, now)?;
        pools.set_password(pool_id, username, password, true, now)?;
        Ok(sub)
    }

    /// Signs `username` in through `client_id`, as far as this operation cares: a new refresh
    /// token, the start of a lineage (bound to no device, even in a pool that tracks them).
    pub fn mint_refresh_token(&self, client_id: &str, username: &str) -> Result<String, Refusal> {
        let now = self.shared.now();
        self.shared.pools().mint(client_id, username, now)
    }

    /// Revokes the lineage of `refresh_token`; `false` if the token is unknown.
    pub fn revoke(&self, refresh_token: &str) -> bool {
        self.shared.pools().revoke(refresh_token)
    }

    /// Registers a confirmed device key, which any user of any pool may then sign in and
    /// refresh with.
    pub fn register_device(&self, device_key: &str) {
        self.shared.pools().add_device(device_key);
    }

    /// Whether a device key is known (issued at sign-in, confirmed, or registered).
    pub fn has_device(&self, device_key: &str) -> bool {
        self.shared.pools().has_device(device_key)
    }

    /// Adds a fault for the next calls.
    pub fn inject(&self, fault: Fault) {
        self.shared.inject(fault);
    }

    /// Moves the emulator's clock forward (token expiry, grace periods). Tokens are signed
    /// with this clock (unless wall-clock signing is on), so their `iat`/`exp` run ahead of
    /// the wall clock afterwards. Returns `false`, moving nothing, past
    /// [`MAX_CLOCK_ADVANCE`] in all.
    pub fn advance_clock(&self, by: Duration) -> bool {
        self.shared.advance(by)
    }

    /// Signs `iat`/`exp`/`auth_time` with the wall clock (`true`) or the emulator's clock.
    pub fn set_wall_clock_signing(&self, on: bool) {
        self.shared.set_wall_clock_signing(on);
    }

    /// The emulator's current time.
    pub fn now(&self) -> SystemTime {
        self.shared.now()
    }

    /// Calls of the operation served so far (faults included).
    pub fn requests_served(&self) -> usize {
        self.shared.requests.load(Ordering::SeqCst)
    }

    /// Refreshes granted so far (each one issued new tokens and, with rotation, rotated).
    pub fn refreshes_granted(&self) -> usize {
        self.shared.granted.load(Ordering::SeqCst)
    }

    /// Refreshes refused so far with `code` (`"RefreshTokenReuseException"`, …), after
    /// validation: the answers of the service's own logic, not of injected faults.
    pub fn refusals(&self, code: &str) -> usize {
        lock(&self.shared.refused).get(code).copied().unwrap_or(0)
    }

    /// All refresh counters at once.
    pub fn counters(&self) -> Counters {
        self.shared.counters()
    }

    /// Whether `token` carries a valid signature of this emulator's key.
    pub fn verify_signature(&self, token: &str) -> bool {
        self.shared.signer.verify(token)
    }

    /// Seeds one pool, one app client and one user, and signs the user in: what a demo or a
    /// quick test needs.
    pub fn seed(&self, seed: &Seed) -> Result<Seeded, Refusal> {
        self.create_pool(&seed.pool_id);
        let mut client = AppClient::new(&seed.pool_id, &seed.client_id)
            .with_access_validity(seed.access_token_validity_secs);
        if let Some(grace) = seed.rotation_grace_secs {
            client = client.with_rotation(grace);
        }
        if let Some(secret) = &seed.client_secret {
            client = client.with_secret(secret);
        }
        self.create_client(client)?;
        self.create_user(&seed.pool_id, &seed.username)?;
        Ok(Seeded {
            refresh_token: self.mint_refresh_token(&seed.client_id, &seed.username)?,
        })
    }

    /// Stops accepting connections, lets the requests in flight finish for up to
    /// [`SHUTDOWN_DEADLINE`], then drops whatever connection is still open (a client that
    /// sent half a request, a response held back by a `delay` fault) and returns.
    pub async fn shutdown(self) {
        let _ = self.stop.send(());
        let _ = self.server.await;
    }

    /// What the binaries do: serves until the first of `signals`, then shuts down as
    /// [`Emulator::shutdown`] does; a second signal during that shutdown drops every
    /// connection at once.
    pub async fn run_until_signalled(self, mut signals: ShutdownSignals) -> Stopped {
        signals.recv().await;
        let Self {
            stop, mut server, ..
        } = self;
        let _ = stop.send(());
        tokio::select! {
            _ = &mut server => Stopped::Shutdown,
            () = signals.recv() => {
                // Aborting the server task drops its connections with it.
                server.abort();
                let _ = server.await;
                Stopped::Forced
            }
        }
    }
}
