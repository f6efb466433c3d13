//! Models of the shared stores' semantics, as pure state machines over the simulation's clock:
//! what [`FileStore`](cogref_session::FileStore) and `cogref-redis`'s stores do, op by op,
//! without a disk or a server. The conformance suite ([`crate::conformance`]) runs one shared
//! list of scenarios against each real store and its model and requires the same outcomes, so a
//! model cannot drift from the store it stands for.
//!
//! Both keep the set as the real stores' bytes (`cogref_session::format`), so that whatever the
//! format rounds (milliseconds, whole seconds of lifetime) is rounded here too.
//!
//! - **File** ([`Kind::File`]): one lock holder at a time, released when its holder unlocks or
//!   dies (an advisory lock dies with its file descriptor); a save compares the file's
//!   `generation` with the expected version and writes `found + 1` (when there is no file, the
//!   writer's clock in µs, above every generation it has seen and above the highest one ever
//!   written, which the lock file keeps when the token file is deleted); a writer that dies between writing its temporary file and
//!   the rename leaves a temporary file of the next generation, which the next holder of the
//!   lock puts in place if it is exactly the stored generation + 1 (and removes otherwise),
//!   and which a save made without taking the lock removes.
//! - **Redis** ([`Kind::Redis`]): the lease is `SET NX PX ttl` with an owner, released only by
//!   its owner (compare-and-delete), expiring on the server's clock and surviving its holder's
//!   death; a save is a compare-and-set on the version: the expected one + 1, or for a new entry
//!   the server's clock in µs, above any version the handle has seen (versions never repeat after
//!   a data loss); saves and releases publish on the change channel; a handle refuses an entry
//!   older than one it has seen (a rollback); a restart without persistence loses the entry and
//!   the lease.

use std::collections::BTreeMap;

use cogref_core::TokenSet;
use cogref_session::{StoreError, Versioned};

/// Who calls the store: one store handle (one process incarnation, or one scenario client).
pub type Handle = u64;

/// Which store a model stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `FileStore`.
    File,
    /// `RedisStore` / `AsyncRedisStore`, with this lease time to live (µs).
    Redis {
        /// The lease's time to live.
        lease_ttl_us: u64,
    },
}

#[derive(Debug, Clone)]
struct Entry {
    bytes: Vec<u8>,
    version: u64,
}

/// A granted lock: what unlocking names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Ticket(pub u64);

#[derive(Debug, Clone, Copy)]
struct Lock {
    ticket: Ticket,
    holder: Handle,
    /// Redis: the lease's expiry (server clock, µs).
    expires_at: u64,
}

/// The state of one store, shared by every handle.
#[derive(Debug, Clone)]
pub struct StoreModel {
    kind: Kind,
    entry: Option<Entry>,
    lock: Option<Lock>,
    /// File: a complete temporary file left by a writer that died before its rename.
    temp: Option<Entry>,
    /// The newest version each handle has loaded or saved (a new file or entry starts above
    /// it; Redis also refuses to load below it).
    seen: BTreeMap<Handle, u64>,
    next_ticket: u64,
    /// Redis: messages published on the change channel so far.
    pub publishes: u64,
    /// Redis: leases that ran out (or were deleted) while their holder had not released them.
    pub leases_lost: u64,
    /// File: the highest generation a save wrote, as the lock file (which outlives a deleted
    /// token file) records it; a new file starts above it.
    mark: u64,
    /// File: how many times the token file changed (a save, a crashed writer's set put in
    /// place, the file deleted), which its `stat` shows.
    pub changes: u64,
}

/// The server's clock as Redis `TIME` would give it at the simulation's `now` (µs).
fn server_time_us(now: u64) -> u64 {
    crate::cognito::EPOCH_SECS * 1_000_000 + now
}

impl StoreModel {
    /// An empty store.
    pub fn new(kind: Kind) -> Self {
        Self {
            kind,
            entry: None,
            lock: None,
            temp: None,
            seen: BTreeMap::new(),
            next_ticket: 1,
            publishes: 0,
            leases_lost: 0,
            mark: 0,
            changes: 0,
        }
    }

