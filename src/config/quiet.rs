//! Quiet-hour windows: parsing `quiet = ["22:00-07:00", "Sat-Sun", "Mon-Fri 12:00-13:00"]`
//! and answering "is this instant quiet, and until when?" in a time zone.
//!
//! A window is read on the wall clock of the agent's time zone, so
//! `22:00-07:00` ends at 07:00 local on both sides of a DST change (the UTC
//! instant moves, the local time does not). Forms:
//!
//! - `HH:MM-HH:MM`: every day; a range whose end is not after its start
//!   crosses midnight (`22:00-07:00`); `24:00` is the end of the day.
//! - `Day` or `Day-Day` (`Sat-Sun`, `Fri-Mon` wraps): whole days.
//! - `Day[-Day] HH:MM-HH:MM`: the time range on those days (a range that
//!   crosses midnight belongs to the day it starts on).
//!
//! Days are `Mon`…`Sun` (or full names), in any case. Pure: no I/O, no clock.
//! This module must never read the local time of the machine: every
//! conversion goes through the time zone it is given.

use chrono::{DateTime, Datelike, Days, LocalResult, NaiveDate, NaiveDateTime, NaiveTime, TimeZone, Timelike, Utc};
use chrono_tz::Tz;

/// Why a window string is not a window.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QuietError {
    /// Not one of the accepted forms.
    #[error("\"{text}\" is not a quiet window (expected \"22:00-07:00\", \"Sat-Sun\" or \"Mon-Fri 22:00-07:00\")")]
    Form {
        /// The text given.
        text: String,
    },
    /// A day name that is not a weekday.
    #[error("\"{text}\": unknown day \"{day}\" (expected Mon, Tue, Wed, Thu, Fri, Sat or Sun)")]
    Day {
        /// The window.
        text: String,
        /// The part that is not a day.
        day: String,
    },
    /// A time that is not `HH:MM` within the day.
    #[error("\"{text}\": \"{time}\" is not a time of day (expected HH:MM, 00:00–24:00)")]
    Time {
        /// The window.
        text: String,
        /// The part that is not a time.
        time: String,
    },
    /// Start and end are the same: the window would be empty.
    #[error("\"{text}\": start and end are the same, so the window is empty")]
    Empty {
        /// The window.
        text: String,
    },
    /// The windows together cover the whole week: nothing held would ever be released.
    #[error("the windows cover the whole week, so held notifications would never be delivered")]
    WholeWeek,
}

/// Minutes in a day: times of day are minutes since local midnight.
const DAY: u32 = 24 * 60;

/// One parsed window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Window {
    /// Bit `n` set: the window applies on (starts on) weekday `n` (Monday = 0).
    days: u8,
    /// `(start, end)` in minutes since midnight; `None`: whole days.
    time: Option<(u32, u32)>,
}

/// A set of quiet windows, parsed once at load.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QuietWindows {
    windows: Vec<Window>,
}

impl QuietWindows {
    /// Parses every window of a `quiet` list; the first bad one is the error.
    /// An empty list is no quiet hours at all.
    pub fn parse<S: AsRef<str>>(texts: &[S]) -> Result<Self, QuietError> {
        let windows = texts
            .iter()
            .map(|t| parse_window(t.as_ref()))
            .collect::<Result<Vec<_>, _>>()?;
        let parsed = Self { windows };
        if !parsed.windows.is_empty() && parsed.covers_whole_week() {
            return Err(QuietError::WholeWeek);
        }
        Ok(parsed)
    }

    /// Whether no window is configured.
    pub fn is_empty(&self) -> bool {
        self.windows.is_empty()
    }

    /// Whether `t` falls in a window, read in `tz`.
    pub fn contains(&self, t: DateTime<Utc>, tz: Tz) -> bool {
        let local = t.with_timezone(&tz).naive_local();
        self.windows.iter().any(|w| w.end_after(local).is_some())
    }

    /// When the quiet period around `t` ends (windows that overlap or touch
    /// count as one period), as a UTC instant; `None` when `t` is not quiet.
    pub fn quiet_until(&self, t: DateTime<Utc>, tz: Tz) -> Option<DateTime<Utc>> {
        let mut at = t;
        // Each step moves to the end of a window that contains `at`, so it
        // advances; the whole-week check at parse time makes it stop. The cap
        // only guards against a set that was built without `parse`.
        for _ in 0..64 {
            let local = at.with_timezone(&tz).naive_local();
            let end = self.windows.iter().filter_map(|w| w.end_after(local)).max();
            match end {
                None => return (at != t).then_some(at),
                Some(end) => at = to_utc(end, tz).max(at + chrono::Duration::minutes(1)),
            }
        }
        Some(at)
    }

    /// Whether every minute of a week is in some window.
    fn covers_whole_week(&self) -> bool {
        // 2024-01-01 is a Monday; a naive week needs no time zone.
        let monday = NaiveDate::from_ymd_opt(2024, 1, 1)
            .and_then(|d| d.and_hms_opt(0, 0, 0))
            .unwrap_or_default();
        (0..7 * DAY).all(|m| {
            let t = monday + chrono::Duration::minutes(i64::from(m));
            self.windows.iter().any(|w| w.end_after(t).is_some())
        })
    }
}

