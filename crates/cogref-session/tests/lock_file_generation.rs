//! Hostile review of the generation mark kept in the lock file (`<path>.lock`): a token file
//! deleted and written afresh, by any process, never looks older than the old one.

use std::fs;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use cogref_core::TokenSet;
mod common;

use cogref_session::{FileStore, StoreError, TokenStore};
use common::TempDir;

fn set(refresh: &str) -> TokenSet {
    TokenSet::from_refresh_token(refresh, None)
}

fn stored_json(refresh: &str, generation: u64) -> String {
    format!(
        r#"{{"format":"cogref-tokens","version":1,"refresh_token":"{refresh}","generation":{generation}}}"#
    )
}

fn now_us() -> u64 {
    u64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("clock")
            .as_micros(),
    )
    .expect("fits")
}

/// A generation written by a host whose clock was an hour ahead of ours.
fn ahead() -> u64 {
    now_us() + 3_600_000_000
}

fn plant(path: &Path, generation: u64) {
    fs::write(path, stored_json("r-planted", generation)).expect("planted");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(path, fs::Permissions::from_mode(0o600)).expect("private");
    }
}

fn mark(lock: &Path) -> Option<u64> {
    fs::read_to_string(lock).ok()?.trim().parse().ok()
}

// Decided after this review: a lock file that holds something other than a generation (not
// written by cogref, which leaves it empty or writes a number) is a clear error, never read as
// "no mark": the save fails with nothing written.
#[test]
fn a_lock_file_holding_something_other_than_a_generation_is_an_error_and_nothing_is_written() {
    for garbage in ["not a number\n", "garbage garbage garbage garbage\n"] {
        let dir = TempDir::new("r13b-garbage");
        let path = dir.file("t.json");
        let lock = dir.file("t.json.lock");
        fs::write(&lock, garbage).expect("garbage");
        let error = FileStore::new(&path)
            .save(&set("r1"), None)
            .expect_err("refused");
        assert!(
            error.to_string().contains("t.json.lock"),
            "the error names the lock file: {error}"
        );
        assert!(!path.exists(), "nothing was written");
        assert_eq!(fs::read_to_string(&lock).expect("lock"), garbage);
    }
}

#[test]
fn a_longer_old_number_followed_by_a_shorter_new_one_leaves_no_leftover_digits() {
    // An old mark, longer than the fixed width (leading zeros), still a valid number (1).
    let dir = TempDir::new("r13b-leftover");
    let path = dir.file("t.json");
    let lock = dir.file("t.json.lock");
    fs::write(&lock, "0000000000000000000000001\n").expect("old mark");
    assert_eq!(mark(&lock), Some(1));
    let version = FileStore::new(&path).save(&set("r1"), None).expect("saved");
    assert_eq!(
        mark(&lock),
        Some(version),
        "{:?}",
        fs::read_to_string(&lock)
    );
}

#[test]
fn a_mark_kept_after_a_longer_one_still_protects_a_file_written_afresh() {
    // The consequence leftover bytes had: the mark lost, and a file written afresh after a
    // deletion below the old one. An old mark longer than the new one, then a deletion.
    let dir = TempDir::new("r13b-leftover-effect");
    let path = dir.file("t.json");
    let lock = dir.file("t.json.lock");
    fs::write(&lock, "0000000000000000000000001\n").expect("old mark");
    let old = ahead();
    plant(&path, old);
    let written = FileStore::new(&path)
        .save(&set("r1"), Some(old))
        .expect("saved");
    assert_eq!(written, old + 1);
    fs::remove_file(&path).expect("deleted");
    let afresh = FileStore::new(&path)
        .save(&set("r2"), None)
        .expect("afresh");
    assert!(afresh > written, "{afresh} is not above {written}");
}

#[test]
fn a_mark_above_the_largest_generation_is_an_error_not_ignored() {
    // 20 digits, above u64::MAX: it fails to parse and must not read as "no mark".
    let dir = TempDir::new("r13b-huge");
    let path = dir.file("t.json");
    let lock = dir.file("t.json.lock");
    fs::write(&lock, "99999999999999999999\n").expect("huge");
    let result = FileStore::new(&path).save(&set("r1"), None);
    assert!(
        result.is_err(),
        "a mark above u64::MAX was ignored: {result:?}"
    );
    assert!(!path.exists(), "a token file was written");
}

