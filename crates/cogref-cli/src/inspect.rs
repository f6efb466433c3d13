//! `cogref inspect`: what a token says, without checking its signature; or, with `--store`, the
//! session a token store keeps (its state, sign-in time, deadline, the access token's expiry and
//! the clock skew), never a token.
//!
//! The claims are whatever the token's author wrote: the table escapes control and
//! direction-changing characters (a claim cannot move the cursor, recolour the terminal or
//! reorder the line) and the time arithmetic cannot overflow, whatever `exp` holds.

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use cogref_core::jwt::decode_claims;
use cogref_session::{FileStore, TokenStore};

use crate::args::InspectArgs;
use crate::exit::{Code, Failure};
use crate::print::ascii_json;
use crate::read;
use crate::time::{seconds_left, span, time_left, utc};

pub(crate) fn run(a: InspectArgs) -> Result<(), Failure> {
    if let Some(path) = &a.store {
        return store(path, a.refresh_token_validity, a.json);
    }
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

/// Seconds since the epoch of `t` (negative before it).
fn unix(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(e) => i64::try_from(e.duration().as_secs()).map_or(i64::MIN, |s| -s),
    }
}

/// The session in the store at `path`. The deadline is the sign-in time plus the refresh-token
/// validity (the store's record of it, else `validity`), on Cognito's clock; with a known clock
/// skew it is also given on this machine's.
#[allow(clippy::print_stdout, reason = "the session is this command's output")]
fn store(path: &Path, validity: Option<Duration>, as_json: bool) -> Result<(), Failure> {
    read::check_store(path)?;
    let stored = FileStore::new(path)
        .load()
        .map_err(|e| Failure::new(Code::Failure, e.to_string(), None))?
        .ok_or_else(|| {
            Failure::new(
                Code::InvalidInput,
                format!("the store {} holds no session", read::shown_path(path)),
                Some("--store takes a file that `cogref refresh --store` wrote"),
            )
        })?;
    let t = stored.tokens;
    let now = unix(SystemTime::now());
    let validity_recorded = t.refresh_token_validity.is_some();
    let validity = t.refresh_token_validity.or(validity);
    let deadline = t
        .signed_in_at
        .zip(validity)
        .and_then(|(at, v)| at.checked_add(v))
        .map(unix);
    // Cognito's clock minus ours: a time on Cognito's clock is `skew` seconds later than ours
    // shows at that moment.
    let local = |server: i64| t.clock_skew_secs.map(|skew| server.saturating_sub(skew));
    let state = if t.is_signed_out() {
        "signed out"
    } else if t.access_token.is_some() {
        "signed in"
    } else {
        "signed in, no access token yet"
    };
    let expires = t.expires_at.filter(|_| !t.is_signed_out()).map(unix);
    if as_json {
        let value = serde_json::json!({
            "state": state,
            "client": t.client_id,
            "endpoint": t.endpoint,
            "signed_out_at": t.signed_out_at.map(unix),
            "signed_in_at": t.signed_in_at.map(unix),
            "refresh_token_validity_secs": validity.map(|v| v.as_secs()),
            "deadline": deadline,
            "deadline_local": deadline.and_then(local),
            "seconds_to_deadline": deadline.map(|d| i64::try_from(seconds_left(d, now)).unwrap_or(i64::MAX)),
            "access_token_expires_at": expires,
            "clock_skew_secs": t.clock_skew_secs,
            "version": stored.version,
        });
        println!("{}", ascii_json(&value));
        return Ok(());
    }
    let show = |v: Option<&String>| v.map_or_else(|| "-".into(), |s| printable(s));
    println!("store          {}", read::shown_path(path));
    println!("state          {state}");
    println!("client         {}", show(t.client_id.as_ref()));
    println!("endpoint       {}", show(t.endpoint.as_ref()));
    if let Some(at) = t.signed_out_at {
        // A tombstone keeps nothing else: the session is over.
        println!("signed out at  {}", utc(unix(at)));
        return Ok(());
    }
    println!(
        "signed in at   {}",
        t.signed_in_at
            .map_or_else(|| "unknown".into(), |at| utc(unix(at)))
    );
    let validity_text = match (validity, validity_recorded) {
        (Some(v), true) => format!("{} (recorded in the store)", span(v.as_secs())),
        (Some(v), false) => format!("{} (--refresh-token-validity)", span(v.as_secs())),
        (None, _) => "unknown (give --refresh-token-validity)".into(),
    };
    println!("validity       {validity_text}");
    match deadline {
        Some(d) => {
            let left = time_left(seconds_left(d, now));
            println!("deadline       {} on Cognito's clock ({left})", utc(d));
            if let Some(l) = local(d).filter(|l| *l != d) {
                println!("               {} on this machine's clock", utc(l));
            }
        }
        None => println!("deadline       unknown: it needs the sign-in time and the validity"),
    }
    if let Some(exp) = expires {
        println!(
            "access token   expires {} ({})",
            utc(exp),
            time_left(seconds_left(exp, now))
        );
    }
    // Measured to the second (the `Date` header's resolution).
    let skew = |s: i64| match s.unsigned_abs() {
        n if n < 60 => format!("{n} s"),
        n => span(n),
    };
    match t.clock_skew_secs {
        Some(0) => println!("clock skew     none: Cognito's clock and this one agree"),
        Some(s) if s > 0 => println!("clock skew     Cognito's clock is {} ahead", skew(s)),
        Some(s) => println!("clock skew     Cognito's clock is {} behind", skew(s)),
        None => println!("clock skew     unknown"),
    }
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
