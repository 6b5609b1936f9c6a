//! Secrets through every way a value reaches the config: each secret key is
//! given as a number, a boolean and a string, through a `BI_AGENT__…`
//! environment override and through `${VAR}`. Any scalar is taken as the
//! secret's text, exactly as written; and no error, log line or panic message
//! ever shows it — checked both on the library's errors and on what the real
//! binary prints (`check`, and `run --once` against a dead endpoint).

use std::path::Path;
use std::process::{Command, Output};

use bi_agent::config::{ChannelSettings, ExposeSecret, Settings, SourceSettings};

/// A config with every secret-bearing key, each holding `${VAR}` of its own.
const CONFIG: &str = r#"
[agent]
name = "secrets"
interval = "1s"
[memory]
path = "MEMORY"

[sources.db]
kind = "sql"
url = "sqlite://DBFILE?mode=ro"
sql = "SELECT 1 AS one"

[sources.web]
kind = "http"
url = "http://127.0.0.1:9/x"
headers = { authorization = "${WEB_AUTH}" }

[channels.slack]
kind = "slack"
token = "${SLACK_TOKEN}"
api_url = "http://127.0.0.1:9/api"

[channels.email]
kind = "email"
smtp_url = "smtp://127.0.0.1:9?tls=none"
from = "agent@example.com"
username = "agent"
password = "${SMTP_PASSWORD}"

[endpoints.crm]
url = "http://127.0.0.1:9/crm"
headers = { "x-api-key" = "${CRM_KEY}" }

[llm]
base_url = "http://127.0.0.1:9/v1"
model = "m"
api_key = "${LLM_KEY}"
timeout = "1s"
retry_attempts = 1

[roles]
ops = ["slack:#ops", "email:ops@example.com"]
"#;

/// Every text secret: `(env override name, ${VAR} name)`.
const TEXT_SECRETS: &[(&str, &str)] = &[
    ("BI_AGENT__SOURCES__WEB__HEADERS__AUTHORIZATION", "WEB_AUTH"),
    ("BI_AGENT__CHANNELS__SLACK__TOKEN", "SLACK_TOKEN"),
    ("BI_AGENT__CHANNELS__EMAIL__PASSWORD", "SMTP_PASSWORD"),
    ("BI_AGENT__ENDPOINTS__CRM__HEADERS__X-API-KEY", "CRM_KEY"),
    ("BI_AGENT__LLM__API_KEY", "LLM_KEY"),
];

/// Every URL secret, as an environment override.
const URL_SECRETS: &[&str] = &[
    "BI_AGENT__SOURCES__DB__URL",
    "BI_AGENT__SOURCES__WEB__URL",
    "BI_AGENT__CHANNELS__EMAIL__SMTP_URL",
    "BI_AGENT__ENDPOINTS__CRM__URL",
];

/// Distinctive values of each scalar kind; the boolean is checked for being
/// taken as text (its word appears elsewhere, so it cannot be leak-checked).
const NUMBER: &str = "84736251";
const FLOAT: &str = "1e3";
const UNDERSCORED: &str = "1_000_777";
const BOOLEAN: &str = "true";
const STRING: &str = "s3cr3t-Ωmega";

fn config_text() -> String {
    CONFIG
        .replace("MEMORY", "/tmp/never-opened.db")
        .replace("DBFILE", "/tmp/x.db")
}

/// The env for `${VAR}` references: every variable set to a placeholder.
fn base_env() -> Vec<(String, String)> {
    TEXT_SECRETS
        .iter()
        .map(|(_, var)| ((*var).to_owned(), format!("placeholder-{var}")))
        .collect()
}

fn load(env: Vec<(String, String)>) -> Result<Settings, bi_agent::config::ConfigError> {
    let lookup_env = env.clone();
    Settings::from_toml_str(&config_text(), env, &move |k| {
        lookup_env.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone())
    })
}

/// The secret that `override_name` or `var` sets, as loaded.
fn text_secret(s: &Settings, var: &str) -> String {
    let SourceSettings::Http(web) = &s.sources["web"] else {
        panic!("web is http")
    };
    let ChannelSettings::Slack(slack) = &s.channels["slack"] else {
        panic!("slack")
    };
    let ChannelSettings::Email(email) = &s.channels["email"] else {
        panic!("email")
    };
    match var {
        "WEB_AUTH" => web.headers["authorization"].expose().to_owned(),
        "SLACK_TOKEN" => slack.token.as_ref().unwrap().expose().to_owned(),
        "SMTP_PASSWORD" => email.password.as_ref().unwrap().expose().to_owned(),
        "CRM_KEY" => s.endpoints["crm"].headers["x-api-key"].expose().to_owned(),
        "LLM_KEY" => s.llm.as_ref().unwrap().api_key.as_ref().unwrap().expose().to_owned(),
        other => panic!("unknown {other}"),
    }
}

