//! `cargo xtask`: the workspace's chores, in plain Rust so that they run the same everywhere.
//!
//! - `cargo xtask ci`: everything CI checks, in order, stopping at the first failure.
//! - `cargo xtask fuzz [TARGET] [--seconds N]`: run the fuzz targets (all by default).
//! - `cargo xtask core-deps`: check that the core's dependency tree has no I/O stack.
//! - `cargo xtask bench`: the comparison with the official SDK (`benches/compare/`).

mod interop;

use std::env;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::Instant;

/// Fuzz targets under `fuzz/fuzz_targets/`.
const FUZZ_TARGETS: [&str; 2] = ["parse_response", "build_request"];

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

/// Seconds each fuzz target runs in `ci` unless `COGREF_FUZZ_SECONDS` says otherwise.
const CI_FUZZ_SECONDS: u64 = 20;

type Result<T = ()> = std::result::Result<T, String>;

fn main() -> ExitCode {
    let args: Vec<String> = env::args().skip(1).collect();
    let outcome = match args.first().map(String::as_str) {
        Some("ci") => ci(),
        Some("fuzz") => fuzz_command(&args[1..]),
        Some("core-deps") => core_deps(),
        Some("bench") => bench(),
        Some("interop") => interop::interop(),
        Some("help" | "--help" | "-h") | None => {
            eprintln!("{USAGE}");
            Ok(())
        }
        Some(other) => Err(format!("unknown command {other:?}\n\n{USAGE}")),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e}");
            ExitCode::FAILURE
        }
    }
}

const USAGE: &str = "usage: cargo xtask <command>

commands:
  ci                           fmt, clippy, tests, docs, cargo-deny, core dependency check,
                               wasm check (if the target is installed), short fuzz runs
  fuzz [TARGET] [--seconds N]  run one fuzz target or all of them (default 60 s each)
  interop                      the AWS CLI, boto3, the JS SDK and Amplify against the emulator
  core-deps                    fail if cogref-core's normal dependencies include an I/O stack
  bench                        compare with the official SDK (benches/compare): clean builds,
                               sizes, crate counts, latency and throughput; writes
                               docs/benchmarks.md and docs/benchmarks.svg";

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

