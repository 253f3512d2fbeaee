//! Turning capability text and needs into terms: lower-casing, splitting
//! `camelCase`, `snake_case` and `kebab-case`, dropping stop words, and a
//! light English stemmer (plurals, `-ing`, `-ed`).

use std::ops::Range;

const STOP_WORDS: &[&str] = &[
    "a", "about", "all", "also", "an", "and", "any", "are", "as", "at", "be", "by", "can", "do",
    "does", "for", "from", "get", "gets", "given", "has", "have", "how", "i", "if", "in", "into",
    "is", "it", "its", "me", "my", "need", "of", "on", "or", "our", "some", "that", "the", "their",
    "them", "then", "there", "these", "this", "to", "us", "use", "using", "want", "was", "we",
    "what", "when", "which", "will", "with", "would", "you", "your", "please", "could", "should",
];

/// Splits text into raw words, breaking `camelCase` and non-alphanumerics.
pub fn words(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    let mut previous: Option<char> = None;
    for c in text.chars() {
        if c.is_alphanumeric() {
            let boundary = previous.is_some_and(|p| {
                (p.is_lowercase() && c.is_uppercase()) || (p.is_alphabetic() != c.is_alphabetic())
            });
            if boundary && !current.is_empty() {
                out.push(std::mem::take(&mut current));
            }
            current.extend(c.to_lowercase());
        } else if !current.is_empty() {
            out.push(std::mem::take(&mut current));
        }
        previous = Some(c);
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

/// A light suffix-stripping stemmer: plurals, `-ing` and `-ed` on words of
/// five letters or more, and nothing else. Stronger stemmers (`-ation`,
/// `-ment`, `-er`...) merged words that mean different things in capability
/// text ("information" and "inform", "user" and "use") and cost ranking
/// precision: MRR 0.741 → 0.774 on the ToolBench set with this one, and the
/// same gain on its second query set (docs/BENCHMARKS.md).
pub fn stem(word: &str) -> String {
    if word.len() <= 4 || !word.is_ascii() {
        return word.to_string();
    }
    if let Some(root) = word.strip_suffix("ies") {
        return format!("{root}y");
    }
    for suffix in ["ing", "es", "s", "ed"] {
        if let Some(root) = word.strip_suffix(suffix) {
            return root.to_string();
        }
    }
    word.to_string()
}

/// The terms of a text: words, stop words dropped, stemmed.
pub fn terms(text: &str) -> Vec<String> {
    words(text)
        .into_iter()
        .filter(|w| !STOP_WORDS.contains(&w.as_str()))
        .map(|w| stem(&w))
        .collect()
}

/// What a word pair counts for in a document, against one of its words.
///
/// Pairs of neighbouring terms ("social media", "speech recognition") tell
/// apart texts that share words but not phrases. Measured with
/// `discovery-eval` on both development sets, the lexical ranking alone:
/// ToolBench recall@10 0.768 → 0.792, APIBench 0.280 → 0.299 at 0.5
/// (docs/BENCHMARKS.md §5f).
pub const PAIR_WEIGHT: f32 = 0.5;

/// A pair term: two neighbouring terms with a space between them (a term
/// never holds one, so a pair never equals a word).
pub fn is_pair(term: &str) -> bool {
    term.contains(' ')
}

/// The pairs of neighbouring terms of `terms`.
pub fn pairs(terms: &[String]) -> impl Iterator<Item = String> + '_ {
    terms.windows(2).map(|w| format!("{} {}", w[0], w[1]))
}

/// A need's lexical terms: its terms, then its pairs.
pub fn query_terms(need: &str) -> Vec<String> {
    let mut terms = terms(need);
    let pairs: Vec<String> = pairs(&terms).collect();
    terms.extend(pairs);
    terms
}

/// Sentences of a need kept apart at most: the rest count only in the whole.
pub const NEED_SENTENCES_MAX: usize = 6;

/// A need's sentences, as byte ranges of it, when it has more than one:
/// each may ask for something of its own ("Track my parcel. Also convert
/// its weight to pounds."), and the dense side scores a capability by the
/// sentence it matches best as well as by the whole (docs/BENCHMARKS.md
/// §5g). A sentence ends at `.`, `!` or `?` followed by white space, or at a
/// line break; pieces without a letter or digit are dropped, white space
/// around each is not part of it. At most [`NEED_SENTENCES_MAX`]; empty for
/// a need of one sentence.
pub fn sentences(need: &str) -> Vec<Range<usize>> {
    let mut pieces = Vec::new();
    let mut start = 0;
    let mut chars = need.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        let ends = match c {
            '\n' | '\r' => true,
            '.' | '!' | '?' => chars.peek().is_none_or(|&(_, next)| next.is_whitespace()),
            _ => false,
        };
        if ends {
            pieces.push(start..i + c.len_utf8());
            start = i + c.len_utf8();
        }
    }
    pieces.push(start..need.len());
    let mut out: Vec<Range<usize>> = pieces
        .into_iter()
        .filter_map(|piece| {
            let text = &need[piece.clone()];
            let trimmed = text.trim_start();
            let from = piece.start + (text.len() - trimmed.len());
            let to = from + trimmed.trim_end().len();
            need[from..to]
                .chars()
                .any(char::is_alphanumeric)
                .then_some(from..to)
        })
        .collect();
    out.truncate(NEED_SENTENCES_MAX);
    if out.len() < 2 {
        out.clear();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_cases_and_stems_related_forms_together() {
        assert_eq!(
            words("getUserID snake_case kebab-case v2API"),
            [
                "get", "user", "id", "snake", "case", "kebab", "case", "v", "2", "api"
            ]
        );
        assert_eq!(stem("converts"), stem("convert"));
        assert_eq!(stem("converted"), stem("converting"));
        assert_eq!(stem("summaries"), stem("summary"));
        assert_eq!(stem("redacts"), stem("redacted"));
        assert_ne!(stem("information"), stem("inform"));
        assert_eq!(terms("Please convert the units"), ["convert", "unit"]);
        assert_eq!(stem("bus"), "bus");
    }

    #[test]
    fn a_need_brings_its_neighbouring_pairs() {
        let terms = query_terms("Recommend articles on a social media site");
        assert_eq!(
            terms,
            [
                "recommend",
                "articl",
                "social",
                "media",
                "site",
                "recommend articl",
                "articl social",
                "social media",
                "media site",
            ]
        );
        assert!(is_pair("social media") && !is_pair("social"));
        assert!(query_terms("one").iter().all(|t| !is_pair(t)));
    }

    #[test]
    fn a_need_of_several_sentences_is_split_into_them() {
        let split = |need: &str| -> Vec<String> {
            sentences(need)
                .into_iter()
                .map(|r| need[r].to_string())
                .collect()
        };
        assert_eq!(
            split("Track parcel CA107308006SI. Also, what's 2.5 kg in lb?\nThanks!"),
            [
                "Track parcel CA107308006SI.",
                "Also, what's 2.5 kg in lb?",
                "Thanks!"
            ]
        );
        // One sentence, however punctuated, is not split.
        assert!(split("Convert 2.5 kg to lb (v1.2 rules)").is_empty());
        assert!(split("Convert units. ... !").is_empty());
        assert!(split("").is_empty());
        // Bounded: the rest stays in the whole need only.
        let long = "Do this. ".repeat(20);
        assert_eq!(split(&long).len(), NEED_SENTENCES_MAX);
        // Multi-byte text splits on character boundaries.
        assert_eq!(
            split(" Übersetze das.  Grüße! "),
            ["Übersetze das.", "Grüße!"]
        );
    }
}
