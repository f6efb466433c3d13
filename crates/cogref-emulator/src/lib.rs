//! # cogref-emulator
//!
//! A local Amazon Cognito for `GetTokensFromRefreshToken`, faithful where other emulators are
//! not: refresh-token rotation with its grace period and `RefreshTokenReuseException`, lineage
//! expiry that rotation never extends, revocation, confidential clients, device keys, RS256 JWTs
//! with Cognito's claims and a JWKS to verify them, fault injection, and a clock tests move
//! forward instead of sleeping.
//!
//! It speaks AWS JSON 1.1 on 127.0.0.1 as the service does: every response carries
//! `x-amzn-requestid`, every error `x-amzn-errortype` and a `{"__type","message"}` body.
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
//! Seeding, faults and the clock are also reachable over HTTP under `/_emulator/` (pools,
//! clients, users, refresh-tokens, revoke, faults, clock), for tests in any language.

#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod http;
mod signer;
mod state;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

pub use state::{AppClient, Refusal, Rotation};

/// Where and as what the emulator runs.
#[derive(Debug, Clone)]
pub struct EmulatorConfig {
    /// Address to bind; port 0 picks a free one. Default `127.0.0.1:0`.
    pub bind: SocketAddr,
    /// The region the issuer URL and device keys name. Default `eu-west-1`.
    pub region: String,
}

impl Default for EmulatorConfig {
    fn default() -> Self {
        Self {
            bind: SocketAddr::from(([127, 0, 0, 1], 0)),
            region: "eu-west-1".into(),
        }
    }
}

/// A misbehaviour to inject into the next `count` calls of the operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Fault {
    /// Answer `TooManyRequestsException` (429).
    Throttle {
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
}

impl Fault {
    fn count(&self) -> u32 {
        let mut copy = *self;
        *copy.count_mut()
    }

    fn count_mut(&mut self) -> &mut u32 {
        match self {
            Fault::Throttle { count }
            | Fault::ServerError { count, .. }
            | Fault::Delay { count, .. }
            | Fault::DropAfterRotation { count } => count,
        }
    }
}

/// What [`Emulator::seed`] creates.
#[derive(Debug, Clone, PartialEq, Eq)]
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
    pub fn write_refresh_token(&self, path: &std::path::Path) -> std::io::Result<()> {
        use std::io::Write;
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        options.open(path)?.write_all(self.refresh_token.as_bytes())
    }
}

impl std::fmt::Debug for Seeded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Seeded { refresh_token: [REDACTED] }")
    }
}

/// State shared by the server and the handle.
pub(crate) struct Shared {
    pools: Mutex<state::Pools>,
    signer: signer::Signer,
    region: String,
    clock_offset: Mutex<Duration>,
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

    pub(crate) fn now(&self) -> SystemTime {
        SystemTime::now() + *lock(&self.clock_offset)
    }

    pub(crate) fn advance(&self, by: Duration) {
        *lock(&self.clock_offset) += by;
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
        let now = self.now();
        let outcome = self
            .pools()
            .refresh(request, now, &self.region, &self.signer);
        match &outcome {
            Ok(_) => {
                self.granted.fetch_add(1, Ordering::SeqCst);
            }
            Err(r) => *lock(&self.refused).entry(r.code).or_default() += 1,
        }
        outcome
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
            region: config.region,
            clock_offset: Mutex::default(),
            faults: Mutex::default(),
            requests: AtomicUsize::new(0),
            granted: AtomicUsize::new(0),
            refused: Mutex::default(),
        });
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let app = http::router(shared.clone());
        let server = tokio::spawn(async move {
            let served = axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await;
            if let Err(e) = served {
                tracing::error!(error = %e, "emulator server stopped");
            }
        });
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

    /// Creates a user pool.
    pub fn create_pool(&self, pool_id: &str) {
        self.shared.pools().add_pool(pool_id);
    }

    /// Creates (or replaces) an app client in an existing pool.
    pub fn create_client(&self, client: AppClient) -> Result<(), Refusal> {
        self.shared.pools().add_client(client)
    }

    /// Creates a user; returns its `sub`.
    pub fn create_user(&self, pool_id: &str, username: &str) -> Result<String, Refusal> {
        self.shared.pools().add_user(pool_id, username)
    }

    /// Signs `username` in through `client_id`, as far as this operation cares: a new refresh
    /// token, the start of a lineage.
    pub fn mint_refresh_token(&self, client_id: &str, username: &str) -> Result<String, Refusal> {
        let now = self.shared.now();
        self.shared.pools().mint(client_id, username, now)
    }

    /// Revokes the lineage of `refresh_token`; `false` if the token is unknown.
    pub fn revoke(&self, refresh_token: &str) -> bool {
        self.shared.pools().revoke(refresh_token)
    }

    /// Registers a confirmed device key.
    pub fn register_device(&self, device_key: &str) {
        self.shared.pools().add_device(device_key);
    }

    /// Adds a fault for the next calls.
    pub fn inject(&self, fault: Fault) {
        self.shared.inject(fault);
    }

    /// Moves the emulator's clock forward (token expiry, grace periods).
    pub fn advance_clock(&self, by: Duration) {
        self.shared.advance(by);
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

    /// Stops serving and waits for the server task.
    pub async fn shutdown(self) {
        let _ = self.stop.send(());
        let _ = self.server.await;
    }
}
