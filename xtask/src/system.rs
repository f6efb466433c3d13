//! What the checks need from the system's package manager: apt-get, run as root or with
//! passwordless sudo, never with a password prompt (redis-server for the fleet-store tests,
//! valgrind for the contract's valgrind case).

use std::ffi::OsStr;
use std::process::{Command, Stdio};

use crate::Result;
use crate::process::find_in_path;

/// How apt-get may be run here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Privilege {
    /// xtask runs as root.
    Root,
    /// `sudo -n` works (no password prompt).
    Sudo,
}

/// Whether xtask may install a system package itself: apt-get must be on `path`, and it must be
/// able to run it without asking anyone for a password.
pub(crate) fn may_install(
    path: &OsStr,
    is_root: bool,
    passwordless_sudo: impl FnOnce() -> bool,
) -> Option<Privilege> {
    find_in_path("apt-get", path)?;
    if is_root {
        return Some(Privilege::Root);
    }
    (find_in_path("sudo", path).is_some() && passwordless_sudo()).then_some(Privilege::Sudo)
}

pub(crate) fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .stderr(Stdio::null())
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

pub(crate) fn passwordless_sudo() -> bool {
    Command::new("sudo")
        .args(["-n", "true"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Installs a Debian package with apt-get as `privilege` allows; whether it worked. Never
/// upgrades a package that is installed but not on `PATH`.
pub(crate) fn apt_install(privilege: Privilege, package: &str) -> bool {
    let apt = |args: &[&str]| {
        let mut c = match privilege {
            Privilege::Root => Command::new("apt-get"),
            Privilege::Sudo => {
                let mut c = Command::new("sudo");
                c.args(["-n", "env", "DEBIAN_FRONTEND=noninteractive", "apt-get"]);
                c
            }
        };
        c.env("DEBIAN_FRONTEND", "noninteractive").args(args);
        c.status().is_ok_and(|s| s.success())
    };
    apt(&["update", "-qq"])
        && apt(&[
            "install",
            "-y",
            "-qq",
            "--no-install-recommends",
            "--no-upgrade",
            package,
        ])
}

/// valgrind, which the contract's valgrind case runs the transports' clocks under: found on
/// `path`, else installed through apt-get when that is allowed. Without either, the case skips
/// outside CI and fails in it, so xtask says so now, in one line.
pub(crate) fn locate_or_install_valgrind(path: &OsStr) -> Result<()> {
    if find_in_path("valgrind", path).is_some() {
        return Ok(());
    }
    const MISSING_VALGRIND: &str = "valgrind is not installed and xtask cannot install it here \
        (that needs apt-get, as root or with passwordless sudo): install it yourself \
        (Debian/Ubuntu: `sudo apt-get install valgrind`) and run again";
    let privilege = may_install(path, is_root(), passwordless_sudo).ok_or(MISSING_VALGRIND)?;
    eprintln!("\n==> installing valgrind with apt-get (the contract's valgrind case needs it)");
    if apt_install(privilege, "valgrind") && find_in_path("valgrind", path).is_some() {
        Ok(())
    } else {
        Err(
            "apt-get could not install valgrind (see its output above): install it yourself \
             and run again"
                .into(),
        )
    }
}
