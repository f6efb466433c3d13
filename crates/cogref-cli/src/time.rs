//! Instants and durations written for people: `2026-05-01 12:00:00 UTC`, `1h 02m 03s`.
//!
//! Claims come from tokens nobody has verified, so every input is a possible `i64::MIN`: nothing
//! here can overflow, and what no calendar shows is said in words.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The last second this module writes as a date: 9999-12-31 23:59:59 UTC.
const LAST_SHOWN: i64 = 253_402_300_799;
/// The first: 0000-01-01 00:00:00 UTC.
const FIRST_SHOWN: i64 = -62_167_219_200;

/// Seconds since the epoch as `YYYY-MM-DD HH:MM:SS UTC` (proleptic Gregorian), or a phrase for
/// an instant outside years 0 to 9999.
pub(crate) fn utc(secs: i64) -> String {
    if secs > LAST_SHOWN {
        return format!("after the year 9999 ({secs} s since 1970)");
    }
    if secs < FIRST_SHOWN {
        return format!("before the year 0 ({secs} s since 1970)");
    }
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (year, month, day) = cogref_core::session::utc::civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// A system time as [`utc`].
pub(crate) fn utc_of(t: SystemTime) -> String {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => utc(i64::try_from(d.as_secs()).unwrap_or(i64::MAX)),
        Err(before) => utc(i64::try_from(before.duration().as_secs()).map_or(i64::MIN, |s| -s)),
    }
}

/// A number of seconds as `1h 02m 03s` (`59m 00s`, `0m 05s`); days past 24 hours as `2d 03h…`.
pub(crate) fn span(secs: u64) -> String {
    let (d, h, m, s) = (
        secs / 86_400,
        secs % 86_400 / 3600,
        secs % 3600 / 60,
        secs % 60,
    );
    if d > 0 {
        format!("{d}d {h:02}h {m:02}m {s:02}s")
    } else if h > 0 {
        format!("{h}h {m:02}m {s:02}s")
    } else {
        format!("{m}m {s:02}s")
    }
}

/// A duration as [`span`].
pub(crate) fn span_of(d: Duration) -> String {
    span(d.as_secs())
}

/// `exp - now` without overflow: how long until `exp` (positive) or since it (negative).
pub(crate) fn seconds_left(exp: i64, now: i64) -> i128 {
    i128::from(exp) - i128::from(now)
}

/// `seconds_left` for people: `59m 58s`, `expired 3m 00s ago`.
pub(crate) fn time_left(left: i128) -> String {
    let clamp = |s: i128| u64::try_from(s).unwrap_or(u64::MAX);
    if left <= 0 {
        format!("expired {} ago", span(clamp(-left)))
    } else {
        span(clamp(left))
    }
}

/// The error of this program's own value parsers: what is accepted, never what was typed, so
/// that a usage error can show it ([`crate::usage`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Expected(pub(crate) &'static str);

impl std::fmt::Display for Expected {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}

impl std::error::Error for Expected {}

/// The longest refresh-token validity Cognito allows: ten years.
const MAX_VALIDITY: Duration = Duration::from_secs(3650 * 86_400);

/// A refresh-token validity as typed: a whole number with `d`, `h`, `m` or `s` (`30d`, `12h`),
/// or bare seconds; from one second to ten years. The error does not repeat the value (it came
/// from argv): it says what is accepted, and `cogref` shows it.
pub(crate) fn parse_validity(text: &str) -> Result<Duration, Expected> {
    let wrong = || {
        Expected(
            "a whole number of days, hours, minutes or seconds (30d, 12h, 90m, 3600s), from 1s \
             to 3650d",
        )
    };
    let text = text.trim();
    let (digits, unit) = match text.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => (&text[..i], c.to_ascii_lowercase()),
        _ => (text, 's'),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(wrong());
    }
    let n: u64 = digits.parse().map_err(|_| wrong())?;
    let per = match unit {
        'd' => 86_400,
        'h' => 3600,
        'm' => 60,
        's' => 1,
        _ => return Err(wrong()),
    };
    let secs = n.checked_mul(per).ok_or_else(wrong)?;
    let validity = Duration::from_secs(secs);
    if secs == 0 || validity > MAX_VALIDITY {
        return Err(wrong());
    }
    Ok(validity)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_validity_is_a_number_with_a_unit_from_a_second_to_ten_years() {
        assert_eq!(parse_validity("30d"), Ok(Duration::from_secs(30 * 86_400)));
        assert_eq!(parse_validity("12H"), Ok(Duration::from_secs(12 * 3600)));
        assert_eq!(parse_validity("90m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_validity("3600"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_validity("3650d"), Ok(MAX_VALIDITY));
        for bad in [
            "",
            "d",
            "0d",
            "3651d",
            "-1d",
            "1.5d",
            "1w",
            "99999999999999999999d",
            "eyJabc",
        ] {
            let e = parse_validity(bad).expect_err(bad).to_string();
            // What was typed is not repeated (short inputs are letters the text has anyway).
            assert!(bad.len() < 4 || !e.contains(bad), "{e}");
        }
    }

    #[test]
    fn utc_formats_known_instants() {
        assert_eq!(utc(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(utc(1_700_000_000), "2023-11-14 22:13:20 UTC");
        assert_eq!(utc(951_782_400), "2000-02-29 00:00:00 UTC");
        assert_eq!(utc(LAST_SHOWN), "9999-12-31 23:59:59 UTC");
        assert_eq!(utc(FIRST_SHOWN), "0000-01-01 00:00:00 UTC");
    }

    #[test]
    fn spans_read_as_days_hours_minutes_seconds() {
        assert_eq!(span(3723), "1h 02m 03s");
        assert_eq!(span(59), "0m 59s");
        assert_eq!(span(2 * 86_400 + 3 * 3600), "2d 03h 00m 00s");
    }

    #[test]
    fn absurd_instants_and_differences_never_overflow() {
        for exp in [i64::MIN, i64::MIN + 1, -1, 0, i64::MAX - 1, i64::MAX] {
            for now in [i64::MIN, 0, 1_800_000_000, i64::MAX] {
                let _ = utc(exp);
                let _ = time_left(seconds_left(exp, now));
            }
        }
        assert_eq!(
            time_left(seconds_left(i64::MIN, i64::MAX)),
            format!("expired {} ago", span(u64::MAX))
        );
        assert!(utc(i64::MAX).starts_with("after the year 9999"));
        assert!(utc(i64::MIN).starts_with("before the year 0"));
        let _ = span(u64::MAX);
    }
}
