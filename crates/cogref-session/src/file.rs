//! A token store in one file, safe across processes on one host.
//!
//! - **Format**: versioned JSON (`{"format":"cogref-tokens","version":1,…}`, see
//!   [`format`](crate::format)); an unknown version or a file that is not a token set is a clear
//!   error, never a guess. A `generation` counter in the file is the store's version; a new
//!   file starts at the clock in microseconds, above every generation the store has seen and
//!   above the highest one ever written, which every save records in the lock file
//!   (`<path>.lock`, which outlives a deleted token file): a file deleted and written afresh,
//!   by any process, never looks older than the old one, even after the clock was stepped back.
//! - **Atomic writes**: a new file beside the old one (mode 0600, created fresh), written and
//!   fsynced, renamed over the old one, then the folder fsynced; a crash at any point leaves
//!   either the old set or the new one, never half of each.
//! - **Lock**: an advisory lock on `{file}.lock` (a separate file, so that the rename does not
//!   swap the lock away) keeps two processes from refreshing the same lineage at once; the
//!   second waits, then reads what the first stored.
//! - **Compare-and-set for every writer**: a save locks the token file itself from reading its
//!   generation to renaming the new file over it (a writer that waited for that lock finds the
//!   path renamed over and reads the new file), and the first file is created by a hard link
//!   that fails if the name exists; so a save that does not hold the refresh lock (a sign-out
//!   that stopped waiting for it) and the lock holder's save cannot both succeed on one
//!   generation.
//! - **Nothing planted is followed**: every file is opened without following a symbolic link
//!   (`O_NOFOLLOW`) and must be a regular file; a link, a folder, a FIFO or a device is refused
//!   ([`StoreError::Unsafe`]), and so is a token file that other users can write to. A file
//!   larger than any token set is refused before it is read.
//! - **No token left behind**: a writer keeps its temporary file locked until the rename; a
//!   temporary file of this store that nobody holds was left by a crash. Taking the lock or
//!   saving removes it, except that, with the lock held, a complete one of the very next
//!   generation (the crash came between the write and the rename) is put in place: it may hold
//!   the only copy of a rotated refresh token.

use std::fs::{self, File, Metadata, OpenOptions, TryLockError};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use cogref_core::TokenSet;
use cogref_core::secrecy::{ExposeSecret, SecretSlice};

use crate::format::{self, FORMAT_VERSION, FormatError};
use crate::store::{StoreError, StoreGuard, TokenStore, Versioned};

/// The largest file the store reads or writes: the core's default limit on a response body
/// (1 MiB). A token set is a few KiB; even a Cognito ID token full of custom attributes stays
/// far below this, while a planted multi-gigabyte file is refused before it is read.
const MAX_FILE_BYTES: u64 = 1 << 20;

/// An unlocked, empty temporary file younger than this may be a writer's between its creation
/// and its lock (an instant); older, it was left by a crash before anything was written.
const EMPTY_TEMP_AGE: Duration = Duration::from_secs(60);

/// Temporary files named the way cogref named them before writers locked them: stale once
/// older than this, far longer than writing a few KiB and renaming takes.
const UNLOCKED_TEMP_AGE: Duration = Duration::from_secs(600);

/// The suffix of a temporary file whose writer holds its lock until the rename.
const LOCKED_TEMP_SUFFIX: &str = ".locked.tmp";
/// The suffix of temporary files of earlier versions, which were not locked.
const UNLOCKED_TEMP_SUFFIX: &str = ".tmp";

/// A [`TokenStore`] in one JSON file.
#[derive(Debug, Clone)]
pub struct FileStore {
    path: PathBuf,
    lock_path: PathBuf,
    /// The last `stat` of the token file, shared by clones.
    stamp: Arc<StatCache>,
    /// The highest generation this store (and its clones) has loaded or written: a new file
    /// starts above it.
    seen: std::sync::Arc<AtomicU64>,
}

/// The last change stamp and when it was taken, in nanoseconds since [`stamp_clock`]'s start
/// (0: never). `u64::MAX` as a stamp stands for "could not look" (`None`).
#[derive(Debug, Default)]
struct StatCache {
    taken_at: AtomicU64,
    stamp: AtomicU64,
}

