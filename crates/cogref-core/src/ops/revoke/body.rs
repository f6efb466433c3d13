//! The JSON body of `RevokeToken` (docs/protocol.md §12.1): `Token`, `ClientId`, then
//! `ClientSecret` when set, compact, as the SDK writes them.

use secrecy::ExposeSecret;

use crate::ops::revoke::input::RevokeInput;

/// The JSON body of `input`, exactly as sent.
///
/// The values are written without an escaping pass: validation guarantees they hold only
/// characters that JSON never escapes (their patterns exclude `"`, `\` and control characters).
pub fn body_bytes(input: &RevokeInput) -> Vec<u8> {
    let token = input.token().expose_secret();
    let secret = input.client_secret().map(|s| s.expose_secret());
    let mut body = Vec::with_capacity(
        48 + token.len() + input.client_id().len() + secret.map_or(0, |s| s.len() + 18),
    );
    let field = |body: &mut Vec<u8>, name: &str, value: &str| {
        body.extend_from_slice(b"\"");
        body.extend_from_slice(name.as_bytes());
        body.extend_from_slice(b"\":\"");
        body.extend_from_slice(value.as_bytes());
        body.extend_from_slice(b"\"");
    };
    body.push(b'{');
    field(&mut body, "Token", token);
    body.push(b',');
    field(&mut body, "ClientId", input.client_id());
    if let Some(secret) = secret {
        body.push(b',');
        field(&mut body, "ClientSecret", secret);
    }
    body.push(b'}');
    body
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_written_in_model_order_and_an_unset_secret_is_left_out() {
        let input = RevokeInput::builder()
            .token("t.o-k_e=n")
            .client_id("c")
            .build()
            .expect("valid");
        assert_eq!(
            body_bytes(&input),
            br#"{"Token":"t.o-k_e=n","ClientId":"c"}"#
        );
        let input = RevokeInput::builder()
            .token("t")
            .client_id("c")
            .client_secret("s".repeat(24))
            .build()
            .expect("valid");
        let expected = format!(
            r#"{{"Token":"t","ClientId":"c","ClientSecret":"{}"}}"#,
            "s".repeat(24)
        );
        assert_eq!(body_bytes(&input), expected.as_bytes());
    }
}
