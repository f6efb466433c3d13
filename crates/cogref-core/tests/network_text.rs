//! Text a server controls reaches messages, `Debug` and spans only when it cannot carry a
//! secret or a terminal escape: request ids in their shape, redirect hosts in theirs, bodies
//! redacted even when a token is spelled with JSON escapes.

mod common;
use common::read_escapes;

use std::time::{Duration, SystemTime};

use cogref_core::redact::{EXCERPT_CHARS, REDACTED, excerpt, redact};
use cogref_core::{Error, RefreshInput, ResponseLimits, parse_response};
use http::{HeaderMap, HeaderValue, StatusCode};
use proptest::prelude::*;

fn now() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000)
}

fn headers(pairs: &[(&'static str, HeaderValue)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (k, v) in pairs {
        map.insert(*k, v.clone());
    }
    map
}

fn error_with_request_id(id: HeaderValue) -> Error {
    parse_response(
        StatusCode::BAD_REQUEST,
        &headers(&[("x-amzn-requestid", id)]),
        br#"{"__type":"NotAuthorizedException","message":"Refresh Token has been revoked"}"#,
        now(),
        &ResponseLimits::default(),
    )
    .expect_err("an error")
}

/// Values a hostile or broken server could send as a request id.
fn hostile_ids() -> Vec<HeaderValue> {
    vec![
        HeaderValue::from_static("eyJraWQiOiJhIn0.eyJzdWIiOiIxIn0.c2lnbmF0dXJl"),
        HeaderValue::from_static("CANARY_client_secret_0123456789"),
        HeaderValue::from_static("abc def"),
        HeaderValue::from_static("<script>alert(1)</script>"),
        HeaderValue::from_str(&"a".repeat(65)).expect("header"),
        HeaderValue::from_bytes(b"id\xff\xfe").expect("obs-text header"),
        HeaderValue::from_bytes(b"id\x1b[31mred")
            .unwrap_or_else(|_| HeaderValue::from_static("id;red")),
        HeaderValue::from_static(""),
    ]
}

#[test]
fn a_request_id_not_shaped_like_one_is_redacted_in_display_and_debug() {
    for id in hostile_ids() {
        let raw = String::from_utf8_lossy(id.as_bytes()).into_owned();
        let e = error_with_request_id(id);
        assert_eq!(e.request_id(), Some(REDACTED), "{raw:?}");
        for shown in [e.to_string(), format!("{e:?}")] {
            assert!(shown.contains(REDACTED), "{shown}");
            if raw.len() > 3 {
                assert!(!shown.contains(&raw), "{raw:?} shown: {shown}");
            }
        }
    }
    let ok = parse_response(
        StatusCode::OK,
        &headers(&[(
            "x-amz-request-id",
            HeaderValue::from_static("no.dots.in.ids"),
        )]),
        br#"{"AuthenticationResult":{"AccessToken":"a.b.c"}}"#,
        now(),
        &ResponseLimits::default(),
    )
    .expect("success");
    assert_eq!(ok.request_id.as_deref(), Some(REDACTED));
}

#[test]
fn request_ids_in_their_shape_are_shown_as_they_are() {
    for id in [
        "0b9a3c5e-1111-2222-3333-444455556666",
        "VTldbBcWjzTxkz67k1N5fQVsEXpfYTRqeJeLly4Hy2KU2jGTOkE3",
        "x",
    ] {
        let e = error_with_request_id(HeaderValue::from_static(id));
        assert_eq!(e.request_id(), Some(id));
        assert!(e.to_string().contains(&format!("request id {id}")), "{e}");
    }
}

fn redirect_to(location: &str) -> String {
    parse_response(
        StatusCode::TEMPORARY_REDIRECT,
        &headers(&[("location", HeaderValue::from_str(location).expect("header"))]),
        b"",
        now(),
        &ResponseLimits::default(),
    )
    .expect_err("a redirect is an error")
    .to_string()
}

#[test]
fn a_redirect_names_its_host_only_when_it_is_a_host_name() {
    assert!(redirect_to("https://elsewhere.example/x").contains("to host elsewhere.example"));
    assert!(redirect_to("http://127.0.0.1:8080/").contains("to host 127.0.0.1"));
    assert!(redirect_to("http://[::1]:8080/").contains("to host [::1]"));
    for hostile in [
        "https://CANARY_secret_token_0123456789abcdef.example/",
        &format!("https://{}.example/", "a".repeat(64)),
        &format!("https://{}/", "a.".repeat(130)),
        "https://a%1b%5b31m.example/",
    ] {
        let shown = redirect_to(hostile);
        assert!(
            !shown.contains("CANARY") && !shown.contains("aaaa") && !shown.contains('%'),
            "{hostile}: {shown}"
        );
        if shown.contains("to host") {
            assert!(shown.contains("to host [redacted]"), "{shown}");
        }
    }
}

/// `token` with `escape` written after every `every` characters.
fn split(token: &str, every: usize, escape: &str) -> String {
    let chars: Vec<char> = token.chars().collect();
    chars
        .chunks(every)
        .map(|c| c.iter().collect::<String>())
        .collect::<Vec<_>>()
        .join(escape)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn a_token_spelled_with_json_escapes_every_1_to_19_characters_is_redacted_whole(
        token in "[A-Za-z0-9_-]{6,40}\\.[A-Za-z0-9_-]{6,60}\\.[A-Za-z0-9_-]{6,40}",
        every in 1usize..=19,
        escape in prop::sample::select(vec![
            r"\/", r"\n", r"\u002e", r"\u0041", r"\\", r"\t", r"\r\n", r#"\""#, r"\u002E",
        ]),
    ) {
        let escaped = split(&token, every, escape);
        // In any text.
        prop_assert_eq!(
            redact(&format!("token {escaped} rejected")),
            format!("token {REDACTED} rejected")
        );
        // In an excerpt of a body, wherever the excerpt's cut falls.
        let prefix = r#"{"__type":"X","message":"token "#;
        let suffix = r#"" }"#;
        let body = format!("{prefix}{escaped}{suffix}");
        let shown = excerpt(body.as_bytes()).expect("non-empty");
        let cut = EXCERPT_CHARS;
        let expected = if body.len() <= cut {
            format!("{prefix}{REDACTED}{suffix}")
        } else if cut <= prefix.len() + escaped.len() {
            format!("{prefix}{REDACTED}…")
        } else {
            format!("{prefix}{REDACTED}{}…", &suffix[..cut - prefix.len() - escaped.len()])
        };
        prop_assert_eq!(shown, expected);
    }
}

#[test]
fn prose_with_json_escapes_is_kept() {
    for text in [
        r"Refresh Token has been revoked.\nPlease sign in again.",
        r#"Value at \"clientId\" failed to satisfy constraint"#,
        r"NotAuthorizedException\n",
    ] {
        assert_eq!(redact(text), text);
    }
}

/// `token` with every `every`-th character written as an escape in one of the notations a
/// reader reads (JSON's `\u0061` and `\u0041`, Rust's `\u{61}` and `\x61`, C's `\U00000061`,
/// HTML's `&#97;` and `&#x61;`, percent-encoding's `%61`), then `levels - 1` more times escaped
/// in the same notation (`\\u0061`, `&amp;#97;`, `%2561`).
fn spelled_with_escapes(token: &str, every: usize, style: usize, levels: usize) -> String {
    let mut text = String::new();
    for (i, c) in token.chars().enumerate() {
        if i % every == 0 {
            let code = u32::from(c);
            text.push_str(&match style {
                0 => format!("\\u{code:04x}"),
                1 => format!("\\u{code:04X}"),
                2 => format!("\\u{{{code:x}}}"),
                3 => format!("\\x{code:02x}"),
                4 => format!("\\U{code:08x}"),
                5 => format!("&#{code};"),
                6 => format!("&#x{code:x};"),
                _ => format!("%{code:02X}"),
            });
        } else {
            text.push(c);
        }
    }
    for _ in 1..levels {
        text = match style {
            5 | 6 => text.replace('&', "&amp;"),
            7 => text.replace('%', "%25"),
            _ => text.replace('\\', "\\\\"),
        };
    }
    text
}

/// Whether `shown` holds `secret` whole or a 20-byte piece of it.
fn holds_a_piece(shown: &str, secret: &str) -> bool {
    let piece = secret.len().min(20);
    secret
        .as_bytes()
        .windows(piece)
        .any(|p| shown.as_bytes().windows(piece).any(|w| w == p))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn a_secret_sent_spelled_with_escapes_of_its_own_letters_shows_in_no_error_in_any_notation(
        token in "[A-Za-z]{8,80}",
        every in 1usize..=9,
        style in 0usize..8,
        levels in 1usize..=2,
        shape in 0usize..3,
    ) {
        // Letters only: no non-letter makes the run look like a credential; only the echo rule
        // can catch it, and only once the escapes are read.
        let escaped = spelled_with_escapes(&token, every, style, levels);
        let body = match shape {
            // A body the parser cannot read: shown as an excerpt.
            0 => format!("<html><p>refused {escaped}</p></html>"),
            // JSON cut short: an excerpt too.
            1 => format!(r#"{{"__type":"NotAuthorizedException","message":"token {escaped}"#),
            // A message: its JSON's escapes are read by the parser, the rest are shown.
            _ => format!(
                r#"{{"__type":"NotAuthorizedException","message":"token {}"}}"#,
                escaped.replace('\\', "\\\\")
            ),
        };
        let client = common::answering_client(move || {
            http::Response::builder()
                .status(400)
                .body(body.clone().into_bytes())
                .expect("response")
        });
        let input = RefreshInput::builder()
            .refresh_token(token.as_str())
            .client_id("1example23456789abcdefghij")
            .build()
            .expect("input");
        let e = client.refresh_blocking(&input).expect_err("refused");
        let shown = format!("{e} {e:?}");
        let read = read_escapes(&shown, 3);
        prop_assert!(!holds_a_piece(&read, &token), "{token} shows in {shown}");
    }
}
