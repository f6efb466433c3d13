//! Review 24: hostile tests of d275756 (a body with a Content-Length is read to its last byte
//! and the response dropped, instead of polling on to hyper's end-of-stream), against raw
//! loopback servers on 127.0.0.1 that write exact bytes.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cogref_core::{ResponseErrorKind, ServiceErrorKind, TransportErrorKind};
use cogref_reqwest::secrecy::ExposeSecret;
use cogref_reqwest::{
    CallConfig, CallError, Client, EndpointConfig, Error, RefreshInput, RefreshOutput,
    ResponseLimits, RetryConfig, Timeouts,
};

const CANARY: &str = "CANARY-refresh-token-review24-7f3e";
const OK: &str =
    r#"{"AuthenticationResult":{"AccessToken":"a","ExpiresIn":3600,"TokenType":"Bearer"}}"#;
const EVIL: &str =
    r#"{"AuthenticationResult":{"AccessToken":"EVIL","ExpiresIn":60,"TokenType":"Bearer"}}"#;
const REVOKED: &str =
    r#"{"__type":"NotAuthorizedException","message":"Refresh Token has been revoked"}"#;

/// One thing a server does while answering a request.
#[derive(Clone)]
enum Step {
    Write(Vec<u8>),
    Pause(u64),
    /// Close the connection (both ways) and stop serving it.
    Close,
    /// Keep the connection open and never write again.
    Stall,
}
use Step::*;

fn w(s: &str) -> Step {
    Write(s.as_bytes().to_vec())
}

fn ok_with_length(body: &str) -> String {
    format!(
        "HTTP/1.1 200 OK\r\ncontent-type: application/x-amz-json-1.1\r\nx-amzn-requestid: rid-{}\r\ncontent-length: {}\r\n\r\n{body}",
        body.len(),
        body.len()
    )
}

fn head(status: &str, length: usize) -> String {
    format!(
        "HTTP/1.1 {status}\r\ncontent-type: application/x-amz-json-1.1\r\nx-amzn-requestid: rid-x\r\ncontent-length: {length}\r\n\r\n"
    )
}

struct Server {
    address: SocketAddr,
    accepted: Arc<AtomicUsize>,
    /// The connection (1-based) each request arrived on, in order.
    requests: Arc<Mutex<Vec<usize>>>,
}

impl Server {
    fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }
    fn connections_of_requests(&self) -> Vec<usize> {
        self.requests.lock().expect("lock").clone()
    }
}

/// Reads one request (head, then Content-Length bytes of body); false at EOF or error.
fn read_request(stream: &mut TcpStream) -> bool {
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
                match stream.read(&mut chunk) {
                    Ok(0) | Err(_) => return false,
                    Ok(n) => buf.extend_from_slice(&chunk[..n]),
                }
            }
            return true;
        }
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => return false,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

/// A server answering the n-th request it receives (over all connections) with `scripts[n]`,
/// the last script for every later request.
fn server(scripts: Vec<Vec<Step>>) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let address = listener.local_addr().expect("address");
    let accepted = Arc::new(AtomicUsize::new(0));
    let requests = Arc::new(Mutex::new(Vec::new()));
    let scripts = Arc::new(scripts);
    let (acc, reqs) = (accepted.clone(), requests.clone());
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let connection = acc.fetch_add(1, Ordering::SeqCst) + 1;
            let (reqs, scripts) = (reqs.clone(), scripts.clone());
            std::thread::spawn(move || {
                let mut stream = stream;
                stream.set_nodelay(true).ok();
                while read_request(&mut stream) {
                    let n = {
                        let mut r = reqs.lock().expect("lock");
                        r.push(connection);
                        r.len() - 1
                    };
                    let script = &scripts[n.min(scripts.len() - 1)];
                    for step in script {
                        match step {
                            Write(bytes) => {
                                if stream.write_all(bytes).is_err() {
                                    return;
                                }
                                stream.flush().ok();
                            }
                            Pause(ms) => std::thread::sleep(Duration::from_millis(*ms)),
                            Close => {
                                stream.shutdown(Shutdown::Both).ok();
                                return;
                            }
                            Stall => {
                                std::thread::sleep(Duration::from_secs(30));
                                return;
                            }
                        }
                    }
                }
            });
        }
    });
    Server {
        address,
        accepted,
        requests,
    }
}

