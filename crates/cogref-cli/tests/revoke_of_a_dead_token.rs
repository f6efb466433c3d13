//! Review 19b: `cogref revoke` when Cognito answers a revocation with a code that says the
//! refresh token is dead (RefreshTokenReuseException, UserNotFoundException), which the core now
//! reads as `requires_sign_in`: `cogref revoke` exits 3 (sign in again), which its `--help` and
//! README.md list for it.

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Command, Output, Stdio};

const SENT: &str = "eyJjdHkiOiJKV1QifQ.U2VudFJlZnJlc2g.c2VudA";

/// A server on 127.0.0.1 answering every request with `status` and `body` (AWS JSON 1.1).
fn server(status: u16, body: String) -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { return };
            let mut reader = BufReader::new(stream);
            let mut length = 0usize;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap_or(0);
                }
                if line == "\r\n" {
                    break;
                }
            }
            let mut request = vec![0u8; length];
            let _ = reader.read_exact(&mut request);
            let mut stream = reader.into_inner();
            let _ = write!(
                stream,
                "HTTP/1.1 {status} X\r\ncontent-type: application/x-amz-json-1.1\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    url
}

fn cogref(args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_cogref"))
        .args(args)
        .env_remove("AWS_REGION")
        .env_remove("AWS_DEFAULT_REGION")
        .env_remove("AWS_ENDPOINT_URL")
        .env_remove("AWS_ENDPOINT_URL_COGNITO_IDENTITY_PROVIDER")
        .env_remove("COGNITO_CLIENT_ID")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn cogref");
    let _ = child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin.as_bytes());
    child.wait_with_output().expect("cogref exits")
}

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
        let url = server(status, format!(r#"{{"__type":"{code}","message":"m"}}"#));
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
