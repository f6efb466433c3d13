//! The shapes several operations share, with the model's constraints (docs/protocol.md §1.3):
//! the token, app client id and client secret patterns and lengths, and the error that names
//! the field and the rule broken, never the value.
//!
//! The official SDK validates nothing and lets the service reject bad input after a round trip;
//! here every operation's input builder checks its fields with these rules before anything can
//! be sent, and returns an [`InvalidInput`] that names the field and the rule. The error never
//! contains the value of a field: a client secret one character short must not end up in a log.

use std::fmt;

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
    /// `Token` (of `RevokeToken`: the refresh token to revoke).
    Token,
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
            Field::Token => "Token",
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

/// Pattern of `RefreshToken`, of `RevokeToken`'s `Token` (`TokenModelType`), and of every token
/// the service returns.
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

/// `\w` of an ECMA-262 pattern: `[A-Za-z0-9_]`.
pub(crate) fn is_word(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

pub(crate) fn is_word_or_plus(c: char) -> bool {
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

pub(crate) fn check_length(
    field: Field,
    value: &str,
    (min, max): (usize, usize),
) -> Result<(), InvalidInput> {
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

pub(crate) fn check_chars(
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
pub(crate) fn check_device_key(key: &str) -> Result<(), InvalidInput> {
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

/// Checks `ClientId`: required, 1 to 128 characters of `[\w+]`.
pub(crate) fn check_client_id(client_id: Option<&str>) -> Result<(), InvalidInput> {
    let client_id = client_id.ok_or(InvalidInput {
        field: Field::ClientId,
        rule: Rule::Missing,
    })?;
    check_length(Field::ClientId, client_id, CLIENT_ID_LEN)?;
    check_chars(
        Field::ClientId,
        client_id,
        CLIENT_ID_PATTERN,
        is_word_or_plus,
    )
}

/// Checks `ClientSecret` when set: 24 to 64 characters of `[\w+]`.
pub(crate) fn check_client_secret(secret: Option<&str>) -> Result<(), InvalidInput> {
    match secret {
        None => Ok(()),
        Some(s) => {
            check_length(Field::ClientSecret, s, CLIENT_SECRET_LEN)?;
            check_chars(Field::ClientSecret, s, CLIENT_ID_PATTERN, is_word_or_plus)
        }
    }
}
