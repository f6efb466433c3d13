//! Review 21: hostile tests of the attempt deadlines served by one shared tokio timer per
//! transport (commit 2140fc4, `src/deadline.rs`), against loopback servers only.
//!
//! Every wait that could hang is bounded by a watchdog on a plain thread (the test fails with
//! a message instead of hanging the suite).
//!
//! On 2140fc4 five of these fail (each passes with the per-attempt `tokio::time::timeout` of
//! 512cf0b): `a_panic_while_arming_does_not_leave_later_attempts_without_a_deadline`,
//! `a_waiting_attempt_is_not_woken_by_each_other_attempts_deadline`,
//! `a_task_polling_with_its_budget_spent_does_not_make_other_attempts_spin`,
//! `a_transport_does_not_keep_a_dropped_runtimes_driver_open` and
//! `a_timeout_reads_the_same_on_every_runtime`. One passes on 2140fc4 and hung on 512cf0b:
//! `an_attempt_polled_with_its_budget_spent_still_ends_at_its_deadline`. All pass since
//! 3c7e8be and 54a6826 (wake only the expired and the next to arm; disarm on a panic while
//! arming; one timeout text; bind by runtime id and let an idle timer go; poll it outside the
//! cooperative budget).

use std::future::Future;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use cogref_core::driver::HttpRequest;
use cogref_core::{Error, TransportErrorKind};
use cogref_reqwest::http;
use cogref_reqwest::{
    AsyncTransport, CallConfig, EndpointConfig, RefreshInput, ReqwestTransport, RetryConfig,
    SendOptions, Timeouts,
};

const MS: Duration = Duration::from_millis(1);

/// A loopback server that accepts connections, reads nothing and never answers.
fn silent() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let address = listener.local_addr().expect("address");
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming().flatten() {
            held.push(stream);
        }
    });
    address
}

const OK: &str = r#"{"AuthenticationResult":{"AccessToken":"a.b.c","ExpiresIn":3600}}"#;

/// Reads one request (head, then Content-Length bytes of body); false at EOF.
fn read_request(stream: &mut TcpStream) -> bool {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            let length: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
            while buf.len() < end + 4 + length {
                match stream.read(&mut chunk) {
                    Ok(0) | Err(_) => return false,
                    Ok(n) => buf.extend_from_slice(&chunk[..n]),
                }
            }
            return true;
        }
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => return false,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

/// A loopback server that answers every request with a valid 200 after `delay`.
fn answering_after(delay: Duration) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let address = listener.local_addr().expect("address");
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let mut stream = stream;
                while read_request(&mut stream) {
                    std::thread::sleep(delay);
                    let answer = format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: application/x-amz-json-1.1\r\ncontent-length: {}\r\n\r\n{OK}",
                        OK.len()
                    );
                    if stream.write_all(answer.as_bytes()).is_err() {
                        return;
                    }
                }
            });
        }
    });
    address
}

fn request(address: SocketAddr) -> HttpRequest {
    http::Request::builder()
        .method("POST")
        .uri(format!("http://{address}/"))
        .header("content-type", "application/x-amz-json-1.1")
        .body(b"{}".to_vec())
        .expect("request")
}

fn options(timeout: Duration) -> SendOptions {
    SendOptions::new(timeout, Duration::from_secs(5), 1 << 20)
}

/// A transport whose reqwest client has no connect timeout: the attempt deadline is then the
/// only timer an attempt arms (what a paused clock jumps to).
fn transport_without_connect_timeout() -> ReqwestTransport {
    ReqwestTransport::with_client(
        reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("client"),
    )
}

fn transport() -> ReqwestTransport {
    ReqwestTransport::new(&Timeouts::default()).expect("transport")
}

fn is_timeout(outcome: &Result<http::Response<Vec<u8>>, Error>) -> bool {
    matches!(outcome, Err(Error::Transport(t)) if t.kind() == TransportErrorKind::Timeout)
}

/// One attempt through `transport`; its outcome and how long it took (real time).
async fn attempt(
    transport: &ReqwestTransport,
    address: SocketAddr,
    timeout: Duration,
) -> (Result<http::Response<Vec<u8>>, Error>, Duration) {
    let started = Instant::now();
    let outcome = transport.send(request(address), options(timeout)).await;
    (outcome, started.elapsed())
}

/// Asserts the attempt timed out by its deadline: not before, and at most `slack` after.
fn assert_timed_out_on_time(
    what: &str,
    outcome: &Result<http::Response<Vec<u8>>, Error>,
    elapsed: Duration,
    timeout: Duration,
    slack: Duration,
) {
    assert!(is_timeout(outcome), "{what}: not a timeout: {outcome:?}");
    assert!(
        elapsed >= timeout.saturating_sub(MS),
        "{what}: timed out early: {elapsed:?} < {timeout:?}"
    );
    assert!(
        elapsed <= timeout + slack,
        "{what}: timed out late: {elapsed:?} for a {timeout:?} timeout"
    );
}

