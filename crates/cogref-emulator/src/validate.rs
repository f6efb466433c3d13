//! Model constraints checked as the service checks them, and worded as it words them:
//! `1 validation error detected: Value at 'clientId' failed to satisfy constraint: Member must
//! satisfy regular expression pattern: [\w+]+` (aws/aws-cdk#31795 shows the service's text; the
//! patterns and lengths are the Smithy model's, as botocore's `service-2.json` carries them,
//! unanchored).
//!
//! The service quotes the offending value for members that are not `@sensitive`
//! (`Value 'x' at 'userPoolId'`); the emulator never quotes a value, so that no test's secret
//! can come back in an error body.

use serde_json::{Map, Value};

use crate::state::Refusal;

/// A model pattern: its text (for messages) and a matcher.
type Pattern = (&'static str, fn(&str) -> bool);

/// A string member's model constraints.
#[derive(Clone, Copy)]
pub(crate) struct Str {
    min: Option<usize>,
    max: Option<usize>,
    pattern: Option<Pattern>,
}

impl Str {
    pub(crate) const fn new(
        min: Option<usize>,
        max: Option<usize>,
        pattern: Option<Pattern>,
    ) -> Self {
        Self { min, max, pattern }
    }
}

fn word(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// `[\w+]+`
fn client_id_chars(s: &str) -> bool {
    !s.is_empty() && s.chars().all(|c| word(c) || c == '+')
}

/// `[\w-]+_[0-9a-zA-Z]+`
fn pool_id_chars(s: &str) -> bool {
    let Some((head, tail)) = s.rsplit_once('_') else {
        return false;
    };
    !head.is_empty()
        && head.chars().all(|c| word(c) || c == '-')
        && !tail.is_empty()
        && tail.chars().all(|c| c.is_ascii_alphanumeric())
}

/// `[\w-]+_[0-9a-f-]+`
fn device_key_chars(s: &str) -> bool {
    let Some((head, tail)) = s.rsplit_once('_') else {
        return false;
    };
    !head.is_empty()
        && head.chars().all(|c| word(c) || c == '-')
        && !tail.is_empty()
        && tail
            .chars()
            .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c) || c == '-')
}

/// `[A-Za-z0-9-_=.]+`
fn token_chars(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '=' | '.'))
}

/// `[\w\s+=,.@-]+` (Java's `\s`: ASCII whitespace).
fn name_chars(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| word(c) || c.is_ascii_whitespace() || c == '\u{b}' || "+=,.@-".contains(c))
}

/// `[\p{L}\p{M}\p{S}\p{N}\p{P}]+`: anything but separators and control characters. Rust's
/// standard library has no general-category lookup; whitespace and control characters are
/// the categories users meet (format characters such as U+200B are let through).
fn username_chars(s: &str) -> bool {
    !s.is_empty() && s.chars().all(|c| !c.is_whitespace() && !c.is_control())
}

/// `[\p{L}\p{M}\p{S}\p{N}\p{P}\t\n\r ]+` (`AttributeNameType`): what `username_chars` lets
/// through, plus tab, line breaks and the space.
fn attribute_name_chars(s: &str) -> bool {
    !s.is_empty()
        && s.chars().all(|c| {
            matches!(c, '\t' | '\n' | '\r' | ' ') || !(c.is_whitespace() || c.is_control())
        })
}

/// `[\S]+` (Java's `\S`: not ASCII whitespace).
fn password_chars(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| !(c.is_ascii_whitespace() || c == '\u{b}'))
}

pub(crate) const CLIENT_ID: Str = Str::new(Some(1), Some(128), Some(("[\\w+]+", client_id_chars)));
pub(crate) const POOL_ID: Str = Str::new(
    Some(1),
    Some(55),
    Some(("[\\w-]+_[0-9a-zA-Z]+", pool_id_chars)),
);
pub(crate) const CLIENT_SECRET: Str =
    Str::new(Some(24), Some(64), Some(("[\\w+]+", client_id_chars)));
