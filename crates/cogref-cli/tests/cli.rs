//! The `cogref` binary as a user runs it: spawned, fed on stdin, judged by stdout, stderr and
//! its exit code, against an emulator on 127.0.0.1.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

use cogref_emulator::{AppClient, Emulator, EmulatorConfig};

const POOL: &str = "eu-west-1_cliTest";

struct Fixture {
    emulator: Emulator,
    dir: PathBuf,
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

async fn fixture(name: &str, rotation: bool) -> (Fixture, String) {
    let emulator = Emulator::start(EmulatorConfig::default())
        .await
        .expect("emulator");
    emulator.create_pool(POOL);
    let mut client = AppClient::new(POOL, "cliclient");
    if rotation {
        client = client.with_rotation(0);
    }
    emulator.create_client(client).expect("client");
    emulator.create_user(POOL, "carol").expect("user");
    let token = emulator
        .mint_refresh_token("cliclient", "carol")
        .expect("mint");
    let dir = std::env::temp_dir().join(format!("cogref-cli-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    (Fixture { emulator, dir }, token)
}

/// Runs `cogref ARGS` with `stdin`, on a blocking thread (the emulator runs on this runtime).
async fn cogref(args: &[&str], stdin: &str) -> Output {
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    let stdin = stdin.to_owned();
    tokio::task::spawn_blocking(move || {
        let mut child = Command::new(env!("CARGO_BIN_EXE_cogref"))
            .args(&args)
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
    })
    .await
    .expect("join")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refresh_reads_the_token_on_stdin_and_prints_json() {
    let (f, token) = fixture("json", false).await;
    let url = f.emulator.endpoint_url();
    let out = cogref(
        &[
            "refresh",
            "--endpoint-url",
            &url,
            "--client-id",
            "cliclient",
        ],
        &token,
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let json: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("json on stdout");
    assert_eq!(json["token_type"], "Bearer");
    assert_eq!(json["expires_in"], 3600);
    assert_eq!(json["refresh_token_rotated"], false);
    assert!(
        json["access_token"]
            .as_str()
            .is_some_and(|t| t.split('.').count() == 3)
    );
    assert!(
        !stderr(&out).contains(&token[..40]),
        "the token reached stderr"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_and_env_outputs_print_what_a_shell_needs() {
    let (f, token) = fixture("formats", false).await;
    let url = f.emulator.endpoint_url();
    let out = cogref(
        &[
            "refresh",
            "--endpoint-url",
            &url,
            "--client-id",
            "cliclient",
            "--output",
            "token",
        ],
        &token,
    )
    .await;
    assert_eq!(
        stdout(&out).trim().split('.').count(),
        3,
        "{}",
        stderr(&out)
    );
    let out = cogref(
        &[
            "refresh",
            "--endpoint-url",
            &url,
            "--client-id",
            "cliclient",
            "--output",
            "env",
        ],
        &token,
    )
    .await;
    let text = stdout(&out);
    assert!(
        text.contains("export COGNITO_ACCESS_TOKEN='")
            && text.contains("export COGNITO_ID_TOKEN='"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_store_keeps_the_rotated_token_between_runs() {
    let (f, token) = fixture("store", true).await;
    let url = f.emulator.endpoint_url();
    let store = f.dir.join("tokens.json");
    let store_arg = store.to_string_lossy().into_owned();
    let args = [
        "refresh",
        "--endpoint-url",
        &url,
        "--client-id",
        "cliclient",
        "--store",
        &store_arg,
    ];
    let first = cogref(&args, &token).await;
    assert_eq!(first.status.code(), Some(0), "{}", stderr(&first));
    assert!(stderr(&first).contains("saved in the store"));
    // Grace period 0: only the rotated token, read back from the store, can work now.
    let second = cogref(&args, "").await;
    assert_eq!(second.status.code(), Some(0), "{}", stderr(&second));
    let json: serde_json::Value = serde_json::from_str(&stdout(&second)).expect("json");
    assert_eq!(json["refresh_token_rotated"], true);
    assert!(
        json.get("refresh_token").is_none(),
        "a stored rotated token is not printed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_in_argv_is_refused() {
    let out = cogref(
        &[
            "refresh",
            "--client-id",
            "c",
            "--refresh-token",
            "eyJabc.def.ghi",
            "--region",
            "eu-west-1",
        ],
        "",
    )
    .await;
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(
        err.contains("refusing a refresh token given on the command line"),
        "{err}"
    );
    assert!(err.contains("--refresh-token-file"), "{err}");
    assert!(!err.contains("eyJabc"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exit_codes_tell_sign_in_invalid_input_configuration_and_retryable_apart() {
    let (f, token) = fixture("codes", false).await;
    let url = f.emulator.endpoint_url();
    let refresh = |client: &'static str| ["refresh", "--endpoint-url", "", "--client-id", client];

    f.emulator.revoke(&token);
    let mut args = refresh("cliclient");
    args[2] = &url;
    let out = cogref(&args, &token).await;
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("sign the user in again"),
        "{}",
        stderr(&out)
    );

    let mut args = refresh("bad-client-id");
    args[2] = &url;
    let out = cogref(&args, &token).await;
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("ClientId"), "{}", stderr(&out));

    let mut args = refresh("nosuchclient");
    args[2] = &url;
    let out = cogref(&args, &token).await;
    assert_eq!(out.status.code(), Some(5), "{}", stderr(&out));

    let out = cogref(
        &[
            "refresh",
            "--client-id",
            "c",
            "--endpoint-url",
            &url,
            "--fips",
        ],
        &token,
    )
    .await;
    assert_eq!(out.status.code(), Some(5), "{}", stderr(&out));

    let fresh = f
        .emulator
        .mint_refresh_token("cliclient", "carol")
        .expect("mint");
    f.emulator
        .inject(cogref_emulator::Fault::Throttle { count: 10 });
    let mut args = refresh("cliclient");
    args[2] = &url;
    let out = cogref(&args, &fresh).await;
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    assert!(stderr(&out).contains("try again"), "{}", stderr(&out));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inspect_shows_the_claims_and_says_the_signature_is_unchecked() {
    let (f, token) = fixture("inspect", false).await;
    let url = f.emulator.endpoint_url();
    let access = cogref(
        &[
            "refresh",
            "--endpoint-url",
            &url,
            "--client-id",
            "cliclient",
            "--output",
            "token",
        ],
        &token,
    )
    .await;
    let out = cogref(&["inspect"], &stdout(&access)).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    for line in [
        "issuer      https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_cliTest",
        "client      cliclient",
        "token use   access",
        "username    carol",
    ] {
        assert!(text.contains(line), "{line} missing from:\n{text}");
    }
    assert!(
        text.contains("time left   59m") || text.contains("time left   1h"),
        "{text}"
    );
    assert!(stderr(&out).contains("NOT verified"));
    let bad = cogref(&["inspect"], "not-a-jwt").await;
    assert_eq!(bad.status.code(), Some(2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_subcommand_has_help_with_an_example() {
    for sub in ["refresh", "inspect", "emulator", "demo"] {
        let out = cogref(&[sub, "--help"], "").await;
        assert_eq!(out.status.code(), Some(0));
        assert!(
            stdout(&out).contains("Example"),
            "{sub} --help has no example"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_runs_through_rotation_and_reuse() {
    let out = cogref(&["demo"], "").await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("RefreshTokenReuseException"), "{err}");
    assert!(
        err.contains("3 access_token() calls made 1 request(s)"),
        "{err}"
    );
    assert!(
        stdout(&out).is_empty(),
        "the demo writes progress to stderr only"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_emulator_subcommand_prints_what_to_use_and_serves_it() {
    use std::io::{BufRead, BufReader};
    let dir = std::env::temp_dir().join(format!("cogref-cli-emulator-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let token_file = dir.join("rt");
    let mut child = Command::new(env!("CARGO_BIN_EXE_cogref"))
        .args(["emulator", "--port", "0", "--token-file"])
        .arg(&token_file)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let mut vars = std::collections::HashMap::new();
    for _ in 0..3 {
        let line = lines.next().expect("a line").expect("utf-8");
        let (k, v) = line.split_once('=').expect("KEY=VALUE");
        vars.insert(k.to_owned(), v.to_owned());
    }
    let token = std::fs::read_to_string(&token_file).expect("token file");
    let out = cogref(
        &[
            "refresh",
            "--endpoint-url",
            &vars["AWS_ENDPOINT_URL"],
            "--client-id",
            &vars["COGNITO_CLIENT_ID"],
            "--output",
            "token",
        ],
        &token,
    )
    .await;
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(vars["REFRESH_TOKEN_FILE"], token_file.to_string_lossy());
}
