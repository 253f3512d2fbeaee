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
}
