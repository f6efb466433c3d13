//! The managers over a scripted Cognito and a manual clock: every transition, no sleeping.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use cogref_core::TokenSet;
use cogref_session::secrecy::ExposeSecret;
use cogref_session::{
    BlockingTokenManager, MemoryStore, SessionError, SessionEvent, StoreError, StoreGuard,
    TokenStore, Versioned,
};
use common::*;

#[test]
fn the_first_call_refreshes_and_later_calls_are_served_from_cache() {
    let clock = clock();
    let transport = Scripted::new(&clock, &[ok("a1", 3600, None)]);
    let store = MemoryStore::new();
    let manager = BlockingTokenManager::builder(
        client(transport.clone(), &clock),
        template("r0"),
        store.clone(),
    )
    .build()
    .expect("manager");
    assert_eq!(manager.access_token().expect("token").expose_secret(), "a1");
    clock.advance(Duration::from_secs(3000));
    assert_eq!(manager.access_token().expect("token").expose_secret(), "a1");
    assert_eq!(transport.sent(), ["r0"]);
    let stored = store.load().expect("load").expect("saved");
    assert_eq!(
        stored
            .tokens
            .access_token
            .as_ref()
            .map(|t| t.expose_secret()),
        Some("a1")
    );
}

#[test]
fn refreshes_ahead_of_expiry_and_follows_rotation() {
    let clock = clock();
    let transport = Scripted::new(
        &clock,
        &[ok("a1", 3600, Some("r1")), ok("a2", 3600, Some("r2"))],
    );
    let store = MemoryStore::new();
    let manager = BlockingTokenManager::builder(
        client(transport.clone(), &clock),
        template("r0"),
        store.clone(),
    )
    .build()
    .expect("manager");
    manager.access_token().expect("token");
    clock.advance(Duration::from_secs(3600 - 299)); // inside the 5-minute margin
    assert_eq!(manager.access_token().expect("token").expose_secret(), "a2");
    assert_eq!(transport.sent(), ["r0", "r1"]);
    let stored = store.load().expect("load").expect("saved");
    assert_eq!(stored.tokens.refresh_token.expose_secret(), "r2");
}

#[test]
fn a_dead_refresh_token_means_sign_in_and_no_more_calls() {
    let clock = clock();
    let transport = Scripted::new(&clock, &[err(400, "RefreshTokenReuseException")]);
    let events = Arc::new(Mutex::new(Vec::new()));
    let seen = events.clone();
    let manager = BlockingTokenManager::builder(
        client(transport.clone(), &clock),
        template("r0"),
        MemoryStore::new(),
    )
    .on_event(move |e| seen.lock().expect("events").push(format!("{e:?}")))
    .build()
    .expect("manager");
    for _ in 0..3 {
        let e = manager.access_token().expect_err("dead");
        assert!(e.requires_sign_in(), "{e}");
    }
    assert_eq!(transport.sent().len(), 1);
    let events = events.lock().expect("events");
    assert_eq!(events.len(), 1);
    assert!(events[0].starts_with("SignInRequired"), "{events:?}");
}

#[test]
fn a_transient_failure_serves_the_valid_token_and_fails_only_after_expiry() {
    let clock = clock();
    let transport = Scripted::new(
        &clock,
        &[
            ok("a1", 3600, None),
            err(503, "InternalErrorException"),
            err(503, "InternalErrorException"),
            ok("a2", 3600, None),
        ],
    );
    let manager = BlockingTokenManager::builder(
        client(transport.clone(), &clock),
        template("r0"),
        MemoryStore::new(),
    )
    .build()
    .expect("manager");
    manager.access_token().expect("a1");
    clock.advance(Duration::from_secs(3500)); // due, still valid
    assert_eq!(
        manager.access_token().expect("still a1").expose_secret(),
        "a1"
    );
    clock.advance(Duration::from_secs(100)); // expired; backoff of 1 s has passed
    match manager.access_token() {
        Err(SessionError::Unavailable { retry_at, .. }) => {
            assert!(retry_at > std::time::SystemTime::UNIX_EPOCH)
        }
        other => panic!("expected Unavailable, got {other:?}"),
    }
    // Within the backoff: reported again without a call.
    assert!(manager.access_token().is_err());
    assert_eq!(transport.sent().len(), 3);
    clock.advance(Duration::from_secs(2));
    assert_eq!(
        manager.access_token().expect("recovered").expose_secret(),
        "a2"
    );
}

