//! `cargo xtask bench`: the comparison with the official SDK (`benches/compare/`).
//!
//! Latency and throughput are measured in interleaved rounds: one worker process per client
//! stays up (warm connections, warm allocator) and the harness asks each in turn, the order
//! rotated every round, for a batch of sequential calls and a burst of concurrent ones. The
//! report divides each client's figure by the floor's of the same round, so that a machine
//! whose speed drifts between rounds (a shared machine can move by 2x within a minute) moves
//! the client and the floor alike; it gives the median of those ratios and their spread.
//! Absolute microseconds are printed for information only.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::Instant;

use crate::Result;
use crate::deps::normal_tree;
use crate::process::{output_of, root};

/// One client of the comparison.
struct Compared {
    /// The name in the report.
    name: &'static str,
    /// Its binary in `benches/compare/`.
    package: &'static str,
    /// Built from an empty target directory, timed, sized and counted (the clients users pick
    /// between); the other binaries are baselines only.
    clean_build: bool,
    /// The client it is also compared with, in the same rounds: a transport's own library's
    /// bare POST.
    versus: Option<&'static str>,
}

/// The clients, the floor first.
///
/// The object-safe transport (`dyn` client) of the lifecycle work gets its row here once it is
/// merged: a `min-cogref-reqwest-dyn` binary built like `min-cogref-reqwest` but calling
/// through the `dyn` transport, `versus: Some("cogref-reqwest")` (its target is 1.02x the
/// static client, in the report's "vs own" column).
const COMPARED: [Compared; 7] = [
    Compared {
        name: "raw-reqwest",
        package: "min-raw-reqwest",
        clean_build: true,
        versus: None,
    },
    Compared {
        name: "aws-sdk",
        package: "min-sdk",
        clean_build: true,
        versus: None,
    },
    Compared {
        name: "cogref-reqwest",
        package: "min-cogref-reqwest",
        clean_build: true,
        versus: None,
    },
    Compared {
        name: "cogref-isahc",
        package: "min-cogref-isahc",
        clean_build: true,
        versus: Some("raw-isahc"),
    },
    Compared {
        name: "cogref-blocking",
        package: "min-cogref-blocking",
        clean_build: true,
        versus: Some("raw-ureq"),
    },
    Compared {
        name: "raw-isahc",
        package: "min-raw-isahc",
        clean_build: false,
        versus: None,
    },
    Compared {
        name: "raw-ureq",
        package: "min-raw-ureq",
        clean_build: false,
        versus: None,
    },
];

/// Rounds per answer mode: each gives one ratio per client.
const ROUNDS: usize = 7;
/// Passes per round: the clients take turns this many times within a round (forward, then
/// backward), so that a round's figures of every client cover the same stretch of time.
const PASSES: usize = 4;
/// Sequential calls each client makes per pass.
const SEQUENTIAL: usize = 100;
/// Concurrent callers of the throughput figure.
const CALLERS: usize = 64;
/// Calls each concurrent caller makes per pass.
const PER_CALLER: usize = 8;
/// Sequential calls before the first round (connections, allocator, lazy set-up).
const WARM_UP: usize = 300;

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

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| "?".into())
}

