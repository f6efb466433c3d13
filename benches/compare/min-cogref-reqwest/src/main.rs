//! cogref-reqwest with its defaults.

use std::sync::Arc;
use std::time::Instant;

use bench_common::{CLIENT_ID, Settings, check, refresh_token, report, sequential_async, settings};
use cogref_reqwest::{CallConfig, EndpointConfig, RefreshInput};

#[derive(Clone)]
struct Caller {
    client: Arc<cogref_reqwest::Client>,
    input: Arc<RefreshInput>,
    settings: Arc<Settings>,
}

impl Caller {
    async fn call(&self) {
        let ok = self.client.refresh(&self.input).await.is_ok();
        check(&self.settings, ok, "cogref-reqwest");
    }
}

#[tokio::main]
async fn main() {
    let s = Arc::new(settings());
    let endpoint = EndpointConfig::new()
        .endpoint_url(&s.endpoint)
        .resolve()
        .expect("endpoint");
    let caller = Caller {
        client: Arc::new(cogref_reqwest::client(endpoint, CallConfig::default()).expect("client")),
        input: Arc::new(
            RefreshInput::builder()
                .refresh_token(refresh_token())
                .client_id(CLIENT_ID)
                .build()
                .expect("valid"),
        ),
        settings: s.clone(),
    };
    sequential_async(s.warmup, || caller.call()).await;
    let samples = sequential_async(s.calls, || caller.call()).await;
    let started = Instant::now();
    let tasks: Vec<_> = (0..s.concurrency)
        .map(|_| {
            let caller = caller.clone();
            tokio::spawn(async move {
                for _ in 0..caller.settings.per_caller {
                    caller.call().await;
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.expect("task");
    }
    report(
        "cogref-reqwest",
        &s,
        samples,
        s.concurrency * s.per_caller,
        started.elapsed(),
    );
}