/// Runs `test` on a thread of its own; fails if it has not finished within `limit` (a hang),
/// and re-raises its panic.
fn within_watchdog(limit: Duration, test: impl FnOnce() + Send + 'static) {
    let (done, finished) = std::sync::mpsc::channel();
    let handle = std::thread::spawn(move || {
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(test));
        let _ = done.send(());
        outcome
    });
    match finished.recv_timeout(limit) {
        Ok(()) => {
            if let Err(panic) = handle.join().expect("joined") {
                std::panic::resume_unwind(panic);
            }
        }
        Err(_) => panic!("hung: still running after {limit:?}"),
    }
}

fn multi_thread(workers: usize) -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()
        .expect("runtime")
}

fn current_thread() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

/// A small deterministic generator (no rand dependency).
struct Lcg(u64);
impl Lcg {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % n
    }
}

// ---------------------------------------------------------------------------------------------
// Promise 1 and 2: each attempt ends by its own deadline, never before, whatever others do.

#[test]
fn concurrent_attempts_with_mixed_timeouts_each_time_out_at_their_own_deadline() {
    within_watchdog(Duration::from_secs(30), || {
        let server = silent();
        let transport = transport();
        multi_thread(4).block_on(async {
            let mut lcg = Lcg(21);
            let tasks: Vec<_> = (0..40)
                .map(|k| {
                    let transport = transport.clone();
                    let start_after = Duration::from_millis(lcg.below(300));
                    let timeout = Duration::from_millis(100 + 25 * lcg.below(36));
                    tokio::spawn(async move {
                        tokio::time::sleep(start_after).await;
                        let (outcome, elapsed) = attempt(&transport, server, timeout).await;
                        (k, timeout, outcome, elapsed)
                    })
                })
                .collect();
            for task in tasks {
                let (k, timeout, outcome, elapsed) = task.await.expect("task");
                assert_timed_out_on_time(
                    &format!("attempt {k}"),
                    &outcome,
                    elapsed,
                    timeout,
                    300 * MS,
                );
            }
        });
    });
}

#[test]
fn an_attempt_started_while_the_timer_waits_for_a_later_deadline_ends_at_its_earlier_one() {
    within_watchdog(Duration::from_secs(30), || {
        let server = silent();
        let transport = transport();
        multi_thread(2).block_on(async {
            let long = tokio::spawn({
                let transport = transport.clone();
                async move { attempt(&transport, server, 2000 * MS).await }
            });
            tokio::time::sleep(100 * MS).await; // the timer is armed at the long deadline
            let (outcome, elapsed) = attempt(&transport, server, 200 * MS).await;
            assert_timed_out_on_time("short", &outcome, elapsed, 200 * MS, 250 * MS);
            // And one started while the timer is armed at an earlier deadline than its own.
            let (outcome, elapsed) = attempt(&transport, server, 500 * MS).await;
            assert_timed_out_on_time("after", &outcome, elapsed, 500 * MS, 250 * MS);
            let (outcome, elapsed) = long.await.expect("task");
            assert_timed_out_on_time("long", &outcome, elapsed, 2000 * MS, 300 * MS);
        });
    });
}

#[test]
fn attempts_starting_just_as_the_shared_timer_fires_end_by_their_own_deadline() {
    within_watchdog(Duration::from_secs(60), || {
        let server = silent();
        let transport = transport();
        multi_thread(4).block_on(async {
            for round in 0u64..25 {
                // A arms the timer at +30 ms; B..E start around the moment it fires, from
                // other workers, with deadlines before and after A's re-arm point.
                let a = tokio::spawn({
                    let transport = transport.clone();
                    async move { attempt(&transport, server, 30 * MS).await }
                });
                let others: Vec<_> = (0..4u64)
                    .map(|j| {
                        let transport = transport.clone();
                        let start = Duration::from_micros(29_000 + 500 * j + 37 * round);
                        let timeout = Duration::from_millis(20 + 15 * j);
                        tokio::spawn(async move {
                            let started = Instant::now();
                            while started.elapsed() < start {
                                tokio::task::yield_now().await;
                            }
                            (timeout, attempt(&transport, server, timeout).await)
                        })
                    })
                    .collect();
                let (outcome, elapsed) = a.await.expect("task");
                assert_timed_out_on_time(
                    &format!("A {round}"),
                    &outcome,
                    elapsed,
                    30 * MS,
                    250 * MS,
                );
                for (j, other) in others.into_iter().enumerate() {
                    let (timeout, (outcome, elapsed)) = other.await.expect("task");
                    assert_timed_out_on_time(
                        &format!("round {round} other {j}"),
                        &outcome,
                        elapsed,
                        timeout,
                        250 * MS,
                    );
                }
            }
        });
    });
}

