//! What `refresh` prints on stdout, checked before a byte is written.
//!
//! Every value comes from the server, which may be hostile or broken. A token is printed only if
//! it is made of the token alphabet (`A-Z a-z 0-9 - _ = .`: base64url segments joined by dots,
//! the model's `TokenModelType` pattern); a device key only in its model shape
//! (`[\w-]+_[0-9a-f-]+`); a device group key only in base64-like characters. Anything else makes
//! the whole output refused, so that `eval "$(cogref refresh --output env …)"` can never run a
//! command smuggled into a token. `--output env` also quotes every value for a POSIX shell, in
//! case a check is ever loosened.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use cogref_core::secrecy::{ExposeSecret, SecretString};
use serde_json::json;

use crate::args::Output;
use crate::exit::{Code, Failure};

/// A device registered by this refresh (`NewDeviceMetadata`).
pub(crate) struct NewDevice {
    pub(crate) key: Option<SecretString>,
    pub(crate) group_key: Option<String>,
}

/// What a refresh produced, whichever way it ran.
pub(crate) struct Tokens {
    pub(crate) access: SecretString,
    pub(crate) id: Option<SecretString>,
    /// A rotated refresh token that is not kept in a store: the caller must keep it.
    pub(crate) rotated_unstored: Option<SecretString>,
    pub(crate) rotated: bool,
    pub(crate) token_type: String,
    pub(crate) expires_in: Duration,
    pub(crate) expires_at: Option<SystemTime>,
    /// A new device not kept in a store: the caller must keep its key.
    pub(crate) new_device_unstored: Option<NewDevice>,
}

/// Whether `s` is made of the token alphabet (and not empty).
pub(crate) fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'=' | b'.'))
}

/// The model's `DeviceKeyType`: 1 to 55 characters, `[\w-]+_[0-9a-f-]+`.
fn is_device_key(s: &str) -> bool {
    let word = |b: u8| b.is_ascii_alphanumeric() || b == b'_' || b == b'-';
    let suffix = |b: u8| b.is_ascii_digit() || (b'a'..=b'f').contains(&b) || b == b'-';
    s.len() <= 55
        && s.bytes().all(word)
        // The suffix cannot hold `_`, so it starts after the last one.
        && s
            .rfind('_')
            .is_some_and(|i| i > 0 && i + 1 < s.len() && s[i + 1..].bytes().all(suffix))
}

/// A device group key: what Cognito issues is base64-like (`-AbC12xyz`).
fn is_group_key(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 1024
        && s.bytes().all(|b| {
            b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'=' | b'.' | b'+' | b'/')
        })
}

/// `value` as JSON in pure ASCII: every other character written as a `\uXXXX` escape (serde_json
/// already escapes the control characters). The same JSON value, but nothing in it can reorder or
/// hide text on a terminal (bidirectional overrides, zero-width characters).
pub(crate) fn ascii_json(value: &serde_json::Value) -> String {
    let text = value.to_string();
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_ascii() {
            out.push(c);
        } else {
            let mut units = [0u16; 2];
            for unit in c.encode_utf16(&mut units) {
                out.push_str(&format!("\\u{unit:04x}"));
            }
        }
    }
    out
}

/// `s` in single quotes for a POSIX shell: a `'` becomes `'\''`.
pub(crate) fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

fn refuse(field: &str) -> Failure {
    Failure::new(
        Code::Failure,
        format!(
            "the server's {field} has characters a real one cannot have: refusing to print \
             anything (nothing is written to stdout)"
        ),
        Some("check --endpoint-url: this does not look like Amazon Cognito"),
    )
}

fn unix(t: Option<SystemTime>) -> Option<u64> {
    t.and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map(|d| d.as_secs())
}

