//! Redaction of text that came from the network before it is shown to anyone.
//!
//! A response body can echo a token: a 200 whose JSON is cut short still carries the access
//! token, and a proxy's error page may quote the request. Excerpts and service messages therefore
//! pass through [`redact`], which replaces every run that looks like a credential with
//! `[redacted]`.
//!
//! The rule: a run of at least [`MIN_SECRET_RUN`] characters from the token alphabet
//! (`A-Z a-z 0-9 - _ = . + /`) that contains at least one character other than a letter, unless
//! it is a constant's name (capital letters and `_` only, such as the reason code
//! `REFRESH_TOKEN_INVALID`: base64 text that long without a small letter or a digit does not
//! occur). JWTs, JWEs, client secrets (24 to 64 characters of `[\w+]`) and device keys all
//! match; exception names such as `NotAuthorizedException` and ordinary words do not.
//!
//! When the call knows what its request carried ([`Sent`]), a run that shows back one of its
//! secrets is redacted whatever its shape, and a run that is its app client id is kept. A text
//! that shows one back only once its escapes are read (a secret of letters only spelled
//! `\u0061bcdefghij\u006blm…`, which leaves no piece as written) is redacted whole.
//!
//! Escape sequences count as part of a run: JSON's `\/`, `\n`, `\"`, `\\`, `\uXXXX` and the
//! like, and the `\u{…}` that [`excerpt`] writes for control characters; one that stands for a
//! character other than a letter (`\/`, `\u002e`) counts as a non-letter.
//! A body can spell a token with an escape every few characters (`eyJhb\/GciOi\u002eJIUzI1…`),
//! which would otherwise leave pieces shorter than the threshold; such a token is one run and is
//! redacted whole. An escape cut short by the end of the text (an excerpt's cut) still counts.
//!
//! Text is redacted in the form it had on the wire, where every character JSON must escape is an
//! escape: a service message, decoded by the JSON parser, is escaped again before it is
//! redacted ([`network_text`]), so a token split by `\n`, `\"` or `\\` in the message is one
//! run there as it is in the body. Control and invisible characters are written as escapes by
//! [`crate::printable`] first, so a token split by zero-width characters is one run too.

use crate::protocol::escapes;
use crate::protocol::printable::push_printable;
use crate::protocol::sent::Sent;

/// Shortest run of token-alphabet characters that is treated as a possible secret.
pub const MIN_SECRET_RUN: usize = 20;

/// The text that replaces a redacted run.
pub const REDACTED: &str = "[redacted]";

pub(crate) const fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'=' | b'.' | b'+' | b'/')
}

/// The escape sequence that starts at `bytes[i]` (a `\`), if one does: its length, and whether
/// it stands for a character other than a letter (`\/`, `\u002e`; not the separators `\n`,
/// `\t`, `\"`, … nor a letter such as `\u0041`). A sequence cut short by the end of the text runs
/// to the end.
fn escape_at(bytes: &[u8], i: usize) -> Option<(usize, bool)> {
    let rest = &bytes[i..];
    match rest.get(1) {
        None => Some((1, false)),
        Some(b'/') => Some((2, true)),
        Some(b'"' | b'\\' | b'b' | b'f' | b'n' | b'r' | b't' | b'\'' | b'0') => Some((2, false)),
        Some(b'u') if rest.get(2) == Some(&b'{') => {
            // `\u{1b}`, as Rust's `escape_default` writes other control characters.
            let hex = rest[3..]
                .iter()
                .take_while(|b| b.is_ascii_hexdigit())
                .count();
            match rest.get(3 + hex) {
                Some(b'}') if (1..=6).contains(&hex) => Some((4 + hex, false)),
                None => Some((rest.len(), false)),
                _ => None,
            }
        }
        Some(b'u') => {
            let digits: Vec<u8> = rest[2..]
                .iter()
                .take(4)
                .take_while(|b| b.is_ascii_hexdigit())
                .copied()
                .collect();
            if digits.len() == 4 {
                let letter = std::str::from_utf8(&digits)
                    .ok()
                    .and_then(|h| u32::from_str_radix(h, 16).ok())
                    .and_then(char::from_u32)
                    .is_some_and(|c| c.is_alphabetic());
                Some((6, !letter))
            } else if 2 + digits.len() == rest.len() {
                Some((rest.len(), false))
            } else {
                None
            }
        }
        Some(_) => None,
    }
}

