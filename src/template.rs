//! Message templates (minijinja): compiled once at load, rendered per action.
//!
//! Templates see the row's labels and values as top-level variables
//! (`{{ region }}`, `{{ revenue_growth_wow }}`) and also `labels`, `values`,
//! `rule` (name, severity, description), `alert` (state, episode, since),
//! `params` and `agent`. Undefined variables are errors, not empty text, so a
//! typo shows up instead of a silently broken message.
//!
//! Filters: `percent` (0.305 → `30.5%`), `signed_percent` (→ `+30.5%`),
//! `number` (1234567.8 → `1,234,568`), `currency` (1234.5 → `$1,234.50`);
//! for reports over a list of rows, `wow_table(label, current, previous)`
//! (an aligned text table: label, this week, last week, change) and
//! `top_movers(label, current, previous, n)` (the `n` rows with the largest
//! absolute change, each with `label`, `current`, `previous`, `delta` and
//! `change`, the relative change or none when the previous value is 0).
//!
//! Templates render data only: no filesystem access, no network, no
//! includes. Label values come from data and are untrusted text: they are
//! rendered as given, and channels escape them for their own format.

use minijinja::{Environment, Error, ErrorKind, UndefinedBehavior, Value};

use crate::numbers::group_thousands;

/// A data value for a template: a whole number as an integer (`40`, not
/// `40.0`: counts from integer columns arrive as floats), anything else as it is.
pub fn value(v: f64) -> serde_json::Value {
    /// Floats represent every integer up to 2^53 exactly.
    const EXACT: f64 = 9_007_199_254_740_992.0;
    if v.fract() == 0.0 && v.abs() < EXACT {
        // In range and whole: the conversion is exact.
        serde_json::Value::from(v as i64)
    } else {
        serde_json::Value::from(v)
    }
}

/// [`value`] over a map of values.
pub fn values<'a>(map: impl IntoIterator<Item = (&'a String, &'a f64)>) -> serde_json::Value {
    serde_json::Value::Object(map.into_iter().map(|(k, v)| (k.clone(), value(*v))).collect())
}

/// Compiled templates, by key (e.g. `rules.revenue_drop.actions.alert.message`).
#[derive(Debug)]
pub struct Templates {
    env: Environment<'static>,
}

impl Default for Templates {
    fn default() -> Self {
        Self::new()
    }
}

impl Templates {
    /// An empty set with the filters installed.
    pub fn new() -> Self {
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        env.add_filter("percent", percent);
        env.add_filter("signed_percent", signed_percent);
        env.add_filter("number", number);
        env.add_filter("currency", currency);
        env.add_filter("wow_table", wow_table);
        env.add_filter("top_movers", top_movers);
        Self { env }
    }

    /// Compiles `source` under `key`; the error text is minijinja's, with line.
    pub fn add(&mut self, key: &str, source: &str) -> Result<(), String> {
        self.env
            .add_template_owned(key.to_owned(), source.to_owned())
            .map_err(|e| describe(&e))
    }

    /// Renders the template `key` with `context`.
    pub fn render(&self, key: &str, context: &serde_json::Value) -> Result<String, String> {
        let template = self.env.get_template(key).map_err(|e| describe(&e))?;
        template
            .render(Value::from(minijinja::value::Serde(context)))
            .map(|s| s.trim().to_owned())
            .map_err(|e| describe(&e))
    }

    /// Whether a template was added under `key`.
    pub fn has(&self, key: &str) -> bool {
        self.env.get_template(key).is_ok()
    }

    /// What is wrong with template `key` that rendering would only find
    /// later: each top-level variable it reads that is not in `known` (when
    /// the names are known) and each filter that does not exist. Names
    /// minijinja provides itself (`range`, `loop`, …) are always known.
    pub fn check(&self, key: &str, known: Option<&std::collections::BTreeSet<String>>) -> Vec<String> {
        let Ok(template) = self.env.get_template(key) else {
            return Vec::new();
        };
        let mut problems = Vec::new();
        if let Some(known) = known {
            let mut unknown: Vec<String> = (template.undeclared_variables(false).into_iter())
                .filter(|name| !known.contains(name) && !GLOBALS.contains(&name.as_str()))
                .collect();
            unknown.sort();
            for name in unknown {
                problems.push(format!("unknown variable `{name}`"));
            }
        }
        for name in filters_in(template.source()) {
            if !self.has_filter(&name) {
                problems.push(format!("unknown filter `{name}`"));
            }
        }
        problems
    }

