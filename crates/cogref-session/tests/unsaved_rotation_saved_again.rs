//! A rotated refresh token whose save failed lives in this process only: the manager saves it
//! again, without a refresh, as soon as the store takes it (at most once a second, on its
//! calls and by its background refresher), and says so with `SessionEvent::Stored`. Until then
//! a still-valid token is served, and a save that fails again is not reported to the caller
//! once more. A newer set another holder stored meanwhile is adopted, never written over.

mod common;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use cogref_core::TokenSet;
use cogref_session::secrecy::ExposeSecret;
use cogref_session::{BlockingTokenManager, SessionError, TokenManager, TokenStore};
use common::*;

/// A blocking manager whose first refresh rotates `r0` into `r1` on a full store: the caller
/// hears `RotatedTokenNotSaved`, and `r1` lives in memory only.
fn rotated_on_a_full_store() -> (
    BlockingTokenManager<Scripted, cogref_core::driver::ManualEnvironment, FullDisk>,
    FullDisk,
    Scripted,
    cogref_core::driver::ManualEnvironment,
    Events,
) {
    let clock = clock();
    // One answer only: a second request would find none and fail the test.
    let transport = Scripted::new(&clock, &[ok("a1", 3600, Some("r1"))]);
    let store = FullDisk::default();
    store.full.store(true, Ordering::SeqCst);
    let (events, listener) = recorder();
    let manager = BlockingTokenManager::builder(
        client(transport.clone(), &clock),
        template("r0"),
        store.clone(),
    )
    .on_event(listener)
    .build()
    .expect("manager");
    let e = manager.access_token().expect_err("the store is full");
    assert!(matches!(e, SessionError::RotatedTokenNotSaved(_)), "{e}");
    assert_eq!(stored_refresh_token(&store), None);
    (manager, store, transport, clock, events)
}

#[test]
fn a_rotation_whose_save_failed_is_saved_without_a_refresh_once_the_store_takes_it() {
    let (manager, store, transport, clock, events) = rotated_on_a_full_store();
    store.full.store(false, Ordering::SeqCst);
    clock.advance(Duration::from_secs(1));
    assert_eq!(manager.access_token().expect("a1").expose_secret(), "a1");
    assert_eq!(stored_refresh_token(&store).as_deref(), Some("r1"));
    assert_eq!(transport.sent(), ["r0"], "no refresh was spent on the save");
    assert!(
        events
            .lock()
            .expect("events")
            .contains(&"stored".to_owned())
    );
    // Saved once: later calls are the cached path again, and save nothing.
    let saves = store.saves.load(Ordering::SeqCst);
    clock.advance(Duration::from_secs(5));
    for _ in 0..10 {
        assert_eq!(manager.access_token().expect("a1").expose_secret(), "a1");
    }
    assert_eq!(store.saves.load(Ordering::SeqCst), saves);
}

#[test]
fn a_save_that_fails_again_serves_the_valid_token_and_is_tried_at_most_once_a_second() {
    let (manager, store, transport, clock, events) = rotated_on_a_full_store();
    let after_first = store.saves.load(Ordering::SeqCst);
    // Within the second after the failure: served from memory, the store not asked.
    for _ in 0..5 {
        assert_eq!(manager.access_token().expect("a1").expose_secret(), "a1");
    }
    assert_eq!(store.saves.load(Ordering::SeqCst), after_first);
    // A second later: one more try, which fails; the caller still gets the good token.
    clock.advance(Duration::from_secs(1));
    for _ in 0..5 {
        assert_eq!(manager.access_token().expect("a1").expose_secret(), "a1");
    }
    assert_eq!(store.saves.load(Ordering::SeqCst), after_first + 1);
    let failures = |events: &Events| {
        events
            .lock()
            .expect("events")
            .iter()
            .filter(|e| *e == "store-failed")
            .count()
    };
    assert_eq!(failures(&events), 2, "each failed save is an event");
    // The store comes back: the next try stores r1.
    store.full.store(false, Ordering::SeqCst);
    clock.advance(Duration::from_secs(1));
    assert_eq!(manager.access_token().expect("a1").expose_secret(), "a1");
    assert_eq!(stored_refresh_token(&store).as_deref(), Some("r1"));
    assert_eq!(transport.sent(), ["r0"]);
}

