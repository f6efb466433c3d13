//! Attempt deadlines served by one tokio timer that outlives the attempts.
//!
//! `tokio::time::timeout` arms a new timer for every attempt. When it is the earliest timer of
//! the runtime (a quiet runtime, or calls made one after another), arming it wakes the thread
//! parked on tokio's driver so that it can move its own wake-up earlier: a thread wake-up per
//! call. With the caller and the runtime's worker on one core, that made a sequential call
//! 1.4 to 1.5 times as long as the same exchange without a timer.
//!
//! Here a transport keeps one timer for all its attempts, armed at the earliest deadline it
//! was given. An attempt whose deadline is not earlier than the armed one arms nothing (the
//! usual case: every attempt gets the same timeout, so later attempts end later). When the
//! timer fires, the attempts past their deadline are woken and end with a timeout, and the
//! waiting attempt whose deadline comes next is woken to arm it again (or, if it ends
//! instead, the next one after it). A busy transport's timer thus fires about once per
//! attempt timeout, and an idle one's not at all once its last deadline has passed.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::task::{Context, Poll, Wake, Waker};

use tokio::runtime::Handle;
use tokio::time::{Instant, Sleep};

/// A transport's deadlines: those of the runtime its latest attempt ran on. An attempt on
/// another runtime binds new ones (those of the previous runtime stay with the attempts that
/// hold them, and go with the last).
#[derive(Debug, Default)]
pub(crate) struct Binding(Mutex<Option<Arc<Deadlines>>>);

impl Binding {
    /// The deadlines of the current runtime; `None` outside a runtime.
    pub(crate) fn current(&self) -> Option<Arc<Deadlines>> {
        let runtime = Handle::try_current().ok()?.id();
        let mut bound = lock(&self.0);
        if let Some(deadlines) = bound.as_ref().filter(|d| d.runtime == runtime) {
            return Some(deadlines.clone());
        }
        let deadlines = Arc::new(Deadlines {
            runtime,
            timer: Mutex::default(),
            state: Mutex::default(),
        });
        *bound = Some(deadlines.clone());
        Some(deadlines)
    }
}

/// The deadlines of one transport's attempts on one runtime, and the timer that serves them.
///
/// Two locks: `timer` is taken before `state` (and before tokio's own, inside the timer's
/// methods), never after; the timer's firing takes `state`, and `timer` only if free.
#[derive(Debug)]
pub(crate) struct Deadlines {
    /// The runtime whose driver runs the timer (ids come from a counter: a runtime made later
    /// has another). Its id only: a handle would keep a dropped runtime's driver open.
    runtime: tokio::runtime::Id,
    /// Made when first needed, then reset rather than replaced while attempts keep coming;
    /// let go once it fires with no attempt left to arm it (it holds the runtime's driver).
    timer: Mutex<Option<Pin<Box<Sleep>>>>,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// The deadline the timer is (being) armed at: never later than a waiting attempt's
    /// deadline. `None` once it has fired.
    armed: Option<Instant>,
    /// Waiting attempts by slot: their deadline and waker.
    waiting: Vec<Option<(Instant, Waker)>>,
    /// Free slots of `waiting`.
    free: Vec<usize>,
}

/// What an attempt past its deadline ends with (the transport maps it to a timeout error).
#[derive(Debug)]
pub(crate) struct Elapsed;

impl std::fmt::Display for Elapsed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the attempt's deadline has elapsed")
    }
}

impl std::error::Error for Elapsed {}

