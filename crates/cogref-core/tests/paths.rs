//! Every public path of the core before it was arranged into `protocol/`, `ops/`, `call/`,
//! `session/` and `error/` still names the same item: code written against the old paths keeps
//! compiling. A path that stops resolving fails this file's build.

#![allow(unused_imports)]

use cogref_core::call::{Attempt, CallConfig, CallError, RefreshCall, SendOptions, Step, Timeouts};
use cogref_core::classify::{
    RetryKind, THROTTLING_ERRORS, TRANSIENT_ERRORS, TRANSIENT_STATUSES, by_code, by_status,
};
use cogref_core::driver::{
    AsyncTransport, BlockingTransport, Client, DetachedTask, Environment, FnTransport, HttpRequest,
    HttpResponse, ManualEnvironment, StdEnvironment, block_on, spawn_thread, transport_fn,
};
use cogref_core::endpoint::{ENV_VARS, Endpoint, EndpointConfig, EndpointError};
use cogref_core::error::{
    Error, ResponseError, ResponseErrorKind, ServiceError, ServiceErrorKind, TransportError,
    TransportErrorKind,
};
use cogref_core::error_code::{
    ERROR_TYPE_HEADER, ErrorBody, ErrorBodyFault, parse_error_body, pick_code, sanitize,
};
use cogref_core::input::{
    CLIENT_ID_LEN, CLIENT_ID_PATTERN, CLIENT_METADATA_LEN, CLIENT_SECRET_LEN, DEVICE_KEY_LEN,
    DEVICE_KEY_PATTERN, Field, InvalidInput, RefreshInput, RefreshInputBuilder, Rule,
    TOKEN_PATTERN,
};
use cogref_core::jwt::{Claims, ClaimsError, decode_claims};
use cogref_core::not_authorized::NotAuthorizedCause;
use cogref_core::partition::{PARTITIONS, Partition, partition_of};
use cogref_core::quiet::{Quiet, quiet, quietly};
use cogref_core::redact::{EXCERPT_CHARS, MIN_SECRET_RUN, REDACTED, excerpt, redact};
use cogref_core::request::{
    AttemptInfo, CONTENT_TYPE_JSON_1_1, InvocationId, OutgoingRequest, TARGET, USER_AGENT_VALUE,
    body_bytes, build_request,
};
use cogref_core::response::{
    DEFAULT_MAX_BODY_BYTES, MAX_REQUEST_ID_CHARS, NewDeviceMetadata, RefreshOutput, ResponseLimits,
    http_date, parse_response, request_id, retry_after,
};
use cogref_core::retry::{RetryConfig, RetryPolicy, RetryQuota};
use cogref_core::session::{
    Applied, Decision, MAX_LIFETIME, Moment, Now, Session, SessionConfig, TokenSet,
};
// The crate root's re-exports.
use cogref_core::{
    AsyncTransport as _, Attempt as _, AttemptInfo as _, BlockingTransport as _, CallConfig as _,
    CallError as _, Client as _, Decision as _, Endpoint as _, EndpointConfig as _,
    EndpointError as _, Environment as _, Error as _, Field as _, InvalidInput as _, Moment as _,
    NewDeviceMetadata as _, NotAuthorizedCause as _, Now as _, OutgoingRequest as _,
    RefreshCall as _, RefreshInput as _, RefreshInputBuilder as _, RefreshOutput as _,
    ResponseError as _, ResponseErrorKind as _, ResponseLimits as _, RetryConfig as _,
    RetryKind as _, RetryPolicy as _, RetryQuota as _, Rule as _, SendOptions as _,
    ServiceError as _, ServiceErrorKind as _, Session as _, SessionConfig as _, Step as _,
    Timeouts as _, TokenSet as _, TransportError as _, TransportErrorKind as _, build_request as _,
    http, parse_response as _, secrecy,
};

#[test]
fn the_old_paths_name_the_items_they_always_named() {
    // Items reached by an old path and by the new one are one and the same.
    assert_eq!(
        cogref_core::request::TARGET,
        "AWSCognitoIdentityProviderService.GetTokensFromRefreshToken"
    );
    assert_eq!(
        cogref_core::request::TARGET,
        <cogref_core::ops::refresh::GetTokensFromRefreshToken as cogref_core::Operation>::TARGET
    );
    assert_eq!(
        cogref_core::response::DEFAULT_MAX_BODY_BYTES,
        cogref_core::protocol::response::DEFAULT_MAX_BODY_BYTES
    );
    let old: fn(&str) -> &str = cogref_core::error_code::sanitize;
    let new: fn(&str) -> &str = cogref_core::protocol::error_code::sanitize;
    assert_eq!(old("a#B:c"), new("a#B:c"));
    let input: cogref_core::input::RefreshInput = cogref_core::RefreshInput::builder()
        .refresh_token("t")
        .client_id("c")
        .build()
        .expect("valid");
    let _: &cogref_core::ops::refresh::RefreshInput = &input;
}