    /// Whether a filter named `name` exists (built in or ours).
    fn has_filter(&self, name: &str) -> bool {
        let probe = format!("{{{{ 1 | {name} }}}}");
        match self.env.render_str(&probe, ()) {
            Ok(_) => true,
            Err(e) => e.kind() != ErrorKind::UnknownFilter,
        }
    }
}

/// Names minijinja defines for every template.
const GLOBALS: &[&str] = &[
    "range",
    "dict",
    "namespace",
    "debug",
    "loop",
    "self",
    "super",
    "true",
    "false",
    "none",
];

/// The filter names used in a template's `{{ … }}` and `{% … %}` blocks
/// (string literals skipped), de-duplicated, in order of first use.
fn filters_in(source: &str) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    let mut rest = source;
    while let Some(open) = rest.find(['{']) {
        let after = &rest[open + 1..];
        let close = match after.chars().next() {
            Some('{') => "}}",
            Some('%') => "%}",
            _ => {
                rest = after;
                continue;
            }
        };
        let Some(end) = after.find(close) else { break };
        let block = strip_strings(&after[1..end]);
        let mut parts = block.split('|').skip(1);
        for part in parts.by_ref() {
            let name: String = (part.trim_start().chars())
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() && !names.contains(&name) {
                names.push(name);
            }
        }
        rest = &after[end + close.len()..];
    }
    names
}

/// `block` with the text of its string literals blanked (a `|` inside a
/// string is no filter).
fn strip_strings(block: &str) -> String {
    let mut out = String::with_capacity(block.len());
    let mut quote: Option<char> = None;
    for c in block.chars() {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None if c == '"' || c == '\'' => quote = Some(c),
            None => out.push(c),
        }
    }
    out
}

fn describe(e: &Error) -> String {
    let mut text = match e.kind() {
        ErrorKind::UndefinedError => "undefined variable".to_owned(),
        _ => e.kind().to_string(),
    };
    if let Some(detail) = e.detail() {
        text.push_str(": ");
        text.push_str(detail);
    }
    if let Some(line) = e.line() {
        text.push_str(&format!(" (line {line})"));
    }
    text
}

fn as_f64(v: &Value) -> Result<f64, Error> {
    f64::try_from(v.clone()).map_err(|_| Error::new(ErrorKind::InvalidOperation, format!("expected a number, got {v}")))
}

/// 0.305 → `30.5%` (decimals default 1).
fn percent(v: &Value, decimals: Option<usize>) -> Result<String, Error> {
    Ok(format!("{:.*}%", decimals.unwrap_or(1), as_f64(v)? * 100.0))
}

/// 0.305 → `+30.5%`, -0.305 → `-30.5%`.
fn signed_percent(v: &Value, decimals: Option<usize>) -> Result<String, Error> {
    Ok(format!("{:+.*}%", decimals.unwrap_or(1), as_f64(v)? * 100.0))
}

/// 1234567.8 → `1,234,568` (decimals default 0).
fn number(v: &Value, decimals: Option<usize>) -> Result<String, Error> {
    Ok(group_thousands(as_f64(v)?, decimals.unwrap_or(0)))
}

/// 1234.5 → `$1,234.50`; `currency("€")` → `€1,234.50`.
fn currency(v: &Value, symbol: Option<String>, decimals: Option<usize>) -> Result<String, Error> {
    let x = as_f64(v)?;
    let body = group_thousands(x.abs(), decimals.unwrap_or(2));
    let sign = if x < 0.0 && body.chars().any(|c| c.is_ascii_digit() && c != '0') {
        "-"
    } else {
        ""
    };
    Ok(format!("{sign}{}{body}", symbol.as_deref().unwrap_or("$")))
}

