//! A deterministic single-threaded executor: tasks in an ordered map, wakers that push task ids
//! onto a FIFO ready queue. The scheduler polls one task at a time, so the interleaving of
//! tasks is a function of the seed alone.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};

use crate::shared::{Actor, CallId, SharedRef, TaskId, lock};

/// What a task is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskKind {
    /// A caller's `access_token()` or `refresh_now()`.
    Caller(CallId),
    /// `run_background()`.
    Background,
    /// A refresh the manager spawned through the transport.
    Detached,
    /// Building a manager (loading the store).
    Build,
}

/// A task.
pub struct Task {
    future: Pin<Box<dyn Future<Output = ()> + Send>>,
    /// Whose.
    pub actor: Actor,
    /// What for.
    pub kind: TaskKind,
    /// The task that spawned it.
    pub parent: Option<TaskId>,
}

#[derive(Default)]
struct ReadyQueue {
    queue: VecDeque<TaskId>,
    queued: BTreeSet<TaskId>,
}

struct TaskWaker {
    id: TaskId,
    ready: Arc<Mutex<ReadyQueue>>,
}

impl Wake for TaskWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        let mut ready = self.ready.lock().unwrap_or_else(|p| p.into_inner());
        if ready.queued.insert(self.id) {
            ready.queue.push_back(self.id);
        }
    }
}

/// What one poll did.
pub enum Polled {
    /// The task is waiting.
    Pending,
    /// The task finished.
    Finished(Task),
    /// The task panicked (a bug: the library's or the simulator's).
    Panicked(Task, String),
}

/// The executor.
#[derive(Default)]
pub struct Executor {
    tasks: BTreeMap<TaskId, Task>,
    ready: Arc<Mutex<ReadyQueue>>,
    next: TaskId,
}

impl Executor {
    /// Adds a task, ready to run.
    pub fn spawn(
        &mut self,
        future: Pin<Box<dyn Future<Output = ()> + Send>>,
        actor: Actor,
        kind: TaskKind,
        parent: Option<TaskId>,
    ) -> TaskId {
        self.next += 1;
        let id = self.next;
        self.tasks.insert(
            id,
            Task {
                future,
                actor,
                kind,
                parent,
            },
        );
        let mut ready = self.ready.lock().unwrap_or_else(|p| p.into_inner());
        ready.queued.insert(id);
        ready.queue.push_back(id);
        id
    }

    /// Polls the next ready task, if any.
    pub fn poll_next(&mut self, shared: &SharedRef) -> Option<(TaskId, Polled)> {
        loop {
            let id = {
                let mut ready = self.ready.lock().unwrap_or_else(|p| p.into_inner());
                let id = ready.queue.pop_front()?;
                ready.queued.remove(&id);
                id
            };
            let Some(task) = self.tasks.get_mut(&id) else {
                continue;
            };
            let waker = Waker::from(Arc::new(TaskWaker {
                id,
                ready: self.ready.clone(),
            }));
            let mut cx = Context::from_waker(&waker);
            lock(shared).current = Some(id);
            let polled =
                std::panic::catch_unwind(AssertUnwindSafe(|| task.future.as_mut().poll(&mut cx)));
            lock(shared).current = None;
            return Some(match polled {
                Ok(Poll::Pending) => (id, Polled::Pending),
                Ok(Poll::Ready(())) => {
                    let task = self.tasks.remove(&id).expect("polled task exists");
                    (id, Polled::Finished(task))
                }
                Err(panic) => {
                    let task = self.tasks.remove(&id).expect("polled task exists");
                    let message = panic
                        .downcast_ref::<String>()
                        .cloned()
                        .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                        .unwrap_or_else(|| "a panic".into());
                    (id, Polled::Panicked(task, message))
                }
            });
        }
    }

    /// Removes (without dropping: the caller drops them outside any lock) the tasks `which`
    /// selects.
    pub fn take_where(&mut self, which: impl Fn(TaskId, &Task) -> bool) -> Vec<(TaskId, Task)> {
        let ids: Vec<TaskId> = self
            .tasks
            .iter()
            .filter(|(id, t)| which(**id, t))
            .map(|(id, _)| *id)
            .collect();
        ids.into_iter()
            .filter_map(|id| self.tasks.remove(&id).map(|t| (id, t)))
            .collect()
    }

    /// The task `id`, if it is still there.
    pub fn get(&self, id: TaskId) -> Option<&Task> {
        self.tasks.get(&id)
    }

    /// Whether any task waits to be polled.
    pub fn has_ready(&self) -> bool {
        !self
            .ready
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .queue
            .is_empty()
    }

    /// How many tasks exist.
    pub fn len(&self) -> usize {
        self.tasks.len()
    }

    /// Whether there are no tasks.
    pub fn is_empty(&self) -> bool {
        self.tasks.is_empty()
    }
}
