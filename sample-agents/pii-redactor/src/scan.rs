//! The scanner: byte offsets of e-mail addresses, IBANs, card numbers and phone
//! numbers, non-overlapping, in text order.

use mercato_sdk::{Deserialize, JsonSchema, Serialize};

/// A kind of personal data.
#[derive(Deserialize, Serialize, JsonSchema, Clone, Copy, PartialEq, Eq, Debug)]
#[serde(crate = "mercato_sdk::serde", rename_all = "lowercase")]
#[schemars(crate = "mercato_sdk::schemars")]
pub enum Kind {
    /// An e-mail address.
    Email,
    /// A phone number (7 to 15 digits).
    Phone,
    /// An IBAN whose mod-97 check holds.
    Iban,
    /// A payment card number whose Luhn check holds.
    Card,
}

impl Kind {
    pub fn placeholder(self) -> &'static str {
        match self {
            Kind::Email => "[EMAIL]",
            Kind::Phone => "[PHONE]",
            Kind::Iban => "[IBAN]",
            Kind::Card => "[CARD]",
        }
    }
}

/// One finding: `text[start..end]` is the personal data.
#[derive(Deserialize, Serialize, JsonSchema, Clone, Copy, PartialEq, Eq, Debug)]
#[serde(crate = "mercato_sdk::serde")]
#[schemars(crate = "mercato_sdk::schemars")]
pub struct Finding {
    /// What was found.
    pub kind: Kind,
    /// Byte offset where it starts.
    pub start: usize,
    /// Byte offset just past its end.
    pub end: usize,
}

pub fn scan(text: &str) -> Vec<Finding> {
    let bytes = text.as_bytes();
    let mut findings = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let boundary = i == 0 || !bytes[i - 1].is_ascii_alphanumeric();
        if !boundary {
            i += 1;
            continue;
        }
        if let Some(f) = email_at(bytes, i).or_else(|| iban_at(bytes, i)) {
            i = f.end;
            findings.push(f);
            continue;
        }
        // A run of digits is judged whole: a 16-digit number failing Luhn is
        // not a card, and its tail is not a phone number either.
        match number_at(bytes, i) {
            Number::Found(f) => {
                i = f.end;
                findings.push(f);
            }
            Number::Skip(end) => i = end.max(i + 1),
            Number::None => i += 1,
        }
    }
    findings
}

fn is_local(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"._%+-".contains(&b)
}

fn is_domain(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'.' || b == b'-'
}

fn email_at(b: &[u8], start: usize) -> Option<Finding> {
    let mut at = start;
    while at < b.len() && is_local(b[at]) {
        at += 1;
    }
    if at == start || at >= b.len() || b[at] != b'@' {
        return None;
    }
    let domain_start = at + 1;
    let mut end = domain_start;
    while end < b.len() && is_domain(b[end]) {
        end += 1;
    }
    // A trailing dot ends the sentence, not the domain.
    while end > domain_start && b[end - 1] == b'.' {
        end -= 1;
    }
    let domain = &b[domain_start..end];
    let tld = domain.rsplit(|&c| c == b'.').next()?;
    let dotted = domain.contains(&b'.');
    (dotted && tld.len() >= 2 && tld.iter().all(u8::is_ascii_alphabetic)).then_some(Finding {
        kind: Kind::Email,
        start,
        end,
    })
}

fn iban_at(b: &[u8], start: usize) -> Option<Finding> {
    let head = b.get(start..start + 4)?;
    if !(head[0].is_ascii_uppercase()
        && head[1].is_ascii_uppercase()
        && head[2].is_ascii_digit()
        && head[3].is_ascii_digit())
    {
        return None;
    }
    // Collect candidate end positions: after each upper-case alphanumeric,
    // allowing single spaces between groups.
    let mut chars = Vec::new();
    let mut ends = Vec::new();
    let mut at = start;
    while at < b.len() && chars.len() < 34 {
        let c = b[at];
        if c.is_ascii_digit() || c.is_ascii_uppercase() {
            chars.push(c);
            ends.push(at + 1);
            at += 1;
        } else if c == b' ' && at + 1 < b.len() && b[at + 1].is_ascii_alphanumeric() {
            at += 1;
        } else {
            break;
        }
    }
    (15..=chars.len()).rev().find_map(|len| {
        let end = ends[len - 1];
        let boundary = end == b.len() || !b[end].is_ascii_alphanumeric();
        (boundary && iban_valid(&chars[..len])).then_some(Finding {
            kind: Kind::Iban,
            start,
            end,
        })
    })
}

