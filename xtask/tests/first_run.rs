//! Review of issue 12 (first run): `cargo xtask ci` on a machine that lacks what it cannot
//! install. Runs the xtask binary with a `PATH` and `CARGO` of fakes, so nothing is built or
//! installed.

#![cfg(unix)]

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

fn script(dir: &Path, name: &str, body: &str) -> PathBuf {
    let file = dir.join(name);
    std::fs::write(&file, format!("#!/bin/sh\n{body}\n")).expect("write");
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    file
}

/// Runs `xtask ci` where `rustup` behaves as `rustup_body` says, no redis-server, cargo-deny or
/// cargo-fuzz is installed, and `cargo` only writes down how it was called. Returns xtask's
/// stderr and cargo's calls.
fn ci_on_a_fresh_machine(name: &str, rustup_body: &str) -> (String, String) {
    ci_with(name, rustup_body, &[], &[])
}

/// `ci_on_a_fresh_machine` with more fake programs (`(name, script body)`) on `PATH` and more
/// environment variables.
fn ci_with(
    name: &str,
    rustup_body: &str,
    programs: &[(&str, &str)],
    vars: &[(&str, &str)],
) -> (String, String) {
    let dir = std::env::temp_dir().join(format!("xtask-first-run-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).expect("dir");
    let calls = dir.join("cargo-calls");
    let cargo = script(
        &bin,
        "cargo",
        &format!("echo \"$*\" >> '{}'\nexit 1", calls.display()),
    );
    script(&bin, "rustup", rustup_body);
    for (program, body) in programs {
        script(&bin, program, body);
    }
    let out = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .arg("ci")
        .env("PATH", &bin)
        .env("CARGO", &cargo)
        .env("CARGO_TARGET_DIR", dir.join("target"))
        .env_remove("COGREF_REDIS_SERVER")
        .env_remove("COGREF_REDIS_URL")
        .envs(vars.iter().copied())
        .output()
        .expect("run xtask");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let calls = std::fs::read_to_string(&calls).unwrap_or_default();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(!out.status.success(), "{stderr}");
    (stderr, calls)
}

/// ci.rs says "a fresh machine either gets it or fails within seconds with one line saying
/// what to install, not after a long build", and README that without a way to install
/// redis-server "it stops at once with one line saying what to install". But `ci` first runs
/// `cargo install` for cargo-deny and cargo-fuzz (minutes of compiling on 2 cores) and only
/// then checks for the nightly toolchain and redis-server, which it cannot install.
#[test]
fn what_xtask_cannot_install_is_reported_before_any_tool_is_built() {
    let (stderr, calls) = ci_on_a_fresh_machine("no-nightly", "exit 1");
    assert!(
        !calls.contains("install"),
        "cargo install ran before the missing nightly was reported: {calls}\n{stderr}"
    );
    assert!(stderr.contains("nightly"), "{stderr}");

    let (stderr, calls) = ci_on_a_fresh_machine(
        "no-redis",
        "echo 'rustc 1.97.0-nightly (0000000 2026-01-01)'",
    );
    assert!(
        !calls.contains("install"),
        "cargo install ran before the missing redis-server was reported: {calls}\n{stderr}"
    );
    assert!(stderr.contains("redis-server is not installed"), "{stderr}");

    let (stderr, calls) = ci_with(
        "no-valgrind",
        "echo 'rustc 1.97.0-nightly (0000000 2026-01-01)'",
        &[("redis-server", "exit 1")],
        &[],
    );
    assert!(
        !calls.contains("install"),
        "cargo install ran before the missing valgrind was reported: {calls}\n{stderr}"
    );
    assert!(stderr.contains("valgrind is not installed"), "{stderr}");

    // Everything xtask checks up front is there; Node.js and Python, which the interop step
    // needs and xtask cannot install, are not: that is found out only after fmt, clippy and the
    // whole test suite (the interop step comes after `cargo test`).
    let (stderr, calls) = ci_with(
        "no-node",
        "echo 'rustc 1.97.0-nightly (0000000 2026-01-01)'",
        &[
            ("cargo-deny", "echo cargo-deny 0.20.2"),
            ("cargo-fuzz", "echo cargo-fuzz 0.13.2"),
            ("redis-server", "exit 1"),
            ("valgrind", "exit 1"),
        ],
        &[("COGREF_REDIS_URL", "redis://127.0.0.1:1/")],
    );
    assert!(
        !calls.contains("fmt") && !calls.contains("test"),
        "long steps ran before the missing Node.js and Python were reported: {calls}\n{stderr}"
    );
    assert!(stderr.contains("Node.js"), "{stderr}");
}

/// The workflow's `ci` job installs stable (with rustfmt and clippy) and then nightly through
/// `dtolnay/rust-toolchain`, whose every use runs `rustup default <toolchain>`: the job then
/// runs `cargo xtask ci` on nightly, installed with the minimal profile (no rustfmt, no
/// clippy), so its first step, `cargo fmt`, cannot run, and the tests do not run on the stable
/// toolchain the project targets. Nothing in the repository pins the toolchain back (the only
/// `rust-toolchain.toml` is `fuzz/`'s).
#[test]
fn the_github_ci_job_runs_cargo_xtask_ci_on_stable() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root");
    let pinned = ["rust-toolchain.toml", "rust-toolchain"]
        .iter()
        .filter_map(|f| std::fs::read_to_string(root.join(f)).ok())
        .any(|t| !t.contains("nightly"));
    let workflow = std::fs::read_to_string(root.join(".github/workflows/ci.yml")).expect("ci.yml");
    // The `ci` job's steps, up to the next job.
    let job: String = workflow
        .lines()
        .skip_while(|l| l.trim_end() != "  ci:")
        .skip(1)
        .take_while(|l| !(l.starts_with("  ") && !l.starts_with("   ") && l.ends_with(':')))
        .collect::<Vec<_>>()
        .join("\n");
    let toolchains: Vec<&str> = job
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- uses: dtolnay/rust-toolchain@"))
        .collect();
    assert!(
        !toolchains.is_empty(),
        "no toolchain step in the ci job:\n{job}"
    );
    assert!(
        pinned || toolchains.last().is_some_and(|t| *t != "nightly"),
        "the ci job's default toolchain ends up {:?} (each dtolnay/rust-toolchain step runs \
         `rustup default`):\n{job}",
        toolchains.last()
    );
}
