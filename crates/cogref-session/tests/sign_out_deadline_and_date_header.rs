//! Review of issue 14 (sign-out, deadline, Cognito's clock): each test is a promise of the
//! README or the docs that a hostile server, a slow refresh or a second sign-in breaks.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use cogref_core::driver::{HttpRequest, HttpResponse, ManualEnvironment, StdEnvironment};
use cogref_core::{BlockingTransport, Error, SendOptions};
use cogref_session::{
    BlockingTokenManager, FileStore, MemoryStore, SessionError, SessionEvent, StoreError,
    StoreGuard, TokenManager, TokenStore, Versioned,
};
use common::*;

const REVOKE: &str = "AWSCognitoIdentityProviderService.RevokeToken";

fn jwt(claims: &str) -> String {
    format!(
        "eyJhbGciOiJSUzI1NiJ9.{}.c2ln",
        URL_SAFE_NO_PAD.encode(claims)
    )
}

fn secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).expect("after 1970").as_secs()
}

/// `t` as an IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`).
fn imf_fixdate(t: SystemTime) -> String {
    let s = secs(t);
    let days = (s / 86_400) as i64;
    let rem = s % 86_400;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    let weekday = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"][(days % 7) as usize];
    let month = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ][(m - 1) as usize];
    format!(
        "{weekday}, {d:02} {month} {y:04} {:02}:{:02}:{:02} GMT",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// A Cognito that mints a fresh one-hour access token (`iat` = its clock, the manual one) on
/// every refresh, answers every revocation with `{}`, and stamps each response with a `Date`
/// header `date_offset_secs` away from its clock (a hostile or broken front end).
#[derive(Clone)]
struct Minting {
    clock: ManualEnvironment,
    date_offset_secs: i64,
    refreshes: Arc<AtomicUsize>,
}

impl Minting {
    fn new(clock: &ManualEnvironment, date_offset_secs: i64) -> Self {
        Self {
            clock: clock.clone(),
            date_offset_secs,
            refreshes: Arc::default(),
        }
    }
}

impl BlockingTransport for Minting {
    fn send(&self, request: HttpRequest, _: SendOptions) -> Result<HttpResponse, Error> {
        use cogref_core::Environment;
        let now = self.clock.wall_clock();
        let date = if self.date_offset_secs >= 0 {
            now + Duration::from_secs(self.date_offset_secs.unsigned_abs())
        } else {
            now - Duration::from_secs(self.date_offset_secs.unsigned_abs())
        };
        let body = if request.headers()["x-amz-target"] == REVOKE {
            "{}".to_owned()
        } else {
            let n = self.refreshes.fetch_add(1, Ordering::SeqCst);
            let iat = secs(now);
            let access = jwt(&format!(
                r#"{{"iat":{iat},"exp":{},"auth_time":{},"n":{n}}}"#,
                iat + 3600,
                T0
            ));
            format!(
                r#"{{"AuthenticationResult":{{"AccessToken":"{access}","ExpiresIn":3600,"TokenType":"Bearer"}}}}"#
            )
        };
        Ok(cogref_core::http::Response::builder()
            .status(200)
            .header("date", imf_fixdate(date))
            .body(body.into_bytes())
            .expect("response"))
    }

    fn sleep(&self, duration: Duration) {
        self.clock.advance(duration);
    }
}

// ---------------------------------------------------------------------------------------------
// Cognito's clock: a `Date` header is trusted over the token's own `iat`.
// ---------------------------------------------------------------------------------------------

/// README "Storm-free": two refreshes start at least a second apart, *doubling while Cognito
/// returns tokens that are already due*. A `Date` header two hours ahead of the token's `iat`
/// (a broken proxy, a hostile server) makes every fresh one-hour token due on arrival, yet the
/// floor never doubles: one refresh per second for as long as callers ask, and no caller ever
/// gets the token.
#[test]
fn tokens_made_due_on_arrival_by_a_date_header_back_off_like_any_tokens_that_come_back_due() {
    let clock = clock();
    let transport = Minting::new(&clock, 2 * 3600);
    let manager = BlockingTokenManager::builder(
        client(transport.clone(), &clock),
        template("r0"),
        MemoryStore::new(),
    )
    .build()
    .expect("manager");
    let mut served = 0;
    for _ in 0..60 {
        if manager.access_token().is_ok() {
            served += 1;
        }
        clock.advance(Duration::from_secs(1));
    }
    let refreshes = transport.refreshes.load(Ordering::SeqCst);
    // Doubling from 1 s: refreshes at 0, 1, 3, 7, 15, 31 s (and at most one more).
    assert!(
        refreshes <= 7,
        "{refreshes} refreshes in 60 s of one-hour tokens (served {served} of 60 calls)"
    );
}

/// Every store must read back what the manager stores. A response whose `Date` header is
/// eleven years off (a server or proxy with a dead RTC battery answering `Date: ... 2016`)
/// makes the manager store `clock_skew_secs` beyond the ten years `format::decode` accepts, so
/// the file is "corrupt" for every process from then on: no manager can be built over it, and
/// the one that wrote it can no longer refresh.
#[test]
fn a_date_header_years_off_never_makes_the_stored_set_unreadable() {
    let dir = TempDir::new("review14-date");
    let path = dir.file("tokens.json");
    let clock = clock();
    let transport = Minting::new(&clock, -11 * 365 * 86_400);
    let manager = BlockingTokenManager::builder(
        client(transport.clone(), &clock),
        template("r0"),
        FileStore::new(&path),
    )
    .build()
    .expect("manager");
    manager.access_token().expect("a token");
    let loaded = FileStore::new(&path).load();
    assert!(
        loaded.is_ok(),
        "the set this manager stored cannot be read back: {:?}",
        loaded.err()
    );
    let other = BlockingTokenManager::builder(
        client(transport, &clock),
        template("r0"),
        FileStore::new(&path),
    )
    .build();
    assert!(other.is_ok(), "{:?}", other.err());
}

/// The same cause through the builder: `refresh_token_validity` takes any `Duration`, the
/// manager stores it as is, and a validity above ten years (or `Duration::MAX`, an absurd value
/// an application may pass for "never") is refused by `format::decode` as corrupt.
#[test]
fn an_absurd_refresh_token_validity_never_makes_the_stored_set_unreadable() {
    let dir = TempDir::new("review14-validity");
    let path = dir.file("tokens.json");
    let clock = clock();
    let transport = Minting::new(&clock, 0);
    let manager = BlockingTokenManager::builder(
        client(transport, &clock),
        template("r0"),
        FileStore::new(&path),
    )
    .refresh_token_validity(Duration::MAX)
    .build()
    .expect("manager");
    manager.access_token().expect("a token");
    let loaded = FileStore::new(&path).load();
    assert!(
        loaded.is_ok(),
        "the set this manager stored cannot be read back: {:?}",
        loaded.err()
    );
    // And the manager itself, once its token is due, must still be able to refresh.
    clock.advance(Duration::from_secs(3600));
    let again = manager.access_token();
    assert!(again.is_ok(), "{:?}", again.err());
}

// ---------------------------------------------------------------------------------------------
// EndingSoon: "a configurable time before it, once per process".
// ---------------------------------------------------------------------------------------------

fn ending_soon_listener(
    told: &Arc<Mutex<Vec<SystemTime>>>,
) -> impl Fn(&SessionEvent) + Send + Sync + 'static {
    let told = told.clone();
    move |e| {
        if let SessionEvent::EndingSoon { deadline } = e {
            told.lock().expect("told").push(*deadline);
        }
    }
}

