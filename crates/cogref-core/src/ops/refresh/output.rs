//! The output of `GetTokensFromRefreshToken` (docs/protocol.md §2.2): a 2xx body read as the
//! official SDK reads it (unknown keys skipped, `null` as absent, the last of a repeated key
//! winning), and the rotated refresh token salvaged from a body that is otherwise unusable.
//!
//! A 2xx body is a success when it is a JSON object (empty counts as `{}`) with an
//! `AuthenticationResult` that has an `AccessToken`. The content type is not looked at.

use std::time::{Duration, SystemTime};

use secrecy::SecretString;
use serde::Deserialize;

use crate::error::{Error, ResponseError, ResponseErrorKind};
use crate::protocol::error_code;
use crate::protocol::response::{ResponseLimits, Success};

/// The tokens and metadata of a successful refresh.
///
/// `Debug` redacts every token and the device key.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct RefreshOutput {
    /// The new access token.
    pub access_token: SecretString,
    /// The new ID token (sent for clients with the `openid` scope).
    pub id_token: Option<SecretString>,
    /// A new refresh token: present only when rotation is on, and then the old one is about to
    /// die. When `None`, keep using the refresh token you sent.
    pub refresh_token: Option<SecretString>,
    /// The token type, normally `Bearer`.
    pub token_type: Option<String>,
    /// Lifetime of the access and ID tokens, from `ExpiresIn` (zero when absent, as in the SDK).
    pub expires_in: Duration,
    /// `now + expires_in`, with `now` as passed to [`parse_response`](crate::parse_response).
    pub expires_at: SystemTime,
    /// A device Cognito registered because the request carried no (known) device key.
    pub new_device: Option<NewDeviceMetadata>,
    /// The `x-amzn-requestid` header.
    pub request_id: Option<String>,
    /// The response's `Date` header: the server's clock when it answered (whole seconds).
    pub server_date: Option<SystemTime>,
    /// The local wall clock when the response was parsed (`now` as passed to
    /// [`parse_response`](crate::parse_response)).
    pub received_at: SystemTime,
}

/// `NewDeviceMetadata` of the authentication result.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct NewDeviceMetadata {
    /// The new device's key; send it as `DeviceKey` from now on.
    pub device_key: Option<SecretString>,
    /// The device group key.
    pub device_group_key: Option<String>,
}

/// The success body, read as the official SDK reads it: unknown keys are skipped, `null`
/// counts as absent, and a key that appears twice takes its last value. `T` is how a token is
/// read: [`FastToken`] first, `SecretString` (serde_json's checked `str`) when that fails.
struct SuccessBody<T> {
    authentication_result: Option<AuthenticationResult<T>>,
}

struct AuthenticationResult<T> {
    access_token: Option<T>,
    expires_in: Option<i32>,
    token_type: Option<String>,
    refresh_token: Option<T>,
    id_token: Option<T>,
    new_device_metadata: Option<NewDeviceBody<T>>,
}

struct NewDeviceBody<T> {
    device_key: Option<T>,
    device_group_key: Option<String>,
}

/// Implements `Deserialize` for a struct read key by key, the last occurrence of a key
/// winning, every other key skipped whatever its value.
macro_rules! last_key_wins {
    ($ty:ident, $expecting:literal, { $($key:literal => $field:ident : $value:ty),* $(,)? }) => {
        impl<'de, T: Deserialize<'de>> Deserialize<'de> for $ty<T> {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct Visitor<T>(std::marker::PhantomData<T>);
                impl<'de, T: Deserialize<'de>> serde::de::Visitor<'de> for Visitor<T> {
                    type Value = $ty<T>;
                    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                        f.write_str($expecting)
                    }
                    fn visit_map<A: serde::de::MapAccess<'de>>(
                        self,
                        mut map: A,
                    ) -> Result<$ty<T>, A::Error> {
                        #[allow(clippy::needless_update)]
                        let mut out = $ty { $($field: None,)* };
                        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
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
                d.deserialize_map(Visitor(std::marker::PhantomData))
            }
        }
    };
}

last_key_wins!(SuccessBody, "a JSON object", {
    "AuthenticationResult" => authentication_result: AuthenticationResult<T>,
});
last_key_wins!(AuthenticationResult, "an AuthenticationResult object", {
    "AccessToken" => access_token: T,
    "ExpiresIn" => expires_in: i32,
    "TokenType" => token_type: String,
    "RefreshToken" => refresh_token: T,
    "IdToken" => id_token: T,
    "NewDeviceMetadata" => new_device_metadata: NewDeviceBody<T>,
});
last_key_wins!(NewDeviceBody, "a NewDeviceMetadata object", {
    "DeviceKey" => device_key: T,
    "DeviceGroupKey" => device_group_key: String,
});

