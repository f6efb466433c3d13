//! One list of store scenarios, run against a real store and against its model
//! ([`crate::model`]) by `tests/conformance.rs`: the outcomes must be equal, op by op, or the
//! model has drifted from the store the simulator trusts it to stand for.
//!
//! Versions are compared by rank (the order in which distinct values first appear) and by
//! how every two of them compare, so that a real store's clock-based versions and the model's
//! compare as equal when they relate the same way (a repeat is a repeat, a new file or entry
//! starts above every version handed out before): the managers decide what is newer by them.

use cogref_core::TokenSet;
use cogref_session::{StoreError, Versioned};

use crate::cognito::{CANARY, Cognito};
use crate::model::{Handle, Kind, StoreModel, Ticket};

/// Which version a save expects.
#[derive(Debug, Clone, Copy)]
pub enum Expect {
    /// Nothing stored.
    Nothing,
    /// The last version this handle loaded or saved.
    Last,
    /// One below that (a stale writer).
    Stale,
}

/// One step of a scenario. Handles are small numbers: separate store instances, as separate
/// processes hold.
#[derive(Debug, Clone, Copy)]
pub enum Op {
    /// `load`.
    Load(usize),
    /// `save` of the set whose refresh token is number `token`.
    Save {
        /// Who saves.
        h: usize,
        /// Which set.
        token: usize,
        /// What it expects.
        expected: Expect,
    },
    /// `try_lock`.
    TryLock(usize),
    /// `unlock` of the lock this handle holds.
    Unlock(usize),
    /// The handle's process dies, holding what it holds (a file lock dies with it; a Redis
    /// lease is never released).
    Crash(usize),
    /// The data is lost: the token file deleted, or Redis flushed.
    LoseData,
    /// A writer dies between writing its temporary file and renaming it (file only; the
    /// expected version is the stored one).
    TornSave {
        /// Which set.
        token: usize,
    },
    /// Time passes beyond the lease's time to live (Redis only).
    LeaseRunsOut,
    /// `wait_for_change` by `h` with the version it last saw, while nobody acts.
    WaitIdle(usize),
    /// `h` reads its change stamp (`TokenStore::change_stamp`) once what the store announced
    /// has had time to arrive: whether it moved since `h` last read it.
    Stamp(usize),
    /// `wait_for_change` by `h` while `other` saves `token` on its last version.
    WaitWhileSave {
        /// Who waits.
        h: usize,
        /// Who saves meanwhile.
        other: usize,
        /// Which set.
        token: usize,
    },
}

/// What one step observed, with versions as ranks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// A load: the refresh token number and the version's rank.
    Loaded(Option<(usize, usize)>),
    /// A save succeeded with this version.
    Saved(usize),
    /// A save lost its compare-and-set.
    Conflict {
        /// The version expected.
        expected: Option<usize>,
        /// The version found.
        found: Option<usize>,
    },
    /// A lock attempt: whether it was granted.
    Locked(bool),
    /// A wait: what it returned, and whether it returned before its timeout.
    Waited {
        /// `Ok(true)`: look again; `Ok(false)`: the store cannot notify.
        notified: bool,
        /// Returned early (at once, or woken by a publish).
        early: bool,
    },
    /// A change stamp read: whether it moved since the handle's previous reading (`None` for
    /// the first reading, or when the store gave no stamp).
    Stamp(Option<bool>),
    /// Any other error.
    Failed,
    /// Nothing to observe (or the step does not apply to this store).
    Done,
}

/// A store under test: the real one or a model, driven through the same steps.
pub trait Subject {
    /// File or Redis.
    fn kind(&self) -> Kind;
    /// `load` by handle `h`.
    fn load(&mut self, h: usize) -> Result<Option<Versioned>, StoreError>;
    /// `save` by handle `h`.
    fn save(
        &mut self,
        h: usize,
        tokens: &TokenSet,
        expected: Option<u64>,
    ) -> Result<u64, StoreError>;
    /// `try_lock` by handle `h` (which keeps the guard).
    fn try_lock(&mut self, h: usize) -> Result<bool, StoreError>;
    /// `unlock` of `h`'s guard.
    fn unlock(&mut self, h: usize);
    /// `h` dies holding its guard.
    fn crash(&mut self, h: usize);
    /// The data is lost.
    fn lose_data(&mut self);
    /// A writer dies between its temporary file and the rename (file).
    fn torn_save(&mut self, tokens: &TokenSet, expected: Option<u64>);
    /// Time passes beyond the lease's time to live (Redis).
    fn lease_runs_out(&mut self);
    /// `h`'s change stamp, read once what the store announced has arrived.
    fn stamp(&mut self, h: usize) -> Option<u64>;
    /// `wait_for_change(seen)` by `h`; with `during`, handle `other` saves meanwhile. Returns
    /// the wait's result, whether it returned early, and the save's result.
    #[allow(clippy::type_complexity)]
    fn wait(
        &mut self,
        h: usize,
        seen: Option<u64>,
        during: Option<(usize, &TokenSet, Option<u64>)>,
    ) -> (
        Result<bool, StoreError>,
        bool,
        Option<Result<u64, StoreError>>,
    );
}

