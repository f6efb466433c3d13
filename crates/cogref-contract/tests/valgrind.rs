//! The transports' clocks under valgrind. A user who checks or profiles a program with valgrind
//! (memcheck, callgrind) must not find it crashing in cogref: the coarse clocks were once read
//! through rustix's own vDSO reader, which reads an address valgrind leaves unmapped
//! (bytecodealliance/rustix#1559) and took the process down with SIGSEGV. Linux only: the coarse
//! clocks are Linux's.
#![cfg(target_os = "linux")]

use std::process::Command;

use cogref_core::Environment;

/// Set in the child this test starts under valgrind.
const CHILD: &str = "COGREF_CONTRACT_UNDER_VALGRIND";

/// A transport's `environment()`.
type MakeEnvironment = fn() -> cogref_core::driver::StdEnvironment;

#[test]
fn every_transports_clocks_read_under_valgrind() {
    let environments: [(&str, MakeEnvironment); 3] = [
        ("cogref-blocking", cogref_blocking::environment),
        ("cogref-reqwest", cogref_reqwest::environment),
        ("cogref-isahc", cogref_isahc::environment),
    ];
    if std::env::var_os(CHILD).is_some() {
        for (name, environment) in environments {
            let env = environment();
            for _ in 0..3 {
                if let Err(breach) = cogref_contract::clocks::check_reading(&env) {
                    panic!("{name}: {breach}");
                }
            }
            let _ = env.wall_clock();
        }
        return;
    }
    let Ok(version) = Command::new("valgrind").arg("--version").output() else {
        // CI installs valgrind (`cargo xtask ci`); elsewhere the case is skipped, and says so.
        assert!(
            std::env::var_os("CI").is_none(),
            "valgrind is not installed, and CI must run this case"
        );
        eprintln!("skipped: valgrind is not installed");
        return;
    };
    assert!(version.status.success(), "valgrind --version failed");
    let exe = std::env::current_exe().expect("this test binary");
    let out = Command::new("valgrind")
        .args(["--quiet", "--error-exitcode=99"])
        .arg(&exe)
        .args([
            "--exact",
            "every_transports_clocks_read_under_valgrind",
            "--test-threads=1",
        ])
        .env(CHILD, "1")
        .output()
        .expect("valgrind starts");
    assert!(
        out.status.success(),
        "under valgrind: {}\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // The child ran the case, not zero tests.
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("1 passed"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}
