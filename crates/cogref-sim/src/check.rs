//! The invariants, checked after every step (their exact statements are in the crate docs),
//! and the ghost state they need: where every refresh token is held, which faults removed
//! what, when each refresh started and on which clock.

use std::collections::{BTreeMap, BTreeSet};

use cogref_core::driver::HttpRequest;

use crate::cognito::{Cognito, TokenState};
use crate::config::{SEC, WorldConfig};
use crate::model::Ticket;
use crate::shared::{Actor, TaskId};
use crate::world::{CallRec, World};

/// A granted refresh, as invariant 2 remembers it.
#[derive(Debug, Clone, Copy)]
struct GrantRec {
    /// True time its refresh started (the first attempt of its call).
    start: u64,
    /// Who refreshed.
    actor: Actor,
    /// Its host's wall-clock offset when it started.
    offset: i64,
    /// The refresh token it minted (rotation on).
    minted: Option<usize>,
    /// The access token it minted.
    access: usize,
}

/// What the checker knows that the library does not.
pub(crate) struct Ghost {
    /// The refresh token the store holds.
    pub(crate) stored: Option<usize>,
    /// The refresh token in a crashed writer's temporary file (file store).
    pub(crate) temp: Option<usize>,
    /// Responses carrying a new refresh token, on their way (by operation).
    pub(crate) in_flight: BTreeMap<u64, usize>,
    /// Refresh tokens delivered to a refresh under way (by process life and task).
    delivered: BTreeMap<(Actor, Option<TaskId>), BTreeSet<usize>>,
    /// Locks granted and not released, by ticket.
    pub(crate) locks: BTreeMap<Ticket, Actor>,
    /// Who received each access token, when its refresh started, and the offset of the
    /// receiver's wall clock then.
    pub(crate) access_from: BTreeMap<usize, (Actor, u64, i64)>,
    held_prev: BTreeSet<usize>,
    live_prev: BTreeSet<usize>,
    /// Tokens removed from where they were held by a fault during the current step.
    fault_removed: BTreeSet<usize>,
    /// Tokens whose last holder lost them to a fault.
    lost_by_fault: BTreeSet<usize>,
    /// Tokens whose save failed because of a fault (held in memory, not in the store).
    unsaved_by_fault: BTreeSet<usize>,
    /// When the lineage was lost (its loss excused or reported).
    pub(crate) lineage_lost: Option<u64>,
    /// The start of each refresh call, by its invocation id.
    invocations: BTreeMap<String, u64>,
    /// Whether each refresh call answers a `refresh_now()`, by its invocation id.
    forced_invocations: BTreeMap<String, bool>,
    /// The access token each refresh call started from, by its invocation id, when it was the
    /// stored set's (the set the process read under the lock decides when it is due).
    bases: BTreeMap<String, Option<usize>>,
    /// Access tokens whose set's save met a conflict and was never written since, with the
    /// access token of the set the store held instead (the set that beat it).
    pub(crate) lost_to: BTreeMap<usize, usize>,
    /// The start of each process life's last refresh call.
    last_start: BTreeMap<Actor, u64>,
    /// Every grant so far, in the order Cognito granted them.
    grants: Vec<GrantRec>,
    /// Each process life's `refresh_now()` calls not yet matched with a refresh started
    /// after them (by start time): each allows one refresh at the floor.
    pub(crate) forces: BTreeMap<Actor, std::collections::VecDeque<u64>>,
    /// Faults that can each make one extra refresh unavoidable (invariant 2's excuses).
    pub(crate) excuses: u64,
    /// Refreshes granted before they were due.
    pub(crate) early: u64,
    /// Times of lock or store anomalies (a lease or lock lost while held, a refresh without
    /// the lock, data lost, a store recreated below a version already handed out).
    anomalies: Vec<u64>,
    /// The largest version the store ever held.
    max_version: Option<u64>,
    /// Which host each process runs on.
    host_of: Vec<usize>,
    /// Each host's wall-clock offset, as it changed (true time, offset).
    offsets: Vec<Vec<(u64, i64)>>,
    /// The largest spread of wall-clock offsets between hosts seen.
    pub(crate) max_spread: i64,
    /// The managers are one OS process (memory store).
    one_os_process: bool,
}