pub(crate) const DEVICE_KEY: Str = Str::new(
    Some(1),
    Some(55),
    Some(("[\\w-]+_[0-9a-f-]+", device_key_chars)),
);
pub(crate) const TOKEN: Str = Str::new(None, None, Some(("[A-Za-z0-9-_=.]+", token_chars)));
pub(crate) const NAME: Str = Str::new(Some(1), Some(128), Some(("[\\w\\s+=,.@-]+", name_chars)));
pub(crate) const USERNAME: Str = Str::new(
    Some(1),
    Some(128),
    Some(("[\\p{L}\\p{M}\\p{S}\\p{N}\\p{P}]+", username_chars)),
);
pub(crate) const PASSWORD: Str = Str::new(None, Some(256), Some(("[\\S]+", password_chars)));
pub(crate) const SESSION: Str = Str::new(Some(20), Some(4096), None);
pub(crate) const STRING: Str = Str::new(Some(0), Some(131_072), None);
pub(crate) const DEVICE_NAME: Str = Str::new(Some(1), Some(1024), None);
pub(crate) const ATTRIBUTE_NAME: Str = Str::new(
    Some(1),
    Some(32),
    Some((
        "[\\p{L}\\p{M}\\p{S}\\p{N}\\p{P}\\t\\n\\r ]+",
        attribute_name_chars,
    )),
);
pub(crate) const ATTRIBUTE_VALUE: Str = Str::new(None, Some(2048), None);
/// Whether `s` is a well-formed device key (`DeviceKeyType`).
pub(crate) fn is_device_key(s: &str) -> bool {
    let len = s.encode_utf16().count();
    (1..=55).contains(&len) && device_key_chars(s)
}

/// Whether `s` satisfies `ClientSecretType`.
pub(crate) fn is_client_secret(s: &str) -> bool {
    let len = s.encode_utf16().count();
    (24..=64).contains(&len) && client_id_chars(s)
}

/// Whether `s` satisfies `ClientIdType`.
pub(crate) fn is_client_id(s: &str) -> bool {
    let len = s.encode_utf16().count();
    (1..=128).contains(&len) && client_id_chars(s)
}

/// Whether `s` satisfies `UserPoolIdType`.
pub(crate) fn is_pool_id(s: &str) -> bool {
    let len = s.encode_utf16().count();
    (1..=55).contains(&len) && pool_id_chars(s)
}

/// Whether `s` satisfies `UsernameType`.
pub(crate) fn is_username(s: &str) -> bool {
    let len = s.encode_utf16().count();
    (1..=128).contains(&len) && username_chars(s)
}

/// `clientId` from `ClientId`: the service names members in lower camel case.
fn member_name(key: &str) -> String {
    let mut chars = key.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// A request body being read: type errors end the read at once (`SerializationException`,
/// as the service's deserializer does); constraint violations are collected and reported
/// together.
pub(crate) struct Input<'a> {
    body: &'a Map<String, Value>,
    prefix: String,
    errors: Vec<String>,
}

pub(crate) fn serialization(message: impl Into<String>) -> Refusal {
    Refusal::new(400, "SerializationException", message)
}

impl<'a> Input<'a> {
    pub(crate) fn new(body: &'a Value) -> Result<Self, Refusal> {
        match body {
            Value::Object(map) => Ok(Self {
                body: map,
                prefix: String::new(),
                errors: Vec::new(),
            }),
            _ => Err(serialization(
                "The request body must be a JSON object (Start of structure expected)",
            )),
        }
    }

    fn path(&self, key: &str) -> String {
        format!("{}{}", self.prefix, member_name(key))
    }

    fn violation(&mut self, key: &str, constraint: impl std::fmt::Display) {
        let path = self.path(key);
        self.violation_at(&path, constraint);
    }

    fn violation_at(&mut self, path: &str, constraint: impl std::fmt::Display) {
        self.errors.push(format!(
            "Value at '{path}' failed to satisfy constraint: {constraint}"
        ));
    }

