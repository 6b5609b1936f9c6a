//! Masking personal data in outgoing text: e-mail addresses, telephone
//! numbers and payment-card numbers.
//!
//! Business text is full of figures that look like phone numbers to a naive
//! pattern (`12.345.678 EUR`, `up 12 345 678`, `sku 100-200-300`, dates, order
//! ids), and masking them corrupts the very numbers a message is about. So a
//! regex only proposes candidates and a check decides:
//!
//! - **Phone numbers** are written in one of the telephone shapes: with an
//!   international prefix (`+44 20 7946 0958`, `0044 …`, `+14155552671`), a
//!   national trunk `0` before an area code (`030 1234567`, `020 7946 0958`,
//!   `06-12345678`, `(02) 9876 5432`), or the North-American `415-555-2671` /
//!   `(415) 555-2671` (area code and exchange start with 2–9). The candidate
//!   must stand alone (not glued to letters, digits or `-`/`/`/`.` of a
//!   longer id), have 9–15 digits (10 or 11 for North America), and must not
//!   read as a figure grouped in thousands (`+123 456 789`).
//! - **Card numbers** have 15–19 digits, start with 2–6 (the card networks'
//!   ranges), are ungrouped or grouped in fours (Amex: 4-6-5), and pass the
//!   Luhn check.
//!
//! Pure functions; must never widen what reaches anyone, and must never touch
//! a figure that is not one of the shapes above.

use regex::{Captures, Match};

use crate::config::Redaction;

use crate::model::{ListEntry, Message};
use crate::patterns;

/// Masks what `kinds` name in `text`.
pub fn redact(text: &str, kinds: &[Redaction]) -> String {
    let mut out = text.to_owned();
    if kinds.contains(&Redaction::Email) {
        out = patterns::EMAIL.get().replace_all(&out, "[email redacted]").into_owned();
    }
    if kinds.contains(&Redaction::Card) {
        out = replace_checked(&out, patterns::CARD.get(), is_card, "[card redacted]");
    }
    if kinds.contains(&Redaction::Phone) {
        out = replace_checked(&out, patterns::PHONE.get(), is_phone, "[phone redacted]");
    }
    out
}

/// Masks every text of a message.
pub fn redact_message(message: &mut Message, kinds: &[Redaction]) {
    if kinds.is_empty() {
        return;
    }
    message.subject = redact(&message.subject, kinds);
    message.text = redact(&message.text, kinds);
    message.context = redact(&message.context, kinds);
    for (_, v) in &mut message.evidence {
        *v = redact(v, kinds);
    }
    for table in &mut message.tables {
        for row in &mut table.rows {
            for cell in row {
                *cell = redact(cell, kinds);
            }
        }
    }
    redact_list(&mut message.list, kinds);
    if let Some(alert) = &mut message.alert {
        for v in alert.labels.values_mut() {
            *v = redact(v, kinds);
        }
    }
}

/// Masks `kinds` in the labels of a message's full list.
pub fn redact_list(list: &mut [ListEntry], kinds: &[Redaction]) {
    for entry in list {
        for v in entry.labels.values_mut() {
            *v = redact(v, kinds);
        }
    }
}

/// Replaces the matches of `regex` in `text` that `check` accepts.
fn replace_checked(text: &str, regex: &regex::Regex, check: fn(&str, Match<'_>) -> bool, mask: &str) -> String {
    regex
        .replace_all(text, |c: &Captures<'_>| match c.get(0) {
            Some(m) if check(text, m) => mask.to_owned(),
            Some(m) => m.as_str().to_owned(),
            None => String::new(),
        })
        .into_owned()
}

fn digits(s: &str) -> Vec<u32> {
    s.chars().filter_map(|c| c.to_digit(10)).collect()
}

/// Whether the match stands alone: not glued to a longer word, number or id
/// (`ORD-0042-7781-0012`, `2026-11-01/2026-11-07`, `v10.4.2`).
fn stands_alone(text: &str, m: Match<'_>) -> bool {
    let before = text[..m.start()].chars().next_back();
    let after = text[m.end()..].chars().next();
    let glued_before = before.is_some_and(|c| c.is_alphanumeric() || matches!(c, '-' | '/' | '.' | '_' | '#'));
    let glued_after = match after {
        Some(c) if c.is_alphanumeric() || matches!(c, '-' | '/' | '_') => true,
        // A dot ends a sentence, but a dot followed by more digits continues a number.
        Some('.') => text[m.end() + 1..].chars().next().is_some_and(|c| c.is_ascii_digit()),
        _ => false,
    };
    !glued_before && !glued_after
}