/// A store whose saves fail, to see what the manager does with a rotated token it cannot keep.
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
fn a_rotated_token_that_cannot_be_saved_is_an_error_but_stays_in_memory() {
    let clock = clock();
    let transport = Scripted::new(
        &clock,
        &[ok("a1", 3600, Some("r1")), ok("a2", 3600, Some("r2"))],
    );
    let manager = BlockingTokenManager::builder(
        client(transport.clone(), &clock),
        template("r0"),
        FailingSaves::default(),
    )
    .build()
    .expect("manager");
    let e = manager.access_token().expect_err("not saved");
    assert!(matches!(e, SessionError::RotatedTokenNotSaved(_)), "{e}");
    assert!(e.to_string().contains("could not be saved"), "{e}");
    assert_eq!(
        manager.session().tokens().refresh_token.expose_secret(),
        "r1"
    );
    // The next refresh uses the token kept in memory, not the dead one in the store.
    clock.advance(Duration::from_secs(1));
    manager.refresh_now().expect_err("still not saved");
    assert_eq!(transport.sent(), ["r0", "r1"]);
}

#[test]
fn a_failed_save_without_rotation_still_hands_out_the_token() {
    let clock = clock();
    let transport = Scripted::new(&clock, &[ok("a1", 3600, None)]);
    let failures = Counter::default();
    let seen = failures.clone();
    let manager = BlockingTokenManager::builder(
        client(transport, &clock),
        template("r0"),
        FailingSaves::default(),
    )
    .on_event(move |e| {
        if matches!(e, SessionEvent::StoreFailed(_)) {
            seen.bump();
        }
    })
    .build()
    .expect("manager");
    assert_eq!(manager.access_token().expect("token").expose_secret(), "a1");
    assert_eq!(failures.get(), 1);
}

#[test]
fn a_manager_adopts_what_another_holder_of_the_store_refreshed() {
    let clock = clock();
    let store = MemoryStore::new();
    let first = Scripted::new(&clock, &[ok("a1", 3600, Some("r1"))]);
    let second = Scripted::new(&clock, &[]);
    let a =
        BlockingTokenManager::builder(client(first.clone(), &clock), template("r0"), store.clone())
            .build()
            .expect("manager");
    let b = BlockingTokenManager::builder(client(second.clone(), &clock), template("r0"), store)
        .build()
        .expect("manager");
    assert_eq!(a.access_token().expect("a").expose_secret(), "a1");
    assert_eq!(b.access_token().expect("b").expose_secret(), "a1");
    assert_eq!(first.sent(), ["r0"]);
    assert!(
        second.sent().is_empty(),
        "b called Cognito instead of adopting"
    );
    assert_eq!(b.session().tokens().refresh_token.expose_secret(), "r1");
}

#[test]
fn background_refresh_keeps_the_token_fresh_until_sign_in_is_required() {
    let clock = clock();
    let transport = Scripted::new(
        &clock,
        &[
            ok("a1", 600, None),
            ok("a2", 600, None),
            err(400, "NotAuthorizedException"),
        ],
    );
    let manager = Arc::new(
        BlockingTokenManager::builder(
            client(transport.clone(), &clock),
            template("r0"),
            MemoryStore::new(),
        )
        .build()
        .expect("manager"),
    );
    // The transport's sleeps move the manual clock, so the thread runs through three refreshes
    // at once and stops when the session is dead.
    manager
        .spawn_background()
        .join()
        .expect("background thread");
    assert_eq!(transport.sent().len(), 3);
    assert!(manager.access_token().expect_err("dead").requires_sign_in());
}

#[test]
fn background_refresh_waits_out_the_backoff_instead_of_polling() {
    let clock = clock();
    let transport = Scripted::new(
        &clock,
        &[
            ok("a1", 3600, None),
            err(503, "InternalErrorException"),
            ok("a2", 3600, None),
            err(400, "NotAuthorizedException"),
        ],
    );
    let sleeps = Arc::new(Mutex::new(Vec::new()));
    struct Recording(Scripted, Arc<Mutex<Vec<Duration>>>);
    impl cogref_core::BlockingTransport for Recording {
        fn send(
            &self,
            r: cogref_core::driver::HttpRequest,
            o: cogref_core::SendOptions,
        ) -> Result<cogref_core::driver::HttpResponse, cogref_core::Error> {
            self.0.send(r, o)
        }
        fn sleep(&self, d: Duration) {
            self.1.lock().expect("sleeps").push(d);
            self.0.sleep(d);
        }
    }
    let manager = Arc::new(
        BlockingTokenManager::builder(
            client(Recording(transport.clone(), sleeps.clone()), &clock),
            template("r0"),
            MemoryStore::new(),
        )
        .build()
        .expect("manager"),
    );
    manager
        .spawn_background()
        .join()
        .expect("background thread");
    assert_eq!(transport.sent().len(), 4);
    let sleeps = sleeps.lock().expect("sleeps");
    // Sleep to the margin, then one 1 s backoff, then to the next margin: no 10 ms polling.
    assert!(sleeps.len() <= 4, "{sleeps:?}");
    assert!(sleeps.contains(&Duration::from_secs(1)), "{sleeps:?}");
}

/// A memory store that can be taken down (every call fails, as an unreachable server would) and
/// that can let a rival write just before the manager's save lands.
#[derive(Clone, Default)]
struct Flaky {
    inner: MemoryStore,
    down: Arc<std::sync::atomic::AtomicBool>,
    rival: Arc<Mutex<Option<TokenSet>>>,
}

