//! What the LLM may propose: [`validate`] turns an answer into actions.
//!
//! The answer is parsed strictly (unknown fields rejected), then each
//! proposal is checked on its own — kind allowed, roles / queries /
//! endpoints named in the config (never a raw address, URL or SQL),
//! priority 1–5, `after` known, message within size. Invalid proposals are
//! dropped one by one, each with its reason. Valid ones get ids in their own
//! namespace (`llm/…`), so they can never merge into a rule's action;
//! low-confidence ones, and kinds that need approval, are marked to wait for
//! a person; ones whose roles reach a kind the LLM may not use are refused.
//!
//! Pure: no I/O. Nothing the LLM says reaches SQL, a URL or a recipient list.

use std::collections::{BTreeMap, BTreeSet};

use serde::Deserialize;
use serde_json::Value;

use crate::config::{ActionKind, LlmSettings, Settings};
use crate::model::{Action, AlertState, InstanceRef, InstanceUpdate, LeftOut, Origin, Planned, labels_text};

/// One proposal as the LLM must write it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct Proposal {
    id: String,
    kind: String,
    #[serde(default)]
    instance: String,
    #[serde(default)]
    to: Vec<String>,
    #[serde(default)]
    after: Vec<String>,
    priority: i64,
    #[serde(default)]
    subject: String,
    #[serde(default)]
    message: String,
    #[serde(default)]
    queries: Vec<String>,
    #[serde(default)]
    endpoint: String,
    #[serde(default)]
    reasoning: String,
    confidence: f64,
}

/// The outcome of validating an answer.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Validated {
    /// Actions ready for the plan.
    pub actions: Vec<Action>,
    /// `(proposal id, reason)` for every proposal dropped as malformed.
    pub dropped: Vec<(String, String)>,
    /// Well-formed proposals refused because of what they would reach; kept
    /// as actions so the refusal is recorded with them.
    pub refused: Vec<LeftOut>,
}

/// What an otherwise valid proposal may do given the targets its roles
/// reach: a role can hold `webhook:…` targets, so a `notify` or `report`
/// can reach a webhook endpoint without being a `webhook` action.
enum Reach {
    /// Everything it reaches is allowed for the LLM.
    Allowed,
    /// It reaches a kind that waits for a person (`guardrails.require_approval`).
    NeedsApproval(String),
    /// It reaches a kind the LLM may not use (`llm.allowed_kinds`).
    Refused(String),
}

/// Checks the targets `action` reaches through its roles against what the
/// LLM may use.
fn reach(action: &Action, settings: &Settings, llm: &LlmSettings) -> Reach {
    let mut webhooks: Vec<String> = (action.to.iter())
        .filter_map(|role| settings.roles.get(role))
        .flat_map(|r| r.targets.iter())
        .filter(|t| t.starts_with("webhook:"))
        .cloned()
        .collect();
    if let Some(e) = &action.endpoint {
        webhooks.push(format!("webhook:{e}"));
    }
    webhooks.sort();
    webhooks.dedup();
    if webhooks.is_empty() {
        return Reach::Allowed;
    }
    let list = webhooks.join(", ");
    // A `webhook` action passed `llm.allowed_kinds` by its own kind already.
    if action.kind != ActionKind::Webhook && !llm.allowed_kinds.contains(&ActionKind::Webhook) {
        return Reach::Refused(format!(
            "its roles reach {list}, and webhook is not in llm.allowed_kinds"
        ));
    }
    if settings.guardrails.require_approval.contains(&ActionKind::Webhook) {
        return Reach::NeedsApproval(format!(
            "it reaches {list}, and webhook is in guardrails.require_approval"
        ));
    }
    Reach::Allowed
}

/// Why an answer as a whole could not be read (worth a re-ask).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct AnswerError(pub String);

