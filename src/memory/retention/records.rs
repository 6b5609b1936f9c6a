//! Retention of what the agent did: action outcomes, delivered effects,
//! learning samples, decided approvals, LLM calls, message lists and ended
//! silences older than
//! `memory.retention`, so a daemon that runs for years keeps a file of
//! steady size.
//!
//! It must never forget what keeps a notification from being sent twice: an
//! effect still in flight (dispatching, retrying, held, queued) or whose
//! answer is unknown stays, and so does the newest notification of every
//! action whose alert instance is still in the episode it notified (the
//! planner reads it for repeat intervals, however long the episode lasts).

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use sqlx::Row as _;

use super::{BATCH, PruneStats};
use crate::memory::{Memory, MemoryError, query_err};
use crate::model::{Labels, labels_text};
use crate::timefmt;

/// Effects whose delivery is settled for good: only these are ever pruned.
/// (Macros, so the statements stay `&'static str` built by `concat!`.)
macro_rules! settled {
    () => {
        "('sent', 'failed', 'simulated', 'digested')"
    };
}

/// A later notification of the same action exists: effect `e` no longer
/// says when the action last notified.
macro_rules! superseded {
    () => {
        "EXISTS (SELECT 1 FROM effects n WHERE n.action_id = e.action_id AND n.dry_run = e.dry_run \
         AND (n.episode > e.episode OR (n.episode = e.episode AND n.repeat > e.repeat)))"
    };
}

impl Memory {
    /// Deletes the records of actions settled before `cutoff`, and learning
    /// samples executed before `samples_cutoff` (the older of the retention
    /// and learning window cutoffs, so learning never loses its window).
    pub async fn prune_records_before(
        &self,
        cutoff: DateTime<Utc>,
        samples_cutoff: DateTime<Utc>,
    ) -> Result<PruneStats, MemoryError> {
        let cutoff_text = timefmt::to_db(cutoff);
        let mut stats = PruneStats {
            outcomes: self.prune_outcomes(&cutoff_text).await?,
            ..PruneStats::default()
        };
        stats.effects = self
            .delete_batched(
                concat!(
                    "DELETE FROM effects WHERE rowid IN (SELECT e.rowid FROM effects e \
                     WHERE e.dry_run IN (0, 1) AND e.created_at < ?1 AND e.status IN ",
                    settled!(),
                    " AND ",
                    superseded!(),
                    " LIMIT ?2)"
                ),
                &cutoff_text,
            )
            .await?;
        stats.effects += self.prune_last_effects_of_gone_instances(&cutoff_text).await?;
        stats.samples = self
            .delete_batched(
                "DELETE FROM learning_samples WHERE id IN (SELECT id FROM learning_samples \
                 WHERE dry_run IN (0, 1) AND executed_at < ?1 LIMIT ?2)",
                &timefmt::to_db(samples_cutoff),
            )
            .await?;
        stats.approvals = self
            .delete_batched(
                "DELETE FROM approvals WHERE id IN (SELECT id FROM approvals \
                 WHERE status <> 'pending' AND created_at < ?1 LIMIT ?2)",
                &cutoff_text,
            )
            .await?;
        stats.llm_calls = self
            .delete_batched(
                "DELETE FROM llm_calls WHERE id IN (SELECT id FROM llm_calls WHERE at < ?1 LIMIT ?2)",
                &cutoff_text,
            )
            .await?;
        self.delete_batched(
            "DELETE FROM llm_cache WHERE situation_hash IN \
             (SELECT situation_hash FROM llm_cache WHERE created_at < ?1 LIMIT ?2)",
            &cutoff_text,
        )
        .await?;
        self.delete_batched(
            "DELETE FROM message_lists WHERE rowid IN \
             (SELECT rowid FROM message_lists WHERE created_at < ?1 LIMIT ?2)",
            &cutoff_text,
        )
        .await?;
        self.delete_batched(
            "DELETE FROM silences WHERE rowid IN (SELECT rowid FROM silences WHERE ends_at < ?1 LIMIT ?2)",
            &cutoff_text,
        )
        .await?;
        Ok(stats)
    }

