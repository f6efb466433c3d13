//! Snapshots of the full request (method, URL, sorted headers, body) for representative inputs.
//! A change to any byte of what goes on the wire shows up here for review.

mod common;

use cogref_core::{EndpointConfig, RefreshInput, build_request, partition::PARTITIONS};
use common::*;

fn minimal() -> RefreshInput {
    RefreshInput::builder()
        .refresh_token(REFRESH)
        .client_id(CLIENT_ID)
        .build()
        .expect("valid")
}

fn snapshot(config: EndpointConfig, input: &RefreshInput, n: u32) -> String {
    match config.resolve() {
        Ok(endpoint) => render(build_request(&endpoint, input, &snapshot_attempt(n)).http()),
        Err(e) => format!("endpoint error: {e}"),
    }
}

#[test]
fn minimal_request() {
    insta::assert_snapshot!(snapshot(
        EndpointConfig::new().region("us-east-1"),
        &minimal(),
        1
    ));
}

#[test]
fn request_with_every_field_on_a_retry() {
    let input = RefreshInput::builder()
        .refresh_token(REFRESH)
        .client_id(CLIENT_ID)
        .client_secret(CLIENT_SECRET)
        .device_key(DEVICE_KEY)
        .client_metadata_entry("tenant", "acme")
        .client_metadata_entry("note", "line1\nline2 \"quoted\" \u{1} é")
        .build()
        .expect("valid");
    insta::assert_snapshot!(snapshot(
        EndpointConfig::new().region("eu-west-1"),
        &input,
        2
    ));
}

#[test]
fn custom_endpoint_request() {
    insta::assert_snapshot!(snapshot(
        EndpointConfig::new().endpoint_url("http://127.0.0.1:9229/cognito"),
        &minimal(),
        1
    ));
}

/// One region per partition, with every combination of FIPS and dual-stack.
#[test]
fn every_partition_with_fips_and_dual_stack() {
    let regions = [
        "eu-central-1",
        "cn-northwest-1",
        "us-gov-west-1",
        "us-iso-west-1",
        "us-isob-east-1",
        "eu-isoe-west-1",
        "us-isof-east-1",
        "eusc-de-east-1",
    ];
    assert_eq!(regions.len(), PARTITIONS.len());
    let mut out = String::new();
    for region in regions {
        for (fips, ds) in [(false, false), (true, false), (false, true), (true, true)] {
            let config = EndpointConfig::new()
                .region(region)
                .use_fips(fips)
                .use_dual_stack(ds);
            out.push_str(&format!("===== {region} fips={fips} dualstack={ds}\n"));
            out.push_str(&snapshot(config, &minimal(), 1));
            out.push_str("\n\n");
        }
    }
    insta::assert_snapshot!(out);
}

/// The request carries exactly the header set of the official SDK's capture, minus its own
/// user-agent strings, and no signing header.
#[test]
fn header_names_match_the_official_sdk_capture_without_signing() {
    let endpoint = EndpointConfig::new()
        .endpoint_url("http://127.0.0.1:43357")
        .resolve()
        .expect("valid");
    let request = build_request(&endpoint, &minimal(), &snapshot_attempt(1)).into_http();
    let mut names: Vec<&str> = request.headers().keys().map(|k| k.as_str()).collect();
    names.sort_unstable();
    assert_eq!(
        names,
        [
            "amz-sdk-invocation-id",
            "amz-sdk-request",
            "content-length",
            "content-type",
            "host",
            "user-agent",
            "x-amz-target"
        ]
    );
    for forbidden in ["authorization", "x-amz-date", "x-amz-security-token"] {
        assert!(!request.headers().contains_key(forbidden));
    }
    assert_eq!(
        request.headers()["content-length"],
        request.body().len().to_string().as_str()
    );
}
