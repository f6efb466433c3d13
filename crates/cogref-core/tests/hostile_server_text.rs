//! Review of issue 12 (logs and redaction): text a hostile server controls, tried against the
//! promises of `protocol/redact.rs` and the error `Display`s. Each test names the rule it checks.

use std::time::{Duration, SystemTime};

use cogref_core::redact::{EXCERPT_CHARS, excerpt};
use cogref_core::{ResponseLimits, parse_response};
use http::{HeaderMap, StatusCode};

const TOKEN: &str = "eyJraWQiOiJSZXZpZXcifQ.eyJzdWIiOiJDQU5BUllyZXZpZXcxMiJ9.U2lnbmF0dXJlQ2FuYXJ5";

fn now() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000)
}

/// The `Display` of the error a response with `status` and `body` gives.
fn shown(status: u16, body: &str) -> String {
    parse_response(
        StatusCode::from_u16(status).expect("status"),
        &HeaderMap::new(),
        body.as_bytes(),
        now(),
        &ResponseLimits::default(),
    )
    .expect_err("an error response")
    .to_string()
}

/// `text` with every character outside the token alphabet removed: what a reader recovers by
/// deleting separators.
fn token_chars(text: &str) -> String {
    text.chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '=' | '.'))
        .collect()
}

fn split(token: &str, every: usize, separator: &str) -> String {
    token
        .as_bytes()
        .chunks(every)
        .map(|c| std::str::from_utf8(c).expect("ascii"))
        .collect::<Vec<_>>()
        .join(separator)
}

/// The service message is JSON-decoded before `redact` sees it, so a JSON escape such as `\n`
/// is a real newline by then, and a newline (or a quote, or a backslash) is not part of a run:
/// the token survives in pieces shorter than the threshold and is printed whole across lines.
#[test]
fn a_token_split_by_json_escapes_in_a_service_message_is_redacted_whole() {
    let mut leaks = Vec::new();
    for escape in [r"\n", r"\t", r"\r\n", r#"\""#, r"\\"] {
        for every in 1..=19 {
            let message = format!("token {} rejected", split(TOKEN, every, escape));
            let body = format!(r#"{{"__type":"NotAuthorizedException","message":"{message}"}}"#);
            let text = shown(400, &body);
            if token_chars(&text).contains(TOKEN) {
                leaks.push(format!("{escape} every {every}: {text:?}"));
            }
        }
    }
    assert!(
        leaks.is_empty(),
        "{} leak(s), first: {}",
        leaks.len(),
        leaks[0]
    );
}

/// Invisible characters (zero-width space, soft hyphen, word joiner) leave the token readable
/// and copyable on screen, yet cut it into runs below the threshold.
#[test]
fn a_token_split_by_invisible_characters_is_redacted_whole() {
    let mut leaks = Vec::new();
    for invisible in ['\u{200B}', '\u{00AD}', '\u{2060}', '\u{200D}'] {
        for every in [4, 10, 19] {
            let spelled = split(TOKEN, every, &invisible.to_string());
            // In a service message and in a body excerpt (a proxy's page).
            let message = serde_json::json!({
                "__type": "NotAuthorizedException",
                "message": format!("token {spelled} rejected"),
            })
            .to_string();
            let page = format!("<html>upstream said {spelled}</html>");
            for text in [shown(400, &message), shown(502, &page)] {
                if token_chars(&text).contains(TOKEN) {
                    leaks.push(format!(
                        "U+{:04X} every {every}: {text:?}",
                        invisible as u32
                    ));
                }
            }
        }
    }
    assert!(
        leaks.is_empty(),
        "{} leak(s), first: {}",
        leaks.len(),
        leaks[0]
    );
}

/// What may not reach a terminal from the network: C0/C1 controls (escape sequences, BEL) and
/// the bidirectional controls that reorder a line.
fn unsafe_for_a_terminal(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}'
        )
}

/// The code, the message and the reason code are decoded JSON strings; a body excerpt escapes
/// C0/C1 controls but keeps bidirectional controls. All of them reach `Display`, which
/// applications and the `cogref` CLI print to terminals and logs.
#[test]
fn text_from_the_network_reaches_display_without_control_or_bidi_characters() {
    let cases = [
        (
            400,
            r#"{"__type":"NotAuthorizedException","message":"bad \u001b]0;owned\u0007 \u001b[2J token"}"#,
        ),
        (
            400,
            r#"{"__type":"NotAuthorized\u001b[31mException","message":"x"}"#,
        ),
        (
            400,
            r#"{"__type":"InvalidParameterException","message":"x","reasonCode":"R\u009b31m"}"#,
        ),
        (
            400,
            "{\"__type\":\"NotAuthorizedException\",\"message\":\"Refresh Token has been \u{202E}dekover\u{202C}\"}",
        ),
        (502, "<html>upstream \u{202E}error\u{2066} page</html>"),
    ];
    for (status, body) in cases {
        let text = shown(status, body);
        assert!(
            !text.chars().any(unsafe_for_a_terminal),
            "{body}\nshown as {text:?}"
        );
    }
}

