//! Several processes on one host sharing a file store, against a rotating Cognito double with a
//! grace period that the test opens and closes (no sleeping to wait for it).
//!
//! The child processes are this test binary run again with `COGREF_CHILD` set: the
//! `child_process_entry` test then acts as the child and does nothing otherwise.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use cogref_core::{CallConfig, EndpointConfig, RefreshInput, RetryConfig, TokenSet};
use cogref_session::secrecy::ExposeSecret;
use cogref_session::{
    BlockingTokenManager, FileStore, StoreError, StoreGuard, TokenStore, Versioned,
};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

/// One refresh-token lineage with rotation: the current token rotates; the one before it still
/// works while the grace period is open, and afterwards is reused.
struct RotatingCognito {
    state: Mutex<Lineage>,
    grace_open: AtomicBool,
    requests: AtomicUsize,
    delay: Duration,
}

struct Lineage {
    current: String,
    previous: Option<String>,
    issued: usize,
}

impl RotatingCognito {
    fn new(first: &str, delay: Duration) -> Arc<Self> {
        Arc::new(Self {
            state: Mutex::new(Lineage {
                current: first.into(),
                previous: None,
                issued: 0,
            }),
            grace_open: AtomicBool::new(false),
            requests: AtomicUsize::new(0),
            delay,
        })
    }
}

fn cognito_error(code: &str) -> ResponseTemplate {
    ResponseTemplate::new(400)
        .insert_header("x-amzn-errortype", code)
        .set_body_raw(
            format!(r#"{{"__type":"{code}","message":"double says {code}"}}"#),
            "application/x-amz-json-1.1",
        )
}

/// The double as wiremock's responder (a newtype: `Arc` is foreign to this crate).
struct Double(Arc<RotatingCognito>);

impl Respond for Double {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        self.0.answer(request)
    }
}

impl RotatingCognito {
    fn answer(&self, request: &Request) -> ResponseTemplate {
        self.requests.fetch_add(1, Ordering::SeqCst);
        let body: serde_json::Value = serde_json::from_slice(&request.body).unwrap_or_default();
        let sent = body["RefreshToken"].as_str().unwrap_or_default().to_owned();
        let mut lineage = self.state.lock().expect("lineage");
        let valid = sent == lineage.current
            || (Some(&sent) == lineage.previous.as_ref() && self.grace_open.load(Ordering::SeqCst));
        if !valid {
            return if Some(&sent) == lineage.previous.as_ref() {
                cognito_error("RefreshTokenReuseException")
            } else {
                cognito_error("NotAuthorizedException")
            };
        }
        lineage.issued += 1;
        let n = lineage.issued;
        lineage.previous = Some(std::mem::replace(
            &mut lineage.current,
            format!("rotated-{n}"),
        ));
        ResponseTemplate::new(200)
            .set_body_raw(
                format!(
                    r#"{{"AuthenticationResult":{{"AccessToken":"access-{n}","ExpiresIn":3600,"RefreshToken":"rotated-{n}"}}}}"#
                ),
                "application/x-amz-json-1.1",
            )
            .set_delay(self.delay)
    }
}

/// A file store that kills its process when asked to save: the crash lands exactly between
/// receiving a rotated token and storing it.
struct CrashOnSave(FileStore);

impl TokenStore for CrashOnSave {
    fn load(&self) -> Result<Option<Versioned>, StoreError> {
        self.0.load()
    }
    fn save(&self, _: &TokenSet, _: Option<u64>) -> Result<u64, StoreError> {
        std::process::abort()
    }
    fn try_lock(&self) -> Result<Option<StoreGuard>, StoreError> {
        self.0.try_lock()
    }
}

/// The child: one `access_token()` with a blocking manager over the file store, reporting the
/// outcome on stdout as `token=…` or `error=…`.
#[test]
fn child_process_entry() {
    let Ok(endpoint) = std::env::var("COGREF_CHILD") else {
        return;
    };
    let store_path = PathBuf::from(std::env::var("COGREF_STORE").expect("store path"));
    let crash = std::env::var("COGREF_CRASH_ON_SAVE").is_ok();
    let endpoint = EndpointConfig::new()
        .endpoint_url(endpoint)
        .resolve()
        .expect("endpoint");
    let config = CallConfig {
        retry: RetryConfig::disabled(),
        ..CallConfig::default()
    };
    let client = cogref_blocking::client(endpoint, config);
    // The template's token is a placeholder: the store always holds the lineage.
    let template = RefreshInput::builder()
        .refresh_token("unused-placeholder")
        .client_id("client")
        .build()
        .expect("valid");
    let outcome = if crash {
        BlockingTokenManager::builder(client, template, CrashOnSave(FileStore::new(&store_path)))
            .build()
            .and_then(|m| m.access_token())
    } else {
        BlockingTokenManager::builder(client, template, FileStore::new(&store_path))
            .build()
            .and_then(|m| m.access_token())
    };
    #[allow(clippy::print_stdout)]
    match outcome {
        Ok(token) => println!("\nCHILD token={}", fingerprint(token.expose_secret())),
        Err(e) => println!(
            "\nCHILD error={}",
            if e.requires_sign_in() {
                "sign-in-required"
            } else {
                "other"
            }
        ),
    }
}

