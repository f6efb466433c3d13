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
//! - Listeners see [`SessionEvent`]s (refreshed, adopted, stored after a failed save, sign-in
//!   required, signed out, failure) as they happen.
//! - `sign_out()` ends the session everywhere: see [Sign-out](#sign-out).
//! - The async manager's futures can be dropped at any point without losing a rotation.
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
//! 1. one refresh runs at a time per manager: the async [`TokenManager`] runs it as a task of
//!    its own ([`AsyncTransport::spawn`](cogref_core::AsyncTransport::spawn): tokio's for
//!    `cogref-reqwest`, a thread for `cogref-isahc`) and every caller awaits its shared outcome;
//!    while the old token is still valid, other callers get it at once;
//! 2. the refresh takes the store's refresh lock (waiting, without blocking an executor, while
//!    another process holds it, and adopting at once a valid set the holder stores meanwhile),
//!    reloads the store, and adopts a newer set if another process refreshed;
//! 3. if a refresh is still due it calls Cognito, saves the result with a compare-and-set on the
//!    version it loaded, and only then hands out the new token; if another holder saved first
//!    (its lock had run out), the stored set wins and is adopted; if the store lost its data
//!    meanwhile (a deleted file, a Redis restarted empty), the new set is written afresh;
//! 4. waiters then find the new token: 10,000 concurrent callers at expiry make one request.
//!
//! ## Cancellation
//!
//! Dropping a future of [`TokenManager`] (`access_token`, `refresh_now`, `run_background`) at
//! any point never cuts a refresh short: the task goes on, stores the result and releases the
//! lock, and the next call finds the new token. This matters under rotation: once Cognito has
//! answered, the token sent is dead (at once with a grace period of 0), and a result dropped
//! between the answer and the save would end the session. (`cogref_core::Client::refresh` is a
//! plain future and has no such guarantee.) If the task itself is dropped unfinished (its
//! runtime shut down), its waiters get [`SessionError::Interrupted`] rather than waiting forever.
//!
//! ## No refresh storms
//!
//! Two refreshes of one lineage start at least
//! [`SessionConfig::min_refresh_interval`](cogref_core::SessionConfig::min_refresh_interval)
//! apart (1 s by default), whoever asks; if Cognito returns tokens that are due as soon as they
//! arrive (`ExpiresIn: 0`, a margin at least the lifetime), the interval doubles each time, up to
//! a minute, and callers get [`SessionError::TooSoon`] meanwhile. Tokens that have already
//! expired are never handed out. The background refreshers sleep until the next refresh is due
//! and never loop without sleeping. Over a span `T`, Cognito sees at most
//! `failures + 1 + T / max(1 s, lifetime − margin)` calls (property-tested).
//!
//! ## When the store fails
//!
//! A still-valid access token is always handed out, and the failure reported once as
//! [`SessionEvent::StoreFailed`] (the store is asked again after a second). After expiry the
//! caller gets [`SessionError::Store`] rather than a refresh without the lock, unless the
//! builder's `refresh_without_store_lock(true)` opted in.
//!
//! ## When Cognito says no
//!
//! A dead refresh token (revoked, expired, rotated out, user gone: see
//! [`cogref_core::not_authorized`]) ends the session with [`SessionError::SignInRequired`] and
//! no further call with that token. But before saying so, and on every later call, the manager
//! looks at the store and adopts a newer set if one is there (a sibling process rotated first,
//! or the user signed in again elsewhere). The library never deletes what the store holds; only
//! a sign-out replaces it, with a tombstone. A
//! refusal about the client secret, or one whose message cogref does not know, is a failure,
//! not a dead session: the valid token is served meanwhile and the refresh retried with backoff.
//!
//! ## Time
//!
//! Expiry is held on the wall clock and on the monotonic clock: a wall clock stepped back never
//! extends a token, and one stepped forward only refreshes it early. A set loaded from a store
//! never counts as valid for longer than its lifetime. The managers read both clocks through
//! [`Environment::clocks`](cogref_core::Environment::clocks); the transports' environment
//! reads the wall clock at most once a millisecond and carries it on with the monotonic clock
//! in between (one clock read per cached call instead of two), so a step of the wall clock is
//! seen up to 1 ms late.
//!
//! ## Sign-out
//!
//! [`TokenManager::sign_out`] and [`BlockingTokenManager::sign_out`] take the store's lock, read
//! the store (a set another holder stored is adopted, so that the newest refresh token is the
//! one revoked), revoke the refresh token (`RevokeToken`: with rotation, the whole lineage), then
//! replace the stored set with a tombstone (the binding and the time of the sign-out, no token)
//! and release the lock. Listeners hear [`SessionEvent::SignedOut`]; every later call answers
//! [`SessionError::SignedOut`].
//!
//! - **A failed revocation changes nothing.** Cognito unreachable, throttled, failing, or an
//!   app client without token revocation: the store and the session are as they were, the
//!   refresh token still works, and the caller gets [`SessionError::SignOutFailed`], which says
//!   so and whether trying again is the remedy (and, for an error that says the token no longer
//!   works, that the user must sign in again).
//! - **Every holder of the store sees it on its next call.** A tombstone, not an empty store:
//!   a store that lost its data (a deleted file, a Redis restarted empty) never reads as a
//!   sign-out. The managers compare the store's change stamp on every call
//!   ([`TokenStore::change_stamp`]: an atomic load for [`MemoryStore`], a `stat` of the file for
//!   [`FileStore`], `cogref-redis`'s channel) and read the store only when it moved, so the
//!   cached path stays cheap; what each store guarantees is in the [`store`] module's
//!   table. A store without a stamp is read at the next refresh.
//! - **A new sign-in starts a new lineage.** A manager built with a fresh refresh token over a
//!   tombstone starts from it; its first save replaces the tombstone, and managers that were
//!   signed out adopt the new set on their next call.
//!
//! ## Ordering guarantee
//!
//! A rotated refresh token is saved before any token of the same response is handed out, and
//! before any error from a response that carried one is reported. If the save fails, the caller
//! gets [`SessionError::RotatedTokenNotSaved`] and the session keeps the new refresh token in
//! memory, so this process goes on working, and saves it again, without a refresh, once the
//! store takes it (at most once a second, on the manager's calls and by its background
//! refresher; [`SessionEvent::Stored`] says so). A store records which app client and endpoint its
//! set belongs to, and a manager refuses a set of another client.

#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![deny(clippy::print_stdout, clippy::print_stderr)]

mod engine;
mod error;
mod event;
mod file;
pub mod format;
mod manager;
pub mod store;

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
