//! Review 20: the request id of every error, whatever path it took (a parsed response of any
//! status, an error a transport built from a response head, retries then a final error, the
//! revoke operation), never shows a secret sent or a piece of one of 20 bytes: not in
//! `Display`, `Debug`, `request_id()`, nor in anything the client traces.
//!
//! Every test here installs one process-wide `tracing` subscriber and runs alone (a lock):
//! a scoped subscriber can miss a callsite another thread reached first, and then a leak in an
//! event would go unseen.

mod common;
use common::Captured;

use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant, SystemTime};

use cogref_core::driver::{HttpRequest, HttpResponse, ManualEnvironment};
use cogref_core::{
    CallConfig, CallError, Client, EndpointConfig, Error, RefreshCall, RefreshInput, ResponseError,
    ResponseLimits, RetryConfig, RetryQuota, RevokeInput, SendOptions, Step,
};
use http::{HeaderMap, HeaderValue, StatusCode};

/// A refresh token whose runs of letters and digits are longer than 20 bytes.
const REFRESH: &str = "eyJraWQiOiJyZXZpZXcyMCJ9.eyJzdWIiOiJhYmNkZWZnaGlqa2xtbm9wcXJzdHV2d3h5ejAxMjM0NTY3ODkifQ.c2lnbmF0dXJlY2FuYXJ5cmV2aWV3MjBhYmNkZWZnaA";
/// A client secret in Cognito's format (52 of `[a-z0-9]`): a request id's shape.
const CLIENT_SECRET: &str = "7k2m9p4q8r1s6t3v0w5x7y2z9a4b8c1d6e3f0g5h7j2k9l4m8n1p";
/// A device key whose part after `_` is a UUID: a request id's shape.
const DEVICE_KEY: &str = "eu-west-1_0f1e2d3c-4b5a-6978-8695-a4b3c2d1e0f9";

const SECRETS: [&str; 3] = [REFRESH, CLIENT_SECRET, DEVICE_KEY];

/// Request ids a hostile server could send back: each secret of a request id's shape whole,
/// and pieces of exactly 20 bytes of each secret that have that shape.
fn echoing_ids() -> Vec<String> {
    let mut ids = vec![CLIENT_SECRET.to_owned(), DEVICE_KEY[10..].to_owned()];
    for secret in SECRETS {
        let b = secret.as_bytes();
        let shaped = |w: &[u8]| w.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'-');
        // The first and last shaped windows of 20 bytes, and one in the middle.
        let windows: Vec<usize> = (0..=b.len() - 20)
            .filter(|&i| shaped(&b[i..i + 20]))
            .collect();
        for at in [
            windows.first(),
            windows.get(windows.len() / 2),
            windows.last(),
        ]
        .into_iter()
        .flatten()
        {
            ids.push(secret[*at..*at + 20].to_owned());
        }
    }
    ids.sort();
    ids.dedup();
    assert!(ids.len() >= 7, "each secret gives pieces: {ids:?}");
    ids
}

/// The secrets a revocation sends (it carries no device key).
const REVOKE_SECRETS: [&str; 2] = [REFRESH, CLIENT_SECRET];

/// The first piece of 20 bytes of a secret (or a whole secret) that `text` shows.
fn leak_in(text: &str) -> Option<String> {
    leak_of(&SECRETS, text)
}

/// The first piece of 20 bytes of one of `secrets` (or a whole one) that `text` shows.
fn leak_of(secrets: &[&str], text: &str) -> Option<String> {
    for secret in secrets {
        if text.contains(secret) {
            return Some(format!("the whole of {secret}"));
        }
        for at in 0..=secret.len() - 20 {
            let piece = &secret[at..at + 20];
            if text.contains(piece) {
                return Some(format!("{piece:?} of {secret}"));
            }
        }
    }
    None
}

/// Installs the process-wide subscriber once, takes the lock that runs these tests one at a
/// time, and empties the capture.
fn traced() -> (MutexGuard<'static, ()>, Captured) {
    static CAPTURE: OnceLock<Captured> = OnceLock::new();
    static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());
    let captured = CAPTURE
        .get_or_init(|| {
            let (captured, subscriber) = Captured::subscriber(tracing::Level::TRACE);
            tracing::subscriber::set_global_default(subscriber).expect("the only subscriber");
            captured
        })
        .clone();
    let guard = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    captured.0.lock().expect("buffer").clear();
    (guard, captured)
}

