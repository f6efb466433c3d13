//! What a request carried, for reading its response.
//!
//! Redaction by shape ([`crate::redact`]) cannot tell every secret from every harmless value: a
//! client secret in Cognito's format (52 characters of `[a-z0-9]`) has the shape of a request id
//! and of a DNS label, and an app client id (26 characters of `[a-z0-9]`) the shape of a short
//! custom client secret. The client knows what it sent, so the call reads its response with a
//! [`Sent`]: no text taken from the response (request id, redirect host, error code, message,
//! reason code, body excerpt) may show back a secret the request carried, or a piece of one of
//! [`ECHO_PIECE`] bytes or more (counted in bytes wherever they start: a piece that begins
//! inside a multi-byte character counts too, which redacts a little more, never less); and the app client id, which is not a secret, is shown
//! where the response names it ("User pool client … does not exist").
//!
//! The redaction finds a secret's pieces run by run (runs of token characters, see
//! [`crate::redact`]), which holds every piece of a secret of the token alphabet: all the
//! secrets the input builders accept. A secret given to [`Sent::new`] with other characters
//! (a space, `!`, non-ASCII, a control character) can show back a piece across runs, so every
//! text shown is then also screened whole for it, as it is and as shown, and is `[redacted]`
//! whole if it still holds a piece.

use std::fmt;

use memchr::memmem;
use secrecy::{ExposeSecret, SecretString};

use crate::protocol::escapes;
use crate::protocol::printable::push_printable;
use crate::protocol::redact::is_token_byte;

/// Shortest piece of a secret that counts as an echo of it, in bytes (the length from which a
/// run is taken for a secret by shape, [`crate::redact::MIN_SECRET_RUN`]).
pub const ECHO_PIECE: usize = crate::protocol::redact::MIN_SECRET_RUN;

/// What a request carried: its secrets and its app client id. Its `Debug` shows neither secret.
#[derive(Clone, Default)]
pub struct Sent<'a> {
    client_id: Option<&'a str>,
    // A request carries three secrets at most (refresh token, client secret, device key): held
    // in place, without an allocation per call; any beyond go to `more`.
    secrets: [Option<&'a SecretString>; INLINE_SECRETS],
    more: Vec<&'a SecretString>,
    /// A secret (long enough to be told from text) has a character that ends a run of token
    /// characters: a piece of it can span runs, which the redaction checks one by one, so every
    /// text shown is screened whole as well ([`Sent::screen`]).
    spans_runs: bool,
}

const INLINE_SECRETS: usize = 3;

impl fmt::Debug for Sent<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sent")
            .field("client_id", &self.client_id)
            .field("secrets", &self.secrets().count())
            .finish()
    }
}

impl<'a> Sent<'a> {
    /// Nothing known about the request: responses are read by shape alone.
    pub fn nothing() -> Self {
        Self::default()
    }

    /// A request for app client `client_id` that carried `secrets` (refresh token, client
    /// secret, device key: whichever it had). Secrets of any characters: each is looked at
    /// once here, and one with a character outside the token alphabet (`A-Z a-z 0-9 - _ = . +
    /// /`) makes every text shown from the response screened whole for it too.
    pub fn new(
        client_id: &'a str,
        secrets: impl IntoIterator<Item = Option<&'a SecretString>>,
    ) -> Self {
        let mut sent = Self::holding(client_id, secrets);
        sent.spans_runs = sent.has_a_secret_beyond_runs();
        sent
    }

    /// [`Sent::new`] for secrets an input's builder has already held to the token alphabet
    /// (every token, client secret and device key Cognito's model allows): no look at their
    /// characters on each call.
    pub(crate) fn of_token_secrets(
        client_id: &'a str,
        secrets: impl IntoIterator<Item = Option<&'a SecretString>>,
    ) -> Self {
        let sent = Self::holding(client_id, secrets);
        debug_assert!(
            !sent.has_a_secret_beyond_runs(),
            "a secret outside the token alphabet needs Sent::new"
        );
        sent
    }

    fn holding(
        client_id: &'a str,
        secrets: impl IntoIterator<Item = Option<&'a SecretString>>,
    ) -> Self {
        let mut sent = Self {
            client_id: Some(client_id),
            ..Self::default()
        };
        let mut secrets = secrets.into_iter().flatten();
        for (slot, secret) in sent.secrets.iter_mut().zip(&mut secrets) {
            *slot = Some(secret);
        }
        sent.more.extend(secrets);
        sent
    }

