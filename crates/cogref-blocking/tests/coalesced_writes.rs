//! Review 29: `UreqTransport::new`'s connections hold one transmission back and write it with
//! the next (commit 720b408, `coalesce.rs`). What must still hold: every request's bytes reach
//! the server whole and in order (small and large bodies, fresh and kept connections, one
//! thread and many), nothing is held while an answer is awaited, errors say what they said
//! before about whether the request may have been sent, no refresh token shows in a `Debug`,
//! an error or a log, connections are still reused (and a `connection: close` honoured), and
//! a CONNECT proxy still tunnels. Every server here is on 127.0.0.1 (random port).
//!
//! Not covered: an HTTPS exchange with a loopback TLS server (it needs a certificate, rcgen
//! and a rustls server as dev-dependencies). `Coalescing` wraps the TLS transport the same way
//! it wraps the TCP one; the unit tests in `coalesce.rs` (`mod review29`) drive it through a
//! recording transport.
//!
//! Result on 720b408: nothing here fails, and the promise 3 tests give the same kinds and
//! may-have-been-sent answers with `Coalescing` unwired (720b408^'s connections). Each test
//! was checked to fail on a mutant of `coalesce.rs` or `lib.rs` (no flush before a wait, held
//! bytes put after the current ones, `Debug` showing the held bytes, ureq's log not silenced).
//!
//! Not testable without `unsafe` (forbidden in this workspace): that held bytes are zeroed.
//! On 720b408 `Coalescing` had no `Drop`: bytes held when ureq drops the connection without
//! waiting for an answer (an error between two transmissions, such as a caller's
//! `content-length` shorter than its body, or `await_100` finding the budget spent) were freed
//! as they were; it zeroes them on drop since. It also kept up to ureq's whole buffer (128 KiB)
//! per connection after a long body (64 idle connections: 8 MiB); it keeps 16 KiB at most
//! since. The same bytes are in ureq's output buffer and the caller's request body, neither of
//! which is zeroed.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use cogref_blocking::{BlockingTransport, Error, SendOptions, Timeouts, UreqTransport, http};
use cogref_core::TransportErrorKind;

mod common;
use common::connect_proxy;

/// A refresh token that must never show.
const CANARY: &str = "review29-canary-refresh-token-5d2e9a";

/// ureq's output buffer (its default `output_buffer_size`).
const UREQ_OUTPUT: usize = 128 * 1024;

// ---- A loopback server that echoes what it read ------------------------------------------

/// What the server saw.
#[derive(Default)]
struct Seen {
    connections: AtomicUsize,
    requests: AtomicUsize,
}

/// One request as the server read it.
struct Request {
    line: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Request {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Reads one request (Content-Length or chunked); `None` at the end of the stream or on error.
/// `continue_to` gets `100 Continue` when the request expects it.
fn read_request(reader: &mut BufReader<TcpStream>, continue_to: &mut TcpStream) -> Option<Request> {
    read_request_continuing(reader, Some(continue_to))
}

/// [`read_request`], `100 Continue` sent only when `continue_to` is given.
fn read_request_continuing(
    reader: &mut BufReader<TcpStream>,
    continue_to: Option<&mut TcpStream>,
) -> Option<Request> {
    let mut line = String::new();
    if reader.read_line(&mut line).ok()? == 0 {
        return None;
    }
    let line = line.trim_end().to_owned();
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).ok()? == 0 {
            return None;
        }
        if h == "\r\n" {
            break;
        }
        let (k, v) = h.split_once(':')?;
        headers.push((k.trim().to_ascii_lowercase(), v.trim().to_owned()));
    }
    let mut request = Request {
        line,
        headers,
        body: Vec::new(),
    };
    if let Some(continue_to) = continue_to
        && request
            .header("expect")
            .is_some_and(|v| v.eq_ignore_ascii_case("100-continue"))
    {
        continue_to
            .write_all(b"HTTP/1.1 100 Continue\r\n\r\n")
            .ok()?;
    }
    if request
        .header("transfer-encoding")
        .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"))
    {
        loop {
            let mut size = String::new();
            reader.read_line(&mut size).ok()?;
            let size = usize::from_str_radix(size.trim().split(';').next()?, 16).ok()?;
            let mut chunk = vec![0; size];
            reader.read_exact(&mut chunk).ok()?;
            let mut crlf = [0; 2];
            reader.read_exact(&mut crlf).ok()?;
            if crlf != *b"\r\n" {
                return None;
            }
            if size == 0 {
                break;
            }
            request.body.extend_from_slice(&chunk);
        }
    } else {
        let length: usize = request
            .header("content-length")
            .map_or(Some(0), |v| v.parse().ok())?;
        request.body = vec![0; length];
        reader.read_exact(&mut request.body).ok()?;
    }
    Some(request)
}