fn refresh_input() -> RefreshInput {
    RefreshInput::builder()
        .refresh_token("CANARY-refresh-9f8e7d")
        .client_id("1example23456789abcdefghij")
        .client_secret("CANARYsecret1a2b3c4d5e6f7a8b9c")
        .build()
        .expect("valid")
}

fn call_config(attempt: Duration, total: Duration, max_attempts: u32) -> CallConfig {
    CallConfig {
        retry: RetryConfig {
            max_attempts,
            initial_backoff: 5 * MS,
            max_backoff: 10 * MS,
            ..RetryConfig::default()
        },
        timeouts: Timeouts {
            connect: Duration::from_secs(2),
            attempt,
            total,
        },
        ..CallConfig::default()
    }
}

fn client_on(
    transport: ReqwestTransport,
    address: SocketAddr,
    config: CallConfig,
) -> cogref_reqwest::Client {
    let endpoint = EndpointConfig::new()
        .endpoint_url(format!("http://{address}"))
        .resolve()
        .expect("endpoint");
    cogref_reqwest::Client::new(transport, cogref_reqwest::environment(), endpoint, config)
}

#[test]
fn retried_attempts_each_time_out_and_the_call_ends_by_its_total_deadline() {
    within_watchdog(Duration::from_secs(30), || {
        let server = silent();
        // Timeouts are retryable for the default policy only when the request may be resent;
        // whatever the policy decides, the call must end by the total deadline.
        let client = client_on(transport(), server, call_config(200 * MS, 500 * MS, 3));
        multi_thread(2).block_on(async {
            let started = Instant::now();
            let e = client.refresh(&refresh_input()).await.expect_err("timeout");
            let elapsed = started.elapsed();
            assert!(
                matches!(e.error(), Error::Transport(t) if t.kind() == TransportErrorKind::Timeout),
                "{e}"
            );
            assert!(elapsed >= 199 * MS, "{elapsed:?}");
            assert!(
                elapsed <= 800 * MS,
                "past the total deadline: {elapsed:?} ({e})"
            );
        });
    });
}

#[test]
fn an_attempt_ends_at_the_total_deadline_when_it_is_nearer_than_the_attempt_timeout() {
    within_watchdog(Duration::from_secs(30), || {
        let server = silent();
        let transport = transport();
        let client = client_on(
            transport.clone(),
            server,
            call_config(Duration::from_secs(5), 300 * MS, 1),
        );
        multi_thread(2).block_on(async {
            // A long attempt on the same transport arms the shared timer late first.
            let long = tokio::spawn({
                let transport = transport.clone();
                async move { attempt(&transport, server, 3000 * MS).await }
            });
            tokio::time::sleep(50 * MS).await;
            let started = Instant::now();
            let e = client.refresh(&refresh_input()).await.expect_err("timeout");
            let elapsed = started.elapsed();
            assert!(
                matches!(e.error(), Error::Transport(t) if t.kind() == TransportErrorKind::Timeout),
                "{e}"
            );
            assert!(elapsed >= 299 * MS && elapsed <= 600 * MS, "{elapsed:?}");
            long.abort();
        });
    });
}

#[test]
fn a_response_in_time_is_returned_while_other_attempts_keep_firing_the_timer() {
    within_watchdog(Duration::from_secs(30), || {
        let silent = silent();
        let slow = answering_after(150 * MS);
        let transport = transport();
        multi_thread(2).block_on(async {
            // Silent attempts whose deadlines fall every 10 ms around the answer's arrival.
            let noise: Vec<_> = (0..30u64)
                .map(|k| {
                    let transport = transport.clone();
                    tokio::spawn(async move {
                        attempt(&transport, silent, Duration::from_millis(50 + 10 * k)).await
                    })
                })
                .collect();
            for _ in 0..3 {
                let (outcome, elapsed) = attempt(&transport, slow, 600 * MS).await;
                let response = outcome.expect("answered in time");
                assert_eq!(response.status(), 200);
                assert!(elapsed >= 150 * MS, "{elapsed:?}");
            }
            for task in noise {
                assert!(is_timeout(&task.await.expect("task").0));
            }
        });
    });
}

// ---------------------------------------------------------------------------------------------
// Promise 3: no hang, no deadlock.

