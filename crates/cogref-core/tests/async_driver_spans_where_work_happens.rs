//! Hostile review of commit 2041672, its second part: the async driver enters its spans where
//! work happens instead of around the whole loop. In a test binary of its own, as
//! `driver_spans.rs`: tracing caches each callsite's interest process-wide, and a callsite first
//! reached by a test on another thread while a scoped subscriber is being set up can keep the
//! interest "never" (the escape tests of `escapes_of_every_notation.rs` run refreshes with no subscriber).

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant, SystemTime};

use cogref_core::driver::{HttpRequest, HttpResponse, ManualEnvironment};
use cogref_core::{
    CallConfig, Client, EndpointConfig, Error, RefreshInput, RetryConfig, SendOptions,
};

fn now() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000)
}

// ---------------------------------------------------------------------------------------------
// Change 2: the async driver's spans.

use tracing::Subscriber;
use tracing::span::{Attributes, Id};
use tracing_subscriber::Layer;
use tracing_subscriber::layer::{Context as LayerContext, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;

/// What a subscriber saw: each event's message and span scope (root first), each span's
/// ancestry when made, and how many times each span name closed.
#[derive(Default, Debug)]
struct Seen {
    events: Vec<(String, Vec<String>)>,
    spans: Vec<(String, Vec<String>)>,
    closes: HashMap<String, usize>,
}

#[derive(Clone, Default)]
struct Recorder(Arc<Mutex<Seen>>);

struct Message(String);
impl tracing::field::Visit for Message {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.0 = format!("{value:?}");
        }
    }
}

impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for Recorder {
    fn on_new_span(&self, _: &Attributes<'_>, id: &Id, ctx: LayerContext<'_, S>) {
        let span = ctx.span(id).expect("span");
        let scope: Vec<String> = span
            .scope()
            .from_root()
            .map(|s| s.name().to_owned())
            .collect();
        self.0
            .lock()
            .expect("seen")
            .spans
            .push((span.name().to_owned(), scope));
    }
    fn on_event(&self, event: &tracing::Event<'_>, ctx: LayerContext<'_, S>) {
        let mut message = Message(String::new());
        event.record(&mut message);
        let scope = ctx
            .event_scope(event)
            .map(|s| s.from_root().map(|s| s.name().to_owned()).collect())
            .unwrap_or_default();
        self.0.lock().expect("seen").events.push((message.0, scope));
    }
    fn on_close(&self, id: Id, ctx: LayerContext<'_, S>) {
        let name = ctx.span(&id).expect("span").name().to_owned();
        *self.0.lock().expect("seen").closes.entry(name).or_default() += 1;
    }
}

impl Seen {
    fn scope_of(&self, message: &str) -> Vec<String> {
        self.events
            .iter()
            .find(|(m, _)| m.contains(message))
            .unwrap_or_else(|| panic!("no {message:?} in {self:#?}"))
            .1
            .clone()
    }
}

fn poll_once<F: Future + ?Sized>(future: std::pin::Pin<&mut F>) -> Poll<F::Output> {
    future.poll(&mut Context::from_waker(std::task::Waker::noop()))
}

fn run<F: Future>(future: F) -> F::Output {
    let mut future = std::pin::pin!(future);
    loop {
        if let Poll::Ready(output) = poll_once(future.as_mut()) {
            return output;
        }
    }
}

fn answer(status: u16, body: &str) -> Result<HttpResponse, Error> {
    Ok(http::Response::builder()
        .status(status)
        .body(body.as_bytes().to_vec())
        .expect("response"))
}

fn endpoint() -> cogref_core::endpoint::Endpoint {
    EndpointConfig::new()
        .region("eu-west-1")
        .resolve()
        .expect("endpoint")
}

fn input(token: &str) -> RefreshInput {
    RefreshInput::builder()
        .refresh_token(token)
        .client_id("client")
        .build()
        .expect("input")
}

fn config(max_attempts: u32) -> CallConfig {
    CallConfig {
        retry: RetryConfig {
            max_attempts,
            initial_backoff: Duration::from_millis(10),
            ..RetryConfig::default()
        },
        ..CallConfig::default()
    }
}

