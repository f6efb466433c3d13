//! Where a session's tokens live between refreshes, and the lock that keeps two holders from
//! refreshing one lineage at once.
//!
//! A [`TokenStore`] loads and saves a [`TokenSet`] and hands out a refresh lock. The managers
//! take the lock, reload (another holder may have refreshed meanwhile), refresh only if still
//! needed, save, and release. [`MemoryStore`] serves one process; [`FileStore`](crate::FileStore)
//! serves every process on one host.

use std::any::Any;
use std::fmt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use cogref_core::TokenSet;
use cogref_core::secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

/// Why a store failed. Never contains a token.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// Reading, writing or locking failed.
    #[error("token store {path}: {action} failed: {source}")]
    Io {
        /// The file concerned.
        path: PathBuf,
        /// What was being done.
        action: &'static str,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The stored data is not a token set (truncated, edited, another program's file).
    #[error("token store {path} is corrupt ({detail}); delete it and sign in again")]
    Corrupt {
        /// The file concerned.
        path: PathBuf,
        /// What is wrong, without any of the content.
        detail: String,
    },
    /// The stored data was written by a version of cogref that this one does not understand.
    #[error(
        "token store {path} has format version {found}; this cogref reads version {supported}: upgrade cogref, or delete the file and sign in again"
    )]
    UnsupportedVersion {
        /// The file concerned.
        path: PathBuf,
        /// The version found.
        found: u64,
        /// The version this build reads and writes.
        supported: u64,
    },
    /// The refresh lock stayed taken longer than allowed.
    #[error(
        "token store {path}: the refresh lock was held for more than {waited:?} by another process"
    )]
    LockTimeout {
        /// The lock file concerned.
        path: PathBuf,
        /// How long the manager waited.
        waited: Duration,
    },
    /// A store of another kind failed.
    #[error("token store: {0}")]
    Other(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// Held while refreshing; dropping it releases the lock.
pub struct StoreGuard(#[allow(dead_code)] Box<dyn Any + Send>);

impl StoreGuard {
    /// Wraps whatever releases the lock when dropped.
    pub fn new(release_on_drop: impl Any + Send) -> Self {
        Self(Box::new(release_on_drop))
    }
}

impl fmt::Debug for StoreGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("StoreGuard")
    }
}

/// Durable storage of one token lineage.
///
/// Implementations must make [`save`](Self::save) durable before returning (the managers hand
/// out a rotated token only after it returns) and must never log a token.
pub trait TokenStore: Send + Sync {
    /// The stored set, or `None` when nothing is stored yet.
    fn load(&self) -> Result<Option<TokenSet>, StoreError>;

    /// Replaces the stored set, durably.
    fn save(&self, tokens: &TokenSet) -> Result<(), StoreError>;

    /// Takes the lineage's refresh lock if it is free; `Ok(None)` if another holder has it.
    fn try_lock(&self) -> Result<Option<StoreGuard>, StoreError>;
}

impl<S: TokenStore + ?Sized> TokenStore for Arc<S> {
    fn load(&self) -> Result<Option<TokenSet>, StoreError> {
        (**self).load()
    }

    fn save(&self, tokens: &TokenSet) -> Result<(), StoreError> {
        (**self).save(tokens)
    }

    fn try_lock(&self) -> Result<Option<StoreGuard>, StoreError> {
        (**self).try_lock()
    }
}

/// A store in memory: shared by the managers of one process that hold clones of it.
#[derive(Debug, Clone, Default)]
pub struct MemoryStore {
    tokens: Arc<Mutex<Option<TokenSet>>>,
    locked: Arc<AtomicBool>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// A store holding `tokens`.
    pub fn with_tokens(tokens: TokenSet) -> Self {
        let store = Self::default();
        *store.slot() = Some(tokens);
        store
    }

    fn slot(&self) -> std::sync::MutexGuard<'_, Option<TokenSet>> {
        self.tokens.lock().unwrap_or_else(|p| p.into_inner())
    }
}