/// The app states a 1-day validity and a 10-minute notice; access tokens live an hour. The
/// deadline falls 30 minutes after the last refresh, so the notice window (20 to 30 minutes)
/// lies between two refreshes. A caller of `access_token()` inside the window, and the
/// background refresher, never hear `EndingSoon`: it is only checked after a refresh or an
/// adoption, and the background refresher does not wake for it. The session dies unannounced.
#[test]
fn ending_soon_is_reported_within_the_notice_even_when_no_refresh_falls_inside_it() {
    let clock = clock();
    let transport = Minting::new(&clock, 0);
    let told = Arc::new(Mutex::new(Vec::new()));
    let validity = Duration::from_secs(86_400);
    // Signed in so that the deadline is T0 + 30 min.
    let signed_in = UNIX_EPOCH + Duration::from_secs(T0 + 1800) - validity;
    let manager = Arc::new(
        BlockingTokenManager::builder(
            client(transport, &clock),
            template("r0"),
            MemoryStore::new(),
        )
        .refresh_token_validity(validity)
        .ending_soon_notice(Duration::from_secs(600))
        .signed_in_at(signed_in)
        .on_event(ending_soon_listener(&told))
        .build()
        .expect("manager"),
    );
    manager.access_token().expect("first token");
    let deadline = manager.deadline().expect("known");
    assert!(told.lock().expect("told").is_empty(), "not yet");
    // 25 minutes on: 5 minutes before the deadline, well inside the 10-minute notice.
    clock.advance(Duration::from_secs(25 * 60));
    assert!(clock_now(&clock) < deadline);
    manager.access_token().expect("cached token");
    assert_eq!(
        told.lock().expect("told").len(),
        1,
        "no EndingSoon 5 minutes before a deadline with a 10-minute notice"
    );
}

