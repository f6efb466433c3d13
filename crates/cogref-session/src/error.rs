//! What a caller of the managers can be told.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use cogref_core::session::utc::Utc;
use cogref_core::{CallError, InvalidInput, Operation, RevokeToken};

use crate::store::StoreError;

/// Why no access token could be handed out. Never contains a token.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum SessionError {
    /// The refresh token is dead (expired, revoked, rotated out): the user must sign in again.
    /// No further refresh is attempted with it; every later call looks at the store and adopts
    /// a newer set if one appears there (another process signed in or rotated).
    #[error("sign-in required: {0}")]
    SignInRequired(Arc<CallError>),
    /// Refreshing fails for now: the access token has expired (or `refresh_now()` asked for
    /// a new one) and the refresh failed; the manager tries again at `retry_at`.
    #[error("the last refresh failed ({error}); next try at {}", Utc(*retry_at))]
    Unavailable {
        /// The last refresh's error.
        error: Arc<CallError>,
        /// When the next refresh will be tried.
        retry_at: SystemTime,
    },
    /// The access token has expired, but the lineage was refreshed moments ago and Cognito
    /// returned tokens that were already due (a lifetime of 0 s, or a margin at least the
    /// lifetime): to avoid refreshing in a loop, the next refresh waits until `retry_at`.
    #[error(
        "no valid access token: the last refresh returned tokens that were already due (lifetime {}); the next refresh waits until {} so that the lineage is not refreshed in a loop: check the app client's access-token validity and the refresh margin",
        lifetime.map_or_else(|| "unknown".to_owned(), |l| format!("{} s", l.as_secs())),
        Utc(*retry_at)
    )]
    TooSoon {
        /// When the next refresh may start.
        retry_at: SystemTime,
        /// The lifetime of the tokens the last refresh returned, as counted locally.
        lifetime: Option<Duration>,
    },
    /// The task running the refresh was dropped before it finished (its runtime shut down, or
    /// the transport could not start it). If the request had reached Cognito, the session may
    /// have rotated without this process hearing of it.
    #[error(
        "the refresh task was dropped before it finished (its runtime shut down?); the next call starts another"
    )]
    Interrupted,
    /// A refresh succeeded and rotated the refresh token, but the new one could not be saved.
    /// The session keeps it in memory, so this process can go on, and the manager saves it
    /// again, without a refresh, as soon as the store takes it: tried at most once a second, on
    /// the manager's calls and by its background refresher, and told by
    /// [`SessionEvent::Stored`](crate::SessionEvent::Stored). Until then another process, or
    /// this one after a restart, finds only the old, now invalid, token.
    #[error(
        "the new refresh token could not be saved ({0}); it is kept in memory and saved as soon as the store takes it: fix the store, or the session is lost if this process exits first"
    )]
    RotatedTokenNotSaved(Arc<StoreError>),
    /// The store could not be read or locked.
    #[error(transparent)]
    Store(Arc<StoreError>),
    /// The manager's template input and the session's tokens make an invalid request.
    #[error(transparent)]
    InvalidInput(#[from] InvalidInput),
    /// The session was signed out (by this manager's `sign_out()`, or by another holder of the
    /// store, whose tombstone this manager found): its refresh token is revoked. Sign in again;
    /// a set a new sign-in stores is adopted.
    #[error("signed out: the session's refresh token was revoked; sign in again")]
    SignedOut,
    /// `sign_out()` could not revoke the refresh token: nothing was changed, neither the store
    /// nor this manager, and the session goes on. Try again (revoking twice is harmless) —
    /// unless the error says the refresh token no longer works (a code `RevokeToken` does not
    /// send, such as `RefreshTokenReuseException`): then [`requires_sign_in`](Self::requires_sign_in)
    /// is true, and the next refresh will say so too.
    #[error("{}", sign_out_failed(.0))]
    SignOutFailed(Arc<CallError>),
    /// `sign_out()` revoked the refresh token and this manager is signed out, but the store
    /// could not record the sign-out: it still holds the (now revoked) set, so another holder
    /// learns of the sign-out only when Cognito refuses its next refresh.
    #[error(
        "signed out: the refresh token was revoked, but the token store could not record the sign-out ({0}); other holders of the store learn of it when Cognito refuses their next refresh"
    )]
    SignOutNotStored(Arc<StoreError>),
}

/// What a failed revocation means for the caller of `sign_out()`.
fn sign_out_failed(error: &CallError) -> String {
    // No Cognito error code: the request may have been applied (a 502 page counts too).
    let lost = error.may_have_been_applied();
    let next = if error.is_retryable() {
        "try again"
    } else if error.is_configuration() {
        "fix the app client's configuration, then try again"
    } else {
        "see the error, then try again"
    };
    if error.requires_sign_in() {
        // A code RevokeToken does not send, but which says the token is dead wherever it comes.
        return format!(
            "sign-out failed: Cognito refused the revocation with an error that says the refresh token no longer works ({error}); nothing was changed here, and the next refresh will tell: sign in again"
        );
    }
    if lost {
        format!(
            "sign-out failed: no answer from Cognito ({error}), so the refresh token may or may not have been revoked; nothing was changed here and the session goes on: {next} (revoking twice is harmless)"
        )
    } else if modeled(error) {
        // One of RevokeToken's own errors: a revocation that fails leaves the token as it was
        // (docs/protocol.md §12.3).
        format!(
            "sign-out failed: Cognito did not revoke the refresh token ({error}); nothing was changed, the refresh token still works and the session goes on: {next}"
        )
    } else {
        // A code the operation does not send, that says nothing of the token either (an
        // unknown NotAuthorizedException message): nothing here is known of the token.
        format!(
            "sign-out failed: Cognito did not revoke the refresh token ({error}); nothing was changed here and the session goes on: {next}"
        )
    }
}

/// Whether a failed revocation's error is one of `RevokeToken`'s own.
fn modeled(error: &CallError) -> bool {
    error
        .as_service()
        .is_some_and(|s| RevokeToken::MODELED_ERRORS.contains(&s.kind))
}

impl SessionError {
    /// Whether the user must sign in again: the refresh token is dead, or the session was
    /// signed out; also a failed sign-out whose error says the refresh token no longer works.
    pub fn requires_sign_in(&self) -> bool {
        match self {
            SessionError::SignInRequired(_)
            | SessionError::SignedOut
            | SessionError::SignOutNotStored(_) => true,
            SessionError::SignOutFailed(error) => error.requires_sign_in(),
            _ => false,
        }
    }
}

impl From<StoreError> for SessionError {
    fn from(e: StoreError) -> Self {
        SessionError::Store(Arc::new(e))
    }
}
