//! What `cargo xtask ci` needs besides cargo: pinned cargo tools, installed when missing, and a
//! nightly toolchain for cargo-fuzz (which cannot be installed from here: only the package
//! registries are reachable in CI).

use std::env;
use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::Result;
use crate::process::{find_in_path, target_dir};

/// A cargo subcommand from crates.io, pinned so that a new release cannot break CI.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Tool {
    /// The binary, `cargo-<subcommand>`.
    pub(crate) binary: &'static str,
    /// The crate that provides it.
    pub(crate) krate: &'static str,
    /// The version CI uses.
    pub(crate) version: &'static str,
}

/// cargo-deny: licenses, bans and sources.
pub(crate) const CARGO_DENY: Tool = Tool {
    binary: "cargo-deny",
    krate: "cargo-deny",
    version: "0.20.2",
};

/// cargo-fuzz: the fuzz steps.
pub(crate) const CARGO_FUZZ: Tool = Tool {
    binary: "cargo-fuzz",
    krate: "cargo-fuzz",
    version: "0.13.2",
};

impl Tool {
    /// The command that installs the pinned version into `root` (its binaries land in
    /// `root/bin`).
    pub(crate) fn install_command(&self, root: &Path) -> Command {
        let mut install = Command::new(env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
        install
            .args(["install", "--locked", "--root"])
            .arg(root)
            .args([self.krate, "--version", self.version]);
        install
    }
}

/// Where xtask installs the tools it pins: inside the target directory, so that a developer's
/// own (maybe newer) cargo-deny or cargo-fuzz in `~/.cargo/bin` is never replaced.
pub(crate) fn tools_root() -> PathBuf {
    target_dir().join("xtask-tools")
}

/// The version a tool binary reports (`cargo-deny 0.20.2` → `0.20.2`), if it runs at all.
fn reported_version(binary: &Path) -> Option<String> {
    let out = Command::new(binary)
        .arg("--version")
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    version_in(&String::from_utf8_lossy(&out.stdout))
}

/// The version word of a `--version` line: the last word that starts with a digit.
fn version_in(line: &str) -> Option<String> {
    line.split_whitespace()
        .rev()
        .find(|w| w.starts_with(|c: char| c.is_ascii_digit()))
        .map(str::to_owned)
}

/// Makes the pinned version of every tool available and returns the directory to put first on
/// `PATH` for the steps that run them (`cargo deny`, `cargo fuzz`), if any was installed.
///
/// A tool already on `PATH` at the pinned version is used as it is; otherwise the pinned
/// version is installed with `cargo install --locked` into [`tools_root`] (once: later runs
/// find it there).
pub(crate) fn ensure_tools(tools: &[Tool], path: &OsStr) -> Result<Option<PathBuf>> {
    let root = tools_root();
    let bin = root.join("bin");
    let mut use_bin = false;
    for tool in tools {
        let on_path = find_in_path(tool.binary, path);
        if let Some(found) = on_path
            .as_deref()
            .filter(|p| reported_version(p).is_some_and(|v| v == tool.version))
        {
            eprintln!("{} {} ({})", tool.binary, tool.version, found.display());
            continue;
        }
        let ours = bin.join(tool.binary);
        if reported_version(&ours).is_some_and(|v| v == tool.version) {
            eprintln!("{} {} ({})", tool.binary, tool.version, ours.display());
            use_bin = true;
            continue;
        }
        let why = match on_path.as_deref().and_then(reported_version) {
            Some(other) => format!("{other} is on PATH, CI pins {}", tool.version),
            None => "not installed".to_owned(),
        };
        eprintln!(
            "\n==> installing {} {} into {} ({why})",
            tool.krate,
            tool.version,
            root.display()
        );
        let status = tool
            .install_command(&root)
            .status()
            .map_err(|e| format!("could not run cargo install: {e}"))?;
        if !status.success() || reported_version(&ours).is_none_or(|v| v != tool.version) {
            return Err(format!(
                "could not install {krate} {version} (`cargo install --locked {krate} --version \
                 {version}` failed: is crates.io reachable?); install it yourself and run again",
                krate = tool.krate,
                version = tool.version
            ));
        }
        use_bin = true;
    }
    Ok(use_bin.then_some(bin))
}

/// `PATH` with `first` in front.
pub(crate) fn path_with(first: Option<&Path>, path: &OsStr) -> Result<OsString> {
    let mut dirs: Vec<PathBuf> = first.map(Path::to_path_buf).into_iter().collect();
    dirs.extend(env::split_paths(path));
    env::join_paths(dirs).map_err(|e| format!("cannot build PATH: {e}"))
}

/// The nightly toolchain cargo-fuzz needs. It cannot be downloaded in CI (only the package
/// registries are reachable), so a missing one is a clear error, not an attempt.
pub(crate) fn check_nightly() -> Result {
    let found = Command::new("rustup")
        .args(["run", "nightly", "rustc", "--version"])
        .stdin(Stdio::null())
        .output();
    match found {
        Ok(out) if out.status.success() => {
            eprintln!(
                "nightly toolchain for the fuzz steps: {}",
                String::from_utf8_lossy(&out.stdout).trim()
            );
            Ok(())
        }
        Ok(_) => Err(
            "the fuzz steps need a nightly toolchain, which is not installed: \
             run `rustup toolchain install nightly` and run again"
                .into(),
        ),
        Err(_) => Err(
            "the fuzz steps need rustup with a nightly toolchain, and rustup is not \
             on PATH: install rustup (https://rustup.rs), then `rustup toolchain install \
             nightly`"
                .into(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_version_is_the_last_numeric_word_of_the_version_line() {
        assert_eq!(version_in("cargo-deny 0.20.2\n").as_deref(), Some("0.20.2"));
        assert_eq!(version_in("cargo-fuzz 0.13.2").as_deref(), Some("0.13.2"));
        assert_eq!(version_in("cargo-fuzz"), None);
    }

    #[test]
    fn a_missing_tool_is_installed_locked_at_its_pinned_version_outside_cargo_home() {
        let root = Path::new("/tmp/xtask-tools");
        for (tool, version) in [(CARGO_DENY, "0.20.2"), (CARGO_FUZZ, "0.13.2")] {
            let install = tool.install_command(root);
            let args: Vec<_> = install
                .get_args()
                .map(|a| a.to_string_lossy().into_owned())
                .collect();
            assert_eq!(
                args,
                [
                    "install",
                    "--locked",
                    "--root",
                    "/tmp/xtask-tools",
                    tool.krate,
                    "--version",
                    version
                ]
            );
        }
    }

    #[cfg(unix)]
    #[test]
    fn tools_already_at_the_pinned_version_on_path_are_used_without_installing() {
        // A fake cargo-deny and cargo-fuzz that report the pinned versions.
        let dir = env::temp_dir().join(format!("xtask-fake-tools-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        for tool in [CARGO_DENY, CARGO_FUZZ] {
            let script = dir.join(tool.binary);
            std::fs::write(
                &script,
                format!("#!/bin/sh\necho {} {}\n", tool.binary, tool.version),
            )
            .expect("script");
            make_executable(&script);
        }
        let found = ensure_tools(&[CARGO_DENY, CARGO_FUZZ], dir.as_os_str());
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(found, Ok(None));
    }

    #[cfg(unix)]
    fn make_executable(path: &Path) {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    }
}