fn clock_now(clock: &ManualEnvironment) -> SystemTime {
    use cogref_core::Environment;
    clock.wall_clock()
}

/// A long-running process signs the user out and the user signs in again (another manager
/// stores the new lineage, which this one adopts). The new lineage has its own deadline, but
/// `EndingSoon` was already "told" for the old one (`Engine::ending_soon_told` is never reset),
/// so the new session ends without notice.
#[test]
fn a_new_sign_in_after_a_sign_out_gets_its_own_ending_soon() {
    let clock = clock();
    let validity = Duration::from_secs(2 * 86_400);
    let notice = Duration::from_secs(6 * 3600);
    let told = Arc::new(Mutex::new(Vec::new()));
    let store = MemoryStore::new();
    // Lineage 1: signed in at T0 - 2 days + 3 h, so it ends 3 h from now (inside the notice).
    let first_sign_in = UNIX_EPOCH + Duration::from_secs(T0 + 3 * 3600) - validity;
    let manager = BlockingTokenManager::builder(
        client(Minting::new(&clock, 0), &clock),
        template("r0"),
        store.clone(),
    )
    .refresh_token_validity(validity)
    .ending_soon_notice(notice)
    .signed_in_at(first_sign_in)
    .on_event(ending_soon_listener(&told))
    .build()
    .expect("manager");
    manager.access_token().expect("token of lineage 1");
    assert_eq!(told.lock().expect("told").len(), 1, "lineage 1 announced");
    manager.sign_out().expect("signed out");
    // The user signs in again now: a new manager over the tombstone stores lineage 2.
    let second_sign_in = clock_now(&clock);
    let fresh = BlockingTokenManager::builder(
        client(Minting::new(&clock, 0), &clock),
        template("s0"),
        store.clone(),
    )
    .refresh_token_validity(validity)
    .signed_in_at(second_sign_in)
    .build()
    .expect("new sign-in");
    fresh.access_token().expect("token of lineage 2");
    // The first manager adopts lineage 2 on its next call.
    manager.access_token().expect("adopted lineage 2");
    let deadline = manager.deadline().expect("known");
    assert!(deadline > second_sign_in + validity - Duration::from_secs(5));
    // Two days on, 2 hours before lineage 2's deadline: refreshes happen, nothing is told.
    for _ in 0..46 {
        clock.advance(Duration::from_secs(3600));
        let _ = fresh.access_token();
        let _ = manager.access_token();
    }
    assert!(clock_now(&clock) < deadline);
    assert_eq!(
        told.lock().expect("told").len(),
        2,
        "lineage 2 ends in 2 h with a 6 h notice, and no EndingSoon was reported for it"
    );
}

