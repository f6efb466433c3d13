//! Review of issue 12 (transports): what `cogref-blocking` reports about whether a request may
//! have been sent. Each test names the rule it checks.

use cogref_blocking::{CallConfig, EndpointConfig, Error, RefreshInput, RetryConfig};

/// A host name that cannot resolve and is refused by the resolver itself: a label of 64
/// characters is invalid in DNS, so glibc fails the lookup without sending a query (no traffic
/// leaves the machine).
fn unresolvable_endpoint() -> String {
    format!("http://{}.example:9/", "a".repeat(64))
}

/// A failed name lookup happens before any connection: nothing was sent, so the refresh token
/// cannot have been consumed. ureq reports the resolver's failure as `ureq::Error::Io`, which
/// `transport_error` maps to `TransportErrorKind::Io`, "may have been sent": `--rotation-safe`
/// then never retries a DNS hiccup, and the CLI tells the user the refresh may already have
/// been applied.
#[test]
fn a_name_that_does_not_resolve_is_a_connect_failure_and_not_sent() {
    let endpoint = EndpointConfig::new()
        .endpoint_url(unresolvable_endpoint())
        .resolve()
        .expect("a syntactically valid endpoint");
    let config = CallConfig {
        retry: RetryConfig {
            max_attempts: 1,
            ..RetryConfig::rotation_safe()
        },
        ..CallConfig::default()
    };
    let client = cogref_blocking::client(endpoint, config);
    let input = RefreshInput::builder()
        .refresh_token("eyJh.eyJi.c2ln")
        .client_id("client")
        .build()
        .expect("input");
    let e = client.refresh_blocking(&input).expect_err("cannot resolve");
    let Error::Transport(t) = e.error() else {
        panic!("a transport error, not {e}");
    };
    assert!(
        !t.request_may_have_been_sent(),
        "a failed name lookup counts as possibly sent: {e}"
    );
    assert_eq!(t.kind(), cogref_core::TransportErrorKind::Connect, "{e}");
}
