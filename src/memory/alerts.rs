//! Alert instances and source health: loading before planning, saving after.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use sqlx::Row as _;

use super::{Memory, MemoryError, SeriesKey, StoredPoints, query_err};
use crate::model::{AlertState, ConditionValues, Evidence, Instance, Labels, SourceHealth};
use crate::timefmt;

fn corrupt(what: &'static str) -> impl Fn(String) -> MemoryError {
    move |message| MemoryError::Corrupt { what, message }
}

/// The columns an [`Instance`] is read from.
const INSTANCE_COLUMNS: &str = "SELECT rule, labels, state, held, since, active_since, firing_since, false_since, \
     episode, evaluated_at, absent_evals FROM alert_instances";

/// Label sets read from memory, by their stored text: each distinct one is
/// decoded once and shared by every instance that has it. Ten rules over the
/// same 10,000 rows store 100,000 instances but only 10,000 label sets, and
/// decoding each copy was the largest part of a large cycle's memory (about
/// 540 bytes of map per instance).
#[derive(Default)]
struct SharedLabels(HashMap<String, Labels>);

impl SharedLabels {
    /// Starts from label sets already held (e.g. this cycle's rows), so an
    /// instance with one of them shares it instead of decoding its own.
    fn from_known(known: &[&Labels]) -> Self {
        let shared = known
            .iter()
            .map(|l| (super::observations::labels_json(l), (*l).clone()));
        Self(shared.collect())
    }

    /// The label set stored as `text`.
    fn get(&mut self, text: String) -> Result<Labels, serde_json::Error> {
        if let Some(labels) = self.0.get(&text) {
            return Ok(labels.clone());
        }
        let labels: Labels = serde_json::from_str(&text)?;
        self.0.insert(text, labels.clone());
        Ok(labels)
    }
}

/// One stored instance from its row.
fn decode_instance(r: &sqlx::sqlite::SqliteRow, shared: &mut SharedLabels) -> Result<Instance, MemoryError> {
    let bad = corrupt("alert_instances");
    let get = |c: &str| -> Result<Option<String>, MemoryError> { r.try_get(c).map_err(|e| bad(e.to_string())) };
    let labels = (shared.get(get("labels")?.unwrap_or_default())).map_err(|e| bad(e.to_string()))?;
    let state_text = get("state")?.unwrap_or_default();
    let state = AlertState::parse(&state_text).ok_or_else(|| bad(format!("unknown state {state_text:?}")))?;
    let since = opt_time(get("since")?).ok_or_else(|| bad("bad since".into()))?;
    let count = |c: &str| -> Result<u32, MemoryError> {
        Ok(r.try_get::<i64, _>(c)
            .map_err(|e| bad(e.to_string()))?
            .clamp(0, i64::from(u32::MAX)) as u32)
    };
    Ok(Instance {
        rule: get("rule")?.unwrap_or_default(),
        labels,
        state,
        held: get("held")?.as_deref().and_then(AlertState::parse),
        since,
        active_since: opt_time(get("active_since")?),
        firing_since: opt_time(get("firing_since")?),
        false_since: opt_time(get("false_since")?),
        episode: count("episode")?,
        evaluated_at: opt_time(get("evaluated_at")?).unwrap_or(since),
        absent: count("absent_evals")?,
    })
}

fn opt_time(text: Option<String>) -> Option<DateTime<Utc>> {
    text.as_deref().and_then(timefmt::from_db)
}

impl Memory {
    /// Every stored alert instance (see [`Memory::load_instances_sharing`]).
    pub async fn load_instances(&self) -> Result<Vec<Instance>, MemoryError> {
        self.load_instances_sharing(&[]).await
    }

    /// Every stored alert instance, decoded row by row as they are read (at
    /// 100,000 instances the whole answer held at once doubled the load).
    /// Equal label sets are decoded once and shared, and an instance whose
    /// labels equal one of `known` (this cycle's rows) shares that one.
    pub async fn load_instances_sharing(&self, known: &[&Labels]) -> Result<Vec<Instance>, MemoryError> {
        use futures_util::TryStreamExt as _;
        let mut shared = SharedLabels::from_known(known);
        let query = sqlx::AssertSqlSafe(format!("{INSTANCE_COLUMNS} ORDER BY rule, labels"));
        let mut rows = sqlx::query(query).fetch(&self.pool);
        let mut instances = Vec::new();
        while let Some(row) = rows.try_next().await.map_err(query_err("load alert instances"))? {
            instances.push(decode_instance(&row, &mut shared)?);
        }
        Ok(instances)
    }

