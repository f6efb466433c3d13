//! A token store in one file, safe across processes on one host.
//!
//! - **Format**: versioned JSON (`{"format":"cogref-tokens","version":1,…}`, see
//!   [`format`](crate::format)); an unknown version or a file that is not a token set is a clear
//!   error, never a guess. A `generation` counter in the file is the store's version.
//! - **Atomic writes**: a new file beside the old one (mode 0600, created fresh), written and
//!   fsynced, renamed over the old one, then the folder fsynced; a crash at any point leaves
//!   either the old set or the new one, never half of each.
//! - **Lock**: an advisory lock on `{file}.lock` (a separate file, so that the rename does not
//!   swap the lock away) keeps two processes from refreshing the same lineage at once; the
//!   second waits, then reads what the first stored.

use std::fs::{self, File, OpenOptions, TryLockError};
use std::io::Write;
use std::path::{Path, PathBuf};

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use cogref_core::TokenSet;
use cogref_core::secrecy::ExposeSecret;

use crate::format::{self, FORMAT_VERSION, FormatError};
use crate::store::{StoreError, StoreGuard, TokenStore, Versioned};

/// A [`TokenStore`] in one JSON file.
#[derive(Debug, Clone)]
pub struct FileStore {
    path: PathBuf,
    lock_path: PathBuf,
}

impl FileStore {
    /// A store at `path`; the lock file is `path` with `.lock` appended. Nothing is created until
    /// the first save or lock.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        let path = path.into();
        let mut lock_path = path.clone().into_os_string();
        lock_path.push(".lock");
        Self {
            path,
            lock_path: lock_path.into(),
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

    fn format_error(&self, e: FormatError) -> StoreError {
        match e {
            FormatError::UnsupportedVersion { found } => StoreError::UnsupportedVersion {
                path: self.path.clone(),
                found,
                supported: FORMAT_VERSION,
            },
            other => StoreError::Corrupt {
                path: self.path.clone(),
                detail: other.to_string(),
            },
        }
    }

    /// The file's bytes, or `None` when there is no file.
    fn read(&self) -> Result<Option<Vec<u8>>, StoreError> {
        match fs::read(&self.path) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(self.io("reading", e)),
        }
    }

    fn folder(&self) -> &Path {
        match self.path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        }
    }
}

/// Opens a file for writing that only its owner can read (0600 on Unix).
fn create_private(path: &Path) -> std::io::Result<File> {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(path)
}

impl TokenStore for FileStore {
    fn load(&self) -> Result<Option<Versioned>, StoreError> {
        let Some(bytes) = self.read()? else {
            return Ok(None);
        };
        let (tokens, generation) =
            format::decode_with_generation(&bytes).map_err(|e| self.format_error(e))?;
        Ok(Some(Versioned {
            tokens,
            version: generation.unwrap_or(0),
        }))
    }

    fn save(&self, tokens: &TokenSet, expected: Option<u64>) -> Result<u64, StoreError> {
        // The caller holds the lock, so nobody writes between this read and the rename.
        let found = match self.read()? {
            None => None,
            Some(bytes) => Some(
                format::generation(&bytes)
                    .map_err(|e| self.format_error(e))?
                    .unwrap_or(0),
            ),
        };
        if found != expected {
            return Err(StoreError::Conflict { expected, found });
        }
        let version = found.map_or(1, |v| v + 1);
        let folder = self.folder();
        let name = self
            .path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "tokens".into());
        let temp = folder.join(format!(".{name}.{}.tmp", unique_suffix()));
        let json = format::encode_with_generation(tokens, Some(version));
        let written = (|| {
            let mut file = create_private(&temp)?;
            file.write_all(json.expose_secret())?;
            file.sync_all()
        })();
        if let Err(e) = written {
            let _ = fs::remove_file(&temp);
            return Err(self.io("writing a temporary file", e));
        }
        if let Err(e) = fs::rename(&temp, &self.path) {
            let _ = fs::remove_file(&temp);
            return Err(self.io("renaming the temporary file over the store", e));
        }
        // The rename is durable only once the folder's entry is.
        File::open(folder)
            .and_then(|dir| dir.sync_all())
            .map_err(|e| self.io("syncing the folder", e))?;
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
        let file = options.open(&self.lock_path).map_err(|e| StoreError::Io {
            path: self.lock_path.clone(),
            action: "opening the lock file",
            source: e,
        })?;
        match file.try_lock() {
            // The lock lives as long as the open file: the guard owns it.
            Ok(()) => Ok(Some(StoreGuard::new(file))),
            Err(TryLockError::WouldBlock) => Ok(None),
            Err(TryLockError::Error(e)) => Err(StoreError::Io {
                path: self.lock_path.clone(),
                action: "locking",
                source: e,
            }),
        }
    }
}

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
