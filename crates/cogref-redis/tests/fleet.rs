//! A fleet of processes sharing one lineage through Redis, against the emulator with rotation:
//! one refresh per expiry, no `RefreshTokenReuseException`, a valid token in every process at
//! every moment; a lease holder killed mid-refresh; Redis restarted under the fleet.
//!
//! The processes are this test binary run again with `COGREF_FLEET_CHILD` set: the
//! `fleet_child_entry` test then acts as the child and does nothing otherwise.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use cogref_core::{CallConfig, EndpointConfig, RefreshInput, RetryConfig, TokenSet};
use cogref_emulator::{Emulator, Fault};
use cogref_redis::RedisStore;
use cogref_session::secrecy::ExposeSecret;
use cogref_session::{
    BlockingTokenManager, Session, SessionConfig, SessionEvent, StoreError, StoreGuard, TokenStore,
    Versioned,
};
use common::*;

const CLIENT: &str = "cogrefdemoclient";

// ---------------------------------------------------------------------------------------------
// The child process.

/// A store that kills its process when asked to save: the crash lands exactly between Cognito's
/// rotation and the new token reaching Redis.
struct CrashOnSave(RedisStore);

impl TokenStore for CrashOnSave {
    fn load(&self) -> Result<Option<Versioned>, StoreError> {
        self.0.load()
    }
    fn save(&self, _: &TokenSet, _: Option<u64>) -> Result<u64, StoreError> {
        std::process::abort()
    }
    fn try_lock(&self) -> Result<Option<StoreGuard>, StoreError> {
        self.0.try_lock()
    }
    fn wait_for_change(&self, seen: Option<u64>, timeout: Duration) -> Result<bool, StoreError> {
        self.0.wait_for_change(seen, timeout)
    }
}

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("{name} is set by the parent"))
}