/// Nanoseconds on the monotonic clock since the first call, never 0.
fn stamp_clock() -> u64 {
    static START: std::sync::LazyLock<std::time::Instant> =
        std::sync::LazyLock::new(std::time::Instant::now);
    u64::try_from(START.elapsed().as_nanos())
        .unwrap_or(u64::MAX)
        .saturating_add(1)
}

impl FileStore {
    /// How long a `stat` of the token file is taken as current by
    /// [`change_stamp`](TokenStore::change_stamp): a `stat` costs a microsecond or more, over
    /// ten times a cached `access_token()`, so calls in quick succession share one.
    pub const STAMP_MAX_AGE: Duration = Duration::from_millis(1);

    /// A store at `path`; the lock file is `path` with `.lock` appended. Nothing is created until
    /// the first save or lock.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        let path = path.into();
        let mut lock_path = path.clone().into_os_string();
        lock_path.push(".lock");
        Self {
            path,
            lock_path: lock_path.into(),
            stamp: Arc::default(),
            seen: std::sync::Arc::default(),
        }
    }

    /// The token file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn io(&self, action: &'static str, source: std::io::Error) -> StoreError {
        StoreError::Io {
            path: self.path.clone(),
            action,
            source,
        }
    }

    fn io_at(&self, path: &Path, action: &'static str, source: std::io::Error) -> StoreError {
        StoreError::Io {
            path: path.to_owned(),
            action,
            source,
        }
    }

    fn corrupt(&self, detail: impl Into<String>) -> StoreError {
        StoreError::Corrupt {
            path: self.path.clone(),
            detail: detail.into(),
        }
    }

    fn format_error(&self, e: FormatError) -> StoreError {
        match e {
            FormatError::UnsupportedVersion { found } => StoreError::UnsupportedVersion {
                path: self.path.clone(),
                found,
                supported: FORMAT_VERSION,
            },
            other => self.corrupt(other.to_string()),
        }
    }

    /// The file's bytes, or `None` when there is no file.
    fn read(&self) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.read_with_metadata()?.map(|(bytes, _)| bytes))
    }

    fn read_with_metadata(&self) -> Result<Option<(Vec<u8>, Metadata)>, StoreError> {
        let mut options = OpenOptions::new();
        options.read(true);
        let Some((file, meta)) = open_regular(&self.path, no_follow(&mut options), "opening")?
        else {
            return Ok(None);
        };
        self.check_permissions(&file, &meta)?;
        let bytes = read_capped(file, &meta)
            .map_err(|e| self.io("reading", e))?
            .ok_or_else(|| self.too_large())?;
        Ok(Some((bytes, meta)))
    }

    fn too_large(&self) -> StoreError {
        self.corrupt(format!(
            "the file is larger than any token set ({MAX_FILE_BYTES} bytes at most)"
        ))
    }

    /// Refuses a token file that other users can write to (whatever it holds could be theirs),
    /// and makes one they can read private at once (every save writes it 0600 anyway).
    #[cfg(unix)]
    fn check_permissions(&self, file: &File, meta: &Metadata) -> Result<(), StoreError> {
        use std::os::unix::fs::PermissionsExt;
        let mode = meta.permissions().mode() & 0o7777;
        if mode & 0o022 != 0 {
            return Err(StoreError::Unsafe {
                path: self.path.clone(),
                reason: format!(
                    "it is writable by other users (mode {mode:04o}), so its tokens may not be \
                     the ones this program stored; check it, then make it private (chmod 600)"
                ),
            });
        }
        if mode & 0o044 != 0 {
            match file.set_permissions(fs::Permissions::from_mode(0o600)) {
                Ok(()) => tracing::warn!(
                    path = %self.path.display(),
                    mode = %format!("{mode:04o}"),
                    "the token file was readable by other users; it is now 0600"
                ),
                // Not ours to change (another owner): the next save replaces it with a
                // private file. Debug only: loads repeat while a lock is awaited.
                Err(e) => tracing::debug!(
                    path = %self.path.display(),
                    mode = %format!("{mode:04o}"),
                    error = %e,
                    "the token file is readable by other users and could not be made private"
                ),
            }
        }
        Ok(())
    }

    #[cfg(not(unix))]
    fn check_permissions(&self, _: &File, _: &Metadata) -> Result<(), StoreError> {
        Ok(())
    }

    fn folder(&self) -> &Path {
        match self.path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        }
    }

    /// The file name that temporary files start with (`.{name}.`).
    fn temp_stem(&self) -> String {
        let name = self
            .path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "tokens".into());
        format!(".{name}.")
    }

    /// A new temporary file's path: `.{name}.{pid}.{counter}.{nanos}.locked.tmp`.
    fn temp_path(&self) -> PathBuf {
        self.folder().join(format!(
            "{}{}{LOCKED_TEMP_SUFFIX}",
            self.temp_stem(),
            unique_suffix()
        ))
    }

    /// Whether `name` is one of this store's temporary files, and whether its writer locked it.
    fn temp_kind(&self, name: &str) -> Option<TempKind> {
        let middle = name.strip_prefix(&self.temp_stem())?;
        let (middle, kind) = match middle.strip_suffix(LOCKED_TEMP_SUFFIX) {
            Some(m) => (m, TempKind::Locked),
            None => (
                middle.strip_suffix(UNLOCKED_TEMP_SUFFIX)?,
                TempKind::Unlocked,
            ),
        };
        let parts: Vec<&str> = middle.split('.').collect();
        let numbers = parts
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
        (parts.len() == 3 && numbers).then_some(kind)
    }

    /// Removes this store's temporary files that no writer holds. With `recover` (the caller
    /// holds the store's lock, so no writer that takes it is saving), a complete one of the
    /// generation right after the stored one is renamed into place instead. Best effort: a
    /// failure is logged, never fatal to the save or lock that triggered it.
    fn sweep_temps(&self, recover: bool) {
        let folder = self.folder();
        let entries = match fs::read_dir(folder) {
            Ok(entries) => entries,
            Err(e) => {
                tracing::warn!(folder = %folder.display(), error = %e, "cannot list the token file's folder to remove stale temporary files");
                return;
            }
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(kind) = name.to_str().and_then(|n| self.temp_kind(n)) else {
                continue;
            };
            let path = entry.path();
            if let Err(e) = self.sweep_temp(&path, kind, recover) {
                tracing::warn!(path = %path.display(), error = %e, "cannot remove a stale temporary token file");
            }
        }
    }

    fn sweep_temp(&self, path: &Path, kind: TempKind, recover: bool) -> Result<(), StoreError> {
        let mut options = OpenOptions::new();
        options.read(true).write(true);
        // A link, FIFO or folder with this name is not a file this store wrote: left alone.
        let Ok(Some((file, meta))) = open_regular(path, no_follow(&mut options), "opening") else {
            return Ok(());
        };
        match file.try_lock() {
            Ok(()) => {}
            // Its writer is alive and has not renamed it yet.
            Err(TryLockError::WouldBlock) => return Ok(()),
            Err(TryLockError::Error(e)) => return Err(self.io("locking a temporary file", e)),
        }
        let mut file = Locked(file);
        let age = meta
            .modified()
            .ok()
            .and_then(|m| SystemTime::now().duration_since(m).ok())
            .unwrap_or(Duration::ZERO);
        let stale = match kind {
            // Written to only while locked: content means its writer died or gave up.
            TempKind::Locked => meta.len() > 0 || age >= EMPTY_TEMP_AGE,
            TempKind::Unlocked => age >= UNLOCKED_TEMP_AGE,
        };
        // Renamed into the store by its writer after we opened it: not a temporary file now.
        if !stale || !same_file(path, &meta) {
            return Ok(());
        }
        if recover && self.recover(path, &mut file.0, &meta)? {
            return Ok(());
        }
        match fs::remove_file(path) {
            Ok(()) => {
                tracing::info!(path = %path.display(), "removed a temporary token file left by a crashed writer");
                Ok(())
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(self.io("removing a stale temporary file", e)),
        }
    }

    /// Puts the temporary file at `temp` in place if it is a complete set of the generation
    /// right after the stored one; whether it did.
    fn recover(&self, temp: &Path, file: &mut File, meta: &Metadata) -> Result<bool, StoreError> {
        let Some(bytes) = read_capped(&mut *file, meta).map_err(|e| self.io("reading", e))? else {
            return Ok(false);
        };
        let bytes: SecretSlice<u8> = bytes.into();
        let Ok((_, Some(generation))) = format::decode_with_generation(bytes.expose_secret())
        else {
            return Ok(false);
        };
        // The stored file stays locked until the rename, as for any save (see `lock_current`).
        let current = self.lock_current()?;
        match &current {
            // The usual crash: the generation right after the stored one, written by the
            // stored file's owner.
            Some(current) => {
                let stored = format::generation(&current.bytes)
                    .ok()
                    .map(|g| g.unwrap_or(0));
                if stored.and_then(|g| g.checked_add(1)) != Some(generation)
                    || !written_by_the_stores_owner(meta, &current.meta)
                {
                    return Ok(false);
                }
            }
            // A crash during the first save (or the first after the file was lost): any
            // complete set written by the owner of the lock file the caller holds.
            None => {
                let Ok(lock_meta) = fs::symlink_metadata(&self.lock_path) else {
                    return Ok(false);
                };
                if !written_by_the_stores_owner(meta, &lock_meta) {
                    return Ok(false);
                }
            }
        }
        file.sync_all()
            .map_err(|e| self.io("syncing a temporary file", e))?;
        match current {
            Some(_) => fs::rename(temp, &self.path)
                .map_err(|e| self.io("renaming a recovered temporary file over the store", e))?,
            // Only if still absent: a save without the refresh lock may have created it.
            None => match fs::hard_link(temp, &self.path) {
                Ok(()) => {
                    let _ = fs::remove_file(temp);
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Ok(false),
                Err(e) => return Err(self.io("linking a recovered temporary file as the store", e)),
            },
        }
        drop(current);
        self.sync_folder()?;
        tracing::warn!(
            path = %self.path.display(),
            generation,
            "recovered a token set whose writer crashed between writing it and renaming it into place"
        );
        Ok(true)
    }

    /// The token file as it is now, opened, read and locked (an exclusive advisory lock on the
    /// file itself, not the refresh lock on `{file}.lock`), or `None` when there is none.
    ///
    /// Every writer holds this lock from reading the generation to renaming its new file over
    /// the old one, whether or not it holds the refresh lock, which makes every save a true
    /// compare-and-set: a second writer that expected the same generation waits, finds that
    /// the path now names another file (the rename), reads that one, and sees the conflict.
    /// The lock is held for one read, write and rename: milliseconds. A writer that cannot get
    /// it within [`SAVE_LOCK_WAIT`] (another process stopped in the middle of its save) fails.
    fn lock_current(&self) -> Result<Option<Current>, StoreError> {
        let started = std::time::Instant::now();
        let mut pause = Duration::from_micros(200);
        loop {
            let mut options = OpenOptions::new();
            options.read(true);
            let Some((file, meta)) = open_regular(&self.path, no_follow(&mut options), "opening")?
            else {
                return Ok(None);
            };
            self.check_permissions(&file, &meta)?;
            match file.try_lock() {
                Ok(()) => {}
                Err(TryLockError::WouldBlock) => {
                    let waited = started.elapsed();
                    if waited >= SAVE_LOCK_WAIT {
                        return Err(StoreError::LockTimeout {
                            path: self.path.clone(),
                            waited,
                        });
                    }
                    std::thread::sleep(pause);
                    pause = (pause * 2).min(Duration::from_millis(10));
                    continue;
                }
                Err(TryLockError::Error(e)) => return Err(self.io("locking the token file", e)),
            }
            let file = Locked(file);
            // Renamed over while we waited: the lock is on a file that is no longer the store.
            if !same_file(&self.path, &meta) {
                continue;
            }
            let bytes = read_capped(&file.0, &meta)
                .map_err(|e| self.io("reading", e))?
                .ok_or_else(|| self.too_large())?;
            return Ok(Some(Current {
                _file: file,
                meta,
                bytes,
            }));
        }
    }

    fn sync_folder(&self) -> Result<(), StoreError> {
        File::open(self.folder())
            .and_then(|dir| dir.sync_all())
            .map_err(|e| self.io("syncing the folder", e))
    }
}

/// How long a save waits for another writer's lock on the token file (held for one read, write
/// and rename) before it fails.
const SAVE_LOCK_WAIT: Duration = Duration::from_secs(10);

/// The token file, locked by the writer that read it (see [`FileStore::lock_current`]) until
/// this is dropped ([`Locked`]).
struct Current {
    _file: Locked,
    meta: Metadata,
    bytes: Vec<u8>,
}

/// An open file this process holds an advisory lock on, released when this is dropped by an
/// explicit unlock before the close. Closing alone is not enough: the lock belongs to the open
/// file description, which a child process started by any other thread of this process shares
/// from its fork to its `exec` (or, without one, to its exit), so a lock released by the close
/// would outlive the guard by that long.
struct Locked(File);

impl Drop for Locked {
    fn drop(&mut self) {
        // An error leaves the close to release it, as before.
        let _ = self.0.unlock();
    }
}

#[derive(Debug, Clone, Copy)]
enum TempKind {
    /// Named `….locked.tmp`: its writer holds its lock until the rename.
    Locked,
    /// Named `….tmp` by an earlier cogref, whose writers did not lock it.
    Unlocked,
}

/// `options` that do not follow a symbolic link in the last component (the open fails instead)
/// and do not wait for a writer when the path is a FIFO (it is refused once open).
fn no_follow(options: &mut OpenOptions) -> &mut OpenOptions {
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK);
    }
    options
}

