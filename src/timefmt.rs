//! The one text form of a UTC timestamp in memory: `2026-11-21T09:30:00.000Z`.
//!
//! Fixed width with millisecond precision, so text order is time order and
//! SQL comparisons on these columns are correct. Only UTC is ever stored.
//! Also how a point of a series is named for people ([`point`], [`point_in`]):
//! a whole day as its date, anything else with its time.

use chrono::{DateTime, NaiveDateTime, SecondsFormat, TimeZone, Utc};

/// Formats a UTC time for storage.
pub fn to_db(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Reads a stored time. Accepts the stored form and, for robustness against
/// hand-edited rows, any RFC 3339 time or SQLite's `YYYY-MM-DD HH:MM:SS`.
pub fn from_db(text: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .ok()
        .or_else(|| {
            NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S%.f")
                .ok()
                .map(|t| Utc.from_utc_datetime(&t))
        })
}

/// Whether `t` is a whole day (midnight UTC): a daily series' point.
pub fn whole_day(t: DateTime<Utc>) -> bool {
    use chrono::Timelike as _;
    t.num_seconds_from_midnight() == 0 && t.nanosecond() == 0
}

/// A point of a series for people: `2026-11-19` for a whole day, else
/// `2026-11-19 09:00 UTC`.
pub fn point(t: DateTime<Utc>) -> String {
    if whole_day(t) {
        t.format("%Y-%m-%d").to_string()
    } else {
        t.format("%Y-%m-%d %H:%M UTC").to_string()
    }
}

/// [`point`] in `zone`: a whole day stays its date (the day is the day in
/// every zone); other points are shown in local time, `2026-11-19 10:00 CET`.
pub fn point_in(t: DateTime<Utc>, zone: chrono_tz::Tz) -> String {
    if whole_day(t) {
        point(t)
    } else {
        t.with_timezone(&zone).format("%Y-%m-%d %H:%M %Z").to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn points_are_days_or_times() {
        let day = Utc.with_ymd_and_hms(2026, 11, 19, 0, 0, 0).unwrap();
        let hour = Utc.with_ymd_and_hms(2026, 11, 19, 9, 0, 0).unwrap();
        assert_eq!(point(day), "2026-11-19");
        assert_eq!(point_in(day, chrono_tz::Europe::Berlin), "2026-11-19");
        assert_eq!(point(hour), "2026-11-19 09:00 UTC");
        assert_eq!(point_in(hour, chrono_tz::Europe::Berlin), "2026-11-19 10:00 CET");
    }

    #[test]
    fn round_trips_and_sorts_as_text() {
        let a = Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).unwrap();
        let b = a + chrono::Duration::milliseconds(1);
        assert_eq!(to_db(a), "2026-01-02T03:04:05.000Z");
        assert_eq!(from_db(&to_db(b)), Some(b));
        assert!(to_db(a) < to_db(b));
        assert_eq!(from_db("2026-01-02 03:04:05"), Some(a));
    }
}