struct Caller {
    runtime: tokio::runtime::Runtime,
    client: Client,
    input: RefreshInput,
}

fn caller(address: SocketAddr, attempt: Duration, max_body_bytes: Option<usize>) -> Caller {
    caller_on(address, attempt, max_body_bytes, false)
}

#[allow(clippy::field_reassign_with_default)] // `CallConfig` is `#[non_exhaustive]`.
fn caller_on(
    address: SocketAddr,
    attempt: Duration,
    max_body_bytes: Option<usize>,
    current_thread: bool,
) -> Caller {
    let endpoint = EndpointConfig::new()
        .endpoint_url(format!("http://{address}"))
        .resolve()
        .expect("endpoint");
    let input = RefreshInput::builder()
        .refresh_token(CANARY)
        .client_id("1example23456789abcdefghij")
        .build()
        .expect("input");
    let runtime = if current_thread {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime")
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime")
    };
    let mut config = CallConfig::default();
    config.retry = RetryConfig {
        max_attempts: 1,
        ..Default::default()
    };
    config.timeouts = Timeouts {
        attempt,
        ..Default::default()
    };
    if let Some(limit) = max_body_bytes {
        let mut limits = ResponseLimits::default();
        limits.max_body_bytes = limit;
        config.limits = limits;
    }
    let client = runtime
        .block_on(async { cogref_reqwest::client(endpoint, config) })
        .expect("client");
    Caller {
        runtime,
        client,
        input,
    }
}

impl Caller {
    /// One refresh; every error is checked for the canary refresh token.
    fn call(&self) -> Out {
        let started = Instant::now();
        let out = self.runtime.block_on(self.client.refresh(&self.input));
        assert!(started.elapsed() < Duration::from_secs(10), "a call hung");
        match out {
            Ok(out) => Ok(out),
            Err(e) => {
                let texts = [
                    e.to_string(),
                    format!("{e:?}"),
                    e.error().to_string(),
                    format!("{:?}", e.error()),
                    format!("{:#}", e.error()),
                ];
                for t in &texts {
                    assert!(!t.contains(CANARY), "canary in an error: {t}");
                    assert!(!t.contains("EVIL"), "excess bytes' token in an error: {t}");
                }
                // Any source chain too.
                let mut source = std::error::Error::source(e.error());
                while let Some(s) = source {
                    let t = format!("{s} {s:?}");
                    assert!(!t.contains(CANARY), "canary in a source: {t}");
                    source = s.source();
                }
                Err(e)
            }
        }
    }
}

type Out = Result<RefreshOutput, CallError>;

fn err(out: &Out) -> &Error {
    match out {
        Err(e) => e.error(),
        Ok(o) => panic!(
            "expected an error, got tokens {}",
            o.access_token.expose_secret()
        ),
    }
}

fn expect_tokens(out: &Out, token: &str) {
    match out {
        Ok(out) => {
            assert_eq!(out.access_token.expose_secret(), token);
            assert_eq!(out.expires_in, Duration::from_secs(3600));
            assert_eq!(out.token_type.as_deref(), Some("Bearer"));
            assert!(out.refresh_token.is_none());
        }
        Err(e) => panic!("expected tokens {token}, got {e:?}"),
    }
}

fn transport_kind(out: &Out) -> TransportErrorKind {
    match err(out) {
        Error::Transport(e) => e.kind(),
        other => panic!("expected a transport error, got {other:?}"),
    }
}

fn response_kind(out: &Out) -> ResponseErrorKind {
    match err(out) {
        Error::Response(e) => e.kind,
        other => panic!("expected a response error, got {other:?}"),
    }
}

const PAUSE: Duration = Duration::from_millis(50);
const LONG: Duration = Duration::from_secs(3);

// ---------------------------------------------------------------------------------------------
// Rule 1: complete answers return what they returned before.

#[test]
fn rule1_a_body_with_a_length_gives_its_tokens_and_request_id() {
    let s = server(vec![vec![w(&ok_with_length(OK))]]);
    let c = caller(s.address, LONG, None);
    let out = c.call();
    expect_tokens(&out, "a");
    assert_eq!(
        out.expect("tokens").request_id.as_deref(),
        Some(format!("rid-{}", OK.len()).as_str())
    );
}

