//! A real Redis server for the tests: the one `cargo xtask ci` started (`COGREF_REDIS_URL`), or a
//! private `redis-server` on a free loopback port; the restart tests always use a private one.

#![allow(dead_code, unreachable_pub)]

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use cogref_core::TokenSet;
use cogref_emulator::{Emulator, EmulatorConfig, Seed};
use cogref_redis::RedisStore;
use cogref_session::TokenStore;

/// A `redis-server` process this test owns, on 127.0.0.1, without persistence: a restart loses
/// the data, the harder case.
pub struct RedisServer {
    pub port: u16,
    process: Option<Child>,
    extra: Vec<String>,
}

fn binary() -> String {
    std::env::var("COGREF_REDIS_SERVER").unwrap_or_else(|_| "redis-server".into())
}

impl RedisServer {
    pub fn start() -> Self {
        Self::start_with(&[])
    }

    /// A server with extra command-line options (for example `--requirepass`).
    pub fn start_with(extra: &[&str]) -> Self {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let mut server = Self {
            port,
            process: None,
            extra: extra.iter().map(|s| s.to_string()).collect(),
        };
        server.restart();
        server
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// Kills the server (SIGKILL: no goodbye to the clients, no data kept).
    pub fn kill(&mut self) {
        if let Some(mut process) = self.process.take() {
            let _ = process.kill();
            let _ = process.wait();
        }
    }

    /// Starts the server again on the same port, empty.
    pub fn restart(&mut self) {
        self.kill();
        let process = Command::new(binary())
            .args(["--port", &self.port.to_string()])
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .args(&self.extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start {} ({e}): install Redis (Debian: apt-get install redis-server), \
                     set COGREF_REDIS_SERVER to its path, or run the tests through `cargo xtask ci`",
                    binary()
                )
            });
        self.process = Some(process);
        wait_until_listening(self.port);
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Waits until the server answers (a password-protected one answers PING with NOAUTH).
fn wait_until_listening(port: u16) {
    let client = redis::Client::open(format!("redis://127.0.0.1:{port}/")).expect("url");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(mut c) = client.get_connection_with_timeout(Duration::from_millis(200)) {
            match redis::cmd("PING").query::<String>(&mut c) {
                Ok(_) => return,
                Err(e) if e.code() == Some("NOAUTH") => return,
                Err(_) => {}
            }
        }
        assert!(
            Instant::now() < deadline,
            "redis on port {port} did not come up"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The server a test uses: `cargo xtask ci`'s when `COGREF_REDIS_URL` is set, else a private one that
/// stops when this value drops (a static would outlive the test binary's last test).
pub struct TestRedis {
    pub url: String,
    _private: Option<RedisServer>,
}

pub fn redis() -> TestRedis {
    match std::env::var("COGREF_REDIS_URL") {
        Ok(url) => TestRedis {
            url,
            _private: None,
        },
        Err(_) => {
            let server = RedisServer::start();
            TestRedis {
                url: server.url(),
                _private: Some(server),
            }
        }
    }
}

/// A lineage name no other test (or earlier run against the same server) uses.
pub fn lineage(test: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("test-{test}-{}-{nanos}", std::process::id())
}

/// A raw connection, to look at what the store wrote.
pub fn raw(url: &str) -> redis::Connection {
    redis::Client::open(url)
        .expect("url")
        .get_connection()
        .expect("connect")
}

/// The emulator, on a runtime of its own that the caller keeps alive.
pub fn emulator() -> (tokio::runtime::Runtime, Emulator) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let emulator = runtime
        .block_on(Emulator::start(EmulatorConfig::default()))
        .expect("emulator");
    (runtime, emulator)
}

/// A new lineage named after `name`: a new user on `emulator` (rotation with `grace_secs`,
/// tokens living `access_secs`) whose first refresh token is stored in Redis with no access
/// token, so that every process must refresh or adopt at once.
pub fn seeded_lineage(
    emulator: &Emulator,
    redis_url: &str,
    name: &str,
    grace_secs: u32,
    access_secs: u64,
) -> String {
    let seeded = emulator
        .seed(&Seed {
            rotation_grace_secs: Some(grace_secs),
            access_token_validity_secs: access_secs,
            ..Seed::default()
        })
        .expect("seed");
    let lineage = lineage(name);
    let store = RedisStore::builder(redis_url, &lineage)
        .build()
        .expect("store");
    TokenStore::save(
        &store,
        &TokenSet::from_refresh_token(seeded.refresh_token, None),
        None,
    )
    .expect("seed the store");
    lineage
}
