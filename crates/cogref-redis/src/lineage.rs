//! What both stores (blocking and async) share: the names one lineage uses, the commands and
//! scripts they send, and how stored bytes become a token set and back (sealed or not). The
//! stores only move these over their kind of connection.
//!
//! Integrity against whoever can write to Redis without the sealing key: a sealed value is
//! bound to its key name and to the version it is stored under, so it cannot move to another
//! lineage nor come back under another version; and a store refuses an entry older than one it
//! has already seen (a whole older entry written back, or a restored snapshot). A fresh store
//! has seen nothing and cannot tell a replayed older entry from the newest: only its key name and
//! authenticity are checked then.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use cogref_core::TokenSet;
use cogref_core::secrecy::{ExposeSecret, SecretSlice};
use cogref_session::format::{self, FORMAT_VERSION, FormatError};
use cogref_session::{StoreError, Versioned};
use redis::{Cmd, Pipeline, ScriptInvocation};

use crate::error::RedisStoreError;
use crate::scripts::{ACQUIRE, LOAD, RELEASE, SAVE};
use crate::seal::{self, OpenError, SealingKey};

/// The largest stored value read or written: the core's default limit on a response body
/// (1 MiB) and room for the seal. A token set is a few KiB; a planted larger value is refused
/// without being fetched.
pub(crate) const MAX_VALUE_BYTES: u64 = (1 << 20) + 64;

/// The longest lease: a holder that dies keeps the lineage from refreshing this long.
pub(crate) const MAX_LEASE_TTL: Duration = Duration::from_secs(24 * 60 * 60);

/// The names one lineage uses. The `{lineage}` hash tag keeps them in one Redis Cluster slot.
pub(crate) struct Keys {
    pub(crate) tokens: String,
    pub(crate) lease: String,
    pub(crate) channel: String,
}

pub(crate) struct Lineage {
    pub(crate) keys: Keys,
    pub(crate) lease_ttl: Duration,
    sealing: Option<SealingKey>,
    /// The newest version this store has loaded or saved (0: none).
    seen: AtomicU64,
    /// Whether this store has loaded or saved a value sealed with its version bound; from then
    /// on one sealed without (cogref 0.1's) is a downgrade.
    seen_bound: AtomicBool,
}

/// A token set ready to store: the bytes written are the sealed ones when sealing.
pub(crate) struct Encoded {
    plain: SecretSlice<u8>,
    sealed: Option<Vec<u8>>,
}

impl Encoded {
    pub(crate) fn bytes(&self) -> &[u8] {
        self.sealed
            .as_deref()
            .unwrap_or_else(|| self.plain.expose_secret())
    }
}

/// Reply of the save script: `(1, new version)` or `(0, version found)`.
pub(crate) type SaveReply = (i64, String);
/// Reply of the probe pipeline: the stored version and whether the lease is held.
pub(crate) type ProbeReply = (Option<String>, bool);
/// Reply of the load script: version, data (left out when too long), data length.
pub(crate) type LoadReply = (Option<String>, Option<Vec<u8>>, u64);
/// Reply of `TIME`: seconds and microseconds.
pub(crate) type TimeReply = (String, String);

impl Lineage {
    pub(crate) fn new(
        prefix: &str,
        lineage: &str,
        lease_ttl: Duration,
        sealing: Option<SealingKey>,
    ) -> Self {
        let base = format!("{prefix}:{{{lineage}}}");
        Self {
            keys: Keys {
                tokens: format!("{base}:tokens"),
                lease: format!("{base}:lease"),
                channel: format!("{base}:changed"),
            },
            lease_ttl,
            sealing,
            seen: AtomicU64::new(0),
            seen_bound: AtomicBool::new(false),
        }
    }

    pub(crate) fn is_sealed(&self) -> bool {
        self.sealing.is_some()
    }

    // Commands.

