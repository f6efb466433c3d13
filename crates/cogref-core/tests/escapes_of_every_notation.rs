//! Hostile review of commit 2041672: the last screen reads escapes in every notation a reader
//! reads (JSON, Rust, C/Python, HTML, percent-encoding) up to three levels. The async driver's
//! spans (the commit before) are in `async_driver_spans_where_work_happens.rs`, a binary of its own.

mod common;

use cogref_core::RefreshInput;
use cogref_core::protocol::sent::Sent;
use cogref_core::redact::{REDACTED, excerpt_sent, network_text, redact_sent};
use proptest::prelude::*;
use secrecy::SecretString;

const CLIENT_ID: &str = "1example23456789abcdefghij";
/// Letters only: never credential-like by shape, so only the echo check can hide it.
const LETTERS: &str = "abcdefghijklmnopqrstuvwxyzABCDEF";
/// Letters a-f only: every character is a hex digit too.
const HEXLETTERS: &str = "abcdefabcdefabcdefabcdef";

/// `secret` with every `every`-th character (from the first) written by `escape`.
fn spell(secret: &str, every: usize, escape: impl Fn(char) -> String) -> String {
    secret
        .chars()
        .enumerate()
        .map(|(i, c)| {
            if i % every == 0 {
                escape(c)
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// Every way a text `shown` from a response for `secret` can come out of the library.
fn all_shown(text: &str, sent: &Sent<'_>) -> Vec<(&'static str, String)> {
    vec![
        ("redact_sent", redact_sent(text, sent)),
        ("network_text", network_text(text, sent)),
        (
            "excerpt_sent",
            excerpt_sent(text.as_bytes(), sent).unwrap_or_default(),
        ),
    ]
}

/// `Display` and `Debug` of the error a one-attempt refresh gets from a server answering
/// `status` with `body`.
fn refused(token: &str, status: u16, body: &str) -> String {
    let body = body.to_owned();
    let client = common::answering_client(move || {
        http::Response::builder()
            .status(status)
            .body(body.clone().into_bytes())
            .expect("response")
    });
    let input = RefreshInput::builder()
        .refresh_token(token)
        .client_id(CLIENT_ID)
        .build()
        .expect("input");
    let e = client.refresh_blocking(&input).expect_err("refused");
    format!("{e}\n{e:?}")
}

/// A message, a reason code and a non-JSON body each showing `spelled`, end to end.
fn end_to_end(token: &str, spelled: &str) -> Vec<String> {
    let json = serde_json::to_string(spelled).expect("json");
    vec![
        refused(
            token,
            400,
            &format!(r#"{{"__type":"NotAuthorizedException","message":{json}}}"#),
        ),
        refused(
            token,
            400,
            &format!(
                r#"{{"__type":"InvalidParameterException","message":"m","reasonCode":{json}}}"#
            ),
        ),
        refused(token, 502, &format!("<html><p>{spelled}</p></html>")),
    ]
}

fn assert_hidden(token: &str, spelled: &str) {
    let secret = SecretString::from(token);
    let sent = Sent::new(CLIENT_ID, [Some(&secret)]);
    let mut leaks = Vec::new();
    for (how, shown) in all_shown(spelled, &sent) {
        if shown.contains(spelled) {
            leaks.push(format!("{how}: {shown:?}"));
        }
    }
    for (how, shown) in ["message", "reason code", "excerpt"]
        .into_iter()
        .zip(end_to_end(token, spelled))
    {
        if shown.contains(spelled) {
            leaks.push(format!("refresh_blocking's {how}: {shown}"));
        }
    }
    assert!(
        leaks.is_empty(),
        "{token:?} spelled {spelled:?} shows in:\n{}",
        leaks.join("\n")
    );
}

// ---------------------------------------------------------------------------------------------
// Change 1: faults.

/// C's and Python's `\U` with four digits (promised) reads `\U0061` as `a` whatever follows;
/// the screen tries eight digits first and, when the eight name no character (`\U0061bcde`
/// is beyond U+10FFFF), reads U+FFFD instead of falling back to four. A token of hex letters
/// spelled `\U0061bcdef` ×4 reads `abcdef…` to a four-digit reader and is shown as is.
#[test]
fn a_four_digit_capital_u_escape_followed_by_hex_letters_is_still_read() {
    let spelled = spell(HEXLETTERS, 6, |c| format!("\\U{:04x}", u32::from(c)));
    assert_eq!(spelled, r"\U0061bcdef\U0061bcdef\U0061bcdef\U0061bcdef");
    assert_hidden(HEXLETTERS, &spelled);
}

/// HTML's numeric references take any number of digits (leading zeros: `&#0000000097;` is `a`
/// to every browser and to Python's `html.unescape`); the screen reads at most eight and keeps
/// the rest as written.
#[test]
fn an_html_reference_with_leading_zeros_is_still_read() {
    let decimal = spell(LETTERS, 1, |c| format!("&#{:010};", u32::from(c)));
    assert!(decimal.starts_with("&#0000000097;&#0000000098;"));
    assert_hidden(LETTERS, &decimal);
    let hex = spell(LETTERS, 1, |c| format!("&#x{:010x};", u32::from(c)));
    assert_hidden(LETTERS, &hex);
}

/// Rust's `\u{…}` allows any number of underscores after the first digit (the compiler reads
/// `'\u{61_____________}'` as `a`, checked below); the screen looks for the `}` in the first 16
/// bytes only.
#[test]
fn a_rust_braced_escape_with_many_underscores_is_still_read() {
    assert_eq!('\u{61_____________}', 'a');
    let spelled = spell(LETTERS, 1, |c| {
        format!("\\u{{{:x}_____________}}", u32::from(c))
    });
    assert!(spelled.starts_with(r"\u{61_____________}\u{62_____________}"));
    assert_hidden(LETTERS, &spelled);
}

// ---------------------------------------------------------------------------------------------
// Change 1: promises that held.

/// One escape of each listed notation for `c` (a character of the token alphabet), written so
/// that it reads alone whatever follows.
fn notations(c: char) -> Vec<String> {
    let n = u32::from(c);
    let mut all = vec![
        format!("\\u{n:04x}"),
        format!("\\u{n:04X}"),
        format!("\\u{{{n:x}}}"),
        format!("\\u{{{:x}_{:x}}}", n >> 4, n & 0xf),
        format!("\\x{n:02x}"),
        format!("\\U{n:08x}"),
        format!("&#{n};"),
        format!("&#x{n:x};"),
        format!("&#X{n:X};"),
        format!("%{n:02x}"),
        format!("%{n:02X}"),
    ];
    let named = match c {
        '.' => Some("&period;"),
        '_' => Some("&lowbar;"),
        '=' => Some("&equals;"),
        '+' => Some("&plus;"),
        '/' => Some("&sol;"),
        '-' => Some("&hyphen;"),
        _ => None,
    };
    all.extend(named.map(str::to_owned));
    all
}

/// The escape characters of `text` escaped once more, in notation `how` (0..4).
fn escape_again(text: &str, how: usize) -> String {
    text.chars()
        .map(|c| match (c, how) {
            ('\\', 0) => r"\\".to_owned(),
            ('\\', 1) => r"\u005c".to_owned(),
            ('\\', 2) => "&#92;".to_owned(),
            ('\\', _) => "%5C".to_owned(),
            ('&', 0) => "&amp;".to_owned(),
            ('&', 1) => r"\u0026".to_owned(),
            ('&', 2) => "%26".to_owned(),
            ('&', _) => "&#x26;".to_owned(),
            ('%', 0) => "%25".to_owned(),
            ('%', 1) => "&#37;".to_owned(),
            ('%', 2) => r"\x25".to_owned(),
            ('%', _) => r"\u{25}".to_owned(),
            (c, _) => c.to_string(),
        })
        .collect()
}

#[test]
fn every_listed_notation_at_one_to_three_levels_is_redacted() {
    for token in [LETTERS, "abc.def-ghi_jkl=mnoPQRSTUVWX.yz"] {
        let secret = SecretString::from(token);
        let sent = Sent::new(CLIENT_ID, [Some(&secret)]);
        for k in 0..notations('a').len() {
            let one = spell(token, 3, |c| {
                let all = notations(c);
                all[k % all.len()].clone()
            });
            for first in 0..4 {
                let two = escape_again(&one, first);
                for second in 0..4 {
                    let three = escape_again(&two, second);
                    for spelled in [&one, &two, &three] {
                        let text = format!("Token {spelled} is invalid");
                        for (how, shown) in all_shown(&text, &sent) {
                            assert!(
                                shown.contains(REDACTED) && !shown.contains(spelled.as_str()),
                                "{how}: {text:?} -> {shown:?}"
                            );
                        }
                    }
                }
            }
        }
    }
}

#[test]
fn json_surrogate_pairs_and_short_escapes_are_read() {
    // An astral character of `\w` in a secret only `Sent::new` takes.
    let token = "abcd\u{1d400}efghijklmnopqrstuvwxyz";
    let secret = SecretString::from(token);
    let sent = Sent::new(CLIENT_ID, [Some(&secret)]);
    let short = SecretString::from("abcdefghij\u{1d400}klmnopq");
    let short_sent = Sent::new(CLIENT_ID, [Some(&short)]);
    for (how, shown) in all_shown("abcdefghij&#x1D400;klmnopq", &short_sent) {
        assert_eq!(shown, REDACTED, "{how}");
    }
    for spelled in [
        r"\u0061bcd\uD835\uDC00efghijklm\u006eopqrstuvwxyz",
        r"\u0061bcd\ud835\udc00efghijklm\u006eopqrstuvwxyz",
        r"\\u0061bcd\\uD835\\uDC00efghijklm\\u006eopqrstuvwxyz",
    ] {
        for (how, shown) in all_shown(spelled, &sent) {
            assert_eq!(shown, REDACTED, "{how}: {spelled:?}");
        }
    }
}

#[test]
fn a_spelled_token_end_to_end_is_redacted_in_message_reason_and_excerpt() {
    let token = "abcdefghijklmnopqrstuvwxyz.ABCDEFGH";
    for spelled in [
        spell(token, 3, |c| format!("&#{};", u32::from(c))),
        spell(token, 4, |c| format!("%{:02x}", u32::from(c))),
        escape_again(&spell(token, 3, |c| format!("\\u{:04x}", u32::from(c))), 2),
        escape_again(&spell(token, 2, |c| format!("&#x{:x}", u32::from(c))), 0),
    ] {
        assert_hidden(token, &spelled);
    }
}

/// The excerpt's 160-character cut: a spelled token whose read prefix before the cut holds 20
/// bytes of it is redacted; one whose read prefix holds less is kept.
#[test]
fn a_spelled_token_across_the_excerpts_cut_is_redacted_when_twenty_bytes_show() {
    let secret = SecretString::from(LETTERS);
    let sent = Sent::new(CLIENT_ID, [Some(&secret)]);
    let spelled = spell(LETTERS, 1, |c| format!("&#{};", u32::from(c)));
    // 160 characters shown: 160 - pad characters of `&#NN;` (5 each) or `&#NNN;` (6 each).
    let body = format!("{}{spelled}", " ".repeat(40));
    let shown = excerpt_sent(body.as_bytes(), &sent).expect("excerpt");
    assert!(
        shown.starts_with(REDACTED) && !shown.contains("&#"),
        "{body:?} -> {shown:?}"
    );
    // Only 10 characters before the cut: no piece of 20 bytes is shown, nothing to hide.
    let body = format!("{}{spelled}", " ".repeat(110));
    let shown = excerpt_sent(body.as_bytes(), &sent).expect("excerpt");
    assert!(shown.contains("&#"), "{body:?} -> {shown:?}");
    assert_eq!(
        shown,
        excerpt_sent(body.as_bytes(), &Sent::nothing()).expect("excerpt")
    );
}

const ORDINARY: [&str; 10] = [
    "<html><body><p>Service&nbsp;Unavailable &amp; more &lt;b&gt;</p></body></html>",
    "See https://example.com/a%20b?c=d&e=f%2Fg for details",
    "Quota at 100% of the limit; 50 % left & more",
    "line one\\nline two\\t\\\"quoted\\\" \\\\ end",
    "Invalid Refresh Token",
    "&#97;&#98;&#99; &#x41; %41%42 \\u0041\\u{42}",
    "&period;&lowbar;&equals;&plus;&sol;&hyphen;",
    "% %% %zz %e9 & &# &#x; \\ \\q \\u{ \\U00",
    "Value '&foo;' at 'clientId' failed: 100%",
    "é&é%é\\é",
];

#[test]
fn ordinary_text_showing_no_secret_is_kept_as_without_secrets() {
    let token = SecretString::from(LETTERS);
    let client_secret = SecretString::from("clientsecret0123456789abcdefghijklmn");
    let sent = Sent::new(CLIENT_ID, [Some(&token), Some(&client_secret)]);
    let nothing = Sent::nothing();
    for text in ORDINARY {
        for ((how, with), (_, without)) in all_shown(text, &sent)
            .into_iter()
            .zip(all_shown(text, &nothing))
        {
            assert_eq!(with, without, "{how}: {text:?}");
        }
        assert_eq!(redact_sent(text, &sent), text, "{text:?}");
    }
}

#[test]
fn a_secret_under_eight_bytes_never_redacts_however_spelled() {
    for short in ["abcdefg", "a", "1234567"] {
        let secret = SecretString::from(short);
        let sent = Sent::new(CLIENT_ID, [Some(&secret)]);
        for spelled in [
            short.to_owned(),
            spell(short, 1, |c| format!("&#{};", u32::from(c))),
            spell(short, 2, |c| format!("%{:02x}", u32::from(c))),
            spell(short, 1, |c| format!("\\\\u{:04x}", u32::from(c))),
        ] {
            let text = format!("x {spelled} y &amp;");
            for ((how, with), (_, without)) in all_shown(&text, &sent)
                .into_iter()
                .zip(all_shown(&text, &Sent::nothing()))
            {
                assert_eq!(with, without, "{how}: {text:?}");
            }
        }
    }
}

#[test]
fn odd_escapes_never_panic() {
    let secret = SecretString::from(LETTERS);
    let sent = Sent::new(CLIENT_ID, [Some(&secret)]);
    for text in [
        "&é &#é &#xé %é %aé %é9 \\é \\ué \\u{é} \\u{6é} \\xé \\Ué",
        "&#99999999999999999999999999; &#x99999999999999999999; &#4294967295; &#4294967296;",
        "&#xFFFFFFFF; &#x110000; &#55296; &#xD800;",
        "\\u{",
        "\\u{6",
        "\\u{_",
        "\\u{61",
        "\\u{61_",
        "\\u{1_0_F_F_F_F}",
        "\\u{FFFFFFFF}",
        "\\uD800",
        "\\uD800\\",
        "\\uD800\\u",
        "\\uD800\\uDC0",
        "\\uDC00\\uD800",
        "\\U",
        "\\U1",
        "\\U0061",
        "\\UFFFFFFFF",
        "\\x",
        "\\x6",
        "&",
        "%",
        "\\",
        "&#",
        "&#x",
        "%6",
        "%%%",
        "&&&",
        "\\\\\\",
        "&amp",
        "&am",
        "&a\u{301}mp;",
        "\u{10ffff}&#1;",
        "%C3%A9 %F0%9F%98%80 %FF",
    ] {
        for (_, shown) in all_shown(text, &sent) {
            let _ = shown;
        }
    }
}

proptest! {
    #[test]
    fn no_input_panics_any_function(
        text in r"[\\&%#;{}_xXuU0-9a-fA-F amp;é€😀\x00-\x1f]{0,80}",
        secret in "[a-f0-9]{8,30}",
    ) {
        let secret = SecretString::from(secret);
        let sent = Sent::new(CLIENT_ID, [Some(&secret)]);
        let _ = all_shown(&text, &sent);
    }

    /// A trailing ` %` reads as nothing and sends a text the long way: the quick answer and the
    /// full scan's agree.
    #[test]
    fn the_quick_and_the_full_path_agree(
        text in "[a-e0-2 ._=-]{0,60}",
        secret in "[a-e0-2._-]{8,30}",
    ) {
        let secret = SecretString::from(secret);
        let sent = Sent::new(CLIENT_ID, [Some(&secret)]);
        let long_way = format!("{text} %");
        prop_assert_eq!(redact_sent(&long_way, &sent), format!("{} %", redact_sent(&text, &sent)));
        prop_assert_eq!(network_text(&long_way, &sent), format!("{} %", network_text(&text, &sent)));
        let amp = format!("{text} &");
        prop_assert_eq!(redact_sent(&amp, &sent), format!("{} &", redact_sent(&text, &sent)));
    }
}

/// A surrogate pair whose low half's `\` is escaped once more (`\uD835&#92;uDC00`): a reader of UTF-16
/// strings (JavaScript's `JSON.parse` twice) reads the lone high half at the first level and
/// joins it with the low half at the second, so the pair spells the astral character of a
/// `Sent::new` secret. The screen reads the high half as U+FFFD at the first level.
#[test]
#[ignore = "open: a surrogate pair split across levels (`\\uD835&#92;uDC00`, `\\uD835%5CuDC00`) is read as two U+FFFD; a UTF-16 reader joins it (Sent::new secrets with astral characters only)"]
fn a_surrogate_pair_split_across_levels_is_still_joined() {
    // 21 bytes: read whole, it is one piece of 20 bytes and more.
    let token = "abcdefghij\u{1d400}klmnopq";
    let secret = SecretString::from(token);
    let sent = Sent::new(CLIENT_ID, [Some(&secret)]);
    // The low half's `\` escaped in HTML's and percent-encoding's notations: runs of token
    // characters stay under 20 bytes, so only the last screen can hide it.
    for spelled in [
        r"abcdefghij\uD835&#92;uDC00klmnopq",
        r"abcdefghij\uD835%5CuDC00klmnopq",
    ] {
        for (how, shown) in all_shown(spelled, &sent) {
            assert!(
                !shown.contains("uDC00klmnopq"),
                "{how}: {spelled:?} -> {shown:?}"
            );
        }
    }
}

proptest! {
    /// Long bodies of escapes, cut at 160 characters anywhere: no panic, and a body that is a
    /// spelled token plus padding never shows the spelling's first 20 characters' worth read.
    #[test]
    fn long_escaped_bodies_never_panic_in_the_excerpt(
        body in proptest::collection::vec(
            prop_oneof![
                Just("&#".to_owned()), Just("&#x".to_owned()), Just("%".to_owned()),
                Just("\\u".to_owned()), Just("\\u{".to_owned()), Just("\\U".to_owned()),
                Just("\\x".to_owned()), Just("&amp".to_owned()), Just(";".to_owned()),
                "[0-9a-fA-F_}]{1,6}", Just("é".to_owned()), Just("\u{0}".to_owned()),
            ],
            0..120,
        ),
        pad in 0usize..200,
    ) {
        let secret = SecretString::from(LETTERS);
        let sent = Sent::new(CLIENT_ID, [Some(&secret)]);
        let body = format!("{}{}", " ".repeat(pad), body.concat());
        let _ = excerpt_sent(body.as_bytes(), &sent);
        let _ = redact_sent(&body, &sent);
        let _ = network_text(&body, &sent);
    }

    #[test]
    fn a_spelled_token_anywhere_across_the_cut_never_shows_twenty_letters(
        pad in 0usize..170,
        every in 1usize..4,
        how in 0usize..11,
    ) {
        let secret = SecretString::from(LETTERS);
        let sent = Sent::new(CLIENT_ID, [Some(&secret)]);
        let spelled = spell(LETTERS, every, |c| notations(c)[how].clone());
        let body = format!("{}{spelled} end", "~ ".repeat(pad / 2));
        let shown = excerpt_sent(body.as_bytes(), &sent).expect("excerpt");
        // The first 20 characters of the token as spelled must not all show.
        let head: String = spell(&LETTERS[..20], every, |c| notations(c)[how].clone());
        prop_assert!(!shown.contains(&head), "{:?} -> {:?}", body, shown);
    }
}

/// A secret of 8 to 19 bytes counts whole: spelled in any notation it is redacted, and a text
/// showing only 7 of its bytes is kept.
#[test]
fn a_short_secret_spelled_whole_is_redacted_and_seven_of_its_bytes_are_not() {
    for token in ["abcdefgh", "abcdefghijklmnopqrs"] {
        let secret = SecretString::from(token);
        let sent = Sent::new(CLIENT_ID, [Some(&secret)]);
        for spelled in [
            spell(token, 2, |c| format!("&#{};", u32::from(c))),
            spell(token, 3, |c| format!("%{:02x}", u32::from(c))),
            spell(token, 4, |c| format!("\\\\u{:04x}", u32::from(c))),
            escape_again(&spell(token, 2, |c| format!("&#x{:x};", u32::from(c))), 2),
        ] {
            let text = format!("Token {spelled} is invalid");
            for (how, shown) in all_shown(&text, &sent) {
                assert!(!shown.contains(&spelled), "{how}: {text:?} -> {shown:?}");
            }
        }
        let seven = spell(&token[..7], 2, |c| format!("&#{};", u32::from(c)));
        let text = format!("Token {seven} is invalid");
        for ((how, with), (_, without)) in all_shown(&text, &sent)
            .into_iter()
            .zip(all_shown(&text, &Sent::nothing()))
        {
            assert_eq!(with, without, "{how}: {text:?}");
        }
    }
}
