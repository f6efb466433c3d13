//! `cogref emulator` as a script runs it: its help lists every admin route, and a SIGINT sent
//! as soon as it has said anything stops it, even where the shell started it with SIGINT
//! ignored (background jobs of a non-interactive shell).

#![cfg(unix)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

mod common;

use common::{exits_within, temp_dir};

#[test]
fn help_lists_every_admin_route_with_its_body() {
    let out = Command::new(env!("CARGO_BIN_EXE_cogref"))
        .args(["emulator", "--help"])
        .output()
        .expect("help");
    let help = String::from_utf8_lossy(&out.stdout);
    for route in [
        "POST /_emulator/pools           {\"pool_id\"",
        "POST /_emulator/clients         {\"pool_id\"",
        "POST /_emulator/users           {\"pool_id\"",
        "POST /_emulator/refresh-tokens  {\"client_id\"",
        "POST /_emulator/revoke          {\"refresh_token\"",
        "POST /_emulator/devices         {\"device_key\"",
        "POST /_emulator/faults          {\"kind\"",
        "POST /_emulator/clock           {\"advance_secs\"",
        "POST /_emulator/signing         {\"wall_clock\"",
        "GET  /_emulator/counters",
    ] {
        assert!(help.contains(route), "help lacks {route:?}:\n{help}");
    }
    assert!(
        help.contains("not yet valid"),
        "the clock caveat is documented"
    );
}

/// Starts `cogref emulator` through `sh` with SIGINT ignored, as `cmd &` in a script does.
fn start_with_sigint_ignored(dir: &std::path::Path) -> Child {
    Command::new("sh")
        .arg("-c")
        .arg("trap '' INT; exec \"$0\" emulator --port 0 --token-file \"$1\"")
        .arg(env!("CARGO_BIN_EXE_cogref"))
        .arg(dir.join("rt"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn")
}

fn interrupt(child: &Child) {
    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
}

#[test]
fn a_sigint_right_after_the_endpoint_is_printed_stops_the_emulator() {
    let dir = temp_dir("endpoint");
    let mut child = start_with_sigint_ignored(&dir);
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let first = lines.next().and_then(Result::ok).unwrap_or_default();
    assert!(first.starts_with("AWS_ENDPOINT_URL="), "{first}");
    interrupt(&child);
    std::thread::spawn(move || lines.for_each(drop));
    assert!(
        exits_within(&mut child, Duration::from_secs(20)),
        "the SIGINT was lost"
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_sigint_during_start_up_is_not_lost() {
    let dir = temp_dir("startup");
    let mut child = start_with_sigint_ignored(&dir);
    // The first line on stderr comes once the handler is installed, before the signing key
    // is generated and the endpoint printed.
    let stderr = child.stderr.take().expect("stderr");
    let mut lines = BufReader::new(stderr).lines();
    let first = lines.next().and_then(Result::ok).unwrap_or_default();
    assert!(first.contains("starting"), "{first}");
    interrupt(&child);
    std::thread::spawn(move || lines.for_each(drop));
    let stdout = child.stdout.take().expect("stdout");
    std::thread::spawn(move || BufReader::new(stdout).lines().for_each(drop));
    assert!(
        exits_within(&mut child, Duration::from_secs(20)),
        "the SIGINT was lost"
    );
    let _ = std::fs::remove_dir_all(dir);
}

/// A stop signal lets open connections finish for a few seconds; a second one stops the
/// emulator at once (a client that sent half a request would otherwise hold it until the
/// deadline).
#[test]
fn a_second_signal_stops_the_emulator_without_waiting_for_open_connections() {
    use std::io::Write;
    let dir = temp_dir("second");
    let mut child = Command::new(env!("CARGO_BIN_EXE_cogref"))
        .args(["emulator", "--port", "0", "--token-file"])
        .arg(dir.join("rt"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
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
    let signal = |child: &Child| {
        let status = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .expect("kill");
        assert!(status.success());
    };
    signal(&child);
    std::thread::sleep(Duration::from_millis(300));
    let waiting = matches!(child.try_wait(), Ok(None));
    signal(&child);
    // Well inside the shutdown deadline: only the second signal can have stopped it.
    let limit = cogref_emulator::SHUTDOWN_DEADLINE / 2;
    let stopped = exits_within(&mut child, limit);
    drop(stuck);
    let _ = std::fs::remove_dir_all(dir);
    assert!(
        waiting,
        "the first signal did not wait for the open connection"
    );
    assert!(stopped, "still running {limit:?} after the second signal");
}
