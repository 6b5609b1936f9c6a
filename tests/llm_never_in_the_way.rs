//! Property: the rules' actions of a cycle are identical — same ids, order,
//! kinds, roles and messages — whether the LLM is healthy, failing, or
//! adversarial (garbage, truncated, colliding ids, raw addresses, unknown
//! roles, huge answers), and nothing the LLM proposes addresses a target
//! outside the configured roles. The LLM here is scripted through the `Llm`
//! trait; the real client is exercised in `llm_planning.rs`.

mod common;

use std::sync::Arc;
use std::time::Duration;

use bi_agent::agent::Agent;
use bi_agent::config::Settings;
use bi_agent::llm::{FinishReason, Llm, LlmError, LlmRequest, LlmResponse, ResponseMode, Usage};
use bi_agent::model::Origin;
use futures_util::future::BoxFuture;
use proptest::prelude::*;
use serde_json::json;

/// The rules' part of a plan: id, kind, roles, message per action.
type RulePart = Vec<(String, String, Vec<String>, Option<String>)>;

/// What the scripted LLM does.
#[derive(Debug, Clone)]
enum Behaviour {
    Healthy(Vec<serde_json::Value>),
    Fails,
    Garbage(String),
    Truncated(String),
}

struct Scripted(Behaviour);

impl Llm for Scripted {
    fn complete<'a>(&'a self, _request: &'a LlmRequest) -> BoxFuture<'a, Result<LlmResponse, LlmError>> {
        Box::pin(async move {
            let (text, finish) = match &self.0 {
                Behaviour::Healthy(items) => (json!({ "proposals": items }).to_string(), FinishReason::Stop),
                Behaviour::Fails => return Err(LlmError::Unavailable("scripted outage".into())),
                Behaviour::Garbage(t) => (t.clone(), FinishReason::Stop),
                Behaviour::Truncated(t) => (t.clone(), FinishReason::Length),
            };
            Ok(LlmResponse {
                text,
                finish_reason: finish,
                usage: Usage {
                    prompt_tokens: 10,
                    completion_tokens: 10,
                },
                latency: Duration::from_millis(1),
                mode: ResponseMode::JsonSchema,
                model: "scripted".into(),
                attempts: 1,
            })
        })
    }
}

fn settings(dir: &std::path::Path, warehouse: &std::path::Path) -> Settings {
    let text = format!(
        r#"
        [agent]
        name = "prop"
        dry_run = true
        max_actions_per_cycle = 6
        [memory]
        path = "{dir}/memory.db"
        [channels.slack]
        kind = "slack"
        webhook_url = "http://127.0.0.1:9/hook"
        [roles]
        ops = ["slack:#ops"]
        sales = ["slack:#sales"]
        [llm]
        base_url = "http://127.0.0.1:9/v1"
        model = "scripted"
        summarize_investigations = false
        max_proposals = 50
        [sources.m]
        kind = "sql"
        url = "sqlite://{warehouse}?mode=ro"
        sql = "SELECT region, value FROM m"
        [[rules]]
        name = "high"
        source = "m"
        when = "value > 10.0"
          [[rules.actions]]
          id = "page"
          kind = "notify"
          to = ["ops"]
          message = "{{{{ region }}}} is high"
          [[rules.actions]]
          id = "tell"
          kind = "notify"
          to = ["sales"]
          after = ["page"]
          message = "{{{{ region }}}}: sales heads-up"
        "#,
        dir = dir.display(),
        warehouse = warehouse.display()
    );
    Settings::from_toml_str(&text, Vec::new(), &|_| None).unwrap()
}

