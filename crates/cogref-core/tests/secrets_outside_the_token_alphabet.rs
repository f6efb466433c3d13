#![allow(unreachable_pub)] // the parent commit's modules, copied as they were: the oracle
//! Review 26: hostile tests of 0ea50da (the whole-text screen for secrets outside the token alphabet).
#![allow(dead_code, unused_imports, clippy::all)]
mod common;

use cogref_core::http::{HeaderMap, HeaderValue, StatusCode};
use cogref_core::protocol::sent::Sent;
use cogref_core::redact::{excerpt_sent, network_text, redact_sent};
use cogref_core::response::{dispatch_sent, request_id_sent};
use cogref_core::{GetTokensFromRefreshToken, RefreshInput, ResponseLimits, RevokeInput};
use proptest::prelude::*;
use secrecy::SecretString;
use std::time::SystemTime;

const CLIENT: &str = "clientid0123456789abcdefgh";

fn as_shown(s: &str) -> String {
    cogref_core::printable::printable(s).into_owned()
}
/// Whole (>= 8 bytes) or a 20-byte piece of `secret`, raw or as shown.
fn shows(out: &str, secret: &str) -> bool {
    let by = |form: &str| {
        let (t, s) = (out.as_bytes(), form.as_bytes());
        if s.len() < 8 {
            return false;
        }
        if s.len() <= 20 {
            return t.windows(s.len()).any(|w| w == s);
        }
        t.windows(20).any(|w| s.windows(20).any(|p| p == w))
    };
    secret.len() >= 8 && (by(secret) || by(&as_shown(secret)))
}
fn outs(text: &str, sent: &Sent<'_>) -> Vec<String> {
    vec![
        redact_sent(text, sent),
        network_text(text, sent),
        excerpt_sent(text.as_bytes(), sent).unwrap_or_default(),
    ]
}
fn parent_outs(text: &str, secrets: &[SecretString]) -> Vec<String> {
    let sent = protocol::sent::Sent::new(CLIENT, secrets.iter().map(Some));
    vec![
        protocol::redact::redact_sent(text, &sent),
        protocol::redact::network_text(text, &sent),
        protocol::redact::excerpt_sent(text.as_bytes(), &sent).unwrap_or_default(),
    ]
}
fn dispatch(status: u16, body: &[u8], secrets: &[SecretString]) -> (String, String) {
    let sent = Sent::new(CLIENT, secrets.iter().map(Some));
    let mut h = HeaderMap::new();
    h.insert(
        "x-amzn-requestid",
        HeaderValue::from_static("0b9a3c5e-1111-2222-3333-444455556666"),
    );
    let r = dispatch_sent::<GetTokensFromRefreshToken>(
        StatusCode::from_u16(status).expect("valid"),
        &h,
        body,
        SystemTime::now(),
        &ResponseLimits::default(),
        &sent,
    );
    match r {
        Ok(_) => (String::new(), String::new()),
        Err(e) => (format!("{e}"), format!("{e:?}")),
    }
}
fn json_str(s: &str) -> String {
    serde_json::to_string(s).expect("valid")
}

const WEIRD: &[&str] = &[
    "aaaaaaaaaa!bbbbbbbbbb!cccccccccc!dddddddddd",
    "aaaaaaaaa bbbbbbbbb ccccccccc ddddddddd",
    "aaaaaaaaaéébbbbbbbbbééccccccccc",
    "aaaaaaaaa\"bbbbbbbbb\\ccccccccc\"ddddddddd",
    "aaaaaaaaa\u{1b}bbbbbbbbb\u{200b}ccccccccc\nddddddddd",
    "🦀🦀🦀🦀🦀🦀🦀🦀🦀🦀🦀",
    " !\"#$%&'()*<>?@[]^`{|}~ !\"#$%&",
    "\u{1b}\u{1b}\u{1b}\u{1b}\u{1b}\u{1b}\u{1b}\u{1b}",
    "ab cd ef",
    "日本語のトークンです",
];

// ---------- promise 1 ----------

