//! The logging case of the contract: a transport under a `tracing` subscriber that takes
//! everything (every target, every level, spans and their fields, and `log` records through
//! `tracing-log`) must never let a secret through, whatever the exchange: a success carrying
//! every token and a new device key, an error echoing the request, a body cut short, an HTML page.
//!
//! The subscriber is the process's global default, so this case runs in a test binary of its
//! own (`tests/trace.rs`), one transport after the other. Its server is a plain loopback socket
//! that logs nothing, so everything captured comes from the client side.

use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, Once};

use cogref_core::{CallConfig, EndpointConfig, RefreshInput, RevokeInput};
use tracing::field::{Field, Visit};
use tracing::level_filters::LevelFilter;
use tracing::subscriber::Interest;
use tracing::{Event, Metadata, Subscriber, span};

use crate::{MakeClient, MakeRevoker};

/// What the request carries that must stay secret, and what the answers carry.
const REFRESH: &str = "eyJjdHkiOiJKV1QifQ.RefreshCanaryQw7Zt.Pr3Vx9";
const CLIENT_SECRET: &str = "ClientSecretCanaryHj4Kd8Ms2Nb6";
const DEVICE_KEY: &str = "eu-west-1_cafe0123-beef-4567-89ab";
const ACCESS: &str = "eyJraWQiOiJhIn0.AccessCanaryLm5Rt.Sg1Wq7";
const ID: &str = "eyJraWQiOiJiIn0.IdCanaryYu8Pe.Sg2Wq8";
const ROTATED: &str = "eyJjdHkiOiJKV1QifQ.RotatedCanaryXc3Vb.Pr4Vx0";
const NEW_DEVICE: &str = "eu-west-1_feed4567-dead-0123-cdef";

/// The distinctive middle of each secret: finding any of them is a leak.
const MARKERS: [&str; 7] = [
    "RefreshCanaryQw7Zt",
    "ClientSecretCanaryHj4Kd8Ms2Nb6",
    "cafe0123-beef-4567",
    "AccessCanaryLm5Rt",
    "IdCanaryYu8Pe",
    "RotatedCanaryXc3Vb",
    "feed4567-dead-0123",
];

/// Everything the subscriber was given, one line per span, record or event.
static CAPTURED: Mutex<Vec<String>> = Mutex::new(Vec::new());

fn capture(line: String) {
    CAPTURED
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .push(line);
}

/// Writes every field as `name=value`.
struct Fields<'a>(&'a mut String);

impl Visit for Fields<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        let _ = write!(self.0, " {}={:?}", field.name(), value);
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        let _ = write!(self.0, " {}={}", field.name(), value);
    }
}

/// Takes everything and writes it down.
struct Everything {
    next_id: AtomicU64,
}

impl Subscriber for Everything {
    fn register_callsite(&self, _: &'static Metadata<'static>) -> Interest {
        Interest::always()
    }

    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }

    fn max_level_hint(&self) -> Option<LevelFilter> {
        Some(LevelFilter::TRACE)
    }

    fn new_span(&self, attributes: &span::Attributes<'_>) -> span::Id {
        let meta = attributes.metadata();
        let mut line = format!("span {} {}:", meta.target(), meta.name());
        attributes.record(&mut Fields(&mut line));
        capture(line);
        span::Id::from_u64(self.next_id.fetch_add(1, Ordering::Relaxed))
    }

    fn record(&self, _: &span::Id, values: &span::Record<'_>) {
        let mut line = String::from("record:");
        values.record(&mut Fields(&mut line));
        capture(line);
    }

    fn record_follows_from(&self, _: &span::Id, _: &span::Id) {}

    fn event(&self, event: &Event<'_>) {
        let meta = event.metadata();
        let mut line = format!("event {} {}:", meta.level(), meta.target());
        event.record(&mut Fields(&mut line));
        capture(line);
    }

    fn enter(&self, _: &span::Id) {}

    fn exit(&self, _: &span::Id) {}
}

