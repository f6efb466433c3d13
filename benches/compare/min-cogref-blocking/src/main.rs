//! cogref-blocking with its defaults: plain threads.

use bench_common::{
    CLIENT_ID, check, refresh_token, report, sequential, settings, throughput_threads,
};
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
    let call = || {
        check(
            &s,
            client.refresh_blocking(&input).is_ok(),
            "cogref-blocking",
        )
    };
    sequential(s.warmup, call);
    let samples = sequential(s.calls, call);
    let (calls, time) = throughput_threads(&s, call);
    report("cogref-blocking", &s, samples, calls, time);
}
