//! Review 15: hostile tests of the attempt timeout as one tokio timer around the exchange
//! (commit f03cf94), against raw loopback servers.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use cogref_core::{CallError, Error, TransportErrorKind};
use cogref_reqwest::{CallConfig, EndpointConfig, RefreshInput, RetryConfig, Timeouts, client};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

fn input() -> RefreshInput {
    RefreshInput::builder()
        .refresh_token("canary.refresh.token")
        .client_id("client")
        .build()
        .expect("valid")
}

fn config(attempt: Duration, retry: RetryConfig) -> CallConfig {
    CallConfig {
        retry: RetryConfig {
            initial_backoff: Duration::from_millis(5),
            max_backoff: Duration::from_millis(10),
            ..retry
        },
        timeouts: Timeouts {
            connect: Duration::from_secs(2),
            attempt,
            total: Duration::from_secs(10),
        },
        ..CallConfig::default()
    }
}

/// Reads one request's head and body (Content-Length), or `None` at EOF.
async fn read_request(stream: &mut TcpStream) -> Option<()> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            let length: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
            while buf.len() < end + 4 + length {
                let n = stream.read(&mut chunk).await.ok()?;
                if n == 0 {
                    return None;
                }
                buf.extend_from_slice(&chunk[..n]);
            }
            return Some(());
        }
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

const OK: &str = r#"{"AuthenticationResult":{"AccessToken":"a.b.c","ExpiresIn":3600}}"#;

#[derive(Clone, Copy)]
enum Serve {
    /// Reads the request, never answers.
    StallBeforeHeaders,
    /// Headers (Content-Length 4096) and 10 bytes, then silence.
    StallMidBody,
    /// Headers then one byte every 50 ms, for 4096 bytes.
    Trickle,
    /// A proper answer, keep-alive.
    Ok,
}

struct Server {
    port: u16,
    connections: Arc<AtomicUsize>,
    requests: Arc<AtomicUsize>,
    /// Set when a connection's peer closed it (read returned 0 or an error) after a request.
    closed: Arc<tokio::sync::Notify>,
}

async fn server(serve: Serve) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let connections = Arc::new(AtomicUsize::new(0));
    let requests = Arc::new(AtomicUsize::new(0));
    let closed = Arc::new(tokio::sync::Notify::new());
    let (c, r, k) = (connections.clone(), requests.clone(), closed.clone());
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            c.fetch_add(1, Ordering::SeqCst);
            let (r, k) = (r.clone(), k.clone());
            tokio::spawn(async move {
                while read_request(&mut stream).await.is_some() {
                    r.fetch_add(1, Ordering::SeqCst);
                    match serve {
                        Serve::Ok => {
                            let head = format!(
                                "HTTP/1.1 200 OK\r\ncontent-type: application/x-amz-json-1.1\r\ncontent-length: {}\r\n\r\n{OK}",
                                OK.len()
                            );
                            if stream.write_all(head.as_bytes()).await.is_err() {
                                return;
                            }
                            continue;
                        }
                        Serve::StallBeforeHeaders => {}
                        Serve::StallMidBody => {
                            let _ = stream
                                .write_all(
                                    b"HTTP/1.1 200 OK\r\ncontent-length: 4096\r\n\r\n{\"Authent",
                                )
                                .await;
                        }
                        Serve::Trickle => {
                            let _ = stream
                                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 4096\r\n\r\n")
                                .await;
                            for _ in 0..4096 {
                                tokio::time::sleep(Duration::from_millis(50)).await;
                                if stream.write_all(b" ").await.is_err() {
                                    k.notify_one();
                                    return;
                                }
                            }
                        }
                    }
                    // Silent until the client goes away.
                    let mut byte = [0u8; 1];
                    let _ =
                        tokio::time::timeout(Duration::from_secs(30), stream.read(&mut byte)).await;
                    k.notify_one();
                    return;
                }
            });
        }
    });
    Server {
        port,
        connections,
        requests,
        closed,
    }
}

fn client_for(server: &Server, config: CallConfig) -> cogref_reqwest::Client {
    let endpoint = EndpointConfig::new()
        .endpoint_url(format!("http://127.0.0.1:{}", server.port))
        .resolve()
        .expect("endpoint");
    client(endpoint, config).expect("client")
}

