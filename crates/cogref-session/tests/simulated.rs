//! Rules the deterministic simulator (`crates/cogref-sim`, `cargo xtask sim`) found broken,
//! each written down here as a plain test too. The simulator's regression seeds for them are
//! in `crates/cogref-sim/regressions.txt`.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use cogref_core::driver::ManualEnvironment;
use cogref_core::{Environment, SessionConfig};
use cogref_session::secrecy::ExposeSecret;
use cogref_session::{BlockingTokenManager, FileStore, MemoryStore, TokenManager};
use common::*;

/// A fresh folder under the system's temporary one, removed at the end of the test.
struct TempDir(std::path::PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!(
            "cogref-simulated-{name}-{}-{}",
            std::process::id(),
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos())
        ));
        std::fs::create_dir_all(&dir).expect("temp dir");
        Self(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The shared clocks of a fleet, read by one host whose wall clock is `ahead_secs` ahead.
#[derive(Clone)]
struct Host {
    clock: ManualEnvironment,
    ahead_secs: u64,
    seed: Arc<AtomicUsize>,
}

impl Environment for Host {
    fn now(&self) -> std::time::Instant {
        self.clock.now()
    }

    fn wall_clock(&self) -> SystemTime {
        self.clock.wall_clock() + Duration::from_secs(self.ahead_secs)
    }

    fn random_seed(&self) -> u64 {
        self.seed.fetch_add(1, Ordering::Relaxed) as u64
    }
}

// Simulator seed `rotation-off-skewed-writer`: with rotation off every set holds the same
// refresh token, and a manager that had adopted a set written by a host whose clock is ahead
// compared the next set's times (stamped by a host with a right clock, so earlier-looking)
// with its own instead of the store's version: it kept its expiring set and called Cognito
// again for a due time a sibling had just refreshed.

#[test]
fn a_later_write_of_the_same_refresh_token_is_adopted_whatever_its_writers_clock_says() {
    let dir = TempDir::new("skewed-writer");
    let path = dir.0.join("tokens.json");
    let clock = clock();
    let fast = Host {
        clock: clock.clone(),
        ahead_secs: 25,
        seed: Arc::default(),
    };
    let right = Host {
        ahead_secs: 0,
        ..fast.clone()
    };
    // Ten-second tokens, no rotation: each set lives 9 s here and is due 4.5 s before.
    let a_cognito = Scripted::new(&clock, &[ok("a-fast", 10, None)]);
    let b_cognito = Scripted::new(&clock, &[ok("a-b", 10, None)]);
    let c_cognito = Scripted::new(&clock, &[ok("a-c", 10, None)]);
    let manager = |transport: &Scripted, host: &Host| {
        BlockingTokenManager::builder(
            client_on(transport.clone(), host.clone()),
            template("r0"),
            FileStore::new(&path),
        )
        .build()
        .expect("manager")
    };
    // A, on the host 25 s ahead, refreshes first; B and C adopt its set.
    let a = manager(&a_cognito, &fast);
    assert_eq!(a.access_token().expect("A").expose_secret(), "a-fast");
    let b = manager(&b_cognito, &right);
    let c = manager(&c_cognito, &right);
    assert_eq!(b.access_token().expect("B").expose_secret(), "a-fast");
    assert_eq!(c.access_token().expect("C").expose_secret(), "a-fast");
    // 5 s later the set is due: B refreshes it.
    clock.advance(Duration::from_secs(5));
    assert_eq!(b.access_token().expect("B").expose_secret(), "a-b");
    // C finds its set due too, takes the lock and finds B's, stored after the one it holds.
    clock.advance(Duration::from_millis(500));
    assert_eq!(
        c.access_token().expect("C").expose_secret(),
        "a-b",
        "C adopts B's set, valid for 8.5 s more"
    );
    assert!(
        c_cognito.sent().is_empty(),
        "C called Cognito for B's due time"
    );
}

/// An async transport on the manual clock: its sleeps move the clock, its tasks run on tokio.
#[derive(Clone)]
struct ManualAsync(Scripted);

impl cogref_core::AsyncTransport for ManualAsync {
    async fn send(
        &self,
        request: cogref_core::driver::HttpRequest,
        options: cogref_core::SendOptions,
    ) -> Result<cogref_core::driver::HttpResponse, cogref_core::Error> {
        cogref_core::BlockingTransport::send(&self.0, request, options)
    }

    async fn sleep(&self, duration: Duration) {
        self.0.clock.advance(duration);
        tokio::task::yield_now().await;
    }

    fn spawn(&self, task: cogref_core::driver::DetachedTask) {
        tokio::spawn(task);
    }
}

// Simulator seed `refresh-now-starved`: `refresh_now()` on the async manager waited for a
// refresh another caller had under way, then ignored its result even when that refresh had
// started after the call, and waited out the floor again; with the background refresher (or
// callers) refreshing short-lived tokens each time the floor allowed, it never returned.

#[tokio::test(flavor = "current_thread")]
async fn refresh_now_returns_the_tokens_of_a_refresh_another_caller_started_after_it() {
    let clock = clock();
    let cognito = Scripted::new(
        &clock,
        &[
            ok("a1", 3, Some("r1")),
            ok("a2", 3, Some("r2")),
            ok("a3", 3, Some("r3")),
        ],
    );
    let manager = TokenManager::builder(
        client(ManualAsync(cognito.clone()), &clock),
        template("r0"),
        MemoryStore::new(),
    )
    .session_config(SessionConfig {
        min_refresh_interval: Duration::from_secs(1),
        ..SessionConfig::default()
    })
    .build()
    .await
    .expect("manager");
    assert_eq!(
        manager.access_token().await.expect("a1").expose_secret(),
        "a1"
    );
    // refresh_now is asked for while the floor (1 s) still holds it back.
    clock.advance(Duration::from_millis(10));
    let forced = tokio::spawn({
        let manager = manager.clone();
        async move { manager.refresh_now().await }
    });
    tokio::task::yield_now().await;
    // Before it may refresh, the token (2 s of life) is due for everyone: a caller's refresh
    // starts after the floor, after refresh_now was called.
    clock.advance(Duration::from_millis(1500));
    assert_eq!(
        manager.access_token().await.expect("a2").expose_secret(),
        "a2"
    );
    let token = tokio::time::timeout(Duration::from_secs(10), forced)
        .await
        .expect("refresh_now returns")
        .expect("task")
        .expect("a token");
    assert_eq!(
        token.expose_secret(),
        "a2",
        "the refresh that started after it"
    );
    assert_eq!(
        cognito.sent(),
        ["r0", "r1"],
        "no second refresh for one ask"
    );
}

/// An async transport on the manual clock whose sleeps only yield: the test moves the clock.
#[derive(Clone)]
struct TestDrivesTime(Scripted);

impl cogref_core::AsyncTransport for TestDrivesTime {
    async fn send(
        &self,
        request: cogref_core::driver::HttpRequest,
        options: cogref_core::SendOptions,
    ) -> Result<cogref_core::driver::HttpResponse, cogref_core::Error> {
        cogref_core::BlockingTransport::send(&self.0, request, options)
    }

    async fn sleep(&self, _: Duration) {
        tokio::task::yield_now().await;
    }

    fn spawn(&self, task: cogref_core::driver::DetachedTask) {
        tokio::spawn(task);
    }
}

// Simulator seed `refresh-now-clock-stepped-back`: the async refresh_now() slept out the floor
// outside the store's lock, then looked again; a sibling refreshing at the end of each floor
// restarted it, and with the wall clock stepped back after the call their refreshes looked
// older than it, so none answered it: it never returned. It now waits out the floor holding
// the lock, as the blocking manager's does.

#[tokio::test(flavor = "current_thread")]
async fn refresh_now_waits_out_the_floor_holding_the_stores_lock() {
    let clock = clock();
    let cognito = Scripted::new(
        &clock,
        &[ok("a1", 3600, Some("r1")), ok("a2", 3600, Some("r2"))],
    );
    let store = MemoryStore::new();
    let manager = TokenManager::builder(
        client(TestDrivesTime(cognito.clone()), &clock),
        template("r0"),
        store.clone(),
    )
    .build()
    .await
    .expect("manager");
    assert_eq!(
        manager.access_token().await.expect("a1").expose_secret(),
        "a1"
    );
    clock.advance(Duration::from_millis(10));
    let forced = tokio::spawn({
        let manager = manager.clone();
        async move { manager.refresh_now().await }
    });
    // Half-way through the floor (1 s), no sibling can take the lock and refresh first.
    clock.advance(Duration::from_millis(490));
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
    assert!(
        cogref_session::TokenStore::try_lock(&store)
            .expect("memory store")
            .is_none(),
        "refresh_now waits for the floor without the lock"
    );
    clock.advance(Duration::from_millis(500));
    let token = tokio::time::timeout(Duration::from_secs(10), forced)
        .await
        .expect("refresh_now returns")
        .expect("task")
        .expect("a token");
    assert_eq!(token.expose_secret(), "a2");
    assert_eq!(cognito.sent(), ["r0", "r1"]);
}

/// A file store whose next save is applied but reports a failure, as a Redis command does when
/// its reply is lost after the server ran it.
struct ReplyLost {
    inner: FileStore,
    fail_next_save: std::sync::atomic::AtomicBool,
}

impl cogref_session::TokenStore for ReplyLost {
    fn load(&self) -> Result<Option<cogref_session::Versioned>, cogref_session::StoreError> {
        self.inner.load()
    }

    fn save(
        &self,
        tokens: &cogref_core::TokenSet,
        expected: Option<u64>,
    ) -> Result<u64, cogref_session::StoreError> {
        let saved = self.inner.save(tokens, expected)?;
        if self.fail_next_save.swap(false, Ordering::SeqCst) {
            return Err(cogref_session::StoreError::Other(
                "the reply was lost".into(),
            ));
        }
        Ok(saved)
    }

    fn try_lock(&self) -> Result<Option<cogref_session::StoreGuard>, cogref_session::StoreError> {
        self.inner.try_lock()
    }
}

// Simulator seed `own-set-reread-after-step-back`: a save applied though it reported a failure
// left this manager's own set in the store under a version it did not know; the next look at
// the store adopted it as newer and re-anchored its expiry on the wall clock, which had been
// stepped back since: its own token was served past the expiry its monotonic clock had fixed.

#[test]
fn re_reading_its_own_set_never_extends_a_token_past_its_monotonic_expiry() {
    let dir = TempDir::new("own-set");
    let clock = common::SteppedClock::new();
    let cognito = Scripted::new(&common::clock(), &[ok("a1", 10, None), ok("a2", 10, None)]);
    let store = ReplyLost {
        inner: FileStore::new(dir.0.join("tokens.json")),
        fail_next_save: std::sync::atomic::AtomicBool::new(true),
    };
    // The sign-in's refresh token, stored: the manager starts from a known version.
    cogref_session::TokenStore::save(
        &store.inner,
        &cogref_core::TokenSet::from_refresh_token("r0", None),
        None,
    )
    .expect("stored");
    let manager = BlockingTokenManager::builder(
        client_on(cognito.clone(), clock.clone()),
        template("r0"),
        store,
    )
    .build()
    .expect("manager");
    // 10 s tokens live 9 s here, due 4.5 s before; the save's reply is lost.
    assert_eq!(manager.access_token().expect("a1").expose_secret(), "a1");
    clock.step_wall(-7200);
    // Due: the refresh takes the lock and finds its own set stored under a new version.
    clock.advance(Duration::from_secs(5));
    let _ = manager.access_token();
    clock.advance(Duration::from_millis(4200));
    let token = manager.access_token().expect("a token");
    assert_ne!(
        token.expose_secret(),
        "a1",
        "a1 expired 9 s after its refresh by this process's monotonic clock"
    );
}

// Simulator seed `unsaved-rotation-skewed-sibling`: after a rotation whose save reported a
// failure (it had in fact been applied), a sibling adopted the stored set and rotated it. The
// manager, holding the dead token, compared the sibling's stored set with its own by their
// wall-clock refresh times; its own clock was ahead, so the sibling's looked older, and it
// sent its dead token (reuse: signed out with the lineage alive in the store). A write after
// the version its failed save started from is later, whatever the clocks say.

#[test]
fn after_a_failed_save_any_later_write_is_adopted_whatever_the_clocks_say() {
    // The failed save replaced the sign-in's stored set, or created the store's first set.
    for seeded in [true, false] {
        failed_save_then_a_sibling_rotates(seeded);
    }
}

fn failed_save_then_a_sibling_rotates(seeded: bool) {
    let dir = TempDir::new("unsaved-rotation");
    let path = dir.0.join("tokens.json");
    let clock = clock();
    let ahead = Host {
        clock: clock.clone(),
        ahead_secs: 7200,
        seed: Arc::default(),
    };
    let right = Host {
        ahead_secs: 0,
        ..ahead.clone()
    };
    // Day-long tokens: nothing is due; refresh_now drives the refreshes.
    let a_cognito = Scripted::new(
        &clock,
        &[ok("a-1", 86_400, Some("r1")), ok("a-3", 86_400, Some("r3"))],
    );
    let b_cognito = Scripted::new(&clock, &[ok("b-2", 86_400, Some("r2"))]);
    // A's save of its rotation is applied but reports a failure.
    if seeded {
        cogref_session::TokenStore::save(
            &FileStore::new(&path),
            &cogref_core::TokenSet::from_refresh_token("r0", None),
            None,
        )
        .expect("stored");
    }
    let a = BlockingTokenManager::builder(
        client_on(a_cognito.clone(), ahead.clone()),
        template("r0"),
        ReplyLost {
            inner: FileStore::new(&path),
            fail_next_save: std::sync::atomic::AtomicBool::new(true),
        },
    )
    .build()
    .expect("A");
    assert!(a.access_token().is_err(), "RotatedTokenNotSaved");
    // B adopts r1 from the store and, 10 minutes later, rotates it: r1 is dead at once.
    let b = BlockingTokenManager::builder(
        client_on(b_cognito.clone(), right.clone()),
        template("r0"),
        FileStore::new(&path),
    )
    .build()
    .expect("B");
    clock.advance(Duration::from_secs(600));
    assert_eq!(b.refresh_now().expect("B").expose_secret(), "b-2");
    // A refreshes: from B's set (refreshed 10 minutes after A's by the clocks, though A's clock,
    // two hours ahead, stamped its own later), never from the dead r1.
    let token = a.refresh_now().expect("A refreshes from B's set");
    assert_eq!(token.expose_secret(), "a-3", "seeded: {seeded}");
    assert_eq!(
        a_cognito.sent(),
        ["r0", "r2"],
        "A sent a dead token (seeded: {seeded})"
    );
}

/// Something a test runs at the next sleep.
type SharedHook = Arc<std::sync::Mutex<Option<common::Hook>>>;

/// An async transport on the manual clock whose sleeps move the clock; the next sleep then runs
/// a hook (a sibling acting meanwhile).
#[derive(Clone)]
struct DuringSleep {
    inner: Scripted,
    hook: SharedHook,
}

impl cogref_core::AsyncTransport for DuringSleep {
    async fn send(
        &self,
        request: cogref_core::driver::HttpRequest,
        options: cogref_core::SendOptions,
    ) -> Result<cogref_core::driver::HttpResponse, cogref_core::Error> {
        cogref_core::BlockingTransport::send(&self.inner, request, options)
    }

    async fn sleep(&self, duration: Duration) {
        self.inner.clock.advance(duration);
        let hook = self.hook.lock().expect("hook").take();
        if let Some(hook) = hook {
            hook();
        }
        tokio::task::yield_now().await;
    }

    fn spawn(&self, task: cogref_core::driver::DetachedTask) {
        tokio::spawn(task);
    }
}

// Simulator seed `lease-lost-during-the-floor`: refresh_now() waits out the floor holding the
// store's lock, and then refreshed with the set it had; a Redis lease shorter than the wait
// ran out meanwhile, a sibling rotated the lineage, and the stale refresh token went to
// Cognito (reuse). It looks at the store again after the wait.

#[tokio::test(flavor = "current_thread")]
async fn after_waiting_out_the_floor_refresh_now_looks_at_the_store_again() {
    let dir = TempDir::new("floor-wait");
    let path = dir.0.join("tokens.json");
    let clock = clock();
    let cognito = Scripted::new(
        &clock,
        &[ok("a1", 3600, Some("r1")), ok("a3", 3600, Some("r3"))],
    );
    let hook: SharedHook = Arc::default();
    let manager = TokenManager::builder(
        client(
            DuringSleep {
                inner: cognito.clone(),
                hook: hook.clone(),
            },
            &clock,
        ),
        template("r0"),
        FileStore::new(&path),
    )
    .build()
    .await
    .expect("manager");
    assert_eq!(
        manager.access_token().await.expect("a1").expose_secret(),
        "a1"
    );
    clock.advance(Duration::from_millis(100));
    // While it waits out the floor, a sibling whose lease outlived ours rotates r1 into r2.
    let sibling_clock = clock.clone();
    let sibling_path = path.clone();
    *hook.lock().expect("hook") = Some(Box::new(move || {
        let store = FileStore::new(&sibling_path);
        let current = cogref_session::TokenStore::load(&store)
            .expect("readable")
            .expect("stored");
        let now = sibling_clock.wall_clock();
        let set = cogref_core::TokenSet::new(
            "r2".to_owned().into(),
            Some("a2".to_owned().into()),
            None,
            None,
            Some(now + Duration::from_secs(3599)),
            Some(Duration::from_secs(3599)),
        )
        .with_refreshed_at(Some(now - Duration::from_millis(1)))
        .bound_to(
            current.tokens.client_id.clone(),
            current.tokens.endpoint.clone(),
        );
        cogref_session::TokenStore::save(&store, &set, Some(current.version)).expect("saved");
    }));
    let token = manager.refresh_now().await.expect("a token");
    assert_eq!(
        token.expose_secret(),
        "a2",
        "the sibling's refresh, started after the call"
    );
    assert_eq!(cognito.sent(), ["r0"], "the rotated-out r1 went to Cognito");
}

// Simulator seed `refresh-now-queue-after-step-back`: refresh_now() judged which refresh
// answered it by wall-clock times. Calls made before the wall clock was stepped back found
// every later refresh of their own process older than themselves, so each needed a refresh of
// its own, one floor after the other (up to a minute each while tokens come back already
// due): a queue of calls that never drained. This process's refreshes are judged on the
// monotonic clock.

#[tokio::test(flavor = "current_thread")]
async fn refresh_now_calls_share_a_refresh_that_started_after_them_across_a_clock_step() {
    let clock = common::SteppedClock::new();
    let cognito = Scripted::new(
        &common::clock(),
        &[
            ok("a1", 3600, Some("r1")),
            ok("a2", 3600, Some("r2")),
            ok("a3", 3600, Some("r3")),
        ],
    );
    let manager = TokenManager::builder(
        client_on(TestDrivesTime(cognito.clone()), clock.clone()),
        template("r0"),
        MemoryStore::new(),
    )
    .build()
    .await
    .expect("manager");
    assert_eq!(
        manager.access_token().await.expect("a1").expose_secret(),
        "a1"
    );
    let settle = || async {
        for _ in 0..20 {
            tokio::task::yield_now().await;
        }
    };
    // Two refresh_now calls within the floor (1 s); the second waits for the first's refresh.
    clock.advance(Duration::from_millis(10));
    let first = tokio::spawn({
        let manager = manager.clone();
        async move { manager.refresh_now().await }
    });
    settle().await;
    clock.advance(Duration::from_millis(100));
    let second = tokio::spawn({
        let manager = manager.clone();
        async move { manager.refresh_now().await }
    });
    settle().await;
    // Then the wall clock is stepped back an hour, and the floor passes.
    clock.step_wall(-3600);
    clock.advance(Duration::from_secs(1));
    let first = first.await.expect("task").expect("a token");
    let second = tokio::time::timeout(Duration::from_secs(10), second)
        .await
        .expect("the second call returns")
        .expect("task")
        .expect("a token");
    assert_eq!(first.expose_secret(), "a2");
    assert_eq!(
        second.expose_secret(),
        "a2",
        "the first call's refresh started after the second call too"
    );
    assert_eq!(cognito.sent(), ["r0", "r1"]);
}

// Simulator seed `file-recreated-behind-the-clock`: a token file deleted and written afresh
// started at the writer's clock in microseconds; on a host whose clock had been stepped back
// since the old file was created, that was below the old file's generation, so every manager
// that had read the old file took the new one for an older set written back and kept
// refreshing its own, dead, token. A new file starts above every generation the store has
// seen.

#[test]
fn a_token_file_written_afresh_starts_above_every_generation_the_store_has_seen() {
    let dir = TempDir::new("recreated");
    let path = dir.0.join("tokens.json");
    let store = FileStore::new(&path);
    cogref_session::TokenStore::save(
        &store,
        &cogref_core::TokenSet::from_refresh_token("r0", None),
        None,
    )
    .expect("stored");
    // The old file's generation, as a host whose clock ran far ahead (or was since stepped
    // back) wrote it: the year 2096.
    let mut json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).expect("read")).expect("json");
    let old = 4_000_000_000_000_000u64;
    json["generation"] = old.into();
    std::fs::write(&path, json.to_string()).expect("written");
    let reader = store.clone();
    let seen = cogref_session::TokenStore::load(&reader)
        .expect("readable")
        .expect("stored");
    assert_eq!(seen.version, old);
    std::fs::remove_file(&path).expect("deleted");
    let version = cogref_session::TokenStore::save(
        &store,
        &cogref_core::TokenSet::from_refresh_token("r1", None),
        None,
    )
    .expect("written afresh");
    assert!(version > old, "{version} is not above {old}");
}