/// The text for stdout, or a failure if any value is not what it must be.
pub(crate) fn render(t: &Tokens, output: Output) -> Result<String, Failure> {
    let access = t.access.expose_secret();
    if !is_token(access) {
        return Err(refuse("access token"));
    }
    let id = t.id.as_ref().map(|s| s.expose_secret());
    if id.is_some_and(|s| !is_token(s)) {
        return Err(refuse("ID token"));
    }
    let refresh = t.rotated_unstored.as_ref().map(|s| s.expose_secret());
    if refresh.is_some_and(|s| !is_token(s)) {
        return Err(refuse("refresh token"));
    }
    let device_key = t
        .new_device_unstored
        .as_ref()
        .and_then(|d| d.key.as_ref())
        .map(|k| k.expose_secret());
    if device_key.is_some_and(|k| !is_device_key(k)) {
        return Err(refuse("new device key"));
    }
    let group_key = t
        .new_device_unstored
        .as_ref()
        .and_then(|d| d.group_key.as_deref());
    if group_key.is_some_and(|k| !is_group_key(k)) {
        return Err(refuse("device group key"));
    }
    let mut out = String::new();
    match output {
        Output::Token => {
            out.push_str(access);
            out.push('\n');
        }
        Output::Env => {
            let mut export = |name: &str, value: &str| {
                out.push_str(&format!("export {name}={}\n", shell_quote(value)));
            };
            export("COGNITO_ACCESS_TOKEN", access);
            if let Some(id) = id {
                export("COGNITO_ID_TOKEN", id);
            }
            if let Some(rt) = refresh {
                export("COGNITO_REFRESH_TOKEN", rt);
            }
            if let Some(key) = device_key {
                export("COGNITO_DEVICE_KEY", key);
            }
            if let Some(group) = group_key {
                export("COGNITO_DEVICE_GROUP_KEY", group);
            }
            if let Some(at) = unix(t.expires_at) {
                export("COGNITO_EXPIRES_AT", &at.to_string());
            }
        }
        Output::Json => {
            let mut value = json!({
                "access_token": access,
                "token_type": t.token_type,
                "expires_in": t.expires_in.as_secs(),
                "expires_at": unix(t.expires_at),
                "refresh_token_rotated": t.rotated,
            });
            if let Some(id) = id {
                value["id_token"] = id.into();
            }
            if let Some(rt) = refresh {
                value["refresh_token"] = rt.into();
            }
            if t.new_device_unstored.is_some() {
                value["new_device"] = json!({
                    "device_key": device_key,
                    "device_group_key": group_key,
                });
            }
            out.push_str(&ascii_json(&value));
            out.push('\n');
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens(access: &str) -> Tokens {
        Tokens {
            access: access.to_owned().into(),
            id: Some("eyJh.eyJi.c2ln".to_owned().into()),
            rotated_unstored: None,
            rotated: false,
            token_type: "Bearer".into(),
            expires_in: Duration::from_secs(3600),
            expires_at: None,
            new_device_unstored: None,
        }
    }

    #[test]
    fn a_token_outside_the_token_alphabet_is_refused_in_every_format() {
        for hostile in [
            "x'; touch PWNED; echo '",
            "a.b.c\nexport PATH=/tmp",
            "a.b.c$(id)",
            "a.b.c\u{1b}]0;owned\u{7}",
            "",
        ] {
            for output in [Output::Json, Output::Env, Output::Token] {
                let e = render(&tokens(hostile), output).expect_err(hostile);
                assert!(e.message.contains("access token"), "{}", e.message);
            }
        }
        let mut t = tokens("eyJh.eyJi.c2ln");
        t.id = Some("bad token".to_owned().into());
        assert!(render(&t, Output::Json).is_err());
    }

    #[test]
    fn env_values_are_single_quoted_for_the_shell() {
        assert_eq!(shell_quote("abc"), "'abc'");
        assert_eq!(
            shell_quote("x'; touch PWNED; echo '"),
            r"'x'\''; touch PWNED; echo '\'''"
        );
        // What `eval "$(cogref refresh --output env)"` makes of it: the value back, nothing run.
        let hostile = "x'; touch PWNED; echo '$(id)`id`";
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg("eval \"$1\"; printf %s \"$V\"")
            .arg("sh")
            .arg(format!("export V={}", shell_quote(hostile)))
            .output()
            .expect("sh");
        assert_eq!(String::from_utf8_lossy(&out.stdout), hostile);
    }

    #[test]
    fn a_new_device_is_printed_in_json_and_env_when_no_store_keeps_it() {
        let mut t = tokens("eyJh.eyJi.c2ln");
        t.new_device_unstored = Some(NewDevice {
            key: Some(
                "eu-west-1_0a1b2c3d-4e5f-6789-abcd-ef0123456789"
                    .to_owned()
                    .into(),
            ),
            group_key: Some("-kTTnSPBvz".into()),
        });
        let json: serde_json::Value =
            serde_json::from_str(&render(&t, Output::Json).expect("json")).expect("parses");
        assert_eq!(
            json["new_device"]["device_key"],
            "eu-west-1_0a1b2c3d-4e5f-6789-abcd-ef0123456789"
        );
        assert_eq!(json["new_device"]["device_group_key"], "-kTTnSPBvz");
        let env = render(&t, Output::Env).expect("env");
        assert!(
            env.contains(
                "export COGNITO_DEVICE_KEY='eu-west-1_0a1b2c3d-4e5f-6789-abcd-ef0123456789'\n"
            ) && env.contains("export COGNITO_DEVICE_GROUP_KEY='-kTTnSPBvz'\n"),
            "{env}"
        );
        t.new_device_unstored = Some(NewDevice {
            key: Some("not a device key".to_owned().into()),
            group_key: None,
        });
        assert!(render(&t, Output::Json).is_err());
    }

    #[test]
    fn json_output_is_ascii_and_means_the_same() {
        let mut t = tokens("eyJh.eyJi.c2ln");
        t.token_type = "Bearer\u{202e}\u{200b}é😀\u{1b}".into();
        let text = render(&t, Output::Json).expect("json");
        assert!(text.is_ascii(), "{text}");
        let value: serde_json::Value = serde_json::from_str(&text).expect("JSON");
        assert_eq!(value["token_type"], "Bearer\u{202e}\u{200b}é😀\u{1b}");
    }

    #[test]
    fn device_keys_follow_the_model_pattern() {
        assert!(is_device_key("us-east-1_0123abcd-ef"));
        assert!(is_device_key("a_b_0f"));
        assert!(!is_device_key("us-east-1_XYZ"));
        assert!(!is_device_key("_0f"));
        assert!(!is_device_key("abc_"));
        assert!(!is_device_key(&format!("a_{}", "0".repeat(54))));
    }
}