/// Parses and validates an answer. A malformed answer as a whole is an
/// [`AnswerError`] (the caller may re-ask with its text); malformed or
/// disallowed proposals inside a well-formed answer are dropped one by one.
pub fn validate(text: &str, settings: &Settings, planned: &Planned) -> Result<Validated, AnswerError> {
    let items = parse_answer(text)?;
    let Some(llm) = settings.llm.as_ref() else {
        return Ok(Validated::default());
    };
    let mut out = Validated::default();
    let mut parsed: Vec<Proposal> = Vec::new();
    for (i, item) in items.into_iter().enumerate() {
        let name = (item.get("id").and_then(Value::as_str)).map_or_else(|| format!("#{i}"), str::to_owned);
        match serde_json::from_value::<Proposal>(item) {
            Ok(p) => parsed.push(p),
            Err(e) => out.dropped.push((name, format!("does not follow the schema: {e}"))),
        }
    }
    if parsed.len() > llm.max_proposals {
        for p in parsed.split_off(llm.max_proposals) {
            out.dropped
                .push((p.id, format!("over the limit of {} proposals", llm.max_proposals)));
        }
    }
    let mut checker = Checker {
        settings,
        llm,
        instances: (planned.instances.iter())
            .filter(|u| u.instance.state == AlertState::Firing)
            .map(|u| {
                let name = format!("{}{{{}}}", u.instance.rule, labels_text(&u.instance.labels));
                (name, u)
            })
            .collect(),
        planned_ids: planned.plan.items.iter().map(|a| a.id.as_str()).collect(),
        proposal_ids: parsed.iter().map(|p| p.id.clone()).collect(),
        seen: BTreeSet::new(),
    };
    for p in parsed {
        match checker.check(&p) {
            Ok(mut a) => match reach(&a, settings, llm) {
                Reach::Allowed => out.actions.push(a),
                Reach::NeedsApproval(why) => {
                    a.require_approval = true;
                    a.reason = format!("{}; needs approval: {why}", a.reason);
                    out.actions.push(a);
                }
                Reach::Refused(why) => out.refused.push(LeftOut {
                    action: a,
                    reason: format!("LLM proposal refused: {why}"),
                }),
            },
            Err(reason) => out.dropped.push((p.id.clone(), reason)),
        }
    }
    Ok(out)
}

/// The `proposals` array of an answer that must be `{"proposals": [...]}`.
fn parse_answer(text: &str) -> Result<Vec<Value>, AnswerError> {
    let root: Value =
        serde_json::from_str(text.trim()).map_err(|e| AnswerError(format!("the answer is not valid JSON: {e}")))?;
    let Value::Object(mut obj) = root else {
        return Err(AnswerError(
            "the answer must be a JSON object with a `proposals` array".into(),
        ));
    };
    if let Some(extra) = obj.keys().find(|k| *k != "proposals") {
        return Err(AnswerError(format!(
            "unknown field `{extra}` at the top level (only `proposals`)"
        )));
    }
    match obj.remove("proposals") {
        Some(Value::Array(items)) => Ok(items),
        _ => Err(AnswerError("`proposals` must be an array".into())),
    }
}

/// At most `max` characters of a name the LLM wrote, for an error message.
fn quoted(text: &str, max: usize) -> String {
    text.chars().take(max).collect()
}

/// Checks proposals one by one against the config and the cycle.
struct Checker<'a> {
    settings: &'a Settings,
    llm: &'a LlmSettings,
    /// Firing instances by `rule{labels}`.
    instances: BTreeMap<String, &'a InstanceUpdate>,
    planned_ids: BTreeSet<&'a str>,
    proposal_ids: BTreeSet<String>,
    seen: BTreeSet<String>,
}

