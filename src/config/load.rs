//! Loading: one TOML file, then `BI_AGENT__SECTION__KEY` environment
//! overrides layered over it by the `config` crate ([`super::layers`]), then
//! `${VAR}` references, then typed deserialisation with the exact key path
//! of any error.
//!
//! An override arrives as the string it is (a secret must arrive exactly as
//! written) and is read as a TOML value (`true`, `5`, `["a"]`, `{a = 1}`)
//! only where its key asks for another type ([`retype`]); every error names
//! its key, and the variable when the value came from the environment.
//!
//! This module must never log a value: values may be secrets.

use std::collections::BTreeMap;
use std::path::Path;

use toml::{Table, Value};

use super::{ConfigError, ConfigIssue};

/// Prefix of environment overrides: `BI_AGENT__AGENT__DRY_RUN=true`.
pub const ENV_PREFIX: &str = "BI_AGENT__";

/// Reads and parses the file at `path` into a TOML table.
pub fn read_file(path: &Path) -> Result<Table, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    parse_text(&text).map_err(|message| ConfigError::Parse {
        path: path.to_path_buf(),
        message,
    })
}

/// Parses TOML text; the error text carries line and column.
pub fn parse_text(text: &str) -> Result<Table, String> {
    text.parse::<Table>().map_err(|e| e.to_string().trim_end().to_owned())
}

/// One `BI_AGENT__A__B=value` override: where it goes, the variable that
/// set it, and its text exactly as given.
#[derive(Debug, Clone)]
pub struct Override {
    /// The dotted key, e.g. `agent.dry_run`.
    pub key: String,
    /// The key's parts.
    path: Vec<String>,
    /// The environment variable's name (never its value).
    pub var: String,
    /// The value as given.
    raw: String,
}

/// Applies `BI_AGENT__A__B=value` overrides from `vars` onto `table` (as
/// `a.b`), each as the **string** it is: a string is what secrets and most
/// keys want, and a secret must arrive exactly as written (`1_000` or `0x1F`
/// read as TOML numbers would change it). Where the target wants a number, a
/// boolean, a list or a table, [`retype`] reads the same text as TOML when
/// deserialisation says so. Keys are lower-cased.
pub fn apply_env_overrides(
    table: &mut Table,
    vars: impl IntoIterator<Item = (String, String)>,
) -> Result<Vec<Override>, Vec<ConfigIssue>> {
    let mut issues = Vec::new();
    let mut applied = Vec::new();
    // Sorted, so overrides apply in a stable order whatever the environment's order.
    let overrides: BTreeMap<String, String> = vars.into_iter().filter(|(k, _)| k.starts_with(ENV_PREFIX)).collect();
    for (var, raw) in overrides {
        let path: Vec<String> = var[ENV_PREFIX.len()..]
            .split("__")
            .map(str::to_ascii_lowercase)
            .collect();
        if path.iter().any(String::is_empty) {
            issues.push(ConfigIssue::new(
                var.clone(),
                "malformed override name (expected BI_AGENT__SECTION__KEY)",
            ));
            continue;
        }
        let key = path.join(".");
        if let Err(message) = check_path(table, &path) {
            issues.push(ConfigIssue::new(key, format!("from {var}: {message}")));
            continue;
        }
        applied.push(Override { key, path, var, raw });
    }
    if !issues.is_empty() {
        return Err(issues);
    }
    let env = super::layers::EnvLayer(
        (applied.iter())
            .map(|o| (o.path.clone(), o.var.clone(), o.raw.clone()))
            .collect(),
    );
    *table = super::layers::merge(std::mem::take(table), env)
        .map_err(|message| vec![ConfigIssue::new("environment", message)])?;
    Ok(applied)
}

/// Whether an override at `path` fits the file: no part of it above the key
/// may be a value that is not a table.
fn check_path(table: &Table, path: &[String]) -> Result<(), String> {
    let mut current = table;
    for (i, key) in path.iter().enumerate().take(path.len().saturating_sub(1)) {
        match current.get(key) {
            None => return Ok(()),
            Some(Value::Table(t)) => current = t,
            Some(_) => return Err(format!("`{}` is not a table", path[..=i].join("."))),
        }
    }
    Ok(())
}

/// Sets `o`'s value again, read as a TOML value (`5`, `true`, `[1, 2]`,
/// `{a = 1}`); whether that changed anything (text that is no TOML value
/// stays the string it was).
pub fn retype(table: &mut Table, o: &Override) -> bool {
    let value = env_value(&o.raw);
    if matches!(value, Value::String(_)) {
        return false;
    }
    set_path(table, &o.path, value).is_ok()
}

/// Reads an override as TOML (`5`, `true`, `"x"`, `[1, 2]`, `{a = 1}`), else as a string.
fn env_value(raw: &str) -> Value {
    format!("v = {raw}")
        .parse::<Table>()
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| Value::String(raw.to_owned()))
}

fn set_path(table: &mut Table, path: &[String], value: Value) -> Result<(), String> {
    let (last, parents) = path.split_last().ok_or("empty key")?;
    let mut current = table;
    for (i, key) in parents.iter().enumerate() {
        let entry = current.entry(key.clone()).or_insert_with(|| Value::Table(Table::new()));
        current = match entry {
            Value::Table(t) => t,
            _ => return Err(format!("`{}` is not a table", path[..=i].join("."))),
        };
    }
    current.insert(last.clone(), value);
    Ok(())
}

