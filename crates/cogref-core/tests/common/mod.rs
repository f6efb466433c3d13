//! Shared test data: obvious canary secrets that match the model's patterns.
#![allow(dead_code, unreachable_pub)]

use cogref_core::http::Request;

/// A refresh token: long enough and mixed enough to look like a real one.
pub const REFRESH: &str = "CANARY-refresh-token.0123456789abcdef.REFRESH_SECRET_VALUE";
/// An access token.
pub const ACCESS: &str = "CANARY-access-token.0123456789abcdef.ACCESS_SECRET_VALUE";
/// An ID token.
pub const ID: &str = "CANARY-id-token.0123456789abcdef.ID_SECRET_VALUE";
/// A rotated refresh token.
pub const ROTATED: &str = "CANARY-rotated-token.0123456789abcdef.ROTATED_SECRET";
/// A client secret (24..=64 of `[\w+]`).
pub const CLIENT_SECRET: &str = "CANARY_client_secret_0123456789";
/// A device key (`[\w-]+_[0-9a-f-]+`).
pub const DEVICE_KEY: &str = "CANARY-device-key_0123abcd-ef45-6789";
/// Not a secret.
pub const CLIENT_ID: &str = "1example23456789abcdefghij";

/// Every canary.
pub const CANARIES: [&str; 6] = [REFRESH, ACCESS, ID, ROTATED, CLIENT_SECRET, DEVICE_KEY];

/// Fails if `text` contains any canary, or a long enough piece of one to identify it.
pub fn assert_no_canary(text: &str) {
    for canary in CANARIES {
        assert!(!text.contains(canary), "a secret leaked: {text}");
    }
    for marker in [
        "SECRET_VALUE",
        "ROTATED_SECRET",
        "client_secret_0123",
        "device-key_0123",
    ] {
        assert!(!text.contains(marker), "part of a secret leaked: {text}");
    }
}

/// Renders a request as text for snapshots: request line, sorted headers, body.
pub fn render(request: &Request<Vec<u8>>) -> String {
    let mut headers: Vec<(String, String)> = request
        .headers()
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_owned(),
                v.to_str().unwrap_or("<binary>").to_owned(),
            )
        })
        .collect();
    headers.sort();
    let mut out = format!("{} {}\n", request.method(), request.uri());
    for (k, v) in headers {
        out.push_str(&format!("{k}: {v}\n"));
    }
    out.push('\n');
    out.push_str(&String::from_utf8_lossy(request.body()));
    out
}