/// Installs the capturing subscriber as the global default and `tracing-log`'s bridge for the
/// `log` crate, once per process.
pub fn install() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        tracing::subscriber::set_global_default(Everything {
            next_id: AtomicU64::new(1),
        })
        .expect("this test binary sets no other subscriber");
        tracing_log::LogTracer::init().expect("no other logger");
    });
}

/// Where the capture stands: what [`leaks_since`] counts from.
pub fn mark() -> usize {
    CAPTURED.lock().unwrap_or_else(|p| p.into_inner()).len()
}

/// Each captured line since `mark`.
pub fn captured_since(mark: usize) -> Vec<String> {
    CAPTURED.lock().unwrap_or_else(|p| p.into_inner())[mark..].to_vec()
}

/// The secrets found in the lines since `mark`: as text, or in hex dumps (a library's wire log
/// of rows like `7b22 5265 6672 …`, a secret split across rows), each with the line it is in.
pub fn leaks_since(mark: usize) -> Vec<String> {
    let lines = captured_since(mark);
    let mut leaks = Vec::new();
    for line in &lines {
        for marker in MARKERS {
            if line.contains(marker) {
                leaks.push(format!("{marker} in: {line}"));
            }
        }
    }
    // Hex rows, consecutive in the log, decoded as one stream.
    let mut hex = String::new();
    for line in &lines {
        let message = line.rsplit("message=").next().unwrap_or("");
        let row: String = message.chars().filter(|c| !c.is_whitespace()).collect();
        let row = row.trim_end_matches('-');
        if row.len() >= 2 && row.chars().all(|c| c.is_ascii_hexdigit()) {
            hex.push_str(row);
        }
    }
    let bytes: Vec<u8> = hex
        .as_bytes()
        .chunks(2)
        .filter_map(|pair| u8::from_str_radix(std::str::from_utf8(pair).ok()?, 16).ok())
        .collect();
    let decoded = String::from_utf8_lossy(&bytes);
    for marker in MARKERS {
        if decoded.contains(marker) {
            leaks.push(format!("{marker} in a hex dump of the wire"));
        }
    }
    leaks
}

/// A loopback server that logs nothing and answers every request (keep-alive) with one of
/// `answers`, in turn. Returns its URL.
fn silent_server(answers: Vec<(u16, &'static str, String)>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("address"));
    let next = std::sync::Arc::new(AtomicU64::new(0));
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { return };
            let (answers, next) = (answers.clone(), next.clone());
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream);
                loop {
                    let mut length = 0usize;
                    loop {
                        let mut line = String::new();
                        if reader.read_line(&mut line).unwrap_or(0) == 0 {
                            return;
                        }
                        if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                            length = v.trim().parse().unwrap_or(0);
                        }
                        if line == "\r\n" {
                            break;
                        }
                    }
                    let mut body = vec![0u8; length];
                    if reader.read_exact(&mut body).is_err() {
                        return;
                    }
                    let n = next.fetch_add(1, Ordering::Relaxed) as usize;
                    let (status, content_type, text) = &answers[n % answers.len()];
                    let head = format!(
                        "HTTP/1.1 {status} X\r\ncontent-type: {content_type}\r\n\
                         x-amzn-requestid: 0b9a3c5e-1111-2222-3333-444455556666\r\n\
                         content-length: {}\r\n\r\n",
                        text.len()
                    );
                    let stream = reader.get_mut();
                    if stream.write_all(head.as_bytes()).is_err()
                        || stream.write_all(text.as_bytes()).is_err()
                    {
                        return;
                    }
                }
            });
        }
    });
    url
}

fn secret_input() -> RefreshInput {
    RefreshInput::builder()
        .refresh_token(REFRESH)
        .client_id(crate::CLIENT_ID)
        .client_secret(CLIENT_SECRET)
        .device_key(DEVICE_KEY)
        .build()
        .expect("valid input")
}

