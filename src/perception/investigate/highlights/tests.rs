//! Unit tests of the highlight rules: hand-made result tables in, exact
//! sentences out. Tests only; they must never depend on a database or on
//! the formatting of cells.

use super::*;

fn text(s: &str) -> Cell {
    Cell::Text(s.to_owned())
}

fn num(x: f64) -> Cell {
    Cell::Number(x)
}

fn table(columns: &[&str], rows: Vec<Vec<Cell>>) -> ResultTable {
    ResultTable {
        columns: columns.iter().map(|c| (*c).to_owned()).collect(),
        rows,
        truncated: false,
    }
}

/// A category breakdown: label, current, previous, change.
fn breakdown(rows: &[(&str, f64, f64)]) -> ResultTable {
    table(
        &["category", "revenue_7d", "revenue_prev_7d", "revenue_change"],
        rows.iter()
            .map(|&(c, cur, prev)| vec![text(c), num(cur), num(prev), num(cur - prev)])
            .collect(),
    )
}

#[test]
fn the_largest_contributor_and_the_laggards() {
    let t = breakdown(&[
        ("electronics", 4_871.0, 32_354.0),
        ("apparel", 14_000.0, 15_500.0),
        ("toys", 9_000.0, 10_418.0),
        ("beauty", 12_345.0, 12_345.0),
    ]);
    assert_eq!(
        highlights(&t),
        [
            "electronics accounts for 90% of the change in revenue (-27,483 of -30,401).",
            "Segments below 80% of the average revenue_7d (10,054): electronics (4,871)."
        ]
    );
}

#[test]
fn contributors_are_listed_until_they_explain_most_of_the_change() {
    let t = breakdown(&[
        ("a", 0.0, 400.0),
        ("b", 0.0, 300.0),
        ("c", 0.0, 200.0),
        ("d", 0.0, 50.0),
        ("e", 0.0, 50.0),
    ]);
    let found = highlights(&t);
    assert_eq!(
        &found[..3],
        [
            "a accounts for 40% of the change in revenue (-400 of -1,000).",
            "b accounts for 30% of the change in revenue (-300 of -1,000).",
            "c accounts for 20% of the change in revenue (-200 of -1,000).",
        ]
    );
    // a+b+c explain 90 %: d and e are not contributors.
    assert!(found[3..].iter().all(|s| !s.contains("accounts for")), "{found:?}");
}

#[test]
fn small_contributors_and_opposite_moves_are_not_named() {
    // The total rose; b fell and is not a contributor to the rise, c is under 10 %.
    let t = table(
        &["segment", "orders_change"],
        vec![
            vec![text("a"), num(120.0)],
            vec![text("b"), num(-30.0)],
            vec![text("c"), num(10.0)],
        ],
    );
    assert_eq!(
        highlights(&t),
        ["a accounts for 120% of the change in orders (+120 of +100)."]
    );
}

#[test]
fn offsetting_changes_are_not_given_shares() {
    let t = table(
        &["region", "revenue_change"],
        vec![
            vec![text("West"), num(1_000.0)],
            vec![text("East"), num(-999.0)],
            vec![text("North"), num(0.0)],
        ],
    );
    assert_eq!(
        highlights(&t),
        ["Changes in revenue largely offset each other (net +1); the largest moves: West +1,000, East -999."]
    );
}

#[test]
fn pairs_of_current_and_previous_columns_are_changes() {
    for previous in ["customers_prev_7d", "prev_customers_7d", "customers_7d_previous"] {
        let t = table(
            &["segment", "customers_7d", previous],
            vec![
                vec![text("consumer"), num(900.0), num(1_000.0)],
                vec![text("smb"), num(95.0), num(100.0)],
                vec![text("enterprise"), num(20.0), num(20.0)],
            ],
        );
        assert_eq!(
            highlights(&t),
            [
                "consumer accounts for 95% of the change in customers_7d (-100 of -105).",
                "Segments below 80% of the average customers_7d (338): enterprise (20), smb (95)."
            ],
            "{previous}"
        );
    }
}

#[test]
fn a_change_column_covers_its_pair_and_other_pairs_still_count() {
    let t = table(
        &[
            "category",
            "revenue_7d",
            "revenue_prev_7d",
            "revenue_change",
            "orders_7d",
            "orders_prev_7d",
        ],
        vec![
            vec![text("a"), num(0.0), num(100.0), num(-100.0), num(10.0), num(20.0)],
            vec![text("b"), num(100.0), num(100.0), num(0.0), num(20.0), num(20.0)],
        ],
    );
    assert_eq!(
        highlights(&t),
        [
            "a accounts for 100% of the change in revenue (-100 of -100).",
            "a accounts for 100% of the change in orders_7d (-10 of -10).",
        ]
    );
}