// ---------------------------------------------------------------------------------------------
// Sign-out racing a refresh: the tombstone must stay.
// ---------------------------------------------------------------------------------------------

/// An async Cognito on tokio: refreshes answer after `refresh_delay` (a slow Cognito, or one
/// whose answer is slow to come back) with a rotated token `r1`, revocations answer `{}` at once.
#[derive(Clone)]
struct SlowRefresh {
    refresh_delay: Duration,
    refreshes: Arc<AtomicUsize>,
    revocations: Arc<AtomicUsize>,
}

impl SlowRefresh {
    fn new(refresh_delay: Duration) -> Self {
        Self {
            refresh_delay,
            refreshes: Arc::default(),
            revocations: Arc::default(),
        }
    }
}

impl cogref_core::AsyncTransport for SlowRefresh {
    async fn send(&self, request: HttpRequest, _: SendOptions) -> Result<HttpResponse, Error> {
        let body = if request.headers()["x-amz-target"] == REVOKE {
            self.revocations.fetch_add(1, Ordering::SeqCst);
            "{}".to_owned()
        } else {
            tokio::time::sleep(self.refresh_delay).await;
            let n = self.refreshes.fetch_add(1, Ordering::SeqCst);
            let iat = secs(SystemTime::now());
            let access = jwt(&format!(r#"{{"iat":{iat},"exp":{},"n":{n}}}"#, iat + 3600));
            format!(
                r#"{{"AuthenticationResult":{{"AccessToken":"{access}","ExpiresIn":3600,"TokenType":"Bearer","RefreshToken":"r{}"}}}}"#,
                n + 1
            )
        };
        Ok(cogref_core::http::Response::builder()
            .status(200)
            .body(body.into_bytes())
            .expect("response"))
    }

    async fn sleep(&self, duration: Duration) {
        tokio::time::sleep(duration).await;
    }

    fn spawn(&self, task: cogref_core::driver::DetachedTask) {
        tokio::spawn(task);
    }
}

fn std_env() -> StdEnvironment {
    StdEnvironment::new(Instant::now, SystemTime::now)
}

fn assert_tombstone(stored: Option<Versioned>, what: &str) {
    let stored = stored.expect("something stored");
    assert!(
        stored.tokens.is_signed_out(),
        "{what}: the store no longer holds the tombstone but a set with a refresh token and an \
         access token (expires_at {:?}): the signed-out lineage is back",
        stored.tokens.expires_at
    );
}

/// `sign_out()` docs: a lock held past the lock timeout is not waited for; "a set that refresh
/// stores afterwards is overwritten by the tombstone or refused by Cognito". Here the refresh is
/// this manager's own, and Cognito answered it (the revocation reached Cognito after the
/// refresh was processed; or the live service does not end tokens rotated from the revoked
/// one): when it ends, `Engine::refreshed` takes the version to compare-and-set against from
/// the state *then*, which the tombstone's save has just set to the tombstone's own version, so
/// the rotated set is written over the tombstone with no conflict at all. Every manager sharing
/// the store then adopts it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refresh_that_ends_after_its_own_managers_sign_out_never_writes_over_the_tombstone() {
    let transport = SlowRefresh::new(Duration::from_millis(800));
    let store = MemoryStore::new();
    let manager = TokenManager::builder(
        client_on(transport.clone(), std_env()),
        template("r0"),
        store.clone(),
    )
    .lock_timeout(Duration::from_millis(100))
    .build()
    .await
    .expect("manager");
    let caller = manager.clone();
    let refresh = tokio::spawn(async move { caller.access_token().await });
    tokio::time::sleep(Duration::from_millis(50)).await;
    manager.sign_out().await.expect("signed out");
    assert_tombstone(store.load().expect("ok"), "right after sign_out");
    let _ = refresh.await.expect("task");
    assert_eq!(transport.revocations.load(Ordering::SeqCst), 1);
    assert_tombstone(
        store.load().expect("ok"),
        "after the refresh in flight ended",
    );
    // Another holder of the store (a restart of this very program) must hear SignedOut.
    let restarted = TokenManager::builder(
        client_on(transport.clone(), std_env()),
        template("r0"),
        store.clone(),
    )
    .build()
    .await
    .expect("manager");
    let after = restarted.access_token().await;
    assert!(
        matches!(after, Err(SessionError::SignedOut)),
        "a manager started after sign_out() got {:?}",
        after.map(|_| "an access token")
    );
}

/// A lock that runs out, as `cogref-redis`'s lease does (`SET NX PX ttl`); saves are a
/// compare-and-set on the version only, as the Redis `SAVE` script is.
#[derive(Clone)]
struct LeaseStore {
    inner: MemoryStore,
    lease: Arc<Mutex<Option<(u64, Instant)>>>,
    owners: Arc<AtomicUsize>,
    ttl: Duration,
}

struct Lease {
    lease: Arc<Mutex<Option<(u64, Instant)>>>,
    owner: u64,
}

impl Drop for Lease {
    fn drop(&mut self) {
        let mut lease = self.lease.lock().expect("lease");
        if lease.is_some_and(|(owner, _)| owner == self.owner) {
            *lease = None;
        }
    }
}

impl TokenStore for LeaseStore {
    fn load(&self) -> Result<Option<Versioned>, StoreError> {
        self.inner.load()
    }
    fn save(
        &self,
        tokens: &cogref_session::TokenSet,
        expected: Option<u64>,
    ) -> Result<u64, StoreError> {
        self.inner.save(tokens, expected)
    }
    fn try_lock(&self) -> Result<Option<StoreGuard>, StoreError> {
        let mut lease = self.lease.lock().expect("lease");
        if lease.is_some_and(|(_, until)| Instant::now() < until) {
            return Ok(None);
        }
        let owner = self.owners.fetch_add(1, Ordering::SeqCst) as u64;
        *lease = Some((owner, Instant::now() + self.ttl));
        Ok(Some(StoreGuard::new(Lease {
            lease: self.lease.clone(),
            owner,
        })))
    }
    fn change_stamp(&self) -> Option<u64> {
        self.inner.change_stamp()
    }
}

/// README "One session for a fleet": "a process whose lease ran out during a slow refresh
/// cannot overwrite a newer set". Process B's refresh outlives its lease; process A takes the
/// lease, properly, and signs out; a second caller of B looks at the store (its change stamp
/// moved) and learns of the sign-out. When B's refresh ends, `Engine::refreshed` compares and
/// sets against the version that look recorded (the tombstone's), so B's rotated set replaces
/// the tombstone: the lineage A signed out is back in the store for the whole fleet.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refresh_whose_lease_ran_out_never_writes_over_a_tombstone_it_has_seen() {
    let transport = SlowRefresh::new(Duration::from_millis(800));
    let store = LeaseStore {
        inner: MemoryStore::new(),
        lease: Arc::default(),
        owners: Arc::default(),
        ttl: Duration::from_millis(200),
    };
    let b = TokenManager::builder(
        client_on(transport.clone(), std_env()),
        template("r0"),
        store.clone(),
    )
    .build()
    .await
    .expect("manager B");
    let a = TokenManager::builder(
        client_on(transport.clone(), std_env()),
        template("r0"),
        store.clone(),
    )
    .build()
    .await
    .expect("manager A");
    let caller = b.clone();
    let slow = tokio::spawn(async move { caller.access_token().await });
    // B's lease runs out at 200 ms; A waits for it (well within its lock timeout) and signs out.
    tokio::time::sleep(Duration::from_millis(50)).await;
    a.sign_out().await.expect("A signed out");
    assert_tombstone(store.load().expect("ok"), "right after A's sign_out");
    // Another request handler of B asks for a token meanwhile: B learns of the sign-out.
    let seen = b.access_token().await;
    assert!(matches!(seen, Err(SessionError::SignedOut)), "{seen:?}");
    let _ = slow.await.expect("task");
    assert_tombstone(store.load().expect("ok"), "after B's slow refresh ended");
    let fleet = TokenManager::builder(
        client_on(transport.clone(), std_env()),
        template("r0"),
        store.clone(),
    )
    .build()
    .await
    .expect("manager");
    let after = fleet.access_token().await;
    assert!(
        matches!(after, Err(SessionError::SignedOut)),
        "a process of the fleet got {:?} after the sign-out",
        after.map(|_| "an access token")
    );
}

