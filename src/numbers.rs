//! How numbers are written for people, in one place: grouped thousands
//! (`1,234,567.89`), the compact form of reasons, evidence and prompts
//! (`105,214`, `0.2948`), the table form of findings (`1,234.57`, `0.183`) and
//! the brief form of highlight sentences (`27,483`).
//!
//! Pure functions; the grounding of LLM text relies on these being the only
//! ways numbers are shown, so it can match them.

/// Formats with `,` between thousands and `decimals` places.
pub fn group_thousands(x: f64, decimals: usize) -> String {
    if !x.is_finite() {
        return x.to_string();
    }
    let text = format!("{:.*}", decimals, x.abs());
    let (int, frac) = text
        .split_once('.')
        .map_or((text.as_str(), None), |(i, f)| (i, Some(f)));
    let mut grouped = String::with_capacity(int.len() + int.len() / 3);
    for (i, c) in int.chars().enumerate() {
        if i > 0 && (int.len() - i) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(c);
    }
    let negative = x < 0.0 && text.chars().any(|c| c.is_ascii_digit() && c != '0');
    let mut out = String::new();
    if negative {
        out.push('-');
    }
    out.push_str(&grouped);
    if let Some(f) = frac {
        out.push('.');
        out.push_str(f);
    }
    out
}

/// The compact form for reasons, evidence and prompts: whole from 1,000 up
/// (`105,214`), whole numbers without decimals, others with at most four
/// (`0.2948`, `-12.5`).
pub fn compact(v: f64) -> String {
    if !v.is_finite() {
        return v.to_string();
    }
    if v.abs() >= 1000.0 {
        group_thousands(v, 0)
    } else if v.fract() == 0.0 {
        format!("{v:.0}")
    } else {
        let text = format!("{v:.4}");
        text.trim_end_matches('0').trim_end_matches('.').to_owned()
    }
}

/// A number in a table: whole numbers without decimals (`1,234`), other
/// numbers of at least 1 with two (`1,234.57`, `-2.50`), smaller ones with
/// three significant digits and no trailing zeros (`0.183`, `0.000123`).
/// NaN and infinities are shown as such rather than hidden.
pub fn table(x: f64) -> String {
    if !x.is_finite() {
        return x.to_string();
    }
    if x.fract() == 0.0 {
        return group_thousands(x, 0);
    }
    if x.abs() >= 1.0 {
        return group_thousands(x, 2);
    }
    // Three significant digits: 0.1834 needs 3 decimals, 0.000123 needs 6.
    let leading_zeros = (-x.abs().log10()).floor().max(0.0) as usize;
    let text = group_thousands(x, (leading_zeros + 3).min(12));
    if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_owned()
    } else {
        text
    }
}

/// A number quoted in a highlight: whole from 100 up (`27,483`, a sentence
/// does not need the cents), otherwise as in a table.
pub fn brief(x: f64) -> String {
    if x.is_finite() && x.abs() >= 100.0 {
        group_thousands(x, 0)
    } else {
        table(x)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_way_each() {
        assert_eq!(group_thousands(-1234567.891, 2), "-1,234,567.89");
        assert_eq!(group_thousands(-0.001, 0), "0");
        assert_eq!(compact(105214.48), "105,214");
        assert_eq!(compact(20.0), "20");
        assert_eq!(compact(-0.29481), "-0.2948");
        assert_eq!(compact(0.5), "0.5");
        assert_eq!(table(1234.567), "1,234.57");
        assert_eq!(table(0.18345), "0.183");
        assert_eq!(brief(27483.2), "27,483");
        assert_eq!(brief(12.345), "12.35");
    }
}
