//! Exit codes and failures with a next step.

use cogref_core::{CallError, EndpointError, Error, InvalidInput};
use cogref_session::SessionError;

/// What the exit status means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Code {
    /// Anything else (an unexpected response, a store that cannot be written).
    Failure = 1,
    /// The input is invalid (also clap's code for bad usage).
    InvalidInput = 2,
    /// The refresh token is dead: sign in again.
    SignInRequired = 3,
    /// A passing failure (throttling, 5xx, network): try again later.
    Retryable = 4,
    /// The configuration is wrong (endpoint, app client, missing secret).
    Configuration = 5,
}

/// A failure: what went wrong and what to do next.
#[derive(Debug)]
pub(crate) struct Failure {
    pub(crate) code: Code,
    pub(crate) message: String,
    pub(crate) hint: Option<&'static str>,
}

impl Failure {
    pub(crate) fn new(code: Code, message: impl Into<String>, hint: Option<&'static str>) -> Self {
        Self {
            code,
            message: message.into(),
            hint,
        }
    }
}

impl From<InvalidInput> for Failure {
    fn from(e: InvalidInput) -> Self {
        Failure::new(
            Code::InvalidInput,
            e.to_string(),
            Some("check the value given for that field"),
        )
    }
}

impl From<EndpointError> for Failure {
    fn from(e: EndpointError) -> Self {
        let message = match e {
            // The value came from argv or the environment: not repeated.
            EndpointError::InvalidRegion { .. } => "invalid region (not repeated here): a region \
                is 1 to 63 letters, digits or '-', not starting or ending with '-'"
                .to_owned(),
            e => e.to_string(),
        };
        Failure::new(
            Code::Configuration,
            message,
            Some("set --region (or AWS_REGION), or --endpoint-url (or AWS_ENDPOINT_URL)"),
        )
    }
}

/// What to do after a response that may have been lost: the request may have been applied.
pub(crate) const LOST_RESPONSE_HINT: &str = "the request may have reached Cognito and only the \
    answer was lost, so the refresh may already have been applied: with refresh-token rotation \
    the token you sent has then been replaced by one you never received. Try again right away: \
    inside the app client's grace period the old token still works. If that fails with \
    RefreshTokenReuseException or NotAuthorizedException, the user must sign in again";

fn classify(error: &Error) -> (Code, Option<&'static str>) {
    if let Error::Transport(t) = error
        && t.request_may_have_been_sent()
        && error.is_retryable()
    {
        return (Code::Retryable, Some(LOST_RESPONSE_HINT));
    }
    if error.requires_sign_in() {
        return (
            Code::SignInRequired,
            Some("the refresh token is dead: sign the user in again to get a new one"),
        );
    }
    if error.is_retryable() {
        return (
            Code::Retryable,
            Some("a passing failure: try again in a little while"),
        );
    }
    match error {
        Error::InvalidInput(_) => (Code::InvalidInput, None),
        Error::Service(s) if s.kind == cogref_core::ServiceErrorKind::UnsupportedTokenType => (
            Code::InvalidInput,
            Some(
                "only a refresh token can be revoked: give the refresh token, not an access or ID token",
            ),
        ),
        Error::Service(s) if s.kind == cogref_core::ServiceErrorKind::UnsupportedOperation => (
            Code::Configuration,
            Some(
                "the app client does not allow token revocation: turn it on (EnableTokenRevocation)",
            ),
        ),
        // A wrong or missing client secret is NotAuthorizedException too, but the session is
        // fine: the configuration is what to fix (cogref_core::not_authorized has the table).
        Error::Service(s)
            if s.not_authorized_cause() == Some(cogref_core::NotAuthorizedCause::ClientSecret) =>
        {
            (
                Code::Configuration,
                Some(
                    "check the client secret (--client-secret-file or --client-secret-env): the refresh token itself may be fine, keep it",
                ),
            )
        }
        _ if error.is_configuration() => (
            Code::Configuration,
            Some("check the user pool, app client id, client secret and region"),
        ),
        Error::Service(s) if s.not_authorized_cause().is_some() => (
            Code::Failure,
            Some(
                "Cognito refused the refresh for a reason cogref does not know (see its message); the refresh token was not declared dead, keep it",
            ),
        ),
        _ => (Code::Failure, None),
    }
}

impl From<&CallError> for Failure {
    fn from(e: &CallError) -> Self {
        let (code, hint) = classify(e.error());
        Failure::new(code, e.to_string(), hint)
    }
}

impl From<CallError> for Failure {
    fn from(e: CallError) -> Self {
        Failure::from(&e)
    }
}

impl From<SessionError> for Failure {
    fn from(e: SessionError) -> Self {
        match &e {
            SessionError::SignInRequired(_) => Failure::new(
                Code::SignInRequired,
                e.to_string(),
                Some("the refresh token is dead: sign the user in again to get a new one"),
            ),
            SessionError::Unavailable { error, .. } => {
                let (code, hint) = classify(error);
                Failure::new(code, e.to_string(), hint)
            }
            SessionError::InvalidInput(_) => Failure::new(Code::InvalidInput, e.to_string(), None),
            SessionError::SignedOut => Failure::new(
                Code::SignInRequired,
                e.to_string(),
                Some(
                    "the session was signed out: sign the user in again and give the new refresh token",
                ),
            ),
            SessionError::SignOutFailed(error) => {
                let (code, hint) = classify(error);
                Failure::new(code, e.to_string(), hint)
            }
            SessionError::TooSoon { .. } => Failure::new(
                Code::Retryable,
                e.to_string(),
                Some("try again after the time given"),
            ),
            _ => Failure::new(
                Code::Failure,
                e.to_string(),
                Some("check that the --store file can be read and written"),
            ),
        }
    }
}
