//! Choosing among a rule action's declared variants by learned
//! effectiveness, and letting a trusted pattern adjust a parameter the rule
//! allows to be adjusted.
//!
//! Variants are chosen by Thompson sampling: each variant's mean score is
//! given a Beta posterior from its learned outcomes and the highest draw
//! wins, so better variants are chosen more often while uncertain ones are
//! still tried. A floor (`learning.explore`) of choices is uniform at random,
//! so exploration never stops. The draw is seeded by the configured seed,
//! the action id and the firing episode: reproducible, and `bi-agent plan`
//! shows the same choice the daemon makes.
//!
//! Must never change a parameter the rule did not offer (`variants`) or
//! allow (`adjust`), nor address a role that is not configured.

use std::collections::{BTreeMap, BTreeSet};

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Beta, Distribution};
use serde_json::Value as Json;
use sha2::{Digest, Sha256};

use crate::config::{ActionKind, ActionTemplate, LearningSettings, RuleSettings, Settings, Severity};

use crate::model::Action;
use crate::model::learning::{self, parse_signature};
use crate::model::{LearnKey, Learned, PatternStats};

/// The most variant combinations one action may declare.
pub const MAX_ARMS: usize = 16;

/// Why a variant value cannot be applied.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum VariantError {
    /// `severity` is not a severity name.
    #[error("`{0}` is not a severity (info, low, medium, high, critical)")]
    Severity(String),
    /// `to` is not a list of configured roles.
    #[error("`to` must be a list of configured roles; `{0}` is not one")]
    Role(String),
    /// `priority` is not 1–5.
    #[error("`priority` must be 1 to 5, not {0}")]
    Priority(String),
    /// `queries` is not a list of configured queries.
    #[error("`queries` must be a list of configured queries; `{0}` is not one")]
    Query(String),
    /// More combinations than [`MAX_ARMS`].
    #[error("{0} variant combinations; at most {MAX_ARMS}")]
    TooMany(usize),
    /// A variant list with fewer than two entries.
    #[error("`{0}` needs at least two alternatives")]
    TooFew(String),
}

/// One combination of variant values, by parameter name.
pub type Arm = BTreeMap<String, Json>;

/// What is known to validate variant values.
#[derive(Debug, Clone, Default)]
pub struct Known {
    /// Configured roles.
    pub roles: BTreeSet<String>,
    /// Configured queries.
    pub queries: BTreeSet<String>,
}

/// Every combination of the declared variants, in declaration order.
pub fn arms(variants: &BTreeMap<String, Vec<toml::Value>>) -> Result<Vec<Arm>, VariantError> {
    let mut arms: Vec<Arm> = vec![Arm::new()];
    for (name, values) in variants {
        if values.len() < 2 {
            return Err(VariantError::TooFew(name.clone()));
        }
        let total = arms.len() * values.len();
        if total > MAX_ARMS {
            return Err(VariantError::TooMany(total));
        }
        arms = arms
            .into_iter()
            .flat_map(|arm| {
                values.iter().map(move |v| {
                    let mut next = arm.clone();
                    next.insert(name.clone(), serde_json::to_value(v).unwrap_or(Json::Null));
                    next
                })
            })
            .collect();
    }
    Ok(arms)
}

/// Sets one parameter of `action` to `value`.
pub fn set(action: &mut Action, name: &str, value: &Json, known: &Known) -> Result<(), VariantError> {
    let text = |v: &Json| v.as_str().map_or_else(|| v.to_string(), str::to_owned);
    let list = |v: &Json| -> Vec<String> {
        match v {
            Json::Array(items) => items.iter().map(text).collect(),
            other => text(other).split('+').map(str::to_owned).collect(),
        }
    };
    match name {
        "severity" => {
            let s = text(value);
            action.severity =
                serde_json::from_value::<Severity>(Json::String(s.clone())).map_err(|_| VariantError::Severity(s))?;
        }
        "to" => {
            let roles = list(value);
            if let Some(bad) = roles.iter().find(|r| !known.roles.contains(*r)) {
                return Err(VariantError::Role(bad.clone()));
            }
            action.to = roles;
        }
        "priority" => {
            let p = text(value);
            action.priority = p
                .parse::<u8>()
                .ok()
                .filter(|p| (1..=5).contains(p))
                .ok_or(VariantError::Priority(p))?;
        }
        "queries" => {
            let queries = list(value);
            if let Some(bad) = queries.iter().find(|q| !known.queries.contains(*q)) {
                return Err(VariantError::Query(bad.clone()));
            }
            action.queries = queries;
        }
        param => {
            action.params.insert(param.to_owned(), value.clone());
        }
    }
    Ok(())
}