// Simulator seed `file-recreated-behind-by-a-process-that-never-read-it` (0x3256fd, found by
// the million-seed run): the token file deleted, the host's clock stepped back ten minutes,
// and a process that had never read the old file (it started after the deletion) wrote it
// afresh with a generation from its clock, below the one every other process had seen. They
// all refused it as a rolled-back backup and each refreshed on its own until Cognito refused
// the token they shared as reused. The lock file, which outlives the token file, keeps the
// highest generation written; a file written afresh starts above it whoever writes it.

#[test]
fn a_token_file_written_afresh_by_a_process_that_never_read_it_starts_above_every_generation_written()
 {
    let dir = TempDir::new("recreated-by-another");
    let path = dir.0.join("tokens.json");
    let writer = FileStore::new(&path);
    let first = cogref_session::TokenStore::save(
        &writer,
        &cogref_core::TokenSet::from_refresh_token("r0", None),
        None,
    )
    .expect("stored");
    let mark = std::fs::read_to_string(dir.0.join("tokens.json.lock")).expect("the lock file");
    assert_eq!(mark.trim().parse::<u64>().ok(), Some(first), "{mark:?}");
    // As if that writer's clock had been ten minutes ahead of the next one's.
    let ahead = first + 600_000_000;
    std::fs::write(dir.0.join("tokens.json.lock"), format!("{ahead}\n")).expect("written");
    std::fs::remove_file(&path).expect("deleted");
    // Another process, which never read the file.
    let newcomer = FileStore::new(&path);
    let version = cogref_session::TokenStore::save(
        &newcomer,
        &cogref_core::TokenSet::from_refresh_token("r1", None),
        None,
    )
    .expect("written afresh");
    assert!(version > ahead, "{version} is not above {ahead}");
    // A lock file holding no number (older versions left it empty) records nothing.
    std::fs::write(dir.0.join("tokens.json.lock"), "").expect("emptied");
    std::fs::remove_file(&path).expect("deleted");
    let again = cogref_session::TokenStore::save(
        &FileStore::new(&path),
        &cogref_core::TokenSet::from_refresh_token("r2", None),
        None,
    )
    .expect("written afresh");
    assert!(again > 0);
}

