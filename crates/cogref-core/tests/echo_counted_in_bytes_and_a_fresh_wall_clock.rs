//! Review 15: hostile tests of the echo check's probes and of the driver's reuse of clock
//! readings (commits daf576e and f5d51cf).
//!
//! Two findings, both fixed: the probes compare bytes where the old definition compared only
//! windows that were whole text, so they differ on multi-byte secrets, always by finding more
//! (the rule is now stated in bytes, and these tests check it never finds less); and a wall
//! clock carried on by the monotonic one was hours old after a suspend (the driver reads the
//! wall clock itself again, and `StdEnvironment` now holds the monotonic reading instead).

mod common;

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use cogref_core::driver::{
    HttpRequest, HttpResponse, MONOTONIC_CLOCK_HOLD, ManualEnvironment, StdEnvironment,
};
use cogref_core::protocol::sent::{ECHO_PIECE, MIN_WHOLE_ECHO, Sent};
use cogref_core::secrecy::SecretString;
use cogref_core::{
    CallConfig, Client, EndpointConfig, Error, RetryConfig, SendOptions, Timeouts, TransportError,
    TransportErrorKind,
};
use common::input;
use proptest::prelude::*;

// ---------------------------------------------------------------------------------------------
// Echo check
// ---------------------------------------------------------------------------------------------

/// `echoes` as it was before daf576e (05b3607), verbatim: the window-by-window definition the
/// probes promise to answer exactly like. A window of `ECHO_PIECE` bytes counts only if it is a
/// whole string (a piece of text, not the middle of a character).
fn echoes_before(text: &str, secret: &str) -> bool {
    if secret.len() < MIN_WHOLE_ECHO {
        return false;
    }
    if secret.len() <= ECHO_PIECE {
        return text.contains(secret);
    }
    let bytes = text.as_bytes();
    (0..=bytes.len().saturating_sub(ECHO_PIECE)).any(|start| {
        bytes
            .get(start..start + ECHO_PIECE)
            .and_then(|piece| std::str::from_utf8(piece).ok())
            .is_some_and(|piece| secret.contains(piece))
    })
}

fn echoed(text: &str, secret: &str) -> bool {
    let secret = SecretString::from(secret);
    Sent::new("client", [Some(&secret)]).is_echoed_in(text)
}

/// Whether `text` shows `secret` whole (8 characters or more) or a piece of it of 20 characters:
/// the promise, counted in characters.
fn shows_by_characters(text: &str, secret: &str) -> bool {
    let s: Vec<char> = secret.chars().collect();
    if s.len() < MIN_WHOLE_ECHO {
        return false;
    }
    if text.contains(secret) {
        return true;
    }
    s.len() >= ECHO_PIECE
        && s.windows(ECHO_PIECE)
            .any(|w| text.contains(&w.iter().collect::<String>()))
}

/// The rule as stated now: `text` holds the secret whole (8 bytes or more) or any 20 of its
/// bytes in a row, wherever they start.
fn echoes_by_bytes(text: &str, secret: &str) -> bool {
    let (text, secret) = (text.as_bytes(), secret.as_bytes());
    if secret.len() < MIN_WHOLE_ECHO {
        return false;
    }
    if secret.len() <= ECHO_PIECE {
        return text.windows(secret.len()).any(|w| w == secret);
    }
    text.windows(ECHO_PIECE)
        .any(|w| secret.windows(ECHO_PIECE).any(|s| s == w))
}

#[test]
fn twenty_bytes_of_a_secret_count_even_when_they_start_inside_a_character() {
    // The secret: 'é' (C3 A9) then 25 'b'. The text: 'ɩ' (C9 A9) then 19 'b'. The text's bytes
    // A9 'b'×19 are bytes 1..21 of the secret, starting in the middle of a character: 19
    // characters of the secret, but 20 of its bytes. The rule counts bytes (it redacts a little
    // more than a rule by characters, never less); the definition before daf576e said no.
    let secret = format!("é{}", "b".repeat(25));
    let text = format!("ɩ{}", "b".repeat(19));
    assert!(!shows_by_characters(&text, &secret));
    assert!(!echoes_before(&text, &secret));
    assert!(echoes_by_bytes(&text, &secret));
    assert!(echoed(&text, &secret));
}

#[test]
fn a_whole_secret_of_eleven_characters_spanning_twenty_one_bytes_is_an_echo() {
    // Found by the proptest below: the definition before daf576e missed this whole secret (both
    // of its 20-byte windows cut a character, so neither was looked up). The probes find it:
    // the two implementations differ, here in the probes' favour.
    let secret = "€11€©1éɩ©a€";
    assert_eq!(secret.len(), 21);
    assert!(
        !echoes_before(secret, secret),
        "the old definition missed it"
    );
    assert!(echoed(secret, secret));
    assert!(echoed(&format!("id {secret}."), secret));
}