fn is_symlink(path: &Path) -> bool {
    fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink())
}

/// Opens `path` (with [`no_follow`] options) and checks that it is a regular file; `Ok(None)`
/// when there is none and `options` does not create one.
fn open_regular(
    path: &Path,
    options: &OpenOptions,
    action: &'static str,
) -> Result<Option<(File, Metadata)>, StoreError> {
    let refuse = |reason: String| StoreError::Unsafe {
        path: path.to_owned(),
        reason,
    };
    let link = || {
        refuse(
            "it is a symbolic link, and the store never follows one (a planted link could make \
             it read or write another file); put the token file itself there"
                .into(),
        )
    };
    // Where O_NOFOLLOW does not exist, a look first (racy, but better than following).
    #[cfg(not(unix))]
    if is_symlink(path) {
        return Err(link());
    }
    let file = match options.open(path) {
        Ok(file) => file,
        Err(_) if is_symlink(path) => return Err(link()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => match fs::symlink_metadata(path) {
            Ok(meta) if !meta.is_file() => {
                return Err(refuse(not_a_file(&meta)));
            }
            _ => {
                return Err(StoreError::Io {
                    path: path.to_owned(),
                    action,
                    source: e,
                });
            }
        },
    };
    let meta = file.metadata().map_err(|e| StoreError::Io {
        path: path.to_owned(),
        action,
        source: e,
    })?;
    if !meta.is_file() {
        return Err(refuse(not_a_file(&meta)));
    }
    Ok(Some((file, meta)))
}

fn not_a_file(meta: &Metadata) -> String {
    let file_type = meta.file_type();
    let what = if file_type.is_dir() {
        "a folder"
    } else if file_type.is_symlink() {
        "a symbolic link"
    } else {
        special_kind(&file_type)
    };
    format!("it is {what}, not a regular file")
}

#[cfg(unix)]
fn special_kind(file_type: &fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if file_type.is_fifo() {
        "a FIFO (named pipe)"
    } else if file_type.is_socket() {
        "a socket"
    } else if file_type.is_block_device() || file_type.is_char_device() {
        "a device"
    } else {
        "not a file"
    }
}

#[cfg(not(unix))]
fn special_kind(_: &fs::FileType) -> &'static str {
    "not a file"
}

