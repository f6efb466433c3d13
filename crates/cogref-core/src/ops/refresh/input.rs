//! The input of `GetTokensFromRefreshToken`: every field of `GetTokensFromRefreshTokenRequest`
//! (docs/protocol.md §1.3), validated against the model's constraints
//! ([`crate::ops::shapes`]) before anything can be sent.

use std::collections::BTreeMap;
use std::fmt;

use secrecy::{ExposeSecret, SecretString};

use crate::ops::shapes::{
    CLIENT_ID_LEN, CLIENT_ID_PATTERN, CLIENT_METADATA_LEN, CLIENT_SECRET_LEN, DEVICE_KEY_LEN,
    Field, InvalidInput, Rule, check_chars, check_device_key, check_length, check_token,
    is_word_or_plus,
};

/// The validated input of one `GetTokensFromRefreshToken` call.
///
/// Built with [`RefreshInput::builder`]; every value of this type satisfies the model's
/// constraints. `Debug` shows which optional fields are set, never a secret.
///
/// ```
/// use cogref_core::RefreshInput;
/// let input = RefreshInput::builder()
///     .refresh_token("eyJjdHkiOiJKV1QifQ.canary-refresh-token")
///     .client_id("1example23456789abcdefghij")
///     .build()?;
/// assert_eq!(input.client_id(), "1example23456789abcdefghij");
/// assert!(!format!("{input:?}").contains("canary"));
/// # Ok::<(), cogref_core::InvalidInput>(())
/// ```
#[derive(Clone, Debug)]
pub struct RefreshInput {
    refresh_token: SecretString,
    client_id: String,
    client_secret: Option<SecretString>,
    device_key: Option<SecretString>,
    client_metadata: Option<Metadata>,
}

/// `ClientMetadata`, whose `Debug` shows the keys only: values may hold personal data.
#[derive(Clone, Default)]
struct Metadata(BTreeMap<String, String>);

impl fmt::Debug for Metadata {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.0.keys()).finish()
    }
}

impl RefreshInput {
    /// Starts a builder.
    pub fn builder() -> RefreshInputBuilder {
        RefreshInputBuilder::default()
    }

    /// The refresh token.
    pub fn refresh_token(&self) -> &SecretString {
        &self.refresh_token
    }

    /// The app client id (not secret: it is public in every hosted-UI URL).
    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    /// The app client's secret, for confidential clients.
    pub fn client_secret(&self) -> Option<&SecretString> {
        self.client_secret.as_ref()
    }

    /// The confirmed device key, when device remembering is on.
    pub fn device_key(&self) -> Option<&SecretString> {
        self.device_key.as_ref()
    }

    /// Metadata passed to Lambda triggers.
    pub fn client_metadata(&self) -> Option<&BTreeMap<String, String>> {
        self.client_metadata.as_ref().map(|m| &m.0)
    }

    /// A builder holding this input's values, to change one field (for example the refresh
    /// token after rotation) and validate again.
    pub fn to_builder(&self) -> RefreshInputBuilder {
        RefreshInputBuilder {
            refresh_token: Some(self.refresh_token.clone()),
            client_id: Some(self.client_id.clone()),
            client_secret: self.client_secret.clone(),
            device_key: self.device_key.clone(),
            client_metadata: self.client_metadata.clone(),
        }
    }

    /// Returns this input with `refresh_token` in place of the current one, validated.
    pub fn with_refresh_token(
        &self,
        refresh_token: impl Into<SecretString>,
    ) -> Result<Self, InvalidInput> {
        self.to_builder().refresh_token(refresh_token).build()
    }
}

/// Builder of [`RefreshInput`]; [`build`](Self::build) validates.
#[derive(Default, Clone, Debug)]
pub struct RefreshInputBuilder {
    refresh_token: Option<SecretString>,
    client_id: Option<String>,
    client_secret: Option<SecretString>,
    device_key: Option<SecretString>,
    client_metadata: Option<Metadata>,
}

impl RefreshInputBuilder {
    /// Sets `RefreshToken` (required).
    pub fn refresh_token(mut self, token: impl Into<SecretString>) -> Self {
        self.refresh_token = Some(token.into());
        self
    }

