//! [`RedisStore`]: the token set, the refresh lease and the change channel of one lineage.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use cogref_core::TokenSet;
use cogref_core::secrecy::{ExposeSecret, SecretSlice};
use cogref_session::format::{self, FORMAT_VERSION, FormatError};
use cogref_session::{StoreError, StoreGuard, TokenStore, Versioned};

use crate::connection::Connector;
use crate::error::RedisStoreError;
use crate::scripts::{ACQUIRE, RELEASE, SAVE};
use crate::seal::{self, SealingKey};

/// How long a lease lasts unless released: longer than a refresh call may take with the default
/// [`cogref_core::Timeouts`] (30 s in total), so a live holder keeps it.
pub const DEFAULT_LEASE_TTL: Duration = Duration::from_secs(45);
/// How long connecting may take.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// How long one command may take.
pub const DEFAULT_IO_TIMEOUT: Duration = Duration::from_secs(2);

/// The names one lineage uses. The `{lineage}` hash tag keeps them in one Redis Cluster slot.
struct Keys {
    tokens: String,
    lease: String,
    channel: String,
}

struct Inner {
    connector: Connector,
    keys: Keys,
    lease_ttl: Duration,
    sealing: Option<SealingKey>,
}

/// A [`TokenStore`] in Redis (or Valkey), shared by every process of a fleet that holds one
/// Cognito session. How it protects the session: see the [crate docs](crate).
///
/// Cloning shares the connection.
#[derive(Clone)]
pub struct RedisStore {
    inner: Arc<Inner>,
}

/// Builds a [`RedisStore`].
pub struct RedisStoreBuilder {
    url: String,
    lineage: String,
    prefix: String,
    lease_ttl: Duration,
    connect_timeout: Duration,
    io_timeout: Duration,
    sealing: Option<SealingKey>,
}

impl fmt::Debug for RedisStoreBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The URL may carry a password.
        f.debug_struct("RedisStoreBuilder")
            .field("lineage", &self.lineage)
            .field("prefix", &self.prefix)
            .field("lease_ttl", &self.lease_ttl)
            .field("sealed", &self.sealing.is_some())
            .finish_non_exhaustive()
    }
}

impl RedisStoreBuilder {
    /// The first part of every key (default `cogref`).
    pub fn key_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// How long the refresh lease lasts if its holder dies (default 45 s). Keep it above the
    /// longest refresh call (the client's total timeout): a holder whose lease runs out while
    /// its call is still running cannot overwrite a newer set (the version check refuses it),
    /// but a second process may have refreshed meanwhile, which with rotation and no grace
    /// period signs one of them out.
    pub fn lease_ttl(mut self, ttl: Duration) -> Self {
        self.lease_ttl = ttl;
        self
    }

    /// Seals the stored token set with `key`; every process of the lineage needs the same key.
    pub fn sealing_key(mut self, key: SealingKey) -> Self {
        self.sealing = Some(key);
        self
    }

    /// How long connecting may take (default 2 s).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// How long one command may take (default 2 s).
    pub fn io_timeout(mut self, timeout: Duration) -> Self {
        self.io_timeout = timeout;
        self
    }

    /// Checks the URL and the names; connects only when first used.
    pub fn build(self) -> Result<RedisStore, RedisStoreError> {
        check_name("lineage", &self.lineage)?;
        check_name("key prefix", &self.prefix)?;
        if self.lease_ttl < Duration::from_millis(1) {
            return Err(RedisStoreError::InvalidConfig(
                "the lease time to live must be at least 1 ms".into(),
            ));
        }
        let connector = Connector::new(&self.url, self.connect_timeout, self.io_timeout)?;
        let base = format!("{}:{{{}}}", self.prefix, self.lineage);
        Ok(RedisStore {
            inner: Arc::new(Inner {
                connector,
                keys: Keys {
                    tokens: format!("{base}:tokens"),
                    lease: format!("{base}:lease"),
                    channel: format!("{base}:changed"),
                },
                lease_ttl: self.lease_ttl,
                sealing: self.sealing,
            }),
        })
    }
}

/// Names go into keys: printable, no braces (the hash tag), no spaces.
fn check_name(what: &'static str, name: &str) -> Result<(), RedisStoreError> {
    let bad = name
        .chars()
        .find(|c| !c.is_ascii_graphic() || *c == '{' || *c == '}');
    if name.is_empty() || name.len() > 256 || bad.is_some() {
        return Err(RedisStoreError::InvalidConfig(format!(
            "the {what} must be 1 to 256 printable ASCII characters without spaces or braces"
        )));
    }
    Ok(())
}

impl RedisStore {
    /// Starts a builder for the lineage `lineage` (a name you choose for one refresh-token
    /// lineage, for example `"{client_id}:{username}"`) at `url`: `redis://[user:password@]host[:port][/db]`,
    /// `rediss://…` with the `tls-rustls` feature, or `redis+unix:///path`.
    pub fn builder(url: impl Into<String>, lineage: impl Into<String>) -> RedisStoreBuilder {
        RedisStoreBuilder {
            url: url.into(),
            lineage: lineage.into(),
            prefix: "cogref".into(),
            lease_ttl: DEFAULT_LEASE_TTL,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            io_timeout: DEFAULT_IO_TIMEOUT,
            sealing: None,
        }
    }

    /// The key holding the token set (a hash: `v` the version, `d` the data).
    pub fn tokens_key(&self) -> &str {
        &self.inner.keys.tokens
    }

