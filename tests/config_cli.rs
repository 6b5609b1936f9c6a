//! `bi-agent check` through the real binary: every kind of config mistake gets
//! a message naming its key and exit code 2; a valid file exits 0.

use std::path::Path;
use std::process::{Command, Output};

fn write(dir: &Path, text: &str) -> std::path::PathBuf {
    let path = dir.join("agent.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn check(path: &Path, env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_bi-agent"));
    cmd.arg("check").arg("-c").arg(path).env_remove("RUST_LOG");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

const BASE: &str = "[agent]\nname = \"t\"\n[memory]\npath = \"m.db\"\n";

#[test]
fn valid_config_exits_zero() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        dir.path(),
        &format!("{BASE}[sources.sales]\nkind = \"sql\"\nurl = \"sqlite://x.db\"\nsql = \"SELECT 1 AS one\"\n"),
    );
    let out = check(&path, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("configuration is valid (1 source)"));
}

#[test]
fn unknown_key_exits_2_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        dir.path(),
        "[agent]\nname = \"t\"\nintervall = \"5m\"\n[memory]\npath = \"m.db\"\n",
    );
    let out = check(&path, &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("agent.intervall: unknown field `intervall`"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn bad_url_scheme_exits_2_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        dir.path(),
        &format!("{BASE}[sources.sales]\nkind = \"sql\"\nurl = \"mssql://u:pw@h/db\"\nsql = \"SELECT 1\"\n"),
    );
    let out = check(&path, &[]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(
        err.contains("sources.sales.url: unsupported scheme \"mssql\" (expected sqlite://, postgres:// or mysql://)"),
        "{err}"
    );
    assert!(!err.contains("pw@"), "credentials leaked: {err}");
}

#[test]
fn unset_variable_exits_2_naming_it_and_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        dir.path(),
        &format!(
            "{BASE}[sources.web]\nkind = \"http\"\nurl = \"http://127.0.0.1:1/x\"\nheaders = {{ Authorization = \"Bearer ${{BI_AGENT_TEST_UNSET_TOKEN}}\" }}\n"
        ),
    );
    let out = check(&path, &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains(
            "sources.web.headers.Authorization: environment variable \"BI_AGENT_TEST_UNSET_TOKEN\" is not set"
        ),
        "{}",
        stderr(&out)
    );
}

#[test]
fn set_variable_is_used_and_never_printed() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        dir.path(),
        &format!(
            "{BASE}[sources.web]\nkind = \"http\"\nurl = \"http://127.0.0.1:1/x\"\nconfidence = 7\nheaders = {{ Authorization = \"Bearer ${{BI_AGENT_TEST_TOKEN}}\" }}\n"
        ),
    );
    let out = check(&path, &[("BI_AGENT_TEST_TOKEN", "very-secret-value")]);
    assert_eq!(out.status.code(), Some(2));
    let all = format!("{}{}", stderr(&out), String::from_utf8_lossy(&out.stdout));
    assert!(all.contains("sources.web.confidence: 7 is outside 0.0–1.0"), "{all}");
    assert!(!all.contains("very-secret-value"), "{all}");
}

#[test]
fn bad_duration_exits_2_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        dir.path(),
        "[agent]\nname = \"t\"\ninterval = \"5 fortnights\"\n[memory]\npath = \"m.db\"\n",
    );
    let out = check(&path, &[]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(err.contains("agent.interval: "), "{err}");
    assert!(err.contains("fortnights"), "{err}");
}

