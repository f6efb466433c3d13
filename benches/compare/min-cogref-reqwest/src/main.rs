//! cogref-reqwest with its defaults.

use std::sync::Arc;

use bench_common::{CLIENT_ID, check, refresh_token, run_tokio, settings};
use cogref_reqwest::{CallConfig, EndpointConfig, RefreshInput};

fn main() {
    run_tokio(|| {
        let s = Arc::new(settings());
        let endpoint = EndpointConfig::new()
            .endpoint_url(&s.endpoint)
            .resolve()
            .expect("endpoint");
        let client =
            Arc::new(cogref_reqwest::client(endpoint, CallConfig::default()).expect("client"));
        let input = Arc::new(
            RefreshInput::builder()
                .refresh_token(refresh_token())
                .client_id(CLIENT_ID)
                .build()
                .expect("valid"),
        );
        move || {
            let (client, input, s) = (client.clone(), input.clone(), s.clone());
            async move {
                let result = client.refresh(&input).await;
                let answer = result
                    .as_ref()
                    .map(drop)
                    .map_err(|e| e.as_service().map(|e| e.code.as_str()));
                check(&s, answer, "cogref-reqwest");
            }
        }
    });
}