// ---------------------------------------------------------------------------------------------
// Cognito's clock across hosts sharing a store.
// ---------------------------------------------------------------------------------------------

/// The shared manual clock, with this host's wall clock `offset_secs` off (the monotonic clock
/// is the same: only wall clocks differ between hosts).
#[derive(Clone)]
struct HostClock {
    base: ManualEnvironment,
    offset_secs: i64,
}

impl cogref_core::Environment for HostClock {
    fn now(&self) -> Instant {
        self.base.now()
    }
    fn wall_clock(&self) -> SystemTime {
        let wall = self.base.wall_clock();
        let off = Duration::from_secs(self.offset_secs.unsigned_abs());
        if self.offset_secs >= 0 {
            wall + off
        } else {
            wall - off
        }
    }
    fn random_seed(&self) -> u64 {
        self.base.random_seed()
    }
}

fn exp_of(token: &str) -> u64 {
    let payload = token.split('.').nth(1).expect("a JWT");
    let json: serde_json::Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).expect("base64")).expect("json");
    json["exp"].as_u64().expect("exp")
}

/// Issue 14 (3): "tokens ... never served past `exp`" with a client clock 10 minutes off. In a
/// fleet, host A (its clock 10 minutes ahead) refreshes and stores `expires_at` on its own
/// clock; host B, whose clock is right, adopts the set half an hour later. B has not refreshed
/// itself, so it knows no offset and `Session::capped_by_exp` leaves the adopted expiry alone:
/// B takes A's clock reading for its own and serves the access token after Cognito's `exp`
/// (until A's expiry less the margin, here 5 minutes past `exp`). The set even records A's skew
/// (`clock_skew_secs`) and the token its `exp`, either of which puts the expiry right.
#[test]
#[ignore = "open: capping an adopted set at exp on the adopter's own clock before it knows its offset (31128ab) made processes on hosts ahead refresh early (simulator invariant 2, seeds 0x33 0x3c 0x89 0xb0 0xc4) and was reverted in 859f3e6; the adopter needs a way to learn its own offset first"]
fn a_host_with_a_right_clock_never_serves_a_set_adopted_from_a_host_ten_minutes_ahead_past_exp() {
    use cogref_core::Environment;
    use cogref_session::secrecy::ExposeSecret;
    let dir = TempDir::new("review14-hosts");
    let path = dir.file("tokens.json");
    let cognito = clock();
    let host_a = HostClock {
        base: cognito.clone(),
        offset_secs: 600,
    };
    let host_b = HostClock {
        base: cognito.clone(),
        offset_secs: 0,
    };
    let a = BlockingTokenManager::builder(
        client_on(Minting::new(&cognito, 0), host_a),
        template("r0"),
        FileStore::new(&path),
    )
    .build()
    .expect("manager A");
    let first = a.access_token().expect("A refreshes");
    let exp = exp_of(first.expose_secret());
    assert_eq!(
        a.clock_skew_secs(),
        Some(-600),
        "A knows its clock is ahead"
    );
    cognito.advance(Duration::from_secs(1800));
    let b = BlockingTokenManager::builder(
        client_on(Minting::new(&cognito, 0), host_b),
        template("r0"),
        FileStore::new(&path),
    )
    .build()
    .expect("manager B");
    b.access_token().expect("B adopts A's set");
    // A minute past exp by Cognito's clock (and by B's, which is right).
    cognito.advance(Duration::from_secs(exp - secs(cognito.wall_clock()) + 60));
    let served = b.access_token().expect("a token");
    let server_now = secs(cognito.wall_clock());
    assert!(
        exp_of(served.expose_secret()) > server_now,
        "B served a token whose exp ({}) passed {} s ago by Cognito's clock and its own",
        exp_of(served.expose_secret()),
        server_now - exp_of(served.expose_secret())
    );
}

