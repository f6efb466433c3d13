//! Review 15b: hostile tests of the echo probes (1f273f2) and of the held monotonic clock
//! (2772438).
//!
//! Failing when written (labelled in their docs), passing since 3861ebc: a wall clock that
//! stops, or one that ticks coarser than the hold, kept the held monotonic reading from being
//! read again, so it lagged by far more than `max_age` (forever, for a stopped wall clock).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use cogref_core::driver::{Environment, MONOTONIC_CLOCK_HOLD, StdEnvironment};
use cogref_core::protocol::sent::{ECHO_PIECE, MIN_WHOLE_ECHO, Sent};
use cogref_core::secrecy::SecretString;
use proptest::prelude::*;

// ---------------------------------------------------------------------------------------------
// Echo check: `is_echoed_in` against the byte-window definition, on multi-byte text
// ---------------------------------------------------------------------------------------------

/// The promise, in bytes: the whole secret (of at least MIN_WHOLE_ECHO bytes), or any
/// ECHO_PIECE bytes of it in a row, wherever they start.
fn echoed_by_definition(text: &str, secret: &str) -> bool {
    let (text, secret) = (text.as_bytes(), secret.as_bytes());
    if secret.len() < MIN_WHOLE_ECHO {
        return false;
    }
    if text.windows(secret.len()).any(|w| w == secret) {
        return true;
    }
    secret.len() > ECHO_PIECE
        && text
            .windows(ECHO_PIECE)
            .any(|piece| secret.windows(ECHO_PIECE).any(|s| s == piece))
}

/// Text made of pieces: slices of the secret's bytes (cut anywhere, so inside multi-byte
/// characters too, then made valid with lossy decoding), and noise from a small alphabet.
fn text_from(secret: &str, cuts: &[(usize, usize, String)]) -> String {
    let bytes = secret.as_bytes();
    let mut text = String::new();
    for (at, len, noise) in cuts {
        let start = at % (bytes.len() + 1);
        let end = (start + len).min(bytes.len());
        text.push_str(&String::from_utf8_lossy(&bytes[start..end]));
        text.push_str(noise);
    }
    text
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn an_echo_is_any_20_bytes_of_a_secret_or_the_whole_of_one_of_8_or_more_bytes(
        secret in "[ab\u{e9}\u{65e5}.\u{1F600}-]{1,40}",
        cuts in prop::collection::vec((0usize..200, 0usize..45, "[ab\u{e9}\u{65e5} .-]{0,6}"), 0..5),
    ) {
        let text = text_from(&secret, &cuts);
        let secret_s = SecretString::from(secret.clone());
        let sent = Sent::new("client", [Some(&secret_s)]);
        prop_assert_eq!(
            sent.is_echoed_in(&text),
            echoed_by_definition(&text, &secret),
            "text {:?} secret {:?}", text, secret
        );
    }

    #[test]
    fn an_echo_of_any_of_several_secrets_is_found(
        secrets in prop::collection::vec("[abc0\u{e9}._-]{1,45}", 1..4),
        pick in 0usize..4,
        cuts in prop::collection::vec((0usize..200, 0usize..45, "[abc0\u{e9} .-]{0,6}"), 0..5),
    ) {
        let text = text_from(&secrets[pick % secrets.len()], &cuts);
        let owned: Vec<SecretString> = secrets.iter().cloned().map(SecretString::from).collect();
        let sent = Sent::new("client", owned.iter().map(Some));
        let expected = secrets.iter().any(|s| echoed_by_definition(&text, s));
        prop_assert_eq!(sent.is_echoed_in(&text), expected, "text {:?} secrets {:?}", text, secrets);
    }
}

