//! The serialized form of a token set, shared by every store that keeps bytes (a file, a Redis
//! value): versioned JSON, `{"format":"cogref-tokens","version":1,…}`.
//!
//! [`encode`] and [`decode`] are public so that a store in another crate writes exactly what
//! [`FileStore`](crate::FileStore) writes. Neither ever puts a token in an error.
//!
//! A lineage ended by a sign-out is kept as a **tombstone**: the markers, the binding and
//! `signed_out_at_ms`, and no token at all (`{"format":"cogref-tokens","version":1,
//! "signed_out_at_ms":…,"client_id":…,"endpoint":…}`), read back as a
//! [`TokenSet::signed_out`]. A cogref that predates tombstones reads one as a corrupt set
//! (no `refresh_token`) and never uses it.
//!
//! ```
//! use cogref_session::TokenSet;
//! use cogref_session::format::{decode, encode};
//! use cogref_session::secrecy::ExposeSecret;
//!
//! let set = TokenSet::from_refresh_token("eyJjdHkiOiJKV1QiLCJlbmMiOiJBMjU2R0NNIn0.e30", None);
//! let bytes = encode(&set);
//! let back = decode(bytes.expose_secret()).unwrap();
//! assert!(back.same_refresh_token(&set));
//! assert!(decode(br#"{"format":"cogref-tokens","version":9}"#).is_err());
//! ```

use std::borrow::Cow;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use cogref_core::TokenSet;
use cogref_core::secrecy::{ExposeSecret, SecretSlice, SecretString};
use serde::{Deserialize, Serialize};

/// The version of the stored format that this build reads and writes.
pub const FORMAT_VERSION: u64 = 1;

/// The `format` marker of the stored JSON.
const FORMAT_NAME: &str = "cogref-tokens";

/// Why bytes are not a token set this build can read. Never contains any of the content.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FormatError {
    /// Not a token set: not JSON, another program's data, a field missing or mistyped.
    #[error("{0}")]
    Corrupt(String),
    /// Written by a cogref with a newer format.
    #[error("format version {found}; this cogref reads version {FORMAT_VERSION}")]
    UnsupportedVersion {
        /// The version found.
        found: u64,
    },
}

/// The serialized form (format version 1).
#[derive(Serialize, Deserialize)]
struct StoredTokens<'a> {
    format: Cow<'a, str>,
    version: u64,
    /// Absent only in a tombstone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    refresh_token: Option<Cow<'a, str>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    access_token: Option<Cow<'a, str>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    id_token: Option<Cow<'a, str>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    device_key: Option<Cow<'a, str>>,
    /// Milliseconds since the epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    expires_at_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    lifetime_secs: Option<u64>,
    /// When the refresh that obtained the tokens started, milliseconds since the epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    refreshed_at_ms: Option<u64>,
    /// The app client the refresh token belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    client_id: Option<Cow<'a, str>>,
    /// The endpoint the tokens came from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    endpoint: Option<Cow<'a, str>>,
    /// When the lineage began (sign-in), by the server's clock, milliseconds since the epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    signed_in_at_ms: Option<u64>,
    /// The refresh-token validity the application stated, in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    refresh_token_validity_secs: Option<u64>,
    /// Cognito's clock minus the local one, in seconds, when the tokens were obtained.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    clock_skew_secs: Option<i64>,
    /// A tombstone: the lineage was signed out then, milliseconds since the epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    signed_out_at_ms: Option<u64>,
    /// The store's write counter, for stores that keep it inside the value (the file store).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    generation: Option<u64>,
}

/// Only the markers, read first so that a newer format gets its own error.
#[derive(Deserialize)]
struct Probe {
    format: Option<String>,
    version: Option<u64>,
    generation: Option<u64>,
}

/// The bytes of `tokens` in the current format. They hold the tokens, hence the secret wrapper.
pub fn encode(tokens: &TokenSet) -> SecretSlice<u8> {
    encode_with_generation(tokens, None)
}

/// The token set in `bytes`.
pub fn decode(bytes: &[u8]) -> Result<TokenSet, FormatError> {
    decode_with_generation(bytes).map(|(tokens, _)| tokens)
}