impl Window {
    fn has_day(&self, weekday: u32) -> bool {
        self.days & (1 << weekday) != 0
    }

    /// The local end of this window if `t` (local) lies inside it.
    fn end_after(&self, t: NaiveDateTime) -> Option<NaiveDateTime> {
        let date = t.date();
        let weekday = date.weekday().num_days_from_monday();
        let minute = t.hour() * 60 + t.minute();
        let at = |d: NaiveDate, m: u32| -> NaiveDateTime {
            let (d, m) = if m >= DAY {
                (d.checked_add_days(Days::new(1)).unwrap_or(d), m - DAY)
            } else {
                (d, m)
            };
            d.and_time(NaiveTime::from_hms_opt(m / 60, m % 60, 0).unwrap_or(NaiveTime::MIN))
        };
        match self.time {
            None => {
                if !self.has_day(weekday) {
                    return None;
                }
                // Through the last consecutive day of the set.
                let mut last = date;
                for step in 1..7 {
                    if self.has_day((weekday + step) % 7) {
                        last = last.checked_add_days(Days::new(1))?;
                    } else {
                        break;
                    }
                }
                Some(at(last, DAY))
            }
            Some((start, end)) if start < end => {
                (self.has_day(weekday) && (start..end).contains(&minute)).then(|| at(date, end))
            }
            Some((start, end)) => {
                let yesterday = (weekday + 6) % 7;
                if self.has_day(weekday) && minute >= start {
                    Some(at(date.checked_add_days(Days::new(1))?, end))
                } else if self.has_day(yesterday) && minute < end {
                    Some(at(date, end))
                } else {
                    None
                }
            }
        }
    }
}

/// The UTC instant of a local wall-clock time: the earlier one when the
/// clock goes back (the first 07:00), the first minute after the gap when it
/// jumps forward (a 02:30 that does not exist ends the window at 03:00).
fn to_utc(local: NaiveDateTime, tz: Tz) -> DateTime<Utc> {
    let mut t = local;
    for _ in 0..=24 * 60 {
        match tz.from_local_datetime(&t) {
            LocalResult::Single(x) => return x.with_timezone(&Utc),
            LocalResult::Ambiguous(a, _) => return a.with_timezone(&Utc),
            LocalResult::None => t += chrono::Duration::minutes(1),
        }
    }
    // No zone has a gap of a day; read it as UTC rather than fail.
    local.and_utc()
}

fn parse_window(text: &str) -> Result<Window, QuietError> {
    let trimmed = text.trim();
    let form = || QuietError::Form { text: text.to_owned() };
    let mut parts = trimmed.split_whitespace();
    let (days_part, time_part) = match (parts.next(), parts.next(), parts.next()) {
        (Some(a), None, None) if a.contains(':') => (None, Some(a)),
        (Some(a), None, None) => (Some(a), None),
        (Some(a), Some(b), None) => (Some(a), Some(b)),
        _ => return Err(form()),
    };
    let days = match days_part {
        None => 0x7f,
        Some(d) => parse_days(text, d)?,
    };
    let time = match time_part {
        None => None,
        Some(range) => {
            let (s, e) = range.split_once('-').ok_or_else(form)?;
            let start = parse_time(text, s)?;
            let end = parse_time(text, e)?;
            if start == DAY {
                return Err(QuietError::Time {
                    text: text.to_owned(),
                    time: s.to_owned(),
                });
            }
            if start == end {
                return Err(QuietError::Empty { text: text.to_owned() });
            }
            Some((start, end))
        }
    };
    Ok(Window { days, time })
}

fn parse_days(text: &str, part: &str) -> Result<u8, QuietError> {
    let (a, b) = part.split_once('-').unwrap_or((part, part));
    let first = weekday(text, a)?;
    let last = weekday(text, b)?;
    let mut days = 0u8;
    let mut d = first;
    loop {
        days |= 1 << d;
        if d == last {
            break;
        }
        d = (d + 1) % 7;
    }
    Ok(days)
}

fn weekday(text: &str, name: &str) -> Result<u32, QuietError> {
    const NAMES: [&str; 7] = [
        "monday",
        "tuesday",
        "wednesday",
        "thursday",
        "friday",
        "saturday",
        "sunday",
    ];
    let lower = name.trim().to_ascii_lowercase();
    NAMES
        .iter()
        .position(|n| lower.len() >= 3 && n.starts_with(&lower))
        .map(|i| i as u32)
        .ok_or_else(|| QuietError::Day {
            text: text.to_owned(),
            day: name.to_owned(),
        })
}

