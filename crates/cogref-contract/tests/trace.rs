//! The contract's logging case, for every transport, in a test binary of its own: the
//! subscriber that takes everything is the process's global default (see
//! `cogref_contract::trace`).

use std::sync::Arc;

use cogref_contract::trace::{
    no_revocation_secret_reaches_a_trace_subscriber, no_secret_reaches_a_trace_subscriber,
};
use cogref_contract::{Refresher, Revoker};
use cogref_core::{CallConfig, Endpoint};

fn reqwest(endpoint: Endpoint, config: CallConfig) -> Refresher {
    let client = Arc::new(cogref_reqwest::client(endpoint, config).expect("reqwest client"));
    Arc::new(move |input| {
        let client = client.clone();
        Box::pin(async move { client.refresh(&input).await })
    })
}

fn isahc(endpoint: Endpoint, config: CallConfig) -> Refresher {
    let client = Arc::new(cogref_isahc::client(endpoint, config).expect("isahc client"));
    Arc::new(move |input| {
        let client = client.clone();
        Box::pin(async move { client.refresh(&input).await })
    })
}

fn blocking(endpoint: Endpoint, config: CallConfig) -> Refresher {
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

fn reqwest_revoker(endpoint: Endpoint, config: CallConfig) -> Revoker {
    let client = Arc::new(cogref_reqwest::client(endpoint, config).expect("reqwest client"));
    Arc::new(move |input| {
        let client = client.clone();
        Box::pin(async move { client.revoke(&input).await })
    })
}

fn isahc_revoker(endpoint: Endpoint, config: CallConfig) -> Revoker {
    let client = Arc::new(cogref_isahc::client(endpoint, config).expect("isahc client"));
    Arc::new(move |input| {
        let client = client.clone();
        Box::pin(async move { client.revoke(&input).await })
    })
}

fn blocking_revoker(endpoint: Endpoint, config: CallConfig) -> Revoker {
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

/// One test, the transports one after the other: each one's capture is its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_transport_lets_a_secret_reach_a_subscriber_that_takes_every_target_at_trace() {
    let mut report = Vec::new();
    for (name, make) in [
        ("cogref-reqwest", reqwest as cogref_contract::MakeClient),
        ("cogref-isahc", isahc),
        ("cogref-blocking", blocking),
    ] {
        let start = cogref_contract::trace::mark();
        let mut leaks = no_secret_reaches_a_trace_subscriber(make).await;
        let revoker = match name {
            "cogref-reqwest" => reqwest_revoker as cogref_contract::MakeRevoker,
            "cogref-isahc" => isahc_revoker,
            _ => blocking_revoker,
        };
        leaks.extend(no_revocation_secret_reaches_a_trace_subscriber(revoker).await);
        if name == "cogref-isahc" {
            // isahc makes a span of each request on the caller's thread when it is handed the
            // request, before the exchange's future is polled: handed it quietly, the
            // application's subscriber sees none. (Its agent thread's own traces until the
            // first body silences that thread are another matter; see cogref-isahc.)
            leaks.extend(
                cogref_contract::trace::captured_since(start)
                    .into_iter()
                    .filter(|line| line.contains(" isahc::client"))
                    .map(|line| format!("isahc's request span reached the subscriber: {line}")),
            );
        }
        if !leaks.is_empty() {
            report.push(format!(
                "{name}: {} leak(s), first: {}",
                leaks.len(),
                leaks[0].chars().take(300).collect::<String>()
            ));
        }
    }
    assert!(report.is_empty(), "{}", report.join("\n"));
}
