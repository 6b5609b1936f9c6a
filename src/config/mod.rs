//! Configuration: one TOML file → validated, typed [`Settings`].
//!
//! Loading ([`load`]) layers the file, `BI_AGENT__SECTION__KEY` environment
//! overrides and `${VAR}` secret references; [`schema`] gives the typed shape
//! with defaults; [`validate`] judges values and collects *every* problem, each
//! as `key: what is wrong`, so one `bi-agent check` run shows them all.
//!
//! Configuration must never print a secret: secret-bearing values are
//! [`secret`] types and error texts name keys and variables, never values.

pub mod channels;
pub mod columns;
mod layers;
pub mod learning;
pub mod llm;
pub mod load;
pub mod quiet;
pub mod reports;
pub mod rules;
pub mod schema;
pub mod secret;
pub mod validate;

use std::fmt;
use std::path::{Path, PathBuf};

pub use channels::*;
pub use learning::LearningSettings;
pub use llm::LlmSettings;
pub use quiet::{QuietError, QuietWindows};
pub use reports::ReportSettings;
pub use rules::*;
pub use schema::*;
pub use secret::{ExposeSecret, SecretText, SecretUrl};

/// One problem with the configuration, named by its key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigIssue {
    /// Dotted key, e.g. `sources.sales.url`.
    pub key: String,
    /// What is wrong with it.
    pub message: String,
}

impl ConfigIssue {
    /// An issue for `key`.
    pub fn new(key: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for ConfigIssue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.key.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.key, self.message)
        }
    }
}

/// Why a configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {}: {source}", path.display())]
    Read {
        /// The path given.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not valid TOML.
    #[error("{}: invalid TOML: {message}", path.display())]
    Parse {
        /// The path given.
        path: PathBuf,
        /// The parser's message with line and column.
        message: String,
    },
    /// The file parsed but its content is wrong; every issue is listed.
    #[error("{}", issues_text(.0))]
    Invalid(Vec<ConfigIssue>),
}

impl ConfigError {
    /// The individual issues (one for read and parse errors).
    pub fn issues(&self) -> Vec<String> {
        match self {
            ConfigError::Invalid(issues) => issues.iter().map(ToString::to_string).collect(),
            other => vec![other.to_string()],
        }
    }
}

fn issues_text(issues: &[ConfigIssue]) -> String {
    issues.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n")
}

impl Settings {
    /// The sources that read on from the newest point held (`incremental`).
    pub fn incremental_sources(&self) -> Vec<&str> {
        (self.sources.iter())
            .filter(|(_, s)| s.is_incremental())
            .map(|(name, _)| name.as_str())
            .collect()
    }

    /// Loads, layers and validates the file at `path` with this process's environment.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let table = load::read_file(path)?;
        Self::from_table(table, std::env::vars(), &|name| std::env::var(name).ok())
    }

    /// Loads from TOML text with the given environment (for tests and the demo).
    pub fn from_toml_str(
        text: &str,
        env: impl IntoIterator<Item = (String, String)>,
        lookup: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let table = load::parse_text(text).map_err(|message| ConfigError::Parse {
            path: PathBuf::from("<text>"),
            message,
        })?;
        Self::from_table(table, env, lookup)
    }

    fn from_table(
        mut table: toml::Table,
        env: impl IntoIterator<Item = (String, String)>,
        lookup: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        // `${VAR}` belongs to the file; a value from the environment is taken
        // as it is (a secret with `${` in it must not be expanded, or echoed
        // in an error about a variable).
        let mut issues = load::substitute_vars(&mut table, lookup);
        let overrides = match load::apply_env_overrides(&mut table, env) {
            Ok(overrides) => overrides,
            Err(mut env_issues) => {
                issues.append(&mut env_issues);
                Vec::new()
            }
        };
        if !issues.is_empty() {
            return Err(ConfigError::Invalid(issues));
        }
        let settings = deserialize_with_overrides(table, &overrides)?;
        let problems = validate::validate(&settings);
        if problems.is_empty() {
            Ok(settings)
        } else {
            Err(ConfigError::Invalid(problems))
        }
    }
}