fn parse_time(text: &str, part: &str) -> Result<u32, QuietError> {
    let bad = || QuietError::Time {
        text: text.to_owned(),
        time: part.to_owned(),
    };
    let (h, m) = part.trim().split_once(':').ok_or_else(bad)?;
    if h.is_empty() || h.len() > 2 || m.len() != 2 {
        return Err(bad());
    }
    let h: u32 = h.parse().map_err(|_| bad())?;
    let m: u32 = m.parse().map_err(|_| bad())?;
    let total = h * 60 + m;
    if m >= 60 || total > DAY {
        return Err(bad());
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn windows(list: &[&str]) -> QuietWindows {
        QuietWindows::parse(list).unwrap()
    }

    #[test]
    fn overnight_range_in_utc() {
        let q = windows(&["22:00-07:00"]);
        // 2026-11-20 is a Friday.
        assert!(!q.contains(utc("2026-11-20T21:59:00Z"), Tz::UTC));
        assert!(q.contains(utc("2026-11-20T22:00:00Z"), Tz::UTC));
        assert!(q.contains(utc("2026-11-21T06:59:00Z"), Tz::UTC));
        assert!(!q.contains(utc("2026-11-21T07:00:00Z"), Tz::UTC));
        assert_eq!(
            q.quiet_until(utc("2026-11-20T23:00:00Z"), Tz::UTC),
            Some(utc("2026-11-21T07:00:00Z"))
        );
        assert_eq!(q.quiet_until(utc("2026-11-20T12:00:00Z"), Tz::UTC), None);
    }

    #[test]
    fn touching_windows_are_one_period() {
        let q = windows(&["22:00-07:00", "Sat-Sun"]);
        // Friday 23:00 → through the weekend → Monday 07:00.
        assert_eq!(
            q.quiet_until(utc("2026-11-20T23:00:00Z"), Tz::UTC),
            Some(utc("2026-11-23T07:00:00Z"))
        );
        assert!(q.contains(utc("2026-11-22T14:00:00Z"), Tz::UTC));
        assert!(!q.contains(utc("2026-11-23T07:00:00Z"), Tz::UTC));
    }

    #[test]
    fn days_with_times_and_wrapping_day_ranges() {
        let q = windows(&["Mon-Fri 12:00-13:00"]);
        assert!(q.contains(utc("2026-11-20T12:30:00Z"), Tz::UTC));
        assert!(!q.contains(utc("2026-11-21T12:30:00Z"), Tz::UTC), "Saturday");
        let q = windows(&["Fri-Mon"]);
        assert!(q.contains(utc("2026-11-23T10:00:00Z"), Tz::UTC), "Monday");
        assert!(!q.contains(utc("2026-11-24T10:00:00Z"), Tz::UTC), "Tuesday");
        let q = windows(&["saturday 20:00-02:00"]);
        assert!(
            q.contains(utc("2026-11-22T01:00:00Z"), Tz::UTC),
            "Sunday early, started Saturday"
        );
        assert!(!q.contains(utc("2026-11-23T01:00:00Z"), Tz::UTC), "Monday early");
    }

    #[test]
    fn ends_at_local_seven_across_dst_changes() {
        let berlin: Tz = "Europe/Berlin".parse().unwrap();
        let q = windows(&["22:00-07:00"]);
        // Spring forward: the night of 2026-03-28/29 (CET +1 → CEST +2).
        // 23:00 CET = 22:00 UTC; 07:00 CEST = 05:00 UTC.
        assert_eq!(
            q.quiet_until(utc("2026-03-28T22:00:00Z"), berlin),
            Some(utc("2026-03-29T05:00:00Z"))
        );
        // Fall back: the night of 2026-10-24/25 (CEST +2 → CET +1).
        // 23:00 CEST = 21:00 UTC; 07:00 CET = 06:00 UTC.
        assert_eq!(
            q.quiet_until(utc("2026-10-24T21:00:00Z"), berlin),
            Some(utc("2026-10-25T06:00:00Z"))
        );
        // A window ending inside the spring gap ends when the clock resumes.
        let q = windows(&["22:00-02:30"]);
        assert_eq!(
            q.quiet_until(utc("2026-03-28T22:00:00Z"), berlin),
            Some(utc("2026-03-29T01:00:00Z"))
        );
    }

    #[test]
    fn bad_windows_say_what_is_wrong() {
        assert!(matches!(
            QuietWindows::parse(&["25:00-07:00"]),
            Err(QuietError::Time { .. })
        ));
        assert!(matches!(
            QuietWindows::parse(&["22:00-22:00"]),
            Err(QuietError::Empty { .. })
        ));
        assert!(matches!(QuietWindows::parse(&["Funday"]), Err(QuietError::Day { .. })));
        assert!(matches!(
            QuietWindows::parse(&["at night"]),
            Err(QuietError::Day { .. })
        ));
        assert!(QuietWindows::parse(&["22-07"]).is_err());
        assert!(matches!(
            QuietWindows::parse(&["Mon 7:00-7"]),
            Err(QuietError::Time { .. })
        ));
        assert!(matches!(QuietWindows::parse(&["a b c"]), Err(QuietError::Form { .. })));
        assert_eq!(QuietWindows::parse(&["Mon-Sun"]), Err(QuietError::WholeWeek));
        assert_eq!(
            QuietWindows::parse(&["Mon-Fri", "Sat-Sun 00:00-24:00"]),
            Err(QuietError::WholeWeek)
        );
        assert!(QuietWindows::parse::<&str>(&[]).unwrap().is_empty());
    }
}
