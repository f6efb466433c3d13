//! The JSON body of `GetTokensFromRefreshToken` (docs/protocol.md §1.3).

use secrecy::ExposeSecret;

use crate::ops::refresh::input::RefreshInput;

/// The JSON body of `input`, exactly as sent: compact, fields in model order, unset fields
/// omitted (never `null`), an empty metadata map written as `{}`.
///
/// The token, client id, client secret and device key are written without an escaping pass:
/// validation guarantees they hold only characters that JSON never escapes (their patterns
/// exclude `"`, `\` and control characters). `ClientMetadata` holds arbitrary text and goes
/// through `serde_json`, whose escaping is byte-for-byte the SDK's (`aws-smithy-json` tests
/// itself against it).
pub fn body_bytes(input: &RefreshInput) -> Vec<u8> {
    let token = input.refresh_token().expose_secret();
    let secret = input.client_secret().map(|s| s.expose_secret());
    let device = input.device_key().map(|s| s.expose_secret());
    let capacity = 64
        + token.len()
        + input.client_id().len()
        + secret.map_or(0, |s| s.len() + 16)
        + device.map_or(0, |d| d.len() + 16);
    let mut body = Vec::with_capacity(capacity);
    let field = |body: &mut Vec<u8>, name: &str, value: &str| {
        body.extend_from_slice(b"\"");
        body.extend_from_slice(name.as_bytes());
        body.extend_from_slice(b"\":\"");
        body.extend_from_slice(value.as_bytes());
        body.extend_from_slice(b"\"");
    };
    body.push(b'{');
    field(&mut body, "RefreshToken", token);
    body.push(b',');
    field(&mut body, "ClientId", input.client_id());
    if let Some(secret) = secret {
        body.push(b',');
        field(&mut body, "ClientSecret", secret);
    }
    if let Some(device) = device {
        body.push(b',');
        field(&mut body, "DeviceKey", device);
    }
    if let Some(metadata) = input.client_metadata() {
        body.extend_from_slice(b",\"ClientMetadata\":");
        // Writing a string map into a Vec cannot fail.
        serde_json::to_writer(&mut body, metadata)
            .unwrap_or_else(|_| unreachable!("a string map serializes"));
    }
    body.push(b'}');
    body
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn control_characters_in_metadata_are_escaped_as_the_sdk_does() {
        let input = RefreshInput::builder()
            .refresh_token("t")
            .client_id("c")
            .client_metadata_entry("k", "\u{8}\u{c}\n\r\t\u{1}\u{1f}\"\\é/")
            .build()
            .expect("valid");
        assert_eq!(
            String::from_utf8(body_bytes(&input)).expect("utf-8"),
            r#"{"RefreshToken":"t","ClientId":"c","ClientMetadata":{"k":"\b\f\n\r\t\u0001\u001f\"\\é/"}}"#
        );
    }

    #[test]
    fn empty_metadata_is_sent_as_an_empty_object() {
        let input = RefreshInput::builder()
            .refresh_token("t")
            .client_id("c")
            .set_client_metadata(Some(BTreeMap::new()))
            .build()
            .expect("valid");
        assert_eq!(
            body_bytes(&input),
            br#"{"RefreshToken":"t","ClientId":"c","ClientMetadata":{}}"#
        );
    }
}
