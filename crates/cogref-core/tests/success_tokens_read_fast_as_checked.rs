//! Review 23: a 2xx body's tokens are read fast (raw bytes of a string without escapes), and
//! the body read again the checked way (serde_json's `str`) when that reading fails. The
//! promise under test: for every body, the public outcome is exactly what the checked reading
//! alone gave before the change (tokens, error kind, detail text, salvaged refresh token), no
//! secret and no internal message ("read again, checked") ever reaches an error's text, and no
//! input panics.
//!
//! The reference here is an oracle written from the checked reading alone: the same
//! last-key-wins shapes with `String` tokens, parsed by serde_json from the slice, followed by
//! the same checks (AuthenticationResult, AccessToken, ExpiresIn). This file also passes on the
//! commit before the change (2ee91ab^), so the oracle is the old behaviour; a few outcomes that
//! the oracle does not model (the salvaged refresh token, the excerpt of a body without a
//! result) are spelt out as they were before the change.

use std::borrow::Cow;
use std::time::{Duration, SystemTime};

use cogref_core::http::{HeaderMap, StatusCode};
use cogref_core::response::dispatch_sent;
use cogref_core::secrecy::ExposeSecret;
use cogref_core::{
    Error, GetTokensFromRefreshToken, Operation, RefreshInput, RefreshOutput, ResponseErrorKind,
    ResponseLimits, parse_response,
};
use proptest::prelude::*;

fn now() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000)
}

fn parse_with(body: &[u8], limits: &ResponseLimits) -> Result<RefreshOutput, Error> {
    parse_response(StatusCode::OK, &HeaderMap::new(), body, now(), limits)
}

fn parse(body: &[u8]) -> Result<RefreshOutput, Error> {
    parse_with(body, &ResponseLimits::default())
}

/// An outcome with every token shown. `full` adds what the oracle does not model: the refresh
/// token salvaged from a failed body, and the excerpt of a body without AuthenticationResult.
fn shown(result: &Result<RefreshOutput, Error>, full: bool) -> String {
    let expose = |t: &Option<cogref_core::secrecy::SecretString>| {
        t.as_ref().map(|t| t.expose_secret().to_owned())
    };
    match result {
        Ok(out) => {
            assert_eq!(out.expires_at, now() + out.expires_in, "expires_at");
            format!(
                "ok access={:?} id={:?} refresh={:?} type={:?} expires_in={} device={:?}",
                out.access_token.expose_secret(),
                expose(&out.id_token),
                expose(&out.refresh_token),
                out.token_type,
                out.expires_in.as_secs(),
                out.new_device
                    .as_ref()
                    .map(|d| (expose(&d.device_key), d.device_group_key.clone())),
            )
        }
        Err(Error::Response(e)) => {
            assert_eq!(e.status, Some(StatusCode::OK));
            let detail = if !full && e.kind == ResponseErrorKind::MissingAuthenticationResult {
                None
            } else {
                e.detail.clone()
            };
            let mut text = format!("err {:?} {:?}", e.kind, detail);
            if full {
                text += &format!(" rotated={:?}", expose(&e.rotated_refresh_token));
            }
            text
        }
        Err(other) => format!("other error {other:?}"),
    }
}

/// The checked reading alone, as the code before the change did it.
mod oracle {
    use super::*;
    use serde::Deserialize;

    struct Body {
        result: Option<AuthResult>,
    }
    struct AuthResult {
        access: Option<String>,
        expires_in: Option<i32>,
        token_type: Option<String>,
        refresh: Option<String>,
        id: Option<String>,
        device: Option<Device>,
    }
    struct Device {
        key: Option<String>,
        group: Option<String>,
    }

