//! Review 19b: `cogref revoke` when Cognito answers a revocation with a code that says the
//! refresh token is dead (RefreshTokenReuseException, UserNotFoundException), which the core now
//! reads as `requires_sign_in`: `cogref revoke` exits 3 (sign in again), which its `--help` and
//! README.md list for it.

mod common;

use common::{JSON_1_1, canned_server, run_cogref as cogref};

const SENT: &str = "eyJjdHkiOiJKV1QifQ.U2VudFJlZnJlc2g.c2VudA";

/// A revocation answered with a code that says the token is dead exits 3, and `--help` says so.
#[test]
fn revoke_exits_3_sign_in_again_for_a_code_that_says_the_token_is_dead_as_its_help_says() {
    let help = cogref(&["revoke", "--help"], "");
    let help = String::from_utf8_lossy(&help.stdout).into_owned();
    for (status, code) in [
        (400, "RefreshTokenReuseException"),
        (400, "UserNotFoundException"),
        (500, "RefreshTokenReuseException"),
    ] {
        let url = canned_server(
            status,
            JSON_1_1,
            format!(r#"{{"__type":"{code}","message":"m"}}"#),
        );
        let out = cogref(
            &[
                "revoke",
                "--endpoint-url",
                &url,
                "--client-id",
                "cogrefdemoclient",
            ],
            SENT,
        );
        let exit = out.status.code().expect("exited");
        assert!(
            exit == 3 && help.contains("3 Cognito refused with an error"),
            "{status} {code}: exit {exit}, not 3 as `cogref revoke --help` says:\n{help}\nstderr: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