impl Flaky {
    fn set_down(&self, down: bool) {
        self.down.store(down, std::sync::atomic::Ordering::SeqCst);
    }
    fn check(&self) -> Result<(), StoreError> {
        if self.down.load(std::sync::atomic::Ordering::SeqCst) {
            Err(StoreError::Other("connection refused".into()))
        } else {
            Ok(())
        }
    }
}

impl TokenStore for Flaky {
    fn load(&self) -> Result<Option<Versioned>, StoreError> {
        self.check()?;
        self.inner.load()
    }
    fn save(&self, tokens: &TokenSet, expected: Option<u64>) -> Result<u64, StoreError> {
        self.check()?;
        if let Some(rival) = self.rival.lock().expect("rival").take() {
            self.inner
                .save(&rival, expected)
                .expect("the rival writes first");
        }
        self.inner.save(tokens, expected)
    }
    fn try_lock(&self) -> Result<Option<StoreGuard>, StoreError> {
        self.check()?;
        self.inner.try_lock()
    }
}

#[test]
fn an_unreachable_store_serves_the_valid_token_and_does_not_refresh_without_the_lock() {
    let clock = clock();
    let transport = Scripted::new(
        &clock,
        &[ok("a1", 3600, Some("r1")), ok("a2", 3600, Some("r2"))],
    );
    let store = Flaky::default();
    let failures = Counter::default();
    let seen = failures.clone();
    let manager = BlockingTokenManager::builder(
        client(transport.clone(), &clock),
        template("r0"),
        store.clone(),
    )
    .on_event(move |e| {
        if matches!(e, SessionEvent::StoreFailed(_)) {
            seen.bump();
        }
    })
    .build()
    .expect("manager");
    assert_eq!(manager.access_token().expect("token").expose_secret(), "a1");
    store.set_down(true);
    // Inside the refresh margin: the still-valid token, the failure reported once, no refresh.
    clock.advance(Duration::from_secs(3400));
    for _ in 0..3 {
        assert_eq!(manager.access_token().expect("token").expose_secret(), "a1");
    }
    assert_eq!(failures.get(), 1, "the store is not asked again at once");
    // Expired: a clear store error, and still no refresh without the lock.
    clock.advance(Duration::from_secs(300));
    let e = manager.access_token().expect_err("expired, store down");
    assert!(matches!(e, SessionError::Store(_)), "{e}");
    assert!(e.to_string().contains("connection refused"), "{e}");
    assert_eq!(transport.sent(), ["r0"]);
    // The store comes back: the next call refreshes and saves.
    store.set_down(false);
    clock.advance(Duration::from_secs(2));
    assert_eq!(manager.access_token().expect("token").expose_secret(), "a2");
    assert_eq!(transport.sent(), ["r0", "r1"]);
    let stored = store.load().expect("up").expect("saved");
    assert_eq!(stored.tokens.refresh_token.expose_secret(), "r2");
}

#[test]
fn an_application_that_opted_in_refreshes_without_the_store_once_the_token_expired() {
    let clock = clock();
    let transport = Scripted::new(&clock, &[ok("a1", 3600, None), ok("a2", 3600, None)]);
    let store = Flaky::default();
    let manager = BlockingTokenManager::builder(
        client(transport.clone(), &clock),
        template("r0"),
        store.clone(),
    )
    .refresh_without_store_lock(true)
    .build()
    .expect("manager");
    assert_eq!(manager.access_token().expect("token").expose_secret(), "a1");
    store.set_down(true);
    clock.advance(Duration::from_secs(3700));
    assert_eq!(manager.access_token().expect("token").expose_secret(), "a2");
    assert_eq!(transport.sent(), ["r0", "r0"]);
}

#[test]
fn a_save_that_lost_the_version_race_adopts_the_newer_stored_set_instead_of_overwriting_it() {
    let clock = clock();
    let transport = Scripted::new(&clock, &[ok("a1", 3600, Some("r1"))]);
    let store = Flaky::default();
    let rival = TokenSet::new(
        "r1-rival".to_owned().into(),
        Some("a1-rival".to_owned().into()),
        None,
        None,
        Some(std::time::UNIX_EPOCH + Duration::from_secs(T0 + 7200)),
        Some(Duration::from_secs(3600)),
    );
    *store.rival.lock().expect("rival") = Some(rival);
    let manager = BlockingTokenManager::builder(
        client(transport.clone(), &clock),
        template("r0"),
        store.clone(),
    )
    .build()
    .expect("manager");
    let token = manager.access_token().expect("token");
    assert_eq!(token.expose_secret(), "a1-rival");
    let stored = store.load().expect("ok").expect("stored");
    assert_eq!(stored.tokens.refresh_token.expose_secret(), "r1-rival");
    assert_eq!(
        manager.session().tokens().refresh_token.expose_secret(),
        "r1-rival"
    );
}