/// A file store that fails chosen loads (by number, from 1) and applies the next save but
/// reports a failure.
struct Flaky {
    inner: FileStore,
    loads: AtomicUsize,
    failing_loads: Vec<usize>,
    fail_next_save: std::sync::atomic::AtomicBool,
}

impl cogref_session::TokenStore for Flaky {
    fn load(&self) -> Result<Option<cogref_session::Versioned>, cogref_session::StoreError> {
        let n = self.loads.fetch_add(1, Ordering::SeqCst) + 1;
        if self.failing_loads.contains(&n) {
            return Err(cogref_session::StoreError::Other("unreachable".into()));
        }
        self.inner.load()
    }

    fn save(
        &self,
        tokens: &cogref_core::TokenSet,
        expected: Option<u64>,
    ) -> Result<u64, cogref_session::StoreError> {
        let saved = self.inner.save(tokens, expected)?;
        if self.fail_next_save.swap(false, Ordering::SeqCst) {
            return Err(cogref_session::StoreError::Other(
                "the reply was lost".into(),
            ));
        }
        Ok(saved)
    }

    fn try_lock(&self) -> Result<Option<cogref_session::StoreGuard>, cogref_session::StoreError> {
        self.inner.try_lock()
    }
}

// Simulator seed `own-ancestor-under-a-later-version`: a save applied though it reported a
// failure left this manager's set (r1) under a version it never saw; its next rotation (r1 to
// r2, the store unreadable, refresh without the lock opted in) could not be saved either. When
// the store was readable again it held r1 under a version above the one the failed saves had
// started from, which counted as a later write: the manager dropped its live r2 for its own
// dead r1 and sent it (reuse: the lineage lost). A set holding a refresh token this process
// rotated away from is older than its own.

