//! Schedules: when something scheduled (a source, a rule, a report) is due.
//!
//! A schedule is `every = "1h"` or a 5-field `cron` pattern read in an IANA
//! time zone. Due times are computed in that zone (so "Monday 09:00 Berlin"
//! stays 09:00 across daylight-saving changes) and handed out in UTC; the
//! caller persists the next due time and asks [`Schedule::decide`] once per
//! cycle whether the job runs now. The answer covers every case the daemon
//! meets: not yet due, due (run once, however many cycles see it), and due
//! times missed while the agent was down (caught up once or skipped, per
//! `catch_up`).
//!
//! This module is pure: it must never read the clock, touch memory or log.
//! Local time is only used here, to find due times; everything it returns is UTC.

use std::time::Duration;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use croner::Cron;
use croner::parser::{CronParser, Seconds, Year};
use serde::Deserialize;

/// Why a schedule cannot be built or has no next due time.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    /// Both `every` and `cron` were given.
    #[error("give either `every` or `cron`, not both")]
    Both,
    /// `every` is zero.
    #[error("`every` must be longer than zero")]
    ZeroEvery,
    /// The cron pattern does not parse.
    #[error(
        "invalid cron pattern \"{pattern}\": {message} (expected 5 fields: minute hour day-of-month month day-of-week)"
    )]
    Cron {
        /// The pattern as written.
        pattern: String,
        /// croner's explanation.
        message: String,
    },
    /// The pattern never matches again (e.g. 30 February).
    #[error("the schedule has no due time after {after}")]
    NoNext {
        /// The time searched from, UTC.
        after: DateTime<Utc>,
    },
}

/// What to do about due times missed while the agent was not running.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CatchUp {
    /// Run once on start, however many due times were missed.
    #[default]
    Once,
    /// Do not run for missed due times; wait for the next one.
    Skip,
}

impl CatchUp {
    /// The config spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Once => "once",
            Self::Skip => "skip",
        }
    }
}

#[derive(Debug, Clone)]
enum Kind {
    Every(chrono::Duration),
    Cron(Box<Cron>),
}

/// A compiled schedule.
#[derive(Debug, Clone)]
pub struct Schedule {
    kind: Kind,
    tz: Tz,
    catch_up: CatchUp,
    spec: String,
}

/// What is remembered about a scheduled job between cycles (and restarts).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct State {
    /// The schedule's [`Schedule::spec`] when the state was written: a changed
    /// schedule starts afresh rather than inheriting stale due times.
    pub spec: String,
    /// The next due time not yet handled, UTC.
    pub next_due: DateTime<Utc>,
}

/// Due times that passed without the agent seeing them in time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Missed {
    /// The latest missed due time, UTC.
    pub latest: DateTime<Utc>,
    /// How many due times were missed (capped at [`MAX_COUNTED`]).
    pub count: u32,
    /// Whether it runs now anyway (`catch_up = "once"`).
    pub caught_up: bool,
}

/// At most this many missed due times are counted (for the log line).
pub const MAX_COUNTED: u32 = 1000;

/// The answer for one cycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    /// The due time the job runs for now, if it runs.
    pub run: Option<DateTime<Utc>>,
    /// The next due time to remember, UTC (after `now`).
    pub next_due: DateTime<Utc>,
    /// Due times missed during downtime, if any.
    pub missed: Option<Missed>,
}

impl Schedule {
    /// Builds a schedule from its keys; `None` when neither `every` nor `cron` is given.
    pub fn new(
        every: Option<Duration>,
        cron: Option<&str>,
        tz: Tz,
        catch_up: CatchUp,
    ) -> Result<Option<Self>, ScheduleError> {
        let (kind, spec) = match (every, cron) {
            (None, None) => return Ok(None),
            (Some(_), Some(_)) => return Err(ScheduleError::Both),
            (Some(every), None) => {
                if every.is_zero() {
                    return Err(ScheduleError::ZeroEvery);
                }
                let d = chrono::Duration::from_std(every).map_err(|_| ScheduleError::ZeroEvery)?;
                (Kind::Every(d), format!("every {}", humantime::format_duration(every)))
            }
            (None, Some(pattern)) => {
                // Exactly five fields: seconds and years would make "0 9 * * MON"
                // ambiguous with six-field patterns from other tools.
                let cron = CronParser::builder()
                    .seconds(Seconds::Disallowed)
                    .year(Year::Disallowed)
                    .build()
                    .parse(pattern)
                    .map_err(|e| ScheduleError::Cron {
                        pattern: pattern.to_owned(),
                        message: e.to_string(),
                    })?;
                (
                    Kind::Cron(Box::new(cron)),
                    format!("cron {} in {}", pattern.trim(), tz.name()),
                )
            }
        };
        Ok(Some(Self {
            kind,
            tz,
            catch_up,
            spec,
        }))
    }

    /// A stable description (`every 1h`, `cron 0 9 * * MON in Europe/Berlin`).
    pub fn spec(&self) -> &str {
        &self.spec
    }

