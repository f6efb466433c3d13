//! A Redis for the fleet-store tests: `redis-server` found on `PATH` (installed with apt-get when
//! this machine allows it), started on a free 127.0.0.1 port without persistence, and stopped
//! however xtask ends.
//!
//! The server runs under a short `sh` supervisor whose standard input is a pipe from xtask:
//! when xtask exits for any reason (return, error, panic, Ctrl-C, even SIGKILL) the pipe closes,
//! `read` returns and the supervisor stops the server and removes its data folder. No signal
//! handling, no pid files.

use std::ffi::OsStr;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

use crate::Result;
use crate::process::is_executable;

/// The variable the fleet-store tests read for the Redis to use.
pub(crate) const URL_VAR: &str = "COGREF_REDIS_URL";
/// The variable the tests that restart Redis read for the binary to start.
pub(crate) const SERVER_VAR: &str = "COGREF_REDIS_SERVER";

/// What a user without redis-server, whom xtask cannot install it for, reads: one line.
pub(crate) const MISSING: &str = "redis-server is not installed and xtask cannot install it \
    here (that needs apt-get, as root or with passwordless sudo): install Redis yourself \
    (Debian/Ubuntu: `sudo apt-get install redis-server`, Fedora: `sudo dnf install redis`, \
    macOS: `brew install redis`) and run again";

/// The `redis-server` binary: the one `COGREF_REDIS_SERVER` names, else the one on `path`, else
/// installed now through apt-get when that is allowed ([`crate::system::locate_or_install`]);
/// otherwise the [`MISSING`] line.
pub(crate) fn locate_or_install(path: &OsStr) -> Result<PathBuf> {
    locate_or_install_with(std::env::var_os(SERVER_VAR).map(PathBuf::from), path)
}

fn locate_or_install_with(named: Option<PathBuf>, path: &OsStr) -> Result<PathBuf> {
    if let Some(named) = named.filter(|p| is_executable(p)) {
        return Ok(named);
    }
    let why = "the fleet-store tests need it";
    crate::system::locate_or_install("redis-server", "redis-server", why, MISSING, path)
}

/// `Redis server v=7.0.15 sha=…` → `7.0.15`.
pub(crate) fn version(binary: &Path) -> String {
    Command::new(binary)
        .arg("--version")
        .output()
        .ok()
        .and_then(|o| {
            String::from_utf8_lossy(&o.stdout)
                .split_whitespace()
                .find_map(|w| w.strip_prefix("v=").map(str::to_owned))
        })
        .unwrap_or_else(|| "(unknown version)".into())
}

/// Starts the server and stops it when standard input ends: the shell's `$0` is redis-server,
/// the rest its arguments, `COGREF_XTASK_REDIS_DIR` the server's data folder. The server's pid
/// is the first line out.
///
/// The shell waits for the server (so a server that exits is reaped at once and no zombie
/// passes `kill -0`), while a subshell reads standard input and stops the server at its end;
/// once the server is gone the shell removes the data folder, also when xtask was killed.
const SUPERVISOR: &str = r#"exec 3<&0
"$0" "$@" & server=$!
echo "$server"
(read -r _ <&3; kill "$server" 2>/dev/null) &
exec 3<&-
wait "$server"
rm -rf "$COGREF_XTASK_REDIS_DIR""#;

/// A redis-server this process owns. Dropping it stops the server; so does the end of this
/// process, however it ends (see the module docs).
#[derive(Debug)]
pub(crate) struct RedisServer {
    supervisor: Child,
    /// Its closing is the stop signal.
    stop: Option<ChildStdin>,
    pid: u32,
    port: u16,
    dir: PathBuf,
}

