//! Finding the JSON in an LLM's answer.
//!
//! Servers that ignore `response_format` (or models that cannot follow it)
//! answer with prose around the JSON: "Sure! ```json {…} ``` hope it helps".
//! These functions find the JSON without trusting the prose: a candidate is
//! only returned when `serde_json` accepts it, so what leaves here is at least
//! well-formed JSON (its *content* is validated by the caller).
//!
//! Pure functions over `&str`: they never allocate the answer twice and never
//! log it (an answer may echo the situation's data).

/// The first balanced JSON object in `text`, as a slice of it.
///
/// Scans for `{`, follows nesting while skipping braces inside JSON strings
/// (with `\"` escapes), and returns the first balanced candidate that parses
/// as a JSON object. A candidate that does not parse (prose such as
/// `use {braces}`) is skipped and the scan resumes at the next `{`. Code
/// fences need no special case: the object inside them is found like any other.
pub fn first_json_object(text: &str) -> Option<&str> {
    let bytes = text.as_bytes();
    let mut start = 0;
    while let Some(offset) = bytes.get(start..)?.iter().position(|&b| b == b'{') {
        let open = start + offset;
        if let Some(end) = balanced_end(bytes, open) {
            // `open` and `end` index ASCII braces, so both are char boundaries.
            let candidate = &text[open..=end];
            if matches!(serde_json::from_str(candidate), Ok(serde_json::Value::Object(_))) {
                return Some(candidate);
            }
        }
        start = open + 1;
    }
    None
}

/// The whole of `text` as JSON, allowing surrounding whitespace and one
/// Markdown code fence (some servers fence even in JSON mode). `None` when
/// the answer is not JSON: the server ignored the requested format.
pub fn whole_json(text: &str) -> Option<&str> {
    let trimmed = strip_fence(text.trim()).trim();
    serde_json::from_str::<serde_json::Value>(trimmed).ok().map(|_| trimmed)
}

/// Removes one surrounding ```` ``` ```` / ```` ```json ```` fence, if there is one.
fn strip_fence(text: &str) -> &str {
    let Some(inner) = text.strip_prefix("```").and_then(|t| t.strip_suffix("```")) else {
        return text;
    };
    // The info string (`json`, `JSON`…) runs to the end of the first line.
    match inner.split_once('\n') {
        Some((info, body)) if !info.contains('{') => body,
        _ => inner,
    }
}

/// Index of the `}` that closes the `{` at `open`, or `None` if the text
/// ends first. Braces inside JSON strings do not count.
fn balanced_end(bytes: &[u8], open: usize) -> Option<usize> {
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    for (i, &b) in bytes.iter().enumerate().skip(open) {
        if in_string {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'{' => depth += 1,
            b'}' => {
                depth = depth.checked_sub(1)?;
                if depth == 0 {
                    return Some(i);
                }
            }
            _ => {}
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_object() {
        assert_eq!(first_json_object(r#"{"a":1}"#), Some(r#"{"a":1}"#));
    }

    #[test]
    fn nested_objects_are_taken_whole() {
        let text = r#"Result: {"a":{"b":{"c":[1,{"d":2}]}},"e":3} done {"x":1}"#;
        assert_eq!(first_json_object(text), Some(r#"{"a":{"b":{"c":[1,{"d":2}]}},"e":3}"#));
    }

    #[test]
    fn braces_and_escaped_quotes_in_strings_do_not_count() {
        let text = r#"ok {"msg":"a } and { and \"quoted }\" text","n":1} trailing }"#;
        assert_eq!(
            first_json_object(text),
            Some(r#"{"msg":"a } and { and \"quoted }\" text","n":1}"#)
        );
    }

    #[test]
    fn escaped_backslash_before_quote_ends_the_string() {
        let text = r#"{"path":"C:\\","k":"}"}"#;
        assert_eq!(first_json_object(text), Some(text));
    }

    #[test]
    fn fenced_object_in_prose() {
        let text = "Sure! Here you go:\n```json\n{\"proposals\": [{\"kind\": \"notify\"}]}\n```\nhope it helps";
        assert_eq!(
            first_json_object(text),
            Some("{\"proposals\": [{\"kind\": \"notify\"}]}")
        );
    }

    #[test]
    fn prose_braces_are_skipped() {
        let text = r#"Use {braces} like {this}, then {"real": true}"#;
        assert_eq!(first_json_object(text), Some(r#"{"real": true}"#));
    }

    #[test]
    fn no_object_gives_none() {
        assert_eq!(first_json_object("no json here"), None);
        assert_eq!(first_json_object("[1, 2, 3]"), None);
        assert_eq!(first_json_object(r#"{"cut": "off"#), None);
        assert_eq!(first_json_object("}}{{"), None);
        assert_eq!(first_json_object(""), None);
    }

    #[test]
    fn multibyte_text_around_the_object() {
        let text = "Voilà — «résumé» {\"é\":\"ü}\"} ✓";
        assert_eq!(first_json_object(text), Some("{\"é\":\"ü}\"}"));
    }

    #[test]
    fn whole_json_accepts_fences_and_rejects_prose() {
        assert_eq!(whole_json("  {\"a\":1}\n"), Some("{\"a\":1}"));
        assert_eq!(whole_json("```json\n{\"a\":1}\n```"), Some("{\"a\":1}"));
        assert_eq!(whole_json("```{\"a\":1}```"), Some("{\"a\":1}"));
        assert_eq!(whole_json("Sure! {\"a\":1}"), None);
        assert_eq!(whole_json("I cannot do that."), None);
    }
}
