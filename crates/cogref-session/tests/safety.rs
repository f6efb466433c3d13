//! The session survives what a hostile world does to it: a cancelled caller, a store that loses
//! its data mid-refresh, tokens that expire as they arrive, a sibling that rotated first, a
//! misconfigured client, a clock stepped back, an unusable answer that still rotated, and a
//! store that belongs to another app client. Each test fails on the code before issue 11.

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use cogref_core::{Environment, TokenSet};
use cogref_session::secrecy::ExposeSecret;
use cogref_session::{
    BlockingTokenManager, FileStore, MemoryStore, SessionError, SessionEvent, StoreError,
    StoreGuard, TokenManager, TokenStore, Versioned,
};
use common::*;

fn reuse() -> (u16, String) {
    err(400, "RefreshTokenReuseException")
}

// 1. Cancellation.

#[derive(Clone, Copy, Debug)]
enum Caller {
    AccessToken,
    RefreshNow,
    Background,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caller_dropped_while_cognito_rotates_never_loses_the_rotation() {
    for caller in [Caller::AccessToken, Caller::RefreshNow, Caller::Background] {
        let clock = clock();
        // Cognito rotates r0 to r1 (grace 0): any later use of r0 is a reuse.
        let scripted = Scripted::new(&clock, &[ok("a1", 3600, Some("r1")), reuse(), reuse()]);
        let transport = OnTokio {
            inner: scripted.clone(),
            delay: Duration::from_millis(300),
        };
        let store = MemoryStore::new();
        let manager = TokenManager::builder(
            client(transport.clone(), &clock),
            template("r0"),
            store.clone(),
        )
        .build()
        .await
        .expect("manager");
        let cut_short = match caller {
            Caller::AccessToken => {
                tokio::time::timeout(Duration::from_millis(50), manager.access_token())
                    .await
                    .is_err()
            }
            Caller::RefreshNow => {
                tokio::time::timeout(Duration::from_millis(50), manager.refresh_now())
                    .await
                    .is_err()
            }
            Caller::Background => {
                tokio::time::timeout(Duration::from_millis(50), manager.run_background())
                    .await
                    .is_err()
            }
        };
        assert!(
            cut_short,
            "{caller:?}: the caller must be dropped mid-refresh"
        );
        // The refresh goes on without anyone waiting, and its result is stored.
        tokio::time::sleep(Duration::from_millis(600)).await;
        assert_eq!(
            stored_refresh_token(&store).as_deref(),
            Some("r1"),
            "{caller:?}"
        );
        let token = manager.access_token().await.expect("the session lives");
        assert_eq!(token.expose_secret(), "a1", "{caller:?}");
        // A process started afresh on the store does not need Cognito either.
        let restarted = TokenManager::builder(client(transport, &clock), template("r0"), store)
            .build()
            .await
            .expect("manager");
        assert_eq!(
            restarted
                .access_token()
                .await
                .expect("token")
                .expose_secret(),
            "a1"
        );
        assert_eq!(
            scripted.sent(),
            ["r0"],
            "{caller:?}: r0 was never sent twice"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callers_that_stay_share_the_outcome_of_the_one_refresh_task() {
    let clock = clock();
    let scripted = Scripted::new(&clock, &[ok("a1", 3600, Some("r1"))]);
    let transport = OnTokio {
        inner: scripted.clone(),
        delay: Duration::from_millis(100),
    };
    let manager = TokenManager::builder(
        client(transport, &clock),
        template("r0"),
        MemoryStore::new(),
    )
    .build()
    .await
    .expect("manager");
    let calls: Vec<_> = (0..50)
        .map(|_| {
            let m = manager.clone();
            tokio::spawn(async move { m.access_token().await })
        })
        .collect();
    for call in calls {
        let token = call.await.expect("task").expect("token");
        assert_eq!(token.expose_secret(), "a1");
    }
    assert_eq!(scripted.sent(), ["r0"]);
}

// 2. A store emptied while a refresh is in flight.

/// A memory store that can lose everything, as a restarted server without persistence does.
#[derive(Clone, Default)]
struct Wipeable(Arc<Mutex<MemoryStore>>);

impl Wipeable {
    fn wipe(&self) {
        *self.0.lock().expect("store") = MemoryStore::new();
    }
    fn current(&self) -> MemoryStore {
        self.0.lock().expect("store").clone()
    }
}

impl TokenStore for Wipeable {
    fn load(&self) -> Result<Option<Versioned>, StoreError> {
        self.current().load()
    }
    fn save(&self, tokens: &TokenSet, expected: Option<u64>) -> Result<u64, StoreError> {
        self.current().save(tokens, expected)
    }
    fn try_lock(&self) -> Result<Option<StoreGuard>, StoreError> {
        self.current().try_lock()
    }
}

/// Refreshes once with the store emptied by `wipe` while Cognito rotates, and checks that the
/// new set is what the store holds afterwards, for this manager and for one started afresh.
fn survives_a_wipe<S: TokenStore + Clone>(store: S, wipe: impl FnOnce() + Send + 'static) {
    let clock = clock();
    let first = Scripted::new(&clock, &[ok("a1", 3600, Some("r1"))]);
    let manager =
        BlockingTokenManager::builder(client(first.clone(), &clock), template("r0"), store.clone())
            .build()
            .expect("manager");
    assert_eq!(manager.access_token().expect("a1").expose_secret(), "a1");
    clock.advance(Duration::from_secs(3600));
    let second = Scripted::new(&clock, &[ok("a2", 3600, Some("r2"))]);
    let manager = BlockingTokenManager::builder(
        client(second.clone(), &clock),
        template("r0"),
        store.clone(),
    )
    .build()
    .expect("manager");
    second.on_next_request(wipe);
    assert_eq!(manager.access_token().expect("a2").expose_secret(), "a2");
    assert_eq!(
        stored_refresh_token(&store).as_deref(),
        Some("r2"),
        "written afresh"
    );
    let third = Scripted::new(&clock, &[]);
    let restarted =
        BlockingTokenManager::builder(client(third.clone(), &clock), template("r0"), store)
            .build()
            .expect("manager");
    assert_eq!(restarted.access_token().expect("a2").expose_secret(), "a2");
    assert!(third.sent().is_empty());
}

#[test]
fn a_memory_store_emptied_during_a_refresh_gets_the_new_set_written_afresh() {
    let store = Wipeable::default();
    let wiped = store.clone();
    survives_a_wipe(store, move || wiped.wipe());
}

#[test]
fn a_token_file_deleted_during_a_refresh_gets_the_new_set_written_afresh() {
    let dir = TempDir::new("wipe");
    let path = dir.join("tokens.json");
    let deleted = path.clone();
    survives_a_wipe(FileStore::new(&path), move || {
        std::fs::remove_file(&deleted).expect("the file existed");
    });
}

#[test]
fn a_new_set_that_cannot_be_written_afresh_is_reported_as_not_saved() {
    /// Loses its data on the first save, then fails every write.
    #[derive(Clone, Default)]
    struct LostThenBroken {
        inner: Wipeable,
        saves: Arc<Mutex<usize>>,
    }
    impl TokenStore for LostThenBroken {
        fn load(&self) -> Result<Option<Versioned>, StoreError> {
            self.inner.load()
        }
        fn save(&self, tokens: &TokenSet, expected: Option<u64>) -> Result<u64, StoreError> {
            let mut saves = self.saves.lock().expect("saves");
            *saves += 1;
            match *saves {
                1 => self.inner.save(tokens, expected),
                2 => {
                    self.inner.wipe();
                    self.inner.save(tokens, expected)
                }
                _ => Err(StoreError::Other("disk full".into())),
            }
        }
        fn try_lock(&self) -> Result<Option<StoreGuard>, StoreError> {
            self.inner.try_lock()
        }
    }
    let clock = clock();
    let transport = Scripted::new(
        &clock,
        &[ok("a1", 3600, Some("r1")), ok("a2", 3600, Some("r2"))],
    );
    let manager = BlockingTokenManager::builder(
        client(transport, &clock),
        template("r0"),
        LostThenBroken::default(),
    )
    .build()
    .expect("manager");
    manager.access_token().expect("first refresh stored");
    clock.advance(Duration::from_secs(3600));
    let e = manager.access_token().expect_err("not stored");
    assert!(matches!(e, SessionError::RotatedTokenNotSaved(_)), "{e}");
    assert!(e.to_string().contains("disk full"), "{e}");
}

// 3. No refresh storm.

/// Cognito answering every refresh with tokens that expire at once, up to a limit of calls.
#[derive(Clone)]
struct InstantExpiry {
    clock: cogref_core::driver::ManualEnvironment,
    calls: Arc<Mutex<usize>>,
    until: SystemTime,
}

impl cogref_core::BlockingTransport for InstantExpiry {
    fn send(
        &self,
        _: cogref_core::driver::HttpRequest,
        _: cogref_core::SendOptions,
    ) -> Result<cogref_core::driver::HttpResponse, cogref_core::Error> {
        let mut calls = self.calls.lock().expect("calls");
        *calls += 1;
        // Past the window (or past any sane count), end the session so the loop stops.
        let (status, body) = if self.clock.wall_clock() >= self.until || *calls > 10_000 {
            err(400, "NotAuthorizedException")
        } else {
            ok("a0", 0, None)
        };
        Ok(cogref_core::http::Response::builder()
            .status(status)
            .body(body.into_bytes())
            .expect("response"))
    }

    fn sleep(&self, duration: Duration) {
        self.clock.advance(duration);
    }
}

#[test]
fn the_background_refresher_never_spins_on_tokens_that_expire_as_they_arrive() {
    let clock = clock();
    let transport = InstantExpiry {
        clock: clock.clone(),
        calls: Arc::default(),
        until: UNIX_EPOCH + Duration::from_secs(T0 + 600),
    };
    let manager = Arc::new(
        BlockingTokenManager::builder(
            client(transport.clone(), &clock),
            template("r0"),
            MemoryStore::new(),
        )
        .build()
        .expect("manager"),
    );
    manager.spawn_background().join().expect("background");
    let calls = *transport.calls.lock().expect("calls");
    // Ten minutes: 1 s, then 2, 4, … 32 s apart, then every 60 s; plus the call that ended it.
    assert!(calls <= 16, "{calls} Cognito calls in ten minutes");
}

#[tokio::test]
async fn the_async_background_refresher_never_spins_either() {
    let clock = clock();
    let transport = InstantExpiry {
        clock: clock.clone(),
        calls: Arc::default(),
        until: UNIX_EPOCH + Duration::from_secs(T0 + 600),
    };
    /// The blocking double as an async transport whose sleeps move the manual clock.
    #[derive(Clone)]
    struct Instant(InstantExpiry);
    impl cogref_core::AsyncTransport for Instant {
        async fn send(
            &self,
            r: cogref_core::driver::HttpRequest,
            o: cogref_core::SendOptions,
        ) -> Result<cogref_core::driver::HttpResponse, cogref_core::Error> {
            cogref_core::BlockingTransport::send(&self.0, r, o)
        }
        async fn sleep(&self, d: Duration) {
            self.0.clock.advance(d);
            tokio::task::yield_now().await;
        }
        fn spawn(&self, task: cogref_core::driver::DetachedTask) {
            tokio::spawn(task);
        }
    }
    let manager = TokenManager::builder(
        client(Instant(transport.clone()), &clock),
        template("r0"),
        MemoryStore::new(),
    )
    .build()
    .await
    .expect("manager");
    tokio::time::timeout(Duration::from_secs(20), manager.run_background())
        .await
        .expect("the loop ends when the session does");
    let calls = *transport.calls.lock().expect("calls");
    assert!(calls <= 16, "{calls} Cognito calls in ten minutes");
}

#[test]
fn callers_asking_in_a_tight_loop_make_no_more_calls_than_the_floor_allows() {
    let clock = clock();
    let transport = InstantExpiry {
        clock: clock.clone(),
        calls: Arc::default(),
        until: UNIX_EPOCH + Duration::from_secs(T0 + 3600),
    };
    let manager = BlockingTokenManager::builder(
        client(transport.clone(), &clock),
        template("r0"),
        MemoryStore::new(),
    )
    .build()
    .expect("manager");
    let mut too_soon = 0;
    for _ in 0..5_000 {
        match manager.access_token() {
            Err(SessionError::TooSoon { retry_at, .. }) => {
                too_soon += 1;
                assert!(retry_at > clock.wall_clock());
            }
            other => panic!("{:?}", other.map(|t| t.expose_secret().to_owned())),
        }
        clock.advance(Duration::from_millis(1));
    }
    // Five seconds of calls every millisecond: refreshes at 0, 2 s (and nothing before 6 s).
    assert_eq!(*transport.calls.lock().expect("calls"), 2);
    assert_eq!(too_soon, 5_000);
    let shown = manager.access_token().expect_err("too soon").to_string();
    assert!(
        shown.contains("already due") && shown.contains("lifetime 0 s"),
        "{shown}"
    );
}

// 4. Dead for good? Not while the store holds a live lineage.

/// A set as another process stores it after rotating to `refresh`.
fn sibling_set(refresh: &str, access: &str, expires_secs: u64) -> TokenSet {
    TokenSet::new(
        refresh.to_owned().into(),
        Some(access.to_owned().into()),
        None,
        None,
        Some(UNIX_EPOCH + Duration::from_secs(expires_secs)),
        Some(Duration::from_secs(3600)),
    )
}

#[test]
fn a_manager_told_to_sign_in_adopts_the_set_a_sibling_rotated_meanwhile() {
    let clock = clock();
    let store = MemoryStore::new();
    let seeded = store
        .save(&TokenSet::from_refresh_token("r0", None), None)
        .expect("seeded");
    // Cognito has rotated r0 for a sibling whose lease ran out while this refresh was in
    // flight; the sibling stores its set just before this request is refused as a reuse.
    let transport = Scripted::new(&clock, &[reuse()]);
    let sibling = store.clone();
    transport.on_next_request(move || {
        sibling
            .save(&sibling_set("r1", "sibling-a1", T0 + 3600), Some(seeded))
            .expect("the sibling saves");
    });
    let signed_out = Counter::default();
    let seen = signed_out.clone();
    let manager = BlockingTokenManager::builder(
        client(transport.clone(), &clock),
        template("r0"),
        store.clone(),
    )
    .on_event(move |e| {
        if matches!(e, SessionEvent::SignInRequired(_)) {
            seen.bump();
        }
    })
    .build()
    .expect("manager");
    let token = manager.access_token().expect("the sibling's set is live");
    assert_eq!(token.expose_secret(), "sibling-a1");
    assert_eq!(
        manager.session().tokens().refresh_token.expose_secret(),
        "r1"
    );
    assert_eq!(transport.sent(), ["r0"]);
    assert_eq!(
        signed_out.get(),
        1,
        "the reuse is still reported as an event"
    );
}

#[test]
fn after_sign_in_is_required_every_call_looks_at_the_store_and_the_store_is_never_wiped() {
    let clock = clock();
    let store = MemoryStore::new();
    let transport = Scripted::new(
        &clock,
        &[
            ok("a1", 3600, Some("r1")),
            err(400, "NotAuthorizedException"),
        ],
    );
    let manager = BlockingTokenManager::builder(
        client(transport.clone(), &clock),
        template("r0"),
        store.clone(),
    )
    .build()
    .expect("manager");
    manager.access_token().expect("a1");
    clock.advance(Duration::from_secs(3600));
    for _ in 0..3 {
        let e = manager.access_token().expect_err("revoked");
        assert!(e.requires_sign_in(), "{e}");
    }
    assert_eq!(transport.sent(), ["r0", "r1"], "no call after the verdict");
    assert_eq!(
        stored_refresh_token(&store).as_deref(),
        Some("r1"),
        "kept, not wiped"
    );
    // The user signs in again in another process, which stores a new lineage.
    let version = store.load().expect("ok").expect("stored").version;
    store
        .save(
            &sibling_set("fresh-r0", "fresh-a0", T0 + 7200),
            Some(version),
        )
        .expect("saved");
    assert_eq!(
        manager.access_token().expect("adopted").expose_secret(),
        "fresh-a0"
    );
    assert_eq!(transport.sent(), ["r0", "r1"], "adopted without a call");
}

// 5. Misconfiguration is not a dead session.

#[test]
fn a_wrong_client_secret_or_an_unknown_refusal_keeps_the_session() {
    for message in [
        "Unable to verify secret hash for client 1example23456789",
        "Client is configured for secret but secret was not received",
        "Something Cognito never said before",
    ] {
        let clock = clock();
        let transport = Scripted::new(
            &clock,
            &[
                ok("a1", 3600, None),
                err_with(400, "NotAuthorizedException", message),
                err_with(400, "NotAuthorizedException", message),
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
        // Inside the margin: the refusal is a failure, and the valid token is still served.
        clock.advance(Duration::from_secs(3400));
        assert_eq!(
            manager.access_token().expect("a1").expose_secret(),
            "a1",
            "{message}"
        );
        // Expired: the caller hears of the refusal, but the session is not declared dead.
        clock.advance(Duration::from_secs(300));
        let e = manager.access_token().expect_err("refused");
        assert!(!e.requires_sign_in(), "{message}: {e}");
        let SessionError::Unavailable { error, .. } = &e else {
            panic!("{message}: {e}");
        };
        assert_eq!(
            error.is_configuration(),
            message.contains("secret"),
            "{message}"
        );
        // Fixed (the secret, or whatever it was): the same refresh token works again.
        clock.advance(Duration::from_secs(60));
        assert_eq!(
            manager.access_token().expect("a2").expose_secret(),
            "a2",
            "{message}"
        );
        assert_eq!(transport.sent(), ["r0", "r0", "r0", "r0"]);
    }
}

// 6. A clock step never extends a token.

#[test]
fn a_wall_clock_stepped_back_never_serves_a_token_past_its_expiry() {
    let stepped = SteppedClock::new();
    let manual = clock();
    let transport = Scripted::new(&manual, &[ok("a1", 3600, None), ok("a2", 3600, None)]);
    let manager = BlockingTokenManager::builder(
        client_on(transport.clone(), stepped.clone()),
        template("r0"),
        MemoryStore::new(),
    )
    .build()
    .expect("manager");
    assert_eq!(manager.access_token().expect("a1").expose_secret(), "a1");
    // Fifty-nine minutes and a half later, someone steps the wall clock back ten minutes.
    stepped.advance(Duration::from_secs(3570));
    stepped.step_wall(-600);
    // By the wall clock a1 has 40 minutes left; it has 29 s. It is refreshed, not served.
    assert_eq!(manager.access_token().expect("a2").expose_secret(), "a2");
    assert_eq!(transport.sent().len(), 2);
}

#[test]
fn a_wall_clock_stepped_forward_refreshes_early_and_goes_on() {
    let stepped = SteppedClock::new();
    let manual = clock();
    let transport = Scripted::new(&manual, &[ok("a1", 3600, None), ok("a2", 3600, None)]);
    let manager = BlockingTokenManager::builder(
        client_on(transport.clone(), stepped.clone()),
        template("r0"),
        MemoryStore::new(),
    )
    .build()
    .expect("manager");
    manager.access_token().expect("a1");
    stepped.advance(Duration::from_secs(10));
    stepped.step_wall(7200);
    assert_eq!(manager.access_token().expect("a2").expose_secret(), "a2");
    // The new token counts from the stepped clock and is served from the cache.
    stepped.advance(Duration::from_secs(60));
    assert_eq!(manager.access_token().expect("a2").expose_secret(), "a2");
    assert_eq!(transport.sent().len(), 2);
}

/// Clocks whose quick readings (`clocks()`, a session's cached path) lag both true clocks by
/// the lag they state, as the transports' coarse clocks may.
#[derive(Clone)]
struct Lagging {
    clocks: SteppedClock,
    lag: Duration,
}

impl Environment for Lagging {
    fn now(&self) -> std::time::Instant {
        self.clocks.now()
    }
    fn wall_clock(&self) -> SystemTime {
        self.clocks.wall_clock()
    }
    fn random_seed(&self) -> u64 {
        self.clocks.random_seed()
    }
    fn clocks(&self) -> cogref_core::Now {
        cogref_core::Now::new(self.wall_clock() - self.lag, self.now() - self.lag)
    }
    fn clocks_lag(&self) -> Duration {
        self.lag
    }
}

#[test]
fn a_token_due_by_the_wall_clock_is_not_served_from_a_wall_reading_within_its_lag() {
    let stepped = SteppedClock::new();
    let manual = clock();
    let transport = Scripted::new(&manual, &[ok("a1", 3600, None), ok("a2", 3600, None)]);
    let env = Lagging {
        clocks: stepped.clone(),
        lag: Duration::from_secs(2),
    };
    let manager = BlockingTokenManager::builder(
        client_on(transport.clone(), env),
        template("r0"),
        MemoryStore::new(),
    )
    .build()
    .expect("manager");
    // Twice: the second call reads the store once (its change stamp moved with the save).
    for _ in 0..2 {
        assert_eq!(manager.access_token().expect("a1").expose_secret(), "a1");
    }
    // Ten seconds on, the wall clock jumps (a suspend): a1 is due by it since a second (due at
    // 3299 s: 300 s before its expiry, counted 1 s short), not by the monotonic clock; the
    // lagging reading says 1 s to go.
    stepped.advance(Duration::from_secs(10));
    stepped.step_wall(3290);
    assert_eq!(manager.access_token().expect("a2").expose_secret(), "a2");
    assert_eq!(transport.sent().len(), 2);
}

// 7. An unusable 2xx that rotated.

#[test]
fn a_rotated_token_in_an_unusable_answer_is_saved_before_the_failure_is_reported() {
    let clock = clock();
    let transport = Scripted::new(
        &clock,
        &[
            ok("a1", 3600, None),
            (
                200,
                r#"{"AuthenticationResult":{"RefreshToken":"eyJ.r1.rotated","ExpiresIn":"x"}}"#
                    .into(),
            ),
            ok("a2", 3600, None),
        ],
    );
    let store = MemoryStore::new();
    let manager = BlockingTokenManager::builder(
        client(transport.clone(), &clock),
        template("r0"),
        store.clone(),
    )
    .build()
    .expect("manager");
    manager.access_token().expect("a1");
    clock.advance(Duration::from_secs(3600));
    let e = manager.access_token().expect_err("unusable answer");
    assert!(!e.requires_sign_in(), "{e}");
    assert!(!format!("{e} {e:?}").contains("eyJ.r1"), "{e:?}");
    assert_eq!(
        stored_refresh_token(&store).as_deref(),
        Some("eyJ.r1.rotated")
    );
    clock.advance(Duration::from_secs(2));
    assert_eq!(manager.access_token().expect("a2").expose_secret(), "a2");
    assert_eq!(transport.sent(), ["r0", "r0", "eyJ.r1.rotated"]);
}

// 8 (e). A set belongs to its app client.

#[test]
fn a_store_holding_another_app_clients_session_is_refused() {
    let clock = clock();
    let store = MemoryStore::with_tokens(TokenSet::from_refresh_token("r-other", None).bound_to(
        Some("other-client".into()),
        Some("https://cognito-idp.eu-west-1.amazonaws.com/".into()),
    ));
    let transport = Scripted::new(&clock, &[]);
    let e = match BlockingTokenManager::builder(
        client(transport.clone(), &clock),
        template("r0"),
        store.clone(),
    )
    .build()
    {
        Ok(_) => panic!("a set of another client was taken"),
        Err(e) => e,
    };
    let shown = e.to_string();
    assert!(
        shown.contains("other-client") && shown.contains("one store"),
        "{shown}"
    );
    assert!(transport.sent().is_empty());
    // A set this manager saves records its client and endpoint.
    let transport = Scripted::new(&clock, &[ok("a1", 3600, None)]);
    let store = MemoryStore::new();
    BlockingTokenManager::builder(client(transport, &clock), template("r0"), store.clone())
        .build()
        .expect("manager")
        .access_token()
        .expect("a1");
    let saved = store.load().expect("ok").expect("saved").tokens;
    assert_eq!(saved.client_id.as_deref(), Some("client"));
    assert!(saved.endpoint.is_some_and(|e| e.contains("eu-west-1")));
}

#[test]
fn refresh_now_waits_out_the_floor_and_returns_a_token_obtained_after_the_call() {
    let clock = clock();
    let transport = Scripted::new(
        &clock,
        &[
            ok("a1", 3600, Some("r1")),
            ok("a2", 3600, Some("r2")),
            ok("a3", 3600, Some("r3")),
        ],
    );
    let manager = BlockingTokenManager::builder(
        client(transport.clone(), &clock),
        template("r0"),
        MemoryStore::new(),
    )
    .build()
    .expect("manager");
    let started = clock.wall_clock();
    assert_eq!(manager.refresh_now().expect("a1").expose_secret(), "a1");
    assert_eq!(manager.refresh_now().expect("a2").expose_secret(), "a2");
    assert_eq!(manager.refresh_now().expect("a3").expose_secret(), "a3");
    assert_eq!(transport.sent(), ["r0", "r1", "r2"]);
    // Each waited for the floor: the three refreshes started a second apart.
    let elapsed = clock.wall_clock().duration_since(started).expect("forward");
    assert_eq!(elapsed, Duration::from_secs(2));
}
