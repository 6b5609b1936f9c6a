//! Layering with the `config` crate: the file's table is the first layer,
//! the `BI_AGENT__SECTION__KEY` overrides the second, and `config` merges
//! them into one tree.
//!
//! Both layers are our own [`config::Source`]s rather than `config`'s file
//! and environment sources, to keep what those cannot: keys exactly as
//! written (its environment source lower-cases and splits on its own
//! rules), a value from the environment exactly as given (typed only where
//! the key asks, by [`super::load::retype`]), and deserialisation with the
//! full key path of any error (done on the merged tree by `super`).
//!
//! This module must never log or echo a value: values may be secrets.

use config::{Config, Map, Source, Value as Layered, ValueKind};
use toml::{Table, Value};

/// The file, as the bottom layer.
#[derive(Debug, Clone)]
struct FileLayer(Table);

impl Source for FileLayer {
    fn clone_into_box(&self) -> Box<dyn Source + Send + Sync> {
        Box::new(self.clone())
    }

    fn collect(&self) -> Result<Map<String, Layered>, config::ConfigError> {
        Ok((self.0.iter()).map(|(k, v)| (k.clone(), to_layered(v))).collect())
    }
}

/// The environment overrides, as the top layer: `(key path, variable, text)`.
#[derive(Debug, Clone, Default)]
pub(super) struct EnvLayer(pub Vec<(Vec<String>, String, String)>);

impl Source for EnvLayer {
    fn clone_into_box(&self) -> Box<dyn Source + Send + Sync> {
        Box::new(self.clone())
    }

    fn collect(&self) -> Result<Map<String, Layered>, config::ConfigError> {
        let mut tree = Layered::new(None, ValueKind::Table(Map::new()));
        self.collect_to(&mut tree)?;
        tree.into_table()
    }

    /// Sets each override at its exact key path (`config`'s own path syntax
    /// would read a key like `2xx` or `a-b` its own way); the value's origin
    /// is the variable's name, never its text.
    fn collect_to(&self, tree: &mut Layered) -> Result<(), config::ConfigError> {
        for (path, var, raw) in &self.0 {
            let Some((last, parents)) = path.split_last() else {
                continue;
            };
            let mut node = &mut *tree;
            for key in parents {
                let ValueKind::Table(table) = &mut node.kind else {
                    return Err(config::ConfigError::Message(format!(
                        "{var}: a parent of the key is not a table"
                    )));
                };
                node = table
                    .entry(key.clone())
                    .or_insert_with(|| Layered::new(None, ValueKind::Table(Map::new())));
                if !matches!(node.kind, ValueKind::Table(_)) {
                    return Err(config::ConfigError::Message(format!(
                        "{var}: a parent of the key is not a table"
                    )));
                }
            }
            if let ValueKind::Table(table) = &mut node.kind {
                table.insert(last.clone(), Layered::new(Some(var), ValueKind::String(raw.clone())));
            }
        }
        Ok(())
    }
}

/// Merges `env` over `file` with `config`; the merged tree as TOML.
pub(super) fn merge(file: Table, env: EnvLayer) -> Result<Table, String> {
    let merged = Config::builder()
        .add_source(FileLayer(file))
        .add_source(env)
        .build()
        .and_then(|c| c.collect())
        .map_err(|e| e.to_string())?;
    Ok(merged.into_iter().map(|(k, v)| (k, to_toml(v))).collect())
}

fn to_layered(value: &Value) -> Layered {
    let kind = match value {
        Value::String(s) => ValueKind::String(s.clone()),
        Value::Integer(i) => ValueKind::I64(*i),
        Value::Float(f) => ValueKind::Float(*f),
        Value::Boolean(b) => ValueKind::Boolean(*b),
        // Settings hold no TOML datetimes; as text they round-trip unchanged
        // for any field that reads a timestamp from a string.
        Value::Datetime(d) => ValueKind::String(d.to_string()),
        Value::Array(items) => ValueKind::Array(items.iter().map(to_layered).collect()),
        Value::Table(t) => ValueKind::Table(t.iter().map(|(k, v)| (k.clone(), to_layered(v))).collect()),
    };
    // The file is the origin of its values; none needs naming.
    Layered::new(None, kind)
}

fn to_toml(value: Layered) -> Value {
    match value.kind {
        // Neither layer produces nil; an empty table is the closest TOML has.
        ValueKind::Nil => Value::Table(Table::new()),
        ValueKind::Boolean(b) => Value::Boolean(b),
        ValueKind::I64(i) => Value::Integer(i),
        ValueKind::I128(i) => i64::try_from(i).map_or(Value::Float(i as f64), Value::Integer),
        ValueKind::U64(u) => i64::try_from(u).map_or(Value::Float(u as f64), Value::Integer),
        ValueKind::U128(u) => i64::try_from(u).map_or(Value::Float(u as f64), Value::Integer),
        ValueKind::Float(f) => Value::Float(f),
        ValueKind::String(s) => Value::String(s),
        ValueKind::Array(items) => Value::Array(items.into_iter().map(to_toml).collect()),
        ValueKind::Table(t) => Value::Table(t.into_iter().map(|(k, v)| (k, to_toml(v))).collect()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overrides_merge_over_the_file_keeping_keys_and_text_exact() {
        let file: Table =
            "[agent]\nname = \"a\"\ninterval = \"1m\"\n[roles]\nSales-Team = [\"slack:#x\"]\n[[rules]]\nname = \"r\""
                .parse()
                .unwrap();
        let env = EnvLayer(vec![
            (
                vec!["agent".into(), "name".into()],
                "BI_AGENT__AGENT__NAME".into(),
                "0x1F".into(),
            ),
            (
                vec!["sources".into(), "2xx".into(), "url".into()],
                "BI_AGENT__SOURCES__2XX__URL".into(),
                "http://h/${X}".into(),
            ),
        ]);
        let merged = merge(file, env).unwrap();
        assert_eq!(merged["agent"]["name"], Value::String("0x1F".into()));
        assert_eq!(merged["agent"]["interval"], Value::String("1m".into()));
        assert_eq!(merged["roles"]["Sales-Team"][0], Value::String("slack:#x".into()));
        assert_eq!(merged["sources"]["2xx"]["url"], Value::String("http://h/${X}".into()));
        assert_eq!(merged["rules"][0]["name"], Value::String("r".into()));
    }

    #[test]
    fn an_override_below_a_scalar_is_refused_by_name_not_value() {
        let file: Table = "[agent]\nname = \"a\"".parse().unwrap();
        let env = EnvLayer(vec![(
            vec!["agent".into(), "name".into(), "x".into()],
            "BI_AGENT__AGENT__NAME__X".into(),
            "s3cret".into(),
        )]);
        let err = merge(file, env).unwrap_err();
        assert!(err.contains("BI_AGENT__AGENT__NAME__X"), "{err}");
        assert!(!err.contains("s3cret"), "{err}");
    }
}
