//! The file store: round trips, permissions, atomic replacement, and every way a file can be
//! wrong, each with a clear error that shows no token.

use std::fs;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use cogref_core::TokenSet;
mod common;

use cogref_session::secrecy::ExposeSecret;
use cogref_session::{FORMAT_VERSION, FileStore, StoreError, TokenStore};
use common::TempDir;

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
    let mut names = names;
    names.sort();
    // The lock file keeps the highest generation written (a file written afresh starts above
    // it); nothing else stays.
    assert_eq!(names, ["t.json", "t.json.lock"]);
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
fn a_folder_where_the_file_should_be_is_refused_naming_it() {
    let dir = TempDir::new("folder");
    let path = dir.file("t.json");
    fs::create_dir(&path).expect("dir");
    let store = FileStore::new(&path);
    match store.load() {
        Err(e @ StoreError::Unsafe { .. }) => {
            let text = shown(&e);
            assert!(text.contains("t.json") && text.contains("folder"), "{text}");
        }
        other => panic!("expected Unsafe, got {other:?}"),
    }
    assert!(matches!(
        store.save(&full_set(), None),
        Err(StoreError::Unsafe { .. })
    ));
    // A folder where the lock file should be.
    let path = dir.file("u.json");
    fs::create_dir(dir.file("u.json.lock")).expect("dir");
    match FileStore::new(&path).try_lock() {
        Err(e @ (StoreError::Unsafe { .. } | StoreError::Io { .. })) => {
            assert!(shown(&e).contains("u.json.lock"));
        }
        other => panic!("expected a refusal, got {other:?}"),
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

#[cfg(unix)]
#[test]
fn a_dropped_guard_frees_the_lock_at_once_while_another_thread_starts_processes() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
    // A child shares the parent's open files from its fork to its exec: a lock released only
    // by closing the guard's file stays held by the child's copy for that long.
    let dir = TempDir::new("lock-fork");
    let a = FileStore::new(dir.file("t.json"));
    let b = FileStore::new(dir.file("t.json"));
    let stop = Arc::new(AtomicBool::new(false));
    let started = Arc::new(AtomicU32::new(0));
    let spawner = {
        let (stop, started) = (stop.clone(), started.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                // `true` may be missing: a failed spawn forks nothing, and the test says so below.
                if std::process::Command::new("true").status().is_ok() {
                    started.fetch_add(1, Ordering::Relaxed);
                }
            }
        })
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let mut rounds = 0u32;
    let mut held_after_drop = 0u32;
    while started.load(Ordering::Relaxed) < 300 && std::time::Instant::now() < deadline {
        rounds += 1;
        let guard = a
            .try_lock()
            .expect("ok")
            .expect("free: every guard was dropped");
        drop(guard);
        match b.try_lock().expect("ok") {
            Some(guard) => drop(guard),
            None => held_after_drop += 1,
        }
    }
    stop.store(true, Ordering::Relaxed);
    spawner.join().expect("no panic");
    let children = started.load(Ordering::Relaxed);
    assert!(
        children >= 300,
        "only {children} processes started in {rounds} rounds"
    );
    assert_eq!(
        held_after_drop, 0,
        "the lock outlived its dropped guard in {held_after_drop} of {rounds} rounds"
    );
}

/// A set as the store writes it, with generation `generation`.
fn stored_json(refresh: &str, generation: u64) -> String {
    format!(
        r#"{{"format":"cogref-tokens","version":1,"refresh_token":"{refresh}","generation":{generation}}}"#
    )
}