/// What a child prints instead of a token: a hash that is the same in every process of this
/// binary (SipHash with fixed keys), so outputs can be compared and no token is ever printed.
fn fingerprint(token: &str) -> String {
    use std::hash::{DefaultHasher, Hash, Hasher};
    let mut hasher = DefaultHasher::new();
    token.hash(&mut hasher);
    format!("{:016x}", hasher.finish())
}

fn spawn_child(endpoint: &str, store: &Path, crash: bool) -> std::process::Child {
    let mut command = Command::new(std::env::current_exe().expect("test binary"));
    command
        .args([
            "--exact",
            "child_process_entry",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("COGREF_CHILD", endpoint)
        .env("COGREF_STORE", store)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null());
    if crash {
        command.env("COGREF_CRASH_ON_SAVE", "1");
    }
    command.spawn().expect("spawn child")
}

/// The `CHILD key=value` lines a child printed.
fn report(output: &Output) -> HashMap<String, String> {
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|l| l.strip_prefix("CHILD "))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.trim().to_owned()))
        .collect()
}

struct TempStore(PathBuf);

impl TempStore {
    fn new(name: &str, refresh: &str) -> Self {
        let dir = std::env::temp_dir().join(format!(
            "cogref-processes-{name}-{}-{}",
            std::process::id(),
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos())
        ));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("tokens.json");
        FileStore::new(&path)
            .save(
                &TokenSet::from_refresh_token(refresh.to_owned(), None),
                None,
            )
            .expect("seed the store");
        Self(path)
    }
    fn stored_refresh_token(&self) -> String {
        FileStore::new(&self.0)
            .load()
            .expect("load")
            .expect("stored")
            .tokens
            .refresh_token
            .expose_secret()
            .to_owned()
    }
}

impl Drop for TempStore {
    fn drop(&mut self) {
        if let Some(dir) = self.0.parent() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

async fn serve(cognito: &Arc<RotatingCognito>) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(wiremock::matchers::method("POST"))
        .respond_with(Double(cognito.clone()))
        .mount(&server)
        .await;
    server
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_at_expiry_make_one_refresh_and_share_its_tokens() {
    // Grace period 0, and a slow answer so that both processes are in flight together.
    let cognito = RotatingCognito::new("r0", Duration::from_millis(500));
    let server = serve(&cognito).await;
    let store = TempStore::new("two", "r0");
    let children: Vec<_> = (0..3)
        .map(|_| spawn_child(&server.uri(), &store.0, false))
        .collect();
    let outputs: Vec<Output> = tokio::task::spawn_blocking(move || {
        children
            .into_iter()
            .map(|c| c.wait_with_output().expect("child"))
            .collect()
    })
    .await
    .expect("join");
    for output in &outputs {
        assert!(output.status.success(), "child failed: {output:?}");
        assert_eq!(
            report(output).get("token").map(String::as_str),
            Some(fingerprint("access-1").as_str()),
            "{output:?}"
        );
    }
    assert_eq!(
        cognito.requests.load(Ordering::SeqCst),
        1,
        "each process refreshed on its own"
    );
    assert_eq!(store.stored_refresh_token(), "rotated-1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_between_receipt_and_save_is_recovered_by_a_restart_within_the_grace_period() {
    let cognito = RotatingCognito::new("r0", Duration::ZERO);
    cognito.grace_open.store(true, Ordering::SeqCst);
    let server = serve(&cognito).await;
    let store = TempStore::new("crash", "r0");

    // Killed after Cognito rotated r0 → rotated-1, before the store saw rotated-1.
    let crashed = spawn_child(&server.uri(), &store.0, true)
        .wait_with_output()
        .expect("child");
    assert!(
        !crashed.status.success(),
        "the child was meant to die: {crashed:?}"
    );
    assert_eq!(
        store.stored_refresh_token(),
        "r0",
        "what survives is the old token"
    );
    assert_eq!(cognito.requests.load(Ordering::SeqCst), 1);

    // Restart within the grace period: the old token still works once more.
    let restarted = spawn_child(&server.uri(), &store.0, false)
        .wait_with_output()
        .expect("child");
    assert_eq!(
        report(&restarted).get("token").map(String::as_str),
        Some(fingerprint("access-2").as_str()),
        "{restarted:?}"
    );
    assert_eq!(
        store.stored_refresh_token(),
        "rotated-2",
        "the session is back on its lineage"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_between_receipt_and_save_loses_the_session_once_the_grace_period_is_over() {
    let cognito = RotatingCognito::new("r0", Duration::ZERO);
    let server = serve(&cognito).await;
    let store = TempStore::new("lost", "r0");

    let crashed = spawn_child(&server.uri(), &store.0, true)
        .wait_with_output()
        .expect("child");
    assert!(!crashed.status.success());
    // Grace period 0 (never opened): the surviving token has been rotated out.
    let restarted = spawn_child(&server.uri(), &store.0, false)
        .wait_with_output()
        .expect("child");
    assert_eq!(
        report(&restarted).get("error").map(String::as_str),
        Some("sign-in-required"),
        "{restarted:?}"
    );
}
