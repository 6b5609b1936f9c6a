//! The two bodies of an e-mail: plain text and HTML, laid out from one
//! [`Message`], plus the size cap that keeps both within bounds.
//!
//! Pure string building, deterministic (dry-run records these bytes). The HTML
//! body must never let message content become markup: every piece of content
//! is escaped, and the only tags are the ones written here (`*bold*` in the
//! message text becomes `<strong>` only after escaping).

use std::borrow::Cow;
use std::fmt::Write as _;

use crate::model::{Message, Table};

/// The note both bodies end with when [`fit`] had to cut the message (the
/// limit it names is `email::MAX_TEXT_BYTES`; keep the two in step).
pub(super) const TRUNCATED_NOTE: &str =
    "[Truncated: this message exceeded the e-mail size limit of 1 MiB of text; the rest was left out.]";

/// Cuts `message` so its text (subject, body, evidence, tables, context) is at
/// most `cap` bytes, in that order of priority: subject and body are cut at a
/// character boundary, evidence pairs, table rows and the context line are
/// kept whole or dropped. Returns whether anything was cut.
///
/// The cap applies to content, not to the formatted bodies: the HTML body adds
/// markup and escapes, so it can be a few times larger.
pub(super) fn fit(message: &Message, cap: usize) -> (Cow<'_, Message>, bool) {
    if content_len(message) <= cap {
        return (Cow::Borrowed(message), false);
    }
    let mut budget = cap;
    let mut take = |text: &str| -> String {
        let cut = floor_char_boundary(text, budget);
        budget -= cut;
        text[..cut].to_owned()
    };
    let subject = take(&message.subject);
    let text = take(&message.text);
    let mut fitted = Message {
        subject,
        text,
        evidence: Vec::new(),
        tables: Vec::new(),
        ..message.clone()
    };
    for (name, value) in &message.evidence {
        let len = name.len() + value.len();
        if len > budget {
            break;
        }
        budget -= len;
        fitted.evidence.push((name.clone(), value.clone()));
    }
    'tables: for table in &message.tables {
        let head = table.title.len() + table.columns.iter().map(String::len).sum::<usize>();
        if head > budget {
            break;
        }
        budget -= head;
        let mut kept = Table {
            rows: Vec::new(),
            ..table.clone()
        };
        for row in &table.rows {
            let len = row.iter().map(String::len).sum::<usize>();
            if len > budget {
                fitted.tables.push(kept);
                break 'tables;
            }
            budget -= len;
            kept.rows.push(row.clone());
        }
        fitted.tables.push(kept);
    }
    // A context line cut short would mislead (half a label), so all or nothing.
    if message.context.len() > budget {
        fitted.context.clear();
    }
    (Cow::Owned(fitted), true)
}

/// The bytes of content [`fit`] counts.
fn content_len(m: &Message) -> usize {
    let evidence: usize = m.evidence.iter().map(|(n, v)| n.len() + v.len()).sum();
    let tables: usize = m
        .tables
        .iter()
        .map(|t| {
            t.title.len()
                + t.columns.iter().map(String::len).sum::<usize>()
                + t.rows.iter().flatten().map(String::len).sum::<usize>()
        })
        .sum();
    m.subject.len() + m.text.len() + evidence + tables + m.context.len()
}

/// The largest index `<= max` that is a character boundary of `text`.
fn floor_char_boundary(text: &str, max: usize) -> usize {
    if max >= text.len() {
        return text.len();
    }
    // Index 0 is always a boundary, so this finds one.
    (0..=max).rev().find(|&i| text.is_char_boundary(i)).unwrap_or(0)
}

/// Replaces line breaks and tabs with spaces, for fields shown on one line
/// (subject, evidence, table cells, context).
pub(super) fn one_line(text: &str) -> Cow<'_, str> {
    if text.contains(['\r', '\n', '\t']) {
        Cow::Owned(text.replace("\r\n", " ").replace(['\r', '\n', '\t'], " "))
    } else {
        Cow::Borrowed(text)
    }
}