#[test]
fn a_piece_at_every_offset_of_texts_of_every_length_is_found() {
    // Deterministic sweep over the probe placement: every text length from 20 to 120, every
    // offset of a 20-byte piece, surrounded by bytes the secret does not hold.
    let secret: String = (0..64u32)
        .map(|i| char::from(b'A' + (i * 5 % 26) as u8))
        .collect();
    let owned = SecretString::from(secret.clone());
    let sent = Sent::new("client", [Some(&owned)]);
    for len in ECHO_PIECE..=120 {
        for at in 0..=len - ECHO_PIECE {
            let piece = &secret[(at * 3) % 40..(at * 3) % 40 + ECHO_PIECE];
            let text = format!(
                "{}{piece}{}",
                "-".repeat(at),
                "-".repeat(len - at - ECHO_PIECE)
            );
            assert!(sent.is_echoed_in(&text), "len {len} at {at}");
            // One byte short at the same offset: not an echo.
            let short = format!(
                "{}{}{}",
                "-".repeat(at),
                &piece[1..],
                "-".repeat(len - at - ECHO_PIECE + 1)
            );
            assert!(!sent.is_echoed_in(&short), "len {len} at {at} (19 bytes)");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Held monotonic clock
// ---------------------------------------------------------------------------------------------

// Clocks the tests move: function pointers cannot capture, so they read statics.
static MONO_NS: AtomicU64 = AtomicU64::new(0);
static WALL_NS: AtomicU64 = AtomicU64::new(1_800_000_000_000_000_000);
/// The tests share the clocks above: one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

fn base() -> Instant {
    static BASE: OnceLock<Instant> = OnceLock::new();
    *BASE.get_or_init(Instant::now)
}

fn mono() -> Instant {
    base() + Duration::from_nanos(MONO_NS.load(Ordering::SeqCst))
}

/// A wall clock that has stopped: it reads the static, which these tests do not move.
fn stopped_wall() -> SystemTime {
    UNIX_EPOCH + Duration::from_nanos(WALL_NS.load(Ordering::SeqCst))
}

/// A wall clock that ticks every 16 ms (as GetSystemTimeAsFileTime, or a jiffies clock source).
fn coarse_wall() -> SystemTime {
    const TICK: u64 = 16_000_000;
    let ns = WALL_NS.load(Ordering::SeqCst);
    UNIX_EPOCH + Duration::from_nanos(ns - ns % TICK)
}

fn advance_both(ns: u64) {
    MONO_NS.fetch_add(ns, Ordering::SeqCst);
    WALL_NS.fetch_add(ns, Ordering::SeqCst);
}

/// `reading` lies no further than the hold behind the monotonic clock.
fn assert_lags_at_most_the_hold(reading: Instant) {
    let lag = mono().duration_since(reading);
    assert!(
        lag <= MONOTONIC_CLOCK_HOLD,
        "the monotonic reading lags the monotonic clock by {lag:?} (hold {MONOTONIC_CLOCK_HOLD:?})"
    );
}

/// Failed at 2772438 (fixed in 3861ebc): with the wall clock stopped, `clocks()` never reads the monotonic clock
/// again, so its reading stays at the first one however much time passes; a token's expiry by
/// the monotonic clock (the guard against a wrong wall clock) is then never reached.
#[test]
fn a_held_monotonic_reading_lags_by_at_most_the_hold_even_when_the_wall_clock_stops() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let env =
        StdEnvironment::new(mono, stopped_wall).with_monotonic_clock_held_for(MONOTONIC_CLOCK_HOLD);
    let _ = env.clocks();
    MONO_NS.fetch_add(3_600_000_000_000, Ordering::SeqCst);
    assert_lags_at_most_the_hold(env.clocks().mono);
}

/// Failed at 2772438 (fixed in 3861ebc): a wall clock that ticks every 16 ms stays inside the 1 ms window for a
/// whole tick, so the held reading lags by up to the tick, not the hold.
#[test]
fn a_held_monotonic_reading_lags_by_at_most_the_hold_with_a_coarse_wall_clock() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    // Start on a tick.
    let ns = WALL_NS.load(Ordering::SeqCst);
    WALL_NS.store(ns - ns % 16_000_000, Ordering::SeqCst);
    let env =
        StdEnvironment::new(mono, coarse_wall).with_monotonic_clock_held_for(MONOTONIC_CLOCK_HOLD);
    let _ = env.clocks();
    advance_both(10_000_000);
    assert_lags_at_most_the_hold(env.clocks().mono);
}

/// Real clocks, several threads: every reading lies between the true clock minus the hold
/// and the true clock, and no thread ever sees its readings go back.
#[test]
fn held_readings_from_many_threads_never_go_back_run_ahead_or_lag_more_than_the_hold() {
    let env = StdEnvironment::new(Instant::now, SystemTime::now)
        .with_monotonic_clock_held_for(MONOTONIC_CLOCK_HOLD);
    // The wall clock may slew against the monotonic one (at most 0.05%): a little slack.
    let slack = Duration::from_micros(5);
    std::thread::scope(|scope| {
        for _ in 0..4 {
            let env = env.clone();
            scope.spawn(move || {
                let mut last = env.clocks().mono;
                let until = Instant::now() + Duration::from_millis(300);
                while Instant::now() < until {
                    let before = Instant::now();
                    let now = env.clocks();
                    let after = Instant::now();
                    assert!(now.mono >= last, "went back by {:?}", last - now.mono);
                    assert!(now.mono <= after, "ran ahead by {:?}", now.mono - after);
                    assert!(
                        now.mono + MONOTONIC_CLOCK_HOLD + slack >= before,
                        "lagged by {:?}",
                        before - now.mono
                    );
                    last = now.mono;
                }
            });
        }
    });
}
