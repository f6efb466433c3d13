//! How a reader reads the escapes in a text shown: the last screen of [`Sent`] looks for a
//! secret in a text read this way, since a server can spell a secret with an escape every few
//! characters (`\u0061bcdefghij\u006blm…`), which leaves no piece of it as written.
//!
//! Read: JSON's escapes (`\uXXXX` in either case, a surrogate pair as its one character, `\/`,
//! `\"`, `\\`, `\b`, `\f`, `\n`, `\r`, `\t`), Rust's (`\u{…}`, underscores allowed, `\xHH`,
//! `\'`, `\0`), C's and Python's `\UXXXXXXXX` (and `\U` with four digits), HTML's character
//! references (`&#97;`, `&#x61;`, and the named ones of the token alphabet's punctuation:
//! `&period;`, `&lowbar;`, `&equals;`, `&plus;`, `&sol;`, `&amp;`, …), and percent-encoding
//! (`%61`, ASCII only). One call reads one level: `\\u0061` reads as `\u0061`.
//!
//! [`Sent`]: crate::protocol::sent::Sent

/// The bytes every escape [`read_once`] reads starts with.
const ESCAPE_STARTS: [u8; 3] = [b'\\', b'&', b'%'];

/// Whether `b` may start an escape [`read_once`] reads (one of [`ESCAPE_STARTS`]).
pub(crate) const fn starts_an_escape(b: u8) -> bool {
    b == ESCAPE_STARTS[0] || b == ESCAPE_STARTS[1] || b == ESCAPE_STARTS[2]
}

/// Whether `text` has anything [`read_once`] would read: a `\`, a `&` or a `%`.
pub(crate) fn may_have_escapes(text: &str) -> bool {
    let [a, b, c] = ESCAPE_STARTS;
    memchr::memchr3(a, b, c, text.as_bytes()).is_some()
}

/// `text` with each escape it has read as the character it stands for, one level; the rest as
/// it is. An escape that stands for no character (half a surrogate pair, a code point out of
/// range) reads as U+FFFD; a sequence that is no escape (`\q`, `&nbsp;`, `%zz`, one cut short)
/// is kept as it is.
pub(crate) fn read_once(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let (mut copied, mut i) = (0, 0);
    while i < bytes.len() {
        let read = match bytes[i] {
            b'\\' => backslash_escape(&bytes[i..]),
            b'&' => character_reference(&bytes[i..]),
            b'%' => percent_escape(&bytes[i..]),
            _ => None,
        };
        // Every escape starts with an ASCII byte, and is ASCII through: char boundaries.
        match read {
            Some((len, c)) => {
                out.push_str(&text[copied..i]);
                out.push(c);
                i += len;
                copied = i;
            }
            None => i += 1,
        }
    }
    out.push_str(&text[copied..]);
    out
}

/// The value of `digits` in `radix`, if they are all digits of it: any number of leading
/// zeros (`&#0000000097;` is `a` to a browser), and beyond `u32` read as `u32::MAX` (no
/// character, as a browser reads it).
fn number(digits: &[u8], radix: u32) -> Option<u32> {
    if digits.is_empty() || !digits.iter().all(|&d| char::from(d).is_digit(radix)) {
        return None;
    }
    digits.iter().try_fold(0u32, |n, &d| {
        let d = char::from(d).to_digit(radix)?;
        Some(n.saturating_mul(radix).saturating_add(d))
    })
}

/// The character `code` stands for; U+FFFD for none (a surrogate, beyond U+10FFFF).
fn character(code: u32) -> char {
    char::from_u32(code).unwrap_or(char::REPLACEMENT_CHARACTER)
}

/// The `\` escape at the start of `s`: its length and character.
fn backslash_escape(s: &[u8]) -> Option<(usize, char)> {
    let hex_at = |from: usize, len: usize| s.get(from..from + len).and_then(|h| number(h, 16));
    let simple = match *s.get(1)? {
        b'/' => '/',
        b'"' => '"',
        b'\\' => '\\',
        b'\'' => '\'',
        b'b' => '\u{8}',
        b'f' => '\u{c}',
        b'n' => '\n',
        b'r' => '\r',
        b't' => '\t',
        b'0' => '\0',
        b'x' => return hex_at(2, 2).map(|code| (4, character(code))),
        // Eight digits when they name a character, else four (`\U0061bcde` is `abcde`).
        b'U' => {
            return hex_at(2, 8)
                .and_then(char::from_u32)
                .map(|c| (10, c))
                .or_else(|| hex_at(2, 4).map(|code| (6, character(code))));
        }
        b'u' if s.get(2) == Some(&b'{') => return braced(s),
        b'u' => {
            let high = hex_at(2, 4)?;
            // A surrogate pair stands for one character beyond U+FFFF.
            if (0xD800..0xDC00).contains(&high)
                && s.get(6..8) == Some(b"\\u")
                && let Some(low @ 0xDC00..0xE000) = hex_at(8, 4)
            {
                let code = 0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00);
                return Some((12, character(code)));
            }
            return Some((6, character(high)));
        }
        _ => return None,
    };
    Some((2, simple))
}

