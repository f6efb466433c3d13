//! Dependency-tree checks: `cargo xtask core-deps`, and the tree helper the bench uses.

use std::path::Path;

use crate::Result;
use crate::process::{cargo, output_of};

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

/// The most crates `cogref-core`'s normal tree may have, itself included: each one is code a
/// user of the core audits and builds (20 since thiserror and base64 gave way to a few lines of
/// our own).
const MAX_CORE_CRATES: usize = 20;

/// The packages of `package`'s normal dependency tree (`name vX.Y.Z [source]`), each once,
/// the package itself included. `manifest` selects another workspace.
pub(crate) fn normal_tree(manifest: Option<&Path>, package: &str) -> Result<Vec<String>> {
    let mut command = cargo();
    command.args([
        "tree", "-e", "normal", "--prefix", "none", "--format", "{p}", "--locked", "-p", package,
    ]);
    if let Some(manifest) = manifest {
        command.arg("--manifest-path").arg(manifest);
    }
    let tree = output_of(&mut command)?;
    let mut packages: Vec<String> = tree
        .lines()
        .map(|l| l.trim_end_matches(" (*)").to_owned())
        .filter(|l| !l.is_empty())
        .collect();
    packages.sort_unstable();
    packages.dedup();
    Ok(packages)
}

pub(crate) fn core_deps() -> Result {
    eprintln!("\n==> core-deps");
    let packages = normal_tree(None, "cogref-core")?;
    let names: Vec<&str> = packages
        .iter()
        .filter_map(|p| p.split_whitespace().next())
        .collect();
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
    if names.len() > MAX_CORE_CRATES {
        return Err(format!(
            "cogref-core's normal tree has {} crates, more than {MAX_CORE_CRATES}: {names:?}",
            names.len()
        ));
    }
    eprintln!(
        "<== core-deps: {} crates in cogref-core's normal tree (at most {MAX_CORE_CRATES}), none of {:?}",
        names.len(),
        FORBIDDEN_IN_CORE
    );
    Ok(())
}
