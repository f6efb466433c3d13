//! Hostile review of the session layer's issue-11 promises. Every test here states a rule the
//! crate docs, the README or issue 11 promise, and each failed on the commit it was written
//! against (see the review note for root causes and fixes).

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use cogref_core::driver::{HttpRequest, HttpResponse, ManualEnvironment};
use cogref_core::{
    BlockingTransport, CallConfig, Client, EndpointConfig, Environment, Error, RetryConfig,
    SendOptions, SessionConfig, TokenSet,
};
use cogref_session::secrecy::ExposeSecret;
use cogref_session::{
    BlockingTokenManager, FileStore, MemoryStore, SessionError, SessionEvent, StoreError,
    StoreGuard, TokenStore, Versioned,
};
use common::*;

/// A set another holder of the store wrote: refreshed at `refreshed_secs`, valid until
/// `expires_secs`, living an hour.
fn set_at(refresh: &str, access: &str, refreshed_secs: u64, expires_secs: u64) -> TokenSet {
    TokenSet::new(
        refresh.to_owned().into(),
        Some(access.to_owned().into()),
        None,
        None,
        Some(UNIX_EPOCH + Duration::from_secs(expires_secs)),
        Some(Duration::from_secs(3600)),
    )
    .with_refreshed_at(Some(UNIX_EPOCH + Duration::from_secs(refreshed_secs)))
}

// Promise 2/8: what the session stores must load back. A lifetime Cognito can legally send
// (ExpiresIn is an i32) is written by `encode` and refused as corrupt by `decode`.

#[test]
fn a_set_with_the_longest_expires_in_cognito_can_send_is_stored_readably() {
    let dir = TempDir::new("huge-lifetime");
    let path = dir.join("tokens.json");
    let clock = clock();
    let transport = Scripted::new(&clock, &[ok("a1", i32::MAX as u32, Some("r1"))]);
    let manager = BlockingTokenManager::builder(
        client(transport, &clock),
        template("r0"),
        FileStore::new(&path),
    )
    .build()
    .expect("manager");
    assert_eq!(manager.access_token().expect("a1").expose_secret(), "a1");
    // r0 is dead now (rotation): r1 must be readable by the next process.
    let loaded = FileStore::new(&path).load();
    assert!(
        matches!(&loaded, Ok(Some(v)) if v.tokens.refresh_token.expose_secret() == "r1"),
        "the rotated set was written but cannot be read back: {:?}",
        loaded.map(|v| v.map(|v| v.version))
    );
}

// Promise 2: success only once the new set is stored. A lost compare-and-set whose reload
// then finds nothing (Redis restarted) or fails (a timeout) is reported as a success, with the
// rotated refresh token in memory only.

/// A memory store whose next save loses a race to a writer it never sees: the save reports a
/// conflict, and then the store is emptied (`Emptied`) or the reload fails (`Unreachable`).
#[derive(Clone)]
struct LostRace {
    inner: Arc<Mutex<MemoryStore>>,
    mode: Arc<Mutex<Option<&'static str>>>,
    fail_next_load: Arc<AtomicBool>,
}

impl LostRace {
    fn current(&self) -> MemoryStore {
        self.inner.lock().expect("store").clone()
    }
}

impl TokenStore for LostRace {
    fn load(&self) -> Result<Option<Versioned>, StoreError> {
        if self.fail_next_load.swap(false, Ordering::SeqCst) {
            return Err(StoreError::Other("connection reset".into()));
        }
        self.current().load()
    }
    fn save(&self, tokens: &TokenSet, expected: Option<u64>) -> Result<u64, StoreError> {
        match self.mode.lock().expect("mode").take() {
            None => self.current().save(tokens, expected),
            Some(mode) => {
                if mode == "emptied" {
                    *self.inner.lock().expect("store") = MemoryStore::new();
                } else {
                    self.fail_next_load.store(true, Ordering::SeqCst);
                }
                Err(StoreError::Conflict {
                    expected,
                    found: Some(expected.unwrap_or(0) + 7),
                })
            }
        }
    }
    fn try_lock(&self) -> Result<Option<StoreGuard>, StoreError> {
        self.current().try_lock()
    }
}

