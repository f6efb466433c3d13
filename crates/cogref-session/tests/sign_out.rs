//! Sign-out, end to end against the emulator: `sign_out()` revokes the session's refresh token
//! (the newest one stored), replaces the stored set with a tombstone and releases the lock; later
//! calls, here and in every other manager sharing the store, answer `SignedOut` at once; a failed
//! revocation changes nothing; a store that lost its data is not a sign-out; a new sign-in over
//! the tombstone starts a new lineage.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use cogref_core::driver::{HttpRequest, HttpResponse};
use cogref_core::{
    BlockingTransport, CallConfig, Client, EndpointConfig, Error, RefreshInput, RetryConfig,
    SendOptions,
};
use cogref_emulator::{Emulator, EmulatorConfig, Seed};
use cogref_session::secrecy::ExposeSecret;
use cogref_session::{
    BlockingTokenManager, FileStore, MemoryStore, SessionError, SessionEvent, TokenManager,
    TokenStore,
};

/// A blocking transport to the emulator that records every `RevokeToken` body and, while
/// `fail_revocations` is set, answers revocations itself with a 500 (Cognito failing
/// internally) instead of passing them on.
#[derive(Clone)]
struct Recording {
    inner: cogref_blocking::UreqTransport,
    revoked: Arc<Mutex<Vec<String>>>,
    fail_revocations: Arc<AtomicBool>,
}

impl Recording {
    fn new() -> Self {
        Self {
            inner: cogref_blocking::UreqTransport::new(&Default::default()),
            revoked: Arc::default(),
            fail_revocations: Arc::default(),
        }
    }

    /// The tokens revocations carried, in order (failed ones included).
    fn revoked(&self) -> Vec<String> {
        self.revoked.lock().expect("revoked").clone()
    }
}

impl BlockingTransport for Recording {
    fn send(&self, request: HttpRequest, options: SendOptions) -> Result<HttpResponse, Error> {
        let revocation =
            request.headers()["x-amz-target"] == "AWSCognitoIdentityProviderService.RevokeToken";
        if revocation {
            let body: serde_json::Value = serde_json::from_slice(request.body()).expect("json");
            self.revoked
                .lock()
                .expect("revoked")
                .push(body["Token"].as_str().unwrap_or_default().to_owned());
            if self.fail_revocations.load(Ordering::SeqCst) {
                return Ok(cogref_core::http::Response::builder()
                    .status(500)
                    .body(br#"{"__type":"InternalErrorException","message":"scripted"}"#.to_vec())
                    .expect("response"));
            }
        }
        self.inner.send(request, options)
    }
}

struct Fixture {
    emulator: Emulator,
    endpoint: cogref_core::Endpoint,
}

/// An emulator whose demo client rotates with no grace period: a refresh token used twice, or
/// after a revocation, is dead at once.
async fn fixture() -> Fixture {
    let emulator = Emulator::start(EmulatorConfig::default())
        .await
        .expect("emulator");
    let endpoint = EndpointConfig::new()
        .endpoint_url(emulator.endpoint_url())
        .resolve()
        .expect("endpoint");
    Fixture { emulator, endpoint }
}

impl Fixture {
    /// A new user (a new sign-in): its first refresh token.
    fn sign_in(&self, username: &str) -> String {
        self.emulator
            .seed(&Seed {
                username: username.into(),
                rotation_grace_secs: Some(0),
                ..Seed::default()
            })
            .expect("seed")
            .refresh_token
    }

    fn client<T>(&self, transport: T) -> Client<T, cogref_core::driver::StdEnvironment> {
        let config = CallConfig {
            retry: RetryConfig {
                initial_backoff: Duration::from_millis(5),
                max_backoff: Duration::from_millis(20),
                ..RetryConfig::default()
            },
            ..CallConfig::default()
        };
        Client::new(
            transport,
            cogref_core::driver::StdEnvironment::new(Instant::now, SystemTime::now),
            self.endpoint.clone(),
            config,
        )
    }
}

fn template(refresh_token: &str) -> RefreshInput {
    RefreshInput::builder()
        .refresh_token(refresh_token.to_owned())
        .client_id("cogrefdemoclient")
        .build()
        .expect("valid")
}

/// Counts `SignedOut` events.
fn listener(count: &Arc<Mutex<usize>>) -> impl Fn(&SessionEvent) + Send + Sync + 'static {
    let count = count.clone();
    move |e| {
        if matches!(e, SessionEvent::SignedOut) {
            *count.lock().expect("count") += 1;
        }
    }
}

