//! cogref-blocking with its defaults: plain threads.

use bench_common::{CLIENT_ID, check, refresh_token, run_threads, settings};
use cogref_blocking::{CallConfig, EndpointConfig, RefreshInput};

fn main() {
    let s = settings();
    let endpoint = EndpointConfig::new()
        .endpoint_url(&s.endpoint)
        .resolve()
        .expect("endpoint");
    let client = cogref_blocking::client(endpoint, CallConfig::default());
    let input = RefreshInput::builder()
        .refresh_token(refresh_token())
        .client_id(CLIENT_ID)
        .build()
        .expect("valid");
    run_threads(|| {
        let result = client.refresh_blocking(&input);
        let answer = result
            .as_ref()
            .map(drop)
            .map_err(|e| e.as_service().map(|e| e.code.as_str()));
        check(&s, answer, "cogref-blocking");
    });
}
