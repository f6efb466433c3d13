//! What can go wrong with the Redis store. Never a token, never the URL's password.

use cogref_session::StoreError;

/// Why the Redis store failed. It reaches the managers as [`StoreError::Other`] (or
/// [`StoreError::Conflict`] / [`StoreError::UnsupportedVersion`], which they act on); downcast
/// the source to tell the cases apart.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RedisStoreError {
    /// The URL is not a Redis URL this build can use (`rediss://` needs the `tls-rustls`
    /// feature).
    #[error("redis URL refused: {0}")]
    Url(#[source] redis::RedisError),
    /// A lineage, prefix or time that cannot work.
    #[error("redis store configuration: {0}")]
    InvalidConfig(String),
    /// The server could not be reached, timed out, or answered with an error.
    #[error("redis at {server}: {action} failed: {source}")]
    Redis {
        /// `host:port` of the server (never the password).
        server: String,
        /// What was being done.
        action: &'static str,
        /// redis-rs's error.
        #[source]
        source: redis::RedisError,
    },
    /// The key holds something that is not a cogref token set.
    #[error("redis key {key} is not a cogref token set ({detail}); delete it and sign in again")]
    Corrupt {
        /// The key concerned.
        key: String,
        /// What is wrong, without any of the content.
        detail: String,
    },
    /// The entry holds an older version than one this store has already seen: an older entry
    /// was written back (a replay, or a restored snapshot). Refused rather than taken for the
    /// newest.
    #[error(
        "redis key {key} holds version {found}, older than version {seen} this store has already seen: an older token set was written back (a replay or a restored snapshot); it is not used"
    )]
    RolledBack {
        /// The key concerned.
        key: String,
        /// The version stored now.
        found: u64,
        /// The newest version this store has seen.
        seen: u64,
    },
    /// The entry is sealed and this store's sealing key does not open it.
    #[error(
        "redis key {key} is sealed with another key (or was altered): it cannot be opened with this sealing key; configure the key it was written with, or delete the entry and sign in again"
    )]
    WrongKey {
        /// The key concerned.
        key: String,
    },
    /// The entry is sealed but this store has no sealing key.
    #[error(
        "redis key {key} is sealed but this store has no sealing key: configure the key it was written with"
    )]
    SealedButNoKey {
        /// The key concerned.
        key: String,
    },
    /// This store requires sealed entries and found a plain one (which anyone able to write to
    /// Redis could have put there).
    #[error(
        "redis key {key} holds an unsealed token set but this store requires sealing: delete the entry (or save it once without a key) and sign in again"
    )]
    NotSealed {
        /// The key concerned.
        key: String,
    },
}

impl From<RedisStoreError> for StoreError {
    fn from(e: RedisStoreError) -> Self {
        StoreError::Other(Box::new(e))
    }
}
