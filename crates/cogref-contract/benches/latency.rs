//! Per-call latency of each transport against one loopback server, as ratios to a raw reqwest
//! POST of the same bytes with a bare JSON parse, all measured in the same run.
//!
//! `cargo bench -p cogref-contract --bench latency` (`COGREF_BENCH_CALLS`, default 2000 per
//! client). Calls are sequential on one keep-alive connection; the clients are measured in
//! interleaved rounds so that drift of the machine hits them alike. Each cogref transport is
//! measured twice, as a static client and with its transport chosen at run time
//! (`Client::into_dyn`, `into_dyn_blocking`), and the ratio of the two medians is printed.

use std::sync::Arc;

use isahc::AsyncReadResponseExt;
use isahc::config::Configurable;
use std::time::{Duration, Instant};

use cogref_contract::raw::{Behaviour, RawServer};
use cogref_contract::{realistic_success_body, token_like};
use cogref_core::{AttemptInfo, CallConfig, InvocationId, RefreshInput, build_request};

type Call = Box<dyn FnMut()>;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let rank = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

fn main() {
    let calls: usize = std::env::var("COGREF_BENCH_CALLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000);
    let rt = Arc::new(
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime"),
    );
    let body = realistic_success_body();
    let server = rt.block_on(RawServer::start(Behaviour::Success(body.clone())));
    let endpoint = server.endpoint();
    let input = RefreshInput::builder()
        .refresh_token(token_like(1_700, 9))
        .client_id("1example23456789abcdefghij")
        .build()
        .expect("valid");
    let config = CallConfig::default();

    let mut clients: Vec<(&str, Call)> = Vec::new();

    // The floor: the same request bytes through a bare reqwest client, then a bare JSON parse.
    let raw = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("reqwest");
    let template: http::Request<Vec<u8>> = build_request(
        &endpoint,
        &input,
        &AttemptInfo::first(InvocationId::from_random_bytes([1; 16]), 3),
    )
    .into_http();
    {
        let (rt, template) = (rt.clone(), template.clone());
        clients.push((
            "raw reqwest POST + serde_json::Value (floor)",
            Box::new(move || {
                let request = template.clone();
                let raw = raw.clone();
                rt.block_on(async move {
                    let request = reqwest::Request::try_from(request).expect("request");
                    let bytes = raw
                        .execute(request)
                        .await
                        .expect("response")
                        .bytes()
                        .await
                        .expect("body");
                    serde_json::from_slice::<serde_json::Value>(&bytes).expect("json");
                });
            }),
        ));
    }
    // Each library's own bare POST of the same bytes: what cogref adds on top of it.
    {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .max_redirects(0)
            .http_status_as_error(false)
            // The same overall timeout cogref sets: ureq's timeout bookkeeping alone costs tens
            // of microseconds a call on loopback, and a client without one is not a fair floor.
            .timeout_global(Some(Duration::from_secs(10)))
            .build()
            .into();
        let template = template.clone();
        clients.push((
            "raw ureq POST + serde_json::Value",
            Box::new(move || {
                let mut response = agent.run(template.clone()).expect("response");
                let bytes = response.body_mut().read_to_vec().expect("body");
                serde_json::from_slice::<serde_json::Value>(&bytes).expect("json");
            }),
        ));
    }
    {
        let client = isahc::HttpClient::builder()
            .redirect_policy(isahc::config::RedirectPolicy::None)
            .build()
            .expect("isahc");
        let (rt, template) = (rt.clone(), template.clone());
        clients.push((
            "raw isahc POST + serde_json::Value",
            Box::new(move || {
                rt.block_on(async {
                    let mut response = client.send_async(template.clone()).await.expect("response");
                    let bytes = response.bytes().await.expect("body");
                    serde_json::from_slice::<serde_json::Value>(&bytes).expect("json");
                });
            }),
        ));
    }
    {
        let client = Arc::new(cogref_reqwest::client(endpoint.clone(), config).expect("client"));
        let (rt, input) = (rt.clone(), input.clone());
        clients.push((
            "cogref-reqwest",
            Box::new(move || {
                rt.block_on(client.refresh(&input)).expect("refresh");
            }),
        ));
    }
    {
        let client = Arc::new(cogref_isahc::client(endpoint.clone(), config).expect("client"));
        let (rt, input) = (rt.clone(), input.clone());
        clients.push((
            "cogref-isahc",
            Box::new(move || {
                rt.block_on(client.refresh(&input)).expect("refresh");
            }),
        ));
    }
    {
        let client = cogref_blocking::client(endpoint.clone(), config);
        let input = input.clone();
        clients.push((
            "cogref-blocking",
            Box::new(move || {
                client.refresh_blocking(&input).expect("refresh");
            }),
        ));
    }

    // The same clients with the transport chosen at run time (`Client::into_dyn`): a boxed
    // future and an indirect call per send and per sleep.
    {
        let client = Arc::new(
            cogref_reqwest::client(endpoint.clone(), config)
                .expect("client")
                .into_dyn(),
        );
        let (rt, input) = (rt.clone(), input.clone());
        clients.push((
            "cogref-reqwest, dyn transport",
            Box::new(move || {
                rt.block_on(client.refresh(&input)).expect("refresh");
            }),
        ));
    }
    {
        let client = Arc::new(
            cogref_isahc::client(endpoint.clone(), config)
                .expect("client")
                .into_dyn(),
        );
        let (rt, input) = (rt.clone(), input.clone());
        clients.push((
            "cogref-isahc, dyn transport",
            Box::new(move || {
                rt.block_on(client.refresh(&input)).expect("refresh");
            }),
        ));
    }
    {
        let client = cogref_blocking::client(endpoint.clone(), config).into_dyn_blocking();
        let input = input.clone();
        clients.push((
            "cogref-blocking, dyn transport",
            Box::new(move || {
                client.refresh_blocking(&input).expect("refresh");
            }),
        ));
    }

    // Warm-up: connections, TLS-free pools, allocator.
    for (_, call) in clients.iter_mut() {
        for _ in 0..200 {
            call();
        }
    }
    let rounds = 10;
    let per_round = calls.div_ceil(rounds);
    let mut samples: Vec<Vec<Duration>> = vec![Vec::with_capacity(calls); clients.len()];
    for _ in 0..rounds {
        for (i, (_, call)) in clients.iter_mut().enumerate() {
            for _ in 0..per_round {
                let started = Instant::now();
                call();
                samples[i].push(started.elapsed());
            }
        }
    }

    let stats: Vec<(Duration, Duration)> = samples
        .iter_mut()
        .map(|s| {
            s.sort_unstable();
            (percentile(s, 0.5), percentile(s, 0.99))
        })
        .collect();
    let floor = stats[0].0.as_secs_f64();
    println!(
        "per-call latency, {} sequential calls each, {}-byte success body, one loopback keep-alive connection",
        rounds * per_round,
        body.len()
    );
    println!(
        "{:<46} {:>12} {:>12} {:>16}",
        "client", "median (µs)", "p99 (µs)", "median / floor"
    );
    for ((name, _), (median, p99)) in clients.iter().zip(&stats) {
        println!(
            "{:<46} {:>12.1} {:>12.1} {:>16.2}",
            name,
            median.as_secs_f64() * 1e6,
            p99.as_secs_f64() * 1e6,
            median.as_secs_f64() / floor
        );
    }
    // What choosing the transport at run time costs per call, against the static client.
    let median_of = |name: &str| {
        clients
            .iter()
            .zip(&stats)
            .find(|((n, _), _)| *n == name)
            .map(|(_, (median, _))| median.as_secs_f64())
            .expect("measured")
    };
    println!("dyn transport / static transport, median per call:");
    for name in ["cogref-reqwest", "cogref-isahc", "cogref-blocking"] {
        let (fixed, dynamic) = (
            median_of(name),
            median_of(&format!("{name}, dyn transport")),
        );
        println!(
            "  {name:<20} {:>8.3}  ({:+.1} µs)",
            dynamic / fixed,
            (dynamic - fixed) * 1e6
        );
    }
    assert!(
        server.connections() <= clients.len() * 2,
        "connections were not reused"
    );
}
