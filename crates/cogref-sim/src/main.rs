//! `cogref-sim`: runs the deterministic simulation (`cargo xtask sim` builds and runs it).
#![forbid(unsafe_code)]
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::collections::BTreeSet;
use std::process::ExitCode;
use std::time::Instant;

use cogref_sim::config::Mutant;
use cogref_sim::run::{Report, batch, parse_number, regressions, run_seed, shrink};

const USAGE: &str = "usage: cargo xtask sim [--seed S [--faults LIST|none] [--trace] | --seeds N [--start S] [--all] | --ci] [--mutant M] [--threads N]

  --seed S       run one seed (decimal or 0x…) and say what it did; a failing run prints the
                 command that replays it and shrinks its faults to a minimal set
  --faults LIST  with --seed: enable only these faults (numbers as the run prints them)
  --trace        with --seed: print the run's trace (every step, every log line)
  --seeds N      run seeds START..START+N on every core (START: --start, default 0); stops
                 after 20 failing seeds unless --all
  --ci           the CI batch: the regression seeds (regressions.txt), seeds 0..CI_SEEDS, then
                 each mutant, which must be caught within those seeds
  --mutant M     run with a mutant of the library's surroundings: the store's lock always
                 granted (no-lock), its save ignoring the version (no-version), a refresh task
                 dropped with the caller that started it (attached), the transport logging
                 request bodies (leaky-transport), Cognito telling its third grant's set half
                 its lifetime (short-expires-in), the coarse clocks two seconds behind, 1.9 s
                 past their stated lag (coarse-stall); the run should fail
  --threads N    threads for --seeds and --ci (default: every core)";

/// The CI batch: seeds 0..CI_SEEDS (about a minute on two cores).
const CI_SEEDS: u64 = 16_000;

struct Args {
    seed: Option<u64>,
    seeds: Option<u64>,
    start: u64,
    ci: bool,
    mutant: Option<Mutant>,
    only: Option<BTreeSet<u32>>,
    trace: bool,
    all: bool,
    threads: usize,
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
            "--seed" => a.seed = Some(parse_number(&value()?).ok_or("--seed: a number")?),
            "--seeds" => a.seeds = Some(parse_number(&value()?).ok_or("--seeds: a number")?),
            "--start" => a.start = parse_number(&value()?).ok_or("--start: a number")?,
            "--threads" => {
                a.threads = parse_number(&value()?).ok_or("--threads: a number")?.max(1) as usize
            }
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

fn main() -> ExitCode {
    let a = match args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    if let Some(seed) = a.seed {
        return one(seed, &a);
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
            if n.is_multiple_of(100_000) {
                eprintln!(
                    "  {n}/{total} seeds, {:.0} runs/s",
                    n as f64 / started.elapsed().as_secs_f64()
                );
            }
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

fn one(seed: u64, a: &Args) -> ExitCode {
    let report = run_seed(seed, a.mutant, a.only.clone(), a.trace);
    for line in &report.trace {
        println!("{line}");
    }
    for (n, at, what) in &report.faults {
        println!("fault {n} at {:.6} s: {what}", *at as f64 / 1e6);
    }
    let expected = a.mutant.is_some();
    if report.failed() {
        report_failure(&report, a.only.is_none());
    } else {
        println!("ok {}", report.describe());
    }
    if report.failed() == expected {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn ci(threads: usize) -> ExitCode {
    let started = Instant::now();
    let mut ok = true;
    for r in regressions() {
        let report = run_seed(r.seed, r.mutant, r.only.clone(), false);
        if report.failed() == r.mutant.is_some() {
            println!("regression {}: ok ({})", r.name, report.replay_command());
        } else {
            println!("regression {} fails again:", r.name);
            report_failure(&report, false);
            ok = false;
        }
    }
    let (failures, runs) = batch(0, CI_SEEDS, None, threads, 5, |_, _| {});
    let secs = started.elapsed().as_secs_f64();
    println!(
        "{runs} seeds in {secs:.1} s ({:.0} runs/s on {threads} threads): {} failing",
        runs as f64 / secs,
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
                "mutant {}: caught by seed {:#x} ({runs} runs, {:.1} s): invariant {}: {}",
                mutant.name(),
                r.seed,
                t.elapsed().as_secs_f64(),
                r.violations.first().map_or("?", |v| v.invariant),
                r.violations.first().map_or("", |v| v.detail.as_str()),
            ),
            None => {
                println!(
                    "mutant {}: NOT caught by seeds 0..{CI_SEEDS}",
                    mutant.name()
                );
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