fn iban_valid(chars: &[u8]) -> bool {
    let rotated = chars[4..].iter().chain(&chars[..4]);
    let mut remainder: u32 = 0;
    for &c in rotated {
        let value = if c.is_ascii_digit() {
            u32::from(c - b'0')
        } else {
            u32::from(c - b'A') + 10
        };
        remainder = if value >= 10 {
            (remainder * 100 + value) % 97
        } else {
            (remainder * 10 + value) % 97
        };
    }
    remainder == 1
}

fn luhn_valid(digits: &[u8]) -> bool {
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &d)| {
            let d = u32::from(d);
            if i % 2 == 1 {
                if d * 2 > 9 { d * 2 - 9 } else { d * 2 }
            } else {
                d
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

enum Number {
    /// PII.
    Found(Finding),
    /// A number that is not PII, ending here.
    Skip(usize),
    /// No number starts here.
    None,
}

/// A run of digits with single separators: a card number if 13 to 19 digits
/// pass Luhn, else a phone number if it has 7 to 15 digits and looks like one.
fn number_at(b: &[u8], start: usize) -> Number {
    let plus = b[start] == b'+';
    let mut at = start + usize::from(plus);
    let mut digits = Vec::new();
    let mut end = at;
    let mut separated = false;
    while at < b.len() && digits.len() <= 19 {
        let c = b[at];
        if c.is_ascii_digit() {
            digits.push(c - b'0');
            at += 1;
            end = at;
        } else if b" -.()".contains(&c) && !digits.is_empty() && at + 1 < b.len() {
            let next = b[at + 1];
            let next_ok =
                next.is_ascii_digit() || (c == b')' && next == b' ') || (c == b' ' && next == b'(');
            if !next_ok {
                break;
            }
            separated = true;
            at += 1;
        } else if c == b'(' && digits.is_empty() {
            at += 1;
        } else {
            break;
        }
    }
    if digits.is_empty() {
        return Number::None;
    }
    if (end < b.len() && b[end].is_ascii_alphanumeric()) || is_iso_date(&b[start..end]) {
        return Number::Skip(end);
    }
    if (13..=19).contains(&digits.len()) && luhn_valid(&digits) {
        return Number::Found(Finding {
            kind: Kind::Card,
            start,
            end,
        });
    }
    let phone_like = plus || separated || digits.len() >= 10;
    if (7..=15).contains(&digits.len()) && phone_like {
        return Number::Found(Finding {
            kind: Kind::Phone,
            start,
            end,
        });
    }
    Number::Skip(end)
}

/// `2024-05-01` is a date, not a phone number.
fn is_iso_date(s: &[u8]) -> bool {
    s.len() == 10
        && s.iter().enumerate().all(|(i, c)| {
            if i == 4 || i == 7 {
                *c == b'-'
            } else {
                c.is_ascii_digit()
            }
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_each_kind_with_checks() {
        let f = scan("a@b.co +1 (555) 010-9999 GB82 WEST 1234 5698 7654 32 5555555555554444");
        let kinds: Vec<Kind> = f.iter().map(|f| f.kind).collect();
        assert_eq!(
            kinds,
            vec![Kind::Email, Kind::Phone, Kind::Iban, Kind::Card]
        );
    }

    #[test]
    fn rejects_failed_checksums_and_dates() {
        assert!(scan("4111 1111 1111 1112 on 2024-05-01").is_empty());
        let f = scan("GB82 WEST 1234 5698 7654 33");
        assert!(
            f.iter()
                .all(|f| f.kind != Kind::Card && f.kind != Kind::Iban),
            "{f:?}"
        );
        assert!(scan("on 2024-05-01").is_empty());
        assert!(scan("version 1.2.3, year 2024").is_empty());
    }
}
