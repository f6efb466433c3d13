//! RS256 signing of the emulator's JWTs, and the key set it serves.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rsa::pkcs1v15::SigningKey;
use rsa::sha2::Sha256;
use rsa::signature::{SignatureEncoding, Signer as _};
use rsa::traits::PublicKeyParts;
use rsa::{RsaPrivateKey, RsaPublicKey};
use serde_json::{Value, json};

/// A 2048-bit RSA key generated at start-up, with its key id.
pub(crate) struct Signer {
    kid: String,
    signing: SigningKey<Sha256>,
    public: RsaPublicKey,
}

impl Signer {
    /// Generates a fresh key.
    pub(crate) fn generate() -> Result<Self, rsa::Error> {
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

    /// A compact JWS of `claims`, signed RS256 with this key.
    pub(crate) fn sign(&self, claims: &Value) -> String {
        let header = json!({ "kid": self.kid, "alg": "RS256" });
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let signature = self.signing.sign(input.as_bytes()).to_bytes();
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature))
    }

    /// The JWKS document (`/{userPoolId}/.well-known/jwks.json`).
    pub(crate) fn jwks(&self) -> Value {
        json!({
            "keys": [{
                "alg": "RS256",
                "e": URL_SAFE_NO_PAD.encode(self.public.e().to_bytes_be()),
                "kid": self.kid,
                "kty": "RSA",
                "n": URL_SAFE_NO_PAD.encode(self.public.n().to_bytes_be()),
                "use": "sig",
            }]
        })
    }

    /// Verifies a token this key signed (for tests and `cogref inspect --verify`-style tools).
    pub(crate) fn verify(&self, token: &str) -> bool {
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
