//! Review 20: the contract case `concurrent_callers_find_their_connections_kept_for_the_next_burst`
//! must fail for a pool that keeps few connections. Blocking clients over agents whose pools
//! keep fewer idle connections than a burst has callers are run through the case unchanged; each
//! must fail it, and the crate's own agent must pass.

use std::sync::Arc;

use cogref_blocking::UreqTransport;
use cogref_contract::Refresher;
use cogref_core::{CallConfig, Endpoint};

/// A blocking client over an agent keeping `idle` idle connections.
fn pooled(endpoint: Endpoint, config: CallConfig, idle: usize) -> Refresher {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .max_idle_connections(idle)
        .max_idle_connections_per_host(idle)
        .max_redirects(0)
        .http_status_as_error(false)
        .timeout_connect(Some(config.timeouts.connect))
        .build()
        .into();
    let client = Arc::new(cogref_blocking::Client::new(
        UreqTransport::with_agent(agent),
        cogref_blocking::environment(),
        endpoint,
        config,
    ));
    Arc::new(move |input| {
        let client = client.clone();
        Box::pin(async move {
            tokio::task::spawn_blocking(move || client.refresh_blocking(&input))
                .await
                .expect("the blocking call does not panic")
        })
    })
}

fn keeping_three(endpoint: Endpoint, config: CallConfig) -> Refresher {
    pooled(endpoint, config, 3)
}

fn keeping_half_a_burst(endpoint: Endpoint, config: CallConfig) -> Refresher {
    pooled(endpoint, config, 12)
}

fn keeping_idle_connections(endpoint: Endpoint, config: CallConfig) -> Refresher {
    pooled(endpoint, config, cogref_blocking::IDLE_CONNECTIONS)
}

/// Whether the case fails for clients made by `make`, and fails for the reason it exists
/// (too many connections), not another.
async fn case_fails(make: cogref_contract::MakeClient) -> bool {
    let Err(e) = tokio::spawn(
        cogref_contract::concurrent_callers_find_their_connections_kept_for_the_next_burst(make),
    )
    .await
    else {
        return false;
    };
    let panic = e.into_panic();
    let message = panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
        .unwrap_or_default();
    assert!(
        message.contains("idle connections are not kept"),
        "the case failed for another reason: {message}"
    );
    true
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_kept_connections_case_fails_for_ureqs_default_pool_of_three() {
    assert!(case_fails(keeping_three).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_kept_connections_case_fails_for_a_pool_keeping_half_a_burst() {
    assert!(case_fails(keeping_half_a_burst).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_kept_connections_case_passes_for_a_pool_of_idle_connections() {
    assert!(!case_fails(keeping_idle_connections).await);
}

/// A client secret in Cognito's format: a request id's shape.
const CLIENT_SECRET: &str = "7k2m9p4q8r1s6t3v0w5x7y2z9a4b8c1d6e3f0g5h7j2k9l4m8n1p";

/// A server on 127.0.0.1 answering every request `200` with `x-amzn-requestid` spelling the
/// client secret and a body of 4 KiB: over a limit of 256 bytes, the transport itself builds the
/// error from the response head.
fn echoing_oversized_server() -> String {
    use std::io::{BufRead, BufReader, Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            std::thread::spawn(move || {
                let mut writer = stream.try_clone().expect("clone");
                let mut reader = BufReader::new(stream);
                let mut length = 0usize;
                let mut line = String::new();
                loop {
                    line.clear();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 {
                        return;
                    }
                    if line == "\r\n" {
                        break;
                    }
                    if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                        length = v.trim().parse().expect("length");
                    }
                }
                let mut body = vec![0; length];
                let _ = reader.read_exact(&mut body);
                let page = " ".repeat(4096);
                let _ = writer.write_all(
                    format!(
                        "HTTP/1.1 200 OK\r\nx-amzn-requestid: {CLIENT_SECRET}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{page}",
                        page.len()
                    )
                    .as_bytes(),
                );
            });
        }
    });
    format!("http://127.0.0.1:{port}")
}

/// Through the real blocking transport: a body over the limit is an error ureq's transport
/// builds from the response head; the client secret the server spells in its request id is
/// hidden from the error, and must be from everything traced on the way (the driver's
/// "attempt failed" event included).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_secret_spelt_in_the_request_id_of_an_oversized_answer_is_traced_nowhere() {
    cogref_contract::trace::install();
    let endpoint = cogref_core::EndpointConfig::new()
        .endpoint_url(echoing_oversized_server())
        .resolve()
        .expect("endpoint");
    let config = CallConfig {
        limits: cogref_core::ResponseLimits {
            max_body_bytes: 256,
        },
        ..CallConfig::default()
    };
    let client = cogref_blocking::client(endpoint, config);
    let input = cogref_core::RefreshInput::builder()
        .refresh_token("eyJh.eyJi.c2ln")
        .client_id("client")
        .client_secret(CLIENT_SECRET)
        .build()
        .expect("input");
    let mark = cogref_contract::trace::mark();
    let e = tokio::task::spawn_blocking(move || client.refresh_blocking(&input))
        .await
        .expect("no panic")
        .expect_err("over the limit");
    assert!(
        matches!(
            e.error(),
            cogref_core::Error::Response(r)
                if matches!(r.kind, cogref_core::ResponseErrorKind::BodyTooLarge { .. })
        ),
        "{e}"
    );
    assert_eq!(e.request_id(), Some("[redacted]"));
    assert!(!e.to_string().contains(CLIENT_SECRET), "{e}");
    let lines = cogref_contract::trace::captured_since(mark);
    let leaks: Vec<_> = lines.iter().filter(|l| l.contains(CLIENT_SECRET)).collect();
    assert!(leaks.is_empty(), "the client secret was traced: {leaks:#?}");
}
