//! Properties of rule conditions (`planning::condition`): a condition runs
//! once per row per cycle against data nobody vetted, so evaluation must never
//! panic, whatever the row holds (missing columns, 0, NaN, ±inf, huge values,
//! odd label text, unknown history); and compiling must never panic on any
//! text, since conditions come from a config file a person typed.
//!
//! Where the answer is obvious from the row, it is checked too (a plain
//! comparison, a missing column, a zero divisor), so "never panics" cannot
//! pass by always answering Unknown. A NaN operand makes a comparison
//! Unknown, not False: CEL's ordering has no answer for NaN, and a NaN metric
//! is as undecidable as a missing one.

use std::collections::BTreeMap;

use bi_agent::planning::condition::{Bindings, Condition, Evaluation, SourceMap};
use proptest::prelude::*;

/// Valid conditions covering what rules write: comparisons (double against
/// double and against int literals), arithmetic including division, `&&`,
/// `||`, `!`, label equality, string functions, a comprehension, another
/// source's columns, and every history function.
const CONDITIONS: &[&str] = &[
    "revenue_growth_wow < -0.15",
    "orders > 10",
    "0.8 * orders > 10.0",
    "-revenue >= 0.0 || !(orders < 5.0)",
    "revenue / prev_revenue > 1.5",
    "(revenue - cost) / cost <= 0.1 && segment != 'smb'",
    "a / b > 1.5 && region == 'Northeast' || change(x, \"7d\") < -0.2",
    "a / (b - cost) < 0.0",
    "region == 'Northeast'",
    "region == \"it's \\\"quoted\\\"\" || segment == 'é—漢字'",
    "region.startsWith('North') && size(segment) > 2",
    "revenue == revenue",
    "[a, b, cost].exists(v, v > threshold)",
    "prev(revenue, \"1d\") - revenue >= 100.0",
    "change(revenue, \"7d\") < -0.2 && change(orders, \"7d\") < -0.2",
    "mean(orders, \"7d\") * 1.5 < orders",
    "stddev(revenue, \"28d\") > 0.0 && zscore(revenue, \"28d\") > 3.0",
    "zscore(web.bounce_rate, \"7d\") > 2.0 || web.bounce_rate > 0.6",
    "web.region == region && web.bounce_rate / revenue > 0.001",
];

/// Every column the conditions read (some rows lack some).
const COLUMNS: &[&str] = &[
    "revenue_growth_wow",
    "orders",
    "revenue",
    "prev_revenue",
    "cost",
    "a",
    "b",
    "x",
    "threshold",
];

/// Labels the conditions read.
const LABELS: &[&str] = &["region", "segment"];

/// Doubles with the awkward ones weighted up: zeros, NaN, infinities,
/// extremes, and the thresholds the conditions use.
fn arb_f64() -> impl Strategy<Value = f64> {
    prop_oneof![
        3 => any::<f64>(),
        1 => -1e6f64..1e6,
        2 => prop::sample::select(vec![
            0.0,
            -0.0,
            f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::MAX,
            f64::MIN,
            f64::MIN_POSITIVE,
            f64::EPSILON,
            -0.15,
            -0.2,
            1.5,
            10.0,
            1e300,
            -1e300,
        ]),
    ]
}

/// Label text: the values conditions compare against, quotes, escapes,
/// unicode, and anything at all.
fn arb_label() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "Northeast".to_owned(),
            "smb".to_owned(),
            String::new(),
            "'".to_owned(),
            "\"".to_owned(),
            "it's \"quoted\"".to_owned(),
            "\\".to_owned(),
            "é—漢字".to_owned(),
            "North\u{0}east".to_owned(),
            "🦀".repeat(40),
        ]),
        any::<String>(),
        "\\PC{0,12}",
    ]
}

/// A row: a random subset of the columns and labels, history values for up
/// to four history variables (sometimes fewer than a condition needs), and
/// sometimes the `web` source.
#[derive(Debug, Clone)]
struct Row {
    values: BTreeMap<String, f64>,
    labels: BTreeMap<String, String>,
    history: Vec<Option<f64>>,
    web: Option<(BTreeMap<String, f64>, BTreeMap<String, String>)>,
}

fn arb_row() -> impl Strategy<Value = Row> {
    let values = prop::collection::vec(prop::option::of(arb_f64()), COLUMNS.len());
    let labels = prop::collection::vec(prop::option::of(arb_label()), LABELS.len());
    let history = prop::collection::vec(prop::option::weighted(0.7, arb_f64()), 0..=4);
    let web = prop::option::of((prop::option::of(arb_f64()), prop::option::of(arb_label())));
    (values, labels, history, web).prop_map(|(values, labels, history, web)| Row {
        values: COLUMNS
            .iter()
            .zip(values)
            .filter_map(|(c, v)| Some(((*c).to_owned(), v?)))
            .collect(),
        labels: LABELS
            .iter()
            .zip(labels)
            .filter_map(|(c, v)| Some(((*c).to_owned(), v?)))
            .collect(),
        history,
        web: web.map(|(rate, region)| {
            (
                rate.map(|r| ("bounce_rate".to_owned(), r)).into_iter().collect(),
                region.map(|r| ("region".to_owned(), r)).into_iter().collect(),
            )
        }),
    })
}

