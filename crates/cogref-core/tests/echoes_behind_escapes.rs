//! Hostile review of commit 5967359: a text shown from a response that shows a secret sent
//! once its escapes are read (up to three levels) is redacted whole; ordinary text is not.

mod common;

use cogref_core::RefreshInput;
use cogref_core::protocol::sent::Sent;
use cogref_core::redact::{EXCERPT_CHARS, REDACTED, excerpt_sent, network_text, redact_sent};
use proptest::prelude::*;
use secrecy::SecretString;

const CLIENT_ID: &str = "1example23456789abcdefghij";

/// What a request carried.
#[derive(Clone)]
struct Carried {
    token: String,
    client_secret: Option<String>,
    device_key: Option<String>,
}

impl Carried {
    fn token(token: &str) -> Self {
        Self {
            token: token.to_owned(),
            client_secret: None,
            device_key: None,
        }
    }

    fn secrets(&self) -> Vec<&str> {
        let mut all = vec![self.token.as_str()];
        all.extend(self.client_secret.as_deref());
        all.extend(self.device_key.as_deref());
        all
    }
}

/// `Display` and `Debug` of the error a refresh gets from a server answering `status`,
/// `headers` and `body`.
fn refused(carried: &Carried, status: u16, headers: &[(&str, &str)], body: &str) -> String {
    let body = body.to_owned();
    let headers: Vec<(String, String)> = headers
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    let client = common::answering_client(move || {
        let mut response = http::Response::builder().status(status);
        for (k, v) in &headers {
            response = response.header(k.as_str(), v.as_str());
        }
        response.body(body.clone().into_bytes()).expect("response")
    });
    let mut input = RefreshInput::builder()
        .refresh_token(carried.token.as_str())
        .client_id(CLIENT_ID);
    if let Some(s) = &carried.client_secret {
        input = input.client_secret(s.as_str());
    }
    if let Some(k) = &carried.device_key {
        input = input.device_key(k.as_str());
    }
    let input = input.build().expect("input");
    let e = client.refresh_blocking(&input).expect_err("refused");
    format!("{e}\n{e:?}")
}

/// Reads one level of escapes as a reader would: JSON's (`\"`, `\\`, `\/`, `\b`, `\f`, `\n`,
/// `\r`, `\t`, `\uXXXX` in either case, surrogate pairs joined), Rust's `\u{…}` (with the
/// rust_more Rust allows when `rust_more`), `\'` and `\0`. Anything else as written.
fn read_once(text: &str, rust_more: bool) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(at) = rest.find('\\') {
        out.push_str(&rest[..at]);
        rest = &rest[at..];
        let b = rest.as_bytes();
        let simple = match b.get(1) {
            Some(b'"') => Some('"'),
            Some(b'\\') => Some('\\'),
            Some(b'/') => Some('/'),
            Some(b'b') => Some('\u{8}'),
            Some(b'f') => Some('\u{c}'),
            Some(b'n') => Some('\n'),
            Some(b'r') => Some('\r'),
            Some(b't') => Some('\t'),
            Some(b'\'') => Some('\''),
            Some(b'0') => Some('\0'),
            _ => None,
        };
        if let Some(c) = simple {
            out.push(c);
            rest = &rest[2..];
            continue;
        }
        if rust_more
            && b.get(1) == Some(&b'x')
            && let Some(byte) = rest.get(2..4).and_then(|h| u8::from_str_radix(h, 16).ok())
            && byte.is_ascii()
        {
            out.push(char::from(byte));
            rest = &rest[4..];
            continue;
        }
        if let Some(r) = rest.strip_prefix("\\u{")
            && let Some(end) = r.find('}')
        {
            let digits: String = r[..end]
                .chars()
                .filter(|&c| !(rust_more && c == '_'))
                .collect();
            if (1..=6).contains(&digits.len())
                && let Some(c) = u32::from_str_radix(&digits, 16)
                    .ok()
                    .and_then(char::from_u32)
            {
                out.push(c);
                rest = &rest[4 + end..];
                continue;
            }
        }
        let four = |s: &str| {
            s.get(2..6)
                .filter(|h| s.starts_with("\\u") && h.bytes().all(|b| b.is_ascii_hexdigit()))
                .and_then(|h| u32::from_str_radix(h, 16).ok())
        };
        if let Some(code) = four(rest) {
            if (0xd800..0xdc00).contains(&code)
                && let Some(low) = rest.get(6..).and_then(four)
                && (0xdc00..0xe000).contains(&low)
            {
                let c = 0x10000 + ((code - 0xd800) << 10) + (low - 0xdc00);
                out.extend(char::from_u32(c));
                rest = &rest[12..];
                continue;
            }
            out.push(char::from_u32(code).unwrap_or(char::REPLACEMENT_CHARACTER));
            rest = &rest[6..];
            continue;
        }
        out.push('\\');
        rest = &rest[1..];
    }
    out.push_str(rest);
    out
}

