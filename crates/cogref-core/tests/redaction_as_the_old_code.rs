//! Review 25: differential oracle of the old (ae8ec78) redaction/echo code against the new fast paths.
use cogref_core::protocol::sent::Sent;
use cogref_core::redact::{excerpt_sent, network_text, redact_sent};
use cogref_core::response::request_id_sent;
use proptest::prelude::*;
use secrecy::SecretString;

fn both<'a>(secrets: &'a [SecretString]) -> (Sent<'a>, sent_old::Sent<'a>) {
    (
        Sent::new("clientid0123456789abcdefgh", secrets.iter().map(Some)),
        sent_old::Sent::new("clientid0123456789abcdefgh", secrets.iter().map(Some)),
    )
}
fn by_definition(text: &str, secret: &str) -> bool {
    let (t, s) = (text.as_bytes(), secret.as_bytes());
    if s.len() < 8 {
        return false;
    }
    if s.len() <= 20 {
        return t.windows(s.len()).any(|w| w == s);
    }
    t.windows(20).any(|w| s.windows(20).any(|p| p == w))
}
const SEP: &str = "[ab1._=-]{0,25}[ \"\\\\\\x00-\\x1f\\x7fé€\u{200b}:/+]?";

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3000))]
    #[test]
    fn texts_are_vetted_byte_for_byte_as_before_and_show_no_piece_of_a_secret(
        text in proptest::collection::vec(SEP, 0..6).prop_map(|v| v.concat()),
        secrets in proptest::collection::vec("[ab1._=-]{0,40}", 0..6),
        plant in proptest::option::of((0usize..6, 0usize..200, 0usize..50, 0usize..60)),
    ) {
        let mut text = text;
        if let Some((i, at, from, len)) = plant {
            if let Some(s) = secrets.get(i) {
                let from = from.min(s.len()); let to = (from + len).min(s.len());
                let mut at = at.min(text.len()); while !text.is_char_boundary(at) { at -= 1; }
                text.insert_str(at, &s[from..to]);
            }
        }
        let ss: Vec<SecretString> = secrets.iter().map(|s| SecretString::from(s.clone())).collect();
        let (new, old) = both(&ss);
        prop_assert_eq!(redact_sent(&text, &new), redact_old::redact_sent(&text, &old));
        prop_assert_eq!(network_text(&text, &new), redact_old::network_text(&text, &old));
        prop_assert_eq!(excerpt_sent(text.as_bytes(), &new), redact_old::excerpt_sent(text.as_bytes(), &old));
        prop_assert_eq!(new.is_echoed_in(&text), old.is_echoed_in(&text));
        prop_assert_eq!(new.is_echoed_in(&text), secrets.iter().any(|s| by_definition(&text, s)));
        for out in [redact_sent(&text, &new), network_text(&text, &new)] {
            for s in &secrets { prop_assert!(!by_definition(&out, s), "{:?} echoes {:?}", out, s); }
        }
    }

    #[test]
    fn request_ids_are_vetted_byte_for_byte_as_before(id in proptest::collection::vec(prop_oneof![Just(b'a'), Just(b'1'), Just(b'-'), Just(b' '), Just(b'\t'), 0x80u8..=0xff, any::<u8>()], 0..70),
                         secret in "[a1-]{0,40}", other in any::<bool>()) {
        if let Ok(v) = http::HeaderValue::from_bytes(&id) {
            let mut h = http::HeaderMap::new();
            h.insert(if other { "x-amz-request-id" } else { "x-amzn-requestid" }, v);
            let ss = [SecretString::from(format!("{secret}{}", String::from_utf8_lossy(&id)))];
            let (new, old) = both(&ss);
            prop_assert_eq!(request_id_sent(&h, &new), redact_old::request_id_sent(&h, &old));
        }
    }
}

#[test]
fn a_planted_piece_of_a_secret_of_any_length_is_hidden_even_as_the_fifth_secret() {
    for len in [7usize, 8, 19, 20, 21, 31, 32, 33, 36, 64, 1700] {
        let secret: String = (0..len)
            .map(|i| b"abcdefghijklmnopqrstuvwxyz0123456789-_"[(i * 7 + i / 38) % 38] as char)
            .collect();
        let ss: Vec<SecretString> = [
            "aaaaaaaaaaaa",
            "bbbbbbbbbbbbbbbbbbbbbbbbbb",
            "cccccccccccccccccccccc",
            "dddddddddddddddddd",
            secret.as_str(),
        ]
        .iter()
        .map(|s| SecretString::from(s.to_string()))
        .collect();
        let (new, old) = both(&ss);
        for piece in [20usize, 21, len] {
            if piece > len {
                continue;
            }
            for from in (0..=len - piece).step_by(if len > 100 { 97 } else { 1 }) {
                for at in [0usize, 1, 5, 40] {
                    let text = format!(
                        "{}{}{}",
                        &"xy zw. Q".repeat(10)[..at],
                        &secret[from..from + piece],
                        " tail"
                    );
                    assert_eq!(new.is_echoed_in(&text), len >= 8, "len {len} from {from}");
                    assert_eq!(
                        redact_sent(&text, &new),
                        redact_old::redact_sent(&text, &old)
                    );
                    assert_eq!(
                        network_text(&text, &new),
                        redact_old::network_text(&text, &old)
                    );
                    assert!(
                        len < 8 || !redact_sent(&text, &new).contains(&secret[from..from + piece])
                    );
                }
            }
        }
    }
}