#[test]
fn a_rotation_whose_save_lost_a_race_is_never_reported_as_stored_when_it_is_not() {
    let mut broken = Vec::new();
    for mode in ["emptied", "unreachable"] {
        let clock = clock();
        let store = LostRace {
            inner: Arc::new(Mutex::new(MemoryStore::with_tokens(set_at(
                "r0",
                "a0",
                T0 - 3600,
                T0 - 1,
            )))),
            mode: Arc::new(Mutex::new(Some(mode))),
            fail_next_load: Arc::default(),
        };
        let transport = Scripted::new(
            &clock,
            &[ok("a1", 3600, Some("r1")), ok("a2", 3600, Some("r2"))],
        );
        let manager = BlockingTokenManager::builder(
            client(transport.clone(), &clock),
            template("r0"),
            store.clone(),
        )
        .build()
        .expect("manager");
        let result = manager.access_token();
        assert_eq!(transport.sent(), ["r0"], "{mode}");
        // Cognito rotated r0 to r1. Either r1 is in the store, or the caller is told it is not.
        let stored = stored_refresh_token(&store);
        match result {
            Err(SessionError::RotatedTokenNotSaved(_)) => {}
            Ok(_) if stored.as_deref() == Some("r1") => {}
            Ok(_) => broken.push(format!("{mode}: success reported, store holds {stored:?}")),
            Err(e) => broken.push(format!("{mode}: {e}")),
        }
        // And the next refresh goes on from r1, never from the dead r0.
        clock.advance(Duration::from_secs(3600));
        let _ = manager.access_token();
        if transport.sent() != ["r0", "r1"] {
            broken.push(format!("{mode}: then sent {:?}", transport.sent()));
        }
    }
    assert!(broken.is_empty(), "{broken:#?}");
}

// Promise 6: tokens with ExpiresIn 0 are never served. After a lost save race the engine checks
// the validity of the set it adopted but hands out the token of its own (expired) answer.

#[test]
fn a_token_that_expired_on_arrival_is_not_handed_out_after_a_lost_save_race() {
    let clock = clock();
    let store = MemoryStore::with_tokens(set_at("r0", "a0", T0 - 3600, T0 - 1));
    let seeded = store.load().expect("ok").expect("seeded").version;
    let transport = Scripted::new(&clock, &[ok("expired-on-arrival", 0, Some("r1"))]);
    let sibling = store.clone();
    let slow = clock.clone();
    transport.on_next_request(move || {
        // Cognito takes 5 s; meanwhile a sibling whose lease ran out stores its own set, valid
        // for another 200 s (inside the margin, so due for a refresh but usable).
        slow.advance(Duration::from_secs(5));
        sibling
            .save(&set_at("r-sib", "sibling-a", T0, T0 + 205), Some(seeded))
            .expect("the sibling saves");
    });
    let manager = BlockingTokenManager::builder(
        client(transport.clone(), &clock),
        template("r0"),
        store.clone(),
    )
    .build()
    .expect("manager");
    match manager.access_token() {
        Ok(token) => assert_ne!(
            token.expose_secret(),
            "expired-on-arrival",
            "a token whose lifetime was 0 s was handed out"
        ),
        Err(e) => assert!(!e.requires_sign_in(), "{e}"),
    }
}

// Promise 4: before reporting sign-in-required, and on every later call, a newer set in the
// store is adopted. Once one rotated token could not be saved, no set is ever adopted again.

#[test]
fn a_signed_out_manager_adopts_a_fresh_sign_in_even_after_a_save_once_failed() {
    let clock = clock();
    let store = FullDisk::default();
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
    store.full.store(true, Ordering::SeqCst);
    let e = manager.access_token().expect_err("the disk is full");
    assert!(matches!(e, SessionError::RotatedTokenNotSaved(_)), "{e}");
    store.full.store(false, Ordering::SeqCst);
    // An administrator revokes the session: this manager is told to sign in.
    clock.advance(Duration::from_secs(3600));
    assert!(
        manager
            .access_token()
            .expect_err("revoked")
            .requires_sign_in()
    );
    // The unsaved r1 was saved again (before the refresh that was refused) once the disk had
    // room. The user signs in again in another process, which stores a new lineage over
    // whatever it finds.
    let found = store.load().expect("readable").map(|v| v.version);
    store
        .save(&set_at("fresh-r0", "fresh-a0", T0 + 3600, T0 + 7200), found)
        .expect("saved");
    let token = manager.access_token();
    assert_eq!(
        token
            .as_ref()
            .map(|t| t.expose_secret().to_owned())
            .ok()
            .as_deref(),
        Some("fresh-a0"),
        "the newer set in the store was not adopted: {:?}",
        token.err().map(|e| e.to_string())
    );
    assert_eq!(transport.sent(), ["r0", "r1"], "adopted without a call");
}

