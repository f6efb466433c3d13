//! The Cognito operations cogref calls, each described once for the shared machinery: the
//! AWS JSON 1.1 protocol ([`crate::protocol`]) builds and reads their messages, and the
//! attempt loop ([`crate::call`]) sends them, whatever the operation.
//!
//! An [`Operation`] says what is particular to one operation: its name and `X-Amz-Target`, how
//! its validated input becomes a body, how a success body becomes its output, which errors the
//! model lists for it, and whether sending the same request twice is harmless.
//!
//! | operation | module |
//! |---|---|
//! | `GetTokensFromRefreshToken` | [`refresh`] |
//! | `RevokeToken` | [`revoke`] |
//!
//! The shapes they share (tokens, app client ids and secrets, with the model's constraints,
//! and the [`InvalidInput`](shapes::InvalidInput) error) are in [`shapes`].

pub mod refresh;
pub mod revoke;
pub mod shapes;

use crate::error::{Error, ServiceErrorKind};
use crate::protocol::endpoint::Endpoint;
use crate::protocol::request::{AttemptInfo, InvocationId, OutgoingRequest, build_for_target};
use crate::protocol::response::Success;
use crate::protocol::sent::Sent;

/// What is particular to one operation; everything else is the protocol's and the attempt
/// loop's.
pub trait Operation {
    /// The validated input.
    type Input;
    /// What a success gives.
    type Output;
    /// The operation's name in the model (`GetTokensFromRefreshToken`).
    const NAME: &'static str;
    /// What the call does, as a noun for messages (`refresh`).
    const ACTION: &'static str;
    /// `X-Amz-Target`: `AWSCognitoIdentityProviderService.` and the name. Visible ASCII, as a
    /// header value must be: it is made into one at compile time, so an operation whose target
    /// is not fails to build (`cargo check` does not see it) wherever a call of it is made.
    const TARGET: &'static str;
    /// Whether sending the same request again after it may have been received does no more
    /// than the first send did. When it does (a rotated refresh token is consumed by the first
    /// send), [`RetryPolicy::RotationSafe`](crate::call::retry::RetryPolicy::RotationSafe)
    /// refuses to resend once the request may have arrived; when it is harmless, the policy has
    /// nothing to protect and retries like the standard one.
    const RESEND_IS_HARMLESS: bool;
    /// The errors the model lists for the operation, in model order.
    const MODELED_ERRORS: &'static [ServiceErrorKind];

    /// The JSON body of `input`, exactly as sent.
    fn body(input: &Self::Input) -> Vec<u8>;

    /// A 2xx response to output, or an error if its body is not a valid answer.
    fn parse_success(success: &Success<'_>) -> Result<Self::Output, Error>;

    /// What `input` carries that its response must not show back (its secrets), and its app
    /// client id, which may be shown (see [`Sent`]).
    fn sent(input: &Self::Input) -> Sent<'_>;

    /// The span one call of the operation runs in (`cogref.refresh`, …), with the fields
    /// `client_id`, `invocation_id`, and `attempts` and `outcome` left empty for the driver.
    fn span(input: &Self::Input, invocation_id: InvocationId) -> tracing::Span;
}

/// The request of one attempt of `O`: the protocol's request ([`build_for_target`]) with the
/// operation's target and body. Every way of building a request goes through here
/// (`Call::poll` and each operation's `build_request`), so all send the same bytes.
pub(crate) fn build_request<O: Operation>(
    endpoint: &Endpoint,
    input: &O::Input,
    attempt: &AttemptInfo,
) -> OutgoingRequest {
    // Made at compile time: `from_static` outside a constant checks its text on every call.
    let target = const { http::HeaderValue::from_static(O::TARGET) };
    build_for_target(endpoint, target, O::body(input), attempt)
}
