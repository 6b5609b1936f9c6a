//! Rule conditions in CEL: the one place that touches the `cel` crate, so its
//! API churn stays here.
//!
//! A condition is compiled once, when the config loads. Compiling walks the
//! syntax tree to learn which columns it reads (`revenue_growth_wow`, or
//! `web.bounce_rate` for rules that combine sources) and rewrites every
//! history call — `prev(m, "7d")`, `change`, `mean`, `stddev`, `zscore` — into
//! a variable (`__h0`, …) whose value the planner computes from the metric
//! history before evaluating. So evaluation itself is pure: no I/O, no
//! allocation of variable maps, and history that is too short makes the
//! outcome [`Evaluation::Unknown`] instead of a silent 0.
//!
//! Every metric value is a double inside a condition (CEL has no implicit
//! int↔double arithmetic, so `0.8 * orders` only works that way). Division of
//! doubles follows IEEE 754, so a division by zero is made explicit: any
//! division whose divisor evaluates to 0 makes the whole outcome unknown.
//!
//! This module must never evaluate anything but the compiled expression: no
//! functions with side effects are registered.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use cel::common::ast::{CallExpr, Expr, LiteralValue};
use cel::common::types::{CelDouble, CelString};
use cel::common::value::{CowVal, Val};
use cel::context::VariableResolver;
use cel::{Context, Env, IdedExpr, Value};

/// The history functions a condition may call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum HistoryFn {
    /// The value `window` ago.
    Prev,
    /// Relative change against the value `window` ago: `(now - then) / |then|`.
    Change,
    /// Mean over the trailing `window` (excluding the current value).
    Mean,
    /// Population standard deviation over the trailing `window`.
    Stddev,
    /// `(now - mean) / stddev` over the trailing `window`.
    Zscore,
}

impl HistoryFn {
    fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "prev" => Self::Prev,
            "change" => Self::Change,
            "mean" => Self::Mean,
            "stddev" => Self::Stddev,
            "zscore" => Self::Zscore,
            _ => return None,
        })
    }

    /// The function's name in conditions.
    pub fn name(self) -> &'static str {
        match self {
            Self::Prev => "prev",
            Self::Change => "change",
            Self::Mean => "mean",
            Self::Stddev => "stddev",
            Self::Zscore => "zscore",
        }
    }
}

/// A metric named in a condition.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum MetricRef {
    /// A column of the rule's own source row: `revenue`.
    Column(String),
    /// A column of another source: `web.bounce_rate`.
    Qualified {
        /// The source's name.
        source: String,
        /// The column.
        column: String,
    },
}

impl std::fmt::Display for MetricRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Column(c) => f.write_str(c),
            Self::Qualified { source, column } => write!(f, "{source}.{column}"),
        }
    }
}

/// One history call of a condition, rewritten into the variable `var`.
#[derive(Debug, Clone, PartialEq)]
pub struct HistoryCall {
    /// Which function.
    pub func: HistoryFn,
    /// Over which metric.
    pub metric: MetricRef,
    /// The window (`"7d"`).
    pub window: Duration,
    /// The window as written, for showing the call as the user wrote it.
    pub window_text: String,
    /// The variable the call was rewritten into.
    pub var: String,
}

/// Why a condition does not compile.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ConditionError {
    /// CEL syntax error.
    #[error("syntax error: {0}")]
    Syntax(String),
    /// A history function called wrongly.
    #[error("{0}")]
    History(String),
    /// A name the condition may not use.
    #[error("{0}")]
    Reserved(String),
    /// The condition can only give a number, text or list, never true/false.
    #[error("the condition must be true or false, but it gives {0}")]
    NotBoolean(&'static str),
}

/// The outcome of evaluating a condition for one row.
#[derive(Debug, Clone, PartialEq)]
pub enum Evaluation {
    /// The condition holds.
    True,
    /// The condition does not hold.
    False,
    /// It cannot be decided (missing value, history too short, division by
    /// zero, an error): the instance neither fires nor resolves.
    Unknown(String),
}

/// A compiled condition.
#[derive(Debug, Clone)]
pub struct Condition {
    text: String,
    expr: IdedExpr,
    /// Plain identifiers read (columns of the rule's source, or source names).
    idents: BTreeSet<String>,
    /// `source.column` pairs read.
    qualified: BTreeSet<(String, String)>,
    history: Vec<HistoryCall>,
    /// Divisors, evaluated before the condition to catch division by zero.
    divisors: Vec<IdedExpr>,
}

/// The standard CEL environment, built once for the process.
static ENV: LazyLock<Arc<Env>> = LazyLock::new(|| Arc::new(Env::stdlib()));