// is_newer: "whether a stored set is a later step of the lineage than ours". Any set with a
// different refresh token counts as newer, so an older copy (a token file restored from a
// backup) replaces the live lineage in memory, and its dead refresh token is sent.

#[test]
fn an_older_set_written_back_to_the_store_never_replaces_the_newer_one_in_memory() {
    let dir = TempDir::new("restored");
    let path = dir.join("tokens.json");
    let backup = dir.join("tokens.json.bak");
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
        FileStore::new(&path),
    )
    .build()
    .expect("manager");
    manager.access_token().expect("a1");
    std::fs::copy(&path, &backup).expect("backup");
    clock.advance(Duration::from_secs(3600));
    manager.access_token().expect("a2");
    // Someone restores last hour's backup (r1, refreshed an hour before the set in memory).
    std::fs::copy(&backup, &path).expect("restore");
    clock.advance(Duration::from_secs(3600));
    let _ = manager.access_token();
    assert_eq!(
        transport.sent(),
        ["r0", "r1", "r2"],
        "r1 was rotated out an hour ago; r2 is the live refresh token"
    );
}

// refresh_now: "returns a token obtained by a refresh that started after this call". While
// another process holds the lock, the set it stores is returned, though its refresh started
// before the call.

/// A memory store whose first `try_lock` finds the lock held by another process, which stores
/// `sibling` just then.
#[derive(Clone)]
struct BusyOnce {
    inner: MemoryStore,
    sibling: Arc<Mutex<Option<(TokenSet, u64)>>>,
}

impl TokenStore for BusyOnce {
    fn load(&self) -> Result<Option<Versioned>, StoreError> {
        self.inner.load()
    }
    fn save(&self, tokens: &TokenSet, expected: Option<u64>) -> Result<u64, StoreError> {
        self.inner.save(tokens, expected)
    }
    fn try_lock(&self) -> Result<Option<StoreGuard>, StoreError> {
        if let Some((set, version)) = self.sibling.lock().expect("sibling").take() {
            self.inner
                .save(&set, Some(version))
                .expect("the sibling saves");
            return Ok(None);
        }
        self.inner.try_lock()
    }
}

#[test]
fn refresh_now_never_returns_a_token_from_a_refresh_that_started_before_the_call() {
    let clock = clock();
    let store = BusyOnce {
        inner: MemoryStore::with_tokens(set_at("r0", "a0", T0 - 600, T0 + 3000)),
        sibling: Arc::default(),
    };
    let transport = Scripted::new(&clock, &[ok("a2", 3600, Some("r2"))]);
    let manager = BlockingTokenManager::builder(
        client(transport.clone(), &clock),
        template("r0"),
        store.clone(),
    )
    .build()
    .expect("manager");
    clock.advance(Duration::from_secs(10));
    // Another process started refreshing at T0 + 8 and stores its set as this call begins.
    let seeded = store.inner.load().expect("ok").expect("seeded").version;
    *store.sibling.lock().expect("sibling") =
        Some((set_at("r1", "sibling-a1", T0 + 8, T0 + 8 + 3599), seeded));
    let token = manager.refresh_now().expect("refreshed");
    assert_ne!(
        token.expose_secret(),
        "sibling-a1",
        "the sibling's refresh started 2 s before refresh_now() was called"
    );
    assert_eq!(transport.sent(), ["r1"]);
}