impl Ghost {
    pub(crate) fn new(cfg: &WorldConfig) -> Self {
        Self {
            stored: None,
            temp: None,
            in_flight: BTreeMap::new(),
            delivered: BTreeMap::new(),
            locks: BTreeMap::new(),
            access_from: BTreeMap::new(),
            held_prev: BTreeSet::new(),
            live_prev: BTreeSet::new(),
            fault_removed: BTreeSet::new(),
            lost_by_fault: BTreeSet::new(),
            unsaved_by_fault: BTreeSet::new(),
            lineage_lost: None,
            invocations: BTreeMap::new(),
            forced_invocations: BTreeMap::new(),
            bases: BTreeMap::new(),
            lost_to: BTreeMap::new(),
            last_start: BTreeMap::new(),
            grants: Vec::new(),
            forces: BTreeMap::new(),
            excuses: 0,
            early: 0,
            anomalies: Vec::new(),
            max_version: None,
            host_of: cfg.processes.iter().map(|p| p.host).collect(),
            offsets: cfg.host_skews.iter().map(|o| vec![(0, *o)]).collect(),
            max_spread: spread(cfg.host_skews.iter().copied()),
            one_os_process: cfg.one_os_process,
        }
    }

    /// One fault that can make one extra refresh unavoidable.
    fn excuse(&mut self) {
        self.excuses += 1;
    }

    /// A process life died: what it held is lost to a fault.
    pub(crate) fn crashed(&mut self, actor: Actor, memory: Option<usize>) {
        self.excuse();
        self.fault_removed.extend(memory);
        let keys: Vec<_> = self
            .delivered
            .keys()
            .filter(|(a, _)| *a == actor)
            .copied()
            .collect();
        for key in keys {
            if let Some(set) = self.delivered.remove(&key) {
                self.fault_removed.extend(set);
            }
        }
    }

    /// A task ended or was dropped: what was delivered to it is now in its manager (or lost
    /// with its process).
    pub(crate) fn task_gone(&mut self, actor: Actor, task: Option<TaskId>, crash: bool) {
        if let Some(set) = self.delivered.remove(&(actor, task))
            && crash
        {
            self.fault_removed.extend(set);
        }
    }

    pub(crate) fn delivered(&mut self, actor: Actor, task: Option<TaskId>, token: usize) {
        self.delivered
            .entry((actor, task))
            .or_default()
            .insert(token);
    }

    /// A granted response will never reach a live caller (lost, slower than the attempt
    /// timeout, or its process died).
    pub(crate) fn lost_response(&mut self, token: Option<usize>) {
        if let Some(t) = token {
            self.lost_by_fault.insert(t);
            self.fault_removed.insert(t);
        }
    }

    /// A granted response was lost or made late by a fault: one excuse.
    pub(crate) fn granted_response_faulted(&mut self) {
        self.excuse();
    }

    /// A lock or store anomaly: excuses one extra refresh, and a reuse soon after.
    pub(crate) fn anomaly(&mut self, now: u64) {
        self.anomalies.push(now);
        self.excuse();
    }

    /// A save applied but reported failed, or a save that failed: its set is not stored.
    pub(crate) fn unsaved(&mut self, token: Option<usize>) {
        self.excuse();
        if let Some(t) = token {
            self.unsaved_by_fault.insert(t);
        }
    }

    /// A save stored version `version` (`created`: as a new entry).
    pub(crate) fn saved(&mut self, now: u64, token: Option<usize>, version: u64, created: bool) {
        if let Some(t) = token {
            self.unsaved_by_fault.remove(&t);
        }
        if created && self.max_version.is_some_and(|m| version <= m) {
            // A file recreated by a host whose clock is behind the one that created it: its
            // readers take it for an older set written back.
            self.anomaly(now);
        }
        self.max_version = Some(self.max_version.map_or(version, |m| m.max(version)));
    }

    pub(crate) fn data_lost(&mut self, now: u64, stored: Option<usize>) {
        self.anomaly(now);
        self.fault_removed.extend(stored);
    }

    /// A host's wall clock stepped: each process on it may refresh early once (its own
    /// tokens expire early by a step forward; the server-clock offset it learnt before the
    /// step makes an adopted set look expired).
    pub(crate) fn stepped(&mut self, now: u64, host: usize, offset: i64) {
        let processes = self.host_of.iter().filter(|h| **h == host).count();
        self.excuses += processes as u64;
        self.offsets[host].push((now, offset));
        let current = self.offsets.iter().map(|h| h.last().map_or(0, |(_, o)| *o));
        self.max_spread = self.max_spread.max(spread(current));
    }

