//! `cargo xtask sim`: the deterministic simulator of token sessions (`crates/cogref-sim`),
//! built with the release profile (a debug build runs a tenth as many seeds a second).

use crate::Result;
use crate::process::{cargo, step};

/// Runs the simulator with `args` (see `cargo xtask sim --help`).
pub(crate) fn sim(args: &[String]) -> Result {
    let mut run = cargo();
    run.args([
        "run",
        "--quiet",
        "--release",
        "--locked",
        "-p",
        "cogref-sim",
        "--",
    ])
    .args(args);
    step("sim", run)
}

/// The CI batch: the regression seeds, a fixed range of seeds, and each mutant caught within
/// it (about two minutes on two cores).
pub(crate) fn ci() -> Result {
    sim(&["--ci".to_owned()])
}