#[test]
fn hundreds_of_calls_through_clones_on_many_workers_all_end_by_their_deadlines() {
    within_watchdog(Duration::from_secs(90), || {
        let silent = silent();
        let slow = answering_after(100 * MS);
        let base = transport();
        let clones: Vec<_> = (0..4).map(|_| base.clone()).collect();
        multi_thread(16).block_on(async {
            let mut lcg = Lcg(7);
            let tasks: Vec<_> = (0..400usize)
                .map(|k| {
                    let transport = clones[k % clones.len()].clone();
                    let answers = k % 3 == 0;
                    let timeout = Duration::from_millis(300 + 50 * lcg.below(12));
                    let start_after = Duration::from_millis(lcg.below(400));
                    tokio::spawn(async move {
                        tokio::time::sleep(start_after).await;
                        let server = if answers { slow } else { silent };
                        let (outcome, elapsed) = attempt(&transport, server, timeout).await;
                        (k, answers, timeout, outcome, elapsed)
                    })
                })
                .collect();
            for task in tasks {
                let (k, answers, timeout, outcome, elapsed) = task.await.expect("task");
                if answers {
                    // 100 ms of server delay against >= 300 ms: a timeout here is spurious.
                    assert!(outcome.is_ok(), "call {k}: {outcome:?} after {elapsed:?}");
                } else {
                    // Generous: 2 cores, 16 workers, 400 calls.
                    assert_timed_out_on_time(
                        &format!("call {k}"),
                        &outcome,
                        elapsed,
                        timeout,
                        1500 * MS,
                    );
                }
            }
        });
    });
}

#[test]
fn calls_from_block_on_on_threads_outside_the_runtime_time_out_on_time() {
    within_watchdog(Duration::from_secs(30), || {
        let server = silent();
        let transport = transport();
        let runtime = multi_thread(2);
        // The first attempt (which picks the runtime of the shared timer) from block_on.
        let (outcome, elapsed) = runtime.block_on(attempt(&transport, server, 100 * MS));
        assert_timed_out_on_time("first", &outcome, elapsed, 100 * MS, 250 * MS);
        let threads: Vec<_> = (0..8u64)
            .map(|k| {
                let handle = runtime.handle().clone();
                let transport = transport.clone();
                std::thread::spawn(move || {
                    let timeout = Duration::from_millis(150 + 40 * k);
                    (
                        timeout,
                        handle.block_on(attempt(&transport, server, timeout)),
                    )
                })
            })
            .collect();
        for (k, thread) in threads.into_iter().enumerate() {
            let (timeout, (outcome, elapsed)) = thread.join().expect("thread");
            assert_timed_out_on_time(&format!("thread {k}"), &outcome, elapsed, timeout, 300 * MS);
        }
    });
}

#[test]
fn a_current_thread_runtime_times_out_concurrent_attempts_on_time() {
    within_watchdog(Duration::from_secs(30), || {
        let server = silent();
        let transport = transport();
        current_thread().block_on(async {
            let tasks: Vec<_> = [400u64, 100, 300, 200, 100, 500]
                .into_iter()
                .map(|ms| {
                    let transport = transport.clone();
                    tokio::spawn(async move {
                        let timeout = Duration::from_millis(ms);
                        (timeout, attempt(&transport, server, timeout).await)
                    })
                })
                .collect();
            for (k, task) in tasks.into_iter().enumerate() {
                let (timeout, (outcome, elapsed)) = task.await.expect("task");
                assert_timed_out_on_time(
                    &format!("task {k}"),
                    &outcome,
                    elapsed,
                    timeout,
                    250 * MS,
                );
            }
        });
    });
}

#[test]
fn a_paused_clock_times_out_an_attempt_at_its_deadline_without_hanging() {
    within_watchdog(Duration::from_secs(30), || {
        let server = silent();
        let transport = transport_without_connect_timeout();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .start_paused(true)
            .build()
            .expect("runtime");
        runtime.block_on(async {
            for timeout in [10u64, 3, 60] {
                let timeout = Duration::from_secs(timeout);
                let start = tokio::time::Instant::now();
                let outcome = transport.send(request(server), options(timeout)).await;
                assert!(is_timeout(&outcome), "{outcome:?}");
                // The paused clock jumps to the deadline: exactly there, not later.
                assert_eq!(start.elapsed().as_millis(), timeout.as_millis());
            }
        });
    });
}

#[test]
fn pausing_the_clock_after_real_time_attempts_still_times_out_later_ones() {
    within_watchdog(Duration::from_secs(30), || {
        let server = silent();
        let transport = transport_without_connect_timeout();
        current_thread().block_on(async {
            let (outcome, elapsed) = attempt(&transport, server, 100 * MS).await;
            assert_timed_out_on_time("real", &outcome, elapsed, 100 * MS, 250 * MS);
            // Leaves the shared timer armed at a real-time deadline 5 s ahead.
            let cancelled =
                tokio::time::timeout(20 * MS, attempt(&transport, server, Duration::from_secs(5)))
                    .await;
            assert!(cancelled.is_err());
            tokio::time::pause();
            let start = tokio::time::Instant::now();
            let outcome = transport
                .send(request(server), options(Duration::from_secs(30)))
                .await;
            assert!(is_timeout(&outcome), "{outcome:?}");
            assert_eq!(start.elapsed().as_secs(), 30);
        });
    });
}

