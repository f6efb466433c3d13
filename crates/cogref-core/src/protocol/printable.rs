//! Text from the network made safe to print: what a terminal would act on or not show is
//! written as an escape.
//!
//! Error codes, messages, reason codes and body excerpts come from a server that may be hostile.
//! Printed raw, a control character (ESC, BEL, CSI: `\u{1b}[2J`, `\u{1b}]0;title\u{7}`) makes a
//! terminal clear the screen, retitle the window or hide text, and a format character reorders
//! the line (U+202E RIGHT-TO-LEFT OVERRIDE, U+061C ARABIC LETTER MARK) or hides inside a word
//! (U+200B ZERO WIDTH SPACE, U+00AD SOFT HYPHEN), where it can also cut a token into pieces that
//! look short. [`printable`] writes every such character as an escape: `\n`, `\r`, `\t`, and
//! `\u{…}` for the others, as Rust's `char::escape_default` does. [`crate::redact`] counts these
//! escapes as part of a run, so a token split by them is still redacted whole.
//!
//! Escaped: every control character (Unicode's Cc: C0, DEL, C1), every format character (Cf),
//! the line and paragraph separators (Zl, Zp), and every other default-ignorable code point (the
//! characters a renderer shows as nothing: variation selectors, Hangul fillers, tags).

use std::borrow::Cow;

/// Format characters (Cf) and the other default-ignorable code points (Unicode 16.0,
/// `DerivedCoreProperties.txt`), plus the line and paragraph separators: inclusive ranges.
const INVISIBLE: &[(char, char)] = &[
    ('\u{00AD}', '\u{00AD}'),
    ('\u{034F}', '\u{034F}'),
    ('\u{0600}', '\u{0605}'),
    ('\u{061C}', '\u{061C}'),
    ('\u{06DD}', '\u{06DD}'),
    ('\u{070F}', '\u{070F}'),
    ('\u{0890}', '\u{0891}'),
    ('\u{08E2}', '\u{08E2}'),
    ('\u{115F}', '\u{1160}'),
    ('\u{17B4}', '\u{17B5}'),
    ('\u{180B}', '\u{180F}'),
    ('\u{200B}', '\u{200F}'),
    ('\u{2028}', '\u{202E}'),
    ('\u{2060}', '\u{206F}'),
    ('\u{3164}', '\u{3164}'),
    ('\u{FE00}', '\u{FE0F}'),
    ('\u{FEFF}', '\u{FEFF}'),
    ('\u{FFA0}', '\u{FFA0}'),
    ('\u{FFF0}', '\u{FFFB}'),
    ('\u{110BD}', '\u{110BD}'),
    ('\u{110CD}', '\u{110CD}'),
    ('\u{13430}', '\u{1343F}'),
    ('\u{1BCA0}', '\u{1BCA3}'),
    ('\u{1D173}', '\u{1D17A}'),
    ('\u{E0000}', '\u{E0FFF}'),
];

/// Whether `c` is written as an escape by [`printable`]: a control character, or one a terminal
/// does not show as itself (format characters such as bidirectional controls and zero-width
/// characters, line and paragraph separators, other default-ignorable code points).
///
/// ```
/// use cogref_core::printable::is_escaped;
/// assert!(is_escaped('\u{1b}') && is_escaped('\n') && is_escaped('\u{9b}'));
/// assert!(is_escaped('\u{202E}') && is_escaped('\u{061C}') && is_escaped('\u{200B}'));
/// assert!(!is_escaped('é') && !is_escaped('日') && !is_escaped(' '));
/// ```
pub fn is_escaped(c: char) -> bool {
    if c.is_ascii() {
        return c.is_ascii_control();
    }
    c.is_control()
        || INVISIBLE
            .binary_search_by(|&(low, high)| {
                if high < c {
                    std::cmp::Ordering::Less
                } else if low > c {
                    std::cmp::Ordering::Greater
                } else {
                    std::cmp::Ordering::Equal
                }
            })
            .is_ok()
}

/// Writes `c` as [`printable`] does: itself, or its escape.
pub(crate) fn push_printable(out: &mut String, c: char) {
    match c {
        '\n' => out.push_str("\\n"),
        '\r' => out.push_str("\\r"),
        '\t' => out.push_str("\\t"),
        c if is_escaped(c) => out.extend(c.escape_unicode()),
        c => out.push(c),
    }
}

/// `text` with every character of [`is_escaped`] written as an escape (`\n`, `\r`, `\t`,
/// `\u{1b}`, `\u{202e}`); borrowed when there is none.
///
/// ```
/// use cogref_core::printable::printable;
/// assert_eq!(printable("Invalid Refresh Token"), "Invalid Refresh Token");
/// assert_eq!(printable("a\u{1b}[2Jb\n\u{202E}c"), r"a\u{1b}[2Jb\n\u{202e}c");
/// ```
pub fn printable(text: &str) -> Cow<'_, str> {
    if !text.chars().any(is_escaped) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        push_printable(&mut out, c);
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ranges_are_sorted_and_disjoint_for_the_binary_search() {
        for pair in INVISIBLE.windows(2) {
            assert!(pair[0].0 <= pair[0].1 && pair[0].1 < pair[1].0, "{pair:?}");
        }
    }

    #[test]
    fn every_bidirectional_control_and_zero_width_character_is_escaped() {
        // Unicode's Bidi_Control property, and the invisible characters that split words.
        for c in [
            '\u{061C}',
            '\u{200E}',
            '\u{200F}',
            '\u{202A}',
            '\u{202B}',
            '\u{202C}',
            '\u{202D}',
            '\u{202E}',
            '\u{2066}',
            '\u{2067}',
            '\u{2068}',
            '\u{2069}',
            '\u{200B}',
            '\u{200C}',
            '\u{200D}',
            '\u{2060}',
            '\u{00AD}',
            '\u{FEFF}',
            '\u{2028}',
            '\u{2029}',
            '\u{E0041}',
            '\u{FE0F}',
            '\u{7F}',
            '\u{85}',
            '\u{9B}',
        ] {
            assert!(is_escaped(c), "U+{:04X}", c as u32);
            assert!(!printable(&c.to_string()).chars().any(is_escaped));
        }
    }

    #[test]
    fn letters_punctuation_and_spaces_are_kept() {
        let text = "Refresh Token has been revoked: 'x' (é, 日本, ü, Ω) [\\w+]+ \"q\"";
        assert!(matches!(printable(text), Cow::Borrowed(_)));
    }
}
