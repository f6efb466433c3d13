//! `cogref-sim`: runs the deterministic simulation (`cargo xtask sim` builds and runs it).
#![forbid(unsafe_code)]
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::collections::BTreeSet;
use std::process::ExitCode;
use std::time::Instant;

use cogref_sim::config::Mutant;
use cogref_sim::run::{Report, batch, run_seed, shrink};

const USAGE: &str = "usage: cogref-sim [--seed S | --seeds N [--start S] | --ci] [--mutant no-lock|no-version|attached] [--faults LIST|none] [--trace] [--threads N]

  --seed S       run one seed (decimal or 0x…), print what it did; --trace prints its trace
  --seeds N      run seeds START..START+N on every core (START: --start, default 0)
  --ci           the CI batch: the regression seeds, CI_SEEDS seeds, then each mutant, which
                 must be caught within the same seeds
  --mutant M     run with a mutant of the surroundings (the run is expected to fail)
  --faults LIST  with --seed: enable only these fault numbers (as printed by the shrinker)";

/// The CI batch: seeds 0..CI_SEEDS.
const CI_SEEDS: u64 = 4_000;

/// Named seeds that once found a bug; every CI run replays them.
const REGRESSIONS: &str = include_str!("../regressions.txt");

fn parse_u64(s: &str) -> Option<u64> {
    match s.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => s.parse().ok(),
    }
}

struct Args {
    seed: Option<u64>,
    seeds: Option<u64>,
    start: u64,
    ci: bool,
    mutant: Option<Mutant>,
    only: Option<BTreeSet<u32>>,
    trace: bool,
    threads: usize,
    all: bool,
}

fn args() -> Result<Args, String> {
    let mut a = Args {
        seed: None,
        seeds: None,
        start: 0,
        ci: false,
        mutant: None,
        only: None,
        trace: false,
        all: false,
        threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = || it.next().ok_or(format!("{arg} takes a value"));
        match arg.as_str() {
            "--seed" => a.seed = Some(parse_u64(&value()?).ok_or("--seed: a number")?),
            "--seeds" => a.seeds = Some(parse_u64(&value()?).ok_or("--seeds: a number")?),
            "--start" => a.start = parse_u64(&value()?).ok_or("--start: a number")?,
            "--threads" => a.threads = parse_u64(&value()?).ok_or("--threads: a number")? as usize,
            "--ci" => a.ci = true,
            "--trace" => a.trace = true,
            "--all" => a.all = true,
            "--mutant" => {
                let name = value()?;
                a.mutant = Some(Mutant::parse(&name).ok_or(format!("unknown mutant {name}"))?);
            }
            "--faults" => {
                let list = value()?;
                a.only = Some(if list == "none" {
                    BTreeSet::new()
                } else {
                    list.split(',')
                        .map(|n| {
                            n.trim()
                                .parse::<u32>()
                                .map_err(|_| format!("bad fault {n}"))
                        })
                        .collect::<Result<_, _>>()?
                });
            }
            "-h" | "--help" => return Err(USAGE.into()),
            other => return Err(format!("unknown argument {other}\n\n{USAGE}")),
        }
    }
    Ok(a)
}

fn report_failure(report: &Report, shrink_it: bool) {
    println!("FAIL {}", report.describe());
    println!("  replay: {}", report.replay_command());
    if shrink_it && !report.faults.is_empty() {
        let small = shrink(report, 150);
        println!(
            "  shrunk to {} fault(s) (from {}): {}",
            small.only.as_ref().map_or(0, |s| s.len()),
            report.faults.len(),
            small.replay_command()
        );
        for (n, at, what) in &small.faults {
            println!("    fault {n} at {:.6} s: {what}", *at as f64 / 1e6);
        }
        if let Some(v) = small.violations.first() {
            println!("    then invariant {}: {}", v.invariant, v.detail);
        }
    }
}