/// A maximal run of token characters and escape sequences, by byte offsets (all ASCII, so they
/// are char boundaries).
struct Run {
    start: usize,
    end: usize,
    has_non_letter: bool,
    /// Capital letters and `_` only, no escape: a constant's name.
    is_constant_name: bool,
}

impl Run {
    fn is_secret_like(&self) -> bool {
        self.end - self.start >= MIN_SECRET_RUN && self.has_non_letter && !self.is_constant_name
    }
}

/// The runs of `text`, in order.
fn runs(text: &str) -> Vec<Run> {
    let bytes = text.as_bytes();
    let mut found = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let start = i;
        let mut has_non_letter = false;
        let mut is_constant_name = true;
        loop {
            match bytes.get(i) {
                Some(&b) if is_token_byte(b) => {
                    has_non_letter |= !b.is_ascii_alphabetic();
                    is_constant_name &= b.is_ascii_uppercase() || b == b'_';
                    i += 1;
                }
                Some(b'\\') => match escape_at(bytes, i) {
                    Some((n, non_letter)) => {
                        has_non_letter |= non_letter;
                        is_constant_name = false;
                        i += n;
                    }
                    None => break,
                },
                _ => break,
            }
        }
        if i > start {
            found.push(Run {
                start,
                end: i,
                has_non_letter,
                is_constant_name,
            });
        } else {
            i += 1;
        }
    }
    found
}

/// Replaces every credential-like run in `text` with `[redacted]` (see the module docs).
///
/// ```
/// use cogref_core::redact::redact;
/// let page = "<p>token eyJraWQiOiJ0ZXN0In0.eyJzdWIiOiIxMjMifQ.c2lnbmF0dXJl rejected</p>";
/// assert_eq!(redact(page), "<p>token [redacted] rejected</p>");
/// assert_eq!(redact(r"token eyJra\/WQiOi\u002eJ0ZX rejected"), "token [redacted] rejected");
/// assert_eq!(redact("NotAuthorizedException"), "NotAuthorizedException");
/// ```
pub fn redact(text: &str) -> String {
    redact_sent(text, &Sent::nothing())
}

/// [`redact`], knowing what the request carried: a run that shows back one of its secrets is
/// redacted whatever its shape, a run that is its app client id is kept.
pub fn redact_sent(text: &str, sent: &Sent<'_>) -> String {
    // Text that cannot hold a credential-like run, and whose runs show back no secret sent
    // (service messages are words), is answered without the full scan.
    let look = quick_look(text, &TEXT_CLASSES);
    if !look.may_hold_a_secret && !shows_an_echo(text, look.longest_run, sent) {
        // No escape either: a `\`, `&` or `%` sends a text to the full scan.
        return sent.screen_plain(text.to_owned());
    }
    sent.screen(redact_runs(text, sent))
}

/// Whether a text without escapes, whose longest run of token characters is `longest_run`,
/// shows back a secret sent: with no escape, the full scan's runs are its plain runs of token
/// characters, and only a run long enough to show one can. Looked at in place, without the
/// full scan's list and copy (an error code such as `NotAuthorizedException` is such a run,
/// on every error response).
fn shows_an_echo(text: &str, longest_run: usize, sent: &Sent<'_>) -> bool {
    sent.shortest_echo().is_some_and(|shortest| {
        longest_run >= shortest
            && text
                .split(|c: char| !u8::try_from(c).is_ok_and(is_token_byte))
                .any(|run| run.len() >= shortest && sent.is_echoed_in(run))
    })
}

