//! `report RESULTS.tsv DOCS_DIR`: writes `benchmarks.md` (machine, versions, date, tables) and
//! `benchmarks.svg` (latency and size as ratios to the floor) from the harness's results.
//!
//! Input lines, tab-separated: `META key value`, `RESULT client mode median_us p99_us calls_per_s`,
//! `BUILD client seconds bytes crates`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use plotters::prelude::*;

const FLOOR: &str = "raw-reqwest";
const ORDER: [&str; 5] = [
    "raw-reqwest",
    "aws-sdk",
    "cogref-reqwest",
    "cogref-isahc",
    "cogref-blocking",
];

#[derive(Default, Clone, Copy)]
struct Run {
    median: f64,
    p99: f64,
    throughput: f64,
}

#[derive(Default, Clone, Copy)]
struct Build {
    seconds: f64,
    bytes: f64,
    crates: f64,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (Some(input), Some(docs)) = (args.next(), args.next()) else {
        return Err("usage: report RESULTS.tsv DOCS_DIR".into());
    };
    let text = std::fs::read_to_string(&input)?;
    let mut meta = BTreeMap::new();
    let mut runs: BTreeMap<(String, String), Run> = BTreeMap::new();
    let mut builds: BTreeMap<String, Build> = BTreeMap::new();
    for line in text.lines() {
        let f: Vec<&str> = line.split('\t').collect();
        match f.as_slice() {
            ["META", key, value] => {
                meta.insert(key.to_string(), value.to_string());
            }
            ["RESULT", client, mode, median, p99, tput] => {
                runs.insert(
                    (client.to_string(), mode.to_string()),
                    Run {
                        median: median.parse()?,
                        p99: p99.parse()?,
                        throughput: tput.parse()?,
                    },
                );
            }
            ["BUILD", client, secs, bytes, crates] => {
                builds.insert(
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
    let docs = Path::new(&docs);
    std::fs::create_dir_all(docs)?;
    std::fs::write(docs.join("benchmarks.md"), markdown(&meta, &runs, &builds))?;
    chart(&docs.join("benchmarks.svg"), &runs, &builds)?;
    Ok(())
}

fn markdown(
    meta: &BTreeMap<String, String>,
    runs: &BTreeMap<(String, String), Run>,
    builds: &BTreeMap<String, Build>,
) -> String {
    let mut md = String::from("# cogref against the official SDK\n\n");
    md.push_str("Produced by `cargo xtask bench` (harness in `benches/compare/`); every figure of one table comes from one run on one machine.\n\n");
    for (k, v) in meta {
        let _ = writeln!(md, "- **{k}**: {v}");
    }
    md.push_str("\n![latency and binary size as ratios to the floor](benchmarks.svg)\n");
    for (mode, title) in [
        ("ok", "success (4 KiB body)"),
        ("error", "NotAuthorizedException"),
    ] {
        let Some(floor) = runs.get(&(FLOOR.into(), mode.into())).copied() else {
            continue;
        };
        let _ = write!(
            md,
            "\n## Per call, {title}\n\nMedian and p99 of sequential calls after warm-up; throughput with 64 concurrent callers. Ratios are to the floor (a raw reqwest POST of the same bytes and a bare `serde_json::Value` parse): below 1 is faster.\n\n| client | median µs | p99 µs | median / floor | calls/s at 64 | throughput / floor |\n|---|---:|---:|---:|---:|---:|\n"
        );
        for client in ORDER {
            if let Some(r) = runs.get(&(client.into(), mode.into())) {
                let _ = writeln!(
                    md,
                    "| {client} | {:.1} | {:.1} | {:.2} | {:.0} | {:.2} |",
                    r.median,
                    r.p99,
                    r.median / floor.median,
                    r.throughput,
                    r.throughput / floor.throughput
                );
            }
        }
    }
    if let Some(floor) = builds.get(FLOOR).copied() {
        md.push_str("\n## Minimal release binary\n\nA `main` that makes the call (and times it), built `--release` with `strip = true` from an empty target directory.\n\n| client | clean build s | stripped size | crates in tree | size / floor |\n|---|---:|---:|---:|---:|\n");
        for client in ORDER {
            if let Some(b) = builds.get(client) {
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

fn chart(
    path: &Path,
    runs: &BTreeMap<(String, String), Run>,
    builds: &BTreeMap<String, Build>,
) -> Result<(), Box<dyn std::error::Error>> {
    let floor_run = runs
        .get(&(FLOOR.into(), "ok".into()))
        .copied()
        .unwrap_or_default();
    let floor_build = builds.get(FLOOR).copied().unwrap_or_default();
    let bars: Vec<(&str, f64, f64)> = ORDER
        .iter()
        .map(|c| {
            let latency = runs
                .get(&(c.to_string(), "ok".into()))
                .map_or(0.0, |r| r.median / floor_run.median);
            let size = builds.get(*c).map_or(0.0, |b| b.bytes / floor_build.bytes);
            (*c, latency, size)
        })
        .collect();
    let top = bars.iter().map(|b| b.1.max(b.2)).fold(1.0, f64::max) * 1.15;
    let root = SVGBackend::new(path, (900, 420)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "median latency and stripped binary size, ratio to a raw reqwest POST",
            ("sans-serif", 18),
        )
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(48)
        .build_cartesian_2d(0.0..(bars.len() as f64 * 3.0), 0.0..top)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .disable_x_axis()
        .y_desc("ratio to floor")
        .draw()?;
    for (i, (name, latency, size)) in bars.iter().enumerate() {
        let x = i as f64 * 3.0 + 0.3;
        chart.draw_series([
            Rectangle::new([(x, 0.0), (x + 1.1, *latency)], BLUE.mix(0.7).filled()),
            Rectangle::new([(x + 1.2, 0.0), (x + 2.3, *size)], RED.mix(0.6).filled()),
        ])?;
        chart.draw_series([
            Text::new(
                format!("{latency:.2}"),
                (x + 0.2, latency + top * 0.06),
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
            [
                (bars.len() as f64 * 3.0 - 2.6, top * 0.92),
                (bars.len() as f64 * 3.0 - 2.4, top * 0.96),
            ],
            BLUE.mix(0.7).filled(),
        ),
        Rectangle::new(
            [
                (bars.len() as f64 * 3.0 - 2.6, top * 0.84),
                (bars.len() as f64 * 3.0 - 2.4, top * 0.88),
            ],
            RED.mix(0.6).filled(),
        ),
    ])?;
    chart.draw_series([
        Text::new(
            "median latency",
            (bars.len() as f64 * 3.0 - 2.3, top * 0.97),
            ("sans-serif", 12),
        ),
        Text::new(
            "binary size",
            (bars.len() as f64 * 3.0 - 2.3, top * 0.89),
            ("sans-serif", 12),
        ),
    ])?;
    root.present()?;
    Ok(())
}
