//! Review 13: attacks on "two refresh calls of one process life start at least
//! `min_refresh_interval` apart, whatever their answers" that the library withstood.

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cogref_core::Environment;
use cogref_session::secrecy::{ExposeSecret, SecretString};
use cogref_session::{
    BlockingTokenManager, MemoryStore, SessionError, StoreError, StoreGuard, TokenManager,
    TokenSet, TokenStore, Versioned,
};
use common::*;

/// A store whose saves fail.
#[derive(Clone, Default)]
struct FailingSaves(MemoryStore);

impl TokenStore for FailingSaves {
    fn load(&self) -> Result<Option<Versioned>, StoreError> {
        self.0.load()
    }
    fn save(&self, _: &TokenSet, _: Option<u64>) -> Result<u64, StoreError> {
        Err(StoreError::Other("disk full".into()))
    }
    fn try_lock(&self) -> Result<Option<StoreGuard>, StoreError> {
        self.0.try_lock()
    }
}

#[test]
fn a_rotated_refresh_whose_save_fails_holds_back_the_next_refresh_for_the_floor() {
    let clock = clock();
    let cognito = Scripted::new(&clock, &[ok("a1", 2, Some("r1")), ok("a2", 2, Some("r2"))]);
    let manager = BlockingTokenManager::builder(
        client(cognito.clone(), &clock),
        template("r0"),
        FailingSaves::default(),
    )
    .build()
    .expect("manager");
    let e = manager.access_token().expect_err("not saved");
    assert!(matches!(e, SessionError::RotatedTokenNotSaved(_)), "{e}");
    // Due 0.5 s after (1 s counted, margin capped at half): the floor holds it back.
    clock.advance(Duration::from_millis(600));
    assert_eq!(manager.access_token().expect("a1").expose_secret(), "a1");
    assert_eq!(cognito.sent(), ["r0"]);
    // refresh_now waits the floor out.
    let before = clock.now();
    let _ = manager.refresh_now();
    assert_eq!(cognito.sent(), ["r0", "r1"]);
    assert!(clock.now() - before >= Duration::from_millis(399));
}

/// The sibling's set adopted while our refresh ran, as in the regression test of
/// `tests/simulated.rs`.
fn sibling(store: &MemoryStore, clock: &cogref_core::driver::ManualEnvironment) {
    clock.advance(Duration::from_millis(10));
    let now = clock.wall_clock();
    let life = Duration::from_millis(1500);
    let stored = store.load().expect("load").expect("a set");
    let set = TokenSet::new(
        SecretString::from("r-b".to_owned()),
        Some(SecretString::from("a-b".to_owned())),
        None,
        None,
        Some(now + life),
        Some(life),
    )
    .with_refreshed_at(Some(now - Duration::from_secs(2)));
    store.save(&set, Some(stored.version)).expect("saved");
}

#[test]
fn a_transient_failure_of_a_refresh_whose_session_moved_on_holds_back_the_next_one_for_the_floor() {
    let clock = clock();
    let store = MemoryStore::new();
    let cognito = Scripted::new(
        &clock,
        &[
            ok("a1", 60, Some("r1")),
            err(500, "InternalErrorException"),
            ok("a3", 60, Some("r3")),
        ],
    );
    let manager = Arc::new(
        BlockingTokenManager::builder(
            client(cognito.clone(), &clock),
            template("r0"),
            store.clone(),
        )
        .build()
        .expect("manager"),
    );
    assert!(manager.access_token().is_ok());
    clock.advance(Duration::from_secs(40));
    cognito.on_next_request({
        let (manager, store, clock) = (manager.clone(), store.clone(), clock.clone());
        move || {
            sibling(&store, &clock);
            assert_eq!(manager.access_token().expect("a-b").expose_secret(), "a-b");
        }
    });
    let _ = manager.access_token();
    assert_eq!(cognito.sent(), ["r0", "r1"]);
    clock.advance(Duration::from_millis(790));
    let _ = manager.access_token();
    assert_eq!(cognito.sent(), ["r0", "r1"], "within the floor");
}

