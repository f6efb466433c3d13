//! `report RESULTS.tsv [DOCS_DIR]`: prints the comparison's tables and, given `DOCS_DIR`,
//! writes them to `benchmarks.md` with a chart, `benchmarks.svg`.
//!
//! Input lines, tab-separated:
//! - `META key value`
//! - `CLIENT client versus` (`versus`: the client it is also compared with, or `-`)
//! - `SEQ mode round client median_us p99_us ratio` (one round's sequential calls; `ratio`: the
//!   round's median latency ratio to the floor measured around the client)
//! - `CONC mode round client calls_per_s ratio` (one round's concurrent calls, likewise)
//! - `POOLED mode client median_us p99_us` (every round's sequential calls together)
//! - `BUILD client seconds bytes crates`
//!
//! Every ratio is taken within a round (client and floor measured moments apart) and the median
//! over the rounds is reported with the spread (lowest–highest): a machine whose speed drifts
//! moves both sides of a ratio alike. Two clients are compared through their ratios to the floor
//! of the same round. The control (the floor's binary measured in a client's place) is the
//! harness's check: its ratios should read 1.00. Absolute figures are for information only.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use plotters::prelude::*;

const FLOOR: &str = "raw-reqwest";
/// The floor's own binary as a second worker, measured exactly as the clients are: how far
/// from 1.00 the harness itself puts a client that does exactly what the floor does.
const CONTROL: &str = "raw-reqwest (control)";
const MODES: [(&str, &str); 2] = [
    ("ok", "success (4 KiB body)"),
    ("error", "NotAuthorizedException"),
];

/// What one client did in one answer mode.
#[derive(Default, Clone)]
struct Runs {
    /// Round → median latency over the floor's (measured around it).
    latency_ratio: BTreeMap<u32, f64>,
    /// Round → calls per second with the concurrent callers.
    throughput: BTreeMap<u32, f64>,
    /// Round → calls per second over the floor's (measured around it).
    throughput_ratio: BTreeMap<u32, f64>,
    /// Median and p99 of every round's calls together.
    pooled: (f64, f64),
}

#[derive(Default, Clone, Copy)]
struct Build {
    seconds: f64,
    bytes: f64,
    crates: f64,
}

/// A ratio's median over the rounds and its spread.
#[derive(Clone, Copy)]
struct Ratio {
    median: f64,
    low: f64,
    high: f64,
}

impl Ratio {
    fn cell(self) -> String {
        format!("{:.2} ({:.2}–{:.2})", self.median, self.low, self.high)
    }

    /// [`cell`](Self::cell) with the median to three places: a target is checked on the
    /// median itself, and 1.053 printed as 1.05 next to "no" reads as a mistake.
    fn target_cell(self) -> String {
        format!("{:.3} ({:.2}–{:.2})", self.median, self.low, self.high)
    }
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

/// `of[round] / to[round]` over the rounds both have.
fn ratio(of: &BTreeMap<u32, f64>, to: &BTreeMap<u32, f64>) -> Option<Ratio> {
    let mut per_round: Vec<f64> = of
        .iter()
        .filter_map(|(round, v)| to.get(round).map(|base| v / base))
        .collect();
    if per_round.is_empty() {
        return None;
    }
    let median = median(&mut per_round);
    Some(Ratio {
        median,
        low: per_round[0],
        high: per_round[per_round.len() - 1],
    })
}

struct Results {
    meta: BTreeMap<String, String>,
    /// Clients in the harness's order, with the client each is also compared with.
    clients: Vec<(String, Option<String>)>,
    runs: BTreeMap<(String, String), Runs>,
    builds: BTreeMap<String, Build>,
}

impl Results {
    fn runs(&self, client: &str, mode: &str) -> Option<&Runs> {
        self.runs.get(&(client.to_owned(), mode.to_owned()))
    }

    /// `client` against the floor in `mode`.
    fn to_floor(&self, client: &str, mode: &str) -> Option<(Ratio, Ratio)> {
        self.ratios(client, FLOOR, mode)
    }

