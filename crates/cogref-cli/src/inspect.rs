//! `cogref inspect`: what a token says, without checking its signature.

use std::io::Read;
use std::time::{SystemTime, UNIX_EPOCH};

use cogref_core::jwt::decode_claims;

use crate::args::InspectArgs;
use crate::exit::{Code, Failure};

pub(crate) fn run(a: InspectArgs) -> Result<(), Failure> {
    let mut text = String::new();
    std::io::stdin().read_to_string(&mut text).map_err(|e| {
        Failure::new(
            Code::InvalidInput,
            format!("could not read standard input: {e}"),
            None,
        )
    })?;
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

#[allow(clippy::print_stdout, reason = "the claims are this command's output")]
fn print(c: &cogref_core::jwt::Claims, now: i64, as_json: bool) {
    let left = c.exp.map(|exp| exp - now);
    if as_json {
        let value = serde_json::json!({
            "issuer": c.iss, "subject": c.sub, "client": c.client_id.as_ref().or(c.aud.as_ref()),
            "token_use": c.token_use, "issued_at": c.iat, "expires_at": c.exp,
            "seconds_left": left, "username": c.username, "origin_jti": c.origin_jti,
            "signature_verified": false,
        });
        println!("{value}");
        return;
    }
    let show = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
    println!("issuer      {}", show(&c.iss));
    println!("subject     {}", show(&c.sub));
    println!(
        "client      {}",
        show(&c.client_id.clone().or_else(|| c.aud.clone()))
    );
    println!("token use   {}", show(&c.token_use));
    println!("username    {}", show(&c.username));
    println!("issued at   {}", c.iat.map_or("-".into(), utc));
    println!("expires at  {}", c.exp.map_or("-".into(), utc));
    println!(
        "time left   {}",
        match left {
            None => "-".into(),
            Some(s) if s <= 0 => format!("expired {} ago", span(-s)),
            Some(s) => span(s),
        }
    );
}

/// `1h 02m 03s`.
fn span(secs: i64) -> String {
    let (h, m, s) = (secs / 3600, secs % 3600 / 60, secs % 60);
    if h > 0 {
        format!("{h}h {m:02}m {s:02}s")
    } else {
        format!("{m}m {s:02}s")
    }
}

/// Seconds since the epoch as `YYYY-MM-DD HH:MM:SS UTC` (proleptic Gregorian).
fn utc(secs: i64) -> String {
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Howard Hinnant's civil-from-days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_formats_known_instants() {
        assert_eq!(utc(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(utc(1_700_000_000), "2023-11-14 22:13:20 UTC");
        assert_eq!(utc(951_782_400), "2000-02-29 00:00:00 UTC");
    }

    #[test]
    fn spans_read_as_hours_minutes_seconds() {
        assert_eq!(span(3723), "1h 02m 03s");
        assert_eq!(span(59), "0m 59s");
    }
}
