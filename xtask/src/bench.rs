//! `cargo xtask bench`: the comparison with the official SDK (`benches/compare/`).
//!
//! Latency and throughput are measured in interleaved rounds: each round starts a fresh loopback
//! server and one fresh worker process per client, warms them up, and measures; the server on
//! one core and every worker on another. (A worker kept for a whole run keeps its speed for the
//! whole run: the same binary read 0.93 in one run and 1.18 in the next, for every round of
//! each; fresh processes each round turn that into noise the median over the rounds absorbs.)
//! Each round, every client in turn (the order rotated) duels a floor worker of its own,
//! started and warmed with it (shared only by a transport and its library's bare POST):
//! batches of sequential calls and bursts of concurrent ones, floor and client alternately
//! first, a few milliseconds apart. Each duel's figure is the client's over the floor's, so
//! that a machine whose speed drifts (a shared machine can move by 2x within a minute) moves
//! the client and the floor alike; the report gives the median of those ratios over the rounds
//! and their spread. A control (a second worker of the floor's binary) measures what is left of
//! the harness's own bias. Absolute microseconds are for information only.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::ExitStatusExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use crate::Result;
use crate::deps::normal_tree;
use crate::idle::IdlePolling;
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
const COMPARED: [Compared; 8] = [
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
    // A control: a second worker of the floor's own binary, measured like any client. Its
    // ratios should be 1.00; their spread is the harness's noise.
    Compared {
        name: "raw-reqwest (control)",
        package: "min-raw-reqwest",
        clean_build: false,
        versus: None,
    },
];

/// Rounds per answer mode: each gives one ratio per client. With idle vCPUs halting at once,
/// fresh processes each round read with a spread of about ±0.13, and over three runs the
/// median of 33 rounds moved by up to 0.15; with them polling (see `idle.rs`), by at most 0.03
/// for the reqwest clients and raw ureq, and by 0.05 to 0.43 for the clients whose calls fall
/// into two modes (cogref-isahc, raw isahc, cogref-blocking: rounds spread 0.76 to 2.15).
const ROUNDS: usize = 33;
/// Measured pairs of a duel (client and floor, alternately first), after one unmeasured pair.
const PAIRS: usize = 4;
/// Sequential calls of a batch.
const SEQUENTIAL: usize = 100;
/// Concurrent callers of the throughput figure.
const CALLERS: usize = 64;
/// Calls each concurrent caller makes in a burst.
const PER_CALLER: usize = 8;
/// Longest wait for a quiet machine before the rounds start.
const QUIET_WAIT: Duration = Duration::from_secs(20 * 60);
/// The most CPU other processes may take during a mode's rounds for its figures to be
/// published (a share of the whole machine, in percent): 5% of two cores is the size of the
/// effects the targets are about.
const OTHERS_MAX_PERCENT: f64 = 5.0;
/// Rounds of one answer mode rerun, at most, because a baseline's worker was killed by a signal
/// (raw ureq's has died in `pthread_detach`, SIGSEGV, about once in ten runs); the reruns are
/// listed in the report. A cogref worker's death, or any worker's panic, ends the run.
const MAX_RERUNS: usize = 3;
/// Unmeasured sequential calls before each measured batch.
const WAKE_UP: usize = 10;
/// Sequential calls a round's fresh workers make before it measures (connections, allocator,
/// lazy set-up).
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

/// The machine's CPU time so far, in clock ticks: (busy, total), from `/proc/stat`.
fn machine_ticks() -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let fields: Vec<u64> = stat
        .lines()
        .next()?
        .split_whitespace()
        .skip(1)
        .filter_map(|f| f.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal …
    let idle = fields.get(3)? + fields.get(4)?;
    let total: u64 = fields.iter().take(8).sum();
    Some((total - idle, total))
}

