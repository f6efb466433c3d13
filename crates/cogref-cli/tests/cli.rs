//! The `cogref` binary as a user runs it: spawned, fed on stdin, judged by stdout, stderr and
//! its exit code, against an emulator on 127.0.0.1.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

use cogref_emulator::{AppClient, Emulator, EmulatorConfig, Fault};

mod common;

use common::{JSON_1_1, canned_server, jwt, run_cogref, temp_dir};

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
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        run_cogref(&args, &stdin)
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
    for sub in ["refresh", "revoke", "inspect", "emulator", "demo"] {
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
    let printed: Vec<String> = (0..3)
        .map(|_| lines.next().expect("a line").expect("utf-8"))
        .collect();
    // What a shell that evals the lines exports to the commands it runs.
    let exported = Command::new("sh")
        .arg("-c")
        .arg(
            "eval \"$1\"; sh -c 'printf \"%s\\n%s\\n%s\" \"$AWS_ENDPOINT_URL\" \
             \"$COGNITO_CLIENT_ID\" \"$REFRESH_TOKEN_FILE\"'",
        )
        .arg("sh")
        .arg(printed.join("\n"))
        .env_remove("AWS_ENDPOINT_URL")
        .env_remove("COGNITO_CLIENT_ID")
        .env_remove("REFRESH_TOKEN_FILE")
        .output()
        .expect("sh");
    let exported = String::from_utf8(exported.stdout).expect("utf-8");
    let values: Vec<&str> = exported.split('\n').collect();
    let vars: std::collections::HashMap<&str, &str> = [
        "AWS_ENDPOINT_URL",
        "COGNITO_CLIENT_ID",
        "REFRESH_TOKEN_FILE",
    ]
    .into_iter()
    .zip(values)
    .collect();
    let token = std::fs::read_to_string(&token_file).expect("token file");
    let out = cogref(
        &[
            "refresh",
            "--endpoint-url",
            vars["AWS_ENDPOINT_URL"],
            "--client-id",
            vars["COGNITO_CLIENT_ID"],
            // JSON: the emulator's client rotates, and `--output token` without a store refuses
            // to drop the rotated refresh token (it prints JSON and exits 1).
            "--output",
            "json",
        ],
        &token,
    )
    .await;
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(vars["REFRESH_TOKEN_FILE"], token_file.to_string_lossy());
    assert_eq!(
        printed[0],
        format!("AWS_ENDPOINT_URL={}", vars["AWS_ENDPOINT_URL"])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_outside_the_token_alphabet_is_never_printed_and_eval_of_env_output_runs_nothing() {
    let hostile = "x'; touch PWNED; echo '";
    let body = serde_json::json!({"AuthenticationResult": {
        "AccessToken": hostile, "IdToken": "a.b.c", "ExpiresIn": 3600, "TokenType": "Bearer"}})
    .to_string();
    let url = canned_server(200, JSON_1_1, body);
    let dir = temp_dir("hostile");
    for output in ["env", "json", "token"] {
        let out = cogref(
            &[
                "refresh",
                "--endpoint-url",
                &url,
                "--client-id",
                "cliclient",
                "--output",
                output,
            ],
            "eyJhbGciOiJub25lIn0.eyJzdWIiOiIxIn0.c2ln",
        )
        .await;
        assert_eq!(out.status.code(), Some(1), "{output}: {}", stderr(&out));
        assert!(out.stdout.is_empty(), "{output} printed {:?}", stdout(&out));
        assert!(
            stderr(&out).contains("access token has characters a real one cannot have"),
            "{}",
            stderr(&out)
        );
        assert!(!stderr(&out).contains("PWNED"), "{}", stderr(&out));
        // What the help's `eval "$(cogref refresh … --output env)"` does with it.
        let shell = Command::new("sh")
            .arg("-c")
            .arg("eval \"$1\"")
            .arg("sh")
            .arg(stdout(&out))
            .current_dir(&dir)
            .output()
            .expect("sh");
        assert!(shell.status.success());
        assert!(!dir.join("PWNED").exists(), "the shell ran a command");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn env_output_evaluates_to_the_tokens_in_a_posix_shell() {
    let (f, token) = fixture("env-eval", false).await;
    let url = f.emulator.endpoint_url();
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
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let shell = Command::new("sh")
        .arg("-c")
        .arg("eval \"$1\"; printf '%s' \"$COGNITO_ACCESS_TOKEN\"")
        .arg("sh")
        .arg(stdout(&out))
        .output()
        .expect("sh");
    let access = String::from_utf8_lossy(&shell.stdout).into_owned();
    assert_eq!(access.split('.').count(), 3, "{access}");
    assert!(
        stdout(&out).contains(&format!("export COGNITO_ACCESS_TOKEN='{access}'\n")),
        "{}",
        stdout(&out)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refresh_with_a_store_exits_4_when_nothing_was_refreshed_and_serves_the_cache_only_when_asked()
 {
    let (f, token) = fixture("store-transient", false).await;
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
        "--output",
        "token",
    ];
    let first = cogref(&args, &token).await;
    assert_eq!(first.status.code(), Some(0), "{}", stderr(&first));
    let cached = stdout(&first);

    f.emulator
        .inject(cogref_emulator::Fault::Throttle { count: 100 });
    let failed = cogref(&args, "").await;
    assert_eq!(failed.status.code(), Some(4), "{}", stderr(&failed));
    assert!(failed.stdout.is_empty(), "{}", stdout(&failed));
    let err = stderr(&failed);
    assert!(
        err.contains("TooManyRequestsException") && err.contains("nothing was refreshed"),
        "{err}"
    );

    let mut opted_in = args.to_vec();
    opted_in.push("--cached-on-failure");
    let served = cogref(&opted_in, "").await;
    assert_eq!(served.status.code(), Some(0), "{}", stderr(&served));
    assert_eq!(stdout(&served), cached, "the stored token is printed");
    assert!(
        stderr(&served).contains("printing the stored tokens"),
        "{}",
        stderr(&served)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_argv_value_is_echoed_in_any_error() {
    let secret = "eyJraWQiOiJzZWNyZXQifQ.eyJzdWIiOiJzZWNyZXQifQ.U0VDUkVUX1NJR05BVFVSRQ";
    let cases: Vec<Vec<String>> = vec![
        // A token pasted as a stray positional argument.
        vec![
            "refresh".into(),
            secret.into(),
            "--client-id".into(),
            "c".into(),
        ],
        vec![secret.into()],
        vec![
            "refresh".into(),
            "--client-id".into(),
            "c".into(),
            format!("--frobnicate={secret}"),
        ],
        vec![
            "refresh".into(),
            "--client-id".into(),
            "c".into(),
            "--output".into(),
            secret.into(),
        ],
        vec!["emulator".into(), "--grace".into(), secret.into()],
        // A token given where a file or a flag's value belongs.
        vec![
            "refresh".into(),
            "--client-id".into(),
            "c".into(),
            "--region".into(),
            "eu-west-1".into(),
            "--refresh-token-file".into(),
            secret.into(),
        ],
        vec![
            "refresh".into(),
            "--client-id".into(),
            "c".into(),
            "--region".into(),
            "eu-west-1".into(),
            "--metadata".into(),
            secret.into(),
        ],
        vec![
            "refresh".into(),
            "--client-id".into(),
            "c".into(),
            "--region".into(),
            "eu-west-1".into(),
            "--device-key".into(),
            secret.into(),
        ],
        vec![
            "refresh".into(),
            "--client-id".into(),
            "c".into(),
            "--region".into(),
            "eu-west-1".into(),
            "--client-secret-file".into(),
            secret.into(),
        ],
        vec![
            "refresh".into(),
            "--client-id".into(),
            "c".into(),
            "--region".into(),
            secret.into(),
        ],
        vec![
            "refresh".into(),
            "--client-id".into(),
            "c".into(),
            "--region".into(),
            "eu-west-1".into(),
            "--client-secret-env".into(),
            secret.into(),
        ],
        vec![
            "refresh".into(),
            "--client-id".into(),
            "c".into(),
            "--region".into(),
            "eu-west-1".into(),
            "--device-key-env".into(),
            secret.into(),
        ],
        // The same for revoke and for inspect --store.
        vec![
            "revoke".into(),
            secret.into(),
            "--client-id".into(),
            "c".into(),
        ],
        vec![
            "revoke".into(),
            "--client-id".into(),
            "c".into(),
            "--region".into(),
            "eu-west-1".into(),
            "--refresh-token-file".into(),
            secret.into(),
        ],
        vec![
            "revoke".into(),
            "--client-id".into(),
            "c".into(),
            "--region".into(),
            "eu-west-1".into(),
            "--store".into(),
            secret.into(),
        ],
        vec![
            "revoke".into(),
            "--client-id".into(),
            "c".into(),
            "--region".into(),
            "eu-west-1".into(),
            "--client-secret-env".into(),
            secret.into(),
        ],
        vec!["inspect".into(), "--store".into(), secret.into()],
        vec![
            "inspect".into(),
            "--store".into(),
            "/nonexistent-dir/tokens.json".into(),
            "--refresh-token-validity".into(),
            secret.into(),
        ],
        vec![
            "refresh".into(),
            "--client-id".into(),
            "c".into(),
            "--store".into(),
            "/nonexistent-dir/tokens.json".into(),
            "--refresh-token-validity".into(),
            secret.into(),
        ],
    ];
    for case in cases {
        let args: Vec<&str> = case.iter().map(String::as_str).collect();
        let out = cogref(&args, "a.b.c").await;
        let (err, outp) = (stderr(&out), stdout(&out));
        assert!(!out.status.success(), "{args:?} succeeded: {err} {outp}");
        for shown in [&err, &outp] {
            assert!(
                !shown.contains("eyJraWQ") && !shown.contains("U0VDUkVU"),
                "{args:?} echoed the secret: {shown}"
            );
        }
        assert!(err.starts_with("cogref: "), "{args:?}: {err}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_device_key_comes_from_a_file_or_the_environment_and_a_new_device_is_printed() {
    let (f, token) = fixture("device", false).await;
    let url = f.emulator.endpoint_url();
    // A refresh answered with NewDeviceMetadata. The service never sends it from
    // GetTokensFromRefreshToken; the emulator's fault does, so that the CLI's handling of it
    // (which the API's shape allows) stays checked.
    f.emulator.inject(Fault::NewDeviceMetadata { count: 1 });
    let key_file = f.dir.join("device-key");
    std::fs::write(
        &key_file,
        "eu-west-1_00000000-0000-0000-0000-000000000000\n",
    )
    .expect("key");
    let key_arg = key_file.to_string_lossy().into_owned();
    let out = cogref(
        &[
            "refresh",
            "--endpoint-url",
            &url,
            "--client-id",
            "cliclient",
            "--device-key-file",
            &key_arg,
        ],
        &token,
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let json: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("json");
    let new_key = json["new_device"]["device_key"]
        .as_str()
        .expect("the new device key is printed")
        .to_owned();
    assert!(new_key.starts_with("eu-west-1_"), "{new_key}");
    assert!(json["new_device"]["device_group_key"].is_string(), "{json}");
    assert!(stderr(&out).contains("registered a new device"));

    // The new key, from an environment variable; an answer without device metadata prints
    // none.
    let out = tokio::task::spawn_blocking({
        let (url, token) = (url.clone(), token.clone());
        move || {
            let mut child = Command::new(env!("CARGO_BIN_EXE_cogref"))
                .args([
                    "refresh",
                    "--endpoint-url",
                    &url,
                    "--client-id",
                    "cliclient",
                ])
                .args(["--device-key-env", "MY_DEVICE_KEY", "--output", "env"])
                .env("MY_DEVICE_KEY", &new_key)
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("spawn");
            child
                .stdin
                .take()
                .expect("stdin")
                .write_all(token.as_bytes())
                .expect("write");
            child.wait_with_output().expect("wait")
        }
    })
    .await
    .expect("join");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        !stdout(&out).contains("COGNITO_DEVICE_KEY"),
        "{}",
        stdout(&out)
    );

    // Never from argv.
    let out = cogref(
        &[
            "refresh",
            "--endpoint-url",
            &url,
            "--client-id",
            "cliclient",
            "--device-key",
            "eu-west-1_00000000-0000-0000-0000-000000000000",
        ],
        &token,
    )
    .await;
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("--device-key-file"),
        "{}",
        stderr(&out)
    );
    assert!(!stderr(&out).contains("00000000-0000"), "{}", stderr(&out));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inputs_over_the_size_cap_are_refused_with_a_clear_error() {
    let (f, _token) = fixture("caps", false).await;
    let url = f.emulator.endpoint_url();
    let huge = "y\n".repeat(512 * 1024); // 1 MiB, as from `yes`
    let base = [
        "refresh",
        "--endpoint-url",
        &url,
        "--client-id",
        "cliclient",
    ];

    let out = cogref(&base, &huge).await;
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("standard input holds more than 64 KiB"),
        "{}",
        stderr(&out)
    );

    let big_file = f.dir.join("big");
    std::fs::write(&big_file, &huge).expect("write");
    let big_arg = big_file.to_string_lossy().into_owned();
    let mut args = base.to_vec();
    args.extend(["--refresh-token-file", &big_arg]);
    let out = cogref(&args, "").await;
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("more than 64 KiB"),
        "{}",
        stderr(&out)
    );

    let mut args = base.to_vec();
    args.extend(["--store", &big_arg]);
    let out = cogref(&args, "").await;
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("more than 64 KiB"),
        "{}",
        stderr(&out)
    );

    let mut args = base.to_vec();
    args.extend(["--store", "/dev/zero"]);
    let out = cogref(&args, "").await;
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("not a regular file"),
        "{}",
        stderr(&out)
    );

    let out = cogref(&["inspect"], &huge).await;
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("more than 64 KiB"),
        "{}",
        stderr(&out)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_response_says_the_refresh_may_already_have_been_applied_and_what_to_do() {
    let (f, token) = fixture("lost", true).await; // rotation, grace period 0
    let url = f.emulator.endpoint_url();
    f.emulator
        .inject(cogref_emulator::Fault::DropAfterRotation { count: 1 });
    let out = cogref(
        &[
            "refresh",
            "--endpoint-url",
            &url,
            "--client-id",
            "cliclient",
            "--rotation-safe",
        ],
        &token,
    )
    .await;
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("may already have been applied")
            && err.contains("RefreshTokenReuseException")
            && err.contains("sign in again"),
        "{err}"
    );
    assert!(!err.contains("a passing failure"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inspect_survives_absurd_times_and_escapes_control_characters() {
    for (iat, exp) in [
        (i64::MIN, i64::MIN),
        (i64::MAX, i64::MAX),
        (0, i64::MIN + 1),
        (i64::MIN, i64::MAX),
    ] {
        let token = jwt(&serde_json::json!({
            "iss": "https://x\u{1b}]0;owned\u{7}", "username": "carol\u{1b}[2J\u{202e}lol",
            "token_use": "access\r\nexpires at  never", "iat": iat, "exp": exp,
        }));
        for args in [&["inspect"][..], &["inspect", "--json"][..]] {
            let out = cogref(args, &token).await;
            assert_eq!(
                out.status.code(),
                Some(0),
                "{args:?} {exp}: {}",
                stderr(&out)
            );
            let text = stdout(&out);
            assert!(
                !text.contains('\u{1b}') && !text.contains('\u{202e}') && !text.contains('\r'),
                "{args:?}: a control character reached the terminal: {text:?}"
            );
            assert_eq!(
                text.lines().filter(|l| l.starts_with("expires at")).count(),
                usize::from(args.len() == 1),
                "{text}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_read_as_sentences_without_doubled_punctuation_or_debug_forms() {
    let (f, token) = fixture("wording", false).await;
    let url = f.emulator.endpoint_url();
    let out = cogref(
        &[
            "refresh",
            "--endpoint-url",
            &url,
            "--client-id",
            "nosuchclient",
        ],
        &token,
    )
    .await;
    assert_eq!(out.status.code(), Some(5), "{}", stderr(&out));
    let err = stderr(&out);
    for doubled in [".;", ".:", "..", ";;", ": ;"] {
        assert!(!err.contains(doubled), "{doubled:?} in {err}");
    }
    let demo = cogref(&["demo"], "").await;
    assert_eq!(demo.status.code(), Some(0), "{}", stderr(&demo));
    let err = stderr(&demo);
    for debug_form in [
        "Some(",
        "None",
        "SystemTime",
        "tv_sec",
        "Duration",
        "{ ",
        "Refreshed {",
    ] {
        assert!(
            !err.contains(debug_form),
            "{debug_form:?} in the demo:\n{err}"
        );
    }
    assert!(err.contains("valid until"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_or_missing_client_secret_is_a_configuration_error_not_a_dead_session() {
    let emulator = Emulator::start(EmulatorConfig::default())
        .await
        .expect("emulator");
    emulator.create_pool(POOL);
    let secret = "s3cretS3cretS3cretS3cret0123456789";
    emulator
        .create_client(AppClient::new(POOL, "confidential").with_secret(secret))
        .expect("client");
    emulator.create_user(POOL, "dora").expect("user");
    let token = emulator
        .mint_refresh_token("confidential", "dora")
        .expect("mint");
    let dir = std::env::temp_dir().join(format!("cogref-cli-secret-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let wrong = dir.join("wrong-secret");
    std::fs::write(&wrong, "WrongWrongWrongWrongWrong0123456789").expect("secret file");
    let url = emulator.endpoint_url();
    let wrong_arg = wrong.to_string_lossy().into_owned();
    for extra in [vec!["--client-secret-file", wrong_arg.as_str()], vec![]] {
        let mut args = vec![
            "refresh",
            "--endpoint-url",
            &url,
            "--client-id",
            "confidential",
        ];
        args.extend(extra.iter().copied());
        let out = cogref(&args, &token).await;
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(5), "{args:?}: {err}");
        assert!(
            err.contains("secret") && err.contains("may be fine"),
            "{err}"
        );
        assert!(!err.contains("sign the user in again"), "{err}");
    }
    // The same token still works with the right secret: nothing was declared dead.
    let right = dir.join("right-secret");
    std::fs::write(&right, secret).expect("secret file");
    let right_arg = right.to_string_lossy().into_owned();
    let out = cogref(
        &[
            "refresh",
            "--endpoint-url",
            &url,
            "--client-id",
            "confidential",
            "--client-secret-file",
            &right_arg,
        ],
        &token,
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoke_takes_the_token_on_stdin_and_the_token_is_dead_afterwards() {
    let (f, token) = fixture("revoke", true).await;
    let url = f.emulator.endpoint_url();
    let args = ["revoke", "--endpoint-url", &url, "--client-id", "cliclient"];
    let out = cogref(&args, &token).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stderr(&out).contains("revoked"), "{}", stderr(&out));
    assert!(stdout(&out).is_empty(), "nothing on stdout");
    assert!(
        !stderr(&out).contains(&token[..40]),
        "the token reached stderr"
    );
    let refresh = [
        "refresh",
        "--endpoint-url",
        &url,
        "--client-id",
        "cliclient",
    ];
    let out = cogref(&refresh, &token).await;
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    // Revoking again is harmless.
    let file = f.dir.join("rt.txt");
    std::fs::write(&file, &token).expect("write");
    let file_arg = file.to_string_lossy().into_owned();
    let mut from_file = args.to_vec();
    from_file.extend(["--refresh-token-file", &file_arg]);
    let out = cogref(&from_file, "").await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoke_with_a_store_signs_the_session_out_and_inspect_shows_the_deadline_then_the_sign_out()
 {
    let (f, token) = fixture("revoke-store", true).await;
    let url = f.emulator.endpoint_url();
    let store = f.dir.join("tokens.json");
    let store_arg = store.to_string_lossy().into_owned();
    let out = cogref(
        &[
            "refresh",
            "--endpoint-url",
            &url,
            "--client-id",
            "cliclient",
            "--store",
            &store_arg,
            "--refresh-token-validity",
            "30d",
        ],
        &token,
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let rotated =
        serde_json::from_str::<serde_json::Value>(&std::fs::read_to_string(&store).expect("store"))
            .expect("json")["refresh_token"]
            .as_str()
            .expect("a refresh token")
            .to_owned();

    // The deadline: sign-in (the token's auth_time) plus the 30 days recorded in the store.
    let out = cogref(&["inspect", "--store", &store_arg, "--json"], "").await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let json: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("json");
    assert_eq!(json["state"], "signed in");
    assert_eq!(json["refresh_token_validity_secs"], 30 * 86_400);
    let signed_in = json["signed_in_at"].as_i64().expect("sign-in time known");
    assert_eq!(json["deadline"].as_i64(), Some(signed_in + 30 * 86_400));
    assert!(
        json["clock_skew_secs"]
            .as_i64()
            .is_some_and(|s| s.abs() <= 2),
        "{json}"
    );
    let table = cogref(&["inspect", "--store", &store_arg], "").await;
    let text = stdout(&table);
    assert!(
        text.contains("deadline") && text.contains("on Cognito's clock"),
        "{text}"
    );
    assert!(
        text.contains("30d 00h 00m 00s (recorded in the store)"),
        "{text}"
    );
    assert!(text.contains("clock skew"), "{text}");
    for shown in [stdout(&out), text.clone(), stderr(&table)] {
        assert!(
            !shown.contains(&rotated[..40]),
            "a token was printed: {shown}"
        );
    }

    let revoke = [
        "revoke",
        "--endpoint-url",
        &url,
        "--client-id",
        "cliclient",
        "--store",
        &store_arg,
    ];
    let out = cogref(&revoke, "").await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stderr(&out).contains("signed out"), "{}", stderr(&out));
    let kept = std::fs::read_to_string(&store).expect("store");
    assert!(
        !kept.contains(&rotated) && kept.contains("signed_out_at_ms"),
        "{kept}"
    );
    // Cognito agrees: the stored token no longer works.
    let refresh = [
        "refresh",
        "--endpoint-url",
        &url,
        "--client-id",
        "cliclient",
    ];
    let out = cogref(&refresh, &rotated).await;
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let out = cogref(&["inspect", "--store", &store_arg], "").await;
    assert!(stdout(&out).contains("signed out"), "{}", stdout(&out));
    // Again: nothing to do.
    let out = cogref(&revoke, "").await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("already signed out"),
        "{}",
        stderr(&out)
    );
    // A new sign-in over the tombstone starts a new session in the store.
    let fresh = f
        .emulator
        .mint_refresh_token("cliclient", "carol")
        .expect("mint");
    let out = cogref(
        &[
            "refresh",
            "--endpoint-url",
            &url,
            "--client-id",
            "cliclient",
            "--store",
            &store_arg,
        ],
        &fresh,
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("signed-out session"),
        "{}",
        stderr(&out)
    );
    let out = cogref(&["inspect", "--store", &store_arg, "--json"], "").await;
    let json: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("json");
    assert_eq!(json["state"], "signed in");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoke_exit_codes_tell_input_configuration_and_retryable_apart() {
    let (f, token) = fixture("revoke-codes", false).await;
    let url = f.emulator.endpoint_url();
    // A token in argv is refused and not repeated.
    let out = cogref(
        &[
            "revoke",
            "--client-id",
            "c",
            "--region",
            "eu-west-1",
            "--refresh-token",
            "eyJabc.def.ghi",
        ],
        "",
    )
    .await;
    assert_eq!(out.status.code(), Some(2));
    assert!(!stderr(&out).contains("eyJabc"), "{}", stderr(&out));
    // An access token is not a refresh token.
    let access = f
        .emulator
        .mint_refresh_token("cliclient", "carol")
        .expect("mint");
    let refreshed = cogref(
        &[
            "refresh",
            "--endpoint-url",
            &url,
            "--client-id",
            "cliclient",
            "--output",
            "token",
        ],
        &access,
    )
    .await;
    let access_token = stdout(&refreshed).trim().to_owned();
    let args = ["revoke", "--endpoint-url", &url, "--client-id", "cliclient"];
    let out = cogref(&args, &access_token).await;
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("only a refresh token"),
        "{}",
        stderr(&out)
    );
    // An app client without token revocation: configuration.
    let mut closed = AppClient::new(POOL, "closedclient");
    closed.enable_token_revocation = false;
    f.emulator.create_client(closed).expect("client");
    let closed_token = f
        .emulator
        .mint_refresh_token("closedclient", "carol")
        .expect("mint");
    let out = cogref(
        &[
            "revoke",
            "--endpoint-url",
            &url,
            "--client-id",
            "closedclient",
        ],
        &closed_token,
    )
    .await;
    assert_eq!(out.status.code(), Some(5), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("token revocation"),
        "{}",
        stderr(&out)
    );
    // Throttled on every attempt: retryable, nothing revoked.
    let throttled = canned_server(
        400,
        JSON_1_1,
        r#"{"__type":"TooManyRequestsException","message":"slow down"}"#.to_owned(),
    );
    let out = cogref(
        &[
            "revoke",
            "--endpoint-url",
            &throttled,
            "--client-id",
            "cliclient",
        ],
        &token,
    )
    .await;
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    assert!(stderr(&out).contains("try again"), "{}", stderr(&out));
    let still = cogref(
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
    assert_eq!(still.status.code(), Some(0), "{}", stderr(&still));
}
