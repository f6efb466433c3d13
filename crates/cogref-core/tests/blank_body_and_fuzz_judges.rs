//! Review 19: the blank-body rule and the fuzz oracles' judges, after 3e19f75. At 3e19f75 the
//! judges (the fuzz target's and the proptest's) refused grammatical JSON the parser rightly
//! takes, a lone surrogate escape decided a revocation by where it stood, and the parse_response
//! fuzz target refused a sign-in error retried for its 5xx; each test below states the rule now
//! kept.

use std::time::{Duration, SystemTime};

use cogref_core::error_code::{ErrorBodyFault, parse_error_body};
use cogref_core::http::{HeaderMap, StatusCode};
use cogref_core::{Error, ResponseErrorKind, ResponseLimits};

fn now() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_750_000_000)
}

fn revoke(status: u16, body: &[u8], max: usize) -> Result<(), Error> {
    cogref_core::ops::revoke::parse_response(
        StatusCode::from_u16(status).expect("status"),
        &HeaderMap::new(),
        body,
        now(),
        &ResponseLimits {
            max_body_bytes: max,
        },
    )
    .map(|_| ())
}

fn refresh(status: u16, body: &[u8], max: usize) -> Result<(), Error> {
    cogref_core::parse_response(
        StatusCode::from_u16(status).expect("status"),
        &HeaderMap::new(),
        body,
        now(),
        &ResponseLimits {
            max_body_bytes: max,
        },
    )
    .map(|_| ())
}

fn kind(r: Result<(), Error>) -> Option<ResponseErrorKind> {
    match r {
        Err(Error::Response(e)) => Some(e.kind),
        _ => None,
    }
}

const BIG: usize = 1 << 20;

// ---- The judge the fuzz target and the proptest share: RFC 8259's grammar ----

#[path = "common/json_grammar.rs"]
mod json_grammar;

/// What the fuzz target asserts of every `Ok`.
fn fuzz_oracle_holds_for_an_accepted(body: &[u8]) -> bool {
    json_grammar::blank(body) || json_grammar::json_object(body)
}

/// An object whose one member nests `depth` arrays: JSON by RFC 8259 at any depth.
fn nested(depth: usize) -> Vec<u8> {
    format!("{{\"a\":{}{}}}", "[".repeat(depth), "]".repeat(depth)).into_bytes()
}

#[test]
fn the_revoke_fuzz_oracle_takes_a_deeply_nested_member_for_an_object_as_the_parser_does() {
    for depth in [127, 128, 200, 10_000] {
        let body = nested(depth);
        revoke(200, &body, BIG).unwrap_or_else(|e| panic!("depth {depth}: {e}"));
        assert!(
            fuzz_oracle_holds_for_an_accepted(&body),
            "depth {depth}: accepted by the library, refused by the oracle: {:?}",
            serde_json::from_slice::<serde_json::Value>(&body).err()
        );
    }
}

#[test]
fn the_revoke_fuzz_oracle_takes_a_lone_surrogate_escape_for_json_as_the_parser_does() {
    for body in [
        r#"{"a":"\uD800"}"#,
        r#"{"a":"\uDC00"}"#,
        r#"{"a":"\uD800\u0041"}"#,
        r#"{"a":["\udbff x"]}"#,
    ] {
        revoke(200, body.as_bytes(), BIG).unwrap_or_else(|e| panic!("{body}: {e}"));
        assert!(
            fuzz_oracle_holds_for_an_accepted(body.as_bytes()),
            "{body}: accepted by the library, refused by the oracle: {:?}",
            serde_json::from_slice::<serde_json::Value>(body.as_bytes()).err()
        );
    }
}

#[test]
fn the_revoke_proptest_judge_agrees_with_the_parser_on_numbers_and_form_feeds() {
    for body in [&b"{\"n\":1e400}"[..], b"\x0c", b" \x0c\n", b" {} "] {
        let accepted = revoke(200, body, BIG).is_ok();
        assert_eq!(
            accepted,
            fuzz_oracle_holds_for_an_accepted(body),
            "{:?}",
            String::from_utf8_lossy(body)
        );
    }
}

// ---- Promise 2: a 2xx to RevokeToken is a success only for blank or one JSON object ----