/// A writer a `tracing` fmt subscriber appends to, readable afterwards (`.0`).
#[derive(Clone, Default)]
pub struct Captured(pub std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl Captured {
    /// A plain-text fmt subscriber of everything up to `level`, span closes included (their
    /// fields), writing into a new capture.
    pub fn subscriber(level: tracing::Level) -> (Self, impl tracing::Subscriber + Send + Sync) {
        let captured = Self::default();
        let writer = captured.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(level)
            .with_ansi(false)
            .with_span_events(tracing_subscriber::fmt::format::FmtSpan::CLOSE)
            .with_writer(move || writer.clone())
            .finish();
        (captured, subscriber)
    }
}

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("buffer").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// `text` with its escapes read, `levels` times over, as a reader of an error message could
/// read them back: JSON's and Rust's backslash escapes (`\uXXXX`, `\u{…}`, `\xHH`, `\n`, `\\`,
/// …), C's `\UXXXXXXXX`, HTML's `&#97;`, `&#x61;` and `&amp;`, percent-encoding's `%61`. An
/// oracle for the tests, written apart from the crate's own reader.
pub fn read_escapes(text: &str, levels: usize) -> String {
    fn number(digits: &str, radix: u32) -> Option<u32> {
        u32::from_str_radix(digits, radix).ok()
    }
    // Each notation: its prefix, how many digits (or up to which end), their radix.
    let notations: [(&str, Option<usize>, &str, u32); 8] = [
        ("\\u{", None, "}", 16),
        ("\\u", Some(4), "", 16),
        ("\\x", Some(2), "", 16),
        ("\\U", Some(8), "", 16),
        ("&#x", None, ";", 16),
        ("&#", None, ";", 10),
        ("%", Some(2), "", 16),
        ("&amp;", Some(0), "", 0),
    ];
    let mut text = text.to_owned();
    for _ in 0..levels {
        let mut out = String::new();
        let mut rest = text.as_str();
        'scan: while let Some(at) = rest.find(['\\', '&', '%']) {
            out.push_str(&rest[..at]);
            rest = &rest[at..];
            for (prefix, width, end, radix) in notations {
                let Some(after) = rest.strip_prefix(prefix) else {
                    continue;
                };
                let (digits, len) = match (width, end) {
                    (Some(0), _) => {
                        out.push('&');
                        rest = after;
                        continue 'scan;
                    }
                    (Some(w), _) => (after.get(..w), prefix.len() + w),
                    (None, end) => match after.find(end) {
                        Some(e) => (Some(&after[..e]), prefix.len() + e + end.len()),
                        None => (None, 0),
                    },
                };
                if let Some(c) = digits
                    .and_then(|d| number(d, radix))
                    .and_then(char::from_u32)
                {
                    out.push(c);
                    rest = &rest[len..];
                    continue 'scan;
                }
            }
            let simple = rest
                .strip_prefix('\\')
                .and_then(|r| r.chars().next())
                .and_then(|c| {
                    Some(match c {
                        '\\' | '"' | '/' | '\'' => c,
                        'n' => '\n',
                        't' => '\t',
                        'r' => '\r',
                        'b' => '\u{8}',
                        'f' => '\u{c}',
                        '0' => '\0',
                        _ => return None,
                    })
                });
            if let Some(c) = simple {
                out.push(c);
                rest = &rest[2..];
            } else {
                let first = rest.chars().next().expect("a char");
                out.push(first);
                rest = &rest[first.len_utf8()..];
            }
        }
        out.push_str(rest);
        text = out;
    }
    text
}

/// A client for `eu-west-1` whose every request is answered by `answer()` (one attempt, a
/// manual clock): for tests of what an error shows.
pub fn answering_client(
    answer: impl Fn() -> cogref_core::http::Response<Vec<u8>> + Send + Sync,
) -> cogref_core::Client<
    impl Fn(
        cogref_core::driver::HttpRequest,
        cogref_core::SendOptions,
    ) -> Result<cogref_core::driver::HttpResponse, cogref_core::Error>
    + Send
    + Sync,
    cogref_core::driver::ManualEnvironment,
> {
    cogref_core::Client::new(
        move |_: cogref_core::driver::HttpRequest, _: cogref_core::SendOptions| Ok(answer()),
        cogref_core::driver::ManualEnvironment::new(
            std::time::Instant::now(),
            std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_800_000_000),
        ),
        cogref_core::EndpointConfig::new()
            .region("eu-west-1")
            .resolve()
            .expect("endpoint"),
        cogref_core::CallConfig {
            retry: cogref_core::RetryConfig {
                max_attempts: 1,
                ..cogref_core::RetryConfig::default()
            },
            ..cogref_core::CallConfig::default()
        },
    )
}

/// Polls a future whose pieces are all ready at once (scripted transports, a manual clock) to
/// its end. Bounded: a driver that never sleeps or never reads the clock again would spin
/// forever inside it, and fails the test instead.
pub fn block_on<F: std::future::Future>(f: F) -> F::Output {
    let mut f = std::pin::pin!(f);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    for _ in 0..100_000 {
        if let std::task::Poll::Ready(out) = f.as_mut().poll(&mut cx) {
            return out;
        }
    }
    panic!("the call never ended: the simulated clock did not move");
}

/// Attempt `n` of 3 of the call whose invocation id the request snapshots show.
pub fn snapshot_attempt(n: u32) -> cogref_core::AttemptInfo {
    cogref_core::AttemptInfo {
        invocation_id: cogref_core::InvocationId::from_random_bytes(*b"cogref-snapshot!"),
        attempt: n,
        max_attempts: 3,
    }
}

/// The smallest valid input: a short token and client id, for driver tests that look at
/// attempts, clocks and outcomes rather than at the body.
pub fn input() -> cogref_core::RefreshInput {
    cogref_core::RefreshInput::builder()
        .refresh_token("canary.refresh.token")
        .client_id("client")
        .build()
        .expect("valid")
}