/// Replaces `${VAR}` in every string of `table` with the variable's value from
/// `lookup`; `$${` stands for a literal `${`. Each unset or malformed reference
/// is an issue naming its key and variable (never the value).
pub fn substitute_vars(table: &mut Table, lookup: &dyn Fn(&str) -> Option<String>) -> Vec<ConfigIssue> {
    let mut issues = Vec::new();
    for (key, value) in table.iter_mut() {
        substitute_value(key, value, lookup, &mut issues);
    }
    issues
}

fn substitute_value(
    path: &str,
    value: &mut Value,
    lookup: &dyn Fn(&str) -> Option<String>,
    issues: &mut Vec<ConfigIssue>,
) {
    match value {
        Value::String(s) => match expand(s, lookup) {
            Ok(expanded) => *s = expanded,
            Err(message) => issues.push(ConfigIssue::new(path, message)),
        },
        Value::Array(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                substitute_value(&format!("{path}[{i}]"), item, lookup, issues);
            }
        }
        Value::Table(t) => {
            for (k, v) in t.iter_mut() {
                substitute_value(&format!("{path}.{k}"), v, lookup, issues);
            }
        }
        _ => {}
    }
}

/// Expands `${VAR}` references in one string.
pub fn expand(text: &str, lookup: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos + 1..];
        if let Some(tail) = after.strip_prefix("${") {
            out.push_str("${");
            rest = tail;
        } else if let Some(tail) = after.strip_prefix('{') {
            let end = tail
                .find('}')
                .ok_or_else(|| "unterminated `${` (expected `${VAR}`)".to_owned())?;
            let name = &tail[..end];
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err(format!(
                    "invalid variable reference `${{{name}}}` (expected `${{VAR}}` with letters, digits and _)"
                ));
            }
            let value = lookup(name).ok_or_else(|| format!("environment variable \"{name}\" is not set"))?;
            out.push_str(&value);
            rest = &tail[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: BTreeMap<String, String> = pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn expands_references_and_escapes() {
        let lookup = env(&[("TOKEN", "s3cr\"et")]);
        assert_eq!(expand("Bearer ${TOKEN}", &lookup).unwrap(), "Bearer s3cr\"et");
        assert_eq!(
            expand("cost $5 and $${literal}", &lookup).unwrap(),
            "cost $5 and ${literal}"
        );
        assert_eq!(
            expand("${MISSING}", &lookup).unwrap_err(),
            "environment variable \"MISSING\" is not set"
        );
        assert!(expand("${TOKEN", &lookup).unwrap_err().contains("unterminated"));
        assert!(expand("${a-b}", &lookup).unwrap_err().contains("invalid variable"));
    }

    #[test]
    fn unset_variable_names_key_and_variable() {
        let mut t = parse_text("[sources.sales]\nurl = \"postgres://u:${PG_PASS}@h/db\"").unwrap();
        let issues = substitute_vars(&mut t, &env(&[]));
        assert_eq!(issues.len(), 1);
        assert_eq!(issues[0].key, "sources.sales.url");
        assert_eq!(issues[0].message, "environment variable \"PG_PASS\" is not set");
    }

    #[test]
    fn overrides_arrive_as_written_and_retype_on_demand() {
        let mut t = parse_text("[agent]\nname = \"a\"\ndry_run = false").unwrap();
        let overrides = apply_env_overrides(
            &mut t,
            [
                ("BI_AGENT__AGENT__DRY_RUN".to_owned(), "true".to_owned()),
                ("BI_AGENT__AGENT__INTERVAL".to_owned(), "30s".to_owned()),
                ("BI_AGENT__SOURCES__WEB__MAX_ROWS".to_owned(), "5".to_owned()),
                ("BI_AGENT_CONFIG".to_owned(), "/etc/x.toml".to_owned()),
                ("UNRELATED".to_owned(), "1".to_owned()),
            ],
        )
        .unwrap();
        assert_eq!(t["agent"]["dry_run"], Value::String("true".into()));
        assert_eq!(t["agent"]["interval"], Value::String("30s".into()));
        assert_eq!(t["sources"]["web"]["max_rows"], Value::String("5".into()));
        assert!(!t.contains_key("config"));
        let by_key = |k: &str| overrides.iter().find(|o| o.key == k).unwrap();
        assert_eq!(by_key("agent.dry_run").var, "BI_AGENT__AGENT__DRY_RUN");
        assert!(retype(&mut t, by_key("agent.dry_run")));
        assert_eq!(t["agent"]["dry_run"], Value::Boolean(true));
        assert!(retype(&mut t, by_key("sources.web.max_rows")));
        assert_eq!(t["sources"]["web"]["max_rows"], Value::Integer(5));
        // Text that is no TOML value stays the string it was.
        assert!(!retype(&mut t, by_key("agent.interval")));
    }

    #[test]
    fn override_into_a_scalar_is_an_issue() {
        let mut t = parse_text("[agent]\nname = \"a\"").unwrap();
        let issues =
            apply_env_overrides(&mut t, [("BI_AGENT__AGENT__NAME__X".to_owned(), "1".to_owned())]).unwrap_err();
        assert_eq!(issues[0].key, "agent.name.x");
        assert!(issues[0].message.contains("`agent.name` is not a table"));
    }
}