/// A server answering every request with its body, its request line in `x-line`; `close`
/// answers `connection: close` and ends each connection after one answer.
fn echo_server(close: bool) -> (u16, Arc<Seen>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("address").port();
    let seen = Arc::new(Seen::default());
    let shared = seen.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            shared.connections.fetch_add(1, Ordering::SeqCst);
            let seen = shared.clone();
            std::thread::spawn(move || -> Option<()> {
                let mut writer = stream.try_clone().ok()?;
                let mut reader = BufReader::new(stream);
                loop {
                    let request = read_request(&mut reader, &mut writer)?;
                    seen.requests.fetch_add(1, Ordering::SeqCst);
                    let connection = if close { "close" } else { "keep-alive" };
                    let head = format!(
                        "HTTP/1.1 200 OK\r\nx-line: {}\r\nconnection: {connection}\r\ncontent-length: {}\r\n\r\n",
                        request.line,
                        request.body.len()
                    );
                    writer
                        .write_all(&[head.as_bytes(), &request.body].concat())
                        .ok()?;
                    if close {
                        let _ = writer.shutdown(Shutdown::Both);
                        return Some(());
                    }
                }
            });
        }
    });
    (port, seen)
}

/// A listener whose every connection is handed to `handle` on its own thread.
fn server_with(handle: impl Fn(TcpStream) + Send + Sync + 'static) -> (u16, Arc<Seen>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("address").port();
    let seen = Arc::new(Seen::default());
    let shared = seen.clone();
    let handle = Arc::new(handle);
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            shared.connections.fetch_add(1, Ordering::SeqCst);
            let handle = handle.clone();
            std::thread::spawn(move || handle(stream));
        }
    });
    (port, seen)
}

fn timeouts(attempt: Duration) -> Timeouts {
    Timeouts {
        connect: Duration::from_secs(5),
        attempt,
        total: attempt,
    }
}

fn transport() -> UreqTransport {
    UreqTransport::new(&timeouts(Duration::from_secs(30)))
}