/// The case: four exchanges, every secret in play, not one in the capture.
///
/// Returns the leaks found (empty when the transport passes) and panics if the capture saw
/// nothing of the call at all (the case would then prove nothing).
pub async fn no_secret_reaches_a_trace_subscriber(make: MakeClient) -> Vec<String> {
    install();
    let json = "application/x-amz-json-1.1";
    let success = format!(
        r#"{{"AuthenticationResult":{{"AccessToken":"{ACCESS}","ExpiresIn":3600,"TokenType":"Bearer","RefreshToken":"{ROTATED}","IdToken":"{ID}","NewDeviceMetadata":{{"DeviceKey":"{NEW_DEVICE}","DeviceGroupKey":"-grp"}}}}}}"#
    );
    let echo = format!(
        r#"{{"__type":"NotAuthorizedException","message":"Invalid Refresh Token {REFRESH} for secret {CLIENT_SECRET}"}}"#
    );
    let truncated = success[..success.len() - 40].to_owned();
    let html = format!("<html><body>upstream said: {REFRESH} {ACCESS}</body></html>");
    let url = silent_server(vec![
        (200, json, success),
        (400, json, echo),
        (200, json, truncated),
        (502, "text/html", html),
    ]);
    let endpoint = EndpointConfig::new()
        .endpoint_url(url)
        .resolve()
        .expect("loopback endpoint");
    let mut config = CallConfig::default();
    config.retry.max_attempts = 1;
    let refresh = make(endpoint, config);
    let start = mark();
    let mut outcomes = Vec::new();
    for _ in 0..4 {
        outcomes.push(refresh(secret_input()).await.is_ok());
    }
    assert_eq!(
        outcomes,
        [true, false, false, false],
        "the four exchanges ran"
    );
    // Proof the subscriber was listening to this call (it would otherwise prove nothing):
    // cogref's own spans are there, and a `log` record reaches it too.
    log::info!(target: "cogref_contract_probe", "log bridge is on");
    let seen = captured_since(start);
    assert!(
        seen.iter().any(|l| l.contains("cogref.attempt")),
        "the capture saw no cogref span: {seen:?}"
    );
    assert!(
        seen.iter().any(|l| l.contains("log bridge is on")),
        "the capture saw no log record"
    );
    leaks_since(start)
}

/// The same for `RevokeToken`: a revocation, an error echoing the token and the secret, an HTML
/// page (200 and 502) quoting them; the token and the secret never reach the capture.
pub async fn no_revocation_secret_reaches_a_trace_subscriber(make: MakeRevoker) -> Vec<String> {
    install();
    let json = "application/x-amz-json-1.1";
    let echo = format!(
        r#"{{"__type":"UnauthorizedException","message":"token {REFRESH} is not for secret {CLIENT_SECRET}"}}"#
    );
    let html = format!("<html><body>upstream said: {REFRESH} {CLIENT_SECRET}</body></html>");
    let url = silent_server(vec![
        (200, json, "{}".to_owned()),
        (400, json, echo),
        (200, "text/html", html.clone()),
        (502, "text/html", html),
    ]);
    let endpoint = EndpointConfig::new()
        .endpoint_url(url)
        .resolve()
        .expect("loopback endpoint");
    let mut config = CallConfig::default();
    config.retry.max_attempts = 1;
    let revoke = make(endpoint, config);
    let input = || {
        RevokeInput::builder()
            .token(REFRESH)
            .client_id(crate::CLIENT_ID)
            .client_secret(CLIENT_SECRET)
            .build()
            .expect("valid input")
    };
    let start = mark();
    let mut outcomes = Vec::new();
    for _ in 0..4 {
        outcomes.push(revoke(input()).await.is_ok());
    }
    assert_eq!(
        outcomes,
        [true, false, false, false],
        "the four exchanges ran"
    );
    let seen = captured_since(start);
    assert!(
        seen.iter().any(|l| l.contains("cogref.revoke")),
        "the capture saw no cogref.revoke span: {seen:?}"
    );
    leaks_since(start)
}
