//! Calendar dates of UTC times, for people: the session's errors, the CLI, test `Date`
//! headers. One civil-from-days conversion (Howard Hinnant's) for all of them.

use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

/// The proleptic Gregorian date `(year, month, day)` of `days` since 1970-01-01 (negative
/// before), exact for every `i64` day count whose year fits an `i64`.
///
/// ```
/// use cogref_core::session::utc::civil_from_days;
/// assert_eq!(civil_from_days(0), (1970, 1, 1));
/// assert_eq!(civil_from_days(11_016), (2000, 2, 29));
/// assert_eq!(civil_from_days(-1), (1969, 12, 31));
/// ```
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days.saturating_add(719_468);
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    // `day` is 1..=31 and `month` 1..=12 by construction.
    (year, month as u32, day as u32)
}

/// A time shown as `2026-11-27 19:30:09 UTC` (whole seconds).
///
/// ```
/// use std::time::{Duration, UNIX_EPOCH};
/// use cogref_core::session::utc::Utc;
/// let t = UNIX_EPOCH + Duration::from_secs(1_795_807_809);
/// assert_eq!(Utc(t).to_string(), "2026-11-27 19:30:09 UTC");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Utc(pub SystemTime);

impl fmt::Display for Utc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Ok(since) = self.0.duration_since(UNIX_EPOCH) else {
            return f.write_str("a time before 1970");
        };
        let secs = since.as_secs();
        let days = i64::try_from(secs / 86_400).unwrap_or(i64::MAX);
        let rest = secs % 86_400;
        let (year, month, day) = civil_from_days(days);
        write!(
            f,
            "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC",
            rest / 3_600,
            rest % 3_600 / 60,
            rest % 60
        )
    }
}

/// `t` as an HTTP date (IMF-fixdate, RFC 9110 §5.6.7), as a `Date` header carries it; a time
/// before 1970 is given as the epoch.
///
/// ```
/// use std::time::{Duration, UNIX_EPOCH};
/// use cogref_core::session::utc::imf_fixdate;
/// let t = UNIX_EPOCH + Duration::from_secs(784_111_777);
/// assert_eq!(imf_fixdate(t), "Sun, 06 Nov 1994 08:49:37 GMT");
/// ```
pub fn imf_fixdate(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let days = i64::try_from(secs / 86_400).unwrap_or(i64::MAX);
    let rest = secs % 86_400;
    let (year, month, day) = civil_from_days(days);
    const WEEKDAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    format!(
        "{}, {day:02} {} {year} {:02}:{:02}:{:02} GMT",
        WEEKDAYS[days.rem_euclid(7) as usize],
        MONTHS[(month as usize).saturating_sub(1) % 12],
        rest / 3_600,
        rest % 3_600 / 60,
        rest % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn times_read_as_utc_dates() {
        let at = |secs| Utc(UNIX_EPOCH + Duration::from_secs(secs)).to_string();
        assert_eq!(at(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(at(951_782_400), "2000-02-29 00:00:00 UTC");
        assert_eq!(at(4_102_444_799), "2099-12-31 23:59:59 UTC");
        assert_eq!(
            Utc(UNIX_EPOCH - Duration::from_secs(1)).to_string(),
            "a time before 1970"
        );
    }
}
