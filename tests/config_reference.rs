//! The README's configuration reference cannot drift from the config types:
//! every key the types accept is documented, and every key the reference
//! tables document is accepted. The shipped example configs load (checked in
//! `config_cli.rs`).
//!
//! The types' keys are read from serde itself: an unknown key in a section
//! makes the loader answer "unknown field `zz`, expected one of `a`, `b`, …",
//! which lists exactly the fields of that section's struct.

use std::collections::BTreeSet;

use bi_agent::config::Settings;

const BASE: &str = "[agent]\nname = \"t\"\n[memory]\npath = \"m.db\"\n";

/// Config texts that put an unknown key into each section.
fn probes() -> Vec<(&'static str, String)> {
    let sql = "[sources.s]\nkind = \"sql\"\nurl = \"sqlite://w.db\"\nsql = \"SELECT 1 AS one\"\n";
    vec![
        (
            "agent",
            "[agent]\nname = \"t\"\nzz_unknown = 1\n[memory]\npath = \"m.db\"\n".to_owned(),
        ),
        (
            "memory",
            "[agent]\nname = \"t\"\n[memory]\npath = \"m.db\"\nzz_unknown = 1\n".to_owned(),
        ),
        ("log", format!("{BASE}[log]\nzz_unknown = 1\n")),
        ("learning", format!("{BASE}[learning]\nzz_unknown = 1\n")),
        (
            "server",
            format!("{BASE}[server]\nlisten = \"127.0.0.1:9464\"\nzz_unknown = 1\n"),
        ),
        ("top level", format!("{BASE}zz_unknown = 1\n")),
        ("sql source", format!("{BASE}{sql}zz_unknown = 1\n")),
        (
            "http source",
            format!("{BASE}[sources.h]\nkind = \"http\"\nurl = \"http://127.0.0.1:9/x\"\nzz_unknown = 1\n"),
        ),
        (
            "rules",
            format!("{BASE}{sql}[[rules]]\nname = \"r\"\nsource = \"s\"\nwhen = \"one > 1.0\"\nzz_unknown = 1\n"),
        ),
        (
            "rule actions",
            format!(
                "{BASE}{sql}[[rules]]\nname = \"r\"\nsource = \"s\"\nwhen = \"one > 1.0\"\n\
                 [[rules.actions]]\nid = \"a\"\nkind = \"wait\"\nduration = \"1m\"\nzz_unknown = 1\n"
            ),
        ),
        (
            "queries",
            format!("{BASE}{sql}[queries.q]\nsource = \"s\"\nsql = \"SELECT 1\"\nzz_unknown = 1\n"),
        ),
        (
            "endpoints",
            format!("{BASE}[endpoints.e]\nurl = \"http://127.0.0.1:9/\"\nzz_unknown = 1\n"),
        ),
        (
            "slack channel",
            format!(
                "{BASE}[channels.slack]\nkind = \"slack\"\nwebhook_url = \"https://x.invalid/h\"\nzz_unknown = 1\n"
            ),
        ),
        (
            "email channel",
            format!(
                "{BASE}[channels.mail]\nkind = \"email\"\nsmtp_url = \"smtp://127.0.0.1:25\"\nfrom = \"a@example.com\"\nzz_unknown = 1\n"
            ),
        ),
        ("guardrails", format!("{BASE}[guardrails]\nzz_unknown = 1\n")),
        (
            "roles (table form)",
            format!("{BASE}[roles.r]\ntargets = [\"slack:#x\"]\nzz_unknown = 1\n"),
        ),
        (
            "llm",
            format!("{BASE}[llm]\nbase_url = \"http://127.0.0.1:9/v1\"\nmodel = \"m\"\nzz_unknown = 1\n"),
        ),
        (
            "reports",
            format!("{BASE}[[reports]]\nname = \"r\"\ntemplate = \"x\"\nto = []\nzz_unknown = 1\n"),
        ),
        ("meta", format!("{BASE}[meta]\nzz_unknown = 1\n")),
        (
            "meta.source_failing",
            format!("{BASE}[meta.source_failing]\nzz_unknown = 1\n"),
        ),
    ]
}

/// The fields serde lists for the section's struct.
fn fields_of(section: &str, text: &str) -> Vec<String> {
    let err = match Settings::from_toml_str(text, Vec::new(), &|_| None) {
        Ok(_) => panic!("{section}: an unknown key was accepted"),
        Err(e) => e.issues().join("\n"),
    };
    let list = err
        .split("expected one of ")
        .nth(1)
        .or_else(|| err.split("expected ").nth(1))
        .unwrap_or_else(|| panic!("{section}: no field list in {err:?}"));
    list.split(", ")
        .flat_map(|part| part.split(" or "))
        .map(|f| f.trim().trim_matches('`').to_owned())
        .filter(|f| !f.is_empty())
        .collect()
}

fn readme() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap()
}

#[test]
fn every_key_the_types_accept_is_documented() {
    let readme = readme();
    let mut missing = Vec::new();
    for (section, text) in probes() {
        for field in fields_of(section, &text) {
            let documented = [
                format!("`{field}`"),
                format!(".{field}`"),
                format!("{field} ="),
                format!(".{field}]"),
                format!(".{field}."),
            ]
            .iter()
            .any(|form| readme.contains(form.as_str()));
            if !documented {
                missing.push(format!("{section}.{field}"));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "keys missing from the README reference: {missing:?}"
    );
}

#[test]
fn every_key_the_reference_documents_is_accepted() {
    let known: BTreeSet<String> = probes()
        .iter()
        .flat_map(|(section, text)| fields_of(section, text))
        .chain(["kind".to_owned()])
        .collect();
    let readme = readme();
    let mut unknown = Vec::new();
    let mut documented = 0;
    // Key tables are the ones whose header's first cell is `key`.
    let mut in_key_table = false;
    for line in readme.lines() {
        if !line.starts_with('|') {
            in_key_table = false;
            continue;
        }
        if line.starts_with("| key |") {
            in_key_table = true;
            continue;
        }
        if !in_key_table {
            continue;
        }
        let first = line.trim_start_matches("| ").split(" |").next().unwrap_or("");
        // The first cell names keys in backticks, possibly dotted (`guardrails.redact`).
        for key in first.split('`').skip(1).step_by(2) {
            let key = key.rsplit('.').next().unwrap_or(key);
            if key.chars().all(|c| c.is_ascii_lowercase() || c == '_') && !key.is_empty() {
                documented += 1;
                if !known.contains(key) {
                    unknown.push(key.to_owned());
                }
            }
        }
    }
    // Table cells that are values, not keys.
    let values = [
        "info",
        "low",
        "medium",
        "high",
        "critical",
        "auto",
        "pretty",
        "json",
        "prometheus",
    ];
    unknown.retain(|k| !values.contains(&k.as_str()));
    assert!(
        documented > 60,
        "the reference tables were not found ({documented} keys)"
    );
    assert!(
        unknown.is_empty(),
        "the README documents keys the config does not accept: {unknown:?}"
    );
}