#[test]
fn a_stored_set_holding_a_token_this_process_rotated_away_from_is_never_adopted() {
    let dir = TempDir::new("own-ancestor");
    let path = dir.0.join("tokens.json");
    let clock = clock();
    let cognito = Scripted::new(
        &clock,
        &[
            ok("a1", 3600, Some("r1")),
            ok("a2", 3600, Some("r2")),
            ok("a3", 3600, Some("r3")),
        ],
    );
    cogref_session::TokenStore::save(
        &FileStore::new(&path),
        &cogref_core::TokenSet::from_refresh_token("r0", None),
        None,
    )
    .expect("stored");
    let manager = BlockingTokenManager::builder(
        client(cognito.clone(), &clock),
        template("r0"),
        Flaky {
            inner: FileStore::new(&path),
            loads: AtomicUsize::new(0),
            // Load 1 builds, 2 is under the first refresh's lock; 3 fails (the forced refresh
            // goes on without the store), 4 fails (the look after the lost race of its first
            // step, saving r1 again), 5 fails (the look after its own save's lost race).
            failing_loads: vec![3, 4, 5],
            fail_next_save: std::sync::atomic::AtomicBool::new(true),
        },
    )
    .refresh_without_store_lock(true)
    .build()
    .expect("manager");
    // r0 → r1, stored though the save reports a failure.
    assert!(manager.access_token().is_err(), "RotatedTokenNotSaved");
    clock.advance(Duration::from_secs(2));
    // r1 → r2, whose save finds r1's version and cannot look at the store: not saved.
    assert!(manager.refresh_now().is_err(), "RotatedTokenNotSaved");
    clock.advance(Duration::from_secs(2));
    // The store is readable again and holds r1: the manager keeps r2 and refreshes from it.
    let token = manager.refresh_now().expect("a token");
    assert_eq!(token.expose_secret(), "a3");
    assert_eq!(cognito.sent(), ["r0", "r1", "r2"], "a dead token was sent");
}