/// A token as the first reading of a success body takes it: serde_json hands over the
/// string's raw bytes, found with one `memchr` pass for the closing quote instead of the
/// byte-by-byte scan a `str` gets (three quarters of a 4 KiB body's parse), and they are kept
/// when they are exactly what the `str` reading gives: no escape, no control character, UTF-8.
/// Anything else fails this reading, and the body is read again the checked way, whose
/// verdict (value, or fault and position) stands: the two readings never disagree.
struct FastToken(SecretString);

impl<'de> Deserialize<'de> for FastToken {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = FastToken;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a string")
            }
            fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<FastToken, E> {
                Ok(FastToken(SecretString::from(text)))
            }
            /// The raw bytes of a string without escapes (serde_json's slice reader).
            fn visit_borrowed_bytes<E: serde::de::Error>(
                self,
                raw: &'de [u8],
            ) -> Result<FastToken, E> {
                match std::str::from_utf8(raw) {
                    Ok(text) if !has_control_byte(raw) => Ok(FastToken(SecretString::from(text))),
                    _ => Err(E::custom("read again, checked")),
                }
            }
            /// A string with escapes, decoded without the `str` reading's checks.
            fn visit_bytes<E: serde::de::Error>(self, _: &[u8]) -> Result<FastToken, E> {
                Err(E::custom("read again, checked"))
            }
        }
        d.deserialize_bytes(Visitor)
    }
}

/// A byte JSON forbids unescaped in a string (U+0000 to U+001F). Tested a chunk at a time
/// without an early exit inside it, so that the compiler can test many bytes at once.
fn has_control_byte(bytes: &[u8]) -> bool {
    bytes
        .chunks(64)
        .any(|chunk| chunk.iter().fold(false, |seen, &b| seen | (b < 0x20)))
}

impl SuccessBody<FastToken> {
    fn into_checked(self) -> SuccessBody<SecretString> {
        let token = |t: Option<FastToken>| t.map(|FastToken(secret)| secret);
        SuccessBody {
            authentication_result: self.authentication_result.map(|r| AuthenticationResult {
                access_token: token(r.access_token),
                expires_in: r.expires_in,
                token_type: r.token_type,
                refresh_token: token(r.refresh_token),
                id_token: token(r.id_token),
                new_device_metadata: r.new_device_metadata.map(|d| NewDeviceBody {
                    device_key: token(d.device_key),
                    device_group_key: d.device_group_key,
                }),
            }),
        }
    }
}

/// A non-blank 2xx body, read: fast when its tokens allow it, else checked.
fn read_success_body(
    body: &[u8],
) -> Result<SuccessBody<SecretString>, (error_code::ErrorBodyFault, (usize, usize))> {
    match error_code::parse_json::<SuccessBody<FastToken>>(body) {
        Ok(fast) => Ok(fast.into_checked()),
        Err(_) => error_code::parse_json::<SuccessBody<SecretString>>(body),
    }
}

