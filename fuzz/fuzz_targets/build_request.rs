//! Arbitrary field values and endpoint settings: validation and endpoint resolution must never
//! panic; whatever they accept must build a request whose body is JSON carrying the same values,
//! sent to a host derived only from the configuration.
#![no_main]

use arbitrary::Arbitrary;
use cogref_core::secrecy::ExposeSecret;
use cogref_core::{AttemptInfo, EndpointConfig, InvocationId, RefreshInput, build_request};
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
struct Input {
    refresh_token: String,
    client_id: String,
    client_secret: Option<String>,
    device_key: Option<String>,
    metadata: Option<Vec<(String, String)>>,
    region: Option<String>,
    endpoint_url: Option<String>,
    fips: bool,
    dual_stack: bool,
    invocation: [u8; 16],
    attempt: u32,
    max_attempts: u32,
}

fuzz_target!(|input: Input| {
    let built = RefreshInput::builder()
        .refresh_token(input.refresh_token.clone())
        .client_id(input.client_id.clone())
        .set_client_secret(input.client_secret.map(Into::into))
        .set_device_key(input.device_key.map(Into::into))
        .set_client_metadata(input.metadata.map(|m| m.into_iter().collect()))
        .build();
    let Ok(refresh) = built else { return };

    let mut config = EndpointConfig::new()
        .use_fips(input.fips)
        .use_dual_stack(input.dual_stack);
    if let Some(region) = &input.region {
        config = config.region(region.clone());
    }
    if let Some(url) = &input.endpoint_url {
        config = config.endpoint_url(url.clone());
    }
    let Ok(endpoint) = config.resolve() else {
        return;
    };
    if input.endpoint_url.is_none() {
        // A region can only ever select a host under cognito-idp; never another host.
        let host = endpoint.host();
        assert!(host.starts_with("cognito-idp"), "{host}");
        assert_eq!(host.matches('.').count() >= 2, true);
        assert!(!host.contains(['/', '@', ':', ' ']), "{host}");
    }

    let attempt = AttemptInfo {
        invocation_id: InvocationId::from_random_bytes(input.invocation),
        attempt: input.attempt,
        max_attempts: input.max_attempts,
    };
    let request = build_request(&endpoint, &refresh, &attempt).into_http();
    let body: serde_json::Value = serde_json::from_slice(request.body()).expect("JSON body");
    assert_eq!(
        body["RefreshToken"].as_str(),
        Some(refresh.refresh_token().expose_secret())
    );
    assert_eq!(body["ClientId"].as_str(), Some(refresh.client_id()));
    assert_eq!(request.uri().to_string(), endpoint.url());
});
