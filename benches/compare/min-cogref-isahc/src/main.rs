//! cogref-isahc with its defaults, driven without an async runtime: `block_on` per call, one
//! thread per concurrent caller.

use bench_common::{CLIENT_ID, check, refresh_token, run_threads, settings};
use cogref_isahc::{CallConfig, EndpointConfig, RefreshInput};

fn main() {
    let s = settings();
    let endpoint = EndpointConfig::new()
        .endpoint_url(&s.endpoint)
        .resolve()
        .expect("endpoint");
    let client = cogref_isahc::client(endpoint, CallConfig::default()).expect("client");
    let input = RefreshInput::builder()
        .refresh_token(refresh_token())
        .client_id(CLIENT_ID)
        .build()
        .expect("valid");
    run_threads(|| {
        let result = futures_lite::future::block_on(client.refresh(&input));
        let answer = result
            .as_ref()
            .map(drop)
            .map_err(|e| e.as_service().map(|e| e.code.as_str()));
        check(&s, answer, "cogref-isahc");
    });
}