fn logs(captured: &Captured) -> String {
    String::from_utf8_lossy(&captured.0.lock().expect("buffer")).into_owned()
}

fn refresh_input() -> RefreshInput {
    RefreshInput::builder()
        .refresh_token(REFRESH)
        .client_id("client")
        .client_secret(CLIENT_SECRET)
        .device_key(DEVICE_KEY)
        .build()
        .expect("input")
}

fn revoke_input() -> RevokeInput {
    RevokeInput::builder()
        .token(REFRESH)
        .client_id("client")
        .client_secret(CLIENT_SECRET)
        .build()
        .expect("input")
}

fn config() -> CallConfig {
    CallConfig {
        retry: RetryConfig {
            initial_backoff: Duration::ZERO,
            ..Default::default()
        },
        limits: ResponseLimits {
            max_body_bytes: 256,
        },
        ..Default::default()
    }
}

type Outcome = Result<HttpResponse, Error>;

/// A named answer of a hostile server, given the request id to send.
type Answer = (&'static str, fn(&str) -> Outcome);

/// A client whose transport answers every attempt with `answer(request id)`.
fn client(
    id: &str,
    answer: fn(&str) -> Outcome,
) -> Client<impl cogref_core::BlockingTransport, ManualEnvironment> {
    let id = id.to_owned();
    Client::new(
        move |_: HttpRequest, _: SendOptions| answer(&id),
        ManualEnvironment::new(
            Instant::now(),
            SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000),
        ),
        EndpointConfig::new()
            .region("eu-west-1")
            .resolve()
            .expect("endpoint"),
        config(),
    )
}

fn response(status: u16, id: &str, extra: &[(&str, &str)], body: &str) -> Outcome {
    let mut builder = http::Response::builder()
        .status(status)
        .header("x-amzn-requestid", id);
    for (name, value) in extra {
        builder = builder.header(*name, *value);
    }
    Ok(builder.body(body.as_bytes().to_vec()).expect("response"))
}