/// [`redact_sent`]'s full scan: every run looked at, without the quick answer.
fn redact_runs(text: &str, sent: &Sent<'_>) -> String {
    let mut out = String::with_capacity(text.len());
    let mut copied = 0;
    for run in runs(text) {
        let shown = &text[run.start..run.end];
        let hide = sent.is_echoed_in(shown) || (run.is_secret_like() && !sent.is_client_id(shown));
        if hide {
            out.push_str(&text[copied..run.start]);
            out.push_str(REDACTED);
            copied = run.end;
        }
    }
    out.push_str(&text[copied..]);
    out
}

/// What one pass over a text tells before the full scan.
struct QuickLook {
    /// It has a byte its class table sends to the full treatment (an escape; for
    /// [`network_text`], anything JSON or [`crate::printable`] would write as an escape too) or
    /// a run of at least [`MIN_SECRET_RUN`] token characters with a non-letter among them.
    /// Exact for text without such bytes, whose runs are plain runs of token characters.
    may_hold_a_secret: bool,
    /// Its longest run of token characters (meaningful when `may_hold_a_secret` is false: then
    /// there is no escape, and these are the full scan's runs).
    longest_run: usize,
}

// Byte classes of a quick look: a separator ends a run, a letter or another token character
// extends it, and a special byte sends the text to the full treatment.
const SEPARATOR: u8 = 0;
const LETTER: u8 = 1;
const TOKEN: u8 = 2;
const SPECIAL: u8 = 3;

/// The class of each byte. `wire`: every byte of text decoded from JSON that is not its own
/// wire and shown form (`"`, control characters, DEL, all of UTF-8 beyond ASCII) is special
/// too.
const fn classes(wire: bool) -> [u8; 256] {
    let mut class = [SEPARATOR; 256];
    let mut b = 0;
    while b < 256 {
        let byte = b as u8;
        // Every byte that starts an escape the last screen reads (`\`, `&`, `%`).
        class[b] = if escapes::starts_an_escape(byte)
            || (wire && (byte == b'"' || !matches!(byte, b' '..=b'~')))
        {
            SPECIAL
        } else if byte.is_ascii_alphabetic() {
            LETTER
        } else if is_token_byte(byte) {
            TOKEN
        } else {
            SEPARATOR
        };
        b += 1;
    }
    class
}

/// Classes for text as it is (an excerpt, a redirect's host): only `\` is special.
const TEXT_CLASSES: [u8; 256] = classes(false);
/// Classes for text decoded from JSON ([`network_text`]).
const WIRE_CLASSES: [u8; 256] = classes(true);

/// See [`QuickLook`]: service messages are words, and this answers for them without the full
/// scan's allocations. One table lookup a byte; a run is judged where it ends.
fn quick_look(text: &str, classes: &[u8; 256]) -> QuickLook {
    const MAY_HOLD: QuickLook = QuickLook {
        may_hold_a_secret: true,
        longest_run: usize::MAX,
    };
    // Where the current run started, and whether it has had a non-letter yet.
    let (mut start, mut has_non_letter, mut longest) = (0, false, 0);
    let bytes = text.as_bytes();
    for (i, &b) in bytes.iter().enumerate() {
        match classes[usize::from(b)] {
            SEPARATOR => {
                let run = i - start;
                if has_non_letter && run >= MIN_SECRET_RUN {
                    return MAY_HOLD;
                }
                longest = longest.max(run);
                (start, has_non_letter) = (i + 1, false);
            }
            LETTER => {}
            TOKEN => has_non_letter = true,
            _ => return MAY_HOLD,
        }
    }
    let run = bytes.len() - start;
    if has_non_letter && run >= MIN_SECRET_RUN {
        return MAY_HOLD;
    }
    QuickLook {
        may_hold_a_secret: false,
        longest_run: longest.max(run),
    }
}

/// Whether `text` may hold a credential-like run ([`QuickLook::may_hold_a_secret`]).
#[cfg(test)]
fn may_hold_a_secret(text: &str) -> bool {
    quick_look(text, &TEXT_CLASSES).may_hold_a_secret
}

