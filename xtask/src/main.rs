//! `cargo xtask`: the workspace's chores, in plain Rust so that they run the same everywhere.
//!
//! - `cargo xtask ci`: everything CI checks, in order, stopping at the first failure.
//! - `cargo xtask fuzz [TARGET] [--seconds N]`: run the fuzz targets (all by default).
//! - `cargo xtask core-deps`: check that the core's dependency tree has no I/O stack.

use std::env;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::Instant;

/// Fuzz targets under `fuzz/fuzz_targets/`.
const FUZZ_TARGETS: [&str; 2] = ["parse_response", "build_request"];

/// Crates that must never be in `cogref-core`'s normal dependency tree: the core is sans-IO.
const FORBIDDEN_IN_CORE: [&str; 9] = [
    "tokio",
    "hyper",
    "reqwest",
    "isahc",
    "curl",
    "curl-sys",
    "ureq",
    "mio",
    "async-std",
];

/// Seconds each fuzz target runs in `ci` unless `COGREF_FUZZ_SECONDS` says otherwise.
const CI_FUZZ_SECONDS: u64 = 20;

type Result<T = ()> = std::result::Result<T, String>;

fn main() -> ExitCode {
    let args: Vec<String> = env::args().skip(1).collect();
    let outcome = match args.first().map(String::as_str) {
        Some("ci") => ci(),
        Some("fuzz") => fuzz_command(&args[1..]),
        Some("core-deps") => core_deps(),
        Some("help" | "--help" | "-h") | None => {
            eprintln!("{USAGE}");
            Ok(())
        }
        Some(other) => Err(format!("unknown command {other:?}\n\n{USAGE}")),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e}");
            ExitCode::FAILURE
        }
    }
}

const USAGE: &str = "usage: cargo xtask <command>

commands:
  ci                           fmt, clippy, tests, docs, cargo-deny, core dependency check,
                               wasm check (if the target is installed), short fuzz runs
  fuzz [TARGET] [--seconds N]  run one fuzz target or all of them (default 60 s each)
  core-deps                    fail if cogref-core's normal dependencies include an I/O stack";

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

fn cargo() -> Command {
    let mut c = Command::new(env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    c.current_dir(root());
    c
}

/// Runs a step, printing its name and duration; fails with the step's name.
fn step(name: &str, mut command: Command) -> Result {
    eprintln!("\n==> {name}");
    let started = Instant::now();
    let status = command
        .status()
        .map_err(|e| format!("{name}: could not start: {e}"))?;
    eprintln!("<== {name}: {:.1}s", started.elapsed().as_secs_f64());
    if status.success() {
        Ok(())
    } else {
        Err(format!("step failed: {name} ({status})"))
    }
}

fn ci() -> Result {
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
    test.args(["test", "--workspace", "--locked"]);
    let (passed, failed) = counted_tests(test)?;

    let mut doc = cargo();
    doc.args(["doc", "--workspace", "--no-deps", "--locked"])
        .env("RUSTDOCFLAGS", "-D warnings");
    step("doc", doc)?;

    // cargo-deny reads every crate of every feature offline: fetch them first (registry only).
    let mut fetch = cargo();
    fetch.args(["fetch", "--locked"]);
    step("fetch", fetch)?;

    let mut deny = cargo();
    deny.args(["deny", "--offline", "check", "licenses", "bans", "sources"]);
    step("cargo-deny (offline: licenses, bans, sources)", deny)?;

    core_deps()?;
    wasm_check()?;

    let seconds = env::var("COGREF_FUZZ_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(CI_FUZZ_SECONDS);
    for target in FUZZ_TARGETS {
        fuzz(target, seconds)?;
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
    if let Some(stdout) = child.stdout.take() {
        let mut out = std::io::stdout().lock();
        for line in BufReader::new(stdout).lines() {
            let line = line.map_err(|e| format!("test: reading output: {e}"))?;
            let _ = writeln!(out, "{line}");
            if let Some(result) = line.strip_prefix("test result: ") {
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

fn core_deps() -> Result {
    eprintln!("\n==> core-deps");
    let out = cargo()
        .args([
            "tree",
            "-p",
            "cogref-core",
            "-e",
            "normal",
            "--prefix",
            "none",
            "--format",
            "{p}",
            "--locked",
        ])
        .output()
        .map_err(|e| format!("cargo tree: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "cargo tree failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let tree = String::from_utf8_lossy(&out.stdout);
    let mut names: Vec<&str> = tree
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    names.sort_unstable();
    names.dedup();
    let found: Vec<&str> = names
        .iter()
        .copied()
        .filter(|n| FORBIDDEN_IN_CORE.contains(n))
        .collect();
    if !found.is_empty() {
        return Err(format!(
            "cogref-core must stay sans-IO, but its tree contains {found:?}"
        ));
    }
    eprintln!(
        "<== core-deps: {} crates in cogref-core's normal tree, none of {:?}",
        names.len(),
        FORBIDDEN_IN_CORE
    );
    Ok(())
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

fn fuzz_command(args: &[String]) -> Result {
    let mut seconds = 60;
    let mut targets: Vec<&str> = Vec::new();
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--seconds" => {
                seconds = it
                    .next()
                    .and_then(|s| s.parse().ok())
                    .ok_or("--seconds takes a whole number")?;
            }
            t if FUZZ_TARGETS.contains(&t) => targets.push(t),
            other => {
                return Err(format!(
                    "unknown fuzz target {other:?}; targets: {FUZZ_TARGETS:?}"
                ));
            }
        }
    }
    if targets.is_empty() {
        targets = FUZZ_TARGETS.to_vec();
    }
    for target in targets {
        fuzz(target, seconds)?;
    }
    Ok(())
}

fn fuzz(target: &str, seconds: u64) -> Result {
    let mut run = Command::new("cargo");
    run.current_dir(root().join("fuzz"))
        // The workspace's cargo sets RUSTUP_TOOLCHAIN for its children; nightly must win here.
        .env_remove("RUSTUP_TOOLCHAIN")
        .env_remove("CARGO")
        .args(["+nightly", "fuzz", "run", target, "--"])
        .arg(format!("-max_total_time={seconds}"))
        .arg("-print_final_stats=1");
    step(&format!("fuzz {target} for {seconds}s"), run)
}

#[cfg(test)]
mod tests {
    use super::count_before;

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
