//! The floor: the request cogref sends (same body, same headers), POSTed with a bare reqwest
//! client, and the answer parsed into an untyped `serde_json::Value`. No validation, no error
//! model, no retries (reqwest's own retry layer off too, as in cogref-reqwest), no timeouts;
//! the URL is parsed and the headers are built once, so that each call does only what reqwest
//! must.

use std::sync::Arc;

use bench_common::{COGREF_HEADERS, answer_of_json, check, request_body, run_tokio, settings};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};

fn main() {
    run_tokio(|| {
        let s = Arc::new(settings());
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            // As cogref-reqwest's client: reqwest's retry layer, which resends only HTTP/2
            // refusals, otherwise clones every request.
            .retry(reqwest::retry::never().max_retries_per_request(0))
            .build()
            .expect("client");
        let headers: HeaderMap = COGREF_HEADERS
            .iter()
            .map(|(name, value)| {
                (
                    HeaderName::from_static(name),
                    HeaderValue::from_static(value),
                )
            })
            .collect();
        let headers = Arc::new(headers);
        let url = reqwest::Url::parse(&s.endpoint).expect("endpoint URL");
        let body: Arc<str> = request_body().into();
        move || {
            let (client, headers, body, url, s) = (
                client.clone(),
                headers.clone(),
                body.clone(),
                url.clone(),
                s.clone(),
            );
            async move {
                let response = client
                    .post(url)
                    .headers(HeaderMap::clone(&headers))
                    .body(body.to_string())
                    .send()
                    .await
                    .expect("response");
                let ok = response.status().is_success();
                let bytes = response.bytes().await.expect("body");
                let value: serde_json::Value = serde_json::from_slice(&bytes).expect("json");
                check(
                    &s,
                    answer_of_json(
                        ok,
                        value.get("AuthenticationResult").is_some(),
                        value.get("__type").and_then(|t| t.as_str()),
                    ),
                    "raw reqwest",
                );
            }
        }
    });
}