/// Checks every arm against what is configured (at config load).
pub fn check(
    kind: ActionKind,
    variants: &BTreeMap<String, Vec<toml::Value>>,
    known: &Known,
) -> Result<(), VariantError> {
    let mut probe = Action::new("check", kind, crate::model::Origin::Llm);
    for arm in arms(variants)? {
        for (name, value) in &arm {
            set(&mut probe, name, value, known)?;
        }
    }
    Ok(())
}

/// How a variant was chosen, for the plan item's reason.
#[derive(Debug, Clone, PartialEq)]
pub struct Choice {
    /// The arm's index.
    pub index: usize,
    /// Chosen by the exploration floor rather than by learned effectiveness.
    pub explored: bool,
}

/// The seeded random stream of one decision.
pub fn rng_for(seed: u64, action_id: &str, episode: u32) -> ChaCha8Rng {
    let mut h = Sha256::new();
    h.update(seed.to_le_bytes());
    h.update(action_id.as_bytes());
    h.update(episode.to_le_bytes());
    let digest = h.finalize();
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(&digest[..8]);
    ChaCha8Rng::seed_from_u64(u64::from_le_bytes(bytes))
}

/// Thompson sampling over the arms' learned statistics, with an
/// exploration floor of `explore` uniform choices.
pub fn choose(stats: &[Option<PatternStats>], explore: f64, rng: &mut ChaCha8Rng) -> Choice {
    let n = stats.len().max(1);
    if rng.random::<f64>() < explore.clamp(0.0, 1.0) {
        return Choice {
            index: rng.random_range(0..n),
            explored: true,
        };
    }
    let mut best = (0, f64::MIN);
    for (i, s) in stats.iter().enumerate() {
        // A 0–1 score counts as a fractional success: Beta(1 + Σs, 1 + n − Σs).
        let (successes, failures) = s.map_or((0.0, 0.0), |s| {
            let n = s.samples as f64;
            (n * s.mean, n * (1.0 - s.mean))
        });
        let draw = Beta::new(1.0 + successes, 1.0 + failures)
            .map(|b| b.sample(rng))
            .unwrap_or(0.5);
        if draw > best.1 {
            best = (i, draw);
        }
    }
    Choice {
        index: best.0,
        explored: false,
    }
}

/// The reason text of a choice: `to=sales_director learned: 0.82 over 14
/// outcomes (Thompson sampling over 2 variants)`.
pub fn explain(signature: &str, choice: &Choice, stats: Option<&PatternStats>, arms: usize) -> String {
    let learned = stats.map_or_else(
        || "no outcomes yet".to_owned(),
        |s| format!("learned: {}", s.describe()),
    );
    if choice.explored {
        format!("{signature} explored at random ({learned}; 1 of {arms} variants)")
    } else {
        format!("{signature} {learned} (Thompson sampling over {arms} variants)")
    }
}

/// Where the rule allows it (`adjust`), moves an action to the best trusted
/// pattern of its group when that pattern beats the action's own trusted
/// pattern by at least `MARGIN`. Both must be trusted: a pattern is never
/// preferred merely because the current one has fewer outcomes. Returns the
/// reason when something changed.
pub fn adjust(
    action: &mut Action,
    adjustable: &[String],
    learned: &Learned,
    min_samples: u32,
    min_confidence: f64,
    known: &Known,
) -> Option<String> {
    /// The least improvement in mean effectiveness worth changing for.
    const MARGIN: f64 = 0.1;
    let key = action.learning.clone()?;
    let current = learned.get(action.kind, &key, &key.signature)?;
    if !current.trusted(min_samples, min_confidence) {
        return None;
    }
    let mine = parse_signature(&key.signature);
    let (best_sig, best) = learned
        .signatures(action.kind, &key)
        .filter(|(sig, s)| *sig != key.signature && s.trusted(min_samples, min_confidence))
        .filter(|(sig, _)| {
            let theirs = parse_signature(sig);
            theirs.len() == mine.len()
                && theirs
                    .iter()
                    .all(|(k, v)| mine.get(k) == Some(v) || adjustable.iter().any(|a| a == k))
        })
        .max_by(|a, b| a.1.mean.total_cmp(&b.1.mean).then_with(|| b.0.cmp(a.0)))?;
    if best.mean < current.mean + MARGIN {
        return None;
    }
    let mut changed = action.clone();
    let mut applied = Vec::new();
    for (k, v) in parse_signature(best_sig) {
        if mine.get(&k) != Some(&v) {
            let value = serde_json::from_str::<Json>(&v).unwrap_or(Json::String(v.clone()));
            set(&mut changed, &k, &value, known).ok()?;
            applied.push(format!("{k}={v}"));
        }
    }
    let reason = format!(
        "{} learned: {} (was {}: {})",
        applied.join(", "),
        best.describe(),
        key.signature,
        current.describe()
    );
    if let Some(l) = changed.learning.as_mut() {
        l.signature = best_sig.to_owned();
    }
    *action = changed;
    Some(reason)
}