    macro_rules! last_key_wins {
        ($ty:ident { $($key:literal => $field:ident : $value:ty),* }) => {
            impl<'de> Deserialize<'de> for $ty {
                fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                    struct V;
                    impl<'de> serde::de::Visitor<'de> for V {
                        type Value = $ty;
                        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                            f.write_str("an object")
                        }
                        fn visit_map<A: serde::de::MapAccess<'de>>(
                            self,
                            mut map: A,
                        ) -> Result<$ty, A::Error> {
                            let mut out = $ty { $($field: None),* };
                            while let Some(key) = map.next_key::<Cow<'de, str>>()? {
                                match key.as_ref() {
                                    $($key => out.$field = map.next_value::<Option<$value>>()?,)*
                                    _ => {
                                        map.next_value::<serde::de::IgnoredAny>()?;
                                    }
                                }
                            }
                            Ok(out)
                        }
                    }
                    d.deserialize_map(V)
                }
            }
        };
    }
    last_key_wins!(Body { "AuthenticationResult" => result: AuthResult });
    last_key_wins!(AuthResult {
        "AccessToken" => access: String,
        "ExpiresIn" => expires_in: i32,
        "TokenType" => token_type: String,
        "RefreshToken" => refresh: String,
        "IdToken" => id: String,
        "NewDeviceMetadata" => device: Device
    });
    last_key_wins!(Device { "DeviceKey" => key: String, "DeviceGroupKey" => group: String });

    fn err(kind: ResponseErrorKind, detail: Option<String>) -> String {
        format!("err {kind:?} {detail:?}")
    }

    /// What `shown(&parse_with(body, limits), false)` gave before the change.
    pub(super) fn outcome(body: &[u8], limits: &ResponseLimits) -> String {
        if body.len() > limits.max_body_bytes {
            let limit = limits.max_body_bytes;
            return err(ResponseErrorKind::BodyTooLarge { limit }, None);
        }
        let blank = body
            .iter()
            .all(|b| matches!(b, b' ' | b'\t' | b'\n' | b'\r'));
        let parsed = if blank {
            Body { result: None }
        } else {
            use serde_json::error::Category;
            let mut de = serde_json::Deserializer::from_slice(body);
            let at =
                |e: &serde_json::Error| Some(format!("at line {} column {}", e.line(), e.column()));
            let read = match Body::deserialize(&mut de) {
                Ok(b) => b,
                Err(e) => {
                    let kind = match e.classify() {
                        Category::Eof => ResponseErrorKind::Truncated,
                        Category::Syntax | Category::Io => ResponseErrorKind::NotJson,
                        Category::Data => ResponseErrorKind::Malformed,
                    };
                    return err(kind, at(&e));
                }
            };
            // A complete value followed by more tokens is malformed.
            if let Err(e) = de.end() {
                return err(ResponseErrorKind::Malformed, at(&e));
            }
            read
        };
        let Some(r) = parsed.result else {
            return err(ResponseErrorKind::MissingAuthenticationResult, None);
        };
        let Some(access) = r.access else {
            return err(ResponseErrorKind::MissingAccessToken, None);
        };
        let seconds = r.expires_in.unwrap_or(0);
        if seconds < 0 {
            return err(
                ResponseErrorKind::Malformed,
                Some(format!("ExpiresIn is negative ({seconds})")),
            );
        }
        format!(
            "ok access={:?} id={:?} refresh={:?} type={:?} expires_in={} device={:?}",
            access,
            r.id,
            r.refresh,
            r.token_type,
            seconds,
            r.device.map(|d| (d.key, d.group)),
        )
    }
}

/// The rule of this review: the public outcome is the checked reading's.
#[track_caller]
fn assert_reads_as_checked(body: &[u8]) {
    assert_reads_as_checked_with(body, &ResponseLimits::default());
}

#[track_caller]
fn assert_reads_as_checked_with(body: &[u8], limits: &ResponseLimits) {
    let actual = shown(&parse_with(body, limits), false);
    let expected = oracle::outcome(body, limits);
    assert_eq!(
        actual,
        expected,
        "body {:?}",
        String::from_utf8_lossy(&body[..body.len().min(400)])
    );
}

const TOKEN_KEYS: [&str; 4] = ["AccessToken", "RefreshToken", "IdToken", "DeviceKey"];