    /// Which store this is.
    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// The change stamp as the store's handles see it once everything said has arrived:
    /// file, a `stat` of the token file (moved by every save, recovery or deletion); Redis, a
    /// count of the messages on the change channel (saves and lease releases; not a lease
    /// running out, not a restart that lost the data: nobody announces those).
    pub fn stamp(&self) -> u64 {
        match self.kind {
            Kind::File => self.changes,
            Kind::Redis { .. } => self.publishes,
        }
    }

    /// The stored set's refresh token and version, without touching any handle's state.
    pub fn peek(&self) -> Option<(TokenSet, u64)> {
        let entry = self.entry.as_ref()?;
        let tokens = cogref_session::format::decode(&entry.bytes).ok()?;
        Some((tokens, entry.version))
    }

    /// The refresh token of the temporary file a crashed writer left (file), if any.
    pub fn peek_temp(&self) -> Option<TokenSet> {
        let temp = self.temp.as_ref()?;
        cogref_session::format::decode(&temp.bytes).ok()
    }

    fn expire(&mut self, now: u64) {
        if let (Kind::Redis { .. }, Some(lock)) = (self.kind, self.lock)
            && now >= lock.expires_at
        {
            self.lock = None;
            self.leases_lost += 1;
        }
    }

    /// Who holds the lock at `now`, and under which ticket.
    pub fn holder(&mut self, now: u64) -> Option<(Handle, Ticket)> {
        self.expire(now);
        self.lock.map(|l| (l.holder, l.ticket))
    }

    /// `load` by `handle` at `now`.
    pub fn load(&mut self, handle: Handle, now: u64) -> Result<Option<Versioned>, StoreError> {
        let _ = now;
        let Some(entry) = &self.entry else {
            return Ok(None);
        };
        let tokens = cogref_session::format::decode(&entry.bytes)
            .map_err(|e| StoreError::Other(format!("model: corrupt entry: {e}").into()))?;
        let version = entry.version;
        if self.kind == Kind::File {
            let seen = self.seen.entry(handle).or_insert(0);
            *seen = (*seen).max(version);
        }
        if let Kind::Redis { .. } = self.kind {
            let seen = self.seen.entry(handle).or_insert(0);
            if version < *seen {
                return Err(StoreError::Other(
                    format!(
                        "model: version {version} is older than {seen}, already seen: rolled back"
                    )
                    .into(),
                ));
            }
            *seen = version;
        }
        Ok(Some(Versioned { tokens, version }))
    }

    /// `save` by `handle` at `now` (true time; `wall_us`: the writer's wall clock in µs since
    /// the Unix epoch): a compare-and-set on `expected`. With `ignore_expected` (a mutant of
    /// the simulation), the version check is skipped.
    pub fn save(
        &mut self,
        handle: Handle,
        now: u64,
        wall_us: u64,
        tokens: &TokenSet,
        expected: Option<u64>,
        ignore_expected: bool,
    ) -> Result<u64, StoreError> {
        let found = self.entry.as_ref().map(|e| e.version);
        let expected = if ignore_expected { found } else { expected };
        let bytes = cogref_session::format::encode(tokens);
        let bytes = cogref_core::secrecy::ExposeSecret::expose_secret(&bytes).to_vec();
        match self.kind {
            Kind::File => {
                // The save sweeps stale temporary files first (nobody holds them).
                self.temp = None;
                let seen = self.seen.entry(handle).or_insert(0);
                if let Some(found) = found {
                    *seen = (*seen).max(found);
                }
                if found != expected {
                    return Err(StoreError::Conflict { expected, found });
                }
                // A new file starts at the writer's clock in µs, above what it has seen and
                // above the lock file's mark.
                let floor = (*seen).max(self.mark) + 1;
                let version = found.map_or(wall_us.max(floor), |v| v + 1);
                *seen = (*seen).max(version);
                self.entry = Some(Entry { bytes, version });
                self.mark = self.mark.max(version);
                self.changes += 1;
                Ok(version)
            }
            Kind::Redis { .. } => {
                let seen = self.seen.get(&handle).copied().unwrap_or(0);
                let version = match expected {
                    Some(v) => v + 1,
                    None => server_time_us(now).max(seen + 1),
                };
                // A retried script whose first run was applied finds its own write.
                let replayed =
                    found == Some(version) && self.entry.as_ref().is_some_and(|e| e.bytes == bytes);
                if !replayed {
                    if found != expected {
                        return Err(StoreError::Conflict { expected, found });
                    }
                    self.entry = Some(Entry { bytes, version });
                    self.publishes += 1;
                }
                let seen = self.seen.entry(handle).or_insert(0);
                *seen = (*seen).max(version);
                Ok(version)
            }
        }
    }