/// Recomputes an action's signature after its parameters were chosen.
pub fn resign(action: &mut Action, names: &[String]) {
    let signature = action.signature(names);
    if let Some(l) = action.learning.as_mut() {
        l.signature = signature;
    }
}

/// How a rulebook uses what was learned: `[learning]` and what is configured.
#[derive(Debug, Clone, Default)]
pub struct LearningPolicy {
    /// `[learning]`.
    pub settings: LearningSettings,
    /// Configured roles and queries, for validating values.
    pub known: Known,
}

impl LearningPolicy {
    /// From the settings.
    pub fn new(settings: &Settings) -> Self {
        Self {
            settings: settings.learning.clone(),
            known: Known {
                roles: settings.roles.keys().cloned().collect(),
                queries: settings.queries.keys().cloned().collect(),
            },
        }
    }

    /// Whether [`LearningPolicy::apply`] can change more than the action's
    /// learning key (a variant or an adjustment may change its priority, so
    /// it must be applied before the plan is ordered).
    pub fn changes_action(template: &ActionTemplate) -> bool {
        !template.variants.is_empty() || !template.adjust.is_empty()
    }

    /// Gives a rule action its learning key, signed with what it is now.
    pub fn key(&self, rule: &RuleSettings, template: &ActionTemplate, action: &mut Action) {
        let labels = (action.instance.as_ref()).map(|i| i.labels.clone()).unwrap_or_default();
        let segment = learning::segment(&labels, &rule.learn_by);
        let window = rule.outcome_window.unwrap_or(self.settings.outcome_window);
        action.learning = Some(Box::new(LearnKey {
            rule: rule.name.clone(),
            template: template.id.clone(),
            signature: String::new(),
            segment,
            window_secs: window.as_secs(),
        }));
        resign(action, &[]);
    }

    /// Gives a rule action its learning key, then picks its variant (or
    /// applies a trusted pattern where the rule allows it), and says so in
    /// its reason.
    pub fn apply(&self, rule: &RuleSettings, template: &ActionTemplate, action: &mut Action, learned: &Learned) {
        let episode = action.instance.as_ref().map_or(0, |i| i.episode);
        self.key(rule, template, action);
        if template.variants.is_empty() {
            if !template.adjust.is_empty()
                && let Some(why) = adjust(
                    action,
                    &template.adjust,
                    learned,
                    self.settings.min_samples,
                    self.settings.min_confidence,
                    &self.known,
                )
            {
                action.reason.push_str(&format!("; {why}"));
            }
            return;
        }
        let names: Vec<String> = template.variants.keys().cloned().collect();
        // Checked when the rules compiled; an error here means no variants.
        let Ok(arms) = arms(&template.variants) else {
            resign(action, &[]);
            return;
        };
        let mut candidates = Vec::with_capacity(arms.len());
        for arm in &arms {
            let mut candidate = action.clone();
            if arm.iter().all(|(k, v)| set(&mut candidate, k, v, &self.known).is_ok()) {
                resign(&mut candidate, &names);
                candidates.push(candidate);
            }
        }
        if candidates.is_empty() {
            resign(action, &[]);
            return;
        }
        let stats: Vec<Option<PatternStats>> = candidates
            .iter()
            .map(|c| {
                let key = c.learning.as_ref()?;
                learned.get(c.kind, key, &key.signature).copied()
            })
            .collect();
        let mut rng = rng_for(self.settings.seed, &action.id, episode);
        let choice = choose(&stats, self.settings.explore, &mut rng);
        let mut chosen = candidates.swap_remove(choice.index);
        let signature = chosen
            .learning
            .as_ref()
            .map(|l| l.signature.clone())
            .unwrap_or_default();
        let why = explain(&signature, &choice, stats[choice.index].as_ref(), arms.len());
        chosen.reason.push_str(&format!("; {why}"));
        *action = chosen;
    }

