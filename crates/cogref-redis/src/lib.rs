//! # cogref-redis
//!
//! One Cognito session shared by every process of a fleet (a machine user, a pool of workers,
//! the replicas of one API), through Redis or Valkey: one refresh per expiry for the whole
//! fleet, whatever its size, and no process signed out by another's refresh-token rotation.
//!
//! ## When to use it
//!
//! Use it when processes on **more than one host** share one refresh-token lineage. With
//! rotation on, each refresh invalidates the refresh token every other holder has, so
//! uncoordinated processes sign each other out (at once with a grace period of 0). On one host,
//! [`cogref_session::FileStore`] does the same job without a server; in one process,
//! [`cogref_session::MemoryStore`]. If each process has its own user session, it needs no
//! shared store at all.
//!
//! ## What goes in, what comes out
//!
//! Two stores over one layout, so blocking and async processes can share a lineage:
//!
//! - [`RedisStore`] (redis-rs's blocking connection) implements
//!   [`cogref_session::TokenStore`]: give it to a
//!   [`BlockingTokenManager`](cogref_session::BlockingTokenManager);
//! - `AsyncRedisStore` (feature `tokio`, on by default; redis-rs's multiplexed tokio
//!   connection and async pub/sub) implements [`cogref_session::AsyncTokenStore`]: give it to a
//!   [`TokenManager`](cogref_session::TokenManager) on a tokio runtime. It never blocks a
//!   runtime thread.
//!
//! Then ask the manager for tokens as usual: a cached token never touches Redis. Per lineage
//! the stores use three names (`{prefix}:{lineage}` is a Redis Cluster hash tag):
//!
//! | name | what |
//! |---|---|
//! | `cogref:{lineage}:tokens` | hash: `v` the version, `d` the token set (JSON, or sealed) |
//! | `cogref:{lineage}:lease` | the refresh lease: a random owner value with an expiry |
//! | `cogref:{lineage}:changed` | pub/sub channel: a new version, or a released lease (watched for the change stamp) |
//!
//! ## How the lease and the version protect the session
//!
//! When a process's token is due for refresh, its manager:
//!
//! 1. takes the **lease**: `SET lease owner NX PX ttl`, with a fresh random owner. Only one
//!    process in the fleet holds it; if the holder dies, the lease runs out after
//!    [`lease_ttl`](RedisStoreBuilder::lease_ttl) and another process takes over;
//! 2. while another process holds it, **waits** on the channel (with a look every 250 ms in
//!    case a message is missed) and, as soon as a newer valid set is stored, **adopts it
//!    without calling Cognito**; a caller whose token is still valid gets it at once instead of
//!    waiting;
//! 3. holding the lease, reloads the set and its **version**, refreshes only if the stored set is
//!    still due, and saves with a **compare-and-set on the version it loaded** (a Lua script:
//!    write only if the version is unchanged, then announce the new one). A holder whose lease
//!    ran out during a slow refresh, while another process stored a newer set, is refused
//!    ([`StoreError::Conflict`](cogref_session::StoreError::Conflict)) and adopts the newer set
//!    instead of overwriting it with an older one;
//! 4. releases the lease with a compare-and-delete script, so it never deletes a lease that ran
//!    out and now belongs to someone else.
//!
//! A rotated refresh token is saved before any token of the same response is handed out. If
//! Redis cannot be reached, the managers keep handing out a still-valid access token, report
//! [`SessionEvent::StoreFailed`](cogref_session::SessionEvent::StoreFailed), and after expiry
//! return [`SessionError::Store`](cogref_session::SessionError::Store) rather than refresh
//! without the lease (unless the application opted in with `refresh_without_store_lock`).
//! After a restart that lost Redis's data, the next lease holder writes its set again; versions
//! start from the server's clock, so none issued before the loss comes back.
//!
//! ## Sealing
//!
//! With [`sealing_key`](RedisStoreBuilder::sealing_key), the set is stored encrypted and
//! authenticated (XChaCha20-Poly1305): whoever can read Redis cannot read a refresh token, and
//! whoever can write to it cannot slip in tokens of their own. A wrong key is a clear
//! [`RedisStoreError::WrongKey`], never garbage.
//!
//! The seal binds the entry's key (its prefix and lineage) and its version. A sealed value
//! cannot be moved to another lineage, nor put back under another version; and a store refuses
//! an entry older than one it has already loaded or saved
//! ([`RedisStoreError::RolledBack`]), so an older entry written back whole (a replay, or a
//! restored snapshot; sealed or not) is refused by every process that has seen a newer one. A
//! process that starts while such an entry is stored has seen nothing newer and cannot tell.
//!
//! Entries sealed by cogref 0.1, which bound only the key, are still read, so an upgrade keeps
//! the session; the next save seals with the version bound. Once a store has seen an entry
//! sealed the new way, an old-style one is refused as a rollback. (cogref 0.1 cannot read the
//! new entries: upgrade every process of a lineage.)
//!
//! Versions and stored values are checked before use: a version that is not plain decimal, a
//! version at `u64::MAX` (no next one), or a value over 1 MiB (not fetched) is
//! [`RedisStoreError::Corrupt`].
//!
//! ## Sign-out
//!
//! A manager's `sign_out()` revokes the refresh token and replaces the set with a tombstone
//! (sealed like any set), announced on the channel like every save. Each store keeps a change
//! stamp from that channel ([`TokenStore::change_stamp`](cogref_session::TokenStore::change_stamp)):
//! a watcher (a thread for [`RedisStore`], a task on the tokio runtime for `AsyncRedisStore`,
//! one per store and its clones, started on the first call) counts the channel's messages. Every
//! manager of the fleet compares it on each call and reads Redis only when it moved, so a
//! sign-out anywhere is answered with `SessionError::SignedOut` on the first call after its
//! message arrived (well under a millisecond on a LAN), while a cached token costs no round
//! trip. While the watcher's subscription is down the stamp is `None` (the managers then see
//! the sign-out at their next refresh), and it moves when the subscription is back, so nothing
//! announced meanwhile is missed. A Redis restarted empty holds no tombstone: no sign-out.
//!
//! ## Example
//!
//! Threads, over `cogref-blocking`:
//!
//! ```no_run
//! use cogref_core::RefreshInput;
//! use cogref_redis::{RedisStore, SealingKey};
//! use cogref_session::BlockingTokenManager;
//! use cogref_session::secrecy::ExposeSecret;
//!
//! # fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let store = RedisStore::builder("redis://:password@10.0.0.5:6379/0", "1example23:robot")
//!     .sealing_key(SealingKey::from_slice(&std::fs::read("/run/secrets/token-key")?)?)
//!     .build()?;
//! let endpoint = cogref_core::EndpointConfig::from_env()?.resolve()?;
//! let client = cogref_blocking::client(endpoint, Default::default());
//! let template = RefreshInput::builder()
//!     .refresh_token(std::fs::read_to_string("first-refresh-token")?.trim().to_owned())
//!     .client_id("1example23456789abcdefghij")
//!     .build()?;
//! let manager = BlockingTokenManager::builder(client, template, store).build()?;
//! let token = manager.access_token()?; // cached, adopted from the fleet, or one refresh
//! # let _ = token.expose_secret();
//! # Ok(())
//! # }
//! ```
//!
//! Tasks on tokio, over `cogref-reqwest`:
//!
//! ```no_run
//! # #[cfg(feature = "tokio")]
//! # async fn run(template: cogref_core::RefreshInput) -> Result<(), Box<dyn std::error::Error>> {
//! use cogref_redis::RedisStore;
//! use cogref_session::TokenManager;
//!
//! let store = RedisStore::builder("rediss://default:password@cache.example:6380", "robot")
//!     .build_async()?;
//! let endpoint = cogref_core::EndpointConfig::from_env()?.resolve()?;
//! let client = cogref_reqwest::client(endpoint, Default::default())?;
//! let manager = TokenManager::builder(client, template, store).build().await?;
//! let token = manager.access_token().await?;
//! # let _ = token;
//! # Ok(())
//! # }
//! ```
//!
//! Connections: `redis://[user:password@]host[:port][/db]` (AUTH from the URL),
//! `redis+unix:///path`, and `rediss://` with the `tls-rustls` feature (`tokio-tls-rustls` for
//! the async store; rustls then needs a crypto provider from your application, its `ring` or
//! `aws-lc-rs` feature). Timeouts: 2 s to connect and per command by default. Without the
//! `tokio` feature (`default-features = false`) the crate has no tokio in its tree.

#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![deny(clippy::print_stdout, clippy::print_stderr)]

#[cfg(feature = "tokio")]
mod async_store;
mod connection;
mod error;
mod lineage;
mod scripts;
mod seal;
mod store;
mod watch;

#[cfg(feature = "tokio")]
pub use async_store::AsyncRedisStore;
pub use error::RedisStoreError;
pub use seal::{KeyLengthError, SealingKey};
pub use store::{
    DEFAULT_CONNECT_TIMEOUT, DEFAULT_IO_TIMEOUT, DEFAULT_LEASE_TTL, RedisStore, RedisStoreBuilder,
};
