//! The invariants, checked after every step (see the crate docs for their exact statements),
//! and the ghost state they need: where every refresh token is held, which faults removed what,
//! which refreshes started when.

use std::collections::{BTreeMap, BTreeSet};

use cogref_core::driver::HttpRequest;

use crate::cognito::{Cognito, TokenState};
use crate::config::{SEC, WorldConfig};
use crate::model::Ticket;
use crate::shared::{Actor, TaskId};
use crate::world::{CallKind, CallRec, World};

/// A refresh call (all its attempts share the invocation id).
struct Invocation {
    start: u64,
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
    /// Who received each access token, and when its refresh started.
    pub(crate) access_from: BTreeMap<usize, (Actor, u64)>,
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
    invocations: BTreeMap<String, Invocation>,
    last_start: BTreeMap<Actor, u64>,
    prev_grant_start: Option<u64>,
    /// Faults that can make one extra refresh unavoidable.
    pub(crate) excuses: u64,
    /// Refreshes granted before they were due.
    pub(crate) early: u64,
    /// Times of lock anomalies (a lease or lock lost while held, a refresh without the lock).
    anomalies: Vec<u64>,
    data_lost_at: Option<u64>,
    /// Each process's wall-clock offset, as it changed.
    offsets: Vec<Vec<(u64, i64)>>,
    /// The largest spread of wall-clock offsets seen.
    pub(crate) max_spread: i64,
}