// ---------------------------------------------------------------------------------------------
// Promise 4: cancellation.

#[test]
fn dropped_calls_leave_nothing_behind_and_later_attempts_time_out_on_time() {
    within_watchdog(Duration::from_secs(60), || {
        let server = silent();
        let transport = transport();
        multi_thread(4).block_on(async {
            // Many attempts dropped mid-wait, some with deadlines just before the drop (the
            // timer fires as they go), some long.
            for k in 0..300u64 {
                let timeout = if k % 2 == 0 {
                    Duration::from_secs(60)
                } else {
                    Duration::from_micros(1500 + 13 * k)
                };
                let dropped =
                    tokio::time::timeout(2 * MS, transport.send(request(server), options(timeout)))
                        .await;
                drop(dropped);
            }
            let tasks: Vec<_> = (0..10u64)
                .map(|k| {
                    let transport = transport.clone();
                    let timeout = Duration::from_millis(100 + 30 * k);
                    tokio::spawn(
                        async move { (timeout, attempt(&transport, server, timeout).await) },
                    )
                })
                .collect();
            for (k, task) in tasks.into_iter().enumerate() {
                let (timeout, (outcome, elapsed)) = task.await.expect("task");
                assert_timed_out_on_time(
                    &format!("after drops {k}"),
                    &outcome,
                    elapsed,
                    timeout,
                    300 * MS,
                );
            }
        });
    });
}

#[test]
fn aborting_tasks_mid_attempt_on_many_workers_does_not_disturb_the_others() {
    within_watchdog(Duration::from_secs(60), || {
        let server = silent();
        let transport = transport();
        multi_thread(8).block_on(async {
            let keep: Vec<_> = (0..20u64)
                .map(|k| {
                    let transport = transport.clone();
                    let timeout = Duration::from_millis(200 + 20 * k);
                    tokio::spawn(
                        async move { (timeout, attempt(&transport, server, timeout).await) },
                    )
                })
                .collect();
            let mut lcg = Lcg(3);
            for _ in 0..200 {
                let transport = transport.clone();
                let timeout = Duration::from_millis(1 + lcg.below(300));
                let task = tokio::spawn(async move { attempt(&transport, server, timeout).await });
                tokio::time::sleep(Duration::from_micros(lcg.below(2000))).await;
                task.abort();
            }
            for (k, task) in keep.into_iter().enumerate() {
                let (timeout, (outcome, elapsed)) = task.await.expect("task");
                assert_timed_out_on_time(
                    &format!("kept {k}"),
                    &outcome,
                    elapsed,
                    timeout,
                    400 * MS,
                );
            }
        });
    });
}

// ---------------------------------------------------------------------------------------------
// Promise 5: runtimes come and go.

#[test]
fn a_transport_outliving_its_first_runtime_mid_attempt_works_on_the_next_ones() {
    within_watchdog(Duration::from_secs(60), || {
        let server = silent();
        // Made outside any runtime.
        let transport = transport();
        let first = multi_thread(2);
        let (outcome, elapsed) = first.block_on(attempt(&transport, server, 100 * MS));
        assert_timed_out_on_time("first runtime", &outcome, elapsed, 100 * MS, 250 * MS);
        // Attempts in flight (and the shared timer armed) when the runtime goes.
        for _ in 0..5 {
            let transport = transport.clone();
            first.spawn(async move { attempt(&transport, server, Duration::from_secs(30)).await });
        }
        std::thread::sleep(50 * MS);
        drop(first);
        for (name, runtime) in [
            ("current_thread", current_thread()),
            ("multi_thread", multi_thread(2)),
        ] {
            runtime.block_on(async {
                let tasks: Vec<_> = [300u64, 100, 200]
                    .into_iter()
                    .map(|ms| {
                        let transport = transport.clone();
                        tokio::spawn(async move {
                            let timeout = Duration::from_millis(ms);
                            (timeout, attempt(&transport, server, timeout).await)
                        })
                    })
                    .collect();
                for task in tasks {
                    let (timeout, (outcome, elapsed)) = task.await.expect("task");
                    assert_timed_out_on_time(name, &outcome, elapsed, timeout, 250 * MS);
                }
            });
        }
        // Dropping the last clone (and with it the dead runtime's timer) inside another
        // runtime, and outside any.
        let clone = transport.clone();
        current_thread().block_on(async move { drop(clone) });
        drop(transport);
    });
}