/// The excerpt is cut at [`EXCERPT_CHARS`] characters of *escaped* text, but whether it was cut
/// (and so whether the trailing run is the head of a longer token, and whether `…` is added)
/// is decided on the raw text's length. Escapes inflate the text, so a token right after some
/// control characters is cut below the threshold and shown, and the excerpt claims to be whole.
#[test]
fn an_excerpt_cut_after_escaped_control_characters_still_redacts_the_cut_token() {
    let secret = "Sk9ZcNq2V7bX1mWc4RtY8uHp3LdGf6JaEe0QoTsZ";
    let body = format!("{}token {secret}", "\r\n".repeat(35));
    assert!(body.chars().count() < EXCERPT_CHARS);
    let shown = excerpt(body.as_bytes()).expect("an excerpt");
    assert!(
        !shown.contains(&secret[..8]),
        "the head of the token is shown: {shown:?}"
    );
    assert!(shown.ends_with('…'), "a cut excerpt says so: {shown:?}");
}

/// A client secret in the format Cognito issues: 52 characters of `[a-z0-9]`.
const CLIENT_SECRET: &str = "1q2w3e4r5t6y7u8i9o0pasdfghjklzxcvbnm1q2w3e4r5t6y7u8i";

/// The error a call gets from a server answering `status` with `headers` (no body but an
/// error code), with [`CLIENT_SECRET`] in the request.
fn call_error(status: u16, headers: &[(&'static str, String)]) -> cogref_core::CallError {
    let headers = headers.to_vec();
    refused_with_client_secret(move |_, _| {
        let mut response = http::Response::builder().status(status);
        for (k, v) in &headers {
            response = response.header(*k, v.as_str());
        }
        Ok(response
            .body(br#"{"__type":"NotAuthorizedException","message":"Incorrect"}"#.to_vec())
            .expect("response"))
    })
}

/// The error of a refresh carrying [`CLIENT_SECRET`], made through `transport`.
fn refused_with_client_secret(
    transport: impl Fn(
        cogref_core::driver::HttpRequest,
        cogref_core::SendOptions,
    ) -> Result<cogref_core::driver::HttpResponse, cogref_core::Error>
    + Send
    + Sync,
) -> cogref_core::CallError {
    use cogref_core::driver::ManualEnvironment;
    use cogref_core::{CallConfig, Client, EndpointConfig, RefreshInput};
    let client = Client::new(
        transport,
        ManualEnvironment::new(std::time::Instant::now(), now()),
        EndpointConfig::new()
            .region("eu-west-1")
            .resolve()
            .expect("endpoint"),
        CallConfig::default(),
    );
    let input = RefreshInput::builder()
        .refresh_token("eyJh.eyJi.c2ln")
        .client_id("client")
        .client_secret(CLIENT_SECRET)
        .build()
        .expect("input");
    client.refresh_blocking(&input).expect_err("refused")
}

/// The request-id rule (1 to 64 characters of `[A-Za-z0-9-]`) and the redirect-host rule (DNS
/// labels of letters, digits and `-`) both admit a client secret in Cognito's own format, so a
/// server that echoes the secret there gets it into `Display`, `Debug` and the attempt span.
/// Cognito's request ids are UUIDs; and the client knows what it sent.
#[test]
fn a_request_id_or_redirect_host_spelling_the_client_secret_is_not_shown() {
    for (status, headers) in [
        (400, vec![("x-amzn-requestid", CLIENT_SECRET.to_owned())]),
        (
            307,
            vec![("location", format!("https://{CLIENT_SECRET}.example/"))],
        ),
    ] {
        let e = call_error(status, &headers);
        for shown in [e.to_string(), format!("{e:?}")] {
            assert!(
                !shown.contains(CLIENT_SECRET),
                "HTTP {status}: the client secret is shown: {shown}"
            );
        }
    }
}

/// A transport builds some errors from a response head alone (a body over the limit), with
/// the request id read by its shape only, which a client secret in Cognito's format has: the
/// call still hides it (the response's own errors are read knowing what was sent; these are
/// vetted when the call settles them).
#[test]
fn a_request_id_spelling_the_client_secret_in_a_transports_error_is_not_shown() {
    let e = refused_with_client_secret(|_, _| {
        let mut head = HeaderMap::new();
        head.insert(
            "x-amzn-requestid",
            http::HeaderValue::from_static(CLIENT_SECRET),
        );
        let e = cogref_core::ResponseError::body_too_large(64, StatusCode::OK, &head);
        assert_eq!(e.request_id.as_deref(), Some(CLIENT_SECRET), "shape only");
        Err(e.into())
    });
    assert_eq!(e.request_id(), Some("[redacted]"));
    for shown in [e.to_string(), format!("{e:?}")] {
        assert!(
            !shown.contains(CLIENT_SECRET),
            "the client secret is shown: {shown}"
        );
    }
}
