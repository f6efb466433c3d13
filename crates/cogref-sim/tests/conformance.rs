//! The store models the simulator trusts, checked against the real stores: every scenario of
//! `cogref_sim::conformance` runs on the real `FileStore` (in a fresh folder) and on a real
//! Redis (a `redis-server` this test starts on a free 127.0.0.1 port), and on the model of
//! each; what they observe must be equal, step by step, versions compared by how they relate.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use cogref_core::TokenSet;
use cogref_core::secrecy::ExposeSecret;
use cogref_redis::RedisStore;
use cogref_session::{FileStore, StoreError, StoreGuard, TokenStore, Versioned};
use cogref_sim::conformance::{ModelSubject, Observed, Subject, run, scenarios};
use cogref_sim::model::Kind;

/// How long a lease lives in the Redis runs; `LeaseRunsOut` waits a little longer.
const LEASE_TTL: Duration = Duration::from_millis(300);
/// How long a wait for a change may block.
const WAIT: Duration = Duration::from_millis(400);

fn handles<T>(make: impl Fn() -> T) -> Vec<T> {
    (0..8).map(|_| make()).collect()
}

// ---- the real FileStore ---------------------------------------------------------------------

struct RealFile {
    dir: PathBuf,
    path: PathBuf,
    stores: Vec<FileStore>,
    guards: Vec<Option<StoreGuard>>,
}

impl RealFile {
    fn new(name: &str) -> Self {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let dir = std::env::temp_dir().join(format!(
            "cogref-conformance-{name}-{}-{nanos}",
            std::process::id()
        ));
        std::fs::create_dir_all(&dir).expect("a temporary folder");
        let path = dir.join("tokens.json");
        Self {
            stores: handles(|| FileStore::new(&path)),
            guards: handles(|| None),
            dir,
            path,
        }
    }
}

impl Drop for RealFile {
    fn drop(&mut self) {
        self.guards.clear();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Subject for RealFile {
    fn kind(&self) -> Kind {
        Kind::File
    }

    fn load(&mut self, h: usize) -> Result<Option<Versioned>, StoreError> {
        self.stores[h].load()
    }

    fn save(
        &mut self,
        h: usize,
        tokens: &TokenSet,
        expected: Option<u64>,
    ) -> Result<u64, StoreError> {
        self.stores[h].save(tokens, expected)
    }

    fn try_lock(&mut self, h: usize) -> Result<bool, StoreError> {
        let guard = self.stores[h].try_lock()?;
        let granted = guard.is_some();
        if granted {
            self.guards[h] = guard;
        }
        Ok(granted)
    }

    fn unlock(&mut self, h: usize) {
        if let Some(guard) = self.guards[h].take() {
            self.stores[h].unlock(guard);
        }
    }

    fn crash(&mut self, h: usize) {
        // The process dies: the OS closes its lock file, which releases the lock.
        drop(self.guards[h].take());
    }

    fn lose_data(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }

    fn torn_save(&mut self, tokens: &TokenSet, expected: Option<u64>) {
        // What a writer that died between its write and its rename leaves: a complete,
        // private temporary file of the next generation, which nobody holds any more.
        let generation = expected.map_or_else(
            || {
                SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map_or(1, |d| d.as_micros() as u64)
            },
            |v| v + 1,
        );
        let bytes = cogref_session::format::encode(tokens);
        let mut json: serde_json::Value =
            serde_json::from_slice(bytes.expose_secret()).expect("the format is JSON");
        json["generation"] = generation.into();
        let temp = self.dir.join(format!(
            ".tokens.json.{}.999.1.locked.tmp",
            std::process::id()
        ));
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let mut file = options.open(&temp).expect("a temporary file");
        std::io::Write::write_all(&mut file, json.to_string().as_bytes()).expect("written");
    }

    fn lease_runs_out(&mut self) {}

    fn stamp(&mut self, h: usize) -> Option<u64> {
        // A `stat` is reused for up to STAMP_MAX_AGE: read past it.
        std::thread::sleep(FileStore::STAMP_MAX_AGE * 2);
        self.stores[h].change_stamp()
    }

    fn wait(
        &mut self,
        h: usize,
        seen: Option<u64>,
        during: Option<(usize, &TokenSet, Option<u64>)>,
    ) -> (
        Result<bool, StoreError>,
        bool,
        Option<Result<u64, StoreError>>,
    ) {
        let started = Instant::now();
        let result = self.stores[h].wait_for_change(seen, WAIT);
        let early = started.elapsed() < WAIT;
        let save = during.map(|(o, t, e)| self.stores[o].save(t, e));
        (result, early, save)
    }
}

// ---- a real Redis ---------------------------------------------------------------------------

/// A `redis-server` this test owns, without persistence, stopped when dropped.
struct Server {
    port: u16,
    child: Child,
}

impl Server {
    fn start() -> Self {
        let binary = std::env::var("COGREF_REDIS_SERVER").unwrap_or_else(|_| "redis-server".into());
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let child = Command::new(&binary)
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start {binary} ({e}): install Redis (Debian: apt-get install \
                     redis-server) or set COGREF_REDIS_SERVER; `cargo xtask ci` installs it"
                )
            });
        let server = Self { port, child };
        let client = redis::Client::open(server.url()).expect("url");
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(mut c) = client.get_connection_with_timeout(Duration::from_millis(200))
                && redis::cmd("PING").query::<String>(&mut c).is_ok()
            {
                return server;
            }
            assert!(Instant::now() < deadline, "redis-server did not come up");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct RealRedis {
    url: String,
    stores: Vec<RedisStore>,
    guards: Vec<Option<StoreGuard>>,
}

impl RealRedis {
    fn new(server: &Server, name: &str) -> Self {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let lineage = format!("{name}-{nanos}");
        Self {
            url: server.url(),
            // Separate stores: separate processes, each with what it has seen.
            stores: handles(|| {
                RedisStore::builder(server.url(), lineage.clone())
                    .lease_ttl(LEASE_TTL)
                    .build()
                    .expect("a store")
            }),
            guards: handles(|| None),
        }
    }
}

impl Subject for RealRedis {
    fn kind(&self) -> Kind {
        Kind::Redis {
            lease_ttl_us: LEASE_TTL.as_micros() as u64,
        }
    }

