//! Per-call latency of each transport against one loopback server, as ratios to a raw reqwest
//! POST of the same request with a bare JSON parse, all measured in the same rounds.
//!
//! `cargo bench -p cogref-contract --bench latency` (`COGREF_BENCH_CALLS`, default 2000 per
//! client). Calls are sequential on one keep-alive connection. The clients take turns in rounds
//! (rotated order); each round gives every client a median and a ratio to the floor's median of
//! the same round, and the report shows the median ratio over the rounds with its spread, so
//! that drift of the machine hits both sides of a ratio alike. A transport is also compared with
//! its own library's bare POST (`versus`), and each cogref transport chosen at run time
//! (`Client::into_dyn`, `into_dyn_blocking`) with its static client; each of these pairs then
//! also duels (alternating batches of calls), for a ratio of calls made milliseconds apart.

use std::sync::Arc;

use isahc::AsyncReadResponseExt;
use isahc::config::Configurable;
use std::time::{Duration, Instant};

use cogref_contract::raw::{Behaviour, RawServer};
use cogref_contract::{realistic_success_body, token_like};
use cogref_core::{AttemptInfo, CallConfig, InvocationId, RefreshInput, build_request};

type Call = Box<dyn FnMut()>;

/// A client of the bench: its name, the client it is also compared with, and one call.
struct Client {
    name: &'static str,
    /// Another client of the bench this one is also quoted against (a transport's own library's
    /// bare POST, or for a transport chosen at run time its static client: the target there is
    /// 1.02x).
    versus: Option<&'static str>,
    call: Call,
}