impl Condition {
    /// Compiles `text`.
    pub fn compile(text: &str) -> Result<Self, ConditionError> {
        let program = ENV
            .compile(text)
            .map_err(|e| ConditionError::Syntax(e.to_string().replace('\n', "; ")))?;
        let mut expr = program.expression().clone();
        let mut c = Self {
            text: text.to_owned(),
            expr: IdedExpr::default(),
            idents: BTreeSet::new(),
            qualified: BTreeSet::new(),
            history: Vec::new(),
            divisors: Vec::new(),
        };
        let not_boolean = non_boolean(&expr);
        c.rewrite(&mut expr)?;
        if let Some(what) = not_boolean {
            return Err(ConditionError::NotBoolean(what));
        }
        c.collect_refs(&expr, &mut BTreeSet::new());
        c.expr = expr;
        Ok(c)
    }

    /// The condition as written.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The plain identifiers it reads.
    pub fn idents(&self) -> &BTreeSet<String> {
        &self.idents
    }

    /// The `source.column` pairs it reads.
    pub fn qualified(&self) -> &BTreeSet<(String, String)> {
        &self.qualified
    }

    /// Its history calls, in order of appearance.
    pub fn history(&self) -> &[HistoryCall] {
        &self.history
    }

    /// Replaces history calls by variables; records the divisors.
    fn rewrite(&mut self, e: &mut IdedExpr) -> Result<(), ConditionError> {
        if let Expr::Call(call) = &e.expr
            && call.target.is_none()
            && let Some(func) = HistoryFn::parse(&call.func_name)
        {
            let var = format!("__h{}", self.history.len());
            let (metric, window, window_text) = history_args(func, call)?;
            self.history.push(HistoryCall {
                func,
                metric,
                window,
                window_text,
                var: var.clone(),
            });
            e.expr = Expr::Ident(var);
            return Ok(());
        }
        match &mut e.expr {
            Expr::Call(call) => {
                if let Some(t) = call.target.as_deref_mut() {
                    self.rewrite(t)?;
                }
                for a in &mut call.args {
                    self.rewrite(a)?;
                }
                if call.func_name == "_/_" && call.args.len() == 2 {
                    self.divisors.push(call.args[1].clone());
                }
            }
            Expr::Select(s) => self.rewrite(&mut s.operand)?,
            Expr::List(l) => {
                for el in &mut l.elements {
                    self.rewrite(el)?;
                }
            }
            Expr::Comprehension(c) => {
                self.rewrite(&mut c.iter_range)?;
                self.rewrite(&mut c.accu_init)?;
                self.rewrite(&mut c.loop_cond)?;
                self.rewrite(&mut c.loop_step)?;
                self.rewrite(&mut c.result)?;
            }
            Expr::Ident(name) if name.starts_with("__") => {
                return Err(ConditionError::Reserved(format!(
                    "names starting with __ are reserved (`{name}`)"
                )));
            }
            _ => {}
        }
        Ok(())
    }

    /// Records the identifiers and `source.column` selections read, skipping
    /// comprehension variables (`x` in `list.exists(x, x > 1)`).
    fn collect_refs(&mut self, e: &IdedExpr, bound: &mut BTreeSet<String>) {
        match &e.expr {
            Expr::Ident(name) if !bound.contains(name) && !name.starts_with("__h") => {
                self.idents.insert(name.clone());
            }
            Expr::Select(s) => {
                if let Expr::Ident(root) = &s.operand.expr
                    && !bound.contains(root)
                    && !s.test
                {
                    self.qualified.insert((root.clone(), s.field.clone()));
                    self.idents.insert(root.clone());
                } else {
                    self.collect_refs(&s.operand, bound);
                }
            }
            Expr::Call(call) => {
                if let Some(t) = &call.target {
                    self.collect_refs(t, bound);
                }
                for a in &call.args {
                    self.collect_refs(a, bound);
                }
            }
            Expr::List(l) => {
                for el in &l.elements {
                    self.collect_refs(el, bound);
                }
            }
            Expr::Comprehension(c) => {
                self.collect_refs(&c.iter_range, bound);
                self.collect_refs(&c.accu_init, bound);
                let mut inner = bound.clone();
                inner.insert(c.iter_var.clone());
                inner.insert(c.accu_var.clone());
                self.collect_refs(&c.loop_cond, &mut inner);
                self.collect_refs(&c.loop_step, &mut inner);
                self.collect_refs(&c.result, &mut inner);
            }
            _ => {}
        }
    }

    /// Evaluates against `bindings`.
    pub fn evaluate(&self, bindings: &Bindings<'_>) -> Evaluation {
        let mut ctx = Context::with_env(Arc::clone(&ENV));
        ctx.set_variable_resolver(bindings);
        for divisor in &self.divisors {
            if let Ok(Value::Float(d)) = Value::resolve(divisor, &ctx)
                && d == 0.0
            {
                return Evaluation::Unknown("division by zero".to_owned());
            }
        }
        match Value::resolve(&self.expr, &ctx) {
            Ok(Value::Bool(true)) => Evaluation::True,
            Ok(Value::Bool(false)) => Evaluation::False,
            Ok(other) => Evaluation::Unknown(format!("condition is not boolean: it gave {}", describe(&other))),
            Err(e) => Evaluation::Unknown(bindings.explain(&e.to_string())),
        }
    }
}

