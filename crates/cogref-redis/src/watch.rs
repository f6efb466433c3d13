//! The change stamp of a Redis store: a counter moved by every message on the lineage's channel
//! (each save announces its version there, each lease release says so), read only while a
//! subscription is up. A watcher (a tokio task for the async store, a thread for the blocking
//! one) keeps it, one per store and its clones, started on the first look and ended when the
//! store is dropped.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

/// How long a watcher waits for a message before checking that its store still exists.
pub(crate) const WATCH_TICK: Duration = Duration::from_secs(1);
/// How long a watcher waits before subscribing again after losing its connection.
pub(crate) const RESUBSCRIBE_PAUSE: Duration = Duration::from_millis(250);

#[derive(Debug, Default)]
pub(crate) struct Watch {
    stamp: AtomicU64,
    up: AtomicBool,
    started: AtomicBool,
}

impl Watch {
    /// The stamp, or `None` while no subscription is up (nothing said meanwhile would be
    /// counted).
    pub(crate) fn stamp(&self) -> Option<u64> {
        self.up
            .load(Ordering::Acquire)
            .then(|| self.stamp.load(Ordering::Acquire))
    }

    /// Whether a watcher must be started now (true once, until it ends).
    pub(crate) fn should_start(&self) -> bool {
        !self.started.load(Ordering::Relaxed) && !self.started.swap(true, Ordering::AcqRel)
    }

    /// The subscription is up. The stamp moves first: whatever was said while nobody listened
    /// makes every manager look at the store once.
    pub(crate) fn subscribed(&self) {
        self.stamp.fetch_add(1, Ordering::AcqRel);
        self.up.store(true, Ordering::Release);
    }

    /// A message arrived on the channel.
    pub(crate) fn message(&self) {
        self.stamp.fetch_add(1, Ordering::AcqRel);
    }

    /// The subscription is down: no stamp until it is back.
    pub(crate) fn down(&self) {
        self.up.store(false, Ordering::Release);
    }

    /// The watcher ended (its store dropped, its runtime shut down): the next look starts
    /// another.
    pub(crate) fn ended(&self) {
        self.down();
        self.started.store(false, Ordering::Release);
    }
}