#[test]
fn a_revoke_2xx_that_is_not_one_json_object_is_never_a_revocation() {
    let refused: &[&[u8]] = &[
        b"\xef\xbb\xbf{}",           // a BOM: not JSON (RFC 8259 §8.1: MUST NOT add one)
        b"\xef\xbb\xbf",             // a BOM alone is not blank
        b"\0",                       // NUL
        b"{}\0",                     // NUL after the object
        b"\x0c",                     // form feed
        b"{}\x0c",                   // form feed after the object
        b"\x0c{}",                   // form feed before it
        b"{}\x0b",                   // vertical tab
        b"{}\xc2\xa0",               // NBSP
        b"{}\xe2\x80\xa8",           // U+2028
        b"{\"a\":\"\xff\"}",         // invalid UTF-8 in a skipped string
        b"{\"\xff\":1}",             // invalid UTF-8 in a key
        b"{\"a\":\"\xed\xa0\x80\"}", // a surrogate encoded raw in UTF-8 (CESU): not UTF-8
        b"{\"a\":\"\x01\"}",         // a raw control character in a string
        b"{\"a\":\"\\x\"}",          // an invalid escape
        b"{\"a\":\"\\u12\"}",        // a short \u escape
        b"{}{}",
        b"{} {}",
        b"[]",
        b"\"{}\"",
        b"null",
        b"{",
        b"{\"a\":1,}",
        b"{\"a\":01}",
        b"{\"a\":1.}",
        b"{\"a\":-}",
        b"{\"a\":NaN}",
        b"{\"a\":Infinity}",
        b"{'a':1}",
        b"{a:1}",
        b"<html>{}</html>",
    ];
    for body in refused {
        for status in [200, 201, 204, 299] {
            assert!(
                revoke(status, body, BIG).is_err(),
                "{status} {:?} was taken for a revocation",
                String::from_utf8_lossy(body)
            );
        }
    }
    let accepted: &[&[u8]] = &[
        b"",
        b" \t\r\n",
        b"{}",
        b"{} \t\r\n",
        b"\r\n{}\r\n",
        b"{\"a\":1e400,\"a\":2}", // duplicate keys and a number beyond f64: grammatical
        b"{\"a\":\"\\ud83d\\ude00\\u0000\"}",
    ];
    for body in accepted {
        revoke(200, body, BIG)
            .unwrap_or_else(|e| panic!("{:?}: {e}", String::from_utf8_lossy(body)));
    }
}

#[test]
fn the_body_limit_holds_at_its_boundary_for_every_parser() {
    for max in [2usize, 3, 17, 4096] {
        let at = {
            let mut b = b"{}".to_vec();
            b.resize(max, b' ');
            b
        };
        let past = {
            let mut b = at.clone();
            b.push(b' ');
            b
        };
        revoke(200, &at, max).expect("exactly at the limit");
        assert!(matches!(
            kind(revoke(200, &past, max)),
            Some(ResponseErrorKind::BodyTooLarge { limit }) if limit == max
        ));
        // The refresh parser reads `{}` as lacking AuthenticationResult, not as too large.
        assert_eq!(
            kind(refresh(200, &at, max)),
            Some(ResponseErrorKind::MissingAuthenticationResult)
        );
        assert!(matches!(
            kind(refresh(200, &past, max)),
            Some(ResponseErrorKind::BodyTooLarge { limit }) if limit == max
        ));
        for status in [400, 500] {
            assert_eq!(
                kind(refresh(status, &at, max)),
                Some(ResponseErrorKind::NoErrorCode)
            );
            assert!(matches!(
                kind(refresh(status, &past, max)),
                Some(ResponseErrorKind::BodyTooLarge { limit }) if limit == max
            ));
            assert!(matches!(
                kind(revoke(status, &past, max)),
                Some(ResponseErrorKind::BodyTooLarge { limit }) if limit == max
            ));
        }
    }
    // A blank body exactly one past the limit is still too large (the limit is checked first).
    assert!(matches!(
        kind(revoke(200, b"   ", 2)),
        Some(ResponseErrorKind::BodyTooLarge { .. })
    ));
}

// ---- Promise 3: one blank rule in the three parsers ----