fn blocking<S: TokenStore>(
    fx: &Fixture,
    transport: Recording,
    token: &str,
    store: S,
    signed_out: &Arc<Mutex<usize>>,
) -> BlockingTokenManager<Recording, cogref_core::driver::StdEnvironment, S> {
    BlockingTokenManager::builder(fx.client(transport), template(token), store)
        .on_event(listener(signed_out))
        .build()
        .expect("manager")
}

/// A fresh folder under the system's temporary one, removed at the end of the test.
struct TempDir(std::path::PathBuf);

impl TempDir {
    fn new() -> Self {
        let dir = std::env::temp_dir().join(format!(
            "cogref-sign-out-{}-{}",
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

fn is_signed_out<T: std::fmt::Debug>(result: Result<T, SessionError>) -> bool {
    matches!(result, Err(SessionError::SignedOut))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_out_revokes_the_token_leaves_a_tombstone_without_tokens_and_later_calls_answer_signed_out()
 {
    let fx = fixture().await;
    let first = fx.sign_in("sam");
    let dir = TempDir::new();
    let path = dir.0.join("tokens.json");
    let transport = Recording::new();
    let events = Arc::new(Mutex::new(0));
    let manager = blocking(
        &fx,
        transport.clone(),
        &first,
        FileStore::new(&path),
        &events,
    );
    let token = tokio::task::block_in_place(|| manager.access_token()).expect("signed in");
    let current = manager
        .session()
        .tokens()
        .refresh_token
        .expose_secret()
        .to_owned();
    assert_ne!(current, first, "rotated on the first refresh");

    tokio::task::block_in_place(|| manager.sign_out()).expect("signed out");

    assert_eq!(
        transport.revoked(),
        std::slice::from_ref(&current),
        "the current token was revoked"
    );
    assert_eq!(*events.lock().expect("events"), 1, "SignedOut told once");
    let stored = FileStore::new(&path)
        .load()
        .expect("readable")
        .expect("a tombstone");
    assert!(stored.tokens.is_signed_out());
    let bytes = std::fs::read_to_string(&path).expect("file");
    for secret in [&first, &current, &token.expose_secret().to_owned()] {
        assert!(
            !bytes.contains(secret.as_str()),
            "no token survives in the store"
        );
    }
    assert!(bytes.contains("signed_out_at_ms"), "{bytes}");
    // Every later call: signed out, without a call to Cognito.
    let served = fx.emulator.requests_served();
    assert!(is_signed_out(tokio::task::block_in_place(
        || manager.access_token()
    )));
    assert!(is_signed_out(tokio::task::block_in_place(
        || manager.refresh_now()
    )));
    assert!(
        SessionError::SignedOut.requires_sign_in(),
        "a signed-out session needs a sign-in"
    );
    assert_eq!(fx.emulator.requests_served(), served);
    // Signing out again does nothing more.
    tokio::task::block_in_place(|| manager.sign_out()).expect("already signed out");
    assert_eq!(transport.revoked().len(), 1);
    // Cognito agrees: the token is revoked.
    let e = fx
        .client(Recording::new())
        .refresh_blocking(&template(&current))
        .expect_err("revoked");
    assert!(e.requires_sign_in(), "{e}");
    // And the lock was released.
    assert!(
        FileStore::new(&path)
            .try_lock()
            .expect("lockable")
            .is_some()
    );
    fx.emulator.shutdown().await;
}

/// Two blocking managers over clones of one store (or two handles on one file): after `a` signs
/// out, `b`'s very next call answers `SignedOut`, although its cached token is still valid by
/// its clock, without a call to Cognito.
fn the_other_manager_sees_it<S: TokenStore>(
    fx: &Fixture,
    name: &str,
    a_store: S,
    b_store: S,
    stamp_max_age: Duration,
) {
    let token = fx.sign_in(&format!("pat-{name}"));
    let (a_events, b_events) = (Arc::new(Mutex::new(0)), Arc::new(Mutex::new(0)));
    let a = blocking(fx, Recording::new(), &token, a_store, &a_events);
    let b = blocking(fx, Recording::new(), &token, b_store, &b_events);
    a.access_token().expect("a signed in");
    // b adopts a's set from the store: both hold a valid, cached access token.
    b.access_token().expect("b signed in");
    let served = fx.emulator.requests_served();
    a.sign_out().expect("a signs out");
    // The store's guarantee: a memory store's stamp is exact, a file store's `stat` is reused
    // for at most a millisecond.
    std::thread::sleep(stamp_max_age);
    assert!(
        is_signed_out(b.access_token()),
        "{name}: b still served a token"
    );
    assert_eq!(*b_events.lock().expect("events"), 1, "{name}: b was told");
    assert!(is_signed_out(b.access_token()), "{name}");
    assert!(is_signed_out(b.refresh_now()), "{name}");
    assert_eq!(
        fx.emulator.requests_served(),
        served,
        "{name}: nobody refreshed"
    );
    b.sign_out().expect("nothing left to do");
    assert_eq!(*a_events.lock().expect("events"), 1, "{name}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_other_manager_sharing_the_store_sees_the_sign_out_on_its_next_call() {
    let fx = fixture().await;
    let dir = TempDir::new();
    let path = dir.0.join("tokens.json");
    tokio::task::block_in_place(|| {
        let memory = MemoryStore::new();
        the_other_manager_sees_it(&fx, "memory", memory.clone(), memory, Duration::ZERO);
        the_other_manager_sees_it(
            &fx,
            "file",
            FileStore::new(&path),
            FileStore::new(&path),
            FileStore::STAMP_MAX_AGE,
        );
    });
    fx.emulator.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_async_manager_sees_another_managers_sign_out_on_its_next_call_and_its_own_sign_out_survives_a_dropped_future()
 {
    let fx = fixture().await;
    let token = fx.sign_in("quinn");
    let store = MemoryStore::new();
    let make = || {
        let transport =
            cogref_reqwest::ReqwestTransport::new(&Default::default()).expect("reqwest");
        TokenManager::builder(fx.client(transport), template(&token), store.clone())
    };
    let a = make().build().await.expect("a");
    let events = Arc::new(Mutex::new(0));
    let b = make().on_event(listener(&events)).build().await.expect("b");
    a.access_token().await.expect("a signed in");
    b.access_token().await.expect("b adopts");
    // a's sign-out, its future dropped at once: the task goes on.
    let _ = tokio::time::timeout(Duration::from_micros(1), a.sign_out()).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while !store
        .load()
        .expect("ok")
        .is_some_and(|v| v.tokens.is_signed_out())
    {
        assert!(Instant::now() < deadline, "the sign-out never finished");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(is_signed_out(b.access_token().await), "b's next call");
    assert_eq!(*events.lock().expect("events"), 1);
    assert!(is_signed_out(a.access_token().await), "a's next call");
    assert!(is_signed_out(a.refresh_now().await));
    fx.emulator.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revocation_that_fails_leaves_the_store_and_the_session_untouched_and_says_to_try_again()
{
    let fx = fixture().await;
    let first = fx.sign_in("robin");
    let store = MemoryStore::new();
    let transport = Recording::new();
    let events = Arc::new(Mutex::new(0));
    let manager = blocking(&fx, transport.clone(), &first, store.clone(), &events);
    tokio::task::block_in_place(|| {
        let token = manager.access_token().expect("signed in");
        let before = store.load().expect("ok").expect("saved");
        transport.fail_revocations.store(true, Ordering::SeqCst);
        let e = manager.sign_out().expect_err("Cognito failed");
        let SessionError::SignOutFailed(cause) = &e else {
            panic!("expected SignOutFailed, got {e:?}");
        };
        assert!(cause.is_retryable(), "{cause}");
        assert_eq!(cause.attempts(), 3, "retried like any call: {cause}");
        assert!(e.to_string().contains("nothing was changed"), "{e}");
        assert!(e.to_string().contains("try again"), "{e}");
        assert!(!e.requires_sign_in());
        // Nothing moved: the same set and version in the store, the same token served.
        let after = store.load().expect("ok").expect("still there");
        assert_eq!(after.version, before.version);
        assert!(after.tokens.same_refresh_token(&before.tokens) && !after.tokens.is_signed_out());
        assert_eq!(
            manager
                .access_token()
                .expect("still signed in")
                .expose_secret(),
            token.expose_secret()
        );
        assert_eq!(*events.lock().expect("events"), 0);
        // The refresh token still works, and the next try signs out.
        transport.fail_revocations.store(false, Ordering::SeqCst);
        manager.refresh_now().expect("the session goes on");
        manager.sign_out().expect("signed out");
        assert!(is_signed_out(manager.access_token()));
    });
    fx.emulator.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_that_lost_its_data_is_not_a_sign_out() {
    let fx = fixture().await;
    let token = fx.sign_in("kim");
    let dir = TempDir::new();
    let path = dir.0.join("tokens.json");
    let events = Arc::new(Mutex::new(0));
    let a = blocking(
        &fx,
        Recording::new(),
        &token,
        FileStore::new(&path),
        &events,
    );
    let b = blocking(
        &fx,
        Recording::new(),
        &token,
        FileStore::new(&path),
        &events,
    );
    tokio::task::block_in_place(|| {
        let served_a = a.access_token().expect("a");
        b.access_token().expect("b adopts");
        std::fs::remove_file(&path).expect("the store loses its data");
        std::thread::sleep(FileStore::STAMP_MAX_AGE);
        // Both notice the change and read the store: empty, which is not a sign-out.
        assert_eq!(
            a.access_token().expect("still signed in").expose_secret(),
            served_a.expose_secret()
        );
        b.access_token().expect("still signed in");
        assert_eq!(*events.lock().expect("events"), 0);
        // The next refresh writes the set afresh.
        a.refresh_now().expect("refreshed");
        assert!(
            FileStore::new(&path)
                .load()
                .expect("ok")
                .is_some_and(|v| !v.tokens.is_signed_out())
        );
    });
    fx.emulator.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_out_revokes_the_newest_token_another_holder_stored() {
    let fx = fixture().await;
    let first = fx.sign_in("lee");
    let store = MemoryStore::new();
    let events = Arc::new(Mutex::new(0));
    let transport = Recording::new();
    let a = blocking(&fx, transport.clone(), &first, store.clone(), &events);
    let b = blocking(&fx, Recording::new(), &first, store.clone(), &events);
    tokio::task::block_in_place(|| {
        a.access_token().expect("a");
        // b refreshes again (rotation): a's refresh token is now an old one.
        std::thread::sleep(Duration::from_millis(1100));
        b.refresh_now().expect("b rotates");
        let newest = store.load().expect("ok").expect("saved").tokens;
        a.sign_out().expect("a signs out");
        assert_eq!(
            transport.revoked(),
            [newest.refresh_token.expose_secret().to_owned()]
        );
        assert!(is_signed_out(b.access_token()));
    });
    fx.emulator.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_sign_in_over_a_tombstone_starts_a_new_lineage_which_the_signed_out_managers_adopt() {
    let fx = fixture().await;
    let dir = TempDir::new();
    let path = dir.0.join("tokens.json");
    let old = fx.sign_in("noa");
    let events = Arc::new(Mutex::new(0));
    let a = blocking(&fx, Recording::new(), &old, FileStore::new(&path), &events);
    tokio::task::block_in_place(|| {
        a.access_token().expect("signed in");
        a.sign_out().expect("signed out");
    });
    // The user signs in again: a manager built with the new refresh token over the tombstone.
    let new = fx.sign_in("noa-again");
    let c = blocking(&fx, Recording::new(), &new, FileStore::new(&path), &events);
    tokio::task::block_in_place(|| {
        c.access_token().expect("the new session works");
        let stored = FileStore::new(&path)
            .load()
            .expect("ok")
            .expect("saved")
            .tokens;
        assert!(
            !stored.is_signed_out(),
            "the new lineage replaced the tombstone"
        );
        assert!(c.session().tokens().same_refresh_token(&stored));
        // The signed-out manager takes the new sign-in on its next call.
        a.access_token().expect("a adopts the new sign-in");
        assert!(a.session().tokens().same_refresh_token(&stored));
    });
    // A manager restarted with the old, revoked token over a tombstone is no new sign-in:
    // Cognito refuses it and the manager says so.
    let tombstone = MemoryStore::new();
    tombstone
        .save(&cogref_core::TokenSet::signed_out(SystemTime::now()), None)
        .expect("saved");
    let e = blocking(&fx, Recording::new(), &old, tombstone, &events);
    let refused = tokio::task::block_in_place(|| e.access_token()).expect_err("revoked");
    assert!(refused.requires_sign_in(), "{refused}");
    fx.emulator.shutdown().await;
}
