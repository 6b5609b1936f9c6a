//! Unit tests of validation: small TOML files in, the issue lines out, each
//! naming its key. Tests only; they must never connect anywhere or read files.

use super::*;

fn issues(text: &str) -> Vec<String> {
    match Settings::from_toml_str(text, Vec::new(), &|_| None) {
        Ok(_) => Vec::new(),
        Err(e) => e.issues(),
    }
}

const BASE: &str = "[agent]\nname = \"t\"\n[memory]\npath = \"m.db\"\n";

#[test]
fn schedule_problems_name_their_key() {
    let sql = "[sources.s]\nkind = \"sql\"\nurl = \"sqlite://w.db\"\nsql = \"SELECT 1 AS one\"\n";
    let found = issues(&format!("{BASE}{sql}cron = \"0 9 * * FUNDAY\"\n"));
    assert!(
        found
            .iter()
            .any(|i| i.starts_with("sources.s.cron: invalid cron pattern")),
        "{found:?}"
    );
    let found = issues(&format!("{BASE}{sql}cron = \"0 9 * * MON\"\nevery = \"1h\"\n"));
    assert!(
        found
            .iter()
            .any(|i| i.starts_with("sources.s: give either `every` or `cron`")),
        "{found:?}"
    );
    let found = issues(&format!(
        "{BASE}{sql}cron = \"0 9 * * MON\"\ntimezone = \"Mars/Olympus\"\n"
    ));
    assert!(found.iter().any(|i| i.starts_with("sources.s.timezone:")), "{found:?}");
    let found = issues(&format!("{BASE}{sql}cron = \"0 0 30 2 *\"\n"));
    assert!(found.iter().any(|i| i.contains("never matches")), "{found:?}");
    let rule = "[[rules]]\nname = \"r\"\nsource = \"s\"\nwhen = \"one > 0.0\"\nevery = \"0s\"\n";
    let found = issues(&format!("{BASE}{sql}{rule}"));
    assert!(found.iter().any(|i| i.starts_with("rules.r.every:")), "{found:?}");
}

#[test]
fn report_problems_name_their_key() {
    let sql = "[sources.s]\nkind = \"sql\"\nurl = \"sqlite://w.db\"\nsql = \"SELECT 1 AS one\"\n\
               [queries.q]\nsource = \"s\"\nsql = \"SELECT 1 WHERE ? = 1\"\nparams = [\"region\"]\n";
    let report = "[[reports]]\nname = \"weekly\"\ncron = \"0 25 * * *\"\nsources = [\"nope\"]\n\
                  queries = [\"q\"]\nto = [\"ghosts\"]\ntemplate = \"{{ broken \"\n";
    let found = issues(&format!("{BASE}{sql}{report}"));
    for key in [
        "reports.weekly.cron:",
        "reports.weekly.sources: unknown source \"nope\"",
        "reports.weekly.queries: query \"q\" takes `params`",
        "reports.weekly.to: unknown role \"ghosts\"",
        "reports.weekly.template:",
    ] {
        assert!(found.iter().any(|i| i.starts_with(key)), "{key} not in {found:?}");
    }
}

#[test]
fn bad_scheme_is_named_with_expectation() {
    let found = issues(&format!(
        "{BASE}[sources.sales]\nkind = \"sql\"\nurl = \"mssql://u:pw@h/db\"\nsql = \"select 1\"\n"
    ));
    assert_eq!(
        found,
        vec!["sources.sales.url: unsupported scheme \"mssql\" (expected sqlite://, postgres:// or mysql://)"]
    );
}

#[test]
fn collects_every_problem() {
    let found = issues(&format!(
        "{BASE}[sources.Bad-Name]\nkind = \"http\"\nurl = \"ftp://x\"\nconfidence = 1.5\nrows = \"data\"\n"
    ));
    assert_eq!(found.len(), 4, "{found:?}");
    assert!(found.iter().any(|i| i.starts_with("sources.Bad-Name: source names")));
    assert!(
        found
            .iter()
            .any(|i| i.starts_with("sources.Bad-Name.url: unsupported scheme \"ftp\""))
    );
    assert!(found.iter().any(|i| i.starts_with("sources.Bad-Name.confidence: 1.5")));
    assert!(found.iter().any(|i| i.starts_with("sources.Bad-Name.rows:")));
}

#[test]
fn too_short_interval() {
    let found = issues("[agent]\nname = \"t\"\ninterval = \"10ms\"\n[memory]\npath = \"m.db\"\n");
    assert_eq!(found, vec!["agent.interval: 10ms is too short (at least 1s)"]);
}

