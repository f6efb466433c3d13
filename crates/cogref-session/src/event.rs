//! Events a manager reports as they happen, so that callers need not poll.

use std::sync::Arc;
use std::time::SystemTime;

use cogref_core::CallError;

use crate::store::StoreError;

/// Something that happened to a session.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum SessionEvent {
    /// New access (and ID) tokens, valid until `expires_at`.
    Refreshed {
        /// Local expiry of the new tokens.
        expires_at: Option<SystemTime>,
        /// Whether rotation replaced the refresh token.
        rotated: bool,
    },
    /// Another holder of the store refreshed; its tokens were adopted without a call.
    Adopted,
    /// The refresh token is dead: the user must sign in again.
    SignInRequired(Arc<CallError>),
    /// A refresh failed; the next try is due at `retry_at`.
    RefreshFailed {
        /// The error.
        error: Arc<CallError>,
        /// When the next refresh will be tried.
        retry_at: Option<SystemTime>,
    },
    /// Saving to the store failed.
    StoreFailed(Arc<StoreError>),
    /// A rotated refresh token whose save had failed
    /// ([`SessionError::RotatedTokenNotSaved`](crate::SessionError::RotatedTokenNotSaved)) is
    /// now in the store: the manager saved it again, without a refresh, once the store took it.
    Stored,
    /// The session was signed out: by this manager's `sign_out()` (its refresh token revoked),
    /// or by another holder of the store, whose tombstone this manager found. Every later call
    /// answers [`SessionError::SignedOut`](crate::SessionError::SignedOut) until a new sign-in
    /// is stored.
    SignedOut,
    /// The lineage ends at `deadline` (sign-in plus the refresh-token validity the application
    /// stated), less than the notice away: ask the user to sign in again before it does.
    /// Reported once per process and lineage (a new sign-in has its own), by the first manager
    /// with listeners to find it near: on a call of `access_token()`, a refresh, an adoption,
    /// or the background refresher, which wakes for it.
    EndingSoon {
        /// When the refresh token stops working, by the local clock.
        deadline: SystemTime,
    },
}

/// A listener: called synchronously, on the refreshing task or thread; keep it short.
pub type Listener = Arc<dyn Fn(&SessionEvent) + Send + Sync>;