/// Whether a temporary file looks like one this store's writers create: private (0600) and
/// owned by the token file's owner. Anyone else who can create files in the folder could have
/// planted it, and it must never become the store.
#[cfg(unix)]
fn written_by_the_stores_owner(temp: &Metadata, store: &Metadata) -> bool {
    use std::os::unix::fs::MetadataExt;
    temp.mode() & 0o077 == 0 && temp.uid() == store.uid()
}

#[cfg(not(unix))]
fn written_by_the_stores_owner(_: &Metadata, _: &Metadata) -> bool {
    true
}

/// The generation of a new file: microseconds since the epoch (at least 1).
fn first_generation() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(1, |d| {
        u64::try_from(d.as_micros()).unwrap_or(u64::MAX / 2).max(1)
    })
}

/// Whether `path` still names the file `meta` describes.
#[cfg(unix)]
fn same_file(path: &Path, meta: &Metadata) -> bool {
    use std::os::unix::fs::MetadataExt;
    fs::symlink_metadata(path).is_ok_and(|now| now.dev() == meta.dev() && now.ino() == meta.ino())
}

#[cfg(not(unix))]
fn same_file(path: &Path, _: &Metadata) -> bool {
    path.exists()
}

/// The whole content of `file`, or `None` if it is larger than [`MAX_FILE_BYTES`] (checked
/// before reading, and again while reading in case it grows).
fn read_capped(file: impl Read, meta: &Metadata) -> std::io::Result<Option<Vec<u8>>> {
    if meta.len() > MAX_FILE_BYTES {
        return Ok(None);
    }
    let mut bytes = Vec::new();
    file.take(MAX_FILE_BYTES + 1).read_to_end(&mut bytes)?;
    let fits = u64::try_from(bytes.len()).is_ok_and(|n| n <= MAX_FILE_BYTES);
    Ok(fits.then_some(bytes))
}