/// An unsigned JWT with these claims (only its claims are read).
fn jwt(claims: &str) -> String {
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    format!(
        "eyJhbGciOiJSUzI1NiJ9.{}.c2ln",
        URL_SAFE_NO_PAD.encode(claims)
    )
}

// Simulator seeds `own-token-due-a-millisecond-early` (and -2, -3): a session caps a token's
// local expiry at its `exp`, moved onto the local clock by the most Cognito's clock can be
// ahead (its `iat` or `Date` rounded up to the next second, less the send time). The send time
// was first rounded down to a millisecond, which overstated that bound by up to a millisecond:
// the cap then cut a token this process had just obtained below the send time plus its
// lifetime less one second, and the next refresh of the lineage started up to a millisecond
// before it was due.

#[test]
fn a_token_obtained_here_is_due_its_lifetime_less_a_second_and_the_margin_after_its_send() {
    let clock = clock();
    // Cognito's clock is ours: the token is issued in the second the request left in.
    let access = |name: &str| {
        jwt(&format!(
            r#"{{"iat":{T0},"exp":{},"token_use":"access","jti":"{name}"}}"#,
            T0 + 3600
        ))
    };
    let (a1, a2) = (access("a1"), access("a2"));
    let cognito = Scripted::new(
        &clock,
        &[ok(&a1, 3600, Some("r1")), ok(&a2, 3600, Some("r2"))],
    );
    let manager = BlockingTokenManager::builder(
        client(cognito.clone(), &clock),
        template("r0"),
        MemoryStore::new(),
    )
    .build()
    .expect("manager");
    // The request leaves 0.9 ms into the second.
    clock.advance(Duration::from_micros(900));
    let sent_at = clock.wall_clock();
    assert_eq!(manager.access_token().expect("a1").expose_secret(), a1);
    // Due 3600 s − 1 s − the 300 s margin after the send.
    let due = sent_at + Duration::from_secs(3299);
    assert_eq!(manager.session().refresh_due_at(), Some(due));
    // Half a millisecond before that, the token is served as it is.
    clock.advance(
        due.duration_since(clock.wall_clock()).expect("ahead") - Duration::from_micros(500),
    );
    assert_eq!(manager.access_token().expect("a1").expose_secret(), a1);
    assert_eq!(cognito.sent(), ["r0"], "refreshed before the token was due");
    // At the due time it is refreshed.
    clock.advance(Duration::from_micros(500));
    assert_eq!(manager.access_token().expect("a2").expose_secret(), a2);
    assert_eq!(cognito.sent(), ["r0", "r1"]);
}

