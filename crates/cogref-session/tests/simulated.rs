//! Rules the deterministic simulator (`crates/cogref-sim`, `cargo xtask sim`) found broken,
//! each written down here as a plain test too. The simulator's regression seeds for them are
//! in `crates/cogref-sim/regressions.txt`.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use cogref_core::Environment;
use cogref_core::driver::ManualEnvironment;
use cogref_session::secrecy::ExposeSecret;
use cogref_session::{BlockingTokenManager, FileStore};
use common::*;

/// A fresh folder under the system's temporary one, removed at the end of the test.
struct TempDir(std::path::PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!(
            "cogref-simulated-{name}-{}-{}",
            std::process::id(),
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos())
        ));
        std::fs::create_dir_all(&dir).expect("temp dir");
        Self(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The shared clocks of a fleet, read by one host whose wall clock is `ahead_secs` ahead.
#[derive(Clone)]
struct Host {
    clock: ManualEnvironment,
    ahead_secs: u64,
    seed: Arc<AtomicUsize>,
}

impl Environment for Host {
    fn now(&self) -> std::time::Instant {
        self.clock.now()
    }

    fn wall_clock(&self) -> SystemTime {
        self.clock.wall_clock() + Duration::from_secs(self.ahead_secs)
    }

    fn random_seed(&self) -> u64 {
        self.seed.fetch_add(1, Ordering::Relaxed) as u64
    }
}

// Simulator seed `rotation-off-skewed-writer`: with rotation off every set holds the same
// refresh token, and a manager that had adopted a set written by a host whose clock is ahead
// compared the next set's times (stamped by a host with a right clock, so earlier-looking)
// with its own instead of the store's version: it kept its expiring set and called Cognito
// again for a due time a sibling had just refreshed.

#[test]
fn a_later_write_of_the_same_refresh_token_is_adopted_whatever_its_writers_clock_says() {
    let dir = TempDir::new("skewed-writer");
    let path = dir.0.join("tokens.json");
    let clock = clock();
    let fast = Host {
        clock: clock.clone(),
        ahead_secs: 25,
        seed: Arc::default(),
    };
    let right = Host {
        ahead_secs: 0,
        ..fast.clone()
    };
    // Ten-second tokens, no rotation: each set lives 9 s here and is due 4.5 s before.
    let a_cognito = Scripted::new(&clock, &[ok("a-fast", 10, None)]);
    let b_cognito = Scripted::new(&clock, &[ok("a-b", 10, None)]);
    let c_cognito = Scripted::new(&clock, &[ok("a-c", 10, None)]);
    let manager = |transport: &Scripted, host: &Host| {
        BlockingTokenManager::builder(
            client_on(transport.clone(), host.clone()),
            template("r0"),
            FileStore::new(&path),
        )
        .build()
        .expect("manager")
    };
    // A, on the host 25 s ahead, refreshes first; B and C adopt its set.
    let a = manager(&a_cognito, &fast);
    assert_eq!(a.access_token().expect("A").expose_secret(), "a-fast");
    let b = manager(&b_cognito, &right);
    let c = manager(&c_cognito, &right);
    assert_eq!(b.access_token().expect("B").expose_secret(), "a-fast");
    assert_eq!(c.access_token().expect("C").expose_secret(), "a-fast");
    // 5 s later the set is due: B refreshes it.
    clock.advance(Duration::from_secs(5));
    assert_eq!(b.access_token().expect("B").expose_secret(), "a-b");
    // C finds its set due too, takes the lock and finds B's, stored after the one it holds.
    clock.advance(Duration::from_millis(500));
    assert_eq!(
        c.access_token().expect("C").expose_secret(),
        "a-b",
        "C adopts B's set, valid for 8.5 s more"
    );
    assert!(
        c_cognito.sent().is_empty(),
        "C called Cognito for B's due time"
    );
}
