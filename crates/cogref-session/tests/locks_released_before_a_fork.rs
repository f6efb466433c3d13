//! Hostile review of commit ff10946: every advisory lock a `FileStore` takes is released by an
//! explicit unlock, so a child process started by another thread (which shares the open file
//! description from its fork to its exec) never keeps it; and the locks still exclude while held.

use std::fs::{self, File, OpenOptions};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use cogref_core::TokenSet;
mod common;

use cogref_session::{FileStore, StoreError, TokenStore};
use common::TempDir;

fn set(refresh: &str) -> TokenSet {
    TokenSet::from_refresh_token(refresh, None)
}

/// Threads that start processes without pause until dropped. Each child holds a copy of every
/// open file description of this process from its fork to its exec.
struct Spawners {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl Spawners {
    fn start(n: usize) -> Self {
        use std::os::unix::fs::MetadataExt;
        let me = fs::metadata("/proc/self").expect("/proc/self");
        let (uid, gid) = (me.uid(), me.gid());
        let stop = Arc::new(AtomicBool::new(false));
        let threads = (0..n)
            .map(|_| {
                let stop = stop.clone();
                std::thread::spawn(move || {
                    use std::os::unix::process::CommandExt;
                    while !stop.load(Ordering::Relaxed) {
                        let mut command = std::process::Command::new("true");
                        // Same ids as ours: forces the fork path (no posix_spawn), whose
                        // child holds every open file description until its exec.
                        command.uid(uid).gid(gid);
                        let _ = command.status();
                    }
                })
            })
            .collect();
        // Let the first children start.
        std::thread::sleep(Duration::from_millis(20));
        Self { stop, threads }
    }
}

impl Drop for Spawners {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// Whether a handle of our own (a new open file description) gets `path`'s lock at once.
fn free_at_once(path: &Path) -> bool {
    let file = File::open(path).expect("open");
    match file.try_lock() {
        Ok(()) => {
            file.unlock().expect("unlock");
            true
        }
        Err(std::fs::TryLockError::WouldBlock) => false,
        Err(std::fs::TryLockError::Error(e)) => panic!("try_lock: {e}"),
    }
}

fn lock_path(path: &Path) -> PathBuf {
    let mut p = path.as_os_str().to_owned();
    p.push(".lock");
    PathBuf::from(p)
}

fn temps(dir: &Path) -> Vec<PathBuf> {
    fs::read_dir(dir)
        .expect("list")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.to_string_lossy().ends_with(".tmp"))
        .collect()
}

fn chattr(flag: &str, path: &Path) -> bool {
    std::process::Command::new("chattr")
        .arg(flag)
        .arg(path)
        .status()
        .is_ok_and(|s| s.success())
}

// ---------------------------------------------------------------------------------------------
// Promise 1: a guard dropped or given back frees the refresh lock at once.
// ---------------------------------------------------------------------------------------------

#[test]
fn a_guard_dropped_or_unlocked_on_any_thread_frees_the_lock_at_once_while_processes_start() {
    let dir = TempDir::new("r27-guard");
    let path = dir.file("t.json");
    let lock = lock_path(&path);
    let _spawners = Spawners::start(3);
    for round in 0..200 {
        let a = FileStore::new(&path);
        let b = FileStore::new(&path);
        let guard = a.try_lock().expect("ok").expect("free");
        // Held: another store and a handle of our own are refused.
        assert!(b.try_lock().expect("ok").is_none(), "round {round}");
        assert!(!free_at_once(&lock), "round {round}: not held");
        match round % 3 {
            0 => drop(guard),
            1 => a.unlock(guard),
            // Dropped on another thread.
            _ => std::thread::spawn(move || drop(guard))
                .join()
                .expect("joined"),
        }
        assert!(free_at_once(&lock), "round {round}: still held");
        let again = b.try_lock().expect("ok");
        assert!(again.is_some(), "round {round}: another store waits");
    }
}

#[test]
fn a_store_that_takes_and_gives_back_the_lock_many_times_never_leaves_it_held() {
    let dir = TempDir::new("r27-guard-many");
    let path = dir.file("t.json");
    let _spawners = Spawners::start(2);
    let stores: Vec<FileStore> = (0..4).map(|_| FileStore::new(&path)).collect();
    for round in 0..400 {
        let store = &stores[round % stores.len()];
        let guard = store
            .try_lock()
            .expect("ok")
            .unwrap_or_else(|| panic!("round {round}: the lock given back is still held"));
        store.unlock(guard);
    }
}

// ---------------------------------------------------------------------------------------------
// Promise 2: after a save returns, Ok or Err, no lock it took is held.
// ---------------------------------------------------------------------------------------------

#[test]
fn after_a_save_returns_ok_or_conflict_the_token_file_is_free_at_once() {
    let dir = TempDir::new("r27-save");
    let path = dir.file("t.json");
    let _spawners = Spawners::start(3);
    let store = FileStore::new(&path);
    let mut version = store.save(&set("r0"), None).expect("first");
    assert!(free_at_once(&path), "after the first save");
    for round in 0..150 {
        // A conflict: the generation expected is not the one stored.
        let e = store
            .save(&set("stale"), Some(version.wrapping_sub(1)))
            .expect_err("conflict");
        assert!(matches!(e, StoreError::Conflict { .. }), "{e}");
        assert!(free_at_once(&path), "round {round}: held after a conflict");
        // A first save over an existing file: a conflict too.
        let e = FileStore::new(&path)
            .save(&set("first"), None)
            .expect_err("conflict");
        assert!(matches!(e, StoreError::Conflict { .. }), "{e}");
        assert!(
            free_at_once(&path),
            "round {round}: held after a None conflict"
        );
        version = store.save(&set("r"), Some(version)).expect("saved");
        assert!(free_at_once(&path), "round {round}: held after a save");
    }
    assert!(temps(&dir).is_empty(), "{:?}", temps(&dir));
}

/// `savers` stores saving at once, each expecting `expected`: exactly one wins, the others see
/// a conflict. The winner's version.
fn race_savers(
    path: &std::path::Path,
    savers: usize,
    expected: Option<u64>,
    round: usize,
) -> Vec<u64> {
    let barrier = Arc::new(Barrier::new(savers));
    let savers: Vec<_> = (0..savers)
        .map(|i| {
            let (path, barrier) = (path.to_owned(), barrier.clone());
            std::thread::spawn(move || {
                let store = FileStore::new(&path);
                barrier.wait();
                store.save(&set(&format!("r{round}-{i}")), expected)
            })
        })
        .collect();
    let results: Vec<_> = savers
        .into_iter()
        .map(|t| t.join().expect("joined"))
        .collect();
    let won: Vec<u64> = results
        .iter()
        .filter_map(|r| r.as_ref().ok())
        .copied()
        .collect();
    assert_eq!(won.len(), 1, "round {round}: {results:?}");
    for r in &results {
        if let Err(e) = r {
            assert!(
                matches!(e, StoreError::Conflict { .. }),
                "round {round}: {e}"
            );
        }
    }
    won
}

#[test]
fn two_first_saves_racing_leave_one_winner_and_no_lock_held() {
    let _spawners = Spawners::start(2);
    for round in 0..120 {
        let dir = TempDir::new("r27-first");
        let path = dir.file("t.json");
        let won = race_savers(&path, 2, None, round);
        assert!(free_at_once(&path), "round {round}: held after the race");
        let loaded = FileStore::new(&path).load().expect("ok").expect("stored");
        assert_eq!(loaded.version, won[0], "round {round}");
        assert!(temps(&dir).is_empty(), "round {round}: {:?}", temps(&dir));
    }
}

#[test]
fn a_save_failing_on_its_mark_or_its_write_leaves_no_lock_held() {
    let dir = TempDir::new("r27-failed");
    let path = dir.file("t.json");
    let lock = lock_path(&path);
    let _spawners = Spawners::start(2);
    let store = FileStore::new(&path);
    let version = store.save(&set("r0"), None).expect("first");
    // The mark cannot be written: an immutable lock file.
    if !chattr("+i", &lock) {
        eprintln!("chattr unavailable: the failed mark is not tried");
        return;
    }
    let failed = store.save(&set("r1"), Some(version));
    let held = !free_at_once(&path);
    let _ = chattr("-i", &lock);
    let e = failed.expect_err("a mark that cannot be written fails the save");
    assert!(!held, "the token file is still locked after {e}");
    assert!(temps(&dir).is_empty(), "{:?}", temps(&dir));
    // The write cannot be made: an immutable folder.
    if chattr("+i", &dir) {
        let failed = store.save(&set("r2"), Some(version));
        let held = !free_at_once(&path);
        let _ = chattr("-i", &dir);
        let e = failed.expect_err("no temporary file can be created");
        assert!(!held, "the token file is still locked after {e}");
    }
    // And the store goes on.
    store.save(&set("r3"), Some(version)).expect("saved");
    assert!(free_at_once(&path));
}

// ---------------------------------------------------------------------------------------------
// Promise 3: still exclusive while held.
// ---------------------------------------------------------------------------------------------

#[test]
fn of_savers_expecting_the_same_generation_exactly_one_wins_while_processes_start() {
    let dir = TempDir::new("r27-cas");
    let path = dir.file("t.json");
    let _spawners = Spawners::start(2);
    let mut version = FileStore::new(&path).save(&set("r0"), None).expect("first");
    for round in 0..150 {
        let won = race_savers(&path, 3, Some(version), round);
        version = won[0];
        let loaded = FileStore::new(&path).load().expect("ok").expect("stored");
        assert_eq!(loaded.version, version, "round {round}");
    }
}

#[test]
fn the_token_file_lock_excludes_a_save_while_another_handle_holds_it() {
    // A handle of our own holds the token file's lock (as a writer between its read and its
    // rename does): a save waits for it, and goes on once it is released.
    let dir = TempDir::new("r27-held");
    let path = dir.file("t.json");
    let _spawners = Spawners::start(2);
    let store = FileStore::new(&path);
    let version = store.save(&set("r0"), None).expect("first");
    let holder = File::open(&path).expect("open");
    holder.lock().expect("lock");
    let saver = {
        let path = path.clone();
        std::thread::spawn(move || {
            let started = std::time::Instant::now();
            let r = FileStore::new(&path).save(&set("r1"), Some(version));
            (r, started.elapsed())
        })
    };
    std::thread::sleep(Duration::from_millis(300));
    assert!(!saver.is_finished(), "a save went through a held lock");
    holder.unlock().expect("unlock");
    let (r, waited) = saver.join().expect("joined");
    r.expect("saved once released");
    assert!(waited >= Duration::from_millis(250), "{waited:?}");
}

// ---------------------------------------------------------------------------------------------
// Promise 4: a temporary file whose writer is alive is never swept; one the sweep looked at is
// left unlocked.
// ---------------------------------------------------------------------------------------------

fn temp_name(dir: &Path, n: u32) -> PathBuf {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_nanos();
    dir.join(format!(
        ".t.json.{}.{}{n}.{nanos}.locked.tmp",
        std::process::id(),
        900_000
    ))
}

#[test]
fn a_temporary_file_whose_writer_holds_it_is_never_swept_and_the_sweep_frees_what_it_looked_at() {
    let dir = TempDir::new("r27-sweep");
    let path = dir.file("t.json");
    let _spawners = Spawners::start(2);
    let store = FileStore::new(&path);
    let mut version = store.save(&set("r0"), None).expect("first");
    for round in 0..60 {
        // A writer alive: the file written (non-empty, so stale were it not locked) and locked.
        let alive = temp_name(&dir, round * 2);
        let writer = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&alive)
            .expect("temp");
        writer.lock().expect("lock");
        fs::write(&alive, "{ half written").expect("written");
        // A writer that has just created its file and not locked it yet: empty and new, so
        // not stale; the sweep must leave it unlocked for its writer.
        let fresh = temp_name(&dir, round * 2 + 1);
        File::create(&fresh).expect("fresh");
        // Sweeps: the refresh lock (with recovery) and a save.
        let guard = store.try_lock().expect("ok").expect("free");
        assert!(
            alive.exists(),
            "round {round}: a live writer's file was swept"
        );
        assert!(fresh.exists(), "round {round}: a new empty file was swept");
        assert!(
            free_at_once(&fresh),
            "round {round}: the sweep kept the lock"
        );
        version = store.save(&set("r"), Some(version)).expect("saved");
        drop(guard);
        assert!(
            alive.exists(),
            "round {round}: a live writer's file was swept"
        );
        assert!(fresh.exists(), "round {round}: a new empty file was swept");
        assert!(
            free_at_once(&fresh),
            "round {round}: the sweep kept the lock"
        );
        // Once its writer is gone, the half-written file is stale and goes (unlocked first: a
        // close alone would leave the lock to a child forked meanwhile).
        writer.unlock().expect("unlock");
        drop(writer);
        drop(store.try_lock().expect("ok").expect("free"));
        assert!(
            !alive.exists(),
            "round {round}: a dead writer's file was kept"
        );
        fs::remove_file(&fresh).expect("removed");
    }
}