    fn has_a_secret_beyond_runs(&self) -> bool {
        self.secrets().any(|secret| {
            let secret = secret.expose_secret();
            secret.len() >= MIN_WHOLE_ECHO && !secret.bytes().all(is_token_byte)
        })
    }

    /// The last word on a text about to be shown: `[redacted]` whole if it still shows back a
    /// secret once its escapes are read ([`Sent::shows_through_escapes`]), or a secret that a
    /// run of token characters cannot hold whole (see [`Sent::new`]), as it is or as shown
    /// (control and invisible characters written as escapes, [`crate::printable`]); the text
    /// as it is otherwise. Other pieces of token-alphabet secrets are found run by run by the
    /// redaction, which keeps the rest of the text.
    pub(crate) fn screen(&self, shown: String) -> String {
        if self.shows_through_escapes(&shown) {
            return crate::protocol::redact::REDACTED.to_owned();
        }
        self.screen_beyond_runs(shown)
    }

    /// [`Sent::screen`] for a text the caller knows has no `\`, `&` or `%`, so no escape to
    /// read (a quick look at it found none): the error codes and messages of nearly every error
    /// response.
    pub(crate) fn screen_plain(&self, shown: String) -> String {
        debug_assert!(
            !escapes::may_have_escapes(&shown),
            "a text with escapes needs Sent::screen"
        );
        self.screen_beyond_runs(shown)
    }

    /// The screen for secrets outside the token alphabet (see [`Sent::screen`]).
    fn screen_beyond_runs(&self, shown: String) -> String {
        if !self.spans_runs {
            return shown;
        }
        let shows_one = self.secrets().any(|secret| {
            let secret = secret.expose_secret();
            // Too short to tell from text: no form of it counts (an escape would lengthen it).
            if secret.len() < MIN_WHOLE_ECHO {
                return false;
            }
            if echoes(&shown, secret) {
                return true;
            }
            let mut as_shown = String::with_capacity(secret.len());
            for c in secret.chars() {
                push_printable(&mut as_shown, c);
            }
            // And as JSON writes it: a body excerpt shows a string as it was on the wire.
            [
                as_shown,
                json_escaped(secret, false),
                json_escaped(secret, true),
            ]
            .iter()
            .any(|form| form != secret && echoes(&shown, form))
        });
        if shows_one {
            crate::protocol::redact::REDACTED.to_owned()
        } else {
            shown
        }
    }

    /// Whether `shown` shows back a secret once the escapes in it are read
    /// ([`crate::protocol::escapes`]: JSON's, Rust's, C's, HTML's character references,
    /// percent-encoding), up to [`UNESCAPE_LEVELS`] times over. A server can spell a secret
    /// with an escape every few characters (`\u0061bcdefghij\u006blm…`): as written, no piece
    /// of it is left for the redaction to find, nor, for a secret of letters only, anything
    /// that makes it look like a credential; a reader reads it back all the same. Text without
    /// a `\`, `&` or `%` (most) is answered by one search for them.
    fn shows_through_escapes(&self, shown: &str) -> bool {
        if self.shortest_echo().is_none() {
            return false;
        }
        let mut text = std::borrow::Cow::Borrowed(shown);
        for _ in 0..UNESCAPE_LEVELS {
            if !escapes::may_have_escapes(&text) {
                return false;
            }
            text = std::borrow::Cow::Owned(escapes::read_once(&text));
            if self.is_echoed_in(&text) {
                return true;
            }
        }
        false
    }

    fn secrets(&self) -> impl Iterator<Item = &'a SecretString> + '_ {
        self.secrets.iter().flatten().chain(&self.more).copied()
    }

    /// Whether `text` shows back one of the secrets sent, whole or a piece of [`ECHO_PIECE`]
    /// bytes.
    pub fn is_echoed_in(&self, text: &str) -> bool {
        self.secrets()
            .any(|secret| echoes(text, secret.expose_secret()))
    }

    /// The shortest run of text that can show back a secret sent (whole, or a piece of
    /// [`ECHO_PIECE`] bytes); `None` if no secret can be shown back (none sent, or all shorter
    /// than [`MIN_WHOLE_ECHO`]).
    pub(crate) fn shortest_echo(&self) -> Option<usize> {
        self.secrets()
            .map(|secret| secret.expose_secret().len())
            .filter(|&len| len >= MIN_WHOLE_ECHO)
            .map(|len| len.min(ECHO_PIECE))
            .min()
    }

    /// Whether `text` is the app client id sent (not a secret: it may be shown).
    pub fn is_client_id(&self, text: &str) -> bool {
        self.client_id.is_some_and(|id| id == text)
    }
}

