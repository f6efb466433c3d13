//! How the benchmark machine's idle cores wake up, and a guard that lets a KVM guest's idle
//! vCPUs poll during the rounds.
//!
//! A call's latency on loopback includes waking the cores that went idle while it waited: the
//! server's core when the request arrives, the worker's when the answer does. A KVM guest whose
//! idle vCPUs halt at once (`guest_halt_poll_ns` 0, as on this project's CI machine: the
//! kernel's default is 200 µs of polling) hands each wake-up to the hypervisor, which adds
//! 10 to 20 µs per wake-up to every client alike. That constant hid most of what a client
//! costs: the floor read 76–88 µs per call there against 33 µs with polling, and a cogref
//! transport that armed a timer per call (a driver wake-up, since fixed) read 0.97 of the
//! floor there and 1.47 with polling. So the rounds run with idle vCPUs polling as the
//! kernel's default has them, set for the run and restored afterwards where the harness may
//! write the setting, and described in the results either way.

use std::path::{Path, PathBuf};

/// The cpuidle-haltpoll driver's polling window, in nanoseconds.
const HALT_POLL: &str = "/sys/module/haltpoll/parameters/guest_halt_poll_ns";
/// The kernel's default window (cpuidle-haltpoll).
const KERNEL_DEFAULT_NS: u64 = 200_000;

/// Restores the polling window when dropped, if it changed it.
pub(crate) struct IdlePolling {
    /// The setting and the value it had.
    restore: Option<(PathBuf, String)>,
}

impl IdlePolling {
    /// Makes idle vCPUs poll for [`KERNEL_DEFAULT_NS`] if they halt at once and the setting
    /// may be written (`as_is`: leave it); returns the guard and what the rounds ran with.
    pub(crate) fn start(as_is: bool) -> (Self, String) {
        Self::start_at(Path::new(HALT_POLL), as_is)
    }

    fn start_at(setting: &Path, as_is: bool) -> (Self, String) {
        let keep = Self { restore: None };
        let Ok(text) = std::fs::read_to_string(setting) else {
            return (
                keep,
                "no cpuidle-haltpoll (not a KVM guest, or another idle driver): idle cores wake as the machine has them".into(),
            );
        };
        let value = text.trim().to_owned();
        let halting = "idle vCPUs halt at once (guest_halt_poll_ns 0): every wake-up of an idle core costs tens of µs, added to every client alike, which pulls every ratio toward 1";
        match value.parse::<u64>() {
            Ok(0) if as_is => (keep, format!("{halting} (left as is: --idle-as-is)")),
            Ok(0) => match std::fs::write(setting, KERNEL_DEFAULT_NS.to_string()) {
                Ok(()) => {
                    eprintln!(
                        "==> idle vCPUs now poll for {KERNEL_DEFAULT_NS} ns before halting (was 0); restored at the end (if the run is interrupted: echo 0 > {})",
                        setting.display()
                    );
                    (
                        Self {
                            restore: Some((setting.to_owned(), value)),
                        },
                        format!(
                            "idle vCPUs polled for up to {KERNEL_DEFAULT_NS} ns before halting during the rounds (guest_halt_poll_ns, the kernel's default, set from 0 for the run and restored afterwards)"
                        ),
                    )
                }
                Err(e) => (keep, format!("{halting} (could not set it: {e})")),
            },
            Ok(ns) => (
                keep,
                format!("idle vCPUs poll for up to {ns} ns before halting (guest_halt_poll_ns)"),
            ),
            Err(_) => (keep, format!("guest_halt_poll_ns reads {value:?}")),
        }
    }
}

impl Drop for IdlePolling {
    fn drop(&mut self) {
        if let Some((setting, value)) = self.restore.take()
            && let Err(e) = std::fs::write(&setting, &value)
        {
            eprintln!("could not restore {} to {value}: {e}", setting.display());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setting(value: &str) -> (tempdir::Dir, PathBuf) {
        let dir = tempdir::Dir::new();
        let path = dir.0.join("guest_halt_poll_ns");
        std::fs::write(&path, value).expect("write");
        (dir, path)
    }

    /// A directory removed when dropped (the xtask has no temp-dir dependency).
    mod tempdir {
        pub(super) struct Dir(pub(super) std::path::PathBuf);

        impl Dir {
            pub(super) fn new() -> Self {
                let path = std::env::temp_dir().join(format!(
                    "xtask-idle-{}-{:?}",
                    std::process::id(),
                    std::thread::current().id()
                ));
                std::fs::create_dir_all(&path).expect("temp dir");
                Self(path)
            }
        }

        impl Drop for Dir {
            fn drop(&mut self) {
                let _ = std::fs::remove_dir_all(&self.0);
            }
        }
    }

    fn read(path: &Path) -> String {
        std::fs::read_to_string(path).expect("read")
    }

    #[test]
    fn halting_vcpus_poll_during_the_run_and_halt_again_after() {
        let (_dir, path) = setting("0\n");
        let (guard, text) = IdlePolling::start_at(&path, false);
        assert_eq!(read(&path), "200000");
        assert!(text.contains("set from 0 for the run"), "{text}");
        drop(guard);
        assert_eq!(read(&path), "0");
    }

    #[test]
    fn a_polling_window_already_set_is_left_and_reported() {
        let (_dir, path) = setting("50000\n");
        let (guard, text) = IdlePolling::start_at(&path, false);
        drop(guard);
        assert_eq!(read(&path), "50000\n");
        assert!(text.contains("up to 50000 ns"), "{text}");
    }

    #[test]
    fn idle_as_is_leaves_halting_vcpus_and_says_what_that_does() {
        let (_dir, path) = setting("0\n");
        let (guard, text) = IdlePolling::start_at(&path, true);
        drop(guard);
        assert_eq!(read(&path), "0\n");
        assert!(text.contains("pulls every ratio toward 1"), "{text}");
    }

    #[test]
    fn a_machine_without_haltpoll_is_described_as_such() {
        let dir = tempdir::Dir::new();
        let (_guard, text) = IdlePolling::start_at(&dir.0.join("absent"), false);
        assert!(text.starts_with("no cpuidle-haltpoll"), "{text}");
    }
}
