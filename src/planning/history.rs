//! The history functions of conditions, computed from a series' points.
//!
//! Pure arithmetic over points the planner gathered (memory plus the current
//! observation's backfill). Whenever the history cannot answer honestly — no
//! point near the asked time, a window the history does not cover, too few
//! points, a zero baseline — the answer is `None` ("unknown"), never 0.

use chrono::{DateTime, Utc};

use super::condition::HistoryFn;

/// Points of one series, oldest first.
pub type Points = [(DateTime<Utc>, f64)];

/// How far from the asked time a point may be and still count, and how much
/// of a window's start may be missing: a seventh of the window, but never
/// less than `min` (two cycle intervals, so a 5-minute agent finds its own
/// points for short windows).
pub fn tolerance(window: chrono::Duration, min: chrono::Duration) -> chrono::Duration {
    (window / 7).max(min)
}

/// Computes `func` for the series at time `t` whose current value is
/// `current`, over `points` (any order; points at or after `t` are ignored).
pub fn compute(
    func: HistoryFn,
    current: Option<f64>,
    points: &Points,
    t: DateTime<Utc>,
    window: chrono::Duration,
    tolerance: chrono::Duration,
) -> Option<f64> {
    match func {
        HistoryFn::Prev => prev(points, t, window, tolerance),
        HistoryFn::Change => {
            let then = prev(points, t, window, tolerance)?;
            let now = current?;
            (then != 0.0).then(|| (now - then) / then.abs())
        }
        HistoryFn::Mean => stats(points, t, window, tolerance, 2).map(|s| s.0),
        HistoryFn::Stddev => stats(points, t, window, tolerance, 2).map(|s| s.1),
        HistoryFn::Zscore => {
            let (mean, sd) = stats(points, t, window, tolerance, 3)?;
            let now = current?;
            (sd > 0.0).then(|| (now - mean) / sd)
        }
    }
}

/// The newest value at or before `t - window`, if it is no older than `tolerance` beyond that.
fn prev(points: &Points, t: DateTime<Utc>, window: chrono::Duration, tolerance: chrono::Duration) -> Option<f64> {
    let target = t - window;
    points
        .iter()
        .filter(|(at, v)| *at <= target && *at >= target - tolerance && v.is_finite())
        .max_by_key(|(at, _)| *at)
        .map(|(_, v)| *v)
}

/// Mean and population standard deviation over `[t - window, t)`, when the
/// points cover the window (the oldest within `tolerance` of its start) and
/// there are at least `min_points`.
fn stats(
    points: &Points,
    t: DateTime<Utc>,
    window: chrono::Duration,
    tolerance: chrono::Duration,
    min_points: usize,
) -> Option<(f64, f64)> {
    let start = t - window;
    let in_window: Vec<(DateTime<Utc>, f64)> = points
        .iter()
        .copied()
        .filter(|(at, v)| *at >= start && *at < t && v.is_finite())
        .collect();
    let oldest = in_window.iter().map(|(at, _)| *at).min()?;
    if oldest > start + tolerance || in_window.len() < min_points {
        return None;
    }
    let n = in_window.len() as f64;
    let mean = in_window.iter().map(|(_, v)| v).sum::<f64>() / n;
    let var = in_window.iter().map(|(_, v)| (v - mean).powi(2)).sum::<f64>() / n;
    Some((mean, var.sqrt()))
}

#[cfg(test)]
mod tests {
    use chrono::{Duration, TimeZone};

    use super::*;

    fn daily(values: &[f64]) -> (Vec<(DateTime<Utc>, f64)>, DateTime<Utc>) {
        let start = Utc.with_ymd_and_hms(2026, 10, 1, 0, 0, 0).unwrap();
        let points: Vec<_> = values
            .iter()
            .enumerate()
            .map(|(i, v)| (start + Duration::days(i as i64), *v))
            .collect();
        let t = start + Duration::days(values.len() as i64);
        (points, t)
    }

    fn tol(w: Duration) -> Duration {
        tolerance(w, Duration::minutes(10))
    }

    #[test]
    fn prev_and_change() {
        let (points, t) = daily(&[100.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0]);
        let w = Duration::days(8);
        assert_eq!(compute(HistoryFn::Prev, Some(70.0), &points, t, w, tol(w)), Some(100.0));
        let change = compute(HistoryFn::Change, Some(70.0), &points, t, w, tol(w)).unwrap();
        assert!((change + 0.3).abs() < 1e-12);
    }

