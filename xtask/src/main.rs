//! `cargo xtask`: the workspace's chores, in plain Rust so that they run the same everywhere.
//!
//! - `cargo xtask ci`: everything CI checks, in order, stopping at the first failure.
//! - `cargo xtask fuzz [TARGET] [--seconds N]`: run the fuzz targets (all by default).
//! - `cargo xtask core-deps`: check that the core's dependency tree has no I/O stack.
//! - `cargo xtask bench [--runs-only] [--allow-busy] [--idle-as-is]`: the comparison with the official SDK (`benches/compare/`).
//! - `cargo xtask interop`: real AWS clients (AWS CLI, boto3, JS SDK v3, Amplify) against the emulator.
//! - `cargo xtask redis`: a throwaway redis-server for running the fleet-store tests by hand.
//! - `cargo xtask sim [ARGS]`: the deterministic simulator of token sessions (`crates/cogref-sim`).
//!
//! One module per chore: `ci` (the CI sequence), `fuzz`, `deps` (dependency-tree checks),
//! `bench` (with `idle`: how the machine's idle cores wake during it), `citations` (the source's references to docs/protocol.md); what the checks need from the machine lives in `tools` (pinned cargo tools, the
//! nightly toolchain), `redis` and `system` (apt-get: redis-server, valgrind); `process` holds the helpers for running commands.

mod bench;
mod ci;
mod citations;
mod deps;
mod fuzz;
mod idle;
mod interop;
mod process;
mod redis;
mod sim;
mod system;
mod tools;

use std::env;
use std::process::ExitCode;

/// What every chore returns: a failure is one message for the user.
pub(crate) type Result<T = ()> = std::result::Result<T, String>;

fn main() -> ExitCode {
    let args: Vec<String> = env::args().skip(1).collect();
    let outcome = match args.first().map(String::as_str) {
        Some("ci") => ci::ci(),
        Some("fuzz") => fuzz::fuzz_command(&args[1..]),
        Some("core-deps") => deps::core_deps(),
        Some("bench") => bench::bench(&args[1..]),
        Some("interop") => interop::interop(interop::Build::Alone),
        Some("redis") => redis::serve(&env::var_os("PATH").unwrap_or_default()),
        Some("sim") => sim::sim(&args[1..]),
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
  ci                           fmt, clippy, tests, the simulator's CI batch, docs, cargo-deny,
                               core dependency check, wasm check (if the target is
                               installed), short fuzz runs.
                               First installs what is missing: cargo-deny 0.20.2 and
                               cargo-fuzz 0.13.2 (cargo install --locked, into
                               target/xtask-tools), redis-server (apt-get, when root or with
                               passwordless sudo); starts its own redis-server on a free
                               127.0.0.1 port unless COGREF_REDIS_URL is set, and stops it
  fuzz [TARGET] [--seconds N]  run one fuzz target or all of them (default 60 s each)
  interop                      the AWS CLI, boto3, the JS SDK and Amplify against the emulator
  core-deps                    fail if cogref-core's normal dependencies include an I/O stack
  bench [--runs-only] [--allow-busy]
                               compare with the official SDK (benches/compare): clean builds,
                               sizes, crate counts; latency and throughput in interleaved
                               rounds, as ratios to a raw reqwest POST measured in the same
                               rounds; writes docs/benchmarks.md and docs/benchmarks.svg
                               (--runs-only: incremental builds, tables printed, docs untouched);
                               a run on a busy machine fails without writing the docs
                               (--allow-busy: write them anyway)
  redis                        run a throwaway redis-server on a free 127.0.0.1 port and print
                               COGREF_REDIS_URL=…; Enter or Ctrl-D stops it
  sim [--seed S | --seeds N | --ci] …
                               the deterministic simulator of token sessions under faults
                               (crates/cogref-sim): one seed with its trace and replay command,
                               any number of seeds, or the CI batch; --help lists the rest";