    /// Process `process`'s wall-clock offset at true time `t`.
    pub(crate) fn offset_at(&self, process: usize, t: u64) -> i64 {
        self.offsets[self.host_of[process]]
            .iter()
            .take_while(|(at, _)| *at <= t)
            .last()
            .map_or(0, |(_, o)| *o)
    }

    /// The smallest offset process `process`'s clock had during `[from, to]`.
    fn min_offset(&self, process: usize, from: u64, to: u64) -> i64 {
        let start = self.offset_at(process, from);
        self.offsets[self.host_of[process]]
            .iter()
            .filter(|(at, _)| *at > from && *at <= to)
            .map(|(_, o)| *o)
            .fold(start, i64::min)
    }
}

fn spread(offsets: impl Iterator<Item = i64>) -> i64 {
    let (lo, hi) = offsets.fold((i64::MAX, i64::MIN), |(lo, hi), o| (lo.min(o), hi.max(o)));
    if lo > hi { 0 } else { hi - lo }
}

/// How long a call may take: (`access_token`, `refresh_now`), in µs. See invariant 6.
pub(crate) fn call_bounds(cfg: &WorldConfig) -> (u64, u64) {
    // The slowest store operation: a failure reported after up to 2 s (an I/O timeout).
    let store = 2 * SEC + 400_000;
    let total = cfg.call.timeouts.total.as_micros() as u64;
    let lock = cfg.lock_timeout.as_micros() as u64;
    // Waiting for the lock (polls of at most 250 ms, each a try_lock and a load), then a load,
    // a refresh, a save (again afresh, or a load after a conflict), a second refresh after a
    // look at the store that found a newer set, its saves, the unlock.
    let flight = lock + 250_000 + 20_000 + 2 * total + 16 * store + SEC;
    let token = flight + store;
    let floor = cfg
        .session
        .failure_backoff_max
        .max(cfg.session.min_refresh_interval)
        .as_micros() as u64;
    (token, 3 * flight + 2 * floor)
}

/// The tolerance invariants 2 and 4 allow a refresh by a process that adopted the previous
/// grant's set rather than obtaining it itself (µs), when its wall clock is `ahead` µs ahead
/// of the writer's: the skew itself, or the pessimism of capping an adopted set at its `exp`
/// on the server's clock, whichever is larger. That cap uses the server's clock offset learnt
/// from the adopter's own last refresh, whose upper bound counts the whole second a `Date`
/// or `iat` may round away and the duration of that refresh's call (at most the total
/// timeout). Stored times are whole milliseconds: one more.
pub(crate) fn adopted_tolerance(cfg: &WorldConfig, ahead: i64) -> u64 {
    let cap = SEC + cfg.call.timeouts.total.as_micros() as u64;
    (ahead.max(0) as u64).max(cap) + 1_000
}

/// Whether refresh token `from` is `of` or was minted below it.
fn descends(cognito: &Cognito, from: usize, of: usize) -> bool {
    let mut at = Some(from);
    while let Some(t) = at {
        if t == of {
            return true;
        }
        at = cognito.tokens.get(t).and_then(|r| r.parent);
    }
    false
}

/// Whether refresh tokens `a` and `b` are on one branch of the lineage (one descends from the
/// other, or they are the same).
fn related(cognito: &Cognito, a: usize, b: usize) -> bool {
    descends(cognito, a, b) || descends(cognito, b, a)
}

fn usable_descendants(cognito: &Cognito, token: usize, now: u64) -> Vec<usize> {
    let mut out = Vec::new();
    let mut stack: Vec<usize> = cognito.tokens[token].children.clone();
    while let Some(t) = stack.pop() {
        if cognito.usable(t, now) {
            out.push(t);
        }
        stack.extend(cognito.tokens[t].children.iter().copied());
    }
    out.sort_unstable();
    out
}

