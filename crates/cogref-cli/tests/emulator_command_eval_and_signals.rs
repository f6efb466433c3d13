//! A hostile review of `cogref emulator` as a script runs it: what it prints must be safe to
//! `eval`, and a stop signal must stop it whatever its clients are doing.

#![cfg(unix)]

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

mod common;

use common::{exits_within, temp_dir};

fn start(token_file: &std::path::Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_cogref"))
        .args(["emulator", "--port", "0", "--token-file"])
        .arg(token_file)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn")
}

fn signal(child: &Child, name: &str) {
    let status = Command::new("kill")
        .args([name, &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
}

/// docs/emulator.md: "It prints, on standard output, lines a shell can `eval`". The values
/// are printed unquoted, so a token-file path with a space or a `;` runs a command in the
/// shell that evals them.
#[test]
fn the_printed_lines_are_safe_to_eval_whatever_the_token_file_path() {
    let dir = temp_dir("eval");
    let marker = dir.join("PWNED");
    let token_file = dir.join("my tokens;touch PWNED");
    let mut child = start(&token_file);
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let printed: Vec<String> = (0..3)
        .filter_map(|_| lines.next().and_then(Result::ok))
        .collect();
    signal(&child, "-TERM");
    std::thread::spawn(move || lines.for_each(drop));
    let _ = exits_within(&mut child, Duration::from_secs(20));
    let out = Command::new("sh")
        .arg("-c")
        .arg("eval \"$1\"; printf %s \"$REFRESH_TOKEN_FILE\"")
        .arg("sh")
        .arg(printed.join("\n"))
        .current_dir(&dir)
        .output()
        .expect("sh");
    let seen = String::from_utf8_lossy(&out.stdout).into_owned();
    let pwned = marker.exists();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        !pwned,
        "eval of the printed lines ran a command: {printed:?}"
    );
    assert_eq!(seen, token_file.display().to_string(), "{printed:?}");
}

/// docs/emulator.md: "Ctrl-C (SIGINT) or SIGTERM stops it". After the signal `cogref
/// emulator` waits for every connection to finish, without limit, and ignores further
/// signals: one client that sent half a request keeps it running until SIGKILL.
#[test]
fn sigterm_stops_the_emulator_while_a_client_has_sent_half_a_request() {
    let dir = temp_dir("stuck");
    let mut child = start(&dir.join("rt"));
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let first = lines.next().and_then(Result::ok).unwrap_or_default();
    std::thread::spawn(move || lines.for_each(drop));
    let address = first
        .strip_prefix("AWS_ENDPOINT_URL=http://")
        .expect("endpoint")
        .to_owned();
    let mut stuck = std::net::TcpStream::connect(&address).expect("connect");
    stuck
        .write_all(b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        .expect("half a request");
    std::thread::sleep(Duration::from_millis(200));
    signal(&child, "-TERM");
    let stopped = exits_within(&mut child, Duration::from_secs(15));
    drop(stuck);
    let _ = std::fs::remove_dir_all(&dir);
    assert!(stopped, "still running 15 s after SIGTERM");
}

/// The first printed line is `AWS_ENDPOINT_URL=…`, the variable the AWS CLI and SDKs read from
/// their environment; after the `eval` the docs suggest it is a plain shell variable, so
/// `aws cognito-idp …` run next does not see it and goes to the real service.
#[test]
fn the_printed_endpoint_reaches_child_processes_after_eval() {
    let dir = temp_dir("export");
    let mut child = start(&dir.join("rt"));
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let printed: Vec<String> = (0..3)
        .filter_map(|_| lines.next().and_then(Result::ok))
        .collect();
    signal(&child, "-TERM");
    std::thread::spawn(move || lines.for_each(drop));
    let _ = exits_within(&mut child, Duration::from_secs(20));
    let _ = std::fs::remove_dir_all(&dir);
    let out = Command::new("sh")
        .arg("-c")
        .arg("eval \"$1\"; sh -c 'printf %s \"$AWS_ENDPOINT_URL\"'")
        .arg("sh")
        .arg(printed.join("\n"))
        .env_remove("AWS_ENDPOINT_URL")
        .output()
        .expect("sh");
    let seen = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        seen.starts_with("http://127.0.0.1:"),
        "a child process sees AWS_ENDPOINT_URL={seen:?} after eval of {printed:?}"
    );
}