impl Checker<'_> {
    /// The action `p` proposes, or why it is dropped.
    fn check(&mut self, p: &Proposal) -> Result<Action, String> {
        if p.id.is_empty()
            || p.id.len() > 40
            || !p.id.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            return Err("id must be 1–40 letters, digits, _ or -".into());
        }
        if !self.seen.insert(p.id.clone()) {
            return Err("duplicate proposal id".into());
        }
        let kind: ActionKind = serde_json::from_value(Value::String(p.kind.clone()))
            .map_err(|_| format!("unknown kind \"{}\"", p.kind))?;
        if !self.llm.allowed_kinds.contains(&kind) {
            return Err(format!(
                "kind \"{}\" is not allowed for the LLM (llm.allowed_kinds)",
                kind.as_str()
            ));
        }
        self.check_names(p, kind)?;
        if !(1..=5).contains(&p.priority) {
            return Err(format!("priority {} is outside 1–5", p.priority));
        }
        if !(0.0..=1.0).contains(&p.confidence) || !p.confidence.is_finite() {
            return Err(format!("confidence {} is outside 0–1", p.confidence));
        }
        if p.message.chars().count() > self.llm.max_message_chars || p.subject.chars().count() > 200 {
            return Err(format!("message longer than {} characters", self.llm.max_message_chars));
        }
        let instance = if p.instance.is_empty() {
            None
        } else {
            let found = self.instances.get(&p.instance).copied();
            Some(found.ok_or_else(|| format!("unknown instance \"{}\"", quoted(&p.instance, 80)))?)
        };
        let labels = instance.map(|u| u.instance.labels.clone()).unwrap_or_default();
        let mut after = Vec::new();
        for dep in &p.after {
            if self.planned_ids.contains(dep.as_str()) {
                after.push(dep.clone());
            } else if self.proposal_ids.contains(dep) {
                after.push(format!("llm/{dep}/{}", labels_text(&labels)));
            } else {
                return Err(format!("`after` names unknown action \"{}\"", quoted(dep, 80)));
            }
        }
        let mut action = Action::new(format!("llm/{}/{}", p.id, labels_text(&labels)), kind, Origin::Llm);
        if let Some(update) = instance {
            let i = &update.instance;
            action.instance = Some(InstanceRef {
                rule: i.rule.clone(),
                labels: i.labels.clone(),
                episode: i.episode,
                resolved: false,
            });
            *action.evidence = update.full_evidence();
        }
        action.after = after;
        self.fill(&mut action, p);
        Ok(action)
    }

    /// Roles, queries and the endpoint must be names from the config.
    fn check_names(&self, p: &Proposal, kind: ActionKind) -> Result<(), String> {
        for role in &p.to {
            if role.contains('@') || role.contains(':') || role.contains('#') || role.contains('/') {
                return Err(format!("`to` must name roles, not addresses: \"{}\"", quoted(role, 60)));
            }
            if !self.settings.roles.contains_key(role) {
                return Err(format!("unknown role \"{}\"", quoted(role, 60)));
            }
        }
        if matches!(kind, ActionKind::Notify | ActionKind::Escalate | ActionKind::Report) && p.to.is_empty() {
            return Err(format!("a {} needs `to` roles", kind.as_str()));
        }
        if let Some(q) = p.queries.iter().find(|q| !self.settings.queries.contains_key(*q)) {
            return Err(format!("unknown query \"{}\"", quoted(q, 60)));
        }
        if kind == ActionKind::Investigate && p.queries.is_empty() {
            return Err("an investigate needs `queries`".into());
        }
        if !p.endpoint.is_empty() && !self.settings.endpoints.contains_key(&p.endpoint) {
            return Err(format!("unknown endpoint \"{}\"", quoted(&p.endpoint, 60)));
        }
        if kind == ActionKind::Webhook && p.endpoint.is_empty() {
            return Err("a webhook needs an `endpoint`".into());
        }
        Ok(())
    }

    /// Copies the checked fields of `p` into `action`.
    fn fill(&self, action: &mut Action, p: &Proposal) {
        action.to = p.to.clone();
        // Checked to be 1–5 above.
        action.priority = u8::try_from(p.priority).unwrap_or(5);
        action.message = (!p.message.is_empty()).then(|| p.message.clone());
        action.subject = (!p.subject.is_empty()).then(|| p.subject.clone());
        action.queries = p.queries.clone();
        action.endpoint = (!p.endpoint.is_empty()).then(|| p.endpoint.clone());
        action.confidence = p.confidence;
        action.require_approval = p.confidence < self.llm.min_confidence;
        let wait = if action.require_approval {
            ", below llm.min_confidence: needs approval"
        } else {
            ""
        };
        action.reason = format!(
            "proposed by the LLM (confidence {:.2}{wait}): {}",
            p.confidence,
            quoted(&p.reasoning, 300)
        );
        action.rank = u32::MAX - 1;
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn settings() -> Settings {
        let text = "[agent]\nname = \"t\"\n[memory]\npath = \"m.db\"\n\
            [channels.slack]\nkind = \"slack\"\nwebhook_url = \"http://127.0.0.1:9/h\"\n\
            [endpoints.crm]\nurl = \"http://127.0.0.1:9/crm\"\n\
            [roles]\nops = [\"slack:#ops\"]\n\
            [sources.s]\nkind = \"sql\"\nurl = \"sqlite://w.db\"\nsql = \"SELECT region, v FROM t\"\n\
            [queries.q]\nsource = \"s\"\nsql = \"SELECT 1 AS one\"\n\
            [llm]\nbase_url = \"http://127.0.0.1:9/v1\"\nmodel = \"m\"\n\
            allowed_kinds = [\"notify\", \"investigate\", \"webhook\"]\n";
        Settings::from_toml_str(text, Vec::new(), &|_| None).unwrap()
    }

    fn one(p: serde_json::Value) -> Result<Validated, AnswerError> {
        validate(
            &json!({ "proposals": [p] }).to_string(),
            &settings(),
            &Planned::default(),
        )
    }

    fn p(kind: &str, to: &[&str], queries: &[&str], endpoint: &str) -> serde_json::Value {
        json!({"id": "x", "kind": kind, "instance": "", "to": to, "after": [], "priority": 2, "subject": "",
               "message": "m", "queries": queries, "endpoint": endpoint, "reasoning": "r", "confidence": 0.9})
    }

    fn reason(v: Validated) -> String {
        assert!(v.actions.is_empty(), "{:?}", v.actions);
        v.dropped[0].1.clone()
    }

    #[test]
    fn names_must_be_configured_and_addresses_are_refused() {
        assert!(reason(one(p("notify", &["ops@example.com"], &[], "")).unwrap()).contains("roles, not addresses"));
        assert!(reason(one(p("notify", &["board"], &[], "")).unwrap()).contains("unknown role \"board\""));
        assert!(reason(one(p("investigate", &[], &["drop_all"], "")).unwrap()).contains("unknown query"));
        assert!(reason(one(p("webhook", &[], &[], "https://evil.test/x")).unwrap()).contains("unknown endpoint"));
        assert!(reason(one(p("escalate", &["ops"], &[], "")).unwrap()).contains("not allowed for the LLM"));
        let ok = one(p("webhook", &[], &[], "crm")).unwrap();
        assert_eq!(ok.actions[0].id, "llm/x/-");
        assert_eq!(ok.actions[0].origin, Origin::Llm);
    }

    #[test]
    fn the_answer_itself_must_be_the_agreed_shape() {
        let s = settings();
        let planned = Planned::default();
        assert!(validate("nope", &s, &planned).unwrap_err().0.contains("not valid JSON"));
        assert!(validate("[]", &s, &planned).unwrap_err().0.contains("JSON object"));
        assert!(
            validate("{\"proposals\": [], \"x\": 1}", &s, &planned)
                .unwrap_err()
                .0
                .contains("unknown field `x`")
        );
        let v = validate(
            "{\"proposals\": [{\"id\": \"a\", \"kind\": \"notify\", \"bonus\": 1}]}",
            &s,
            &planned,
        )
        .unwrap();
        assert!(v.dropped[0].1.contains("does not follow the schema"));
    }

    #[test]
    fn a_role_that_reaches_a_webhook_is_judged_as_a_webhook() {
        let text = "[agent]\nname = \"t\"\n[memory]\npath = \"m.db\"\n\
            [channels.slack]\nkind = \"slack\"\nwebhook_url = \"http://127.0.0.1:9/h\"\n\
            [endpoints.crm]\nurl = \"http://127.0.0.1:9/crm\"\n\
            [roles]\nops = [\"slack:#ops\"]\nsales = [\"slack:#sales\", \"webhook:crm\"]\n\
            [guardrails]\nrequire_approval = [\"webhook\"]\n\
            [llm]\nbase_url = \"http://127.0.0.1:9/v1\"\nmodel = \"m\"\n";
        let answer = |kind: &str, role: &str| {
            json!({"proposals": [
            {"id": "x", "kind": kind, "instance": "", "to": [role], "after": [], "priority": 2, "subject": "",
             "message": "m", "queries": [], "endpoint": "", "reasoning": "r", "confidence": 0.9}]})
            .to_string()
        };
        // webhook not allowed for the LLM: a notify or report to `sales` is refused, with the reason.
        let s = Settings::from_toml_str(text, Vec::new(), &|_| None).unwrap();
        for kind in ["notify", "report"] {
            let v = validate(&answer(kind, "sales"), &s, &Planned::default()).unwrap();
            assert!(v.actions.is_empty(), "{kind}: {:?}", v.actions);
            assert_eq!(v.refused.len(), 1);
            assert_eq!(
                v.refused[0].reason,
                "LLM proposal refused: its roles reach webhook:crm, and webhook is not in llm.allowed_kinds"
            );
            let ok = validate(&answer(kind, "ops"), &s, &Planned::default()).unwrap();
            assert_eq!(ok.actions.len(), 1);
            assert!(!ok.actions[0].require_approval);
        }
        // webhook allowed but in require_approval: it waits for a person.
        let allowed = text.replace(
            "model = \"m\"\n",
            "model = \"m\"\nallowed_kinds = [\"notify\", \"webhook\"]\n",
        );
        let s = Settings::from_toml_str(&allowed, Vec::new(), &|_| None).unwrap();
        let v = validate(&answer("notify", "sales"), &s, &Planned::default()).unwrap();
        assert!(v.actions[0].require_approval, "{:?}", v.actions[0]);
        assert!(v.actions[0].reason.contains("needs approval: it reaches webhook:crm"));
    }

    #[test]
    fn low_confidence_waits_for_approval() {
        let mut low = p("notify", &["ops"], &[], "");
        low["confidence"] = json!(0.5);
        let v = one(low).unwrap();
        assert!(v.actions[0].require_approval);
    }
}
