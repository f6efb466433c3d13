//! What a caller of the managers can be told.

use std::sync::Arc;
use std::time::SystemTime;

use cogref_core::{CallError, InvalidInput};

use crate::store::StoreError;

/// Why no access token could be handed out. Never contains a token.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum SessionError {
    /// The refresh token is dead (expired, revoked, rotated out): the user must sign in again.
    /// No further refresh will be attempted.
    #[error("sign-in required: {0}")]
    SignInRequired(Arc<CallError>),
    /// The access token has expired and refreshing it fails for now; the manager tries again
    /// at `retry_at`.
    #[error("no valid access token: the last refresh failed ({error}); next try at {retry_at:?}")]
    Unavailable {
        /// The last refresh's error.
        error: Arc<CallError>,
        /// When the next refresh will be tried.
        retry_at: SystemTime,
    },
    /// A refresh succeeded and rotated the refresh token, but the new one could not be saved.
    /// The session keeps it in memory, so this process can go on; another process, or this one
    /// after a restart, will find only the old, now invalid, token.
    #[error(
        "the new refresh token could not be saved ({0}); it is kept in memory only: fix the store, or the session is lost when this process exits"
    )]
    RotatedTokenNotSaved(Arc<StoreError>),
    /// The store could not be read or locked.
    #[error(transparent)]
    Store(Arc<StoreError>),
    /// The manager's template input and the session's tokens make an invalid request.
    #[error(transparent)]
    InvalidInput(#[from] InvalidInput),
}

impl SessionError {
    /// Whether the user must sign in again.
    pub fn requires_sign_in(&self) -> bool {
        matches!(self, SessionError::SignInRequired(_))
    }
}

impl From<StoreError> for SessionError {
    fn from(e: StoreError) -> Self {
        SessionError::Store(Arc::new(e))
    }
}