fn regressions() -> Vec<(String, u64, Option<Mutant>, Option<BTreeSet<u32>>)> {
    REGRESSIONS
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|line| {
            let mut parts = line.split_whitespace();
            let name = parts.next()?.to_owned();
            let seed = parse_u64(parts.next()?)?;
            let mut mutant = None;
            let mut only = None;
            for part in parts {
                if let Some(m) = part.strip_prefix("mutant=") {
                    mutant = Mutant::parse(m);
                } else if let Some(f) = part.strip_prefix("faults=") {
                    only = Some(if f == "none" {
                        BTreeSet::new()
                    } else {
                        f.split(',').filter_map(|n| n.parse().ok()).collect()
                    });
                }
            }
            Some((name, seed, mutant, only))
        })
        .collect()
}

fn main() -> ExitCode {
    let a = match args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    if let Some(seed) = a.seed {
        let report = run_seed(seed, a.mutant, a.only.clone(), a.trace);
        for line in &report.trace {
            println!("{line}");
        }
        for (n, at, what) in &report.faults {
            println!("fault {n} at {:.6} s: {what}", *at as f64 / 1e6);
        }
        if report.failed() {
            report_failure(&report, a.only.is_none());
            return if a.mutant.is_some() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            };
        }
        println!("ok {}", report.describe());
        return if a.mutant.is_some() {
            ExitCode::FAILURE
        } else {
            ExitCode::SUCCESS
        };
    }
    if a.ci {
        return ci(a.threads);
    }
    let count = a.seeds.unwrap_or(1000);
    let started = Instant::now();
    let stop_after = match (a.all, a.mutant) {
        (true, _) => usize::MAX,
        (false, Some(_)) => 1,
        (false, None) => 20,
    };
    let (failures, runs) = batch(
        a.start,
        count,
        a.mutant,
        a.threads,
        stop_after,
        |n, total| {
            eprintln!(
                "  {n}/{total} seeds, {:.0} runs/s",
                n as f64 / started.elapsed().as_secs_f64()
            );
        },
    );
    let secs = started.elapsed().as_secs_f64();
    println!(
        "{runs} seeds from {:#x} in {secs:.1} s ({:.0} runs/s on {} threads): {} failing",
        a.start,
        runs as f64 / secs,
        a.threads,
        failures.len()
    );
    for (i, f) in failures.iter().enumerate() {
        if i < 5 {
            report_failure(f, i == 0);
        } else if let Some(v) = f.violations.first() {
            println!(
                "FAIL seed {:#x}: invariant {}: {}",
                f.seed, v.invariant, v.detail
            );
        }
    }
    match (a.mutant, failures.is_empty()) {
        (None, true) | (Some(_), false) => ExitCode::SUCCESS,
        _ => ExitCode::FAILURE,
    }
}

fn ci(threads: usize) -> ExitCode {
    let started = Instant::now();
    let mut ok = true;
    for (name, seed, mutant, only) in regressions() {
        let report = run_seed(seed, mutant, only, false);
        if report.failed() {
            println!("regression {name} fails again:");
            report_failure(&report, false);
            ok = false;
        } else {
            println!("regression {name} ({}): ok", report.replay_command());
        }
    }
    let (failures, runs) = batch(0, CI_SEEDS, None, threads, 5, |_, _| {});
    println!(
        "{runs} seeds in {:.1} s: {} failing",
        started.elapsed().as_secs_f64(),
        failures.len()
    );
    for (i, f) in failures.iter().enumerate() {
        report_failure(f, i == 0);
        ok = false;
    }
    for mutant in Mutant::ALL {
        let t = Instant::now();
        let (caught, runs) = batch(0, CI_SEEDS, Some(mutant), threads, 1, |_, _| {});
        match caught.first() {
            Some(r) => println!(
                "mutant {}: caught at seed {:#x} after {runs} runs ({:.1} s): invariant {}",
                mutant.name(),
                r.seed,
                t.elapsed().as_secs_f64(),
                r.violations.first().map_or("?", |v| v.invariant)
            ),
            None => {
                println!("mutant {}: NOT caught by {CI_SEEDS} seeds", mutant.name());
                ok = false;
            }
        }
    }
    println!("sim ci: {:.1} s", started.elapsed().as_secs_f64());
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