/// Characters of 1 to 4 bytes sharing continuation bytes (0xA9 in é, ɩ, ©; 0x82/0xAC in €), so
/// that byte windows starting or ending inside a character match the secret by chance.
const MIXED: &str = "[ab1éɩ©€😀]";

fn mixed(min: usize, max: usize) -> impl Strategy<Value = String> {
    proptest::string::string_regex(&format!("{MIXED}{{{min},{max}}}")).expect("regex")
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn the_probes_answer_exactly_as_the_byte_rule_and_find_all_the_old_definition_found(
        secret in mixed(8, 30),
        noise in mixed(0, 12),
        tail in mixed(0, 12),
        cut in 0usize..30,
        len in 0usize..30,
    ) {
        let chars: Vec<char> = secret.chars().collect();
        let start = cut.min(chars.len());
        let end = (start + len).min(chars.len());
        let piece: String = chars[start..end].iter().collect();
        let text = format!("{noise}{piece}{tail}");
        let found = echoed(&text, &secret);
        prop_assert_eq!(found, echoes_by_bytes(&text, &secret), "text {:?}", text);
        prop_assert!(found || !echoes_before(&text, &secret), "missed {:?}", text);
    }

    #[test]
    fn a_whole_secret_or_a_piece_of_twenty_characters_is_always_an_echo(
        secret in mixed(8, 40),
        noise in mixed(0, 25),
        tail in mixed(0, 25),
        cut in 0usize..40,
    ) {
        let chars: Vec<char> = secret.chars().collect();
        let piece: String = if chars.len() <= ECHO_PIECE {
            secret.clone()
        } else {
            let start = cut.min(chars.len() - ECHO_PIECE);
            chars[start..start + ECHO_PIECE].iter().collect()
        };
        let text = format!("{noise}{piece}{tail}");
        prop_assert!(echoed(&text, &secret), "text {:?} secret {:?}", text, secret);
    }

    #[test]
    fn the_probes_answer_exactly_as_the_definition_on_ascii_texts_of_every_length(
        secret in "[ab]{8,45}",
        text in "[ab ]{0,70}",
    ) {
        // Two letters: every window and every probe is likely to match somewhere, including at
        // the very end of the text and across the probes' stride.
        prop_assert_eq!(echoed(&text, &secret), echoes_before(&text, &secret));
    }
}

// ---------------------------------------------------------------------------------------------
// Driver: deadlines, backoff and the wall clock of receipt across retries
// ---------------------------------------------------------------------------------------------

const OK: &str = r#"{"AuthenticationResult":{"AccessToken":"a.b.c","ExpiresIn":3600}}"#;

fn endpoint() -> cogref_core::Endpoint {
    EndpointConfig::new()
        .region("eu-west-1")
        .resolve()
        .expect("valid")
}

/// What the transport saw of each attempt: when it started (time since the call began) and the
/// attempt timeout it was given.
type Seen = Arc<Mutex<Vec<(Duration, Duration)>>>;

struct Slow {
    clock: ManualEnvironment,
    send_takes: Duration,
    script: Mutex<VecDeque<Result<HttpResponse, Error>>>,
    seen: Seen,
    sleeps: Arc<Mutex<Vec<Duration>>>,
}

impl cogref_core::BlockingTransport for Slow {
    fn send(&self, _: HttpRequest, options: SendOptions) -> Result<HttpResponse, Error> {
        self.seen
            .lock()
            .expect("seen")
            .push((self.clock.elapsed(), options.timeout));
        // The attempt takes its time, but never longer than its timeout.
        let took = self.send_takes.min(options.timeout);
        self.clock.advance(took);
        if took < self.send_takes {
            return Err(TransportError::new(TransportErrorKind::Timeout, "attempt timeout").into());
        }
        self.script
            .lock()
            .expect("script")
            .pop_front()
            .unwrap_or_else(|| {
                Err(TransportError::new(TransportErrorKind::Io, "reset")
                    .not_sent()
                    .into())
            })
    }
    fn sleep(&self, d: Duration) {
        self.sleeps.lock().expect("sleeps").push(d);
        self.clock.advance(d);
    }
}

fn status(code: u16, body: &str) -> Result<HttpResponse, Error> {
    Ok(http::Response::builder()
        .status(code)
        .body(body.as_bytes().to_vec())
        .expect("response"))
}

