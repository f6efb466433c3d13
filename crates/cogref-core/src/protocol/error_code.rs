//! Error-code extraction for AWS JSON 1.1 error responses (docs/protocol.md §4).
//!
//! The code comes from, in order: the `x-amzn-errortype` header, the body's top-level `code`,
//! the body's top-level `__type`. It is then sanitized: cut at the first `:`, then keep what
//! follows the first `#`. Only top-level keys whose value is a JSON string count; keys match
//! case-sensitively on their raw text (an escaped `"\u0063ode"` is not `code`), and the last
//! occurrence wins. The message comes from `message`, else the last of `message`, `Message`
//! and `errorMessage`.

use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

/// The header that carries the error type, checked before the body.
pub const ERROR_TYPE_HEADER: &str = "x-amzn-errortype";

/// Sanitizes an error type (docs/protocol.md §4.2 step 3): cut at the first `:`, then take what
/// follows the first `#`. No trimming.
///
/// ```
/// use cogref_core::error_code::sanitize;
/// assert_eq!(sanitize("aws.protocoltests.json#FooError:http://internal.amazon.com/coral/"), "FooError");
/// assert_eq!(sanitize("com.amazonaws.cognitoidentityprovider#RefreshTokenReuseException"), "RefreshTokenReuseException");
/// ```
pub fn sanitize(raw: &str) -> &str {
    let before_colon = raw.split_once(':').map_or(raw, |(head, _)| head);
    before_colon
        .split_once('#')
        .map_or(before_colon, |(_, tail)| tail)
}

/// What the top level of an error body says.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ErrorBody {
    /// Top-level `code`.
    pub code: Option<String>,
    /// Top-level `__type`.
    pub type_: Option<String>,
    /// Top-level `message`, the error shape's own member.
    pub message: Option<String>,
    /// The last of `Message` and `errorMessage`. (The SDK's generic message is the last of
    /// `message`, `Message` and `errorMessage`, but it is used only when `message` is absent,
    /// so `message`, else this, is the same answer.)
    pub any_message: Option<String>,
    /// Top-level `reasonCode` (of `InvalidParameterException`).
    pub reason_code: Option<String>,
}

impl ErrorBody {
    /// The message: the shape's own `message`, else the generic one.
    pub fn message(&self) -> Option<&str> {
        self.message.as_deref().or(self.any_message.as_deref())
    }
}

/// The body could not be read as JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorBodyFault {
    /// Not JSON at all.
    NotJson,
    /// JSON cut short.
    Truncated,
    /// Valid JSON followed by more tokens, or otherwise malformed.
    Malformed,
}

/// Reads the top-level fields of an error body.
///
/// An empty body or one of JSON whitespace only, and a body whose value is valid JSON but not an object,
/// yield an empty [`ErrorBody`]; invalid JSON is an [`ErrorBodyFault`].
pub fn parse_error_body(body: &[u8]) -> Result<ErrorBody, ErrorBodyFault> {
    if is_blank(body) {
        return Ok(ErrorBody::default());
    }
    parse_json::<TopLevel>(body)
        .map(|t| t.0)
        .map_err(|(fault, _)| fault)
}

/// Whether a body is empty or only JSON whitespace (RFC 8259 §2: space, tab, line feed, carriage
/// return), which every parser here reads as no value at all. Not Rust's `is_ascii_whitespace`,
/// which also takes a form feed: a form feed is no more JSON than any other byte, and a body of
/// one must not pass for an empty answer (for `RevokeToken`, for a revocation).
pub(crate) fn is_blank(body: &[u8]) -> bool {
    body.iter().copied().all(is_json_whitespace)
}

/// JSON's whitespace (RFC 8259 §2): space, tab, line feed, carriage return.
pub(crate) fn is_json_whitespace(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r')
}

/// Parses one JSON value that must fill the whole body.
///
/// On failure returns the fault and the parser's `(line, column)`, never serde_json's message,
/// which can quote the input (a token).
pub(crate) fn parse_json<'de, T: Deserialize<'de>>(
    body: &'de [u8],
) -> Result<T, (ErrorBodyFault, (usize, usize))> {
    let mut de = serde_json::Deserializer::from_slice(body);
    let position = |e: &serde_json::Error| (e.line(), e.column());
    let value = T::deserialize(&mut de).map_err(|e| {
        let fault = match e.classify() {
            serde_json::error::Category::Eof => ErrorBodyFault::Truncated,
            serde_json::error::Category::Syntax | serde_json::error::Category::Io => {
                ErrorBodyFault::NotJson
            }
            serde_json::error::Category::Data => ErrorBodyFault::Malformed,
        };
        (fault, position(&e))
    })?;
    // A complete value followed by more tokens is malformed, not "not JSON".
    de.end()
        .map_err(|e| (ErrorBodyFault::Malformed, position(&e)))?;
    Ok(value)
}

