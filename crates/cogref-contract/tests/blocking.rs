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

/// The client's environment reads both clocks on every call (a held monotonic reading can
/// come back after a wall clock stepped back between two calls: see
/// `StdEnvironment::with_monotonic_clock_held_for`), coarsely on Linux, within the lag it
/// states, so that a session over it never serves a token from an old reading.
#[test]
fn the_clients_quick_clock_readings_are_never_ahead_and_lag_at_most_the_stated_lag() {
    let endpoint = cogref_core::EndpointConfig::new()
        .region("eu-west-1")
        .resolve()
        .expect("endpoint");
    let client = cogref_blocking::client(endpoint, CallConfig::default());
    cogref_contract::clocks::assert_quick_readings_within_the_stated_lag(client.environment());
}