#[test]
fn p1_named_secrets_echoed_in_every_function() {
    for s in WEIRD {
        let ss = [SecretString::from(*s)];
        let sent = Sent::new(CLIENT, ss.iter().map(Some));
        for text in [
            format!("Token {s} bad"),
            s.to_string(),
            format!("{s}{s}"),
            format!("x=eyJhbGciOiJIUzI1NiJ9.e30.sig{s}eyJhbGciOiJIUzI1NiJ9.e30.sig"),
        ] {
            for o in outs(&text, &sent) {
                assert!(!shows(&o, s), "{s:?} in {text:?} -> {o:?}");
            }
        }
    }
}

#[test]
fn p1_excerpt_cut_at_160_inside_the_echo() {
    for s in WEIRD {
        let ss = [SecretString::from(*s)];
        let sent = Sent::new(CLIENT, ss.iter().map(Some));
        for pad in 100..170 {
            let text = format!(
                "{}{s}{s}",
                "x ".repeat(pad / 2) + if pad % 2 == 1 { "y" } else { "" }
            );
            let o = excerpt_sent(text.as_bytes(), &sent).expect("valid");
            assert!(!shows(&o, s), "{s:?} pad {pad} -> {o:?}");
        }
    }
}

/// A body echoing the request's JSON (a proxy's error page quoting the request): the secret
/// appears JSON-escaped, which is the form the request carried it in (`body_bytes`).
#[test]
fn p1_json_escaped_echo_in_an_excerpt() {
    let s = "aaaaaaaaaa\"bbbbbbbbbb\"cccccccccc";
    let ss = [SecretString::from(s)];
    let sent = Sent::new(CLIENT, ss.iter().map(Some));
    let body = format!("{{\"RefreshToken\":{}}}", json_str(s));
    let o = excerpt_sent(body.as_bytes(), &sent).expect("valid");
    // Shown: the JSON form of the whole secret.
    assert!(
        !o.contains(&json_str(s)[1..json_str(s).len() - 1]),
        "JSON-escaped echo shown: {o:?}"
    );
}

#[test]
fn p1_json_escaped_echo_end_to_end() {
    let s = "aaaaaaaaaa\"bbbbbbbbbb\"cccccccccc";
    let ss = [SecretString::from(s)];
    let body = format!("{{\"RefreshToken\":{}}}", json_str(s));
    let (d, g) = dispatch(400, body.as_bytes(), &ss);
    let j = &json_str(s)[1..json_str(s).len() - 1];
    assert!(!d.contains(j) && !g.contains(j), "{d}\n{g}");
}

#[test]
fn p1_unicode_json_escape_in_excerpt() {
    let s = "ééééééééééééééééééééééé";
    let ss = [SecretString::from(s)];
    let sent = Sent::new(CLIENT, ss.iter().map(Some));
    let body = format!("{{\"m\":\"{}\"}}", "\\u00e9".repeat(23));
    let o = excerpt_sent(body.as_bytes(), &sent).expect("valid");
    assert!(!o.contains(&"\\u00e9".repeat(8)), "{o:?}");
}

/// Fields each hold less than a piece; the Display joins them.
#[ignore = "open: each field is screened alone, and ServiceError's Display joins message and reason code; a secret spanning the join shows (needs the screen on the joined text)"]
#[test]
fn p1_display_joins_message_and_reason() {
    let s = "aaaaaaaaaaaa [reason: bbbbbbbbbbb";
    let ss = [SecretString::from(s)];
    let body = r#"{"__type":"NotAuthorizedException","message":"aaaaaaaaaaaa","reasonCode":"bbbbbbbbbbb"}"#;
    let (d, g) = dispatch(400, body.as_bytes(), &ss);
    assert!(!shows(&d, s), "Display {d}");
    assert!(!shows(&g, s), "Debug {g}");
}