impl Ghost {
    pub(crate) fn new(_cfg: &WorldConfig, offsets: &[i64]) -> Self {
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
            last_start: BTreeMap::new(),
            prev_grant_start: None,
            excuses: 0,
            early: 0,
            anomalies: Vec::new(),
            data_lost_at: None,
            offsets: offsets.iter().map(|o| vec![(0, *o)]).collect(),
            max_spread: spread(offsets.iter().copied()),
        }
    }

    /// A process life died: what it held is lost to a fault.
    pub(crate) fn crashed(&mut self, actor: Actor, memory: Option<usize>) {
        self.excuses += 1;
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

    /// A task ended or was dropped: what was delivered to it is now in its manager (or lost).
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

    /// A granted response never reached a live caller (lost, too slow, or its process died).
    pub(crate) fn lost_response(&mut self, token: Option<usize>) {
        self.excuses += 1;
        if let Some(t) = token {
            self.lost_by_fault.insert(t);
            self.fault_removed.insert(t);
        }
    }

    pub(crate) fn anomaly(&mut self, now: u64, _what: &str) {
        self.anomalies.push(now);
        self.excuses += 1;
    }

    pub(crate) fn excuse(&mut self, _now: u64, _what: &str) {
        self.excuses += 1;
    }

    pub(crate) fn saved(&mut self, token: Option<usize>) {
        if let Some(t) = token {
            self.unsaved_by_fault.remove(&t);
        }
    }

    pub(crate) fn unsaved(&mut self, _now: u64, token: Option<usize>) {
        self.excuses += 1;
        if let Some(t) = token {
            self.unsaved_by_fault.insert(t);
        }
    }

    pub(crate) fn data_lost(&mut self, now: u64, stored: Option<usize>) {
        self.excuses += 1;
        self.anomalies.push(now);
        self.data_lost_at = Some(now);
        self.fault_removed.extend(stored);
    }

    pub(crate) fn built(&mut self, _actor: Actor, _token: Option<usize>) {}

    pub(crate) fn stepped(&mut self, now: u64, process: usize, offset: i64) {
        self.excuses += 1;
        self.offsets[process].push((now, offset));
        let current = self.offsets.iter().map(|h| h.last().map_or(0, |(_, o)| *o));
        self.max_spread = self.max_spread.max(spread(current));
    }

    /// A process's wall-clock offset at `t`.
    fn offset_at(&self, process: usize, t: u64) -> i64 {
        self.offsets[process]
            .iter()
            .take_while(|(at, _)| *at <= t)
            .last()
            .map_or(0, |(_, o)| *o)
    }

    /// The smallest offset a process had during `[from, to]`.
    fn min_offset(&self, process: usize, from: u64, to: u64) -> i64 {
        let start = self.offset_at(process, from);
        self.offsets[process]
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
                    "6 (deadlines)",
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
            self.violation("5 (no canary)", leak);
        }
    }

    /// Invariant 1: some holder keeps a usable refresh token, or a fault explains why none does.
    fn check_lineage(&mut self, now: u64) {
        for p in 0..self.procs.len() {
            if self.procs[p].dirty {
                let token = if self.procs[p].up && self.procs[p].ready {
                    self.read_token(p)
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
            if g.fault_removed.contains(t) {
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
            if self.cognito.usable(*t, now) {
                if !self.ghost.lost_by_fault.contains(t) {
                    unexcused.push(format!("token {t} was dropped while usable"));
                }
            } else {
                let frontier = usable_descendants(&self.cognito, *t, now);
                let dropped: Vec<usize> = frontier
                    .into_iter()
                    .filter(|d| !self.ghost.lost_by_fault.contains(d))
                    .collect();
                if !dropped.is_empty() {
                    unexcused.push(format!(
                        "token {t} ran out of its grace period while its usable successors {dropped:?} were held nowhere (not lost to a fault)"
                    ));
                }
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

    fn read_token(&self, p: usize) -> Option<usize> {
        self.procs[p].read_token()
    }

    /// Bookkeeping of a request leaving: invariant 4 (the floor between one process's
    /// refreshes, the attempts of one call) and 2 (no refresh without the lock). Returns when
    /// its call started and whether a `refresh_now()` of its process was under way.
    pub(crate) fn ghost_send(&mut self, actor: Actor, request: &HttpRequest) -> (u64, bool) {
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
        let forced = self
            .calls
            .values()
            .any(|c: &CallRec| c.actor == actor && c.kind == CallKind::Force);
        let floor = self.cfg.session.min_refresh_interval.as_micros() as u64;
        let start = match self.ghost.invocations.get(&invocation) {
            Some(inv) => inv.start,
            None => {
                if let Some(last) = self.ghost.last_start.get(&actor).copied()
                    && now - last < floor
                {
                    self.violation(
                        "4 (no storm)",
                        format!(
                            "process {} started two refreshes {:.6} s apart, under the floor of {} s",
                            actor.process,
                            (now - last) as f64 / 1e6,
                            floor / SEC
                        ),
                    );
                }
                self.ghost.last_start.insert(actor, now);
                self.ghost
                    .invocations
                    .insert(invocation, Invocation { start: now });
                now
            }
        };
        if attempt > self.cfg.call.retry.max_attempts.max(1) {
            self.violation(
                "4 (no storm)",
                format!(
                    "process {} made attempt {attempt} of a call allowed {}",
                    actor.process, self.cfg.call.retry.max_attempts
                ),
            );
        }
        if !self.ghost.locks.values().any(|a| *a == actor) {
            if self.cfg.unlocked_opt_in {
                self.ghost.anomaly(now, "a refresh without the lock (opted in)");
            } else {
                self.violation(
                    "2 (one refresh per due time)",
                    format!(
                        "process {} sent a refresh without holding the store's lock, and never opted in",
                        actor.process
                    ),
                );
            }
        }
        (start, forced)
    }

    /// Invariant 2 at a grant: early grants never outnumber the faults that excuse them.
    pub(crate) fn ghost_grant(&mut self, op: u64, _grant: usize) {
        let Some((start, forced)) = self.sends.get(&op).map(|s| (s.started, s.forced)) else {
            return;
        };
        let floor = self.cfg.session.min_refresh_interval.as_micros() as u64;
        let interval = due_interval(&self.cfg);
        let offsets = self
            .procs
            .iter()
            .enumerate()
            .filter(|(_, p)| p.up)
            .map(|(i, _)| self.clock.offset(i));
        let delta = spread(offsets).max(0) as u64;
        if let Some(prev) = self.ghost.prev_grant_start {
            let due = start + delta >= prev + interval;
            let forced_ok = forced && start + delta >= prev + floor;
            if !(due || forced_ok) {
                self.ghost.early += 1;
                let (early, excuses) = (self.ghost.early, self.ghost.excuses);
                self.log(|| {
                    format!(
                        "early refresh {early} (started {:.3} s after the previous one, due after {:.3} s; {excuses} excuses)",
                        start.saturating_sub(prev) as f64 / 1e6,
                        interval as f64 / 1e6
                    )
                });
                if early > excuses {
                    self.violation(
                        "2 (one refresh per due time)",
                        format!(
                            "refresh granted {:.3} s after the previous one started, before it was due ({:.3} s, wall-clock spread {:.3} s); {early} early refreshes against {excuses} faults that could excuse one",
                            start as f64 / 1e6 - prev as f64 / 1e6,
                            interval as f64 / 1e6,
                            delta as f64 / 1e6
                        ),
                    );
                }
            }
        }
        self.ghost.prev_grant_start = Some(self.ghost.prev_grant_start.map_or(start, |p| p.max(start)));
    }

    /// Invariant 1 at a reuse: a dead token reaches Cognito only when a fault explains it.
    pub(crate) fn ghost_reuse(&mut self, op: u64, token: usize) {
        if self.ghost.lineage_lost.is_some() {
            return;
        }
        let now = self.now();
        let frontier = usable_descendants(&self.cognito, token, now);
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
        if token == 0 && self.ghost.data_lost_at.is_some() {
            return;
        }
        let process = self.sends.get(&op).map_or(usize::MAX, |s| s.actor.process);
        self.violation(
            "1 (no lineage lost)",
            format!(
                "process {process} sent refresh token {token}, superseded {:.3} s earlier (grace {} s), and was refused as a reuse, while its successors {frontier:?} were alive and no fault explains it",
                (now - superseded) as f64 / 1e6,
                self.cfg.grace_us / SEC
            ),
        );
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
        if now < exp {
            return;
        }
        let tolerance = match self.ghost.access_from.get(&n) {
            Some((from, _)) if *from == rec.actor => 0,
            Some((from, started)) => {
                let written = self.ghost.offset_at(from.process, *started);
                let read = self.ghost.min_offset(rec.actor.process, *started, now);
                (written - read).max(0) as u64
            }
            None => 0,
        };
        if now >= exp + tolerance {
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

    /// Invariant 4 for the fleet, at the end: granted refreshes ≤ 1 + ⌊T / (I − Δ)⌋ + the
    /// faults that excuse an early one + the `refresh_now()` calls.
    pub(crate) fn check_fleet_bound(&mut self, forced_calls: u64) {
        let span = self
            .cognito
            .grants
            .first()
            .zip(self.cognito.grants.last())
            .map_or(0, |(a, b)| b.at - a.at);
        let interval = due_interval(&self.cfg);
        let spread = self.ghost.max_spread.max(0) as u64;
        let step = interval.saturating_sub(spread).max(1);
        let bound = 1 + span / step + self.ghost.excuses + forced_calls;
        let grants = self.cognito.grants.len() as u64;
        if grants > bound && spread < interval {
            self.violation(
                "4 (no storm)",
                format!(
                    "{grants} refreshes granted over {:.3} s, more than 1 + T/(I − Δ) + excuses + forced = {bound}",
                    span as f64 / 1e6
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