    /// Problems with a rule action's `variants` and `adjust`: (field, what is wrong).
    pub fn check_template(&self, template: &ActionTemplate) -> Vec<(&'static str, String)> {
        let mut problems = Vec::new();
        if !template.variants.is_empty()
            && let Err(e) = check(template.kind, &template.variants, &self.known)
        {
            problems.push(("variants", e.to_string()));
        }
        for name in &template.adjust {
            let allowed = ["severity", "to", "priority"].contains(&name.as_str()) || template.params.contains_key(name);
            if !allowed {
                problems.push((
                    "adjust",
                    format!("`{name}` cannot be adjusted (severity, to, priority or one of the action's params)"),
                ));
            }
        }
        if !template.variants.is_empty() && !template.adjust.is_empty() {
            problems.push((
                "adjust",
                "an action with `variants` chooses among them; drop `adjust`".to_owned(),
            ));
        }
        problems
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::learning::PatternKey;

    fn stats(samples: u64, mean: f64) -> Option<PatternStats> {
        let sum = samples as f64 * mean;
        // Bernoulli-like spread.
        Some(PatternStats::from_sums(samples, sum, sum))
    }

    #[test]
    fn arms_are_the_combinations() {
        let v: BTreeMap<String, Vec<toml::Value>> = [
            ("severity".into(), vec!["medium".into(), "high".into()]),
            ("offer".into(), vec![0.into(), 20.into(), 40.into()]),
        ]
        .into();
        assert_eq!(arms(&v).unwrap().len(), 6);
        let one: BTreeMap<String, Vec<toml::Value>> = [("offer".into(), vec![0.into()])].into();
        assert_eq!(arms(&one), Err(VariantError::TooFew("offer".into())));
    }

    #[test]
    fn the_better_arm_wins_most_draws_and_exploration_never_stops() {
        let s = [stats(100, 0.7), stats(100, 0.4)];
        let mut rng = rng_for(7, "x", 0);
        let picks: Vec<Choice> = (0..2000).map(|_| choose(&s, 0.1, &mut rng)).collect();
        let a = picks.iter().filter(|c| c.index == 0).count();
        assert!(a > 1800, "{a}");
        assert!(picks.iter().any(|c| c.index == 1), "exploration stopped");
        assert!(picks.iter().filter(|c| c.explored).count() > 100);
    }

    #[test]
    fn equal_arms_split() {
        let s = [stats(50, 0.5), stats(50, 0.5)];
        let mut rng = rng_for(1, "x", 0);
        let a = (0..2000).filter(|_| choose(&s, 0.1, &mut rng).index == 0).count();
        assert!((800..1200).contains(&a), "{a}");
    }

    #[test]
    fn adjust_needs_a_trusted_better_pattern_and_permission() {
        let known = Known {
            roles: ["team".to_owned(), "director".to_owned()].into(),
            ..Known::default()
        };
        let mut a = Action::new("r/a/-", ActionKind::Notify, crate::model::Origin::Rule("r".into()));
        a.to = vec!["team".into()];
        a.learning = Some(Box::new(LearnKey {
            rule: "r".into(),
            template: "a".into(),
            signature: a.signature(&[]),
            segment: String::new(),
            window_secs: 3600,
        }));
        let key = |sig: &str| PatternKey {
            kind: ActionKind::Notify,
            rule: "r".into(),
            template: "a".into(),
            signature: sig.into(),
            segment: String::new(),
        };
        let mine = a.learning.clone().unwrap().signature;
        let theirs = mine.replace("to=team", "to=director");
        let mut learned = Learned::default();
        learned
            .patterns
            .insert(key(&mine), PatternStats::from_sums(20, 8.0, 8.0));
        learned
            .patterns
            .insert(key(&theirs), PatternStats::from_sums(20, 17.0, 17.0));
        let mut b = a.clone();
        assert_eq!(adjust(&mut b, &[], &learned, 5, 0.7, &known), None, "not allowed");
        let reason = adjust(&mut b, &["to".into()], &learned, 5, 0.7, &known).unwrap();
        assert_eq!(b.to, vec!["director".to_owned()]);
        assert!(
            reason.starts_with("to=director learned: 0.85 over 20 outcomes"),
            "{reason}"
        );
        // Equal outcomes: nothing moves, whichever was used more.
        learned
            .patterns
            .insert(key(&mine), PatternStats::from_sums(200, 100.0, 100.0));
        learned
            .patterns
            .insert(key(&theirs), PatternStats::from_sums(20, 10.0, 10.0));
        let mut c = a.clone();
        assert_eq!(adjust(&mut c, &["to".into()], &learned, 5, 0.7, &known), None);
    }
}
