//! # cogref-sim
//!
//! A deterministic simulator of cogref token sessions under faults (dev-only, never published).
//! One seed fixes everything: how many processes share a store and which manager each runs,
//! every clock, every delay, every fault and every interleaving. A run that breaks an invariant
//! prints its seed and the one-line command that replays it exactly, and the shrinker reduces
//! its faults to a few that still break it.
//!
//! ```text
//! cargo xtask sim --seed 0x2a              # one run: what it did, its faults, its verdict
//! cargo xtask sim --seed 0x2a --trace      # every step and every log line
//! cargo xtask sim --seed 0x2a --faults 3,7 # the same run with only faults 3 and 7
//! cargo xtask sim --seeds 1000000          # a million seeds on every core
//! cargo xtask sim --ci                     # the CI batch (run by `cargo xtask ci`)
//! cargo xtask sim --seeds 8000 --mutant no-lock   # show that the invariants catch a mutant
//! ```
//!
//! ## The world
//!
//! - **Processes** (2 to 16): each runs the real [`cogref_session::TokenManager`] (on the
//!   simulator's executor, [`executor`]) or the real [`cogref_session::BlockingTokenManager`]
//!   (on a thread of its own that parks on every call into the world), unchanged, over the
//!   real core [`cogref_core::Session`]. Callers arrive at random and call `access_token()` or
//!   `refresh_now()`; some async processes also run `run_background()`. The managers reach the
//!   world only through the seams they already have: a transport ([`adapters::SimNet`],
//!   [`adapters::SimBlockingNet`]: sends, sleeps and spawns), a store, and an
//!   [`cogref_core::Environment`] ([`shared::SimEnv`]: both clocks and randomness). Every such
//!   call is an operation the scheduler completes on the simulated clock.
//! - **Clocks**: one true clock (µs). Each host has a wall clock off by a skew (0, up to ±30 s,
//!   or up to ±2 h) that steps can move; each OS process a monotonic clock. The managers of a
//!   memory store are one OS process (one wall clock, one monotonic clock); a file store's
//!   processes share one host; a Redis store's processes each have a host of their own.
//! - **Cognito** ([`cognito`]): one app client and one lineage, following the rotation rules
//!   of `cogref-emulator`: with rotation, a refresh supersedes the token it used and mints a new
//!   one; a superseded token refreshes again until its grace period (0 to 60 s) ends, then is
//!   refused with `RefreshTokenReuseException`; the lineage ends at its refresh-token validity
//!   or when revoked. Access tokens are JWTs with `iat`/`exp` on the true clock, lifetimes from
//!   0 s to a day; answers carry a `Date`. Every token and the client secret carry a canary.
//! - **Stores**: the real [`cogref_session::MemoryStore`]; models of `FileStore` (atomic rename,
//!   a lock that dies with its process, a new file starting at its writer's clock, a crashed
//!   writer's temporary file recovered by the next lock holder) and of the Redis store (lease
//!   with a time to live, versions from the server's clock, refusal of a version below one
//!   seen, pub/sub wake-ups) in [`model`]. `tests/conformance.rs` runs the scenarios of
//!   [`conformance`] against the real `FileStore` (in a fresh folder) and a real
//!   `redis-server` (started on a free 127.0.0.1 port) and against the models: they must
//!   observe the same outcomes, versions compared by how they relate, or the model has drifted.
//!   Every store reports a change stamp (`TokenStore::change_stamp`), so the managers' cached
//!   path looks at the store when a sibling saved, as over the real stores: the real memory
//!   store's own; the file model's moved by every save, recovery or deletion of the token file
//!   and, like the real `stat`, reused by each handle for `FileStore::STAMP_MAX_AGE`; the Redis
//!   model's moved by every message on the change channel (saves and lease releases, not a
//!   lease running out nor lost data, which nobody announces). The conformance scenarios read
//!   the real stores' stamps too.
//!
//! ## Faults
//!
//! Chosen by the seed ([`config`]), each numbered as it strikes so that a replay can keep
//! only some: a request lost before Cognito; a connection refused; an answer lost after Cognito
//! acted; an answer slower than the attempt timeout; throttling and 5xx bursts; a process
//! crash before a request leaves, as its answer arrives, before a store call, after it took
//! effect, or between a file save's temporary file and its rename, then a restart that loads
//! the store; a caller's future dropped at any point (async managers) and the background
//! refresher dropped; a store call failing (for Redis, sometimes applied with its reply lost);
//! a store outage; the store emptied (the token file deleted, Redis restarted without its
//! data); a Redis lease running out mid-refresh or dropped early; wall clocks stepped back or
//! forward (a second to two hours) and skewed between hosts; in half the worlds, coarse clocks
//! on the cached path, as the transports read on Linux (each host's own tick of 1, 4 or 10 ms
//! and phase, the stall of up to eleven ticks one per world, each process's monotonic anchor up
//! to thirteen ticks back; the lag stated 25 ticks; a restarted process keeps its anchor); the lineage revoked or expiring.
//! A memory store's world has no crash, data loss or store failure: its managers are one
//! process, and a memory store dies only with it.
//!
//! ## Invariants
//!
//! Checked after every step (one event and everything it made runnable). Notation: `L` the
//! access-token lifetime Cognito grants, `L′ = L − 1 s` the lifetime the session counts,
//! `m = min(margin, L′/2)`, `F` the floor between refreshes (`min_refresh_interval`),
//! `I = max(F, L′ − m)` the least time between two refreshes when nothing fails, `T` the
//! client's total call timeout, `A` its attempts. A token is *usable* while Cognito would grant
//! a refresh with it: active, or superseded less than the grace period ago, and the lineage
//! neither revoked nor past its validity. A token is *held* by the store (or by a crashed
//! writer's temporary file, which the next file lock holder recovers), by a live process's
//! session, or by a granted answer on its way to, or delivered into, a live refresh.
//!
//! 0. **No panic** in any task or caller thread.
//! 1. **No lineage lost.** While the lineage is alive at Cognito, some held token is usable,
//!    unless every token that carried it on left every holder through a fault. Precisely, when
//!    no held token is usable any more, each token `t` that was held and usable a step before
//!    is judged through the usable tokens never used yet at or below it (`t` itself if it was
//!    never used; a token used within its grace period is judged through what its refresh
//!    minted): each must have left its last holder through a fault: that holder crashed; its
//!    answer was lost, arrived after its attempt timed out (a slow answer, or plain latency
//!    past a short timeout) or was addressed to a crashed process; the store lost its data; or
//!    it was abandoned for a stored set of another branch of a fork (forks come only from
//!    faults and lost leases, which 1b and 2 judge where they happen). So with a grace period
//!    of 0 a lost answer after a rotation may end the lineage, and with a longer one it ends
//!    only if nobody retried within it; a store that is not durable (emptied) may lose what
//!    only it held.
//!
//!    1b. Cognito never refuses a token as reused while a successor of it never used yet is
//!    usable, unless each such successor was lost to a fault or kept unsaved by a failed save;
//!    or a lock or
//!    store anomaly (a lease or lock lost while held, the store's data lost, a file recreated
//!    below a version already handed out by a host whose clock is behind, a refresh without the
//!    lock under `refresh_without_store_lock(true)`, including one after a failed load) happened
//!    since `T + 10 s` before the token was superseded; or the request had outlived its attempt
//!    (its sender gave up on it, and the refusal reaches nobody).
//!
//!    1c. The store never goes back: a save replaces a set only with one whose refresh started
//!    no earlier, as the writers' wall clocks tell (the library compares stored times when it
//!    decides which set is newer): a set refreshed at `s_old` by a host `o_old` off is never
//!    replaced by one refreshed at `s_new < s_old − max(0, o_new − o_old) − 1 ms` (times are
//!    stored in milliseconds). A holder whose lease ran out never overwrites a newer set.
//! 2. **One refresh per due time.** A refresh is sent only by a process holding the store's
//!    lock (or, opted in to refreshing without it, as an anomaly). Order grants by the start of
//!    their refresh call (its first attempt); a grant is *early* if it started before
//!    `s_p + I − tol` (before `s_p + F − tol` when it answers a `refresh_now()` of its process,
//!    even one whose caller was cancelled), `s_p` being the start of the previous grant's call:
//!    the grant before it whose refresh started last, leaving out a dead fork (a grant whose
//!    minted refresh token is not the one this grant used nor an ancestor of it, and left
//!    every holder through a fault or for a stored set of another branch, nothing held below
//!    it): that fork was judged when it was granted, and the branch that lives on is due by
//!    its own sets' times. A grant that is early by `s_p` is still on time when the previous
//!    grant's save met a conflict with the set the store held (an older set whose stored time
//!    looked later: its writer's clock ahead), and this grant's call started after `s_p`, from
//!    that very set as the store held it (its process held the stored access token), at or
//!    after `s_h + I − tol_h`: `s_h` the start of the call that obtained that set (`s_h < s_p`),
//!    `tol_h` as `tol` between the refreshing process and that set's writer. Nothing else (a
//!    retry granted twice, a call that started first, a set lost to a crash) is timed that
//!    way: each is early, and a fault's excuse pays for it.
//!    `tol = 0` when both are the same process life; otherwise, the set was adopted from the
//!    store and `tol = max(δ, 1 s + T) + 1 ms`: `δ`, how far the adopter's host clock is ahead
//!    of the writer's, moves the stored expiry that much earlier for it; once a session knows
//!    Cognito's clock it caps an adopted set at the token's `exp`, with an offset that rounds
//!    up the whole second `Date`/`iat` drop and counts from the start of its own last refresh
//!    call (up to `T` before Cognito answered); and stored times are whole milliseconds. At
//!    every grant, the early grants so far never outnumber `E`, the faults so far that can
//!    each make one extra grant unavoidable: a granted answer lost or late; a crash; a failed
//!    save (or one applied but reported failed); each lock or store anomaly of 1b; a clock step
//!    (one per process on the host: each may refresh early once, through its own tokens or the
//!    server-clock offset it learnt before the step).
//! 3. **No token past its `exp`.** A call that returns access token `n` at true time `t` (at
//!    the start of its lock release, when it returns as that release completes: it judged the
//!    token before) has `t < exp_n + tol`, `exp_n` on Cognito's (the true) clock. `tol = 0` for
//!    a token its own process life obtained, and for any token in a memory store's world (the
//!    set carries its monotonic expiry between managers of one process). For a set adopted
//!    from a file or Redis store, which carries only wall-clock times, `tol = max(0, o_w −
//!    min o_r)`, `o_w` the writer's host clock offset when its refresh started and `min o_r`
//!    the reader's smallest since: a reader whose clock is behind the writer's (by skew or a
//!    step back) sees the stored expiry that much later. The session's caps (the set's
//!    lifetime from adoption; the token's `exp` once it knows Cognito's clock) keep it within
//!    that.
//! 4. **No storm.** (a) Two refresh calls of one process life start at least `F` apart, and
//!    (b) each makes at most `A` requests; so each life makes at most
//!    `A · (1 + its duration / F)` requests whatever fails. (c) Over the run, granted refreshes
//!    are at most `1 + ⌊S / g⌋ + E + R`: `S` the span between the starts of the first and
//!    the last granted refresh calls (as 2 spaces them; the grants' own times add each
//!    answer's latency), `g = max(1 µs, I − max(Δ, 1 s + T) − 1 ms)`, `Δ` the largest spread
//!    of host clocks, `E` as in 2, `R` the `refresh_now()` calls.
//! 5. **No secret shown.** No log line or span field (every level and target, each field
//!    formatted with `Debug`), no `SessionEvent` (`Debug`, and `Display` of its error), no
//!    error a caller or a manager's build returns (`Display` and `Debug`), and no session's
//!    `Debug` contains the canary: as text, as the list of numbers `Debug` makes of bytes, or
//!    as hex. Refresh tokens and the client secret carry it at both ends, access and ID tokens
//!    at both ends of the JWT, so half a token is found too.
//! 6. **Every call returns.** `access_token()` within `B = K + S_max`, `refresh_now()` within
//!    `3K + 2 · max(failure_backoff_max, F)`, with
//!    `K = lock_timeout + 0.27 s + 2T + 16 S_max + 1 s` (waiting for the lock, a reload, two
//!    refreshes, their saves, reloads and the release) and `S_max = 2.4 s` the slowest
//!    simulated store reply. Nothing stalls (no call waiting with nothing left to happen) or
//!    spins (100,000 events at one instant, or a run past 1,000,000 events), and no blocking
//!    caller thread runs 30 s of real time without parking on the simulation or returning
//!    (it would be blocked outside it; the run stops there instead of hanging the batch).
//!
//! ## Replay, shrink, regressions, mutants
//!
//! A failing run prints `cargo xtask sim --seed S` (with `--faults` and `--mutant` when it
//! had them); the shrinker ([`run::shrink`]) tries the run with no fault, then removes faults
//! by delta debugging while it still breaks the same invariant. Seeds that found a bug are named in
//! `regressions.txt`, replayed first by every `--ci`. The mutants ([`config::Mutant`]) change
//! the library's surroundings, never the library: the store's lock always granted
//! (`no-lock`), its save ignoring the version (`no-version`), a refresh task dropped with the
//! caller that spawned it instead of running detached (`attached`), a transport that logs each
//! request body as raw bytes (`leaky-transport`), a Cognito that tells its third grant's set
//! half its true lifetime, so that the library refreshes it early (`short-expires-in`, which
//! only invariant 2 can catch); `--ci` fails unless each breaks an invariant within its batch.

#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![allow(clippy::print_stderr)]

pub mod adapters;
pub mod capture;
pub(crate) mod check;
pub mod cognito;
pub mod config;
pub mod conformance;
pub mod executor;
pub mod model;
pub mod rng;
pub mod run;
pub mod shared;
pub mod world;

#[cfg(test)]
mod coarse_clocks;
#[cfg(test)]
mod due_by_basis;
#[cfg(test)]
mod due_by_basis_after_a_conflict;