/// `{e:?}` escapes characters `printable` leaves (a combining mark): a secret that is that
/// Debug form shows back.
#[ignore = "open: Debug escapes characters printable leaves alone; a secret written as such an escape shows in {e:?} (needs Debug's form in the screen)"]
#[test]
fn p1_debug_escape_forms_a_secret() {
    let s = "aaaaaaaaaa\\u{301}bbbbbbbbbb";
    let ss = [SecretString::from(s)];
    let body =
        "{\"__type\":\"NotAuthorizedException\",\"message\":\"aaaaaaaaaa\u{301}bbbbbbbbbb\"}";
    let (d, g) = dispatch(400, body.as_bytes(), &ss);
    assert!(!shows(&d, s), "Display {d}");
    assert!(!shows(&g, s), "Debug {g}");
}

#[test]
fn p1_end_to_end_named_secrets() {
    for s in WEIRD {
        let ss = [SecretString::from(*s)];
        for body in [
            format!(
                "{{\"__type\":\"NotAuthorizedException\",\"message\":{}}}",
                json_str(&format!("Token {s} bad"))
            ),
            format!("{{\"__type\":{},\"message\":\"m\"}}", json_str(s)),
            format!(
                "{{\"__type\":\"X\",\"message\":\"m\",\"reasonCode\":{}}}",
                json_str(s)
            ),
            format!("<html>{s}</html>"),
            format!("{{\"RefreshToken\":\"{s}\""),
        ] {
            for status in [400u16, 500, 200] {
                let (d, g) = dispatch(status, body.as_bytes(), &ss);
                assert!(!shows(&d, s), "{s:?} {status} {body:?} -> {d}");
                assert!(!shows(&g, s), "{s:?} {status} {body:?} -> {g}");
            }
        }
    }
}

const CH: &str = "[ab1._=/+ !\"\\\\\u{1b}\n\u{200b}é日🦀:\\[\\]{}-]";

fn text_from(secrets: &[String], parts: &[(usize, usize, usize, String)]) -> String {
    let mut t = String::new();
    for (i, from, len, noise) in parts {
        t.push_str(noise);
        if secrets.is_empty() {
            continue;
        }
        let s = &secrets[i % secrets.len()];
        let mut f = (*from).min(s.len());
        while !s.is_char_boundary(f) {
            f -= 1;
        }
        let mut e = (f + len).min(s.len());
        while !s.is_char_boundary(e) {
            e -= 1;
        }
        t.push_str(&s[f..e]);
    }
    t
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3000))]
    #[test]
    fn p1_p2_differential_against_the_parent(
        // 8 bytes or more: a shorter one is p2_a_secret_below_eight_bytes_redacts_by_its_escape.
        secrets in proptest::collection::vec(proptest::string::string_regex(&format!("{CH}{{8,40}}")).expect("valid"), 1..4),
        parts in proptest::collection::vec((0usize..4, 0usize..60, 0usize..45, proptest::string::string_regex(&format!("{CH}{{0,6}}")).expect("valid")), 0..5),
        shown_form in any::<bool>(),
    ) {
        let mut text = text_from(&secrets, &parts);
        if shown_form { text = as_shown(&text); }
        let ss: Vec<SecretString> = secrets.iter().map(|s| SecretString::from(s.clone())).collect();
        let sent = Sent::new(CLIENT, ss.iter().map(Some));
        let new = outs(&text, &sent);
        let old = parent_outs(&text, &ss);
        for (n, o) in new.iter().zip(&old) {
            for s in &secrets { prop_assert!(!shows(n, s), "{:?} shows {:?} (text {:?})", n, s, text); }
            if n != o {
                prop_assert!(n == "[redacted]" || n == "[redacted]…", "new {:?} parent {:?} text {:?}", n, o, text);
                // The parent's output shows a piece: as written, in JSON's form of the secret
                // (691847d), or once a reader reads its escapes (2041672); rules the parent did
                // not have.
                let json_form = |s: &String| json_str(s).trim_matches('"').to_owned();
                prop_assert!(
                    secrets.iter().any(|s| shows(o, &json_form(s))
                        || (0..=3).any(|levels| shows(&common::read_escapes(o, levels), s))),
                    "redacted without a piece: parent {:?} text {:?}", o, text
                );
            }
        }
    }

    #[test]
    fn p2_token_alphabet_secrets_byte_for_byte(
        secrets in proptest::collection::vec("[A-Za-z0-9_=./+-]{0,40}", 1..4),
        parts in proptest::collection::vec((0usize..4, 0usize..60, 0usize..45, proptest::string::string_regex(&format!("{CH}{{0,6}}")).expect("valid")), 0..5),
    ) {
        let text = text_from(&secrets, &parts);
        let ss: Vec<SecretString> = secrets.iter().map(|s| SecretString::from(s.clone())).collect();
        let sent = Sent::new(CLIENT, ss.iter().map(Some));
        prop_assert_eq!(outs(&text, &sent), parent_outs(&text, &ss));
    }

    #[test]
    fn p4_no_panic(secret in any::<String>(), text in any::<String>(), body in proptest::collection::vec(any::<u8>(), 0..300)) {
        let ss = [SecretString::from(secret)];
        let sent = Sent::new(CLIENT, ss.iter().map(Some));
        let _ = outs(&text, &sent);
        let _ = excerpt_sent(&body, &sent);
        let _ = dispatch(400, &body, &ss);
        let _ = dispatch(200, &body, &ss);
    }
}