    fn load(&mut self, h: usize) -> Result<Option<Versioned>, StoreError> {
        self.stores[h].load()
    }

    fn save(
        &mut self,
        h: usize,
        tokens: &TokenSet,
        expected: Option<u64>,
    ) -> Result<u64, StoreError> {
        self.stores[h].save(tokens, expected)
    }

    fn try_lock(&mut self, h: usize) -> Result<bool, StoreError> {
        let guard = self.stores[h].try_lock()?;
        let granted = guard.is_some();
        if granted {
            self.guards[h] = guard;
        }
        Ok(granted)
    }

    fn unlock(&mut self, h: usize) {
        if let Some(guard) = self.guards[h].take() {
            self.stores[h].unlock(guard);
        }
    }

    fn crash(&mut self, h: usize) {
        // The process dies without releasing: its lease stays until its time to live.
        std::mem::forget(self.guards[h].take());
    }

    fn lose_data(&mut self) {
        // Redis restarted without persistence: the lineage's keys are gone.
        let mut connection = redis::Client::open(self.url.as_str())
            .and_then(|c| c.get_connection())
            .expect("a connection");
        let store = &self.stores[0];
        let _: i64 = redis::cmd("DEL")
            .arg(store.tokens_key())
            .arg(store.lease_key())
            .query(&mut connection)
            .expect("DEL");
    }

    fn torn_save(&mut self, _: &TokenSet, _: Option<u64>) {}

    fn lease_runs_out(&mut self) {
        std::thread::sleep(LEASE_TTL + Duration::from_millis(100));
    }

    fn stamp(&mut self, h: usize) -> Option<u64> {
        // The stamp comes from the handle's subscription: wait for it to be up, then for
        // what was published to arrive (a loopback round trip; 100 ms is plenty).
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            std::thread::sleep(Duration::from_millis(100));
            let stamp = self.stores[h].change_stamp();
            if stamp.is_some() || Instant::now() > deadline {
                return stamp;
            }
        }
    }

    fn wait(
        &mut self,
        h: usize,
        seen: Option<u64>,
        during: Option<(usize, &TokenSet, Option<u64>)>,
    ) -> (
        Result<bool, StoreError>,
        bool,
        Option<Result<u64, StoreError>>,
    ) {
        let waiter = self.stores[h].clone();
        let started = Instant::now();
        let thread = std::thread::spawn(move || waiter.wait_for_change(seen, WAIT));
        let save = during.map(|(o, t, e)| {
            // Once the waiter listens.
            std::thread::sleep(Duration::from_millis(100));
            self.stores[o].save(t, e)
        });
        let result = thread.join().expect("the waiter");
        let early = started.elapsed() < WAIT;
        (result, early, save)
    }
}

fn compare(kind: &str, real: &mut dyn FnMut(&str) -> Box<dyn Subject>, model: Kind) {
    let mut drifted = Vec::new();
    for (name, scenario) in scenarios() {
        let mut subject = real(name);
        let real_run: Observed = run(subject.as_mut(), &scenario);
        let model_run = run(&mut ModelSubject::new(model), &scenario);
        if real_run != model_run {
            drifted.push(format!(
                "{kind}: {name}\n  real:  {real_run:?}\n  model: {model_run:?}"
            ));
        }
    }
    assert!(
        drifted.is_empty(),
        "the model drifted from the store:\n{}",
        drifted.join("\n")
    );
}

#[test]
fn the_file_model_observes_what_the_real_file_store_does() {
    compare(
        "file",
        &mut |name| Box::new(RealFile::new(&name.replace(' ', "-"))),
        Kind::File,
    );
}

#[test]
fn the_redis_model_observes_what_a_real_redis_does() {
    let server = Server::start();
    compare(
        "redis",
        &mut |name| Box::new(RealRedis::new(&server, &name.replace(' ', "-"))),
        Kind::Redis {
            lease_ttl_us: LEASE_TTL.as_micros() as u64,
        },
    );
}