    fn missing(&mut self, key: &str) {
        let path = self.path(key);
        self.missing_at(&path);
    }

    fn missing_at(&mut self, path: &str) {
        self.errors.push(format!(
            "Value null at '{path}' failed to satisfy constraint: Member must not be null"
        ));
    }

    fn get(&self, key: &str) -> Option<&'a Value> {
        match self.body.get(key) {
            None | Some(Value::Null) => None,
            Some(v) => Some(v),
        }
    }

    fn wrong_type(&self, key: &str, expected: &str) -> Refusal {
        serialization(format!(
            "Unexpected JSON type for '{}': expected {expected}",
            self.path(key)
        ))
    }

    fn check_str(&mut self, key: &str, s: &str, spec: Str) {
        let path = self.path(key);
        self.check_str_at(&path, s, spec);
    }

    fn check_str_at(&mut self, path: &str, s: &str, spec: Str) {
        let len = s.encode_utf16().count();
        if let Some(max) = spec.max
            && len > max
        {
            self.violation_at(
                path,
                format_args!("Member must have length less than or equal to {max}"),
            );
        }
        let too_short = spec.min.is_some_and(|min| len < min);
        if let Some(min) = spec.min
            && too_short
        {
            self.violation_at(
                path,
                format_args!("Member must have length greater than or equal to {min}"),
            );
        }
        // Every pattern is `[…]+`, which an empty string fails. Where a minimum length already
        // refuses it, that one violation is reported; a member without one (`TokenModelType`,
        // `PasswordType`) is refused by its pattern (the emulator's reading of the model: an
        // empty token is malformed input, not an unknown token).
        if let Some((pattern, matches)) = spec.pattern
            && !(s.is_empty() && too_short)
            && !matches(s)
        {
            self.violation_at(
                path,
                format_args!("Member must satisfy regular expression pattern: {pattern}"),
            );
        }
    }

    /// An optional string member.
    pub(crate) fn opt_str(&mut self, key: &str, spec: Str) -> Result<Option<&'a str>, Refusal> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::String(s)) => {
                self.check_str(key, s, spec);
                Ok(Some(s.as_str()))
            }
            Some(_) => Err(self.wrong_type(key, "a string")),
        }
    }

    /// A required string member ("" when missing; the missing member is a violation).
    pub(crate) fn req_str(&mut self, key: &str, spec: Str) -> Result<&'a str, Refusal> {
        match self.opt_str(key, spec)? {
            Some(s) => Ok(s),
            None => {
                self.missing(key);
                Ok("")
            }
        }
    }

    /// A string member restricted to an enum.
    pub(crate) fn enum_str(
        &mut self,
        key: &str,
        values: &[&str],
        required: bool,
    ) -> Result<Option<&'a str>, Refusal> {
        match self.get(key) {
            None => {
                if required {
                    self.missing(key);
                }
                Ok(None)
            }
            Some(Value::String(s)) => {
                if !values.contains(&s.as_str()) {
                    self.violation(
                        key,
                        format_args!(
                            "Member must satisfy enum value set: [{}]",
                            values.join(", ")
                        ),
                    );
                    return Ok(None);
                }
                Ok(Some(s.as_str()))
            }
            Some(_) => Err(self.wrong_type(key, "a string")),
        }
    }

    /// An optional integer member with a range.
    pub(crate) fn opt_int(
        &mut self,
        key: &str,
        min: i64,
        max: i64,
    ) -> Result<Option<i64>, Refusal> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Number(n)) => {
                let Some(i) = n.as_i64().filter(|i| i32::try_from(*i).is_ok()) else {
                    return Err(self.wrong_type(key, "a 32-bit integer"));
                };
                if i > max {
                    self.violation(
                        key,
                        format_args!("Member must have value less than or equal to {max}"),
                    );
                } else if i < min {
                    self.violation(
                        key,
                        format_args!("Member must have value greater than or equal to {min}"),
                    );
                }
                Ok(Some(i))
            }
            Some(_) => Err(self.wrong_type(key, "an integer")),
        }
    }

    /// An optional boolean member.
    pub(crate) fn opt_bool(&mut self, key: &str) -> Result<Option<bool>, Refusal> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(_) => Err(self.wrong_type(key, "a boolean")),
        }
    }

    /// An optional list of strings.
    pub(crate) fn opt_str_list(&mut self, key: &str) -> Result<Option<Vec<&'a str>>, Refusal> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| v.as_str().ok_or_else(|| self.wrong_type(key, "strings")))
                .collect::<Result<Vec<_>, _>>()
                .map(Some),
            Some(_) => Err(self.wrong_type(key, "a list")),
        }
    }

    /// An optional list of strings from an enum (`ExplicitAuthFlows`); an unknown value is one
    /// violation of the member, and is left out of the answer.
    pub(crate) fn opt_enum_list(
        &mut self,
        key: &str,
        values: &[&str],
    ) -> Result<Option<Vec<&'a str>>, Refusal> {
        let Some(items) = self.opt_str_list(key)? else {
            return Ok(None);
        };
        if items.iter().any(|i| !values.contains(i)) {
            self.violation(
                key,
                format_args!(
                    "Member must satisfy constraint: [Member must satisfy enum value set: [{}]]",
                    values.join(", ")
                ),
            );
        }
        Ok(Some(
            items.into_iter().filter(|i| values.contains(i)).collect(),
        ))
    }

    /// An optional `AttributeListType` (`[{"Name": …, "Value": …}]`). Members are named by
    /// their one-based index, as the service names them (`'userAttributes.2.member.name'`,
    /// aws/aws-cdk#14699). Attributes without a name are left out of the answer.
    pub(crate) fn opt_attribute_list(
        &mut self,
        key: &str,
    ) -> Result<Option<Vec<(&'a str, &'a str)>>, Refusal> {
        let items = match self.get(key) {
            None => return Ok(None),
            Some(Value::Array(items)) => items,
            Some(_) => return Err(self.wrong_type(key, "a list")),
        };
        let list = self.path(key);
        let mut out = Vec::with_capacity(items.len());
        for (index, item) in items.iter().enumerate() {
            let Value::Object(attribute) = item else {
                return Err(self.wrong_type(key, "a list of structures"));
            };
            let member = format!("{list}.{}.member", index + 1);
            let text = |name: &str| match attribute.get(name) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) => Ok(Some(s.as_str())),
                Some(_) => Err(serialization(format!(
                    "Unexpected JSON type for '{member}.{}': expected a string",
                    member_name(name)
                ))),
            };
            let (name, value) = (text("Name")?, text("Value")?);
            if let Some(value) = value {
                self.check_str_at(&format!("{member}.value"), value, ATTRIBUTE_VALUE);
            }
            match name {
                None => self.missing_at(&format!("{member}.name")),
                Some(name) => {
                    self.check_str_at(&format!("{member}.name"), name, ATTRIBUTE_NAME);
                    out.push((name, value.unwrap_or("")));
                }
            }
        }
        Ok(Some(out))
    }

    /// An optional string-to-string map (`AuthParameters`, `ClientMetadata`, …).
    pub(crate) fn opt_str_map(
        &mut self,
        key: &str,
        value_spec: Str,
    ) -> Result<Option<Vec<(&'a str, &'a str)>>, Refusal> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Object(map)) => {
                let mut out = Vec::with_capacity(map.len());
                for (k, v) in map {
                    let Value::String(s) = v else {
                        return Err(self.wrong_type(key, "string values"));
                    };
                    self.check_str(key, k, STRING);
                    self.check_str(key, s, value_spec);
                    out.push((k.as_str(), s.as_str()));
                }
                Ok(Some(out))
            }
            Some(_) => Err(self.wrong_type(key, "a map")),
        }
    }

    /// A nested structure, read with its own path prefix; its violations join this input's.
    pub(crate) fn nested<T>(
        &mut self,
        key: &str,
        read: impl FnOnce(&mut Input<'a>) -> Result<T, Refusal>,
    ) -> Result<Option<T>, Refusal> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Object(map)) => {
                let mut inner = Input {
                    body: map,
                    prefix: format!("{}.", self.path(key)),
                    errors: Vec::new(),
                };
                let out = read(&mut inner)?;
                self.errors.append(&mut inner.errors);
                Ok(Some(out))
            }
            Some(_) => Err(self.wrong_type(key, "a structure")),
        }
    }

    /// `Ok` when every constraint held, otherwise the service's `InvalidParameterException`.
    pub(crate) fn finish(self) -> Result<(), Refusal> {
        match self.errors.len() {
            0 => Ok(()),
            1 => Err(invalid(format!(
                "1 validation error detected: {}",
                self.errors[0]
            ))),
            n => Err(invalid(format!(
                "{n} validation errors detected: {}",
                self.errors.join("; ")
            ))),
        }
    }
}

