//! Criterion benchmarks of the core's hot paths: building a request, parsing a ~4 KiB success
//! body, parsing an error body. Run with `cargo bench -p cogref-core --bench core`.
//!
//! A baseline measured in the same run, `serde_json` parsing the same success body into an
//! untyped `Value`, lets the figures be quoted as ratios that hold across machines.

use std::hint::black_box;
use std::time::{Duration, SystemTime};

use cogref_core::http::{HeaderMap, HeaderValue, StatusCode};
use cogref_core::ops::Operation;
use cogref_core::response::dispatch_sent;
use cogref_core::{
    AttemptInfo, EndpointConfig, GetTokensFromRefreshToken, InvocationId, RefreshInput,
    ResponseLimits, build_request, parse_response,
};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

/// A deterministic base64url-looking token of `len` characters, shaped like a JWT.
fn token(len: usize, seed: u64) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut state = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..len)
        .map(|i| {
            if i > 0 && (i == len / 5 || i == 4 * len / 5) {
                return '.';
            }
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ALPHABET[(state >> 58) as usize] as char
        })
        .collect()
}

/// Real-world lengths: access ~1,100, ID ~1,250, refresh (a JWE) ~1,700 characters.
fn success_body() -> String {
    format!(
        r#"{{"AuthenticationResult":{{"AccessToken":"{}","ExpiresIn":3600,"TokenType":"Bearer","RefreshToken":"{}","IdToken":"{}"}},"ChallengeParameters":{{}}}}"#,
        token(1100, 1),
        token(1700, 2),
        token(1250, 3)
    )
}

const ERROR_BODY: &[u8] =
    br#"{"__type":"NotAuthorizedException","message":"Refresh Token has been revoked"}"#;

fn benches(c: &mut Criterion) {
    let input = RefreshInput::builder()
        .refresh_token(token(1700, 9))
        .client_id("1example23456789abcdefghij")
        .build()
        .expect("valid");
    let endpoint = EndpointConfig::new()
        .region("eu-west-1")
        .resolve()
        .expect("valid");
    let attempt = AttemptInfo::first(InvocationId::from_random_bytes([7; 16]), 3);
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_750_000_000);
    let limits = ResponseLimits::default();

    c.bench_function("build_request (1,700-char refresh token)", |b| {
        b.iter(|| build_request(black_box(&endpoint), black_box(&input), black_box(&attempt)))
    });

    let body = success_body();
    let mut success_headers = HeaderMap::new();
    success_headers.insert(
        "content-type",
        HeaderValue::from_static("application/x-amz-json-1.1"),
    );
    success_headers.insert(
        "x-amzn-requestid",
        HeaderValue::from_static("3f2c1b9e-0000-4a6b-9f1e-2b3c4d5e6f70"),
    );
    let mut group = c.benchmark_group("parse");
    group.throughput(Throughput::Bytes(body.len() as u64));
    group.bench_function(format!("success ({} bytes)", body.len()), |b| {
        b.iter(|| {
            parse_response(
                StatusCode::OK,
                black_box(&success_headers),
                black_box(body.as_bytes()),
                now,
                &limits,
            )
        })
    });
    // What the client does: the response read knowing the request's secrets, so that no text
    // taken from it (request id first) shows one back.
    let sent = GetTokensFromRefreshToken::sent(&input);
    group.bench_function(
        format!("success, secrets known ({} bytes)", body.len()),
        |b| {
            b.iter(|| {
                dispatch_sent::<GetTokensFromRefreshToken>(
                    StatusCode::OK,
                    black_box(&success_headers),
                    black_box(body.as_bytes()),
                    now,
                    &limits,
                    &sent,
                )
            })
        },
    );
    group.bench_function(
        format!(
            "baseline: serde_json::Value of the success body ({} bytes)",
            body.len()
        ),
        |b| b.iter(|| serde_json::from_slice::<serde_json::Value>(black_box(body.as_bytes()))),
    );
    group.finish();

    let mut error_headers = HeaderMap::new();
    error_headers.insert(
        "content-type",
        HeaderValue::from_static("application/x-amz-json-1.1"),
    );
    error_headers.insert(
        "x-amzn-requestid",
        HeaderValue::from_static("3f2c1b9e-0000-4a6b-9f1e-2b3c4d5e6f70"),
    );
    c.bench_function(
        &format!(
            "parse error NotAuthorizedException ({} bytes)",
            ERROR_BODY.len()
        ),
        |b| {
            b.iter(|| {
                parse_response(
                    StatusCode::BAD_REQUEST,
                    black_box(&error_headers),
                    black_box(ERROR_BODY),
                    now,
                    &limits,
                )
            })
        },
    );
    c.bench_function(
        &format!(
            "parse error NotAuthorizedException, secrets known ({} bytes)",
            ERROR_BODY.len()
        ),
        |b| {
            b.iter(|| {
                dispatch_sent::<GetTokensFromRefreshToken>(
                    StatusCode::BAD_REQUEST,
                    black_box(&error_headers),
                    black_box(ERROR_BODY),
                    now,
                    &limits,
                    &sent,
                )
            })
        },
    );
    c.bench_function(
        &format!(
            "baseline: serde_json::Value of the error body ({} bytes)",
            ERROR_BODY.len()
        ),
        |b| b.iter(|| serde_json::from_slice::<serde_json::Value>(black_box(ERROR_BODY))),
    );
}

criterion_group! {
    name = core;
    config = Criterion::default().warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3));
    targets = benches
}
criterion_main!(core);