#[test]
fn nothing_is_said_about_tables_without_a_story() {
    let empty = breakdown(&[]);
    assert!(highlights(&empty).is_empty());
    let unchanged = breakdown(&[("a", 5.0, 5.0), ("b", 5.0, 5.0), ("c", 5.0, 5.0)]);
    assert!(highlights(&unchanged).is_empty(), "{:?}", highlights(&unchanged));
    let one_row = breakdown(&[("a", 1.0, 100.0)]);
    assert!(highlights(&one_row).is_empty());
    let no_labels = table(&["revenue_change"], vec![vec![num(-5.0)], vec![num(-7.0)]]);
    assert!(highlights(&no_labels).is_empty());
}

#[test]
fn nan_and_null_values_are_left_out() {
    let t = table(
        &["category", "revenue_change"],
        vec![
            vec![text("a"), num(-90.0)],
            vec![text("b"), num(f64::NAN)],
            vec![text("c"), Cell::Null],
            vec![text("d"), num(-10.0)],
        ],
    );
    assert_eq!(
        highlights(&t),
        ["a accounts for 90% of the change in revenue (-90 of -100)."]
    );
    let all_nan = table(
        &["category", "revenue_change"],
        vec![vec![text("a"), num(f64::NAN)], vec![text("b"), num(f64::INFINITY)]],
    );
    assert!(highlights(&all_nan).is_empty());
}

#[test]
fn a_negative_total_is_a_fall_and_negative_values_have_no_average_rule() {
    let t = table(
        &["region", "margin"],
        vec![
            vec![text("a"), num(-50.0)],
            vec![text("b"), num(100.0)],
            vec![text("c"), num(100.0)],
        ],
    );
    assert!(highlights(&t).is_empty());
    let zero_mean = table(
        &["region", "margin"],
        vec![
            vec![text("a"), num(0.0)],
            vec![text("b"), num(0.0)],
            vec![text("c"), num(0.0)],
        ],
    );
    assert!(highlights(&zero_mean).is_empty());
}

#[test]
fn below_average_needs_one_label_and_skips_identifiers() {
    let t = table(
        &["customer_id", "name", "revenue"],
        vec![
            vec![num(1.0), text("Ann"), num(100.0)],
            vec![num(2.0), text("Bob"), num(100.0)],
            vec![num(3.0), text("Cy"), num(10.0)],
        ],
    );
    assert_eq!(
        highlights(&t),
        ["Segments below 80% of the average revenue (70): Cy (10)."]
    );
    let two_labels = table(
        &["region", "category", "revenue"],
        vec![
            vec![text("W"), text("a"), num(100.0)],
            vec![text("W"), text("b"), num(100.0)],
            vec![text("W"), text("c"), num(10.0)],
        ],
    );
    assert!(highlights(&two_labels).is_empty());
}

#[test]
fn long_lists_are_cut_and_ties_sorted_by_name() {
    let mut rows: Vec<Vec<Cell>> = ["g", "f", "e", "d", "c", "b", "a"]
        .iter()
        .map(|s| vec![text(s), num(1.0)])
        .collect();
    rows.push(vec![text("big"), num(1_000.0)]);
    let t = table(&["segment", "sessions"], rows);
    assert_eq!(
        highlights(&t),
        ["Segments below 80% of the average sessions (126): a (1), b (1), c (1), d (1), e (1), and 2 more."]
    );
}

#[test]
fn segments_join_several_labels_and_show_null() {
    let t = table(
        &["region", "category", "revenue_change"],
        vec![
            vec![text("Northeast"), text("electronics"), num(-900.0)],
            vec![text("Northeast"), Cell::Null, num(-100.0)],
        ],
    );
    assert_eq!(
        highlights(&t),
        ["Northeast / electronics accounts for 90% of the change in revenue (-900 of -1,000)."]
    );
}

#[test]
fn column_name_rules() {
    assert_eq!(change_measure("revenue_change"), Some("revenue"));
    assert_eq!(change_measure("Revenue_CHANGE"), Some("Revenue"));
    assert_eq!(change_measure("_change"), None);
    assert_eq!(change_measure("change"), None);
    assert_eq!(change_measure("exchange"), None);
    let current = words("revenue_7d");
    assert!(is_previous_of("revenue_prev_7d", &current));
    assert!(is_previous_of("prev_revenue_7d", &current));
    assert!(is_previous_of("revenue_7d_previous", &current));
    assert!(!is_previous_of("revenue_prev_28d", &current));
    assert!(!is_previous_of("revenue_7d", &current));
    assert!(is_identifier("customer_id") && is_identifier("ID") && !is_identifier("paid"));
}