/// The rules' part of a cycle's plan, and every LLM action's roles.
fn run(behaviour: Option<Behaviour>, warehouse: &std::path::Path) -> (RulePart, Vec<Vec<String>>) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let mut agent = Agent::build(settings(dir.path(), warehouse), true).await.unwrap();
        if let Some(b) = behaviour {
            agent = agent.with_llm(Arc::new(Scripted(b))).unwrap();
        }
        let report = agent.cycle().await.unwrap();
        let rules = report
            .planned
            .plan
            .items
            .iter()
            .filter(|a| a.origin != Origin::Llm)
            .map(|a| {
                (
                    a.id.clone(),
                    a.kind.as_str().to_owned(),
                    a.to.clone(),
                    a.message.clone(),
                )
            })
            .collect();
        let llm = report
            .planned
            .plan
            .items
            .iter()
            .filter(|a| a.origin == Origin::Llm)
            .map(|a| a.to.clone())
            .collect();
        (rules, llm)
    })
}

fn arb_proposal() -> impl Strategy<Value = serde_json::Value> {
    let ids = prop_oneof![
        Just("high/page/region=East".to_owned()),
        Just("page".to_owned()),
        "[a-z_]{1,12}",
        ".{0,60}",
    ];
    let kinds = prop_oneof![
        Just("notify"),
        Just("investigate"),
        Just("webhook"),
        Just("escalate"),
        Just("wait"),
        Just("drop_table")
    ];
    let roles = prop::collection::vec(
        prop_oneof![
            Just("ops".to_owned()),
            Just("sales".to_owned()),
            Just("ceo@example.com".to_owned()),
            Just("email:x@evil.test".to_owned()),
            Just("slack:#general".to_owned()),
            "[a-z]{1,8}",
        ],
        0..4,
    );
    let after = prop::collection::vec(
        prop_oneof![
            Just("high/page/region=East".to_owned()),
            Just("high/tell/region=East".to_owned()),
            "[a-z_]{1,6}"
        ],
        0..3,
    );
    (
        ids,
        kinds,
        roles,
        after,
        -3i64..9,
        -1.0f64..2.0,
        prop_oneof![Just(""), Just("high{region=East}"), Just("x{y}")],
    )
        .prop_map(|(id, kind, to, after, priority, confidence, instance)| {
            json!({
                "id": id, "kind": kind, "instance": instance, "to": to, "after": after,
                "priority": priority, "subject": "s", "message": "m", "queries": [],
                "endpoint": "", "reasoning": "r", "confidence": confidence
            })
        })
}

fn arb_behaviour() -> impl Strategy<Value = Behaviour> {
    prop_oneof![
        prop::collection::vec(arb_proposal(), 0..12).prop_map(Behaviour::Healthy),
        Just(Behaviour::Fails),
        ".{0,200}".prop_map(Behaviour::Garbage),
        "\\{\"proposals\": \\[.{0,40}".prop_map(Behaviour::Truncated),
        Just(Behaviour::Garbage(
            "{\"proposals\": [], \"also\": {\"to\": [\"ceo@example.com\"]}}".into()
        )),
    ]
}

/// The warehouse and the rules-only plan, computed once for every case.
fn baseline() -> &'static (tempfile::TempDir, RulePart) {
    static BASELINE: std::sync::OnceLock<(tempfile::TempDir, RulePart)> = std::sync::OnceLock::new();
    BASELINE.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let warehouse = dir.path().join("w.db");
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(common::sqlite(
            &warehouse,
            "CREATE TABLE m (region TEXT, value REAL); INSERT INTO m VALUES ('East', 20), ('West', 30), ('North', 1);",
        ));
        let (rules, none) = run(None, &warehouse);
        assert!(none.is_empty());
        assert_eq!(rules.len(), 4, "{rules:?}");
        (dir, rules)
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    #[test]
    fn rule_actions_are_the_same_whatever_the_llm_does(behaviour in arb_behaviour()) {
        let (dir, rules) = baseline();
        let (with_llm, llm_roles) = run(Some(behaviour), &dir.path().join("w.db"));
        prop_assert_eq!(&with_llm, rules);
        for roles in llm_roles {
            for role in roles {
                prop_assert!(role == "ops" || role == "sales", "LLM action addressed {}", role);
            }
        }
    }
}