/// Deserialises the layered table. Overrides arrive as strings; where one
/// lands on a key that wants another type, it is read as TOML and tried
/// again (at most once per override). An error about a value from the
/// environment names the variable.
fn deserialize_with_overrides(mut table: toml::Table, overrides: &[load::Override]) -> Result<Settings, ConfigError> {
    let mut retyped = std::collections::BTreeSet::new();
    loop {
        let mut issue = match deserialize(table.clone()) {
            Ok(settings) => return Ok(settings),
            Err(issue) => issue,
        };
        let culprit = overrides.iter().find(|o| issue.key == o.key);
        if let Some(o) = culprit
            && retyped.insert(o.key.clone())
            && load::retype(&mut table, o)
        {
            continue;
        }
        let from_env = culprit.or_else(|| {
            (overrides.iter()).find(|o| {
                issue.key.starts_with(&format!("{}.", o.key)) || o.key.starts_with(&format!("{}.", issue.key))
            })
        });
        if let Some(o) = from_env {
            issue.message = format!("{} (from {})", issue.message, o.var);
        }
        return Err(ConfigError::Invalid(vec![issue]));
    }
}

/// Deserialises with the full key path of the first error.
fn deserialize(table: toml::Table) -> Result<Settings, ConfigIssue> {
    serde_path_to_error::deserialize(toml::Value::Table(table)).map_err(|e| {
        let path = e.path().to_string();
        let message = clean_message(&e.into_inner().to_string());
        nested::issue(&path, &message)
    })
}

/// The toml deserialiser appends "in `key`" lines; the key is ours to name.
fn clean_message(message: &str) -> String {
    let message = message.split("\nin `").next().unwrap_or(message);
    message.trim_end().to_owned()
}

/// Carries the inner key path of an error out of a `kind`-tagged table.
///
/// serde buffers a tagged table before picking its variant, which loses the
/// path below it; the variant is therefore deserialised on its own (with its
/// own path tracking) and the inner path travels in the error text, marked so
/// [`issue`] can join it to the outer path.
mod nested {
    use super::ConfigIssue;

    const MARK: char = '\u{1f}';

    /// Encodes an inner path and message as one error text.
    pub fn encode(inner_path: &str, message: &str) -> String {
        format!("{MARK}{inner_path}{MARK}{message}")
    }

    /// Builds the issue for an error at `outer` whose message may carry an inner path.
    pub fn issue(outer: &str, message: &str) -> ConfigIssue {
        let outer = if outer == "." { "" } else { outer };
        if let Some(rest) = message.strip_prefix(MARK)
            && let Some((inner, msg)) = rest.split_once(MARK)
        {
            let key = match (outer.is_empty(), inner.is_empty() || inner == ".") {
                (_, true) => outer.to_owned(),
                (true, false) => inner.to_owned(),
                (false, false) => format!("{outer}.{inner}"),
            };
            return ConfigIssue::new(key, msg);
        }
        ConfigIssue::new(outer, message)
    }
}

/// Builds one variant of a tagged table from the table (without `kind`).
type Variant<T> = fn(toml::Table) -> Result<T, String>;

/// Reads a `kind`-tagged table: the variant named by `kind` is deserialised
/// on its own, so an error inside it keeps its full key path (serde's own
/// tagged enums buffer the table and lose it). `variants` maps each kind to
/// its constructor; `expected` lists them for messages.
fn tagged<'de, D, T>(d: D, expected: &str, variants: &[(&str, Variant<T>)]) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
{
    use serde::Deserialize as _;
    use serde::de::Error;
    let mut table = toml::Table::deserialize(d)?;
    let kind = match table.remove("kind") {
        Some(toml::Value::String(kind)) => kind,
        Some(_) => {
            return Err(D::Error::custom(nested::encode(
                "kind",
                &format!("must be a string: {expected}"),
            )));
        }
        None => {
            return Err(D::Error::custom(nested::encode(
                "kind",
                &format!("missing (expected {expected})"),
            )));
        }
    };
    match variants.iter().find(|(name, _)| *name == kind) {
        Some((_, build)) => build(table).map_err(D::Error::custom),
        None => Err(D::Error::custom(nested::encode(
            "kind",
            &format!("unknown kind \"{kind}\" (expected {expected})"),
        ))),
    }
}

/// One variant of a tagged table, with the path of any error inside it.
fn variant<T: serde::de::DeserializeOwned>(table: toml::Table) -> Result<T, String> {
    serde_path_to_error::deserialize(toml::Value::Table(table)).map_err(|e| {
        let path = e.path().to_string();
        nested::encode(&path, &clean_message(&e.into_inner().to_string()))
    })
}

