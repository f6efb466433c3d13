//! What the CLI's tests share: the binary run as a user runs it, a canned server on
//! 127.0.0.1, unsigned JWTs, temporary directories and a bounded wait for a child.
#![allow(dead_code, unreachable_pub)]

use std::io::{BufRead, BufReader, Read, Write};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The content type of AWS JSON 1.1.
pub const JSON_1_1: &str = "application/x-amz-json-1.1";

/// Runs `cogref ARGS` with `stdin`, in an environment without AWS or Cognito settings.
pub fn run_cogref(args: &[&str], stdin: &str) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_cogref"));
    command.args(args);
    run_fed(without_aws_settings(command), stdin)
}

/// `command` (cogref, or a shell that runs it) without the AWS and Cognito settings of the
/// environment the tests run in, its three streams piped.
pub fn without_aws_settings(mut command: Command) -> Command {
    command
        .env_remove("AWS_REGION")
        .env_remove("AWS_DEFAULT_REGION")
        .env_remove("AWS_ENDPOINT_URL")
        .env_remove("AWS_ENDPOINT_URL_COGNITO_IDENTITY_PROVIDER")
        .env_remove("COGNITO_CLIENT_ID")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command
}

/// Runs `command` (its streams piped) fed `stdin`, to its end.
pub fn run_fed(mut command: Command, stdin: &str) -> Output {
    let mut child = command.spawn().expect("spawn cogref");
    // A run refused before it reads stdin (a configuration error) may have exited already.
    match child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin.as_bytes())
    {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
        written => written.expect("write stdin"),
    }
    child.wait_with_output().expect("cogref exits")
}

/// Output bytes as text.
pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A server on 127.0.0.1 that answers every request with `status`, `content_type` and `body`
/// (connection closed after each), as a hostile or broken endpoint would. Returns its URL.
pub fn canned_server(status: u16, content_type: &'static str, body: String) -> String {
    scripted_server(status, content_type, move |_| body.clone())
}

/// A server on 127.0.0.1 that answers its `n`th request (from 0) with `status`,
/// `content_type` and `body(n)`, connection closed after each. Returns its URL.
pub fn scripted_server(
    status: u16,
    content_type: &'static str,
    body: impl Fn(usize) -> String + Send + 'static,
) -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    std::thread::spawn(move || {
        for (n, stream) in listener.incoming().enumerate() {
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
            let body = body(n);
            let mut stream = reader.into_inner();
            let _ = write!(
                stream,
                "HTTP/1.1 {status} X\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    url
}

/// An unsigned JWT with these claims.
pub fn jwt(claims: &serde_json::Value) -> String {
    use base64::Engine;
    let b64 = |v: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v);
    format!(
        "{}.{}.{}",
        b64(br#"{"alg":"RS256"}"#),
        b64(claims.to_string().as_bytes()),
        b64(b"signature")
    )
}

/// A fresh, empty directory of this test process.
pub fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("cogref-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    dir
}

/// Whether `child` exits within `limit`; killed and reaped if not.
pub fn exits_within(child: &mut Child, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
    false
}