#[test]
fn a_client_made_outside_any_runtime_times_out_on_each_runtime_it_is_used_on() {
    within_watchdog(Duration::from_secs(60), || {
        let server = silent();
        let client = client_on(transport(), server, call_config(150 * MS, 2000 * MS, 1));
        for round in 0..3 {
            let runtime = if round % 2 == 0 {
                multi_thread(2)
            } else {
                current_thread()
            };
            let started = Instant::now();
            let e = runtime
                .block_on(client.refresh(&refresh_input()))
                .expect_err("timeout");
            let elapsed = started.elapsed();
            assert!(
                matches!(e.error(), Error::Transport(t) if t.kind() == TransportErrorKind::Timeout),
                "round {round}: {e}"
            );
            assert!(
                elapsed >= 149 * MS && elapsed <= 500 * MS,
                "round {round}: {elapsed:?}"
            );
        }
    });
}

// ---------------------------------------------------------------------------------------------
// Promise 6: no secret in the timeout error.

#[test]
fn the_timeout_error_names_no_secret() {
    within_watchdog(Duration::from_secs(30), || {
        let server = silent();
        let client = client_on(transport(), server, call_config(100 * MS, 2000 * MS, 1));
        let e = multi_thread(2)
            .block_on(client.refresh(&refresh_input()))
            .expect_err("timeout");
        let mut texts = vec![format!("{e}"), format!("{e:?}"), format!("{e:#?}")];
        let mut source: Option<&dyn std::error::Error> = std::error::Error::source(&e);
        while let Some(s) = source {
            texts.push(format!("{s}"));
            texts.push(format!("{s:?}"));
            source = s.source();
        }
        for text in texts {
            assert!(!text.contains("CANARY"), "a secret in: {text}");
        }
    });
}

// ---------------------------------------------------------------------------------------------
// Expected failures on 2140fc4 (see the report).

/// Counts the polls of the future it wraps.
struct Counted<F> {
    inner: Pin<Box<F>>,
    polls: Arc<AtomicUsize>,
}

impl<F: Future> Future for Counted<F> {
    type Output = F::Output;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        self.polls.fetch_add(1, Ordering::Relaxed);
        self.inner.as_mut().poll(cx)
    }
}

/// The shared timer's firing wakes every waiting attempt (`Deadlines::fired`): an attempt
/// that waits while N others expire one by one is polled N times, and N attempts cost O(N²)
/// polls. With a timer of its own, a waiting attempt is polled a handful of times.
#[test]
fn a_waiting_attempt_is_not_woken_by_each_other_attempts_deadline() {
    within_watchdog(Duration::from_secs(30), || {
        let server = silent();
        let transport = transport();
        current_thread().block_on(async {
            let polls = Arc::new(AtomicUsize::new(0));
            let long = tokio::spawn(Counted {
                inner: Box::pin({
                    let transport = transport.clone();
                    async move {
                        transport
                            .send(request(server), options(Duration::from_secs(3)))
                            .await
                    }
                }),
                polls: polls.clone(),
            });
            tokio::time::sleep(50 * MS).await;
            let before = polls.load(Ordering::Relaxed);
            // 100 short attempts, deadlines 5 ms apart.
            let short: Vec<_> = (0..100u64)
                .map(|k| {
                    let transport = transport.clone();
                    tokio::spawn(async move {
                        attempt(&transport, server, Duration::from_millis(20 + 5 * k)).await
                    })
                })
                .collect();
            for task in short {
                assert!(is_timeout(&task.await.expect("task").0));
            }
            let during = polls.load(Ordering::Relaxed) - before;
            long.abort();
            assert!(
                during <= 10,
                "the waiting attempt was polled {during} times while 100 others expired"
            );
        });
    });
}

/// A panic inside `Deadlines::arm` (here: tokio's "timers are disabled", on a runtime built
/// without `enable_time`, with a reqwest client that needs no timer of its own) leaves
/// `State::armed` set with no timer behind it. Before 2140fc4 every attempt panicked the same
/// way; now only the first does, and every later attempt with a later deadline skips arming
/// and waits forever on a silent server.
#[test]
fn a_panic_while_arming_does_not_leave_later_attempts_without_a_deadline() {
    let server = silent();
    let transport = transport_without_connect_timeout();
    let runtime = Arc::new(
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_io()
            .build()
            .expect("runtime"),
    );
    let first = {
        let transport = transport.clone();
        runtime.block_on(async move {
            tokio::spawn(async move { transport.send(request(server), options(200 * MS)).await })
                .await
        })
    };
    assert!(
        first.as_ref().is_err_and(|e| e.is_panic()),
        "tokio refuses a timer on a runtime without one: {first:?}"
    );
    // The second attempt must end too: panic (as the first did) or time out, not hang.
    let (done, ended) = std::sync::mpsc::channel();
    {
        let runtime = runtime.clone();
        std::thread::spawn(move || {
            let second = runtime.block_on(async move {
                tokio::spawn(
                    async move { transport.send(request(server), options(200 * MS)).await },
                )
                .await
            });
            let _ = done.send(
                second
                    .map(|outcome| is_timeout(&outcome))
                    .map_err(|e| e.is_panic()),
            );
        });
    }
    let second = ended.recv_timeout(Duration::from_secs(5));
    assert!(
        second.is_ok(),
        "the second attempt (200 ms timeout) was still waiting after 5 s: no timer serves it"
    );
}