/// `SessionEvent::EndingSoon` docs and the README: "Reported once per process". The flag is per
/// manager (`Engine::ending_soon_told`), so a process with two managers of one lineage (the
/// README's `MemoryStore` "shared by the managers of one process") reports it twice.
#[test]
fn ending_soon_is_reported_once_per_process_however_many_managers_share_the_lineage() {
    let clock = clock();
    let validity = Duration::from_secs(86_400);
    let told = Arc::new(Mutex::new(Vec::new()));
    let store = MemoryStore::new();
    // The lineage ends in 2 hours; the notice is a day.
    let signed_in = UNIX_EPOCH + Duration::from_secs(T0 + 2 * 3600) - validity;
    let managers: Vec<_> = (0..2)
        .map(|_| {
            BlockingTokenManager::builder(
                client(Minting::new(&clock, 0), &clock),
                template("r0"),
                store.clone(),
            )
            .refresh_token_validity(validity)
            .signed_in_at(signed_in)
            .on_event(ending_soon_listener(&told))
            .build()
            .expect("manager")
        })
        .collect();
    for manager in &managers {
        manager.access_token().expect("token");
    }
    clock.advance(Duration::from_secs(3600));
    for manager in &managers {
        manager.access_token().expect("token");
    }
    let times = told.lock().expect("told").len();
    assert_eq!(times, 1, "EndingSoon reported {times} times in one process");
}