/// A string the JSON parser decoded from a response (an error code, a message, a reason code),
/// as it may be shown: redacted in its wire form (see the module docs), with control and
/// invisible characters escaped ([`crate::printable`]).
///
/// ```
/// use cogref_core::redact::network_text;
/// use cogref_core::protocol::sent::Sent;
/// let split = "token eyJraWQiOi\nJ0ZXN0In0.eyJzd\"WIiOiIxMjMifQ.c2lnbmF0dXJl rejected";
/// assert_eq!(network_text(split, &Sent::nothing()), "token [redacted] rejected");
/// assert_eq!(network_text("Value \"x\" at [\\w+]+\u{1b}[2J", &Sent::nothing()),
///            "Value \"x\" at [\\w+]+\\u{1b}[2J");
/// ```
pub fn network_text(decoded: &str, sent: &Sent<'_>) -> String {
    // Printable ASCII without `"` or `\` (error codes, most messages) is its own wire form and
    // its own shown form: only the redaction is left to do. The quick look that finds it so
    // answers for most such texts in the same pass.
    let look = quick_look(decoded, &WIRE_CLASSES);
    if !look.may_hold_a_secret {
        let shown = if shows_an_echo(decoded, look.longest_run, sent) {
            redact_runs(decoded, sent)
        } else {
            decoded.to_owned()
        };
        // No `\`, `&` or `%`, so no escape to read: the quick look sends one the long way.
        return sent.screen_plain(shown);
    }
    sent.screen(network_text_unscreened(decoded, sent))
}

/// [`network_text`] for a text its quick look sent the long way, before the last screen
/// ([`Sent::screen`]).
fn network_text_unscreened(decoded: &str, sent: &Sent<'_>) -> String {
    if decoded
        .bytes()
        .all(|b| matches!(b, b' '..=b'~') && b != b'"' && b != b'\\')
    {
        return redact_runs(decoded, sent);
    }
    network_text_via_wire(decoded, sent)
}

/// [`network_text`]'s long way: the wire form, redacted by the full scan (an escape, which
/// most texts that come this way have, sends it there anyway), back again.
fn network_text_via_wire(decoded: &str, sent: &Sent<'_>) -> String {
    // As on the wire: `"` and `\` escaped too, so that they join a run as their escapes do.
    let mut wire = String::with_capacity(decoded.len() + 8);
    for c in decoded.chars() {
        match c {
            '"' => wire.push_str("\\\""),
            '\\' => wire.push_str("\\\\"),
            c => push_printable(&mut wire, c),
        }
    }
    let redacted = redact_runs(&wire, sent);
    // Back from the wire form, but for the escapes that keep the terminal safe.
    let mut shown = String::with_capacity(redacted.len());
    let mut chars = redacted.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            shown.push(c);
            continue;
        }
        match chars.next() {
            Some(quoted @ ('"' | '\\')) => shown.push(quoted),
            Some(other) => {
                shown.push('\\');
                shown.push(other);
            }
            None => shown.push('\\'),
        }
    }
    shown
}

/// Longest excerpt of a body kept in an error, in characters.
pub const EXCERPT_CHARS: usize = 160;

/// A short, printable, redacted excerpt of a response body for an error message.
///
/// Invalid UTF-8 is replaced, control and invisible characters are escaped
/// ([`crate::printable`]), the escaped text is cut to [`EXCERPT_CHARS`] characters and then
/// passed through [`redact`]. Returns `None` for an empty body.
pub fn excerpt(body: &[u8]) -> Option<String> {
    excerpt_sent(body, &Sent::nothing())
}

