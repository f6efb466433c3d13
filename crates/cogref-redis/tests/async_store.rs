//! The async store: `TokenManager`s on one current-thread runtime sharing a lineage through
//! `AsyncRedisStore`, against the emulator with rotation and no grace period. One thread for
//! every manager means any blocking call on Redis while another manager refreshes would stall
//! the fleet: the waits must be truly async.

mod common;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use cogref_core::{CallConfig, EndpointConfig, RefreshInput, RetryConfig, TokenSet};
use cogref_redis::{AsyncRedisStore, RedisStore, RedisStoreError, SealingKey};
use cogref_session::secrecy::ExposeSecret;
use cogref_session::{AsyncTokenStore, StoreError, TokenManager, TokenStore};
use common::*;

fn async_store(url: &str, lineage: &str) -> AsyncRedisStore {
    RedisStore::builder(url, lineage)
        .build_async()
        .expect("store")
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

#[test]
fn async_managers_on_one_thread_share_a_lineage_through_expiries_with_one_refresh_each() {
    let redis = redis();
    let (_emulator_runtime, emulator) = emulator();
    let lineage = seeded_lineage(&emulator, &redis.url, "async-fleet", 0, 3);

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let seconds = 7;
    let results = runtime.block_on(async {
        let mut tasks = Vec::new();
        for _ in 0..4 {
            let endpoint = EndpointConfig::new()
                .endpoint_url(emulator.endpoint_url())
                .resolve()
                .expect("endpoint");
            let config = CallConfig {
                retry: RetryConfig::rotation_safe(),
                ..CallConfig::default()
            };
            let client = cogref_reqwest::client(endpoint, config).expect("client");
            let template = RefreshInput::builder()
                .refresh_token("unused-placeholder")
                .client_id("cogrefdemoclient")
                .build()
                .expect("valid");
            let manager = Arc::new(
                TokenManager::builder(client, template, async_store(&redis.url, &lineage))
                    .build()
                    .await
                    .expect("manager"),
            );
            tasks.push(tokio::spawn(async move {
                let deadline = Instant::now() + Duration::from_secs(seconds);
                let mut tokens = BTreeSet::new();
                let (mut errors, mut invalid) = (Vec::new(), 0usize);
                while Instant::now() < deadline {
                    match manager.access_token().await {
                        Ok(token) => {
                            let claims = cogref_core::jwt::decode_claims(token.expose_secret());
                            if !claims.is_ok_and(|c| c.exp.is_some_and(|exp| exp > unix_now())) {
                                invalid += 1;
                            }
                            tokens.insert(token.expose_secret().to_owned());
                        }
                        Err(e) => errors.push(e.to_string()),
                    }
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                (tokens, errors, invalid)
            }));
        }
        let mut results = Vec::new();
        for task in tasks {
            results.push(task.await.expect("task"));
        }
        results
    });

    let granted = emulator.refreshes_granted();
    assert_eq!(emulator.refusals("RefreshTokenReuseException"), 0);
    assert_eq!(emulator.requests_served(), granted);
    assert!((3..=seconds as usize + 3).contains(&granted), "{granted}");
    let all: BTreeSet<&String> = results.iter().flat_map(|(t, _, _)| t).collect();
    assert_eq!(
        all.len(),
        granted,
        "one refresh per expiry, each token shared"
    );
    for (tokens, errors, invalid) in &results {
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(*invalid, 0);
        assert!(tokens.len() + 1 >= granted);
    }
}

#[tokio::test]
async fn the_async_store_reads_what_the_blocking_store_wrote_and_checks_versions() {
    let redis = redis();
    let name = lineage("async-cas");
    let store = async_store(&redis.url, &name);
    assert!(AsyncTokenStore::load(&store).await.expect("load").is_none());
    let v1 = AsyncTokenStore::save(&store, &TokenSet::from_refresh_token("r1", None), None)
        .await
        .expect("save");
    let blocking = RedisStore::builder(&redis.url, &name)
        .build()
        .expect("store");
    let v2 = tokio::task::spawn_blocking(move || {
        TokenStore::save(
            &blocking,
            &TokenSet::from_refresh_token("r2", None),
            Some(v1),
        )
    })
    .await
    .expect("thread")
    .expect("blocking save");
    match AsyncTokenStore::save(
        &store,
        &TokenSet::from_refresh_token("stale", None),
        Some(v1),
    )
    .await
    {
        Err(StoreError::Conflict { expected, found }) => {
            assert_eq!((expected, found), (Some(v1), Some(v2)));
        }
        other => panic!("expected a conflict, got {other:?}"),
    }
    let loaded = AsyncTokenStore::load(&store)
        .await
        .expect("load")
        .expect("set");
    assert_eq!(loaded.version, v2);
    assert_eq!(loaded.tokens.refresh_token.expose_secret(), "r2");
}

#[tokio::test]
async fn the_async_lease_is_exclusive_and_unlock_releases_it() {
    let redis = redis();
    let name = lineage("async-lease");
    let (a, b) = (
        async_store(&redis.url, &name),
        async_store(&redis.url, &name),
    );
    let guard = AsyncTokenStore::try_lock(&a)
        .await
        .expect("ok")
        .expect("free");
    assert!(AsyncTokenStore::try_lock(&b).await.expect("ok").is_none());
    AsyncTokenStore::unlock(&a, guard).await;
    let guard = AsyncTokenStore::try_lock(&b)
        .await
        .expect("ok")
        .expect("released");
    // A guard dropped without unlock (a cancelled task) is released on the runtime.
    drop(guard);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        if let Some(g) = AsyncTokenStore::try_lock(&a).await.expect("ok") {
            AsyncTokenStore::unlock(&a, g).await;
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the dropped lease was never released"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn the_async_store_gives_the_same_clear_error_for_a_wrong_sealing_key() {
    let redis = redis();
    let name = lineage("async-seal");
    let sealed = RedisStore::builder(&redis.url, &name)
        .sealing_key(SealingKey::from_bytes([3; 32]))
        .build_async()
        .expect("store");
    AsyncTokenStore::save(
        &sealed,
        &TokenSet::from_refresh_token("CANARYrefresh", None),
        None,
    )
    .await
    .expect("save");
    let wrong = RedisStore::builder(&redis.url, &name)
        .sealing_key(SealingKey::from_bytes([4; 32]))
        .build_async()
        .expect("store");
    let e = AsyncTokenStore::load(&wrong).await.expect_err("wrong key");
    let StoreError::Other(source) = &e else {
        panic!("{e:?}")
    };
    assert!(matches!(
        source.downcast_ref::<RedisStoreError>(),
        Some(RedisStoreError::WrongKey { .. })
    ));
    assert!(!format!("{e} {e:?}").contains("CANARY"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_async_store_reconnects_after_a_server_restart() {
    let mut server = RedisServer::start();
    let store = async_store(&server.url(), &lineage("async-restart"));
    AsyncTokenStore::save(&store, &TokenSet::from_refresh_token("r1", None), None)
        .await
        .expect("save");
    tokio::task::block_in_place(|| server.restart());
    assert!(
        AsyncTokenStore::load(&store)
            .await
            .expect("reconnected")
            .is_none()
    );
}

#[tokio::test]
async fn the_async_store_binds_the_version_and_refuses_a_rollback_too() {
    let redis = redis();
    let name = lineage("async-rollback");
    let key = SealingKey::from_bytes([5; 32]);
    let store = RedisStore::builder(&redis.url, &name)
        .sealing_key(key.clone())
        .build_async()
        .expect("store");
    let v1 = AsyncTokenStore::save(
        &store,
        &TokenSet::from_refresh_token("CANARY-r1", None),
        None,
    )
    .await
    .expect("v1");
    let mut c = raw(&redis.url);
    let (old_v, old_d): (String, Vec<u8>) = redis::cmd("HMGET")
        .arg(store.tokens_key())
        .arg("v")
        .arg("d")
        .query(&mut c)
        .expect("raw");
    let v2 = AsyncTokenStore::save(
        &store,
        &TokenSet::from_refresh_token("CANARY-r2", None),
        Some(v1),
    )
    .await
    .expect("v2");
    // The blocking store reads what the async one sealed.
    let blocking = RedisStore::builder(&redis.url, &name)
        .sealing_key(key)
        .build()
        .expect("store");
    let (loaded, blocking) =
        tokio::task::spawn_blocking(move || (TokenStore::load(&blocking), blocking))
            .await
            .expect("thread");
    assert_eq!(loaded.expect("load").expect("set").version, v2);
    for (v, what) in [
        (old_v.clone(), "old {v, d}"),
        (v2.to_string(), "old d, current v"),
    ] {
        redis::cmd("HSET")
            .arg(store.tokens_key())
            .arg("v")
            .arg(&v)
            .arg("d")
            .arg(&old_d)
            .query::<i64>(&mut c)
            .expect("write");
        let e = AsyncTokenStore::load(&store).await.expect_err(what);
        let shown = format!("{e} {e:?}");
        assert!(!shown.contains("CANARY"), "{shown}");
        let StoreError::Other(source) = &e else {
            panic!("{what}: {e:?}")
        };
        let expected_rollback = v == old_v;
        match source.downcast_ref::<RedisStoreError>() {
            Some(RedisStoreError::RolledBack { .. }) if expected_rollback => {}
            Some(RedisStoreError::WrongKey { .. }) if !expected_rollback => {}
            other => panic!("{what}: {other:?}"),
        }
    }
    drop(blocking);
}