/// How many times over [`Sent::screen`] reads the escapes of a text shown: a message can carry
/// escapes its JSON escaped again (`\\u0061` on the wire), shown as escapes a reader reads,
/// and `Debug` escapes their `\` once more.
const UNESCAPE_LEVELS: usize = 3;

/// Shortest secret whose whole appearance in a text counts as an echo. A shorter "secret" (no
/// token, client secret or device key Cognito issues is near that short; test doubles are)
/// appears in ordinary text by chance: a refresh token `r` would redact every `r` of
/// "Refresh Token has been revoked", and the message would no longer say the session is over.
pub const MIN_WHOLE_ECHO: usize = 8;

/// Length of the probes [`echoes`] looks up in a secret before searching it for whole pieces.
const PROBE: usize = 4;

/// Whether `text` holds `secret` (of [`MIN_WHOLE_ECHO`] bytes or more), or a piece of it of
/// [`ECHO_PIECE`] bytes.
fn echoes(text: &str, secret: &str) -> bool {
    let (text, secret) = (text.as_bytes(), secret.as_bytes());
    if secret.len() < MIN_WHOLE_ECHO {
        return false;
    }
    if secret.len() <= ECHO_PIECE {
        return memmem::find(text, secret).is_some();
    }
    if text.len() < ECHO_PIECE {
        return false;
    }
    // A probe at `p` lies inside every window starting in p - (ECHO_PIECE - PROBE) ..= p, so
    // probes placed that far apart, the first at ECHO_PIECE - PROBE, cover every window: a
    // text none of whose probes occurs in the secret shows no piece of it. One search of the
    // secret per probe instead of one per window: a request id (36 bytes) or an error code
    // takes one search instead of 17 or 3, and this runs on every response.
    let reach = ECHO_PIECE - PROBE;
    let last_start = text.len() - ECHO_PIECE;
    let mut uncovered = 0;
    let mut probed = false;
    while uncovered <= last_start {
        let at = (uncovered + reach).min(text.len() - PROBE);
        if contains_probe(secret, &text[at..at + PROBE]) {
            probed = true;
            break;
        }
        uncovered = at + 1;
    }
    probed
        && text
            .windows(ECHO_PIECE)
            .any(|piece| memmem::find(secret, piece).is_some())
}

/// Whether `haystack` contains `probe` ([`PROBE`] bytes): `memmem::find`'s answer. Its packed
/// pair searcher is what `memmem` picks for a needle this short in a haystack as long as a
/// token; built directly it skips the general searcher's set-up (its other strategies, built
/// and thrown away on each of these searches, cost a third of one).
fn contains_probe(haystack: &[u8], probe: &[u8]) -> bool {
    #[cfg(target_arch = "x86_64")]
    if let Some(finder) = memchr::arch::x86_64::avx2::packedpair::Finder::new(probe)
        && haystack.len() >= finder.min_haystack_len()
    {
        return finder.find(haystack, probe).is_some();
    }
    memmem::find(haystack, probe).is_some()
}

