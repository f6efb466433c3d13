//! cogref-blocking's own floor: the request cogref sends, POSTed with a bare ureq agent set up
//! as cogref-blocking sets up its own (64 idle connections kept, no redirects, statuses as
//! responses, no automatic `user-agent`/`accept`, the same connect and overall timeouts: ureq's
//! timeout bookkeeping costs tens of microseconds a call on loopback, and a floor without it
//! would not be fair), and the answer parsed into an untyped `serde_json::Value`. Its resolver
//! is ureq's own, as a ureq user has it: with a timeout set, it looks the host up on a new
//! thread for every call, pooled connection or not, which cogref-blocking's agent does only for
//! a new connection (the difference shows in the comparison of the two).

use std::time::Duration;

use bench_common::{COGREF_HEADERS, answer_of_json, check, request_body, run_threads, settings};

fn main() {
    let s = settings();
    let config = ureq::Agent::config_builder()
        .max_idle_connections(64)
        .max_idle_connections_per_host(64)
        .max_redirects(0)
        .http_status_as_error(false)
        .timeout_connect(Some(Duration::from_millis(3_100)))
        .timeout_global(Some(Duration::from_secs(10)))
        .user_agent(ureq::config::AutoHeaderValue::None)
        .accept(ureq::config::AutoHeaderValue::None)
        .build();
    let agent = ureq::Agent::new_with_config(config);
    let body = request_body();
    run_threads(|| {
        let mut request = ureq::http::Request::post(&s.endpoint);
        for (name, value) in COGREF_HEADERS {
            request = request.header(name, value);
        }
        let request = request.body(body.clone()).expect("request");
        let mut response = agent.run(request).expect("response");
        let ok = response.status().is_success();
        let bytes = response.body_mut().read_to_vec().expect("body");
        let value: serde_json::Value = serde_json::from_slice(&bytes).expect("json");
        check(
            &s,
            answer_of_json(
                ok,
                value.get("AuthenticationResult").is_some(),
                value.get("__type").and_then(|t| t.as_str()),
            ),
            "raw ureq",
        );
    });
}
