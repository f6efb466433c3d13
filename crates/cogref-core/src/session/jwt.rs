//! Reading the claims of a Cognito JWT, without verifying it.
//!
//! The session uses `iat` and `exp` to estimate clock skew; tools use the rest for display.
//! Nothing here checks a signature: never base an authorization decision on these claims. Verify
//! tokens against the pool's JWKS for that.

use std::fmt;

use serde::Deserialize;

/// The claims Cognito puts in access and ID tokens (those this crate reads).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[non_exhaustive]
pub struct Claims {
    /// Subject: the user's id.
    pub sub: Option<String>,
    /// Issuer: `https://cognito-idp.{region}.amazonaws.com/{userPoolId}`.
    pub iss: Option<String>,
    /// The app client (access tokens).
    pub client_id: Option<String>,
    /// The audience, the app client (ID tokens).
    pub aud: Option<String>,
    /// `access` or `id`.
    pub token_use: Option<String>,
    /// Issued at, seconds since the epoch, by the server's clock.
    pub iat: Option<i64>,
    /// Expires at, seconds since the epoch, by the server's clock.
    pub exp: Option<i64>,
    /// When the user authenticated.
    pub auth_time: Option<i64>,
    /// The token's id.
    pub jti: Option<String>,
    /// The id shared by every token of one refresh lineage.
    pub origin_jti: Option<String>,
    /// The user name (access tokens).
    pub username: Option<String>,
}

/// Why a token's claims could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ClaimsError {
    /// Not three dot-separated parts.
    NotAJwt,
    /// The payload is not base64url.
    NotBase64,
    /// The payload is not a JSON object of the expected types.
    NotJson,
}

impl fmt::Display for ClaimsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ClaimsError::NotAJwt => "the token is not a JWT (header.payload.signature)",
            ClaimsError::NotBase64 => "the token's payload is not base64url",
            ClaimsError::NotJson => "the token's payload is not a JSON object of claims",
        })
    }
}

impl std::error::Error for ClaimsError {}

/// Decodes the payload of `token` (a compact JWS), without verifying anything.
///
/// ```
/// use cogref_core::jwt::decode_claims;
/// // {"sub":"u1","iat":1700000000,"exp":1700003600,"token_use":"access"}
/// let token = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ1MSIsImlhdCI6MTcwMDAwMDAwMCwiZXhwIjoxNzAwMDAzNjAwLCJ0b2tlbl91c2UiOiJhY2Nlc3MifQ.c2ln";
/// let claims = decode_claims(token)?;
/// assert_eq!((claims.iat, claims.exp), (Some(1_700_000_000), Some(1_700_003_600)));
/// # Ok::<(), cogref_core::jwt::ClaimsError>(())
/// ```
pub fn decode_claims(token: &str) -> Result<Claims, ClaimsError> {
    let mut parts = token.split('.');
    let (Some(_header), Some(payload), Some(_signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(ClaimsError::NotAJwt);
    };
    // Some encoders pad; the JWT spec says not to, so accept both.
    let bytes = base64url_decode(payload.trim_end_matches('=')).ok_or(ClaimsError::NotBase64)?;
    serde_json::from_slice(&bytes).map_err(|_| ClaimsError::NotJson)
}

/// Unpadded base64url (RFC 4648 §5), as strict as the `base64` crate's `URL_SAFE_NO_PAD`: any
/// byte outside the alphabet (`=` included), a length of 4n+1 and non-zero unused bits in the
/// last symbol are rejected. Twenty lines in place of a dependency of the core.
fn base64url_decode(text: &str) -> Option<Vec<u8>> {
    if text.len() % 4 == 1 {
        return None;
    }
    let mut out = Vec::with_capacity(text.len() / 4 * 3 + 2);
    let (mut acc, mut bits) = (0u32, 0u32);
    for &c in text.as_bytes() {
        let value = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'-' => 62,
            b'_' => 63,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(value);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    // What is left (0, 2 or 4 bits) pads the last symbol and must be zero.
    (acc == 0).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use proptest::prelude::*;

    fn jwt(payload: &str) -> String {
        format!(
            "eyJhbGciOiJSUzI1NiJ9.{}.c2ln",
            URL_SAFE_NO_PAD.encode(payload)
        )
    }

    #[test]
    fn reads_cognito_access_token_claims() {
        let c = decode_claims(&jwt(
            r#"{"sub":"s","iss":"https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_abc","client_id":"c","origin_jti":"o","event_id":"e","token_use":"access","scope":"aws.cognito.signin.user.admin","auth_time":1,"exp":3,"iat":2,"jti":"j","username":"u"}"#,
        ))
        .expect("claims");
        assert_eq!(c.token_use.as_deref(), Some("access"));
        assert_eq!(c.origin_jti.as_deref(), Some("o"));
        assert_eq!((c.auth_time, c.iat, c.exp), (Some(1), Some(2), Some(3)));
    }

    #[test]
    fn rejects_what_is_not_a_jwt() {
        assert_eq!(decode_claims("opaque"), Err(ClaimsError::NotAJwt));
        assert_eq!(decode_claims("a.b.c.d.e"), Err(ClaimsError::NotAJwt));
        assert_eq!(decode_claims("a.!!!.c"), Err(ClaimsError::NotBase64));
        assert_eq!(decode_claims(&jwt("[1]")), Err(ClaimsError::NotJson));
        assert_eq!(
            decode_claims(&jwt(r#"{"exp":"soon"}"#)),
            Err(ClaimsError::NotJson)
        );
    }

    #[test]
    fn base64url_rejects_what_the_base64_crate_rejects() {
        // 4n+1 characters, non-zero unused bits, padding and the standard alphabet's + and /.
        for bad in ["A", "AAAAB", "AB", "AAB", "AA==", "A+", "A/", "QQ=", " QQ"] {
            assert_eq!(base64url_decode(bad), None, "{bad:?}");
            assert!(URL_SAFE_NO_PAD.decode(bad).is_err(), "{bad:?}");
        }
        assert_eq!(base64url_decode("").as_deref(), Some(&b""[..]));
        assert_eq!(base64url_decode("QQ").as_deref(), Some(&b"A"[..]));
        assert_eq!(base64url_decode("-_8").as_deref(), Some(&[0xfb, 0xff][..]));
    }

    proptest! {
        #[test]
        fn base64url_round_trips_the_base64_crates_encoding(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let text = URL_SAFE_NO_PAD.encode(&bytes);
            prop_assert_eq!(base64url_decode(&text), Some(bytes));
        }

        #[test]
        fn base64url_agrees_with_the_base64_crate_on_any_text(text in "[A-Za-z0-9_=+/.-]{0,12}") {
            prop_assert_eq!(base64url_decode(&text), URL_SAFE_NO_PAD.decode(&text).ok());
        }
    }
}
