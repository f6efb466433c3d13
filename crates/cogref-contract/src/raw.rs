//! A bare HTTP/1.1 server on 127.0.0.1 for the behaviours wiremock cannot produce: a body that
//! never ends, a connection reset halfway through a body, slow answers, and counting connections.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use cogref_core::{Endpoint, EndpointConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// What the server does with each request.
#[derive(Debug, Clone)]
pub enum Behaviour {
    /// `200` with this body, keeping the connection open for more requests.
    Success(String),
    /// [`Behaviour::Success`], each answer sent this long after its request was read: calls
    /// made at the same time are then in flight at the same time, each on a connection of its
    /// own.
    SlowSuccess(String, Duration),
    /// `200` with a chunked body of spaces that goes on until the client stops reading
    /// (bounded at 256 MiB so the server stops by itself).
    EndlessBody,
    /// Headers promising 4 KiB, 100 bytes of it, then a reset.
    ResetMidBody,
    /// Headers promising a terabyte, two bytes of it, then an orderly close.
    LyingLength,
    /// Headers promising 4 KiB, 100 bytes of it, then nothing: the connection stays open and
    /// silent for a minute.
    StalledBody,
}

/// Most bytes the endless body sends before giving up on its own.
const ENDLESS_CAP: u64 = 256 * 1024 * 1024;

#[derive(Default)]
struct Counters {
    connections: AtomicUsize,
    requests: AtomicUsize,
    bytes_sent: AtomicU64,
}

/// A running server; it stops when dropped.
pub struct RawServer {
    port: u16,
    counters: Arc<Counters>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for RawServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl RawServer {
    /// Starts a server on 127.0.0.1 with a random port.
    pub async fn start(behaviour: Behaviour) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1:0");
        let port = listener.local_addr().expect("local address").port();
        let counters = Arc::new(Counters::default());
        let shared = counters.clone();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                shared.connections.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(serve(stream, behaviour.clone(), shared.clone()));
            }
        });
        Self {
            port,
            counters,
            task,
        }
    }

    /// The endpoint to point a client at.
    pub fn endpoint(&self) -> Endpoint {
        EndpointConfig::new()
            .endpoint_url(format!("http://127.0.0.1:{}", self.port))
            .resolve()
            .expect("loopback endpoint")
    }

    /// Connections accepted.
    pub fn connections(&self) -> usize {
        self.counters.connections.load(Ordering::SeqCst)
    }

    /// Complete requests read.
    pub fn requests(&self) -> usize {
        self.counters.requests.load(Ordering::SeqCst)
    }

    /// Body bytes written.
    pub fn bytes_sent(&self) -> u64 {
        self.counters.bytes_sent.load(Ordering::SeqCst)
    }
}

/// A port on 127.0.0.1 that nothing listens on (bound, then released).
pub fn unused_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind 127.0.0.1:0")
}

/// Reads one request (head and `content-length` body); `false` at end of stream.
async fn read_request(stream: &mut TcpStream, buffer: &mut Vec<u8>) -> bool {
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        if let Some(i) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return false,
            Ok(n) => buffer.extend_from_slice(&chunk[..n]),
        }
    };
    let head = String::from_utf8_lossy(&buffer[..head_end]).to_ascii_lowercase();
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    while buffer.len() < head_end + length {
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return false,
            Ok(n) => buffer.extend_from_slice(&chunk[..n]),
        }
    }
    buffer.drain(..head_end + length);
    true
}

async fn serve(mut stream: TcpStream, behaviour: Behaviour, counters: Arc<Counters>) {
    let mut buffer = Vec::new();
    while read_request(&mut stream, &mut buffer).await {
        counters.requests.fetch_add(1, Ordering::SeqCst);
        match &behaviour {
            Behaviour::Success(body) | Behaviour::SlowSuccess(body, _) => {
                if let Behaviour::SlowSuccess(_, delay) = &behaviour {
                    tokio::time::sleep(*delay).await;
                }
                let response = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/x-amz-json-1.1\r\nx-amzn-requestid: raw-1\r\ncontent-length: {}\r\n\r\n{body}",
                    body.len()
                );
                if stream.write_all(response.as_bytes()).await.is_err() {
                    return;
                }
                counters
                    .bytes_sent
                    .fetch_add(body.len() as u64, Ordering::SeqCst);
            }
            Behaviour::EndlessBody => {
                let head = "HTTP/1.1 200 OK\r\ncontent-type: application/x-amz-json-1.1\r\ntransfer-encoding: chunked\r\n\r\n";
                if stream.write_all(head.as_bytes()).await.is_err() {
                    return;
                }
                let chunk = format!("4000\r\n{}\r\n", " ".repeat(0x4000));
                while counters.bytes_sent.load(Ordering::SeqCst) < ENDLESS_CAP {
                    if stream.write_all(chunk.as_bytes()).await.is_err() {
                        return;
                    }
                    counters.bytes_sent.fetch_add(0x4000, Ordering::SeqCst);
                }
                return;
            }
            Behaviour::ResetMidBody => {
                let head = "HTTP/1.1 200 OK\r\ncontent-type: application/x-amz-json-1.1\r\ncontent-length: 4096\r\n\r\n";
                let partial = format!(
                    r#"{{"AuthenticationResult":{{"AccessToken":"{}"#,
                    "a".repeat(60)
                );
                let _ = stream.write_all(head.as_bytes()).await;
                let _ = stream.write_all(partial.as_bytes()).await;
                let _ = stream.flush().await;
                // SO_LINGER 0: close with a reset rather than an orderly shutdown.
                let _ = stream.set_zero_linger();
                return;
            }
            Behaviour::StalledBody => {
                let head = "HTTP/1.1 200 OK\r\ncontent-type: application/x-amz-json-1.1\r\ncontent-length: 4096\r\n\r\n";
                let _ = stream.write_all(head.as_bytes()).await;
                let _ = stream.write_all(&[b' '; 100]).await;
                let _ = stream.flush().await;
                tokio::time::sleep(Duration::from_secs(60)).await;
                return;
            }
            Behaviour::LyingLength => {
                let head = "HTTP/1.1 200 OK\r\ncontent-type: application/x-amz-json-1.1\r\ncontent-length: 1099511627776\r\n\r\n{}";
                let _ = stream.write_all(head.as_bytes()).await;
                let _ = stream.shutdown().await;
                return;
            }
        }
    }
}