/// Every single byte and every byte padded with JSON whitespace: the revoke success parser,
/// the refresh success parser and the error-body parser agree on what is blank, and blank is
/// exactly {space, tab, LF, CR} (aws-smithy-json's tokenizer).
#[test]
fn the_three_parsers_take_the_same_bytes_for_blank_and_only_json_whitespace() {
    for b in 0u8..=255 {
        for body in [vec![b], vec![b' ', b, b'\n'], vec![b, b, b]] {
            let json_ws = matches!(b, b' ' | b'\t' | b'\n' | b'\r');
            let revoke_blank = revoke(200, &body, BIG).is_ok();
            let refresh_blank = kind(refresh(200, &body, BIG))
                == Some(ResponseErrorKind::MissingAuthenticationResult);
            let error_blank = parse_error_body(&body) == Ok(Default::default());
            let error_kind_blank =
                kind(refresh(400, &body, BIG)) == Some(ResponseErrorKind::NoErrorCode);
            // Digits are JSON values (not objects): the error parser reads them as "no fields",
            // the others refuse them. Only the blank rule is compared here.
            if b.is_ascii_digit() {
                assert!(!revoke_blank && !refresh_blank, "{body:?}");
                continue;
            }
            assert_eq!(revoke_blank, json_ws, "revoke {body:?}");
            assert_eq!(refresh_blank, json_ws, "refresh {body:?}");
            assert_eq!(error_blank, json_ws, "error body {body:?}");
            assert_eq!(error_kind_blank, json_ws, "error response {body:?}");
        }
    }
}

#[test]
fn a_form_feed_error_body_is_not_blank() {
    assert_eq!(parse_error_body(b"\x0c"), Err(ErrorBodyFault::NotJson));
    assert_eq!(
        kind(refresh(500, b"\x0c", BIG)),
        Some(ResponseErrorKind::NotJson)
    );
    assert_eq!(
        kind(revoke(500, b"\x0c", BIG)),
        Some(ResponseErrorKind::NotJson)
    );
}

#[test]
fn deep_nesting_and_lone_surrogates_are_read_alike_by_refresh_and_error_parsers() {
    // Skipped members: any depth, any escape the grammar allows.
    let deep = format!(
        "{{\"x\":{}{},\"AuthenticationResult\":{{\"AccessToken\":\"a\"}},\"s\":\"\\uD800\"}}",
        "[".repeat(5000),
        "]".repeat(5000)
    );
    refresh(200, deep.as_bytes(), BIG).expect("refresh skips it");
    revoke(200, deep.as_bytes(), BIG).expect("revoke skips it");
    let err = format!(
        "{{\"x\":{}1{},\"__type\":\"NotAuthorizedException\",\"s\":\"\\uDC00\"}}",
        "{\"a\":".repeat(5000),
        "}".repeat(5000)
    );
    let fields = parse_error_body(err.as_bytes()).expect("error parser skips it");
    assert_eq!(fields.type_.as_deref(), Some("NotAuthorizedException"));
}

#[test]
fn a_lone_surrogate_escape_decides_a_revocation_alike_in_a_key_and_in_a_value() {
    for escape in [r"\uD800", r"\uDC00", r"\uDBFF\u0041"] {
        let in_value = format!(r#"{{"a":"{escape}"}}"#);
        let in_key = format!(r#"{{"{escape}":"a"}}"#);
        assert_eq!(
            revoke(200, in_value.as_bytes(), BIG).is_ok(),
            revoke(200, in_key.as_bytes(), BIG).is_ok(),
            "{in_value} vs {in_key}"
        );
    }
}

#[test]
fn a_sign_in_error_on_a_5xx_is_retried_as_the_sdk_retries_any_5xx_and_still_says_sign_in() {
    use cogref_core::http::HeaderValue;
    let cases: &[(&str, &str)] = &[
        ("RefreshTokenReuseException", ""),
        ("UserNotFoundException", ""),
        (
            "NotAuthorizedException",
            r#"{"message":"Refresh Token has been revoked"}"#,
        ),
    ];
    for status in [500u16, 502, 503, 504] {
        for (code, body) in cases {
            let mut headers = HeaderMap::new();
            headers.insert("x-amzn-errortype", HeaderValue::from_static(code));
            let e = cogref_core::parse_response(
                StatusCode::from_u16(status).expect("status"),
                &headers,
                body.as_bytes(),
                now(),
                &ResponseLimits::default(),
            )
            .expect_err("an error status");
            // docs/protocol.md §6.2: any 500/502/503/504 is retried whatever its code; the
            // code still says the token is dead.
            assert!(e.requires_sign_in(), "{status} {code}");
            assert_eq!(
                e.retry_kind(),
                Some(cogref_core::RetryKind::Transient),
                "{status} {code}"
            );
        }
    }
}
