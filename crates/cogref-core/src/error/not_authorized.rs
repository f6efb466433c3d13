//! What a `NotAuthorizedException` means, read from its message.
//!
//! Cognito answers `NotAuthorizedException` both when the refresh token is dead and when the
//! app client's configuration is wrong (a wrong, missing or unexpected client secret). Only the
//! first means the user must sign in again: treating a wrong secret as a dead session makes an
//! application delete a session that is fine. The code alone cannot tell them apart, so the
//! message decides, by this table (matched without regard to case, surrounding spaces or a
//! final full stop):
//!
//! | message | [`NotAuthorizedCause`] | sign in again? | source |
//! |---|---|---|---|
//! | `Refresh Token has been revoked` | [`TokenRevoked`](NotAuthorizedCause::TokenRevoked) | yes | token-revocation guide; docs/protocol.md §3 |
//! | `Refresh Token has expired` | [`TokenExpired`](NotAuthorizedCause::TokenExpired) | yes | docs/protocol.md §3 |
//! | `Invalid Refresh Token` | [`TokenInvalid`](NotAuthorizedCause::TokenInvalid) | yes | docs/protocol.md §3 |
//! | `User is disabled` | [`UserDisabled`](NotAuthorizedCause::UserDisabled) | yes | AdminDisableUser docs |
//! | any message that mentions a secret (`Unable to verify secret hash for client …`, `SecretHash does not match for the client: …`, `Client … is configured for secret but secret was not received`, `Client is not configured with a secret`, …) | [`ClientSecret`](NotAuthorizedCause::ClientSecret) | no: configuration | boto/boto3#2736, pycognito#196, amazon-cognito-identity-dart-2#164 |
//! | a message that says the client may not use the flow (`… flow not enabled for this client`, `… not allowed …`) | [`ClientNotAllowed`](NotAuthorizedCause::ClientNotAllowed) | no: configuration | InitiateAuth docs |
//! | anything else, or no message | [`Unknown`](NotAuthorizedCause::Unknown) | no: the session is kept | |
//!
//! An unknown message is reported as its own kind rather than as a dead session: a session
//! layer keeps serving a still-valid access token and tries again later, and the application
//! sees the message. Better a session kept one refresh too long than one deleted by mistake.
//!
//! ```
//! use cogref_core::NotAuthorizedCause;
//!
//! let dead = NotAuthorizedCause::from_message(Some("Refresh Token has been revoked"));
//! assert!(dead.requires_sign_in());
//! let config = NotAuthorizedCause::from_message(Some("Unable to verify secret hash for client 1example"));
//! assert!(config.is_configuration() && !config.requires_sign_in());
//! let unknown = NotAuthorizedCause::from_message(Some("Something new"));
//! assert!(!unknown.requires_sign_in() && !unknown.is_configuration());
//! ```

use std::fmt;

/// Why Cognito refused a refresh with `NotAuthorizedException`; see the [module docs](self).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum NotAuthorizedCause {
    /// The refresh token was revoked (`RevokeToken`, `GlobalSignOut`, an administrator).
    TokenRevoked,
    /// The refresh token (its lineage) reached the end of its validity.
    TokenExpired,
    /// Cognito does not know the refresh token (another pool or client, or not a token).
    TokenInvalid,
    /// The user is disabled.
    UserDisabled,
    /// The client secret is wrong or missing, or sent to a client that has none. The refresh
    /// token may well be fine.
    ClientSecret,
    /// The app client may not use this flow.
    ClientNotAllowed,
    /// A message this crate does not know (or none).
    Unknown,
}

/// Dead-token messages, lower case, without the final full stop.
const DEAD: [(&str, NotAuthorizedCause); 4] = [
    (
        "refresh token has been revoked",
        NotAuthorizedCause::TokenRevoked,
    ),
    (
        "refresh token has expired",
        NotAuthorizedCause::TokenExpired,
    ),
    ("invalid refresh token", NotAuthorizedCause::TokenInvalid),
    ("user is disabled", NotAuthorizedCause::UserDisabled),
];