#[test]
fn refresh_now_after_a_refused_refresh_whose_session_moved_on_waits_the_floor() {
    let clock = clock();
    let store = MemoryStore::new();
    let cognito = Scripted::new(
        &clock,
        &[
            ok("a1", 60, Some("r1")),
            err(400, "RefreshTokenReuseException"),
            ok("a3", 60, Some("r3")),
        ],
    );
    let manager = Arc::new(
        BlockingTokenManager::builder(
            client(cognito.clone(), &clock),
            template("r0"),
            store.clone(),
        )
        .build()
        .expect("manager"),
    );
    assert!(manager.access_token().is_ok());
    clock.advance(Duration::from_secs(40));
    let sent_at: Arc<Mutex<Vec<Instant>>> = Arc::default();
    cognito.on_next_request({
        let (manager, store, clock, sent_at) = (
            manager.clone(),
            store.clone(),
            clock.clone(),
            sent_at.clone(),
        );
        move || {
            sent_at.lock().expect("sent_at").push(clock.now());
            sibling(&store, &clock);
            assert_eq!(manager.access_token().expect("a-b").expose_secret(), "a-b");
        }
    });
    assert_eq!(manager.access_token().expect("a-b").expose_secret(), "a-b");
    cognito.on_next_request({
        let (clock, sent_at) = (clock.clone(), sent_at.clone());
        move || sent_at.lock().expect("sent_at").push(clock.now())
    });
    assert_eq!(manager.refresh_now().expect("a3").expose_secret(), "a3");
    assert_eq!(cognito.sent(), ["r0", "r1", "r-b"]);
    let at = sent_at.lock().expect("sent_at").clone();
    assert!(
        at[1] - at[0] >= Duration::from_secs(1),
        "{:?}",
        at[1] - at[0]
    );
}

/// An async transport on the manual clock whose sends wait for a permit (so a test can act
/// while a refresh is in flight).
#[derive(Clone)]
struct Gated {
    inner: Scripted,
    permits: Arc<tokio::sync::Semaphore>,
}

impl cogref_core::AsyncTransport for Gated {
    async fn send(
        &self,
        request: cogref_core::driver::HttpRequest,
        options: cogref_core::SendOptions,
    ) -> Result<cogref_core::driver::HttpResponse, cogref_core::Error> {
        self.permits.acquire().await.expect("open").forget();
        cogref_core::BlockingTransport::send(&self.inner, request, options)
    }

    async fn sleep(&self, duration: Duration) {
        self.inner.clock.advance(duration);
        tokio::task::yield_now().await;
    }

    fn spawn(&self, task: cogref_core::driver::DetachedTask) {
        tokio::spawn(task);
    }
}

#[tokio::test(flavor = "current_thread")]
async fn the_async_manager_holds_back_the_next_refresh_after_a_refused_one_whose_session_moved_on()
{
    let clock = clock();
    let store = MemoryStore::new();
    let cognito = Scripted::new(
        &clock,
        &[
            ok("a1", 60, Some("r1")),
            err(400, "RefreshTokenReuseException"),
            ok("a3", 60, Some("r3")),
        ],
    );
    let permits = Arc::new(tokio::sync::Semaphore::new(1));
    let manager = TokenManager::builder(
        client(
            Gated {
                inner: cognito.clone(),
                permits: permits.clone(),
            },
            &clock,
        ),
        template("r0"),
        store.clone(),
    )
    .build()
    .await
    .expect("manager");
    assert!(manager.access_token().await.is_ok());
    clock.advance(Duration::from_secs(40));
    // r1's refresh starts and waits for its answer.
    let first = tokio::spawn({
        let manager = manager.clone();
        async move { manager.access_token().await }
    });
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
    sibling(&store, &clock);
    assert_eq!(
        manager.access_token().await.expect("a-b").expose_secret(),
        "a-b"
    );
    permits.add_permits(1);
    let _ = first.await.expect("task");
    assert_eq!(cognito.sent(), ["r0", "r1"]);
    clock.advance(Duration::from_millis(790));
    let _ = manager.access_token().await;
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
    assert_eq!(cognito.sent(), ["r0", "r1"], "within the floor");
}
