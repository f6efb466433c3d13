//! `cargo xtask interop`: clients nobody here wrote against a started `cogref emulator`.
//!
//! Installs the pinned clients (`npm ci` from `interop/package-lock.json` into
//! `interop/node_modules`; `pip install -r interop/requirements.txt` into
//! `target/interop/venv`), skipping either when its lockfile has not changed since the last
//! install; builds `cogref`; starts one emulator per suite on 127.0.0.1 (port 0); runs the
//! Node suite (AWS SDK for JavaScript v3, Amplify JS) and the Python suite (boto3, the AWS CLI,
//! PyJWT, the OAuth2 endpoint) side by side; prints the checks × clients table; stops the
//! emulators with SIGTERM. Fails on any failed check, a suite that exits non-zero, reports no
//! check, or runs past its time limit.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::process::{cargo, root, step};

type Result<T = ()> = std::result::Result<T, String>;

/// A suite that takes longer than this has hung.
const SUITE_LIMIT: Duration = Duration::from_secs(240);

/// How the `cogref` binary the suites start is built.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Build {
    /// On its own (`cargo xtask interop`).
    Alone,
    /// As the workspace's test build made it (`cargo xtask ci`, after its test step): building
    /// it alone would unify features differently and compile its dependencies a second time.
    WithTests,
}

pub(crate) fn interop(how: Build) -> Result {
    let started = Instant::now();
    let root = root();
    let dir = root.join("interop");
    let work = target_dir(&root).join("interop");
    std::fs::create_dir_all(&work).map_err(|e| format!("interop: {}: {e}", work.display()))?;

    let node = require_tool(
        "node",
        "Node.js 20 or later (Debian: apt-get install nodejs npm)",
    )?;
    require_tool("npm", "npm (Debian: apt-get install npm)")?;
    let python = require_tool(
        "python3",
        "Python 3 with venv (Debian: apt-get install python3-venv)",
    )?;
    install_node(&dir, &work)?;
    let venv_python = install_python(&python, &dir, &work)?;

    let mut build = cargo();
    match how {
        Build::Alone => build.args(["build", "--locked", "-p", "cogref-cli", "--bin", "cogref"]),
        // A no-op after the test step; it still guarantees the binary is current.
        Build::WithTests => build.args(["test", "--workspace", "--locked", "--no-run"]),
    };
    step("interop: build cogref", build)?;
    let cogref = target_dir(&root).join("debug").join("cogref");

    eprintln!("\n==> interop suites");
    let mut node_cmd = Command::new(&node);
    node_cmd.arg("js/suite.mjs").current_dir(&dir);
    let mut python_cmd = Command::new(&venv_python);
    python_cmd.arg("python/suite.py").current_dir(&dir);
    let suites = [("node", node_cmd), ("python", python_cmd)];

    let (tx, rx) = mpsc::channel();
    let mut handles = Vec::new();
    for (i, (name, command)) in suites.into_iter().enumerate() {
        let tx = tx.clone();
        let cogref = cogref.clone();
        let token_file = work.join(format!("emulator-refresh-token-{i}"));
        handles.push(std::thread::spawn(move || {
            let _ = tx.send((name, run_suite(&cogref, &token_file, command)));
        }));
    }
    drop(tx);
    let mut outcomes = Vec::new();
    for (name, outcome) in rx {
        outcomes.push((name, outcome));
    }
    for h in handles {
        let _ = h.join();
    }
    outcomes.sort_by_key(|(name, _)| *name);

    let mut rows: Vec<Check> = Vec::new();
    let mut errors = Vec::new();
    for (name, outcome) in outcomes {
        match outcome {
            Ok(SuiteRun {
                checks,
                success,
                log,
            }) => {
                if !success || checks.is_empty() || checks.iter().any(|c| !c.ok) {
                    errors.push(format!(
                        "{name} suite: exit {}, {} checks, {} failed\n{log}",
                        if success { "ok" } else { "failed" },
                        checks.len(),
                        checks.iter().filter(|c| !c.ok).count()
                    ));
                }
                rows.extend(checks);
            }
            Err(e) => errors.push(format!("{name} suite: {e}")),
        }
    }
    print_table(&rows);
    eprintln!(
        "<== interop: {:.1}s (installs, build and suites)",
        started.elapsed().as_secs_f64()
    );
    let passed = rows.iter().filter(|c| c.ok).count();
    eprintln!("interop: {passed} of {} checks passed", rows.len());
    if errors.is_empty() {
        Ok(())
    } else {
        Err(format!("interop failed:\n{}", errors.join("\n")))
    }
}

