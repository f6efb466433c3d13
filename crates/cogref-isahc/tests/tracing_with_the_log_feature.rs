//! Review of issue 12 (logs): cogref-isahc under a `tracing` subscriber that takes everything,
//! in an application whose dependency graph turns on `tracing`'s `log` feature (isahc's default
//! `log` feature does, as do many libraries). The subscriber is global: one test per binary.

use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use cogref_isahc::{CallConfig, EndpointConfig, RefreshInput};
use tracing::field::{Field, Visit};
use tracing::level_filters::LevelFilter;
use tracing::subscriber::Interest;
use tracing::{Event, Metadata, Subscriber, span};

const REFRESH_MARKER: &str = "RefreshCanaryIsahcLog";
const SECRET: &str = "ClientSecretCanaryIsahcLog0123";
const ACCESS_MARKER: &str = "AccessCanaryIsahcLog";

static CAPTURED: Mutex<Vec<String>> = Mutex::new(Vec::new());

struct Fields<'a>(&'a mut String);

impl Visit for Fields<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        let _ = write!(self.0, " {}={:?}", field.name(), value);
    }
}

/// Takes every span and event, at every level, of every target.
struct Everything(AtomicU64);

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
        let mut line = format!("span {}:", attributes.metadata().name());
        attributes.record(&mut Fields(&mut line));
        CAPTURED
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(line);
        span::Id::from_u64(self.0.fetch_add(1, Ordering::Relaxed))
    }
    fn record(&self, _: &span::Id, _: &span::Record<'_>) {}
    fn record_follows_from(&self, _: &span::Id, _: &span::Id) {}
    fn event(&self, event: &Event<'_>) {
        let mut line = format!("event {}:", event.metadata().target());
        event.record(&mut Fields(&mut line));
        CAPTURED
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(line);
    }
    fn enter(&self, _: &span::Id) {}
    fn exit(&self, _: &span::Id) {}
}

/// A loopback server that answers every request with a success carrying the access token.
fn server() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { return };
            let mut reader = BufReader::new(stream);
            let mut length = 0usize;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap_or(0);
                }
                if line == "\r\n" {
                    break;
                }
            }
            let mut body = vec![0u8; length];
            let _ = reader.read_exact(&mut body);
            let answer = format!(
                r#"{{"AuthenticationResult":{{"AccessToken":"eyJh.{ACCESS_MARKER}.c2ln","ExpiresIn":3600,"TokenType":"Bearer"}}}}"#
            );
            let _ = write!(
                reader.get_mut(),
                "HTTP/1.1 200 OK\r\ncontent-type: application/x-amz-json-1.1\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{answer}",
                answer.len()
            );
        }
    });
    url
}

/// README: "No transport lets a secret reach a `tracing` event at any level". `quiet` relies on
/// isahc finding its `handler` span disabled (`!span.is_none()` turns libcurl's verbose output
/// on). With `tracing`'s `log` feature, a disabled span keeps its metadata
/// (`Span::new_disabled`), so `is_none()` is false even under the silent dispatcher: libcurl
/// is verbose on every request, and the wire events, made on isahc's agent thread outside the
/// quiet scope, reach the global subscriber with the request and response bodies.
#[test]
fn no_secret_reaches_a_tracing_subscriber_when_tracing_has_its_log_feature() {
    tracing::subscriber::set_global_default(Everything(AtomicU64::new(1))).expect("subscriber");
    let endpoint = EndpointConfig::new()
        .endpoint_url(server())
        .resolve()
        .expect("endpoint");
    let client = cogref_isahc::client(endpoint, CallConfig::default()).expect("client");
    let input = RefreshInput::builder()
        .refresh_token(format!("eyJjdHkiOiJKV1QifQ.{REFRESH_MARKER}.c2ln"))
        .client_id("client")
        .client_secret(SECRET)
        .build()
        .expect("input");
    futures_lite::future::block_on(client.refresh(&input)).expect("refreshed");
    let captured = CAPTURED.lock().unwrap_or_else(|p| p.into_inner()).clone();
    assert!(
        captured.iter().any(|l| l.contains("cogref.refresh")),
        "the subscriber saw the call: {captured:?}"
    );
    let leaks: Vec<&String> = captured
        .iter()
        .filter(|l| l.contains(REFRESH_MARKER) || l.contains(SECRET) || l.contains(ACCESS_MARKER))
        .collect();
    assert!(
        leaks.is_empty(),
        "{} event(s) with a secret, first: {}",
        leaks.len(),
        leaks[0].chars().take(300).collect::<String>()
    );
}