#[test]
fn every_attempt_gets_the_time_left_before_the_total_timeout_and_the_call_ends_by_it() {
    let clock = ManualEnvironment::new(
        Instant::now(),
        UNIX_EPOCH + Duration::from_secs(1_750_000_000),
    );
    let seen: Seen = Arc::default();
    let sleeps: Arc<Mutex<Vec<Duration>>> = Arc::default();
    let client = Client::new(
        Slow {
            clock: clock.clone(),
            send_takes: Duration::from_millis(700),
            script: Mutex::new(VecDeque::new()),
            seen: seen.clone(),
            sleeps: sleeps.clone(),
        },
        clock.clone(),
        endpoint(),
        CallConfig {
            retry: RetryConfig {
                max_attempts: 10,
                initial_backoff: Duration::from_millis(200),
                max_backoff: Duration::from_millis(200),
                ..RetryConfig::default()
            },
            timeouts: Timeouts {
                connect: Duration::from_secs(1),
                attempt: Duration::from_secs(1),
                total: Duration::from_millis(2_000),
            },
            ..CallConfig::default()
        },
    );
    let e = client
        .refresh_blocking(&input())
        .expect_err("never answers");
    let seen = seen.lock().expect("seen").clone();
    let total = Duration::from_millis(2_000);
    assert!(
        clock.elapsed() <= total,
        "the call ran {:?}",
        clock.elapsed()
    );
    for (at, timeout) in &seen {
        assert_eq!(
            *timeout,
            Duration::from_secs(1).min(total - *at),
            "attempt at {at:?} given {timeout:?}: {seen:?}"
        );
    }
    // Every wait is a backoff of at most 200 ms, and each attempt begins after its wait.
    let sleeps = sleeps.lock().expect("sleeps").clone();
    assert!(
        sleeps.iter().all(|d| *d <= Duration::from_millis(200)),
        "{sleeps:?}"
    );
    let mut expected = Duration::ZERO;
    for (i, (at, _)) in seen.iter().enumerate() {
        assert_eq!(
            *at,
            expected,
            "attempt {} began at {at:?}: {seen:?} {sleeps:?}",
            i + 1
        );
        expected += Duration::from_millis(700).min(Duration::from_secs(1).min(total - *at));
        if let Some(wait) = sleeps.get(i) {
            expected += *wait;
        }
    }
    assert_eq!(e.attempts() as usize, seen.len());
}

#[test]
fn the_expiry_of_tokens_received_after_retries_counts_from_the_wall_clock_of_receipt() {
    let clock = ManualEnvironment::new(
        Instant::now(),
        UNIX_EPOCH + Duration::from_secs(1_750_000_000),
    );
    let client = Client::new(
        Slow {
            clock: clock.clone(),
            send_takes: Duration::from_millis(300),
            script: Mutex::new(
                [
                    status(500, r#"{"__type":"InternalErrorException"}"#),
                    status(200, OK),
                ]
                .into(),
            ),
            seen: Arc::default(),
            sleeps: Arc::default(),
        },
        clock.clone(),
        endpoint(),
        CallConfig::default(),
    );
    let out = client.refresh_blocking(&input()).expect("second attempt");
    assert_eq!(
        out.expires_at,
        UNIX_EPOCH + Duration::from_secs(1_750_000_000 + 3600) + clock.elapsed()
    );
}

// Clocks for StdEnvironment (function pointers: they read statics).
static MONO_NS: AtomicU64 = AtomicU64::new(0);
static WALL_NS: AtomicU64 = AtomicU64::new(1_750_000_000_000_000_000);

fn base() -> Instant {
    static BASE: OnceLock<Instant> = OnceLock::new();
    *BASE.get_or_init(Instant::now)
}

fn mono() -> Instant {
    base() + Duration::from_nanos(MONO_NS.load(Ordering::SeqCst))
}

fn wall() -> SystemTime {
    UNIX_EPOCH + Duration::from_nanos(WALL_NS.load(Ordering::SeqCst))
}

#[test]
fn tokens_received_after_a_suspend_expire_from_the_wall_clock_of_receipt() {
    // Linux's monotonic clock (Instant) stops while the machine sleeps; the wall clock does not.
    // A reading of the wall clock carried on by the monotonic one was then as old as the sleep,
    // however few monotonic nanoseconds had passed. The driver reads the wall clock itself for
    // the tokens' expiry, and the environment holds the monotonic reading, not the wall's.
    let env = StdEnvironment::new(mono, wall).with_monotonic_clock_held_for(MONOTONIC_CLOCK_HOLD);
    let client = Client::new(
        |_: HttpRequest, _: SendOptions| status(200, OK),
        env,
        endpoint(),
        CallConfig::default(),
    );
    let first = client.refresh_blocking(&input()).expect("first");
    assert_eq!(first.expires_at, wall() + Duration::from_secs(3600));
    // The machine sleeps 8 hours; 0.2 ms of monotonic time pass around it.
    WALL_NS.fetch_add(8 * 3_600_000_000_000, Ordering::SeqCst);
    MONO_NS.fetch_add(200_000, Ordering::SeqCst);
    let second = client.refresh_blocking(&input()).expect("second");
    let truth = wall() + Duration::from_secs(3600);
    let stale = truth.duration_since(second.expires_at).unwrap_or_default();
    assert_eq!(
        second.expires_at, truth,
        "expiry computed from a wall clock {stale:?} old"
    );
}
