//! Value conversions shared by the adapters: reading a time from text or a
//! number, and naming JSON/SQL value kinds in error messages.
//!
//! Pure functions only; no I/O.

use chrono::{DateTime, NaiveDate, NaiveDateTime, TimeZone, Utc};

/// Reads a point in time from text: RFC 3339 (`2026-11-20T09:00:00Z`,
/// `…+01:00`), `YYYY-MM-DD HH:MM:SS[.f]` and `YYYY-MM-DDTHH:MM:SS[.f]` (taken as
/// UTC), or a date `YYYY-MM-DD` (midnight UTC).
pub fn parse_time_text(text: &str) -> Option<DateTime<Utc>> {
    let text = text.trim();
    // The most common shape (a DATE as text) first: a series reads millions.
    if text.len() == 10
        && let Ok(d) = text.parse::<NaiveDate>()
    {
        return d.and_hms_opt(0, 0, 0).map(|t| Utc.from_utc_datetime(&t));
    }
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Some(t.with_timezone(&Utc));
    }
    for format in ["%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M"] {
        if let Ok(t) = NaiveDateTime::parse_from_str(text, format) {
            return Some(Utc.from_utc_datetime(&t));
        }
    }
    // SQLite and some drivers print offsets as `+00:00` after a space.
    if let Ok(t) = DateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S%.f%:z") {
        return Some(t.with_timezone(&Utc));
    }
    NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| Utc.from_utc_datetime(&t))
}

/// Reads a point in time from a Unix timestamp in seconds (fractions allowed).
pub fn time_from_unix_seconds(seconds: f64) -> Option<DateTime<Utc>> {
    if !seconds.is_finite() {
        return None;
    }
    let millis = (seconds * 1000.0).round();
    if millis.abs() > 8.0e15 {
        return None;
    }
    DateTime::from_timestamp_millis(millis as i64)
}

/// A date as midnight UTC.
pub fn date_at_midnight(date: NaiveDate) -> DateTime<Utc> {
    // Midnight exists on every date.
    Utc.from_utc_datetime(&date.and_time(chrono::NaiveTime::MIN))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_common_time_texts() {
        let midnight = Utc.with_ymd_and_hms(2026, 11, 20, 0, 0, 0).unwrap();
        assert_eq!(parse_time_text("2026-11-20"), Some(midnight));
        assert_eq!(parse_time_text("2026-11-20 00:00:00"), Some(midnight));
        assert_eq!(parse_time_text("2026-11-20T00:00:00Z"), Some(midnight));
        assert_eq!(parse_time_text("2026-11-20T01:00:00+01:00"), Some(midnight));
        assert_eq!(parse_time_text("2026-11-20 00:00:00.000"), Some(midnight));
        assert_eq!(parse_time_text("2026-11-20 01:00:00+01:00"), Some(midnight));
        assert_eq!(parse_time_text("yesterday"), None);
    }

    #[test]
    fn reads_unix_seconds() {
        let t = time_from_unix_seconds(1_700_000_000.5).unwrap();
        assert_eq!(t.timestamp_millis(), 1_700_000_000_500);
        assert!(time_from_unix_seconds(f64::NAN).is_none());
    }
}