/// One row's label and its current and previous values (missing: `None`).
fn mover(row: &Value, label: &str, current: &str, previous: &str) -> Result<(String, Option<f64>, Option<f64>), Error> {
    let name = row.get_attr(label)?;
    let name = if name.is_undefined() || name.is_none() {
        "—".to_owned()
    } else {
        name.to_string()
    };
    let number = |key: &str| -> Result<Option<f64>, Error> {
        let v = row.get_attr(key)?;
        Ok(if v.is_undefined() || v.is_none() {
            None
        } else {
            Some(as_f64(&v)?)
        })
    };
    Ok((name, number(current)?, number(previous)?))
}

/// The relative change from `previous` to `current`, none when `previous` is 0.
fn relative(current: f64, previous: f64) -> Option<f64> {
    (previous != 0.0).then(|| (current - previous) / previous.abs())
}

/// Rows → an aligned week-over-week table (`format` is `"number"`, the
/// default, or `"currency"`). Rows missing a value show `—`.
fn wow_table(
    rows: &Value,
    label: String,
    current: String,
    previous: String,
    format: Option<String>,
) -> Result<String, Error> {
    let fmt = |x: Option<f64>| match (x, format.as_deref()) {
        (None, _) => Ok("—".to_owned()),
        (Some(x), Some("currency")) => currency(&Value::from(x), None, Some(0)),
        (Some(x), None | Some("number")) => Ok(group_thousands(x, 0)),
        (Some(_), Some(other)) => Err(Error::new(
            ErrorKind::InvalidOperation,
            format!("wow_table: unknown format \"{other}\" (expected \"number\" or \"currency\")"),
        )),
    };
    let mut lines = vec![[label.clone(), "this week".into(), "last week".into(), "change".into()]];
    for row in rows.try_iter()? {
        let (name, cur, prev) = mover(&row, &label, &current, &previous)?;
        let change = match (cur, prev) {
            (Some(c), Some(p)) => relative(c, p).map_or_else(|| "n/a".to_owned(), |r| format!("{:+.1}%", r * 100.0)),
            _ => "—".to_owned(),
        };
        lines.push([name, fmt(cur)?, fmt(prev)?, change]);
    }
    let widths: Vec<usize> = (0..4)
        .map(|i| lines.iter().map(|l| l[i].chars().count()).max().unwrap_or(0))
        .collect();
    let text: Vec<String> = lines
        .iter()
        .map(|l| {
            // The label column is left-aligned, numbers right-aligned.
            let mut line = format!("{:<w$}", l[0], w = widths[0]);
            for i in 1..4 {
                line.push_str(&format!("  {:>w$}", l[i], w = widths[i]));
            }
            line.trim_end().to_owned()
        })
        .collect();
    Ok(text.join("\n"))
}