/// Every reading of `text` from zero to `levels` levels of escapes.
fn readings(text: &str, levels: usize, rust_more: bool) -> Vec<String> {
    let mut all = vec![text.to_owned()];
    for _ in 0..levels {
        let next = read_once(all.last().expect("one"), rust_more);
        all.push(next);
    }
    all
}

/// Whether `shown` holds `secret` whole (8 to 19 bytes) or a 20-byte piece of it.
fn holds_a_piece(shown: &str, secret: &str) -> bool {
    if secret.len() < 8 {
        return false;
    }
    let piece = secret.len().min(20);
    secret
        .as_bytes()
        .windows(piece)
        .any(|p| shown.as_bytes().windows(piece).any(|w| w == p))
}

fn assert_shows_none(shown: &str, carried: &Carried, levels: usize, rust_more: bool) {
    for (level, read) in readings(shown, levels, rust_more).iter().enumerate() {
        for secret in carried.secrets() {
            assert!(
                !holds_a_piece(read, secret),
                "a secret sent shows once {level} level(s) of escapes are read\nsecret {secret}\nshown {shown}\nread  {read}"
            );
        }
    }
}

/// One character written as an escape: style 0 `\u00xx`, 1 `\u00XX`, 2 `\u{xx}`, 3
/// `\u{00XX}`, 4 `\u005c` + `u00xx` (a backslash spelled as an escape builds the escape: two
/// levels), 5 `\/` for `/` only (else as 0).
fn escape_char(c: char, style: usize) -> String {
    let code = u32::from(c);
    match style {
        0 => format!("\\u{code:04x}"),
        1 => format!("\\u{code:04X}"),
        2 => format!("\\u{{{code:x}}}"),
        3 => format!("\\u{{{code:04X}}}"),
        4 => format!("\\u005cu{code:04x}"),
        _ if c == '/' => "\\/".to_owned(),
        _ => format!("\\u{code:04x}"),
    }
}

/// `secret` with the characters `plan` picks written as escapes, each in its own style and
/// escaped again `extra` times (its `\` doubled, or spelled `\u005c`), so that characters
/// need different numbers of readings.
fn spell(secret: &str, plan: &[(bool, usize, usize, bool)]) -> String {
    let mut out = String::new();
    for (i, c) in secret.chars().enumerate() {
        let (escaped, style, extra, as_u005c) = plan[i % plan.len()];
        if !escaped {
            out.push(c);
            continue;
        }
        let mut e = escape_char(c, style);
        for _ in 0..extra {
            e = if as_u005c {
                e.replacen('\\', "\\u005c", 1)
            } else {
                e.replace('\\', "\\\\")
            };
        }
        out.push_str(&e);
    }
    out
}

/// How many readings `spell` needs at most for `plan`.
fn levels_of(plan: &[(bool, usize, usize, bool)]) -> usize {
    plan.iter()
        .filter(|p| p.0)
        .map(|&(_, style, extra, _)| 1 + extra + usize::from(style == 4))
        .max()
        .unwrap_or(0)
}

fn json_string(text: &str) -> String {
    text.replace('\\', "\\\\").replace('"', "\\\"")
}

