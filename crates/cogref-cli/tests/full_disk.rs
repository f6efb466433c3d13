//! `cogref refresh --store` on a real full disk: a rotated refresh token that cannot be saved
//! is printed (the only copy left), the run says so and fails, and the store is left as it was.
//!
//! The disk is made full without root: the binary runs under `ulimit -S -f 1` (RLIMIT_FSIZE,
//! 512 bytes in dash) with SIGXFSZ ignored, so a file write past 512 bytes fails with `EFBIG`
//! after a short write, as a real `ENOSPC` does. Its stdout and stderr are pipes, which the
//! limit does not touch.
#![cfg(target_os = "linux")]

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::{
    JSON_1_1, run_cogref, run_fed, scripted_server, temp_dir, text, without_aws_settings,
};

/// The refresh token the user pipes in.
const SENT: &str = "eyJjdHkiOiJKV1QifQ.U2VudEZ1bGxEaXNr.c2VudA";
/// The first rotation, stored.
const ROTATED: &str = "eyJjdHkiOiJKV1QifQ.Um90YXRlZE9uZQ.b25l";
/// The second rotation, on a full disk.
const ROTATED_UNSAVED: &str = "eyJjdHkiOiJKV1QifQ.Um90YXRlZE9uQUZ1bGxEaXNr.dHdv";

fn answer(refresh: &str, id: &str) -> String {
    serde_json::json!({"AuthenticationResult": {
        "AccessToken": "eyJh.eyJi.c2ln", "IdToken": id, "ExpiresIn": 3600,
        "TokenType": "Bearer", "RefreshToken": refresh}})
    .to_string()
}

/// A Cognito on 127.0.0.1 that answers its requests with `bodies` in turn (200, AWS JSON 1.1):
/// the store is bound to one endpoint, so both runs must talk to the same one.
fn sequence_server(bodies: Vec<String>) -> String {
    scripted_server(200, JSON_1_1, move |n| {
        bodies.get(n).cloned().unwrap_or_default()
    })
}

/// `cogref ARGS` with `stdin`, unable to grow any file past 512 bytes; its stdout goes to the
/// file `stdout_file` (on the same full disk) if given, else to a pipe.
fn run_cogref_on_a_full_disk(args: &[&str], stdin: &str, stdout_file: Option<&Path>) -> Output {
    let redirect = if stdout_file.is_some() {
        " > \"$COGREF_TEST_STDOUT\""
    } else {
        ""
    };
    let mut command = Command::new("/bin/sh");
    if let Some(file) = stdout_file {
        command.env("COGREF_TEST_STDOUT", file);
    }
    command
        .arg("-c")
        .arg(format!(
            "trap '' XFSZ; ulimit -S -f 1 || exit 99; exec \"$0\" \"$@\"{redirect}"
        ))
        .arg(env!("CARGO_BIN_EXE_cogref"))
        .args(args);
    run_fed(without_aws_settings(command), stdin)
}

/// A store holding a first rotation, written while there was space, and a Cognito whose next
/// answers rotate again with an ID token larger than the space left: the store's folder, the
/// arguments of a `refresh` with that store, the store's bytes, and the big ID token.
fn a_store_about_to_run_out_of_space(name: &str) -> (PathBuf, Vec<String>, Vec<u8>, String) {
    let dir = temp_dir(name);
    let store = dir.join("tokens.json");
    let big_id = format!("eyJh.{}.c2ln", "QUJDRA".repeat(1500));
    let url = sequence_server(vec![
        answer(ROTATED, "eyJh.eyJp.c2ln"),
        answer(ROTATED_UNSAVED, &big_id),
    ]);
    let args: Vec<String> = [
        "refresh",
        "--endpoint-url",
        &url,
        "--client-id",
        "c",
        "--store",
        &store.to_string_lossy(),
    ]
    .iter()
    .map(|a| (*a).to_owned())
    .collect();
    let first = run_cogref(&args.iter().map(String::as_str).collect::<Vec<_>>(), SENT);
    assert_eq!(first.status.code(), Some(0), "{}", text(&first.stderr));
    let before = std::fs::read(&store).expect("stored");
    assert!(before.len() < 512, "the first set fits: {}", before.len());
    (dir, args, before, big_id)
}

