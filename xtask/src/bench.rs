//! `cargo xtask bench`: the comparison with the official SDK (`benches/compare/`).

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use crate::Result;
use crate::deps::normal_tree;
use crate::process::{output_of, root};

/// The comparison's client binaries, by the name the report uses.
const COMPARED: [(&str, &str); 5] = [
    ("raw-reqwest", "min-raw-reqwest"),
    ("aws-sdk", "min-sdk"),
    ("cogref-reqwest", "min-cogref-reqwest"),
    ("cogref-isahc", "min-cogref-isahc"),
    ("cogref-blocking", "min-cogref-blocking"),
];

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
pub(crate) fn bench() -> Result {
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