impl NotAuthorizedCause {
    /// The cause a `NotAuthorizedException` message gives (see the table in the module docs).
    pub fn from_message(message: Option<&str>) -> Self {
        let Some(message) = message else {
            return NotAuthorizedCause::Unknown;
        };
        let trimmed = message.trim();
        let trimmed = trimmed.strip_suffix('.').unwrap_or(trimmed).trim_end();
        let lower = trimmed.to_ascii_lowercase();
        if let Some((_, cause)) = DEAD.iter().find(|(m, _)| *m == lower) {
            return *cause;
        }
        if lower.contains("secret") {
            NotAuthorizedCause::ClientSecret
        } else if lower.contains("flow not enabled")
            || lower.contains("flow is not enabled")
            || lower.contains("not allowed")
        {
            NotAuthorizedCause::ClientNotAllowed
        } else {
            NotAuthorizedCause::Unknown
        }
    }

    /// Whether the refresh token is dead: the user must sign in again.
    pub fn requires_sign_in(self) -> bool {
        matches!(
            self,
            NotAuthorizedCause::TokenRevoked
                | NotAuthorizedCause::TokenExpired
                | NotAuthorizedCause::TokenInvalid
                | NotAuthorizedCause::UserDisabled
        )
    }

    /// Whether the app client's configuration is at fault, not the session.
    pub fn is_configuration(self) -> bool {
        matches!(
            self,
            NotAuthorizedCause::ClientSecret | NotAuthorizedCause::ClientNotAllowed
        )
    }
}

impl fmt::Display for NotAuthorizedCause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            NotAuthorizedCause::TokenRevoked => "the refresh token was revoked",
            NotAuthorizedCause::TokenExpired => "the refresh token has expired",
            NotAuthorizedCause::TokenInvalid => "the refresh token is not valid for this client",
            NotAuthorizedCause::UserDisabled => "the user is disabled",
            NotAuthorizedCause::ClientSecret => {
                "the client secret is wrong, missing or not expected by this app client"
            }
            NotAuthorizedCause::ClientNotAllowed => "the app client may not use this flow",
            NotAuthorizedCause::Unknown => "a reason cogref does not know",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::NotAuthorizedCause::{self, *};

    fn cause(m: &str) -> NotAuthorizedCause {
        NotAuthorizedCause::from_message(Some(m))
    }

    #[test]
    fn dead_token_messages_require_sign_in_whatever_their_case_and_full_stop() {
        for (m, c) in [
            ("Refresh Token has been revoked", TokenRevoked),
            ("Refresh Token has expired", TokenExpired),
            ("Invalid Refresh Token", TokenInvalid),
            ("Invalid Refresh Token.", TokenInvalid),
            ("invalid refresh token", TokenInvalid),
            ("  Refresh Token has been revoked.  ", TokenRevoked),
            ("User is disabled.", UserDisabled),
        ] {
            assert_eq!(cause(m), c, "{m}");
            assert!(c.requires_sign_in() && !c.is_configuration(), "{m}");
        }
    }

    #[test]
    fn secret_messages_are_configuration_and_keep_the_session() {
        for m in [
            "Unable to verify secret hash for client 1example23456789",
            "SecretHash does not match for the client: 1example23456789",
            "Client 1example23456789 is configured for secret but secret was not received",
            "Client 1example is configured with secret but ClientSecret was not received",
            "Client is not configured with a secret.",
            "Unable to verify secret for client.",
            "Unable to verify secret hash for client [redacted]",
        ] {
            assert_eq!(cause(m), ClientSecret, "{m}");
            assert!(!cause(m).requires_sign_in());
            assert!(cause(m).is_configuration());
        }
        assert_eq!(
            cause("USER_PASSWORD_AUTH flow not enabled for this client"),
            ClientNotAllowed
        );
    }

    #[test]
    fn an_unknown_or_missing_message_is_neither_dead_nor_configuration() {
        for c in [
            NotAuthorizedCause::from_message(None),
            cause(""),
            cause("Refresh Token has been revoked, maybe"),
            cause("Access denied"),
        ] {
            assert_eq!(c, Unknown);
            assert!(!c.requires_sign_in() && !c.is_configuration());
        }
    }
}