#[test]
fn a_mark_at_u64_max_is_an_error_not_a_panic_or_a_wrap() {
    let dir = TempDir::new("r13b-max");
    let path = dir.file("t.json");
    let lock = dir.file("t.json.lock");
    fs::write(&lock, format!("{}\n", u64::MAX)).expect("max");
    let result = std::panic::catch_unwind(|| FileStore::new(&path).save(&set("r1"), None))
        .expect("no panic");
    assert!(
        matches!(
            result,
            Err(StoreError::Corrupt { .. }) | Err(StoreError::Other(_))
        ),
        "{result:?}"
    );
    assert!(!path.exists(), "a token file was written");
    assert_eq!(mark(&lock), Some(u64::MAX), "the mark went down");
}

#[test]
fn a_mark_one_below_u64_max_gives_the_largest_generation_then_an_error_not_a_wrap() {
    let dir = TempDir::new("r13b-max-1");
    let path = dir.file("t.json");
    let lock = dir.file("t.json.lock");
    fs::write(&lock, format!("{}\n", u64::MAX - 1)).expect("max-1");
    let store = FileStore::new(&path);
    let version = store.save(&set("r1"), None).expect("saved");
    assert_eq!(version, u64::MAX);
    assert_eq!(mark(&lock), Some(u64::MAX));
    let next =
        std::panic::catch_unwind(|| store.save(&set("r2"), Some(u64::MAX))).expect("no panic");
    assert!(next.is_err(), "{next:?}");
}

#[test]
fn the_mark_outlives_a_deletion_so_another_store_writes_afresh_above_the_old_file() {
    let dir = TempDir::new("r13b-afresh");
    let path = dir.file("t.json");
    let old = ahead();
    plant(&path, old);
    let written = FileStore::new(&path)
        .save(&set("r1"), Some(old))
        .expect("saved");
    fs::remove_file(&path).expect("deleted");
    let afresh = FileStore::new(&path)
        .save(&set("r2"), None)
        .expect("afresh");
    assert!(afresh > written, "{afresh} is not above {written}");
}

#[cfg(unix)]
#[test]
fn a_symlinked_lock_file_is_refused_and_never_followed() {
    let dir = TempDir::new("r13b-symlink");
    let elsewhere = TempDir::new("r13b-symlink-target");
    let path = dir.file("t.json");
    let lock = dir.file("t.json.lock");
    let target = elsewhere.file("target");
    fs::write(&target, "5\n").expect("target");
    std::os::unix::fs::symlink(&target, &lock).expect("link");
    // No token file: the mark must be read, and the link is refused.
    let result = FileStore::new(&path).save(&set("r1"), None);
    assert!(result.is_err(), "{result:?}");
    assert!(!path.exists());
    // A token file: the save may succeed, but nothing goes through the link.
    let old = ahead();
    plant(&path, old);
    let _ = FileStore::new(&path).save(&set("r2"), Some(old));
    assert_eq!(fs::read_to_string(&target).expect("target"), "5\n");
    assert!(
        fs::symlink_metadata(&lock)
            .expect("lock")
            .file_type()
            .is_symlink()
    );
    // A dangling link: nothing is created through it.
    fs::remove_file(&target).expect("removed");
    let current = FileStore::new(&path).load().expect("ok").map(|v| v.version);
    let _ = FileStore::new(&path).save(&set("r3"), current);
    assert!(!target.exists(), "the dangling link was followed");
}