// Promise 8 (d): "a complete one of the very next generation (the crash came between the write
// and the rename) is put in place: it may hold the only copy of a rotated refresh token". On a
// first save (no token file yet, or one deleted mid-refresh: the Create path) the next
// generation is 1, but with no token file the temporary file is deleted instead.

#[cfg(unix)]
#[test]
fn a_crash_before_the_rename_of_a_first_save_is_recovered_not_swept_away() {
    use std::os::unix::fs::OpenOptionsExt;
    let dir = TempDir::new("first-save-crash");
    let path = dir.join("tokens.json");
    // What `save` leaves behind when the process dies between the fsync and the rename.
    let temp = dir.join(".tokens.json.4242.0.123.locked.tmp");
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&temp)
        .expect("temp");
    std::io::Write::write_all(
        &mut file,
        br#"{"format":"cogref-tokens","version":1,"refresh_token":"r1-rotated","generation":1}"#,
    )
    .expect("written");
    drop(file);
    let store = FileStore::new(&path);
    let guard = store.try_lock().expect("lock").expect("free");
    drop(guard);
    assert_eq!(
        stored_refresh_token(&store).as_deref(),
        Some("r1-rotated"),
        "the only copy of the rotated refresh token was {}",
        if temp.exists() {
            "left aside"
        } else {
            "deleted"
        }
    );
}

// Promise 7: "the session saves it before reporting". The failure is reported to listeners
// before the salvaged refresh token is saved: a listener that reads the store then finds the
// dead token, and one that panics (or exits) loses the rotation for good.

const UNUSABLE_ROTATED: &str =
    r#"{"AuthenticationResult":{"RefreshToken":"eyJ.r1.rotated","ExpiresIn":"x"}}"#;

#[test]
fn a_salvaged_rotated_token_is_stored_before_any_listener_hears_of_the_failure() {
    let clock = clock();
    let store = MemoryStore::new();
    let transport = Scripted::new(
        &clock,
        &[ok("a1", 3600, None), (200, UNUSABLE_ROTATED.into())],
    );
    let seen: Arc<Mutex<Vec<Option<String>>>> = Arc::default();
    let (watched, record) = (store.clone(), seen.clone());
    let manager = BlockingTokenManager::builder(
        client(transport.clone(), &clock),
        template("r0"),
        store.clone(),
    )
    .on_event(move |e| {
        if matches!(e, SessionEvent::RefreshFailed { .. }) {
            record
                .lock()
                .expect("seen")
                .push(stored_refresh_token(&watched));
        }
    })
    .build()
    .expect("manager");
    manager.access_token().expect("a1");
    clock.advance(Duration::from_secs(3600));
    manager.access_token().expect_err("unusable answer");
    assert_eq!(
        *seen.lock().expect("seen"),
        [Some("eyJ.r1.rotated".to_owned())],
        "when the failure was reported, the store still held the dead refresh token"
    );
}

#[test]
fn a_listener_that_panics_on_the_failure_report_does_not_lose_the_salvaged_rotated_token() {
    let clock = clock();
    let store = MemoryStore::new();
    let transport = Scripted::new(
        &clock,
        &[ok("a1", 3600, None), (200, UNUSABLE_ROTATED.into())],
    );
    let manager = BlockingTokenManager::builder(
        client(transport.clone(), &clock),
        template("r0"),
        store.clone(),
    )
    .on_event(|e| {
        if matches!(e, SessionEvent::RefreshFailed { .. }) {
            panic!("listener bug");
        }
    })
    .build()
    .expect("manager");
    manager.access_token().expect("a1");
    clock.advance(Duration::from_secs(3600));
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let _ = manager.access_token();
    }));
    assert!(outcome.is_err(), "the listener panicked");
    let in_memory = manager
        .session()
        .tokens()
        .refresh_token
        .expose_secret()
        .to_owned();
    assert!(
        stored_refresh_token(&store).as_deref() == Some("eyJ.r1.rotated")
            || in_memory == "eyJ.r1.rotated",
        "Cognito rotated r0 to eyJ.r1.rotated; neither the store nor the session kept it (store {:?}, memory {in_memory})",
        stored_refresh_token(&store)
    );
}