/// A body of `len` bytes that starts with the canary; its bytes mix the position's low and
/// high bytes, so a piece shifted, dropped or repeated (by 256 bytes or more) changes it.
fn body(len: usize, seed: u8) -> Vec<u8> {
    let mut body: Vec<u8> = (0..len)
        .map(|i| (i as u8) ^ ((i >> 8) as u8).wrapping_mul(31) ^ seed)
        .collect();
    let canary = format!(r#"{{"RefreshToken":"{CANARY}"}}"#);
    let n = canary.len().min(len);
    body[..n].copy_from_slice(&canary.as_bytes()[..n]);
    body
}

fn options(attempt: Duration) -> SendOptions {
    SendOptions::new(attempt, Duration::from_secs(5), 64 << 20)
}

/// A POST of `body` to `url`, with `headers`.
fn post_with(
    transport: &UreqTransport,
    url: &str,
    body: Vec<u8>,
    headers: &[(&str, &str)],
    attempt: Duration,
) -> Result<http::Response<Vec<u8>>, Error> {
    let mut request = http::Request::post(url).header("content-type", "application/x-amz-json-1.1");
    for (k, v) in headers {
        request = request.header(*k, *v);
    }
    transport.send(request.body(body).expect("request"), options(attempt))
}

fn post(
    transport: &UreqTransport,
    url: &str,
    body: Vec<u8>,
) -> Result<http::Response<Vec<u8>>, Error> {
    post_with(transport, url, body, &[], Duration::from_secs(30))
}

/// Asserts the answer echoes `sent` and the request line `line`.
fn assert_echoed(response: &http::Response<Vec<u8>>, sent: &[u8], line: &str) {
    assert_eq!(response.status(), 200);
    assert_eq!(
        response
            .headers()
            .get("x-line")
            .and_then(|v| v.to_str().ok()),
        Some(line),
        "the server read another request line"
    );
    assert_eq!(
        response.body().len(),
        sent.len(),
        "the server read a body of another length"
    );
    if let Some(at) = response.body().iter().zip(sent).position(|(a, b)| a != b) {
        panic!(
            "the body the server read differs at byte {at} of {}",
            sent.len()
        );
    }
}

/// Sizes around every boundary the coalescing has: nothing, small, ureq's output buffer (with
/// and without the head's room), more than one and several buffers.
fn sizes() -> Vec<usize> {
    vec![
        0,
        1,
        2_000,
        UREQ_OUTPUT - 400,
        UREQ_OUTPUT - 1,
        UREQ_OUTPUT,
        UREQ_OUTPUT + 1,
        2 * UREQ_OUTPUT,
        2 * UREQ_OUTPUT + 17,
        1_000_003,
    ]
}

// ---- Promise 1: every request's bytes arrive whole and in order ----------------------------

#[test]
fn p1_bodies_of_every_size_arrive_intact_over_one_kept_connection() {
    let (port, seen) = echo_server(false);
    let transport = transport();
    for (i, size) in sizes().into_iter().enumerate() {
        let sent = body(size, i as u8);
        let response = post(
            &transport,
            &format!("http://127.0.0.1:{port}/kept?i={i}"),
            sent.clone(),
        )
        .unwrap_or_else(|e| panic!("size {size}: {e}"));
        assert_echoed(&response, &sent, &format!("POST /kept?i={i} HTTP/1.1"));
    }
    assert_eq!(seen.requests.load(Ordering::SeqCst), sizes().len());
    assert_eq!(
        seen.connections.load(Ordering::SeqCst),
        1,
        "one kept connection"
    );
}

#[test]
fn p1_bodies_of_every_size_arrive_intact_over_fresh_connections() {
    let (port, seen) = echo_server(true);
    let transport = transport();
    for (i, size) in sizes().into_iter().enumerate() {
        let sent = body(size, 100 + i as u8);
        let response = post(
            &transport,
            &format!("http://127.0.0.1:{port}/fresh?i={i}"),
            sent.clone(),
        )
        .unwrap_or_else(|e| panic!("size {size}: {e}"));
        assert_echoed(&response, &sent, &format!("POST /fresh?i={i} HTTP/1.1"));
    }
    assert_eq!(
        seen.connections.load(Ordering::SeqCst),
        sizes().len(),
        "a new connection after each connection: close"
    );
}

/// A chunked body (the caller's own `transfer-encoding`) goes through ureq's other body path
/// (`tmp_and_output`, chunk framing): its transmissions are of another size.
#[test]
fn p1_chunked_bodies_arrive_intact_and_in_order() {
    let (port, seen) = echo_server(false);
    let transport = transport();
    for (i, size) in sizes().into_iter().enumerate() {
        let sent = body(size, 200u8.wrapping_add(i as u8));
        let response = post_with(
            &transport,
            &format!("http://127.0.0.1:{port}/chunked?i={i}"),
            sent.clone(),
            &[("transfer-encoding", "chunked")],
            Duration::from_secs(30),
        )
        .unwrap_or_else(|e| panic!("size {size}: {e}"));
        assert_echoed(&response, &sent, &format!("POST /chunked?i={i} HTTP/1.1"));
    }
    assert_eq!(seen.connections.load(Ordering::SeqCst), 1);
}

/// GET, DELETE and a POST without a body, mixed with POSTs with one, on one kept connection.
#[test]
fn p1_requests_without_a_body_between_requests_with_one_stay_apart() {
    let (port, seen) = echo_server(false);
    let transport = transport();
    for i in 0..6 {
        let url = format!("http://127.0.0.1:{port}/m?i={i}");
        let get = http::Request::get(&url).body(Vec::new()).expect("request");
        let response = transport
            .send(get, options(Duration::from_secs(30)))
            .expect("GET");
        assert_echoed(&response, b"", &format!("GET /m?i={i} HTTP/1.1"));
        let sent = body(300 + i * UREQ_OUTPUT / 3, i as u8);
        let response = post(&transport, &url, sent.clone()).expect("POST");
        assert_echoed(&response, &sent, &format!("POST /m?i={i} HTTP/1.1"));
        let delete = http::Request::delete(&url)
            .body(Vec::new())
            .expect("request");
        let response = transport
            .send(delete, options(Duration::from_secs(30)))
            .expect("DELETE");
        assert_echoed(&response, b"", &format!("DELETE /m?i={i} HTTP/1.1"));
    }
    assert_eq!(seen.requests.load(Ordering::SeqCst), 18);
    assert_eq!(seen.connections.load(Ordering::SeqCst), 1);
}

#[test]
fn p1_many_threads_at_once_each_get_their_own_request_back() {
    let (port, seen) = echo_server(false);
    let transport = transport();
    let threads: Vec<_> = (0..12)
        .map(|t| {
            let transport = transport.clone();
            std::thread::spawn(move || {
                for (i, size) in sizes().into_iter().enumerate() {
                    let sent = body(size, (t * 16 + i) as u8);
                    let response = post(
                        &transport,
                        &format!("http://127.0.0.1:{port}/t{t}?i={i}"),
                        sent.clone(),
                    )
                    .unwrap_or_else(|e| panic!("thread {t}, size {size}: {e}"));
                    assert_echoed(&response, &sent, &format!("POST /t{t}?i={i} HTTP/1.1"));
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("a caller thread failed");
    }
    assert_eq!(seen.requests.load(Ordering::SeqCst), 12 * sizes().len());
    assert!(seen.connections.load(Ordering::SeqCst) <= 12);
}

/// `expect: 100-continue`: the head alone, then the wait for `100 Continue` (ureq's
/// `await_100`, a `maybe_await_input`), then the body.
#[test]
fn p1_an_expect_continue_request_sends_its_head_before_the_wait_and_its_body_after() {
    let (port, seen) = echo_server(false);
    let transport = transport();
    for (i, size) in [1usize, 5_000, UREQ_OUTPUT + 5].into_iter().enumerate() {
        let sent = body(size, i as u8);
        let response = post_with(
            &transport,
            &format!("http://127.0.0.1:{port}/expect?i={i}"),
            sent.clone(),
            &[("expect", "100-continue")],
            Duration::from_secs(30),
        )
        .unwrap_or_else(|e| panic!("size {size}: {e}"));
        assert_echoed(&response, &sent, &format!("POST /expect?i={i} HTTP/1.1"));
    }
    assert_eq!(seen.requests.load(Ordering::SeqCst), 3);
}

/// `expect: 100-continue` to a server that never says `100 Continue`: ureq gives up waiting
/// (its `Timeout::Await100`, which the held head's write must not be mistaken for) and sends
/// the body anyway.
#[test]
fn p1_an_expect_continue_request_without_a_continue_still_sends_its_body() {
    let (port, seen) = server_with(|stream| {
        let mut writer = stream.try_clone().expect("clone");
        let mut reader = BufReader::new(stream);
        while let Some(request) = read_request_continuing(&mut reader, None) {
            let head = format!(
                "HTTP/1.1 200 OK\r\nx-line: {}\r\ncontent-length: {}\r\n\r\n",
                request.line,
                request.body.len()
            );
            if writer
                .write_all(&[head.as_bytes(), &request.body].concat())
                .is_err()
            {
                return;
            }
        }
    });
    let transport = transport();
    for (i, size) in [3usize, UREQ_OUTPUT + 9].into_iter().enumerate() {
        let sent = body(size, i as u8);
        let response = post_with(
            &transport,
            &format!("http://127.0.0.1:{port}/no-continue?i={i}"),
            sent.clone(),
            &[("expect", "100-continue")],
            Duration::from_secs(30),
        )
        .unwrap_or_else(|e| panic!("size {size}: {e}"));
        assert_echoed(
            &response,
            &sent,
            &format!("POST /no-continue?i={i} HTTP/1.1"),
        );
    }
    assert_eq!(seen.connections.load(Ordering::SeqCst), 1);
}

// ---- Promise 2: nothing is held while an answer is awaited ---------------------------------

/// A server that answers only once it has read a whole request, and only then: if any byte
/// stayed held while ureq waited, the call would run into its (long) attempt timeout and fail.
/// It also answers only after seeing that no further byte follows (the next bytes would be a
/// second request on this connection, which no caller sends before reading an answer).
#[test]
fn p2_no_request_waits_for_a_timeout_because_its_bytes_were_held() {
    let (port, _seen) = echo_server(false);
    let transport = transport();
    let attempt = Duration::from_secs(20);
    let url = format!("http://127.0.0.1:{port}/wait");
    for size in [
        0usize,
        1,
        10,
        UREQ_OUTPUT - 300,
        UREQ_OUTPUT,
        UREQ_OUTPUT + 1,
    ] {
        let sent = body(size, 7);
        let response = post_with(&transport, &url, sent.clone(), &[], attempt)
            .unwrap_or_else(|e| panic!("size {size}: held until the timeout? {e}"));
        assert_echoed(&response, &sent, "POST /wait HTTP/1.1");
        for get in [http::Request::get(&url), http::Request::head(&url)] {
            let request = get.body(Vec::new()).expect("request");
            let response = transport
                .send(request, options(attempt))
                .expect("a bodyless request answered");
            assert_eq!(response.status(), 200);
        }
    }
}

/// Each request's last byte reaches the server before the client waits: the server reads the
/// whole request and reports it on a channel before it answers; the test checks the server got
/// every request whole while the caller was still inside `send` (the server answers only
/// after it reported, so a held byte would mean no report and a timed-out call).
#[test]
fn p2_the_server_has_the_whole_request_before_it_answers() {
    let (tx, rx) = std::sync::mpsc::channel::<usize>();
    let tx = Mutex::new(tx);
    let (port, _) = server_with(move |stream| {
        let mut writer = stream.try_clone().expect("clone");
        let mut reader = BufReader::new(stream);
        while let Some(request) = read_request(&mut reader, &mut writer) {
            let _ = tx.lock().expect("tx").send(request.body.len());
            let answer = "HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n";
            if writer.write_all(answer.as_bytes()).is_err() {
                return;
            }
        }
    });
    let transport = UreqTransport::new(&timeouts(Duration::from_secs(10)));
    for size in [0usize, 33, UREQ_OUTPUT + 3] {
        post_with(
            &transport,
            &format!("http://127.0.0.1:{port}/"),
            body(size, 1),
            &[],
            Duration::from_secs(10),
        )
        .unwrap_or_else(|e| panic!("size {size}: {e}"));
        assert_eq!(rx.try_recv().ok(), Some(size));
    }
}

// ---- Promise 3: errors keep their meaning ------------------------------------------------

fn transport_error(result: Result<http::Response<Vec<u8>>, Error>) -> Error {
    match result {
        Ok(r) => panic!("expected an error, got {}", r.status()),
        Err(e) => {
            assert_no_secret(&e);
            e
        }
    }
}

/// `error` is a transport error of one of `kinds`, and `sent` says whether the request may
/// have been sent.
fn assert_transport(error: &Error, kinds: &[TransportErrorKind], sent: bool) {
    let Error::Transport(t) = error else {
        panic!("a transport error, not {error:?}");
    };
    assert!(kinds.contains(&t.kind()), "kind {:?}: {error}", t.kind());
    assert_eq!(
        t.request_may_have_been_sent(),
        sent,
        "may have been sent: {error:?}"
    );
}

fn assert_no_secret(error: &Error) {
    let shown = format!("{error} {error:?} {:?}", std::error::Error::source(error));
    assert!(!shows_canary(&shown), "the refresh token shows: {shown}");
}

/// A server that accepts and closes at once, before reading anything (unread bytes: a reset).
#[test]
fn p3_a_server_closing_before_reading_is_an_io_error_that_may_have_been_sent() {
    let (port, _) = server_with(drop);
    let transport = transport();
    for size in [0usize, 40, UREQ_OUTPUT + 1, 4 << 20] {
        let e = transport_error(post(
            &transport,
            &format!("http://127.0.0.1:{port}/"),
            body(size, 3),
        ));
        assert_transport(&e, &[TransportErrorKind::Io], true);
    }
}

/// A server that reads the head only, then closes (the body unread: a reset).
#[test]
fn p3_a_server_closing_after_the_head_is_an_io_error_that_may_have_been_sent() {
    let (port, _) = server_with(|stream| {
        let mut reader = BufReader::new(stream);
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                break;
            }
        }
    });
    let transport = transport();
    for size in [0usize, 40, UREQ_OUTPUT + 1, 4 << 20] {
        let e = transport_error(post(
            &transport,
            &format!("http://127.0.0.1:{port}/"),
            body(size, 4),
        ));
        assert_transport(&e, &[TransportErrorKind::Io], true);
    }
}

/// Over a kept connection: the first request answered, the second's body left unread and the
/// connection closed (a reset): the second call fails as possibly sent.
#[test]
fn p3_a_kept_connection_reset_during_the_next_request_is_an_io_error_that_may_have_been_sent() {
    let (port, seen) = server_with(|stream| {
        let mut writer = stream.try_clone().expect("clone");
        let mut reader = BufReader::new(stream);
        if read_request(&mut reader, &mut writer).is_none() {
            return;
        }
        let _ = writer.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n");
        // The next request's head, then a close with its body unread.
        let mut line = String::new();
        let _ = reader.read_line(&mut line);
    });
    let transport = transport();
    for size in [40usize, UREQ_OUTPUT + 1, 4 << 20] {
        let url = format!("http://127.0.0.1:{port}/");
        post(&transport, &url, body(10, 1)).expect("the first answer");
        let e = transport_error(post(&transport, &url, body(size, 2)));
        assert_transport(&e, &[TransportErrorKind::Io], true);
    }
    assert_eq!(
        seen.connections.load(Ordering::SeqCst),
        3,
        "one kept connection a round"
    );
}

/// A server that reads a whole request and closes without an answer.
#[test]
fn p3_a_server_closing_after_the_request_is_an_io_error_that_may_have_been_sent() {
    let (port, _) = server_with(|stream| {
        let mut writer = stream.try_clone().expect("clone");
        let mut reader = BufReader::new(stream);
        let _ = read_request(&mut reader, &mut writer);
    });
    let transport = transport();
    for size in [0usize, 40, UREQ_OUTPUT + 1] {
        let e = transport_error(post(
            &transport,
            &format!("http://127.0.0.1:{port}/"),
            body(size, 5),
        ));
        assert_transport(&e, &[TransportErrorKind::Io], true);
    }
}

/// A server that answers once, then closes the kept connection silently: the next call must
/// not fail on the stale connection (ureq probes it before reuse) and must not send into it.
#[test]
fn p3_a_stale_kept_connection_is_replaced_not_written_into() {
    let (port, seen) = server_with(|stream| {
        let mut writer = stream.try_clone().expect("clone");
        let mut reader = BufReader::new(stream);
        if read_request(&mut reader, &mut writer).is_some() {
            let _ = writer.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n");
        }
        let _ = writer.shutdown(Shutdown::Both);
    });
    let transport = transport();
    for i in 0..4 {
        post(
            &transport,
            &format!("http://127.0.0.1:{port}/"),
            body(100, i),
        )
        .unwrap_or_else(|e| panic!("call {i}: {e}"));
        // The server's close reaches the client before the next call.
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(seen.connections.load(Ordering::SeqCst), 4);
}

/// A server that never reads: a body bigger than the socket buffers cannot be written; the
/// attempt timeout ends the call as a timeout that may have been sent (part of it was).
#[test]
fn p3_a_write_that_cannot_finish_is_a_timeout_that_may_have_been_sent() {
    let held = Arc::new(Mutex::new(Vec::new()));
    let keep = held.clone();
    let (port, _) = server_with(move |stream| keep.lock().expect("held").push(stream));
    let transport = UreqTransport::new(&timeouts(Duration::from_millis(700)));
    for size in [UREQ_OUTPUT + 1, 64 << 20] {
        let e = transport_error(post_with(
            &transport,
            &format!("http://127.0.0.1:{port}/"),
            body(size, 6),
            &[],
            Duration::from_millis(700),
        ));
        // The smaller body fits the socket buffers (the wait for the answer times out), the
        // larger does not (its write times out): both may have been sent.
        assert_transport(&e, &[TransportErrorKind::Timeout], true);
    }
    drop(held);
}

/// A server that reads the request and never answers: a timeout that may have been sent,
/// with or without a body.
#[test]
fn p3_an_answer_that_never_comes_is_a_timeout_that_may_have_been_sent() {
    let (port, seen) = server_with(|stream| {
        let mut writer = stream.try_clone().expect("clone");
        let mut reader = BufReader::new(stream);
        while read_request(&mut reader, &mut writer).is_some() {}
    });
    let transport = UreqTransport::new(&timeouts(Duration::from_millis(500)));
    let url = format!("http://127.0.0.1:{port}/");
    for size in [0usize, 40, UREQ_OUTPUT + 1] {
        let e = transport_error(post_with(
            &transport,
            &url,
            body(size, 8),
            &[],
            Duration::from_millis(500),
        ));
        assert_transport(&e, &[TransportErrorKind::Timeout], true);
    }
    let get = http::Request::get(&url).body(Vec::new()).expect("request");
    let e = transport_error(transport.send(get, options(Duration::from_millis(500))));
    assert_transport(&e, &[TransportErrorKind::Timeout], true);
    assert!(seen.connections.load(Ordering::SeqCst) >= 1);
}

/// Nobody listening: a connect error, not sent (no transmission was ever held).
#[test]
fn p3_a_refused_connection_is_a_connect_error_not_sent() {
    let port = {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("address").port()
    };
    let e = transport_error(post(
        &transport(),
        &format!("http://127.0.0.1:{port}/"),
        body(10, 9),
    ));
    assert_transport(&e, &[TransportErrorKind::Connect], false);
}

/// A server that answers before it has read the body, then closes: ureq may or may not have
/// written the body; whatever it reports must count as possibly sent, or be the answer.
#[test]
fn p3_an_early_answer_is_an_answer_or_an_error_that_may_have_been_sent() {
    let (port, _) = server_with(|stream| {
        let mut writer = stream.try_clone().expect("clone");
        let mut reader = BufReader::new(stream);
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                break;
            }
        }
        let _ = writer.write_all(
            b"HTTP/1.1 400 Bad Request\r\nconnection: close\r\ncontent-length: 2\r\n\r\n{}",
        );
        std::thread::sleep(Duration::from_millis(50));
    });
    let transport = transport();
    for size in [10usize, UREQ_OUTPUT + 1, 4 << 20] {
        match post(
            &transport,
            &format!("http://127.0.0.1:{port}/"),
            body(size, 10),
        ) {
            Ok(response) => assert_eq!(response.status(), 400),
            Err(e) => {
                assert_no_secret(&e);
                assert_transport(&e, &[TransportErrorKind::Io], true);
            }
        }
    }
}

// ---- Promise 4: no secret leaks ----------------------------------------------------------

/// Whether `text` holds 8 bytes in a row of the canary's secret part (a wire log's row of 16
/// bytes cut anywhere through the canary holds at least that much of it).
fn shows_canary(text: &str) -> bool {
    let secret = &CANARY["review29-".len()..];
    (0..=secret.len() - 8).any(|i| text.contains(&secret[i..i + 8]))
}

/// Lines every tracing event and span (their fields, `Debug`-formatted) in this process wrote,
/// with `log` records bridged to tracing as an application's `tracing-log` would.
fn logged() -> &'static Mutex<String> {
    static LOGGED: OnceLock<Mutex<String>> = OnceLock::new();
    LOGGED.get_or_init(Mutex::default)
}

struct Capture;

struct Fields<'a>(&'a mut String);

