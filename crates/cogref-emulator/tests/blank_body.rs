//! Review 19: the emulator's "blank request body" is JSON's whitespace only, as in the core
//! (`cogref_core::error_code`'s blank rule since 3e19f75) and in the service's JSON parser.

const TARGET: &str = "AWSCognitoIdentityProviderService.GetTokensFromRefreshToken";

async fn errortype(e: &cogref_emulator::Emulator, body: &'static [u8]) -> Option<String> {
    let r = reqwest::Client::new()
        .post(e.endpoint_url())
        .header("x-amz-target", TARGET)
        .header("content-type", "application/x-amz-json-1.1")
        .body(body)
        .send()
        .await
        .expect("response");
    assert_eq!(r.status().as_u16(), 400);
    r.headers()
        .get("x-amzn-errortype")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// A form feed is not JSON's whitespace: a body of them is not JSON, as `{not json` is not.
#[tokio::test]
async fn a_request_body_of_form_feeds_is_not_json_not_an_empty_object() {
    let e = cogref_emulator::Emulator::start(cogref_emulator::EmulatorConfig::default())
        .await
        .expect("start");
    // JSON whitespace only is blank: `{}`, so the missing fields are what is wrong.
    assert_eq!(
        errortype(&e, b" \t\r\n").await.as_deref(),
        Some("InvalidParameterException")
    );
    for body in [&b"\x0c"[..], b" \x0c\n", b"\x0c\x0c"] {
        assert_eq!(
            errortype(&e, body).await.as_deref(),
            Some("SerializationException"),
            "{body:?}"
        );
    }
}
