//! The official SDK: `aws-sdk-cognitoidentityprovider` with default features,
//! `BehaviorVersion::latest()`, the endpoint pointed at the loopback server, no credentials (the
//! operation is unsigned).

use std::sync::Arc;
use std::time::Instant;

use aws_sdk_cognitoidentityprovider as cognito;
use bench_common::{CLIENT_ID, Settings, check, refresh_token, report, sequential_async, settings};

#[derive(Clone)]
struct Caller {
    client: cognito::Client,
    token: Arc<str>,
    settings: Arc<Settings>,
}

impl Caller {
    async fn call(&self) {
        let result = self
            .client
            .get_tokens_from_refresh_token()
            .refresh_token(self.token.as_ref())
            .client_id(CLIENT_ID)
            .send()
            .await;
        let ok = result.as_ref().is_ok_and(|out| {
            out.authentication_result()
                .is_some_and(|r| r.access_token().is_some())
        });
        check(&self.settings, ok, "aws-sdk-cognitoidentityprovider");
    }
}

#[tokio::main]
async fn main() {
    let s = Arc::new(settings());
    let config = cognito::Config::builder()
        .behavior_version(cognito::config::BehaviorVersion::latest())
        .region(cognito::config::Region::new("us-east-1"))
        .endpoint_url(&s.endpoint)
        .build();
    let caller = Caller {
        client: cognito::Client::from_conf(config),
        token: refresh_token().into(),
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
        "aws-sdk",
        &s,
        samples,
        s.concurrency * s.per_caller,
        started.elapsed(),
    );
}