struct TopLevel(ErrorBody);

impl<'de> Deserialize<'de> for TopLevel {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(TopLevelVisitor)
    }
}

struct TopLevelVisitor;

impl<'de> Visitor<'de> for TopLevelVisitor {
    type Value = TopLevel;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<TopLevel, A::Error> {
        let mut body = ErrorBody::default();
        while let Some(key) = map.next_key::<Key>()? {
            let slot = match key {
                Key::Code => &mut body.code,
                Key::Type => &mut body.type_,
                Key::ReasonCode => &mut body.reason_code,
                Key::LowerMessage => &mut body.message,
                Key::OtherMessage => &mut body.any_message,
                Key::Other => {
                    map.next_value::<IgnoredAny>()?;
                    continue;
                }
            };
            if let Some(s) = map.next_value::<StringOrSkip>()?.0 {
                *slot = Some(s);
            }
        }
        Ok(TopLevel(body))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<TopLevel, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(TopLevel(ErrorBody::default()))
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<TopLevel, E> {
        Ok(TopLevel(ErrorBody::default()))
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<TopLevel, E> {
        Ok(TopLevel(ErrorBody::default()))
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<TopLevel, E> {
        Ok(TopLevel(ErrorBody::default()))
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<TopLevel, E> {
        Ok(TopLevel(ErrorBody::default()))
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<TopLevel, E> {
        Ok(TopLevel(ErrorBody::default()))
    }

    fn visit_unit<E: de::Error>(self) -> Result<TopLevel, E> {
        Ok(TopLevel(ErrorBody::default()))
    }
}

/// A top-level key, recognized only from its raw (unescaped-free) text.
enum Key {
    Code,
    Type,
    LowerMessage,
    OtherMessage,
    ReasonCode,
    Other,
}

impl<'de> Deserialize<'de> for Key {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_str(KeyVisitor)
    }
}

struct KeyVisitor;

impl<'de> Visitor<'de> for KeyVisitor {
    type Value = Key;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object key")
    }

    // serde_json hands out a borrowed key exactly when the key has no escape sequence, so the
    // borrowed text is the raw text the SDK compares.
    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Key, E> {
        Ok(match v {
            "code" => Key::Code,
            "__type" => Key::Type,
            "message" => Key::LowerMessage,
            "Message" | "errorMessage" => Key::OtherMessage,
            "reasonCode" => Key::ReasonCode,
            _ => Key::Other,
        })
    }

    // An escaped key never matches, as in the SDK.
    fn visit_str<E: de::Error>(self, _: &str) -> Result<Key, E> {
        Ok(Key::Other)
    }
}

/// A value that counts only when it is a JSON string; anything else is skipped whole.
struct StringOrSkip(Option<String>);

impl<'de> Deserialize<'de> for StringOrSkip {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(StringOrSkipVisitor)
    }
}

struct StringOrSkipVisitor;

impl<'de> Visitor<'de> for StringOrSkipVisitor {
    type Value = StringOrSkip;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<StringOrSkip, E> {
        Ok(StringOrSkip(Some(v.to_owned())))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<StringOrSkip, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(StringOrSkip(None))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<StringOrSkip, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(StringOrSkip(None))
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<StringOrSkip, E> {
        Ok(StringOrSkip(None))
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<StringOrSkip, E> {
        Ok(StringOrSkip(None))
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<StringOrSkip, E> {
        Ok(StringOrSkip(None))
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<StringOrSkip, E> {
        Ok(StringOrSkip(None))
    }

    fn visit_unit<E: de::Error>(self) -> Result<StringOrSkip, E> {
        Ok(StringOrSkip(None))
    }
}

/// Picks and sanitizes the code: header, then body `code`, then body `__type`.
pub fn pick_code<'a>(header: Option<&'a str>, body: &'a ErrorBody) -> Option<&'a str> {
    header
        .or(body.code.as_deref())
        .or(body.type_.as_deref())
        .map(sanitize)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(header: Option<&str>, body: &str) -> Option<String> {
        let parsed = parse_error_body(body.as_bytes()).expect("valid JSON");
        pick_code(header, &parsed).map(str::to_owned)
    }

    /// Every example of docs/protocol.md §4.3.
    #[test]
    fn every_example_of_the_protocol_reference_yields_its_code() {
        let cases: &[(Option<&str>, &str, Option<&str>)] = &[
            (
                None,
                r#"{"__type":"NotAuthorizedException","message":"…"}"#,
                Some("NotAuthorizedException"),
            ),
            (
                None,
                r#"{"__type":"com.amazonaws.cognitoidentityprovider#RefreshTokenReuseException","message":"…"}"#,
                Some("RefreshTokenReuseException"),
            ),
            (
                None,
                r#"{"code":"BarError","__type":"FooError"}"#,
                Some("BarError"),
            ),
            (
                Some("FooError:http://internal.amazon.com/coral/com.amazon.coral.validate/"),
                "",
                Some("FooError"),
            ),
            (
                Some(
                    "aws.protocoltests.json#FooError:http://internal.amazon.com/coral/com.amazon.coral.validate/",
                ),
                "",
                Some("FooError"),
            ),
            (
                Some("ResourceNotFoundException"),
                r#"{"Type":"User","Message":"…"}"#,
                Some("ResourceNotFoundException"),
            ),
            (
                None,
                r#"{"__type":"aws.protocoltests.json#FooError","ErrorDetails":[{"__type":"com.amazon.internal#ErrorDetails"}]}"#,
                Some("FooError"),
            ),
            (None, r#"{"code":5,"__type":"FooError"}"#, Some("FooError")),
            (None, "", None),
        ];
        for (header, body, expected) in cases {
            assert_eq!(
                code(*header, body).as_deref(),
                *expected,
                "{header:?} {body}"
            );
        }
    }

    #[test]
    fn message_falls_back_to_capitalized_and_error_message() {
        let b = parse_error_body(br#"{"Type":"User","Message":"gone"}"#).expect("json");
        assert_eq!(b.message(), Some("gone"));
        let b = parse_error_body(br#"{"errorMessage":"x"}"#).expect("json");
        assert_eq!(b.message(), Some("x"));
        let b = parse_error_body(br#"{"message":"own","Message":"generic"}"#).expect("json");
        assert_eq!(b.message(), Some("own"));
    }

    #[test]
    fn header_wins_over_body() {
        assert_eq!(
            code(Some("HeaderError"), r#"{"code":"BodyError"}"#).as_deref(),
            Some("HeaderError")
        );
    }

    #[test]
    fn last_string_value_of_a_repeated_key_wins() {
        assert_eq!(
            code(None, r#"{"__type":"A","__type":"B"}"#).as_deref(),
            Some("B")
        );
        assert_eq!(
            code(None, r#"{"__type":"A","__type":7}"#).as_deref(),
            Some("A")
        );
    }

    #[test]
    fn an_escaped_key_is_not_recognized() {
        assert_eq!(
            code(None, r#"{"\u0063ode":"A","__type":"B"}"#).as_deref(),
            Some("B")
        );
    }

    #[test]
    fn an_empty_header_gives_an_empty_code() {
        assert_eq!(code(Some(""), r#"{"__type":"B"}"#).as_deref(), Some(""));
    }

    #[test]
    fn non_object_json_has_no_fields() {
        for body in ["[1,2]", "\"x\"", "3", "null", "  \n "] {
            assert_eq!(
                parse_error_body(body.as_bytes()),
                Ok(ErrorBody::default()),
                "{body}"
            );
        }
    }

    #[test]
    fn only_json_whitespace_is_blank_not_a_form_feed() {
        assert!(is_blank(b""));
        assert!(is_blank(b" \t\r\n"));
        // Rust's is_ascii_whitespace takes 0x0C; JSON does not.
        assert!(!is_blank(b"\x0c"));
        assert_eq!(parse_error_body(b" \x0c "), Err(ErrorBodyFault::NotJson));
    }

    #[test]
    fn invalid_json_is_a_fault() {
        assert_eq!(
            parse_error_body(b"<html>503</html>"),
            Err(ErrorBodyFault::NotJson)
        );
        assert_eq!(
            parse_error_body(br#"{"__type":"A""#),
            Err(ErrorBodyFault::Truncated)
        );
        assert_eq!(
            parse_error_body(br#"{"__type":"A"} x"#),
            Err(ErrorBodyFault::Malformed)
        );
    }
}
