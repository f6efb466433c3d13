//! "Redis restarted empty loses nothing", literally: Redis loses its data while a refresh is in
//! flight (Cognito has rotated, with no grace period); the new set is written afresh, and a
//! process started on the emptied Redis afterwards goes on without signing in.

mod common;

use cogref_core::driver::{HttpRequest, HttpResponse};
use cogref_core::{
    BlockingTransport, CallConfig, EndpointConfig, Error, RefreshInput, SendOptions,
};
use cogref_redis::RedisStore;
use cogref_session::secrecy::ExposeSecret;
use cogref_session::{BlockingTokenManager, TokenStore};
use common::*;

/// The real transport, with Redis flushed (as a restart without persistence does) between
/// Cognito's answer and the manager's save.
struct FlushAfterAnswer {
    inner: cogref_blocking::UreqTransport,
    redis_url: String,
}

impl BlockingTransport for FlushAfterAnswer {
    fn send(&self, request: HttpRequest, options: SendOptions) -> Result<HttpResponse, Error> {
        let answer = self.inner.send(request, options);
        let _: () = redis::cmd("FLUSHALL")
            .query(&mut raw(&self.redis_url))
            .expect("flush");
        answer
    }
}

#[test]
fn a_redis_emptied_while_cognito_rotates_gets_the_new_set_written_afresh() {
    // A private server: flushing the shared one would disturb other tests.
    let server = RedisServer::start();
    let url = server.url();
    let (_runtime, emulator) = emulator();
    let name = seeded_lineage(&emulator, &url, "emptied", 0, 3600);
    let endpoint = EndpointConfig::new()
        .endpoint_url(emulator.endpoint_url())
        .resolve()
        .expect("endpoint");
    let template = RefreshInput::builder()
        .refresh_token("unused-placeholder")
        .client_id("cogrefdemoclient")
        .build()
        .expect("valid");
    let config = CallConfig::default();
    let transport = FlushAfterAnswer {
        inner: cogref_blocking::UreqTransport::new(&config.timeouts),
        redis_url: url.clone(),
    };
    let client = cogref_core::Client::new(
        transport,
        cogref_core::driver::StdEnvironment::new(
            std::time::Instant::now,
            std::time::SystemTime::now,
        ),
        endpoint.clone(),
        config,
    );
    let store = RedisStore::builder(&url, &name).build().expect("store");
    let manager = BlockingTokenManager::builder(client, template.clone(), store)
        .build()
        .expect("manager");
    let token = manager.access_token().expect("refreshed and stored");
    // The first refresh token is dead (grace 0); only the new one, written afresh, is live.
    let reader = RedisStore::builder(&url, &name).build().expect("store");
    let stored = reader.load().expect("load").expect("written afresh");
    assert_eq!(emulator.refreshes_granted(), 1);
    // A process started now, on the emptied-and-rewritten Redis, needs no refresh.
    let restarted = BlockingTokenManager::builder(
        cogref_blocking::client(endpoint, CallConfig::default()),
        template,
        reader,
    )
    .build()
    .expect("manager");
    assert_eq!(
        restarted.access_token().expect("adopted").expose_secret(),
        token.expose_secret()
    );
    assert!(stored.tokens.access_token.is_some());
    assert_eq!(emulator.refreshes_granted(), 1);
    assert_eq!(emulator.refusals("RefreshTokenReuseException"), 0);
    drop(server);
}
