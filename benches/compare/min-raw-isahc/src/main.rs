//! cogref-isahc's own floor: the request cogref sends, POSTed with a bare isahc client set up
//! as cogref-isahc sets up its own (no redirects, no decompression, no `Expect`), driven the
//! same way (`block_on` per call, a thread per concurrent caller), and the answer parsed into an
//! untyped `serde_json::Value`.

use bench_common::{COGREF_HEADERS, answer_of_json, check, request_body, run_threads, settings};
use isahc::AsyncReadResponseExt;
use isahc::config::{Configurable, ExpectContinue, RedirectPolicy};

fn main() {
    let s = settings();
    let client = isahc::HttpClient::builder()
        .redirect_policy(RedirectPolicy::None)
        .automatic_decompression(false)
        .expect_continue(ExpectContinue::disabled())
        .build()
        .expect("client");
    let body = request_body();
    run_threads(|| {
        let mut request = isahc::Request::post(&s.endpoint);
        for (name, value) in COGREF_HEADERS {
            request = request.header(name, value);
        }
        let request = request.body(body.clone()).expect("request");
        let (ok, value) = futures_lite::future::block_on(async {
            let mut response = client.send_async(request).await.expect("response");
            let bytes = response.bytes().await.expect("body");
            (
                response.status().is_success(),
                serde_json::from_slice::<serde_json::Value>(&bytes).expect("json"),
            )
        });
        check(
            &s,
            answer_of_json(
                ok,
                value.get("AuthenticationResult").is_some(),
                value.get("__type").and_then(|t| t.as_str()),
            ),
            "raw isahc",
        );
    });
}
