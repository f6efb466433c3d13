//! Where a session's tokens live between refreshes, and the lock that keeps two holders from
//! refreshing one lineage at once.
//!
//! A [`TokenStore`] loads and saves a [`TokenSet`] with a version number and hands out a
//! refresh lock. The managers take the lock, reload (another holder may have refreshed
//! meanwhile), refresh only if still needed, and save with a compare-and-set on the version they
//! loaded, so a holder whose lock ran out can never overwrite a newer set. [`MemoryStore`] serves
//! one process; [`FileStore`](crate::FileStore) every process on one host; `cogref-redis` a fleet.
//!
//! # Sign-out and the change stamp
//!
//! A sign-out replaces the stored set with a tombstone ([`TokenSet::signed_out`]): a store
//! that lost its data (a deleted file, a Redis restarted empty) holds nothing, which never reads
//! as a sign-out. For every other holder to learn of it on its next call without reading the
//! store each time (a cached `access_token()` costs about 100 ns), a store can offer a cheap
//! [`change_stamp`](TokenStore::change_stamp), which the managers compare on every call and
//! read the store only when it moved:
//!
//! | store | stamp | guarantee |
//! |---|---|---|
//! | [`MemoryStore`] | a counter its clones share, moved inside the save | exact: a save by any clone is seen by the next call that starts after the save returned |
//! | [`FileStore`](crate::FileStore) | a `stat` of the token file (device, inode, size, modification and change times), reused for at most [`FileStore::STAMP_MAX_AGE`](crate::FileStore::STAMP_MAX_AGE) (1 ms) because a `stat` costs over ten times a cached call | every save replaces the file (a new inode, new times), so a save by any process on the host is seen by every call that starts more than 1 ms after it; a file system without sub-second times could in theory hide a second save of the same size within one second on a reused inode |
//! | `cogref-redis` | a counter moved by every message on the lineage's channel (each save announces its version there), read while a subscription is up | a save by any process is seen once its message arrives (well under a millisecond on a LAN); while the subscription is down the stamp is `None` and moves when it is back, so nothing said meanwhile is missed |
//! | any other | `None` (the default) | changes are seen when the manager next reads the store: at its next refresh |

use std::any::Any;
use std::fmt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cogref_core::TokenSet;

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
    /// The store refused what it found at one of its paths: a symbolic link (never followed: a
    /// planted link could make it read or write another file), a folder, a FIFO or a device
    /// instead of a file, or a file that other users can write to. Nothing was read or written
    /// through it.
    #[error("token store {path} refused: {reason}")]
    Unsafe {
        /// The path concerned.
        path: PathBuf,
        /// What is wrong with it, and what to do.
        reason: String,
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
    /// A compare-and-set lost: the store holds another version than the one this writer loaded,
    /// because someone else saved meanwhile. Nothing was written.
    #[error(
        "token store: version conflict: expected {expected:?}, found {found:?}; another holder saved a newer token set"
    )]
    Conflict {
        /// The version the writer loaded (`None`: it found nothing stored).
        expected: Option<u64>,
        /// The version stored now.
        found: Option<u64>,
    },
    /// The store holds the session of another app client or endpoint: refreshing it with this
    /// client's settings would fail, and overwriting it would sign that session out.
    #[error(
        "the token store holds the session of app client {stored_client:?} at {stored_endpoint:?}, not of app client {client:?} at {endpoint:?}: use one store (file, Redis lineage) per app client"
    )]
    OtherClient {
        /// The app client the stored set belongs to.
        stored_client: String,
        /// The endpoint the stored set came from.
        stored_endpoint: String,
        /// This manager's app client.
        client: String,
        /// This manager's endpoint.
        endpoint: String,
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

    /// What [`new`](Self::new) wrapped, if it is a `T` (for a store's `unlock`).
    pub fn downcast<T: Any>(self) -> Result<Box<T>, Self> {
        self.0.downcast().map_err(Self)
    }
}

impl fmt::Debug for StoreGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("StoreGuard")
    }
}

/// A stored token set and the version the store gave it.
#[derive(Debug, Clone)]
pub struct Versioned {
    /// The tokens (redacted in `Debug`).
    pub tokens: TokenSet,
    /// Changes on every save; never repeats for one lineage in one store.
    pub version: u64,
}

/// Durable storage of one token lineage.
///
/// Implementations must make [`save`](Self::save) durable before returning (the managers hand
/// out a rotated token only after it returns), make it a compare-and-set on the version, and
/// never log a token.
pub trait TokenStore: Send + Sync {
    /// The stored set and its version, or `None` when nothing is stored yet.
    fn load(&self) -> Result<Option<Versioned>, StoreError>;

