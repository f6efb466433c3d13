//! Properties of the protocol layer, checked on generated inputs.

mod common;

use std::time::{Duration, SystemTime};

use cogref_core::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use cogref_core::secrecy::ExposeSecret;
use cogref_core::{
    AttemptInfo, EndpointConfig, Error, InvocationId, RefreshInput, ResponseLimits, build_request,
    parse_response,
};
use proptest::collection::{btree_map, vec};
use proptest::option;
use proptest::prelude::*;
use serde_json::Value;

fn now() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_750_000_000)
}

fn header_name() -> impl Strategy<Value = HeaderName> {
    prop_oneof![
        Just(HeaderName::from_static("x-amzn-errortype")),
        Just(HeaderName::from_static("x-amzn-requestid")),
        Just(HeaderName::from_static("x-amz-request-id")),
        Just(HeaderName::from_static("x-amz-retry-after")),
        Just(HeaderName::from_static("content-type")),
        "[a-z][a-z0-9-]{0,20}".prop_map(|s| HeaderName::try_from(s).expect("valid name")),
    ]
}

fn headers() -> impl Strategy<Value = HeaderMap> {
    vec((header_name(), vec(any::<u8>(), 0..64)), 0..6).prop_map(|pairs| {
        let mut map = HeaderMap::new();
        for (name, bytes) in pairs {
            if let Ok(value) = HeaderValue::from_bytes(&bytes) {
                map.append(name, value);
            }
        }
        map
    })
}

/// Bodies that are mostly JSON-shaped, so the parser gets past its first byte.
fn body() -> impl Strategy<Value = Vec<u8>> {
    let fragments = prop_oneof![
        Just("{".to_owned()),
        Just("}".to_owned()),
        Just("[".to_owned()),
        Just("]".to_owned()),
        Just(",".to_owned()),
        Just(":".to_owned()),
        Just("null".to_owned()),
        Just("\"AuthenticationResult\"".to_owned()),
        Just("\"AccessToken\"".to_owned()),
        Just("\"ExpiresIn\"".to_owned()),
        Just("\"NewDeviceMetadata\"".to_owned()),
        Just("\"__type\"".to_owned()),
        Just("\"code\"".to_owned()),
        Just("\"message\"".to_owned()),
        "-?[0-9]{1,12}",
        "\"[ -~]{0,12}\"",
    ];
    prop_oneof![
        vec(any::<u8>(), 0..512),
        vec(fragments, 0..40).prop_map(|f| f.concat().into_bytes()),
    ]
}

fn valid_input() -> impl Strategy<Value = RefreshInput> {
    (
        "[A-Za-z0-9=_.-]{1,200}",
        "[A-Za-z0-9_+]{1,128}",
        option::of("[A-Za-z0-9_+]{24,64}"),
        option::of("[A-Za-z0-9_-]{1,20}_[0-9a-f-]{1,30}"),
        option::of(btree_map(".{0,10}", ".{0,30}", 0..4)),
    )
        .prop_map(|(token, client_id, secret, device, metadata)| {
            RefreshInput::builder()
                .refresh_token(token)
                .client_id(client_id)
                .set_client_secret(secret.map(Into::into))
                .set_device_key(device.map(Into::into))
                .set_client_metadata(metadata)
                .build()
                .expect("generated input satisfies the model")
        })
}