impl tracing::field::Visit for Fields<'_> {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        use std::fmt::Write as _;
        let _ = write!(self.0, " {}={value:?}", field.name());
    }
}

impl tracing::Subscriber for Capture {
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }
    fn max_level_hint(&self) -> Option<tracing::level_filters::LevelFilter> {
        Some(tracing::level_filters::LevelFilter::TRACE)
    }
    fn new_span(&self, span: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        let mut line = format!("span {}", span.metadata().name());
        span.record(&mut Fields(&mut line));
        logged().lock().expect("log").push_str(&(line + "\n"));
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, values: &tracing::span::Record<'_>) {
        let mut line = String::from("record");
        values.record(&mut Fields(&mut line));
        logged().lock().expect("log").push_str(&(line + "\n"));
    }
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, event: &tracing::Event<'_>) {
        let mut line = format!("event {}", event.metadata().target());
        event.record(&mut Fields(&mut line));
        logged().lock().expect("log").push_str(&(line + "\n"));
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

/// Installs [`Capture`] for the whole process (every thread) once, and the log bridge.
fn capture_logs() {
    static ONCE: OnceLock<()> = OnceLock::new();
    ONCE.get_or_init(|| {
        tracing::subscriber::set_global_default(Capture).expect("the only subscriber");
        tracing_log::LogTracer::init().expect("the only logger");
    });
}

