//! Review of issue 12 (first run): what the Redis of `xtask redis` / `xtask ci` leaves behind
//! when xtask is killed. Needs redis-server, as `tests/redis.rs` does.

use std::io::{BufRead, BufReader};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The server is stopped when xtask is killed (the supervisor reads end of input), but its data
/// folder (`$TMPDIR/cogref-xtask-redis-<pid>`, with redis.log) is removed only by `Drop`, which
/// a killed xtask never runs: every cancelled CI run leaves one behind.
#[test]
fn a_killed_xtask_leaves_no_redis_folder_behind() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .arg("redis")
        .env_remove("COGREF_REDIS_URL")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn xtask");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("a line");
    let port: u16 = line
        .trim()
        .strip_prefix("COGREF_REDIS_URL=redis://127.0.0.1:")
        .and_then(|rest| rest.strip_suffix('/'))
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("xtask redis printed {line:?}"));
    let folder = std::env::temp_dir().join(format!("cogref-xtask-redis-{}", child.id()));
    assert!(folder.is_dir(), "{} while it runs", folder.display());
    child.kill().expect("SIGKILL");
    let _ = child.wait();
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline
        && (TcpStream::connect(("127.0.0.1", port)).is_ok() || folder.exists())
    {
        std::thread::sleep(Duration::from_millis(50));
    }
    let left = folder.exists();
    let _ = std::fs::remove_dir_all(&folder);
    assert!(
        TcpStream::connect(("127.0.0.1", port)).is_err(),
        "the server outlived xtask"
    );
    assert!(!left, "{} outlived the killed xtask", folder.display());
}
