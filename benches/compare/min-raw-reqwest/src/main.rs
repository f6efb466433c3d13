//! The floor: the exact request bytes cogref sends, POSTed with a bare reqwest client, and the
//! answer parsed into an untyped `serde_json::Value`. No validation, no error model, no retries.

use std::sync::Arc;
use std::time::Instant;

use bench_common::{CLIENT_ID, Settings, check, refresh_token, report, sequential_async, settings};

#[derive(Clone)]
struct Caller {
    client: reqwest::Client,
    body: Arc<str>,
    settings: Arc<Settings>,
}

impl Caller {
    async fn call(&self) {
        let response = self
            .client
            .post(&self.settings.endpoint)
            .header("content-type", "application/x-amz-json-1.1")
            .header(
                "x-amz-target",
                "AWSCognitoIdentityProviderService.GetTokensFromRefreshToken",
            )
            .body(self.body.to_string())
            .send()
            .await
            .expect("response");
        let ok = response.status().is_success();
        let bytes = response.bytes().await.expect("body");
        let value: serde_json::Value = serde_json::from_slice(&bytes).expect("json");
        check(
            &self.settings,
            ok && value.get("AuthenticationResult").is_some(),
            "raw reqwest",
        );
    }
}

#[tokio::main]
async fn main() {
    let s = Arc::new(settings());
    let caller = Caller {
        client: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("client"),
        body: format!(
            r#"{{"RefreshToken":"{}","ClientId":"{CLIENT_ID}"}}"#,
            refresh_token()
        )
        .into(),
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
        "raw-reqwest",
        &s,
        samples,
        s.concurrency * s.per_caller,
        started.elapsed(),
    );
}