#[cfg(unix)]
#[test]
fn a_read_only_lock_file_never_lets_a_file_written_afresh_fall_below_the_old_one() {
    // As root, permissions do not stop a write; the immutable attribute does.
    let dir = TempDir::new("r13b-readonly");
    let path = dir.file("t.json");
    let lock = dir.file("t.json.lock");
    fs::write(&lock, "").expect("lock");
    let chattr = |flag: &str| {
        std::process::Command::new("chattr")
            .arg(flag)
            .arg(&lock)
            .status()
            .is_ok_and(|s| s.success())
    };
    let old = ahead();
    plant(&path, old);
    if !chattr("+i") {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(&lock, fs::Permissions::from_mode(0o400)).expect("read-only");
    }
    let saved = FileStore::new(&path).save(&set("r1"), Some(old));
    let _ = chattr("-i");
    let written = match saved {
        // Refusing the save is fine: the promise holds.
        Err(_) => return,
        Ok(v) => v,
    };
    fs::remove_file(&path).expect("deleted");
    let afresh = FileStore::new(&path).save(&set("r2"), None);
    if let Ok(afresh) = afresh {
        assert!(afresh > written, "{afresh} is not above {written}");
    }
}

#[test]
fn the_lock_held_by_another_store_while_saving_neither_blocks_nor_loses_the_mark() {
    let dir = TempDir::new("r13b-held");
    let path = dir.file("t.json");
    let lock = dir.file("t.json.lock");
    let holder = FileStore::new(&path);
    let guard = holder.try_lock().expect("ok").expect("locked");
    let saver = FileStore::new(&path);
    let first = saver.save(&set("r1"), None).expect("saved");
    assert_eq!(mark(&lock), Some(first));
    let second = saver.save(&set("r2"), Some(first)).expect("saved");
    assert_eq!(mark(&lock), Some(second));
    assert!(saver.try_lock().expect("ok").is_none(), "the lock was lost");
    drop(guard);
    assert!(saver.try_lock().expect("ok").is_some());
}

#[test]
#[ignore = "open: a writer that locked the token file before it was deleted renames its new file over one written afresh meanwhile, with the same generation (a race with an outside deletion, older than the mark; see the issue-13 note)"]
fn concurrent_savers_with_deletions_never_repeat_or_fall_below_a_generation() {
    let dir = TempDir::new("r13b-concurrent");
    let path = dir.file("t.json");
    // Every generation from a clock ahead of ours: only the mark keeps a fresh file above.
    let old = ahead();
    plant(&path, old);
    // (version, the highest version completed before this save started)
    let log: Arc<Mutex<Vec<(u64, u64)>>> = Arc::default();
    let done: Arc<Mutex<u64>> = Arc::new(Mutex::new(old));
    let stop = Arc::new(AtomicBool::new(false));
    let deadline = Instant::now() + Duration::from_secs(4);
    let mut handles = Vec::new();
    for i in 0..3 {
        let (path, log, done) = (path.clone(), log.clone(), done.clone());
        handles.push(std::thread::spawn(move || {
            let store = FileStore::new(&path);
            let mut n = 0;
            while Instant::now() < deadline {
                n += 1;
                let current = match store.load() {
                    Ok(v) => v.map(|v| v.version),
                    Err(_) => continue,
                };
                let before = *done.lock().expect("lock");
                if let Ok(v) = store.save(&set(&format!("r{i}-{n}")), current) {
                    let mut d = done.lock().expect("lock");
                    *d = (*d).max(v);
                    log.lock().expect("log").push((v, before));
                }
            }
        }));
    }
    {
        let (path, stop) = (path.clone(), stop.clone());
        handles.push(std::thread::spawn(move || {
            while Instant::now() < deadline && !stop.load(Ordering::Relaxed) {
                let _ = fs::remove_file(&path);
                std::thread::sleep(Duration::from_micros(300));
            }
        }));
    }
    for h in handles {
        h.join().expect("no panic");
    }
    let log = log.lock().expect("log");
    assert!(log.len() > 10, "too few saves: {}", log.len());
    let mut versions: Vec<u64> = log.iter().map(|(v, _)| *v).collect();
    versions.sort_unstable();
    let total = versions.len();
    versions.dedup();
    assert_eq!(versions.len(), total, "a generation was repeated");
    for (v, before) in log.iter() {
        assert!(
            v > before,
            "{v} is not above {before}, completed before it started"
        );
    }
}