#[test]
fn no_canary_piece_reaches_an_errors_display_or_debug() {
    use cogref_core::{GetTokensFromRefreshToken, Operation, RefreshInput, ResponseLimits};
    let rt = "canaryrefreshtokenABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghij";
    let cs = "canaryclientsecretQWERTYUIOPasdfghjklzxcv";
    let dk = "us-east-1_0123456789abcdef0123456789abcdef";
    let input = RefreshInput::builder()
        .refresh_token(rt)
        .client_id("1example23456789abcdefghij")
        .client_secret(cs)
        .device_key(dk)
        .build()
        .expect("valid");
    let sent = GetTokensFromRefreshToken::sent(&input);
    let now = std::time::SystemTime::UNIX_EPOCH;
    for s in [rt, cs, dk] {
        for piece in [&s[..20], &s[5..25], s] {
            let bodies = [
                format!(r#"{{"__type":"NotAuthorizedException","message":"bad {piece} x"}}"#),
                format!(r#"{{"__type":"{piece}","message":"m","reasonCode":"r{piece}"}}"#),
                format!(r#"{{"__type":"X","message":"a\n{piece}\"b"}}"#),
                format!("<html>{piece}</html>"),
            ];
            for body in &bodies {
                let mut h = http::HeaderMap::new();
                h.insert(
                    "x-amzn-requestid",
                    http::HeaderValue::from_str(&piece.replace(['_', '.'], "-")).expect("valid"),
                );
                h.insert(
                    "location",
                    http::HeaderValue::from_str(&format!(
                        "https://{}.example/",
                        piece.replace('_', "-")
                    ))
                    .expect("valid"),
                );
                for status in [400u16, 302, 500] {
                    let e = cogref_core::response::dispatch_sent::<GetTokensFromRefreshToken>(
                        http::StatusCode::from_u16(status).expect("valid"),
                        &h,
                        body.as_bytes(),
                        now,
                        &ResponseLimits::default(),
                        &sent,
                    )
                    .expect_err("an error");
                    for shown in [format!("{e}"), format!("{e:?}")] {
                        for secret in [rt, cs, dk] {
                            assert!(!by_definition(&shown, secret), "{shown}");
                        }
                    }
                }
            }
        }
    }
}
#[allow(dead_code, unreachable_pub, clippy::all)] // ae8ec78's code, kept as it was: the oracle
mod sent_old {
    use std::fmt;

    use memchr::memmem;
    use secrecy::{ExposeSecret, SecretString};

    pub const ECHO_PIECE: usize = 20;

    #[derive(Clone, Default)]
    pub struct Sent<'a> {
        client_id: Option<&'a str>,
        secrets: Vec<&'a SecretString>,
    }

    impl fmt::Debug for Sent<'_> {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.debug_struct("Sent")
                .field("client_id", &self.client_id)
                .field("secrets", &self.secrets.len())
                .finish()
        }
    }

    impl<'a> Sent<'a> {
        pub fn nothing() -> Self {
            Self::default()
        }

        pub fn new(
            client_id: &'a str,
            secrets: impl IntoIterator<Item = Option<&'a SecretString>>,
        ) -> Self {
            Self {
                client_id: Some(client_id),
                secrets: secrets.into_iter().flatten().collect(),
            }
        }

        pub fn is_echoed_in(&self, text: &str) -> bool {
            self.secrets
                .iter()
                .any(|secret| echoes(text, secret.expose_secret()))
        }

        pub(crate) fn shortest_echo(&self) -> Option<usize> {
            self.secrets
                .iter()
                .map(|secret| secret.expose_secret().len())
                .filter(|&len| len >= MIN_WHOLE_ECHO)
                .map(|len| len.min(ECHO_PIECE))
                .min()
        }

        pub fn is_client_id(&self, text: &str) -> bool {
            self.client_id.is_some_and(|id| id == text)
        }
    }

    pub const MIN_WHOLE_ECHO: usize = 8;

    const PROBE: usize = 4;

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
            if memmem::find(secret, &text[at..at + PROBE]).is_some() {
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
}
#[allow(dead_code, unreachable_pub, clippy::all)] // ae8ec78's code, kept as it was: the oracle
mod redact_old {
    use super::sent_old::Sent;
    fn push_printable(out: &mut String, c: char) {
        out.push_str(&cogref_core::printable::printable(&c.to_string()));
    }

    pub const MIN_SECRET_RUN: usize = 20;

    pub const REDACTED: &str = "[redacted]";

    fn is_token_byte(b: u8) -> bool {
        b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'=' | b'.' | b'+' | b'/')
    }

    fn escape_at(bytes: &[u8], i: usize) -> Option<(usize, bool)> {
        let rest = &bytes[i..];
        match rest.get(1) {
            None => Some((1, false)),
            Some(b'/') => Some((2, true)),
            Some(b'"' | b'\\' | b'b' | b'f' | b'n' | b'r' | b't' | b'\'' | b'0') => {
                Some((2, false))
            }
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

    struct Run {
        start: usize,
        end: usize,
        has_non_letter: bool,
        is_constant_name: bool,
    }

    impl Run {
        fn is_secret_like(&self) -> bool {
            self.end - self.start >= MIN_SECRET_RUN && self.has_non_letter && !self.is_constant_name
        }
    }

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

    pub fn redact(text: &str) -> String {
        redact_sent(text, &Sent::nothing())
    }

    pub fn redact_sent(text: &str, sent: &Sent<'_>) -> String {
        // Text that cannot hold a credential-like run, and whose runs are all too short to show a
        // secret sent (service messages are words), is answered without the full scan.
        let look = quick_look(text);
        if !look.may_hold_a_secret && sent.shortest_echo().is_none_or(|n| look.longest_run < n) {
            return text.to_owned();
        }
        redact_runs(text, sent)
    }

    fn redact_runs(text: &str, sent: &Sent<'_>) -> String {
        let mut out = String::with_capacity(text.len());
        let mut copied = 0;
        for run in runs(text) {
            let shown = &text[run.start..run.end];
            let hide =
                sent.is_echoed_in(shown) || (run.is_secret_like() && !sent.is_client_id(shown));
            if hide {
                out.push_str(&text[copied..run.start]);
                out.push_str(REDACTED);
                copied = run.end;
            }
        }
        out.push_str(&text[copied..]);
        out
    }

    struct QuickLook {
        may_hold_a_secret: bool,
        longest_run: usize,
    }

    fn quick_look(text: &str) -> QuickLook {
        // One table lookup a byte: 0 ends a run, 1 a letter, 2 another token character, 3 `\`.
        const CLASS: [u8; 256] = {
            let mut class = [0u8; 256];
            let mut b = 0;
            while b < 256 {
                let byte = b as u8;
                class[b] = if byte == b'\\' {
                    3
                } else if byte.is_ascii_alphabetic() {
                    1
                } else if byte.is_ascii_digit()
                    || matches!(byte, b'-' | b'_' | b'=' | b'.' | b'+' | b'/')
                {
                    2
                } else {
                    0
                };
                b += 1;
            }
            class
        };
        let may_hold = QuickLook {
            may_hold_a_secret: true,
            longest_run: text.len(),
        };
        // Where the current run started, and whether it has had a non-letter yet.
        let (mut start, mut has_non_letter, mut longest) = (0, false, 0);
        for (i, &b) in text.as_bytes().iter().enumerate() {
            match CLASS[usize::from(b)] {
                0 => (start, has_non_letter) = (i + 1, false),
                1 => {}
                2 => has_non_letter = true,
                _ => return may_hold,
            }
            let run = (i + 1).saturating_sub(start);
            longest = longest.max(run);
            if has_non_letter && run >= MIN_SECRET_RUN {
                return may_hold;
            }
        }
        QuickLook {
            may_hold_a_secret: false,
            longest_run: longest,
        }
    }

    pub fn network_text(decoded: &str, sent: &Sent<'_>) -> String {
        // Printable ASCII without `"` or `\` (error codes, most messages) is its own wire form and
        // its own shown form: only the redaction is left to do.
        if decoded
            .bytes()
            .all(|b| matches!(b, b' '..=b'~') && b != b'"' && b != b'\\')
        {
            return redact_sent(decoded, sent);
        }
        network_text_via_wire(decoded, sent)
    }

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

    pub const EXCERPT_CHARS: usize = 160;

    pub fn excerpt(body: &[u8]) -> Option<String> {
        excerpt_sent(body, &Sent::nothing())
    }

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
        Some(redacted)
    }

    pub fn request_id_sent(headers: &http::HeaderMap, sent: &Sent<'_>) -> Option<String> {
        let value = headers
            .get("x-amzn-requestid")
            .or_else(|| headers.get("x-amz-request-id"))?;
        let shaped = value.to_str().ok().filter(|id| {
            (1..=64usize).contains(&id.len())
                && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !sent.is_echoed_in(id)
        });
        Some(shaped.map_or_else(|| REDACTED.to_owned(), str::to_owned))
    }
}
