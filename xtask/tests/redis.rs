//! The Redis that xtask starts for the tests stops however xtask ends: on its own, or killed
//! with SIGKILL (no chance to clean up). Needs redis-server, as the fleet-store tests do;
//! `cargo xtask ci` installs it first.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Starts `xtask redis` and returns it with the port it printed.
fn xtask_redis() -> (Child, u16) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .arg("redis")
        .env_remove("COGREF_REDIS_URL")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn xtask");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("a line");
    let port = line
        .trim()
        .strip_prefix("COGREF_REDIS_URL=redis://127.0.0.1:")
        .and_then(|rest| rest.strip_suffix('/'))
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| {
            let mut err = String::new();
            let _ = child.stderr.take().map(|mut e| e.read_to_string(&mut err));
            panic!("xtask redis printed {line:?}; stderr: {err}")
        });
    (child, port)
}

fn answers_ping(port: u16) -> bool {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(1)));
    let mut buf = [0u8; 16];
    s.write_all(b"PING\r\n").is_ok()
        && s.read(&mut buf)
            .is_ok_and(|n| buf[..n].starts_with(b"+PONG"))
}

fn stops_within(port: u16, patience: Duration) -> bool {
    let deadline = Instant::now() + patience;
    while Instant::now() < deadline {
        if TcpStream::connect(("127.0.0.1", port)).is_err() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

#[test]
fn the_redis_xtask_started_stops_when_xtask_exits() {
    let (mut child, port) = xtask_redis();
    assert!(answers_ping(port), "the server answers while xtask runs");
    drop(child.stdin.take()); // end of input: xtask stops the server and exits
    let status = child.wait().expect("xtask exits");
    assert!(status.success(), "{status}");
    assert!(stops_within(port, Duration::from_secs(5)));
}

#[test]
fn the_redis_xtask_started_stops_even_when_xtask_is_killed() {
    let (mut child, port) = xtask_redis();
    assert!(answers_ping(port), "the server answers while xtask runs");
    child.kill().expect("SIGKILL"); // no destructor, no handler runs
    let _ = child.wait();
    assert!(
        stops_within(port, Duration::from_secs(10)),
        "redis-server outlived a killed xtask"
    );
}