    /// Sets `ClientId` (required).
    pub fn client_id(mut self, client_id: impl Into<String>) -> Self {
        self.client_id = Some(client_id.into());
        self
    }

    /// Sets `ClientSecret`, the raw secret of a confidential app client (not a `SECRET_HASH`).
    pub fn client_secret(mut self, secret: impl Into<SecretString>) -> Self {
        self.client_secret = Some(secret.into());
        self
    }

    /// Sets or clears `ClientSecret`.
    pub fn set_client_secret(mut self, secret: Option<SecretString>) -> Self {
        self.client_secret = secret;
        self
    }

    /// Sets `DeviceKey`, the confirmed device key from sign-in.
    pub fn device_key(mut self, key: impl Into<SecretString>) -> Self {
        self.device_key = Some(key.into());
        self
    }

    /// Sets or clears `DeviceKey`.
    pub fn set_device_key(mut self, key: Option<SecretString>) -> Self {
        self.device_key = key;
        self
    }

    /// Adds one `ClientMetadata` entry. Cognito passes these to Lambda triggers and neither
    /// stores nor encrypts them: do not put secrets here.
    pub fn client_metadata_entry(
        mut self,
        key: impl Into<String>,
        value: impl Into<String>,
    ) -> Self {
        self.client_metadata
            .get_or_insert_with(Metadata::default)
            .0
            .insert(key.into(), value.into());
        self
    }

    /// Replaces `ClientMetadata`. An empty map is sent as `{}`, `None` not at all.
    pub fn set_client_metadata(mut self, metadata: Option<BTreeMap<String, String>>) -> Self {
        self.client_metadata = metadata.map(Metadata);
        self
    }