/// A lock whose data stays consistent between statements: a panic elsewhere cannot break it.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Deadlines {
    /// `future`, or [`Elapsed`] if it is still pending at `deadline`. To be polled on the
    /// runtime these deadlines serve ([`Binding::current`]).
    pub(crate) fn within<F: Future>(
        self: &Arc<Self>,
        deadline: Instant,
        future: F,
    ) -> Within<'_, F> {
        Within {
            future,
            waiting: Waiting {
                deadlines: self,
                deadline,
                slot: None,
            },
        }
    }

    /// Arms the timer at the deadline `state.armed` holds now (the earliest asked for since
    /// it last fired), unless it has fired meanwhile.
    fn arm(self: &Arc<Self>) {
        let mut guard = lock(&self.timer);
        // Read under the timer's lock: of two attempts arming at once, the later reset is
        // at the earlier deadline.
        let Some(at) = lock(&self.state).armed else {
            return; // fired meanwhile, and the earliest waiting attempt was woken to re-arm
        };
        // A panic below (tokio's, on a runtime without timers) must not leave `armed` set with
        // no timer behind it: every later attempt would skip arming and wait forever.
        let disarm = DisarmOnPanic(self);
        let timer = match guard.as_mut() {
            Some(timer) => {
                timer.as_mut().reset(at);
                timer
            }
            None => guard.insert(Box::pin(tokio::time::sleep_until(at))),
        };
        // Polled with the alarm's waker, so that the timer's firing reaches the deadlines,
        // whichever attempt armed it.
        let alarm = Waker::from(Arc::new(Alarm(Arc::downgrade(self))));
        // Outside tokio's cooperative budget: polled from a task whose budget is spent, the
        // timer would wake the alarm at once instead of registering it, and every waiting
        // attempt would be polled again and again until that task's deadline.
        let mut unconstrained = tokio::task::unconstrained(timer.as_mut());
        let past = Pin::new(&mut unconstrained)
            .poll(&mut Context::from_waker(&alarm))
            .is_ready();
        drop(disarm);
        drop(guard);
        if past {
            // tokio will not call the alarm for a timer that was ready when polled.
            self.fired();
        }
    }

    /// The timer has fired: the attempts past their deadline are woken (to end), and the
    /// waiting attempt whose deadline comes next (to arm the timer again). Waking every
    /// waiting attempt instead made N stalled attempts cost O(N²) polls.
    fn fired(&self) {
        let wakers: Vec<Waker> = {
            let mut state = lock(&self.state);
            state.armed = None;
            let now = Instant::now();
            let mut wakers: Vec<Waker> = state
                .waiting
                .iter()
                .flatten()
                .filter(|(deadline, _)| *deadline <= now)
                .map(|(_, waker)| waker.clone())
                .collect();
            match state.first_waiting(Some(now)) {
                Some(next) => wakers.push(next.clone()),
                None => {
                    // No attempt will arm it again: let the timer go, and the runtime's driver
                    // it holds (this is also how a runtime's shutdown ends, firing every
                    // timer). Not if it is being armed: that attempt will wait on it.
                    if let Ok(mut timer) = self.timer.try_lock() {
                        timer.take();
                    }
                }
            }
            wakers
        };
        // Outside the lock: a woken attempt may be polled at once, on another thread.
        for waker in wakers {
            waker.wake();
        }
    }
}

impl State {
    /// The waker of the waiting attempt whose deadline comes first (after `after`, if given).
    fn first_waiting(&self, after: Option<Instant>) -> Option<&Waker> {
        self.waiting
            .iter()
            .flatten()
            .filter(|(deadline, _)| after.is_none_or(|after| *deadline > after))
            .min_by_key(|(deadline, _)| *deadline)
            .map(|(_, waker)| waker)
    }
}

/// Clears `armed` if dropped while panicking (see [`Deadlines::arm`]).
struct DisarmOnPanic<'a>(&'a Deadlines);

impl Drop for DisarmOnPanic<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            lock(&self.0.state).armed = None;
        }
    }
}

pin_project_lite::pin_project! {
    /// An attempt's future and its deadline (see [`Deadlines::within`]). Written out rather
    /// than an `async fn`, which moved the attempt's future once more on every call.
    pub(crate) struct Within<'a, F> {
        #[pin]
        future: F,
        waiting: Waiting<'a>,
    }
}

impl<F: Future> Future for Within<'_, F> {
    type Output = Result<F::Output, Elapsed>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        if let Poll::Ready(output) = this.future.poll(cx) {
            return Poll::Ready(Ok(output));
        }
        if Instant::now() >= this.waiting.deadline {
            return Poll::Ready(Err(Elapsed));
        }
        this.waiting.wait(cx);
        Poll::Pending
    }
}

/// One attempt's place among the waiting; leaves it when dropped (the attempt is over).
struct Waiting<'a> {
    deadlines: &'a Arc<Deadlines>,
    deadline: Instant,
    /// Its slot in `State::waiting`, and the waker stored there.
    slot: Option<(usize, Waker)>,
}