/// Rust's `\u{…}` at the start of `s`: one to six hex digits, any number of underscores after
/// the first.
fn braced(s: &[u8]) -> Option<(usize, char)> {
    let close = 3 + s[3..]
        .iter()
        .position(|&b| !(b.is_ascii_hexdigit() || b == b'_'))?;
    if s[close] != b'}' {
        return None;
    }
    let inside = &s[3..close];
    let digits: Vec<u8> = inside.iter().copied().filter(|&b| b != b'_').collect();
    if !inside.first()?.is_ascii_hexdigit() || digits.len() > 6 {
        return None;
    }
    number(&digits, 16).map(|code| (close + 1, character(code)))
}

/// An HTML character reference at the start of `s` (`&#97;`, `&#x61;`, a named one of the
/// token alphabet's punctuation), its `;` optional as browsers read it.
fn character_reference(s: &[u8]) -> Option<(usize, char)> {
    const NAMED: [(&[u8], char); 11] = [
        (b"amp", '&'),
        (b"lt", '<'),
        (b"gt", '>'),
        (b"quot", '"'),
        (b"apos", '\''),
        (b"period", '.'),
        (b"lowbar", '_'),
        (b"equals", '='),
        (b"plus", '+'),
        (b"sol", '/'),
        (b"hyphen", '-'),
    ];
    let (radix, start) = match (s.get(1), s.get(2)) {
        (Some(b'#'), Some(b'x' | b'X')) => (16, 3),
        (Some(b'#'), _) => (10, 2),
        _ => {
            let (name, c) = NAMED.iter().find(|(name, _)| s[1..].starts_with(name))?;
            let end = 1 + name.len();
            return Some((end + usize::from(s.get(end) == Some(&b';')), *c));
        }
    };
    let digits = s[start..]
        .iter()
        .take_while(|b| char::from(**b).is_digit(radix))
        .count();
    let code = number(&s[start..start + digits], radix)?;
    let end = start + digits;
    Some((
        end + usize::from(s.get(end) == Some(&b';')),
        character(code),
    ))
}

/// A percent-encoded ASCII byte at the start of `s` (`%61`).
fn percent_escape(s: &[u8]) -> Option<(usize, char)> {
    let byte = number(s.get(1..3)?, 16)?;
    (byte < 0x80).then(|| (3, character(byte)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_notation_reads_as_its_character() {
        for (text, read) in [
            (
                r"\u0061\u0041\/\x62\U00000063\U0064\u{65}\u{6_6}",
                "aA/bcdef",
            ),
            (r"\U0061bcdef \u{61_____________}", "abcdef a"),
            ("&#0000000097;&#x0000000061;", "aa"),
            (r"\uD83D\uDE00 \ud83d\ude00", "😀 😀"),
            (
                "&#103;&#x68;&#X69;&period;&lowbar;&equals;&plus;&sol;&amp",
                "ghi._=+/&",
            ),
            ("%6a%6B", "jk"),
            (r#"\n\t\"\\"#, "\n\t\"\\"),
        ] {
            assert_eq!(read_once(text), read, "{text}");
        }
    }

    #[test]
    fn what_is_no_escape_is_kept_and_nothing_panics() {
        for text in [
            r"\q \u00 \u{ \u{} \u{_1} \u{1234567} \x6 \U00 & &nbsp; &# &#x; % %zz %e9 \",
            "é\\é&é%é",
            "",
        ] {
            assert_eq!(read_once(text), text, "{text}");
        }
        assert_eq!(
            read_once(r"\ud800 \u{110000} &#1114112;"),
            "\u{fffd} \u{fffd} \u{fffd}"
        );
    }

    #[test]
    fn one_call_reads_one_level() {
        assert_eq!(read_once(r"\\u0061"), r"\u0061");
        assert_eq!(read_once(&read_once(r"\\u0061")), "a");
        assert_eq!(read_once("&amp;#97;"), "&#97;");
    }
}