fn cargo_build(manifest: &Path, packages: &[&str], target: Option<&Path>) -> Result {
    let mut command = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    command
        .args(["build", "--release", "--quiet", "--manifest-path"])
        .arg(manifest);
    for package in packages {
        command.args(["-p", package]);
    }
    if let Some(target) = target {
        command.env("CARGO_TARGET_DIR", target);
    }
    let status = command.status().map_err(|e| format!("cargo build: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("building {packages:?} failed"))
    }
}

fn copy_binary(from: &Path, bin: &Path, package: &str) -> Result {
    std::fs::copy(from.join("release").join(package), bin.join(package))
        .map(drop)
        .map_err(|e| format!("{package} binary: {e}"))
}

/// A client's worker process; see `benches/compare/common`.
struct Worker {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl Worker {
    fn start(binary: &Path, endpoint: &str, mode: &str) -> Result<Self> {
        let mut child = Command::new(binary)
            .env("BENCH_ENDPOINT", endpoint)
            .env("BENCH_MODE", mode)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .map_err(|e| format!("{}: {e}", binary.display()))?;
        let stdin = child.stdin.take().ok_or("worker has no stdin")?;
        let stdout = BufReader::new(child.stdout.take().ok_or("worker has no stdout")?);
        Ok(Self {
            child,
            stdin,
            stdout,
        })
    }

    fn ask(&mut self, command: &str) -> Result<String> {
        writeln!(self.stdin, "{command}")
            .and_then(|()| self.stdin.flush())
            .map_err(|e| format!("worker stdin: {e}"))?;
        let mut line = String::new();
        self.stdout
            .read_line(&mut line)
            .map_err(|e| format!("worker stdout: {e}"))?;
        if line.is_empty() {
            return Err(format!(
                "a worker died on {command:?} (see its panic above)"
            ));
        }
        Ok(line)
    }

    /// Sequential calls: each call's microseconds.
    fn sequential(&mut self, calls: usize) -> Result<Vec<f64>> {
        let line = self.ask(&format!("seq {calls}"))?;
        let mut words = line.split_whitespace();
        if words.next() != Some("SEQ") {
            return Err(format!("unexpected answer {line:?}"));
        }
        words
            .map(|w| {
                w.parse::<f64>()
                    .map(|ns| ns / 1e3)
                    .map_err(|e| format!("{w:?}: {e}"))
            })
            .collect()
    }

    /// Concurrent calls: calls per second.
    fn concurrent(&mut self, callers: usize, per_caller: usize) -> Result<f64> {
        let line = self.ask(&format!("conc {callers} {per_caller}"))?;
        match line.split_whitespace().collect::<Vec<_>>().as_slice() {
            ["CONC", calls, ns] => {
                let calls: f64 = calls.parse().map_err(|e| format!("{calls:?}: {e}"))?;
                let ns: f64 = ns.parse().map_err(|e| format!("{ns:?}: {e}"))?;
                Ok(calls / (ns / 1e9))
            }
            _ => Err(format!("unexpected answer {line:?}")),
        }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        // A worker exits when its stdin closes; one that hangs is killed.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The loopback server, killed on drop.
struct Server(Child);

impl Server {
    fn start(binary: &Path, mode: &str) -> Result<(Self, String)> {
        let mut child = Command::new(binary)
            .arg(mode)
            .stdout(Stdio::piped())
            .spawn()
            .map_err(|e| format!("loopback: {e}"))?;
        let stdout = child.stdout.take().ok_or("loopback has no stdout")?;
        let server = Self(child);
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .map_err(|e| format!("loopback: {e}"))?;
        let port = line
            .trim()
            .strip_prefix("PORT ")
            .ok_or_else(|| format!("loopback said {line:?}"))?
            .to_owned();
        Ok((server, format!("http://127.0.0.1:{port}")))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn sorted(mut samples: Vec<f64>) -> Vec<f64> {
    samples.sort_by(f64::total_cmp);
    samples
}

/// The rounds of one answer mode; result lines for the report.
fn rounds(bin: &Path, mode: &str, results: &mut String) -> Result {
    let (_server, endpoint) = Server::start(&bin.join("loopback"), mode)?;
    let mut workers = Vec::new();
    for client in &COMPARED {
        workers.push(Worker::start(&bin.join(client.package), &endpoint, mode)?);
    }
    eprintln!("==> {mode} answers: warm-up");
    for worker in &mut workers {
        worker.sequential(WARM_UP)?;
        worker.concurrent(CALLERS, 2)?;
    }
    let mut pooled: Vec<Vec<f64>> = vec![Vec::new(); COMPARED.len()];
    for round in 0..ROUNDS {
        let rotated: Vec<usize> = (0..COMPARED.len())
            .map(|i| (i + round) % COMPARED.len())
            .collect();
        let mut samples: Vec<Vec<f64>> = vec![Vec::new(); COMPARED.len()];
        let mut rates: Vec<Vec<f64>> = vec![Vec::new(); COMPARED.len()];
        for pass in 0..PASSES {
            // Forward, backward, forward…: a steady drift within the round favours no one.
            let order: Vec<usize> = if pass % 2 == 0 {
                rotated.clone()
            } else {
                rotated.iter().rev().copied().collect()
            };
            for &i in &order {
                samples[i].extend(workers[i].sequential(SEQUENTIAL)?);
            }
            for &i in &order {
                rates[i].push(workers[i].concurrent(CALLERS, PER_CALLER)?);
            }
        }
        for (i, client) in COMPARED.iter().enumerate() {
            let round_samples = sorted(std::mem::take(&mut samples[i]));
            // Every pass makes the same number of calls: the round's rate is their harmonic mean.
            let rate = rates[i].len() as f64 / rates[i].iter().map(|r| 1.0 / r).sum::<f64>();
            results.push_str(&format!(
                "SEQ\t{mode}\t{round}\t{}\t{:.2}\t{:.2}\n",
                client.name,
                percentile(&round_samples, 0.5),
                percentile(&round_samples, 0.99)
            ));
            results.push_str(&format!(
                "CONC\t{mode}\t{round}\t{}\t{rate:.0}\n",
                client.name
            ));
            pooled[i].extend(round_samples);
        }
        eprintln!("    round {}/{ROUNDS} (load {})", round + 1, load_average());
    }
    for (client, samples) in COMPARED.iter().zip(pooled) {
        let samples = sorted(samples);
        results.push_str(&format!(
            "POOLED\t{mode}\t{}\t{:.2}\t{:.2}\n",
            client.name,
            percentile(&samples, 0.5),
            percentile(&samples, 0.99)
        ));
    }
    Ok(())
}

/// Builds the comparison and runs it; see `benches/compare/`. With `--runs-only`, builds
/// incrementally (no clean build, size or crate count) and prints the tables without writing
/// the docs.
pub(crate) fn bench(args: &[String]) -> Result {
    let runs_only = match args {
        [] => false,
        [flag] if flag == "--runs-only" => true,
        _ => return Err(format!("bench: unexpected arguments {args:?}")),
    };
    let started = Instant::now();
    let compare = root().join("benches").join("compare");
    let manifest = compare.join("Cargo.toml");
    let target = compare.join("target");
    let bin: PathBuf = target.join("bench-bin");
    std::fs::create_dir_all(&bin).map_err(|e| format!("{}: {e}", bin.display()))?;
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
    results.push_str(&format!(
        "META\tmethod\t{ROUNDS} rounds per answer, each of {PASSES} passes over the clients (rotated order, alternating direction); per pass and client {SEQUENTIAL} sequential calls and {CALLERS} concurrent callers x {PER_CALLER} calls; {WARM_UP} warm-up calls first\n"
    ));
    for client in &COMPARED {
        results.push_str(&format!(
            "CLIENT\t{}\t{}\n",
            client.name,
            client.versus.unwrap_or("-")
        ));
    }

    for client in &COMPARED {
        let package = client.package;
        if runs_only || !client.clean_build {
            eprintln!("==> release build of {package}");
            cargo_build(&manifest, &[package], None)?;
            copy_binary(&target, &bin, package)?;
            continue;
        }
        // A clean release build in an empty target directory, timed; removed once measured
        // (this machine's disk is small).
        let clean = target.join("clean").join(package);
        let _ = std::fs::remove_dir_all(&clean);
        eprintln!("\n==> clean release build of {package}");
        let began = Instant::now();
        cargo_build(&manifest, &[package], Some(&clean))?;
        let seconds = began.elapsed().as_secs_f64();
        copy_binary(&clean, &bin, package)?;
        let _ = std::fs::remove_dir_all(&clean);
        let bytes = std::fs::metadata(bin.join(package))
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
            "BUILD\t{}\t{seconds:.1}\t{bytes}\t{count}\n",
            client.name
        ));
    }
    cargo_build(&manifest, &["loopback", "report"], None)?;
    copy_binary(&target, &bin, "loopback")?;
    copy_binary(&target, &bin, "report")?;

    let load_before = load_average();
    for mode in ["ok", "error"] {
        rounds(&bin, mode, &mut results)?;
    }
    results.push_str(&format!(
        "META\tload average (1 min)\t{load_before} before the rounds, {} after\n",
        load_average()
    ));
    let tsv = target.join("results.tsv");
    std::fs::write(&tsv, &results).map_err(|e| format!("{}: {e}", tsv.display()))?;
    let mut report = Command::new(bin.join("report"));
    report.arg(&tsv);
    if !runs_only {
        report.arg(root().join("docs"));
    }
    let status = report.status().map_err(|e| format!("report: {e}"))?;
    if !status.success() {
        return Err("the report failed".into());
    }
    eprintln!(
        "\nxtask bench: {} in {:.0}s",
        if runs_only {
            "tables above (docs untouched: --runs-only)"
        } else {
            "wrote docs/benchmarks.md and docs/benchmarks.svg"
        },
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
