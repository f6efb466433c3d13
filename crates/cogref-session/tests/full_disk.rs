//! The file store on a real full disk. A save that cannot be written is reported, leaves the
//! stored set byte for byte as it was (same generation, same tokens, the lock file's mark
//! untouched) and no temporary file behind, and the next save once space is back works; a
//! writer killed mid-write (a crash) leaves a partial temporary file that the next lock sweeps
//! away, never puts in place. Through the blocking manager, a rotation that cannot be saved is
//! `RotatedTokenNotSaved`, never "sign in again", and the next refresh stores its set. No
//! error, `Display` or `Debug` shows a token.
//!
//! The disk is made full without root or `unsafe`: the test binary runs itself as a child
//! process under `ulimit -S -f N` (RLIMIT_FSIZE; dash counts 512-byte blocks), so that no file
//! it writes can grow past `N` blocks. With SIGXFSZ ignored, a write past the limit fails with
//! `EFBIG` ("File too large", errno 27) after a short write, as a real `ENOSPC` does; with the
//! signal's default action, the writer dies mid-write, as in a crash. Only the soft limit is
//! set, so the parent can give the space back to a running child with `prlimit`.
#![cfg(target_os = "linux")]

mod common;

use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, UNIX_EPOCH};

use cogref_core::TokenSet;
use cogref_session::secrecy::ExposeSecret;
use cogref_session::{BlockingTokenManager, FileStore, SessionError, StoreError, TokenStore};
use common::*;

/// Which part a child plays (unset: this is not a child).
const ROLE: &str = "COGREF_FULL_DISK_ROLE";
/// The token file a child works on.
const STORE: &str = "COGREF_FULL_DISK_STORE";
/// What a child prints before each `key=value` line of its report.
const MARK: &str = "FULLDISK ";

/// `errno` for a write past RLIMIT_FSIZE.
const EFBIG: i32 = 27;
/// The signal a write past RLIMIT_FSIZE raises.
const SIGXFSZ: i32 = 25;

const OLD_REFRESH: &str = "CANARY-fd-old-refresh.0123456789.SECRET";
const OLD_ACCESS: &str = "CANARY-fd-old-access.0123456789.SECRET";
const NEW_REFRESH: &str = "CANARY-fd-new-refresh.0123456789.SECRET";
const NEW_ACCESS: &str = "CANARY-fd-new-access.0123456789.SECRET";

/// An ID token far larger than the limit the children run under (a Cognito ID token full of
/// custom attributes), so that the save's write stops partway.
fn big_id_token() -> String {
    format!("CANARY-fd-id.{}.SECRET", "0123456789abcdef".repeat(512))
}

/// A set small enough to fit in one 512-byte block.
fn small_set() -> TokenSet {
    TokenSet::new(
        OLD_REFRESH.into(),
        Some(OLD_ACCESS.into()),
        None,
        None,
        Some(UNIX_EPOCH + Duration::from_secs(T0 + 3600)),
        Some(Duration::from_secs(3600)),
    )
}

/// The next step of the lineage, with a large ID token.
fn big_set() -> TokenSet {
    TokenSet::new(
        NEW_REFRESH.into(),
        Some(NEW_ACCESS.into()),
        Some(big_id_token().into()),
        None,
        Some(UNIX_EPOCH + Duration::from_secs(T0 + 7200)),
        Some(Duration::from_secs(3600)),
    )
}

