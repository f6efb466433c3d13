//! RFC 8259's grammar, as the judge of what `RevokeToken`'s parser may take for a JSON object:
//! written from the RFC, not from serde_json, whose `Value` is stricter than the grammar (it
//! refuses numbers beyond an `f64`, nesting past 128 levels and lone surrogate escapes, all of
//! which the grammar allows and the parser rightly takes). Shared by the proptest in
//! `tests/revoke.rs` and the fuzz target `parse_revoke_response` (`#[path]`).

/// JSON's whitespace (RFC 8259 §2): space, tab, line feed, carriage return. Not Rust's
/// `is_ascii_whitespace`, which also takes a form feed.
pub(crate) fn is_json_whitespace(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r')
}

/// Empty, or JSON whitespace only.
pub(crate) fn blank(body: &[u8]) -> bool {
    body.iter().copied().all(is_json_whitespace)
}

/// Whether `body` is one JSON text (UTF-8, RFC 8259 §8.1) whose value is an object.
pub(crate) fn json_object(body: &[u8]) -> bool {
    if std::str::from_utf8(body).is_err() {
        return false;
    }
    let start = ws(body, 0);
    if body.get(start) != Some(&b'{') {
        return false;
    }
    value(body, start).is_some_and(|end| ws(body, end) == body.len())
}

fn ws(b: &[u8], mut i: usize) -> usize {
    while b.get(i).copied().is_some_and(is_json_whitespace) {
        i += 1;
    }
    i
}

/// The end of the value starting at `i` (no whitespace before it), if there is one. Nesting is
/// kept on a stack of its own, so no depth overflows the thread's.
fn value(b: &[u8], i: usize) -> Option<usize> {
    // Each open container: `b'{'` or `b'['`.
    let mut open: Vec<u8> = Vec::new();
    let mut i = i;
    loop {
        // A value at `i`.
        i = match *b.get(i)? {
            c @ (b'{' | b'[') => {
                let close = if c == b'{' { b'}' } else { b']' };
                let j = ws(b, i + 1);
                if b.get(j) == Some(&close) {
                    j + 1
                } else {
                    open.push(c);
                    if c == b'{' {
                        i = member_key(b, j)?;
                    } else {
                        i = j;
                    }
                    continue;
                }
            }
            b'"' => string(b, i)?,
            b't' => literal(b, i, b"true")?,
            b'f' => literal(b, i, b"false")?,
            b'n' => literal(b, i, b"null")?,
            _ => number(b, i)?,
        };
        // After a value: close containers, or go on to the next element.
        loop {
            let Some(&container) = open.last() else {
                return Some(i);
            };
            let j = ws(b, i);
            let close = if container == b'{' { b'}' } else { b']' };
            match *b.get(j)? {
                b',' => {
                    let k = ws(b, j + 1);
                    i = if container == b'{' {
                        member_key(b, k)?
                    } else {
                        k
                    };
                    break;
                }
                c if c == close => {
                    open.pop();
                    i = j + 1;
                }
                _ => return None,
            }
        }
    }
}

/// A member's key and colon at `i`: the position of its value.
fn member_key(b: &[u8], i: usize) -> Option<usize> {
    if b.get(i) != Some(&b'"') {
        return None;
    }
    let j = ws(b, string(b, i)?);
    (b.get(j) == Some(&b':')).then(|| ws(b, j + 1))
}

fn literal(b: &[u8], i: usize, word: &[u8]) -> Option<usize> {
    b.get(i..i + word.len())
        .filter(|w| *w == word)
        .map(|_| i + word.len())
}

/// A string at `i` (its opening quote): RFC 8259 §7. Any `\uXXXX` is grammatical, a lone
/// surrogate too.
fn string(b: &[u8], i: usize) -> Option<usize> {
    let mut i = i + 1;
    loop {
        match *b.get(i)? {
            b'"' => return Some(i + 1),
            b'\\' => match *b.get(i + 1)? {
                b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => i += 2,
                b'u' => {
                    let hex = b.get(i + 2..i + 6)?;
                    if !hex.iter().all(u8::is_ascii_hexdigit) {
                        return None;
                    }
                    i += 6;
                }
                _ => return None,
            },
            0x00..=0x1f => return None,
            _ => i += 1,
        }
    }
}

/// A number at `i`: RFC 8259 §6, with no limit on its range.
fn number(b: &[u8], i: usize) -> Option<usize> {
    let digits = |mut j: usize| {
        let from = j;
        while b.get(j).is_some_and(u8::is_ascii_digit) {
            j += 1;
        }
        (j > from).then_some(j)
    };
    let mut i = i;
    if b.get(i) == Some(&b'-') {
        i += 1;
    }
    i = match *b.get(i)? {
        b'0' => i + 1,
        b'1'..=b'9' => digits(i)?,
        _ => return None,
    };
    if b.get(i) == Some(&b'.') {
        i = digits(i + 1)?;
    }
    if matches!(b.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(b.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        i = digits(i)?;
    }
    Some(i)
}

#[cfg(test)]
mod grammar_tests {
    use super::*;

    #[test]
    fn the_judge_takes_what_the_grammar_takes_and_nothing_else() {
        for yes in [
            "{}",
            " {\"a\":1} ",
            "{\"a\":[1,2,{\"b\":null}],\"c\":\"\\u00e9\\n\"}",
            "{\"n\":-99999999e99999,\"m\":1.5E-3,\"z\":0}",
            "{\"\\uD800\":\"\\uDC00\"}",
            "{\"a\":[[[[[[[[[[]]]]]]]]]]}",
            "{\"a\":true,\"b\":false}",
        ] {
            assert!(json_object(yes.as_bytes()), "{yes}");
        }
        for no in [
            "",
            "[]",
            "\"{}\"",
            "{",
            "{}}",
            "{} {}",
            "{\"a\"}",
            "{\"a\":}",
            "{\"a\":1,}",
            "{a:1}",
            "{'a':1}",
            "{\"a\":01}",
            "{\"a\":1.}",
            "{\"a\":.5}",
            "{\"a\":1e}",
            "{\"a\":NaN}",
            "{\"a\":tru}",
            "{\"a\":\"\\x\"}",
            "{\"a\":\"\\u12\"}",
            "{\"a\":\"\t\"}",
            "\u{feff}{}",
            "\x0c{}",
            "{}\x0c",
            "{\"a\":[1,2}",
            "{\"a\":[1 2]}",
        ] {
            assert!(!json_object(no.as_bytes()), "{no:?}");
        }
        assert!(!json_object(b"{\"a\":\"\xff\"}"));
        let deep = format!("{{\"a\":{}{}}}", "[".repeat(100_000), "]".repeat(100_000));
        assert!(json_object(deep.as_bytes()));
        assert!(blank(b" \t\r\n") && !blank(b"\x0c"));
    }
}
