//! The serialized form of a token set, shared by every store that keeps bytes (a file, a Redis
//! value): versioned JSON, `{"format":"cogref-tokens","version":1,…}`.
//!
//! [`encode`] and [`decode`] are public so that a store in another crate writes exactly what
//! [`FileStore`](crate::FileStore) writes. Neither ever puts a token in an error.
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
    refresh_token: Cow<'a, str>,
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
    let stored = StoredTokens {
        format: FORMAT_NAME.into(),
        version: FORMAT_VERSION,
        refresh_token: borrow(&tokens.refresh_token),
        access_token: tokens.access_token.as_ref().map(borrow),
        id_token: tokens.id_token.as_ref().map(borrow),
        device_key: tokens.device_key.as_ref().map(borrow),
        expires_at_ms: tokens.expires_at.map(epoch_ms),
        lifetime_secs: tokens.lifetime.map(|d| d.as_secs()),
        refreshed_at_ms: tokens.refreshed_at.map(epoch_ms),
        client_id: tokens.client_id.as_deref().map(Cow::Borrowed),
        endpoint: tokens.endpoint.as_deref().map(Cow::Borrowed),
        signed_in_at_ms: tokens.signed_in_at.map(epoch_ms),
        generation,
    };
    // Serializing strings and integers into a Vec cannot fail.
    serde_json::to_vec(&stored).unwrap_or_default().into()
}

fn epoch_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

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
    if stored
        .lifetime_secs
        .is_some_and(|l| l > 10 * 365 * 24 * 3600)
    {
        return Err(FormatError::Corrupt(
            "\"lifetime_secs\" is out of range".into(),
        ));
    }
    let tokens = TokenSet::new(
        secret(stored.refresh_token),
        stored.access_token.map(secret),
        stored.id_token.map(secret),
        stored.device_key.map(secret),
        expires_at,
        stored.lifetime_secs.map(Duration::from_secs),
    )
    .with_refreshed_at(refreshed_at)
    .with_signed_in_at(signed_in_at)
    .bound_to(
        stored.client_id.map(Cow::into_owned),
        stored.endpoint.map(Cow::into_owned),
    );
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
