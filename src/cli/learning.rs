//! `bi-agent feedback` and `bi-agent patterns`: telling the agent whether an
//! action helped, and showing what it learned. Presentation and argument
//! handling only; scoring and learning live in memory.

use std::process::ExitCode;

use anyhow::Context as _;

use crate::config::Settings;
use crate::memory::{FeedbackError, Memory};

use super::{EXIT_CONFIG, EXIT_RUNTIME};

/// What the person said about an action.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Verdict {
    /// It helped: 1.0.
    Useful,
    /// It was noise: 0.0.
    Noise,
    /// An explicit score, 0–1.
    Score(f64),
}

impl Verdict {
    fn score(self) -> f64 {
        match self {
            Self::Useful => 1.0,
            Self::Noise => 0.0,
            Self::Score(s) => s,
        }
    }
}

/// `bi-agent feedback ACTION_ID --useful|--noise|--score X [--note …]`:
/// overrides the automatic score of the action's latest live execution,
/// then learns again so the next cycle decides with it.
pub async fn feedback(
    settings: &Settings,
    action_id: &str,
    verdict: Verdict,
    note: Option<&str>,
) -> anyhow::Result<ExitCode> {
    let memory = Memory::open(&settings.memory.path, settings.memory.busy_timeout)
        .await
        .context("cannot open memory")?;
    let now = crate::clock::now();
    let result = memory.record_feedback(action_id, verdict.score(), note, now).await?;
    let applied = match result {
        Ok(a) => a,
        Err(e) => {
            memory.close().await;
            eprintln!("error: {e}");
            return Ok(ExitCode::from(match e {
                FeedbackError::NotFound(_) => EXIT_CONFIG,
                FeedbackError::Score(_) => EXIT_CONFIG,
            }));
        }
    };
    let learned = memory.learn_by(&settings.learning, now).await;
    memory.close().await;
    let learned = learned?;
    println!(
        "Feedback recorded for {} (run at {}): score {:.2}{}. Learned {} patterns ({} trusted).",
        applied.action_id,
        applied.executed_at.format("%Y-%m-%d %H:%M UTC"),
        applied.score,
        applied
            .auto_score
            .map(|a| format!(", replacing the automatic {a:.2}"))
            .unwrap_or_default(),
        learned.patterns,
        learned.trusted
    );
    Ok(ExitCode::SUCCESS)
}

/// `bi-agent patterns [--json]`: every learned group with its samples,
/// effectiveness and confidence; `*` marks the ones trusted enough to apply.
pub async fn patterns(settings: &Settings, json: bool) -> anyhow::Result<ExitCode> {
    let memory = match Memory::open_read_only(&settings.memory.path, settings.memory.busy_timeout).await {
        Ok(m) => m,
        Err(crate::memory::MemoryError::Missing { .. }) => {
            println!("No memory yet: nothing learned.");
            return Ok(ExitCode::SUCCESS);
        }
        Err(e) => return Err(e).context("cannot open memory"),
    };
    let learned = memory.learned().await;
    memory.close().await;
    let learned = match learned {
        Ok(l) => l,
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(ExitCode::from(EXIT_RUNTIME));
        }
    };
    let l = &settings.learning;
    let mut rows: Vec<_> = learned.patterns.into_iter().collect();
    rows.sort_by(|a, b| a.0.cmp(&b.0));
    if json {
        let out: Vec<serde_json::Value> = rows
            .iter()
            .map(|(k, s)| {
                serde_json::json!({
                    "kind": k.kind, "rule": k.rule, "template": k.template, "signature": k.signature,
                    "segment": k.segment, "samples": s.samples, "effectiveness": s.mean, "stddev": s.stddev,
                    "confidence": s.confidence, "trusted": s.trusted(l.min_samples, l.min_confidence),
                })
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(ExitCode::SUCCESS);
    }
    if rows.is_empty() {
        println!(
            "Nothing learned yet (patterns are learned every {} cycles and at shutdown).",
            l.learn_every
        );
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{:<2}{:<11}{:<28}{:<36}{:<18}{:>8}{:>10}{:>12}",
        "", "KIND", "RULE/ACTION", "SIGNATURE", "SEGMENT", "SAMPLES", "EFFECT.", "CONFIDENCE"
    );
    for (k, s) in &rows {
        println!(
            "{:<2}{:<11}{:<28}{:<36}{:<18}{:>8}{:>10.2}{:>12.2}",
            if s.trusted(l.min_samples, l.min_confidence) {
                "*"
            } else {
                ""
            },
            k.kind.as_str(),
            format!("{}/{}", k.rule, k.template),
            k.signature,
            if k.segment.is_empty() { "-" } else { &k.segment },
            s.samples,
            s.mean,
            s.confidence
        );
    }
    println!(
        "\n* trusted: at least {} outcomes and confidence ≥ {:.2}; only trusted patterns adjust parameters.",
        l.min_samples, l.min_confidence
    );
    Ok(ExitCode::SUCCESS)
}