/// Whether the digits read as a figure grouped in thousands: a first group of
/// 1–3 digits (not starting with 0), then groups of exactly 3, all split by
/// the same separator (`123 456 789`, `+1.234.567`).
fn thousands_like(candidate: &str) -> bool {
    let body = candidate.trim_start_matches('+');
    let mut separators = body.chars().filter(|c| !c.is_ascii_digit());
    let Some(sep) = separators.next() else {
        return false;
    };
    if !matches!(sep, ' ' | '.' | ',' | '\'') || separators.any(|c| c != sep) {
        return false;
    }
    let groups: Vec<&str> = body.split(sep).collect();
    groups.len() >= 2
        && (1..=3).contains(&groups[0].len())
        && !groups[0].starts_with('0')
        && groups[1..].iter().all(|g| g.len() == 3)
}

fn is_phone(text: &str, m: Match<'_>) -> bool {
    let candidate = m.as_str();
    if !stands_alone(text, m) || thousands_like(candidate) {
        return false;
    }
    let n = digits(candidate).len();
    if candidate.starts_with('+') || candidate.starts_with("00") {
        (9..=15).contains(&n)
    } else if candidate.starts_with('0') || candidate.starts_with("(0") {
        (9..=12).contains(&n)
    } else if candidate.starts_with('(') {
        n == 10
    } else {
        n == 10 || (n == 11 && candidate.starts_with('1'))
    }
}

fn is_card(text: &str, m: Match<'_>) -> bool {
    let candidate = m.as_str();
    let d = digits(candidate);
    if !stands_alone(text, m) || !(15..=19).contains(&d.len()) || !(2..=6).contains(&d[0]) {
        return false;
    }
    let groups: Vec<usize> = candidate.split([' ', '-']).map(str::len).collect();
    let grouped_ok = groups.len() == 1
        || groups == [4, 6, 5]
        || (groups[..groups.len() - 1].iter().all(|&g| g == 4) && (1..=4).contains(&groups[groups.len() - 1]));
    grouped_ok && luhn(&d)
}