/// `n` calls of `call`, each timed.
fn timed(call: &mut Call, n: usize) -> impl Iterator<Item = Duration> + '_ {
    (0..n).map(move |_| {
        let started = Instant::now();
        call();
        started.elapsed()
    })
}

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

    let mut clients: Vec<Client> = Vec::new();

    // The floor: the same request through a bare reqwest client (URL parsed and headers built
    // once, as cogref-reqwest does), then a bare JSON parse.
    let raw = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        // As cogref-reqwest's client: no retry layer cloning each request.
        .retry(reqwest::retry::never().max_retries_per_request(0))
        .build()
        .expect("reqwest");
    let template: http::Request<Vec<u8>> = build_request(
        &endpoint,
        &input,
        &AttemptInfo::first(InvocationId::from_random_bytes([1; 16]), 3),
    )
    .into_http();
    {
        let rt = rt.clone();
        let url = reqwest::Url::parse(&template.uri().to_string()).expect("url");
        let headers = template.headers().clone();
        let body = template.body().clone();
        clients.push(Client {
            name: "raw reqwest POST + serde_json::Value (floor)",
            versus: None,
            call: Box::new(move || {
                let mut request = reqwest::Request::new(reqwest::Method::POST, url.clone());
                *request.headers_mut() = headers.clone();
                *request.body_mut() = Some(body.clone().into());
                let raw = raw.clone();
                rt.block_on(async move {
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
        });
    }
    // Each library's own bare POST of the same bytes: what cogref adds on top of it.
    {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .max_idle_connections(cogref_blocking::IDLE_CONNECTIONS)
            .max_idle_connections_per_host(cogref_blocking::IDLE_CONNECTIONS)
            .max_redirects(0)
            .http_status_as_error(false)
            // The same overall timeout cogref sets: ureq's timeout bookkeeping alone costs tens
            // of microseconds a call on loopback, and a client without one is not a fair floor.
            .timeout_global(Some(Duration::from_secs(10)))
            .build()
            .into();
        let template = template.clone();
        clients.push(Client {
            name: "raw ureq POST + serde_json::Value",
            versus: None,
            call: Box::new(move || {
                let mut response = agent.run(template.clone()).expect("response");
                let bytes = response.body_mut().read_to_vec().expect("body");
                serde_json::from_slice::<serde_json::Value>(&bytes).expect("json");
            }),
        });
    }
    {
        let client = isahc::HttpClient::builder()
            .redirect_policy(isahc::config::RedirectPolicy::None)
            .build()
            .expect("isahc");
        let (rt, template) = (rt.clone(), template.clone());
        clients.push(Client {
            name: "raw isahc POST + serde_json::Value",
            versus: None,
            call: Box::new(move || {
                rt.block_on(async {
                    let mut response = client.send_async(template.clone()).await.expect("response");
                    let bytes = response.bytes().await.expect("body");
                    serde_json::from_slice::<serde_json::Value>(&bytes).expect("json");
                });
            }),
        });
    }
    {
        let client = Arc::new(cogref_reqwest::client(endpoint.clone(), config).expect("client"));
        let (rt, input) = (rt.clone(), input.clone());
        clients.push(Client {
            name: "cogref-reqwest",
            versus: None,
            call: Box::new(move || {
                rt.block_on(client.refresh(&input)).expect("refresh");
            }),
        });
    }
    {
        let client = Arc::new(cogref_isahc::client(endpoint.clone(), config).expect("client"));
        let (rt, input) = (rt.clone(), input.clone());
        clients.push(Client {
            name: "cogref-isahc",
            versus: Some("raw isahc POST + serde_json::Value"),
            call: Box::new(move || {
                rt.block_on(client.refresh(&input)).expect("refresh");
            }),
        });
    }
    {
        let client = cogref_blocking::client(endpoint.clone(), config);
        let input = input.clone();
        clients.push(Client {
            name: "cogref-blocking",
            versus: Some("raw ureq POST + serde_json::Value"),
            call: Box::new(move || {
                client.refresh_blocking(&input).expect("refresh");
            }),
        });
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
        clients.push(Client {
            name: "cogref-reqwest, dyn transport",
            versus: Some("cogref-reqwest"),
            call: Box::new(move || {
                rt.block_on(client.refresh(&input)).expect("refresh");
            }),
        });
    }
    {
        let client = Arc::new(
            cogref_isahc::client(endpoint.clone(), config)
                .expect("client")
                .into_dyn(),
        );
        let (rt, input) = (rt.clone(), input.clone());
        clients.push(Client {
            name: "cogref-isahc, dyn transport",
            versus: Some("cogref-isahc"),
            call: Box::new(move || {
                rt.block_on(client.refresh(&input)).expect("refresh");
            }),
        });
    }
    {
        let client = cogref_blocking::client(endpoint.clone(), config).into_dyn_blocking();
        let input = input.clone();
        clients.push(Client {
            name: "cogref-blocking, dyn transport",
            versus: Some("cogref-blocking"),
            call: Box::new(move || {
                client.refresh_blocking(&input).expect("refresh");
            }),
        });
    }

    // Warm-up: connections, TLS-free pools, allocator.
    for client in clients.iter_mut() {
        for _ in 0..200 {
            (client.call)();
        }
    }
    // Odd, so the median over the rounds is one round's figure.
    let rounds = 11;
    let per_round = calls.div_ceil(rounds);
    // Per client: each round's median, and every sample for the pooled figures.
    let mut medians: Vec<Vec<Duration>> = vec![Vec::with_capacity(rounds); clients.len()];
    let mut pooled: Vec<Vec<Duration>> = vec![Vec::with_capacity(calls); clients.len()];
    for round in 0..rounds {
        for k in 0..clients.len() {
            // Rotated each round and walked backwards every other one, so no client always
            // follows the same neighbour (whose connection, caches and threads it inherits).
            let k = if round % 2 == 1 {
                clients.len() - 1 - k
            } else {
                k
            };
            let i = (k + round) % clients.len();
            let mut samples: Vec<Duration> = timed(&mut clients[i].call, per_round).collect();
            samples.sort_unstable();
            medians[i].push(percentile(&samples, 0.5));
            pooled[i].extend(samples);
        }
    }
    // The median over the rounds of `of`'s round median over `to`'s, with the lowest and highest.
    let ratio = |of: usize, to: usize| -> (f64, f64, f64) {
        let mut r: Vec<f64> = medians[of]
            .iter()
            .zip(&medians[to])
            .map(|(a, b)| a.as_secs_f64() / b.as_secs_f64())
            .collect();
        r.sort_by(f64::total_cmp);
        (r[r.len() / 2], r[0], r[r.len() - 1])
    };
    println!(
        "per-call latency, {rounds} interleaved rounds of {per_round} sequential calls per client, {}-byte success body, one loopback keep-alive connection",
        body.len()
    );
    println!(
        "{:<46} {:>12} {:>12} {:>22} {:>22}",
        "client", "median (µs)", "p99 (µs)", "median / floor", "median / versus"
    );
    for (i, client) in clients.iter().enumerate() {
        pooled[i].sort_unstable();
        let (m, lo, hi) = ratio(i, 0);
        let versus = client
            .versus
            .and_then(|v| clients.iter().position(|c| c.name == v))
            .map(|v| {
                let (m, lo, hi) = ratio(i, v);
                format!("{m:.2} ({lo:.2}–{hi:.2})")
            })
            .unwrap_or_default();
        println!(
            "{:<46} {:>12.1} {:>12.1} {:>22} {:>22}",
            client.name,
            percentile(&pooled[i], 0.5).as_secs_f64() * 1e6,
            percentile(&pooled[i], 0.99).as_secs_f64() * 1e6,
            format!("{m:.2} ({lo:.2}–{hi:.2})"),
            versus
        );
    }

    // Each client with a `versus` then duels it: the two alternate in batches within a round
    // (A B, B A, A B, B A), so that its ratio compares calls made milliseconds apart, where the
    // rounds above compare clients a whole rotation apart (their spread is the machine's drift).
    const DUEL_ROUNDS: usize = 11;
    const DUEL_PAIRS: usize = 4;
    const DUEL_BATCH: usize = 100;
    let pairs: Vec<(usize, usize)> = clients
        .iter()
        .enumerate()
        .filter_map(|(i, c)| {
            let v = clients.iter().position(|o| Some(o.name) == c.versus)?;
            Some((i, v))
        })
        .collect();
    println!(
        "\ndueled with its versus: {DUEL_ROUNDS} rounds of {DUEL_PAIRS} alternating pairs of {DUEL_BATCH}-call batches; per round the ratio of the two medians"
    );
    println!("{:<46} {:>22}", "client", "median / versus");
    for (i, v) in pairs {
        let mut ratios = Vec::with_capacity(DUEL_ROUNDS);
        for _ in 0..DUEL_ROUNDS {
            let (mut ours, mut theirs) = (Vec::new(), Vec::new());
            for pair in 0..DUEL_PAIRS {
                let order = if pair % 2 == 0 { [i, v] } else { [v, i] };
                for k in order {
                    let samples = timed(&mut clients[k].call, DUEL_BATCH);
                    if k == i {
                        ours.extend(samples);
                    } else {
                        theirs.extend(samples);
                    }
                }
            }
            ours.sort_unstable();
            theirs.sort_unstable();
            ratios.push(
                percentile(&ours, 0.5).as_secs_f64() / percentile(&theirs, 0.5).as_secs_f64(),
            );
        }
        ratios.sort_by(f64::total_cmp);
        println!(
            "{:<46} {:>22}",
            clients[i].name,
            format!(
                "{:.3} ({:.3}–{:.3})",
                ratios[DUEL_ROUNDS / 2],
                ratios[0],
                ratios[DUEL_ROUNDS - 1]
            )
        );
    }
    assert!(
        server.connections() <= clients.len() * 2,
        "connections were not reused"
    );
}
