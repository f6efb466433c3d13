//! RS256 signing of the emulator's JWTs, and the key set it serves.
//!
//! As the service does, access tokens and ID tokens are signed with two different keys, both
//! in the JWKS under their own `kid` (developer guide, "Understanding the access token": the
//! access token's `kid` won't match the ID token's), so that a verifier which picks the wrong
//! key, or always the first, fails here as it would in production.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rsa::pkcs1v15::SigningKey;
use rsa::sha2::Sha256;
use rsa::signature::{SignatureEncoding, Signer as _};
use rsa::traits::PublicKeyParts;
use rsa::{RsaPrivateKey, RsaPublicKey};
use serde_json::{Value, json};

/// Which of the two keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Use {
    Access,
    Id,
}

/// A 2048-bit RSA key generated at start-up, with its key id.
struct Key {
    kid: String,
    signing: SigningKey<Sha256>,
    public: RsaPublicKey,
}

impl Key {
    fn generate() -> Result<Self, rsa::Error> {
        let mut rng = rand::rngs::OsRng;
        let private = RsaPrivateKey::new(&mut rng, 2048)?;
        let public = RsaPublicKey::from(&private);
        let kid = URL_SAFE_NO_PAD.encode(&public.n().to_bytes_be()[..12]);
        Ok(Self {
            kid,
            signing: SigningKey::<Sha256>::new(private),
            public,
        })
    }

    fn jwk(&self) -> Value {
        json!({
            "alg": "RS256",
            "e": URL_SAFE_NO_PAD.encode(self.public.e().to_bytes_be()),
            "kid": self.kid,
            "kty": "RSA",
            "n": URL_SAFE_NO_PAD.encode(self.public.n().to_bytes_be()),
            "use": "sig",
        })
    }

    fn verify(&self, token: &str) -> bool {
        use rsa::pkcs1v15::{Signature, VerifyingKey};
        use rsa::signature::Verifier as _;
        let Some((input, signature)) = token.rsplit_once('.') else {
            return false;
        };
        let Ok(bytes) = URL_SAFE_NO_PAD.decode(signature) else {
            return false;
        };
        let Ok(signature) = Signature::try_from(bytes.as_slice()) else {
            return false;
        };
        VerifyingKey::<Sha256>::new(self.public.clone())
            .verify(input.as_bytes(), &signature)
            .is_ok()
    }
}

/// The access-token key and the ID-token key.
pub(crate) struct Signer {
    access: Key,
    id: Key,
}

impl Signer {
    /// Generates two fresh keys, side by side.
    pub(crate) fn generate() -> Result<Self, rsa::Error> {
        let (access, id) = std::thread::scope(|s| {
            let id = s.spawn(Key::generate);
            let access = Key::generate();
            (access, id.join())
        });
        let id = id.map_err(|_| rsa::Error::Internal)??;
        Ok(Self {
            access: access?,
            id,
        })
    }

    fn key(&self, use_: Use) -> &Key {
        match use_ {
            Use::Access => &self.access,
            Use::Id => &self.id,
        }
    }

    /// A compact JWS of `claims`, signed RS256 with the key for `use_`.
    pub(crate) fn sign(&self, use_: Use, claims: &Value) -> String {
        let key = self.key(use_);
        let header = json!({ "kid": key.kid, "alg": "RS256" });
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let signature = key.signing.sign(input.as_bytes()).to_bytes();
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature))
    }

    /// The JWKS document (`/{userPoolId}/.well-known/jwks.json`): both keys.
    pub(crate) fn jwks(&self) -> Value {
        json!({ "keys": [self.access.jwk(), self.id.jwk()] })
    }

    /// Whether `token` carries a valid signature of the key for `use_`.
    pub(crate) fn verify_as(&self, use_: Use, token: &str) -> bool {
        self.key(use_).verify(token)
    }

    /// Whether `token` carries a valid signature of either key.
    pub(crate) fn verify(&self, token: &str) -> bool {
        self.access.verify(token) || self.id.verify(token)
    }
}
