//! The input of `RevokeToken`: `Token` (the refresh token to revoke), `ClientId` and, for a
//! confidential app client, `ClientSecret` (docs/protocol.md §12.1), validated against the
//! model's constraints ([`crate::ops::shapes`]) before anything can be sent.

use secrecy::{ExposeSecret, SecretString};

use crate::ops::refresh::RefreshInput;
use crate::ops::shapes::{
    Field, InvalidInput, Rule, check_client_id, check_client_secret, check_token,
};

/// The validated input of one `RevokeToken` call.
///
/// Built with [`RevokeInput::builder`], or from the input of the refreshes it ends
/// ([`RevokeInput::from_refresh`]); every value satisfies the model's constraints. `Debug` shows
/// the client id and whether a secret is set, never the token or the secret.
///
/// ```
/// use cogref_core::RevokeInput;
/// let input = RevokeInput::builder()
///     .token("eyJjdHkiOiJKV1QifQ.canary-refresh-token")
///     .client_id("1example23456789abcdefghij")
///     .build()?;
/// assert_eq!(input.client_id(), "1example23456789abcdefghij");
/// assert!(!format!("{input:?}").contains("canary"));
/// # Ok::<(), cogref_core::InvalidInput>(())
/// ```
#[derive(Clone)]
pub struct RevokeInput {
    token: SecretString,
    client_id: String,
    client_secret: Option<SecretString>,
}

impl std::fmt::Debug for RevokeInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RevokeInput")
            .field("token", &"[redacted]")
            .field("client_id", &self.client_id)
            .field(
                "client_secret",
                &self.client_secret.as_ref().map(|_| "[redacted]"),
            )
            .finish()
    }
}

impl RevokeInput {
    /// Starts a builder.
    pub fn builder() -> RevokeInputBuilder {
        RevokeInputBuilder::default()
    }

    /// The input that revokes `input`'s refresh token, with its client id and secret.
    pub fn from_refresh(input: &RefreshInput) -> Self {
        // A RefreshInput's token, client id and secret already satisfy the same constraints.
        Self {
            token: input.refresh_token().clone(),
            client_id: input.client_id().to_owned(),
            client_secret: input.client_secret().cloned(),
        }
    }

    /// The refresh token to revoke.
    pub fn token(&self) -> &SecretString {
        &self.token
    }

    /// The app client id the token was issued to.
    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    /// The app client's secret, for confidential clients.
    pub fn client_secret(&self) -> Option<&SecretString> {
        self.client_secret.as_ref()
    }
}

/// Builder of [`RevokeInput`]; [`build`](Self::build) validates.
#[derive(Default, Clone)]
pub struct RevokeInputBuilder {
    token: Option<SecretString>,
    client_id: Option<String>,
    client_secret: Option<SecretString>,
}

impl std::fmt::Debug for RevokeInputBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RevokeInputBuilder")
            .field("token", &self.token.as_ref().map(|_| "[redacted]"))
            .field("client_id", &self.client_id)
            .field(
                "client_secret",
                &self.client_secret.as_ref().map(|_| "[redacted]"),
            )
            .finish()
    }
}

impl RevokeInputBuilder {
    /// Sets `Token`, the refresh token to revoke (required).
    pub fn token(mut self, token: impl Into<SecretString>) -> Self {
        self.token = Some(token.into());
        self
    }

    /// Sets `ClientId` (required).
    pub fn client_id(mut self, client_id: impl Into<String>) -> Self {
        self.client_id = Some(client_id.into());
        self
    }

    /// Sets `ClientSecret`, the raw secret of a confidential app client.
    pub fn client_secret(mut self, secret: impl Into<SecretString>) -> Self {
        self.client_secret = Some(secret.into());
        self
    }

    /// Sets or clears `ClientSecret`.
    pub fn set_client_secret(mut self, secret: Option<SecretString>) -> Self {
        self.client_secret = secret;
        self
    }

    /// Validates every field against the model, in model order, and returns the input.
    pub fn build(self) -> Result<RevokeInput, InvalidInput> {
        let token = self.token.ok_or(InvalidInput {
            field: Field::Token,
            rule: Rule::Missing,
        })?;
        check_token(Field::Token, token.expose_secret())?;
        check_client_id(self.client_id.as_deref())?;
        check_client_secret(self.client_secret.as_ref().map(|s| s.expose_secret()))?;
        Ok(RevokeInput {
            token,
            client_id: self.client_id.unwrap_or_default(),
            client_secret: self.client_secret,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_and_client_id_are_required_and_checked_in_model_order() {
        let e = RevokeInput::builder()
            .client_id("c")
            .build()
            .expect_err("no token");
        assert_eq!((e.field, e.rule), (Field::Token, Rule::Missing));
        let e = RevokeInput::builder()
            .token("t")
            .build()
            .expect_err("no client");
        assert_eq!((e.field, e.rule), (Field::ClientId, Rule::Missing));
        let e = RevokeInput::builder()
            .token("has space")
            .client_id("c")
            .build()
            .expect_err("pattern");
        assert_eq!(e.field, Field::Token);
        let e = RevokeInput::builder()
            .token("")
            .client_id("c")
            .build()
            .expect_err("empty");
        assert_eq!(e.field, Field::Token);
        let e = RevokeInput::builder()
            .token("t")
            .client_id("a-b")
            .build()
            .expect_err("client id pattern");
        assert_eq!(e.field, Field::ClientId);
    }

    #[test]
    fn the_client_secret_must_be_24_to_64_characters() {
        let base = || RevokeInput::builder().token("t").client_id("c");
        assert!(base().client_secret("s".repeat(24)).build().is_ok());
        let e = base()
            .client_secret("s".repeat(23))
            .build()
            .expect_err("short");
        assert_eq!(e.field, Field::ClientSecret);
        assert!(base().client_secret("s".repeat(65)).build().is_err());
    }

    #[test]
    fn from_refresh_takes_the_token_client_and_secret() {
        let refresh = RefreshInput::builder()
            .refresh_token("canary.refresh")
            .client_id("client")
            .client_secret("s".repeat(30))
            .device_key("eu-west-1_0f")
            .build()
            .expect("valid");
        let revoke = RevokeInput::from_refresh(&refresh);
        assert_eq!(revoke.token().expose_secret(), "canary.refresh");
        assert_eq!(revoke.client_id(), "client");
        assert_eq!(
            revoke.client_secret().map(|s| s.expose_secret().to_owned()),
            Some("s".repeat(30))
        );
    }

    #[test]
    fn debug_never_shows_the_token_or_the_secret() {
        let secret = "CANARYsecretCANARYsecret0";
        let builder = RevokeInput::builder()
            .token("CANARY.token.value")
            .client_id("client")
            .client_secret(secret);
        let input = builder.clone().build().expect("valid");
        let shown = format!("{builder:?} {input:?}");
        assert!(!shown.contains("CANARY"), "{shown}");
        assert!(shown.contains("client"), "{shown}");
    }
}