/// CPU time a process (all its threads) has used, in clock ticks, from `/proc/PID/stat`.
fn process_ticks(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            // The command name may hold spaces; the fields after it are plain.
            let after = stat.rsplit_once(')')?.1;
            let f: Vec<&str> = after.split_whitespace().collect();
            Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
        })
        .unwrap_or(0)
}

/// The machine's CPU used by anything else than `ours` between two readings.
struct OthersCpu {
    machine: (u64, u64),
    ours: u64,
}

impl OthersCpu {
    fn start(ours: &[u32]) -> Option<Self> {
        Some(Self {
            machine: machine_ticks()?,
            ours: ours.iter().map(|&p| process_ticks(p)).sum(),
        })
    }

    /// Ticks other processes used since `start`, and all ticks of the machine since then
    /// (`ours` still running: a process's ticks are read while it lives).
    fn ticks(&self, ours: &[u32]) -> Option<(u64, u64)> {
        let (busy, total) = machine_ticks()?;
        let ours_now: u64 = ours.iter().map(|&p| process_ticks(p)).sum();
        let others = (busy - self.machine.0).saturating_sub(ours_now - self.ours);
        Some((others, total - self.machine.1))
    }
}

/// Waits, up to `QUIET_WAIT`, for a quiet machine: at least 90% of the CPU idle over two
/// consecutive 5-second looks. The rounds measure ratios, but a machine whose other users come
/// and go within a round still blurs them.
fn wait_for_quiet() -> (bool, String) {
    let started = Instant::now();
    loop {
        let idle = || -> Option<f64> {
            let a = machine_ticks()?;
            std::thread::sleep(Duration::from_secs(5));
            let b = machine_ticks()?;
            let total = (b.1 - a.1).max(1);
            Some(100.0 * (total - (b.0 - a.0)) as f64 / total as f64)
        };
        let (Some(first), Some(second)) = (idle(), idle()) else {
            return (false, "unknown (no /proc/stat)".into());
        };
        if first >= 90.0 && second >= 90.0 {
            return (
                true,
                format!("{:.0}% idle before the rounds", first.min(second)),
            );
        }
        if started.elapsed() >= QUIET_WAIT {
            return (
                false,
                format!(
                    "busy: {:.0}% idle before the rounds after waiting {} minutes",
                    first.min(second),
                    QUIET_WAIT.as_secs() / 60
                ),
            );
        }
        eprintln!(
            "    waiting for a quiet machine ({:.0}% idle; up to {} minutes)",
            first.min(second),
            QUIET_WAIT.as_secs() / 60
        );
    }
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
    /// The client's name in the report.
    name: &'static str,
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    /// How it ended, once it has.
    ended: Option<ExitStatus>,
}

impl Worker {
    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn start(
        placement: Placement,
        client: &Compared,
        bin: &Path,
        endpoint: &str,
        mode: &str,
    ) -> Result<Self> {
        let binary = bin.join(client.package);
        let mut command = placement.command(&binary, false);
        command
            .env("BENCH_ENDPOINT", endpoint)
            .env("BENCH_MODE", mode);
        Self::spawn(client.name, command).map_err(|e| format!("{}: {e}", binary.display()))
    }

