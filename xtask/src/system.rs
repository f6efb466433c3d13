//! What the checks need from the system's package manager: apt-get, run as root or with
//! passwordless sudo, never with a password prompt (redis-server for the fleet-store tests,
//! valgrind for the contract's valgrind case).

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
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

/// `binary` found on `path`, else its Debian `package` installed now through apt-get when that
/// is allowed (see [`may_install`]); otherwise `missing`, one line saying what to install.
/// `why` says what needs it, in the line printed before the install.
pub(crate) fn locate_or_install(
    binary: &str,
    package: &str,
    why: &str,
    missing: &'static str,
    path: &OsStr,
) -> Result<PathBuf> {
    if let Some(found) = find_in_path(binary, path) {
        return Ok(found);
    }
    let privilege = may_install(path, is_root(), passwordless_sudo).ok_or(missing)?;
    eprintln!("\n==> installing {package} with apt-get ({why})");
    if !apt_install(privilege, package) {
        return Err(format!(
            "apt-get could not install {package} (see its output above): install it yourself \
             and run again"
        ));
    }
    // apt-get's binaries go to /usr/bin, which a minimal PATH may lack.
    find_in_path(binary, path)
        .or_else(|| Some(Path::new("/usr/bin").join(binary)).filter(|p| p.is_file()))
        .ok_or_else(|| format!("apt-get installed {package}, but {binary} is not on PATH"))
}

/// What a user without valgrind, whom xtask cannot install it for, reads: one line.
const MISSING_VALGRIND: &str = "valgrind is not installed and xtask cannot install it here \
    (that needs apt-get, as root or with passwordless sudo): install it yourself \
    (Debian/Ubuntu: `sudo apt-get install valgrind`) and run again";

/// valgrind, which the contract's valgrind case runs the transports' clocks under. Without it
/// the case skips outside CI and fails in it, so xtask says so now, in one line.
pub(crate) fn locate_or_install_valgrind(path: &OsStr) -> Result<()> {
    let why = "the contract's valgrind case needs it";
    locate_or_install("valgrind", "valgrind", why, MISSING_VALGRIND, path).map(drop)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    #[cfg(unix)]
    pub(crate) fn fake_path(with: &[&str]) -> (PathBuf, std::ffi::OsString) {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!(
            "xtask-fake-path-{}-{}",
            std::process::id(),
            with.join("-")
        ));
        std::fs::create_dir_all(&dir).expect("dir");
        for name in with {
            let file = dir.join(name);
            std::fs::write(&file, "#!/bin/sh\nexit 0\n").expect("write");
            std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        }
        let path = dir.clone().into_os_string();
        (dir, path)
    }

    #[cfg(unix)]
    #[test]
    fn a_package_is_installed_only_with_apt_get_as_root_or_with_passwordless_sudo() {
        let (dir, apt_and_sudo) = fake_path(&["apt-get", "sudo"]);
        assert_eq!(
            may_install(&apt_and_sudo, true, || false),
            Some(Privilege::Root)
        );
        assert_eq!(
            may_install(&apt_and_sudo, false, || true),
            Some(Privilege::Sudo)
        );
        assert_eq!(may_install(&apt_and_sudo, false, || false), None);
        let (dir2, no_apt) = fake_path(&["sudo"]);
        assert_eq!(may_install(&no_apt, true, || true), None);
        let _ = std::fs::remove_dir_all(dir);
        let _ = std::fs::remove_dir_all(dir2);
    }
}
