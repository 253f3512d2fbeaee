//! Turning capability text and needs into terms: lower-casing, splitting
//! `camelCase`, `snake_case` and `kebab-case`, dropping stop words, and a
//! light English stemmer (plurals, `-ing`, `-ed`, `-ation`...).

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

/// A light suffix-stripping stemmer: enough to meet "converts" with
/// "conversion" halfway, never so much that short words collapse.
pub fn stem(word: &str) -> String {
    let w = word;
    if w.len() <= 3 || !w.is_ascii() {
        return w.to_string();
    }
    for (suffix, replacement) in [
        ("ational", "at"),
        ("ization", "iz"),
        ("isation", "iz"),
        ("ations", "at"),
        ("ation", "at"),
        ("ions", ""),
        ("ion", ""),
        ("ments", ""),
        ("ment", ""),
        ("ness", ""),
        ("ities", ""),
        ("ity", ""),
        ("ings", ""),
        ("ing", ""),
        ("ies", "y"),
        ("ied", "y"),
        ("sses", "ss"),
        ("ers", ""),
        ("er", ""),
        ("ed", ""),
        ("es", ""),
        ("ly", ""),
        ("s", ""),
    ] {
        let Some(root) = w.strip_suffix(suffix) else {
            continue;
        };
        if root.len() < 3 || (suffix == "s" && (root.ends_with('s') || root.ends_with('u'))) {
            continue;
        }
        let mut stemmed = format!("{root}{replacement}");
        // "running" → "runn" → "run"
        let bytes = stemmed.as_bytes();
        let n = bytes.len();
        if n >= 4 && bytes[n - 1] == bytes[n - 2] && !b"lsz".contains(&bytes[n - 1]) {
            stemmed.pop();
        }
        if let Some(root) = stemmed.strip_suffix('e').filter(|r| r.len() >= 3) {
            return root.to_string();
        }
        return stemmed;
    }
    w.strip_suffix('e')
        .filter(|r| r.len() >= 3)
        .unwrap_or(w)
        .to_string()
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
        assert_eq!(stem("redaction"), stem("redacted"));
        assert_eq!(terms("Please convert the units"), ["convert", "unit"]);
        assert_eq!(stem("bus"), "bus");
    }
}