impl RedisServer {
    /// Starts `binary` on a free port of 127.0.0.1, with no persistence, and waits until it
    /// answers (and is the server started here, not another that took the port meanwhile).
    pub(crate) fn start(binary: &Path) -> Result<Self> {
        let dir = std::env::temp_dir().join(format!("cogref-xtask-redis-{}", std::process::id()));
        let mut last_log = String::new();
        for _ in 0..10 {
            // Each attempt has the folder afresh: a failed one's supervisor removes it.
            std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
            let port = TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .map_err(|e| format!("no free port on 127.0.0.1: {e}"))?
                .port();
            let mut supervisor = Command::new("sh")
                .arg("-c")
                .arg(SUPERVISOR)
                .arg(binary)
                .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
                .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
                .arg("--dir")
                .arg(&dir)
                .arg("--logfile")
                .arg(dir.join("redis.log"))
                .env("COGREF_XTASK_REDIS_DIR", &dir)
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .map_err(|e| format!("could not start sh for redis-server: {e}"))?;
            let stop = supervisor.stdin.take();
            let mut first = String::new();
            if let Some(out) = supervisor.stdout.take() {
                let _ = BufReader::new(out).read_line(&mut first);
            }
            let mut server = RedisServer {
                supervisor,
                stop,
                pid: first.trim().parse().unwrap_or(0),
                port,
                dir: dir.clone(),
            };
            if server.pid != 0 && server.answers_as_itself(Duration::from_secs(10)) {
                return Ok(server);
            }
            if let Some(line) = std::fs::read_to_string(dir.join("redis.log"))
                .ok()
                .and_then(|log| log.lines().last().map(str::to_owned))
            {
                last_log = line;
            }
            // Dropping it stops what may be left of it (and removes the folder); try another
            // port.
        }
        Err(format!(
            "redis-server did not start on 127.0.0.1 (last log line: {})",
            if last_log.is_empty() {
                "none"
            } else {
                &last_log
            }
        ))
    }