// ---------------------------------------------------------------------------------------------
// Promise 6: no panic on extreme timeouts; one text for one error.

#[test]
fn extreme_timeouts_neither_panic_nor_end_an_answered_attempt_early() {
    within_watchdog(Duration::from_secs(30), || {
        let silent = silent();
        let answering = answering_after(50 * MS);
        let transport = transport();
        multi_thread(2).block_on(async {
            // Zero and a nanosecond: a timeout at once, no panic.
            for timeout in [Duration::ZERO, Duration::from_nanos(1)] {
                let (outcome, _) = attempt(&transport, silent, timeout).await;
                assert!(is_timeout(&outcome), "{timeout:?}: {outcome:?}");
            }
            // Past what an Instant can hold (the fallback path), and a century (the shared
            // timer clamps it): the answer is returned.
            for timeout in [Duration::MAX, Duration::from_secs(100 * 365 * 24 * 3600)] {
                let (outcome, _) = attempt(&transport, answering, timeout).await;
                assert_eq!(outcome.expect("answered").status(), 200, "{timeout:?}");
            }
            // The century deadline armed nothing that delays a short one.
            let (outcome, elapsed) = attempt(&transport, silent, 100 * MS).await;
            assert_timed_out_on_time("short after huge", &outcome, elapsed, 100 * MS, 250 * MS);
        });
    });
}

/// Full text of an error: Display, then each source's Display.
fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(" <- ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// The shared timer's `Elapsed` says "the attempt's deadline has elapsed"; the fallback's
/// tokio `Elapsed` says "deadline has elapsed": the same timeout reads differently on the
/// first attempt's runtime and on any other.
#[test]
fn a_timeout_reads_the_same_on_every_runtime() {
    within_watchdog(Duration::from_secs(30), || {
        let server = silent();
        let transport = transport();
        let text = |runtime: &tokio::runtime::Runtime| {
            let (outcome, _) = runtime.block_on(attempt(&transport, server, 50 * MS));
            chain(&outcome.expect_err("timeout"))
        };
        let first = current_thread();
        let on_first = text(&first);
        let on_second = text(&current_thread());
        assert_eq!(on_first, on_second);
    });
}

// ---------------------------------------------------------------------------------------------
// Promise 5, resources: a runtime gone stays gone.

/// How many epoll instances this process has open (each tokio runtime's IO driver owns one).
#[cfg(target_os = "linux")]
fn epoll_fds() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .expect("/proc/self/fd")
        .flatten()
        .filter(|entry| {
            std::fs::read_link(entry.path())
                .is_ok_and(|target| target.to_string_lossy().contains("eventpoll"))
        })
        .count()
}

/// `Deadlines` keeps a `Handle` of the first attempt's runtime for as long as the transport
/// lives (`deadline.rs:33`), and with it that runtime's driver: its epoll instance, eventfd,
/// timer wheel and IO slab stay open after the runtime is dropped. A transport made outside any
/// runtime held none of it before.
#[cfg(target_os = "linux")]
#[test]
fn a_transport_does_not_keep_a_dropped_runtimes_driver_open() {
    let server = silent();
    let before = epoll_fds();
    let transports: Vec<_> = (0..30)
        .map(|_| {
            let transport = transport(); // outside any runtime
            let runtime = current_thread();
            let (outcome, _) = runtime.block_on(attempt(&transport, server, Duration::ZERO));
            assert!(is_timeout(&outcome), "{outcome:?}");
            drop(runtime);
            transport
        })
        .collect();
    let held = epoll_fds().saturating_sub(before);
    drop(transports);
    // Other tests' runtimes come and go meanwhile: a margin well under 30.
    assert!(
        held < 10,
        "{held} epoll instances of dropped runtimes still open while 30 transports live"
    );
}

/// A future that first spends its task's coop budget (as a loop draining a busy channel
/// would), then polls `call`: every poll of it reaches `call` with no budget left.
async fn polled_with_budget_spent<F: Future>(call: F) -> F::Output {
    let mut call = Box::pin(call);
    std::future::poll_fn(|cx| {
        loop {
            let mut spend = Box::pin(tokio::task::consume_budget());
            if spend.as_mut().poll(cx).is_pending() {
                break;
            }
        }
        call.as_mut().poll(cx)
    })
    .await
}