/// `text` as the inside of a JSON string, as `serde_json` writes it (the writer of the
/// request body's escaped fields, byte for byte the SDK's); with `ascii`, every non-ASCII
/// character then as `\\uXXXX` too, as other JSON writers put it.
fn json_escaped(text: &str, ascii: bool) -> String {
    use std::fmt::Write as _;
    let quoted = serde_json::to_string(text).unwrap_or_else(|_| unreachable!("a str serializes"));
    let inner = &quoted[1..quoted.len() - 1];
    if !ascii {
        return inner.to_owned();
    }
    let mut out = String::with_capacity(inner.len() + 8);
    for c in inner.chars() {
        if c.is_ascii() {
            out.push(c);
            continue;
        }
        let mut units = [0u16; 2];
        for unit in c.encode_utf16(&mut units) {
            let _ = write!(out, "\\u{unit:04x}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "1q2w3e4r5t6y7u8i9o0pasdfghjklzxcvbnm1q2w3e4r5t6y7u8i";

    #[test]
    fn a_secret_whole_or_in_a_piece_of_twenty_characters_is_an_echo() {
        let secret = SecretString::from(SECRET);
        let sent = Sent::new("client", [Some(&secret), None]);
        assert!(sent.is_echoed_in(SECRET));
        assert!(sent.is_echoed_in(&format!("{SECRET}.example")));
        assert!(sent.is_echoed_in(&format!("x{}.y", &SECRET[10..30])));
        assert!(!sent.is_echoed_in(&SECRET[10..29]));
        assert!(!sent.is_echoed_in("0b9a3c5e-1111-2222-3333-444455556666"));
        assert!(!Sent::nothing().is_echoed_in(SECRET));
    }

    /// The definition `echoes` implements, window by window.
    fn echoes_by_definition(text: &str, secret: &str) -> bool {
        let (text, secret) = (text.as_bytes(), secret.as_bytes());
        if secret.len() < MIN_WHOLE_ECHO {
            return false;
        }
        if secret.len() <= ECHO_PIECE {
            return text.windows(secret.len()).any(|w| w == secret);
        }
        text.windows(ECHO_PIECE)
            .any(|piece| secret.windows(ECHO_PIECE).any(|s| s == piece))
    }

    proptest::proptest! {
        #[test]
        fn the_probes_find_every_piece_the_definition_finds(
            secret in "[a-c0-1._-]{8,60}",
            noise in "[a-c0-1 ._-]{0,40}",
            tail in "[a-d0-2 ._-]{0,40}",
            cut in 0usize..60,
            len in 0usize..40,
        ) {
            // A small alphabet, so that probes and pieces of the secret occur by chance too.
            let start = cut.min(secret.len());
            let end = (start + len).min(secret.len());
            let text = format!("{noise}{}{tail}", &secret[start..end]);
            proptest::prop_assert_eq!(echoes(&text, &secret), echoes_by_definition(&text, &secret));
        }

        #[test]
        fn the_probe_search_answers_as_memmem_does(
            // A small alphabet and haystacks from empty to past the packed pair's shortest
            // (and past a vector's width), so that matches, near misses and ends all occur.
            haystack in "[ab.]{0,300}",
            probe in "[ab.]{4}",
            at in 0usize..300,
        ) {
            let expected = memmem::find(haystack.as_bytes(), probe.as_bytes()).is_some();
            proptest::prop_assert_eq!(contains_probe(haystack.as_bytes(), probe.as_bytes()), expected);
            // And with the probe planted at `at`: found wherever it lies.
            let at = at.min(haystack.len());
            let planted = format!("{}{probe}{}", &haystack[..at], &haystack[at..]);
            proptest::prop_assert!(contains_probe(planted.as_bytes(), probe.as_bytes()));
        }

        #[test]
        fn a_piece_anywhere_in_a_text_is_found_whatever_its_offset(
            secret in "[A-Za-z0-9_-]{42,80}",
            noise in "[ .]{0,40}",
            tail in "[ .]{0,40}",
            cut in 0usize..20,
            len in 20usize..=22,
        ) {
            // Text and secret share nothing but the piece: only a probe inside it can find it.
            let piece = &secret[cut..cut + len];
            let text = format!("{noise}{piece}{tail}");
            proptest::prop_assert!(echoes(&text, &secret));
            let shorter = format!("{noise}{}{tail}", &piece[1..]);
            proptest::prop_assert_eq!(echoes(&shorter, &secret), len > ECHO_PIECE);
        }
    }

    #[test]
    fn a_piece_at_either_end_of_a_long_text_is_found() {
        let secret: String = (0..200)
            .map(|i| char::from(b'a' + (i * 7 % 26) as u8))
            .collect();
        let piece = &secret[100..100 + ECHO_PIECE];
        for text in [
            format!("{piece}{}", "-".repeat(57)),
            format!("{}{piece}", "-".repeat(57)),
            format!("{}{piece}{}", "-".repeat(31), "-".repeat(5)),
        ] {
            assert!(echoes(&text, &secret), "{text}");
        }
        assert!(!echoes(&"-".repeat(80), &secret));
    }

    /// Secrets only `Sent::new` takes (no builder does): a piece of 20 bytes of each spans a
    /// character that ends a run of token characters.
    const BEYOND_RUNS: [&str; 5] = [
        "aaaaaaaaaa!bbbbbbbbbb!cccccccccc!dddddddddd",
        "aaaaaaaaa bbbbbbbbb ccccccccc ddddddddd",
        "aaaaaaaaaéébbbbbbbbbééccccccccc",
        "aaaaaaaaa\"bbbbbbbbb\\ccccccccc\"ddddddddd",
        "aaaaaaaaa\u{1b}bbbbbbbbb\u{200b}ccccccccc\nddddddddd",
    ];

    /// Whether `shown` holds a piece of `secret` of `ECHO_PIECE` bytes, as it is or as shown.
    fn shows_a_piece(shown: &str, secret: &str) -> bool {
        let mut as_shown = String::new();
        for c in secret.chars() {
            push_printable(&mut as_shown, c);
        }
        [secret, as_shown.as_str()].into_iter().any(|form| {
            form.as_bytes()
                .windows(ECHO_PIECE)
                .any(|piece| memmem::find(shown.as_bytes(), piece).is_some())
        })
    }

    #[test]
    fn a_secret_outside_the_token_alphabet_is_not_shown_across_runs() {
        for secret in BEYOND_RUNS {
            let owned = SecretString::from(secret);
            let sent = Sent::new("client", [None, None, None, Some(&owned)]);
            assert!(sent.spans_runs, "{secret:?}");
            let text = format!("Token {secret} is not valid.");
            let excerpt_body = format!(r#"{{"message":"{}"}}"#, secret.replace('"', "\\\""));
            let shown = [
                crate::redact::redact_sent(&text, &sent),
                crate::redact::network_text(&text, &sent),
                crate::redact::excerpt_sent(text.as_bytes(), &sent).unwrap_or_default(),
                crate::redact::excerpt_sent(excerpt_body.as_bytes(), &sent).unwrap_or_default(),
            ];
            for shown in shown {
                assert!(!shows_a_piece(&shown, secret), "{secret:?} -> {shown:?}");
                assert!(shown.contains(crate::redact::REDACTED), "{shown:?}");
            }
        }
    }

    #[test]
    fn a_secret_echoed_in_a_body_as_json_writes_it_is_not_shown() {
        // Backspace and form feed: JSON's short escapes `\b` and `\f`, and `é` both as it is
        // and as `\u00e9`.
        for secret in [
            "aaaaaaaaa\u{8}bbbbbbbbb\u{c}ccccccccc",
            "aaaaaaaaaébbbbbbbbbéccccccccc",
        ] {
            let owned = SecretString::from(secret);
            let sent = Sent::new("client", [Some(&owned)]);
            for ascii in [false, true] {
                let body = format!(r#"{{"message":"{}"}}"#, json_escaped(secret, ascii));
                let shown = crate::redact::excerpt_sent(body.as_bytes(), &sent).unwrap_or_default();
                assert!(
                    !shown.contains(&json_escaped(secret, ascii)[..ECHO_PIECE]),
                    "{shown:?}"
                );
                assert!(shown.contains(crate::redact::REDACTED), "{shown:?}");
            }
        }
        assert_eq!(json_escaped("a\u{8}\"\\é", false), "a\\b\\\"\\\\é");
        assert_eq!(json_escaped("é😀", true), "\\u00e9\\ud83d\\ude00");
    }

    #[test]
    fn text_that_shows_no_piece_of_such_a_secret_is_kept() {
        for secret in BEYOND_RUNS {
            let owned = SecretString::from(secret);
            let sent = Sent::new("client", [Some(&owned)]);
            let message = "Refresh Token has been revoked";
            assert_eq!(crate::redact::network_text(message, &sent), message);
            // Half a piece on either side of a character that ends a run: no echo.
            let head: String = secret.chars().take(ECHO_PIECE / 2).collect();
            let text = format!("{head} and more");
            assert_eq!(crate::redact::redact_sent(&text, &sent), text);
        }
    }

    #[test]
    fn secrets_of_the_token_alphabet_are_found_run_by_run_alone() {
        let token = SecretString::from(SECRET);
        let short = SecretString::from("a b");
        assert!(!Sent::new("client", [Some(&token), Some(&short)]).spans_runs);
        assert!(!Sent::of_token_secrets("client", [Some(&token)]).spans_runs);
    }

    #[test]
    fn a_secret_too_short_to_tell_from_text_is_no_echo() {
        let short = SecretString::from("r");
        let sent = Sent::new("client", [Some(&short)]);
        assert!(!sent.is_echoed_in("Refresh Token has been revoked"));
        let eight = SecretString::from("abcd1234");
        let sent = Sent::new("client", [Some(&eight)]);
        assert!(sent.is_echoed_in("host abcd1234.example"));
    }

    #[test]
    fn the_client_id_is_known_and_debug_shows_no_secret() {
        let secret = SecretString::from(SECRET);
        let sent = Sent::new("1example23456789abcdefghij", [Some(&secret)]);
        assert!(sent.is_client_id("1example23456789abcdefghij"));
        assert!(!sent.is_client_id("1example"));
        assert!(!format!("{sent:?}").contains(SECRET));
    }
}