/// The folder's entries, sorted.
fn names_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .expect("dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// The generation the lock file records (`None`: no lock file).
fn lock_mark(store: &Path) -> Option<u64> {
    let mut lock = store.as_os_str().to_owned();
    lock.push(".lock");
    let text = fs::read_to_string(PathBuf::from(lock)).ok()?;
    Some(
        text.trim()
            .parse()
            .expect("the lock file holds a generation"),
    )
}

fn stored(store: &FileStore) -> (String, u64) {
    let stored = store
        .load()
        .expect("the token file loads")
        .expect("a set is stored");
    (
        stored.tokens.refresh_token.expose_secret().to_owned(),
        stored.version,
    )
}

/// The lock file still records a generation, at least `version` (the file's): "a mark left
/// above every file is harmless", one below it or garbage is not.
fn mark_intact(store: &Path, version: u64) {
    let mark = lock_mark(store).expect("the lock file is there");
    assert!(
        mark >= version,
        "the lock file's mark {mark} fell below {version}"
    );
}

/// Panics if `text` shows any of the tokens of this file.
fn no_canary(what: &str, text: &str) {
    assert!(!text.contains("CANARY"), "a token leaked in {what}: {text}");
}

/// What a child reported: its `key=value` lines (the last value of each key wins).
fn report(stdout: &str) -> std::collections::HashMap<String, String> {
    stdout
        .lines()
        .filter_map(|l| l.find(MARK).map(|at| &l[at + MARK.len()..]))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

/// The child's report line (one line: newlines in `value` are escaped).
#[allow(clippy::print_stdout)]
fn say(key: &str, value: impl std::fmt::Display) {
    let value = value.to_string().replace('\n', "\\n");
    println!("\n{MARK}{key}={value}");
}

/// This test binary running `full_disk_child` as `role`, on the token file `store`, unable to
/// grow any file past `blocks` × 512 bytes; with `ignore_xfsz`, a write past it fails
/// (`EFBIG`), without, the child is killed by SIGXFSZ mid-write.
fn child(role: &str, store: &Path, blocks: u64, ignore_xfsz: bool) -> Command {
    let trap = if ignore_xfsz { "trap '' XFSZ; " } else { "" };
    let mut command = Command::new("/bin/sh");
    command
        .arg("-c")
        .arg(format!(
            "{trap}ulimit -S -f {blocks} || exit 99; \
             exec \"$0\" --exact full_disk_child --nocapture --test-threads=1"
        ))
        .arg(std::env::current_exe().expect("test binary"))
        .env(ROLE, role)
        .env(STORE, store)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command
}

fn run(mut command: Command) -> (Output, std::collections::HashMap<String, String>) {
    let output = command.output().expect("the child runs");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr);
    no_canary("the child's output", &stdout);
    no_canary("the child's stderr", &stderr);
    let report = report(&stdout);
    (output, report)
}

/// The child side of every test here: one role, reported on stdout, never a token.
#[test]
fn full_disk_child() {
    let Ok(role) = std::env::var(ROLE) else {
        return;
    };
    let path = PathBuf::from(std::env::var(STORE).expect("store path"));
    match role.as_str() {
        "save-next" => {
            let store = FileStore::new(&path);
            let expected = store.load().expect("loads").map(|v| v.version);
            report_save(store.save(&big_set(), expected));
        }
        "save-first" => report_save(FileStore::new(&path).save(&big_set(), None)),
        "manager" => manager_child(&path),
        other => panic!("unknown role {other}"),
    }
}

fn report_save(result: Result<u64, StoreError>) {
    match result {
        Ok(version) => say("saved", version),
        Err(e) => {
            say("error", &e);
            say("debug", format!("{e:?}"));
            if let StoreError::Io { source, .. } = &e {
                say("errno", source.raw_os_error().unwrap_or(-1));
            }
        }
    }
}

// --- The store alone ----------------------------------------------------------------------

/// The store holding `small_set()`, written without any limit; its bytes and generation.
fn stored_small(dir: &TempDir) -> (FileStore, Vec<u8>, u64) {
    let store = FileStore::new(dir.file("t.json"));
    let version = store.save(&small_set(), None).expect("first save");
    let bytes = fs::read(store.path()).expect("read");
    assert!(
        bytes.len() < 512,
        "the small set must fit in one block: {} bytes",
        bytes.len()
    );
    (store, bytes, version)
}

/// The rule, for a disk that fills after `blocks` × 512 bytes of the new file.
fn a_failed_save_changes_nothing_and_the_next_one_works(blocks: u64) {
    let dir = TempDir::new("full-disk-save");
    let (store, before, version) = stored_small(&dir);
    assert_eq!(lock_mark(store.path()), Some(version));

    let (output, report) = run(child("save-next", store.path(), blocks, true));
    assert!(output.status.success(), "child: {output:?}");
    assert_eq!(
        report.get("saved"),
        None,
        "the save past the limit reported success: {report:?}"
    );
    let error = report.get("error").expect("an error is reported");
    assert_eq!(
        report.get("errno").map(String::as_str),
        Some(EFBIG.to_string().as_str()),
        "an I/O error carrying the errno: {report:?}"
    );
    assert!(
        error.contains("writing a temporary file") && error.contains("File too large"),
        "the message says what failed and why: {error}"
    );
    assert!(
        error.contains(&store.path().display().to_string()),
        "the message names the token file: {error}"
    );

    // The old set, byte for byte, loadable, same generation; nothing else left.
    assert_eq!(
        fs::read(store.path()).expect("read"),
        before,
        "the old file changed"
    );
    let fresh = FileStore::new(store.path());
    assert_eq!(stored(&fresh), (OLD_REFRESH.to_owned(), version));
    assert_eq!(
        names_in(&dir),
        ["t.json", "t.json.lock"],
        "a temporary file (holding part of a token) was left behind"
    );
    mark_intact(store.path(), version);

    // Space comes back: the next save works, one generation up, and the mark follows.
    let next = fresh.save(&big_set(), Some(version)).expect("saved");
    assert_eq!(next, version + 1);
    assert_eq!(
        stored(&FileStore::new(store.path())),
        (NEW_REFRESH.to_owned(), next)
    );
    assert_eq!(lock_mark(store.path()), Some(next));
    assert_eq!(names_in(&dir), ["t.json", "t.json.lock"]);
}

#[test]
fn a_save_that_runs_out_of_space_partway_is_an_error_and_leaves_the_old_file_whole() {
    a_failed_save_changes_nothing_and_the_next_one_works(1);
}

#[test]
fn a_save_on_a_disk_with_no_space_at_all_is_an_error_and_leaves_the_old_file_whole() {
    a_failed_save_changes_nothing_and_the_next_one_works(0);
}

#[test]
fn a_first_save_on_a_full_disk_is_an_error_and_creates_no_token_file() {
    let dir = TempDir::new("full-disk-first");
    let path = dir.file("t.json");
    let (output, report) = run(child("save-first", &path, 1, true));
    assert!(output.status.success(), "child: {output:?}");
    assert!(report.contains_key("error"), "{report:?}");
    assert_eq!(report.get("errno").map(String::as_str), Some("27"));
    assert!(
        FileStore::new(&path).load().expect("loads").is_none(),
        "a half-written first file"
    );
    assert!(
        names_in(&dir).iter().all(|n| n == "t.json.lock"),
        "left behind: {:?}",
        names_in(&dir)
    );
    // Space comes back.
    let version = FileStore::new(&path).save(&big_set(), None).expect("saved");
    assert_eq!(
        stored(&FileStore::new(&path)),
        (NEW_REFRESH.to_owned(), version)
    );
    assert_eq!(lock_mark(&path), Some(version));
}

#[test]
fn a_writer_killed_by_a_full_disk_mid_write_leaves_the_old_file_and_its_partial_temp_is_swept_not_recovered()
 {
    let dir = TempDir::new("full-disk-crash");
    let (store, before, version) = stored_small(&dir);
    let (output, report) = run(child("save-next", store.path(), 1, false));
    assert_eq!(
        output.status.signal(),
        Some(SIGXFSZ),
        "the child was to die mid-write: {output:?} {report:?}"
    );
    // The crash left half a temporary file; the store is untouched and loads.
    let temps: Vec<String> = names_in(&dir)
        .into_iter()
        .filter(|n| n.ends_with(".locked.tmp"))
        .collect();
    assert_eq!(temps.len(), 1, "{:?}", names_in(&dir));
    assert_eq!(
        fs::metadata(dir.file(&temps[0])).expect("temp").len(),
        512,
        "the write stopped at the limit"
    );
    assert_eq!(fs::read(store.path()).expect("read"), before);
    let fresh = FileStore::new(store.path());
    assert_eq!(stored(&fresh), (OLD_REFRESH.to_owned(), version));
    mark_intact(store.path(), version);
    // The next lock sweeps it away (it is not a complete set of the next generation).
    drop(fresh.try_lock().expect("lock").expect("free"));
    assert_eq!(names_in(&dir), ["t.json", "t.json.lock"]);
    assert_eq!(stored(&fresh), (OLD_REFRESH.to_owned(), version));
    let next = fresh.save(&big_set(), Some(version)).expect("saved");
    assert_eq!(next, version + 1);
    assert_eq!(lock_mark(store.path()), Some(next));
}

// --- Through the blocking manager ---------------------------------------------------------

const R0: &str = "CANARY-fd-r0.SECRET";
const R1: &str = "CANARY-fd-r1.SECRET";
const R2: &str = "CANARY-fd-r2-rotated-on-a-full-disk.SECRET";
const R3: &str = "CANARY-fd-r3.SECRET";

/// A Cognito answer with an ID token, as `common::ok` without one.
fn ok_with_id(access: &str, refresh: &str, id: &str) -> (u16, String) {
    (
        200,
        format!(
            r#"{{"AuthenticationResult":{{"AccessToken":"{access}","ExpiresIn":3600,"TokenType":"Bearer","RefreshToken":"{refresh}","IdToken":"{id}"}}}}"#
        ),
    )
}

/// The manager's child: a first refresh stored (small), a rotation whose save runs out of
/// space (a large ID token), a pause while the parent looks at the file and gives the space
/// back, then the next refresh. Reports each outcome, never a token.
fn manager_child(path: &Path) {
    let clock = clock();
    let transport = Scripted::new(
        &clock,
        &[
            ok("CANARY-fd-a1.SECRET", 3600, Some(R1)),
            ok_with_id("CANARY-fd-a2.SECRET", R2, &big_id_token()),
            ok("CANARY-fd-a3.SECRET", 3600, Some(R3)),
        ],
    );
    let events: Arc<Mutex<Vec<String>>> = Arc::default();
    let heard = events.clone();
    let manager = BlockingTokenManager::builder(
        client(transport.clone(), &clock),
        template(R0),
        FileStore::new(path),
    )
    .on_event(move |e| heard.lock().expect("events").push(format!("{e:?}")))
    .build()
    .expect("manager");
    let first = manager.access_token().expect("the first refresh fits");
    say("first", first.expose_secret() == "CANARY-fd-a1.SECRET");

    clock.advance(Duration::from_secs(3600));
    match manager.access_token() {
        Ok(_) => say("rotation", "saved"),
        Err(e) => {
            say(
                "rotation",
                match &e {
                    SessionError::RotatedTokenNotSaved(_) => "RotatedTokenNotSaved",
                    SessionError::Store(_) => "Store",
                    _ => "other",
                },
            );
            say("requires_sign_in", e.requires_sign_in());
            say("error", &e);
            say("debug", format!("{e:?}"));
        }
    }
    say("events", events.lock().expect("events").join(" | "));
    // This process goes on with the rotated set, without asking Cognito again.
    let again = manager.access_token();
    say(
        "served_from_memory",
        again
            .as_ref()
            .is_ok_and(|t| t.expose_secret() == "CANARY-fd-a2.SECRET")
            && transport.sent().len() == 2,
    );

    // The parent looks at the file, then gives the space back.
    say("waiting", "space");
    let mut line = String::new();
    std::io::stdin().read_line(&mut line).expect("go-ahead");
    assert_eq!(line.trim(), "space is back");

    clock.advance(Duration::from_secs(3600));
    let next = manager.access_token();
    say(
        "next_refresh",
        match &next {
            Ok(t) => (t.expose_secret() == "CANARY-fd-a3.SECRET").to_string(),
            Err(e) => format!("error: {e}"),
        },
    );
    let sent = transport.sent();
    say("sent_rotated_token", sent.len() == 3 && sent[2] == R2);
}

#[test]
fn a_rotation_that_cannot_be_saved_on_a_full_disk_is_reported_kept_and_stored_by_the_next_refresh()
{
    let dir = TempDir::new("full-disk-manager");
    let path = dir.file("t.json");
    let mut command = child("manager", &path, 2, true);
    command.stdin(Stdio::piped());
    let mut child = command.spawn().expect("child");
    let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
    let mut seen = String::new();
    loop {
        let mut line = String::new();
        let n = stdout.read_line(&mut line).expect("read");
        seen.push_str(&line);
        if n == 0 {
            let rest = child.wait_with_output().expect("child");
            panic!(
                "the child stopped before the pause: {seen} {}",
                String::from_utf8_lossy(&rest.stderr)
            );
        }
        if line.contains(&format!("{MARK}waiting=space")) {
            break;
        }
    }
    no_canary("the child's output", &seen);
    let first = report(&seen);
    assert_eq!(
        first.get("first").map(String::as_str),
        Some("true"),
        "{first:?}"
    );
    assert_eq!(
        first.get("rotation").map(String::as_str),
        Some("RotatedTokenNotSaved"),
        "{first:?}"
    );
    assert_eq!(
        first.get("requires_sign_in").map(String::as_str),
        Some("false"),
        "the user is told to sign in again: {first:?}"
    );
    let error = &first["error"];
    assert!(
        error.contains("could not be saved") && error.contains("File too large"),
        "{error}"
    );
    assert!(
        first["events"].contains("StoreFailed"),
        "listeners hear of it: {first:?}"
    );
    assert_eq!(
        first.get("served_from_memory").map(String::as_str),
        Some("true"),
        "{first:?}"
    );

    // While the child waits: the file still holds the first refresh's set, whole.
    let store = FileStore::new(&path);
    let (refresh, version) = stored(&store);
    assert_eq!(refresh, R1, "the stored set changed");
    mark_intact(&path, version);
    assert_eq!(
        names_in(&dir),
        ["t.json", "t.json.lock"],
        "a temporary file was left behind"
    );

    // Space comes back (soft limit lifted on the running child), and the child goes on.
    let pid = child.id().to_string();
    let lifted = Command::new("prlimit")
        .args(["--pid", &pid, "--fsize=unlimited:"])
        .status()
        .expect("prlimit runs");
    assert!(lifted.success(), "prlimit: {lifted:?}");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(b"space is back\n")
        .expect("go-ahead");
    let rest = child.wait_with_output().expect("child");
    let mut tail = String::new();
    std::io::Read::read_to_string(&mut stdout, &mut tail).expect("read");
    tail.push_str(&String::from_utf8_lossy(&rest.stdout));
    no_canary("the child's output", &tail);
    no_canary("the child's stderr", &String::from_utf8_lossy(&rest.stderr));
    assert!(
        rest.status.success(),
        "child: {:?} {tail} {}",
        rest.status,
        String::from_utf8_lossy(&rest.stderr)
    );
    let second = report(&tail);
    assert_eq!(
        second.get("sent_rotated_token").map(String::as_str),
        Some("true"),
        "the next refresh did not use the rotated token kept in memory: {second:?}"
    );
    assert_eq!(
        second.get("next_refresh").map(String::as_str),
        Some("true"),
        "{second:?}"
    );
    let (refresh, next) = stored(&store);
    assert_eq!(refresh, R3, "the next refresh's set is stored");
    assert!(next > version, "{next} > {version}");
    assert_eq!(lock_mark(&path), Some(next));
    assert_eq!(names_in(&dir), ["t.json", "t.json.lock"]);
}