/// A blocking manager over a memory store, scripted with `answers` (the first: `a1`, 60 s,
/// rotating `r0` to `r1`), that has served `a1` and is 40 s on: `a1` lived 59 s here and is
/// due 29.5 s before its end, so the next call refreshes.
fn due_after_serving_a1(
    answers: &[(u16, String)],
) -> (
    ManualEnvironment,
    MemoryStore,
    Scripted,
    Arc<BlockingTokenManager<Scripted, ManualEnvironment, MemoryStore>>,
) {
    let clock = clock();
    let store = MemoryStore::new();
    let cognito = Scripted::new(&clock, answers);
    let manager = Arc::new(
        BlockingTokenManager::builder(
            client(cognito.clone(), &clock),
            template("r0"),
            store.clone(),
        )
        .build()
        .expect("manager"),
    );
    assert_eq!(manager.access_token().expect("a1").expose_secret(), "a1");
    clock.advance(Duration::from_secs(40));
    (clock, store, cognito, manager)
}

/// A sibling's set (`r-b`, `a-b`), stored over the current version at `now`: it lives `life`
/// more and was refreshed at `refreshed` by its writer's clock.
fn store_sibling_set(store: &MemoryStore, now: SystemTime, life: Duration, refreshed: SystemTime) {
    use cogref_session::secrecy::SecretString;
    use cogref_session::{TokenSet, TokenStore};
    let stored = store.load().expect("load").expect("a set");
    let sibling = TokenSet::new(
        SecretString::from("r-b".to_owned()),
        Some(SecretString::from("a-b".to_owned())),
        None,
        None,
        Some(now + life),
        Some(life),
    )
    .with_refreshed_at(Some(refreshed));
    store.save(&sibling, Some(stored.version)).expect("saved");
}