fn cargo() -> Command {
    let mut c = Command::new(env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    c.current_dir(root());
    c
}

/// Runs a step, printing its name and duration; fails with the step's name.
fn step(name: &str, mut command: Command) -> Result {
    eprintln!("\n==> {name}");
    let started = Instant::now();
    let status = command
        .status()
        .map_err(|e| format!("{name}: could not start: {e}"))?;
    eprintln!("<== {name}: {:.1}s", started.elapsed().as_secs_f64());
    if status.success() {
        Ok(())
    } else {
        Err(format!("step failed: {name} ({status})"))
    }
}

fn ci() -> Result {
    let mut fmt = cargo();
    fmt.args(["fmt", "--all", "--", "--check"]);
    step("fmt", fmt)?;

    let mut clippy = cargo();
    clippy.args([
        "clippy",
        "--workspace",
        "--all-targets",
        "--locked",
        "--",
        "-D",
        "warnings",
    ]);
    step("clippy", clippy)?;

    let mut test = cargo();
    test.args(["test", "--workspace", "--locked"]);
    let (passed, failed) = counted_tests(test)?;
    interop::interop()?;

    let mut doc = cargo();
    doc.args(["doc", "--workspace", "--no-deps", "--locked"])
        .env("RUSTDOCFLAGS", "-D warnings");
    step("doc", doc)?;

    // cargo-deny reads every crate of every feature offline: fetch them first (registry only).
    let mut fetch = cargo();
    fetch.args(["fetch", "--locked"]);
    step("fetch", fetch)?;

    let mut deny = cargo();
    deny.args(["deny", "--offline", "check", "licenses", "bans", "sources"]);
    step("cargo-deny (offline: licenses, bans, sources)", deny)?;

    core_deps()?;
    wasm_check()?;

    let seconds = env::var("COGREF_FUZZ_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(CI_FUZZ_SECONDS);
    for target in FUZZ_TARGETS {
        fuzz(target, seconds)?;
    }
    eprintln!("\nxtask ci: all steps passed");
    // The closing line CI reads: the test count of the `test` step.
    println!("tests: {passed} passed, {failed} failed");
    Ok(())
}

/// Runs `cargo test`, echoing its output, and adds up its `test result:` lines.
fn counted_tests(mut command: Command) -> Result<(u64, u64)> {
    use std::io::{BufRead, BufReader, Write};
    eprintln!("\n==> test");
    let started = Instant::now();
    let mut child = command
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| format!("test: could not start: {e}"))?;
    let (mut passed, mut failed) = (0, 0);
    if let Some(stdout) = child.stdout.take() {
        let mut out = std::io::stdout().lock();
        for line in BufReader::new(stdout).lines() {
            let line = line.map_err(|e| format!("test: reading output: {e}"))?;
            let _ = writeln!(out, "{line}");
            if let Some(result) = line.strip_prefix("test result: ") {
                passed += count_before(result, " passed");
                failed += count_before(result, " failed");
            }
        }
    }
    let status = child.wait().map_err(|e| format!("test: {e}"))?;
    eprintln!("<== test: {:.1}s", started.elapsed().as_secs_f64());
    if !status.success() {
        return Err(format!(
            "step failed: test ({status}); {passed} passed, {failed} failed"
        ));
    }
    Ok((passed, failed))
}

/// The number right before `label` in a line like `ok. 62 passed; 0 failed; …`.
fn count_before(text: &str, label: &str) -> u64 {
    text.split(';')
        .find_map(|part| {
            part.trim()
                .trim_start_matches("ok. ")
                .trim_start_matches("FAILED. ")
                .strip_suffix(label.trim_start())
                .map(str::trim)
        })
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// The packages of `package`'s normal dependency tree (`name vX.Y.Z [source]`), each once,
/// the package itself included. `manifest` selects another workspace.
fn normal_tree(manifest: Option<&Path>, package: &str) -> Result<Vec<String>> {
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

fn core_deps() -> Result {
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
    eprintln!(
        "<== core-deps: {} crates in cogref-core's normal tree, none of {:?}",
        names.len(),
        FORBIDDEN_IN_CORE
    );
    Ok(())
}

fn wasm_check() -> Result {
    let installed = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).contains("wasm32-unknown-unknown"))
        .unwrap_or(false);
    if !installed {
        eprintln!(
            "\n==> wasm32 check skipped: target wasm32-unknown-unknown is not installed here \
             (the GitHub workflow runs it)"
        );
        return Ok(());
    }
    let mut check = cargo();
    check.args([
        "check",
        "-p",
        "cogref-core",
        "--target",
        "wasm32-unknown-unknown",
        "--locked",
    ]);
    step("wasm32 check of cogref-core", check)
}

fn fuzz_command(args: &[String]) -> Result {
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

fn fuzz(target: &str, seconds: u64) -> Result {
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

/// The comparison's client binaries, by the name the report uses.
const COMPARED: [(&str, &str); 5] = [
    ("raw-reqwest", "min-raw-reqwest"),
    ("aws-sdk", "min-sdk"),
    ("cogref-reqwest", "min-cogref-reqwest"),
    ("cogref-isahc", "min-cogref-isahc"),
    ("cogref-blocking", "min-cogref-blocking"),
];

fn output_of(command: &mut Command) -> Result<String> {
    let out = command
        .output()
        .map_err(|e| format!("could not run {command:?}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{command:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// `name version` of the compared libraries, from the comparison's lock file.
fn locked_versions(compare: &Path) -> String {
    let lock = std::fs::read_to_string(compare.join("Cargo.lock")).unwrap_or_default();
    let mut lines = lock.lines();
    let mut found = Vec::new();
    while let Some(line) = lines.next() {
        let Some(name) = line
            .strip_prefix("name = \"")
            .and_then(|n| n.strip_suffix('"'))
        else {
            continue;
        };
        let wanted = [
            "aws-sdk-cognitoidentityprovider",
            "aws-smithy-runtime",
            "cogref-core",
            "reqwest",
            "hyper",
            "isahc",
            "curl-sys",
            "ureq",
            "tokio",
        ];
        if !wanted.contains(&name) {
            continue;
        }
        let version = lines
            .next()
            .and_then(|v| v.strip_prefix("version = \""))
            .and_then(|v| v.strip_suffix('"'));
        if let Some(version) = version {
            found.push(format!("{name} {version}"));
        }
    }
    found.join(", ")
}

/// Builds the comparison from scratch and runs it; see `benches/compare/`.
fn bench() -> Result {
    let started = Instant::now();
    let compare = root().join("benches").join("compare");
    let manifest = compare.join("Cargo.toml");
    let mut results = String::new();
    let rustc = output_of(Command::new("rustc").arg("--version"))?;
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let date = output_of(Command::new("date").args(["-u", "+%Y-%m-%d %H:%M UTC"]))?;
    results.push_str(&format!("META\tmachine\t{cpu}, {cores} cores\n"));
    results.push_str(&format!("META\trustc\t{}\n", rustc.trim()));
    results.push_str(&format!("META\tdate\t{}\n", date.trim()));
    results.push_str(&format!("META\tversions\t{}\n", locked_versions(&compare)));

    // Clean release builds, one empty target directory each, timed.
    let clean = compare.join("target").join("clean");
    for (client, package) in COMPARED {
        let target = clean.join(package);
        let _ = std::fs::remove_dir_all(&target);
        eprintln!("\n==> clean release build of {package}");
        let began = Instant::now();
        let status = Command::new("cargo")
            .args(["build", "--release", "--quiet", "--manifest-path"])
            .arg(&manifest)
            .args(["-p", package])
            .env("CARGO_TARGET_DIR", &target)
            .status()
            .map_err(|e| format!("cargo build: {e}"))?;
        if !status.success() {
            return Err(format!("building {package} failed"));
        }
        let seconds = began.elapsed().as_secs_f64();
        let bytes = std::fs::metadata(target.join("release").join(package))
            .map_err(|e| format!("{package} binary: {e}"))?
            .len();
        let crates = normal_tree(Some(&manifest), package)?;
        // The binary itself and the shared timing helper are not dependencies of the client.
        let count = crates
            .iter()
            .filter(|c| !c.starts_with(package) && !c.starts_with("bench-common"))
            .count();
        eprintln!("<== {package}: {seconds:.0}s, {bytes} bytes stripped, {count} crates");
        results.push_str(&format!(
            "BUILD\t{client}\t{seconds:.1}\t{bytes}\t{count}\n"
        ));
    }

    // The server and the report, in the shared target directory.
    let status = Command::new("cargo")
        .args(["build", "--release", "--quiet", "--manifest-path"])
        .arg(&manifest)
        .args(["-p", "loopback", "-p", "report"])
        .status()
        .map_err(|e| format!("cargo build: {e}"))?;
    if !status.success() {
        return Err("building the loopback server and the report failed".into());
    }
    let release = compare.join("target").join("release");
    for mode in ["ok", "error"] {
        let mut server = Command::new(release.join("loopback"))
            .arg(mode)
            .stdout(Stdio::piped())
            .spawn()
            .map_err(|e| format!("loopback: {e}"))?;
        let port = {
            use std::io::{BufRead, BufReader};
            let stdout = server.stdout.take().ok_or("loopback has no stdout")?;
            let mut line = String::new();
            BufReader::new(stdout)
                .read_line(&mut line)
                .map_err(|e| format!("loopback: {e}"))?;
            line.trim().strip_prefix("PORT ").unwrap_or("0").to_owned()
        };
        for (client, package) in COMPARED {
            eprintln!("==> {client}, {mode} answers");
            let out = output_of(
                Command::new(clean.join(package).join("release").join(package))
                    .env("BENCH_ENDPOINT", format!("http://127.0.0.1:{port}"))
                    .env("BENCH_MODE", mode),
            );
            let out = match out {
                Ok(out) => out,
                Err(e) => {
                    let _ = server.kill();
                    return Err(e);
                }
            };
            for line in out.lines().filter(|l| l.starts_with("RESULT ")) {
                eprintln!("    {line}");
                results.push_str(&line.split(' ').collect::<Vec<_>>().join("\t"));
                results.push('\n');
            }
        }
        let _ = server.kill();
        let _ = server.wait();
    }
    let out_dir = compare.join("target");
    let tsv = out_dir.join("results.tsv");
    std::fs::write(&tsv, &results).map_err(|e| format!("{}: {e}", tsv.display()))?;
    let status = Command::new(release.join("report"))
        .arg(&tsv)
        .arg(root().join("docs"))
        .status()
        .map_err(|e| format!("report: {e}"))?;
    if !status.success() {
        return Err("the report failed".into());
    }
    eprintln!(
        "\nxtask bench: wrote docs/benchmarks.md and docs/benchmarks.svg in {:.0}s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::count_before;

    #[test]
    fn counts_are_read_from_cargo_test_result_lines() {
        let ok =
            "ok. 62 passed; 0 failed; 1 ignored; 0 measured; 0 filtered out; finished in 0.01s";
        assert_eq!(
            (count_before(ok, " passed"), count_before(ok, " failed")),
            (62, 0)
        );
        let bad = "FAILED. 5 passed; 2 failed; 0 ignored; 0 measured; 0 filtered out";
        assert_eq!(
            (count_before(bad, " passed"), count_before(bad, " failed")),
            (5, 2)
        );
    }
}
