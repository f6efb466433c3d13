//! Keeping an HTTP library's own logs away from the application's `tracing` subscriber while it
//! carries a refresh.
//!
//! HTTP libraries log the bytes they move when asked to: isahc emits every header and body
//! chunk as `isahc::wire` TRACE events (inside the caller's spans), and ureq writes hex dumps of
//! them to the `log` crate at TRACE, which `tracing-log` forwards to the subscriber. Those bytes
//! hold the refresh token, the client secret and every token of the answer. A transport
//! therefore runs its library's work through [`quietly`] (blocking) or [`quiet`] (async):
//! during that work the thread's default dispatcher is one that takes nothing, so neither the
//! library's events nor `log` records forwarded by `tracing-log` reach the application's
//! subscriber. cogref's own spans and events are made outside it and are unaffected.
//!
//! Two details make this hold against a subscriber that wants everything:
//!
//! - A callsite whose interest is cached as "always" skips the `enabled` check and is handed to
//!   the current dispatcher, which drops it: fine for events. But isahc decides whether libcurl
//!   produces its debug data at all from whether a span it creates is disabled, so its callsites
//!   must be asked each time ("sometimes"): the silent subscriber registers itself once, answering
//!   "sometimes" for isahc's callsites and "always" for all others (which leaves the interest the
//!   application's subscriber gave those unchanged in the common case).
//! - The silent subscriber's maximum level is `OFF`, so it never raises the global level hint.
//!
//! A logger of the `log` crate that is not bridged to `tracing` (`env_logger`, for example) is
//! beyond any library's reach: keep `isahc::wire` and `ureq_proto` below TRACE in such a logger
//! (ureq documents its TRACE output as "wire level debug. NOT REDACTED").

use std::future::Future;
use std::pin::Pin;
use std::sync::OnceLock;
use std::task::{Context, Poll};

use tracing::level_filters::LevelFilter;
use tracing::subscriber::Interest;
use tracing::{Dispatch, Event, Metadata, Subscriber, span};

/// A subscriber that takes nothing (see the module docs for its interest answers).
struct Silent;

impl Subscriber for Silent {
    fn register_callsite(&self, metadata: &'static Metadata<'static>) -> Interest {
        if metadata.target().starts_with("isahc") {
            Interest::sometimes()
        } else {
            Interest::always()
        }
    }

    fn max_level_hint(&self) -> Option<LevelFilter> {
        Some(LevelFilter::OFF)
    }

    fn enabled(&self, _: &Metadata<'_>) -> bool {
        false
    }

    fn new_span(&self, _: &span::Attributes<'_>) -> span::Id {
        span::Id::from_u64(1)
    }

    fn record(&self, _: &span::Id, _: &span::Record<'_>) {}

    fn record_follows_from(&self, _: &span::Id, _: &span::Id) {}

    fn event(&self, _: &Event<'_>) {}

    fn enter(&self, _: &span::Id) {}

    fn exit(&self, _: &span::Id) {}
}

/// The one silent dispatcher, registered (and kept) for the life of the process.
fn silent() -> &'static Dispatch {
    static SILENT: OnceLock<Dispatch> = OnceLock::new();
    SILENT.get_or_init(|| Dispatch::new(Silent))
}

/// Runs `f` with no `tracing` subscriber listening on this thread.
///
/// ```
/// let answer = cogref_core::quiet::quietly(|| {
///     tracing::trace!(target: "some_http_library::wire", "body bytes");  // reaches no one
///     42
/// });
/// assert_eq!(answer, 42);
/// ```
pub fn quietly<T>(f: impl FnOnce() -> T) -> T {
    tracing::dispatcher::with_default(silent(), f)
}

/// Wraps a future so that every poll of it runs [`quietly`].
pub fn quiet<F: Future>(future: F) -> Quiet<F> {
    Quiet {
        inner: Box::pin(future),
    }
}

/// A future polled with no `tracing` subscriber listening; see [`quiet`].
#[must_use = "futures do nothing unless polled"]
pub struct Quiet<F> {
    inner: Pin<Box<F>>,
}

impl<F> std::fmt::Debug for Quiet<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Quiet(..)")
    }
}

impl<F: Future> Future for Quiet<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let inner = self.get_mut().inner.as_mut();
        quietly(|| inner.poll(cx))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Counts what reaches it.
    struct Counting(Arc<AtomicUsize>);

    impl Subscriber for Counting {
        fn register_callsite(&self, _: &'static Metadata<'static>) -> Interest {
            Interest::always()
        }
        fn enabled(&self, _: &Metadata<'_>) -> bool {
            true
        }
        fn max_level_hint(&self) -> Option<LevelFilter> {
            Some(LevelFilter::TRACE)
        }
        fn new_span(&self, _: &span::Attributes<'_>) -> span::Id {
            self.0.fetch_add(1, Ordering::SeqCst);
            span::Id::from_u64(7)
        }
        fn record(&self, _: &span::Id, _: &span::Record<'_>) {}
        fn record_follows_from(&self, _: &span::Id, _: &span::Id) {}
        fn event(&self, _: &Event<'_>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
        fn enter(&self, _: &span::Id) {}
        fn exit(&self, _: &span::Id) {}
    }

    #[test]
    fn nothing_made_quietly_reaches_a_subscriber_that_wants_everything_and_a_library_span_is_disabled()
     {
        let seen = Arc::new(AtomicUsize::new(0));
        let dispatch = Dispatch::new(Counting(seen.clone()));
        tracing::dispatcher::with_default(&dispatch, || {
            tracing::trace!(target: "app", "before");
            let after_before = seen.load(Ordering::SeqCst);
            assert_eq!(after_before, 1, "the subscriber does take events");
            let library_span_disabled = quietly(|| {
                tracing::trace!(target: "isahc::wire", ">> secret body");
                tracing::error!("anything at all");
                // What isahc asks before turning libcurl's debug output on.
                tracing::debug_span!(target: "isahc::handler", "handler").is_none()
            });
            assert!(library_span_disabled);
            assert_eq!(seen.load(Ordering::SeqCst), after_before);
            tracing::trace!(target: "app", "after");
            assert_eq!(seen.load(Ordering::SeqCst), after_before + 1);
        });
    }
}