impl Waiting<'_> {
    /// Stores `cx`'s waker (unless the stored one wakes the same task) and makes sure the
    /// timer fires by the deadline.
    fn wait(&mut self, cx: &Context<'_>) {
        // Wakers replaced are dropped after the lock is released (dropping one may run code).
        let mut replaced = (None, None);
        let arm = {
            let mut state = lock(&self.deadlines.state);
            match &mut self.slot {
                Some((_, stored)) if stored.will_wake(cx.waker()) => {}
                Some((slot, stored)) => {
                    let entry = (self.deadline, cx.waker().clone());
                    replaced = (
                        Some(std::mem::replace(stored, cx.waker().clone())),
                        state.waiting[*slot].replace(entry),
                    );
                }
                None => {
                    let entry = Some((self.deadline, cx.waker().clone()));
                    let slot = match state.free.pop() {
                        Some(slot) => {
                            state.waiting[slot] = entry;
                            slot
                        }
                        None => {
                            state.waiting.push(entry);
                            state.waiting.len() - 1
                        }
                    };
                    self.slot = Some((slot, cx.waker().clone()));
                }
            }
            // The usual case: the timer already fires by this deadline.
            let armed_in_time = state.armed.is_some_and(|armed| armed <= self.deadline);
            if !armed_in_time {
                state.armed = Some(self.deadline);
            }
            !armed_in_time
        };
        drop(replaced);
        if arm {
            self.deadlines.arm();
        }
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        if let Some((slot, _)) = self.slot.take() {
            let next = {
                let mut state = lock(&self.deadlines.state);
                state.waiting[slot] = None;
                state.free.push(slot);
                // Woken to arm the timer again after a firing, this attempt ended instead:
                // the first still waiting must arm it (or, past its deadline, end and pass it
                // on likewise).
                if state.armed.is_none() {
                    state.first_waiting(None).cloned()
                } else {
                    None
                }
            };
            if let Some(waker) = next {
                waker.wake();
            }
        }
    }
}

/// The timer's waker: tells the transport's deadlines that it fired, if they are still there.
struct Alarm(Weak<Deadlines>);

impl Wake for Alarm {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        if let Some(deadlines) = self.0.upgrade() {
            deadlines.fired();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    /// A runtime whose clock only moves when every task waits (to the next timer).
    fn paused() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .expect("runtime")
    }

    /// Runs `test` on a paused runtime; an attempt never woken fails it (after an hour of the
    /// paused clock) instead of hanging.
    fn run(test: impl Future<Output = ()>) {
        paused().block_on(async {
            tokio::time::timeout(3600 * SECOND, test)
                .await
                .expect("an attempt was never woken");
        });
    }

    fn on_this_runtime() -> Arc<Deadlines> {
        Binding::default().current().expect("in a runtime")
    }

    fn armed(deadlines: &Deadlines) -> Option<Instant> {
        lock(&deadlines.state).armed
    }

    fn waiting(deadlines: &Deadlines) -> usize {
        lock(&deadlines.state).waiting.iter().flatten().count()
    }

    const SECOND: Duration = Duration::from_secs(1);

    #[test]
    fn an_attempt_still_pending_at_its_deadline_ends_at_that_deadline() {
        run(async {
            let deadlines = on_this_runtime();
            let start = Instant::now();
            let outcome = deadlines
                .within(start + 10 * SECOND, std::future::pending::<()>())
                .await;
            assert!(outcome.is_err());
            assert_eq!(start.elapsed(), 10 * SECOND);
            assert_eq!(waiting(&deadlines), 0);
        });
    }

    #[test]
    fn an_attempt_that_ends_in_time_gives_its_output() {
        run(async {
            let deadlines = on_this_runtime();
            let start = Instant::now();
            let outcome = deadlines
                .within(start + 10 * SECOND, async {
                    tokio::time::sleep(SECOND).await;
                    7
                })
                .await;
            assert_eq!(outcome.ok(), Some(7));
            assert_eq!(start.elapsed(), SECOND);
        });
    }

    #[test]
    fn attempts_one_after_another_leave_the_first_deadline_armed() {
        run(async {
            let deadlines = on_this_runtime();
            let first = Instant::now() + 10 * SECOND;
            for k in 0..5 {
                let deadline = Instant::now() + 10 * SECOND;
                let outcome = deadlines
                    .within(deadline, tokio::time::sleep(SECOND / 10))
                    .await;
                assert!(outcome.is_ok(), "attempt {k}");
                // Armed by the first attempt; the later deadlines arm nothing.
                assert_eq!(armed(&deadlines), Some(first), "attempt {k}");
            }
            assert_eq!(waiting(&deadlines), 0);
        });
    }

    #[test]
    fn an_earlier_deadline_arms_the_timer_sooner() {
        run(async {
            let deadlines = on_this_runtime();
            let start = Instant::now();
            let late = tokio::spawn({
                let deadlines = deadlines.clone();
                async move {
                    let outcome = deadlines
                        .within(start + 10 * SECOND, std::future::pending::<()>())
                        .await;
                    (outcome.is_err(), start.elapsed())
                }
            });
            tokio::task::yield_now().await; // the late attempt arms first
            assert_eq!(armed(&deadlines), Some(start + 10 * SECOND));
            let early = deadlines
                .within(start + 2 * SECOND, std::future::pending::<()>())
                .await;
            assert!(early.is_err());
            assert_eq!(start.elapsed(), 2 * SECOND);
            assert_eq!(late.await.expect("task"), (true, 10 * SECOND));
        });
    }

