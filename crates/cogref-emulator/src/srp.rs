//! The server side of Cognito's SRP-6a variant (`USER_SRP_AUTH` → `PASSWORD_VERIFIER`), and the
//! HMAC-SHA256 behind `SECRET_HASH`.
//!
//! Cognito's variant is defined by its clients, since the service publishes no specification;
//! this follows Amplify JS v6 (`packages/auth/src/providers/cognito/utils/srp/`: the 3072-bit
//! group of RFC 5054 with g = 2, `k = H(pad(N) ‖ pad(g))`, `u = H(pad(A) ‖ pad(B))`,
//! `x = H(pad(salt) ‖ H(poolName ‖ userId ‖ ":" ‖ password))`, the key is HKDF-SHA256 of
//! `pad(S)` with salt `pad(u)` and info "Caldera Derived Key", cut to 16 bytes, and the claim is
//! `HMAC(key, poolName ‖ userId ‖ secretBlock ‖ timestamp)`). `pad` is a big-endian two's
//! complement encoding of a positive number: a leading zero byte when the top bit is set.

use rsa::BigUint;
use rsa::sha2::{Digest, Sha256};

/// RFC 5054's 3072-bit prime, as Amplify's `INIT_N`.
const N_HEX: &[u8] = b"FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD1\
29024E088A67CC74020BBEA63B139B22514A08798E3404DD\
EF9519B3CD3A431B302B0A6DF25F14374FE1356D6D51C245\
E485B576625E7EC6F44C42E9A637ED6B0BFF5CB6F406B7ED\
EE386BFB5A899FA5AE9F24117C4B1FE649286651ECE45B3D\
C2007CB8A163BF0598DA48361C55D39A69163FA8FD24CF5F\
83655D23DCA3AD961C62F356208552BB9ED529077096966D\
670C354E4ABC9804F1746C08CA18217C32905E462E36CE3B\
E39E772C180E86039B2783A2EC07A28FB5C55DF06F4C52C9\
DE2BCBF6955817183995497CEA956AE515D2261898FA0510\
15728E5A8AAAC42DAD33170D04507A33A85521ABDF1CBA64\
ECFB850458DBEF0A8AEA71575D060C7DB3970F85A6E1E4C7\
ABF5AE8CDB0933D71E8C94E04A25619DCEE3D2261AD2EE6B\
F12FFA06D98A0864D87602733EC86A64521F2B18177B200C\
BBE117577A615D6C770988C0BAD946E208E24FA074E5AB31\
43DB5BFCE0FD108E4B82D120A93AD2CAFFFFFFFFFFFFFFFF";

