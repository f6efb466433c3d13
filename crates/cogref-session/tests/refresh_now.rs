//! `refresh_now()` promises "a token obtained by a refresh that started after this call": when
//! that refresh fails, the caller hears the failure, never the token it already had (the one
//! an API just refused, typically). The current token stays available through `access_token()`.

mod common;

use std::time::{Duration, UNIX_EPOCH};

use cogref_core::TokenSet;
use cogref_session::secrecy::ExposeSecret;
use cogref_session::{BlockingTokenManager, MemoryStore, SessionError, TokenManager};
use common::*;

/// A stored set whose access token `a0` is valid for another 50 minutes.
fn valid_set() -> TokenSet {
    TokenSet::new(
        "r0".to_owned().into(),
        Some("a0".to_owned().into()),
        None,
        None,
        Some(UNIX_EPOCH + Duration::from_secs(T0 + 3000)),
        Some(Duration::from_secs(3600)),
    )
    .with_refreshed_at(Some(UNIX_EPOCH + Duration::from_secs(T0 - 600)))
}

fn failing() -> Vec<(u16, String)> {
    (0..8).map(|_| err(500, "InternalErrorException")).collect()
}

#[test]
fn a_failed_forced_refresh_is_reported_not_answered_with_the_old_token_blocking() {
    let clock = clock();
    let transport = Scripted::new(&clock, &failing());
    let manager = BlockingTokenManager::builder(
        client(transport.clone(), &clock),
        template("r0"),
        MemoryStore::with_tokens(valid_set()),
    )
    .build()
    .expect("manager");
    clock.advance(Duration::from_secs(10));
    let answer = manager.refresh_now();
    assert!(
        matches!(answer, Err(SessionError::Unavailable { .. })),
        "refresh_now answered {:?} although its refresh failed",
        answer.as_ref().map(|t| t.expose_secret().to_owned())
    );
    assert!(!transport.sent().is_empty(), "no refresh was attempted");
    let cached = manager
        .access_token()
        .expect("the current token is still valid");
    assert_eq!(cached.expose_secret(), "a0");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_forced_refresh_is_reported_not_answered_with_the_old_token_async() {
    let clock = clock();
    let scripted = Scripted::new(&clock, &failing());
    let transport = OnTokio {
        inner: scripted.clone(),
        delay: Duration::ZERO,
    };
    let manager = TokenManager::builder(
        client(transport, &clock),
        template("r0"),
        MemoryStore::with_tokens(valid_set()),
    )
    .build()
    .await
    .expect("manager");
    clock.advance(Duration::from_secs(10));
    let answer = manager.refresh_now().await;
    assert!(
        matches!(answer, Err(SessionError::Unavailable { .. })),
        "refresh_now answered {:?} although its refresh failed",
        answer.as_ref().map(|t| t.expose_secret().to_owned())
    );
    assert!(!scripted.sent().is_empty(), "no refresh was attempted");
    let cached = manager.access_token().await.expect("still valid");
    assert_eq!(cached.expose_secret(), "a0");
}