#[test]
fn rule1_a_200_with_content_length_0_is_the_same_error_as_before() {
    let s = server(vec![vec![w(&head("200 OK", 0))]]);
    let c = caller(s.address, LONG, None);
    let out = c.call();
    let kind = response_kind(&out);
    assert_eq!(
        kind,
        ResponseErrorKind::MissingAuthenticationResult,
        "{out:?}"
    );
    assert_eq!(err(&out).request_id(), Some("rid-x"));
}

#[test]
fn rule1_a_400_with_content_length_0_is_the_same_error_as_before() {
    let s = server(vec![vec![w(&head("400 Bad Request", 0))]]);
    let c = caller(s.address, LONG, None);
    let out = c.call();
    let e = err(&out);
    assert_eq!(e.status().map(|s| s.as_u16()), Some(400));
    assert_eq!(e.request_id(), Some("rid-x"));
    assert!(matches!(e, Error::Response(_)), "{e:?}");
}

#[test]
fn rule1_a_body_split_into_single_bytes_with_pauses_gives_its_tokens() {
    let mut script = vec![w(&head("200 OK", OK.len()))];
    for b in OK.bytes() {
        script.push(Write(vec![b]));
        script.push(Pause(2));
    }
    let s = server(vec![script]);
    let c = caller(s.address, LONG, None);
    expect_tokens(&c.call(), "a");
}

#[test]
fn rule1_a_head_split_from_its_body_and_the_body_in_pieces_gives_its_tokens() {
    let h = head("200 OK", OK.len());
    let (h1, h2) = h.split_at(10);
    let script = vec![
        w(h1),
        Pause(30),
        w(h2),
        Pause(30),
        w(&OK[..20]),
        Pause(30),
        w(&OK[20..OK.len() - 1]),
        Pause(30),
        w(&OK[OK.len() - 1..]),
    ];
    let s = server(vec![script]);
    let c = caller(s.address, LONG, None);
    expect_tokens(&c.call(), "a");
}

#[test]
fn rule1_last_bytes_arriving_late_but_within_the_deadline_give_tokens() {
    let script = vec![
        w(&head("200 OK", OK.len())),
        w(&OK[..OK.len() - 2]),
        Pause(300),
        w(&OK[OK.len() - 2..]),
    ];
    let s = server(vec![script]);
    let c = caller(s.address, LONG, None);
    expect_tokens(&c.call(), "a");
}

