//! Sealing: the stored token set encrypted and authenticated with a key the application holds
//! (XChaCha20-Poly1305), so that whoever can read Redis cannot read a refresh token, and whoever
//! can write to Redis cannot slip in a token set of their own.

use std::fmt;

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};

/// Marks a sealed value and its layout: magic, 24-byte random nonce, ciphertext with its tag.
/// The associated data binds the Redis key (so the value cannot move to another lineage) and
/// the version it is stored under (so an older value cannot come back under another version).
const MAGIC: &[u8] = b"cogref-sealed:2:";
/// Values sealed by cogref 0.1: the same layout, but only the key bound, not the version.
const MAGIC_KEY_ONLY: &[u8] = b"cogref-sealed:1:";
/// What every sealed value starts with, whatever its layout.
const SEALED_PREFIX: &[u8] = b"cogref-sealed:";
const NONCE_LEN: usize = 24;

/// A 256-bit key that seals the stored token set. Its `Debug` shows nothing of it.
///
/// ```
/// use cogref_redis::SealingKey;
///
/// // In production, from your secret manager: 32 random bytes, the same on every host.
/// let key = SealingKey::from_slice(&[7u8; 32]).expect("32 bytes");
/// assert_eq!(format!("{key:?}"), "SealingKey(..)");
/// assert!(SealingKey::from_slice(b"too short").is_err());
/// ```
#[derive(Clone)]
pub struct SealingKey(XChaCha20Poly1305);

/// A sealing key of the wrong length.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a sealing key is 32 bytes, not {0}")]
pub struct KeyLengthError(pub usize);

impl SealingKey {
    /// The key made of `bytes`.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(XChaCha20Poly1305::new(&bytes.into()))
    }

    /// The key made of `bytes`, which must be 32 long.
    pub fn from_slice(bytes: &[u8]) -> Result<Self, KeyLengthError> {
        let bytes: [u8; 32] = bytes.try_into().map_err(|_| KeyLengthError(bytes.len()))?;
        Ok(Self::from_bytes(bytes))
    }
}

impl fmt::Debug for SealingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SealingKey(..)")
    }
}

/// Whether stored bytes are sealed (in any layout, known or not).
pub(crate) fn is_sealed(bytes: &[u8]) -> bool {
    bytes.starts_with(SEALED_PREFIX)
}

/// A sealed value, opened.
pub(crate) struct Opened {
    pub(crate) plain: Vec<u8>,
    /// Whether its version was bound (`false`: sealed by cogref 0.1, key only).
    pub(crate) version_bound: bool,
}

/// Why a sealed value did not open.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum OpenError {
    /// Another key, another key name or version, or altered bytes: AEAD cannot tell these
    /// apart, and neither should we.
    Refused,
    /// A layout this build does not know (a newer cogref's).
    UnknownLayout,
}

/// `plain` sealed for the Redis key `key_name` at `version`.
pub(crate) fn seal(
    key: &SealingKey,
    key_name: &str,
    version: u64,
    plain: &[u8],
) -> Result<Vec<u8>, getrandom::Error> {
    let mut nonce = [0u8; NONCE_LEN];
    getrandom::fill(&mut nonce)?;
    let aad = aad(key_name, version);
    let sealed = key
        .0
        .encrypt(
            XNonce::from_slice(&nonce),
            Payload {
                msg: plain,
                aad: &aad,
            },
        )
        // Only fails for messages beyond 256 GiB.
        .unwrap_or_default();
    let mut out = Vec::with_capacity(MAGIC.len() + NONCE_LEN + sealed.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&sealed);
    Ok(out)
}

/// The plaintext of a value stored under `key_name` at `version`, if `key` sealed it there.
/// A value sealed by cogref 0.1 (key name only) opens too, marked as such: the caller decides
/// whether to accept it.
pub(crate) fn open(
    key: &SealingKey,
    key_name: &str,
    version: u64,
    sealed: &[u8],
) -> Result<Opened, OpenError> {
    let (rest, aad, version_bound) = if let Some(rest) = sealed.strip_prefix(MAGIC) {
        (rest, aad(key_name, version), true)
    } else if let Some(rest) = sealed.strip_prefix(MAGIC_KEY_ONLY) {
        (rest, [MAGIC_KEY_ONLY, key_name.as_bytes()].concat(), false)
    } else {
        return Err(OpenError::UnknownLayout);
    };
    if rest.len() < NONCE_LEN {
        return Err(OpenError::Refused);
    }
    let (nonce, ciphertext) = rest.split_at(NONCE_LEN);
    let plain = key
        .0
        .decrypt(
            XNonce::from_slice(nonce),
            Payload {
                msg: ciphertext,
                aad: &aad,
            },
        )
        .map_err(|_| OpenError::Refused)?;
    Ok(Opened {
        plain,
        version_bound,
    })
}

