//! Review of d95a7d7 (cogref-blocking's own name lookup, `src/lookup.rs`): whole calls through
//! `cogref_blocking::client` to loopback servers named by address and by `localhost`. The
//! resolver's own rules are unit tests in `src/lookup.rs`. Only loopback
//! traffic; the only name looked up is `localhost`.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use cogref_blocking::{
    CallConfig, EndpointConfig, Error, RefreshInput, RetryConfig, Timeouts, secrecy::ExposeSecret,
};
use cogref_core::TransportErrorKind;

const SUCCESS: &str = r#"{"AuthenticationResult":{"AccessToken":"review32-access","ExpiresIn":3600,"TokenType":"Bearer","IdToken":"review32-id"},"ChallengeParameters":{}}"#;
const INTERNAL: &str = r#"{"__type":"InternalErrorException","message":"review32 says 500"}"#;

/// A loopback Cognito stand-in on `bind` (`127.0.0.1:0` or `[::1]:0`): its first answer is a
/// 500 `InternalErrorException`, every later one a token set. Counts the requests it read.
fn cognito(bind: &str) -> (u16, Arc<AtomicUsize>) {
    let listener = TcpListener::bind(bind).expect("bind");
    let port = listener.local_addr().expect("address").port();
    let requests = Arc::new(AtomicUsize::new(0));
    let seen = requests.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let seen = seen.clone();
            std::thread::spawn(move || serve(stream, &seen));
        }
    });
    (port, requests)
}

fn serve(stream: TcpStream, seen: &AtomicUsize) -> Option<()> {
    let mut writer = stream.try_clone().ok()?;
    let mut reader = BufReader::new(stream);
    loop {
        let mut length = 0;
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).ok()? == 0 {
                return None;
            }
            if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                length = v.trim().parse().unwrap_or(0);
            }
            if line == "\r\n" {
                break;
            }
        }
        reader.read_exact(&mut vec![0; length]).ok()?;
        let (status, body) = if seen.fetch_add(1, Ordering::SeqCst) == 0 {
            ("500 Internal Server Error", INTERNAL)
        } else {
            ("200 OK", SUCCESS)
        };
        write!(
            writer,
            "HTTP/1.1 {status}\r\ncontent-type: application/x-amz-json-1.1\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        )
        .ok()?;
    }
}

fn config() -> CallConfig {
    CallConfig {
        retry: RetryConfig {
            initial_backoff: Duration::from_millis(5),
            max_backoff: Duration::from_millis(50),
            ..RetryConfig::default()
        },
        timeouts: Timeouts {
            connect: Duration::from_secs(5),
            attempt: Duration::from_secs(10),
            total: Duration::from_secs(30),
        },
        ..CallConfig::default()
    }
}

fn input() -> RefreshInput {
    RefreshInput::builder()
        .refresh_token("eyJh.eyJi.c2ln")
        .client_id("client")
        .build()
        .expect("input")
}

/// One refresh against `url` (the stand-in's port is `port`): a 500, retried, then tokens.
fn refresh_retries_a_500_then_succeeds(url: &str, requests: &AtomicUsize) {
    let endpoint = EndpointConfig::new()
        .endpoint_url(url)
        .resolve()
        .expect("a loopback endpoint");
    let client = cogref_blocking::client(endpoint, config());
    let out = client
        .refresh_blocking(&input())
        .unwrap_or_else(|e| panic!("{url}: {e} ({e:?})"));
    assert_eq!(out.access_token.expose_secret(), "review32-access", "{url}");
    assert_eq!(
        requests.load(Ordering::SeqCst),
        2,
        "{url}: a 500 then a 200"
    );
}

#[test]
fn a_refresh_to_127_0_0_1_retries_a_500_and_returns_the_tokens() {
    let (port, requests) = cognito("127.0.0.1:0");
    refresh_retries_a_500_then_succeeds(&format!("http://127.0.0.1:{port}"), &requests);
}

#[test]
fn a_refresh_to_localhost_retries_a_500_and_returns_the_tokens() {
    let (port, requests) = cognito("127.0.0.1:0");
    refresh_retries_a_500_then_succeeds(&format!("http://localhost:{port}/"), &requests);
}

#[test]
fn a_refresh_to_a_bracketed_ipv6_address_retries_a_500_and_returns_the_tokens() {
    let (port, requests) = cognito("[::1]:0");
    refresh_retries_a_500_then_succeeds(&format!("http://[::1]:{port}/"), &requests);
}

/// Port 0 is no server's: a refused connection, before anything was sent, and no panic.
#[test]
fn an_endpoint_on_port_0_is_a_connect_error_not_sent() {
    let endpoint = EndpointConfig::new()
        .endpoint_url("http://127.0.0.1:0/")
        .resolve()
        .expect("a syntactically valid endpoint");
    let config = CallConfig {
        retry: RetryConfig {
            max_attempts: 1,
            ..RetryConfig::rotation_safe()
        },
        ..config()
    };
    let client = cogref_blocking::client(endpoint, config);
    let e = client
        .refresh_blocking(&input())
        .expect_err("nothing on port 0");
    let Error::Transport(t) = e.error() else {
        panic!("a transport error, not {e}");
    };
    assert!(!t.request_may_have_been_sent(), "{e}");
    assert_eq!(t.kind(), TransportErrorKind::Connect, "{e}");
}

/// `EndpointConfig` refuses an empty host, so the resolver never sees one.
#[test]
fn an_endpoint_with_an_empty_host_is_refused_before_any_transport() {
    for url in ["http://:8080/", "http:///", "https://:443"] {
        assert!(
            EndpointConfig::new().endpoint_url(url).resolve().is_err(),
            "{url} accepted"
        );
    }
}