fn names_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .expect("dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[cfg(unix)]
fn expect_unsafe<T: std::fmt::Debug>(result: Result<T, StoreError>, what: &str, naming: &str) {
    match result {
        Err(e @ StoreError::Unsafe { .. }) => {
            let text = shown(&e);
            assert!(text.contains(naming), "{what}: {text}");
        }
        other => panic!("{what}: expected Unsafe, got {other:?}"),
    }
}

#[cfg(unix)]
#[test]
fn a_token_file_that_is_a_symbolic_link_is_refused_and_its_target_left_alone() {
    let dir = TempDir::new("symlink");
    let target = dir.file("elsewhere.json");
    FileStore::new(&target)
        .save(&full_set(), None)
        .expect("target");
    let before = fs::read(&target).expect("target");
    let path = dir.file("t.json");
    std::os::unix::fs::symlink(&target, &path).expect("link");
    let store = FileStore::new(&path);
    expect_unsafe(store.load(), "load", "symbolic link");
    expect_unsafe(
        store.save(&TokenSet::from_refresh_token("planted", None), Some(1)),
        "save",
        "symbolic link",
    );
    assert_eq!(fs::read(&target).expect("target"), before);
    assert!(
        fs::symlink_metadata(&path)
            .expect("link")
            .file_type()
            .is_symlink()
    );
    // A dangling link too: nothing is created at its target.
    let dangling = dir.file("d.json");
    std::os::unix::fs::symlink(dir.file("nowhere.json"), &dangling).expect("link");
    let store = FileStore::new(&dangling);
    expect_unsafe(store.load(), "load dangling", "symbolic link");
    expect_unsafe(
        store.save(&full_set(), None),
        "save dangling",
        "symbolic link",
    );
    assert!(!dir.file("nowhere.json").exists());
}

#[cfg(unix)]
#[test]
fn a_lock_file_that_is_a_symbolic_link_is_refused_and_nothing_is_created_or_locked_through_it() {
    let dir = TempDir::new("locklink");
    fs::create_dir(dir.file("victims")).expect("dir");
    let path = dir.file("t.json");
    let lock = dir.file("t.json.lock");
    let victim = dir.file("victims/created-through-the-link");
    std::os::unix::fs::symlink(&victim, &lock).expect("link");
    expect_unsafe(
        FileStore::new(&path).try_lock(),
        "dangling link",
        "t.json.lock",
    );
    assert!(!victim.exists(), "the lock was created through the link");

    // A link to a file that exists: refused, and that file is not locked.
    fs::remove_file(&lock).expect("unlink");
    let existing = dir.file("victims/existing");
    fs::write(&existing, "keep").expect("write");
    std::os::unix::fs::symlink(&existing, &lock).expect("link");
    expect_unsafe(
        FileStore::new(&path).try_lock(),
        "link to a file",
        "symbolic link",
    );
    let file = fs::File::open(&existing).expect("open");
    file.try_lock().expect("the link's target was left locked");
    assert_eq!(fs::read_to_string(&existing).expect("read"), "keep");
}

#[cfg(unix)]
#[test]
fn a_fifo_where_the_file_or_the_lock_should_be_is_refused_without_blocking() {
    let dir = TempDir::new("fifo");
    for name in ["t.json", "u.json.lock"] {
        let status = std::process::Command::new("mkfifo")
            .arg(dir.file(name))
            .status()
            .expect("mkfifo");
        assert!(status.success());
    }
    let (tx, rx) = std::sync::mpsc::channel();
    let (t, u) = (
        FileStore::new(dir.file("t.json")),
        FileStore::new(dir.file("u.json")),
    );
    std::thread::spawn(move || {
        let _ = tx.send((
            t.load().map(|_| ()),
            t.save(&full_set(), None).map(|_| ()),
            u.try_lock().map(|g| g.is_some()),
        ));
    });
    let (load, save, lock) = rx
        .recv_timeout(Duration::from_secs(10))
        .expect("the store blocked on a FIFO");
    expect_unsafe(load, "load", "FIFO");
    expect_unsafe(save, "save", "FIFO");
    expect_unsafe(lock, "lock", "FIFO");
}

#[test]
fn a_file_larger_than_any_token_set_is_refused_without_being_read_whole() {
    let dir = TempDir::new("huge");
    let path = dir.file("t.json");
    // A valid set followed by 2 MiB of blanks: valid JSON, but no token set is that large.
    let mut bytes = stored_json(REFRESH, 1).into_bytes();
    bytes.resize(bytes.len() + (2 << 20), b' ');
    fs::write(&path, &bytes).expect("write");
    let store = FileStore::new(&path);
    for result in [
        store.load().map(|_| ()),
        store.save(&full_set(), Some(1)).map(|_| ()),
    ] {
        match result {
            Err(e @ StoreError::Corrupt { .. }) => {
                assert!(shown(&e).contains("larger than"), "{e}");
            }
            other => panic!("expected Corrupt, got {other:?}"),
        }
    }
    assert_eq!(fs::metadata(&path).expect("meta").len(), bytes.len() as u64);
}

#[cfg(unix)]
#[test]
fn a_token_file_other_users_can_write_is_refused_and_one_they_can_read_is_made_private() {
    use std::os::unix::fs::PermissionsExt;
    let dir = TempDir::new("perms");
    let path = dir.file("t.json");
    let store = FileStore::new(&path);
    store.save(&full_set(), None).expect("saved");
    for mode in [0o666, 0o620, 0o602] {
        fs::set_permissions(&path, fs::Permissions::from_mode(mode)).expect("chmod");
        expect_unsafe(store.load(), "load", "writable by other users");
        expect_unsafe(
            store.save(&full_set(), Some(1)),
            "save",
            "writable by other users",
        );
    }
    fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).expect("chmod");
    let loaded = store
        .load()
        .expect("readable by others: loads")
        .expect("set");
    assert_eq!(loaded.tokens.refresh_token.expose_secret(), REFRESH);
    let mode = fs::metadata(&path).expect("meta").permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "tightened at once");
}