    /// `command` as the worker of client `name`, talking over its stdin and stdout.
    fn spawn(name: &'static str, mut command: Command) -> Result<Self> {
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .map_err(|e| e.to_string())?;
        let stdin = child.stdin.take().ok_or("worker has no stdin")?;
        let stdout = BufReader::new(child.stdout.take().ok_or("worker has no stdout")?);
        Ok(Self {
            name,
            child,
            stdin,
            stdout,
            ended: None,
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
            // Its stdout closed: it is ending.
            let ended = self.child.wait().map_err(|e| format!("worker: {e}"))?;
            self.ended = Some(ended);
            let how = match ended.signal() {
                Some(signal) => format!("killed by signal {signal}"),
                None => format!("{ended} (see its panic above)"),
            };
            return Err(format!("{}'s worker died on {command:?}: {how}", self.name));
        }
        Ok(line)
    }

    /// Whether a signal killed it, in a library that is not cogref's: a baseline's crash,
    /// which reruns the round (see [`MAX_RERUNS`]) rather than ending the run.
    fn baseline_killed(&self) -> bool {
        !self.name.starts_with("cogref") && self.ended.is_some_and(|e| e.signal().is_some())
    }

    /// A measured batch: a few unmeasured calls first (a worker that sat idle while the
    /// others ran starts cold: parked threads, caches), then `calls` in sequence, sorted.
    fn batch(&mut self, calls: usize) -> Result<Vec<f64>> {
        self.sequential(WAKE_UP)?;
        Ok(sorted(self.sequential(calls)?))
    }

    /// A measured burst, after an unmeasured one that wakes every caller.
    fn burst(&mut self) -> Result<f64> {
        self.concurrent(CALLERS, 1)?;
        self.concurrent(CALLERS, PER_CALLER)
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
    fn start(placement: Placement, binary: &Path, mode: &str) -> Result<(Self, String)> {
        let mut child = placement
            .command(binary, true)
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

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    }
}

/// Where the harness puts its processes: the loopback server on one core, every worker on
/// another, when the machine lets it choose (two cores or more, `taskset` present).
///
/// Unpinned, the scheduler gives each process a home of its own (the server's core or the
/// other one), and keeps it: two workers of the same binary then read 1.00 to 1.23 of each
/// other for a whole run, which is larger than the effects being measured. Pinned, every worker
/// stands where the floor stands.
#[derive(Clone, Copy)]
enum Placement {
    /// The server on the first core this process may use, the workers on the second.
    Pinned { server: usize, workers: usize },
    /// Wherever the scheduler puts them (one core, or no `taskset`).
    Free,
}

impl Placement {
    fn choose() -> Self {
        let allowed = std::fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|status| {
                status
                    .lines()
                    .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
                    .map(cpu_list)
            })
            .unwrap_or_default();
        let (&[server, workers, ..], true) = (allowed.as_slice(), Self::taskset_works(&allowed))
        else {
            return Self::Free;
        };
        Self::Pinned { server, workers }
    }

    /// Whether `taskset` runs and can pin to the first allowed core.
    fn taskset_works(allowed: &[usize]) -> bool {
        allowed.first().is_some_and(|cpu| {
            Command::new("taskset")
                .args(["--cpu-list", &cpu.to_string(), "true"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        })
    }

    /// A command running `binary` on the server's core (`server`) or the workers'.
    fn command(self, binary: &Path, server: bool) -> Command {
        match self {
            Self::Pinned {
                server: s,
                workers: w,
            } => {
                let mut command = Command::new("taskset");
                command
                    .args(["--cpu-list", &if server { s } else { w }.to_string()])
                    .arg(binary);
                command
            }
            Self::Free => Command::new(binary),
        }
    }

    fn describe(self) -> String {
        match self {
            Self::Pinned { server, workers } => format!(
                "loopback server pinned to core {server}, every worker (floor and clients) to core {workers}"
            ),
            Self::Free => {
                "unpinned (one core, or no taskset): the scheduler's placement adds to the noise"
                    .into()
            }
        }
    }
}

/// The CPUs of a list such as `0-3,8,10-11`, in order (an unreadable part is skipped).
fn cpu_list(list: &str) -> Vec<usize> {
    let mut cpus = Vec::new();
    for part in list.trim().split(',') {
        let mut ends = part
            .trim()
            .splitn(2, '-')
            .map(|n| n.trim().parse::<usize>());
        match (ends.next(), ends.next()) {
            (Some(Ok(one)), None) => cpus.push(one),
            (Some(Ok(first)), Some(Ok(last))) if first <= last => cpus.extend(first..=last),
            _ => {}
        }
    }
    cpus
}

/// A duel's figure: the median of the client's measurements over the median of the floor's,
/// taken in pairs that alternate which side goes first, after one unmeasured pair: C F | F C |
/// C F | F C | C F. Each side is measured twice right after its own run and twice right after
/// the other's, so recency favours neither. A floor measured around every client (F A F B F)
/// ran more recently than any client and read 8 to 23% faster than a second worker of its own
/// binary.
fn duel(client: &mut [f64], floor: &mut [f64]) -> f64 {
    median(client) / median(floor)
}

/// Which floor worker each client duels (`None` for the floor itself): one each, but a client
/// and its `versus` share one.
fn floor_slots() -> Vec<Option<usize>> {
    let mut leaders: Vec<usize> = Vec::new();
    let mut slots = vec![None; COMPARED.len()];
    for (i, client) in COMPARED.iter().enumerate().skip(1) {
        // The client this one is the `versus` of, if any, leads their pair.
        let leader = COMPARED
            .iter()
            .position(|c| c.versus == Some(client.name))
            .unwrap_or(i);
        let slot = leaders
            .iter()
            .position(|&l| l == leader)
            .unwrap_or_else(|| {
                leaders.push(leader);
                leaders.len() - 1
            });
        slots[i] = Some(slot);
    }
    slots
}

/// The rounds of one answer mode; result lines for the report.
///
/// Each round, every client in turn (the order rotated each round, reversed every other round)
/// duels its floor worker ([`floor_slots`]): [`PAIRS`] pairs of batches, alternately floor
/// first and client first, after one unmeasured pair; then the same with bursts. The round's
/// ratio is the duel's, and the report takes the median over the rounds.
fn rounds(bin: &Path, mode: &str, placement: Placement, results: &mut String) -> Result<bool> {
    // The floor is COMPARED[0]; the others take turns dueling it, each its own floor worker.
    let others: Vec<usize> = (1..COMPARED.len()).collect();
    let mut pooled: Vec<Vec<f64>> = vec![Vec::new(); COMPARED.len()];
    // Other processes' CPU ticks and all ticks, over the measured parts of the rounds.
    let mut others_cpu: Option<(u64, u64)> = Some((0, 0));
    // Each client duels a floor worker of its own, started, warmed and left idle with it: one
    // floor shared by every duel ran between all of them, warmer than any client it met (the
    // control, the floor's own binary in a client's place, read 0.99 of it in every run). A
    // client and its `versus` share one: compared through their ratios to it, they would
    // otherwise carry two floor processes' speeds (a fresh process keeps its own, ±0.13).
    let floor_slot = floor_slots();
    let floor_count = floor_slot.iter().flatten().max().map_or(0, |&s| s + 1);
    let mut reruns: Vec<String> = Vec::new();
    let mut round = 0;
    while round < ROUNDS {
        let (server, endpoint) = Server::start(placement, &bin.join("loopback"), mode)?;
        let mut floors = Vec::new();
        for _ in 0..floor_count {
            floors.push(Worker::start(
                placement,
                &COMPARED[0],
                bin,
                &endpoint,
                mode,
            )?);
        }
        let mut clients = Vec::new();
        for &i in &others {
            clients.push(Worker::start(
                placement,
                &COMPARED[i],
                bin,
                &endpoint,
                mode,
            )?);
        }
        let ours: Vec<u32> = floors
            .iter()
            .chain(&clients)
            .map(Worker::pid)
            .chain([server.0.id(), std::process::id()])
            .collect();
        let mut order: Vec<usize> = (0..others.len())
            .map(|k| others[(k + round) % others.len()])
            .collect();
        if round % 2 == 1 {
            order.reverse();
        }
        let measured = (|| -> Result<_> {
            for worker in floors.iter_mut().chain(&mut clients) {
                worker.sequential(WARM_UP)?;
                worker.concurrent(CALLERS, 2)?;
            }
            let round_cpu = OthersCpu::start(&ours);
            let mut samples: Vec<Vec<f64>> = vec![Vec::new(); COMPARED.len()];
            let mut rates: Vec<Vec<f64>> = vec![Vec::new(); COMPARED.len()];
            let mut latency_ratio = vec![1.0; COMPARED.len()];
            let mut rate_ratio = vec![1.0; COMPARED.len()];
            for &i in &order {
                let (floor, client) = (
                    &mut floors[floor_slot[i].ok_or("floor")?],
                    &mut clients[i - 1],
                );
                // Latency: batch medians, the unmeasured pair first.
                client.batch(SEQUENTIAL)?;
                floor.batch(SEQUENTIAL)?;
                let (mut c, mut f) = (Vec::new(), Vec::new());
                for pair in 0..PAIRS {
                    let (first, second) = if pair % 2 == 0 {
                        (&mut *floor, &mut *client)
                    } else {
                        (&mut *client, &mut *floor)
                    };
                    let a = first.batch(SEQUENTIAL)?;
                    let b = second.batch(SEQUENTIAL)?;
                    let (fb, cb) = if pair % 2 == 0 { (a, b) } else { (b, a) };
                    f.push(percentile(&fb, 0.5));
                    c.push(percentile(&cb, 0.5));
                    samples[0].extend(fb);
                    samples[i].extend(cb);
                }
                latency_ratio[i] = duel(&mut c, &mut f);
            }
            // Throughput: bursts, likewise, once every client's batches are done (a burst leaves a
            // worker with many pooled connections, which the next batches would run over).
            for &i in &order {
                let (floor, client) = (
                    &mut floors[floor_slot[i].ok_or("floor")?],
                    &mut clients[i - 1],
                );
                client.burst()?;
                floor.burst()?;
                let (mut c, mut f) = (Vec::new(), Vec::new());
                for pair in 0..PAIRS {
                    if pair % 2 == 0 {
                        f.push(floor.burst()?);
                        c.push(client.burst()?);
                    } else {
                        c.push(client.burst()?);
                        f.push(floor.burst()?);
                    }
                }
                rates[i].extend(&c);
                rates[0].extend(&f);
                rate_ratio[i] = duel(&mut c, &mut f);
            }
            Ok((samples, rates, latency_ratio, rate_ratio, round_cpu))
        })();
        let (mut samples, rates, latency_ratio, rate_ratio, round_cpu) = match measured {
            Ok(figures) => figures,
            Err(error) => {
                if reruns.len() < MAX_RERUNS
                    && floors.iter().chain(&clients).any(Worker::baseline_killed)
                {
                    eprintln!("    round {}/{ROUNDS} rerun: {error}", round + 1);
                    reruns.push(format!("round {}: {error}", round + 1));
                    continue;
                }
                return Err(error);
            }
        };
        for (i, client) in COMPARED.iter().enumerate() {
            let round_samples = sorted(std::mem::take(&mut samples[i]));
            // Every burst makes the same number of calls: the round's rate is their harmonic mean.
            let rate = rates[i].len() as f64 / rates[i].iter().map(|r| 1.0 / r).sum::<f64>();
            let (latency_ratio, rate_ratio) = (latency_ratio[i], rate_ratio[i]);
            results.push_str(&format!(
                "SEQ\t{mode}\t{round}\t{}\t{:.2}\t{:.2}\t{latency_ratio:.4}\n",
                client.name,
                percentile(&round_samples, 0.5),
                percentile(&round_samples, 0.99)
            ));
            results.push_str(&format!(
                "CONC\t{mode}\t{round}\t{}\t{rate:.0}\t{rate_ratio:.4}\n",
                client.name
            ));
            pooled[i].extend(round_samples);
        }
        others_cpu = match (others_cpu, round_cpu.and_then(|c| c.ticks(&ours))) {
            (Some((others, all)), Some((round_others, round_all))) => {
                Some((others + round_others, all + round_all))
            }
            _ => None,
        };
        // The round's processes end here; the next round starts its own.
        drop((floors, clients));
        drop(server);
        eprintln!("    round {}/{ROUNDS} (load {})", round + 1, load_average());
        round += 1;
    }
    if !reruns.is_empty() {
        results.push_str(&format!(
            "META\trounds rerun ({mode})\t{}\n",
            reruns.join("; ")
        ));
    }
    let others_percent = others_cpu
        .filter(|&(_, all)| all > 0)
        .map(|(others, all)| 100.0 * others as f64 / all as f64);
    if let Some(percent) = others_percent {
        eprintln!("    other processes used {percent:.1}% of the CPU during the rounds");
        results.push_str(&format!(
            "META\tother processes' CPU during the rounds ({mode})\t{percent:.1}% of the machine\n"
        ));
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
    // Unknown counts as busy: a figure nobody can vouch for is not published.
    Ok(others_percent.is_some_and(|p| p <= OTHERS_MAX_PERCENT))
}

/// Builds the comparison and runs it; see `benches/compare/`. With `--runs-only`, builds
/// incrementally (no clean build, size or crate count) and prints the tables without writing
/// the docs. A run during which the machine was busy (before either mode's rounds, or other
/// processes above [`OTHERS_MAX_PERCENT`] during them) prints its tables, leaves the docs alone
/// and fails, unless `--allow-busy`.
pub(crate) fn bench(args: &[String]) -> Result {
    let mut runs_only = false;
    let mut allow_busy = false;
    let mut idle_as_is = false;
    for arg in args {
        match arg.as_str() {
            "--runs-only" => runs_only = true,
            "--allow-busy" => allow_busy = true,
            "--idle-as-is" => idle_as_is = true,
            _ => return Err(format!("bench: unexpected argument {arg:?}")),
        }
    }
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
        "META\tmethod\t{ROUNDS} rounds per answer, each on a fresh loopback server and fresh workers ({WARM_UP} warm-up calls and a burst each), each client in turn (rotated order, reversed every other round) dueling a floor worker of its own (shared by a transport and its library's bare POST): {PAIRS} pairs of batches, floor and client alternately first, after one unmeasured pair; then, every client's batches done, {PAIRS} pairs of bursts likewise; per batch {SEQUENTIAL} sequential calls after {WAKE_UP} unmeasured ones, per burst {CALLERS} concurrent callers x {PER_CALLER} calls after one unmeasured call each\n"
    ));
    for client in &COMPARED {
        results.push_str(&format!(
            "CLIENT\t{}\t{}\n",
            client.name,
            client.versus.unwrap_or("-")
        ));
    }

    let mut built = std::collections::BTreeSet::new();
    for client in &COMPARED {
        let package = client.package;
        if !built.insert(package) {
            continue; // the control runs the floor's binary
        }
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

    let placement = Placement::choose();
    results.push_str(&format!("META\tplacement\t{}\n", placement.describe()));
    eprintln!("==> placement: {}", placement.describe());
    // Restores the machine's idle setting when dropped, at the end or on any error below.
    let (_idle, idle) = IdlePolling::start(idle_as_is);
    results.push_str(&format!("META\tidle cores\t{idle}\n"));
    let load_before = load_average();
    let mut busy = Vec::new();
    for mode in ["ok", "error"] {
        // Looked at before each mode: a machine quiet for the first can be busy for the second.
        let (quiet, text) = wait_for_quiet();
        eprintln!("==> {mode}: {text}");
        results.push_str(&format!("META\tquiet check ({mode})\t{text}\n"));
        let calm = rounds(&bin, mode, placement, &mut results)?;
        if !quiet || !calm {
            busy.push(mode);
        }
    }
    // Figures from a busy machine are printed but never written to the docs.
    let publish = !runs_only && (busy.is_empty() || allow_busy);
    results.push_str(&format!(
        "META\tload average (1 min)\t{load_before} before the rounds, {} after\n",
        load_average()
    ));
    let tsv = target.join("results.tsv");
    std::fs::write(&tsv, &results).map_err(|e| format!("{}: {e}", tsv.display()))?;
    let mut report = Command::new(bin.join("report"));
    report.arg(&tsv);
    if publish {
        report.arg(root().join("docs"));
    }
    let status = report.status().map_err(|e| format!("report: {e}"))?;
    if !status.success() {
        return Err("the report failed".into());
    }
    let seconds = started.elapsed().as_secs_f64();
    if publish {
        eprintln!(
            "\nxtask bench: wrote docs/benchmarks.md and docs/benchmarks.svg in {seconds:.0}s"
        );
    } else if runs_only {
        eprintln!("\nxtask bench: tables above (docs untouched: --runs-only) in {seconds:.0}s");
    }
    if !busy.is_empty() && !allow_busy {
        return Err(format!(
            "the machine was busy during the {} rounds (a quiet check failed, or other \
             processes took more than {OTHERS_MAX_PERCENT}% of the CPU): the tables above are \
             not evidence and the docs were left as they were; run again on a quiet machine, \
             or pass --allow-busy to accept them",
            busy.join(" and ")
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{COMPARED, Worker, cpu_list, floor_slots};

    /// A worker of client `name` that answers nothing and ends as `script` makes it.
    fn ending(name: &'static str, script: &str) -> Worker {
        let mut command = std::process::Command::new("sh");
        command.args(["-c", script]);
        Worker::spawn(name, command).expect("sh starts")
    }

    #[test]
    fn only_a_baselines_worker_killed_by_a_signal_reruns_its_round() {
        let mut crashed = ending("raw-ureq", "read line; kill -SEGV $$");
        let error = crashed.ask("conc 64 8").expect_err("it died");
        assert!(error.contains("raw-ureq's worker died"), "{error}");
        assert!(error.contains("signal 11"), "{error}");
        assert!(crashed.baseline_killed());

        let mut ours = ending("cogref-blocking", "read line; kill -SEGV $$");
        assert!(ours.ask("conc 64 8").is_err());
        assert!(!ours.baseline_killed(), "cogref's crash ends the run");

        // A failed check panics: exit status 101, no signal.
        let mut panicked = ending("raw-ureq", "read line; exit 101");
        let error = panicked.ask("seq 10").expect_err("it died");
        assert!(error.contains("see its panic above"), "{error}");
        assert!(!panicked.baseline_killed(), "a wrong answer ends the run");

        let mut alive = ending("raw-ureq", "read line; echo 1 2; read line");
        assert!(alive.ask("seq 1").is_ok());
        assert!(!alive.baseline_killed());
    }

    #[test]
    fn every_client_duels_a_floor_of_its_own_but_shares_it_with_its_versus() {
        let slots = floor_slots();
        let slot = |name: &str| {
            let i = COMPARED.iter().position(|c| c.name == name);
            i.and_then(|i| slots[i])
        };
        assert_eq!(slots[0], None, "the floor duels no floor");
        for client in &COMPARED[1..] {
            assert!(slot(client.name).is_some(), "{}", client.name);
            if let Some(versus) = client.versus {
                assert_eq!(slot(client.name), slot(versus), "{}", client.name);
            }
        }
        // Anyone else's is their own: as many floors as clients less one per pair.
        let pairs = COMPARED.iter().filter(|c| c.versus.is_some()).count();
        let mut distinct: Vec<usize> = slots.iter().flatten().copied().collect();
        distinct.sort_unstable();
        distinct.dedup();
        assert_eq!(distinct.len(), COMPARED.len() - 1 - pairs);
        assert_ne!(slot("cogref-reqwest"), slot("raw-reqwest (control)"));
    }

    #[test]
    fn a_cpu_list_reads_ranges_and_single_cores_in_order() {
        assert_eq!(cpu_list("0-1\n"), vec![0, 1]);
        assert_eq!(cpu_list("2-3,8,10-11"), vec![2, 3, 8, 10, 11]);
        assert_eq!(cpu_list("5"), vec![5]);
        assert_eq!(cpu_list("x,3-1,4"), vec![4]);
    }
}