    /// The key of the refresh lease.
    pub fn lease_key(&self) -> &str {
        &self.inner.keys.lease
    }

    /// The channel on which saves and lease releases are announced.
    pub fn channel(&self) -> &str {
        &self.inner.keys.channel
    }

    /// Deletes the stored set (for example after the user signed out).
    pub fn clear(&self) -> Result<(), StoreError> {
        let key = &self.inner.keys.tokens;
        self.inner.connector.run("deleting the token set", |c| {
            redis::cmd("DEL").arg(key).query::<i64>(c)
        })?;
        Ok(())
    }

    fn decode(&self, data: &[u8]) -> Result<TokenSet, StoreError> {
        let key = || self.inner.keys.tokens.clone();
        let plain: SecretSlice<u8> = match (&self.inner.sealing, seal::is_sealed(data)) {
            (Some(k), true) => seal::open(k, &self.inner.keys.tokens, data)
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
            key: self.inner.keys.tokens.clone(),
            detail: detail.into(),
        }
        .into()
    }
}

impl fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStore")
            .field("server", &self.inner.connector.server())
            .field("tokens_key", &self.inner.keys.tokens)
            .field("lease_ttl", &self.inner.lease_ttl)
            .field("sealed", &self.inner.sealing.is_some())
            .finish()
    }
}

/// The lease, released (compare-and-delete) when the guard drops.
struct Lease {
    inner: Arc<Inner>,
    owner: String,
}

impl Drop for Lease {
    fn drop(&mut self) {
        let keys = &self.inner.keys;
        let released = self
            .inner
            .connector
            .run("releasing the refresh lease", |c| {
                RELEASE
                    .key(&keys.lease)
                    .arg(&self.owner)
                    .arg(&keys.channel)
                    .invoke::<i64>(c)
            });
        match released {
            Ok(1) => {}
            Ok(_) => tracing::warn!(
                lease = %keys.lease,
                "the refresh lease had run out before it was released: raise lease_ttl above the refresh time"
            ),
            // It runs out on its own.
            Err(e) => tracing::warn!(error = %e, "releasing the refresh lease failed"),
        }
    }
}

fn random_owner() -> Result<String, getrandom::Error> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

fn random_failed(e: getrandom::Error) -> StoreError {
    StoreError::Other(format!("the system's random source failed: {e}").into())
}

impl TokenStore for RedisStore {
    fn load(&self) -> Result<Option<Versioned>, StoreError> {
        let key = &self.inner.keys.tokens;
        let (version, data): (Option<String>, Option<Vec<u8>>) =
            self.inner.connector.run("reading the token set", |c| {
                redis::cmd("HMGET").arg(key).arg("v").arg("d").query(c)
            })?;
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

    fn save(&self, tokens: &TokenSet, expected: Option<u64>) -> Result<u64, StoreError> {
        let keys = &self.inner.keys;
        let plain = format::encode(tokens);
        let sealed = match &self.inner.sealing {
            Some(k) => {
                Some(seal::seal(k, &keys.tokens, plain.expose_secret()).map_err(random_failed)?)
            }
            None => None,
        };
        let data: &[u8] = sealed.as_deref().unwrap_or(plain.expose_secret());
        let expected_arg = expected.map(|v| v.to_string()).unwrap_or_default();
        let (written, version): (i64, String) =
            self.inner.connector.run("saving the token set", |c| {
                SAVE.key(&keys.tokens)
                    .arg(&expected_arg)
                    .arg(data)
                    .arg(&keys.channel)
                    .invoke(c)
            })?;
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

    fn try_lock(&self) -> Result<Option<StoreGuard>, StoreError> {
        let owner = random_owner().map_err(random_failed)?;
        let ttl_ms = u64::try_from(self.inner.lease_ttl.as_millis()).unwrap_or(u64::MAX);
        let lease = &self.inner.keys.lease;
        let taken: i64 = self.inner.connector.run("taking the refresh lease", |c| {
            ACQUIRE.key(lease).arg(&owner).arg(ttl_ms).invoke(c)
        })?;
        Ok((taken == 1).then(|| {
            StoreGuard::new(Lease {
                inner: self.inner.clone(),
                owner,
            })
        }))
    }

    fn wait_for_change(&self, seen: Option<u64>, timeout: Duration) -> Result<bool, StoreError> {
        let connector = &self.inner.connector;
        let keys = &self.inner.keys;
        let mut connection = connector.dedicated()?;
        let mut subscription = connection.as_pubsub();
        subscription
            .subscribe(&keys.channel)
            .map_err(|e| connector.error("subscribing", e))?;
        // Anything that happened before we listened would never be announced to us.
        let (version, leased): (Option<String>, bool) =
            connector.run("reading the version and the lease", |c| {
                redis::pipe()
                    .cmd("HGET")
                    .arg(&keys.tokens)
                    .arg("v")
                    .cmd("EXISTS")
                    .arg(&keys.lease)
                    .query(c)
            })?;
        if version.and_then(|v| v.parse().ok()) != seen || !leased {
            return Ok(true);
        }
        subscription
            .set_read_timeout(Some(timeout.max(Duration::from_millis(1))))
            .map_err(|e| connector.error("subscribing", e))?;
        match subscription.get_message() {
            Ok(_) => Ok(true),
            Err(e) if e.is_timeout() => Ok(true),
            Err(e) => Err(connector.error("waiting for a change", e).into()),
        }
    }
}
