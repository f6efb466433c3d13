//! The whole contract suite, refresh and revoke cases, through transports chosen at run time:
//! each transport behind `Arc<dyn DynAsyncTransport>` (`Client::into_dyn`), and the blocking one
//! behind `Arc<dyn BlockingTransport>` (`Client::into_dyn_blocking`). The cases are unchanged:
//! the indirection must not change a byte or a verdict.

use std::sync::Arc;

use cogref_contract::{Refresher, Revoker};
use cogref_core::driver::{DynBlockingClient, DynClient, StdEnvironment};
use cogref_core::{CallConfig, Endpoint};

/// A client chosen by name, as an application reading its configuration would.
fn chosen(name: &str, endpoint: Endpoint, config: CallConfig) -> DynClient<StdEnvironment> {
    match name {
        "reqwest" => cogref_reqwest::client(endpoint, config)
            .expect("reqwest client")
            .into_dyn(),
        "isahc" => cogref_isahc::client(endpoint, config)
            .expect("isahc client")
            .into_dyn(),
        other => panic!("no transport {other}"),
    }
}

fn refresher(client: DynClient<StdEnvironment>) -> Refresher {
    let client = Arc::new(client);
    Arc::new(move |input| {
        let client = client.clone();
        Box::pin(async move { client.refresh(&input).await })
    })
}

fn revoker(client: DynClient<StdEnvironment>) -> Revoker {
    let client = Arc::new(client);
    Arc::new(move |input| {
        let client = client.clone();
        Box::pin(async move { client.revoke(&input).await })
    })
}

fn blocking(endpoint: Endpoint, config: CallConfig) -> Arc<DynBlockingClient<StdEnvironment>> {
    Arc::new(cogref_blocking::client(endpoint, config).into_dyn_blocking())
}

mod dyn_reqwest {
    use super::*;

    fn make(endpoint: Endpoint, config: CallConfig) -> Refresher {
        refresher(chosen("reqwest", endpoint, config))
    }

    fn make_revoker(endpoint: Endpoint, config: CallConfig) -> Revoker {
        revoker(chosen("reqwest", endpoint, config))
    }

    cogref_contract::contract_suite!(make);
    cogref_contract::revoke_suite!(make, make_revoker);
}

mod dyn_isahc {
    use super::*;

    fn make(endpoint: Endpoint, config: CallConfig) -> Refresher {
        refresher(chosen("isahc", endpoint, config))
    }

    fn make_revoker(endpoint: Endpoint, config: CallConfig) -> Revoker {
        revoker(chosen("isahc", endpoint, config))
    }

    cogref_contract::contract_suite!(make);
    cogref_contract::revoke_suite!(make, make_revoker);
}

mod dyn_blocking {
    use super::*;

    fn make(endpoint: Endpoint, config: CallConfig) -> Refresher {
        let client = blocking(endpoint, config);
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
        let client = blocking(endpoint, config);
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
}