    /// `redis://127.0.0.1:PORT/`.
    pub(crate) fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// Whether the server on our port reports our pid, within `patience`. A server that exits
    /// is noticed at once: the supervisor, which reaps it, ends too.
    fn answers_as_itself(&mut self, patience: Duration) -> bool {
        let deadline = Instant::now() + patience;
        let wanted = format!("process_id:{}\r\n", self.pid);
        while Instant::now() < deadline {
            if !matches!(self.supervisor.try_wait(), Ok(None)) || !alive(self.pid) {
                return false;
            }
            if let Some(info) = info_server(self.port)
                && info.contains(&wanted)
            {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }
}

/// Whether a process is still there (`kill -0`).
fn alive(pid: u32) -> bool {
    Command::new("kill")
        .args(["-0", &pid.to_string()])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// The text of `INFO server` from the Redis on `port`, if one answers.
fn info_server(port: u16) -> Option<String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(1))).ok()?;
    stream.write_all(b"INFO server\r\n").ok()?;
    let mut text = Vec::new();
    let mut buf = [0u8; 4096];
    // A bulk string: `$LEN\r\n` then LEN bytes and `\r\n`.
    loop {
        let n = stream.read(&mut buf).ok()?;
        if n == 0 {
            break;
        }
        text.extend_from_slice(&buf[..n]);
        let s = String::from_utf8_lossy(&text);
        if let Some((len, rest)) = s.strip_prefix('$').and_then(|r| r.split_once("\r\n"))
            && len.parse::<usize>().is_ok_and(|len| rest.len() >= len)
        {
            return Some(rest.to_owned());
        }
        if s.starts_with('-') {
            return None;
        }
    }
    None
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        // EOF on the supervisor's stdin: it sends SIGTERM, waits for the server and removes
        // the folder (removed here too, in case it had to be killed).
        drop(self.stop.take());
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match self.supervisor.try_wait() {
                Ok(Some(_)) => break,
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20));
                }
                _ => {
                    let _ = Command::new("kill")
                        .args(["-KILL", &self.pid.to_string()])
                        .stderr(Stdio::null())
                        .status();
                    let _ = self.supervisor.kill();
                    let _ = self.supervisor.wait();
                    break;
                }
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// `cargo xtask redis`: a throwaway server for running the fleet-store tests by hand. Prints
/// `COGREF_REDIS_URL=…` on stdout and stops at the end of standard input (Enter, Ctrl-D) or on
/// Ctrl-C.
pub(crate) fn serve(path: &OsStr) -> Result {
    let binary = locate_or_install(path)?;
    let server = RedisServer::start(&binary)?;
    println!("{URL_VAR}={}", server.url());
    eprintln!(
        "redis-server {} on 127.0.0.1:{} (pid {}); Enter or Ctrl-D stops it",
        version(&binary),
        server.port,
        server.pid
    );
    let mut line = String::new();
    let _ = std::io::stdin().read_line(&mut line);
    drop(server);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(unix)]
    #[test]
    fn without_redis_and_without_a_way_to_install_it_the_user_reads_one_line_saying_what_to_install()
     {
        let (dir, nothing) = crate::system::tests::fake_path(&[]);
        // Root or not, apt-get is missing from this PATH.
        let outcome = locate_or_install_with(None, &nothing);
        let _ = std::fs::remove_dir_all(dir);
        let message = outcome.expect_err("no redis-server on this PATH");
        assert!(!message.contains('\n'), "{message}");
        assert!(
            message.contains("redis-server is not installed")
                && message.contains("apt-get install redis-server"),
            "{message}"
        );
    }

    /// `start` tries up to ten ports, for when another process takes the free port it picked
    /// before redis-server binds it. But the failed attempt's `Drop` removes the data folder that
    /// every attempt shares (`--dir`, `--logfile` inside it), so each later attempt fails too:
    /// the retry can never succeed, and the error's "last log line" is "none".
    #[cfg(unix)]
    #[test]
    fn a_start_that_loses_the_port_race_is_retried_on_another_port_and_succeeds() {
        use std::os::unix::fs::PermissionsExt;
        let path = std::env::var_os("PATH").unwrap_or_default();
        let real = std::env::var_os(SERVER_VAR)
            .map(PathBuf::from)
            .filter(|p| is_executable(p))
            .or_else(|| crate::process::find_in_path("redis-server", &path))
            .expect("redis-server (cargo xtask ci installs it; the fleet-store tests need it too)");
        // A redis-server whose first start fails, as one that lost the port to another process
        // does ("Address already in use"); later starts are the real server (same pid: exec).
        let dir = std::env::temp_dir().join(format!("xtask-port-race-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let first = dir.join("first-start-done");
        let wrapper = dir.join("redis-server");
        std::fs::write(
            &wrapper,
            format!(
                "#!/bin/sh\nif [ ! -e '{first}' ]; then : > '{first}'; echo 'Address already in use' >&2; exit 1; fi\nexec '{real}' \"$@\"\n",
                first = first.display(),
                real = real.display()
            ),
        )
        .expect("wrapper");
        std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        let started = RedisServer::start(&wrapper);
        let _ = std::fs::remove_dir_all(&dir);
        let server = started.expect("the second port works");
        assert!(info_server(server.port).is_some(), "the server answers");
    }

    /// A redis-server that exits at once (a bad build, a missing library, a port taken) is
    /// noticed only when the 10-second patience runs out: `sh` has not reaped it, so the zombie
    /// passes `kill -0`. Ten attempts make the user wait over a minute and a half for the error.
    #[cfg(unix)]
    #[test]
    fn a_redis_server_that_cannot_start_is_reported_within_seconds() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("xtask-bad-redis-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let broken = dir.join("redis-server");
        std::fs::write(&broken, "#!/bin/sh\necho 'cannot start' >&2\nexit 1\n").expect("script");
        std::fs::set_permissions(&broken, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        let started = Instant::now();
        let outcome = RedisServer::start(&broken);
        let waited = started.elapsed();
        let _ = std::fs::remove_dir_all(&dir);
        assert!(outcome.is_err(), "a server that exits does not start");
        assert!(
            waited < Duration::from_secs(20),
            "the failure took {waited:?} to report"
        );
    }

    #[test]
    fn an_info_reply_is_read_whole() {
        // A listener that answers like Redis, in two writes.
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let server = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().expect("accept");
            let mut buf = [0u8; 64];
            let _ = s.read(&mut buf);
            let body = "# Server\r\nprocess_id:4242\r\n";
            let _ = s.write_all(format!("${}\r\n# Ser", body.len()).as_bytes());
            std::thread::sleep(Duration::from_millis(50));
            let _ = s.write_all(format!("{}\r\n", &body[5..]).as_bytes());
        });
        let info = info_server(port).expect("a reply");
        server.join().expect("server thread");
        assert!(info.contains("process_id:4242\r\n"), "{info:?}");
    }
}
