//! What a request carried, for reading its response.
//!
//! Redaction by shape ([`crate::redact`]) cannot tell every secret from every harmless value: a
//! client secret in Cognito's format (52 characters of `[a-z0-9]`) has the shape of a request id
//! and of a DNS label, and an app client id (26 characters of `[a-z0-9]`) the shape of a short
//! custom client secret. The client knows what it sent, so the call reads its response with a
//! [`Sent`]: no text taken from the response (request id, redirect host, error code, message,
//! reason code, body excerpt) may show back a secret the request carried, or a piece of one of
//! [`ECHO_PIECE`] characters or more; and the app client id, which is not a secret, is shown
//! where the response names it ("User pool client … does not exist").

use std::fmt;

use secrecy::{ExposeSecret, SecretString};

/// Shortest piece of a secret that counts as an echo of it (the length from which a run is
/// taken for a secret by shape, [`crate::redact::MIN_SECRET_RUN`]).
pub const ECHO_PIECE: usize = crate::protocol::redact::MIN_SECRET_RUN;

/// What a request carried: its secrets and its app client id. Its `Debug` shows neither secret.
#[derive(Clone, Default)]
pub struct Sent<'a> {
    client_id: Option<&'a str>,
    secrets: Vec<&'a SecretString>,
}

impl fmt::Debug for Sent<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sent")
            .field("client_id", &self.client_id)
            .field("secrets", &self.secrets.len())
            .finish()
    }
}

impl<'a> Sent<'a> {
    /// Nothing known about the request: responses are read by shape alone.
    pub fn nothing() -> Self {
        Self::default()
    }

    /// A request for app client `client_id` that carried `secrets` (refresh token, client
    /// secret, device key: whichever it had).
    pub fn new(
        client_id: &'a str,
        secrets: impl IntoIterator<Item = Option<&'a SecretString>>,
    ) -> Self {
        Self {
            client_id: Some(client_id),
            secrets: secrets.into_iter().flatten().collect(),
        }
    }

    /// Whether `text` shows back one of the secrets sent, whole or a piece of [`ECHO_PIECE`]
    /// characters.
    pub fn is_echoed_in(&self, text: &str) -> bool {
        self.secrets
            .iter()
            .any(|secret| echoes(text, secret.expose_secret()))
    }

    /// Whether the request carried any secret to look for.
    pub(crate) fn carries_secrets(&self) -> bool {
        !self.secrets.is_empty()
    }

    /// Whether `text` is the app client id sent (not a secret: it may be shown).
    pub fn is_client_id(&self, text: &str) -> bool {
        self.client_id.is_some_and(|id| id == text)
    }
}

/// Shortest secret whose whole appearance in a text counts as an echo. A shorter "secret" (no
/// token, client secret or device key Cognito issues is near that short; test doubles are)
/// appears in ordinary text by chance: a refresh token `r` would redact every `r` of
/// "Refresh Token has been revoked", and the message would no longer say the session is over.
pub const MIN_WHOLE_ECHO: usize = 8;

/// Whether `text` holds `secret` (of [`MIN_WHOLE_ECHO`] characters or more), or a piece of it of
/// [`ECHO_PIECE`] characters.
fn echoes(text: &str, secret: &str) -> bool {
    if secret.len() < MIN_WHOLE_ECHO {
        return false;
    }
    if secret.len() <= ECHO_PIECE {
        return text.contains(secret);
    }
    let bytes = text.as_bytes();
    (0..=bytes.len().saturating_sub(ECHO_PIECE)).any(|start| {
        bytes
            .get(start..start + ECHO_PIECE)
            .and_then(|piece| std::str::from_utf8(piece).ok())
            .is_some_and(|piece| secret.contains(piece))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "1q2w3e4r5t6y7u8i9o0pasdfghjklzxcvbnm1q2w3e4r5t6y7u8i";

    #[test]
    fn a_secret_whole_or_in_a_piece_of_twenty_characters_is_an_echo() {
        let secret = SecretString::from(SECRET);
        let sent = Sent::new("client", [Some(&secret), None]);
        assert!(sent.is_echoed_in(SECRET));
        assert!(sent.is_echoed_in(&format!("{SECRET}.example")));
        assert!(sent.is_echoed_in(&format!("x{}.y", &SECRET[10..30])));
        assert!(!sent.is_echoed_in(&SECRET[10..29]));
        assert!(!sent.is_echoed_in("0b9a3c5e-1111-2222-3333-444455556666"));
        assert!(!Sent::nothing().is_echoed_in(SECRET));
    }

    #[test]
    fn a_secret_too_short_to_tell_from_text_is_no_echo() {
        let short = SecretString::from("r");
        let sent = Sent::new("client", [Some(&short)]);
        assert!(!sent.is_echoed_in("Refresh Token has been revoked"));
        let eight = SecretString::from("abcd1234");
        let sent = Sent::new("client", [Some(&eight)]);
        assert!(sent.is_echoed_in("host abcd1234.example"));
    }

    #[test]
    fn the_client_id_is_known_and_debug_shows_no_secret() {
        let secret = SecretString::from(SECRET);
        let sent = Sent::new("1example23456789abcdefghij", [Some(&secret)]);
        assert!(sent.is_client_id("1example23456789abcdefghij"));
        assert!(!sent.is_client_id("1example"));
        assert!(!format!("{sent:?}").contains(SECRET));
    }
}