#[test]
fn a_generation_at_its_largest_value_is_corrupt_on_save_not_a_panic() {
    let dir = TempDir::new("maxgen");
    let path = dir.file("t.json");
    fs::write(&path, stored_json(REFRESH, u64::MAX)).expect("write");
    let store = FileStore::new(&path);
    assert_eq!(store.load().expect("loads").expect("set").version, u64::MAX);
    match store.save(&TokenSet::from_refresh_token("next", None), Some(u64::MAX)) {
        Err(e @ StoreError::Corrupt { .. }) => {
            assert!(shown(&e).contains("generation"), "{e}");
        }
        other => panic!("expected Corrupt, got {other:?}"),
    }
    assert_eq!(
        fs::read_to_string(&path).expect("read"),
        stored_json(REFRESH, u64::MAX),
        "nothing written"
    );
}

/// A temporary file name of this store's pattern: `.{name}.{pid}.{counter}.{nanos}{suffix}`.
fn temp_name(name: &str, suffix: &str) -> String {
    format!(".{name}.4242.7.123456789{suffix}")
}

fn age(path: &Path, by: Duration) {
    let file = fs::File::options().write(true).open(path).expect("open");
    file.set_modified(SystemTime::now() - by).expect("mtime");
}

#[test]
fn a_stale_temporary_file_is_removed_when_the_lock_is_taken_and_other_files_are_left_alone() {
    let dir = TempDir::new("stale");
    let store = FileStore::new(dir.file("t.json"));
    let v1 = store.save(&full_set(), None).expect("saved");
    // A crashed writer's temporary file: a token set that never became the store's.
    let stale = dir.file(&temp_name("t.json", ".locked.tmp"));
    fs::write(&stale, stored_json("CANARY-stale-temp", v1 + 5)).expect("plant");
    // Left by an older cogref (its writers did not lock their temporary files): removed once
    // it is older than any save can take, kept while it could be a live writer's.
    let old_style = dir.file(&temp_name("t.json", ".tmp"));
    fs::write(&old_style, stored_json("CANARY-old-temp", v1 + 5)).expect("plant");
    age(&old_style, Duration::from_secs(3600));
    let young_old_style = dir.file(".t.json.4242.8.123456789.tmp");
    fs::write(&young_old_style, stored_json("CANARY-young", v1 + 5)).expect("plant");
    // Not this store's pattern: never touched.
    let others = [
        temp_name("other.json", ".locked.tmp"),
        ".t.json.notes.tmp".to_owned(),
        ".t.json.1.2.locked.tmp".to_owned(),
        ".t.json.1.2.3.4.locked.tmp".to_owned(),
        "t.json.bak".to_owned(),
    ];
    for name in &others {
        fs::write(dir.file(name), "x").expect("plant");
        age(&dir.file(name), Duration::from_secs(3600));
    }
    let guard = store.try_lock().expect("ok").expect("free");
    drop(guard);
    let mut expected: Vec<String> = others.to_vec();
    expected.extend([
        "t.json".to_owned(),
        "t.json.lock".to_owned(),
        ".t.json.4242.8.123456789.tmp".to_owned(),
    ]);
    expected.sort();
    assert_eq!(names_in(&dir.0), expected);
    let kept = store.load().expect("ok").expect("set");
    assert_eq!(kept.version, v1, "the stale set was not adopted");
}

#[test]
fn a_stale_temporary_file_is_removed_by_the_next_save() {
    let dir = TempDir::new("stalesave");
    let store = FileStore::new(dir.file("t.json"));
    let v1 = store.save(&full_set(), None).expect("saved");
    let stale = dir.file(&temp_name("t.json", ".locked.tmp"));
    fs::write(&stale, stored_json("CANARY-stale-temp", 1)).expect("plant");
    store.save(&full_set(), Some(v1)).expect("saved");
    assert_eq!(names_in(&dir.0), ["t.json", "t.json.lock"]);
}

#[test]
fn a_temporary_file_its_writer_still_holds_is_left_alone() {
    let dir = TempDir::new("inprogress");
    let store = FileStore::new(dir.file("t.json"));
    let v1 = store.save(&full_set(), None).expect("saved");
    let busy = dir.file(&temp_name("t.json", ".locked.tmp"));
    fs::write(&busy, stored_json("CANARY-busy", v1 + 1)).expect("plant");
    age(&busy, Duration::from_secs(3600));
    // The writer (another process, or a thread without the store lock) holds its file's lock.
    let writer = fs::File::open(&busy).expect("open");
    writer.lock().expect("lock");
    drop(store.try_lock().expect("ok").expect("free"));
    store.save(&full_set(), Some(v1)).expect("saved");
    assert!(busy.exists(), "a live writer's file was removed");
    // A writer's file is empty for an instant after its creation, before it locks it.
    drop(writer);
    fs::remove_file(&busy).expect("rm");
    fs::write(&busy, "").expect("plant");
    drop(store.try_lock().expect("ok").expect("free"));
    assert!(busy.exists(), "a writer's new, empty file was removed");
}

