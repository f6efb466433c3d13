//! Reading the claims of a Cognito JWT, without verifying it.
//!
//! The session uses `iat` and `exp` to estimate clock skew; tools use the rest for display.
//! Nothing here checks a signature: never base an authorization decision on these claims. Verify
//! tokens against the pool's JWKS for that.

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
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
    let bytes = URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .map_err(|_| ClaimsError::NotBase64)?;
    serde_json::from_slice(&bytes).map_err(|_| ClaimsError::NotJson)
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