    /// Outcomes started before the cutoff, with their links to effects; an
    /// outcome stays while one of its effects is still being delivered (it is
    /// updated when that effect settles).
    async fn prune_outcomes(&self, cutoff: &str) -> Result<u64, MemoryError> {
        let mut total = 0;
        loop {
            let mut tx = self.pool.begin().await.map_err(query_err("begin prune outcomes"))?;
            let ids: Vec<i64> = sqlx::query_scalar(concat!(
                "SELECT o.id FROM action_outcomes o WHERE o.started_at < ?1 AND NOT EXISTS \
                 (SELECT 1 FROM effect_outcomes l JOIN effects f ON f.key = l.effect_key AND f.dry_run = l.dry_run \
                 WHERE l.outcome_id = o.id AND f.status NOT IN ",
                settled!(),
                ") LIMIT ?2"
            ))
            .bind(cutoff)
            .bind(BATCH)
            .fetch_all(&mut *tx)
            .await
            .map_err(query_err("find old outcomes"))?;
            if ids.is_empty() {
                return Ok(total);
            }
            // Bound as one JSON array: a batch would exceed SQLite's limit on
            // bound parameters.
            let list = serde_json::Value::from(ids.clone()).to_string();
            sqlx::query("DELETE FROM effect_outcomes WHERE outcome_id IN (SELECT value FROM json_each(?))")
                .bind(&list)
                .execute(&mut *tx)
                .await
                .map_err(query_err("prune effect outcomes"))?;
            sqlx::query("DELETE FROM action_outcomes WHERE id IN (SELECT value FROM json_each(?))")
                .bind(&list)
                .execute(&mut *tx)
                .await
                .map_err(query_err("prune outcomes"))?;
            tx.commit().await.map_err(query_err("commit prune outcomes"))?;
            total += ids.len() as u64;
            if ids.len() < BATCH as usize {
                return Ok(total);
            }
        }
    }

    /// The newest settled effect of a rule action whose instance has since
    /// been forgotten, or has moved on to a later episode: nothing reads it
    /// any more (a new episode counts its repeats afresh). Actions that are
    /// not a rule's (reports, LLM proposals) keep their newest effect.
    async fn prune_last_effects_of_gone_instances(&self, cutoff: &str) -> Result<u64, MemoryError> {
        let rows = sqlx::query(concat!(
            "SELECT e.rowid AS id, e.action_id, e.episode FROM effects e \
             WHERE e.dry_run IN (0, 1) AND e.created_at < ?1 AND e.status IN ",
            settled!(),
            " AND NOT ",
            superseded!(),
            " LIMIT ?2"
        ))
        .bind(cutoff)
        .bind(BATCH)
        .fetch_all(&self.pool)
        .await
        .map_err(query_err("find last effects"))?;
        let rules: HashSet<String> = sqlx::query_scalar("SELECT rule FROM rule_episode_floors")
            .fetch_all(&self.pool)
            .await
            .map_err(query_err("load episode floors"))?
            .into_iter()
            .collect();
        // Per rule, each stored instance's labels (as action ids write them)
        // and episode; loaded only for rules that have old effects.
        let mut episodes: HashMap<String, Option<HashMap<String, i64>>> = HashMap::new();
        let mut gone = Vec::new();
        for r in &rows {
            let id: i64 = r.try_get("id").map_err(query_err("find last effects"))?;
            let action: String = r.try_get("action_id").map_err(query_err("find last effects"))?;
            let episode: i64 = r.try_get("episode").map_err(query_err("find last effects"))?;
            // A rule action's id is `rule/action/labels`; only rules that
            // have forgotten instances can have effects of gone ones.
            let Some((rule, rest)) = action.split_once('/') else {
                continue;
            };
            let Some((_, labels)) = rest.split_once('/') else {
                continue;
            };
            if !rules.contains(rule) {
                continue;
            }
            if !episodes.contains_key(rule) {
                episodes.insert(rule.to_owned(), self.instance_episodes(rule).await?);
            }
            // A rule with an unreadable instance keeps all its effects.
            if let Some(Some(stored)) = episodes.get(rule)
                && stored.get(labels) != Some(&episode)
            {
                gone.push(id);
            }
        }
        let mut total = 0;
        for chunk in gone.chunks(BATCH as usize) {
            let list = serde_json::Value::from(chunk.to_vec()).to_string();
            total += sqlx::query("DELETE FROM effects WHERE rowid IN (SELECT value FROM json_each(?))")
                .bind(&list)
                .execute(&self.pool)
                .await
                .map_err(query_err("prune last effects"))?
                .rows_affected();
        }
        Ok(total)
    }

    /// Every stored instance of `rule`: its labels as action ids write them,
    /// and its episode; `None` if one instance's labels cannot be read.
    async fn instance_episodes(&self, rule: &str) -> Result<Option<HashMap<String, i64>>, MemoryError> {
        let rows = sqlx::query("SELECT labels, episode FROM alert_instances WHERE rule = ?")
            .bind(rule)
            .fetch_all(&self.pool)
            .await
            .map_err(query_err("load instance episodes"))?;
        let mut out = HashMap::with_capacity(rows.len());
        for r in rows {
            let json: String = r.try_get("labels").map_err(query_err("load instance episodes"))?;
            let episode: i64 = r.try_get("episode").map_err(query_err("load instance episodes"))?;
            // Unreadable labels could be any effect's: prune none of the rule's.
            let Ok(labels) = serde_json::from_str::<Labels>(&json) else {
                return Ok(None);
            };
            out.insert(labels_text(&labels), episode);
        }
        Ok(Some(out))
    }
}
