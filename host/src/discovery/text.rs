//! Turning capability text and needs into terms: lower-casing, splitting
//! `camelCase`, `snake_case` and `kebab-case`, dropping stop words, and a
//! light English stemmer (plurals, `-ing`, `-ed`).

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
}
