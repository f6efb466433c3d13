//! The contract suite over `cogref-reqwest`.

use std::sync::Arc;

use cogref_contract::Refresher;
use cogref_core::{CallConfig, Endpoint};

fn make(endpoint: Endpoint, config: CallConfig) -> Refresher {
    let client = Arc::new(cogref_reqwest::client(endpoint, config).expect("reqwest client"));
    Arc::new(move |input| {
        let client = client.clone();
        Box::pin(async move { client.refresh(&input).await })
    })
}

cogref_contract::contract_suite!(make);