/// The set a scenario stores as `token`: a refresh, access and ID token with the canary.
pub fn token_set(token: usize) -> TokenSet {
    let mut set = TokenSet::from_refresh_token(format!("{CANARY}rt{token}x0"), None);
    set.access_token = Some(format!("{CANARY}ah{token}.e30.{CANARY}as{token}").into());
    set.expires_at = Some(std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_800_003_600));
    set.lifetime = Some(std::time::Duration::from_secs(3600));
    set
}

/// What a scenario observed: the outcome of each step (two for a wait during a save), and how
/// the versions seen compare, pair by pair, in the order they first appeared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observed {
    /// One per step.
    pub outcomes: Vec<Outcome>,
    /// For each two versions `i < j` (by rank), how `i` compares with `j`.
    pub order: Vec<(usize, usize, std::cmp::Ordering)>,
}

/// Runs `scenario` on `subject`.
pub fn run(subject: &mut dyn Subject, scenario: &[Op]) -> Observed {
    let ranks = std::cell::RefCell::new(Vec::<u64>::new());
    let mut rank = |v: u64| {
        let mut ranks = ranks.borrow_mut();
        match ranks.iter().position(|r| *r == v) {
            Some(i) => i,
            None => {
                ranks.push(v);
                ranks.len() - 1
            }
        }
    };
    let mut last: Vec<Option<u64>> = vec![None; 8];
    let mut stamps: Vec<Option<u64>> = vec![None; 8];
    let mut out = Vec::new();
    let file = subject.kind() == Kind::File;
    for op in scenario {
        match *op {
            Op::Load(h) => match subject.load(h) {
                Ok(loaded) => {
                    last[h] = loaded.as_ref().map(|v| v.version);
                    out.push(Outcome::Loaded(loaded.map(|v| {
                        let n = Cognito::refresh_number(
                            cogref_core::secrecy::ExposeSecret::expose_secret(
                                &v.tokens.refresh_token,
                            ),
                        )
                        .unwrap_or(usize::MAX);
                        (n, rank(v.version))
                    })))
                }
                Err(_) => out.push(Outcome::Failed),
            },
            Op::Save { h, token, expected } => {
                let expected = resolve(expected, last[h]);
                let result = subject.save(h, &token_set(token), expected);
                out.push(saved(&mut rank, &mut last[h], result));
            }
            Op::TryLock(h) => out.push(match subject.try_lock(h) {
                Ok(granted) => Outcome::Locked(granted),
                Err(_) => Outcome::Failed,
            }),
            Op::Unlock(h) => {
                subject.unlock(h);
                out.push(Outcome::Done);
            }
            Op::Crash(h) => {
                subject.crash(h);
                out.push(Outcome::Done);
            }
            Op::LoseData => {
                subject.lose_data();
                out.push(Outcome::Done);
            }
            Op::TornSave { token } => {
                if file {
                    let current = subject.load(7).ok().flatten().map(|v| v.version);
                    subject.torn_save(&token_set(token), current);
                }
                out.push(Outcome::Done);
            }
            Op::LeaseRunsOut => {
                if !file {
                    subject.lease_runs_out();
                }
                out.push(Outcome::Done);
            }
            Op::Stamp(h) => {
                let stamp = subject.stamp(h);
                let moved = match (stamps[h], stamp) {
                    (Some(before), Some(now)) => Some(before != now),
                    _ => None,
                };
                stamps[h] = stamp;
                out.push(Outcome::Stamp(moved));
            }
            Op::WaitIdle(h) => {
                let (result, early, _) = subject.wait(h, last[h], None);
                out.push(waited(result, early));
            }
            Op::WaitWhileSave { h, other, token } => {
                let tokens = token_set(token);
                let (result, early, save) =
                    subject.wait(h, last[h], Some((other, &tokens, last[other])));
                out.push(waited(result, early));
                if let Some(save) = save {
                    out.push(saved(&mut rank, &mut last[other], save));
                }
            }
        }
    }
    let ranks = ranks.into_inner();
    let mut order = Vec::new();
    for (i, a) in ranks.iter().enumerate() {
        for (j, b) in ranks.iter().enumerate().skip(i + 1) {
            order.push((i, j, a.cmp(b)));
        }
    }
    Observed {
        outcomes: out,
        order,
    }
}