fn transport(e: &Error) -> Option<(TransportErrorKind, bool)> {
    match e {
        Error::Transport(t) => Some((t.kind(), t.request_may_have_been_sent())),
        _ => None,
    }
}

/// A call to `server` with this attempt timeout and retry policy, which must end in a timeout
/// counted as sent; the error and how long the call took.
async fn timed_out(
    server: &Server,
    attempt: Duration,
    retry: RetryConfig,
) -> (CallError, Duration) {
    let client = client_for(server, config(attempt, retry));
    let started = Instant::now();
    let e = client.refresh(&input()).await.expect_err("timeout");
    let elapsed = started.elapsed();
    assert_eq!(
        transport(e.error()),
        Some((TransportErrorKind::Timeout, true)),
        "{e}"
    );
    (e, elapsed)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_silent_after_the_request_times_out_as_sent_and_is_not_resent_under_rotation_safe()
{
    let server = server(Serve::StallBeforeHeaders).await;
    let (e, elapsed) = timed_out(
        &server,
        Duration::from_millis(300),
        RetryConfig::rotation_safe(),
    )
    .await;
    assert_eq!(e.attempts(), 1, "{e}");
    assert_eq!(server.requests.load(Ordering::SeqCst), 1);
    assert!(
        elapsed >= Duration::from_millis(290) && elapsed < Duration::from_millis(1500),
        "{elapsed:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_stalled_half_way_times_out_as_sent_within_the_attempt_timeout() {
    let server = server(Serve::StallMidBody).await;
    let (e, elapsed) = timed_out(
        &server,
        Duration::from_millis(300),
        RetryConfig::rotation_safe(),
    )
    .await;
    assert_eq!(e.attempts(), 1);
    assert!(elapsed < Duration::from_millis(1500), "{elapsed:?}");
    // The stalled connection is closed, not kept.
    tokio::time::timeout(Duration::from_secs(2), server.closed.notified())
        .await
        .expect("the client closed the stalled connection");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_trickling_a_byte_at_a_time_still_ends_at_the_attempt_timeout() {
    let server = server(Serve::Trickle).await;
    let (_, elapsed) =
        timed_out(&server, Duration::from_millis(400), RetryConfig::disabled()).await;
    assert!(elapsed < Duration::from_millis(1500), "{elapsed:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_a_call_in_flight_closes_its_connection() {
    let server = server(Serve::StallBeforeHeaders).await;
    let client = client_for(
        &server,
        config(Duration::from_secs(20), RetryConfig::disabled()),
    );
    let outcome = tokio::time::timeout(Duration::from_millis(200), client.refresh(&input())).await;
    assert!(outcome.is_err(), "the call should still be in flight");
    assert_eq!(server.requests.load(Ordering::SeqCst), 1);
    tokio::time::timeout(Duration::from_secs(2), server.closed.notified())
        .await
        .expect("dropping the call closed its connection");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sequential_calls_reuse_one_connection() {
    let server = server(Serve::Ok).await;
    let client = client_for(
        &server,
        config(Duration::from_secs(5), RetryConfig::disabled()),
    );
    for _ in 0..5 {
        // hyper-util takes a connection back into its pool in a task of its own once the
        // response is out: a call made at once can race that task and open a second
        // connection (the floor's raw reqwest too). A pause lets the pool settle, so a count
        // above one means a connection the transport's reading left unusable.
        tokio::time::sleep(Duration::from_millis(50)).await;
        client.refresh(&input()).await.expect("ok");
    }
    assert_eq!(server.requests.load(Ordering::SeqCst), 5);
    assert_eq!(server.connections.load(Ordering::SeqCst), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timed_out_connection_is_not_reused_by_the_next_call() {
    // Same client: first call against a stalled body times out; the next call must not read
    // the first call's leftover bytes on the same connection.
    let server = server(Serve::StallMidBody).await;
    let client = client_for(
        &server,
        config(Duration::from_millis(300), RetryConfig::disabled()),
    );
    let _ = client.refresh(&input()).await.expect_err("timeout");
    let _ = client.refresh(&input()).await.expect_err("timeout");
    assert_eq!(server.connections.load(Ordering::SeqCst), 2);
}