// Refresh ahead of expiry ("refreshed ahead of expiry"): one listener panic poisons the blocking
// manager's gate, and `try_lock` on a poisoned gate is read as "someone else is refreshing", so
// no caller refreshes ahead of expiry again.

#[test]
fn the_blocking_manager_still_refreshes_ahead_of_expiry_after_a_listener_panicked() {
    let clock = clock();
    let transport = Scripted::new(&clock, &[ok("a1", 3600, None), ok("a2", 3600, None)]);
    let panicked = Arc::new(AtomicBool::new(false));
    let once = panicked.clone();
    let manager = BlockingTokenManager::builder(
        client(transport.clone(), &clock),
        template("r0"),
        MemoryStore::new(),
    )
    .on_event(move |e| {
        if matches!(e, SessionEvent::Refreshed { .. }) && !once.swap(true, Ordering::SeqCst) {
            panic!("listener bug, once");
        }
    })
    .build()
    .expect("manager");
    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| manager.access_token()));
    assert!(panicked.load(Ordering::SeqCst));
    // Inside the five-minute margin: a caller refreshes while the old token is still served.
    clock.advance(Duration::from_secs(3400));
    let _ = manager.access_token();
    assert_eq!(
        transport.sent().len(),
        2,
        "no refresh ahead of expiry once the gate was poisoned"
    );
}

// Promise 6: a token is never handed out past its expiry. Claims win over ExpiresIn, except
// when they say the token expired when issued (exp <= iat): then ExpiresIn's hour is used.

#[test]
fn a_token_whose_claims_say_it_expired_when_issued_is_never_served() {
    // {"iat":1800000000,"exp":1800000000,…} and {"iat":1800000000,"exp":1799999000,…}
    for payload in [
        "eyJpYXQiOjE4MDAwMDAwMDAsImV4cCI6MTgwMDAwMDAwMCwidG9rZW5fdXNlIjoiYWNjZXNzIn0",
        "eyJpYXQiOjE4MDAwMDAwMDAsImV4cCI6MTc5OTk5OTAwMCwidG9rZW5fdXNlIjoiYWNjZXNzIn0",
    ] {
        let jwt = format!("eyJhbGciOiJSUzI1NiJ9.{payload}.c2ln");
        let clock = clock();
        let transport = Scripted::new(&clock, &[ok(&jwt, 3600, None), ok(&jwt, 3600, None)]);
        let manager = BlockingTokenManager::builder(
            client(transport, &clock),
            template("r0"),
            MemoryStore::new(),
        )
        .build()
        .expect("manager");
        let served = manager
            .access_token()
            .ok()
            .map(|t| t.expose_secret().to_owned());
        assert_eq!(served, None, "a token with exp <= iat was handed out");
    }
}

// No secret in any Display/Debug: the refresh token salvaged from an unusable 2xx is treated as
// a secret (saved, sent) yet shown in the error's body excerpt, whose redaction misses a token
// written with JSON escapes (`\/`), which the salvage decodes.

#[test]
fn the_refresh_token_salvaged_from_an_unusable_2xx_is_never_displayed() {
    let clock = clock();
    // Rotated, but no access token came back: the salvaged refresh token, spelt with escapes.
    let body = r#"{"AuthenticationResult":{"IdToken":"x","RefreshToken":"CANARY\/rotated\/0123456789\/refresh"}}"#;
    let store = MemoryStore::new();
    let events: Arc<Mutex<Vec<String>>> = Arc::default();
    let record = events.clone();
    let transport = Scripted::new(&clock, &[ok("a1", 3600, None), (200, body.into())]);
    let manager =
        BlockingTokenManager::builder(client(transport, &clock), template("r0"), store.clone())
            .on_event(move |e| record.lock().expect("events").push(format!("{e:?}")))
            .build()
            .expect("manager");
    manager.access_token().expect("a1");
    clock.advance(Duration::from_secs(3600));
    let e = manager.access_token().expect_err("unusable answer");
    // The session took it as the rotated refresh token: a secret.
    assert_eq!(
        stored_refresh_token(&store).as_deref(),
        Some("CANARY/rotated/0123456789/refresh")
    );
    let shown = format!("{e} {e:?} {:?}", events.lock().expect("events"));
    assert!(!shown.contains("CANARY"), "{shown}");
}

