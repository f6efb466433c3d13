//! # cogref-session
//!
//! A valid Cognito access token whenever you ask, for as long as the refresh token lives:
//! refreshed ahead of expiry, one refresh at a time however many callers ask, and never a
//! session lost to refresh-token rotation through a half-written store.
//!
//! - [`TokenManager`] (async, over any [`cogref_core::AsyncTransport`]: `cogref-reqwest`,
//!   `cogref-isahc`) and [`BlockingTokenManager`] (threads, over `cogref-blocking`) run the
//!   sans-IO [`cogref_core::Session`] state machine.
//! - [`TokenStore`] keeps the tokens, with a version that every save checks (compare-and-set):
//!   [`MemoryStore`] for one process, [`FileStore`] for every process on one host (atomic
//!   writes, mode 0600, versioned format, an advisory lock), `cogref-redis` for a fleet.
//!   [`AsyncTokenStore`] is the same for stores that talk to a server without blocking a task;
//!   every `TokenStore` is one.
//! - Listeners see [`SessionEvent`]s (refreshed, adopted, sign-in required, failure) as they
//!   happen.
//!
//! ```no_run
//! use cogref_core::RefreshInput;
//! use cogref_session::{FileStore, SessionEvent, TokenManager};
//! use cogref_session::secrecy::ExposeSecret;
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let endpoint = cogref_core::EndpointConfig::from_env()?.resolve()?;
//! let client = cogref_reqwest::client(endpoint, Default::default())?;
//! let template = RefreshInput::builder()
//!     .refresh_token(std::fs::read_to_string("first-refresh-token")?.trim().to_owned())
//!     .client_id("1example23456789abcdefghij")
//!     .build()?;
//! let manager = TokenManager::builder(client, template, FileStore::new("tokens.json"))
//!     .on_event(|e| if let SessionEvent::SignInRequired(_) = e { eprintln!("sign in again") })
//!     .build()
//!     .await?;
//! let token = manager.access_token().await?;   // cached, or one shared refresh
//! # let _ = token.expose_secret();
//! # Ok(())
//! # }
//! ```
//!
//! ## How a refresh happens
//!
//! `access_token()` on a fresh cache takes a mutex and clones the token. When a refresh is due:
//!
//! 1. one caller takes the in-process gate; while the old token is still valid, other callers
//!    get it at once, and once it has expired they wait for the gate;
//! 2. the gate holder takes the store's refresh lock (waiting, without blocking an executor,
//!    while another process holds it, and adopting at once a valid set the holder stores
//!    meanwhile), reloads the store, and adopts a newer set if another process refreshed;
//! 3. if a refresh is still due it calls Cognito, saves the result with a compare-and-set on the
//!    version it loaded, and only then hands out the new token; if another holder saved first
//!    (its lock had run out), the stored set wins and is adopted;
//! 4. waiters then find the new token: 10,000 concurrent callers at expiry make one request.
//!
//! ## When the store fails
//!
//! A still-valid access token is always handed out, and the failure reported once as
//! [`SessionEvent::StoreFailed`] (the store is asked again after a second). After expiry the
//! caller gets [`SessionError::Store`] rather than a refresh without the lock, unless the
//! builder's `refresh_without_store_lock(true)` opted in.
//!
//! ## Ordering guarantee
//!
//! A rotated refresh token is saved before any token of the same response is handed out. If the
//! save fails, the caller gets [`SessionError::RotatedTokenNotSaved`] and the session keeps the
//! new refresh token in memory, so this process goes on working.

#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![deny(clippy::print_stdout, clippy::print_stderr)]

mod engine;
mod error;
mod event;
mod file;
pub mod format;
mod manager;
mod store;

pub use cogref_core::secrecy;
pub use cogref_core::{Decision, Session, SessionConfig, TokenSet};
pub use error::SessionError;
pub use event::{Listener, SessionEvent};
pub use file::FileStore;
pub use format::FORMAT_VERSION;
pub use manager::{
    BlockingTokenManager, BlockingTokenManagerBuilder, DEFAULT_LOCK_TIMEOUT, TokenManager,
    TokenManagerBuilder,
};
pub use store::{AsyncTokenStore, MemoryStore, StoreError, StoreGuard, TokenStore, Versioned};
