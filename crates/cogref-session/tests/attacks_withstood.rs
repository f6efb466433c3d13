//! Hostile review of issue 11: attacks on the session layer that it withstood. Kept as
//! regression tests; each names the rule it checks.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use cogref_core::driver::{DetachedTask, HttpRequest, HttpResponse};
use cogref_core::{AsyncTransport, Environment, Error, SendOptions, TokenSet};
use cogref_session::secrecy::ExposeSecret;
use cogref_session::{
    AsyncTokenStore, BlockingTokenManager, MemoryStore, SessionError, SessionEvent, StoreError,
    StoreGuard, TokenManager, TokenStore, Versioned,
};
use common::*;

/// On tokio, but `spawn` drops every task while `drop_tasks` is set (a runtime shutting down,
/// a transport that cannot start one).
#[derive(Clone)]
struct Dropping {
    inner: OnTokio<Scripted>,
    drop_tasks: Arc<AtomicBool>,
}

impl AsyncTransport for Dropping {
    async fn send(&self, r: HttpRequest, o: SendOptions) -> Result<HttpResponse, Error> {
        self.inner.send(r, o).await
    }
    async fn sleep(&self, d: Duration) {
        self.inner.sleep(d).await;
    }
    fn spawn(&self, task: DetachedTask) {
        if self.drop_tasks.load(Ordering::SeqCst) {
            drop(task);
        } else {
            tokio::spawn(task);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refresh_task_the_transport_drops_tells_its_waiters_and_the_next_call_starts_another() {
    let clock = clock();
    let scripted = Scripted::new(&clock, &[ok("a1", 3600, Some("r1"))]);
    let transport = Dropping {
        inner: OnTokio {
            inner: scripted.clone(),
            delay: Duration::from_millis(10),
        },
        drop_tasks: Arc::new(AtomicBool::new(true)),
    };
    let manager = TokenManager::builder(
        client(transport.clone(), &clock),
        template("r0"),
        MemoryStore::new(),
    )
    .build()
    .await
    .expect("manager");
    for _ in 0..3 {
        let e = tokio::time::timeout(Duration::from_secs(5), manager.access_token())
            .await
            .expect("no hang")
            .expect_err("no task ran");
        assert!(matches!(e, SessionError::Interrupted), "{e}");
    }
    assert!(scripted.sent().is_empty());
    transport.drop_tasks.store(false, Ordering::SeqCst);
    assert_eq!(
        manager.access_token().await.expect("a1").expose_secret(),
        "a1"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listener_panicking_in_the_refresh_task_neither_hangs_waiters_nor_keeps_the_lock() {
    let clock = clock();
    let scripted = Scripted::new(&clock, &[ok("a1", 3600, Some("r1"))]);
    let store = MemoryStore::new();
    let manager = TokenManager::builder(
        client(
            OnTokio {
                inner: scripted.clone(),
                delay: Duration::from_millis(50),
            },
            &clock,
        ),
        template("r0"),
        store.clone(),
    )
    .on_event(|e| {
        if matches!(e, SessionEvent::Refreshed { .. }) {
            panic!("listener bug");
        }
    })
    .build()
    .await
    .expect("manager");
    let waiters: Vec<_> = (0..8)
        .map(|_| {
            let m = manager.clone();
            tokio::spawn(async move { m.access_token().await })
        })
        .collect();
    for w in waiters {
        let outcome = tokio::time::timeout(Duration::from_secs(5), w)
            .await
            .expect("no waiter hangs")
            .expect("task");
        // Interrupted, or the saved token for a caller that came after.
        if let Ok(t) = outcome {
            assert_eq!(t.expose_secret(), "a1");
        }
    }
    assert_eq!(stored_refresh_token(&store).as_deref(), Some("r1"));
    assert!(
        TokenStore::try_lock(&store).expect("ok").is_some(),
        "lock released"
    );
    assert_eq!(
        manager.access_token().await.expect("a1").expose_secret(),
        "a1"
    );
    assert_eq!(scripted.sent(), ["r0"]);
}

/// A store whose save and load can be held back: to drop callers at every await point.
#[derive(Clone, Default)]
struct Gated {
    inner: MemoryStore,
    open: Arc<tokio::sync::Notify>,
    hold_saves: Arc<AtomicBool>,
    saves_started: Arc<AtomicUsize>,
}

impl AsyncTokenStore for Gated {
    async fn load(&self) -> Result<Option<Versioned>, StoreError> {
        tokio::task::yield_now().await;
        TokenStore::load(&self.inner)
    }
    async fn save(&self, tokens: &TokenSet, expected: Option<u64>) -> Result<u64, StoreError> {
        self.saves_started.fetch_add(1, Ordering::SeqCst);
        if self.hold_saves.load(Ordering::SeqCst) {
            self.open.notified().await;
        }
        TokenStore::save(&self.inner, tokens, expected)
    }
    async fn try_lock(&self) -> Result<Option<StoreGuard>, StoreError> {
        tokio::task::yield_now().await;
        TokenStore::try_lock(&self.inner)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_caller_dropped_while_the_save_is_held_still_gets_the_rotation_stored() {
    let clock = clock();
    let scripted = Scripted::new(
        &clock,
        &[ok("a1", 3600, Some("r1")), ok("a2", 3600, Some("r2"))],
    );
    let store = Gated {
        hold_saves: Arc::new(AtomicBool::new(true)),
        ..Gated::default()
    };
    let manager = TokenManager::builder(
        client(
            OnTokio {
                inner: scripted.clone(),
                delay: Duration::from_millis(1),
            },
            &clock,
        ),
        template("r0"),
        store.clone(),
    )
    .build()
    .await
    .expect("manager");
    // Three kinds of caller, all dropped while the save waits.
    let a = tokio::spawn({
        let m = manager.clone();
        async move { m.access_token().await }
    });
    let b = tokio::spawn({
        let m = manager.clone();
        async move { m.refresh_now().await }
    });
    let c = tokio::spawn({
        let m = manager.clone();
        async move { m.run_background().await }
    });
    while store.saves_started.load(Ordering::SeqCst) == 0 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    a.abort();
    b.abort();
    c.abort();
    store.hold_saves.store(false, Ordering::SeqCst);
    store.open.notify_waiters();
    for _ in 0..200 {
        if stored_refresh_token(&store.inner).as_deref() == Some("r1") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(stored_refresh_token(&store.inner).as_deref(), Some("r1"));
    assert_eq!(scripted.sent(), ["r0"]);
}

/// On tokio, answering after a real delay, but whose sleeps move the manual clock (refresh_now
/// waits out the floor on it).
#[derive(Clone)]
struct ManualSleeps(OnTokio<Scripted>);

impl AsyncTransport for ManualSleeps {
    async fn send(&self, r: HttpRequest, o: SendOptions) -> Result<HttpResponse, Error> {
        self.0.send(r, o).await
    }
    async fn sleep(&self, d: Duration) {
        self.0.inner.clock.advance(d);
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    fn spawn(&self, task: DetachedTask) {
        tokio::spawn(task);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refresh_now_access_token_and_the_background_loop_together_never_reuse_a_token() {
    let clock = clock();
    let answers: Vec<_> = (1..=20)
        .map(|i| ok(&format!("a{i}"), 3600, Some(&format!("r{i}"))))
        .collect();
    let scripted = Scripted::new(&clock, &answers);
    let store = MemoryStore::new();
    let manager = TokenManager::builder(
        client(
            ManualSleeps(OnTokio {
                inner: scripted.clone(),
                delay: Duration::from_millis(20),
            }),
            &clock,
        ),
        template("r0"),
        store.clone(),
    )
    .build()
    .await
    .expect("manager");
    // One refresh done before the others start: a refresh_now called after it must make one
    // more (one that started after the call). Without it, every call may be made before the
    // first refresh starts (or at its instant, on this clock), and that one refresh rightly
    // answers them all (refresh_now takes the tokens of a refresh started after it was called).
    manager.access_token().await.expect("the first refresh");
    // On the manual clock a call made at the very instant a refresh started is answered by it
    // ("started then or later"): the calls below come strictly later.
    clock.advance(Duration::from_millis(1));
    let background = tokio::spawn({
        let m = manager.clone();
        async move { m.run_background().await }
    });
    let mut calls = Vec::new();
    for i in 0..30 {
        let m = manager.clone();
        calls.push(tokio::spawn(async move {
            if i % 3 == 0 {
                m.refresh_now().await
            } else {
                m.access_token().await
            }
        }));
    }
    for c in calls {
        let _ = tokio::time::timeout(Duration::from_secs(20), c)
            .await
            .expect("no hang")
            .expect("task");
    }
    background.abort();
    let sent = scripted.sent();
    assert!(
        sent.len() >= 2,
        "refresh_now made a refresh of its own: {sent:?}"
    );
    let mut distinct = sent.clone();
    distinct.dedup();
    assert_eq!(sent, distinct, "a refresh token was sent twice: {sent:?}");
    let last = format!("r{}", sent.len());
    assert_eq!(stored_refresh_token(&store).as_deref(), Some(last.as_str()));
}

#[test]
fn the_blocking_manager_from_many_threads_at_expiry_makes_one_call() {
    let clock = clock();
    let scripted = Scripted::new(
        &clock,
        &[ok("a1", 3600, Some("r1")), ok("a2", 3600, Some("r2"))],
    );
    let manager = Arc::new(
        BlockingTokenManager::builder(
            client(scripted.clone(), &clock),
            template("r0"),
            MemoryStore::new(),
        )
        .build()
        .expect("manager"),
    );
    manager.access_token().expect("a1");
    clock.advance(Duration::from_secs(3600));
    let threads: Vec<_> = (0..16)
        .map(|_| {
            let m = manager.clone();
            std::thread::spawn(move || m.access_token().map(|t| t.expose_secret().to_owned()))
        })
        .collect();
    for t in threads {
        assert_eq!(t.join().expect("thread").expect("token"), "a2");
    }
    assert_eq!(scripted.sent(), ["r0", "r1"]);
}

/// Writes the set, then reports a failure (the folder's fsync failed after the rename).
#[derive(Clone, Default)]
struct SavesThenErrs {
    inner: MemoryStore,
    lie: Arc<AtomicBool>,
}

impl TokenStore for SavesThenErrs {
    fn load(&self) -> Result<Option<Versioned>, StoreError> {
        TokenStore::load(&self.inner)
    }
    fn save(&self, tokens: &TokenSet, expected: Option<u64>) -> Result<u64, StoreError> {
        let version = TokenStore::save(&self.inner, tokens, expected)?;
        if self.lie.swap(false, Ordering::SeqCst) {
            return Err(StoreError::Other("fsync failed".into()));
        }
        Ok(version)
    }
    fn try_lock(&self) -> Result<Option<StoreGuard>, StoreError> {
        TokenStore::try_lock(&self.inner)
    }
}

#[test]
fn a_save_that_wrote_but_reported_an_error_loses_nothing_on_the_next_refresh() {
    let clock = clock();
    let store = SavesThenErrs {
        lie: Arc::new(AtomicBool::new(true)),
        ..SavesThenErrs::default()
    };
    let scripted = Scripted::new(
        &clock,
        &[ok("a1", 3600, Some("r1")), ok("a2", 3600, Some("r2"))],
    );
    let manager = BlockingTokenManager::builder(
        client(scripted.clone(), &clock),
        template("r0"),
        store.clone(),
    )
    .build()
    .expect("manager");
    assert!(matches!(
        manager.access_token(),
        Err(SessionError::RotatedTokenNotSaved(_))
    ));
    assert_eq!(manager.access_token().expect("a1").expose_secret(), "a1");
    clock.advance(Duration::from_secs(3600));
    assert_eq!(manager.access_token().expect("a2").expose_secret(), "a2");
    assert_eq!(scripted.sent(), ["r0", "r1"]);
    assert_eq!(stored_refresh_token(&store).as_deref(), Some("r2"));
}

#[test]
fn tokens_of_one_or_two_seconds_are_never_served_past_their_expiry() {
    for expires_in in [1u32, 2] {
        let clock = clock();
        let answers: Vec<_> = (0..20).map(|_| ok("short", expires_in, None)).collect();
        let scripted = Scripted::new(&clock, &answers);
        let manager = BlockingTokenManager::builder(
            client(scripted, &clock),
            template("r0"),
            MemoryStore::new(),
        )
        .build()
        .expect("manager");
        let mut served = 0;
        for _ in 0..5_000u64 {
            if manager.access_token().is_ok() {
                served += 1;
                let expires = manager.session().tokens().expires_at.expect("expiry");
                assert!(clock.wall_clock() < expires, "served at or past its expiry");
            }
            clock.advance(Duration::from_millis(1));
        }
        // ExpiresIn 1 lives 0 s locally (less the second `iat` rounds away): never served.
        assert_eq!(
            served == 0,
            expires_in == 1,
            "{expires_in}: served {served} times"
        );
    }
}

#[test]
fn a_legacy_set_without_binding_is_taken_and_bound_on_the_next_save() {
    let clock = clock();
    let store = MemoryStore::with_tokens(TokenSet::from_refresh_token("r0", None));
    let scripted = Scripted::new(&clock, &[ok("a1", 3600, Some("r1"))]);
    BlockingTokenManager::builder(client(scripted, &clock), template("ignored"), store.clone())
        .build()
        .expect("a legacy set is ours")
        .access_token()
        .expect("a1");
    let saved = TokenStore::load(&store).expect("ok").expect("saved").tokens;
    assert_eq!(saved.client_id.as_deref(), Some("client"));
    assert!(saved.endpoint.is_some());
}
