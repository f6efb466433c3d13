//! No refresh storm, for any token lifetime (0 included), any margin, any calling pattern and any
//! failures: the real manager's Cognito calls stay within
//!
//! ```text
//! calls ≤ failures + 1 + ⌊T / max(F, L′ − m)⌋          (+1 for the call that ends a background run)
//! ```
//!
//! over a span `T`, where `F` is the floor between refreshes (`min_refresh_interval`, 1 s),
//! `L′ = L − 1 s` the token's lifetime as counted locally (`ExpiresIn: L`), and
//! `m = min(margin, L′ / 2)` the margin in force: one refresh per due time, each at least the floor
//! after the last, plus one per failure.

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use cogref_core::driver::{HttpRequest, HttpResponse, ManualEnvironment};
use cogref_core::{BlockingTransport, Environment, Error, SendOptions, SessionConfig};
use cogref_session::{BlockingTokenManager, MemoryStore};
use common::*;
use proptest::prelude::*;

/// Cognito with a fixed token lifetime, failing the calls whose number is in `failing`, and
/// ending the session (a revoked token) once the clock passes `until`.
#[derive(Clone)]
struct FixedLifetime {
    clock: ManualEnvironment,
    expires_in: u32,
    failing: Arc<Vec<bool>>,
    until: SystemTime,
    calls: Arc<Mutex<(usize, usize)>>,
}

impl BlockingTransport for FixedLifetime {
    fn send(&self, _: HttpRequest, _: SendOptions) -> Result<HttpResponse, Error> {
        let mut counts = self.calls.lock().expect("calls");
        counts.0 += 1;
        let n = counts.0;
        let (status, body) = if self.clock.wall_clock() >= self.until || n > 100_000 {
            err(400, "NotAuthorizedException")
        } else if self.failing.get(n - 1).copied().unwrap_or(false) {
            counts.1 += 1;
            err(500, "InternalErrorException")
        } else {
            ok("a", self.expires_in, Some("r"))
        };
        Ok(cogref_core::http::Response::builder()
            .status(status)
            .body(body.into_bytes())
            .expect("response"))
    }

    fn sleep(&self, duration: Duration) {
        self.clock.advance(duration);
    }
}

fn bound(span: Duration, expires_in: u32, margin: Duration) -> usize {
    let floor = SessionConfig::default().min_refresh_interval;
    let lifetime =
        Duration::from_secs(u64::from(expires_in)).saturating_sub(Duration::from_secs(1));
    let interval = floor.max(lifetime.saturating_sub(margin.min(lifetime / 2)));
    1 + (span.as_millis() / interval.as_millis()) as usize
}

fn setup(
    expires_in: u32,
    margin_secs: u64,
    failing: Vec<bool>,
    span: Duration,
) -> (
    ManualEnvironment,
    FixedLifetime,
    BlockingTokenManager<FixedLifetime, ManualEnvironment, MemoryStore>,
) {
    let clock = clock();
    let transport = FixedLifetime {
        clock: clock.clone(),
        expires_in,
        failing: Arc::new(failing),
        until: UNIX_EPOCH + Duration::from_secs(T0) + span,
        calls: Arc::default(),
    };
    let config = SessionConfig {
        refresh_margin: Duration::from_secs(margin_secs),
        ..SessionConfig::default()
    };
    let manager = BlockingTokenManager::builder(
        client(transport.clone(), &clock),
        template("r0"),
        MemoryStore::new(),
    )
    .session_config(config)
    .build()
    .expect("manager");
    (clock, transport, manager)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn callers_never_cause_more_calls_than_expiries_plus_failures(
        expires_in in prop_oneof![0u32..=3, 4u32..=120, 121u32..=7200],
        margin_secs in 0u64..=900,
        failing in proptest::collection::vec(proptest::bool::weighted(0.2), 0..64),
        span_secs in 1u64..=3 * 3600,
        polls in 1u64..=4000,
    ) {
        let span = Duration::from_secs(span_secs);
        let (clock, transport, manager) = setup(expires_in, margin_secs, failing, span);
        // Polls spread over the span (at least a millisecond apart), none past it.
        let step = (span / u32::try_from(polls).unwrap_or(u32::MAX)).max(Duration::from_millis(1));
        let polls = polls.min(u64::try_from(span.as_millis() / step.as_millis()).unwrap_or(u64::MAX));
        for _ in 0..polls {
            let _ = manager.access_token();
            clock.advance(step);
        }
        let (calls, failures) = *transport.calls.lock().expect("calls");
        let limit = failures + bound(span, expires_in, Duration::from_secs(margin_secs));
        prop_assert!(calls <= limit, "{calls} calls > {limit} (failures {failures})");
    }

    #[test]
    fn the_background_refresher_never_makes_more_calls_than_expiries_plus_failures(
        expires_in in prop_oneof![0u32..=3, 4u32..=120, 121u32..=7200],
        margin_secs in 0u64..=900,
        failing in proptest::collection::vec(proptest::bool::weighted(0.2), 0..64),
        span_secs in 1u64..=3 * 3600,
    ) {
        let span = Duration::from_secs(span_secs);
        let (_clock, transport, manager) = setup(expires_in, margin_secs, failing, span);
        Arc::new(manager).spawn_background().join().expect("background");
        let (calls, failures) = *transport.calls.lock().expect("calls");
        // One more: the call that finds the session over and ends the run.
        let limit = failures + 1 + bound(span, expires_in, Duration::from_secs(margin_secs));
        prop_assert!(calls <= limit, "{calls} calls > {limit} (failures {failures})");
    }
}