/// The text/plain body: the message text without its `*bold*` markers
/// (the HTML part shows the emphasis).
pub(super) fn plain(m: &Message, truncated: bool) -> String {
    let mut out = String::new();
    out.push_str(&one_line(&m.subject));
    out.push_str("\n\n");
    if !m.text.is_empty() {
        for line in m.text.trim_end().lines() {
            out.push_str(&unbold(line));
            out.push('\n');
        }
        out.push('\n');
    }
    if !m.evidence.is_empty() {
        out.push_str("Evidence:\n");
        for (name, value) in &m.evidence {
            let _ = writeln!(out, "  {}: {}", one_line(name), one_line(value));
        }
        out.push('\n');
    }
    for link in &m.links {
        let _ = writeln!(out, "{}: {}", one_line(&link.label), one_line(&link.url));
    }
    if !m.links.is_empty() {
        out.push('\n');
    }
    for table in &m.tables {
        plain_table(&mut out, table);
        out.push('\n');
    }
    if truncated {
        out.push_str(TRUNCATED_NOTE);
        out.push_str("\n\n");
    }
    if !m.context.is_empty() {
        // "-- " starts a signature: mail clients show the context as one.
        out.push_str("-- \n");
        out.push_str(&one_line(&m.context));
        out.push('\n');
    }
    out
}

/// Cell `i` of `row` on one line; rows shorter than the header get blanks.
fn cell(row: &[String], i: usize) -> Cow<'_, str> {
    row.get(i).map(|c| one_line(c)).unwrap_or_default()
}