#[test]
fn p4_no_refresh_token_in_debug_errors_or_logs() {
    capture_logs();
    // The capture works: a record of our own reaches it.
    log::info!("review29 log capture works");
    tracing::info!(probe = "review29 tracing capture works");
    let (port, _) = echo_server(false);
    let transport = transport();
    for size in [10usize, 2000, UREQ_OUTPUT + 10] {
        let sent = body(size, 11);
        let response = post(
            &transport,
            &format!("http://127.0.0.1:{port}/"),
            sent.clone(),
        )
        .expect("answer");
        assert_echoed(&response, &sent, "POST / HTTP/1.1");
        let shown = format!("{transport:?}");
        assert!(!shows_canary(&shown), "{shown}");
    }
    // A held transmission at the moment of an error: the server never answers.
    let (silent, _) = server_with(|stream| {
        let mut writer = stream.try_clone().expect("clone");
        let mut reader = BufReader::new(stream);
        while read_request(&mut reader, &mut writer).is_some() {}
    });
    let e = transport_error(post_with(
        &transport,
        &format!("http://127.0.0.1:{silent}/"),
        body(60, 12),
        &[],
        Duration::from_millis(300),
    ));
    assert_no_secret(&e);
    let shown = format!("{transport:?}");
    assert!(!shows_canary(&shown), "{shown}");
    let logged = logged().lock().expect("log").clone();
    assert!(
        logged.contains("review29 log capture works")
            && logged.contains("review29 tracing capture works"),
        "the capture saw nothing: {logged}"
    );
    assert!(
        !logged.contains("review29-canary"),
        "the refresh token was logged: {logged}"
    );
    // ureq-proto's wire log shows 16 bytes a row: a piece of the canary is enough.
    assert!(
        !shows_canary(&logged),
        "a piece of the refresh token was logged: {logged}"
    );
}