/// [`excerpt`], knowing what the request carried (see [`redact_sent`]).
pub fn excerpt_sent(body: &[u8], sent: &Sent<'_>) -> Option<String> {
    if body.is_empty() {
        return None;
    }
    // Cut first (on the escaped text) so that a token straddling the cut is still long enough to
    // be caught, then redact; a run cut below the threshold by the cut would otherwise slip
    // through.
    let lossy = String::from_utf8_lossy(body);
    let mut printable = String::new();
    let mut chars = 0;
    let mut cut = false;
    let mut escaped = String::new();
    for c in lossy.chars() {
        escaped.clear();
        push_printable(&mut escaped, c);
        for e in escaped.chars() {
            if chars == EXCERPT_CHARS {
                cut = true;
                break;
            }
            printable.push(e);
            chars += 1;
        }
        if cut {
            break;
        }
    }
    let mut redacted = redact_sent(&printable, sent);
    // A run cut short at the end may be the head of a longer token: redact a trailing run that
    // reaches the cut even when it is shorter than the threshold.
    if cut {
        if let Some(last) = runs(&redacted).last()
            && last.end == redacted.len()
        {
            redacted.truncate(last.start);
            redacted.push_str(REDACTED);
        }
        redacted.push('…');
    }
    Some(sent.screen(redacted))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::sent::ECHO_PIECE;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn text_the_quick_check_passes_has_no_secret_like_run(
            text in r#"[a-zA-Z0-9 ._/=+:"\\{}é-]{0,80}"#
        ) {
            if !may_hold_a_secret(&text) {
                prop_assert!(!runs(&text).iter().any(Run::is_secret_like), "{}", text);
                prop_assert_eq!(redact(&text), text);
            }
        }
    }

    proptest! {
        #[test]
        fn with_secrets_known_the_quick_answer_is_the_full_scans(
            text in r#"[a-e0-2 ._"\\-]{0,60}"#,
            secret in "[a-e0-2._-]{1,30}",
        ) {
            // A small alphabet: runs of the text often show the secret, whole or in part.
            let secret = secrecy::SecretString::from(secret);
            let sent = Sent::new("client", [Some(&secret)]);
            prop_assert_eq!(redact_sent(&text, &sent), redact_runs(&text, &sent));
        }

        #[test]
        fn printable_ascii_takes_the_short_way_to_the_same_text(
            text in r#"[a-e0-2._=-]{0,40}[ !#(]?[a-e0-2._=-]{0,40}|[ -~]{0,60}"#,
            secret in "[a-e0-2._-]{8,30}",
        ) {
            let secret = secrecy::SecretString::from(secret);
            let sent = Sent::new("client", [Some(&secret)]);
            prop_assert_eq!(network_text(&text, &sent), network_text_via_wire(&text, &sent));
        }

        #[test]
        fn any_decoded_text_is_shown_as_its_wire_form_redacted(
            // Long runs (credential-like or echoing) beside one byte the quick look must send
            // the long way (a quote, a backslash, a control character, DEL, non-ASCII), or none.
            text in "[a-e0-2._=-]{0,30}[ \"\\\\\\x00-\\x1f\\x7fé€\u{200b}]?[a-e0-2._=-]{0,30}[ -~é\\n]{0,10}",
            secret in "[a-e0-2._-]{8,30}",
        ) {
            let secret = secrecy::SecretString::from(secret);
            let sent = Sent::new("client", [Some(&secret)]);
            prop_assert_eq!(network_text(&text, &sent), network_text_via_wire(&text, &sent));
        }

        #[test]
        fn a_run_exactly_as_long_as_the_shortest_echo_is_still_looked_at(
            secret in "[a-e]{8,30}",
            pre in "[a-c ]{0,15}",
            post in "[a-c ]{0,15}",
            cut in 0usize..10,
        ) {
            // Letters only: never credential-like by shape, so only the echo check redacts it.
            let piece = if secret.len() <= ECHO_PIECE {
                secret.clone()
            } else {
                let at = cut.min(secret.len() - ECHO_PIECE);
                secret[at..at + ECHO_PIECE].to_owned()
            };
            let text = format!("{pre} {piece} {post}");
            let secret = secrecy::SecretString::from(secret);
            let sent = Sent::new("client", [Some(&secret)]);
            let shown = redact_sent(&text, &sent);
            prop_assert!(!shown.contains(&piece), "{} -> {}", text, shown);
        }
    }

    #[test]
    fn the_quick_checks_classes_are_the_token_alphabet() {
        for b in 0..=255u8 {
            let text = [b; MIN_SECRET_RUN];
            let text = String::from_utf8_lossy(&text);
            // `\`, `&` and `%` start escapes, which the last screen reads: the long way.
            let full = escapes::starts_an_escape(b) || runs(&text).iter().any(Run::is_secret_like);
            let quick = may_hold_a_secret(&text);
            assert!(
                quick || !full,
                "byte {b:#x}: the quick check let a secret through"
            );
            // `_` is the one byte where they differ: a run of capitals and `_` (a constant's
            // name) goes to the full scan, which keeps it; the quick check is only cautious.
            if b != b'_' {
                assert_eq!(quick, full, "byte {b:#x}");
            }
        }
    }

    #[test]
    fn the_quick_check_sends_runs_and_escapes_to_the_full_scan() {
        assert!(may_hold_a_secret("abcdefghij0123456789"));
        assert!(!may_hold_a_secret("abcdefghij012345678"));
        assert!(!may_hold_a_secret("Refresh Token has been revoked"));
        assert!(!may_hold_a_secret(
            "NotAuthorizedExceptionNotAuthorizedException"
        ));
        assert!(may_hold_a_secret(r"a\/b"));
    }

    #[test]
    fn a_jwt_is_redacted() {
        let s = "x eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiIxIn0.sig-nature_123 y";
        assert_eq!(redact(s), "x [redacted] y");
    }

    #[test]
    fn words_and_exception_names_are_kept() {
        let s = "Refresh Token has been revoked (NotAuthorizedException)";
        assert_eq!(redact(s), s);
    }

    #[test]
    fn a_client_secret_of_minimum_length_is_redacted() {
        assert_eq!(redact("secret=abcdefghij0123456789abcd"), REDACTED);
    }

    #[test]
    fn a_constant_name_such_as_a_reason_code_is_kept() {
        for s in [
            "REFRESH_TOKEN_INVALID",
            "INVALID_SMS_ROLE_TRUST_RELATIONSHIP",
        ] {
            assert_eq!(redact(s), s);
        }
        // Base64 of that length has small letters or digits.
        assert_eq!(redact("REFRESH_TOKEN_INVALID9"), REDACTED);
        assert_eq!(redact("REFRESH_TOKEN_INVALIDx"), REDACTED);
    }

    #[test]
    fn the_client_id_sent_is_kept_and_any_echo_of_a_secret_sent_is_redacted() {
        use secrecy::SecretString;
        let message = "User pool client 1example23456789abcdefghij does not exist.";
        assert_eq!(
            redact(message),
            "User pool client [redacted] does not exist."
        );
        let secret = SecretString::from("SixteenslettersandsmoreLetters");
        let sent = Sent::new("1example23456789abcdefghij", [Some(&secret)]);
        assert_eq!(redact_sent(message, &sent), message);
        // All letters: no shape would redact it, the echo does.
        assert_eq!(
            redact_sent("echo SixteenslettersandsmoreX", &sent),
            "echo [redacted]"
        );
        assert_eq!(
            redact_sent("other 2example23456789abcdefghij", &sent),
            "other [redacted]"
        );
    }

    #[test]
    fn excerpt_of_empty_body_is_none() {
        assert_eq!(excerpt(b""), None);
    }

    #[test]
    fn excerpt_escapes_control_characters() {
        assert_eq!(excerpt(b"a\nb").as_deref(), Some("a\\nb"));
    }

    #[test]
    fn excerpt_cut_inside_a_token_redacts_the_cut_head() {
        let mut body = "x".repeat(EXCERPT_CHARS - 5);
        body.push(' ');
        body.push_str("abc123def456ghi789");
        let e = excerpt(body.as_bytes()).expect("non-empty");
        assert!(!e.contains("abc1"), "{e}");
        assert!(e.ends_with("[redacted]…"), "{e}");
    }
}

