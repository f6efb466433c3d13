//! What both stores (blocking and async) share: the names one lineage uses, the commands and
//! scripts they send, and how stored bytes become a token set and back (sealed or not). The
//! stores only move these over their kind of connection.

use std::time::Duration;

use cogref_core::TokenSet;
use cogref_core::secrecy::{ExposeSecret, SecretSlice};
use cogref_session::format::{self, FORMAT_VERSION, FormatError};
use cogref_session::{StoreError, Versioned};
use redis::{Cmd, Pipeline, ScriptInvocation};

use crate::error::RedisStoreError;
use crate::scripts::{ACQUIRE, RELEASE, SAVE};
use crate::seal::{self, SealingKey};

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
/// Reply of the load command: version and data.
pub(crate) type LoadReply = (Option<String>, Option<Vec<u8>>);

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
        }
    }

    pub(crate) fn is_sealed(&self) -> bool {
        self.sealing.is_some()
    }

    // Commands.

    pub(crate) fn load_cmd(&self) -> Cmd {
        let mut cmd = redis::cmd("HMGET");
        cmd.arg(&self.keys.tokens).arg("v").arg("d");
        cmd
    }

    pub(crate) fn clear_cmd(&self) -> Cmd {
        let mut cmd = redis::cmd("DEL");
        cmd.arg(&self.keys.tokens);
        cmd
    }

    pub(crate) fn save_script(
        &self,
        expected: Option<u64>,
        data: &[u8],
    ) -> ScriptInvocation<'static> {
        let mut invocation = SAVE.key(&self.keys.tokens);
        invocation
            .arg(expected.map(|v| v.to_string()).unwrap_or_default())
            .arg(data)
            .arg(&self.keys.channel);
        invocation
    }

    pub(crate) fn acquire_script(&self, owner: &str) -> ScriptInvocation<'static> {
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

    // Replies.

    /// Whether a waiter that saw `seen` should look again at once.
    pub(crate) fn changed(&self, (version, leased): ProbeReply, seen: Option<u64>) -> bool {
        version.and_then(|v| v.parse().ok()) != seen || !leased
    }

    pub(crate) fn loaded(
        &self,
        (version, data): LoadReply,
    ) -> Result<Option<Versioned>, StoreError> {
        // Plaintext tokens are zeroed when dropped.
        let data: Option<SecretSlice<u8>> = data.map(Into::into);
        match (version, data) {
            (None, None) => Ok(None),
            (Some(version), Some(data)) => {
                let version = version
                    .parse()
                    .map_err(|_| self.corrupt("the version is not a number"))?;
                let tokens = self.decode(data.expose_secret())?;
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
        let number = |v: &str| {
            v.parse::<u64>()
                .map_err(|_| self.corrupt("the version is not a number"))
        };
        if written == 1 {
            number(&version)
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

    pub(crate) fn encode(&self, tokens: &TokenSet) -> Result<Encoded, StoreError> {
        let plain = format::encode(tokens);
        let sealed = match &self.sealing {
            Some(key) => Some(
                seal::seal(key, &self.keys.tokens, plain.expose_secret()).map_err(random_failed)?,
            ),
            None => None,
        };
        Ok(Encoded { plain, sealed })
    }

    fn decode(&self, data: &[u8]) -> Result<TokenSet, StoreError> {
        let key = || self.keys.tokens.clone();
        let plain: SecretSlice<u8> = match (&self.sealing, seal::is_sealed(data)) {
            (Some(k), true) => seal::open(k, &self.keys.tokens, data)
                .ok_or_else(|| RedisStoreError::WrongKey { key: key() })?
                .into(),
            (None, true) => return Err(RedisStoreError::SealedButNoKey { key: key() }.into()),
            (Some(_), false) => return Err(RedisStoreError::NotSealed { key: key() }.into()),
            (None, false) => data.to_vec().into(),
        };
        format::decode(plain.expose_secret()).map_err(|e| match e {
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
        })
    }

    fn corrupt(&self, detail: &str) -> StoreError {
        RedisStoreError::Corrupt {
            key: self.keys.tokens.clone(),
            detail: detail.into(),
        }
        .into()
    }
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