/// What a child prints instead of a token: a hash that is the same in every process of this
/// binary (SipHash with fixed keys), so outputs can be compared and no token is ever printed.
fn fingerprint(token: &str) -> String {
    use std::hash::{DefaultHasher, Hash, Hasher};
    let mut hasher = DefaultHasher::new();
    token.hash(&mut hasher);
    format!("{:016x}", hasher.finish())
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

#[test]
#[allow(clippy::print_stdout)]
fn fleet_child_entry() {
    let Ok(mode) = std::env::var("COGREF_FLEET_CHILD") else {
        return;
    };
    let store = RedisStore::builder(env("COGREF_FLEET_REDIS"), env("COGREF_FLEET_LINEAGE"))
        .lease_ttl(Duration::from_millis(
            env("COGREF_FLEET_LEASE_MS").parse().expect("ms"),
        ))
        .connect_timeout(Duration::from_millis(500))
        .io_timeout(Duration::from_millis(500))
        .build()
        .expect("store");
    let store: Arc<dyn TokenStore> = if std::env::var("COGREF_FLEET_CRASH_ON_SAVE").is_ok() {
        Arc::new(CrashOnSave(store))
    } else {
        Arc::new(store)
    };
    let endpoint = EndpointConfig::new()
        .endpoint_url(env("COGREF_FLEET_ENDPOINT"))
        .resolve()
        .expect("endpoint");
    let config = CallConfig {
        retry: RetryConfig::rotation_safe(),
        ..CallConfig::default()
    };
    let client = cogref_blocking::client(endpoint, config);
    // The template's token is a placeholder: the store holds the lineage.
    let template = RefreshInput::builder()
        .refresh_token("unused-placeholder")
        .client_id(CLIENT)
        .build()
        .expect("valid");
    let events = Arc::new([
        AtomicUsize::new(0),
        AtomicUsize::new(0),
        AtomicUsize::new(0),
    ]);
    let seen = events.clone();
    let manager = BlockingTokenManager::builder(client, template, store)
        .lock_timeout(Duration::from_secs(20))
        .on_event(move |e| {
            let i = match e {
                SessionEvent::Refreshed { .. } => 0,
                SessionEvent::Adopted => 1,
                SessionEvent::StoreFailed(_) => 2,
                _ => return,
            };
            seen[i].fetch_add(1, Ordering::SeqCst);
        })
        .build()
        .expect("manager");
    let seconds: u64 = env("COGREF_FLEET_SECONDS").parse().expect("seconds");
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let (mut served, mut errors, mut invalid) = (0usize, 0usize, 0usize);
    let mut tokens = BTreeSet::new();
    loop {
        match manager.access_token() {
            Ok(token) => {
                served += 1;
                let claims = cogref_core::jwt::decode_claims(token.expose_secret());
                if !claims.is_ok_and(|c| c.exp.is_some_and(|exp| exp > unix_now())) {
                    invalid += 1;
                }
                tokens.insert(fingerprint(token.expose_secret()));
            }
            Err(e) => {
                errors += 1;
                println!(
                    "\nCHILD error={}",
                    if e.requires_sign_in() {
                        "sign-in-required".to_owned()
                    } else {
                        e.to_string().replace('\n', " ")
                    }
                );
            }
        }
        if mode == "once" || Instant::now() >= deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    println!("\nCHILD served={served}");
    println!("CHILD errors={errors}");
    println!("CHILD invalid={invalid}");
    println!("CHILD refreshed={}", events[0].load(Ordering::SeqCst));
    println!("CHILD adopted={}", events[1].load(Ordering::SeqCst));
    println!("CHILD store_failed={}", events[2].load(Ordering::SeqCst));
    for token in tokens {
        println!("CHILD token={token}");
    }
}

// ---------------------------------------------------------------------------------------------
// The parent.

/// The emulator (on a runtime of its own), the lineage's first refresh token in Redis, and the
/// settings children get.
struct Fleet {
    emulator: Emulator,
    redis_url: String,
    lineage: String,
    lease_ms: u64,
    runtime: tokio::runtime::Runtime,
}

impl Fleet {
    fn new(name: &str, redis_url: &str, grace_secs: u32, access_secs: u64, lease_ms: u64) -> Self {
        let (runtime, emulator) = emulator();
        let lineage = seeded_lineage(&emulator, redis_url, name, grace_secs, access_secs);
        Self {
            emulator,
            redis_url: redis_url.to_owned(),
            lineage,
            lease_ms,
            runtime,
        }
    }

    fn store(&self) -> RedisStore {
        RedisStore::builder(&self.redis_url, &self.lineage)
            .build()
            .expect("store")
    }

    fn stored_refresh_token(&self) -> String {
        self.store()
            .load()
            .expect("load")
            .expect("stored")
            .tokens
            .refresh_token
            .expose_secret()
            .to_owned()
    }

    fn spawn(&self, mode: &str, seconds: u64, crash_on_save: bool) -> Child {
        let mut command = Command::new(std::env::current_exe().expect("test binary"));
        command
            .args([
                "--exact",
                "fleet_child_entry",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("COGREF_FLEET_CHILD", mode)
            .env("COGREF_FLEET_ENDPOINT", self.emulator.endpoint_url())
            .env("COGREF_FLEET_REDIS", &self.redis_url)
            .env("COGREF_FLEET_LINEAGE", &self.lineage)
            .env("COGREF_FLEET_LEASE_MS", self.lease_ms.to_string())
            .env("COGREF_FLEET_SECONDS", seconds.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        if crash_on_save {
            command.env("COGREF_FLEET_CRASH_ON_SAVE", "1");
        }
        command.spawn().expect("spawn child")
    }

    fn refusals(&self) -> BTreeMap<&'static str, usize> {
        [
            "RefreshTokenReuseException",
            "NotAuthorizedException",
            "ResourceNotFoundException",
        ]
        .into_iter()
        .map(|code| (code, self.emulator.refusals(code)))
        .filter(|(_, n)| *n > 0)
        .collect()
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        // Hung requests (the kill tests) must not hold the test up.
        let runtime = std::mem::replace(
            &mut self.runtime,
            tokio::runtime::Builder::new_current_thread()
                .build()
                .expect("runtime"),
        );
        runtime.shutdown_background();
    }
}

/// What one child reported.
#[derive(Debug, Default)]
struct Report {
    values: BTreeMap<String, String>,
    tokens: BTreeSet<String>,
    errors: Vec<String>,
}

impl Report {
    fn of(output: &Output) -> Self {
        let mut report = Report::default();
        for line in String::from_utf8_lossy(&output.stdout).lines() {
            let Some((k, v)) = line.strip_prefix("CHILD ").and_then(|l| l.split_once('=')) else {
                continue;
            };
            match k {
                "token" => {
                    report.tokens.insert(v.to_owned());
                }
                "error" => report.errors.push(v.to_owned()),
                _ => {
                    report.values.insert(k.to_owned(), v.to_owned());
                }
            }
        }
        report
    }

    fn count(&self, key: &str) -> usize {
        self.values
            .get(key)
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("child reported no {key}: {self:?}"))
    }
}

fn finish(child: Child) -> (Output, Report) {
    let output = child.wait_with_output().expect("child output");
    let report = Report::of(&output);
    (output, report)
}

#[test]
fn a_fleet_of_processes_shares_one_lineage_through_many_expiries_with_one_refresh_each() {
    let redis = redis();
    // 3-second tokens (2 s counted locally), refreshed 1 s ahead: a dozen expiries in 12 s.
    // Grace period 0: any second use of a rotated-out token would be refused and counted.
    let fleet = Fleet::new("many-expiries", &redis.url, 0, 3, 10_000);
    let seconds = 12;
    let children: Vec<Child> = (0..4)
        .map(|_| fleet.spawn("loop", seconds, false))
        .collect();
    let reports: Vec<Report> = children
        .into_iter()
        .map(|c| {
            let (output, report) = finish(c);
            assert!(output.status.success(), "child failed: {report:?}");
            report
        })
        .collect();

    let granted = fleet.emulator.refreshes_granted();
    assert_eq!(fleet.refusals(), BTreeMap::new(), "no refresh refused");
    assert_eq!(
        fleet.emulator.requests_served(),
        granted,
        "every call to Cognito was a granted refresh"
    );
    // One refresh per expiry: about one a second, never two for one lineage step (grace 0
    // would have refused the second).
    assert!(
        (seconds as usize / 2..=seconds as usize + 3).contains(&granted),
        "{granted} refreshes in {seconds} s"
    );
    let all: BTreeSet<&String> = reports.iter().flat_map(|r| &r.tokens).collect();
    assert_eq!(all.len(), granted, "each refresh's token reached the fleet");
    let refreshed: usize = reports.iter().map(|r| r.count("refreshed")).sum();
    assert_eq!(refreshed, granted);
    for report in &reports {
        assert_eq!(report.count("errors"), 0, "{:?}", report.errors);
        assert_eq!(
            report.count("invalid"),
            0,
            "a process held an expired token"
        );
        assert!(report.count("served") > 100);
        // Every process followed the lineage, adopting what others refreshed.
        assert!(
            report.tokens.len() + 1 >= granted,
            "a process saw {} of {granted} tokens",
            report.tokens.len()
        );
    }
    let adopted: usize = reports.iter().map(|r| r.count("adopted")).sum();
    assert!(
        adopted >= granted,
        "{adopted} adoptions for {granted} refreshes"
    );
    let served: usize = reports.iter().map(|r| r.count("served")).sum();
    eprintln!(
        "fleet: {granted} refreshes in {seconds} s for 4 processes, {adopted} adoptions, {served} tokens served"
    );
}

/// Waits until the emulator has received `n` calls.
fn wait_for_requests(fleet: &Fleet, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while fleet.emulator.requests_served() < n {
        assert!(Instant::now() < deadline, "no request reached the emulator");
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn a_lease_holder_killed_before_the_response_is_taken_over_once_its_lease_runs_out() {
    let redis = redis();
    let fleet = Fleet::new("killed-before", &redis.url, 0, 3600, 1_500);
    let first = fleet.stored_refresh_token();
    // The first holder's call hangs in the emulator before it is processed.
    fleet.emulator.inject(Fault::Delay {
        count: 1,
        millis: 600_000,
    });
    let mut holder = fleet.spawn("once", 0, false);
    wait_for_requests(&fleet, 1);
    let lease: Option<String> = redis::cmd("GET")
        .arg(fleet.store().lease_key())
        .query(&mut raw(&redis.url))
        .expect("get");
    assert!(
        lease.is_some(),
        "the holder has the lease while it refreshes"
    );
    holder.kill().expect("kill");
    let _ = holder.wait();

    let started = Instant::now();
    let (output, report) = finish(fleet.spawn("once", 0, false));
    assert!(output.status.success(), "{report:?}");
    assert_eq!(report.count("errors"), 0, "{:?}", report.errors);
    assert_eq!(report.count("refreshed"), 1, "the successor refreshed");
    assert_eq!(report.tokens.len(), 1);
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "taken over after the lease, not the lock timeout"
    );
    assert_eq!(fleet.emulator.refreshes_granted(), 1);
    assert_eq!(fleet.refusals(), BTreeMap::new());
    assert_ne!(
        fleet.stored_refresh_token(),
        first,
        "the rotation was saved"
    );
}

#[test]
fn a_lease_holder_killed_after_the_response_is_recovered_within_the_grace_period() {
    let redis = redis();
    let fleet = Fleet::new("killed-after", &redis.url, 30, 3600, 1_000);
    let first = fleet.stored_refresh_token();
    // Cognito rotates, then the holder dies before the new token reaches Redis.
    let (output, _) = finish(fleet.spawn("once", 0, true));
    assert!(!output.status.success(), "the holder crashed in save");
    assert_eq!(fleet.emulator.refreshes_granted(), 1);
    assert_eq!(fleet.stored_refresh_token(), first, "nothing was saved");

    // The successor uses the stored (rotated-out) token inside the grace period.
    let (output, report) = finish(fleet.spawn("once", 0, false));
    assert!(output.status.success(), "{report:?}");
    assert_eq!(report.count("errors"), 0, "{:?}", report.errors);
    assert_eq!(fleet.emulator.refreshes_granted(), 2);
    assert_eq!(fleet.refusals(), BTreeMap::new());
    assert_ne!(fleet.stored_refresh_token(), first);
}

#[test]
fn a_holder_whose_lease_ran_out_during_a_slow_refresh_cannot_overwrite_the_newer_set() {
    let redis = redis();
    // Leases of half a second; the first holder's call takes two seconds.
    let fleet = Fleet::new("stale-holder", &redis.url, 30, 3600, 500);
    fleet.emulator.inject(Fault::Delay {
        count: 1,
        millis: 2_000,
    });
    let slow = fleet.spawn("once", 0, false);
    wait_for_requests(&fleet, 1);
    // The second process takes over once the lease has run out, refreshes and saves first.
    let (output, fast) = finish(fleet.spawn("once", 0, false));
    assert!(output.status.success(), "{fast:?}");
    assert_eq!(fast.count("refreshed"), 1);
    let stored_by_fast = fleet.stored_refresh_token();
    // The slow one's refresh succeeds too (inside the grace period), but its save against the
    // version it loaded is refused: it adopts the newer set instead.
    let (output, slow) = finish(slow);
    assert!(output.status.success(), "{slow:?}");
    assert_eq!(slow.count("errors"), 0, "{:?}", slow.errors);
    assert_eq!(slow.count("adopted"), 1, "{slow:?}");
    assert_eq!(
        slow.tokens, fast.tokens,
        "both hand out the stored set's token"
    );
    assert_eq!(
        fleet.stored_refresh_token(),
        stored_by_fast,
        "not overwritten"
    );
    assert_eq!(fleet.emulator.refreshes_granted(), 2);
}

#[test]
fn without_a_grace_period_a_token_lost_with_its_process_means_signing_in_again() {
    // The limit no store can lift: the only copy of the new token died with the process.
    let redis = redis();
    let fleet = Fleet::new("killed-after-no-grace", &redis.url, 0, 3600, 1_000);
    let (output, _) = finish(fleet.spawn("once", 0, true));
    assert!(!output.status.success());
    let (_, report) = finish(fleet.spawn("once", 0, false));
    assert_eq!(report.errors, ["sign-in-required"]);
    assert_eq!(fleet.emulator.refusals("RefreshTokenReuseException"), 1);
}

/// Waits until the stored version differs from `seen`; returns the new one.
fn wait_for_new_version(store: &RedisStore, seen: Option<u64>) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let now = store.load().expect("load").map(|v| v.version);
        if let Some(v) = now
            && now != seen
        {
            return v;
        }
        assert!(Instant::now() < deadline, "no refresh was stored");
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn the_fleet_keeps_its_session_through_a_redis_restart_that_loses_the_data() {
    let mut server = RedisServer::start();
    // 8-second tokens (7 s counted locally), refreshed 3.5 s ahead: an outage over the due time
    // leaves seconds of slack for the retries (one a second) once Redis is back, even on a
    // loaded machine.
    let fleet = Fleet::new("restart", &server.url(), 0, 8, 10_000);
    let store = fleet.store();
    let seeded = store.load().expect("load").map(|v| v.version);
    let seconds = 12;
    let children: Vec<Child> = (0..3)
        .map(|_| fleet.spawn("loop", seconds, false))
        .collect();
    // The first refresh is stored now. Redis goes down just before the next is due, stays down
    // across it, then comes back empty.
    wait_for_new_version(&store, seeded);
    let stored = store.load().expect("load").expect("stored").tokens;
    let now = cogref_core::Now::new(SystemTime::now(), std::time::Instant::now());
    let due = Session::new(stored, SessionConfig::default(), now)
        .refresh_due_at()
        .expect("a due time");
    let outage = due - Duration::from_millis(300);
    std::thread::sleep(outage.duration_since(SystemTime::now()).unwrap_or_default());
    server.kill();
    std::thread::sleep(Duration::from_millis(1_200));
    server.restart();
    let reports: Vec<Report> = children
        .into_iter()
        .map(|c| {
            let (output, report) = finish(c);
            assert!(output.status.success(), "{report:?}");
            report
        })
        .collect();
    assert_eq!(fleet.refusals(), BTreeMap::new(), "no refresh refused");
    for report in &reports {
        assert_eq!(report.count("errors"), 0, "{:?}", report.errors);
        assert_eq!(report.count("invalid"), 0);
    }
    let store_failures: usize = reports.iter().map(|r| r.count("store_failed")).sum();
    assert!(store_failures > 0, "the outage fell on a due refresh");
    let granted = fleet.emulator.refreshes_granted();
    let all: BTreeSet<&String> = reports.iter().flat_map(|r| &r.tokens).collect();
    assert_eq!(
        all.len(),
        granted,
        "one refresh per expiry across the restart"
    );
    assert!(
        granted >= 4,
        "refreshes went on after the restart: {granted}"
    );
    // The lineage was written again after the data was lost.
    assert!(store.load().expect("load").is_some());
    eprintln!("restart: {granted} refreshes, {store_failures} store failures reported");
}