/// Review 15b: the quick paths of [`redact_sent`] and [`network_text`] (61383cc) against the
/// full paths as they were, on adversarial text.
#[cfg(test)]
mod quick_paths_as_the_full_paths {
    use super::*;
    use proptest::prelude::*;
    use secrecy::SecretString;

    /// Text from pieces: slices of the secrets and of the client id (cut anywhere), escapes and
    /// escape fragments, quotes, control and invisible characters, multi-byte text, words.
    fn piece() -> impl Strategy<Value = (u8, usize, usize, String)> {
        (
            0u8..4,
            0usize..64,
            0usize..40,
            prop_oneof![
                "[a-cA-C0-2 ._=+/-]{0,8}",
                Just("\\".to_owned()),
                Just("\"".to_owned()),
                Just("\\u002e".to_owned()),
                Just("\\u00".to_owned()),
                Just("\\u{1b}".to_owned()),
                Just("\\/".to_owned()),
                Just("\\n".to_owned()),
                Just("\n".to_owned()),
                Just("\u{1b}".to_owned()),
                Just("\u{200b}".to_owned()),
                Just("\u{ad}".to_owned()),
                Just("\u{7f}".to_owned()),
                Just("\u{e9}".to_owned()),
                Just("\u{65e5}".to_owned()),
                Just("REFRESH_TOKEN_INVALID".to_owned()),
                Just("NotAuthorizedException".to_owned()),
                Just("~`!@#$%^&*()".to_owned()),
            ],
        )
    }

