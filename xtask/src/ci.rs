//! `cargo xtask ci`: every check CI runs, in order, stopping at the first failure.

use std::env;
use std::process::{Command, Stdio};
use std::time::Instant;

use crate::Result;
use crate::citations;
use crate::deps::core_deps;
use crate::fuzz::{FUZZ_TARGETS, fuzz};
use crate::process::{cargo, step};
use crate::redis::{self, RedisServer};
use crate::tools::{self, CARGO_DENY, CARGO_FUZZ};

/// Seconds each fuzz target runs in `ci` unless `COGREF_FUZZ_SECONDS` says otherwise.
const CI_FUZZ_SECONDS: u64 = 20;

pub(crate) fn ci() -> Result {
    // Everything the steps need comes first, so that a fresh machine either gets it or fails
    // within seconds with one line saying what to install, not after a long build.
    eprintln!("==> what the checks need");
    // What xtask cannot install (nightly) or may only install through the system (redis-server)
    // is checked before the pinned cargo tools, whose install compiles for minutes.
    let path = env::var_os("PATH").unwrap_or_default();
    tools::check_nightly()?;
    // The restart tests start redis-server themselves, so it must be installed even when
    // COGREF_REDIS_URL names a server to use.
    let redis_binary = redis::locate_or_install(&path)?;
    crate::system::locate_or_install_valgrind(&path)?;
    // The interop step comes after the test suite; what it needs is known now.
    crate::interop::require_tools()?;
    let tools_bin = tools::ensure_tools(&[CARGO_DENY, CARGO_FUZZ], &path)?;
    let path = tools::path_with(tools_bin.as_deref(), &path)?;
    let own_redis = match env::var(redis::URL_VAR) {
        Ok(url) if !url.is_empty() => {
            eprintln!("Redis for the tests: {url} ({} is set)", redis::URL_VAR);
            None
        }
        _ => {
            let server = RedisServer::start(&redis_binary)?;
            eprintln!(
                "Redis for the tests: redis-server {} at {} (stopped when xtask ends)",
                redis::version(&redis_binary),
                server.url()
            );
            Some(server)
        }
    };

    let mut fmt = cargo();
    fmt.args(["fmt", "--all", "--", "--check"]);
    step("fmt", fmt)?;

    let mut clippy = cargo();
    clippy.args([
        "clippy",
        "--workspace",
        "--all-targets",
        "--locked",
        "--",
        "-D",
        "warnings",
    ]);
    step("clippy", clippy)?;

    let mut test = cargo();
    test.args(["test", "--workspace", "--locked"])
        .env(redis::SERVER_VAR, &redis_binary);
    if let Some(server) = &own_redis {
        test.env(redis::URL_VAR, server.url());
    }
    let (passed, failed) = counted_tests(test)?;
    drop(own_redis);
    crate::sim::ci()?;
    crate::interop::interop(crate::interop::Build::WithTests)?;

    let mut doc = cargo();
    doc.args(["doc", "--workspace", "--no-deps", "--locked"])
        .env("RUSTDOCFLAGS", "-D warnings");
    step("doc", doc)?;

    // cargo-deny reads every crate of every feature offline: fetch them first (registry only).
    let mut fetch = cargo();
    fetch.args(["fetch", "--locked"]);
    step("fetch", fetch)?;

    let mut deny = cargo();
    deny.env("PATH", &path)
        .args(["deny", "--offline", "check", "licenses", "bans", "sources"]);
    step("cargo-deny (offline: licenses, bans, sources)", deny)?;

    citations::check()?;
    core_deps()?;
    wasm_check()?;

    let seconds = env::var("COGREF_FUZZ_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(CI_FUZZ_SECONDS);
    for target in FUZZ_TARGETS {
        fuzz(target, seconds, &path)?;
    }
    eprintln!("\nxtask ci: all steps passed");
    // The closing line CI reads: the test count of the `test` step.
    println!("tests: {passed} passed, {failed} failed");
    Ok(())
}

/// Runs `cargo test`, echoing its output, and adds up its `test result:` lines.
fn counted_tests(mut command: Command) -> Result<(u64, u64)> {
    use std::io::{BufRead, BufReader, Write};
    eprintln!("\n==> test");
    let started = Instant::now();
    let mut child = command
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| format!("test: could not start: {e}"))?;
    let (mut passed, mut failed) = (0, 0);
    // The output is read as bytes: a test's child process may write anything to the stdout it
    // inherits, and the step must not return before `cargo test` ends, whatever it reads.
    let mut read_error = None;
    if let Some(stdout) = child.stdout.take() {
        let mut out = std::io::stdout().lock();
        let mut reader = BufReader::new(stdout);
        let mut line = Vec::new();
        loop {
            line.clear();
            match reader.read_until(b'\n', &mut line) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) => {
                    read_error = Some(e);
                    break;
                }
            }
            let _ = out.write_all(&line);
            let text = String::from_utf8_lossy(&line);
            if let Some(result) = text.trim_end().strip_prefix("test result: ") {
                passed += count_before(result, " passed");
                failed += count_before(result, " failed");
            }
        }
    }
    let status = child.wait().map_err(|e| format!("test: {e}"))?;
    eprintln!("<== test: {:.1}s", started.elapsed().as_secs_f64());
    if !status.success() {
        return Err(format!(
            "step failed: test ({status}); {passed} passed, {failed} failed"
        ));
    }
    if let Some(e) = read_error {
        return Err(format!(
            "test: reading its output: {e} (the counts may be short)"
        ));
    }
    Ok((passed, failed))
}