// ---- Promise 5: connection reuse and proxies ---------------------------------------------

#[test]
fn p5_sequential_calls_share_one_kept_connection() {
    let (port, seen) = echo_server(false);
    let transport = transport();
    for i in 0..8 {
        let sent = body(50 + i * 1000, i as u8);
        let response = post(
            &transport,
            &format!("http://127.0.0.1:{port}/"),
            sent.clone(),
        )
        .expect("answer");
        assert_echoed(&response, &sent, "POST / HTTP/1.1");
    }
    assert_eq!(seen.connections.load(Ordering::SeqCst), 1);
}

#[test]
fn p5_a_connection_close_answer_leads_to_a_new_connection() {
    let (port, seen) = echo_server(true);
    let transport = transport();
    for i in 0..4 {
        let sent = body(50, i);
        let response = post(
            &transport,
            &format!("http://127.0.0.1:{port}/"),
            sent.clone(),
        )
        .expect("answer");
        assert_echoed(&response, &sent, "POST / HTTP/1.1");
    }
    assert_eq!(seen.connections.load(Ordering::SeqCst), 4);
}

const CHILD: &str = "REVIEW29_CHILD_TARGET";

/// In a child process started by the proxy test (its environment names the proxy): calls of
/// every size through `UreqTransport::new`'s agent to the target, each echoed whole.
fn child_role() -> bool {
    let Ok(target) = std::env::var(CHILD) else {
        return false;
    };
    let transport = transport();
    for (i, size) in sizes().into_iter().enumerate() {
        let sent = body(size, i as u8);
        let response = post(&transport, &format!("{target}?i={i}"), sent.clone())
            .unwrap_or_else(|e| panic!("child: size {size}: {e}"));
        assert_echoed(&response, &sent, &format!("POST /proxied?i={i} HTTP/1.1"));
    }
    println!("child: done");
    true
}