#[test]
fn rules_reference_only_what_the_config_names() {
    let found = issues(&format!(
        "{BASE}[channels.mail]\nkind = \"email\"\nsmtp_url = \"smtp://127.0.0.1:25\"\nfrom = \"a@example.com\"\n\
         [roles]\nops = [\"email:ops@example.com\", \"sms:+1555\"]\n\
         [[rules]]\nname = \"r\"\nsource = \"nope\"\nwhen = \"x > 1\"\n\
         [[rules.actions]]\nid = \"a\"\nkind = \"notify\"\nto = [\"ceo\"]\nmessage = \"m\"\nafter = [\"b\"]\n\
         [[rules.actions]]\nid = \"b\"\nkind = \"investigate\"\nqueries = [\"q\"]\nafter = [\"a\"]\npriority = 9\n"
    ));
    let expect = [
        "roles.ops[1]: \"sms:+1555\" must be email:ADDRESS, slack:CHANNEL or webhook:ENDPOINT",
        "rules.r.source: unknown source \"nope\"",
        "rules.r.actions.a.to: unknown role \"ceo\" (define it under [roles])",
        "rules.r.actions.b.priority: 9 is outside 1–5",
        "rules.r.actions.b.queries: unknown query \"q\" (define [queries.q])",
        "rules.r.actions: `after` forms a cycle: a → b → a",
    ];
    for e in expect {
        assert!(found.iter().any(|f| f == e), "missing {e:?} in {found:#?}");
    }
    assert_eq!(found.len(), expect.len(), "{found:#?}");
}

#[test]
fn rule_links_are_fixed_web_urls() {
    let sql = "[sources.s]\nkind = \"sql\"\nurl = \"sqlite://w.db\"\nsql = \"SELECT 1 AS one\"\n";
    let rule =
        |links: &str| format!("{BASE}{sql}[[rules]]\nname = \"r\"\nsource = \"s\"\nwhen = \"one > 0.0\"\n{links}");
    let ok = "runbook_url = \"https://wiki.example.com/runbooks/r\"\ndashboard_url = \"http://grafana:3000/d/x\"\n";
    assert_eq!(issues(&rule(ok)), Vec::<String>::new());
    let found = issues(&rule(
        "runbook_url = \"javascript:alert(1)\"\ndashboard_url = \"grafana/d/x\"\n",
    ));
    assert_eq!(
        found,
        [
            "rules.r.runbook_url: \"javascript:alert(1)\" is not an http:// or https:// URL",
            "rules.r.dashboard_url: \"grafana/d/x\" is not a URL: relative URL without a base",
        ],
        "{found:#?}"
    );
}

#[test]
fn kind_specific_fields_are_required() {
    let found = issues(&format!(
        "{BASE}[[rules]]\nname = \"r\"\nwhen = \"true\"\n\
         [[rules.actions]]\nid = \"n\"\nkind = \"notify\"\n\
         [[rules.actions]]\nid = \"w\"\nkind = \"webhook\"\n"
    ));
    assert!(
        found.contains(&"rules.r.actions.n.to: required for kind = \"notify\": the roles to address".to_owned()),
        "{found:#?}"
    );
    assert!(
        found.contains(&"rules.r.actions.n.message: required for kind = \"notify\": the message template".to_owned())
    );
    assert!(found.contains(
        &"rules.r.actions.w.endpoint: required for kind = \"webhook\": the named endpoint to call".to_owned()
    ));
}

#[test]
fn identifiers() {
    assert!(is_identifier("sales_7d"));
    assert!(is_identifier("_x"));
    assert!(!is_identifier("7d"));
    assert!(!is_identifier("Sales"));
    assert!(!is_identifier(""));
}

#[test]
fn bad_quiet_windows_name_their_key() {
    let found = issues(&format!(
        "{BASE}[channels.slack]\nkind = \"slack\"\nwebhook_url = \"https://x.invalid/h\"\n\
         quiet = [\"22:00-07:00\", \"23:00-25:00\"]\n\
         [roles]\nops = {{ targets = [\"slack:#ops\"], quiet = [\"Mon-Sun\"] }}\n"
    ));
    assert!(
        found
            .iter()
            .any(|f| f.starts_with("channels.slack.quiet[1]: ") && f.contains("25:00")),
        "{found:#?}"
    );
    assert!(
        found
            .iter()
            .any(|f| f.starts_with("roles.ops.quiet[0]: ") && f.contains("whole week")),
        "{found:#?}"
    );
    let ok = issues(&format!(
        "{BASE}[channels.slack]\nkind = \"slack\"\nwebhook_url = \"https://x.invalid/h\"\n\
         quiet = [\"22:00-07:00\", \"Sat-Sun\"]\nquiet_min_severity = \"high\"\n\
         [roles]\nops = {{ targets = [\"slack:#ops\"], quiet = [\"Mon-Fri 12:00-13:00\"] }}\nplain = [\"slack:#x\"]\n"
    ));
    assert!(ok.is_empty(), "{ok:#?}");
}