fn resolve(expected: Expect, last: Option<u64>) -> Option<u64> {
    match expected {
        Expect::Nothing => None,
        Expect::Last => last,
        Expect::Stale => last.map(|v| v.saturating_sub(1)),
    }
}

fn saved(
    rank: &mut impl FnMut(u64) -> usize,
    last: &mut Option<u64>,
    result: Result<u64, StoreError>,
) -> Outcome {
    match result {
        Ok(v) => {
            *last = Some(v);
            Outcome::Saved(rank(v))
        }
        Err(StoreError::Conflict { expected, found }) => Outcome::Conflict {
            expected: expected.map(&mut *rank),
            found: found.map(&mut *rank),
        },
        Err(_) => Outcome::Failed,
    }
}

fn waited(result: Result<bool, StoreError>, early: bool) -> Outcome {
    match result {
        Ok(notified) => Outcome::Waited { notified, early },
        Err(_) => Outcome::Failed,
    }
}

/// The scenarios, by name.
pub fn scenarios() -> Vec<(&'static str, Vec<Op>)> {
    use Expect::*;
    use Op::*;
    let save = |h, token, expected| Save { h, token, expected };
    vec![
        (
            "save is a compare-and-set on the version",
            vec![
                Load(0),
                save(0, 1, Nothing),
                Load(1),
                save(0, 2, Last),
                save(1, 3, Last),
                Load(1),
                save(1, 3, Stale),
                save(0, 4, Nothing),
            ],
        ),
        (
            "two creators: the second conflicts",
            vec![save(0, 1, Nothing), save(1, 2, Nothing), Load(1)],
        ),
        (
            "the lock is exclusive until unlocked",
            vec![
                TryLock(0),
                TryLock(1),
                TryLock(0),
                Unlock(0),
                TryLock(1),
                TryLock(2),
                Unlock(1),
                TryLock(2),
            ],
        ),
        (
            "a dead holder's lock: a file lock dies with it, a lease runs out",
            vec![
                TryLock(0),
                Crash(0),
                TryLock(1),
                LeaseRunsOut,
                TryLock(2),
                TryLock(1),
            ],
        ),
        (
            "a lease that ran out is not released by its old owner",
            vec![
                TryLock(0),
                LeaseRunsOut,
                TryLock(1),
                Unlock(0),
                TryLock(2),
                Unlock(1),
                TryLock(2),
            ],
        ),
        (
            "data lost: the next save finds nothing, a create succeeds",
            vec![
                save(0, 1, Nothing),
                save(0, 2, Last),
                Load(1),
                LoseData,
                Load(2),
                save(0, 3, Last),
                save(0, 3, Nothing),
                Load(1),
                save(1, 4, Last),
                Load(0),
            ],
        ),
        (
            "data lost under a held lock",
            vec![
                save(0, 1, Nothing),
                TryLock(0),
                LoseData,
                TryLock(1),
                Unlock(0),
                TryLock(2),
            ],
        ),
        (
            "a file written afresh starts above what its writer had seen, not only the clock",
            vec![
                save(0, 1, Nothing),
                save(0, 2, Last),
                save(0, 3, Last),
                Load(1),
                LoseData,
                save(1, 4, Nothing),
                Load(2),
                save(2, 5, Last),
                LoseData,
                save(3, 6, Nothing),
                Load(0),
            ],
        ),
        (
            "a torn save is put in place by the next lock holder",
            vec![
                save(0, 1, Nothing),
                Load(1),
                TornSave { token: 2 },
                Load(1),
                TryLock(1),
                Load(1),
                save(1, 3, Last),
                Load(0),
            ],
        ),
        (
            "a torn save is removed by a save made without the lock",
            vec![
                save(0, 1, Nothing),
                TornSave { token: 2 },
                save(0, 3, Last),
                TryLock(1),
                Load(1),
            ],
        ),
        (
            "a torn save is put in place even after the file was deleted (a crash during a first save)",
            vec![
                save(0, 1, Nothing),
                TornSave { token: 2 },
                LoseData,
                TryLock(0),
                Load(0),
                save(0, 3, Nothing),
                Load(1),
            ],
        ),
        (
            "a torn save older than the stored set is removed",
            vec![
                save(0, 1, Nothing),
                TornSave { token: 2 },
                TryLock(1),
                Unlock(1),
                Load(0),
                TornSave { token: 3 },
                save(0, 4, Last),
                TryLock(1),
                Load(1),
            ],
        ),
        (
            "a waiter returns at once when the lease is free or the version moved",
            vec![
                save(0, 1, Nothing),
                Load(1),
                WaitIdle(1),
                TryLock(0),
                WaitIdle(1),
                save(0, 2, Last),
                WaitIdle(1),
            ],
        ),
        (
            "a waiter is woken by a save",
            vec![
                save(0, 1, Nothing),
                Load(1),
                TryLock(0),
                WaitWhileSave {
                    h: 1,
                    other: 0,
                    token: 2,
                },
                Load(1),
            ],
        ),
        (
            "a waiter is not woken by a failed save",
            vec![
                save(0, 1, Nothing),
                Load(1),
                Load(2),
                save(0, 2, Last),
                Load(1),
                TryLock(0),
                WaitWhileSave {
                    h: 1,
                    other: 2,
                    token: 3,
                },
            ],
        ),
        (
            "the change stamp moves on what the store announces and only then",
            vec![
                Stamp(0),
                Load(1),
                Stamp(0),
                save(1, 1, Nothing),
                Stamp(0),
                save(2, 2, Nothing),
                Stamp(0),
                TryLock(1),
                Stamp(0),
                Unlock(1),
                Stamp(0),
                save(1, 3, Last),
                Stamp(0),
                TryLock(2),
                LeaseRunsOut,
                Stamp(0),
                LoseData,
                Stamp(0),
                save(1, 4, Nothing),
                Stamp(0),
                Stamp(0),
            ],
        ),
        (
            "a crashed writer's set put in place moves the stamp",
            vec![
                save(0, 1, Nothing),
                Stamp(1),
                TornSave { token: 2 },
                Stamp(1),
                TryLock(0),
                Stamp(1),
                Load(1),
            ],
        ),
    ]
}