/// Every kind of response a server can send, each carrying the request id it is given.
const RESPONSES: [Answer; 11] = [
    ("200 without AuthenticationResult", |id| {
        response(200, id, &[], "{}")
    }),
    ("200 not JSON", |id| response(200, id, &[], "<html>")),
    ("200 over the body limit", |id| {
        response(200, id, &[], &" ".repeat(1024))
    }),
    ("400 NotAuthorizedException", |id| {
        response(
            400,
            id,
            &[],
            r#"{"__type":"NotAuthorizedException","message":"Invalid Refresh Token"}"#,
        )
    }),
    ("400 code in the header only", |id| {
        response(
            400,
            id,
            &[("x-amzn-errortype", "NotAuthorizedException")],
            "",
        )
    }),
    ("400 without a code", |id| response(400, id, &[], "{}")),
    ("413 over the body limit", |id| {
        response(413, id, &[], &"x".repeat(1024))
    }),
    ("429 TooManyRequests, retried", |id| {
        response(
            429,
            id,
            &[("x-amz-retry-after", "0")],
            r#"{"__type":"TooManyRequestsException"}"#,
        )
    }),
    ("500 InternalError, retried", |id| {
        response(500, id, &[], r#"{"__type":"InternalErrorException"}"#)
    }),
    ("503 HTML page, retried", |id| {
        response(503, id, &[], "<html>down</html>")
    }),
    ("302 redirect", |id| {
        response(302, id, &[("location", "https://elsewhere.example/")], "")
    }),
];

/// Responses that show the echo elsewhere than in the request id (which is plain): in the
/// error code (header or body), the message, the reason code, the redirect's host, the other
/// request id header, a body excerpt.
const ECHO_ELSEWHERE: [Answer; 8] = [
    ("400 code header", |echo| {
        plain(400, &[("x-amzn-errortype", echo)], "")
    }),
    ("400 __type", |echo| {
        plain(400, &[], &format!(r#"{{"__type":"{echo}"}}"#))
    }),
    ("400 message", |echo| {
        plain(
            400,
            &[],
            &format!(r#"{{"__type":"NotAuthorizedException","message":"token {echo} revoked"}}"#),
        )
    }),
    ("400 reasonCode", |echo| {
        plain(
            400,
            &[],
            &format!(r#"{{"__type":"InvalidParameterException","reasonCode":"{echo}"}}"#),
        )
    }),
    ("500 code header, retried", |echo| {
        plain(500, &[("x-amzn-errortype", echo)], "")
    }),
    ("302 to the echo's host", |echo| {
        let location = format!("https://{}.example/{echo}?t={echo}", echo.to_lowercase());
        plain(302, &[("location", &location)], "")
    }),
    ("503 page quoting the echo", |echo| {
        plain(503, &[], &format!("<html>{echo}</html>"))
    }),
    (
        "200 without AuthenticationResult quoting the echo",
        |echo| plain(200, &[], &format!(r#"{{"Echo":"{echo}"}}"#)),
    ),
];

/// A response with a plain request id and `extra` headers.
fn plain(status: u16, extra: &[(&str, &str)], body: &str) -> Outcome {
    response(status, "0b9a3c5e-1111-2222-3333-444455556666", extra, body)
}

/// Errors a transport builds from a response head (a body that grew past the limit while
/// read): at 200 (final at once) and at 503 (retried, then final).
const TRANSPORT_BUILT: [Answer; 2] = [
    ("transport's body over the limit at 200", |id| {
        Err(too_large(StatusCode::OK, id))
    }),
    ("transport's body over the limit at 503, retried", |id| {
        Err(too_large(StatusCode::SERVICE_UNAVAILABLE, id))
    }),
];

fn too_large(status: StatusCode, id: &str) -> Error {
    let mut head = HeaderMap::new();
    head.insert(
        "x-amz-request-id",
        HeaderValue::from_str(id).expect("header"),
    );
    ResponseError::body_too_large(256, status, &head).into()
}

/// Where `error` shows a secret of a refresh, if it does.
fn shown(error: &CallError) -> Option<String> {
    shown_of(&SECRETS, error)
}

/// Where `error` shows one of `secrets`, if it does.
fn shown_of(secrets: &[&str], error: &CallError) -> Option<String> {
    let texts = [
        error.to_string(),
        format!("{error:?}"),
        format!("{:?}", error.error()),
        error.request_id().unwrap_or_default().to_owned(),
    ];
    texts
        .iter()
        .find_map(|t| leak_of(secrets, t).map(|l| format!("{l} in {t}")))
}

/// Runs refresh and revoke for every request id and every answer; returns the leaks found in
/// the errors (`in_logs` false) or in what was traced (`in_logs` true).
fn leaks(answers: &[Answer], in_logs: bool) -> Vec<String> {
    let (_guard, captured) = traced();
    let mut found = Vec::new();
    for id in echoing_ids() {
        for (what, answer) in answers {
            let client = client(&id, *answer);
            let refreshed = client.refresh_blocking(&refresh_input());
            let error = refreshed.expect_err(what);
            assert!(error.request_id().is_some(), "{what}: the id is read");
            if let Some(leak) = shown(&error).filter(|_| !in_logs) {
                found.push(format!("refresh, {what}, id {id}: {leak}"));
            }
            let traced = logs(&captured);
            assert!(traced.contains("cogref.attempt"), "traced: {traced}");
            if let Some(leak) = leak_in(&traced).filter(|_| in_logs) {
                found.push(format!(
                    "refresh, {what}, id {id}: {leak} in the logs:\n{traced}"
                ));
            }
            captured.0.lock().expect("buffer").clear();
            // A revocation succeeds on a 2xx with any JSON object; it carries no device key.
            if let Err(error) = client.revoke_blocking(&revoke_input()) {
                if let Some(leak) = shown_of(&REVOKE_SECRETS, &error).filter(|_| !in_logs) {
                    found.push(format!("revoke, {what}, id {id}: {leak}"));
                }
                let traced = logs(&captured);
                if let Some(leak) = leak_of(&REVOKE_SECRETS, &traced).filter(|_| in_logs) {
                    found.push(format!(
                        "revoke, {what}, id {id}: {leak} in the logs:\n{traced}"
                    ));
                }
            }
            captured.0.lock().expect("buffer").clear();
        }
    }
    found
}

#[test]
fn no_error_read_from_any_response_shows_a_secret_echoed_in_its_request_id() {
    let found = leaks(&RESPONSES, false);
    assert!(found.is_empty(), "{}", found.join("\n"));
}

#[test]
fn nothing_traced_while_reading_any_response_shows_a_secret_echoed_in_its_request_id() {
    let found = leaks(&RESPONSES, true);
    assert!(found.is_empty(), "{}", found.join("\n"));
}

#[test]
fn no_error_shows_a_secret_echoed_in_its_code_message_redirect_host_or_excerpt() {
    let found = leaks(&ECHO_ELSEWHERE, false);
    assert!(found.is_empty(), "{}", found.join("\n"));
}

#[test]
fn nothing_traced_shows_a_secret_echoed_in_a_code_message_redirect_host_or_excerpt() {
    let found = leaks(&ECHO_ELSEWHERE, true);
    assert!(found.is_empty(), "{}", found.join("\n"));
}

#[test]
fn no_error_a_transport_built_from_a_response_head_shows_a_secret_echoed_in_its_request_id() {
    let found = leaks(&TRANSPORT_BUILT, false);
    assert!(found.is_empty(), "{}", found.join("\n"));
}

/// The driver logs a transport's error ("attempt failed") before the call settles it: the
/// request id in its `Display` must already be vetted there.
#[test]
fn nothing_traced_for_an_error_a_transport_built_shows_a_secret_echoed_in_its_request_id() {
    let found = leaks(&TRANSPORT_BUILT, true);
    assert!(
        found.is_empty(),
        "{} leaks, the first: {}",
        found.len(),
        found.first().map_or("", String::as_str)
    );
}

/// The sans-IO `Call`: `settle` hides an echo in any error it is given (an error read by shape
/// alone included), `on_response` in what it reads; through retries too.
#[test]
fn the_sans_io_call_hides_an_echoed_request_id_whichever_way_an_error_reaches_it() {
    let (_guard, _captured) = traced();
    let endpoint = EndpointConfig::new()
        .region("eu-west-1")
        .resolve()
        .expect("endpoint");
    let input = refresh_input();
    let config = config();
    for id in echoing_ids() {
        for (how, retried) in [("settle", false), ("settle", true), ("on_response", true)] {
            let start = Instant::now();
            let mut call = RefreshCall::new(&endpoint, &input, &config, start, 7);
            let mut quota = RetryQuota::default();
            let mut now = start;
            let error = loop {
                match call.poll(now) {
                    Step::Send(attempt) => {
                        let status = if retried {
                            StatusCode::INTERNAL_SERVER_ERROR
                        } else {
                            StatusCode::BAD_REQUEST
                        };
                        let mut head = HeaderMap::new();
                        head.insert("x-amzn-requestid", HeaderValue::from_str(&id).expect("id"));
                        let body = br#"{"__type":"InternalErrorException"}"#;
                        if how == "settle" {
                            // Read by shape alone, as a transport that knows nothing sent does.
                            let read = cogref_core::parse_response(
                                status,
                                &head,
                                body,
                                SystemTime::now(),
                                &ResponseLimits::default(),
                            );
                            assert_eq!(read.as_ref().err().and_then(Error::request_id), Some(&*id));
                            call.settle(read, now, &mut quota);
                        } else {
                            call.on_response(
                                status,
                                &head,
                                body,
                                now,
                                SystemTime::now(),
                                &mut quota,
                            );
                        }
                        assert!(attempt.number >= 1);
                    }
                    Step::Wait(d) => now += d,
                    Step::Done(result) => break result.expect_err("an error"),
                }
            };
            if let Some(leak) = shown(&error) {
                panic!("{how}, retried {retried}, id {id}: {leak}");
            }
            assert_eq!(error.request_id(), Some("[redacted]"), "{how} {id}");
        }
    }
}