fn names_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .expect("dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn a_rotated_token_the_full_disk_cannot_store_is_printed_the_run_fails_and_the_store_is_untouched()
{
    let (dir, args, before, big_id) = a_store_about_to_run_out_of_space("full-disk");
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = run_cogref_on_a_full_disk(&args, "", None);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(
        !out.status.success(),
        "exit 0 though the rotated token was not stored.\nstderr: {stderr}"
    );
    assert!(
        stdout.contains(ROTATED_UNSAVED),
        "the only copy of the rotated refresh token is in no output.\nstdout: {stdout}\nstderr: {stderr}"
    );
    assert!(
        stderr.contains("could not be saved") && stderr.contains("File too large"),
        "{stderr}"
    );
    for secret in [
        SENT,
        ROTATED,
        ROTATED_UNSAVED,
        big_id.as_str(),
        "eyJh.eyJi.c2ln",
    ] {
        assert!(!stderr.contains(secret), "a token on stderr: {stderr}");
    }
    assert_eq!(
        std::fs::read(dir.join("tokens.json")).expect("stored"),
        before,
        "the store changed"
    );
    assert_eq!(
        names_in(&dir),
        ["tokens.json", "tokens.json.lock"],
        "left behind"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// When stdout is a file on the same full disk, neither the store nor the output can take the
/// rotated refresh token: its only copy dies with the process, and the session with it (the
/// old token no longer works). The user must at least be told that, not only that stdout
/// could not be written.
///
/// Failed at 1c8e20f (fixed in the commit after it was written): stderr said only "cogref:
/// could not write stdout: File too large (os error 27)" (exit 1). Root cause: `crates/cogref-cli/src/refresh.rs` lines 81-85 return the
/// stdout write error with `?` before the `RotatedTokenNotSaved` failure held in `not_saved`
/// (built at lines 286-296, which names the rotation) is reported, and the stdout error names
/// neither the rotation nor the unsaved token; the JSON puts `refresh_token` after the large
/// `id_token`, so the 512 bytes written hold no refresh token either.
#[test]
fn a_rotated_token_that_neither_the_store_nor_stdout_can_take_is_reported_as_lost() {
    let (dir, args, before, big_id) = a_store_about_to_run_out_of_space("full-disk-stdout");
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let output = dir.join("out.json");
    let out = run_cogref_on_a_full_disk(&args, "", Some(&output));
    let stderr = text(&out.stderr);
    assert!(!out.status.success(), "exit 0.\nstderr: {stderr}");
    for secret in [
        SENT,
        ROTATED,
        ROTATED_UNSAVED,
        big_id.as_str(),
        "eyJh.eyJi.c2ln",
    ] {
        assert!(!stderr.contains(secret), "a token on stderr: {stderr}");
    }
    assert_eq!(
        std::fs::read(dir.join("tokens.json")).expect("stored"),
        before,
        "the store changed"
    );
    let printed = std::fs::read_to_string(&output).unwrap_or_default();
    if !printed.contains(ROTATED_UNSAVED) {
        assert!(
            stderr.contains("rotated"),
            "the rotated refresh token is neither stored nor printed, and stderr does not say \
             the session's refresh token was rotated and lost: {stderr}"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// Without a store, stdout is the only place a rotated refresh token can go. A reader that
/// closed the pipe before cogref printed (`cogref refresh | head -c0`, a crashed consumer)
/// takes the token's only copy with it: the run says the token is lost, names no token, and
/// exits 3 (sign-in required), as the session cannot continue.
#[test]
fn a_rotated_token_a_closed_stdout_cannot_take_is_reported_lost_with_exit_3() {
    let url = sequence_server(vec![answer(ROTATED_UNSAVED, "eyJh.eyJp.c2ln")]);
    let mut command = Command::new(env!("CARGO_BIN_EXE_cogref"));
    command.args(["refresh", "--endpoint-url", &url, "--client-id", "c"]);
    let mut child = without_aws_settings(command).spawn().expect("spawn cogref");
    // The reader goes away before anything is printed: the token arrives only after a round
    // trip to the server, which cogref makes after reading all of stdin.
    drop(child.stdout.take());
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(SENT.as_bytes())
        .expect("write stdin");
    let out = child.wait_with_output().expect("cogref exits");
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "stderr: {stderr}");
    assert!(
        stderr.contains("rotated") && stderr.contains("lost") && stderr.contains("sign in"),
        "{stderr}"
    );
    for secret in [SENT, ROTATED_UNSAVED, "eyJh.eyJi.c2ln", "eyJh.eyJp.c2ln"] {
        assert!(!stderr.contains(secret), "a token on stderr: {stderr}");
    }
}