pub(crate) fn encode_with_generation(
    tokens: &TokenSet,
    generation: Option<u64>,
) -> SecretSlice<u8> {
    fn borrow(s: &SecretString) -> Cow<'_, str> {
        Cow::Borrowed(s.expose_secret())
    }
    let binding = (
        tokens.client_id.as_deref().map(Cow::Borrowed),
        tokens.endpoint.as_deref().map(Cow::Borrowed),
    );
    let stored = match tokens.signed_out_at {
        // A tombstone keeps nothing of the lineage but its binding: no token survives a
        // sign-out in the store.
        Some(at) => StoredTokens {
            format: FORMAT_NAME.into(),
            version: FORMAT_VERSION,
            refresh_token: None,
            access_token: None,
            id_token: None,
            device_key: None,
            expires_at_ms: None,
            lifetime_secs: None,
            refreshed_at_ms: None,
            client_id: binding.0,
            endpoint: binding.1,
            signed_in_at_ms: None,
            refresh_token_validity_secs: None,
            clock_skew_secs: None,
            signed_out_at_ms: Some(epoch_ms(at)),
            generation,
        },
        None => StoredTokens {
            format: FORMAT_NAME.into(),
            version: FORMAT_VERSION,
            refresh_token: Some(borrow(&tokens.refresh_token)),
            access_token: tokens.access_token.as_ref().map(borrow),
            id_token: tokens.id_token.as_ref().map(borrow),
            device_key: tokens.device_key.as_ref().map(borrow),
            expires_at_ms: tokens.expires_at.map(epoch_ms),
            lifetime_secs: tokens.lifetime.map(|d| d.as_secs()),
            refreshed_at_ms: tokens.refreshed_at.map(epoch_ms),
            client_id: binding.0,
            endpoint: binding.1,
            signed_in_at_ms: tokens.signed_in_at.map(epoch_ms),
            refresh_token_validity_secs: tokens.refresh_token_validity.map(|d| d.as_secs()),
            clock_skew_secs: tokens.clock_skew_secs,
            signed_out_at_ms: None,
            generation,
        },
    };
    // Serializing strings and integers into a Vec cannot fail.
    serde_json::to_vec(&stored).unwrap_or_default().into()
}

fn epoch_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Ten years in seconds: Cognito's tokens live a day at most and a refresh token ten years at
/// most; a stored duration or skew beyond it is corrupt.
const TEN_YEARS_SECS: u64 = 10 * 365 * 24 * 3600;

/// The first millisecond of the year 10000: no token lives that long, and every platform's
/// clock holds it.
const LAST_MS: u64 = 253_402_300_800_000;

/// A stored time, or `Corrupt` if it is not one a token could have.
fn from_epoch_ms(ms: u64, field: &str) -> Result<SystemTime, FormatError> {
    let out_of_range = || FormatError::Corrupt(format!("\"{field}\" is out of range"));
    if ms >= LAST_MS {
        return Err(out_of_range());
    }
    UNIX_EPOCH
        .checked_add(Duration::from_millis(ms))
        .ok_or_else(out_of_range)
}

/// serde_json's messages can quote the content (a token): keep only positions.
fn position(e: &serde_json::Error) -> String {
    format!("line {} column {}", e.line(), e.column())
}