/// Rows → the `n` (default 3) rows with the largest absolute change from `previous` to `current`.
fn top_movers(
    rows: &Value,
    label: String,
    current: String,
    previous: String,
    n: Option<usize>,
) -> Result<Value, Error> {
    let mut movers = Vec::new();
    for row in rows.try_iter()? {
        if let (name, Some(cur), Some(prev)) = mover(&row, &label, &current, &previous)? {
            movers.push((name, cur, prev));
        }
    }
    // Largest absolute change first; ties keep the rows' order (stable sort).
    movers.sort_by(|a, b| (b.1 - b.2).abs().total_cmp(&(a.1 - a.2).abs()));
    let list: Vec<serde_json::Value> = movers
        .into_iter()
        .take(n.unwrap_or(3))
        .map(|(name, cur, prev)| {
            serde_json::json!({
                "label": name,
                "current": cur,
                "previous": prev,
                "delta": cur - prev,
                "change": relative(cur, prev),
            })
        })
        .collect();
    Ok(Value::from(minijinja::value::Serde(&list)))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn whole_numbers_render_without_a_fraction() {
        let mut t = Templates::new();
        t.add("t", "{{ n }} of {{ total }} ({{ share }}); {{ values.n }}")
            .unwrap();
        let mut row = std::collections::BTreeMap::new();
        row.insert("n".to_owned(), 40.0);
        let context = serde_json::json!({
            "n": value(40.0), "total": value(60.0), "share": value(0.6667), "values": values(&row),
        });
        assert_eq!(t.render("t", &context).unwrap(), "40 of 60 (0.6667); 40");
        assert_eq!(value(-3.0), serde_json::json!(-3));
        assert_eq!(value(1e300), serde_json::json!(1e300));
    }

    fn render(src: &str, ctx: serde_json::Value) -> Result<String, String> {
        let mut t = Templates::new();
        t.add("t", src)?;
        t.render("t", &ctx)
    }

    #[test]
    fn filters_format_numbers() {
        let ctx = json!({"g": -0.3049, "r": 1234567.891, "m": -1234.5, "z": 0.0});
        assert_eq!(render("{{ g | percent }}", ctx.clone()).unwrap(), "-30.5%");
        assert_eq!(render("{{ g | signed_percent(0) }}", ctx.clone()).unwrap(), "-30%");
        assert_eq!(render("{{ z | signed_percent }}", ctx.clone()).unwrap(), "+0.0%");
        assert_eq!(render("{{ r | number }}", ctx.clone()).unwrap(), "1,234,568");
        assert_eq!(render("{{ r | number(2) }}", ctx.clone()).unwrap(), "1,234,567.89");
        assert_eq!(render("{{ m | currency }}", ctx.clone()).unwrap(), "-$1,234.50");
        assert_eq!(render("{{ r | currency('€', 0) }}", ctx).unwrap(), "€1,234,568");
    }

    #[test]
    fn week_over_week_table_and_top_movers() {
        let ctx = json!({"rows": [
            {"region": "Northeast", "rev": 120000.0, "prev": 150000.0},
            {"region": "West", "rev": 99000.0, "prev": 90000.0},
            {"region": "South", "rev": 50000.0, "prev": 0.0},
            {"region": "North", "rev": 10.0},
        ]});
        let table = render("{{ rows | wow_table('region', 'rev', 'prev') }}", ctx.clone()).unwrap();
        assert_eq!(
            table,
            "region     this week  last week  change\n\
             Northeast    120,000    150,000  -20.0%\n\
             West          99,000     90,000  +10.0%\n\
             South         50,000          0     n/a\n\
             North             10          —       —"
        );
        let money = render(
            "{{ rows[:1] | wow_table('region', 'rev', 'prev', 'currency') }}",
            ctx.clone(),
        )
        .unwrap();
        assert!(money.contains("$120,000"), "{money}");
        let movers = render(
            "{% for m in rows | top_movers('region', 'rev', 'prev', 2) %}{{ m.label }} {{ m.delta | number }} \
             {% if m.change is not none %}{{ m.change | signed_percent }}{% endif %};{% endfor %}",
            ctx,
        )
        .unwrap();
        assert_eq!(movers, "South 50,000 ;Northeast -30,000 -20.0%;");
    }

    #[test]
    fn undefined_variables_are_errors() {
        let e = render("Revenue in {{ regoin }}", json!({"region": "West"})).unwrap_err();
        assert!(e.starts_with("undefined variable"), "{e}");
    }

    #[test]
    fn syntax_errors_name_the_line() {
        let mut t = Templates::new();
        let e = t.add("t", "line one\n{{ broken ").unwrap_err();
        assert!(e.contains("line 2"), "{e}");
    }

    #[test]
    fn non_numbers_are_refused_by_number_filters() {
        let e = render("{{ region | percent }}", json!({"region": "West"})).unwrap_err();
        assert!(e.contains("expected a number"), "{e}");
    }

    #[test]
    fn thousands() {
        assert_eq!(group_thousands(0.0, 0), "0");
        assert_eq!(group_thousands(999.0, 0), "999");
        assert_eq!(group_thousands(1000.0, 0), "1,000");
        assert_eq!(group_thousands(-0.001, 2), "0.00");
        assert_eq!(group_thousands(-1234.0, 1), "-1,234.0");
    }
}
