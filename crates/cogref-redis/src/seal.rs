//! Sealing: the stored token set encrypted and authenticated with a key the application holds
//! (XChaCha20-Poly1305), so that whoever can read Redis cannot read a refresh token, and whoever
//! can write to Redis cannot slip in a token set of their own.

use std::fmt;

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};

/// Marks a sealed value and its layout: magic, 24-byte random nonce, ciphertext with its tag.
const MAGIC: &[u8] = b"cogref-sealed:1:";
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

/// Whether stored bytes are sealed.
pub(crate) fn is_sealed(bytes: &[u8]) -> bool {
    bytes.starts_with(MAGIC)
}

/// `plain` sealed for `key_name` (the Redis key: a sealed set cannot be moved to another
/// lineage).
pub(crate) fn seal(
    key: &SealingKey,
    key_name: &str,
    plain: &[u8],
) -> Result<Vec<u8>, getrandom::Error> {
    let mut nonce = [0u8; NONCE_LEN];
    getrandom::fill(&mut nonce)?;
    let aad = aad(key_name);
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

/// The plaintext of a sealed value, or `None` if this key does not open it (another key, or
/// altered bytes: AEAD cannot tell the two apart, and neither should we).
pub(crate) fn open(key: &SealingKey, key_name: &str, sealed: &[u8]) -> Option<Vec<u8>> {
    let rest = sealed.strip_prefix(MAGIC)?;
    if rest.len() < NONCE_LEN {
        return None;
    }
    let (nonce, ciphertext) = rest.split_at(NONCE_LEN);
    key.0
        .decrypt(
            XNonce::from_slice(nonce),
            Payload {
                msg: ciphertext,
                aad: &aad(key_name),
            },
        )
        .ok()
}

fn aad(key_name: &str) -> Vec<u8> {
    [MAGIC, key_name.as_bytes()].concat()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_value_opens_with_its_key_and_name_only() {
        let key = SealingKey::from_bytes([1; 32]);
        let sealed = seal(&key, "k", b"secret payload").expect("sealed");
        assert!(is_sealed(&sealed));
        assert!(!sealed.windows(6).any(|w| w == b"secret"));
        assert_eq!(
            open(&key, "k", &sealed).as_deref(),
            Some(&b"secret payload"[..])
        );
        assert_eq!(open(&SealingKey::from_bytes([2; 32]), "k", &sealed), None);
        assert_eq!(open(&key, "other-lineage", &sealed), None);
        let mut flipped = sealed.clone();
        let last = flipped.len() - 1;
        flipped[last] ^= 1;
        assert_eq!(open(&key, "k", &flipped), None);
        assert_eq!(open(&key, "k", &sealed[..MAGIC.len() + 3]), None);
    }

    #[test]
    fn two_seals_of_one_value_differ() {
        let key = SealingKey::from_bytes([1; 32]);
        assert_ne!(
            seal(&key, "k", b"x").expect("sealed"),
            seal(&key, "k", b"x").expect("sealed")
        );
    }
}
