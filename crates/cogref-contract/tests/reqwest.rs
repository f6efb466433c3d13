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