    #[test]
    fn an_attempt_waiting_when_the_timer_fires_for_another_ends_at_its_own_deadline() {
        run(async {
            let deadlines = on_this_runtime();
            let start = Instant::now();
            // Arms the timer at 5 s, ends at 1 s.
            let quick = deadlines
                .within(start + 5 * SECOND, tokio::time::sleep(SECOND))
                .await;
            assert!(quick.is_ok());
            tokio::time::sleep(2 * SECOND).await;
            // Started at 3 s with a deadline at 13 s: woken at 5 s, then re-arms at 13 s.
            let slow = deadlines
                .within(start + 13 * SECOND, std::future::pending::<()>())
                .await;
            assert!(slow.is_err());
            assert_eq!(start.elapsed(), 13 * SECOND);
        });
    }

    #[test]
    fn many_attempts_each_end_at_their_own_deadline() {
        run(async {
            let deadlines = on_this_runtime();
            let start = Instant::now();
            // Deadlines out of order: 7, 3, 11, 1, 9, 5 s...
            let tasks: Vec<_> = [7u64, 3, 11, 1, 9, 5, 4, 12]
                .into_iter()
                .map(|seconds| {
                    let deadlines = deadlines.clone();
                    tokio::spawn(async move {
                        let deadline = start + Duration::from_secs(seconds);
                        let outcome = deadlines
                            .within(deadline, std::future::pending::<()>())
                            .await;
                        assert!(outcome.is_err());
                        (seconds, start.elapsed())
                    })
                })
                .collect();
            for task in tasks {
                let (seconds, ended) = task.await.expect("task");
                assert_eq!(ended, Duration::from_secs(seconds));
            }
            assert_eq!(waiting(&deadlines), 0);
        });
    }

    #[test]
    fn a_cancelled_attempt_leaves_its_place() {
        run(async {
            let deadlines = on_this_runtime();
            let deadline = Instant::now() + 10 * SECOND;
            let cancelled = tokio::time::timeout(
                SECOND,
                deadlines.within(deadline, std::future::pending::<()>()),
            )
            .await;
            assert!(cancelled.is_err(), "the outer timeout cancels it first");
            assert_eq!(waiting(&deadlines), 0);
            // Its place is reused, not added to.
            let again = deadlines
                .within(Instant::now() + SECOND, std::future::pending::<()>())
                .await;
            assert!(again.is_err());
            assert_eq!(lock(&deadlines.state).waiting.len(), 1);
        });
    }

    /// Pending on its first poll (waking no one), ready on the next.
    struct ReadyOnSecondPoll(bool);

    impl Future for ReadyOnSecondPoll {
        type Output = ();

        fn poll(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<()> {
            if self.0 {
                Poll::Ready(())
            } else {
                self.0 = true;
                Poll::Pending
            }
        }
    }

    /// `future`, counting its polls in `polls`.
    async fn counted<F: Future>(polls: &AtomicUsize, future: F) -> F::Output {
        let mut future = std::pin::pin!(future);
        std::future::poll_fn(|cx| {
            polls.fetch_add(1, Ordering::Relaxed);
            future.as_mut().poll(cx)
        })
        .await
    }

    #[test]
    fn a_firing_wakes_the_attempts_past_their_deadline_and_the_next_to_arm_not_all() {
        run(async {
            let deadlines = on_this_runtime();
            let start = Instant::now();
            const N: u64 = 40;
            let polls = Arc::new(AtomicUsize::new(0));
            let attempts: Vec<_> = (1..=N)
                .map(|seconds| {
                    let (deadlines, polls) = (deadlines.clone(), polls.clone());
                    tokio::spawn(async move {
                        let deadline = start + Duration::from_secs(seconds);
                        let pending = std::future::pending::<()>();
                        let outcome = counted(&polls, deadlines.within(deadline, pending)).await;
                        (
                            outcome.is_err(),
                            start.elapsed() == Duration::from_secs(seconds),
                        )
                    })
                })
                .collect();
            for attempt in attempts {
                assert_eq!(attempt.await.expect("task"), (true, true));
            }
            let total = polls.load(Ordering::Relaxed);
            // Each attempt: its first poll, the one that arms the timer at its deadline, the
            // one that ends it. Waking every waiting attempt at each firing: ~N²/2 (820).
            assert!(total <= 3 * N as usize, "{total} polls for {N} attempts");
        });
    }