impl<'de> serde::Deserialize<'de> for SourceSettings {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        tagged(
            d,
            "\"sql\" or \"http\"",
            &[
                ("sql", |t| variant(t).map(SourceSettings::Sql)),
                ("http", |t| variant(t).map(SourceSettings::Http)),
            ],
        )
    }
}

impl<'de> serde::Deserialize<'de> for ChannelSettings {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        tagged(
            d,
            "\"slack\" or \"email\"",
            &[
                ("slack", |t| variant(t).map(ChannelSettings::Slack)),
                ("email", |t| variant(t).map(ChannelSettings::Email)),
            ],
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
        [agent]
        name = "t"
        [memory]
        path = "/tmp/m.db"
    "#;

    fn load(text: &str, vars: &[(&str, &str)]) -> Result<Settings, ConfigError> {
        let vars: Vec<(String, String)> = vars.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        let lookup_vars = vars.clone();
        Settings::from_toml_str(text, vars, &move |k| {
            lookup_vars.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone())
        })
    }

    fn first_issue(err: ConfigError) -> String {
        err.issues().remove(0)
    }

    #[test]
    fn minimal_config_gets_defaults() {
        let s = load(MINIMAL, &[]).unwrap();
        assert_eq!(s.agent.interval, std::time::Duration::from_secs(300));
        assert_eq!(s.agent.max_actions_per_cycle, 10);
        assert!(!s.agent.dry_run);
        assert!(s.sources.is_empty());
    }

    #[test]
    fn unknown_key_names_its_path() {
        let text = format!(
            "{MINIMAL}\n[sources.sales]\nkind = \"sql\"\nurl = \"sqlite://x.db\"\nsql = \"select 1\"\ntimeout_s = 3\n"
        );
        let issue = first_issue(load(&text, &[]).unwrap_err());
        assert!(
            issue.starts_with("sources.sales.timeout_s: unknown field `timeout_s`"),
            "{issue}"
        );
    }

    #[test]
    fn bad_duration_names_its_path() {
        let text = format!(
            "{MINIMAL}\n[sources.sales]\nkind = \"sql\"\nurl = \"sqlite://x.db\"\nsql = \"select 1\"\ntimeout = \"10 parsecs\"\n"
        );
        let issue = first_issue(load(&text, &[]).unwrap_err());
        assert!(issue.starts_with("sources.sales.timeout: "), "{issue}");
        assert!(issue.contains("parsecs"), "{issue}");
    }

    #[test]
    fn missing_required_key_is_named() {
        let issue = first_issue(load("[agent]\nname = \"x\"\n", &[]).unwrap_err());
        assert_eq!(issue, "missing field `memory`");
        let text = format!("{MINIMAL}\n[sources.sales]\nkind = \"sql\"\nurl = \"sqlite://x.db\"\n");
        let issue = first_issue(load(&text, &[]).unwrap_err());
        assert_eq!(issue, "sources.sales: missing field `sql`");
    }

    #[test]
    fn unknown_kind_is_named() {
        let text = format!("{MINIMAL}\n[sources.sales]\nkind = \"ftp\"\n");
        let issue = first_issue(load(&text, &[]).unwrap_err());
        assert_eq!(
            issue,
            "sources.sales.kind: unknown kind \"ftp\" (expected \"sql\" or \"http\")"
        );
    }

    #[test]
    fn secrets_are_substituted_and_never_debug_printed() {
        let text = format!(
            "{MINIMAL}\n[sources.web]\nkind = \"http\"\nurl = \"http://127.0.0.1:9/x?key=${{API_KEY}}\"\nheaders = {{ Authorization = \"Bearer ${{API_KEY}}\" }}\n"
        );
        let s = load(&text, &[("API_KEY", "topsecret-123")]).unwrap();
        let SourceSettings::Http(h) = &s.sources["web"] else {
            panic!("http source expected")
        };
        assert_eq!(h.headers["Authorization"].expose(), "Bearer topsecret-123");
        assert!(h.url.expose().ends_with("key=topsecret-123"));
        let printed = format!("{s:?}");
        assert!(!printed.contains("topsecret-123"), "{printed}");
    }

    #[test]
    fn env_override_wins_over_file() {
        let s = load(
            MINIMAL,
            &[
                ("BI_AGENT__AGENT__DRY_RUN", "true"),
                ("BI_AGENT__AGENT__INTERVAL", "30s"),
            ],
        )
        .unwrap();
        assert!(s.agent.dry_run);
        assert_eq!(s.agent.interval, std::time::Duration::from_secs(30));
    }
}