    /// Median latency of `client` over `base`'s, and throughput, in `mode`.
    fn ratios(&self, client: &str, base: &str, mode: &str) -> Option<(Ratio, Ratio)> {
        let (c, b) = (self.runs(client, mode)?, self.runs(base, mode)?);
        Some((
            ratio(&c.latency_ratio, &b.latency_ratio)?,
            ratio(&c.throughput_ratio, &b.throughput_ratio)?,
        ))
    }
}

fn parse(text: &str) -> Result<Results, Box<dyn std::error::Error>> {
    let mut results = Results {
        meta: BTreeMap::new(),
        clients: Vec::new(),
        runs: BTreeMap::new(),
        builds: BTreeMap::new(),
    };
    for line in text.lines() {
        let f: Vec<&str> = line.split('\t').collect();
        match f.as_slice() {
            ["META", key, value] => {
                results.meta.insert(key.to_string(), value.to_string());
            }
            ["CLIENT", client, versus] => results.clients.push((
                client.to_string(),
                (*versus != "-").then(|| versus.to_string()),
            )),
            ["SEQ", mode, round, client, _median, _p99, ratio] => {
                results
                    .runs
                    .entry((client.to_string(), mode.to_string()))
                    .or_default()
                    .latency_ratio
                    .insert(round.parse()?, ratio.parse()?);
            }
            ["CONC", mode, round, client, rate, ratio] => {
                let runs = results
                    .runs
                    .entry((client.to_string(), mode.to_string()))
                    .or_default();
                let round: u32 = round.parse()?;
                runs.throughput.insert(round, rate.parse()?);
                runs.throughput_ratio.insert(round, ratio.parse()?);
            }
            ["POOLED", mode, client, median, p99] => {
                results
                    .runs
                    .entry((client.to_string(), mode.to_string()))
                    .or_default()
                    .pooled = (median.parse()?, p99.parse()?);
            }
            ["BUILD", client, secs, bytes, crates] => {
                results.builds.insert(
                    client.to_string(),
                    Build {
                        seconds: secs.parse()?,
                        bytes: bytes.parse()?,
                        crates: crates.parse()?,
                    },
                );
            }
            _ => {}
        }
    }
    Ok(results)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let Some(input) = args.next() else {
        return Err("usage: report RESULTS.tsv [DOCS_DIR]".into());
    };
    let results = parse(&std::fs::read_to_string(&input)?)?;
    let tables = tables(&results);
    #[allow(clippy::print_stdout)]
    {
        println!("{tables}");
    }
    if let Some(docs) = args.next() {
        let docs = Path::new(&docs);
        std::fs::create_dir_all(docs)?;
        std::fs::write(docs.join("benchmarks.md"), markdown(&results, &tables))?;
        chart(&docs.join("benchmarks.svg"), &results)?;
    }
    Ok(())
}

/// The latency tables, the comparisons with each library's own POST, and the targets.
fn tables(results: &Results) -> String {
    let mut md = String::new();
    for (mode, title) in MODES {
        if results.runs(FLOOR, mode).is_none() {
            continue;
        }
        let _ = write!(
            md,
            "\n## Per call, {title}\n\n| client | median / floor | calls/s at 64 / floor | median µs | p99 µs | calls/s at 64 |\n|---|---:|---:|---:|---:|---:|\n"
        );
        for (client, _) in &results.clients {
            let (Some(runs), Some((latency, throughput))) =
                (results.runs(client, mode), results.to_floor(client, mode))
            else {
                continue;
            };
            let rate = median(&mut runs.throughput.values().copied().collect::<Vec<_>>());
            let _ = writeln!(
                md,
                "| {client} | {} | {} | {:.1} | {:.1} | {rate:.0} |",
                latency.cell(),
                throughput.cell(),
                runs.pooled.0,
                runs.pooled.1,
            );
        }
    }
    let own: Vec<_> = results
        .clients
        .iter()
        .filter_map(|(c, v)| v.as_ref().map(|v| (c, v)))
        .collect();
    if !own.is_empty() {
        md.push_str("\n## Against the same library's bare POST\n\nThe same rounds; the bare POST sends the same request through the same HTTP library, set up as the transport sets it up, and parses the answer into a `serde_json::Value`.\n\n| client | versus | answer | median / versus | calls/s at 64 / versus |\n|---|---|---|---:|---:|\n");
        for (client, versus) in own {
            for (mode, title) in MODES {
                if let Some((latency, throughput)) = results.ratios(client, versus, mode) {
                    let _ = writeln!(
                        md,
                        "| {client} | {versus} | {title} | {} | {} |",
                        latency.cell(),
                        throughput.cell()
                    );
                }
            }
        }
    }
    md.push_str("\n## Targets\n\nIssue 15's targets, as ratios from these rounds (median to three places, with the spread).\n\n| target | answer | measured | met |\n|---|---|---:|---|\n");
    let mut target = |what: String, mode: &str, measured: Option<Ratio>, ok: fn(f64) -> bool| {
        if let Some(r) = measured {
            let met = if what.starts_with('(') {
                "—"
            } else if ok(r.median) {
                "yes"
            } else {
                "**no**"
            };
            let _ = writeln!(md, "| {what} | {mode} | {} | {met} |", r.target_cell());
        }
    };
    for (mode, _) in MODES {
        // The harness's own check: a second worker of the floor's binary.
        if let Some((latency, throughput)) = results.to_floor(CONTROL, mode) {
            target(
                "harness check: control median within 0.95–1.05 × floor".into(),
                mode,
                Some(latency),
                |v| (0.95..=1.05).contains(&v),
            );
            target(
                "harness check: control calls/s within 0.95–1.05 × floor".into(),
                mode,
                Some(throughput),
                |v| (0.95..=1.05).contains(&v),
            );
        }
        let r = |client: &str, base: &str| {
            if base == FLOOR {
                results.to_floor(client, mode)
            } else {
                results.ratios(client, base, mode)
            }
        };
        target(
            "cogref-reqwest median ≤ 1.05 × floor".into(),
            mode,
            r("cogref-reqwest", FLOOR).map(|r| r.0),
            |v| v <= 1.05,
        );
        target(
            "cogref-reqwest calls/s at 64 ≥ 0.95 × floor".into(),
            mode,
            r("cogref-reqwest", FLOOR).map(|r| r.1),
            |v| v >= 0.95,
        );
        for (client, own) in [
            ("cogref-isahc", "raw-isahc"),
            ("cogref-blocking", "raw-ureq"),
        ] {
            target(
                format!("{client} median ≤ 1.3 × floor"),
                mode,
                r(client, FLOOR).map(|r| r.0),
                |v| v <= 1.3,
            );
            // What the library itself costs: the part of the ratio above that is not cogref's.
            target(
                format!("({own} median / floor, for reference)"),
                mode,
                r(own, FLOOR).map(|r| r.0),
                |_| true,
            );
        }
        target(
            "cogref-reqwest-dyn median ≤ 1.02 × cogref-reqwest".into(),
            mode,
            r("cogref-reqwest-dyn", "cogref-reqwest").map(|r| r.0),
            |v| v <= 1.02,
        );
    }
    md
}

fn markdown(results: &Results, tables: &str) -> String {
    let mut md = String::from("# cogref against the official SDK\n\n");
    md.push_str("Produced by `cargo xtask bench` (harness in `benches/compare/`); every figure comes from one run on one machine.\n\n");
    for (k, v) in &results.meta {
        let _ = writeln!(md, "- **{k}**: {v}");
    }
    md.push_str("\n![median latency (with its spread over the rounds) and binary size, as ratios to the floor](benchmarks.svg)\n");
    md.push_str("\n## Method\n\nThe floor is a raw reqwest POST of the request cogref sends (the same body and headers) with a bare `serde_json::Value` parse: no validation, no error model, no retries (reqwest's own retry layer, which clones every request in case it must resend an HTTP/2 refusal, is off, as in cogref-reqwest's client), no timeout. Every client runs as its own minimal binary, a worker process next to a loopback server (one canned answer, keep-alive, standard library only); every round starts a fresh server and fresh workers and warms them up (300 sequential calls and a burst each), because a process keeps its own speed for as long as it lives: kept for a whole run, the same binary read 0.93 of the floor in one run and 1.12 to 1.26 in every round of the next. The loopback server runs on one core and every worker on another (`taskset`; unpinned, the scheduler gives each process a home core of its own and keeps it, and two workers of the same binary read 1.00 to 1.23 of each other for a whole run). In each round every client in turn, the order rotated, duels a floor worker of its own, started, warmed and left idle with it (a transport and its library's bare POST share one, so that their comparison does not carry two floor processes' speeds; a single floor worker dueling every client in turn ran between all of them, warmer than any client it met: the control read 0.99 of it in the throughput of every run): after one unmeasured pair, four pairs of batches of sequential calls (their median latency), floor and client alternately first; once every client's batches are done, four pairs of bursts of 64 concurrent callers (their calls per second) likewise (a burst leaves a worker with many pooled connections, which batches run over them would measure). The duel's ratio is the client's median over the floor's: each side runs twice right after its own run and twice right after the other's, so neither is warmer (a floor measured around every client, F A F B F, read 8 to 23% faster than its own binary in a client's place). The tables give the median over the rounds, with the lowest and highest round in brackets; below 1 is faster (latency) or slower (throughput). Every batch and burst follows a few unmeasured calls (a worker that sat idle while the others ran starts cold); a burst of threads is timed from the moment all its callers exist, before any of them is let go. A worker checks every answer: the tokens, or in the error rounds the server's NotAuthorizedException and nothing else. Two clients (a transport and its library's bare POST) are compared through their ratios to the floor in the same round. `raw-reqwest (control)` is a second worker running the floor's own binary, measured exactly like a client: its ratios, which should read 1.00, are the harness's check (first rows of the targets). The spread of the rounds is the harness's noise. Clients whose call crosses threads on the worker's core (isahc's agent thread; raw ureq's resolver, a new thread per call) have two speeds within one process, as the kernel decides whether a woken thread preempts the running one (cogref-isahc read 52 µs a call in one batch and 60 to 80 µs in the next, its agent thread preempted 0.3 and 2.8 times a call): their medians move between runs by up to a third of the floor, their ratios to their own library's bare POST much less. (`SCHED_BATCH`, under which a woken thread does not preempt, steadied isahc within a process but not across rounds: not used.) Absolute microseconds and calls per second (all rounds together) are for information: they move with the machine, the ratios do not.\n");
    md.push_str(tables);
    if let Some(floor) = results.builds.get(FLOOR).copied() {
        md.push_str("\n## Minimal release binary\n\nA `main` that makes the call, built `--release` with `strip = true` from an empty target directory (build time for information: it depends on what else the machine does).\n\n| client | clean build s | stripped size | crates in tree | size / floor |\n|---|---:|---:|---:|---:|\n");
        for (client, _) in &results.clients {
            if let Some(b) = results.builds.get(client) {
                let _ = writeln!(
                    md,
                    "| {client} | {:.0} | {:.1} MiB | {:.0} | {:.2} |",
                    b.seconds,
                    b.bytes / 1_048_576.0,
                    b.crates,
                    b.bytes / floor.bytes
                );
            }
        }
    }
    md
}

fn chart(path: &Path, results: &Results) -> Result<(), Box<dyn std::error::Error>> {
    let floor_build = results.builds.get(FLOOR).copied().unwrap_or_default();
    let bars: Vec<(&str, Ratio, f64)> = results
        .clients
        .iter()
        .filter(|(c, _)| results.builds.contains_key(c))
        .filter_map(|(c, _)| {
            let (latency, _) = results.to_floor(c, "ok")?;
            let size = results.builds.get(c)?.bytes / floor_build.bytes;
            Some((c.as_str(), latency, size))
        })
        .collect();
    let top = bars.iter().map(|b| b.1.high.max(b.2)).fold(1.0, f64::max) * 1.15;
    let width = bars.len() as f64 * 3.0;
    let root = SVGBackend::new(path, (900, 420)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "median latency (success) and stripped binary size, ratio to a raw reqwest POST",
            ("sans-serif", 18),
        )
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(48)
        .build_cartesian_2d(0.0..width, 0.0..top)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .disable_x_axis()
        .y_desc("ratio to floor")
        .draw()?;
    for (i, (name, latency, size)) in bars.iter().enumerate() {
        let x = i as f64 * 3.0 + 0.3;
        chart.draw_series([
            Rectangle::new(
                [(x, 0.0), (x + 1.1, latency.median)],
                BLUE.mix(0.7).filled(),
            ),
            Rectangle::new([(x + 1.2, 0.0), (x + 2.3, *size)], RED.mix(0.6).filled()),
        ])?;
        // The spread over the rounds.
        chart.draw_series([PathElement::new(
            vec![(x + 0.55, latency.low), (x + 0.55, latency.high)],
            BLACK.stroke_width(2),
        )])?;
        chart.draw_series([
            Text::new(
                format!("{:.2}", latency.median),
                (x + 0.2, latency.high + top * 0.06),
                ("sans-serif", 12),
            ),
            Text::new(
                format!("{size:.2}"),
                (x + 1.4, size + top * 0.06),
                ("sans-serif", 12),
            ),
            Text::new(name.to_string(), (x, -top * 0.06), ("sans-serif", 13)),
        ])?;
    }
    chart.draw_series([
        Rectangle::new(
            [(width - 2.6, top * 0.92), (width - 2.4, top * 0.96)],
            BLUE.mix(0.7).filled(),
        ),
        Rectangle::new(
            [(width - 2.6, top * 0.84), (width - 2.4, top * 0.88)],
            RED.mix(0.6).filled(),
        ),
    ])?;
    chart.draw_series([
        Text::new(
            "median latency (line: spread)",
            (width - 2.3, top * 0.97),
            ("sans-serif", 12),
        ),
        Text::new("binary size", (width - 2.3, top * 0.89), ("sans-serif", 12)),
    ])?;
    root.present()?;
    Ok(())
}