    /// The stored instances among `keys` (rule, labels): what a group or a
    /// retry needs to know about its own instances, without reading all
    /// 100,000 of a large cycle.
    pub async fn instances_of(&self, keys: &[(String, Labels)]) -> Result<Vec<Instance>, MemoryError> {
        const ROWS: usize = 200;
        let mut found = Vec::new();
        let mut shared = SharedLabels::default();
        for chunk in keys.chunks(ROWS) {
            // Only placeholders are generated; every value is bound.
            let sql = format!(
                "{INSTANCE_COLUMNS} WHERE (rule, labels) IN (VALUES {})",
                super::values_placeholders(chunk.len(), 2)
            );
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
            for (rule, labels) in chunk {
                query = query.bind(rule).bind(super::observations::labels_json(labels));
            }
            let rows = (query.fetch_all(&self.pool).await).map_err(query_err("load alert instances"))?;
            for row in &rows {
                found.push(decode_instance(row, &mut shared)?);
            }
        }
        Ok(found)
    }

    /// Forgets inactive and resolved instances unchanged since before
    /// `cutoff`, raising each rule's episode floor to the highest episode it
    /// forgets (see migration 0011); returns how many were forgotten.
    pub async fn forget_instances(&self, cutoff: DateTime<Utc>) -> Result<u64, MemoryError> {
        let cutoff = timefmt::to_db(cutoff);
        let mut tx = self.pool.begin().await.map_err(query_err("begin forget instances"))?;
        sqlx::query(
            "INSERT INTO rule_episode_floors (rule, episode) \
             SELECT rule, MAX(episode) FROM alert_instances \
             WHERE state IN ('inactive', 'resolved') AND since < ?1 GROUP BY rule \
             ON CONFLICT (rule) DO UPDATE SET episode = MAX(episode, excluded.episode)",
        )
        .bind(&cutoff)
        .execute(&mut *tx)
        .await
        .map_err(query_err("raise episode floors"))?;
        let forgotten =
            sqlx::query("DELETE FROM alert_instances WHERE state IN ('inactive', 'resolved') AND since < ?1")
                .bind(&cutoff)
                .execute(&mut *tx)
                .await
                .map_err(query_err("forget instances"))?
                .rows_affected();
        tx.commit().await.map_err(query_err("commit forget instances"))?;
        Ok(forgotten)
    }

    /// Each rule's episode floor: new instances count their episodes from it.
    pub async fn episode_floors(&self) -> Result<HashMap<String, u32>, MemoryError> {
        let rows = sqlx::query("SELECT rule, episode FROM rule_episode_floors")
            .fetch_all(&self.pool)
            .await
            .map_err(query_err("load episode floors"))?;
        let bad = corrupt("rule_episode_floors");
        rows.iter()
            .map(|r| {
                let rule: String = r.try_get("rule").map_err(|e| bad(e.to_string()))?;
                let episode: i64 = r.try_get("episode").map_err(|e| bad(e.to_string()))?;
                Ok((rule, episode.clamp(0, i64::from(u32::MAX)) as u32))
            })
            .collect()
    }

    /// Stores instances (insert or replace), with the evidence of their last evaluation.
    pub async fn save_instances(&self, instances: &[(&Instance, &Evidence)]) -> Result<(), MemoryError> {
        let mut tx = self.pool.begin().await.map_err(query_err("begin save instances"))?;
        save_instances_in(&mut tx, instances).await?;
        tx.commit().await.map_err(query_err("commit alert instances"))
    }

