//! Redaction of text that came from the network before it is shown to anyone.
//!
//! A response body can echo a token: a 200 whose JSON is cut short still carries the access
//! token, and a proxy's error page may quote the request. Excerpts and service messages therefore
//! pass through [`redact`], which replaces every run that looks like a credential with
//! `[redacted]`.
//!
//! The rule: a run of at least [`MIN_SECRET_RUN`] characters from the token alphabet
//! (`A-Z a-z 0-9 - _ = . + /`) that contains at least one character other than a letter.
//! JWTs, JWEs, client secrets (24 to 64 characters of `[\w+]`) and device keys all match;
//! exception names such as `NotAuthorizedException` and ordinary words do not.
//!
//! Escape sequences count as part of a run: JSON's `\/`, `\n`, `\"`, `\\`, `\uXXXX` and the
//! like, and the `\u{…}` that [`excerpt`] writes for control characters; one that stands for a
//! character other than a letter (`\/`, `\u002e`) counts as a non-letter.
//! A body can spell a token with an escape every few characters (`eyJhb\/GciOi\u002eJIUzI1…`),
//! which would otherwise leave pieces shorter than the threshold; such a token is one run and is
//! redacted whole. An escape cut short by the end of the text (an excerpt's cut) still counts.

/// Shortest run of token-alphabet characters that is treated as a possible secret.
pub const MIN_SECRET_RUN: usize = 20;

/// The text that replaces a redacted run.
pub const REDACTED: &str = "[redacted]";

fn is_token_byte(b: u8) -> bool {
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
}

impl Run {
    fn is_secret_like(&self) -> bool {
        self.end - self.start >= MIN_SECRET_RUN && self.has_non_letter
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
        loop {
            match bytes.get(i) {
                Some(&b) if is_token_byte(b) => {
                    has_non_letter |= !b.is_ascii_alphabetic();
                    i += 1;
                }
                Some(b'\\') => match escape_at(bytes, i) {
                    Some((n, non_letter)) => {
                        has_non_letter |= non_letter;
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
    let mut out = String::with_capacity(text.len());
    let mut copied = 0;
    for run in runs(text).into_iter().filter(Run::is_secret_like) {
        out.push_str(&text[copied..run.start]);
        out.push_str(REDACTED);
        copied = run.end;
    }
    out.push_str(&text[copied..]);
    out
}

/// Longest excerpt of a body kept in an error, in characters.
pub const EXCERPT_CHARS: usize = 160;

/// A short, printable, redacted excerpt of a response body for an error message.
///
/// Invalid UTF-8 is replaced, control characters are escaped, the result is cut to
/// [`EXCERPT_CHARS`] characters and then passed through [`redact`]. Returns `None` for an
/// empty body.
pub fn excerpt(body: &[u8]) -> Option<String> {
    if body.is_empty() {
        return None;
    }
    // Cut first (on the raw text) so that a token straddling the cut is still long enough to be
    // caught, then redact; a run cut below the threshold by the cut would otherwise slip through.
    let lossy = String::from_utf8_lossy(body);
    let mut printable = String::new();
    for c in lossy.chars() {
        if printable.chars().count() >= EXCERPT_CHARS {
            break;
        }
        if c.is_control() {
            printable.extend(c.escape_default());
        } else {
            printable.push(c);
        }
    }
    let mut redacted = redact(&printable);
    // A run cut short at the end may be the head of a longer token: redact a trailing run that
    // reaches the cut even when it is shorter than the threshold.
    if lossy.chars().count() > EXCERPT_CHARS {
        if let Some(last) = runs(&redacted).last()
            && last.end == redacted.len()
        {
            redacted.truncate(last.start);
            redacted.push_str(REDACTED);
        }
        redacted.push('…');
    }
    Some(redacted)
}

#[cfg(test)]
mod tests {
    use super::*;

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