/// `sign_out()` goes on without the store's lock once the lock timeout has passed, and counts
/// on the save being a compare-and-set ("a set that refresh stores afterwards is overwritten by
/// the tombstone"), as `TokenStore::save` promises. `FileStore::save` is one only for a caller
/// that holds the lock ("nobody writes between this read and the rename"): a tombstone saved
/// without it and the lock holder's rotated set, both expecting the same generation, both
/// succeed, and the last rename wins, so either write is lost without a conflict.
#[test]
fn file_store_save_is_a_compare_and_set_for_a_writer_without_the_lock() {
    let dir = TempDir::new("review14-cas");
    let path = dir.file("tokens.json");
    let store = FileStore::new(&path);
    let mut expected = Some(
        store
            .save(
                &cogref_session::TokenSet::from_refresh_token("r0", None),
                None,
            )
            .expect("first"),
    );
    let mut both = 0;
    for round in 0..50 {
        let barrier = Arc::new(std::sync::Barrier::new(2));
        let results: Vec<_> = ["tombstone", "rotated"]
            .into_iter()
            .map(|who| {
                let store = FileStore::new(&path);
                let barrier = barrier.clone();
                std::thread::spawn(move || {
                    let tokens = if who == "tombstone" {
                        cogref_session::TokenSet::signed_out(SystemTime::now())
                    } else {
                        cogref_session::TokenSet::from_refresh_token(format!("r{round}"), None)
                    };
                    barrier.wait();
                    store.save(&tokens, expected)
                })
            })
            // Both threads spawned before either is joined (the barrier waits for both).
            .collect::<Vec<_>>()
            .into_iter()
            .map(|t| t.join().expect("thread"))
            .collect();
        if results.iter().all(Result::is_ok) {
            both += 1;
        }
        expected = Some(store.load().expect("ok").expect("stored").version);
    }
    assert_eq!(
        both, 0,
        "in {both} of 50 rounds two saves expecting the same generation both succeeded"
    );
}