    #[test]
    fn an_attempt_woken_to_arm_the_timer_that_ends_instead_passes_it_on() {
        run(async {
            let deadlines = on_this_runtime();
            let start = Instant::now();
            let spawn = |seconds: u64, ends_when_woken: bool| {
                let deadlines = deadlines.clone();
                tokio::spawn(async move {
                    let deadline = start + Duration::from_secs(seconds);
                    let outcome = if ends_when_woken {
                        // Woken at 1 s as the next to arm the timer, it ends on that poll.
                        deadlines.within(deadline, ReadyOnSecondPoll(false)).await
                    } else {
                        deadlines
                            .within(deadline, std::future::pending::<()>())
                            .await
                    };
                    (outcome.is_err(), start.elapsed())
                })
            };
            let (a, b, c) = (spawn(1, false), spawn(5, true), spawn(9, false));
            assert_eq!(a.await.expect("task"), (true, SECOND));
            assert_eq!(b.await.expect("task"), (false, SECOND));
            assert_eq!(c.await.expect("task"), (true, 9 * SECOND));
        });
    }

    #[test]
    fn a_panic_while_arming_leaves_no_deadline_armed_behind() {
        // No timers on this runtime: tokio's sleep panics, as tokio's own timeout would.
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        let deadlines = runtime.block_on(async { on_this_runtime() });
        for _ in 0..2 {
            let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                runtime.block_on(async {
                    let deadline = Instant::now() + SECOND;
                    let _ = deadlines
                        .within(deadline, std::future::pending::<()>())
                        .await;
                })
            }));
            assert!(
                panicked.is_err(),
                "every attempt panics alike, none waits forever"
            );
            assert_eq!(armed(&deadlines), None);
        }
    }

    #[test]
    fn a_binding_follows_the_runtime_its_attempts_run_on() {
        let binding = Binding::default();
        assert!(binding.current().is_none(), "outside any runtime");
        let first = paused();
        let a = first.block_on(async { binding.current() }).expect("bound");
        let again = first.block_on(async { binding.current() }).expect("bound");
        assert!(Arc::ptr_eq(&a, &again), "one runtime, one set of deadlines");
        let second = paused();
        let b = second.block_on(async { binding.current() }).expect("bound");
        assert!(!Arc::ptr_eq(&a, &b), "another runtime, its own");
        drop((first, second));
        // A runtime made later has its own id, even once the earlier ones are gone.
        let third = paused()
            .block_on(async { binding.current() })
            .expect("bound");
        assert!(!Arc::ptr_eq(&b, &third));
    }

    #[test]
    fn a_timer_that_fires_with_no_attempt_left_to_arm_it_is_let_go() {
        run(async {
            let deadlines = on_this_runtime();
            let start = Instant::now();
            let done = deadlines
                .within(start + SECOND, tokio::time::sleep(SECOND / 2))
                .await;
            assert!(done.is_ok());
            assert!(
                lock(&deadlines.timer).is_some(),
                "kept while attempts may come"
            );
            tokio::time::sleep(SECOND).await; // past the armed deadline: the timer fires
            assert!(
                lock(&deadlines.timer).is_none(),
                "it held the runtime's driver"
            );
            // The next attempt makes a new one.
            let late = deadlines
                .within(Instant::now() + SECOND, std::future::pending::<()>())
                .await;
            assert!(late.is_err());
        });
    }

    #[test]
    fn an_attempt_polled_with_its_task_budget_spent_still_registers_the_timer() {
        run(async {
            let deadlines = on_this_runtime();
            let deadline = Instant::now() + SECOND;
            let mut attempt =
                std::pin::pin!(deadlines.within(deadline, std::future::pending::<()>()));
            // One poll with the task's cooperative budget spent (as a loop draining a busy
            // channel would leave it).
            std::future::poll_fn(|cx| {
                while Box::pin(tokio::task::consume_budget())
                    .as_mut()
                    .poll(cx)
                    .is_ready()
                {}
                assert!(attempt.as_mut().poll(cx).is_pending());
                Poll::Ready(())
            })
            .await;
            // Polled under the spent budget, the timer would have refused to register and
            // woken its alarm (once this task yields): a firing, and the attempt polled again
            // to arm it.
            tokio::task::yield_now().await;
            assert_eq!(armed(&deadlines), Some(deadline));
        });
    }
}