impl World {
    /// Checks the invariants after a step.
    pub(crate) fn check(&mut self) {
        let now = self.now();
        self.check_lineage(now);
        let late: Vec<u64> = self
            .calls
            .iter()
            .filter(|(_, c)| now > c.deadline)
            .map(|(id, _)| *id)
            .collect();
        for id in late {
            if let Some(c) = self.calls.remove(&id) {
                self.violation(
                    "6 (every call returns)",
                    format!(
                        "call {id} ({:?}) of process {} has not returned {:.3} s after it started (bound {:.3} s)",
                        c.kind,
                        c.actor.process,
                        (now - c.start) as f64 / 1e6,
                        (c.deadline - c.start) as f64 / 1e6
                    ),
                );
            }
        }
        for leak in self.capture.take_leaks() {
            self.violation("5 (no secret shown)", leak);
        }
    }

    /// Invariant 1: some holder keeps a usable refresh token, or faults explain why none does.
    fn check_lineage(&mut self, now: u64) {
        for p in 0..self.procs.len() {
            if self.procs[p].dirty {
                let token = if self.procs[p].up && self.procs[p].ready {
                    self.procs[p].read_token(&self.capture)
                } else {
                    None
                };
                self.procs[p].token = token;
                self.procs[p].dirty = false;
            }
        }
        let g = &mut self.ghost;
        let mut held: BTreeSet<usize> = BTreeSet::new();
        held.extend(g.stored);
        held.extend(g.temp);
        held.extend(self.procs.iter().filter(|p| p.up).filter_map(|p| p.token));
        held.extend(g.in_flight.values().copied());
        for set in g.delivered.values() {
            held.extend(set.iter().copied());
        }
        for t in g.held_prev.difference(&held) {
            // Dropped by a fault, or abandoned for a set of another branch of the lineage that
            // the store holds (after a fork, which only faults or a lease that ran out create,
            // and which invariants 1 and 2 judge where it happens).
            let other_branch = g.stored.is_some_and(|s| !related(&self.cognito, s, *t));
            if g.fault_removed.contains(t) || other_branch {
                g.lost_by_fault.insert(*t);
            } else {
                g.lost_by_fault.remove(t);
            }
        }
        for t in held.difference(&g.held_prev) {
            g.lost_by_fault.remove(t);
        }
        g.fault_removed.clear();
        let live: BTreeSet<usize> = held
            .iter()
            .copied()
            .filter(|t| self.cognito.usable(*t, now))
            .collect();
        let lost = live.is_empty() && !g.live_prev.is_empty() && g.lineage_lost.is_none();
        let last = std::mem::replace(&mut g.live_prev, live);
        g.held_prev = held;
        if !lost {
            return;
        }
        self.ghost.lineage_lost = Some(now);
        if self.cognito.lineage_over(now) {
            self.log(|| "the lineage is over (revoked or expired)".into());
            return;
        }
        let mut unexcused = Vec::new();
        for t in &last {
            // The lineage goes on through the tokens never used yet (a token used within its
            // grace period is judged through what its refresh minted): each usable one at or
            // below `t` must have been lost to a fault.
            let mut leaves = usable_descendants(&self.cognito, *t, now);
            if self.cognito.usable(*t, now) {
                leaves.push(*t);
            }
            let dropped: Vec<usize> = leaves
                .into_iter()
                .filter(|d| self.cognito.tokens[*d].state == TokenState::Active)
                .filter(|d| !self.ghost.lost_by_fault.contains(d))
                .collect();
            if dropped.contains(t) {
                unexcused.push(format!("token {t} was dropped while usable"));
            } else if !dropped.is_empty() {
                unexcused.push(format!(
                    "token {t}'s usable successors {dropped:?} were held nowhere (not lost to a fault)"
                ));
            }
        }
        if unexcused.is_empty() {
            self.log(|| {
                format!("the lineage is lost to faults (last held usable tokens {last:?})")
            });
        } else {
            self.violation(
                "1 (no lineage lost)",
                format!(
                    "no store or live process holds a usable refresh token any more: {}",
                    unexcused.join("; ")
                ),
            );
        }
    }