#[test]
fn any_scalar_is_a_text_secret_exactly_as_written() {
    for (override_name, var) in TEXT_SECRETS {
        for value in [NUMBER, FLOAT, UNDERSCORED, BOOLEAN, STRING] {
            // Through the environment override.
            let mut env = base_env();
            env.push(((*override_name).to_owned(), value.to_owned()));
            let s = load(env).unwrap_or_else(|e| panic!("{override_name}={value}: {e}"));
            assert_eq!(text_secret(&s, var), value, "{override_name}");
            assert!(!format!("{s:?}").contains(value) || value == BOOLEAN);
            // Through `${VAR}`.
            let mut env = base_env();
            env.retain(|(k, _)| k != var);
            env.push(((*var).to_owned(), value.to_owned()));
            let s = load(env).unwrap_or_else(|e| panic!("${{{var}}}={value}: {e}"));
            assert_eq!(text_secret(&s, var), value, "${{{var}}}");
        }
    }
}

#[test]
fn a_rejected_secret_is_never_shown() {
    // URLs that are not URLs are errors that name the key, never the value.
    for name in URL_SECRETS {
        for value in [NUMBER, UNDERSCORED, STRING, "hunter2:84736251"] {
            let mut env = base_env();
            env.push(((*name).to_owned(), value.to_owned()));
            let text = match load(env) {
                Ok(s) => format!("{s:?}"),
                Err(e) => e.to_string(),
            };
            for secret in [value, NUMBER, "hunter2", "s3cr3t"] {
                assert!(!text.contains(secret), "{name}={value} shown: {text}");
            }
        }
    }
    // A secret of the wrong shape in the file: the kind is named, not the value.
    let text = config_text().replace("password = \"${SMTP_PASSWORD}\"", "password = [84736251]");
    let err = Settings::from_toml_str(&text, base_env(), &|k| {
        base_env().into_iter().find(|(n, _)| n == k).map(|(_, v)| v)
    })
    .unwrap_err()
    .to_string();
    assert!(
        err.starts_with("channels.email.password: invalid type: sequence"),
        "{err}"
    );
    assert!(!err.contains(NUMBER), "{err}");
}

#[test]
fn an_error_elsewhere_never_shows_a_secret() {
    // Every secret set, then an unrelated mistake from the environment: the
    // error names the variable and shows no secret.
    let mut env = base_env();
    for (name, _) in TEXT_SECRETS {
        env.push(((*name).to_owned(), NUMBER.to_owned()));
    }
    env.push(("BI_AGENT__AGENT__MAX_ACTIONS_PER_CYCLE".into(), "lots".into()));
    let err = load(env).unwrap_err().to_string();
    assert!(
        err.contains("agent.max_actions_per_cycle") && err.contains("BI_AGENT__AGENT__MAX_ACTIONS_PER_CYCLE"),
        "{err}"
    );
    assert!(!err.contains(NUMBER), "{err}");
}

#[test]
fn typed_keys_still_take_typed_values_from_the_environment() {
    let mut env = base_env();
    env.push(("BI_AGENT__AGENT__DRY_RUN".into(), "true".into()));
    env.push(("BI_AGENT__AGENT__MAX_ACTIONS_PER_CYCLE".into(), "7".into()));
    env.push(("BI_AGENT__GUARDRAILS__REQUIRE_APPROVAL".into(), "[\"webhook\"]".into()));
    env.push(("BI_AGENT__ROLES__OPS".into(), "[\"slack:#x\"]".into()));
    env.push(("BI_AGENT__AGENT__NAME".into(), "12345".into()));
    let s = load(env).unwrap();
    assert!(s.agent.dry_run);
    assert_eq!(s.agent.max_actions_per_cycle, 7);
    assert_eq!(s.guardrails.require_approval.len(), 1);
    assert_eq!(s.roles["ops"].targets, vec!["slack:#x".to_owned()]);
    // A name of digits is a name, as written.
    assert_eq!(s.agent.name, "12345");
}

fn binary(args: &[&str], config: &Path, env: &[(String, String)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_bi-agent"));
    cmd.args(args).arg("-c").arg(config).env("RUST_LOG", "debug");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

#[test]
fn the_binary_never_prints_a_secret() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("w.db");
    std::fs::write(&db, b"").unwrap();
    let path = dir.path().join("agent.toml");
    let text = CONFIG
        .replace("MEMORY", &dir.path().join("memory.db").display().to_string())
        .replace("DBFILE", &db.display().to_string());
    std::fs::write(&path, &text).unwrap();
    for value in [NUMBER, STRING] {
        let mut env = base_env();
        for (name, _) in TEXT_SECRETS {
            env.push(((*name).to_owned(), value.to_owned()));
        }
        // A valid config: `check` passes.
        let out = binary(&["check"], &path, &env);
        let printed = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(out.status.code(), Some(0), "{printed}");
        assert!(!printed.contains(value), "{printed}");
        // One cycle against endpoints that refuse: every failure is logged
        // at debug level, none with a secret.
        let out = binary(&["--log-format", "json", "run", "--once"], &path, &env);
        let printed = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(printed.contains("Cycle completed"), "{printed}");
        assert!(!printed.contains(value), "{printed}");
        // An invalid config: exit 2, the variable named, no secret.
        let mut bad = env.clone();
        bad.push(("BI_AGENT__AGENT__INTERVAL".into(), "soon".into()));
        let out = binary(&["check"], &path, &bad);
        let printed = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(out.status.code(), Some(2), "{printed}");
        assert!(printed.contains("BI_AGENT__AGENT__INTERVAL"), "{printed}");
        assert!(!printed.contains(value), "{printed}");
    }
}
