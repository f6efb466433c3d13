//! Review of issue 14 against a real `redis-server`: a refresh whose lease ran out must never
//! put the signed-out lineage back over the tombstone another process left.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime};

use cogref_core::driver::{HttpRequest, HttpResponse, StdEnvironment};
use cogref_core::{
    BlockingTransport, CallConfig, Client, EndpointConfig, Error, RefreshInput, RetryConfig,
    SendOptions,
};
use cogref_redis::RedisStore;
use cogref_session::{BlockingTokenManager, SessionError, TokenStore};
use common::*;

/// Refreshes answer after `refresh_delay` with a rotated token; revocations answer `{}` at once.
#[derive(Clone)]
struct SlowRefresh {
    refresh_delay: Duration,
    refreshes: Arc<AtomicUsize>,
}

impl BlockingTransport for SlowRefresh {
    fn send(&self, request: HttpRequest, _: SendOptions) -> Result<HttpResponse, Error> {
        let body = if request.headers()["x-amz-target"]
            == "AWSCognitoIdentityProviderService.RevokeToken"
        {
            "{}".to_owned()
        } else {
            std::thread::sleep(self.refresh_delay);
            let n = self.refreshes.fetch_add(1, Ordering::SeqCst) + 1;
            format!(
                r#"{{"AuthenticationResult":{{"AccessToken":"access-{n}","ExpiresIn":3600,"TokenType":"Bearer","RefreshToken":"r{n}"}}}}"#
            )
        };
        Ok(cogref_core::http::Response::builder()
            .status(200)
            .body(body.into_bytes())
            .expect("response"))
    }

    fn sleep(&self, duration: Duration) {
        std::thread::sleep(duration);
    }
}

fn client(transport: SlowRefresh) -> Client<SlowRefresh, StdEnvironment> {
    let endpoint = EndpointConfig::new()
        .region("eu-west-1")
        .resolve()
        .expect("endpoint");
    let config = CallConfig {
        retry: RetryConfig::disabled(),
        ..CallConfig::default()
    };
    Client::new(
        transport,
        StdEnvironment::new(Instant::now, SystemTime::now),
        endpoint,
        config,
    )
}

fn template() -> RefreshInput {
    RefreshInput::builder()
        .refresh_token("r0")
        .client_id("client")
        .build()
        .expect("valid")
}

/// README "One session for a fleet": "a process whose lease ran out during a slow refresh
/// cannot overwrite a newer set". Process B's refresh outlives its 200 ms lease; process A then
/// takes the lease and signs out (tombstone saved, announced on the channel); a second request
/// handler of B answers `SignedOut` (B's look at the store moved its `store_version` to the
/// tombstone's). When B's refresh ends, `Engine::refreshed` compares and sets against that
/// version, the `SAVE` script finds it, and the rotated set replaces the tombstone.
#[test]
fn a_refresh_whose_redis_lease_ran_out_never_writes_over_a_tombstone() {
    let redis = redis();
    let lineage = lineage("review14-lease");
    let store = || {
        RedisStore::builder(&redis.url, &lineage)
            .lease_ttl(Duration::from_millis(200))
            .build()
            .expect("store")
    };
    let transport = SlowRefresh {
        refresh_delay: Duration::from_millis(1500),
        refreshes: Arc::default(),
    };
    let store_b = store();
    let started = Instant::now();
    while TokenStore::change_stamp(&store_b).is_none() {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "never subscribed"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let b = Arc::new(
        BlockingTokenManager::builder(client(transport.clone()), template(), store_b.clone())
            .build()
            .expect("manager B"),
    );
    let a = BlockingTokenManager::builder(client(transport.clone()), template(), store())
        .build()
        .expect("manager A");
    let slow = {
        let b = b.clone();
        std::thread::spawn(move || b.access_token().map(|_| ()))
    };
    std::thread::sleep(Duration::from_millis(50));
    let before = TokenStore::change_stamp(&store_b);
    a.sign_out().expect("A signed out");
    let tombstone = TokenStore::load(&store()).expect("ok").expect("stored");
    assert!(tombstone.tokens.is_signed_out());
    let started = Instant::now();
    while TokenStore::change_stamp(&store_b) == before {
        assert!(started.elapsed() < Duration::from_secs(2), "no message");
        std::thread::sleep(Duration::from_millis(2));
    }
    let seen = b.access_token();
    assert!(matches!(seen, Err(SessionError::SignedOut)), "{seen:?}");
    let _ = slow.join().expect("thread");
    let stored = TokenStore::load(&store()).expect("ok").expect("stored");
    assert!(
        stored.tokens.is_signed_out(),
        "after B's slow refresh ended, Redis holds a live set again (version {} over the \
         tombstone's {}): the lineage A signed out is back for the whole fleet",
        stored.version,
        tombstone.version
    );
}
