//! The request's input: every field of `GetTokensFromRefreshTokenRequest` (docs/protocol.md §1.3),
//! validated against the model's constraints before anything can be sent.
//!
//! The official SDK validates nothing and lets the service reject bad input after a round trip;
//! here [`RefreshInputBuilder::build`] returns an [`InvalidInput`] that names the field and the
//! rule broken. The error never contains the value of a field: a client secret one character
//! short must not end up in a log.

use std::collections::BTreeMap;
use std::fmt;

use secrecy::{ExposeSecret, SecretString};

/// A field of the request, as named on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Field {
    /// `RefreshToken`
    RefreshToken,
    /// `ClientId`
    ClientId,
    /// `ClientSecret`
    ClientSecret,
    /// `DeviceKey`
    DeviceKey,
    /// A key of `ClientMetadata`.
    ClientMetadataKey,
    /// A value of `ClientMetadata`.
    ClientMetadataValue,
}

impl Field {
    /// The field's wire name.
    pub fn wire_name(self) -> &'static str {
        match self {
            Field::RefreshToken => "RefreshToken",
            Field::ClientId => "ClientId",
            Field::ClientSecret => "ClientSecret",
            Field::DeviceKey => "DeviceKey",
            Field::ClientMetadataKey => "ClientMetadata key",
            Field::ClientMetadataValue => "ClientMetadata value",
        }
    }
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.wire_name())
    }
}

/// The constraint a field broke.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Rule {
    /// A required field was not set.
    Missing,
    /// The length (in Unicode scalar values, as Smithy counts) is outside `min..=max`.
    Length {
        /// Smallest allowed length.
        min: usize,
        /// Largest allowed length.
        max: usize,
        /// The length given.
        actual: usize,
    },
    /// A character is not allowed by the field's pattern.
    Pattern {
        /// The model's pattern.
        pattern: &'static str,
        /// Zero-based character position of the first offending character, when one character
        /// is to blame (for a structural mismatch there is none).
        position: Option<usize>,
    },
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Rule::Missing => f.write_str("is required but was not set"),
            Rule::Length { min, max, actual } => {
                write!(f, "must be {min} to {max} characters long, got {actual}")
            }
            Rule::Pattern {
                pattern,
                position: Some(p),
            } => write!(
                f,
                "must match {pattern}; the character at position {p} is not allowed"
            ),
            Rule::Pattern {
                pattern,
                position: None,
            } => write!(f, "must match {pattern}"),
        }
    }
}

/// Input that breaks the model's constraints. Names the field and the rule, never the value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid input: {field} {rule}")]
pub struct InvalidInput {
    /// The field at fault.
    pub field: Field,
    /// The rule it broke.
    pub rule: Rule,
}

/// Pattern of `RefreshToken` (and of every token the service returns).
pub const TOKEN_PATTERN: &str = "^[A-Za-z0-9-_=.]+$";
/// Pattern of `ClientId` and `ClientSecret`.
pub const CLIENT_ID_PATTERN: &str = r"^[\w+]+$";
/// Pattern of `DeviceKey`.
pub const DEVICE_KEY_PATTERN: &str = r"^[\w-]+_[0-9a-f-]+$";

/// Length bounds of `ClientId`.
pub const CLIENT_ID_LEN: (usize, usize) = (1, 128);
/// Length bounds of `ClientSecret` (24..=64 in the current model; it was 1..=64 before).
pub const CLIENT_SECRET_LEN: (usize, usize) = (24, 64);
/// Length bounds of `DeviceKey`.
pub const DEVICE_KEY_LEN: (usize, usize) = (1, 55);
/// Length bounds of each `ClientMetadata` key and value.
pub const CLIENT_METADATA_LEN: (usize, usize) = (0, 131_072);

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

/// `\w` of an ECMA-262 pattern: `[A-Za-z0-9_]`.
fn is_word(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

fn is_word_or_plus(c: char) -> bool {
    is_word(c) || c == '+'
}

/// Characters of [`TOKEN_PATTERN`].
pub(crate) fn is_token_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '=' | '.')
}

/// Checks a token against [`TOKEN_PATTERN`] (non-empty, token characters only).
pub(crate) fn check_token(field: Field, token: &str) -> Result<(), InvalidInput> {
    if token.is_empty() {
        return Err(InvalidInput {
            field,
            rule: Rule::Pattern {
                pattern: TOKEN_PATTERN,
                position: None,
            },
        });
    }
    check_chars(field, token, TOKEN_PATTERN, is_token_char)
}

fn check_length(field: Field, value: &str, (min, max): (usize, usize)) -> Result<(), InvalidInput> {
    // Fast path: byte length bounds the character count from above.
    if value.len() >= min && value.len() <= max && value.is_ascii() {
        return Ok(());
    }
    let actual = value.chars().count();
    if actual < min || actual > max {
        return Err(InvalidInput {
            field,
            rule: Rule::Length { min, max, actual },
        });
    }
    Ok(())
}

fn check_chars(
    field: Field,
    value: &str,
    pattern: &'static str,
    allowed: fn(char) -> bool,
) -> Result<(), InvalidInput> {
    match value.chars().position(|c| !allowed(c)) {
        None => Ok(()),
        Some(position) => Err(InvalidInput {
            field,
            rule: Rule::Pattern {
                pattern,
                position: Some(position),
            },
        }),
    }
}

/// `^[\w-]+_[0-9a-f-]+$`: since `_` is not in the suffix class, only the last `_` can split the
/// key, so it suffices to check the parts around it.
fn check_device_key(key: &str) -> Result<(), InvalidInput> {
    check_chars(Field::DeviceKey, key, DEVICE_KEY_PATTERN, |c| {
        is_word(c) || c == '-'
    })?;
    let structural = || InvalidInput {
        field: Field::DeviceKey,
        rule: Rule::Pattern {
            pattern: DEVICE_KEY_PATTERN,
            position: None,
        },
    };
    let split = key.rfind('_').ok_or_else(structural)?;
    let (prefix, suffix) = (&key[..split], &key[split + 1..]);
    if prefix.is_empty() || suffix.is_empty() {
        return Err(structural());
    }
    let prefix_chars = prefix.chars().count();
    match suffix
        .chars()
        .position(|c| !matches!(c, '0'..='9' | 'a'..='f' | '-'))
    {
        None => Ok(()),
        Some(p) => Err(InvalidInput {
            field: Field::DeviceKey,
            rule: Rule::Pattern {
                pattern: DEVICE_KEY_PATTERN,
                position: Some(prefix_chars + 1 + p),
            },
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
