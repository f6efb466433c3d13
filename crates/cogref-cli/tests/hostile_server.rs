//! Review of issue 12 (the `cogref` CLI): the binary as a user runs it against a hostile or
//! broken server on 127.0.0.1. Each test names the rule it checks.

mod common;

use common::{canned_server as server, jwt, run_cogref as cogref, text};

/// The refresh token the user pipes in.
const SENT: &str = "eyJjdHkiOiJKV1QifQ.U2VudFJlZnJlc2g.c2VudA";
/// The rotated refresh token a response carries: the only way on once it arrived.
const ROTATED: &str = "eyJjdHkiOiJKV1QifQ.Um90YXRlZENhbmFyeVJldmlldw.cm90YXRlZA";
const NEW_DEVICE: &str = "eu-west-1_0a1b2c3d-4e5f-6789-abcd-ef0123456789";

/// `--output token` prints the access token alone; a refresh token rotated by this very call
/// (and a newly registered device's key) is then in no output at all, while stderr says "the
/// new one is in the output: keep it, the old one stops working" and the exit status is 0. With
/// rotation and a grace period of 0 the session is lost without a word of truth.
#[test]
fn token_output_never_drops_a_rotated_refresh_token_or_a_new_device_key() {
    let body = serde_json::json!({"AuthenticationResult": {
        "AccessToken": "eyJh.eyJi.c2ln", "IdToken": "eyJh.eyJp.c2ln", "ExpiresIn": 3600,
        "TokenType": "Bearer", "RefreshToken": ROTATED,
        "NewDeviceMetadata": {"DeviceKey": NEW_DEVICE, "DeviceGroupKey": "-kTTnSPBvz"}}})
    .to_string();
    let url = server(200, "application/x-amz-json-1.1", body);
    for output in ["json", "env", "token"] {
        let out = cogref(
            &[
                "refresh",
                "--endpoint-url",
                &url,
                "--client-id",
                "c",
                "--output",
                output,
            ],
            SENT,
        );
        let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
        for (what, secret) in [
            ("rotated refresh token", ROTATED),
            ("device key", NEW_DEVICE),
        ] {
            assert!(
                stdout.contains(secret) || !out.status.success(),
                "--output {output}: exit 0 and the {what} is in no output.\nstdout: {stdout}\nstderr: {stderr}"
            );
        }
        if stderr.contains("in the output") {
            assert!(
                stdout.contains(ROTATED) && stdout.contains(NEW_DEVICE),
                "--output {output}: stderr says it is in the output, it is not.\nstdout: {stdout}\nstderr: {stderr}"
            );
        }
    }
}

/// What may not reach a terminal from a server: C0/C1 controls and bidirectional controls.
fn unsafe_for_a_terminal(c: char) -> bool {
    c.is_control() && c != '\n'
        || matches!(
            c,
            '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}'
        )
}

/// `inspect` escapes what a claim could do to a terminal; an error message from the server
/// goes to the same terminal raw: the code, the message, a body excerpt's bidi controls.
#[test]
fn a_hostile_servers_error_text_reaches_the_terminal_escaped() {
    let cases = [
        (
            400,
            "application/x-amz-json-1.1",
            r#"{"__type":"NotAuthorizedException","message":"Invalid \u001b]0;owned\u0007\u001b[2J\u001b[1;1H token"}"#.to_owned(),
        ),
        (
            400,
            "application/x-amz-json-1.1",
            r#"{"__type":"Throttled\u001b[8m","message":"x"}"#.to_owned(),
        ),
        (
            502,
            "text/html",
            "<html>Bad gateway \u{202E}yawetag\u{202C}</html>".to_owned(),
        ),
    ];
    for (status, content_type, body) in cases {
        let url = server(status, content_type, body.clone());
        let out = cogref(
            &[
                "refresh",
                "--endpoint-url",
                &url,
                "--client-id",
                "c",
                "--rotation-safe",
            ],
            SENT,
        );
        let stderr = text(&out.stderr);
        assert!(!out.status.success(), "{stderr}");
        assert!(
            !stderr.chars().any(unsafe_for_a_terminal),
            "{body}\nreached stderr as {stderr:?}"
        );
    }
}

/// A 502/504 from a gateway after the request went out is a response lost after the request
/// was sent: `--rotation-safe` rightly does not resend it (the core counts the token as possibly
/// consumed), but the CLI still says "a passing failure: try again in a little while" instead of
/// saying the refresh may already have been applied and what to do.
#[test]
fn a_response_lost_behind_a_gateway_says_the_refresh_may_already_have_been_applied() {
    for status in [502, 504] {
        let url = server(
            status,
            "text/html",
            "<html><body>Gateway Timeout</body></html>".into(),
        );
        let out = cogref(
            &[
                "refresh",
                "--endpoint-url",
                &url,
                "--client-id",
                "c",
                "--rotation-safe",
            ],
            SENT,
        );
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(4), "{stderr}");
        assert!(
            stderr.contains("may already have been applied"),
            "HTTP {status}: {stderr}"
        );
    }
}