pub(crate) fn decode_with_generation(bytes: &[u8]) -> Result<(TokenSet, Option<u64>), FormatError> {
    let probe = read_probe(bytes)?;
    if probe.format.as_deref() != Some(FORMAT_NAME) {
        return Err(FormatError::Corrupt(
            "not a cogref token set (no \"format\":\"cogref-tokens\")".into(),
        ));
    }
    match probe.version {
        Some(FORMAT_VERSION) => {}
        Some(found) => return Err(FormatError::UnsupportedVersion { found }),
        None => return Err(FormatError::Corrupt("no \"version\"".into())),
    }
    let stored: StoredTokens<'_> = serde_json::from_slice(bytes).map_err(|e| {
        FormatError::Corrupt(format!(
            "fields of the wrong type or missing at {}",
            position(&e)
        ))
    })?;
    let secret = |s: Cow<'_, str>| SecretString::from(s.into_owned());
    let binding = (
        stored.client_id.map(Cow::into_owned),
        stored.endpoint.map(Cow::into_owned),
    );
    if let Some(ms) = stored.signed_out_at_ms {
        let holds_a_token = stored.refresh_token.is_some()
            || stored.access_token.is_some()
            || stored.id_token.is_some()
            || stored.device_key.is_some();
        if holds_a_token {
            return Err(FormatError::Corrupt(
                "a signed-out set (\"signed_out_at_ms\") that holds tokens".into(),
            ));
        }
        let at = from_epoch_ms(ms, "signed_out_at_ms")?;
        let tombstone = TokenSet::signed_out(at).bound_to(binding.0, binding.1);
        return Ok((tombstone, stored.generation));
    }
    let Some(refresh_token) = stored.refresh_token else {
        return Err(FormatError::Corrupt("no \"refresh_token\"".into()));
    };
    let expires_at = stored
        .expires_at_ms
        .map(|ms| from_epoch_ms(ms, "expires_at_ms"))
        .transpose()?;
    let refreshed_at = stored
        .refreshed_at_ms
        .map(|ms| from_epoch_ms(ms, "refreshed_at_ms"))
        .transpose()?;
    let signed_in_at = stored
        .signed_in_at_ms
        .map(|ms| from_epoch_ms(ms, "signed_in_at_ms"))
        .transpose()?;
    // Cognito's tokens live a day at most; ten years is a bound no real set comes near.
    for (value, field) in [
        (stored.lifetime_secs, "lifetime_secs"),
        (
            stored.refresh_token_validity_secs,
            "refresh_token_validity_secs",
        ),
    ] {
        if value.is_some_and(|l| l > TEN_YEARS_SECS) {
            return Err(FormatError::Corrupt(format!("\"{field}\" is out of range")));
        }
    }
    if stored
        .clock_skew_secs
        .is_some_and(|s| s.unsigned_abs() > TEN_YEARS_SECS)
    {
        return Err(FormatError::Corrupt(
            "\"clock_skew_secs\" is out of range".into(),
        ));
    }
    let mut tokens = TokenSet::new(
        secret(refresh_token),
        stored.access_token.map(secret),
        stored.id_token.map(secret),
        stored.device_key.map(secret),
        expires_at,
        stored.lifetime_secs.map(Duration::from_secs),
    )
    .with_refreshed_at(refreshed_at)
    .with_signed_in_at(signed_in_at)
    .bound_to(binding.0, binding.1);
    tokens.refresh_token_validity = stored.refresh_token_validity_secs.map(Duration::from_secs);
    tokens.clock_skew_secs = stored.clock_skew_secs;
    Ok((tokens, stored.generation))
}

/// The write counter of stored bytes, without reading the tokens.
pub(crate) fn generation(bytes: &[u8]) -> Result<Option<u64>, FormatError> {
    read_probe(bytes).map(|p| p.generation)
}