/// `InvalidParameterException` with `message`.
pub(crate) fn invalid(message: impl Into<String>) -> Refusal {
    Refusal::new(400, "InvalidParameterException", message)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn errors(body: Value, read: impl FnOnce(&mut Input<'_>)) -> String {
        let mut input = Input::new(&body).expect("object");
        read(&mut input);
        input.finish().err().map(|r| r.message).unwrap_or_default()
    }

    #[test]
    fn the_wording_is_the_services_with_the_models_unanchored_pattern() {
        let m = errors(json!({"ClientId": "a b"}), |i| {
            let _ = i.req_str("ClientId", CLIENT_ID);
        });
        assert_eq!(
            m,
            "1 validation error detected: Value at 'clientId' failed to satisfy constraint: Member must satisfy regular expression pattern: [\\w+]+"
        );
        let long = "a".repeat(129);
        let m = errors(json!({ "ClientId": long }), |i| {
            let _ = i.req_str("ClientId", CLIENT_ID);
        });
        assert!(
            m.ends_with("Member must have length less than or equal to 128"),
            "{m}"
        );
        let m = errors(json!({"ClientId": ""}), |i| {
            let _ = i.req_str("ClientId", CLIENT_ID);
        });
        assert!(
            m.ends_with("Member must have length greater than or equal to 1"),
            "{m}"
        );
    }

    #[test]
    fn several_violations_are_counted_and_joined_and_never_quote_a_value() {
        let m = errors(
            json!({"ClientSecret": "short!", "RefreshTokenRotation": {"Feature": "ENABLED", "RetryGracePeriodSeconds": 61}}),
            |i| {
                let _ = i.req_str("ClientId", CLIENT_ID);
                let _ = i.opt_str("ClientSecret", CLIENT_SECRET);
                let _ = i.nested("RefreshTokenRotation", |r| {
                    r.opt_int("RetryGracePeriodSeconds", 0, 60)
                });
            },
        );
        assert!(m.starts_with("4 validation errors detected: "), "{m}");
        assert!(m.contains("Value null at 'clientId'"), "{m}");
        assert!(
            m.contains("Value at 'refreshTokenRotation.retryGracePeriodSeconds' failed to satisfy constraint: Member must have value less than or equal to 60"),
            "{m}"
        );
        assert!(!m.contains("short!"), "{m}");
    }

    #[test]
    fn patterns_accept_what_the_model_accepts() {
        assert!(pool_id_chars("eu-west-1_AbC123"));
        assert!(!pool_id_chars("eu-west-1_"));
        assert!(!pool_id_chars("nounderscore"));
        assert!(device_key_chars(
            "eu-west-1_0f1e2d3c-4b5a-6978-8a9b-0c1d2e3f4a5b"
        ));
        assert!(!device_key_chars("eu-west-1_XYZ"));
        assert!(username_chars("ålice@example.com"));
        assert!(!username_chars("two words"));
        assert!(token_chars("a.b-c_d="));
        assert!(!token_chars("a b"));
    }
}