/// The number right before `label` in a line like `ok. 62 passed; 0 failed; …`.
fn count_before(text: &str, label: &str) -> u64 {
    text.split(';')
        .find_map(|part| {
            part.trim()
                .trim_start_matches("ok. ")
                .trim_start_matches("FAILED. ")
                .strip_suffix(label.trim_start())
                .map(str::trim)
        })
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

fn wasm_check() -> Result {
    let installed = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).contains("wasm32-unknown-unknown"))
        .unwrap_or(false);
    if !installed {
        eprintln!(
            "\n==> wasm32 check skipped: target wasm32-unknown-unknown is not installed here \
             (the GitHub workflow runs it)"
        );
        return Ok(());
    }
    let mut check = cargo();
    check.args([
        "check",
        "-p",
        "cogref-core",
        "--target",
        "wasm32-unknown-unknown",
        "--locked",
    ]);
    step("wasm32 check of cogref-core", check)
}

#[cfg(test)]
mod tests {
    use super::count_before;

    /// `counted_tests` reads the test output as UTF-8 lines and returns at the first line that
    /// is not (a test's child process writing to the inherited stdout can do that), without
    /// waiting for or stopping `cargo test`: `ci` then drops its Redis and exits while the tests
    /// still run against it.
    #[cfg(unix)]
    #[test]
    fn the_test_step_never_returns_while_its_command_still_runs() {
        let marker =
            std::env::temp_dir().join(format!("xtask-counted-tests-{}", std::process::id()));
        let _ = std::fs::remove_file(&marker);
        let mut command = std::process::Command::new("sh");
        command.arg("-c").arg(format!(
            "printf 'running 1 test\\n\\377\\376\\n'; sleep 1; : > '{}'",
            marker.display()
        ));
        let _ = super::counted_tests(command);
        let done_at_return = marker.exists();
        std::thread::sleep(std::time::Duration::from_secs(2));
        let done_later = marker.exists();
        let _ = std::fs::remove_file(&marker);
        assert_eq!(
            done_at_return, done_later,
            "the command went on after the step returned"
        );
    }

    #[test]
    fn counts_are_read_from_cargo_test_result_lines() {
        let ok =
            "ok. 62 passed; 0 failed; 1 ignored; 0 measured; 0 filtered out; finished in 0.01s";
        assert_eq!(
            (count_before(ok, " passed"), count_before(ok, " failed")),
            (62, 0)
        );
        let bad = "FAILED. 5 passed; 2 failed; 0 ignored; 0 measured; 0 filtered out";
        assert_eq!(
            (count_before(bad, " passed"), count_before(bad, " failed")),
            (5, 2)
        );
    }
}