// Promise 8 (e): a set is refused only when it belongs to another app client or endpoint. The
// same endpoint spelt with its default port or in capitals is refused as "another endpoint".

fn client_at<T>(
    transport: T,
    clock: &ManualEnvironment,
    url: &str,
) -> Client<T, ManualEnvironment> {
    let endpoint = EndpointConfig::new()
        .endpoint_url(url)
        .resolve()
        .expect("valid");
    let config = CallConfig {
        retry: RetryConfig::disabled(),
        ..CallConfig::default()
    };
    Client::new(transport, clock.clone(), endpoint, config)
}

#[test]
fn a_set_stored_for_the_same_endpoint_spelt_differently_is_not_refused() {
    let clock = clock();
    let store = MemoryStore::new();
    let transport = Scripted::new(&clock, &[ok("a1", 3600, Some("r1"))]);
    BlockingTokenManager::builder(client(transport, &clock), template("r0"), store.clone())
        .build()
        .expect("manager")
        .access_token()
        .expect("a1");
    for url in [
        "https://cognito-idp.eu-west-1.amazonaws.com:443",
        "https://COGNITO-IDP.eu-west-1.amazonaws.com",
    ] {
        let transport = Scripted::new(&clock, &[]);
        let built = BlockingTokenManager::builder(
            client_at(transport, &clock, url),
            template("r0"),
            store.clone(),
        )
        .build();
        assert!(
            built.is_ok(),
            "{url}: {}",
            built.err().map(|e| e.to_string()).unwrap_or_default()
        );
    }
}

// Promise 6 within one process: two managers sharing a MemoryStore ("shared by the managers of
// one process"). The set one obtained is adopted by the other on the wall clock alone, so after
// the wall clock is stepped back the other serves it past its real expiry.

#[test]
fn a_token_shared_by_two_managers_of_one_process_is_never_served_past_expiry_after_a_clock_step() {
    let stepped = SteppedClock::new();
    let manual = clock();
    let store = MemoryStore::new();
    let first = Scripted::new(&manual, &[ok("a1", 3600, None)]);
    let second = Scripted::new(&manual, &[ok("a2", 3600, None)]);
    let one = BlockingTokenManager::builder(
        client_on(first, stepped.clone()),
        template("r0"),
        store.clone(),
    )
    .build()
    .expect("manager");
    let two = BlockingTokenManager::builder(
        client_on(second.clone(), stepped.clone()),
        template("r0"),
        store.clone(),
    )
    .build()
    .expect("manager");
    assert_eq!(one.access_token().expect("a1").expose_secret(), "a1");
    // 3,570 s later (29 s of a1's life left) the wall clock is stepped back ten minutes, and the
    // second manager asks for its first token.
    stepped.advance(Duration::from_secs(3570));
    stepped.step_wall(-600);
    let _ = two.access_token();
    // 100 s on, a1 has been dead for 71 s.
    stepped.advance(Duration::from_secs(100));
    let served = two.access_token().map(|t| t.expose_secret().to_owned());
    assert_ne!(
        served.ok().as_deref(),
        Some("a1"),
        "a1 served 71 s past its expiry"
    );
}

// storm.rs: the property `callers_never_cause_more_calls_than_expiries_plus_failures` can fail
// for inputs it generates: with more polls than milliseconds in the span, each poll still
// advances the clock 1 ms, so polling runs past the span (and past `until`), and the call that
// finds the session revoked is counted against a bound that has no room for it.

/// storm.rs's `FixedLifetime`, without failures.
#[derive(Clone)]
struct FixedLifetime {
    clock: ManualEnvironment,
    expires_in: u32,
    until: SystemTime,
    calls: Arc<Mutex<usize>>,
}