/// A body with `value` (raw JSON bytes) at one token key, the other tokens plain.
fn body_with(key: &str, value: &[u8]) -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(br#"{"AuthenticationResult":{"ExpiresIn":3600,"TokenType":"Bearer","#);
    let mut member = |k: &str, v: &[u8]| {
        body.extend_from_slice(format!("\"{k}\":").as_bytes());
        body.extend_from_slice(v);
        body.push(b',');
    };
    for k in ["AccessToken", "RefreshToken", "IdToken"] {
        if k == key {
            member(k, value);
        } else {
            member(k, format!("\"plain-{k}\"").as_bytes());
        }
    }
    body.extend_from_slice(br#""NewDeviceMetadata":{"DeviceGroupKey":"g","DeviceKey":"#);
    if key == "DeviceKey" {
        body.extend_from_slice(value);
    } else {
        body.extend_from_slice(b"\"plain-DeviceKey\"");
    }
    body.extend_from_slice(b"}}}");
    body
}

/// Token values (raw JSON) that stress the fast reading.
fn tricky_values() -> Vec<Vec<u8>> {
    let mut values: Vec<Vec<u8>> = [
        r#""eyJh\/bGci\u002eOi""#,
        r#""a\"b""#,
        r#""a\\b""#,
        r#""\\""#,
        r#""\ud83d\ude00""#,
        r#""\ud800""#,
        r#""\udc00""#,
        r#""\ud800\u0041""#,
        r#""\ud83d""#,
        r#""\u0000""#,
        r#""\u001f""#,
        r#""\u007f""#,
        r#""\x""#,
        r#""\u12""#,
        r#""\uZZZZ""#,
        r#""trailing\""#,
        "\"jeton-\u{e9}t\u{e9}-\u{4e2d}-\u{1f600}\"",
        "\"\u{7f}\"",
        "\"a\u{7f}b\"",
        "\"\"",
        "\"a\tb\"",
        "\"a\nb\"",
        "\"a\rb\"",
        "\"\u{0}\"",
        "\"\u{1f}\"",
        "\"\u{1}abc\"",
        "[104,105]",
        "[]",
        "[\"a\"]",
        "[104,105",
        "104",
        "-1",
        "1.5e3",
        "true",
        "false",
        "null",
        "nul",
        "{}",
        r#"{"a":"b"}"#,
        r#""unterminated"#,
        "\"",
        "",
        "'single'",
        "  \"spaced\"  ",
        "\t\n\r \"ws\"",
        // An escape and a raw control character in one string: the escape alone must not
        // send the string down a path that skips the control-character check.
        "\"\\/\t\"",
        "\"\\u0041\u{1}\"",
        "\"\u{1f}\\n\"",
        "\"ab\\\"\u{0}\"",
    ]
    .iter()
    .map(|v| v.as_bytes().to_vec())
    .collect();
    // Invalid UTF-8 inside a string without escapes.
    for bad in [
        &b"\x80"[..],
        b"\xff",
        b"\xc3",
        b"\xc3\x28",
        b"\xc0\xaf",
        b"\xe0\x80\xaf",
        b"\xed\xa0\x80",
        b"\xf0\x9f\x98",
        b"\xf4\x90\x80\x80",
        b"\xfe\xfe",
    ] {
        for (pre, post) in [
            ("", ""),
            ("ab", ""),
            ("", "cd"),
            ("eyJhbGci", "OiJIUzI1NiJ9"),
        ] {
            let mut v = b"\"".to_vec();
            v.extend_from_slice(pre.as_bytes());
            v.extend_from_slice(bad);
            v.extend_from_slice(post.as_bytes());
            v.push(b'"');
            values.push(v);
        }
        // And with an escape after the bad byte.
        let mut v = b"\"x".to_vec();
        v.extend_from_slice(bad);
        v.extend_from_slice(br#"\/y""#);
        values.push(v);
    }
    values
}

#[test]
fn every_token_spelling_at_every_token_key_reads_as_the_checked_reading_does() {
    for value in tricky_values() {
        for key in TOKEN_KEYS {
            assert_reads_as_checked(&body_with(key, &value));
        }
    }
}

#[test]
fn escapes_in_tokens_are_decoded_as_the_checked_reading_decodes_them() {
    let out = parse(&body_with("AccessToken", br#""eyJh\/bGci\u002eOi\"\\""#)).expect("ok");
    assert_eq!(out.access_token.expose_secret(), "eyJh/bGci.Oi\"\\");
    let out = parse(&body_with("IdToken", br#""\ud83d\ude00\u00e9""#)).expect("ok");
    assert_eq!(out.id_token.expect("id").expose_secret(), "\u{1f600}\u{e9}");
    let out = parse(&body_with("DeviceKey", "\"k\u{7f}\u{e9}\"".as_bytes())).expect("ok");
    let device = out.new_device.expect("device").device_key.expect("key");
    assert_eq!(device.expose_secret(), "k\u{7f}\u{e9}");
}

#[test]
fn a_raw_control_character_or_a_lone_surrogate_in_a_token_fails_the_body_as_not_json() {
    for value in [
        &b"\"a\tb\""[..],
        b"\"\x00\"",
        b"\"\x1f\"",
        br#""\ud800""#,
        b"\"\xff\"",
    ] {
        let e = parse(&body_with("RefreshToken", value)).expect_err("refused");
        let Error::Response(e) = e else {
            panic!("{e:?}")
        };
        assert_eq!(e.kind, ResponseErrorKind::NotJson, "{value:?}");
        assert!(
            e.detail
                .as_deref()
                .is_some_and(|d| d.starts_with("at line 1 column ")),
            "{e}"
        );
    }
}

#[test]
fn a_token_given_as_an_array_of_numbers_is_malformed_not_bytes() {
    for key in TOKEN_KEYS {
        let e = parse(&body_with(key, b"[104,105]")).expect_err("an array is no string");
        let Error::Response(e) = e else {
            panic!("{e:?}")
        };
        assert_eq!(e.kind, ResponseErrorKind::Malformed, "{key}");
    }
}

#[test]
fn a_bad_token_value_overwritten_by_a_later_good_one_still_fails_the_body() {
    let bads: Vec<Vec<u8>> = vec![
        b"\"a\x00\"".to_vec(),
        b"\"a\tb\"".to_vec(),
        b"\"\xff\"".to_vec(),
        br#""\ud800""#.to_vec(),
        br#""\x""#.to_vec(),
        b"[104,105]".to_vec(),
        b"17".to_vec(),
        b"{}".to_vec(),
    ];
    for bad in &bads {
        for key in ["AccessToken", "RefreshToken", "IdToken"] {
            for (first, second) in [(&bad[..], &b"\"good\""[..]), (b"\"good\"", &bad[..])] {
                let mut body = format!(r#"{{"AuthenticationResult":{{"AccessToken":"x","{key}":"#)
                    .into_bytes();
                body.extend_from_slice(first);
                body.extend_from_slice(format!(r#","{key}":"#).as_bytes());
                body.extend_from_slice(second);
                body.extend_from_slice(b"}}");
                assert_reads_as_checked(&body);
                assert!(parse(&body).is_err(), "{}", String::from_utf8_lossy(&body));
            }
        }
        // A whole AuthenticationResult with a bad token, replaced by a good one.
        let mut body = br#"{"AuthenticationResult":{"AccessToken":"#.to_vec();
        body.extend_from_slice(bad);
        body.extend_from_slice(br#"},"AuthenticationResult":{"AccessToken":"good"}}"#);
        assert_reads_as_checked(&body);
        assert!(parse(&body).is_err());
        // And a bad DeviceKey in a NewDeviceMetadata that a later one replaces.
        let mut body =
            br#"{"AuthenticationResult":{"AccessToken":"a","NewDeviceMetadata":{"DeviceKey":"#
                .to_vec();
        body.extend_from_slice(bad);
        body.extend_from_slice(br#"},"NewDeviceMetadata":{"DeviceKey":"k"}}}"#);
        assert_reads_as_checked(&body);
        assert!(parse(&body).is_err());
    }
}

#[test]
fn a_control_byte_at_any_position_of_a_long_token_fails_the_body_as_the_checked_reading_does() {
    // Real tokens are kilobytes long: a check that looks at a prefix, or at whole chunks only,
    // must not pass a control byte further on.
    let len = 300;
    for key in TOKEN_KEYS {
        for at in 0..len {
            for bad in [0x00u8, 0x1f] {
                let mut token = vec![b'A'; len];
                token[at] = bad;
                let mut value = b"\"".to_vec();
                value.extend_from_slice(&token);
                value.push(b'"');
                let body = body_with(key, &value);
                assert_reads_as_checked(&body);
                assert!(parse(&body).is_err(), "{key} byte {bad:#x} at {at}");
            }
        }
    }
    // Every control byte, at chunk edges of a 4 KiB token, and DEL, which JSON allows raw.
    for bad in (0x00u8..0x20).chain([0x7f]) {
        for at in [
            0, 1, 7, 8, 15, 16, 31, 32, 63, 64, 65, 127, 128, 129, 4094, 4095,
        ] {
            let mut token = vec![b'z'; 4096];
            token[at] = bad;
            let mut value = b"\"".to_vec();
            value.extend_from_slice(&token);
            value.push(b'"');
            let body = body_with("AccessToken", &value);
            assert_reads_as_checked(&body);
            assert_eq!(parse(&body).is_ok(), bad == 0x7f, "byte {bad:#x} at {at}");
        }
    }
}

#[test]
fn an_invalid_utf8_byte_at_any_position_of_a_long_token_fails_the_body_as_the_checked_reading_does()
{
    let len = 200;
    for key in TOKEN_KEYS {
        for at in 0..len {
            for bad in [&b"\x80"[..], b"\xff", b"\xed\xa0\x80", b"\xe2\x82"] {
                let mut value = b"\"".to_vec();
                value.extend(std::iter::repeat_n(b'Q', at));
                value.extend_from_slice(bad);
                value.extend(std::iter::repeat_n(b'Q', len - at));
                value.push(b'"');
                let body = body_with(key, &value);
                assert_reads_as_checked(&body);
                assert!(parse(&body).is_err(), "{key} {bad:?} at {at}");
            }
        }
    }
}

/// A realistic body with escapes, other scripts, DEL and unknown nested keys.
fn rich_body() -> Vec<u8> {
    concat!(
        "{\"ChallengeParameters\":{\"a\":[1,2,{\"b\":null}]},\r\n",
        " \"AuthenticationResult\" : {\"AccessToken\":\"eyJraWQ.eyJzdWIi\\/\\u002eOi.c2ln\",",
        "\"ExpiresIn\":3600,\"TokenType\":\"Bearer\",",
        "\"RefreshToken\":\"eyJjdHkiOiJKV1QiLCJlbmMiOiJBMjU2R0NNIn0.rot-ated\",",
        "\"IdToken\":\"id-\u{e9}\u{1f600}\u{7f}\",",
        "\"NewDeviceMetadata\":{\"DeviceKey\":\"eu-west-1_\\u0041bc\",\"DeviceGroupKey\":\"-g\"},",
        "\"Other\":[\"\\ud83d\\ude00\",\"x\"]\t}\n}\n"
    )
    .as_bytes()
    .to_vec()
}

#[test]
fn a_body_cut_at_any_byte_reads_as_the_checked_reading_does() {
    let plain = br#"{"AuthenticationResult":{"AccessToken":"aaa.bbb.ccc","RefreshToken":"rrr.sss","IdToken":"iii","NewDeviceMetadata":{"DeviceKey":"kkk"}}}"#.to_vec();
    for body in [rich_body(), plain] {
        for cut in 0..=body.len() {
            assert_reads_as_checked(&body[..cut]);
        }
        // And with the bytes at the cut dropped instead (a hole).
        for at in 0..body.len() {
            let mut holed = body.clone();
            holed.remove(at);
            assert_reads_as_checked(&holed);
        }
    }
}

#[test]
fn whitespace_a_bom_and_trailing_garbage_read_as_the_checked_reading_does() {
    let good = br#"{"AuthenticationResult":{"AccessToken":"a.b.c","RefreshToken":"r.s.t"}}"#;
    let spaced = b" \t\r\n{ \"AuthenticationResult\" \n:\t{ \"AccessToken\" : \"a.b.c\" ,\r\n\"RefreshToken\"\t:\n\"r.s.t\" } }\n\r\t ".to_vec();
    let mut bodies: Vec<Vec<u8>> = vec![good.to_vec(), spaced];
    for (pre, post) in [
        (&b"\xef\xbb\xbf"[..], &b""[..]),
        (b"", b"x"),
        (b"", b"}"),
        (b"", b"{}"),
        (b"", b"\x00"),
        (b"", b"\x0c"),
        (b"\x0c", b""),
        (b"", b" \"x\""),
        (b"", b"\xff"),
        (b"[", b"]"),
    ] {
        let mut body = pre.to_vec();
        body.extend_from_slice(good);
        body.extend_from_slice(post);
        bodies.push(body);
    }
    // Not objects at all, and blank bodies.
    for other in [
        &b""[..],
        b" ",
        b"\t\r\n",
        b"\x0c",
        b"null",
        b"[]",
        b"\"s\"",
        b"1",
        b"{}",
    ] {
        bodies.push(other.to_vec());
    }
    for body in bodies {
        assert_reads_as_checked(&body);
    }
}

#[test]
fn huge_tokens_near_the_body_limit_read_as_the_checked_reading_does() {
    let limits = ResponseLimits::default();
    let frame = body_with("AccessToken", b"\"\"").len();
    let room = limits.max_body_bytes - frame;
    for (tail, fits) in [
        (&b""[..], true),
        (b"\x01", true),
        (b"\\/", true),
        (b"\xff", true),
        (b"", false),
    ] {
        let len = if fits { room - tail.len() } else { room + 1 };
        let mut value = b"\"".to_vec();
        value.extend(std::iter::repeat_n(b'A', len));
        value.extend_from_slice(tail);
        value.push(b'"');
        let body = body_with("AccessToken", &value);
        assert_eq!(body.len() <= limits.max_body_bytes, fits);
        assert_reads_as_checked_with(&body, &limits);
        if fits && tail.is_empty() {
            let out = parse(&body).expect("a token that fits");
            assert_eq!(out.access_token.expose_secret().len(), len);
        }
    }
}

#[test]
fn deeply_nested_skipped_values_read_as_the_checked_reading_does() {
    for depth in [1, 100, 125, 126, 127, 128, 129, 200, 5000] {
        let nested = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
        let objects = format!("{}1{}", "{\"a\":".repeat(depth), "}".repeat(depth));
        for skipped in [&nested, &objects] {
            for body in [
                format!(r#"{{"Skip":{skipped},"AuthenticationResult":{{"AccessToken":"a"}}}}"#),
                format!(r#"{{"AuthenticationResult":{{"Skip":{skipped},"AccessToken":"a"}}}}"#),
                format!(
                    r#"{{"AuthenticationResult":{{"AccessToken":"a","NewDeviceMetadata":{{"X":{skipped},"DeviceKey":"k"}}}}}}"#
                ),
                format!(r#"{{"AuthenticationResult":{{"AccessToken":{skipped}}}}}"#),
            ] {
                assert_reads_as_checked(body.as_bytes());
            }
        }
    }
}

/// Outcomes the oracle does not model, as the code before the change gave them: the refresh
/// token salvaged from a failed body, and the excerpt of a body without AuthenticationResult.
#[test]
fn failed_bodies_salvage_the_same_rotated_refresh_token_and_show_the_same_text_as_before() {
    let cases: [(&[u8], &str); 8] = [
        (
            b"{\"AuthenticationResult\":{\"RefreshToken\":\"rot.ated\",\"AccessToken\":\"a\x01\"}}",
            r#"err NotJson Some("at line 1 column 68") rotated=Some("rot.ated")"#,
        ),
        (
            br#"{"AuthenticationResult":{"RefreshToken":"rot.ated","AccessToken":"a\ud800"}}"#,
            r#"err NotJson Some("at line 1 column 74") rotated=Some("rot.ated")"#,
        ),
        (
            br#"{"AuthenticationResult":{"RefreshToken":"rot\/ated","AccessToken":[104,105]}}"#,
            r#"err Malformed Some("at line 1 column 66") rotated=Some("rot/ated")"#,
        ),
        (
            br#"{"AuthenticationResult":{"RefreshToken":"rot.ated","AccessToken":"cut"#,
            r#"err Truncated Some("at line 1 column 69") rotated=Some("rot.ated")"#,
        ),
        (
            b"{\"AuthenticationResult\":{\"RefreshToken\":\"r\xffot\",\"AccessToken\":\"a\"}}",
            r#"err NotJson Some("at line 1 column 43") rotated=None"#,
        ),
        (
            br#"{"AuthenticationResult":{"RefreshToken":"rot.ated"}}"#,
            r#"err MissingAccessToken None rotated=Some("rot.ated")"#,
        ),
        (
            br#"{"AuthenticationResult":{"AccessToken":"a","RefreshToken":"rot.ated","ExpiresIn":-5}}"#,
            r#"err Malformed Some("ExpiresIn is negative (-5)") rotated=Some("rot.ated")"#,
        ),
        (
            br#"{"Other":{"AccessToken":"a\/b"}}"#,
            r#"err MissingAuthenticationResult Some("{\"Other\":{\"AccessToken\":\"a\\/b\"}}") rotated=None"#,
        ),
    ];
    for (body, expected) in cases {
        assert_eq!(
            shown(&parse(body), true),
            expected,
            "{}",
            String::from_utf8_lossy(body)
        );
        assert_reads_as_checked(body);
    }
}

// --- Secrets --------------------------------------------------------------------------------

const CANARY: &str =
    "eyJjYW5hcnkiOiJyZXZpZXcyMyJ9.Q0FOQVJZcmVmcmVzaHRva2VucmV2aWV3MjM.c2lnbmF0dXJlY2FuYXJ5";
const BODY_ACCESS: &str =
    "eyJraWQiOiJib2R5YWNjZXNzIn0.Qk9EWWFjY2Vzc3Rva2VucmV2aWV3MjM.c2lnbmF0dXJlYm9keQ";

fn input() -> RefreshInput {
    RefreshInput::builder()
        .refresh_token(CANARY)
        .client_id("review23client")
        .device_key("eu-west-1_0f1e2d3c-4b5a-6978-8695-a4b3c2d1e0f9")
        .build()
        .expect("input")
}

/// Every way of spelling a body token that fails some reading, each in every token slot.
fn failing_secret_bodies() -> Vec<Vec<u8>> {
    let mut bodies = Vec::new();
    for secret in [CANARY, BODY_ACCESS] {
        let escaped = secret.replacen('.', "\\/", 1);
        let variants: Vec<Vec<u8>> = vec![
            format!("\"{secret}\x01\"").into_bytes(),
            format!("\"\x00{secret}\"").into_bytes(),
            format!("\"{escaped}\\ud800\"").into_bytes(),
            format!("\"{escaped}\x1f\"").into_bytes(),
            [format!("\"{secret}").as_bytes(), b"\xff\""].concat(),
            format!("\"{secret}\\x\"").into_bytes(),
            format!("\"{secret}").into_bytes(),
            format!("\"{escaped}").into_bytes(),
            format!("[\"{secret}\"]").into_bytes(),
            format!("{{\"{secret}\":1}}").into_bytes(),
            format!("\"{secret}\"}}garbage{secret}").into_bytes(),
        ];
        for key in TOKEN_KEYS {
            for v in &variants {
                bodies.push(body_with(key, v));
            }
        }
        // Without a result, the body quoted in an excerpt.
        bodies.push(format!(r#"{{"Other":{{"AccessToken":"{escaped}"}}}}"#).into_bytes());
        bodies.push(
            format!(r#"{{"AuthenticationResult":{{"AccessToken":"{secret}"}},"AuthenticationResult":null}}"#)
                .into_bytes(),
        );
        bodies.push(
            format!(r#"{{"AuthenticationResult":{{"RefreshToken":"{escaped}"}}}}"#).into_bytes(),
        );
    }
    bodies
}

#[test]
fn no_error_of_a_success_body_shows_a_token_or_the_internal_fallback_message() {
    let input = input();
    let sent = GetTokensFromRefreshToken::sent(&input);
    let limits = ResponseLimits::default();
    for body in failing_secret_bodies() {
        for result in [
            parse(&body),
            dispatch_sent::<GetTokensFromRefreshToken>(
                StatusCode::OK,
                &HeaderMap::new(),
                &body,
                now(),
                &limits,
                &sent,
            ),
        ] {
            let Err(e) = result else {
                panic!("accepted {}", String::from_utf8_lossy(&body))
            };
            for text in [e.to_string(), format!("{e:?}"), format!("{e:#?}")] {
                for needle in [
                    CANARY,
                    BODY_ACCESS,
                    &CANARY[29..63],
                    &BODY_ACCESS[28..62],
                    "read again",
                    "expected a string",
                    "invalid type",
                ] {
                    assert!(
                        !text.contains(needle),
                        "{needle:?} in {text} for {}",
                        String::from_utf8_lossy(&body)
                    );
                }
            }
        }
    }
}

#[test]
fn dispatch_sent_gives_the_tokens_parse_response_gives() {
    let input = input();
    let sent = GetTokensFromRefreshToken::sent(&input);
    let mut bodies = vec![rich_body()];
    for value in tricky_values() {
        for key in TOKEN_KEYS {
            bodies.push(body_with(key, &value));
        }
    }
    for body in bodies {
        let via_sent = dispatch_sent::<GetTokensFromRefreshToken>(
            StatusCode::OK,
            &HeaderMap::new(),
            &body,
            now(),
            &ResponseLimits::default(),
            &sent,
        );
        let via_sent = shown(&via_sent, false);
        assert_eq!(via_sent, oracle::outcome(&body, &ResponseLimits::default()));
    }
}

// --- Properties -----------------------------------------------------------------------------

/// A piece of a token's raw JSON text, bytes that need not be UTF-8.
fn token_piece() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        4 => "[A-Za-z0-9._=+/-]{0,90}".prop_map(String::into_bytes),
        1 => proptest::collection::vec(any::<u8>(), 0..6),
        1 => proptest::sample::select(vec![
            "\\/", "\\u002e", "\\\"", "\\\\", "\\ud83d\\ude00", "\\ud800", "\\udc00", "\\n",
            "\\u0000", "\\x", "\t", "\u{7f}", "\u{e9}", "\u{1f600}", "\u{0}", "\u{1f}",
        ])
        .prop_map(|s| s.as_bytes().to_vec()),
        1 => proptest::sample::select(vec![
            &b"\xff"[..], b"\x80", b"\xc3", b"\xed\xa0\x80", b"\xe2\x82", b"\xf0\x9f\x98",
        ])
        .prop_map(<[u8]>::to_vec),
    ]
}

/// A token value: mostly a string of pieces, sometimes another JSON value.
fn token_value() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        8 => proptest::collection::vec(token_piece(), 0..6).prop_map(|pieces| {
            let mut v = b"\"".to_vec();
            for p in pieces {
                v.extend_from_slice(&p);
            }
            v.push(b'"');
            v
        }),
        1 => proptest::sample::select(vec![
            "[104,105]", "[]", "104", "null", "true", "{}", "{\"a\":[1]}", "\"\"", " \"ws\" ",
        ])
        .prop_map(|s| s.as_bytes().to_vec()),
    ]
}

fn member() -> impl Strategy<Value = Vec<u8>> {
    let key = proptest::sample::select(vec![
        "AccessToken",
        "RefreshToken",
        "IdToken",
        "TokenType",
        "ExpiresIn",
        "Other",
        "DeviceKey",
    ]);
    (key, token_value(), proptest::bool::ANY).prop_map(|(key, value, device)| {
        let mut m = Vec::new();
        if device || key == "DeviceKey" {
            m.extend_from_slice(b"\"NewDeviceMetadata\":{\"DeviceKey\":");
            m.extend_from_slice(&value);
            m.push(b'}');
        } else {
            m.extend_from_slice(format!("\"{key}\":").as_bytes());
            m.extend_from_slice(&value);
        }
        m
    })
}

/// A success-shaped body of random members, cut or with a byte changed at random.
fn success_body() -> impl Strategy<Value = Vec<u8>> {
    (
        proptest::collection::vec(member(), 1..6),
        proptest::option::of(0usize..2000),
        proptest::option::of((0usize..2000, any::<u8>())),
    )
        .prop_map(|(members, cut, flip)| {
            let mut body = br#"{"AuthenticationResult":{"#.to_vec();
            for (i, m) in members.iter().enumerate() {
                if i > 0 {
                    body.push(b',');
                }
                body.extend_from_slice(m);
            }
            body.extend_from_slice(b"}}");
            if let Some((at, byte)) = flip {
                let at = at % body.len();
                body[at] = byte;
            }
            if let Some(cut) = cut {
                body.truncate(cut.min(body.len()));
            }
            body
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3000))]

    #[test]
    fn any_success_shaped_body_reads_as_the_checked_reading_does(body in success_body()) {
        let expected = oracle::outcome(&body, &ResponseLimits::default());
        prop_assert_eq!(shown(&parse(&body), false), expected);
    }

    #[test]
    fn mutations_of_a_real_body_read_as_the_checked_reading_does(
        edits in proptest::collection::vec((any::<usize>(), any::<u8>(), 0u8..3), 1..4),
    ) {
        let mut body = rich_body();
        for (at, byte, op) in edits {
            let at = at % (body.len() + 1);
            match op {
                0 if at < body.len() => body[at] = byte,
                1 => body.insert(at, byte),
                _ if at < body.len() => {
                    body.remove(at);
                }
                _ => body.push(byte),
            }
        }
        let expected = oracle::outcome(&body, &ResponseLimits::default());
        prop_assert_eq!(shown(&parse(&body), false), expected);
    }

    #[test]
    fn random_bytes_never_panic_and_read_as_the_checked_reading_does(
        body in proptest::collection::vec(any::<u8>(), 0..300),
    ) {
        let expected = oracle::outcome(&body, &ResponseLimits::default());
        prop_assert_eq!(shown(&parse(&body), false), expected);
    }
}