    pub(crate) fn load_script(&self) -> ScriptInvocation<'static> {
        let mut invocation = LOAD.key(&self.keys.tokens);
        invocation.arg(MAX_VALUE_BYTES);
        invocation
    }

    /// The server's clock, read before creating an entry.
    pub(crate) fn time_cmd(&self) -> Cmd {
        redis::cmd("TIME")
    }

    pub(crate) fn clear_cmd(&self) -> Cmd {
        let mut cmd = redis::cmd("DEL");
        cmd.arg(&self.keys.tokens);
        cmd
    }

    pub(crate) fn save_script(
        &self,
        expected: Option<u64>,
        version: u64,
        data: &[u8],
    ) -> ScriptInvocation<'static> {
        let mut invocation = SAVE.key(&self.keys.tokens);
        invocation
            .arg(expected.map(|v| v.to_string()).unwrap_or_default())
            .arg(version.to_string())
            .arg(data)
            .arg(&self.keys.channel);
        invocation
    }

    pub(crate) fn acquire_script(&self, owner: &str) -> ScriptInvocation<'static> {
        // The builder keeps the TTL between 1 ms and a day.
        let ttl_ms = u64::try_from(self.lease_ttl.as_millis()).unwrap_or(u64::MAX);
        let mut invocation = ACQUIRE.key(&self.keys.lease);
        invocation.arg(owner).arg(ttl_ms);
        invocation
    }

    pub(crate) fn release_script(&self, owner: &str) -> ScriptInvocation<'static> {
        let mut invocation = RELEASE.key(&self.keys.lease);
        invocation.arg(owner).arg(&self.keys.channel);
        invocation
    }

    /// The stored version and whether the lease is held, in one round trip.
    pub(crate) fn probe_pipe(&self) -> Pipeline {
        let mut pipe = redis::pipe();
        pipe.cmd("HGET")
            .arg(&self.keys.tokens)
            .arg("v")
            .cmd("EXISTS")
            .arg(&self.keys.lease);
        pipe
    }

    // Versions.

    /// The version a save writes (and seals for): the loaded one plus one, or for a new entry
    /// the server's clock in microseconds, above any version this store has seen.
    pub(crate) fn next_version(
        &self,
        expected: Option<u64>,
        server_time: Option<TimeReply>,
    ) -> Result<u64, StoreError> {
        match expected {
            Some(v) => v.checked_add(1).ok_or_else(|| {
                self.corrupt("the version is at its largest value, which no store reaches")
            }),
            None => {
                let (secs, micros) = server_time
                    .ok_or_else(|| self.corrupt("no server time to start a version from"))?;
                let number = |s: &str| {
                    s.parse::<u64>()
                        .map_err(|_| self.corrupt("the server's TIME is not a number"))
                };
                let now = number(&secs)?
                    .checked_mul(1_000_000)
                    .and_then(|us| us.checked_add(number(&micros).ok()?))
                    .ok_or_else(|| self.corrupt("the server's TIME is out of range"))?;
                let above_seen = self
                    .seen
                    .load(Ordering::Acquire)
                    .checked_add(1)
                    .ok_or_else(|| {
                        self.corrupt(
                            "a version seen is at its largest value, which no store reaches",
                        )
                    })?;
                Ok(now.max(above_seen))
            }
        }
    }

    fn saw(&self, version: u64, bound: bool) {
        self.seen.fetch_max(version, Ordering::AcqRel);
        if bound {
            self.seen_bound.store(true, Ordering::Release);
        }
    }

    // Replies.

    /// Whether a waiter that saw `seen` should look again at once.
    pub(crate) fn changed(&self, (version, leased): ProbeReply, seen: Option<u64>) -> bool {
        version.as_deref().and_then(canonical) != seen || !leased
    }

    pub(crate) fn loaded(
        &self,
        (version, data, length): LoadReply,
    ) -> Result<Option<Versioned>, StoreError> {
        // Plaintext tokens are zeroed when dropped.
        let data: Option<SecretSlice<u8>> = data.map(Into::into);
        if length > MAX_VALUE_BYTES {
            return Err(self.corrupt(&format!(
                "the value is {length} bytes, larger than any token set ({MAX_VALUE_BYTES} at most)"
            )));
        }
        match (version, data) {
            (None, None) => Ok(None),
            (Some(version), Some(data)) => {
                let version = canonical(&version)
                    .ok_or_else(|| self.corrupt("the version is not a number"))?;
                let (tokens, bound) = self.decode(version, data.expose_secret())?;
                let seen = self.seen.load(Ordering::Acquire);
                let downgrade =
                    self.is_sealed() && !bound && self.seen_bound.load(Ordering::Acquire);
                if version < seen || downgrade {
                    return Err(RedisStoreError::RolledBack {
                        key: self.keys.tokens.clone(),
                        found: version,
                        seen,
                    }
                    .into());
                }
                self.saw(version, bound);
                Ok(Some(Versioned { tokens, version }))
            }
            _ => Err(self.corrupt("a version without data, or data without a version")),
        }
    }

    pub(crate) fn saved(
        &self,
        (written, version): SaveReply,
        expected: Option<u64>,
    ) -> Result<u64, StoreError> {
        let number =
            |v: &str| canonical(v).ok_or_else(|| self.corrupt("the version is not a number"));
        if written == 1 {
            let version = number(&version)?;
            self.saw(version, self.is_sealed());
            Ok(version)
        } else {
            let found = if version.is_empty() {
                None
            } else {
                Some(number(&version)?)
            };
            Err(StoreError::Conflict { expected, found })
        }
    }

    pub(crate) fn acquired(&self, owner: String, reply: i64) -> Option<String> {
        (reply == 1).then_some(owner)
    }

    /// Logs what a release found.
    pub(crate) fn released(&self, reply: Result<i64, RedisStoreError>) {
        match reply {
            Ok(1) => {}
            Ok(_) => tracing::warn!(
                lease = %self.keys.lease,
                "the refresh lease had run out before it was released: raise lease_ttl above the refresh time"
            ),
            // It runs out on its own.
            Err(e) => tracing::warn!(error = %e, "releasing the refresh lease failed"),
        }
    }

    // Bytes.

    /// `tokens` as stored at `version` (sealed for it when sealing).
    pub(crate) fn encode(&self, tokens: &TokenSet, version: u64) -> Result<Encoded, StoreError> {
        let plain = format::encode(tokens);
        let sealed = match &self.sealing {
            Some(key) => Some(
                seal::seal(key, &self.keys.tokens, version, plain.expose_secret())
                    .map_err(random_failed)?,
            ),
            None => None,
        };
        let encoded = Encoded { plain, sealed };
        if u64::try_from(encoded.bytes().len()).map_or(true, |n| n > MAX_VALUE_BYTES) {
            return Err(StoreError::Other(
                format!(
                    "the token set is larger than a stored value may be ({MAX_VALUE_BYTES} bytes); nothing was written"
                )
                .into(),
            ));
        }
        Ok(encoded)
    }

    /// The token set in `data` stored at `version`, and whether its seal binds the version.
    fn decode(&self, version: u64, data: &[u8]) -> Result<(TokenSet, bool), StoreError> {
        let key = || self.keys.tokens.clone();
        let (plain, bound): (SecretSlice<u8>, bool) = match (&self.sealing, seal::is_sealed(data)) {
            (Some(k), true) => match seal::open(k, &self.keys.tokens, version, data) {
                Ok(opened) => (opened.plain.into(), opened.version_bound),
                Err(OpenError::Refused) => {
                    return Err(RedisStoreError::WrongKey { key: key() }.into());
                }
                Err(OpenError::UnknownLayout) => {
                    return Err(self.corrupt(
                        "sealed in a layout this cogref does not know (written by a newer one?)",
                    ));
                }
            },
            (None, true) => return Err(RedisStoreError::SealedButNoKey { key: key() }.into()),
            (Some(_), false) => return Err(RedisStoreError::NotSealed { key: key() }.into()),
            (None, false) => (data.to_vec().into(), false),
        };
        let tokens = format::decode(plain.expose_secret()).map_err(|e| match e {
            FormatError::UnsupportedVersion { found } => StoreError::UnsupportedVersion {
                path: key().into(),
                found,
                supported: FORMAT_VERSION,
            },
            other => RedisStoreError::Corrupt {
                key: key(),
                detail: other.to_string(),
            }
            .into(),
        })?;
        Ok((tokens, bound))
    }

    fn corrupt(&self, detail: &str) -> StoreError {
        RedisStoreError::Corrupt {
            key: self.keys.tokens.clone(),
            detail: detail.into(),
        }
        .into()
    }
}