fn attempt() -> impl Strategy<Value = AttemptInfo> {
    (any::<[u8; 16]>(), 1u32..10, 1u32..10).prop_map(|(bytes, a, m)| AttemptInfo {
        invocation_id: InvocationId::from_random_bytes(bytes),
        attempt: a.min(m),
        max_attempts: m,
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn the_parser_never_panics(status in 100u16..=999, headers in headers(), body in body()) {
        let status = StatusCode::from_u16(status).expect("in range");
        let limits = ResponseLimits { max_body_bytes: 400 };
        match parse_response(status, &headers, &body, now(), &limits) {
            Ok(out) => prop_assert!(status.is_success() && out.expires_at >= now()),
            Err(e) => { let _ = (e.to_string(), format!("{e:?}"), e.retry_kind(), e.requires_sign_in()); }
        }
    }

    #[test]
    fn every_valid_input_round_trips_through_the_body(input in valid_input(), attempt in attempt()) {
        let endpoint = EndpointConfig::new().region("eu-west-1").resolve().expect("valid");
        let request = build_request(&endpoint, &input, &attempt).into_http();
        let body: Value = serde_json::from_slice(request.body()).expect("the body is JSON");
        prop_assert_eq!(body["RefreshToken"].as_str(), Some(input.refresh_token().expose_secret()));
        prop_assert_eq!(body["ClientId"].as_str(), Some(input.client_id()));
        prop_assert_eq!(body.get("ClientSecret").and_then(Value::as_str),
                        input.client_secret().map(|s| s.expose_secret()));
        prop_assert_eq!(body.get("DeviceKey").and_then(Value::as_str),
                        input.device_key().map(|s| s.expose_secret()));
        let metadata = body.get("ClientMetadata").map(|m| {
            serde_json::from_value::<std::collections::BTreeMap<String, String>>(m.clone())
                .expect("a string map")
        });
        prop_assert_eq!(metadata.as_ref(), input.client_metadata());
        prop_assert_eq!(body.as_object().map(|o| o.len()), Some(
            2 + usize::from(input.client_secret().is_some())
              + usize::from(input.device_key().is_some())
              + usize::from(input.client_metadata().is_some())));
        // Model order: the set fields appear in this order; nothing is written as null.
        let raw = String::from_utf8(request.body().clone()).expect("utf-8");
        prop_assert!(raw.starts_with(r#"{"RefreshToken":"#), "body starts with RefreshToken");
        prop_assert!(!raw.contains(":null"));
        let mut last = 0;
        for (key, set) in [("\"ClientId\":", true),
                           ("\"ClientSecret\":", input.client_secret().is_some()),
                           ("\"DeviceKey\":", input.device_key().is_some()),
                           ("\"ClientMetadata\":", input.client_metadata().is_some())] {
            if set {
                let at = raw.find(key).expect("set field present");
                prop_assert!(at > last, "{} out of order", key);
                last = at;
            }
        }
        let content_length = request.body().len().to_string();
        prop_assert_eq!(request.headers()["content-length"].to_str().ok(), Some(content_length.as_str()));
        let attempt_header = format!("attempt={}; max={}", attempt.attempt, attempt.max_attempts);
        prop_assert_eq!(request.headers()["amz-sdk-request"].to_str().ok(), Some(attempt_header.as_str()));
    }

    /// Each error form of docs/protocol.md §4.3 yields the same code.
    #[test]
    fn every_error_form_yields_the_same_code(
        code in "[A-Z][A-Za-z]{0,40}", // real codes are names; digit-bearing runs of 20+ are redacted
        namespace in "[a-z][a-z0-9.]{0,20}",
        uri in "[a-z]{1,8}://[a-z./]{0,30}",
        status in prop_oneof![Just(400u16), Just(403), Just(404), Just(429), Just(500), Just(503)],
    ) {
        let headers = |value: &str| {
            let mut map = HeaderMap::new();
            map.insert("x-amzn-errortype", HeaderValue::from_str(value).expect("ascii"));
            map
        };
        let none = HeaderMap::new();
        let forms: Vec<(HeaderMap, String)> = vec![
            (headers(&code), String::new()),
            (headers(&format!("{namespace}#{code}")), "{}".into()),
            (headers(&format!("{code}:{uri}")), "<html>proxy</html>".into()),
            (headers(&format!("{namespace}#{code}:{uri}")), r#"{"__type":"Other"}"#.into()),
            (none.clone(), format!(r#"{{"__type":"{code}"}}"#)),
            (none.clone(), format!(r#"{{"__type":"{namespace}#{code}","message":"m"}}"#)),
            (none.clone(), format!(r#"{{"code":"{code}","__type":"Other"}}"#)),
            (none.clone(), format!(r#"{{"code":5,"__type":"{namespace}#{code}:{uri}"}}"#)),
            (none, format!(r#"{{"nested":{{"__type":"Other"}},"__type":"{code}"}}"#)),
        ];
        let status = StatusCode::from_u16(status).expect("valid");
        for (h, body) in forms {
            let e = parse_response(status, &h, body.as_bytes(), now(), &ResponseLimits::default())
                .expect_err("an error status");
            match e {
                Error::Service(s) => prop_assert_eq!(&s.code, &code, "body {}", body),
                other => prop_assert!(false, "expected a service error, got {:?}", other),
            }
        }
    }
}