#[test]
fn rule1_the_deadline_still_covers_the_last_bytes_of_a_body_with_a_length() {
    let script = vec![
        w(&head("200 OK", OK.len())),
        w(&OK[..OK.len() - 1]),
        Pause(1500),
        w(&OK[OK.len() - 1..]),
    ];
    let s = server(vec![script]);
    let c = caller(s.address, Duration::from_millis(300), None);
    let started = Instant::now();
    let out = c.call();
    assert_eq!(transport_kind(&out), TransportErrorKind::Timeout);
    assert!(
        started.elapsed() < Duration::from_millis(1200),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn rule1_a_400_not_authorized_with_a_length_is_the_same_service_error() {
    let answer = format!("{}{REVOKED}", head("400 Bad Request", REVOKED.len()));
    let s = server(vec![vec![w(&answer)]]);
    let c = caller(s.address, LONG, None);
    let out = c.call();
    match err(&out) {
        Error::Service(e) => {
            assert_eq!(e.kind, ServiceErrorKind::NotAuthorized);
            assert_eq!(e.code, "NotAuthorizedException");
            assert_eq!(e.message.as_deref(), Some("Refresh Token has been revoked"));
            assert_eq!(e.request_id.as_deref(), Some("rid-x"));
            assert_eq!(e.status.as_u16(), 400);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn rule1_a_body_shorter_json_than_its_length_is_not_cut_at_the_json() {
    // A length that counts trailing whitespace after the JSON: all of it is read, parse OK.
    let body = format!("{OK}\r\n  ");
    let s = server(vec![vec![w(&format!(
        "{}{body}",
        head("200 OK", body.len())
    ))]]);
    let c = caller(s.address, LONG, None);
    expect_tokens(&c.call(), "a");
}

#[test]
fn rule1_chunked_and_content_length_together_is_read_as_chunked() {
    let answer = format!(
        "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\ncontent-length: 5\r\n\r\n{:x}\r\n{OK}\r\n0\r\n\r\n",
        OK.len()
    );
    let s = server(vec![vec![w(&answer)]]);
    let c = caller(s.address, LONG, None);
    // hyper may refuse the ambiguous framing; what matters is never a cut 5-byte body.
    let out = c.call();
    if out.is_err() {
        assert!(matches!(err(&out), Error::Transport(_)), "{:?}", err(&out));
    } else {
        expect_tokens(&out, "a");
    }
}

// ---------------------------------------------------------------------------------------------
// Rule 2: short bodies are errors; excess bytes do not leak into the next call.

#[test]
fn rule2_a_body_shorter_than_its_length_then_close_is_a_transport_error() {
    let script = vec![w(&head("200 OK", OK.len())), w(&OK[..OK.len() - 3]), Close];
    let s = server(vec![script, vec![w(&ok_with_length(OK))]]);
    let c = caller(s.address, LONG, None);
    let out = c.call();
    let kind = transport_kind(&out);
    assert_ne!(kind, TransportErrorKind::Timeout, "{out:?}");
    std::thread::sleep(PAUSE);
    expect_tokens(&c.call(), "a");
    assert_eq!(s.accepted(), 2);
}

#[test]
fn rule2_an_error_body_shorter_than_its_length_then_close_is_a_transport_error() {
    let script = vec![
        w(&head("400 Bad Request", REVOKED.len())),
        w(&REVOKED[..REVOKED.len() - 1]),
        Close,
    ];
    let s = server(vec![script]);
    let c = caller(s.address, LONG, None);
    transport_kind(&c.call());
}

#[test]
fn rule2_a_whole_json_body_short_of_its_length_then_close_is_not_a_success() {
    // The JSON is complete and parses; the length promises 10 bytes more that never come.
    let script = vec![w(&head("200 OK", OK.len() + 10)), w(OK), Close];
    let s = server(vec![script]);
    let c = caller(s.address, LONG, None);
    transport_kind(&c.call());
}

#[test]
fn rule2_a_body_shorter_than_its_length_then_a_stall_is_a_timeout() {
    let script = vec![w(&head("200 OK", OK.len() + 10)), w(OK), Stall];
    let s = server(vec![script, vec![w(&ok_with_length(OK))]]);
    let c = caller(s.address, Duration::from_millis(400), None);
    assert_eq!(transport_kind(&c.call()), TransportErrorKind::Timeout);
    std::thread::sleep(PAUSE);
    expect_tokens(&c.call(), "a");
    assert_eq!(s.accepted(), 2, "a timed-out connection was reused");
}

fn second_call_never_sees_the_excess(first: Vec<Step>, pause: Duration) -> Server {
    let s = server(vec![first, vec![w(&ok_with_length(OK))]]);
    let c = caller(s.address, LONG, None);
    expect_tokens(&c.call(), "a");
    for _ in 0..3 {
        std::thread::sleep(pause);
        let out = c.call();
        match &out {
            Ok(o) => assert_eq!(
                o.access_token.expose_secret(),
                "a",
                "excess bytes were parsed"
            ),
            Err(e) => assert!(
                matches!(e.error(), Error::Transport(_)),
                "the next call failed other than cleanly: {e:?}"
            ),
        }
    }
    s
}

#[test]
fn rule2_a_second_response_in_the_same_write_does_not_answer_the_next_call() {
    let both = format!("{}{}", ok_with_length(OK), ok_with_length(EVIL));
    let s = second_call_never_sees_the_excess(vec![w(&both)], PAUSE);
    let r = s.connections_of_requests();
    assert!(r[1] != r[0], "reused after excess bytes: {r:?}");
}

#[test]
fn rule2_a_second_response_with_no_pause_before_the_next_call() {
    let both = format!("{}{}", ok_with_length(OK), ok_with_length(EVIL));
    second_call_never_sees_the_excess(vec![w(&both)], Duration::ZERO);
}

#[test]
fn rule2_a_second_response_written_just_after_does_not_answer_the_next_call() {
    let s = second_call_never_sees_the_excess(
        vec![w(&ok_with_length(OK)), Pause(5), w(&ok_with_length(EVIL))],
        PAUSE,
    );
    let r = s.connections_of_requests();
    assert!(r[1] != r[0], "reused after excess bytes: {r:?}");
}

#[test]
fn rule2_garbage_after_the_body_does_not_corrupt_the_next_call() {
    let answer = format!("{}garbage-after-the-body{EVIL}", ok_with_length(OK));
    let s = second_call_never_sees_the_excess(vec![w(&answer)], PAUSE);
    let r = s.connections_of_requests();
    assert!(r[1] != r[0], "reused after excess bytes: {r:?}");
}

#[test]
fn rule2_a_body_sent_after_content_length_0_does_not_answer_the_next_call() {
    let answer = format!("{}{}", head("200 OK", 0), ok_with_length(EVIL));
    let s = server(vec![vec![w(&answer)], vec![w(&ok_with_length(OK))]]);
    let c = caller(s.address, LONG, None);
    assert_eq!(
        response_kind(&c.call()),
        ResponseErrorKind::MissingAuthenticationResult
    );
    for _ in 0..3 {
        std::thread::sleep(PAUSE);
        let out = c.call();
        if let Ok(o) = &out {
            assert_eq!(
                o.access_token.expose_secret(),
                "a",
                "excess bytes were parsed"
            );
        } else {
            transport_kind(&out);
        }
    }
}

#[test]
fn rule2_excess_bytes_after_a_400_do_not_corrupt_the_next_call() {
    let answer = format!(
        "{}{REVOKED}{}",
        head("400 Bad Request", REVOKED.len()),
        ok_with_length(EVIL)
    );
    let s = server(vec![vec![w(&answer)], vec![w(&ok_with_length(OK))]]);
    let c = caller(s.address, LONG, None);
    assert!(matches!(err(&c.call()), Error::Service(_)));
    for _ in 0..3 {
        std::thread::sleep(PAUSE);
        let out = c.call();
        if let Ok(o) = &out {
            assert_eq!(
                o.access_token.expose_secret(),
                "a",
                "excess bytes were parsed"
            );
        } else {
            transport_kind(&out);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Rule 3: reuse after complete length-delimited bodies, never when unsafe.

fn one_connection_for(script: Vec<Step>, check: impl Fn(&Out)) {
    let s = server(vec![script]);
    let c = caller(s.address, LONG, None);
    for _ in 0..6 {
        std::thread::sleep(PAUSE);
        check(&c.call());
    }
    assert_eq!(s.accepted(), 1, "{:?}", s.connections_of_requests());
}

#[test]
fn rule3_one_connection_for_sequential_single_write_answers() {
    one_connection_for(vec![w(&ok_with_length(OK))], |o| expect_tokens(o, "a"));
}

#[test]
fn rule3_one_connection_for_sequential_split_answers() {
    let h = head("200 OK", OK.len());
    one_connection_for(
        vec![w(&h), Pause(10), w(&OK[..30]), Pause(10), w(&OK[30..])],
        |o| expect_tokens(o, "a"),
    );
}

#[test]
fn rule3_one_connection_for_sequential_late_last_bytes() {
    one_connection_for(
        vec![
            w(&head("200 OK", OK.len())),
            w(&OK[..OK.len() - 1]),
            Pause(100),
            w(&OK[OK.len() - 1..]),
        ],
        |o| expect_tokens(o, "a"),
    );
}

#[test]
fn rule3_one_connection_for_sequential_400_errors() {
    one_connection_for(
        vec![w(&format!(
            "{}{REVOKED}",
            head("400 Bad Request", REVOKED.len())
        ))],
        |o| assert!(matches!(err(o), Error::Service(_)), "{:?}", err(o)),
    );
}

#[test]
fn rule3_one_connection_for_sequential_content_length_0() {
    one_connection_for(vec![w(&head("200 OK", 0))], |o| {
        assert_eq!(
            response_kind(o),
            ResponseErrorKind::MissingAuthenticationResult
        )
    });
}

#[test]
fn rule3_no_reuse_after_a_truncated_body_then_stall() {
    // The short body is followed by a stall (the connection stays open): a timeout, and then
    // the next call must not be written onto that connection.
    let s = server(vec![
        vec![w(&head("200 OK", OK.len())), w(&OK[..10]), Stall],
        vec![w(&ok_with_length(OK))],
    ]);
    let c = caller(s.address, Duration::from_millis(300), None);
    assert_eq!(transport_kind(&c.call()), TransportErrorKind::Timeout);
    for _ in 0..3 {
        std::thread::sleep(PAUSE);
        expect_tokens(&c.call(), "a");
    }
    let r = s.connections_of_requests();
    assert_eq!(r, vec![1, 2, 2, 2]);
}

#[test]
fn rule3_a_body_too_large_sent_whole_leaves_the_next_calls_clean() {
    // The body is never read by the transport; hyper may drain it (it arrived whole) and
    // reuse the connection, or close it: either way the next calls get their own answer.
    let big = format!("{{\"x\":\"{}\"}}", "y".repeat(500));
    let s = server(vec![
        vec![w(&format!("{}{big}", head("200 OK", big.len())))],
        vec![w(&ok_with_length(OK))],
    ]);
    let c = caller(s.address, LONG, Some(200));
    assert!(matches!(
        response_kind(&c.call()),
        ResponseErrorKind::BodyTooLarge { limit: 200 }
    ));
    for _ in 0..3 {
        std::thread::sleep(PAUSE);
        expect_tokens(&c.call(), "a");
    }
}

#[test]
fn rule3_no_reuse_after_a_body_too_large_whose_body_is_still_coming() {
    let s = server(vec![
        vec![w(&head("200 OK", 100_000)), w(&" ".repeat(500)), Stall],
        vec![w(&ok_with_length(OK))],
    ]);
    let c = caller(s.address, LONG, Some(200));
    assert!(matches!(
        response_kind(&c.call()),
        ResponseErrorKind::BodyTooLarge { limit: 200 }
    ));
    for _ in 0..3 {
        std::thread::sleep(PAUSE);
        expect_tokens(&c.call(), "a");
    }
    let r = s.connections_of_requests();
    assert_eq!(r, vec![1, 2, 2, 2]);
}

#[test]
fn rule3_no_reuse_after_a_chunked_body_too_large_still_coming() {
    let mut first = vec![w("HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")];
    for _ in 0..10 {
        first.push(w(&format!("40\r\n{}\r\n", " ".repeat(64))));
    }
    first.push(Stall);
    let s = server(vec![first, vec![w(&ok_with_length(OK))]]);
    let c = caller(s.address, LONG, Some(200));
    assert!(matches!(
        response_kind(&c.call()),
        ResponseErrorKind::BodyTooLarge { limit: 200 }
    ));
    for _ in 0..3 {
        std::thread::sleep(PAUSE);
        expect_tokens(&c.call(), "a");
    }
    let r = s.connections_of_requests();
    assert_eq!(r, vec![1, 2, 2, 2]);
}

#[test]
fn rule2_rule3_every_answer_followed_by_a_second_response_never_answers_a_later_call() {
    // Each request is answered with its response and, in the same write, a forged second one.
    // 40 calls back to back: any success must be the real answer.
    let both = format!("{}{}", ok_with_length(OK), ok_with_length(EVIL));
    let s = server(vec![vec![w(&both)]]);
    let c = caller(s.address, LONG, None);
    let mut ok = 0;
    for i in 0..40 {
        if i % 2 == 1 {
            std::thread::sleep(Duration::from_millis(3));
        }
        let out = c.call();
        match &out {
            Ok(o) => {
                assert_eq!(
                    o.access_token.expose_secret(),
                    "a",
                    "call {i} got the forged answer"
                );
                ok += 1;
            }
            Err(e) => assert!(matches!(e.error(), Error::Transport(_)), "call {i}: {e:?}"),
        }
    }
    assert!(ok >= 20, "only {ok} of 40 calls succeeded");
}

// ---------------------------------------------------------------------------------------------
// Rule 4: limits.

#[test]
fn rule4_a_content_length_above_the_limit_is_refused_before_reading() {
    // Only the head is sent; the body never comes. Refused at once, not at the deadline.
    let s = server(vec![vec![w(&head("200 OK", 10_000)), Stall]]);
    let c = caller(s.address, LONG, Some(1000));
    let started = Instant::now();
    let out = c.call();
    assert!(matches!(
        response_kind(&out),
        ResponseErrorKind::BodyTooLarge { limit: 1000 }
    ));
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn rule4_a_content_length_equal_to_the_limit_is_read() {
    let s = server(vec![vec![w(&ok_with_length(OK))]]);
    let c = caller(s.address, LONG, Some(OK.len()));
    expect_tokens(&c.call(), "a");
}

#[test]
fn rule4_a_content_length_one_above_the_limit_is_refused() {
    let s = server(vec![vec![w(&ok_with_length(OK))]]);
    let c = caller(s.address, LONG, Some(OK.len() - 1));
    assert!(matches!(
        response_kind(&c.call()),
        ResponseErrorKind::BodyTooLarge { .. }
    ));
}

#[test]
fn rule4_a_chunked_body_growing_past_the_limit_is_refused() {
    let mut script = vec![w("HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")];
    for _ in 0..50 {
        script.push(w("40\r\n"));
        script.push(w(&format!("{}\r\n", " ".repeat(64))));
    }
    script.push(Stall);
    let s = server(vec![script]);
    let c = caller(s.address, LONG, Some(1000));
    let started = Instant::now();
    assert!(matches!(
        response_kind(&c.call()),
        ResponseErrorKind::BodyTooLarge { limit: 1000 }
    ));
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[test]
fn rule4_a_chunked_body_within_the_limit_is_read_to_its_end() {
    let half = OK.len() / 2;
    let answer = format!(
        "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n{:x}\r\n{}\r\n{:x}\r\n{}\r\n0\r\n\r\n",
        half,
        &OK[..half],
        OK.len() - half,
        &OK[half..]
    );
    let s = server(vec![vec![w(&answer)]]);
    let c = caller(s.address, LONG, Some(OK.len()));
    for _ in 0..3 {
        std::thread::sleep(PAUSE);
        expect_tokens(&c.call(), "a");
    }
    assert_eq!(s.accepted(), 1);
}

#[test]
fn rule4_a_close_delimited_body_is_read_to_the_close() {
    let answer = format!(
        "HTTP/1.1 200 OK\r\nconnection: close\r\n\r\n{}",
        &OK[..OK.len() - 1]
    );
    let s = server(vec![vec![
        w(&answer),
        Pause(100),
        w(&OK[OK.len() - 1..]),
        Close,
    ]]);
    let c = caller(s.address, LONG, None);
    expect_tokens(&c.call(), "a");
    std::thread::sleep(PAUSE);
    expect_tokens(&c.call(), "a");
    assert_eq!(s.accepted(), 2);
}

// ---------------------------------------------------------------------------------------------
// Rule 5: the canary is checked in every error `Caller::call` sees; one more that echoes it.

#[test]
fn rule5_no_token_text_in_errors_even_when_the_server_echoes_it() {
    // A 400 whose message carries the refresh token, cut short; and one complete.
    let echoed = format!(r#"{{"__type":"NotAuthorizedException","message":"bad {CANARY}"}}"#);
    let s = server(vec![
        vec![
            w(&head("400 Bad Request", echoed.len() + 5)),
            w(&echoed),
            Close,
        ],
        vec![w(&format!("{}{}", head("200 OK", 0), echoed))],
    ]);
    let c = caller(s.address, LONG, None);
    let _ = c.call();
    std::thread::sleep(PAUSE);
    let _ = c.call();
}

// ---------------------------------------------------------------------------------------------
// More of rules 2 and 3: a current-thread runtime (the connection's task and the caller share
// one thread), and answers that forbid reuse while the server keeps the connection open.

#[test]
fn rule3_current_thread_one_connection_for_sequential_answers() {
    let s = server(vec![vec![w(&ok_with_length(OK))]]);
    let c = caller_on(s.address, LONG, None, true);
    for _ in 0..6 {
        std::thread::sleep(PAUSE);
        expect_tokens(&c.call(), "a");
    }
    assert_eq!(s.accepted(), 1);
}

#[test]
fn rule2_current_thread_a_second_response_never_answers_a_later_call() {
    let both = format!("{}{}", ok_with_length(OK), ok_with_length(EVIL));
    let s = server(vec![vec![w(&both)]]);
    let c = caller_on(s.address, LONG, None, true);
    let mut ok = 0;
    for i in 0..40 {
        if i % 2 == 1 {
            std::thread::sleep(Duration::from_millis(3));
        }
        let out = c.call();
        match &out {
            Ok(o) => {
                assert_eq!(
                    o.access_token.expose_secret(),
                    "a",
                    "call {i} got the forged answer"
                );
                ok += 1;
            }
            Err(e) => assert!(matches!(e.error(), Error::Transport(_)), "call {i}: {e:?}"),
        }
    }
    assert!(ok >= 20, "only {ok} of 40 calls succeeded");
}

/// Fails on d275756 AND on its parent d275756^ (not introduced by the change): on a
/// current-thread runtime driven by `block_on` per call, the forged bytes arrive while no
/// `block_on` runs, so the connection's task never sees them; the pool hands the idle
/// connection to the next call, and hyper parses the buffered bytes as its answer.
#[test]
#[ignore = "bug (pre-existing, also on d275756^): on a current-thread runtime, a second response that arrives 5 ms after the answer, while the runtime is idle, is returned as the NEXT call's answer 30 ms later (access token EVIL instead of a)"]
fn rule2_current_thread_a_late_second_response_never_answers_a_later_call() {
    let s = server(vec![vec![
        w(&ok_with_length(OK)),
        Pause(5),
        w(&ok_with_length(EVIL)),
    ]]);
    let c = caller_on(s.address, LONG, None, true);
    for i in 0..10 {
        // Well after the forged bytes arrived (5 ms after the answer): a forged answer that
        // arrives after the next request was written is indistinguishable from a real one.
        std::thread::sleep(Duration::from_millis(30));
        let out = c.call();
        if let Ok(o) = &out {
            assert_eq!(
                o.access_token.expose_secret(),
                "a",
                "call {i} got the forged answer"
            );
        } else {
            transport_kind(&out);
        }
    }
}

#[test]
fn rule3_current_thread_no_reuse_after_a_truncated_body_then_stall() {
    let s = server(vec![
        vec![w(&head("200 OK", OK.len())), w(&OK[..10]), Stall],
        vec![w(&ok_with_length(OK))],
    ]);
    let c = caller_on(s.address, Duration::from_millis(300), None, true);
    assert_eq!(transport_kind(&c.call()), TransportErrorKind::Timeout);
    for _ in 0..3 {
        std::thread::sleep(PAUSE);
        expect_tokens(&c.call(), "a");
    }
    assert_eq!(s.connections_of_requests(), vec![1, 2, 2, 2]);
}

#[test]
fn rule3_no_reuse_after_connection_close_with_a_length_while_the_server_keeps_it_open() {
    for ct in [false, true] {
        // Every connection's first request gets the real answer; a reused one gets EVIL.
        let answer = format!(
            "HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{OK}",
            OK.len()
        );
        per_connection_first_answer(answer, ct);
    }
}

#[test]
fn rule3_no_reuse_after_an_http_1_0_answer_with_a_length_while_the_server_keeps_it_open() {
    for ct in [false, true] {
        let answer = format!(
            "HTTP/1.0 200 OK\r\ncontent-length: {}\r\n\r\n{OK}",
            OK.len()
        );
        per_connection_first_answer(answer, ct);
    }
}

/// A server whose every connection answers its first request with `answer` and any later one
/// with EVIL, keeping connections open; three calls must each get `answer` on a new connection.
fn per_connection_first_answer(answer: String, current_thread: bool) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let address = listener.local_addr().expect("address");
    let accepted = Arc::new(AtomicUsize::new(0));
    let acc = accepted.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            acc.fetch_add(1, Ordering::SeqCst);
            let answer = answer.clone();
            std::thread::spawn(move || {
                let mut stream = stream;
                let mut first = true;
                while read_request(&mut stream) {
                    let out = if first {
                        answer.clone()
                    } else {
                        ok_with_length(EVIL)
                    };
                    first = false;
                    if stream.write_all(out.as_bytes()).is_err() {
                        return;
                    }
                }
            });
        }
    });
    let c = caller_on(address, LONG, None, current_thread);
    for _ in 0..3 {
        std::thread::sleep(PAUSE);
        expect_tokens(&c.call(), "a");
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 3);
}
