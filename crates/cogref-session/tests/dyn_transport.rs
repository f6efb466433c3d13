//! The managers over transports chosen at run time (`Client::into_dyn`,
//! `Client::into_dyn_blocking`), against the emulator with rotation and no grace period: the
//! refresh still runs as a task of the transport's own (`spawn` through the `dyn`), so a dropped
//! caller loses no rotation, and sign-out works.

use std::time::{Duration, Instant};

use cogref_core::{CallConfig, EndpointConfig, RefreshInput};
use cogref_emulator::{Emulator, EmulatorConfig, Seed};
use cogref_session::{BlockingTokenManager, MemoryStore, SessionError, TokenManager, TokenStore};

fn template(token: &str) -> RefreshInput {
    RefreshInput::builder()
        .refresh_token(token.to_owned())
        .client_id("cogrefdemoclient")
        .build()
        .expect("valid")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn managers_over_dyn_transports_refresh_on_spawned_tasks_and_sign_out() {
    let emulator = Emulator::start(EmulatorConfig::default())
        .await
        .expect("emulator");
    let endpoint = EndpointConfig::new()
        .endpoint_url(emulator.endpoint_url())
        .resolve()
        .expect("endpoint");
    let seed = |name: &str| {
        emulator
            .seed(&Seed {
                username: name.into(),
                rotation_grace_secs: Some(0),
                ..Seed::default()
            })
            .expect("seed")
            .refresh_token
    };
    // Over reqwest here (the transport this crate's tests have); any AsyncTransport goes the
    // same way through `into_dyn`.
    let client = cogref_reqwest::client(endpoint.clone(), CallConfig::default())
        .expect("client")
        .into_dyn();
    let store = MemoryStore::new();
    let manager = TokenManager::builder(client, template(&seed("reqwest")), store.clone())
        .build()
        .await
        .expect("manager");
    // The caller gives up at once; the refresh, on the transport's task, goes on and saves.
    let _ = tokio::time::timeout(Duration::from_micros(1), manager.access_token()).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while store
        .load()
        .expect("ok")
        .is_none_or(|v| v.tokens.access_token.is_none())
    {
        assert!(Instant::now() < deadline, "the refresh never finished");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    manager.access_token().await.expect("the saved token");
    manager.sign_out().await.expect("signed out");
    assert!(matches!(
        manager.access_token().await,
        Err(SessionError::SignedOut)
    ));
    let client =
        cogref_blocking::client(endpoint.clone(), CallConfig::default()).into_dyn_blocking();
    let manager =
        BlockingTokenManager::builder(client, template(&seed("blocking")), MemoryStore::new())
            .build()
            .expect("manager");
    tokio::task::block_in_place(|| {
        manager.access_token().expect("token");
        manager.sign_out().expect("signed out");
        assert!(matches!(
            manager.access_token(),
            Err(SessionError::SignedOut)
        ));
    });
    emulator.shutdown().await;
}