/// Creates a file for writing that only its owner can read (0600 on Unix). `create_new` is
/// `O_CREAT | O_EXCL`, which never follows a link: a planted link, even a dangling one, makes
/// it fail.
fn create_private(path: &Path) -> std::io::Result<File> {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    no_follow(&mut options).open(path)
}

impl FileStore {
    /// The highest generation written to the token file as the lock file records it (0 when
    /// it records none). A lock file that is not a regular file is refused, as everywhere.
    fn generation_mark(&self) -> Result<u64, StoreError> {
        let mut options = OpenOptions::new();
        options.read(true);
        match open_regular(
            &self.lock_path,
            no_follow(&mut options),
            "reading the lock file",
        )? {
            Some((mut file, _)) => self.read_generation_mark(&mut file),
            None => Ok(0),
        }
    }

    /// The mark in the open lock file `file`, read from its start.
    fn read_generation_mark(&self, file: &mut File) -> Result<u64, StoreError> {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut std::io::Read::take(file, 64), &mut text)
            .map_err(|e| self.io_at(&self.lock_path, "reading the lock file", e))?;
        let text = text.trim();
        // Empty: a lock file from before the mark, or never written to.
        if text.is_empty() {
            return Ok(0);
        }
        text.parse().map_err(|_| StoreError::Corrupt {
            path: self.lock_path.clone(),
            detail: "the lock file holds something other than a generation".into(),
        })
    }

    /// Records `version` in the lock file if it is above what it records, before the new
    /// file is put in place: a save whose mark cannot be written fails with nothing placed (a
    /// mark left above every file is harmless: a file written afresh only starts higher). One
    /// open of the lock file, read and written.
    fn raise_generation_mark(&self, version: u64) -> Result<(), StoreError> {
        let mut options = OpenOptions::new();
        options.read(true).write(true).create(true).truncate(false);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let Some((mut file, _)) = open_regular(
            &self.lock_path,
            no_follow(&mut options),
            "opening the lock file",
        )?
        else {
            return Err(self.io_at(
                &self.lock_path,
                "opening the lock file",
                std::io::ErrorKind::NotFound.into(),
            ));
        };
        if self.read_generation_mark(&mut file)? >= version {
            return Ok(());
        }
        use std::io::{Seek, SeekFrom};
        // Written in place and cut to its length (the lock file is never replaced: its lock
        // lives on its inode).
        let text = format!("{version}\n");
        file.seek(SeekFrom::Start(0))
            .and_then(|_| file.write_all(text.as_bytes()))
            .and_then(|()| file.set_len(text.len() as u64))
            .map_err(|e| self.io_at(&self.lock_path, "writing the lock file", e))
    }
}

