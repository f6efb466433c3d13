//! The file store: round trips, permissions, atomic replacement, and every way a file can be
//! wrong, each with a clear error that shows no token.

use std::fs;
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use cogref_core::TokenSet;
use cogref_session::secrecy::ExposeSecret;
use cogref_session::{FORMAT_VERSION, FileStore, StoreError, TokenStore};

struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!(
            "cogref-file-store-{name}-{}-{}",
            std::process::id(),
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos())
        ));
        fs::create_dir_all(&dir).expect("temp dir");
        Self(dir)
    }
    fn file(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

const REFRESH: &str = "CANARY-file-refresh.0123456789abcdef.SECRET";

fn full_set() -> TokenSet {
    TokenSet::new(
        REFRESH.into(),
        Some("CANARY-file-access.0123456789abcdef.SECRET".into()),
        Some("CANARY-file-id.0123456789abcdef.SECRET".into()),
        Some("eu-west-1_0f1e2d3c".into()),
        Some(UNIX_EPOCH + Duration::from_millis(1_800_000_123_456)),
        Some(Duration::from_secs(3600)),
    )
}

fn shown(e: &StoreError) -> String {
    let text = format!("{e} {e:?}");
    assert!(!text.contains("CANARY"), "a token leaked: {text}");
    text
}

#[test]
fn an_absent_file_is_an_empty_store() {
    let dir = TempDir::new("absent");
    assert!(
        FileStore::new(dir.file("t.json"))
            .load()
            .expect("ok")
            .is_none()
    );
}

#[test]
fn a_saved_set_loads_back_whole() {
    let dir = TempDir::new("roundtrip");
    let store = FileStore::new(dir.file("t.json"));
    let version = store.save(&full_set(), None).expect("saved");
    let stored = store.load().expect("ok").expect("stored");
    assert_eq!(stored.version, version);
    let back = stored.tokens;
    assert_eq!(back.refresh_token.expose_secret(), REFRESH);
    assert_eq!(
        back.id_token.as_ref().map(|t| t.expose_secret().len()),
        Some(38)
    );
    assert_eq!(
        back.device_key.as_ref().map(|t| t.expose_secret()),
        Some("eu-west-1_0f1e2d3c")
    );
    assert_eq!(back.expires_at, full_set().expires_at);
    assert_eq!(back.lifetime, Some(Duration::from_secs(3600)));
}

#[cfg(unix)]
#[test]
fn the_file_is_readable_by_its_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let dir = TempDir::new("mode");
    let store = FileStore::new(dir.file("t.json"));
    store.save(&full_set(), None).expect("saved");
    let mode = fs::metadata(store.path())
        .expect("meta")
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600);
}

#[test]
fn saving_replaces_the_file_and_leaves_no_temporary_behind() {
    let dir = TempDir::new("atomic");
    let store = FileStore::new(dir.file("t.json"));
    let first = store
        .save(&TokenSet::from_refresh_token("first", None), None)
        .expect("saved");
    store.save(&full_set(), Some(first)).expect("saved");
    let names: Vec<String> = fs::read_dir(&dir.0)
        .expect("dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["t.json"]);
    assert_eq!(
        store
            .load()
            .expect("ok")
            .expect("set")
            .tokens
            .refresh_token
            .expose_secret(),
        REFRESH
    );
}

#[test]
fn a_file_of_another_format_version_is_refused_with_its_version() {
    let dir = TempDir::new("version");
    let path = dir.file("t.json");
    fs::write(
        &path,
        format!(
            r#"{{"format":"cogref-tokens","version":{},"refresh_token":"{REFRESH}"}}"#,
            FORMAT_VERSION + 1
        ),
    )
    .expect("write");
    match FileStore::new(&path).load() {
        Err(
            e @ StoreError::UnsupportedVersion {
                found: 2,
                supported: 1,
                ..
            },
        ) => {
            assert!(shown(&e).contains("upgrade cogref"));
        }
        other => panic!("expected UnsupportedVersion, got {other:?}"),
    }
}

#[test]
fn corrupt_truncated_and_foreign_files_are_corrupt_not_a_guess() {
    let dir = TempDir::new("corrupt");
    let path = dir.file("t.json");
    let store = FileStore::new(&path);
    store.save(&full_set(), None).expect("saved");
    let good = fs::read(&path).expect("read");
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("truncated", good[..good.len() / 2].to_vec()),
        ("garbage", b"\x00\xffnot json at all".to_vec()),
        (
            "foreign",
            format!(r#"{{"refresh_token":"{REFRESH}"}}"#).into_bytes(),
        ),
        (
            "wrong types",
            format!(
                r#"{{"format":"cogref-tokens","version":1,"refresh_token":7,"x":"{REFRESH}"}}"#
            )
            .into_bytes(),
        ),
        ("no version", br#"{"format":"cogref-tokens"}"#.to_vec()),
        ("empty", Vec::new()),
    ];
    for (name, bytes) in cases {
        fs::write(&path, bytes).expect("write");
        match store.load() {
            Err(e @ StoreError::Corrupt { .. }) => {
                assert!(shown(&e).contains("sign in again"), "{name}");
            }
            other => panic!("{name}: expected Corrupt, got {other:?}"),
        }
    }
}

#[test]
fn a_save_against_a_stale_version_is_a_conflict_and_writes_nothing() {
    let dir = TempDir::new("conflict");
    let store = FileStore::new(dir.file("t.json"));
    let v1 = store
        .save(&TokenSet::from_refresh_token("first", None), None)
        .expect("first");
    let v2 = store.save(&full_set(), Some(v1)).expect("second");
    assert_ne!(v1, v2);
    for expected in [None, Some(v1)] {
        match store.save(&TokenSet::from_refresh_token("stale", None), expected) {
            Err(StoreError::Conflict { found, .. }) => assert_eq!(found, Some(v2)),
            other => panic!("expected a conflict, got {other:?}"),
        }
    }
    let kept = store.load().expect("ok").expect("set");
    assert_eq!(kept.version, v2);
    assert_eq!(kept.tokens.refresh_token.expose_secret(), REFRESH);
}

#[test]
fn an_unreadable_path_is_an_io_error_naming_it() {
    let dir = TempDir::new("unreadable");
    let path = dir.file("t.json");
    // A folder where the file should be: unreadable as a file, whoever runs the test.
    fs::create_dir(&path).expect("dir");
    match FileStore::new(&path).load() {
        Err(e @ StoreError::Io { .. }) => assert!(shown(&e).contains("t.json")),
        other => panic!("expected Io, got {other:?}"),
    }
}

#[test]
fn the_refresh_lock_is_exclusive_across_open_stores_until_released() {
    let dir = TempDir::new("lock");
    let a = FileStore::new(dir.file("t.json"));
    let b = FileStore::new(dir.file("t.json"));
    let guard = a.try_lock().expect("ok").expect("free");
    assert!(
        b.try_lock().expect("ok").is_none(),
        "a second holder got the lock"
    );
    drop(guard);
    assert!(b.try_lock().expect("ok").is_some());
}