    /// What happens to missed due times.
    pub fn catch_up(&self) -> CatchUp {
        self.catch_up
    }

    /// The first due time strictly after `t`, UTC.
    pub fn next_after(&self, t: DateTime<Utc>) -> Result<DateTime<Utc>, ScheduleError> {
        match &self.kind {
            Kind::Every(d) => Ok(t + *d),
            Kind::Cron(cron) => {
                // Computed in the zone: croner resolves local wall-clock times,
                // so 09:00 stays 09:00 when the offset changes.
                let local = t.with_timezone(&self.tz);
                cron.find_next_occurrence(&local, false)
                    .map(|n| n.with_timezone(&Utc))
                    .map_err(|_| ScheduleError::NoNext { after: t })
            }
        }
    }

    /// Whether the job runs at `now`, given what was remembered.
    ///
    /// - Never seen (or its schedule changed): `every` runs at once; `cron`
    ///   waits for its next due time.
    /// - Not yet due: does not run.
    /// - Due: runs once for the latest due time that has passed, however many
    ///   cycles see it — the next due time moves past `now`.
    /// - A due time that passed more than `grace` ago was missed (the agent was
    ///   down): `catch_up = "once"` runs it once now, `"skip"` does not.
    pub fn decide(
        &self,
        state: Option<&State>,
        now: DateTime<Utc>,
        grace: chrono::Duration,
    ) -> Result<Decision, ScheduleError> {
        let Some(state) = state.filter(|s| s.spec == self.spec) else {
            return Ok(match &self.kind {
                Kind::Every(d) => Decision {
                    run: Some(now),
                    next_due: now + *d,
                    missed: None,
                },
                Kind::Cron(_) => Decision {
                    run: None,
                    next_due: self.next_after(now)?,
                    missed: None,
                },
            });
        };
        if state.next_due > now {
            return Ok(Decision {
                run: None,
                next_due: state.next_due,
                missed: None,
            });
        }
        let (latest, count, next_due) = self.passed(state.next_due, now)?;
        if now - latest <= grace {
            // On time (earlier due times in the same gap are coalesced into this run).
            return Ok(Decision {
                run: Some(latest),
                next_due,
                missed: None,
            });
        }
        let caught_up = self.catch_up == CatchUp::Once;
        Ok(Decision {
            run: caught_up.then_some(latest),
            next_due,
            missed: Some(Missed {
                latest,
                count,
                caught_up,
            }),
        })
    }

