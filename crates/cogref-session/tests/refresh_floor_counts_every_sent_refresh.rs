//! Review 13: attacks on "two refresh calls of one process life start at least
//! `min_refresh_interval` apart, whatever their answers" that broke it. Each test is a path
//! on which a refresh that was sent was not counted for the floor (fixed: the engine counts it
//! with `Session::refresh_not_applied` when it drops the answer for a sign-out).

mod common;

use std::sync::Arc;
use std::time::Duration;

use cogref_core::Environment;

use cogref_session::{BlockingTokenManager, MemoryStore, SessionError, TokenSet, TokenStore};
use common::*;

/// A refresh is in flight when another holder signs the lineage out and a caller of this
/// manager sees the tombstone (through the change stamp); the refresh's answer arrives and is
/// dropped (`Engine::refreshed` returns `SignedOut` before anything counts the request). A new
/// sign-in stored 0.1 s later is adopted, and its first refresh starts 0.11 s after the
/// dropped one: under the 1 s floor, in one process life.
#[test]
fn a_refresh_answered_after_a_sign_out_still_holds_back_the_next_refresh_for_the_floor() {
    let clock = clock();
    let store = MemoryStore::new();
    let cognito = Scripted::new(
        &clock,
        &[
            ok("a1", 60, Some("r1")),
            ok("a2", 60, Some("r2")),
            ok("n1", 60, Some("n2")),
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
            clock.advance(Duration::from_millis(10));
            let stored = store.load().expect("load").expect("a set");
            store
                .save(
                    &TokenSet::signed_out(clock.wall_clock()),
                    Some(stored.version),
                )
                .expect("tombstone");
            assert!(matches!(
                manager.access_token(),
                Err(SessionError::SignedOut)
            ));
        }
    });
    // The refresh of r1 is answered after the sign-out: its tokens are dropped.
    assert!(matches!(
        manager.access_token(),
        Err(SessionError::SignedOut)
    ));
    assert_eq!(cognito.sent(), ["r0", "r1"]);
    // A new sign-in, stored by another holder.
    let stored = store.load().expect("load").expect("tombstone");
    store
        .save(
            &TokenSet::from_refresh_token("n0", None),
            Some(stored.version),
        )
        .expect("new sign-in");
    clock.advance(Duration::from_millis(100));
    let answer = manager.access_token();
    assert_eq!(
        cognito.sent(),
        ["r0", "r1"],
        "a refresh started 0.11 s after the previous one (floor 1 s); answer: {answer:?}"
    );
}

/// Same, when the tombstone is found only by the refresh's own save (a lost compare-and-set,
/// `Engine::after_conflict`): the refresh succeeded at Cognito, its tokens stay unwritten, and
/// nothing counts the request for the floor.
#[test]
fn a_refresh_whose_save_finds_a_tombstone_still_holds_back_the_next_refresh_for_the_floor() {
    let clock = clock();
    let store = MemoryStore::new();
    let cognito = Scripted::new(
        &clock,
        &[
            ok("a1", 60, Some("r1")),
            ok("a2", 60, Some("r2")),
            ok("n1", 60, Some("n2")),
        ],
    );
    let manager = BlockingTokenManager::builder(
        client(cognito.clone(), &clock),
        template("r0"),
        store.clone(),
    )
    .build()
    .expect("manager");
    assert!(manager.access_token().is_ok());
    clock.advance(Duration::from_secs(40));
    cognito.on_next_request({
        let (store, clock) = (store.clone(), clock.clone());
        move || {
            clock.advance(Duration::from_millis(10));
            let stored = store.load().expect("load").expect("a set");
            store
                .save(
                    &TokenSet::signed_out(clock.wall_clock()),
                    Some(stored.version),
                )
                .expect("tombstone");
        }
    });
    assert!(matches!(
        manager.access_token(),
        Err(SessionError::SignedOut)
    ));
    assert_eq!(cognito.sent(), ["r0", "r1"]);
    let stored = store.load().expect("load").expect("tombstone");
    assert!(stored.tokens.is_signed_out(), "the tombstone stays");
    store
        .save(
            &TokenSet::from_refresh_token("n0", None),
            Some(stored.version),
        )
        .expect("new sign-in");
    clock.advance(Duration::from_millis(100));
    let answer = manager.access_token();
    assert_eq!(
        cognito.sent(),
        ["r0", "r1"],
        "a refresh started 0.11 s after the previous one (floor 1 s); answer: {answer:?}"
    );
}