/// The associated data: the layout, the key name (length-prefixed, so no two pairs of name
/// and version share one encoding) and the version.
fn aad(key_name: &str, version: u64) -> Vec<u8> {
    let name = key_name.as_bytes();
    let mut aad = Vec::with_capacity(MAGIC.len() + 8 + name.len() + 8);
    aad.extend_from_slice(MAGIC);
    aad.extend_from_slice(&u64::try_from(name.len()).unwrap_or(u64::MAX).to_be_bytes());
    aad.extend_from_slice(name);
    aad.extend_from_slice(&version.to_be_bytes());
    aad
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opened(result: Result<Opened, OpenError>) -> Option<(Vec<u8>, bool)> {
        result.ok().map(|o| (o.plain, o.version_bound))
    }

    #[test]
    fn a_sealed_value_opens_with_its_key_name_and_version_only() {
        let key = SealingKey::from_bytes([1; 32]);
        let sealed = seal(&key, "k", 7, b"secret payload").expect("sealed");
        assert!(is_sealed(&sealed));
        assert!(!sealed.windows(6).any(|w| w == b"secret"));
        assert_eq!(
            opened(open(&key, "k", 7, &sealed)),
            Some((b"secret payload".to_vec(), true))
        );
        assert!(open(&SealingKey::from_bytes([2; 32]), "k", 7, &sealed).is_err());
        assert!(open(&key, "other-lineage", 7, &sealed).is_err());
        for version in [0, 6, 8, u64::MAX] {
            assert!(open(&key, "k", version, &sealed).is_err(), "{version}");
        }
        let mut flipped = sealed.clone();
        let last = flipped.len() - 1;
        flipped[last] ^= 1;
        assert!(open(&key, "k", 7, &flipped).is_err());
        assert!(open(&key, "k", 7, &sealed[..MAGIC.len() + 3]).is_err());
    }

    #[test]
    fn a_value_sealed_with_the_key_name_only_opens_marked_as_such_and_not_in_the_new_layout() {
        let key = SealingKey::from_bytes([1; 32]);
        // As cogref 0.1 sealed: same layout, associated data = its magic and the key name.
        let nonce = [9u8; NONCE_LEN];
        let aad = [MAGIC_KEY_ONLY, b"k"].concat();
        let ciphertext = key
            .0
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: b"old".as_slice(),
                    aad: &aad,
                },
            )
            .expect("sealed");
        let old = [MAGIC_KEY_ONLY, &nonce, &ciphertext].concat();
        assert_eq!(
            opened(open(&key, "k", 123, &old)),
            Some((b"old".to_vec(), false))
        );
        assert!(open(&key, "other", 123, &old).is_err());
        // Relabelled as the new layout, it does not open.
        let relabelled = [MAGIC, &nonce, &ciphertext].concat();
        assert!(open(&key, "k", 123, &relabelled).is_err());
        // And a new value relabelled as the old layout does not either.
        let new = seal(&key, "k", 123, b"new").expect("sealed");
        let downgraded = [MAGIC_KEY_ONLY, &new[MAGIC.len()..]].concat();
        assert!(open(&key, "k", 123, &downgraded).is_err());
        assert_eq!(
            open(&key, "k", 1, b"cogref-sealed:9:whatever").err(),
            Some(OpenError::UnknownLayout)
        );
    }

    #[test]
    fn two_seals_of_one_value_differ() {
        let key = SealingKey::from_bytes([1; 32]);
        assert_ne!(
            seal(&key, "k", 1, b"x").expect("sealed"),
            seal(&key, "k", 1, b"x").expect("sealed")
        );
    }
}