#[test]
fn a_complete_temporary_file_of_the_next_generation_is_recovered_when_the_lock_is_taken() {
    // A writer rotated the refresh token, wrote the new set and crashed before the rename:
    // that set is the only copy of the new refresh token, so it is put in place, not removed.
    let dir = TempDir::new("recover");
    let store = FileStore::new(dir.file("t.json"));
    let v1 = store
        .save(&TokenSet::from_refresh_token("old-rotated-out", None), None)
        .expect("saved");
    let temp = dir.file(&temp_name("t.json", ".locked.tmp"));
    fs::write(&temp, stored_json(REFRESH, v1 + 1)).expect("plant");
    #[cfg(unix)]
    {
        // As the store's writers create it.
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(&temp, fs::Permissions::from_mode(0o600)).expect("chmod");
    }
    // Truncated (the crash came mid-write): not recovered, removed.
    let torn = dir.file(".t.json.4242.9.123456789.locked.tmp");
    let json = stored_json("CANARY-torn", v1 + 1);
    fs::write(&torn, &json[..json.len() / 2]).expect("plant");
    drop(store.try_lock().expect("ok").expect("free"));
    let now = store.load().expect("ok").expect("set");
    assert_eq!(now.version, v1 + 1);
    assert_eq!(now.tokens.refresh_token.expose_secret(), REFRESH);
    assert_eq!(names_in(&dir.0), ["t.json", "t.json.lock"]);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(store.path())
            .expect("meta")
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600);
    }
}

#[cfg(unix)]
#[test]
fn a_temporary_file_other_users_could_have_written_is_never_recovered() {
    // Whoever can create files in the folder must not be able to plant the next generation.
    use std::os::unix::fs::PermissionsExt;
    let dir = TempDir::new("planted");
    let store = FileStore::new(dir.file("t.json"));
    let v1 = store.save(&full_set(), None).expect("saved");
    let planted = dir.file(&temp_name("t.json", ".locked.tmp"));
    fs::write(&planted, stored_json("CANARY-planted", v1 + 1)).expect("plant");
    fs::set_permissions(&planted, fs::Permissions::from_mode(0o644)).expect("chmod");
    drop(store.try_lock().expect("ok").expect("free"));
    let kept = store.load().expect("ok").expect("set");
    assert_eq!(kept.version, v1);
    assert_eq!(kept.tokens.refresh_token.expose_secret(), REFRESH);
    assert_eq!(names_in(&dir.0), ["t.json", "t.json.lock"]);
}

#[test]
fn the_change_stamp_moves_with_every_save_from_any_handle_and_a_deletion_but_not_with_reads() {
    let dir = TempDir::new("stamp");
    let path = dir.file("tokens.json");
    let mine = FileStore::new(&path);
    let theirs = FileStore::new(&path);
    // A `stat` is reused for at most this long; then the file is looked at again.
    let settle = || std::thread::sleep(FileStore::STAMP_MAX_AGE);
    let absent = mine.change_stamp().expect("an absent file has a stamp");
    let v1 = theirs.save(&full_set(), None).expect("first save");
    settle();
    let first = mine.change_stamp().expect("stamp");
    assert_ne!(first, absent);
    mine.load().expect("read");
    let _lock = mine.try_lock().expect("ok").expect("free");
    settle();
    assert_eq!(
        mine.change_stamp(),
        Some(first),
        "reads and locks change nothing"
    );
    // The same bytes again (same size) right away: still a new file.
    theirs.save(&full_set(), Some(v1)).expect("second save");
    settle();
    let second = mine.change_stamp().expect("stamp");
    assert_ne!(second, first);
    fs::remove_file(&path).expect("removed");
    settle();
    assert_eq!(mine.change_stamp(), Some(absent));
}

#[test]
fn a_stat_is_reused_for_at_most_a_millisecond() {
    let dir = TempDir::new("stamp-age");
    let path = dir.file("tokens.json");
    let mine = FileStore::new(&path);
    let before = mine.change_stamp();
    FileStore::new(&path)
        .save(&full_set(), None)
        .expect("saved");
    let started = std::time::Instant::now();
    while mine.change_stamp() == before {
        assert!(
            started.elapsed() <= Duration::from_secs(1),
            "the save was never seen"
        );
    }
    // Seen within the reuse time, plus what one `stat` takes on a loaded machine.
    assert!(
        started.elapsed() <= FileStore::STAMP_MAX_AGE + Duration::from_millis(20),
        "{:?}",
        started.elapsed()
    );
}