/// A future that logs `message` each time it is polled, Pending `pending` times, then `output`.
struct Logs<T> {
    message: &'static str,
    pending: usize,
    output: Option<T>,
}
impl<T: Unpin> Future for Logs<T> {
    type Output = T;
    fn poll(mut self: std::pin::Pin<&mut Self>, _: &mut Context<'_>) -> Poll<T> {
        tracing::info!(target: "transport", "{}", self.message);
        if self.pending > 0 {
            self.pending -= 1;
            return Poll::Pending;
        }
        Poll::Ready(self.output.take().expect("polled after ready"))
    }
}
impl<T> Drop for Logs<T> {
    fn drop(&mut self) {
        tracing::info!(target: "transport", "dropped {}", self.message);
    }
}

fn with_recorder<R>(filter_call_span: bool, f: impl FnOnce() -> R) -> (R, Seen) {
    let recorder = Recorder::default();
    let seen = recorder.0.clone();
    let subscriber = tracing_subscriber::registry().with(recorder.with_filter(
        tracing_subscriber::filter::filter_fn(move |m| {
            !(filter_call_span && m.name() == "cogref.refresh")
        }),
    ));
    let out = tracing::subscriber::with_default(subscriber, || {
        tracing::callsite::rebuild_interest_cache();
        f()
    });
    let seen = std::mem::take(&mut *seen.lock().expect("seen"));
    (out, seen)
}

fn names(all: &[&str]) -> Vec<String> {
    all.iter().map(|s| (*s).to_owned()).collect()
}

