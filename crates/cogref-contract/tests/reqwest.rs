//! The contract suite over `cogref-reqwest`.

use std::sync::Arc;

use cogref_contract::{Refresher, Revoker};
use cogref_core::{CallConfig, Endpoint};

fn make(endpoint: Endpoint, config: CallConfig) -> Refresher {
    let client = Arc::new(cogref_reqwest::client(endpoint, config).expect("reqwest client"));
    Arc::new(move |input| {
        let client = client.clone();
        Box::pin(async move { client.refresh(&input).await })
    })
}

fn make_revoker(endpoint: Endpoint, config: CallConfig) -> Revoker {
    let client = Arc::new(cogref_reqwest::client(endpoint, config).expect("reqwest client"));
    Arc::new(move |input| {
        let client = client.clone();
        Box::pin(async move { client.revoke(&input).await })
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
    let client = cogref_reqwest::client(endpoint, CallConfig::default()).expect("reqwest client");
    cogref_contract::clocks::assert_quick_readings_within_the_stated_lag(client.environment());
}