// ---------------------------------------------------------------------------------------------
// Promise 1: no error shows a secret sent, read with escapes at up to three levels.
// ---------------------------------------------------------------------------------------------

proptest! {
    #![proptest_config(ProptestConfig::with_cases(192))]

    /// Letters only (no non-letter makes the run look like a credential), each character in
    /// its own style and level, in every place a server controls.
    #[test]
    fn a_token_spelled_in_mixed_escape_styles_and_levels_shows_in_no_error(
        token in "[A-Za-z]{20,70}",
        plan in prop::collection::vec((prop::bool::weighted(0.3), 0usize..6, 0usize..2, any::<bool>()), 1..8),
        shape in 0usize..10,
        prefix in 0usize..170,
    ) {
        let spelled = spell(&token, &plan);
        let levels = levels_of(&plan);
        prop_assume!(levels <= 3);
        let carried = Carried::token(&token);
        let filler = "x".repeat(prefix);
        let (status, headers, body): (u16, Vec<(&str, String)>, String) = match shape {
            // HTML: an excerpt, the echo anywhere around the cut at 160 characters.
            0 => (502, vec![], format!("<p>{filler}{spelled}</p>")),
            // Cut JSON: an excerpt.
            1 => (400, vec![], format!(r#"{{"__type":"NotAuthorizedException","message":"{filler} {spelled}"#)),
            // The message, one more level on the wire.
            2 => (400, vec![], format!(r#"{{"__type":"NotAuthorizedException","message":"{}"}}"#, json_string(&format!("token {spelled}")))),
            // The code.
            3 => (400, vec![], format!(r#"{{"__type":"{}","message":"no"}}"#, json_string(&spelled))),
            // The reason code.
            4 => (400, vec![], format!(r#"{{"__type":"NotAuthorizedException","message":"no","reasonCode":"{}"}}"#, json_string(&spelled))),
            // The code in the header.
            5 => (400, vec![("x-amzn-ErrorType", spelled.clone())], String::new()),
            // A success status whose body is not JSON.
            7 => (200, vec![], format!("<p>{filler}{spelled}</p>")),
            // A success whose JSON is cut inside the access token.
            8 => (200, vec![], format!(r#"{{"AuthenticationResult":{{"AccessToken":"{filler}{spelled}"#)),
            // A redirect to a host spelled with the token, and a body.
            9 => (302, vec![("location", format!("https://{spelled}.example/{spelled}"))], format!("moved {spelled}")),
            // A message under "Message", the escapes written as on the wire (one level read
            // by the parser).
            _ => (400, vec![], format!(r#"{{"__type":"NotAuthorizedException","Message":"{spelled}"}}"#)),
        };
        let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let shown = refused(&carried, status, &headers, &body);
        // Three levels of the text cogref holds; `Debug` adds one, read as well.
        assert_shows_none(&shown, &carried, 4, false);
    }

    /// The client secret and the device key too (the builder accepts `[\w+]` and region_uuid):
    /// the escaped form of each anywhere in a message.
    #[test]
    fn a_client_secret_or_device_key_spelled_with_escapes_shows_in_no_error(
        secret in "[A-Za-z0-9_+]{24,64}",
        plan in prop::collection::vec((prop::bool::weighted(0.3), 0usize..5, 0usize..2, any::<bool>()), 1..6),
        which in any::<bool>(),
    ) {
        let device_key = "eu-west-1_0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0".to_owned();
        let carried = Carried {
            token: "short.token".to_owned(),
            client_secret: Some(secret.clone()),
            device_key: Some(device_key.clone()),
        };
        let target = if which { secret } else { device_key };
        let spelled = spell(&target, &plan);
        prop_assume!(levels_of(&plan) <= 3);
        let body = format!(r#"{{"__type":"NotAuthorizedException","message":"{}"}}"#, json_string(&format!("bad {spelled}!")));
        let shown = refused(&carried, 400, &[], &body);
        assert_shows_none(&shown, &carried, 4, false);
    }
}

#[test]
fn an_escaped_echo_straddling_the_excerpt_cut_shows_no_twenty_byte_piece() {
    let token = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
    let carried = Carried::token(token);
    let spelled = spell(token, &[(true, 0, 0, false), (false, 0, 0, false)]);
    for prefix in 100..EXCERPT_CHARS + 5 {
        let body = format!("{}{spelled} tail", "y".repeat(prefix));
        let shown = refused(&carried, 502, &[], &body);
        assert_shows_none(&shown, &carried, 3, false);
    }
}

#[test]
fn escapes_built_from_an_escaped_backslash_and_uppercase_hex_are_read() {
    let token = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJ";
    let carried = Carried::token(token);
    let mut spellings = vec![
        // `\u005c` (a backslash) + `u0061`: two levels.
        token
            .replace('a', "\\u005cu0061")
            .replace('k', "\\u005cu006B"),
        // `\u005C` with the escape's own letters escaped: `\u005c\u0075\u0030\u0030\u0036\u0031`.
        token.replace('a', "\\u005C\\u0075\\u0030\\u0030\\u0036\\u0031"),
        // Braces, uppercase, leading zeros.
        token
            .replace('c', "\\u{000063}")
            .replace('m', "\\u{6D}")
            .replace('x', "\\u{78}"),
    ];
    // Styles mixed across levels: Rust's braced backslash building JSON's escape and back.
    spellings.push(
        token
            .replace('a', "\\u{5c}u0061")
            .replace('k', "\\u005cu{6b}"),
    );
    spellings.push(
        token
            .replace('a', "\\\\u{5c}u{61}")
            .replace('p', "\\u{5C}u{5c}u0070"),
    );
    // Every third letter escaped, then the whole escaped twice more with `\u005c`.
    let mut deep = String::new();
    for (i, c) in token.chars().enumerate() {
        if i % 3 == 0 {
            deep.push_str(&format!("\\u005c\\u005c\\u{:04x}", u32::from(c)));
        } else {
            deep.push(c);
        }
    }
    spellings.push(deep);
    for spelled in spellings {
        for body in [
            format!("<html>{spelled}</html>"),
            format!(
                r#"{{"__type":"NotAuthorizedException","message":"{}"}}"#,
                json_string(&spelled)
            ),
        ] {
            let shown = refused(&carried, 400, &[], &body);
            assert_shows_none(&shown, &carried, 4, false);
        }
    }
}

/// Rust's `\u{…}` allows rust_more between its hex digits: `"\u{6_1}"` is `"a"` (checked
/// below by the compiler itself). A reader of `Debug` output, which is Rust syntax, reads them.
#[test]

fn rust_unicode_escapes_with_underscores_are_read_like_any_other() {
    assert_eq!("\u{6_1}\u{0_0_6_2}\u{63_}", "abc");
    let token = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJ";
    let carried = Carried::token(token);
    let mut spelled = String::new();
    for (i, c) in token.chars().enumerate() {
        if i % 5 == 0 {
            spelled.push_str(&format!("\\u{{{:x}_}}", u32::from(c)));
        } else {
            spelled.push(c);
        }
    }
    let body = format!(
        r#"{{"__type":"NotAuthorizedException","message":"{}"}}"#,
        json_string(&spelled)
    );
    let shown = refused(&carried, 400, &[], &body);
    assert_shows_none(&shown, &carried, 3, true);
}

/// Rust's other escape for an ASCII character, `\x61`, is not among the escapes the promise
/// lists (JSON's and Rust's `\u{…}`), but a reader of Rust syntax (`Debug` is Rust syntax) reads
/// it all the same. In a message the wire form's `\\` joins the run, whose digits make it look
/// like a credential from 20 bytes on; in an excerpt, or for a token of 8 to 19 bytes, nothing
/// catches it.
#[test]
fn rust_byte_escapes_are_read_too() {
    assert_eq!("\x61\x62", "ab");
    for token in ["abcdefghijklmnopqrstuvwxyzABCDEFGHIJ", "abcdefghijkl"] {
        let carried = Carried::token(token);
        let mut spelled = String::new();
        for (i, c) in token.chars().enumerate() {
            if i % 5 == 0 {
                spelled.push_str(&format!("\\x{:02x}", u32::from(c)));
            } else {
                spelled.push(c);
            }
        }
        for body in [
            format!(
                r#"{{"__type":"NotAuthorizedException","message":"{}"}}"#,
                json_string(&spelled)
            ),
            format!("<p>{spelled}</p>"),
        ] {
            let shown = refused(&carried, 400, &[], &body);
            assert_shows_none(&shown, &carried, 3, true);
        }
    }
}

/// A whole token of 8 to 19 bytes spelled with escapes is redacted as a longer one's pieces are.
#[test]
fn a_short_token_spelled_with_escapes_shows_in_no_error() {
    for token in ["abcdefgh", "abcdefghijklmnopqrs"] {
        let carried = Carried::token(token);
        for spelled in [
            token.replacen('a', "\\u0061", 1),
            token.replacen('c', "\\u{63}", 1),
            token.replacen('b', "\\\\u0062", 1),
        ] {
            for body in [
                format!(
                    r#"{{"__type":"NotAuthorizedException","message":"{}"}}"#,
                    json_string(&spelled)
                ),
                format!("<p>{spelled}</p>"),
                format!(
                    r#"{{"__type":"X","message":"m","reasonCode":"{}"}}"#,
                    json_string(&spelled)
                ),
            ] {
                let shown = refused(&carried, 400, &[], &body);
                assert_shows_none(&shown, &carried, 4, false);
            }
        }
    }
}

/// A message escaped three levels in cogref's own text (four in `Debug`) is the deepest the
/// promise covers: read three times it shows the token.
#[test]
fn a_message_escaped_three_levels_deep_is_redacted_whole() {
    let token = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJ";
    let carried = Carried::token(token);
    let plan = [
        (true, 0, 2, false),
        (false, 0, 0, false),
        (false, 0, 0, false),
    ];
    let spelled = spell(token, &plan);
    assert_eq!(levels_of(&plan), 3);
    let body = format!(
        r#"{{"__type":"NotAuthorizedException","message":"{}"}}"#,
        json_string(&format!("see {spelled}"))
    );
    let shown = refused(&carried, 400, &[], &body);
    assert!(shown.contains(REDACTED), "{shown}");
    assert_shows_none(&shown, &carried, 4, false);
}

// ---------------------------------------------------------------------------------------------
// Promise 2: ordinary text is not redacted.
// ---------------------------------------------------------------------------------------------

fn sent_with<'a>(secrets: &'a [SecretString]) -> Sent<'a> {
    Sent::new(CLIENT_ID, secrets.iter().map(Some))
}

#[test]
fn prose_with_escapes_and_no_secret_is_shown_as_before_when_a_secret_was_sent() {
    let secrets = [SecretString::from("abcdefghijklmnopqrstuvwxyzABCDEFGHIJ")];
    let sent = sent_with(&secrets);
    for text in [
        "Refresh Token has been revoked.\nPlease sign in again.",
        "Value \"x\" at 'clientId' failed: caf\u{e9} \\u00e9 \\n \\\" \\\\",
        r"Refresh Token has been revoked.\nPlease sign in again.",
        r#"Value at \"clientId\" failed to satisfy constraint \u0041BC \u{1b}"#,
        r"C:\path\to\file \u{62}\u{63} \\u0064",
        // 19 letters of the token, escaped: under the piece length.
        r"\u0061bcdefghijklmnopqrs",
    ] {
        assert_eq!(
            network_text(text, &sent),
            network_text(text, &Sent::nothing()),
            "{text:?}"
        );
        assert_eq!(
            redact_sent(text, &sent),
            redact_sent(text, &Sent::nothing()),
            "{text:?}"
        );
        assert_eq!(
            excerpt_sent(text.as_bytes(), &sent),
            excerpt_sent(text.as_bytes(), &Sent::nothing()),
            "{text:?}"
        );
    }
}

#[test]
fn a_message_with_escapes_and_no_secret_shows_end_to_end() {
    let carried = Carried::token("abcdefghijklmnopqrstuvwxyzABCDEFGHIJ");
    let body = r#"{"__type":"NotAuthorizedException","message":"Line one\\nLine \"two\" caf\\u00e9 and \\u0041BC"}"#;
    let shown = refused(&carried, 400, &[], body);
    assert!(
        shown.contains(r#"Line one\nLine "two" caf\u00e9 and \u0041BC"#),
        "{shown}"
    );
}

#[test]
fn a_secret_under_eight_bytes_never_causes_redaction_even_spelled_with_escapes() {
    for secret in ["abcdefg", "a", "abc"] {
        let secrets = [SecretString::from(secret)];
        let sent = sent_with(&secrets);
        for text in [
            format!("\\u0061{}", &secret[1..]),
            format!("Value \\\"{secret}\\\" \\u{{61}}bcdefg \\\\u0061bcdefg"),
            "\\u0061bcdefg and abcdefg".to_owned(),
        ] {
            assert_eq!(
                network_text(&text, &sent),
                network_text(&text, &Sent::nothing()),
                "{text:?}"
            );
            assert_eq!(
                redact_sent(&text, &sent),
                redact_sent(&text, &Sent::nothing()),
                "{text:?}"
            );
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Text that holds no piece of the secret at any level of reading is shown as if nothing
    /// had been sent.
    #[test]
    fn text_showing_no_secret_at_any_level_is_kept_as_with_nothing_sent(
        text in r#"([a-z ."']|\\[nrt"/\\]|\\u00[0-9a-f]{2}|\\u\{[0-9a-f]{1,3}\}|\\u005c){0,40}"#,
    ) {
        let secrets = [SecretString::from("qqqqqqqqqqzzzzzzzzzzqqqqq")];
        let sent = sent_with(&secrets);
        let shows = readings(&text, 4, true).iter().any(|r| holds_a_piece(r, "qqqqqqqqqqzzzzzzzzzzqqqqq"));
        prop_assume!(!shows);
        prop_assert_eq!(network_text(&text, &sent), network_text(&text, &Sent::nothing()));
        prop_assert_eq!(redact_sent(&text, &sent), redact_sent(&text, &Sent::nothing()));
    }
}

// ---------------------------------------------------------------------------------------------
// Promise 3: no panic.
// ---------------------------------------------------------------------------------------------

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    #[test]
    fn no_input_panics_the_screen(
        text in r#"(\\|\\u|\\u\{|\\u\{[0-9a-fA-F]{0,8}|\\U|\\x|[0-9a-fA-F{}]|[a-z]|é|😀|\u{0}|\u{1b}|.)*"#,
        bytes in prop::collection::vec(any::<u8>(), 0..300),
    ) {
        let secrets = [
            SecretString::from("abcdefghijklmnopqrstuvwxyz"),
            SecretString::from("pässwörd \\u{1} x"),
            SecretString::from("abcdefgh"),
        ];
        let sent = sent_with(&secrets);
        for s in [&sent, &Sent::nothing()] {
            let _ = network_text(&text, s);
            let _ = redact_sent(&text, s);
            let _ = excerpt_sent(text.as_bytes(), s);
            let _ = excerpt_sent(&bytes, s);
            let lossy = String::from_utf8_lossy(&bytes);
            let _ = network_text(&lossy, s);
            let _ = redact_sent(&lossy, s);
        }
    }
}

#[test]
fn cut_escapes_and_non_ascii_after_a_backslash_do_not_panic() {
    let secrets = [SecretString::from("abcdefghijklmnopqrstuvwxyz")];
    let sent = sent_with(&secrets);
    for text in [
        "\\",
        "\\\\",
        "\\u",
        "\\u{",
        "\\u{}",
        "\\u{6",
        "\\u{61",
        "\\u{1234567}",
        "\\u{110000}",
        "\\u{d800}",
        "\\ud800",
        "\\ud83d\\ude00",
        "\\u00",
        "\\u006",
        "\\é",
        "\\u{é}",
        "\\u00é1",
        "\\u{6é}",
        "abc\\",
        "\\u005c",
        "\\u005c\\u005c\\u005c\\u005c",
        "\\u{5c}\\u{5c}u{",
        "\\U0061",
        "\\😀",
    ] {
        let _ = network_text(text, &sent);
        let _ = redact_sent(text, &sent);
        let _ = excerpt_sent(text.as_bytes(), &sent);
        let long = format!("{}{text}", "a".repeat(EXCERPT_CHARS - 2));
        let _ = excerpt_sent(long.as_bytes(), &sent);
    }
}

/// C's and Python's `\U0000XXXX` (uppercase, eight digits) and a lenient reader's `\U0061`:
/// outside the escapes the promise lists, looked at because the brief names uppercase `\U`.
#[test]
fn uppercase_u_escapes_of_other_languages_are_read_too() {
    let token = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJ";
    let carried = Carried::token(token);
    for (eight, width) in [(true, 8), (false, 4)] {
        let mut spelled = String::new();
        for (i, c) in token.chars().enumerate() {
            if i % 5 == 0 {
                spelled.push_str(&format!("\\U{:0width$x}", u32::from(c)));
            } else {
                spelled.push(c);
            }
        }
        let shown = refused(&carried, 502, &[], &format!("<p>{spelled}</p>"));
        let mut read = String::new();
        let mut rest = shown.as_str();
        while let Some(at) = rest.find("\\U") {
            read.push_str(&rest[..at]);
            match rest
                .get(at + 2..at + 2 + width)
                .and_then(|h| u32::from_str_radix(h, 16).ok())
                .and_then(char::from_u32)
            {
                Some(c) => {
                    read.push(c);
                    rest = &rest[at + 2 + width..];
                }
                None => {
                    read.push_str("\\U");
                    rest = &rest[at + 2..];
                }
            }
        }
        read.push_str(rest);
        assert!(
            !holds_a_piece(&read, token),
            "eight digits {eight}: {token} shows in {shown}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Promise 4: cost.
// ---------------------------------------------------------------------------------------------

// ---------------------------------------------------------------------------------------------
// Secrets given to `Sent::new` (public, "secrets of any characters"): not reachable through the
// input builders, whose alphabets are ASCII.
// ---------------------------------------------------------------------------------------------

/// JSON spells a character beyond the BMP as a surrogate pair; a JSON reader joins the pair.
/// `unescape` reads each half as U+FFFD, and the whole-text screen of `Sent::new` looks only for
/// the lowercase spelling serde_json would write, so the uppercase one shows a short secret.
#[test]

fn a_secret_with_an_astral_character_spelled_as_a_surrogate_pair_is_read() {
    let secrets = [SecretString::from("a😀bcdefg")];
    let sent = sent_with(&secrets);
    for text in [
        r"key a\uD83D\uDE00bcdefg",
        r"key a\ud83d\uDE00bcdefg",
        r"key a\\uD83D\\uDE00bcdefg",
    ] {
        for shown in [
            redact_sent(text, &sent),
            network_text(text, &sent),
            excerpt_sent(text.as_bytes(), &sent).expect("excerpt"),
        ] {
            let readings = readings(&shown, 3, false);
            assert!(
                !readings.iter().any(|r| r.contains("a😀bcdefg")),
                "{text} shown as {shown}"
            );
        }
    }
}

/// The same secret spelled with Rust's `\u{1f600}` or a lowercase pair is redacted: only the
/// uppercase pair above gets through.
#[test]
fn a_secret_with_an_astral_character_spelled_in_the_forms_cogref_knows_is_redacted() {
    let secrets = [SecretString::from("a😀bcdefg")];
    let sent = sent_with(&secrets);
    for text in [
        r"key a\u{1f600}bcdefg",
        r"key a\ud83d\ude00bcdefg",
        "key a😀bcdefg",
    ] {
        assert_eq!(redact_sent(text, &sent), REDACTED, "{text}");
        assert_eq!(
            excerpt_sent(text.as_bytes(), &sent).as_deref(),
            Some(REDACTED),
            "{text}"
        );
    }
}