// Simulator seed `save-over-a-set-adopted-meanwhile`: a manager held the lock and refreshed;
// a sibling that had waited out the lock timeout refreshed without it (opted in) and stored
// its set; a caller of the first manager saw the store change and adopted that set while the
// refresh ran. The refresh's save then took the version that caller had seen as the one to
// find, and wrote its set, refreshed earlier, over the sibling's without a conflict: the store
// went back. A refresh saves over the version it was decided on, and builds on the session it
// was decided from; a set adopted meanwhile is judged after the conflict.

#[test]
fn a_refresh_saves_over_the_version_it_started_from_not_one_a_concurrent_caller_adopted() {
    use cogref_session::TokenStore;
    let (clock, store, cognito, manager) =
        due_after_serving_a1(&[ok("a1", 60, Some("r1")), ok("a2", 60, Some("r2"))]);
    cognito.on_next_request({
        let (manager, store, clock) = (manager.clone(), store.clone(), clock.clone());
        move || {
            // A sibling whose refresh started 10 ms after this one stores its set.
            clock.advance(Duration::from_millis(10));
            let now = clock.wall_clock();
            store_sibling_set(&store, now, Duration::from_secs(59), now);
            // A caller of this manager sees the store move and adopts the sibling's set.
            assert_eq!(manager.access_token().expect("a-b").expose_secret(), "a-b");
        }
    });
    // r1 → r2, answered after the sibling's save.
    let token = manager.access_token().expect("a token");
    assert_eq!(cognito.sent(), ["r0", "r1"]);
    let stored = store.load().expect("load").expect("a set").tokens;
    assert_eq!(
        stored.refresh_token.expose_secret(),
        "r-b",
        "a set refreshed earlier replaced the sibling's later one: the store went back"
    );
    assert_eq!(token.expose_secret(), "a-b", "the later set is the lineage");
}

/// A file store whose next save fails without being applied, once told to.
struct SaveRefused {
    inner: FileStore,
    fail_next_save: Arc<std::sync::atomic::AtomicBool>,
}

impl cogref_session::TokenStore for SaveRefused {
    fn load(&self) -> Result<Option<cogref_session::Versioned>, cogref_session::StoreError> {
        self.inner.load()
    }

    fn save(
        &self,
        tokens: &cogref_core::TokenSet,
        expected: Option<u64>,
    ) -> Result<u64, cogref_session::StoreError> {
        if self.fail_next_save.swap(false, Ordering::SeqCst) {
            return Err(cogref_session::StoreError::Other("disk full".into()));
        }
        self.inner.save(tokens, expected)
    }

    fn try_lock(&self) -> Result<Option<cogref_session::StoreGuard>, cogref_session::StoreError> {
        self.inner.try_lock()
    }
}

// Simulator seed `unsaved-refresh-then-own-older-set`: with rotation off, a refresh whose save
// failed kept its new tokens in memory and the version of the set it had replaced as its own.
// The wall clock had been stepped back between the two refreshes, so the stored set's expiry
// looked later than the new one's; once the new tokens expired, the manager took its own older
// set back from the store (same version, later by the wall clock), anchored it afresh for its
// lifetime and handed out its access token after that token's `exp`. The set a failed save
// was to replace is never adopted back; any later write is.

