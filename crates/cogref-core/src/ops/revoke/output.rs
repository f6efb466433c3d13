//! The output of `RevokeToken`: an empty structure (docs/protocol.md §12.2). A 2xx body must be
//! empty or a JSON object, whatever keys it has.

use std::time::SystemTime;

use serde::Deserialize;
use serde::de::{IgnoredAny, MapAccess, Visitor};

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

/// A JSON object whose members are all skipped.
struct AnyObject;

impl<'de> Deserialize<'de> for AnyObject {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct ObjectVisitor;
        impl<'de> Visitor<'de> for ObjectVisitor {
            type Value = AnyObject;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<AnyObject, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(AnyObject)
            }
        }
        d.deserialize_map(ObjectVisitor)
    }
}

/// A 2xx response to `RevokeToken` to output or error.
///
/// Stricter than the SDK, which reads nothing of this body: a 2xx that is not a JSON object
/// (a proxy's or captive portal's HTML page) is a [`ResponseError`](crate::ResponseError), so
/// that a page that never reached Cognito is not taken for a revocation (a token believed
/// revoked but still alive is the failure that matters here). An empty body (or one of JSON
/// whitespace only) counts as `{}`. "A JSON object" is the grammar's (RFC 8259): members are
/// skipped unread, so a number beyond what an `f64` holds (`1e99999`) is still a number there.
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
        error_code::parse_json::<AnyObject>(body).map_err(|(fault, _)| {
            Error::from(success.error(fault.into(), success.excerpt(body)))
        })?;
    }
    Ok(RevokeOutput {
        request_id: success.request_id(),
        server_date: success.server_date(),
    })
}
