//! Sign-out across a fleet: one process's `sign_out()` leaves a tombstone in Redis, and every
//! other manager of the lineage, blocking (`RedisStore`) or async (`AsyncRedisStore`), answers
//! `SignedOut` on its first call after the channel's message arrived, without calling Cognito;
//! a Redis that restarted empty is no sign-out.

mod common;

use std::time::{Duration, Instant};

use cogref_core::{CallConfig, EndpointConfig, RefreshInput};
use cogref_redis::{AsyncRedisStore, RedisStore};
use cogref_session::{
    AsyncTokenStore, BlockingTokenManager, SessionError, TokenManager, TokenStore,
};
use common::*;

fn template() -> RefreshInput {
    RefreshInput::builder()
        .refresh_token("unused-placeholder")
        .client_id("cogrefdemoclient")
        .build()
        .expect("valid")
}

fn endpoint(emulator: &cogref_emulator::Emulator) -> cogref_core::Endpoint {
    EndpointConfig::new()
        .endpoint_url(emulator.endpoint_url())
        .resolve()
        .expect("endpoint")
}

/// Waits (at most `limit`) until `stamp` gives a value other than `before`: the channel's
/// message reached the store's watcher.
fn until_moved(stamp: impl Fn() -> Option<u64>, before: Option<u64>, limit: Duration) -> Duration {
    let started = Instant::now();
    while stamp() == before || stamp().is_none() {
        assert!(
            started.elapsed() < limit,
            "the change never reached the watcher"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    started.elapsed()
}

/// Waits (at most two seconds) until the store's watcher is subscribed.
fn until_watching(stamp: impl Fn() -> Option<u64>) {
    let started = Instant::now();
    while stamp().is_none() {
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "never subscribed"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn a_sign_out_reaches_blocking_and_async_managers_of_the_fleet_on_their_next_call() {
    let redis = redis();
    let (_emulator_runtime, emulator) = emulator();
    let lineage = seeded_lineage(&emulator, &redis.url, "sign-out", 0, 3600);
    let store = || {
        RedisStore::builder(&redis.url, &lineage)
            .build()
            .expect("store")
    };
    let a = BlockingTokenManager::builder(
        cogref_blocking::client(endpoint(&emulator), CallConfig::default()),
        template(),
        store(),
    )
    .build()
    .expect("a");
    let b_store = store();
    let b = BlockingTokenManager::builder(
        cogref_blocking::client(endpoint(&emulator), CallConfig::default()),
        template(),
        b_store.clone(),
    )
    .build()
    .expect("b");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let c_store: AsyncRedisStore = RedisStore::builder(&redis.url, &lineage)
        .build_async()
        .expect("store");
    let c = runtime
        .block_on(
            TokenManager::builder(
                cogref_reqwest::client(endpoint(&emulator), CallConfig::default()).expect("client"),
                template(),
                c_store.clone(),
            )
            .build(),
        )
        .expect("c");

    a.access_token().expect("a refreshes");
    b.access_token().expect("b adopts");
    runtime.block_on(c.access_token()).expect("c adopts");
    until_watching(|| TokenStore::change_stamp(&b_store));
    until_watching(|| runtime.block_on(async { AsyncTokenStore::change_stamp(&c_store) }));
    let b_before = TokenStore::change_stamp(&b_store);
    let c_before = runtime.block_on(async { AsyncTokenStore::change_stamp(&c_store) });
    let served = emulator.requests_served();

    a.sign_out().expect("a signs out");

    let second = Duration::from_secs(1);
    let b_took = until_moved(|| TokenStore::change_stamp(&b_store), b_before, second);
    let c_took = until_moved(
        || runtime.block_on(async { AsyncTokenStore::change_stamp(&c_store) }),
        c_before,
        second,
    );
    assert!(
        b_took < Duration::from_millis(500) && c_took < Duration::from_millis(500),
        "{b_took:?} {c_took:?}"
    );
    assert!(matches!(b.access_token(), Err(SessionError::SignedOut)));
    assert!(matches!(
        runtime.block_on(c.access_token()),
        Err(SessionError::SignedOut)
    ));
    assert_eq!(emulator.requests_served(), served, "nobody refreshed");
    let stored = TokenStore::load(&store())
        .expect("ok")
        .expect("a tombstone");
    assert!(stored.tokens.is_signed_out());
    // The lease was released.
    assert!(TokenStore::try_lock(&store()).expect("ok").is_some());
}

#[test]
fn a_redis_restarted_empty_is_not_a_sign_out() {
    // A private server: restarting the shared one would disturb other tests.
    let mut server = RedisServer::start();
    let url = server.url();
    let (_emulator_runtime, emulator) = emulator();
    let lineage = seeded_lineage(&emulator, &url, "restart-not-sign-out", 0, 3600);
    let store = RedisStore::builder(&url, &lineage).build().expect("store");
    let manager = BlockingTokenManager::builder(
        cogref_blocking::client(endpoint(&emulator), CallConfig::default()),
        template(),
        store.clone(),
    )
    .build()
    .expect("manager");
    let token = manager.access_token().expect("token");
    until_watching(|| TokenStore::change_stamp(&store));
    let before = TokenStore::change_stamp(&store);
    server.restart();
    // The watcher subscribes again and the stamp moves: the manager reads the store, finds it
    // empty, and goes on with its token.
    until_moved(
        || TokenStore::change_stamp(&store),
        before,
        Duration::from_secs(10),
    );
    use cogref_session::secrecy::ExposeSecret;
    assert_eq!(
        manager
            .access_token()
            .expect("still signed in")
            .expose_secret(),
        token.expose_secret()
    );
}