#[test]
fn p5_a_connect_proxy_tunnels_every_body_whole_over_one_tunnel() {
    if child_role() {
        return;
    }
    let (port, seen) = echo_server(false);
    let (proxy, lines) = connect_proxy();
    let (passed, text) = common::run_child(
        "p5_a_connect_proxy_tunnels_every_body_whole_over_one_tunnel",
        &[
            (CHILD, format!("http://127.0.0.1:{port}/proxied")),
            ("ALL_PROXY", format!("http://127.0.0.1:{proxy}")),
        ],
    );
    assert!(passed, "child failed:\n{text}");
    assert_eq!(
        lines.lock().expect("lines").clone(),
        vec![format!("CONNECT 127.0.0.1:{port} HTTP/1.1")],
        "one tunnel for every call"
    );
    assert_eq!(seen.requests.load(Ordering::SeqCst), sizes().len());
    assert_eq!(seen.connections.load(Ordering::SeqCst), 1);
}

/// Promises 2 and 4 through the whole client (`cogref_blocking::client`, its spans and
/// events): a refresh whose token reaches a loopback server that refuses it (Cognito's
/// `NotAuthorizedException`) and one whose connection is closed unanswered. Each call ends
/// with the server's answer or the close, not a timeout, and the token shows in no error,
/// `Debug` or log line.
#[test]
fn p2_p4_a_client_refresh_carries_the_token_and_shows_it_nowhere() {
    use cogref_blocking::{CallConfig, EndpointConfig, RefreshInput, RetryConfig};
    capture_logs();
    let (tx, rx) = std::sync::mpsc::channel::<bool>();
    let tx = Mutex::new(tx);
    let (port, _) = server_with(move |stream| {
        let mut writer = stream.try_clone().expect("clone");
        let mut reader = BufReader::new(stream);
        while let Some(request) = read_request(&mut reader, &mut writer) {
            let carried = shows_canary(&String::from_utf8_lossy(&request.body));
            let _ = tx.lock().expect("tx").send(carried);
            if request.line.contains("close") {
                return;
            }
            let body = r#"{"__type":"NotAuthorizedException","message":"Invalid Refresh Token"}"#;
            let answer = format!(
                "HTTP/1.1 400 Bad Request\r\ncontent-type: application/x-amz-json-1.1\r\nx-amzn-requestid: review29\r\ncontent-length: {}\r\n\r\n{body}",
                body.len()
            );
            if writer.write_all(answer.as_bytes()).is_err() {
                return;
            }
        }
    });
    let input = RefreshInput::builder()
        .refresh_token(format!("eyJh.{CANARY}.c2ln"))
        .client_id("client")
        .build()
        .expect("input");
    for path in ["answer", "close"] {
        let endpoint = EndpointConfig::new()
            .endpoint_url(format!("http://127.0.0.1:{port}/{path}"))
            .resolve()
            .expect("endpoint");
        let config = CallConfig {
            retry: RetryConfig {
                max_attempts: 1,
                ..RetryConfig::rotation_safe()
            },
            timeouts: timeouts(Duration::from_secs(20)),
            ..CallConfig::default()
        };
        let client = cogref_blocking::client(endpoint, config);
        for _ in 0..3 {
            let e = client.refresh_blocking(&input).expect_err("refused");
            let shown = format!("{e} {e:?} {client:?}");
            assert!(!shows_canary(&shown), "{shown}");
            match path {
                "answer" => assert!(e.requires_sign_in(), "the server's refusal: {e}"),
                _ => {
                    let Error::Transport(t) = e.error() else {
                        panic!("a transport error, not {e}");
                    };
                    assert_eq!(t.kind(), TransportErrorKind::Io, "{e}");
                    assert!(t.request_may_have_been_sent(), "{e}");
                }
            }
            assert_eq!(
                rx.try_recv().ok(),
                Some(true),
                "the token reached the server"
            );
        }
    }
    let logged = logged().lock().expect("log").clone();
    assert!(logged.contains("span"), "no span captured: {logged}");
    assert!(
        !shows_canary(&logged),
        "a piece of the refresh token was logged: {logged}"
    );
}

