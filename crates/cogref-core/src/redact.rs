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

/// Shortest run of token-alphabet characters that is treated as a possible secret.
pub const MIN_SECRET_RUN: usize = 20;

/// The text that replaces a redacted run.
pub const REDACTED: &str = "[redacted]";

fn is_token_char(c: char) -> bool {
    c.is_ascii() && is_token_byte(c as u8)
}

fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'=' | b'.' | b'+' | b'/')
}

/// Replaces every credential-like run in `text` with `[redacted]` (see the module docs).
///
/// ```
/// use cogref_core::redact::redact;
/// let page = "<p>token eyJraWQiOiJ0ZXN0In0.eyJzdWIiOiIxMjMifQ.c2lnbmF0dXJl rejected</p>";
/// assert_eq!(redact(page), "<p>token [redacted] rejected</p>");
/// assert_eq!(redact("NotAuthorizedException"), "NotAuthorizedException");
/// ```
pub fn redact(text: &str) -> String {
    // Token characters are ASCII, so byte offsets at run edges are char boundaries.
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let (mut i, mut copied) = (0, 0);
    while i < bytes.len() {
        if !is_token_byte(bytes[i]) {
            i += 1;
            continue;
        }
        let start = i;
        let mut has_non_letter = false;
        while i < bytes.len() && is_token_byte(bytes[i]) {
            has_non_letter |= !bytes[i].is_ascii_alphabetic();
            i += 1;
        }
        if i - start >= MIN_SECRET_RUN && has_non_letter {
            out.push_str(&text[copied..start]);
            out.push_str(REDACTED);
            copied = i;
        }
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
        let tail_start = redacted
            .char_indices()
            .rev()
            .take_while(|(_, c)| is_token_char(*c))
            .last()
            .map(|(i, _)| i);
        if let Some(i) = tail_start {
            redacted.truncate(i);
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