    #[test]
    fn too_short_history_is_unknown() {
        let (points, t) = daily(&[5.0, 5.0, 5.0]);
        let w = Duration::days(7);
        assert_eq!(compute(HistoryFn::Prev, Some(1.0), &points, t, w, tol(w)), None);
        assert_eq!(compute(HistoryFn::Change, Some(1.0), &points, t, w, tol(w)), None);
        assert_eq!(compute(HistoryFn::Mean, Some(1.0), &points, t, w, tol(w)), None);
        assert_eq!(compute(HistoryFn::Zscore, Some(1.0), &[], t, w, tol(w)), None);
    }

    #[test]
    fn zero_baselines_are_unknown() {
        let (points, t) = daily(&[0.0; 8]);
        let w = Duration::days(7);
        assert_eq!(compute(HistoryFn::Change, Some(3.0), &points, t, w, tol(w)), None);
        assert_eq!(
            compute(HistoryFn::Zscore, Some(3.0), &points, t, w, tol(w)),
            None,
            "constant history: sd 0"
        );
    }

    #[test]
    fn mean_stddev_zscore_over_the_trailing_window() {
        let (points, t) = daily(&[99.0, 10.0, 12.0, 10.0, 12.0, 10.0, 12.0, 10.0]);
        let w = Duration::days(7);
        let mean = compute(HistoryFn::Mean, Some(20.0), &points, t, w, tol(w)).unwrap();
        assert!(
            (mean - 76.0 / 7.0).abs() < 1e-9,
            "the 99 lies outside the window: {mean}"
        );
        let sd = compute(HistoryFn::Stddev, None, &points, t, w, tol(w)).unwrap();
        assert!(sd > 0.9 && sd < 1.0, "{sd}");
        let z = compute(HistoryFn::Zscore, Some(20.0), &points, t, w, tol(w)).unwrap();
        assert!(z > 9.0, "{z}");
    }

    #[test]
    fn points_at_or_after_t_are_ignored() {
        let (mut points, t) = daily(&[1.0; 8]);
        points.push((t, 1000.0));
        let w = Duration::days(7);
        assert_eq!(compute(HistoryFn::Mean, None, &points, t, w, tol(w)), Some(1.0));
    }

    /// The README's examples, exactly: which points each window covers.
    #[test]
    fn windows_cover_the_points_the_readme_says() {
        // Daily: the current point is day 0; day −k holds the value 2^k, so
        // a sum names the days it covers.
        let day0 = Utc.with_ymd_and_hms(2026, 11, 19, 0, 0, 0).unwrap();
        let points: Vec<_> = (1..=30)
            .map(|k| (day0 - Duration::days(k), 2f64.powi(k as i32)))
            .collect();
        let w = Duration::days(7);
        let mean = compute(HistoryFn::Mean, Some(0.0), &points, day0, w, tol(w)).unwrap();
        let days_1_to_7: f64 = (1..=7).map(|k| 2f64.powi(k)).sum();
        assert_eq!(mean * 7.0, days_1_to_7, "mean(m, \"7d\") is days −7…−1");
        assert_eq!(
            compute(HistoryFn::Prev, None, &points, day0, w, tol(w)),
            Some(2f64.powi(7))
        );

        // Hourly: current 09:00; hour −k holds 2^k.
        let nine = Utc.with_ymd_and_hms(2026, 11, 19, 9, 0, 0).unwrap();
        let points: Vec<_> = (1..=48)
            .map(|k| (nine - Duration::hours(k), 2f64.powi(k as i32)))
            .collect();
        let w = Duration::hours(6);
        let mean = compute(HistoryFn::Mean, Some(0.0), &points, nine, w, tol(w)).unwrap();
        let hours_1_to_6: f64 = (1..=6).map(|k| 2f64.powi(k)).sum();
        assert_eq!(mean * 6.0, hours_1_to_6, "mean(m, \"6h\") is 03:00…08:00");
        let day = Duration::hours(24);
        assert_eq!(
            compute(HistoryFn::Prev, None, &points, nine, day, tol(day)),
            Some(2f64.powi(24)),
            "prev(m, \"24h\") is yesterday 09:00"
        );
    }
}