    fn build(sources: &[String], pieces: &[(u8, usize, usize, String)]) -> String {
        let mut text = String::new();
        for (which, at, len, noise) in pieces {
            let source = sources[usize::from(*which) % sources.len()].as_bytes();
            let start = at % (source.len() + 1);
            let end = (start + len).min(source.len());
            text.push_str(&String::from_utf8_lossy(&source[start..end]));
            text.push_str(noise);
        }
        text
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(3000))]

        #[test]
        fn redact_sent_answers_byte_for_byte_as_the_full_scan(
            secrets in prop::collection::vec("[a-cA-C0-2._=+/-]{1,34}|[a-c\u{e9}\"\\\\ ]{1,24}", 0..4),
            client_id in "[a-c0-2]{3,26}",
            id_is_a_secret in any::<bool>(),
            pieces in prop::collection::vec(piece(), 0..6),
        ) {
            let client_id = if id_is_a_secret && !secrets.is_empty() { secrets[0].clone() } else { client_id };
            let owned: Vec<SecretString> = secrets.iter().cloned().map(SecretString::from).collect();
            let sent = Sent::new(&client_id, owned.iter().map(Some));
            let mut sources = secrets.clone();
            sources.push(client_id.clone());
            let text = build(&sources, &pieces);
            // Secrets outside the token alphabet (the second pattern) are screened whole as well,
            // on either path ([`Sent::screen`]).
            prop_assert_eq!(redact_sent(&text, &sent), sent.screen(redact_runs(&text, &sent)), "text {:?}", text);
            prop_assert_eq!(
                redact_sent(&text, &Sent::nothing()),
                redact_runs(&text, &Sent::nothing()),
                "text {:?}", text
            );
        }

        #[test]
        fn network_text_answers_byte_for_byte_as_the_wire_form_round_trip(
            secrets in prop::collection::vec("[a-cA-C0-2._=+/-]{1,34}|[a-c\u{e9}\"\\\\ ]{1,24}", 0..4),
            client_id in "[a-c0-2]{3,26}",
            pieces in prop::collection::vec(piece(), 0..6),
        ) {
            let owned: Vec<SecretString> = secrets.iter().cloned().map(SecretString::from).collect();
            let sent = Sent::new(&client_id, owned.iter().map(Some));
            let mut sources = secrets.clone();
            sources.push(client_id.clone());
            let text = build(&sources, &pieces);
            prop_assert_eq!(network_text(&text, &sent), sent.screen(network_text_via_wire(&text, &sent)), "text {:?}", text);
        }
    }
}
