//! Unit tests of the demo's formatting helpers: values by column name,
//! digit grouping, header splitting and shell quoting. Tests only; they must
//! never run the demo or touch the file system.

use super::table::split_header;
use super::*;

#[test]
fn values_are_formatted_by_their_name() {
    assert_eq!(value("revenue_growth_wow", -0.3012, false), "-30.1%");
    assert_eq!(value("share_of_region_change", 0.95, false), "+95.0%");
    assert_eq!(value("bounce_rate", 0.4234, false), "42.3%");
    assert_eq!(value("conversion_rate_prev", 0.025, false), "2.5%");
    assert_eq!(value("orders_7d", 12345.0, true), "12,345");
    assert_eq!(value("revenue_7d", 6975.0, false), "6,975.00");
    assert_eq!(value("revenue_7d", 1234567.891, false), "1,234,567.89");
    assert_eq!(value("revenue_change", -30160.2, false), "-30,160.20");
    assert_eq!(value("revenue_change", -0.5, false), "-0.5000");
    assert_eq!(value("avg_order_value", 75.999, false), "76.00");
}

#[test]
fn thousands_groups_digits() {
    assert_eq!(thousands(0.0), "0");
    assert_eq!(thousands(999.0), "999");
    assert_eq!(thousands(1000.0), "1,000");
    assert_eq!(thousands(-1234567.0), "-1,234,567");
}

#[test]
fn long_headers_split_near_the_middle() {
    assert_eq!(split_header("region"), ("region", ""));
    assert_eq!(split_header("revenue_growth_wow"), ("revenue_", "growth_wow"));
    assert_eq!(split_header("share_of_region_change"), ("share_of_", "region_change"));
    assert_eq!(
        split_header("averylongnamewithoutbreaks"),
        ("averylongnamewithoutbreaks", "")
    );
}

#[test]
fn shell_words_are_quoted_when_needed() {
    assert_eq!(shell_word("/tmp/demo"), "/tmp/demo");
    assert_eq!(shell_word("/tmp/my demo"), "'/tmp/my demo'");
    assert_eq!(shell_word("it's"), r"'it'\''s'");
}
