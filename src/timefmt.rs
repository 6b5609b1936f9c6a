//! The one text form of a UTC timestamp in memory: `2026-11-21T09:30:00.000Z`.
//!
//! Fixed width with millisecond precision, so text order is time order and
//! SQL comparisons on these columns are correct. Only UTC is ever stored.

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

#[cfg(test)]
mod tests {
    use super::*;

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