/// HMAC-SHA256 (RFC 2104).
pub(crate) fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    const BLOCK: usize = 64;
    let mut block = [0u8; BLOCK];
    if key.len() > BLOCK {
        block[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let mut inner = Sha256::new();
    inner.update(block.map(|b| b ^ 0x36));
    for part in parts {
        inner.update(part);
    }
    let mut outer = Sha256::new();
    outer.update(block.map(|b| b ^ 0x5c));
    outer.update(inner.finalize());
    outer.finalize().into()
}

/// `SECRET_HASH`: Base64(HMAC-SHA256(client secret, username ‖ client id)).
pub(crate) fn secret_hash(client_secret: &str, username: &str, client_id: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(hmac_sha256(
        client_secret.as_bytes(),
        &[username.as_bytes(), client_id.as_bytes()],
    ))
}

fn sha256(parts: &[&[u8]]) -> [u8; 32] {
    let mut h = Sha256::new();
    for part in parts {
        h.update(part);
    }
    h.finalize().into()
}

/// Amplify's `getPaddedHex`, as bytes.
fn pad(x: &BigUint) -> Vec<u8> {
    let mut bytes = x.to_bytes_be();
    if bytes.first().is_some_and(|b| b & 0x80 != 0) {
        bytes.insert(0, 0);
    }
    bytes
}

fn hash_to_int(parts: &[&[u8]]) -> BigUint {
    BigUint::from_bytes_be(&sha256(parts))
}

/// The group and its multiplier.
pub(crate) struct Group {
    n: BigUint,
    g: BigUint,
    k: BigUint,
}

impl Group {
    pub(crate) fn new() -> Self {
        let n = BigUint::parse_bytes(N_HEX, 16).unwrap_or_default();
        let g = BigUint::from(2u32);
        let k = hash_to_int(&[&pad(&n), &pad(&g)]);
        Self { n, g, k }
    }

    /// The password verifier `v = g^x mod N` for a user (the service stores it at sign-up; the
    /// emulator derives it from the password it keeps).
    pub(crate) fn verifier(
        &self,
        pool_name: &str,
        user_id: &str,
        password: &str,
        salt: &BigUint,
    ) -> BigUint {
        let inner = sha256(&[
            pool_name.as_bytes(),
            user_id.as_bytes(),
            b":",
            password.as_bytes(),
        ]);
        let x = hash_to_int(&[&pad(salt), &inner]);
        self.g.modpow(&x, &self.n)
    }

    /// The server's ephemeral pair: `B = (k·v + g^b) mod N`, never 0 mod N.
    pub(crate) fn server_ephemeral(&self, v: &BigUint) -> (BigUint, BigUint) {
        loop {
            let b = BigUint::from_bytes_be(&rand::random::<[u8; 32]>());
            let big_b = (&self.k * v + self.g.modpow(&b, &self.n)) % &self.n;
            if big_b != BigUint::default() {
                return (b, big_b);
            }
        }
    }

    /// The 16-byte session key, or `None` for a client value the protocol forbids (A ≡ 0 mod N,
    /// u = 0).
    pub(crate) fn session_key(
        &self,
        a: &BigUint,
        big_b: &BigUint,
        b: &BigUint,
        v: &BigUint,
    ) -> Option<[u8; 16]> {
        let zero = BigUint::default();
        if a % &self.n == zero {
            return None;
        }
        let u = hash_to_int(&[&pad(a), &pad(big_b)]);
        if u == zero {
            return None;
        }
        let s = ((a * v.modpow(&u, &self.n)) % &self.n).modpow(b, &self.n);
        // HKDF-SHA256 (RFC 5869), one block: PRK = HMAC(salt, IKM); OKM = HMAC(PRK, info ‖ 0x01).
        let prk = hmac_sha256(&pad(&u), &[&pad(&s)]);
        let okm = hmac_sha256(&prk, &[b"Caldera Derived Key", &[1]]);
        let mut key = [0u8; 16];
        key.copy_from_slice(&okm[..16]);
        Some(key)
    }
}

/// `PASSWORD_CLAIM_SIGNATURE` as the client computes it, Base64.
pub(crate) fn claim_signature(
    key: &[u8; 16],
    pool_name: &str,
    user_id: &str,
    secret_block: &[u8],
    timestamp: &str,
) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(hmac_sha256(
        key,
        &[
            pool_name.as_bytes(),
            user_id.as_bytes(),
            secret_block,
            timestamp.as_bytes(),
        ],
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_matches_rfc_4231_case_2() {
        let mac = hmac_sha256(b"Jefe", &[b"what do ya want ", b"for nothing?"]);
        let hex: String = mac.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(
            hex,
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn pad_adds_a_zero_byte_only_when_the_top_bit_is_set() {
        assert_eq!(pad(&BigUint::from(0x7fu32)), vec![0x7f]);
        assert_eq!(pad(&BigUint::from(0x80u32)), vec![0, 0x80]);
        assert_eq!(pad(&BigUint::default()), vec![0]);
    }

    /// A client computing `S = (B − k·g^x)^(a + u·x)` (the formula Amplify uses) reaches the
    /// server's key.
    #[test]
    fn client_and_server_derive_the_same_key() {
        let group = Group::new();
        let salt = BigUint::from_bytes_be(&[0x9a; 16]);
        let v = group.verifier("abcDEF", "alice", "Passw0rd!", &salt);
        let a_secret = BigUint::from_bytes_be(&[0x42; 128]);
        let a = group.g.modpow(&a_secret, &group.n);
        let (b, big_b) = group.server_ephemeral(&v);
        let server = group.session_key(&a, &big_b, &b, &v).expect("key");

        let n = &group.n;
        let u = hash_to_int(&[&pad(&a), &pad(&big_b)]);
        let inner = sha256(&[b"abcDEF", b"alice", b":", b"Passw0rd!"]);
        let x = hash_to_int(&[&pad(&salt), &inner]);
        // B − k·g^x mod N, kept non-negative.
        let kgx = (&group.k * group.g.modpow(&x, n)) % n;
        let base = (&big_b + n - kgx) % n;
        let s = base.modpow(&(&a_secret + &u * &x), n);
        let prk = hmac_sha256(&pad(&u), &[&pad(&s)]);
        let okm = hmac_sha256(&prk, &[b"Caldera Derived Key", &[1]]);
        assert_eq!(&okm[..16], &server[..]);
    }

    #[test]
    fn a_zero_client_value_is_refused() {
        let group = Group::new();
        let v = BigUint::from(5u32);
        let (b, big_b) = group.server_ephemeral(&v);
        assert!(group.session_key(&group.n, &big_b, &b, &v).is_none());
    }
}