impl TokenStore for FileStore {
    fn load(&self) -> Result<Option<Versioned>, StoreError> {
        let Some(bytes) = self.read()? else {
            return Ok(None);
        };
        let (tokens, generation) =
            format::decode_with_generation(&bytes).map_err(|e| self.format_error(e))?;
        let version = generation.unwrap_or(0);
        self.seen.fetch_max(version, Ordering::Relaxed);
        Ok(Some(Versioned { tokens, version }))
    }

    fn save(&self, tokens: &TokenSet, expected: Option<u64>) -> Result<u64, StoreError> {
        self.sweep_temps(false);
        // Locked until the rename, by every writer: nobody writes between this read and the
        // rename, whether or not the caller holds the refresh lock.
        let current = self.lock_current()?;
        let found = match &current {
            None => None,
            Some(current) => Some(
                format::generation(&current.bytes)
                    .map_err(|e| self.format_error(e))?
                    .unwrap_or(0),
            ),
        };
        if found != expected {
            return Err(StoreError::Conflict { expected, found });
        }
        if let Some(found) = found {
            self.seen.fetch_max(found, Ordering::Relaxed);
        }
        let version = match found {
            // A new file starts at the clock in microseconds, as a Redis entry does, and above
            // every generation this store has seen and every one written to this path (the
            // lock file, which outlives a deleted token file, keeps the highest): a file
            // deleted and written afresh never repeats or falls below a generation an old
            // reader saw, even after the clock was stepped back, whoever writes it.
            None => first_generation().max(
                self.seen
                    .load(Ordering::Relaxed)
                    .max(self.generation_mark()?)
                    .checked_add(1)
                    .ok_or_else(|| {
                        self.corrupt(
                            "a generation seen is at its largest value, which no store reaches",
                        )
                    })?,
            ),
            Some(v) => v.checked_add(1).ok_or_else(|| {
                self.corrupt("the generation is at its largest value, which no store reaches")
            })?,
        };
        let json = format::encode_with_generation(tokens, Some(version));
        if u64::try_from(json.expose_secret().len()).map_or(true, |n| n > MAX_FILE_BYTES) {
            return Err(StoreError::Other(
                format!(
                    "the token set is larger than a token file may be ({MAX_FILE_BYTES} bytes); nothing was written"
                )
                .into(),
            ));
        }
        let temp = self.temp_path();
        let written = (|| {
            let file = create_private(&temp)?;
            // Held until the rename: a file whose writer is alive is never swept away.
            file.lock()?;
            let mut file = Locked(file);
            file.0.write_all(json.expose_secret())?;
            file.0.sync_all()?;
            Ok(file)
        })();
        let file = match written {
            Ok(file) => file,
            Err(e) => {
                let _ = fs::remove_file(&temp);
                return Err(self.io("writing a temporary file", e));
            }
        };
        // The mark first, while this writer holds the current file's lock (when there is one):
        // a mark that cannot be written fails the save with nothing placed.
        if let Err(e) = self.raise_generation_mark(version) {
            let _ = fs::remove_file(&temp);
            return Err(e);
        }
        let placed = match current {
            Some(_) => fs::rename(&temp, &self.path)
                .map_err(|e| self.io("renaming the temporary file over the store", e)),
            // No file to lock: created only if still absent (a link fails if the name exists),
            // so of two writers that found none, one wins and the other sees the conflict.
            None => match fs::hard_link(&temp, &self.path) {
                Ok(()) => {
                    let _ = fs::remove_file(&temp);
                    Ok(())
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    let _ = fs::remove_file(&temp);
                    let found = self
                        .read()
                        .ok()
                        .flatten()
                        .and_then(|bytes| format::generation(&bytes).ok())
                        .map(|g| g.unwrap_or(0));
                    return Err(StoreError::Conflict { expected, found });
                }
                // A file system without hard links: a plain rename (a race between two first
                // saves is then decided by the last one).
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::Unsupported | std::io::ErrorKind::PermissionDenied
                    ) =>
                {
                    fs::rename(&temp, &self.path)
                        .map_err(|e| self.io("renaming the temporary file over the store", e))
                }
                Err(e) => Err(self.io("linking the temporary file as the store", e)),
            },
        };
        if let Err(e) = placed {
            let _ = fs::remove_file(&temp);
            return Err(e);
        }
        drop(current);
        drop(file);
        self.seen.fetch_max(version, Ordering::Relaxed);
        // The rename is durable only once the folder's entry is.
        self.sync_folder()?;
        Ok(version)
    }

    fn try_lock(&self) -> Result<Option<StoreGuard>, StoreError> {
        let mut options = OpenOptions::new();
        options.read(true).write(true).create(true).truncate(false);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let Some((file, _)) = open_regular(
            &self.lock_path,
            no_follow(&mut options),
            "opening the lock file",
        )?
        else {
            // Created unless it vanished between the open and the look: not a lock to take.
            return Err(StoreError::Io {
                path: self.lock_path.clone(),
                action: "opening the lock file",
                source: std::io::ErrorKind::NotFound.into(),
            });
        };
        match file.try_lock() {
            Ok(()) => {
                self.sweep_temps(true);
                // The lock lives as long as the guard, which owns the open file.
                Ok(Some(StoreGuard::new(Locked(file))))
            }
            Err(TryLockError::WouldBlock) => Ok(None),
            Err(TryLockError::Error(e)) => Err(StoreError::Io {
                path: self.lock_path.clone(),
                action: "locking",
                source: e,
            }),
        }
    }

    /// A `stat` of the token file (not following a link): device, inode, size, and the
    /// modification and change times to the nanosecond, hashed. Every save renames a new file
    /// over the old one, so a save by any process on this host moves it; a file that is not
    /// there has a stamp of its own. `None` if the file cannot be looked at.
    ///
    /// A `stat` is reused for [`FileStore::STAMP_MAX_AGE`] (1 ms): a call that starts more than
    /// that after a save elsewhere sees it.
    fn change_stamp(&self) -> Option<u64> {
        let now = stamp_clock();
        let taken_at = self.stamp.taken_at.load(Ordering::Acquire);
        let max_age = u64::try_from(Self::STAMP_MAX_AGE.as_nanos()).unwrap_or(u64::MAX);
        if taken_at != 0 && now.saturating_sub(taken_at) < max_age {
            let stamp = self.stamp.stamp.load(Ordering::Acquire);
            return (stamp != u64::MAX).then_some(stamp);
        }
        let stamp = self.stat_stamp();
        self.stamp
            .stamp
            .store(stamp.unwrap_or(u64::MAX), Ordering::Release);
        self.stamp.taken_at.store(now, Ordering::Release);
        stamp
    }
}

