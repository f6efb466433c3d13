//! `cargo xtask fuzz`: the cargo-fuzz targets under `fuzz/`.

use std::ffi::OsStr;
use std::process::Command;

use crate::Result;
use crate::process::{root, step};
use crate::tools::{self, CARGO_FUZZ};

/// Fuzz targets under `fuzz/fuzz_targets/`.
pub(crate) const FUZZ_TARGETS: [&str; 3] =
    ["parse_response", "build_request", "parse_revoke_response"];

pub(crate) fn fuzz_command(args: &[String]) -> Result {
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
    let path = std::env::var_os("PATH").unwrap_or_default();
    let tools_bin = tools::ensure_tools(&[CARGO_FUZZ], &path)?;
    let path = tools::path_with(tools_bin.as_deref(), &path)?;
    tools::check_nightly()?;
    for target in targets {
        fuzz(target, seconds, &path)?;
    }
    Ok(())
}

/// Runs `cargo fuzz run TARGET` from `fuzz/`, exactly as README tells a user to: nightly comes
/// from `fuzz/rust-toolchain.toml`. `path` is the `PATH` that has cargo-fuzz.
pub(crate) fn fuzz(target: &str, seconds: u64, path: &OsStr) -> Result {
    let mut run = Command::new("cargo");
    run.current_dir(root().join("fuzz"))
        // The workspace's cargo sets RUSTUP_TOOLCHAIN for its children, which would override
        // fuzz/rust-toolchain.toml; the toolchain file must decide, as for a user in a shell.
        .env_remove("RUSTUP_TOOLCHAIN")
        .env_remove("CARGO")
        .env("PATH", path)
        .args(["fuzz", "run", target, "--"])
        .arg(format!("-max_total_time={seconds}"))
        .arg("-print_final_stats=1");
    step(&format!("fuzz {target} for {seconds}s"), run)
}
