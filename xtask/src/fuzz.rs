//! `cargo xtask fuzz`: the cargo-fuzz targets under `fuzz/`.

use std::process::Command;

use crate::Result;
use crate::process::{root, step};

/// Fuzz targets under `fuzz/fuzz_targets/`.
pub(crate) const FUZZ_TARGETS: [&str; 2] = ["parse_response", "build_request"];

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
    for target in targets {
        fuzz(target, seconds)?;
    }
    Ok(())
}

pub(crate) fn fuzz(target: &str, seconds: u64) -> Result {
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