    /// A save whose writer dies after writing its temporary file and before the rename
    /// (file); whether the temporary file was written. Redis's save is one atomic script:
    /// nothing to tear, nothing written.
    pub fn save_torn(
        &mut self,
        handle: Handle,
        wall_us: u64,
        tokens: &TokenSet,
        expected: Option<u64>,
    ) -> bool {
        if self.kind != Kind::File {
            return false;
        }
        self.temp = None;
        let found = self.entry.as_ref().map(|e| e.version);
        if found != expected {
            return false;
        }
        let bytes = cogref_session::format::encode(tokens);
        let bytes = cogref_core::secrecy::ExposeSecret::expose_secret(&bytes).to_vec();
        let seen = self.seen.get(&handle).copied().unwrap_or(0);
        let floor = seen.max(self.mark) + 1;
        self.temp = Some(Entry {
            bytes,
            version: found.map_or(wall_us.max(floor), |v| v + 1),
        });
        true
    }

    /// `try_lock` by `handle` at `now`: a ticket, or `None` while another holds the lock. With
    /// `always` (a mutant of the simulation), every caller gets a ticket.
    pub fn try_lock(&mut self, handle: Handle, now: u64, always: bool) -> Option<Ticket> {
        self.expire(now);
        let ticket = Ticket(self.next_ticket);
        if always {
            self.next_ticket += 1;
            return Some(ticket);
        }
        if self.lock.is_some() {
            return None;
        }
        self.next_ticket += 1;
        let expires_at = match self.kind {
            Kind::File => u64::MAX,
            Kind::Redis { lease_ttl_us } => now.saturating_add(lease_ttl_us),
        };
        self.lock = Some(Lock {
            ticket,
            holder: handle,
            expires_at,
        });
        if self.kind == Kind::File {
            // The new holder puts a crashed writer's set in place if it is the generation right
            // after the stored one, or any complete one when no file is stored (a crash during
            // a first save); otherwise it removes it.
            if let Some(temp) = self.temp.take() {
                let next = match &self.entry {
                    Some(entry) => entry.version.checked_add(1) == Some(temp.version),
                    None => true,
                };
                if next {
                    self.entry = Some(temp);
                    self.changes += 1;
                }
            }
        }
        Some(ticket)
    }

    /// Releases `ticket` at `now`; whether it still held the lock (Redis: compare-and-delete,
    /// which publishes).
    pub fn unlock(&mut self, ticket: Ticket, now: u64) -> bool {
        self.expire(now);
        if self.lock.is_some_and(|l| l.ticket == ticket) {
            self.lock = None;
            if let Kind::Redis { .. } = self.kind {
                self.publishes += 1;
            }
            return true;
        }
        false
    }

    /// `handle` died: a file lock dies with it; a Redis lease stays until it runs out.
    pub fn crash(&mut self, handle: Handle) {
        if self.kind == Kind::File && self.lock.is_some_and(|l| l.holder == handle) {
            self.lock = None;
        }
    }

    /// Redis `wait_for_change`'s probe: whether a waiter that saw `seen` should look again at
    /// once (the version differs, or the lease is free).
    pub fn changed(&mut self, now: u64, seen: Option<u64>) -> bool {
        self.expire(now);
        self.entry.as_ref().map(|e| e.version) != seen || self.lock.is_none()
    }

    /// The data is gone: the token file deleted (its lock file stays), or Redis restarted
    /// without persistence (entry and lease gone).
    pub fn lose_data(&mut self) {
        if self.entry.take().is_some() && self.kind == Kind::File {
            self.changes += 1;
        }
        if let Kind::Redis { .. } = self.kind
            && self.lock.take().is_some()
        {
            self.leases_lost += 1;
        }
    }

    /// Redis: the lease disappears now (its time to live ran out early, as a paused holder
    /// finds it); whether there was one.
    pub fn drop_lease(&mut self) -> bool {
        if let Kind::Redis { .. } = self.kind
            && self.lock.take().is_some()
        {
            self.leases_lost += 1;
            return true;
        }
        false
    }
}