fn evaluate(condition: &Condition, row: &Row) -> Evaluation {
    let history: Vec<(String, Option<f64>)> = row
        .history
        .iter()
        .enumerate()
        .map(|(i, v)| (format!("__h{i}"), *v))
        .collect();
    let mut sources = BTreeMap::new();
    if let Some((values, labels)) = &row.web {
        sources.insert("web".to_owned(), SourceMap::new(values, labels));
    }
    condition.evaluate(&Bindings {
        values: &row.values,
        labels: &row.labels,
        history: &history,
        sources: &sources,
    })
}

fn decided(holds: bool) -> Evaluation {
    if holds { Evaluation::True } else { Evaluation::False }
}

/// CEL tokens, joined at random: far likelier than arbitrary text to get past
/// the lexer into the parser and the history-call rewriting.
fn arb_token_soup() -> impl Strategy<Value = String> {
    let tokens = prop::sample::select(vec![
        "(",
        ")",
        "[",
        "]",
        "{",
        "}",
        ".",
        ",",
        ":",
        "?",
        "&&",
        "||",
        "!",
        "-",
        "+",
        "*",
        "/",
        "%",
        "<",
        "<=",
        ">",
        "==",
        "!=",
        "in",
        "a",
        "x",
        "web",
        "region",
        "change",
        "prev",
        "mean",
        "stddev",
        "zscore",
        "size",
        "has",
        "exists",
        "all",
        "map",
        "filter",
        "\"7d\"",
        "\"0s\"",
        "\"soon\"",
        "'",
        "\"",
        "\"\"\"",
        "b'",
        "r\"",
        "\\",
        "\\u",
        "\\x",
        "1",
        "0",
        "1.5",
        "-0.0",
        "1e309",
        "0x",
        "0xFFFFFFFFFFFFFFFFFF",
        "9223372036854775808",
        "1u",
        "__h0",
        "__x",
        "true",
        "null",
        "é",
        "漢",
        " ",
    ]);
    prop::collection::vec(tokens, 0..24).prop_map(|t| t.concat())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn evaluation_never_panics_and_always_decides_or_explains(row in arb_row()) {
        for text in CONDITIONS {
            let condition = Condition::compile(text).expect(text);
            let result = evaluate(&condition, &row);
            if let Evaluation::Unknown(reason) = &result {
                prop_assert!(!reason.trim().is_empty(), "{text}: Unknown without a reason");
            }
            prop_assert_eq!(&evaluate(&condition, &row), &result, "{} is not deterministic", text);
        }
    }

    #[test]
    fn plain_comparisons_decide_every_number_but_nan(row in arb_row()) {
        let condition = Condition::compile("revenue_growth_wow < -0.15").unwrap();
        let result = evaluate(&condition, &row);
        match row.values.get("revenue_growth_wow") {
            Some(v) if v.is_nan() => prop_assert!(matches!(result, Evaluation::Unknown(_)), "{result:?}"),
            Some(v) => prop_assert_eq!(result, decided(*v < -0.15)),
            None => prop_assert_eq!(
                result,
                Evaluation::Unknown("no value for `revenue_growth_wow` in this row".into())
            ),
        }
    }

    #[test]
    fn a_zero_divisor_makes_the_outcome_unknown(row in arb_row()) {
        let condition = Condition::compile("revenue / prev_revenue > 1.5").unwrap();
        let result = evaluate(&condition, &row);
        match (row.values.get("revenue"), row.values.get("prev_revenue")) {
            (_, Some(d)) if *d == 0.0 => {
                prop_assert_eq!(result, Evaluation::Unknown("division by zero".into()));
            }
            (Some(n), Some(d)) if !(n / d).is_nan() => prop_assert_eq!(result, decided(n / d > 1.5)),
            _ => prop_assert!(matches!(result, Evaluation::Unknown(_)), "{result:?}"),
        }
    }

    #[test]
    fn history_values_feed_the_condition(now in prop::option::of(arb_f64())) {
        let condition = Condition::compile("change(x, \"7d\") < -0.2").unwrap();
        let row = Row {
            values: BTreeMap::new(),
            labels: BTreeMap::new(),
            history: vec![now],
            web: None,
        };
        let result = evaluate(&condition, &row);
        match now {
            Some(v) if v.is_nan() => prop_assert!(matches!(result, Evaluation::Unknown(_)), "{result:?}"),
            Some(v) => prop_assert_eq!(result, decided(v < -0.2)),
            None => prop_assert_eq!(result, Evaluation::Unknown("history too short".into())),
        }
    }

    #[test]
    fn compiling_any_text_never_panics(text in any::<String>(), row in arb_row()) {
        if let Ok(condition) = Condition::compile(&text) {
            let _ = evaluate(&condition, &row);
        }
    }

    #[test]
    fn compiling_token_soup_never_panics(text in arb_token_soup(), row in arb_row()) {
        if let Ok(condition) = Condition::compile(&text) {
            let _ = evaluate(&condition, &row);
        }
    }
}