#[test]
fn missing_required_key_exits_2_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        dir.path(),
        &format!("{BASE}[sources.sales]\nkind = \"sql\"\nsql = \"SELECT 1\"\n"),
    );
    let out = check(&path, &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("sources.sales: missing field `url`"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn environment_override_is_validated_too() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), BASE);
    let out = check(&path, &[("BI_AGENT__AGENT__MAX_ACTIONS_PER_CYCLE", "0")]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("agent.max_actions_per_cycle: must be at least 1"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn invalid_toml_exits_2_with_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "[agent\nname = 1\n");
    let out = check(&path, &[]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(err.contains("invalid TOML"), "{err}");
    assert!(err.contains("line 1"), "{err}");
}

#[test]
fn missing_file_exits_2() {
    let out = check(Path::new("/nonexistent/bi-agent.toml"), &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("cannot read config file /nonexistent/bi-agent.toml"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn an_action_to_an_unknown_role_is_rejected_at_load() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        dir.path(),
        &format!(
            "{BASE}[sources.s]\nkind = \"sql\"\nurl = \"sqlite://x.db\"\nsql = \"SELECT region, v FROM t\"\n\
             [[rules]]\nname = \"r\"\nsource = \"s\"\nwhen = \"v > 1.0\"\n\
             [[rules.actions]]\nid = \"a\"\nkind = \"notify\"\nto = [\"ceo\"]\nmessage = \"hi\"\n"
        ),
    );
    let out = check(&path, &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("rules.r.actions.a.to: unknown role \"ceo\" (define it under [roles])"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_rule_reading_an_unknown_column_is_rejected_at_load() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        dir.path(),
        &format!(
            "{BASE}[sources.s]\nkind = \"sql\"\nurl = \"sqlite://x.db\"\nsql = \"SELECT region, v FROM t\"\n\
             [[rules]]\nname = \"r\"\nsource = \"s\"\nwhen = \"value > 1.0\"\n"
        ),
    );
    let out = check(&path, &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("rules.r.when: unknown column \"value\": source \"s\" produces region, v"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn templates_are_checked_against_the_rule_columns_at_load() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        dir.path(),
        &format!(
            "{BASE}[channels.slack]\nkind = \"slack\"\nwebhook_url = \"https://x.invalid/h\"\n\
             [roles]\nops = [\"slack:#ops\"]\n\
             [sources.s]\nkind = \"sql\"\nurl = \"sqlite://x.db\"\nsql = \"SELECT region, orders_7d FROM t\"\n\
             [[rules]]\nname = \"r\"\nsource = \"s\"\nwhen = \"orders_7d < 5.0\"\n\
             [[rules.actions]]\nid = \"tell\"\nkind = \"notify\"\nto = [\"ops\"]\n\
             message = \"{{{{ region }}}}: {{{{ orders_7dd }}}} ({{{{ orders_7d | numbr }}}}, {{{{ rule.name }}}}, {{{{ 'a|b' }}}})\"\n\
             subject = \"{{{{ region }}}} on {{{{ time }}}}\"\n"
        ),
    );
    let out = check(&path, &[]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("rules.r.actions.tell.message: unknown variable `orders_7dd`"),
        "{err}"
    );
    assert!(
        err.contains("rules.r.actions.tell.message: unknown filter `numbr`"),
        "{err}"
    );
    assert!(!err.contains("`b`"), "a `|` inside a string is no filter: {err}");
    assert!(
        err.contains("rules.r.actions.tell.subject: unknown variable `time`"),
        "not a series, so no time: {err}"
    );
}

/// The variables the shipped example configs read (`${VAR}`), with
/// stand-in values.
const EXAMPLE_ENV: &[(&str, &str)] = &[
    ("BI_AGENT_DEMO_DIR", "/tmp/bi-agent-demo"),
    ("WAREHOUSE_URL", "postgres://bi:secret@db.internal/shop"),
    ("ANALYTICS_TOKEN", "token"),
    ("SLACK_WEBHOOK_URL", "https://hooks.slack.com/services/T/B/X"),
    ("CRM_TOKEN", "crm"),
    ("SMTP_PASSWORD", "pw"),
    ("OPENAI_API_KEY", "sk-test"),
];

/// Each commented `[llm]` block of the example (OpenAI, Ollama, llama.cpp)
/// is valid once uncommented.
#[test]
fn the_example_llm_blocks_are_valid() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/example.toml");
    let example = std::fs::read_to_string(&path).unwrap();
    let lines: Vec<&str> = example.lines().collect();
    let starts: Vec<usize> = (0..lines.len()).filter(|&i| lines[i] == "# [llm]").collect();
    assert_eq!(starts.len(), 3, "OpenAI, Ollama and llama.cpp");
    let dir = tempfile::tempdir().unwrap();
    for start in starts {
        let block: Vec<&str> = (lines[start..].iter())
            .take_while(|l| l.starts_with("# ") && l.len() > 2)
            .map(|l| &l[2..])
            .collect();
        let config = dir.path().join("with-llm.toml");
        std::fs::write(&config, format!("{example}\n{}\n", block.join("\n"))).unwrap();
        let out = check(&config, EXAMPLE_ENV);
        assert_eq!(out.status.code(), Some(0), "{block:?}: {}", stderr(&out));
        let shown = String::from_utf8_lossy(&out.stdout);
        assert!(!shown.contains("sk-test"), "the key is never shown: {shown}");
    }
}

#[test]
fn shipped_example_configs_are_valid() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("config");
    let mut checked = 0;
    for entry in std::fs::read_dir(&root).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            let out = check(&path, EXAMPLE_ENV);
            assert_eq!(out.status.code(), Some(0), "{}: {}", path.display(), stderr(&out));
            checked += 1;
        }
    }
    assert!(checked >= 1, "no example configs found in {}", root.display());
}

#[test]
fn the_example_config_is_valid() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/example.toml");
    let out = check(&path, EXAMPLE_ENV);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}
