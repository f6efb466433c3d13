//! The output of `RevokeToken`: an empty structure (docs/protocol.md §12.2). A 2xx body must be
//! empty or a JSON object, whatever keys it has.

use std::time::SystemTime;

use serde::de::IgnoredAny;

use crate::error::Error;
use crate::protocol::error_code;
use crate::protocol::response::Success;

/// A successful revocation: the refresh token, the access tokens issued from it and (with
/// rotation) its whole lineage no longer work.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RevokeOutput {
    /// The `x-amzn-requestid` header.
    pub request_id: Option<String>,
    /// The response's `Date` header: the server's clock when it answered.
    pub server_date: Option<SystemTime>,
}

/// A 2xx response to `RevokeToken` to output or error.
///
/// Stricter than the SDK, which reads nothing of this body: a 2xx that is not a JSON object
/// (a proxy's or captive portal's HTML page) is a [`ResponseError`](crate::ResponseError), so
/// that a page that never reached Cognito is not taken for a revocation (a token believed
/// revoked but still alive is the failure that matters here). An empty body (or one of JSON
/// whitespace only) counts as `{}`. "A JSON object" is the grammar's (RFC 8259): members are
/// skipped unread, keys and values alike and to any depth, so a number beyond what an `f64`
/// holds (`1e99999`), a lone surrogate escape (`"\uD800"`) or nesting past 128 levels is still
/// JSON there.
pub(crate) fn from_success(success: &Success<'_>) -> Result<RevokeOutput, Error> {
    let body = success.body;
    if body.len() > success.limits.max_body_bytes {
        let limit = success.limits.max_body_bytes;
        return Err(success
            .error(crate::ResponseErrorKind::BodyTooLarge { limit }, None)
            .into());
    }
    if !error_code::is_blank(body) {
        // JSON is UTF-8; skipping a member's value does not check that, so check it first.
        if std::str::from_utf8(body).is_err() {
            let kind = crate::ResponseErrorKind::NotJson;
            return Err(success.error(kind, success.excerpt(body)).into());
        }
        // Skipped whole, keys and values alike, to any depth, as the SDK's skip does: a key
        // handed to a visitor is read (a lone surrogate escape refused there) while the same
        // escape in a value is skipped, and one rule must decide both.
        error_code::parse_json::<IgnoredAny>(body).map_err(|(fault, _)| {
            Error::from(success.error(fault.into(), success.excerpt(body)))
        })?;
        // One JSON value, and JSON's whitespace before it: an object iff its first byte says so.
        if body.iter().find(|b| !error_code::is_json_whitespace(**b)) != Some(&b'{') {
            let kind = crate::ResponseErrorKind::Malformed;
            return Err(success.error(kind, success.excerpt(body)).into());
        }
    }
    Ok(RevokeOutput {
        request_id: success.request_id(),
        server_date: success.server_date(),
    })
}