/// A model as a [`Subject`], its clock moving 1 ms per step.
pub struct ModelSubject {
    model: StoreModel,
    now: u64,
    tickets: Vec<Option<Ticket>>,
}

impl ModelSubject {
    /// A fresh model of `kind`.
    pub fn new(kind: Kind) -> Self {
        Self {
            model: StoreModel::new(kind),
            now: 1_000_000,
            tickets: vec![None; 8],
        }
    }

    fn tick(&mut self) -> u64 {
        self.now += 1_000;
        self.now
    }
}

impl Subject for ModelSubject {
    fn kind(&self) -> Kind {
        self.model.kind()
    }

    fn load(&mut self, h: usize) -> Result<Option<Versioned>, StoreError> {
        let now = self.tick();
        self.model.load(h as Handle, now)
    }

    fn save(
        &mut self,
        h: usize,
        tokens: &TokenSet,
        expected: Option<u64>,
    ) -> Result<u64, StoreError> {
        let now = self.tick();
        let wall = crate::cognito::EPOCH_SECS * 1_000_000 + now;
        self.model
            .save(h as Handle, now, wall, tokens, expected, false)
    }

    fn try_lock(&mut self, h: usize) -> Result<bool, StoreError> {
        let now = self.tick();
        let ticket = self.model.try_lock(h as Handle, now, false);
        if ticket.is_some() {
            self.tickets[h] = ticket;
        }
        Ok(ticket.is_some())
    }

    fn unlock(&mut self, h: usize) {
        let now = self.tick();
        if let Some(ticket) = self.tickets[h].take() {
            self.model.unlock(ticket, now);
        }
    }

    fn crash(&mut self, h: usize) {
        self.tickets[h] = None;
        self.model.crash(h as Handle);
    }

    fn lose_data(&mut self) {
        self.model.lose_data();
    }

    fn torn_save(&mut self, tokens: &TokenSet, expected: Option<u64>) {
        let now = self.tick();
        let wall = crate::cognito::EPOCH_SECS * 1_000_000 + now;
        self.model.save_torn(7, wall, tokens, expected);
    }

    fn lease_runs_out(&mut self) {
        if let Kind::Redis { lease_ttl_us } = self.model.kind() {
            self.now += lease_ttl_us + 1;
        }
    }

    fn stamp(&mut self, _: usize) -> Option<u64> {
        Some(self.model.stamp())
    }

    fn wait(
        &mut self,
        h: usize,
        seen: Option<u64>,
        during: Option<(usize, &TokenSet, Option<u64>)>,
    ) -> (
        Result<bool, StoreError>,
        bool,
        Option<Result<u64, StoreError>>,
    ) {
        let _ = h;
        let now = self.tick();
        if self.model.kind() == Kind::File {
            // FileStore cannot notify: `Ok(false)` at once (the manager sleeps instead).
            let save = during.map(|(o, t, e)| self.save(o, t, e));
            return (Ok(false), true, save);
        }
        if self.model.changed(now, seen) {
            let save = during.map(|(o, t, e)| self.save(o, t, e));
            return (Ok(true), true, save);
        }
        let before = self.model.publishes;
        let save = during.map(|(o, t, e)| self.save(o, t, e));
        // Woken by a publish, or after its timeout: either way `Ok(true)`.
        (Ok(true), self.model.publishes > before, save)
    }
}