/// A version as the store writes it: decimal digits, no sign, no leading zero, no blanks. The
/// save script compares versions as strings, so `07` must not pass for `7`.
fn canonical(text: &str) -> Option<u64> {
    let number: u64 = text.parse().ok()?;
    (number.to_string() == text).then_some(number)
}

/// A fresh random lease owner.
pub(crate) fn random_owner() -> Result<String, StoreError> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(random_failed)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

fn random_failed(e: getrandom::Error) -> StoreError {
    StoreError::Other(format!("the system's random source failed: {e}").into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lineage() -> Lineage {
        Lineage::new("cogref", "unit", Duration::from_secs(1), None)
    }

    fn time(secs: &str, micros: &str) -> Option<TimeReply> {
        Some((secs.into(), micros.into()))
    }

    #[test]
    fn only_canonical_decimal_versions_are_versions() {
        assert_eq!(canonical("0"), Some(0));
        assert_eq!(canonical("17"), Some(17));
        assert_eq!(canonical("18446744073709551615"), Some(u64::MAX));
        for bad in [
            "",
            "07",
            "+7",
            "-1",
            " 7",
            "7 ",
            "1e3",
            "18446744073709551616",
            "0x10",
        ] {
            assert_eq!(canonical(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn the_next_version_is_checked_and_a_new_entry_starts_above_the_clock_and_what_was_seen() {
        let l = lineage();
        assert_eq!(l.next_version(Some(41), None).expect("next"), 42);
        assert!(l.next_version(Some(u64::MAX), None).is_err());
        assert!(l.next_version(None, time("1700000000", "x")).is_err());
        assert_eq!(
            l.next_version(None, time("1700000000", "123"))
                .expect("new"),
            1_700_000_000_000_123
        );
        for (secs, micros) in [
            ("18446744073709551615", "0"),
            ("18446744073709", "999999999999"),
        ] {
            assert!(l.next_version(None, time(secs, micros)).is_err(), "{secs}");
        }
        assert!(l.next_version(None, None).is_err());
        l.saw(1 << 60, false);
        assert_eq!(
            l.next_version(None, time("1700000000", "123"))
                .expect("new"),
            (1 << 60) + 1
        );
        l.saw(u64::MAX, false);
        assert!(l.next_version(None, time("1700000000", "123")).is_err());
    }
}
