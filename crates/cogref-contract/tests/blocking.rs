//! The contract suite over `cogref-blocking` (ureq). The tokio runtime only hosts the mock
//! servers; each refresh runs on a blocking thread.

use std::sync::Arc;

use cogref_contract::{Refresher, Revoker};
use cogref_core::{CallConfig, Endpoint};

fn make(endpoint: Endpoint, config: CallConfig) -> Refresher {
    let client = Arc::new(cogref_blocking::client(endpoint, config));
    Arc::new(move |input| {
        let client = client.clone();
        Box::pin(async move {
            tokio::task::spawn_blocking(move || client.refresh_blocking(&input))
                .await
                .expect("the blocking call does not panic")
        })
    })
}

fn make_revoker(endpoint: Endpoint, config: CallConfig) -> Revoker {
    let client = Arc::new(cogref_blocking::client(endpoint, config));
    Arc::new(move |input| {
        let client = client.clone();
        Box::pin(async move {
            tokio::task::spawn_blocking(move || client.revoke_blocking(&input))
                .await
                .expect("the blocking call does not panic")
        })
    })
}

cogref_contract::contract_suite!(make);
cogref_contract::revoke_suite!(make, make_revoker);

/// A held monotonic reading can come back after a wall clock stepped back between two calls
/// (`StdEnvironment::with_monotonic_clock_held_for`): the client's environment reads both clocks
/// every time, so a session over it never serves a token from an old reading.
#[test]
fn the_client_reads_both_clocks_on_every_call() {
    use cogref_core::Environment;
    let endpoint = || {
        cogref_core::EndpointConfig::new()
            .region("eu-west-1")
            .resolve()
            .expect("endpoint")
    };
    let client = cogref_blocking::client(endpoint(), CallConfig::default());
    assert_eq!(client.environment().clocks_lag(), std::time::Duration::ZERO);
}