    /// The latest due time in `[first, now]`, how many there were, and the next after `now`.
    fn passed(
        &self,
        first: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<(DateTime<Utc>, u32, DateTime<Utc>), ScheduleError> {
        match &self.kind {
            Kind::Every(d) => {
                let step = d.num_milliseconds().max(1);
                let k = (now - first).num_milliseconds() / step;
                let latest = first + chrono::Duration::milliseconds(k * step);
                let count = u32::try_from(k + 1).unwrap_or(u32::MAX).min(MAX_COUNTED);
                Ok((latest, count, latest + *d))
            }
            Kind::Cron(cron) => {
                let mut latest = first;
                let mut count = 1;
                let mut next = self.next_after(first)?;
                while next <= now {
                    if count >= MAX_COUNTED {
                        // A long downtime: stop counting, jump to the due time just before `now`.
                        let local = now.with_timezone(&self.tz);
                        let latest = cron
                            .find_previous_occurrence(&local, true)
                            .map(|p| p.with_timezone(&Utc))
                            .map_err(|_| ScheduleError::NoNext { after: first })?;
                        return Ok((latest, count, self.next_after(now)?));
                    }
                    latest = next;
                    count += 1;
                    next = self.next_after(next)?;
                }
                Ok((latest, count, next))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone as _;

    use super::*;

    fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, mo, d, h, mi, 0).unwrap()
    }

    fn monday_nine(catch_up: CatchUp) -> Schedule {
        Schedule::new(None, Some("0 9 * * MON"), chrono_tz::Europe::Berlin, catch_up)
            .unwrap()
            .unwrap()
    }

    const GRACE: chrono::Duration = chrono::Duration::minutes(10);

    /// Runs 5-minute cycles from `from` to `to` and returns the due times that ran.
    fn cycles(s: &Schedule, state: &mut Option<State>, from: DateTime<Utc>, to: DateTime<Utc>) -> Vec<DateTime<Utc>> {
        let mut ran = Vec::new();
        let mut now = from;
        while now <= to {
            let d = s.decide(state.as_ref(), now, GRACE).unwrap();
            assert!(d.next_due > now, "next due {} is not after {now}", d.next_due);
            ran.extend(d.run);
            *state = Some(State {
                spec: s.spec().to_owned(),
                next_due: d.next_due,
            });
            now += chrono::Duration::minutes(5);
        }
        ran
    }

    #[test]
    fn monday_nine_berlin_fires_once_per_monday_across_dst() {
        // Berlin moves to summer time on Sunday 28 March 2027.
        let s = monday_nine(CatchUp::Once);
        let mut state = None;
        let ran = cycles(&s, &mut state, utc(2027, 3, 18, 0, 0), utc(2027, 4, 6, 0, 0));
        assert_eq!(
            ran,
            vec![utc(2027, 3, 22, 8, 0), utc(2027, 3, 29, 7, 0), utc(2027, 4, 5, 7, 0)],
            "09:00 local: 08:00 UTC in winter, 07:00 UTC in summer, once each"
        );
    }

    #[test]
    fn next_due_times_follow_local_time() {
        let s = monday_nine(CatchUp::Once);
        assert_eq!(s.next_after(utc(2027, 3, 23, 0, 0)).unwrap(), utc(2027, 3, 29, 7, 0));
        assert_eq!(s.next_after(utc(2027, 10, 26, 0, 0)).unwrap(), utc(2027, 11, 1, 8, 0));
    }

    #[test]
    fn downtime_is_caught_up_once_or_skipped() {
        for (catch_up, expect_run) in [(CatchUp::Once, true), (CatchUp::Skip, false)] {
            let s = monday_nine(catch_up);
            // Last seen on Thursday; down over two Mondays; back on Wednesday.
            let state = State {
                spec: s.spec().to_owned(),
                next_due: utc(2027, 3, 22, 8, 0),
            };
            let now = utc(2027, 3, 31, 12, 0);
            let d = s.decide(Some(&state), now, GRACE).unwrap();
            assert_eq!(d.run.is_some(), expect_run, "{catch_up:?}");
            assert_eq!(d.next_due, utc(2027, 4, 5, 7, 0));
            let missed = d.missed.unwrap();
            assert_eq!(missed.latest, utc(2027, 3, 29, 7, 0));
            assert_eq!(missed.count, 2);
            assert_eq!(missed.caught_up, expect_run);
            if expect_run {
                assert_eq!(d.run, Some(utc(2027, 3, 29, 7, 0)));
            }
            // And only once: the next cycle is not due.
            let again = State {
                spec: s.spec().to_owned(),
                next_due: d.next_due,
            };
            let d2 = s
                .decide(Some(&again), now + chrono::Duration::minutes(5), GRACE)
                .unwrap();
            assert_eq!(d2.run, None);
        }
    }

    #[test]
    fn every_runs_at_once_then_per_period_under_shorter_cycles() {
        let s = Schedule::new(Some(Duration::from_secs(3600)), None, Tz::UTC, CatchUp::Once)
            .unwrap()
            .unwrap();
        let mut state = None;
        let start = utc(2027, 1, 4, 0, 0);
        let ran = cycles(&s, &mut state, start, utc(2027, 1, 4, 2, 55));
        assert_eq!(ran, vec![start, utc(2027, 1, 4, 1, 0), utc(2027, 1, 4, 2, 0)]);
    }

    #[test]
    fn a_changed_schedule_starts_afresh() {
        let s = monday_nine(CatchUp::Once);
        let stale = State {
            spec: "every 1h".into(),
            next_due: utc(2020, 1, 1, 0, 0),
        };
        let d = s.decide(Some(&stale), utc(2027, 3, 23, 0, 0), GRACE).unwrap();
        assert_eq!(d.run, None);
        assert_eq!(d.next_due, utc(2027, 3, 29, 7, 0));
    }

    #[test]
    fn a_long_downtime_is_bounded() {
        let s = Schedule::new(None, Some("* * * * *"), Tz::UTC, CatchUp::Once)
            .unwrap()
            .unwrap();
        let state = State {
            spec: s.spec().to_owned(),
            next_due: utc(2027, 1, 1, 0, 0),
        };
        let now = utc(2027, 3, 1, 0, 0);
        let d = s.decide(Some(&state), now, GRACE).unwrap();
        assert_eq!(d.run, Some(now));
        assert_eq!(d.next_due, utc(2027, 3, 1, 0, 1));
        assert_eq!(d.missed, None, "the latest due time is on time");
    }

    #[test]
    fn bad_keys_are_refused() {
        assert_eq!(
            Schedule::new(Some(Duration::from_secs(60)), Some("* * * * *"), Tz::UTC, CatchUp::Once).unwrap_err(),
            ScheduleError::Both
        );
        assert_eq!(
            Schedule::new(Some(Duration::ZERO), None, Tz::UTC, CatchUp::Once).unwrap_err(),
            ScheduleError::ZeroEvery
        );
        let e = Schedule::new(None, Some("0 9 * * FUNDAY"), Tz::UTC, CatchUp::Once).unwrap_err();
        assert!(matches!(e, ScheduleError::Cron { .. }), "{e}");
        let e = Schedule::new(None, Some("0 0 9 * * MON"), Tz::UTC, CatchUp::Once).unwrap_err();
        assert!(matches!(e, ScheduleError::Cron { .. }), "six fields: {e}");
        assert!(Schedule::new(None, None, Tz::UTC, CatchUp::Once).unwrap().is_none());
    }
}