/// Usage errors are rewritten so that no argv value is echoed; two rewrites read wrong: a flag
/// given without its value ends in "possible values: " and nothing, and a flag given twice
/// "cannot be used with" itself.
#[test]
fn usage_errors_for_a_missing_value_or_a_repeated_flag_read_as_sentences() {
    let missing = cogref(&["refresh", "--client-id"], "");
    let stderr = text(&missing.stderr);
    assert_eq!(missing.status.code(), Some(2), "{stderr}");
    assert!(
        !stderr
            .lines()
            .any(|l| l.trim_end().ends_with("possible values:")),
        "an empty list of possible values: {stderr}"
    );
    let missing = cogref(&["inspect", "--store"], "");
    let stderr = text(&missing.stderr);
    assert!(
        !stderr
            .lines()
            .any(|l| l.trim_end().ends_with("possible values:")),
        "an empty list of possible values: {stderr}"
    );
    let twice = cogref(&["refresh", "--client-id", "a", "--client-id", "b"], SENT);
    let stderr = text(&twice.stderr);
    assert_eq!(twice.status.code(), Some(2), "{stderr}");
    assert!(
        !stderr.contains("--client-id <CLIENT_ID> cannot be used with --client-id"),
        "a flag given twice is not a conflict with itself: {stderr}"
    );
}

/// `inspect` promises that no claim can "reorder the line"; its list of bidirectional controls
/// leaves out U+061C ARABIC LETTER MARK, one of Unicode's Bidi_Control characters.
#[test]
fn inspect_escapes_every_bidirectional_control_character() {
    let token = jwt(&serde_json::json!({
        "username": "carol\u{061C}lol", "iss": "https://cognito\u{061C}", "exp": 1, "iat": 0,
    }));
    let out = cogref(&["inspect"], &token);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        !stdout.chars().any(unsafe_for_a_terminal),
        "a bidirectional control reached the terminal: {stdout:?}"
    );
}

/// A store that keeps another app client's or endpoint's session is refused (rightly), but the
/// hint is the catch-all for store errors, "check that the --store file can be read and
/// written", which sends the user to file permissions for what is a configuration mismatch.
#[test]
fn a_store_of_another_endpoint_is_refused_with_a_hint_about_the_endpoint_not_file_permissions() {
    let access = jwt(&serde_json::json!({"exp": 4_000_000_000i64, "iat": 1_700_000_000}));
    let body = serde_json::json!({"AuthenticationResult": {
        "AccessToken": access, "ExpiresIn": 3600, "TokenType": "Bearer"}})
    .to_string();
    let first = server(200, "application/x-amz-json-1.1", body.clone());
    let second = server(200, "application/x-amz-json-1.1", body);
    let dir = std::env::temp_dir().join(format!("cogref-review12-store-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    let store = dir.join("tokens.json");
    let store = store.to_str().expect("utf-8 path");
    let args = |url: &str| {
        [
            "refresh",
            "--endpoint-url",
            url,
            "--client-id",
            "c",
            "--store",
            store,
            "--output",
            "token",
        ]
        .map(str::to_owned)
    };
    let made = cogref(&args(&first).each_ref().map(String::as_str), SENT);
    assert_eq!(made.status.code(), Some(0), "{}", text(&made.stderr));
    let other = cogref(&args(&second).each_ref().map(String::as_str), "");
    let _ = std::fs::remove_dir_all(&dir);
    let stderr = text(&other.stderr);
    assert!(!other.status.success(), "{stderr}");
    assert!(
        !stderr.contains("can be read and written"),
        "a mismatch of endpoint is not a file-permission problem: {stderr}"
    );
}

/// RFC 7519 lets `aud` be an array of strings and a NumericDate carry a fraction; `inspect`
/// refuses such a token as "not a JSON object of claims", which it is.
#[test]
fn inspect_reads_a_jwt_whose_audience_is_a_list_or_whose_times_have_fractions() {
    for claims in [
        serde_json::json!({"sub": "s", "aud": ["a", "b"], "exp": 4_000_000_000i64}),
        serde_json::json!({"sub": "s", "exp": 4_000_000_000.5f64, "iat": 1_700_000_000.25f64}),
    ] {
        let out = cogref(&["inspect"], &jwt(&claims));
        assert_eq!(
            out.status.code(),
            Some(0),
            "{claims}: {}",
            text(&out.stderr)
        );
    }
}