impl FileStore {
    /// The stamp of the token file as it is now (see [`TokenStore::change_stamp`]).
    fn stat_stamp(&self) -> Option<u64> {
        use std::hash::{Hash, Hasher};
        let meta = match fs::symlink_metadata(&self.path) {
            Ok(meta) => meta,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Some(NO_FILE_STAMP),
            Err(_) => return None,
        };
        // SipHash with fixed keys: the same file gives the same stamp in every process.
        let mut hasher = std::hash::DefaultHasher::new();
        #[cfg(unix)]
        {
            use std::os::unix::fs::MetadataExt;
            (
                meta.dev(),
                meta.ino(),
                meta.size(),
                meta.mtime(),
                meta.mtime_nsec(),
                meta.ctime(),
                meta.ctime_nsec(),
            )
                .hash(&mut hasher);
        }
        #[cfg(not(unix))]
        {
            (meta.len(), meta.modified().ok(), meta.created().ok()).hash(&mut hasher);
        }
        // Odd, and never u64::MAX (which stands for "could not look").
        Some((hasher.finish() | 1) & !(1 << 63))
    }
}

/// The change stamp of a token file that does not exist (every stamp of a file is odd).
const NO_FILE_STAMP: u64 = 0;

/// A name for a temporary file that no other writer, in this process or another, picks.
fn unique_suffix() -> String {
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

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "cogref-file-unit-{name}-{}-{}",
            std::process::id(),
            unique_suffix()
        ));
        fs::create_dir_all(&dir).expect("dir");
        dir
    }

    #[test]
    fn creating_a_temporary_file_refuses_a_planted_link_and_writes_nothing_through_it() {
        let dir = temp_dir("planted");
        let target = dir.join("target");
        let link = dir.join("link");
        std::os::unix::fs::symlink(&target, &link).expect("link");
        assert!(create_private(&link).is_err(), "dangling link followed");
        assert!(!target.exists());
        fs::write(&target, "keep").expect("write");
        assert!(create_private(&link).is_err(), "link to a file followed");
        assert_eq!(fs::read_to_string(&target).expect("read"), "keep");
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn only_this_stores_naming_pattern_counts_as_its_temporary_files() {
        let store = FileStore::new("/x/t.json");
        assert!(matches!(
            store.temp_kind(".t.json.1.2.3.locked.tmp"),
            Some(TempKind::Locked)
        ));
        assert!(matches!(
            store.temp_kind(".t.json.1.2.3.tmp"),
            Some(TempKind::Unlocked)
        ));
        for other in [
            "t.json",
            ".t.json.1.2.locked.tmp",
            ".t.json.1.2.3.4.tmp",
            ".t.json.1.x.3.tmp",
            ".t.json..2.3.tmp",
            ".u.json.1.2.3.tmp",
            ".t.json.1.2.3.tmp.bak",
            ".t.json.1.1.2.3.tmp",
        ] {
            assert!(store.temp_kind(other).is_none(), "{other}");
        }
        assert!(
            store
                .temp_path()
                .to_string_lossy()
                .ends_with(LOCKED_TEMP_SUFFIX)
        );
        let name = store.temp_path();
        let name = name.file_name().and_then(|n| n.to_str()).expect("name");
        assert!(matches!(store.temp_kind(name), Some(TempKind::Locked)));
    }
}
