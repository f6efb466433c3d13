//! What the proxy tests of reviews 22 and 29 share: a loopback HTTP CONNECT proxy, and a run of
//! one test of this binary in a child process whose environment names the proxy (ureq reads
//! its proxy from the environment when the agent is built).

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::Command;
use std::sync::{Arc, Mutex};

/// A loopback HTTP CONNECT proxy: records each request line and tunnels to the target.
pub(crate) fn connect_proxy() -> (u16, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("address").port();
    let lines = Arc::new(Mutex::new(Vec::new()));
    let shared = lines.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let lines = shared.clone();
            std::thread::spawn(move || tunnel(stream, &lines));
        }
    });
    (port, lines)
}

fn tunnel(stream: TcpStream, lines: &Mutex<Vec<String>>) -> Option<()> {
    let mut client = stream.try_clone().ok()?;
    let mut reader = BufReader::new(stream);
    let mut first = String::new();
    reader.read_line(&mut first).ok()?;
    lines.lock().ok()?.push(first.trim_end().to_owned());
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).ok()? == 0 {
            return None;
        }
        if line == "\r\n" {
            break;
        }
    }
    let authority = first.strip_prefix("CONNECT ")?.split(' ').next()?;
    // Only ever loopback: the proxy refuses any other target.
    let (host, port) = authority.rsplit_once(':')?;
    if !matches!(host, "localhost" | "127.0.0.1") {
        client
            .write_all(b"HTTP/1.1 403 Forbidden\r\ncontent-length: 0\r\n\r\n")
            .ok()?;
        return None;
    }
    let target = TcpStream::connect(SocketAddr::from(([127, 0, 0, 1], port.parse().ok()?))).ok()?;
    client
        .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
        .ok()?;
    let mut to_target = target.try_clone().ok()?;
    let mut from_target = target;
    to_target.write_all(reader.buffer()).ok()?;
    let mut rest = reader.into_inner();
    std::thread::spawn(move || std::io::copy(&mut rest, &mut to_target));
    std::io::copy(&mut from_target, &mut client).ok()?;
    Some(())
}

/// Runs `test` (this binary's test of that name) in a child process with no proxy variable
/// but those of `env`; returns whether it passed and printed `child: done`, and its output.
pub(crate) fn run_child(test: &str, env: &[(&str, String)]) -> (bool, String) {
    let mut command = Command::new(std::env::current_exe().expect("test binary"));
    command.args([test, "--exact", "--nocapture", "--test-threads=1"]);
    for key in [
        "ALL_PROXY",
        "all_proxy",
        "HTTPS_PROXY",
        "https_proxy",
        "HTTP_PROXY",
        "http_proxy",
        "NO_PROXY",
        "no_proxy",
    ] {
        command.env_remove(key);
    }
    for (k, v) in env {
        command.env(k, v);
    }
    let output = command.output().expect("child");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (
        output.status.success() && text.contains("child: done"),
        text,
    )
}