struct MemoryLock(Arc<AtomicBool>);

impl Drop for MemoryLock {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

impl TokenStore for MemoryStore {
    fn load(&self) -> Result<Option<TokenSet>, StoreError> {
        Ok(self.slot().clone())
    }

    fn save(&self, tokens: &TokenSet) -> Result<(), StoreError> {
        *self.slot() = Some(tokens.clone());
        Ok(())
    }

    fn try_lock(&self) -> Result<Option<StoreGuard>, StoreError> {
        match self
            .locked
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
        {
            Ok(_) => Ok(Some(StoreGuard::new(MemoryLock(self.locked.clone())))),
            Err(_) => Ok(None),
        }
    }
}

/// The version of the stored format that this build reads and writes.
pub const FORMAT_VERSION: u64 = 1;

/// The serialized form of a token set (format version 1).
#[derive(Serialize, Deserialize)]
pub(crate) struct StoredTokens<'a> {
    pub(crate) format: std::borrow::Cow<'a, str>,
    pub(crate) version: u64,
    pub(crate) refresh_token: std::borrow::Cow<'a, str>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) access_token: Option<std::borrow::Cow<'a, str>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) id_token: Option<std::borrow::Cow<'a, str>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) device_key: Option<std::borrow::Cow<'a, str>>,
    /// Milliseconds since the epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) expires_at_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) lifetime_secs: Option<u64>,
}

/// The `format` marker of the stored JSON.
pub(crate) const FORMAT_NAME: &str = "cogref-tokens";

/// Only the version, read first so that a newer format gets its own error.
#[derive(Deserialize)]
pub(crate) struct VersionProbe {
    pub(crate) format: Option<String>,
    pub(crate) version: Option<u64>,
}

impl<'a> StoredTokens<'a> {
    pub(crate) fn from_set(tokens: &'a TokenSet) -> Self {
        let borrow = |s: &'a SecretString| std::borrow::Cow::Borrowed(s.expose_secret());
        Self {
            format: FORMAT_NAME.into(),
            version: FORMAT_VERSION,
            refresh_token: borrow(&tokens.refresh_token),
            access_token: tokens.access_token.as_ref().map(borrow),
            id_token: tokens.id_token.as_ref().map(borrow),
            device_key: tokens.device_key.as_ref().map(borrow),
            expires_at_ms: tokens.expires_at.map(|t| {
                t.duration_since(UNIX_EPOCH)
                    .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
            }),
            lifetime_secs: tokens.lifetime.map(|d| d.as_secs()),
        }
    }

    pub(crate) fn into_set(self) -> TokenSet {
        let secret = |s: std::borrow::Cow<'a, str>| SecretString::from(s.into_owned());
        TokenSet::new(
            secret(self.refresh_token),
            self.access_token.map(secret),
            self.id_token.map(secret),
            self.device_key.map(secret),
            self.expires_at_ms
                .map(|ms| UNIX_EPOCH + Duration::from_millis(ms)),
            self.lifetime_secs.map(Duration::from_secs),
        )
    }
}

/// The current time as the stores see it (for file names only).
pub(crate) fn unique_suffix() -> String {
    use std::sync::atomic::AtomicU64;
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!(
        "{}.{}.{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed),
        nanos
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_store_lock_is_exclusive_until_the_guard_drops() {
        let store = MemoryStore::new();
        let guard = store.try_lock().expect("ok").expect("free");
        assert!(store.clone().try_lock().expect("ok").is_none());
        drop(guard);
        assert!(store.try_lock().expect("ok").is_some());
    }

    #[test]
    fn memory_store_round_trips_a_set() {
        let store = MemoryStore::new();
        assert!(store.load().expect("ok").is_none());
        store
            .save(&TokenSet::from_refresh_token("r", None))
            .expect("ok");
        let loaded = store.load().expect("ok").expect("stored");
        assert_eq!(loaded.refresh_token.expose_secret(), "r");
    }
}
