//! A token store in one file, safe across processes on one host.
//!
//! - **Format**: versioned JSON (`{"format":"cogref-tokens","version":1,…}`); an unknown version
//!   or a file that is not a token set is a clear error, never a guess.
//! - **Atomic writes**: a new file beside the old one (mode 0600, created fresh), written and
//!   fsynced, renamed over the old one, then the folder fsynced; a crash at any point leaves
//!   either the old set or the new one, never half of each.
//! - **Lock**: an advisory lock on `{file}.lock` (a separate file, so that the rename does not
//!   swap the lock away) keeps two processes from refreshing the same lineage at once; the
//!   second waits, then reads what the first stored.

use std::fs::{self, File, OpenOptions, TryLockError};
use std::io::Write;
use std::path::{Path, PathBuf};

use cogref_core::TokenSet;

use crate::store::{
    FORMAT_NAME, FORMAT_VERSION, StoreError, StoreGuard, StoredTokens, TokenStore, VersionProbe,
    unique_suffix,
};

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

    fn corrupt(&self, detail: impl Into<String>) -> StoreError {
        StoreError::Corrupt {
            path: self.path.clone(),
            detail: detail.into(),
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
    fn load(&self) -> Result<Option<TokenSet>, StoreError> {
        let bytes = match fs::read(&self.path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(self.io("reading", e)),
        };
        // serde_json's messages can quote the content (a token): keep only positions.
        let position = |e: serde_json::Error| format!("line {} column {}", e.line(), e.column());
        let probe: VersionProbe = serde_json::from_slice(&bytes)
            .map_err(|e| self.corrupt(format!("not a JSON object at {}", position(e))))?;
        if probe.format.as_deref() != Some(FORMAT_NAME) {
            return Err(self.corrupt("not a cogref token file (no \"format\":\"cogref-tokens\")"));
        }
        match probe.version {
            Some(FORMAT_VERSION) => {}
            Some(found) => {
                return Err(StoreError::UnsupportedVersion {
                    path: self.path.clone(),
                    found,
                    supported: FORMAT_VERSION,
                });
            }
            None => return Err(self.corrupt("no \"version\"")),
        }
        let stored: StoredTokens<'_> = serde_json::from_slice(&bytes).map_err(|e| {
            self.corrupt(format!(
                "fields of the wrong type or missing at {}",
                position(e)
            ))
        })?;
        Ok(Some(stored.into_set()))
    }

    fn save(&self, tokens: &TokenSet) -> Result<(), StoreError> {
        let folder = self.folder();
        let name = self
            .path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "tokens".into());
        let temp = folder.join(format!(".{name}.{}.tmp", unique_suffix()));
        let json = serde_json::to_vec(&StoredTokens::from_set(tokens))
            .map_err(|_| self.corrupt("the token set could not be serialized"))?;
        let written = (|| {
            let mut file = create_private(&temp)?;
            file.write_all(&json)?;
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
            .map_err(|e| self.io("syncing the folder", e))
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