// ---------- promise 2: the screen redacts text that held no piece ----------

/// The text holds no piece of the secret; the run redaction's own `[redacted]` completes one.
#[ignore = "accepted: a secret containing the [redacted] marker is completed by the marker itself; redacting more is the safe side"]
#[test]
fn p2_redaction_marker_completes_a_piece() {
    let s = "key=[redacted] (rotated)";
    let ss = [SecretString::from(s)];
    let sent = Sent::new(CLIENT, ss.iter().map(Some));
    let text = "key=eyJhbGciOiJIUzI1NiJ9.e30.c2lnbmF0dXJl (rotated)";
    assert!(!shows(text, s));
    let old = parent_outs(text, &ss);
    assert_eq!(outs(text, &sent), old, "parent {old:?}");
}

#[test]
fn p2_text_without_a_piece_is_kept() {
    for s in WEIRD {
        let ss = [SecretString::from(*s)];
        let sent = Sent::new(CLIENT, ss.iter().map(Some));
        for text in [
            "Refresh Token has been revoked",
            "Invalid Refresh Token.",
            "a b c",
            "",
        ] {
            assert_eq!(outs(text, &sent), parent_outs(text, &ss));
        }
    }
}

/// A secret under MIN_WHOLE_ECHO (3 bytes) is matched by its 8-byte escape once another
/// secret turns the screen on: any text with a zero-width space is redacted whole.
#[test]
fn p2_a_secret_below_eight_bytes_redacts_by_its_escape() {
    let ss = [
        SecretString::from("\u{200b}"),
        SecretString::from("ab cd ef gh"),
    ];
    let sent = Sent::new(CLIENT, ss.iter().map(Some));
    let text = "Refresh Token has been revoked\u{200b}";
    let old = parent_outs(text, &ss);
    assert_eq!(outs(text, &sent), old);
}

// ---------- promise 3 ----------