/// The refresh token a 2xx body holds even when the body is otherwise unusable (cut short,
/// mistyped, without an access token): under rotation the token sent is already dead, and this
/// one is the session's only way on. Only a string at `AuthenticationResult.RefreshToken` of
/// the top-level object counts (a proxy's page that mentions a `RefreshToken` elsewhere does
/// not), its value must look like a token (the token alphabet, at most 16 KiB), and the last
/// one wins, as the last key does in a well-formed body. The walk tolerates a body cut short.
pub(crate) fn salvage_refresh_token(body: &[u8]) -> Option<SecretString> {
    /// An open container: an object with the key its value is being read for, or an array.
    enum Open {
        Object {
            key: Option<String>,
            wants_key: bool,
        },
        Array,
    }
    let mut stack: Vec<Open> = Vec::new();
    let mut found = None;
    let mut i = 0;
    while i < body.len() {
        match body[i] {
            b'{' => stack.push(Open::Object {
                key: None,
                wants_key: true,
            }),
            b'[' => stack.push(Open::Array),
            b'}' | b']' => {
                stack.pop();
            }
            b':' => {
                if let Some(Open::Object { wants_key, .. }) = stack.last_mut() {
                    *wants_key = false;
                }
            }
            b',' => {
                if let Some(Open::Object { key, wants_key }) = stack.last_mut() {
                    *key = None;
                    *wants_key = true;
                }
            }
            b'"' => {
                // A string cut short ends the walk; what was found before it stands.
                let Some(end) = string_end(body, i) else {
                    break;
                };
                let text: Option<String> = serde_json::from_slice(&body[i..end]).ok();
                i = end;
                let under_result = stack.len() == 2
                    && matches!(&stack[0], Open::Object { key: Some(parent), .. } if parent == "AuthenticationResult");
                match stack.last_mut() {
                    Some(Open::Object {
                        key,
                        wants_key: true,
                    }) => *key = text,
                    Some(Open::Object {
                        key: Some(k),
                        wants_key: false,
                    }) if under_result && k == "RefreshToken" => {
                        if let Some(value) = text.filter(|v| looks_like_token(v)) {
                            found = Some(SecretString::from(value));
                        }
                    }
                    _ => {}
                }
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    found
}

/// The index just past the string that opens at `start`, or `None` if the body ends first.
fn string_end(body: &[u8], start: usize) -> Option<usize> {
    let mut i = start + 1;
    while i < body.len() {
        match body[i] {
            b'\\' => i += 2,
            b'"' => return Some(i + 1),
            _ => i += 1,
        }
    }
    None
}

fn looks_like_token(value: &str) -> bool {
    !value.is_empty()
        && value.len() <= 16 * 1024
        && value.bytes().all(|b| {
            b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'=' | b'+' | b'/')
        })
}

/// A 2xx response to `GetTokensFromRefreshToken` to output or error.
///
/// Cognito has acted on the token by now: whatever is wrong with the body, a rotated refresh
/// token in it reaches the caller ([`ResponseError::rotated_refresh_token`]).
pub(crate) fn from_success(success: &Success<'_>) -> Result<RefreshOutput, Error> {
    let body = success.body;
    parse_success(body, success.now, success.limits, success.request_id())
        .map(|output| RefreshOutput {
            server_date: success.server_date(),
            ..output
        })
        .map_err(|(kind, detail)| {
            let rotated = salvage_refresh_token(body);
            // An excerpt of a body known to hold a live token shows nothing of it, however
            // it was spelt.
            let detail = match detail {
                Some(Detail::Text(text)) => Some(text),
                Some(Detail::Excerpt) if rotated.is_none() => success.excerpt(body),
                Some(Detail::Excerpt) | None => None,
            };
            ResponseError {
                rotated_refresh_token: rotated,
                ..success.error(kind, detail)
            }
            .into()
        })
}

/// What a failed success parse says beyond its kind.
enum Detail {
    Text(String),
    /// An excerpt of the body.
    Excerpt,
}

/// A 2xx body to output. The content type is not looked at: the official SDK does not either,
/// and refusing valid tokens over a header would, under rotation, lose the session.
fn parse_success(
    body: &[u8],
    now: SystemTime,
    limits: &ResponseLimits,
    request_id: Option<String>,
) -> Result<RefreshOutput, (ResponseErrorKind, Option<Detail>)> {
    if body.len() > limits.max_body_bytes {
        let limit = limits.max_body_bytes;
        return Err((ResponseErrorKind::BodyTooLarge { limit }, None));
    }
    // An empty body is `{}` (docs/protocol.md §2.1), which then lacks AuthenticationResult; one
    // of JSON whitespace alone too (the SDK fails to find an object there: §10, kind only).
    let parsed = if error_code::is_blank(body) {
        SuccessBody {
            authentication_result: None,
        }
    } else {
        read_success_body(body).map_err(|(fault, (line, column))| {
            let at = format!("at line {line} column {column}");
            (fault.into(), Some(Detail::Text(at)))
        })?
    };
    let result = parsed.authentication_result.ok_or((
        ResponseErrorKind::MissingAuthenticationResult,
        Some(Detail::Excerpt),
    ))?;
    let access_token = result
        .access_token
        .ok_or((ResponseErrorKind::MissingAccessToken, None))?;
    let seconds = result.expires_in.unwrap_or(0);
    let expires_in = u64::try_from(seconds)
        .map(Duration::from_secs)
        .map_err(|_| {
            (
                ResponseErrorKind::Malformed,
                Some(Detail::Text(format!("ExpiresIn is negative ({seconds})"))),
            )
        })?;
    let expires_at = now.checked_add(expires_in).ok_or((
        ResponseErrorKind::Malformed,
        Some(Detail::Text("ExpiresIn overflows the clock".into())),
    ))?;
    Ok(RefreshOutput {
        access_token,
        id_token: result.id_token,
        refresh_token: result.refresh_token,
        token_type: result.token_type,
        expires_in,
        expires_at,
        new_device: result.new_device_metadata.map(|d| NewDeviceMetadata {
            device_key: d.device_key,
            device_group_key: d.device_group_key,
        }),
        request_id,
        server_date: None,
        received_at: now,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::call::classify::RetryKind;
    use crate::error::ServiceErrorKind;
    use crate::ops::refresh::parse_response;
    use crate::protocol::response::http_date;
    use http::HeaderValue;
    use http::{HeaderMap, StatusCode};
    use secrecy::ExposeSecret;
    use std::time::UNIX_EPOCH;

    fn now() -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000)
    }

    fn parse(
        status: u16,
        headers: &[(&'static str, &str)],
        body: &str,
    ) -> Result<RefreshOutput, Error> {
        let mut map = HeaderMap::new();
        for (k, v) in headers {
            map.insert(*k, HeaderValue::from_str(v).expect("header"));
        }
        parse_response(
            StatusCode::from_u16(status).expect("status"),
            &map,
            body.as_bytes(),
            now(),
            &ResponseLimits::default(),
        )
    }

    fn response_kind(e: Error) -> ResponseErrorKind {
        match e {
            Error::Response(r) => r.kind,
            other => panic!("expected a response error, got {other:?}"),
        }
    }

    #[test]
    fn full_success_body_yields_every_field() {
        let out = parse(
            200,
            &[("x-amzn-requestid", "req-1"), ("content-type", "application/x-amz-json-1.1")],
            r#"{"AuthenticationResult":{"AccessToken":"acc","ExpiresIn":300,"TokenType":"Bearer","RefreshToken":"ref","IdToken":"id","NewDeviceMetadata":{"DeviceKey":"us-east-1_ab","DeviceGroupKey":"grp"}},"Unknown":1}"#,
        )
        .expect("success");
        assert_eq!(out.access_token.expose_secret(), "acc");
        assert_eq!(out.id_token.as_ref().map(|t| t.expose_secret()), Some("id"));
        assert_eq!(
            out.refresh_token.as_ref().map(|t| t.expose_secret()),
            Some("ref")
        );
        assert_eq!(out.token_type.as_deref(), Some("Bearer"));
        assert_eq!(out.expires_at, now() + Duration::from_secs(300));
        let dev = out.new_device.expect("device");
        assert_eq!(
            dev.device_key.as_ref().map(|k| k.expose_secret()),
            Some("us-east-1_ab")
        );
        assert_eq!(dev.device_group_key.as_deref(), Some("grp"));
        assert_eq!(out.request_id.as_deref(), Some("req-1"));
    }

    #[test]
    fn nulls_count_as_absent_and_expires_in_defaults_to_zero() {
        let out = parse(
            200,
            &[],
            r#"{"AuthenticationResult":{"AccessToken":"acc","ExpiresIn":null,"RefreshToken":null}}"#,
        )
        .expect("success");
        assert_eq!(out.expires_in, Duration::ZERO);
        assert!(out.refresh_token.is_none());
    }

    #[test]
    fn an_empty_200_has_no_authentication_result() {
        assert_eq!(
            response_kind(parse(200, &[], "").expect_err("error")),
            ResponseErrorKind::MissingAuthenticationResult
        );
        assert_eq!(
            response_kind(parse(200, &[], r#"{"AuthenticationResult":null}"#).expect_err("error")),
            ResponseErrorKind::MissingAuthenticationResult
        );
    }

    #[test]
    fn a_result_without_access_token_is_an_error() {
        assert_eq!(
            response_kind(
                parse(200, &[], r#"{"AuthenticationResult":{"IdToken":"x"}}"#).expect_err("error")
            ),
            ResponseErrorKind::MissingAccessToken
        );
    }

    #[test]
    fn truncated_and_non_json_success_bodies_are_typed() {
        assert_eq!(
            response_kind(
                parse(200, &[], r#"{"AuthenticationResult":{"AccessToken":"ab"#).expect_err("e")
            ),
            ResponseErrorKind::Truncated
        );
        assert_eq!(
            response_kind(parse(200, &[], "<html>hi</html>").expect_err("e")),
            ResponseErrorKind::NotJson
        );
        assert_eq!(
            response_kind(
                parse(200, &[], r#"{"AuthenticationResult":{"ExpiresIn":"soon"}}"#).expect_err("e")
            ),
            ResponseErrorKind::Malformed
        );
        assert_eq!(
            response_kind(parse(200, &[], r#"{} {}"#).expect_err("e")),
            ResponseErrorKind::Malformed
        );
    }

    #[test]
    fn expires_in_must_be_a_non_negative_i32() {
        for body in [
            r#"{"AuthenticationResult":{"AccessToken":"a","ExpiresIn":-1}}"#,
            r#"{"AuthenticationResult":{"AccessToken":"a","ExpiresIn":2147483648}}"#,
        ] {
            assert_eq!(
                response_kind(parse(200, &[], body).expect_err(body)),
                ResponseErrorKind::Malformed
            );
        }
    }

    #[test]
    fn valid_tokens_are_accepted_whatever_the_content_type_says() {
        for ct in [
            "text/html",
            "application/octet-stream",
            "nonsense",
            "application/json",
        ] {
            let out = parse(
                200,
                &[("content-type", ct)],
                r#"{"AuthenticationResult":{"AccessToken":"a","RefreshToken":"r"}}"#,
            )
            .expect(ct);
            assert_eq!(out.access_token.expose_secret(), "a");
        }
    }

    #[test]
    fn a_repeated_key_takes_its_last_value_at_every_level() {
        let out = parse(
            200,
            &[],
            r#"{"AuthenticationResult":{"AccessToken":"old"},"AuthenticationResult":{"AccessToken":"a1","AccessToken":"a2","RefreshToken":"r1","RefreshToken":"r2","ExpiresIn":1,"ExpiresIn":60,"NewDeviceMetadata":{"DeviceKey":"k1","DeviceKey":"k2"}}}"#,
        )
        .expect("duplicates are fine");
        assert_eq!(out.access_token.expose_secret(), "a2");
        assert_eq!(
            out.refresh_token.as_ref().map(|t| t.expose_secret()),
            Some("r2")
        );
        assert_eq!(out.expires_in, Duration::from_secs(60));
        let key = out.new_device.and_then(|d| d.device_key);
        assert_eq!(key.as_ref().map(|k| k.expose_secret()), Some("k2"));
    }

    #[test]
    fn an_escaped_key_is_read_like_the_plain_one() {
        let out = parse(
            200,
            &[],
            r#"{"Authentication\u0052esult":{"AccessToken":"a"}}"#,
        )
        .expect("escaped key");
        assert_eq!(out.access_token.expose_secret(), "a");
    }

    #[test]
    fn an_unusable_2xx_still_hands_over_the_rotated_refresh_token() {
        let token = "eyJjdHkiOiJKV1QifQ.rotated-refresh_token.x";
        for body in [
            format!(r#"{{"AuthenticationResult":{{"RefreshToken":"{token}"}}}}"#),
            format!(
                r#"{{"AuthenticationResult":{{"RefreshToken":"{token}","ExpiresIn":-5,"AccessToken":"a"}}}}"#
            ),
            format!(
                r#"{{"AuthenticationResult":{{"RefreshToken":"{token}","ExpiresIn":"soon"}}}}"#
            ),
            format!(
                r#"{{"AuthenticationResult":{{"AccessToken":"a","RefreshToken" : "{token}","IdTo"#
            ),
            format!(
                r#"{{"AuthenticationResult":{{"RefreshToken":"stale.one","AccessToken":7,"RefreshToken":"{token}"}}}}"#
            ),
        ] {
            let e = parse(200, &[], &body).expect_err(&body);
            let rotated = e
                .rotated_refresh_token()
                .map(|t| t.expose_secret().to_owned());
            assert_eq!(rotated.as_deref(), Some(token), "{body}");
            assert!(!format!("{e} {e:?}").contains("rotated-refresh"), "{e:?}");
        }
    }

    #[test]
    fn no_refresh_token_is_salvaged_from_text_inside_a_string_or_a_non_token_value() {
        for body in [
            r#"{"message":"\"RefreshToken\":\"eyJhbGciOi.forged\""}"#,
            r#"{"AuthenticationResult":{"RefreshToken":"has spaces; echo pwned"}}"#,
            r#"{"AuthenticationResult":{"RefreshToken":""}}"#,
            r#"{"AuthenticationResult":{"RefreshToken":12}}"#,
            r#"{"session":{"RefreshToken":"eyJproxy.forged.token"}}"#,
            r#"{"AuthenticationResult":{"Nested":{"RefreshToken":"eyJ.deeper.x"}}}"#,
            r#"{"AuthenticationResult":[{"RefreshToken":"eyJ.in.array"}]}"#,
            r#"[{"AuthenticationResult":{"RefreshToken":"eyJ.top.array"}}]"#,
        ] {
            let e = parse(200, &[], body).expect_err(body);
            assert!(e.rotated_refresh_token().is_none(), "{body}");
        }
        // Errors from a non-2xx never carry one: Cognito did not act on the token.
        let e = parse(400, &[], r#"{"__type":"X","RefreshToken":"eyJ.abc"}"#).expect_err("e");
        assert!(e.rotated_refresh_token().is_none());
    }

    #[test]
    fn the_date_header_and_the_receipt_time_are_kept() {
        let out = parse(
            200,
            &[("date", "Fri, 27 Nov 2026 14:27:36 GMT")],
            r#"{"AuthenticationResult":{"AccessToken":"a"}}"#,
        )
        .expect("ok");
        assert_eq!(
            out.server_date,
            Some(UNIX_EPOCH + Duration::from_secs(1_795_789_656))
        );
        assert_eq!(out.received_at, now());
        for bad in [
            "",
            "Fri, 27 Nov 2026 14:27:36 UTC",
            "Fri, 32 Nov 2026 14:27:36 GMT",
            "Fri, 27 Nov 1969 14:27:36 GMT",
            "Friday, 27-Nov-26 14:27:36 GMT",
        ] {
            assert_eq!(http_date(bad), None, "{bad}");
        }
        assert_eq!(http_date("Thu, 01 Jan 1970 00:00:00 GMT"), Some(UNIX_EPOCH));
        assert_eq!(
            http_date("Tue, 29 Feb 2028 23:59:59 GMT"),
            Some(UNIX_EPOCH + Duration::from_secs(1_835_481_599))
        );
    }

    #[test]
    fn a_body_over_the_limit_is_rejected_before_parsing() {
        let limits = ResponseLimits { max_body_bytes: 10 };
        let e = parse_response(
            StatusCode::OK,
            &HeaderMap::new(),
            &[b' '; 11],
            now(),
            &limits,
        )
        .expect_err("too large");
        assert_eq!(
            response_kind(e),
            ResponseErrorKind::BodyTooLarge { limit: 10 }
        );
    }

    #[test]
    fn every_modeled_error_code_maps_to_its_kind() {
        for (kind, code) in ServiceErrorKind::MODELED {
            let e = parse(400, &[], &format!(r#"{{"__type":"{code}","message":"m"}}"#))
                .expect_err("error");
            let s = e.as_service().expect("service error");
            assert_eq!(
                (s.kind, s.code.as_str(), s.message.as_deref()),
                (kind, code, Some("m"))
            );
        }
    }

    #[test]
    fn an_unknown_code_keeps_code_and_message() {
        let e = parse(
            400,
            &[],
            r#"{"__type":"ShinyNewException","message":"what"}"#,
        )
        .expect_err("e");
        let s = e.as_service().expect("service");
        assert_eq!(s.kind, ServiceErrorKind::Unknown);
        assert_eq!(s.code, "ShinyNewException");
        assert_eq!(s.message.as_deref(), Some("what"));
    }

    #[test]
    fn a_mock_style_error_with_header_and_json_content_type_parses() {
        let e = parse(
            400,
            &[
                ("x-amzn-errortype", "NotAuthorizedException"),
                ("content-type", "application/json"),
                ("x-amzn-requestid", "VTldbBcW"),
            ],
            r#"{"__type": "NotAuthorizedException", "message": "Refresh Token has been revoked"}"#,
        )
        .expect_err("e");
        assert!(e.requires_sign_in());
        assert_eq!(e.request_id(), Some("VTldbBcW"));
        assert_eq!(
            e.as_service().and_then(|s| s.message.as_deref()),
            Some("Refresh Token has been revoked")
        );
    }

    #[test]
    fn an_html_503_is_a_retryable_response_error() {
        let e = parse(
            503,
            &[("content-type", "text/html")],
            "<html><body>Service Unavailable</body></html>",
        )
        .expect_err("e");
        assert_eq!(e.retry_kind(), Some(RetryKind::Transient));
        assert_eq!(response_kind(e), ResponseErrorKind::NotJson);
    }

    #[test]
    fn a_header_code_survives_a_non_json_body() {
        let e = parse(
            429,
            &[("x-amzn-errortype", "TooManyRequestsException")],
            "<html>slow down</html>",
        )
        .expect_err("e");
        assert_eq!(e.retry_kind(), Some(RetryKind::Throttling));
    }

    #[test]
    fn retry_after_is_reported_only_for_retryable_errors() {
        let e = parse(
            429,
            &[("x-amz-retry-after", "1500")],
            r#"{"__type":"TooManyRequestsException"}"#,
        )
        .expect_err("e");
        assert_eq!(e.retry_after(), Some(Duration::from_millis(1500)));
        let e = parse(
            400,
            &[("x-amz-retry-after", "1500")],
            r#"{"__type":"NotAuthorizedException"}"#,
        )
        .expect_err("e");
        assert_eq!(e.retry_after(), None);
    }

    #[test]
    fn a_500_without_code_is_transient_and_a_429_without_code_is_not() {
        let e = parse(500, &[], "").expect_err("e");
        assert_eq!(e.retry_kind(), Some(RetryKind::Transient));
        let e = parse(429, &[], r#"{"__type":"Whatever"}"#).expect_err("e");
        assert_eq!(e.retry_kind(), None);
    }

    #[test]
    fn internal_error_is_retried_because_of_its_500() {
        let e = parse(500, &[], r#"{"__type":"InternalErrorException"}"#).expect_err("e");
        assert_eq!(e.retry_kind(), Some(RetryKind::Transient));
        assert!(!e.requires_sign_in());
    }

    #[test]
    fn invalid_parameter_keeps_its_reason_code() {
        let e = parse(
            400,
            &[],
            r#"{"__type":"InvalidParameterException","message":"m","reasonCode":"INVALID_X"}"#,
        )
        .expect_err("e");
        assert_eq!(
            e.as_service().and_then(|s| s.reason_code.as_deref()),
            Some("INVALID_X")
        );
    }

    #[test]
    fn a_redirect_is_a_typed_error_naming_its_location() {
        let e = parse(307, &[("location", "https://elsewhere.example/")], "").expect_err("e");
        assert!(e.to_string().contains("elsewhere.example"), "{e}");
        assert!(!e.is_retryable());
        assert_eq!(response_kind(e), ResponseErrorKind::Redirect);
    }

    /// What a reading of a success body gave, with every token shown (test only).
    fn shown(
        read: Result<SuccessBody<SecretString>, (error_code::ErrorBodyFault, (usize, usize))>,
    ) -> String {
        let token = |t: &Option<SecretString>| t.as_ref().map(|t| t.expose_secret().to_owned());
        match read {
            Ok(body) => match body.authentication_result {
                None => "no result".to_owned(),
                Some(r) => format!(
                    "{:?} {:?} {:?} {:?} {:?} {:?}",
                    token(&r.access_token),
                    r.expires_in,
                    r.token_type,
                    token(&r.refresh_token),
                    token(&r.id_token),
                    r.new_device_metadata
                        .map(|d| (token(&d.device_key), d.device_group_key)),
                ),
            },
            Err((fault, at)) => format!("{fault:?} at {at:?}"),
        }
    }

    fn checked_reading(body: &str) -> String {
        shown(error_code::parse_json::<SuccessBody<SecretString>>(
            body.as_bytes(),
        ))
    }

    #[test]
    fn tokens_with_escapes_control_characters_or_other_scripts_read_as_the_checked_reading_does() {
        for body in [
            r#"{"AuthenticationResult":{"AccessToken":"eyJh\/bGci\u002eOi"}}"#,
            r#"{"AuthenticationResult":{"AccessToken":"a\u0001b","IdToken":"\ud83d\ude00"}}"#,
            "{\"AuthenticationResult\":{\"AccessToken\":\"a\u{1}b\"}}",
            "{\"AuthenticationResult\":{\"AccessToken\":\"a\tb\"}}",
            r#"{"AuthenticationResult":{"AccessToken":"\ud800"}}"#,
            r#"{"AuthenticationResult":{"AccessToken":"\x"}}"#,
            "{\"AuthenticationResult\":{\"AccessToken\":\"jeton-\u{e9}t\u{e9}\",\"RefreshToken\":\"\u{7f}\"}}",
            r#"{"AuthenticationResult":{"AccessToken":[97,98]}}"#,
            r#"{"AuthenticationResult":{"AccessToken":"a\"b","AccessToken":"plain"}}"#,
            "{\"AuthenticationResult\":{\"AccessToken\":\"a\u{0}\",\"AccessToken\":\"plain\"}}",
            r#"{"AuthenticationResult":{"AccessToken":"a","NewDeviceMetadata":{"DeviceKey":"k\u0041"}}}"#,
            r#"{"AuthenticationResult":{"AccessToken":"cut short"#,
        ] {
            assert_eq!(
                shown(read_success_body(body.as_bytes())),
                checked_reading(body),
                "{body}"
            );
        }
        // Three of the verdicts above, spelt out.
        let escaped = r#"{"AuthenticationResult":{"AccessToken":"eyJh\/bGci\u002eOi"}}"#;
        let read = shown(read_success_body(escaped.as_bytes()));
        assert!(read.starts_with(r#"Some("eyJh/bGci.Oi")"#), "{read}");
        let control = "{\"AuthenticationResult\":{\"AccessToken\":\"a\u{1}b\"}}";
        let read = shown(read_success_body(control.as_bytes()));
        assert!(read.starts_with("NotJson"), "{read}");
        // A bad value a later key overwrites still fails the body, as in the checked reading.
        let overwritten =
            "{\"AuthenticationResult\":{\"AccessToken\":\"a\u{0}\",\"AccessToken\":\"plain\"}}";
        let read = shown(read_success_body(overwritten.as_bytes()));
        assert!(read.starts_with("NotJson"), "{read}");
    }

    /// A token value for the property below: a long plain token with one byte put in at any
    /// place (a control byte, DEL, a byte that is not UTF-8, an escape's start, a quote), a
    /// short one of odd characters, an escape, or a value that is not a string.
    fn token_value() -> impl proptest::strategy::Strategy<Value = Vec<u8>> {
        use proptest::prelude::*;
        prop_oneof![
            (
                "[A-Za-z0-9._-]{0,300}",
                any::<proptest::sample::Index>(),
                proptest::sample::select(vec![
                    0x00u8, 0x09, 0x0a, 0x1f, 0x20, 0x7f, 0x80, 0xbf, 0xc0, 0xe9, 0xff, b'\\',
                    b'"', b'a',
                ]),
                proptest::option::of(any::<proptest::sample::Index>()),
            )
                .prop_map(|(plain, at, byte, escape_at)| {
                    let mut bytes = plain.into_bytes();
                    bytes.insert(at.index(bytes.len() + 1), byte);
                    // An escape besides: decoded, the bytes are not those the `str` reading checks.
                    if let Some(escape_at) = escape_at {
                        let at = escape_at.index(bytes.len() + 1);
                        bytes.splice(at..at, *br"\/");
                    }
                    [b"\"".as_slice(), &bytes, b"\""].concat()
                }),
            "[A-Za-z0-9\\\\/\"u\t\u{0}-\u{1f}\u{7f}\u{e9}\u{1f600}]{0,12}"
                .prop_map(|odd| format!("\"{odd}\"").into_bytes()),
            proptest::sample::select(vec![
                r#""\ud83d\ude00""#,
                r#""\ud800""#,
                r#""a\/b\u002e""#,
                "[104,105]",
                "[]",
                "12",
                "true",
                "null",
                "{}",
                r#""""#,
            ])
            .prop_map(|v| v.as_bytes().to_vec()),
        ]
    }

    proptest::proptest! {
        /// Bodies built from pieces that stress the fast reading (long tokens with one odd byte
        /// anywhere, escapes, other scripts, bytes that are not UTF-8, values that are not
        /// strings, repeated keys, whitespace, cuts at any byte): its verdict is always the
        /// checked reading's.
        #[test]
        fn the_fast_reading_of_a_success_body_never_disagrees_with_the_checked_one(
            members in proptest::collection::vec(
                (
                    proptest::sample::select(vec![
                        "AccessToken", "RefreshToken", "IdToken", "TokenType", "Other",
                    ]),
                    token_value(),
                ),
                1..5,
            ),
            device_key in token_value(),
            space in proptest::sample::select(vec!["", " ", "\n\t "]),
            cut in proptest::option::of(0usize..2000),
        ) {
            let mut body = b"{\"AuthenticationResult\":{".to_vec();
            for (key, value) in &members {
                body.extend_from_slice(format!("\"{key}\"{space}:{space}").as_bytes());
                body.extend_from_slice(value);
                body.push(b',');
            }
            body.extend_from_slice(b"\"NewDeviceMetadata\":{\"DeviceKey\":");
            body.extend_from_slice(&device_key);
            body.extend_from_slice(b"}}}");
            if let Some(cut) = cut {
                body.truncate(cut.min(body.len()));
            }
            let checked = shown(error_code::parse_json::<SuccessBody<SecretString>>(&body));
            proptest::prop_assert_eq!(shown(read_success_body(&body)), checked);
        }
    }
}