impl BlockingTransport for FixedLifetime {
    fn send(&self, _: HttpRequest, _: SendOptions) -> Result<HttpResponse, Error> {
        *self.calls.lock().expect("calls") += 1;
        let (status, body) = if self.clock.wall_clock() >= self.until {
            err(400, "NotAuthorizedException")
        } else {
            ok("a", self.expires_in, Some("r"))
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
fn the_storm_property_holds_for_a_short_span_polled_more_often_than_every_millisecond() {
    // The inputs: expires_in = 4, margin_secs = 0, failing = [], span_secs = 1, polls = 4000.
    let (expires_in, margin_secs, span_secs, polls) = (4u32, 0u64, 1u64, 4000u64);
    let span = Duration::from_secs(span_secs);
    let clock = clock();
    let transport = FixedLifetime {
        clock: clock.clone(),
        expires_in,
        until: UNIX_EPOCH + Duration::from_secs(T0) + span,
        calls: Arc::default(),
    };
    let manager = BlockingTokenManager::builder(
        client(transport.clone(), &clock),
        template("r0"),
        MemoryStore::new(),
    )
    .session_config(SessionConfig {
        refresh_margin: Duration::from_secs(margin_secs),
        ..SessionConfig::default()
    })
    .build()
    .expect("manager");
    // The property's body, as corrected: polls spread over the span, none past it.
    let step = (span / u32::try_from(polls).unwrap_or(u32::MAX)).max(Duration::from_millis(1));
    let polls = polls.min(u64::try_from(span.as_millis() / step.as_millis()).unwrap_or(u64::MAX));
    for _ in 0..polls {
        let _ = manager.access_token();
        clock.advance(step);
    }
    let calls = *transport.calls.lock().expect("calls");
    // storm.rs's `bound`.
    let floor = SessionConfig::default().min_refresh_interval;
    let lifetime =
        Duration::from_secs(u64::from(expires_in)).saturating_sub(Duration::from_secs(1));
    let interval =
        floor.max(lifetime.saturating_sub(Duration::from_secs(margin_secs).min(lifetime / 2)));
    let limit = 1 + (span.as_millis() / interval.as_millis()) as usize;
    assert!(calls <= limit, "{calls} calls > {limit}");
}

// Promise 4 with the documented recovery ("delete it and sign in again"): a token file deleted
// and written afresh starts again at generation 1, and a manager whose last known version is 1
// takes the new lineage for the set it already has (`recheck` compares versions only).

#[test]
fn a_signed_out_manager_adopts_a_sign_in_written_to_a_recreated_token_file() {
    let dir = TempDir::new("recreated");
    let path = dir.join("tokens.json");
    let clock = clock();
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
        FileStore::new(&path),
    )
    .build()
    .expect("manager");
    manager.access_token().expect("a1");
    clock.advance(Duration::from_secs(3600));
    assert!(
        manager
            .access_token()
            .expect_err("revoked")
            .requires_sign_in()
    );
    // The application removes the dead session and stores the user's new sign-in.
    std::fs::remove_file(&path).expect("deleted");
    FileStore::new(&path)
        .save(&set_at("fresh-r0", "fresh-a0", T0 + 3600, T0 + 7200), None)
        .expect("saved");
    let token = manager.access_token();
    assert_eq!(
        token
            .as_ref()
            .map(|t| t.expose_secret().to_owned())
            .ok()
            .as_deref(),
        Some("fresh-a0"),
        "{:?}",
        token.err().map(|e| e.to_string())
    );
}

// Promise 7 / "can a hostile 2xx replace a good refresh token with garbage?": the salvage takes
// a "RefreshToken" anywhere in the body, so a 2xx that is not Cognito's at all (a proxy's or
// captive portal's JSON, no AuthenticationResult) replaces the live refresh token.

#[test]
fn a_2xx_without_an_authentication_result_never_replaces_the_refresh_token() {
    let clock = clock();
    let store = MemoryStore::new();
    let proxy =
        r#"{"message":"sign in to the network","session":{"RefreshToken":"proxy-session-42"}}"#;
    let transport = Scripted::new(
        &clock,
        &[
            ok("a1", 3600, Some("r1")),
            (200, proxy.into()),
            ok("a2", 3600, Some("r2")),
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
    manager.access_token().expect_err("not Cognito's answer");
    assert_eq!(stored_refresh_token(&store).as_deref(), Some("r1"));
    clock.advance(Duration::from_secs(2));
    let _ = manager.access_token();
    assert_eq!(transport.sent(), ["r0", "r1", "r1"]);
}