#[test]
fn p3_builders_reject_every_character_outside_the_alphabet() {
    let good_tok = "eyJhbGciOiJIUzI1NiJ9.e30.c2lnbmF0dXJl";
    let good_sec = "abcdefghijklmnopqrstuvwxyz0123456789";
    let good_dev = "us-east-1_0123456789abcdef";
    let bad: Vec<String> = [
        " ", "!", "\"", "\\", "é", "\u{1b}", "\u{200b}", "\n", "🦀", "\0", "/", "+", "日",
        "\u{ff10}", "\u{0661}", "ａ",
    ]
    .iter()
    .map(|c| c.to_string())
    .collect();
    let ok = |s: &str| {
        s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_=.+/".contains(&b))
    };
    for c in &bad {
        for pos in [0usize, 5, 30] {
            let ins = |g: &str| {
                let mut s = g.to_string();
                let p = pos.min(s.len());
                s.insert_str(p, c);
                s
            };
            let base = || {
                RefreshInput::builder()
                    .refresh_token(good_tok)
                    .client_id("abc")
            };
            for r in [
                base().refresh_token(ins(good_tok)).build(),
                base().client_secret(ins(good_sec)).build(),
                base().device_key(ins(good_dev)).build(),
                base()
                    .set_client_secret(Some(SecretString::from(ins(good_sec))))
                    .build(),
                base()
                    .set_device_key(Some(SecretString::from(ins(good_dev))))
                    .build(),
                base()
                    .build()
                    .expect("valid")
                    .with_refresh_token(ins(good_tok)),
                base()
                    .build()
                    .expect("valid")
                    .to_builder()
                    .refresh_token(ins(good_tok))
                    .build(),
            ] {
                if let Ok(i) = r {
                    use secrecy::ExposeSecret;
                    assert!(ok(i.refresh_token().expose_secret()));
                    assert!(
                        i.client_secret().is_none_or(|s| ok(s.expose_secret())),
                        "{c:?}"
                    );
                    assert!(
                        i.device_key().is_none_or(|s| ok(s.expose_secret())),
                        "{c:?}"
                    );
                }
            }
            let rb = || RevokeInput::builder().token(good_tok).client_id("abc");
            for r in [
                rb().token(ins(good_tok)).build(),
                rb().client_secret(ins(good_sec)).build(),
                rb().set_client_secret(Some(SecretString::from(ins(good_sec))))
                    .build(),
            ] {
                if let Ok(i) = r {
                    use secrecy::ExposeSecret;
                    assert!(ok(i.token().expose_secret()));
                    assert!(i.client_secret().is_none_or(|s| ok(s.expose_secret())));
                }
            }
        }
    }
}

proptest! {
    #[test]
    fn p3_builders_any_string(tok in any::<String>(), sec in any::<String>(), dev in any::<String>()) {
        use secrecy::ExposeSecret;
        let ok = |s: &str| s.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_=.+/".contains(&b));
        if let Ok(i) = RefreshInput::builder().refresh_token(tok.clone()).client_id("abc").client_secret(sec.clone()).device_key(dev.clone()).build() {
            prop_assert!(ok(i.refresh_token().expose_secret()));
            prop_assert!(ok(i.client_secret().expect("valid").expose_secret()));
            prop_assert!(ok(i.device_key().expect("valid").expose_secret()));
            let r = RevokeInput::from_refresh(&i);
            prop_assert!(ok(r.token().expose_secret()));
        }
        if let Ok(i) = RevokeInput::builder().token(tok).client_id("abc").client_secret(sec).build() {
            prop_assert!(ok(i.token().expose_secret()));
            prop_assert!(ok(i.client_secret().expect("valid").expose_secret()));
        }
    }
}

// ---------- the parent's sent.rs, redact.rs and printable.rs (HEAD~1), as the oracle ----------
mod protocol {
    pub mod sent {

        use std::fmt;

        use memchr::memmem;
        use secrecy::{ExposeSecret, SecretString};

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
            /// secret, device key: whichever it had).
            pub fn new(
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
    }
    pub mod redact {

        use crate::protocol::printable::push_printable;
        use crate::protocol::sent::Sent;

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
                self.end - self.start >= MIN_SECRET_RUN
                    && self.has_non_letter
                    && !self.is_constant_name
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
                return text.to_owned();
            }
            redact_runs(text, sent)
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
                class[b] =
                    if byte == b'\\' || (wire && (byte == b'"' || !matches!(byte, b' '..=b'~'))) {
                        SPECIAL
                    } else if byte.is_ascii_alphabetic() {
                        LETTER
                    } else if byte.is_ascii_digit()
                        || matches!(byte, b'-' | b'_' | b'=' | b'.' | b'+' | b'/')
                    {
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
                return if shows_an_echo(decoded, look.longest_run, sent) {
                    redact_runs(decoded, sent)
                } else {
                    decoded.to_owned()
                };
            }
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
            Some(redacted)
        }
    }
    pub mod printable {

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
    }
}