/// What a top-level expression gives when it can never be a boolean.
fn non_boolean(e: &IdedExpr) -> Option<&'static str> {
    match &e.expr {
        Expr::Literal(LiteralValue::Boolean(_)) => None,
        Expr::Literal(LiteralValue::String(_)) => Some("text"),
        Expr::Literal(_) => Some("a number"),
        Expr::List(_) => Some("a list"),
        Expr::Map(_) => Some("a map"),
        Expr::Call(c) if matches!(c.func_name.as_str(), "_+_" | "_-_" | "_*_" | "_/_" | "_%_" | "-_") => {
            Some("a number (arithmetic)")
        }
        Expr::Call(c) if HistoryFn::parse(&c.func_name).is_some() && c.target.is_none() => Some("a number (history)"),
        _ => None,
    }
}

fn describe(v: &Value) -> String {
    match v {
        Value::Float(f) => format!("the number {f}"),
        Value::Int(i) => format!("the number {i}"),
        Value::String(s) => format!("the text {s:?}"),
        Value::Null => "null".to_owned(),
        other => format!("{other:?}"),
    }
}

fn history_args(func: HistoryFn, call: &CallExpr) -> Result<(MetricRef, Duration, String), ConditionError> {
    let usage = || {
        ConditionError::History(format!(
            "{}() expects (metric, \"window\"), e.g. {}(revenue, \"7d\")",
            func.name(),
            func.name()
        ))
    };
    let [metric, window] = call.args.as_slice() else {
        return Err(usage());
    };
    let metric = match &metric.expr {
        Expr::Ident(name) => MetricRef::Column(name.clone()),
        Expr::Select(s) if !s.test => match &s.operand.expr {
            Expr::Ident(source) => MetricRef::Qualified {
                source: source.clone(),
                column: s.field.clone(),
            },
            _ => return Err(usage()),
        },
        _ => return Err(usage()),
    };
    let Expr::Literal(LiteralValue::String(text)) = &window.expr else {
        return Err(usage());
    };
    let window = humantime::parse_duration(text.inner())
        .map_err(|e| ConditionError::History(format!("{}(): invalid window \"{}\": {e}", func.name(), text.inner())))?;
    if window.is_zero() {
        return Err(ConditionError::History(format!(
            "{}(): the window must be longer than 0",
            func.name()
        )));
    }
    Ok((metric, window, text.inner().to_owned()))
}

/// What a condition can read while it is evaluated for one row.
pub struct Bindings<'a> {
    /// The row's numeric values.
    pub values: &'a BTreeMap<String, f64>,
    /// The row's labels.
    pub labels: &'a BTreeMap<String, String>,
    /// History values by variable (`__h0` → value); `None` means unknown.
    pub history: &'a [(String, Option<f64>)],
    /// Other sources' current rows as maps, for rules combining sources.
    pub sources: &'a BTreeMap<String, SourceMap>,
}

/// A source's selected row, bound as a CEL map (`web.bounce_rate`).
pub struct SourceMap(Box<dyn Val + 'static>);

impl SourceMap {
    /// Builds the map from a row's values (doubles) and labels (strings).
    pub fn new(values: &BTreeMap<String, f64>, labels: &BTreeMap<String, String>) -> Self {
        let mut map: std::collections::HashMap<String, Value> = std::collections::HashMap::new();
        for (k, v) in labels {
            map.insert(k.clone(), Value::String(Arc::new(v.clone())));
        }
        for (k, v) in values {
            map.insert(k.clone(), Value::Float(*v));
        }
        let value = Value::from(map);
        // A map of strings and doubles always converts.
        let boxed: Result<Box<dyn Val>, _> = value.try_into();
        // A map of strings and doubles always converts; a NaN stand-in keeps
        // any comparison on it false rather than panicking.
        Self(boxed.unwrap_or_else(|_| Box::new(CelDouble::from(f64::NAN))))
    }
}

impl Bindings<'_> {
    /// Turns a CEL error into an explanation naming what was missing.
    fn explain(&self, error: &str) -> String {
        for (var, value) in self.history {
            if value.is_none() && error.contains(var.as_str()) {
                return "history too short".to_owned();
            }
        }
        if let Some(name) = error
            .strip_prefix("Undeclared reference to '")
            .and_then(|r| r.strip_suffix('\''))
        {
            return format!("no value for `{name}` in this row");
        }
        error.to_owned()
    }
}

impl VariableResolver for Bindings<'_> {
    fn resolve<'b>(&'b self, variable: &str) -> Option<CowVal<'b, 'b>> {
        if let Some(v) = self.values.get(variable) {
            return Some(CowVal::owned(CelDouble::from(*v)));
        }
        if let Some(l) = self.labels.get(variable) {
            return Some(CowVal::owned(CelString::from(l.as_str())));
        }
        if variable.starts_with("__h") {
            return self
                .history
                .iter()
                .find(|(name, _)| name == variable)
                .and_then(|(_, v)| *v)
                .map(|v| CowVal::owned(CelDouble::from(v)));
        }
        self.sources.get(variable).map(|m| CowVal::Borrowed(&*m.0))
    }
}

#[cfg(test)]
mod tests;
