//! `cogref inspect`: what a token says, without checking its signature.
//!
//! The claims are whatever the token's author wrote: the table escapes control and
//! direction-changing characters (a claim cannot move the cursor, recolour the terminal or
//! reorder the line) and the time arithmetic cannot overflow, whatever `exp` holds.

use std::time::{SystemTime, UNIX_EPOCH};

use cogref_core::jwt::decode_claims;

use crate::args::InspectArgs;
use crate::exit::{Code, Failure};
use crate::print::ascii_json;
use crate::read;
use crate::time::{seconds_left, time_left, utc};

pub(crate) fn run(a: InspectArgs) -> Result<(), Failure> {
    let text = read::stdin("the token", Code::InvalidInput)?;
    let claims = decode_claims(text.trim()).map_err(|e| {
        Failure::new(
            Code::InvalidInput,
            e.to_string(),
            Some("pipe an access or ID token (header.payload.signature)"),
        )
    })?;
    eprintln!("cogref: the signature is NOT verified: do not trust these claims for authorization");
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
    print(&claims, now, a.json);
    Ok(())
}

/// Whether a character could change what the terminal shows beyond itself: C0/C1 controls
/// (escape sequences), and the invisible marks that reorder text (bidirectional overrides and
/// isolates) or hide it.
fn is_unsafe_for_a_terminal(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{2069}' | '\u{FEFF}'
        )
}

/// A claim as it may be shown: the unsafe characters of [`is_unsafe_for_a_terminal`] written
/// as escapes (`\u{1b}`).
pub(crate) fn printable(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if is_unsafe_for_a_terminal(c) {
            out.extend(c.escape_unicode());
        } else {
            out.push(c);
        }
    }
    out
}

#[allow(clippy::print_stdout, reason = "the claims are this command's output")]
fn print(c: &cogref_core::jwt::Claims, now: i64, as_json: bool) {
    let left = c.exp.map(|exp| seconds_left(exp, now));
    if as_json {
        // serde_json escapes every control character; the numbers are as the token has them.
        let value = serde_json::json!({
            "issuer": c.iss, "subject": c.sub, "client": c.client_id.as_ref().or(c.aud.as_ref()),
            "token_use": c.token_use, "issued_at": c.iat, "expires_at": c.exp,
            "seconds_left": left.map(|l| i64::try_from(l).unwrap_or(if l < 0 { i64::MIN } else { i64::MAX })),
            "username": c.username, "origin_jti": c.origin_jti,
            "signature_verified": false,
        });
        println!("{}", ascii_json(&value));
        return;
    }
    let show = |v: Option<&String>| v.map_or_else(|| "-".into(), |s| printable(s));
    println!("issuer      {}", show(c.iss.as_ref()));
    println!("subject     {}", show(c.sub.as_ref()));
    println!(
        "client      {}",
        show(c.client_id.as_ref().or(c.aud.as_ref()))
    );
    println!("token use   {}", show(c.token_use.as_ref()));
    println!("username    {}", show(c.username.as_ref()));
    println!("issued at   {}", c.iat.map_or("-".into(), utc));
    println!("expires at  {}", c.exp.map_or("-".into(), utc));
    println!("time left   {}", left.map_or("-".into(), time_left));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_sequences_and_bidi_overrides_in_claims_are_escaped() {
        assert_eq!(printable("carol"), "carol");
        assert_eq!(printable("é and 日本"), "é and 日本");
        let shown = printable("a\u{1b}[2J\u{1b}]0;owned\u{7}b\u{202E}c\r\n\u{9b}");
        assert!(
            !shown.chars().any(is_unsafe_for_a_terminal),
            "{shown:?} still has a control character"
        );
        assert!(
            shown.contains("\\u{1b}[2J") && shown.contains("\\u{202e}"),
            "{shown}"
        );
    }

    #[test]
    fn json_claims_keep_their_value_but_not_their_direction_marks() {
        let value = serde_json::json!({"username": "carol\u{202e}\u{1b}x"});
        let shown = ascii_json(&value);
        assert!(!shown.chars().any(is_unsafe_for_a_terminal), "{shown:?}");
        let back: serde_json::Value = serde_json::from_str(&shown).expect("still JSON");
        assert_eq!(back, value);
    }
}