#[test]
fn a_newer_set_another_holder_stored_meanwhile_is_adopted_not_written_over() {
    let (manager, store, transport, clock, events) = rotated_on_a_full_store();
    store.full.store(false, Ordering::SeqCst);
    // Another process (which had r1 from a save that was applied after all, say) rotated on.
    let theirs = TokenSet::new(
        "r2".to_owned().into(),
        Some("a2".to_owned().into()),
        None,
        None,
        Some(std::time::UNIX_EPOCH + Duration::from_secs(T0 + 3600)),
        Some(Duration::from_secs(3600)),
    )
    .bound_to(
        Some("client".to_owned()),
        Some("https://cognito-idp.eu-west-1.amazonaws.com/".to_owned()),
    );
    store.inner.save(&theirs, None).expect("their save");
    clock.advance(Duration::from_secs(1));
    let token = manager.access_token().expect("a token");
    assert_eq!(
        stored_refresh_token(&store).as_deref(),
        Some("r2"),
        "theirs stays"
    );
    assert_eq!(token.expose_secret(), "a2", "theirs is adopted");
    assert!(
        events
            .lock()
            .expect("events")
            .contains(&"adopted".to_owned())
    );
    assert_eq!(transport.sent(), ["r0"]);
}

#[test]
fn a_signed_out_session_never_saves_its_unsaved_rotation_back() {
    let (manager, store, _transport, clock, _events) = rotated_on_a_full_store();
    store.full.store(false, Ordering::SeqCst);
    // Another holder signed the lineage out: its tombstone is in the store.
    store
        .inner
        .save(
            &TokenSet::signed_out(std::time::UNIX_EPOCH + Duration::from_secs(T0)),
            None,
        )
        .expect("tombstone");
    clock.advance(Duration::from_secs(1));
    let e = manager.access_token().expect_err("signed out");
    assert!(matches!(e, SessionError::SignedOut), "{e}");
    let stored = store.load().expect("readable").expect("tombstone");
    assert!(stored.tokens.is_signed_out(), "the tombstone stays");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_async_manager_saves_an_unsaved_rotation_once_the_store_takes_it() {
    let clock = clock();
    let scripted = Scripted::new(&clock, &[ok("a1", 3600, Some("r1"))]);
    let store = FullDisk::default();
    store.full.store(true, Ordering::SeqCst);
    let (events, listener) = recorder();
    let manager = TokenManager::builder(
        client(
            OnTokio {
                inner: scripted.clone(),
                delay: Duration::ZERO,
            },
            &clock,
        ),
        template("r0"),
        store.clone(),
    )
    .on_event(listener)
    .build()
    .await
    .expect("manager");
    let e = manager.access_token().await.expect_err("the store is full");
    assert!(matches!(e, SessionError::RotatedTokenNotSaved(_)), "{e}");
    store.full.store(false, Ordering::SeqCst);
    clock.advance(Duration::from_secs(1));
    assert_eq!(
        manager.access_token().await.expect("a1").expose_secret(),
        "a1"
    );
    assert_eq!(stored_refresh_token(&store).as_deref(), Some("r1"));
    assert_eq!(scripted.sent(), ["r0"]);
    assert!(
        events
            .lock()
            .expect("events")
            .contains(&"stored".to_owned())
    );
}

#[test]
fn the_background_refresher_saves_an_unsaved_rotation_without_waiting_for_a_call() {
    let clock = clock();
    // The rotation, then (an hour on) Cognito saying the lineage was revoked, which ends the
    // background refresher.
    let transport = Scripted::new(
        &clock,
        &[
            ok("a1", 3600, Some("r1")),
            err(400, "NotAuthorizedException"),
        ],
    );
    let store = FullDisk::default();
    store.full.store(true, Ordering::SeqCst);
    let (events, listener) = recorder();
    let manager = Arc::new(
        BlockingTokenManager::builder(
            client(transport.clone(), &clock),
            template("r0"),
            store.clone(),
        )
        .on_event(listener)
        .build()
        .expect("manager"),
    );
    let e = manager.access_token().expect_err("the store is full");
    assert!(matches!(e, SessionError::RotatedTokenNotSaved(_)), "{e}");
    store.full.store(false, Ordering::SeqCst);
    // No call of access_token() from here on: the refresher alone (its sleeps move the clock).
    manager
        .spawn_background()
        .join()
        .expect("the refresher ends");
    let events = events.lock().expect("events").clone();
    let stored = events.iter().position(|e| e == "stored");
    assert!(stored.is_some(), "{events:?}");
    // It was saved before the next refresh, which sent the saved token.
    assert_eq!(transport.sent(), ["r0", "r1"]);
    assert_eq!(stored_refresh_token(&store).as_deref(), Some("r1"));
}