fn target_dir(root: &Path) -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .map(|p| if p.is_absolute() { p } else { root.join(p) })
        .unwrap_or_else(|| root.join("target"))
}

/// The tool's path if `tool --version` runs; otherwise a one-line instruction.
fn require_tool(tool: &str, what: &str) -> Result<PathBuf> {
    match Command::new(tool).arg("--version").output() {
        Ok(o) if o.status.success() => Ok(PathBuf::from(tool)),
        _ => Err(format!("interop needs {what}; `{tool}` was not found")),
    }
}

/// Whether `stamp` holds exactly `lock`'s content (the install it records is current).
fn current(stamp: &Path, lock: &[u8], installed: &Path) -> bool {
    installed.exists() && std::fs::read(stamp).is_ok_and(|s| s == lock)
}

fn install_node(dir: &Path, work: &Path) -> Result {
    let lock = std::fs::read(dir.join("package-lock.json"))
        .map_err(|e| format!("interop/package-lock.json: {e}"))?;
    let stamp = work.join("npm-installed.lock");
    if current(&stamp, &lock, &dir.join("node_modules")) {
        eprintln!("interop: npm packages current");
        return Ok(());
    }
    let mut npm = Command::new("npm");
    npm.args(["ci", "--no-audit", "--no-fund", "--ignore-scripts"])
        .current_dir(dir);
    step("interop: npm ci", npm)?;
    std::fs::write(&stamp, &lock).map_err(|e| format!("{}: {e}", stamp.display()))
}

fn install_python(python: &Path, dir: &Path, work: &Path) -> Result<PathBuf> {
    let requirements = dir.join("requirements.txt");
    let lock =
        std::fs::read(&requirements).map_err(|e| format!("interop/requirements.txt: {e}"))?;
    let venv = work.join("venv");
    let venv_python = venv.join("bin").join("python");
    let stamp = work.join("pip-installed.txt");
    if current(&stamp, &lock, &venv_python) {
        eprintln!("interop: Python packages current");
        return Ok(venv_python);
    }
    if !venv_python.exists() {
        let mut make = Command::new(python);
        make.args(["-m", "venv"]).arg(&venv);
        step("interop: python3 -m venv", make)?;
    }
    let mut pip = Command::new(&venv_python);
    pip.args([
        "-m",
        "pip",
        "install",
        "--disable-pip-version-check",
        "--no-input",
        "--quiet",
        "-r",
    ])
    .arg(&requirements);
    step("interop: pip install -r interop/requirements.txt", pip)?;
    std::fs::write(&stamp, &lock).map_err(|e| format!("{}: {e}", stamp.display()))?;
    Ok(venv_python)
}

struct Check {
    client: String,
    ok: bool,
    name: String,
    detail: String,
}

struct SuiteRun {
    checks: Vec<Check>,
    success: bool,
    /// The suite's standard error, shown when it fails.
    log: String,
}

/// An emulator process, stopped (SIGTERM, then kill) when dropped.
struct Emulator(Child);