/// Promise 3 at the smallest budgets (1 to 40 ms) against a server that never reads, with
/// bodies from none to larger than the socket buffers: whatever ends the call, it is a
/// connect failure not sent only when ureq says the connection was not made (a connect or
/// lookup timeout), and otherwise a timeout that may have been sent; never an answer, a
/// panic, or a hang past the budget's timeout.
#[test]
fn p3_tiny_budgets_end_in_a_timeout_whose_sending_matches_its_reason() {
    let held = Arc::new(Mutex::new(Vec::new()));
    let keep = held.clone();
    let (port, _) = server_with(move |stream| keep.lock().expect("held").push(stream));
    let url = format!("http://127.0.0.1:{port}/");
    for ms in [1u64, 2, 5, 10, 40] {
        let attempt = Duration::from_millis(ms);
        let transport = UreqTransport::new(&timeouts(attempt));
        for size in [0usize, 100, UREQ_OUTPUT + 1, 16 << 20] {
            let e = transport_error(post_with(&transport, &url, body(size, 13), &[], attempt));
            let Error::Transport(t) = &e else {
                panic!("a transport error, not {e:?}");
            };
            let reason = std::error::Error::source(t)
                .and_then(|s| s.downcast_ref::<ureq::Error>())
                .map(|u| format!("{u:?}"))
                .unwrap_or_default();
            assert!(!reason.is_empty(), "ureq's error behind {e:?}");
            let connecting =
                reason.contains("Timeout(Connect)") || reason.contains("Timeout(Resolve)");
            assert_eq!(
                t.kind(),
                TransportErrorKind::Timeout,
                "{ms} ms, {size} bytes: {e:?}"
            );
            assert_eq!(
                t.request_may_have_been_sent(),
                !connecting,
                "{ms} ms, {size} bytes: {e:?}"
            );
        }
    }
    drop(held);
}