#[test]
fn the_set_a_failed_save_was_to_replace_is_never_adopted_back_whatever_the_clock_says() {
    let dir = TempDir::new("unsaved-own-older");
    let clock = common::SteppedClock::new();
    let cognito = Scripted::new(
        &common::clock(),
        &[ok("a1", 10, None), ok("a2", 10, None), ok("a3", 10, None)],
    );
    let fail_next_save = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let store = SaveRefused {
        inner: FileStore::new(dir.0.join("tokens.json")),
        fail_next_save: fail_next_save.clone(),
    };
    cogref_session::TokenStore::save(
        &store.inner,
        &cogref_core::TokenSet::from_refresh_token("r0", None),
        None,
    )
    .expect("stored");
    let manager = BlockingTokenManager::builder(
        client_on(cognito.clone(), clock.clone()),
        template("r0"),
        store,
    )
    .build()
    .expect("manager");
    // a1 lives 9 s here (true exp at 10 s), stored; due 4.5 s before its end.
    assert_eq!(manager.access_token().expect("a1").expose_secret(), "a1");
    // The wall clock steps back 30 s; at 5 s a1 is due: a2 is obtained, its save fails.
    clock.step_wall(-30);
    clock.advance(Duration::from_secs(5));
    fail_next_save.store(true, Ordering::SeqCst);
    assert_eq!(manager.access_token().expect("a2").expose_secret(), "a2");
    // At 14.5 s a2 has expired; a1 expired at 10 s, though its stored expiry looks later.
    clock.advance(Duration::from_millis(9500));
    let token = manager.access_token().expect("a token");
    assert_ne!(
        token.expose_secret(),
        "a1",
        "a1 was handed out 4.5 s after its exp"
    );
    assert_eq!(token.expose_secret(), "a3");
    assert_eq!(cognito.sent(), ["r0", "r0", "r0"]);
}

// Found beside seed `save-over-a-set-adopted-meanwhile`: the same interleaving, with Cognito
// refusing the refresh token sent because the sibling (its lease had taken over, or it had
// refreshed without the lock) used it first. The refusal was applied to the session as it
// stood when the answer came, which held the sibling's set a caller had adopted meanwhile:
// the manager declared that live set dead and asked for a new sign-in, and kept doing so.

#[test]
fn a_refusal_of_a_refresh_token_the_session_has_left_does_not_end_the_set_it_adopted() {
    let (clock, store, cognito, manager) = due_after_serving_a1(&[
        ok("a1", 60, Some("r1")),
        err(400, "RefreshTokenReuseException"),
    ]);
    cognito.on_next_request({
        let (manager, store, clock) = (manager.clone(), store.clone(), clock.clone());
        move || {
            // The sibling refreshed r1 first and stores its set; a caller adopts it.
            clock.advance(Duration::from_millis(10));
            let now = clock.wall_clock();
            store_sibling_set(&store, now, Duration::from_secs(59), now);
            assert_eq!(manager.access_token().expect("a-b").expose_secret(), "a-b");
        }
    });
    // r1 is refused as reused: the sibling's set is the lineage, not a dead session.
    let token = manager.access_token().expect("the adopted set's token");
    assert_eq!(token.expose_secret(), "a-b");
    clock.advance(Duration::from_secs(1));
    assert_eq!(
        manager
            .access_token()
            .expect("still served")
            .expose_secret(),
        "a-b"
    );
    assert_eq!(cognito.sent(), ["r0", "r1"]);
}

// Simulator seed `refused-refresh-after-a-look-skips-the-floor` (found once the simulated
// stores reported change stamps): a refresh was in flight when a caller of the same manager
// saw the store's stamp move and adopted a sibling's set, refreshed earlier by its writer's
// clock and soon due. Cognito refused the refresh token sent (the sibling had used it); the
// session kept the adopted set, as it must, but forgot that a refresh had just started: the
// next caller refreshed again 0.16 s later, under the 1 s floor between refreshes.

#[test]
fn a_refused_refresh_whose_session_moved_on_still_holds_back_the_next_one_for_the_floor() {
    let (clock, store, cognito, manager) = due_after_serving_a1(&[
        ok("a1", 60, Some("r1")),
        err(400, "RefreshTokenReuseException"),
        ok("a3", 60, Some("r3")),
    ]);
    cognito.on_next_request({
        let (manager, store, clock) = (manager.clone(), store.clone(), clock.clone());
        move || {
            // The sibling refreshed r1 two seconds ago (its lease had taken over); its set,
            // stored now, lives 1.5 s more: due in 0.75 s. A caller of this manager sees the
            // stamp move and adopts it.
            clock.advance(Duration::from_millis(10));
            let now = clock.wall_clock();
            let refreshed = now - Duration::from_secs(2);
            store_sibling_set(&store, now, Duration::from_millis(1500), refreshed);
            assert_eq!(manager.access_token().expect("a-b").expose_secret(), "a-b");
        }
    });
    // r1 is refused as reused: the session keeps the sibling's set.
    assert_eq!(manager.access_token().expect("a-b").expose_secret(), "a-b");
    assert_eq!(cognito.sent(), ["r0", "r1"]);
    // 0.8 s after the refused refresh started the adopted set is due, and still valid: the
    // floor holds the next refresh back and the valid token is served.
    clock.advance(Duration::from_millis(790));
    assert_eq!(manager.access_token().expect("a-b").expose_secret(), "a-b");
    assert_eq!(
        cognito.sent(),
        ["r0", "r1"],
        "a second refresh started within the floor of the refused one"
    );
    // Once the floor has passed, the adopted set is refreshed.
    clock.advance(Duration::from_millis(300));
    assert_eq!(manager.access_token().expect("a3").expose_secret(), "a3");
    assert_eq!(cognito.sent(), ["r0", "r1", "r-b"]);
}