    /// Replaces the stored set if the stored version is still `expected` (`None`: nothing is
    /// stored), durably, and returns the new version. Otherwise writes nothing and fails with
    /// [`StoreError::Conflict`].
    fn save(&self, tokens: &TokenSet, expected: Option<u64>) -> Result<u64, StoreError>;

    /// Takes the lineage's refresh lock if it is free; `Ok(None)` if another holder has it.
    fn try_lock(&self) -> Result<Option<StoreGuard>, StoreError>;

    /// Releases the lock `guard` holds (the default drops it).
    fn unlock(&self, guard: StoreGuard) {
        drop(guard);
    }

    /// Blocks for at most `timeout` until the stored version may differ from `seen` or the lock
    /// may have been released, and returns `Ok(true)`; a store that cannot be told returns
    /// `Ok(false)` at once and the blocking manager sleeps instead. Spurious wake-ups are fine:
    /// the manager looks again. The async manager never calls this (it would block a task).
    fn wait_for_change(&self, seen: Option<u64>, timeout: Duration) -> Result<bool, StoreError> {
        let _ = (seen, timeout);
        Ok(false)
    }

    /// A cheap stamp of what the store holds: if two calls return the same `Some(stamp)`, no
    /// save happened between them (within the store's guarantee: see the
    /// [module docs](self#sign-out-and-the-change-stamp)). `None` when the store cannot tell
    /// cheaply (the default); the managers then learn of another holder's save (a sign-out
    /// above all) when they next read the store.
    ///
    /// The managers call it on every `access_token()`, before the cached token is handed out:
    /// it must cost no more than an atomic load or a `stat`, and never block on the network.
    fn change_stamp(&self) -> Option<u64> {
        None
    }
}

impl<S: TokenStore + ?Sized> TokenStore for Arc<S> {
    fn load(&self) -> Result<Option<Versioned>, StoreError> {
        (**self).load()
    }

    fn save(&self, tokens: &TokenSet, expected: Option<u64>) -> Result<u64, StoreError> {
        (**self).save(tokens, expected)
    }

    fn try_lock(&self) -> Result<Option<StoreGuard>, StoreError> {
        (**self).try_lock()
    }

    fn unlock(&self, guard: StoreGuard) {
        (**self).unlock(guard);
    }

    fn wait_for_change(&self, seen: Option<u64>, timeout: Duration) -> Result<bool, StoreError> {
        (**self).wait_for_change(seen, timeout)
    }

    fn change_stamp(&self) -> Option<u64> {
        (**self).change_stamp()
    }
}

/// A store whose calls are async: for a store that talks to a server from an async task
/// without blocking its thread. [`TokenManager`](crate::TokenManager) takes any; every
/// [`TokenStore`] is one too (its calls run inline, and it is never asked to wait for a change,
/// which could block).
///
/// The methods mean what [`TokenStore`]'s do. `unlock` releases a lock taken by `try_lock` (the
/// default drops the guard): an async store can release over the network there, and leave its
/// guard's `Drop` as the fallback for a cancelled task.
pub trait AsyncTokenStore: Send + Sync {
    /// See [`TokenStore::load`].
    fn load(&self) -> impl Future<Output = Result<Option<Versioned>, StoreError>> + Send;