/// The Luhn checksum of card numbers.
fn luhn(digits: &[u32]) -> bool {
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, d)| {
            if i % 2 == 1 {
                let x = d * 2;
                if x > 9 { x - 9 } else { x }
            } else {
                *d
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: &[Redaction] = &[Redaction::Email, Redaction::Phone, Redaction::Card];

    /// Business sentences with figures in the formats people write: every
    /// one must pass through unchanged.
    const BUSINESS: &[&str] = &[
        "Revenue reached 12,345,678 EUR this quarter.",
        "Umsatz: 12.345.678 EUR im Oktober.",
        "Orders went up 12 345 678 units year to date.",
        "Der Umsatz stieg auf CHF 12'345'678.",
        "Average order value was $1,234.56.",
        "Durchschnittlicher Warenkorb: 1.234,56 €.",
        "Panier moyen : 1 234,56 €.",
        "Conversion rate fell to 2.35%.",
        "Bounce rate rose by 12,5 % week over week.",
        "Margin improved from 31.2% to 33.8%.",
        "sku 100-200-300 is out of stock.",
        "SKU-2024-00017 sold 1,204 units.",
        "Order 100045123 was refunded.",
        "Order #A-2291-7781 shipped on 2026-11-20.",
        "Invoice INV-2026-000123 is overdue by 14 days.",
        "The report covers 2026-11-01 to 2026-11-30.",
        "Stichtag ist der 01.12.2026.",
        "Due date: 11/20/2026.",
        "Due date: 20/11/2026, paid on 06.12.2026.",
        "Week 2026-W47 closed at 98.7% of target.",
        "Northeast revenue fell 23.4% to $105,214.48.",
        "Net revenue: -$27,483 vs last week.",
        "Stock value: 4,500,000.00 USD.",
        "Costs were 1.5M EUR, up 0.3M.",
        "We processed 1 094 orders on 06.12.2026.",
        "Top product: ART-00042-17 with 312 sales.",
        "Batch 2026/11/20-003 passed QA.",
        "Customer 100234 spent 2,340.00 in November.",
        "Q3 revenue was 3.2 bn USD, +4.1% YoY.",
        "Runtime was 01:23:45 for 1,000,000 rows.",
        "Store 0042 sold 1,250 items.",
        "Version 10.4.2 rolled out to 35% of users.",
        "IP 10.0.0.1 served 1.2M requests.",
        "Postal code 01067 Dresden had 1,203 orders.",
        "Revenue 2025: 9 876 543 210 RUB.",
        "Payment of 3 400 000 DKK cleared.",
        "Gross bookings were ¥1,234,567,890.",
        "Period 2026-11-01/2026-11-07 vs 2026-10-25/2026-10-31.",
        "Ticket 2026-000451 escalated.",
        "The cohort of 06/2026 retained 41.3%.",
        "Refunds: 1'250.50 CHF.",
        "Serial 4111-2222-3333 returned.",
        "Warehouse 7 holds 12,000 units worth €480.000,00.",
        "Price changed from 19,99 € to 24,99 €.",
        "Lot 00123-4567 recalled.",
        "Revenue is up +12 345 678 EUR on last year.",
        "Up +123 456 789 visits since launch.",
        "Tracking 1Z999AA10123456784 delivered.",
        "Order 1234567890123 is not a card.",
        "Basket 4000 1234 5678 9011 is an id, not Luhn-valid.",
        "Pipeline: 1,204 deals worth 48.2 million.",
        "Churn fell from 5.1 pct to 4.8 pct.",
        "ID 555-12 closed; 42 tickets remain.",
        "Forecast 2027: 15.000.000 € (±3%).",
        "North 105214, South 98234, West 77120.",
        "FY2026 EBITDA of 8,1 Mio. €.",
    ];

    /// Telephone numbers in real formats: every one must be masked.
    const PHONES: &[&str] = &[
        "+14155552671",
        "+1 415 555 2671",
        "+1 (415) 555-2671",
        "+1-415-555-2671",
        "(415) 555-2671",
        "415-555-2671",
        "415.555.2671",
        "1-800-555-0199",
        "+44 20 7946 0958",
        "+44 (0)20 7946 0958",
        "020 7946 0958",
        "07700 900123",
        "0044 20 7946 0958",
        "+49 30 12345678",
        "+49 (0)30 1234 5678",
        "030 12345678",
        "030/1234567",
        "0172 1234567",
        "+33 1 23 45 67 89",
        "01 23 45 67 89",
        "06 12 34 56 78",
        "+31 6 12345678",
        "06-12345678",
        "+81 3-1234-5678",
        "03-1234-5678",
        "+61 2 9876 5432",
        "(02) 9876 5432",
        "0412 345 678",
        "+91 98765 43210",
        "+55 11 91234-5678",
        "+39 02 1234 5678",
    ];

    #[test]
    fn business_figures_pass_unchanged() {
        assert!(BUSINESS.len() >= 50);
        for sentence in BUSINESS {
            assert_eq!(redact(sentence, ALL), *sentence, "a business figure was masked");
        }
    }

    #[test]
    fn phone_numbers_in_real_formats_are_masked() {
        assert!(PHONES.len() >= 20);
        for phone in PHONES {
            for text in [
                format!("Call {phone} today."),
                format!("Tel: {phone}"),
                (*phone).to_owned(),
                format!("customer ({phone}) asked"),
            ] {
                assert_eq!(
                    redact(&text, ALL),
                    text.replace(phone, "[phone redacted]"),
                    "{phone:?} was not masked whole"
                );
            }
        }
    }

    #[test]
    fn cards_are_masked_only_when_luhn_holds() {
        for card in [
            "4111 1111 1111 1111",
            "4111111111111111",
            "5500-0000-0000-0004",
            "3782 822463 10005",
            "6011 1111 1111 1117",
        ] {
            assert_eq!(
                redact(&format!("card {card}."), &[Redaction::Card]),
                "card [card redacted]."
            );
        }
        for not_luhn in ["4111 1111 1111 1112", "5500000000000005", "3782 822463 10006"] {
            let text = format!("card {not_luhn}.");
            assert_eq!(redact(&text, &[Redaction::Card]), text);
        }
    }

    #[test]
    fn masks_emails_phones_and_cards_together() {
        let text = "Call +1 (555) 123-4567 or 030 1234 5678, mail jane.doe@example.co.uk, card 4111 1111 1111 1111.";
        assert_eq!(
            redact(text, ALL),
            "Call [phone redacted] or [phone redacted], mail [email redacted], card [card redacted]."
        );
    }

    #[test]
    fn only_configured_kinds() {
        assert_eq!(
            redact("a@b.io 4111111111111111", &[Redaction::Card]),
            "a@b.io [card redacted]"
        );
        assert_eq!(redact("a@b.io", &[]), "a@b.io");
    }
}