fn read_probe(bytes: &[u8]) -> Result<Probe, FormatError> {
    serde_json::from_slice(bytes)
        .map_err(|e| FormatError::Corrupt(format!("not a JSON object at {}", position(&e))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_set_round_trips_with_its_generation() {
        let set = TokenSet::new(
            "r".to_owned().into(),
            Some("a".to_owned().into()),
            None,
            None,
            Some(UNIX_EPOCH + Duration::from_millis(1_700_000_000_123)),
            Some(Duration::from_secs(3600)),
        );
        let bytes = encode_with_generation(&set, Some(7));
        let (back, generation) = decode_with_generation(bytes.expose_secret()).expect("decodes");
        assert_eq!(generation, Some(7));
        assert!(back.same_refresh_token(&set));
        assert_eq!(back.expires_at, set.expires_at);
        assert_eq!(back.lifetime, set.lifetime);
    }

    #[test]
    fn the_binding_and_refresh_time_round_trip_and_old_files_have_none() {
        let set = TokenSet::from_refresh_token("r", None)
            .with_refreshed_at(Some(UNIX_EPOCH + Duration::from_millis(1_700_000_000_500)))
            .with_signed_in_at(Some(UNIX_EPOCH + Duration::from_secs(1_690_000_000)))
            .bound_to(Some("client".into()), Some("https://idp.example/".into()));
        let back = decode(encode(&set).expose_secret()).expect("decodes");
        assert_eq!(back.refreshed_at, set.refreshed_at);
        assert_eq!(back.signed_in_at, set.signed_in_at);
        assert_eq!(back.client_id.as_deref(), Some("client"));
        assert_eq!(back.endpoint.as_deref(), Some("https://idp.example/"));
        let old = decode(br#"{"format":"cogref-tokens","version":1,"refresh_token":"r"}"#)
            .expect("a file written before the binding");
        assert_eq!(
            (old.client_id, old.endpoint, old.refreshed_at),
            (None, None, None)
        );
    }

    #[test]
    fn a_stored_time_beyond_the_clock_is_corrupt_not_a_panic() {
        for field in [
            "expires_at_ms",
            "refreshed_at_ms",
            "signed_in_at_ms",
            "lifetime_secs",
        ] {
            let bytes = format!(
                r#"{{"format":"cogref-tokens","version":1,"refresh_token":"r","{field}":{}}}"#,
                u64::MAX
            );
            assert!(matches!(
                decode(bytes.as_bytes()),
                Err(FormatError::Corrupt(_))
            ));
        }
    }

    #[test]
    fn a_tombstone_round_trips_with_its_binding_and_no_token() {
        let at = UNIX_EPOCH + Duration::from_millis(1_800_000_000_250);
        let tombstone =
            TokenSet::signed_out(at).bound_to(Some("client".into()), Some("https://idp/".into()));
        let bytes = encode(&tombstone);
        let text = std::str::from_utf8(bytes.expose_secret()).expect("utf-8");
        assert!(
            !text.contains("refresh_token") && !text.contains("access_token"),
            "{text}"
        );
        let back = decode(bytes.expose_secret()).expect("decodes");
        assert!(back.is_signed_out());
        assert_eq!(back.signed_out_at, Some(at));
        assert_eq!(back.client_id.as_deref(), Some("client"));
        assert!(back.access_token.is_none() && back.refresh_token.expose_secret().is_empty());
    }

    #[test]
    fn a_tombstone_with_a_token_and_a_set_without_one_are_corrupt() {
        for bytes in [
            r#"{"format":"cogref-tokens","version":1,"signed_out_at_ms":1,"refresh_token":"r"}"#,
            r#"{"format":"cogref-tokens","version":1,"signed_out_at_ms":1,"access_token":"a"}"#,
            r#"{"format":"cogref-tokens","version":1,"access_token":"a"}"#,
        ] {
            assert!(
                matches!(decode(bytes.as_bytes()), Err(FormatError::Corrupt(_))),
                "{bytes}"
            );
        }
    }

    #[test]
    fn the_validity_and_the_clock_skew_round_trip_and_out_of_range_values_are_corrupt() {
        let mut set = TokenSet::from_refresh_token("r", None);
        set.refresh_token_validity = Some(Duration::from_secs(30 * 86_400));
        set.clock_skew_secs = Some(-600);
        let back = decode(encode(&set).expose_secret()).expect("decodes");
        assert_eq!(back.refresh_token_validity, set.refresh_token_validity);
        assert_eq!(back.clock_skew_secs, Some(-600));
        for field in ["refresh_token_validity_secs", "clock_skew_secs"] {
            let bytes = format!(
                r#"{{"format":"cogref-tokens","version":1,"refresh_token":"r","{field}":{}}}"#,
                11 * 365 * 86_400
            );
            assert!(
                matches!(decode(bytes.as_bytes()), Err(FormatError::Corrupt(_))),
                "{field}"
            );
        }
    }

    #[test]
    fn errors_never_quote_the_content() {
        let canary = "CANARYCANARYCANARY";
        for bytes in [
            format!(r#"{{"format":"cogref-tokens","version":1,"refresh_token":5,"x":"{canary}"}}"#),
            format!(r#"{{"{canary}"#),
            format!(r#"{{"format":"{canary}"}}"#),
        ] {
            let e = decode(bytes.as_bytes()).expect_err("not a set");
            assert!(!format!("{e} {e:?}").contains(canary), "{e:?}");
        }
    }
}