    /// Bookkeeping of a request leaving: invariant 4a and 4b (the floor between one process
    /// life's refreshes, the attempts of one call) and the lock rule of invariant 2. Returns
    /// when its call started, whether a `refresh_now()` of its process was under way, and the
    /// access token the call started from when it was the stored set's.
    pub(crate) fn ghost_send(
        &mut self,
        actor: Actor,
        request: &HttpRequest,
    ) -> (u64, bool, Option<usize>) {
        let now = self.now();
        let invocation = request
            .headers()
            .get("amz-sdk-invocation-id")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        let attempt = request
            .headers()
            .get("amz-sdk-request")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("attempt="))
            .and_then(|v| v.split(';').next())
            .and_then(|v| v.parse::<u32>().ok())
            .unwrap_or(0);
        let floor = self.cfg.session.min_refresh_interval.as_micros() as u64;
        let start = match self.ghost.invocations.get(&invocation) {
            Some(start) => *start,
            None => {
                // A refresh that started after a `refresh_now()` of its process (even one
                // whose caller was cancelled since: the refresh goes on) is that call's.
                let oldest = now.saturating_sub(self.bounds.1);
                let forced = self.ghost.forces.get_mut(&actor).is_some_and(|calls| {
                    while calls.front().is_some_and(|c| *c < oldest) {
                        calls.pop_front();
                    }
                    calls.pop_front().is_some()
                });
                self.ghost
                    .forced_invocations
                    .insert(invocation.clone(), forced);
                let stored = self.backend_stored_access();
                let held = self.procs[actor.process].held_access();
                let basis = held.filter(|h| stored == Some(*h));
                self.ghost.bases.insert(invocation.clone(), basis);
                if let Some(last) = self.ghost.last_start.get(&actor).copied()
                    && now - last < floor
                {
                    self.violation(
                        "4a (floor between refreshes)",
                        format!(
                            "process {} started two refreshes {:.6} s apart, under the floor of {} s",
                            actor.process,
                            (now - last) as f64 / 1e6,
                            floor / SEC
                        ),
                    );
                }
                self.ghost.last_start.insert(actor, now);
                self.ghost.invocations.insert(invocation.clone(), now);
                now
            }
        };
        let forced = self
            .ghost
            .forced_invocations
            .get(&invocation)
            .copied()
            .unwrap_or(false);
        if attempt > self.cfg.call.retry.max_attempts.max(1) {
            self.violation(
                "4b (attempts per call)",
                format!(
                    "process {} made attempt {attempt} of a call allowed {}",
                    actor.process, self.cfg.call.retry.max_attempts
                ),
            );
        }
        if !self.ghost.locks.values().any(|a| *a == actor) {
            if self.cfg.unlocked_opt_in {
                self.log(|| {
                    format!(
                        "process {} refreshes without the lock (opted in)",
                        actor.process
                    )
                });
                self.ghost.anomaly(now);
            } else {
                self.violation(
                    "2 (refresh only under the lock)",
                    format!(
                        "process {} sent a refresh without holding the store's lock, and never opted in",
                        actor.process
                    ),
                );
            }
        }
        let basis = self.ghost.bases.get(&invocation).copied().flatten();
        (start, forced, basis)
    }

    /// Invariant 2 at grant `grant` (an index into Cognito's grants): early grants never
    /// outnumber the faults that excuse them.
    pub(crate) fn ghost_grant(&mut self, op: u64, grant: usize) {
        let Some((actor, start, forced, basis)) = self
            .sends
            .get(&op)
            .map(|s| (s.actor, s.started, s.forced, s.basis))
        else {
            return;
        };
        let (used, minted, access) = {
            let g = &self.cognito.grants[grant];
            (g.used, g.minted, g.access)
        };
        let offset = self.ghost.offset_at(actor.process, start);
        let this = GrantRec {
            start,
            actor,
            offset,
            minted,
            access,
        };
        let floor = self.cfg.session.min_refresh_interval.as_micros() as u64;
        let interval = due_interval(&self.cfg);
        if let Some(prev) = self.previous_grant(used) {
            let tolerance = if prev.actor == actor {
                0
            } else {
                adopted_tolerance(&self.cfg, offset - prev.offset)
            };
            let due = start + tolerance >= prev.start + interval;
            let forced_ok = forced && start + tolerance >= prev.start + floor;
            // The previous grant's save lost to an older set whose stored time looked later (a
            // writer's clock ahead), and this call, a later one, started from that set as the
            // store held it: it is due by that set's own call. Nothing else (a retry granted
            // twice, a call that started first, a set lost to a crash) is timed this way: each
            // is early, and a fault's excuse pays for it.
            let due_by_basis = basis
                .filter(|b| start > prev.start && self.ghost.lost_to.get(&prev.access) == Some(b))
                .and_then(|b| self.ghost.access_from.get(&b).copied())
                .is_some_and(|(holder, s_h, o_h)| {
                    let tol = if holder == actor {
                        0
                    } else {
                        adopted_tolerance(&self.cfg, offset - o_h)
                    };
                    s_h < prev.start && start + tol >= s_h + interval
                });
            if !(due || forced_ok || due_by_basis) {
                self.ghost.early += 1;
                let (early, excuses) = (self.ghost.early, self.ghost.excuses);
                self.log(|| {
                    format!(
                        "early refresh {early} (started {:.3} s after the previous one, due after {:.3} s less {:.3} s; {excuses} excuses)",
                        start.saturating_sub(prev.start) as f64 / 1e6,
                        interval as f64 / 1e6,
                        tolerance as f64 / 1e6,
                    )
                });
                if early > excuses {
                    self.violation(
                        "2 (one refresh per due time)",
                        format!(
                            "process {} was granted a refresh that started {:.3} s after the previous grant's (by process {}), before it was due ({:.3} s{}, tolerance {:.3} s); {early} early refreshes against {excuses} faults that could excuse one",
                            actor.process,
                            start as f64 / 1e6 - prev.start as f64 / 1e6,
                            prev.actor.process,
                            interval as f64 / 1e6,
                            if forced { ", or the floor for refresh_now" } else { "" },
                            tolerance as f64 / 1e6,
                        ),
                    );
                }
            }
        }
        self.ghost.grants.push(this);
    }

    /// The grant invariant 2 times a refresh with refresh token `used` from: the one whose
    /// refresh started last, leaving out dead forks. A dead fork minted a refresh token that is
    /// not `used` or an ancestor of it, that every holder lost to a fault or dropped for a
    /// stored set of another branch, and below which nothing is held: it was judged when it
    /// was granted, and the branch that lives on is due by its own sets' times.
    fn previous_grant(&self, used: usize) -> Option<GrantRec> {
        let g = &self.ghost;
        let dead_fork = |m: usize| {
            !descends(&self.cognito, used, m)
                && g.lost_by_fault.contains(&m)
                && !g.held_prev.iter().any(|h| descends(&self.cognito, *h, m))
        };
        g.grants
            .iter()
            .filter(|h| !h.minted.is_some_and(dead_fork))
            .fold(None, |best: Option<GrantRec>, h| match best {
                Some(b) if b.start > h.start => Some(b),
                _ => Some(*h),
            })
    }

    /// Invariant 1 at a reuse: a dead token reaches Cognito only when a fault explains it.
    pub(crate) fn ghost_reuse(&mut self, op: u64, token: usize) {
        if self.ghost.lineage_lost.is_some() {
            return;
        }
        let now = self.now();
        let mut frontier = usable_descendants(&self.cognito, token, now);
        frontier.retain(|d| self.cognito.tokens[*d].state == TokenState::Active);
        if frontier.iter().all(|d| {
            self.ghost.lost_by_fault.contains(d) || self.ghost.unsaved_by_fault.contains(d)
        }) {
            return;
        }
        let superseded = match self.cognito.tokens[token].state {
            TokenState::Superseded(at) => at,
            TokenState::Active => now,
        };
        let window = self.cfg.call.timeouts.total.as_micros() as u64 + 10 * SEC;
        let from = superseded.saturating_sub(window);
        if self.ghost.anomalies.iter().any(|a| *a >= from) {
            return;
        }
        let process = self.sends.get(&op).map_or(usize::MAX, |s| s.actor.process);
        self.violation(
            "1b (no reuse refusal)",
            format!(
                "process {process} sent refresh token {token}, superseded {:.3} s earlier (grace {} s), and was refused as a reuse, while its successors {frontier:?} were alive and no fault explains it",
                (now - superseded) as f64 / 1e6,
                self.cfg.grace_us / SEC
            ),
        );
    }

    /// Invariant 1c at a save: the set written replaces one whose refresh started before its
    /// own, as the writers' wall clocks (which the library compares) tell.
    pub(crate) fn check_forward(&mut self, writer: Actor, old: usize, new: usize) {
        let (Some(&(_, s_old, o_old)), Some(&(_, s_new, o_new))) = (
            self.ghost.access_from.get(&old),
            self.ghost.access_from.get(&new),
        ) else {
            return;
        };
        // The library judges by the stored times: wall clocks, kept in milliseconds.
        let tolerance = (o_new - o_old).max(0) as u64 + 1_000;
        if s_old > s_new + tolerance {
            self.violation(
                "1c (the store never goes back)",
                format!(
                    "process {} saved a set refreshed at {:.3} s over a newer one, refreshed at {:.3} s (clock tolerance {:.3} s): the store went back",
                    writer.process,
                    s_new as f64 / 1e6,
                    s_old as f64 / 1e6,
                    tolerance as f64 / 1e6,
                ),
            );
        }
    }

    /// Invariant 3 when a caller receives `token`.
    pub(crate) fn served(&mut self, rec: &CallRec, token: &str) {
        let now = self.now();
        let Some(n) = Cognito::access_number(token) else {
            self.violation(
                "3 (no token past exp)",
                format!(
                    "process {} handed out an access token Cognito never issued ({} bytes)",
                    rec.actor.process,
                    token.len()
                ),
            );
            return;
        };
        let exp = self.cognito.access[n].exp_s * SEC;
        // A call that returns as its lock release completes judged its token before the
        // release: the release's latency is not the library's to control.
        let now = match self.released.get(&rec.actor) {
            Some((issued, done)) if *done == now => *issued,
            _ => now,
        };
        if now < exp {
            return;
        }
        let tolerance = match self.ghost.access_from.get(&n) {
            // Its own tokens: none.
            Some((from, _, _)) if *from == rec.actor => 0,
            // One OS process: the set carries its monotonic expiry to the adopter.
            Some(_) if self.ghost.one_os_process => 0,
            // Adopted from the store: the reader's clock behind the writer's.
            Some((_, started, written)) => {
                let read = self.ghost.min_offset(rec.actor.process, *started, now);
                (written - read).max(0) as u64
            }
            None => 0,
        };
        if now >= exp + tolerance {
            if std::env::var_os("SIM_DEBUG").is_some() {
                let p = rec.actor.process;
                eprintln!(
                    "{:?} at {:?}",
                    self.procs[p].debug_session(),
                    cogref_core::Environment::now(&self.procs[p].env)
                );
            }
            self.violation(
                "3 (no token past exp)",
                format!(
                    "process {} handed out access token {n} {:.6} s after its exp (tolerance for the writer's clock {:.3} s)",
                    rec.actor.process,
                    (now - exp) as f64 / 1e6,
                    tolerance as f64 / 1e6
                ),
            );
        }
    }

    /// Invariant 4c for the fleet, at the end: granted refreshes ≤ 1 + ⌊S / g⌋ + E + R.
    pub(crate) fn check_fleet_bound(&mut self, forced_calls: u64) {
        // Measured between the starts of the granted refresh calls, as invariant 2 spaces
        // them: the grants' own times add each answer's latency, which differs between calls.
        let starts = self.ghost.grants.iter().map(|g| g.start);
        let span = starts
            .clone()
            .max()
            .zip(starts.min())
            .map_or(0, |(last, first)| last - first);
        let interval = due_interval(&self.cfg);
        let tolerance = adopted_tolerance(&self.cfg, self.ghost.max_spread);
        let gap = interval.saturating_sub(tolerance).max(1);
        let bound = 1 + span / gap + self.ghost.excuses + forced_calls;
        let grants = self.cognito.grants.len() as u64;
        if grants > bound {
            self.violation(
                "4c (granted refreshes bounded)",
                format!(
                    "{grants} refreshes granted over {:.3} s, more than 1 + T/g + E + R = {bound} (g = {:.3} s)",
                    span as f64 / 1e6,
                    gap as f64 / 1e6,
                ),
            );
        }
    }
}

/// `I`: the least time between two refreshes of the lineage when nothing fails:
/// `max(F, L′ − m)`, with `L′ = L − 1 s` the lifetime as counted locally and
/// `m = min(margin, L′ / 2)`.
pub(crate) fn due_interval(cfg: &WorldConfig) -> u64 {
    let lifetime = cfg.access_lifetime_s.saturating_sub(1) * SEC;
    let margin = (cfg.session.refresh_margin.as_micros() as u64).min(lifetime / 2);
    let floor = cfg.session.min_refresh_interval.as_micros() as u64;
    floor.max(lifetime - margin)
}