/// A refresh whose send and sleep futures log when polled: a 500 then a 400.
fn polled_refresh() -> impl FnOnce() {
    || {
        let script = Arc::new(Mutex::new(vec![
            answer(400, r#"{"__type":"NotAuthorizedException","message":"no"}"#),
            Err(cogref_core::TransportError::new(
                cogref_core::TransportErrorKind::Connect,
                "connection refused",
            )
            .not_sent()
            .into()),
        ]));
        let clock = ManualEnvironment::new(Instant::now(), now());
        let sleeper = clock.clone();
        let transport = cogref_core::driver::transport_fn(
            move |_: HttpRequest, _: SendOptions| {
                tracing::info!(target: "transport", "send called");
                Logs {
                    message: "send polled",
                    pending: 2,
                    output: Some(script.lock().expect("script").pop().expect("scripted")),
                }
            },
            move |d: Duration| {
                tracing::info!(target: "transport", "sleep called");
                sleeper.advance(d);
                Logs {
                    message: "sleep polled",
                    pending: 1,
                    output: Some(()),
                }
            },
        );
        let client = Client::new(transport, clock, endpoint(), config(3));
        let app = tracing::info_span!("app.request");
        let out = run(tracing::Instrument::instrument(
            client.refresh(&input("a-refresh-token.0123456789")),
            app,
        ));
        assert!(out.is_err());
        tracing::info!("after the call");
    }
}

#[test]
fn transport_events_and_cogrefs_own_have_the_callers_ancestry() {
    let ((), seen) = with_recorder(false, polled_refresh());
    let all = names(&["app.request", "cogref.refresh", "cogref.attempt"]);
    for m in [
        "send called",
        "send polled",
        "dropped send polled",
        "attempt failed",
    ] {
        assert_eq!(seen.scope_of(m), all, "{m}: {seen:#?}");
    }
    for m in [
        "sleep called",
        "sleep polled",
        "dropped sleep polled",
        "refresh failed",
    ] {
        assert_eq!(seen.scope_of(m), all[..2], "{m}: {seen:#?}");
    }
    assert!(seen.scope_of("after the call").is_empty(), "{seen:#?}");
    for (name, scope) in &seen.spans {
        if name.starts_with("cogref") {
            assert_eq!(scope[0], "app.request", "{name} made a root: {seen:#?}");
        }
    }
    assert_eq!(seen.closes.get("cogref.refresh"), Some(&1), "{seen:#?}");
    assert_eq!(seen.closes.get("cogref.attempt"), Some(&2), "{seen:#?}");
    assert_eq!(seen.closes.get("app.request"), Some(&1), "{seen:#?}");
}

#[test]
fn with_the_call_span_filtered_out_everything_stays_in_the_callers_span() {
    let ((), seen) = with_recorder(true, polled_refresh());
    let two = names(&["app.request", "cogref.attempt"]);
    for m in ["send called", "send polled", "attempt failed"] {
        assert_eq!(seen.scope_of(m), two, "{m}: {seen:#?}");
    }
    for m in ["sleep called", "sleep polled", "refresh failed"] {
        assert_eq!(seen.scope_of(m), two[..1], "{m}: {seen:#?}");
    }
    assert_eq!(seen.closes.get("cogref.attempt"), Some(&2), "{seen:#?}");
    assert!(!seen.closes.contains_key("cogref.refresh"), "{seen:#?}");
}

/// A subscriber-wide filter (not a per-layer one) that disables the call span: its
/// `in_scope` enters nothing, and the attempts are the caller span's children.
#[test]
fn with_the_call_span_disabled_globally_attempts_are_the_callers_children() {
    let recorder = Recorder::default();
    let seen = recorder.0.clone();
    let subscriber = tracing_subscriber::registry()
        .with(tracing_subscriber::filter::filter_fn(|m| {
            m.name() != "cogref.refresh"
        }))
        .with(recorder);
    tracing::subscriber::with_default(subscriber, || {
        tracing::callsite::rebuild_interest_cache();
        polled_refresh()();
    });
    let seen = std::mem::take(&mut *seen.lock().expect("seen"));
    let two = names(&["app.request", "cogref.attempt"]);
    assert_eq!(seen.scope_of("send polled"), two, "{seen:#?}");
    assert_eq!(seen.scope_of("sleep polled"), two[..1], "{seen:#?}");
    assert_eq!(seen.closes.get("cogref.attempt"), Some(&2), "{seen:#?}");
}

/// A refresh future dropped while its send is pending: every span closes once, and nothing
/// after it on this thread is attributed to a cogref span.
#[test]
fn a_refresh_dropped_mid_send_leaves_no_span_entered() {
    let ((), seen) = with_recorder(false, || {
        let transport = cogref_core::driver::transport_fn(
            |_: HttpRequest, _: SendOptions| Logs {
                message: "send polled",
                pending: usize::MAX,
                output: Some(answer(200, "{}")),
            },
            |_: Duration| async {},
        );
        let client = Client::new(
            transport,
            ManualEnvironment::new(Instant::now(), now()),
            endpoint(),
            config(3),
        );
        let input = input("a-refresh-token.0123456789");
        {
            let app = tracing::info_span!("app.request");
            let mut future = Box::pin(tracing::Instrument::instrument(client.refresh(&input), app));
            assert!(poll_once(future.as_mut()).is_pending());
            assert!(poll_once(future.as_mut()).is_pending());
            tracing::info!("between polls");
            drop(future);
        }
        tracing::info!("after the drop");
        assert!(tracing::Span::current().is_none());
    });
    assert!(seen.scope_of("between polls").is_empty(), "{seen:#?}");
    assert!(seen.scope_of("after the drop").is_empty(), "{seen:#?}");
    assert_eq!(
        seen.scope_of("send polled"),
        names(&["app.request", "cogref.refresh", "cogref.attempt"])
    );
    for name in ["app.request", "cogref.refresh", "cogref.attempt"] {
        assert_eq!(seen.closes.get(name), Some(&1), "{name}: {seen:#?}");
    }
}

/// A transport whose send refreshes with another client, both inside `send` (blocking on it)
/// and inside its future (awaiting it): the inner call nests in the outer attempt.
#[test]
fn a_refresh_inside_a_transports_send_nests_in_the_outer_attempt() {
    let ((), seen) = with_recorder(false, || {
        let inner = Arc::new(Client::new(
            cogref_core::driver::transport_fn(
                |_: HttpRequest, _: SendOptions| {
                    tracing::info!("inner send");
                    Logs {
                        message: "inner polled",
                        pending: 1,
                        output: Some(answer(
                            400,
                            r#"{"__type":"NotAuthorizedException","message":"no"}"#,
                        )),
                    }
                },
                |_: Duration| async {},
            ),
            ManualEnvironment::new(Instant::now(), now()),
            endpoint(),
            config(1),
        ));
        let in_send = inner.clone();
        let outer = Client::new(
            cogref_core::driver::transport_fn(
                move |_: HttpRequest, _: SendOptions| {
                    let input = input("inner-refresh-token.0123456789");
                    let _ = run(in_send.refresh(&input));
                    let in_future = in_send.clone();
                    async move {
                        let input = input;
                        let _ = in_future.refresh(&input).await;
                        tracing::info!("outer after inner");
                        answer(400, r#"{"__type":"NotAuthorizedException","message":"no"}"#)
                    }
                },
                |_: Duration| async {},
            ),
            ManualEnvironment::new(Instant::now(), now()),
            endpoint(),
            config(1),
        );
        let app = tracing::info_span!("app.request");
        let out = run(tracing::Instrument::instrument(
            outer.refresh(&input("outer-refresh-token.0123456789")),
            app,
        ));
        assert!(out.is_err());
    });
    let nested = names(&[
        "app.request",
        "cogref.refresh",
        "cogref.attempt",
        "cogref.refresh",
        "cogref.attempt",
    ]);
    let inner_events: Vec<_> = seen
        .events
        .iter()
        .filter(|(m, _)| m.starts_with("inner"))
        .collect();
    assert!(inner_events.len() >= 4, "{seen:#?}");
    for (m, scope) in inner_events {
        assert_eq!(scope, &nested, "{m}: {seen:#?}");
    }
    assert_eq!(seen.scope_of("outer after inner"), nested[..3], "{seen:#?}");
    let inner_failed: Vec<_> = seen
        .events
        .iter()
        .filter(|(m, _)| m.contains("refresh failed"))
        .map(|(_, s)| s.len())
        .collect();
    assert_eq!(inner_failed, [4, 4, 2], "{seen:#?}");
    assert_eq!(seen.closes.get("cogref.refresh"), Some(&3), "{seen:#?}");
    assert_eq!(seen.closes.get("cogref.attempt"), Some(&3), "{seen:#?}");
}

/// The blocking driver: the same ancestry as before.
#[test]
fn the_blocking_path_keeps_its_ancestry() {
    let ((), seen) = with_recorder(false, || {
        let script = Arc::new(Mutex::new(vec![
            answer(400, r#"{"__type":"NotAuthorizedException","message":"no"}"#),
            Err(cogref_core::TransportError::new(
                cogref_core::TransportErrorKind::Connect,
                "connection refused",
            )
            .not_sent()
            .into()),
        ]));
        let client = Client::new(
            move |_: HttpRequest, _: SendOptions| {
                tracing::info!("blocking send");
                script.lock().expect("script").pop().expect("scripted")
            },
            ManualEnvironment::new(Instant::now(), now()),
            endpoint(),
            CallConfig {
                retry: RetryConfig {
                    max_attempts: 3,
                    initial_backoff: Duration::ZERO,
                    ..RetryConfig::default()
                },
                ..CallConfig::default()
            },
        );
        let _app = tracing::info_span!("app.request").entered();
        assert!(
            client
                .refresh_blocking(&input("a-refresh-token.0123456789"))
                .is_err()
        );
    });
    let all = names(&["app.request", "cogref.refresh", "cogref.attempt"]);
    assert_eq!(seen.scope_of("blocking send"), all, "{seen:#?}");
    assert_eq!(seen.scope_of("attempt failed"), all, "{seen:#?}");
    assert_eq!(seen.scope_of("refresh failed"), all[..2], "{seen:#?}");
    assert_eq!(seen.closes.get("cogref.refresh"), Some(&1), "{seen:#?}");
    assert_eq!(seen.closes.get("cogref.attempt"), Some(&2), "{seen:#?}");
}

/// A refresh future dropped while its sleep is pending: its spans close once each, nothing
/// after on this thread is attributed to them.
#[test]
fn a_refresh_dropped_mid_sleep_leaves_no_span_entered() {
    let ((), seen) = with_recorder(false, || {
        let transport = cogref_core::driver::transport_fn(
            |_: HttpRequest, _: SendOptions| {
                std::future::ready(Err(cogref_core::TransportError::new(
                    cogref_core::TransportErrorKind::Connect,
                    "connection refused",
                )
                .not_sent()
                .into()))
            },
            |_: Duration| Logs {
                message: "sleep polled",
                pending: usize::MAX,
                output: Some(()),
            },
        );
        let client = Client::new(
            transport,
            ManualEnvironment::new(Instant::now(), now()),
            endpoint(),
            config(3),
        );
        let input = input("a-refresh-token.0123456789");
        {
            let app = tracing::info_span!("app.request");
            let mut future = Box::pin(tracing::Instrument::instrument(client.refresh(&input), app));
            assert!(poll_once(future.as_mut()).is_pending());
            drop(future);
        }
        tracing::info!("after the drop");
    });
    assert!(seen.scope_of("after the drop").is_empty(), "{seen:#?}");
    assert_eq!(
        seen.scope_of("dropped sleep polled"),
        names(&["app.request", "cogref.refresh"])
    );
    for name in ["app.request", "cogref.refresh", "cogref.attempt"] {
        assert_eq!(seen.closes.get(name), Some(&1), "{name}: {seen:#?}");
    }
}