    /// Validates every field against the model and returns the input.
    ///
    /// Fields are checked in model order, so the first error is the first bad field.
    pub fn build(self) -> Result<RefreshInput, InvalidInput> {
        let refresh_token = self.refresh_token.ok_or(InvalidInput {
            field: Field::RefreshToken,
            rule: Rule::Missing,
        })?;
        check_token(Field::RefreshToken, refresh_token.expose_secret())?;

        let client_id = self.client_id.ok_or(InvalidInput {
            field: Field::ClientId,
            rule: Rule::Missing,
        })?;
        check_length(Field::ClientId, &client_id, CLIENT_ID_LEN)?;
        check_chars(
            Field::ClientId,
            &client_id,
            CLIENT_ID_PATTERN,
            is_word_or_plus,
        )?;

        if let Some(secret) = &self.client_secret {
            let s = secret.expose_secret();
            check_length(Field::ClientSecret, s, CLIENT_SECRET_LEN)?;
            check_chars(Field::ClientSecret, s, CLIENT_ID_PATTERN, is_word_or_plus)?;
        }

        if let Some(key) = &self.device_key {
            let k = key.expose_secret();
            check_length(Field::DeviceKey, k, DEVICE_KEY_LEN)?;
            check_device_key(k)?;
        }

        if let Some(metadata) = &self.client_metadata {
            for (k, v) in &metadata.0 {
                check_length(Field::ClientMetadataKey, k, CLIENT_METADATA_LEN)?;
                check_length(Field::ClientMetadataValue, v, CLIENT_METADATA_LEN)?;
            }
        }

        Ok(RefreshInput {
            refresh_token,
            client_id,
            client_secret: self.client_secret,
            device_key: self.device_key,
            client_metadata: self.client_metadata,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::shapes::TOKEN_PATTERN;

    const TOKEN: &str = "canary.refresh-token_0123456789=";
    const CLIENT_ID: &str = "1example23456789abcdefghij";

    fn base() -> RefreshInputBuilder {
        RefreshInput::builder()
            .refresh_token(TOKEN)
            .client_id(CLIENT_ID)
    }

    fn err(b: RefreshInputBuilder) -> InvalidInput {
        b.build().expect_err("input must be rejected")
    }

    #[test]
    fn minimal_input_is_accepted() {
        let input = base().build().expect("valid");
        assert_eq!(input.client_id(), CLIENT_ID);
        assert_eq!(input.refresh_token().expose_secret(), TOKEN);
    }

    #[test]
    fn refresh_token_is_required() {
        let e = err(RefreshInput::builder().client_id(CLIENT_ID));
        assert_eq!(e.field, Field::RefreshToken);
        assert_eq!(e.rule, Rule::Missing);
    }

    #[test]
    fn client_id_is_required() {
        let e = err(RefreshInput::builder().refresh_token(TOKEN));
        assert_eq!((e.field, e.rule), (Field::ClientId, Rule::Missing));
    }

    #[test]
    fn empty_refresh_token_breaks_the_pattern() {
        let e = err(base().refresh_token(""));
        assert_eq!(e.field, Field::RefreshToken);
        assert!(matches!(e.rule, Rule::Pattern { position: None, .. }));
    }

    #[test]
    fn refresh_token_with_a_space_names_the_position() {
        let e = err(base().refresh_token("abc def"));
        assert_eq!(
            e.rule,
            Rule::Pattern {
                pattern: TOKEN_PATTERN,
                position: Some(3)
            }
        );
    }

    #[test]
    fn client_id_longer_than_128_is_rejected() {
        let e = err(base().client_id("a".repeat(129)));
        assert_eq!(
            e.rule,
            Rule::Length {
                min: 1,
                max: 128,
                actual: 129
            }
        );
    }

    #[test]
    fn client_id_allows_plus_and_underscore_but_not_hyphen() {
        assert!(base().client_id("a_b+c").build().is_ok());
        let e = err(base().client_id("a-b"));
        assert_eq!(e.field, Field::ClientId);
    }

    #[test]
    fn client_secret_must_be_24_to_64_characters() {
        assert!(base().client_secret("s".repeat(24)).build().is_ok());
        assert!(base().client_secret("s".repeat(64)).build().is_ok());
        let short = err(base().client_secret("s".repeat(23)));
        assert_eq!(short.field, Field::ClientSecret);
        let long = err(base().client_secret("s".repeat(65)));
        assert!(matches!(long.rule, Rule::Length { actual: 65, .. }));
    }

    #[test]
    fn device_key_follows_region_underscore_uuid() {
        let ok = "us-east-1_0f1e2d3c-4b5a-6978-8a9b-0c1d2e3f4a5b";
        assert!(base().device_key(ok).build().is_ok());
        for bad in [
            "nounderscore",
            "_abc",
            "us-east-1_",
            "us-east-1_XYZ",
            "a_b_g",
        ] {
            let e = err(base().device_key(bad));
            assert_eq!(e.field, Field::DeviceKey, "{bad}");
        }
        let e = err(base().device_key("a".repeat(56)));
        assert!(matches!(e.rule, Rule::Length { max: 55, .. }));
    }

    #[test]
    fn device_key_may_have_underscores_in_its_prefix() {
        assert!(base().device_key("a_b_0f-1").build().is_ok());
    }

    #[test]
    fn client_metadata_lengths_are_counted_in_characters() {
        let value = "é".repeat(131_072);
        assert!(base().client_metadata_entry("k", value).build().is_ok());
        let e = err(base().client_metadata_entry("k", "é".repeat(131_073)));
        assert_eq!(e.field, Field::ClientMetadataValue);
        assert!(base().client_metadata_entry("", "").build().is_ok());
    }

    #[test]
    fn invalid_input_never_shows_the_secret() {
        let secret = "canarySecret+0123456789"; // 23 characters: one too short
        let e = err(base().client_secret(secret));
        let shown = format!("{e} {e:?}");
        assert!(!shown.contains(secret), "{shown}");
        assert!(shown.contains("ClientSecret"), "{shown}");
    }

    #[test]
    fn with_refresh_token_replaces_only_the_token() {
        let input = base().client_secret("s".repeat(30)).build().expect("valid");
        let next = input.with_refresh_token("new.token").expect("valid");
        assert_eq!(next.refresh_token().expose_secret(), "new.token");
        assert!(next.client_secret().is_some());
    }
}