/// A table as left-aligned columns under a dashed rule. Widths count
/// characters, which lines up for the Latin and most other scripts (not for
/// double-width CJK; that would need a width table for little gain).
fn plain_table(out: &mut String, table: &Table) {
    if !table.title.is_empty() {
        let _ = writeln!(out, "{}", one_line(&table.title));
    }
    let ncols = table
        .rows
        .iter()
        .map(Vec::len)
        .chain([table.columns.len()])
        .max()
        .unwrap_or(0);
    let widths: Vec<usize> = (0..ncols)
        .map(|i| {
            std::iter::once(&table.columns)
                .chain(&table.rows)
                .map(|row| cell(row, i).chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut line = |cells: Vec<Cow<'_, str>>| {
        let mut text = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i > 0 {
                text.push_str("  ");
            }
            text.push_str(c);
            let pad = widths[i].saturating_sub(c.chars().count());
            text.extend(std::iter::repeat_n(' ', pad));
        }
        out.push_str(text.trim_end());
        out.push('\n');
    };
    line((0..ncols).map(|i| cell(&table.columns, i)).collect());
    line(widths.iter().map(|&w| Cow::Owned("-".repeat(w))).collect());
    for row in &table.rows {
        line((0..ncols).map(|i| cell(row, i)).collect());
    }
}

/// Inline styles rather than a stylesheet: many mail clients drop `<style>`.
const TH: &str = r#"style="text-align: left; padding: 2px 12px 2px 0; border-bottom: 1px solid #ccc""#;
const TD: &str = r#"style="padding: 2px 12px 2px 0; vertical-align: top""#;

/// The text/html body: the same content as [`plain`], escaped, with the
/// message text's `*bold*` as `<strong>` and tables as HTML tables.
pub(super) fn html(m: &Message, truncated: bool) -> String {
    let mut out = String::new();
    let subject = escape(&one_line(&m.subject));
    out.push_str("<!DOCTYPE html>\n<html>\n<head>\n<meta charset=\"utf-8\">\n");
    let _ = writeln!(out, "<title>{subject}</title>\n</head>");
    out.push_str("<body style=\"font-family: Helvetica, Arial, sans-serif; font-size: 14px; color: #222\">\n");
    let _ = writeln!(out, "<h2>{subject}</h2>");
    for paragraph in m.text.trim_end().split("\n\n").filter(|p| !p.trim().is_empty()) {
        let lines: Vec<String> = paragraph.lines().map(|l| bold(&escape(l))).collect();
        let _ = writeln!(out, "<p>{}</p>", lines.join("<br>\n"));
    }
    if !m.evidence.is_empty() {
        out.push_str("<h3>Evidence</h3>\n<table style=\"border-collapse: collapse\">\n");
        for (name, value) in &m.evidence {
            let _ = writeln!(
                out,
                "<tr><th {TH}>{}</th><td {TD}>{}</td></tr>",
                escape(&one_line(name)),
                escape(&one_line(value))
            );
        }
        out.push_str("</table>\n");
    }
    if !m.links.is_empty() {
        let links: Vec<String> = (m.links.iter())
            .map(|l| format!("<a href=\"{}\">{}</a>", escape(&l.url), escape(&l.label)))
            .collect();
        let _ = writeln!(out, "<p>{}</p>", links.join(" · "));
    }
    for table in &m.tables {
        html_table(&mut out, table);
    }
    if truncated {
        let _ = writeln!(out, "<p><em>{}</em></p>", escape(TRUNCATED_NOTE));
    }
    if !m.context.is_empty() {
        let _ = writeln!(
            out,
            "<p style=\"color: #666; font-size: 12px\">{}</p>",
            escape(&one_line(&m.context))
        );
    }
    out.push_str("</body>\n</html>\n");
    out
}

fn html_table(out: &mut String, table: &Table) {
    if !table.title.is_empty() {
        let _ = writeln!(out, "<h3>{}</h3>", escape(&one_line(&table.title)));
    }
    out.push_str("<table style=\"border-collapse: collapse\">\n<thead><tr>");
    for column in &table.columns {
        let _ = write!(out, "<th {TH}>{}</th>", escape(&one_line(column)));
    }
    out.push_str("</tr></thead>\n<tbody>\n");
    for row in &table.rows {
        out.push_str("<tr>");
        for c in row {
            let _ = write!(out, "<td {TD}>{}</td>", escape(&one_line(c)));
        }
        out.push_str("</tr>\n");
    }
    out.push_str("</tbody>\n</table>\n");
}

/// Escapes text for HTML element content and quoted attribute values.
pub(super) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Turns Slack-style `*bold*` in one (already escaped) line into `<strong>`.
/// Runs after escaping, so the tags added here are the only markup.
fn bold(line: &str) -> String {
    emphasis(line, "<strong>", "</strong>")
}

/// Drops Slack-style `*bold*` markers from one line of plain text: a mail
/// client shows them as stars, not as emphasis.
fn unbold(line: &str) -> String {
    emphasis(line, "", "")
}

/// Replaces the markers of each `*bold*` run in `line` with `open` and `close`.
///
/// Like Slack, a marker opens only at the start of a word and closes only at
/// its end, around non-blank text: `3 * 4 * 5` and `a*b*c` stay as written.
fn emphasis(line: &str, open: &str, close: &str) -> String {
    let chars: Vec<char> = line.chars().collect();
    let is_word = |i: Option<usize>| i.and_then(|i| chars.get(i)).is_some_and(|c| c.is_alphanumeric());
    let mut out = String::with_capacity(line.len());
    let mut i = 0;
    while i < chars.len() {
        if chars[i] == '*' && !is_word(i.checked_sub(1)) {
            let end = (i + 1..chars.len()).find(|&j| chars[j] == '*');
            if let Some(j) = end {
                let inner = &chars[i + 1..j];
                let blank_edge =
                    inner.first().is_none_or(|c| c.is_whitespace()) || inner.last().is_none_or(|c| c.is_whitespace());
                if !blank_edge && !is_word(Some(j + 1)) {
                    out.push_str(open);
                    out.extend(inner);
                    out.push_str(close);
                    i = j + 1;
                    continue;
                }
            }
        }
        out.push(chars[i]);
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{ActionKind, Severity};

    fn message() -> Message {
        let mut m = Message::plain(
            "revenue_drop/alert/region=Köln".into(),
            ActionKind::Notify,
            Severity::High,
            "Umsatz in Köln −30 %".into(),
            "Revenue fell *30 %* in Köln.\nCheck the <b>shop</b>.\n\nSecond paragraph.".into(),
        );
        m.evidence = vec![
            ("revenue".into(), "1,234.00".into()),
            ("region".into(), "<script>alert(1)</script>".into()),
        ];
        m.tables = vec![Table {
            title: "By day".into(),
            columns: vec!["day".into(), "revenue".into()],
            rows: vec![vec!["2026-05-01".into(), "1".into()], vec!["Mo".into(), "12345".into()]],
        }];
        m.context = "rule revenue_drop · region=Köln".into();
        m
    }

    #[test]
    fn bold_only_around_words() {
        assert_eq!(bold("a *b c* d"), "a <strong>b c</strong> d");
        assert_eq!(bold("*x*"), "<strong>x</strong>");
        assert_eq!(bold("3 * 4 * 5"), "3 * 4 * 5");
        assert_eq!(bold("a*b*c"), "a*b*c");
        assert_eq!(bold("** and *"), "** and *");
        assert_eq!(bold("(*yes*)"), "(<strong>yes</strong>)");
        assert_eq!(unbold("*New (4)* and 3 * 4 * 5"), "New (4) and 3 * 4 * 5");
    }

    #[test]
    fn html_escapes_everything_but_its_own_tags() {
        let html = html(&message(), false);
        assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"), "{html}");
        assert!(!html.contains("<script"), "{html}");
        assert!(html.contains("Check the &lt;b&gt;shop&lt;/b&gt;.</p>"), "{html}");
        assert!(html.contains("fell <strong>30 %</strong> in Köln.<br>\n"), "{html}");
        assert!(html.contains("<p>Second paragraph.</p>"), "{html}");
        assert!(html.contains("<td "), "{html}");
    }

    #[test]
    fn plain_aligns_tables_and_lists_evidence() {
        let text = plain(&message(), false);
        assert!(
            text.starts_with("Umsatz in Köln −30 %\n\nRevenue fell 30 % in Köln.\nCheck the <b>shop</b>.\n\nSecond"),
            "{text}"
        );
        assert!(text.contains("  region: <script>alert(1)</script>\n"), "{text}");
        assert!(
            text.contains("By day\nday         revenue\n----------  -------\n2026-05-01  1\nMo          12345\n"),
            "{text}"
        );
        assert!(text.ends_with("-- \nrule revenue_drop · region=Köln\n"), "{text}");
    }

    #[test]
    fn links_are_links_in_both_parts() {
        let m = Message {
            links: vec![crate::model::Link {
                label: "Runbook".into(),
                url: "https://wiki.example.com/r?a=1&b=\"2\"".into(),
            }],
            ..message()
        };
        let html = html(&m, false);
        assert!(
            html.contains("<p><a href=\"https://wiki.example.com/r?a=1&amp;b=&quot;2&quot;\">Runbook</a></p>"),
            "{html}"
        );
        let text = plain(&m, false);
        assert!(
            text.contains("\nRunbook: https://wiki.example.com/r?a=1&b=\"2\"\n"),
            "{text}"
        );
        assert!(!plain(&message(), false).contains("Runbook"));
    }

    #[test]
    fn fit_cuts_in_priority_order_at_char_boundaries() {
        let m = message();
        let (same, cut) = fit(&m, 1 << 20);
        assert!(!cut);
        assert_eq!(*same, m);

        // Room for the subject and part of the text only: byte 25 falls inside
        // "ö", so the cut moves back to the character boundary before it.
        let cap = m.subject.len() + 25;
        let (small, cut) = fit(&m, cap);
        assert!(cut);
        assert_eq!(small.subject, m.subject);
        assert_eq!(small.text, "Revenue fell *30 %* in K");
        assert!(small.evidence.is_empty() && small.tables.is_empty() && small.context.is_empty());
        assert!(plain(&small, true).contains(TRUNCATED_NOTE));

        // Everything but the last row and the context.
        let cap = content_len(&m) - m.context.len() - "Mo12345".len();
        let (most, cut) = fit(&m, cap);
        assert!(cut);
        assert_eq!(most.evidence, m.evidence);
        assert_eq!(most.tables[0].rows.len(), 1);
        assert_eq!(most.context, "");
    }

    #[test]
    fn one_line_flattens_breaks() {
        assert_eq!(one_line("a\r\nb\nc\td"), "a b c d");
        assert!(matches!(one_line("plain"), Cow::Borrowed(_)));
    }
}