/// An attempt polled by a task whose coop budget is spent: `Deadlines::arm` polls the shared
/// timer inside that task, tokio's `poll_proceed` refuses and wakes the timer's waker (the
/// `Alarm`) instead of registering it, so `fired` runs and wakes every waiting attempt of the
/// transport; they re-arm, the starved task arms again on its next poll, and so on: every
/// attempt spins with it. Before 2140fc4 only the starved task spun (on its own `Sleep`).
#[test]
fn a_task_polling_with_its_budget_spent_does_not_make_other_attempts_spin() {
    within_watchdog(Duration::from_secs(30), || {
        let server = silent();
        let transport = transport();
        multi_thread(2).block_on(async {
            let polls = Arc::new(AtomicUsize::new(0));
            let bystanders: Vec<_> = (0..5)
                .map(|_| {
                    let transport = transport.clone();
                    tokio::spawn(Counted {
                        inner: Box::pin(async move {
                            transport
                                .send(request(server), options(Duration::from_secs(3)))
                                .await
                        }),
                        polls: polls.clone(),
                    })
                })
                .collect();
            tokio::time::sleep(100 * MS).await;
            let before = polls.load(Ordering::Relaxed);
            let starved = tokio::spawn({
                let transport = transport.clone();
                async move {
                    polled_with_budget_spent(transport.send(request(server), options(300 * MS)))
                        .await
                }
            });
            tokio::time::sleep(400 * MS).await;
            starved.abort();
            let during = polls.load(Ordering::Relaxed) - before;
            for task in &bystanders {
                task.abort();
            }
            assert!(
                during <= 50,
                "5 waiting attempts were polled {during} times while another task starved"
            );
        });
    });
}

/// What 2140fc4 improved: `within` checks the clock itself, so an attempt polled only with its
/// budget spent still ends at its deadline (tokio's `Timeout` polls its `Sleep`, which coop
/// refuses on every such poll: before 2140fc4 this attempt never ended).
#[test]
fn an_attempt_polled_with_its_budget_spent_still_ends_at_its_deadline() {
    within_watchdog(Duration::from_secs(30), || {
        let server = silent();
        let transport = transport();
        multi_thread(2).block_on(async {
            let started = Instant::now();
            let outcome =
                polled_with_budget_spent(transport.send(request(server), options(300 * MS))).await;
            assert_timed_out_on_time("starved", &outcome, started.elapsed(), 300 * MS, 300 * MS);
        });
    });
}

/// On a paused clock the shared timer's firing and other timers' firings land in the same
/// driver turn: attempts started by a task woken at the very instant the timer fires (and a
/// microsecond either side) still end exactly at their own deadlines.
#[test]
fn attempts_started_at_the_instant_the_timer_fires_end_at_their_own_deadline_on_a_paused_clock() {
    within_watchdog(Duration::from_secs(30), || {
        let server = silent();
        let transport = transport_without_connect_timeout();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .start_paused(true)
            .build()
            .expect("runtime");
        runtime.block_on(async {
            let start = tokio::time::Instant::now();
            let first = tokio::spawn({
                let transport = transport.clone();
                async move {
                    let outcome = transport
                        .send(request(server), options(Duration::from_secs(10)))
                        .await;
                    (outcome, start.elapsed())
                }
            });
            let starters: Vec<_> = [-1000i64, -1, 0, 1, 1000]
                .into_iter()
                .flat_map(|offset_us| [(offset_us, 3u64), (offset_us, 17)])
                .map(|(offset_us, seconds)| {
                    let transport = transport.clone();
                    tokio::spawn(async move {
                        let at = start + Duration::from_secs(10);
                        let at = if offset_us < 0 {
                            at - Duration::from_micros(offset_us.unsigned_abs())
                        } else {
                            at + Duration::from_micros(offset_us.unsigned_abs())
                        };
                        tokio::time::sleep_until(at).await;
                        let began = tokio::time::Instant::now();
                        let timeout = Duration::from_secs(seconds);
                        let outcome = transport.send(request(server), options(timeout)).await;
                        (offset_us, timeout, outcome, began.elapsed())
                    })
                })
                .collect();
            let (outcome, elapsed) = first.await.expect("task");
            assert!(is_timeout(&outcome), "{outcome:?}");
            assert!(
                elapsed >= 10 * 1000 * MS && elapsed < 10 * 1000 * MS + 2 * MS,
                "{elapsed:?}"
            );
            for starter in starters {
                let (offset_us, timeout, outcome, elapsed) = starter.await.expect("task");
                assert!(is_timeout(&outcome), "{offset_us} us: {outcome:?}");
                assert!(
                    elapsed >= timeout && elapsed < timeout + 2 * MS,
                    "started {offset_us} us from the firing, {timeout:?}: ended after {elapsed:?}"
                );
            }
        });
    });
}
