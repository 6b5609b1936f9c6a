//! Unit tests of CEL conditions: compiling, history rewriting and
//! evaluation against hand-made bindings. Tests only; they must never
//! register functions or depend on anything outside this module.

use super::*;

fn eval(text: &str, values: &[(&str, f64)], labels: &[(&str, &str)]) -> Evaluation {
    eval_h(text, values, labels, &[])
}

fn eval_h(text: &str, values: &[(&str, f64)], labels: &[(&str, &str)], history: &[Option<f64>]) -> Evaluation {
    let c = Condition::compile(text).unwrap();
    let values: BTreeMap<String, f64> = values.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect();
    let labels: BTreeMap<String, String> = labels.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
    let history: Vec<(String, Option<f64>)> = history
        .iter()
        .enumerate()
        .map(|(i, v)| (format!("__h{i}"), *v))
        .collect();
    let sources = BTreeMap::new();
    c.evaluate(&Bindings {
        values: &values,
        labels: &labels,
        history: &history,
        sources: &sources,
    })
}

#[test]
fn compares_doubles_and_labels() {
    assert_eq!(eval("growth < -0.15", &[("growth", -0.3)], &[]), Evaluation::True);
    assert_eq!(eval("growth < -0.15", &[("growth", 0.1)], &[]), Evaluation::False);
    assert_eq!(eval("0.8 * orders > 10", &[("orders", 20.0)], &[]), Evaluation::True);
    assert_eq!(
        eval("orders > 10", &[("orders", 20.0)], &[]),
        Evaluation::True,
        "int literal against double"
    );
    assert_eq!(
        eval(
            "region == 'Northeast' && growth < 0",
            &[("growth", -1.0)],
            &[("region", "Northeast")]
        ),
        Evaluation::True
    );
}

#[test]
fn syntax_errors_are_reported() {
    let e = Condition::compile("growth < ").unwrap_err();
    assert!(matches!(e, ConditionError::Syntax(_)), "{e:?}");
}

#[test]
fn missing_value_is_unknown_not_zero() {
    let r = eval("growth < 0.5", &[], &[]);
    assert_eq!(r, Evaluation::Unknown("no value for `growth` in this row".into()));
}

#[test]
fn non_boolean_conditions() {
    // Visibly non-boolean: refused when compiled.
    for (text, what) in [
        ("growth * 2.0", "arithmetic"),
        ("42", "a number"),
        ("'x'", "text"),
        ("prev(r, \"1d\")", "history"),
    ] {
        let e = Condition::compile(text).unwrap_err();
        assert!(e.to_string().contains(what), "{text}: {e}");
    }
    // Only known at run time (a bare column): unknown, never a silent false.
    let r = eval("growth", &[("growth", 1.0)], &[]);
    assert!(matches!(r, Evaluation::Unknown(m) if m.contains("not boolean")));
}

#[test]
fn division_by_zero_is_unknown() {
    let r = eval(
        "revenue / prev_revenue > 1.5",
        &[("revenue", 10.0), ("prev_revenue", 0.0)],
        &[],
    );
    assert_eq!(r, Evaluation::Unknown("division by zero".into()));
    let r = eval(
        "revenue / prev_revenue > 1.5",
        &[("revenue", 10.0), ("prev_revenue", 2.0)],
        &[],
    );
    assert_eq!(r, Evaluation::True);
}

#[test]
fn history_calls_are_rewritten_and_extracted() {
    let c = Condition::compile("change(revenue, \"7d\") < -0.2 || zscore(web.bounce_rate, \"28d\") > 3.0").unwrap();
    assert_eq!(c.history().len(), 2);
    assert_eq!(c.history()[0].func, HistoryFn::Change);
    assert_eq!(c.history()[0].metric, MetricRef::Column("revenue".into()));
    assert_eq!(c.history()[0].window, Duration::from_secs(7 * 86_400));
    assert_eq!(
        c.history()[1].metric,
        MetricRef::Qualified {
            source: "web".into(),
            column: "bounce_rate".into()
        }
    );
    assert!(c.idents().is_empty(), "{:?}", c.idents());
}

#[test]
fn history_values_feed_the_condition_and_unknown_history_is_unknown() {
    let text = "change(revenue, \"7d\") < -0.2";
    assert_eq!(eval_h(text, &[], &[], &[Some(-0.3)]), Evaluation::True);
    assert_eq!(eval_h(text, &[], &[], &[Some(0.0)]), Evaluation::False);
    assert_eq!(
        eval_h(text, &[], &[], &[None]),
        Evaluation::Unknown("history too short".into())
    );
}

#[test]
fn malformed_history_calls_are_rejected() {
    for bad in [
        "prev(revenue)",
        "prev(revenue, 7)",
        "prev(1 + 2, \"7d\")",
        "mean(x, \"soon\")",
    ] {
        assert!(
            matches!(Condition::compile(bad), Err(ConditionError::History(_))),
            "{bad}"
        );
    }
}

#[test]
fn references_skip_comprehension_variables() {
    let c = Condition::compile("[a, b].exists(x, x > threshold)").unwrap();
    let idents: Vec<&str> = c.idents().iter().map(String::as_str).collect();
    assert_eq!(idents, vec!["a", "b", "threshold"]);
}

#[test]
fn sources_bind_as_maps() {
    let c = Condition::compile("web.bounce_rate > 0.6 && sales.growth < 0.0").unwrap();
    assert_eq!(c.qualified().len(), 2);
    let mut sources = BTreeMap::new();
    sources.insert(
        "web".to_owned(),
        SourceMap::new(&[("bounce_rate".to_owned(), 0.7)].into(), &BTreeMap::new()),
    );
    sources.insert(
        "sales".to_owned(),
        SourceMap::new(&[("growth".to_owned(), -0.1)].into(), &BTreeMap::new()),
    );
    let empty = BTreeMap::new();
    let r = c.evaluate(&Bindings {
        values: &empty,
        labels: &BTreeMap::new(),
        history: &[],
        sources: &sources,
    });
    assert_eq!(r, Evaluation::True);
}
