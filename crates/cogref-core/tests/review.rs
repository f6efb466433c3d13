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