    /// See [`TokenStore::save`].
    fn save(
        &self,
        tokens: &TokenSet,
        expected: Option<u64>,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// See [`TokenStore::try_lock`].
    fn try_lock(&self) -> impl Future<Output = Result<Option<StoreGuard>, StoreError>> + Send;

    /// Releases the lock `guard` holds.
    fn unlock(&self, guard: StoreGuard) -> impl Future<Output = ()> + Send {
        drop(guard);
        std::future::ready(())
    }

    /// See [`TokenStore::wait_for_change`].
    fn wait_for_change(
        &self,
        seen: Option<u64>,
        timeout: Duration,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send {
        let _ = (seen, timeout);
        std::future::ready(Ok(false))
    }

    /// See [`TokenStore::change_stamp`]. Not async: it is read on the cached path, and must
    /// answer at once from what the store already knows (an async store keeps it up to date in
    /// the background, as `cogref-redis` does from its channel).
    fn change_stamp(&self) -> Option<u64> {
        None
    }
}

impl<S: TokenStore> AsyncTokenStore for S {
    fn load(&self) -> impl Future<Output = Result<Option<Versioned>, StoreError>> + Send {
        std::future::ready(TokenStore::load(self))
    }

    fn save(
        &self,
        tokens: &TokenSet,
        expected: Option<u64>,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send {
        std::future::ready(TokenStore::save(self, tokens, expected))
    }

    fn try_lock(&self) -> impl Future<Output = Result<Option<StoreGuard>, StoreError>> + Send {
        std::future::ready(TokenStore::try_lock(self))
    }

    fn change_stamp(&self) -> Option<u64> {
        TokenStore::change_stamp(self)
    }
}

/// A store in memory: shared by the managers of one process that hold clones of it.
#[derive(Debug, Clone, Default)]
pub struct MemoryStore {
    tokens: Arc<Mutex<Option<Versioned>>>,
    locked: Arc<AtomicBool>,
    /// Saves so far, moved under the slot's lock: the change stamp.
    saves: Arc<AtomicU64>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// A store holding `tokens`.
    pub fn with_tokens(tokens: TokenSet) -> Self {
        let store = Self::default();
        *store.slot() = Some(Versioned {
            tokens,
            version: next_memory_version(),
        });
        store
    }

    fn slot(&self) -> std::sync::MutexGuard<'_, Option<Versioned>> {
        self.tokens.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Versions come from one counter for the whole process, so a store emptied and written again
/// (or a second store) never repeats one that a manager has seen.
fn next_memory_version() -> u64 {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

struct MemoryLock(Arc<AtomicBool>);

impl Drop for MemoryLock {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

impl TokenStore for MemoryStore {
    fn load(&self) -> Result<Option<Versioned>, StoreError> {
        Ok(self.slot().clone())
    }

    fn save(&self, tokens: &TokenSet, expected: Option<u64>) -> Result<u64, StoreError> {
        let mut slot = self.slot();
        let found = slot.as_ref().map(|v| v.version);
        if found != expected {
            return Err(StoreError::Conflict { expected, found });
        }
        let version = next_memory_version();
        *slot = Some(Versioned {
            tokens: tokens.clone(),
            version,
        });
        // Moved while the slot is locked: whoever reads the new stamp then loads the new set.
        self.saves.fetch_add(1, Ordering::AcqRel);
        Ok(version)
    }

    /// Exact: moved by every save of any clone.
    fn change_stamp(&self) -> Option<u64> {
        Some(self.saves.load(Ordering::Acquire))
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

#[cfg(test)]
mod tests {
    use super::{MemoryStore, StoreError, TokenSet, TokenStore};

    #[test]
    fn memory_store_lock_is_exclusive_until_the_guard_drops() {
        let store = MemoryStore::new();
        let guard = store.try_lock().expect("ok").expect("free");
        assert!(store.clone().try_lock().expect("ok").is_none());
        drop(guard);
        assert!(store.try_lock().expect("ok").is_some());
    }

    #[test]
    fn the_memory_store_stamp_moves_with_every_save_of_any_clone_and_only_then() {
        let store = MemoryStore::new();
        let other = store.clone();
        let before = store.change_stamp().expect("exact");
        assert_eq!(store.change_stamp(), Some(before));
        let _lock = other.try_lock().expect("ok");
        store.load().expect("ok");
        assert_eq!(
            other.change_stamp(),
            Some(before),
            "reads and locks are no change"
        );
        other
            .save(&TokenSet::from_refresh_token("r", None), None)
            .expect("saved");
        assert_ne!(store.change_stamp(), Some(before));
    }

    #[test]
    fn memory_store_round_trips_a_set() {
        let store = MemoryStore::new();
        assert!(store.load().expect("ok").is_none());
        let v1 = store
            .save(&TokenSet::from_refresh_token("r", None), None)
            .expect("ok");
        let loaded = store.load().expect("ok").expect("stored");
        assert_eq!(loaded.version, v1);
        assert!(
            loaded
                .tokens
                .same_refresh_token(&TokenSet::from_refresh_token("r", None))
        );
    }

    #[test]
    fn memory_store_rejects_a_save_against_a_stale_version() {
        let store = MemoryStore::new();
        let v1 = store
            .save(&TokenSet::from_refresh_token("a", None), None)
            .expect("first");
        let v2 = store
            .save(&TokenSet::from_refresh_token("b", None), Some(v1))
            .expect("second");
        match store.save(&TokenSet::from_refresh_token("stale", None), Some(v1)) {
            Err(StoreError::Conflict { expected, found }) => {
                assert_eq!((expected, found), (Some(v1), Some(v2)));
            }
            other => panic!("expected a conflict, got {other:?}"),
        }
        let kept = store.load().expect("ok").expect("stored");
        assert!(
            kept.tokens
                .same_refresh_token(&TokenSet::from_refresh_token("b", None))
        );
    }
}
