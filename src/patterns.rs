//! Every regular expression the binary holds, compiled and checked at load.
//!
//! A pattern is a literal in the code, but whether it compiles depends on the
//! `regex` features the *release* build was made with: a test build gets more
//! features from dev-dependencies (wiremock switches on all of `regex`'s), so a
//! pattern can compile in every test and still fail in the product. That once
//! made every cycle with an LLM summary panic. So patterns are declared here
//! as [`Pattern`]s, listed in [`ALL`], and [`verify`] compiles each one when
//! the config is loaded: a pattern that cannot compile makes `check` and `run`
//! exit 2 naming it, never a cycle panic.
//!
//! This module must never compile anything that does not come from this
//! file's literals (no pattern from config, data or an LLM).

use std::sync::{LazyLock, OnceLock};

use regex::Regex;

/// A pattern that cannot compile in this build.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("built-in pattern `{name}` does not compile in this build: {message}")]
pub struct PatternError {
    /// The pattern's name.
    pub name: &'static str,
    /// The regex crate's message.
    pub message: String,
}

/// A named regular expression, compiled on first use.
pub struct Pattern {
    name: &'static str,
    source: &'static str,
    compiled: OnceLock<Regex>,
}

impl Pattern {
    /// A pattern named `name` (for error messages) with the regex `source`.
    pub const fn new(name: &'static str, source: &'static str) -> Self {
        Self {
            name,
            source,
            compiled: OnceLock::new(),
        }
    }

    /// Compiles the pattern (once) or says why it cannot.
    pub fn compile(&self) -> Result<&Regex, PatternError> {
        if let Some(regex) = self.compiled.get() {
            return Ok(regex);
        }
        let regex = Regex::new(self.source).map_err(|e| PatternError {
            name: self.name,
            message: e.to_string(),
        })?;
        Ok(self.compiled.get_or_init(|| regex))
    }

    /// The compiled pattern.
    ///
    /// Invariant: [`verify`] ran when the config was loaded, and every command
    /// that can reach this exits 2 before doing anything if a pattern failed.
    /// Should a caller skip that, the pattern degrades to one that matches
    /// nothing (and says so in the log) rather than panic inside a cycle.
    pub fn get(&self) -> &Regex {
        match self.compile() {
            Ok(regex) => regex,
            Err(e) => {
                tracing::error!(error = %e, "A built-in pattern failed at run time; it matches nothing");
                &NOTHING
            }
        }
    }
}

/// Matches nothing: a character followed by the start of the text. Needs no
/// optional `regex` feature, so it compiles in every build.
static NOTHING: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"x\A").unwrap_or_else(|_| unreachable!("a literal and an anchor compile in every build"))
});

/// A list-item marker at the start of a line: `1. `, `2) `, `- `, `* `, `• `.
pub static LIST_MARKER: Pattern = Pattern::new("list marker", r"^\s*(?:\d{1,2}[.)]|[-*•])\s+");

/// A sentence end: `.`, `!` or `?`, closing quotes or brackets, then space.
pub static SENTENCE_END: Pattern = Pattern::new("sentence end", r#"[.!?]+["'”’)\]]*\s+"#);

/// A number as written in prose: sign, currency, digits with thousands
/// separators, decimals and a percent or scale suffix.
pub static NUMBER: Pattern = Pattern::new(
    "number",
    r"(?x)
    (?P<sign>[-+\x{2212}])?
    (?P<currency>[$€£])?
    (?P<sign2>[-+\x{2212}])?
    (?P<int>\d{1,3}(?:,\d{3})+|\d+)
    (?:\.(?P<frac>\d+))?
    (?P<suffix>
        \s?%
      | \s?(?i:per\s?cent|pct)\b
      | \s?(?i:thousand|million|billion)\b
      | (?:k|K|M|mn|m|bn|B)\b
    )?",
);

/// Spelled-out numbers from eleven to ninety-nine, optionally a percentage.
pub static SPELLED: Pattern = Pattern::new(
    "spelled number",
    r"(?xi)
    \b(?:
        (?P<teen>eleven|twelve|thirteen|fourteen|fifteen|sixteen|seventeen|eighteen|nineteen)
      | (?P<tens>twenty|thirty|forty|fifty|sixty|seventy|eighty|ninety)
        (?:[-\s](?P<unit>one|two|three|four|five|six|seven|eight|nine))?
    )\b
    (?P<suffix>\s?%|\s(?:per\s?cent|pct)\b)?",
);

/// An e-mail address.
pub static EMAIL: Pattern = Pattern::new(
    "e-mail address",
    r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}",
);

/// A run of 15 to 19 digits, optionally grouped by single spaces or dashes:
/// a card number when the checks in `execution::redact` hold.
pub static CARD: Pattern = Pattern::new("card number", r"\b\d(?:[ -]?\d){14,18}\b");

/// A telephone number candidate; `execution::redact` decides.
pub static PHONE: Pattern = Pattern::new(
    "phone number",
    r"(?x)
    # international, grouped: +CC or 00CC, then groups after a separator, one
    # of them may be an area code in brackets: +44 (0)20 7946 0958
    (?:\+|\b00)\d{1,3}(?:[\ .\-/]\d{1,8}|[\ .\-]?\(\d{1,4}\)\ ?\d{1,8}){2,6}\b
    # international, written as one run: +14155552671
  | \+\d{10,15}\b
    # national with the area code in brackets: (02) 9876 5432, (415) 555-2671
  | \(\d{2,5}\)[\ .\-/]?\d{2,5}(?:[\ .\-/]\d{2,5}){0,4}\b
    # national with a trunk 0: 030 12345678, 020 7946 0958, 06-12345678, 030/1234567
  | \b0[1-9]\d{0,3}[\ .\-/]\d{2,8}(?:[\ .\-]\d{2,5}){0,4}\b
    # North American: 415-555-2671, 415.555.2671, 415 555 2671, 1-800-555-0199
  | (?:\b1[\ .\-])?\b[2-9]\d{2}-[2-9]\d{2}-\d{4}\b
  | (?:\b1[\ .\-])?\b[2-9]\d{2}\.[2-9]\d{2}\.\d{4}\b
  | (?:\b1\ )?\b[2-9]\d{2}\ [2-9]\d{2}\ \d{4}\b",
);

/// Every pattern, for [`verify`].
pub static ALL: &[&Pattern] = &[&LIST_MARKER, &SENTENCE_END, &NUMBER, &SPELLED, &EMAIL, &CARD, &PHONE];

/// Compiles every pattern; one error per pattern that does not compile.
pub fn verify() -> Vec<PatternError> {
    ALL.iter().filter_map(|p| p.compile().err()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_pattern_compiles_in_this_build() {
        assert_eq!(verify(), vec![]);
    }

    #[test]
    fn a_pattern_that_cannot_compile_is_named_not_panicked() {
        static BROKEN: Pattern = Pattern::new("broken on purpose", r"(unclosed");
        let e = BROKEN.compile().unwrap_err();
        assert_eq!(e.name, "broken on purpose");
        assert!(e.to_string().contains("built-in pattern `broken on purpose`"), "{e}");
        // At run time it degrades to matching nothing.
        assert!(!BROKEN.get().is_match("(unclosed"));
        assert!(!BROKEN.get().is_match(""));
    }
}