    /// Consecutive-failure counts per source.
    pub async fn load_source_health(&self) -> Result<BTreeMap<String, SourceHealth>, MemoryError> {
        let rows = sqlx::query(
            "SELECT source, consecutive_failures, last_status, last_error, last_ok_at FROM source_health ORDER BY source",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(query_err("load source health"))?;
        let bad = corrupt("source_health");
        rows.iter()
            .map(|r| {
                let source: String = r.try_get("source").map_err(|e| bad(e.to_string()))?;
                let failures: i64 = r.try_get("consecutive_failures").map_err(|e| bad(e.to_string()))?;
                Ok((
                    source.clone(),
                    SourceHealth {
                        source,
                        consecutive_failures: failures.clamp(0, u32::MAX as i64) as u32,
                        last_status: r.try_get("last_status").map_err(|e| bad(e.to_string()))?,
                        last_error: r.try_get("last_error").map_err(|e| bad(e.to_string()))?,
                        last_ok_at: opt_time(r.try_get("last_ok_at").map_err(|e| bad(e.to_string()))?),
                    },
                ))
            })
            .collect()
    }

    /// Stores source health.
    pub async fn save_source_health(&self, health: &[SourceHealth], now: DateTime<Utc>) -> Result<(), MemoryError> {
        let mut tx = self.pool.begin().await.map_err(query_err("begin save source health"))?;
        for h in health {
            sqlx::query(
                "INSERT INTO source_health (source, consecutive_failures, last_status, last_error, last_ok_at, updated_at) \
                 VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (source) DO UPDATE SET \
                 consecutive_failures = excluded.consecutive_failures, last_status = excluded.last_status, \
                 last_error = excluded.last_error, last_ok_at = excluded.last_ok_at, updated_at = excluded.updated_at",
            )
            .bind(&h.source)
            .bind(i64::from(h.consecutive_failures))
            .bind(&h.last_status)
            .bind(h.last_error.as_deref())
            .bind(h.last_ok_at.map(timefmt::to_db))
            .bind(timefmt::to_db(now))
            .execute(&mut *tx)
            .await
            .map_err(query_err("save source health"))?;
        }
        tx.commit().await.map_err(query_err("commit source health"))
    }

    /// Points of one series in `[from, to)`, oldest first.
    pub async fn series_points_between(
        &self,
        key: &SeriesKey,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<StoredPoints, MemoryError> {
        let labels = super::observations::labels_json(&key.labels);
        let rows = sqlx::query(
            "SELECT p.at_ms, p.value FROM metric_points p JOIN series s ON s.id = p.series_id \
             WHERE s.source = ? AND s.metric = ? AND s.labels = ? AND p.at_ms >= ? AND p.at_ms < ? ORDER BY p.at_ms",
        )
        .bind(&key.source)
        .bind(&key.metric)
        .bind(labels)
        .bind(from.timestamp_millis())
        .bind(to.timestamp_millis())
        .fetch_all(&self.pool)
        .await
        .map_err(query_err("series points between"))?;
        rows.iter()
            .map(|r| {
                let at_ms: i64 = r.try_get(0).map_err(query_err("series points between"))?;
                let value: f64 = r.try_get(1).map_err(query_err("series points between"))?;
                let at = DateTime::from_timestamp_millis(at_ms).ok_or(MemoryError::Corrupt {
                    what: "metric_points.at_ms",
                    message: format!("{at_ms} is out of range"),
                })?;
                Ok((at, value))
            })
            .collect()
    }
}

/// Stores instances inside an open transaction (see [`Memory::save_instances`]).
pub(super) async fn save_instances_in(
    conn: &mut sqlx::SqliteConnection,
    instances: &[(&Instance, &Evidence)],
) -> Result<(), MemoryError> {
    // Many rows per statement: a cycle may carry 100,000 instances, and one
    // statement each would cost a round trip to SQLite's thread apiece.
    const ROWS: usize = 64;
    for chunk in instances.chunks(ROWS) {
        let sql = format!(
            "INSERT INTO alert_instances (rule, labels, state, held, since, active_since, firing_since, false_since, \
             episode, evaluated_at, evidence, absent_evals) VALUES {} \
             ON CONFLICT (rule, labels) DO UPDATE SET state = excluded.state, held = excluded.held, since = excluded.since, \
             active_since = excluded.active_since, firing_since = excluded.firing_since, false_since = excluded.false_since, \
             episode = excluded.episode, evaluated_at = excluded.evaluated_at, evidence = excluded.evidence, \
             absent_evals = excluded.absent_evals",
            super::values_placeholders(chunk.len(), 12)
        );
        // Only placeholders were generated above; every value is bound.
        let mut statement = sqlx::query(sqlx::AssertSqlSafe(sql));
        for (i, evidence) in chunk {
            statement = statement
                .bind(&i.rule)
                .bind(super::observations::labels_json(&i.labels))
                .bind(i.state.as_str())
                .bind(i.held.map(AlertState::as_str))
                .bind(timefmt::to_db(i.since))
                .bind(i.active_since.map(timefmt::to_db))
                .bind(i.firing_since.map(timefmt::to_db))
                .bind(i.false_since.map(timefmt::to_db))
                .bind(i64::from(i.episode))
                .bind(timefmt::to_db(i.evaluated_at))
                .bind(stored_evidence(evidence))
                .bind(i64::from(i.absent));
        }
        statement
            .execute(&mut *conn)
            .await
            .map_err(query_err("save alert instances"))?;
    }
    Ok(())
}

/// The evidence as stored beside its instance: what the row said (the
/// condition's values, the row's numbers, the row's time). The labels are
/// the instance's own column and the condition and source are the rule's,
/// so storing them again per instance would only grow the file (100,000
/// instances, 100 bytes each, rewritten every cycle).
fn stored_evidence(evidence: &Evidence) -> String {
    #[derive(serde::Serialize)]
    struct Stored<'a> {
        #[serde(skip_serializing_if = "ConditionValues::is_empty")]
        values: &'a ConditionValues,
        #[serde(skip_serializing_if = "BTreeMap::is_empty")]
        row: &'a BTreeMap<String, f64>,
        #[serde(skip_serializing_if = "Option::is_none")]
        at: Option<DateTime<Utc>>,
    }
    let stored = Stored {
        values: &evidence.values,
        row: &evidence.row,
        at: evidence.at,
    };
    serde_json::to_string(&stored).unwrap_or_else(|_| "{}".to_owned())
}