impl Drop for Emulator {
    fn drop(&mut self) {
        let pid = self.0.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `cogref emulator` on a free loopback port; returns it and its endpoint.
fn start_emulator(cogref: &Path, token_file: &Path) -> Result<(Emulator, String)> {
    let mut child = Command::new(cogref)
        .args(["emulator", "--port", "0", "--token-file"])
        .arg(token_file)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("could not start {}: {e}", cogref.display()))?;
    let stdout = child.stdout.take();
    let emulator = Emulator(child);
    let Some(stdout) = stdout else {
        return Err("no stdout from the emulator".into());
    };
    let mut lines = BufReader::new(stdout).lines();
    for line in lines.by_ref() {
        let line = line.map_err(|e| format!("reading the emulator's output: {e}"))?;
        if let Some(url) = line.strip_prefix("AWS_ENDPOINT_URL=") {
            // Keep draining: a closed pipe would fail the emulator's next print.
            std::thread::spawn(move || lines.for_each(drop));
            return Ok((emulator, url.to_owned()));
        }
    }
    Err("the emulator exited before printing its endpoint".into())
}

fn run_suite(cogref: &Path, token_file: &Path, mut command: Command) -> Result<SuiteRun> {
    let (_emulator, endpoint) = start_emulator(cogref, token_file)?;
    let mut child = command
        .arg(&endpoint)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("could not start: {e}"))?;
    let stdout = child.stdout.take();
    let stderr = child.stderr.take();
    let err_reader = std::thread::spawn(move || {
        let mut log = String::new();
        if let Some(mut s) = stderr {
            let _ = s.read_to_string(&mut log);
        }
        log
    });
    let (tx, rx) = mpsc::channel();
    let out_reader = std::thread::spawn(move || {
        if let Some(s) = stdout {
            for line in BufReader::new(s).lines().map_while(std::result::Result::ok) {
                let _ = tx.send(line);
            }
        }
    });
    let deadline = Instant::now() + SUITE_LIMIT;
    let mut checks = Vec::new();
    let status = loop {
        while let Ok(line) = rx.try_recv() {
            if let Some(c) = parse_check(&line) {
                checks.push(c);
            }
        }
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() > deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("ran past {} s", SUITE_LIMIT.as_secs()));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(50)),
            Err(e) => return Err(e.to_string()),
        }
    };
    let _ = out_reader.join();
    for line in rx.try_iter() {
        if let Some(c) = parse_check(&line) {
            checks.push(c);
        }
    }
    let log = err_reader.join().unwrap_or_default();
    Ok(SuiteRun {
        checks,
        success: status.success(),
        log,
    })
}

/// `check<TAB>client<TAB>ok|FAIL<TAB>name<TAB>detail`
fn parse_check(line: &str) -> Option<Check> {
    let mut parts = line.strip_prefix("check\t")?.splitn(4, '\t');
    let client = parts.next()?.to_owned();
    let ok = parts.next()? == "ok";
    let name = parts.next()?.to_owned();
    let detail = parts.next().unwrap_or("").to_owned();
    Some(Check {
        client,
        ok,
        name,
        detail,
    })
}

fn print_table(rows: &[Check]) {
    let mut per_client: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
    for c in rows {
        let entry = per_client.entry(c.client.as_str()).or_default();
        entry.1 += 1;
        if c.ok {
            entry.0 += 1;
        }
        let mark = if c.ok { "pass" } else { "FAIL" };
        if c.ok {
            eprintln!("  {mark}  {:<12} {}", c.client, c.name);
        } else {
            eprintln!("  {mark}  {:<12} {}: {}", c.client, c.name, c.detail);
        }
    }
    eprintln!("\n  client        passed / checks");
    for (client, (passed, total)) in per_client {
        eprintln!("  {client:<12}  {passed:>6} / {total}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_lines_are_parsed_and_other_lines_ignored() {
        let c = parse_check("check\tboto3\tok\trefresh\tdetail with spaces").expect("check");
        assert!(
            c.ok && c.client == "boto3" && c.name == "refresh" && c.detail == "detail with spaces"
        );
        assert!(!parse_check("check\tjs\tFAIL\tx\t").expect("check").ok);
        assert!(parse_check("[WARN] something").is_none());
    }
}
