//! Extractive summariser: scores each sentence by the document frequency of
//! its content words (stop words removed), favours early sentences slightly,
//! and returns the best ones in their original order. Also extracts keywords.

use mercato_sdk::{Agent, Capability, Deserialize, Error, JsonSchema, Serialize};
use std::collections::BTreeMap;

/// Text to summarise.
#[derive(Deserialize, Serialize, JsonSchema)]
#[serde(crate = "mercato_sdk::serde", deny_unknown_fields)]
#[schemars(crate = "mercato_sdk::schemars")]
struct SummarizeInput {
    /// The text (at most 256 KiB).
    text: String,
    /// How many sentences to keep (1 to 20, default 3).
    #[serde(default = "default_sentences")]
    #[schemars(range(min = 1, max = 20))]
    sentences: u32,
}

fn default_sentences() -> u32 {
    3
}

/// The summary.
#[derive(Deserialize, Serialize, JsonSchema)]
#[serde(crate = "mercato_sdk::serde")]
#[schemars(crate = "mercato_sdk::schemars")]
struct SummarizeOutput {
    /// The chosen sentences joined with spaces, in original order.
    summary: String,
    /// Index (0-based) of each chosen sentence in the text.
    picked: Vec<u32>,
    /// How many sentences the text had.
    sentence_count: u32,
}

/// Text to extract keywords from.
#[derive(Deserialize, Serialize, JsonSchema)]
#[serde(crate = "mercato_sdk::serde", deny_unknown_fields)]
#[schemars(crate = "mercato_sdk::schemars")]
struct KeywordsInput {
    /// The text (at most 256 KiB).
    text: String,
    /// How many keywords to return (1 to 50, default 5).
    #[serde(default = "default_keywords")]
    #[schemars(range(min = 1, max = 50))]
    limit: u32,
}

fn default_keywords() -> u32 {
    5
}

/// The most frequent content words.
#[derive(Deserialize, Serialize, JsonSchema)]
#[serde(crate = "mercato_sdk::serde")]
#[schemars(crate = "mercato_sdk::schemars")]
struct KeywordsOutput {
    /// Keywords, most frequent first (ties in alphabetical order).
    keywords: Vec<Keyword>,
}

/// One keyword and how often it occurs.
#[derive(Deserialize, Serialize, JsonSchema)]
#[serde(crate = "mercato_sdk::serde")]
#[schemars(crate = "mercato_sdk::schemars")]
struct Keyword {
    /// The word, lower-cased.
    word: String,
    /// Occurrences in the text.
    count: u32,
}

const TEXT_BYTES_MAX: usize = 256 * 1024;

const STOP_WORDS: &[&str] = &[
    "a", "about", "after", "all", "also", "an", "and", "any", "are", "as", "at", "be", "been",
    "but", "by", "can", "could", "did", "do", "does", "for", "from", "had", "has", "have", "he",
    "her", "his", "how", "i", "if", "in", "into", "is", "it", "its", "more", "most", "no", "not",
    "of", "on", "one", "or", "other", "our", "out", "over", "she", "so", "some", "such", "than",
    "that", "the", "their", "them", "then", "there", "these", "they", "this", "those", "to", "up",
    "was", "we", "were", "what", "when", "which", "while", "who", "will", "with", "would", "you",
    "your",
];

fn words(sentence: &str) -> impl Iterator<Item = String> + '_ {
    sentence
        .split(|c: char| !c.is_alphanumeric() && c != '\'')
        .map(|w| w.trim_matches('\'').to_lowercase())
        .filter(|w| w.chars().count() > 1 && !STOP_WORDS.contains(&w.as_str()))
}

/// Splits on `.`, `!` or `?` followed by white space (or the end), keeping the
/// punctuation; common abbreviations do not end a sentence.
fn sentences(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    let chars: Vec<(usize, char)> = text.char_indices().collect();
    for (i, &(at, c)) in chars.iter().enumerate() {
        let next_is_space = chars.get(i + 1).is_none_or(|(_, n)| n.is_whitespace());
        if matches!(c, '.' | '!' | '?') && next_is_space {
            let candidate = text[start..at + c.len_utf8()].trim();
            let last_word = candidate.rsplit(' ').next().unwrap_or("");
            if ["e.g.", "i.e.", "etc.", "Mr.", "Dr.", "Ms.", "vs."].contains(&last_word) {
                continue;
            }
            if !candidate.is_empty() {
                out.push(candidate);
            }
            start = at + c.len_utf8();
        }
    }
    let rest = text[start..].trim();
    if !rest.is_empty() {
        out.push(rest);
    }
    out
}

fn frequencies(text: &str) -> BTreeMap<String, u32> {
    let mut freq = BTreeMap::new();
    for w in words(text) {
        *freq.entry(w).or_insert(0) += 1;
    }
    freq
}

fn checked(text: &str) -> Result<(), Error> {
    if text.len() > TEXT_BYTES_MAX {
        return Err(Error::InvalidInput(format!(
            "text is over {TEXT_BYTES_MAX} bytes"
        )));
    }
    if text.trim().is_empty() {
        return Err(Error::InvalidInput("text is empty".into()));
    }
    Ok(())
}

fn summarize(input: SummarizeInput) -> Result<SummarizeOutput, Error> {
    checked(&input.text)?;
    if !(1..=20).contains(&input.sentences) {
        return Err(Error::InvalidInput(
            "sentences must be between 1 and 20".into(),
        ));
    }
    let all = sentences(&input.text);
    let freq = frequencies(&input.text);
    let top = freq.values().copied().max().unwrap_or(1) as f64;
    let mut scored: Vec<(usize, f64)> = all
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let ws: Vec<String> = words(s).collect();
            let weight: f64 = ws.iter().map(|w| f64::from(freq[w]) / top).sum();
            // Normalise by length so long sentences do not win by size alone,
            // and give the opening sentences a small lead.
            let length = (ws.len().max(1) as f64).sqrt();
            let position = 1.0 + 0.25 / (1.0 + i as f64);
            (i, weight / length * position)
        })
        .collect();
    scored.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    let mut picked: Vec<usize> = scored
        .iter()
        .take(input.sentences as usize)
        .map(|(i, _)| *i)
        .collect();
    picked.sort_unstable();
    // Stream each chosen sentence as soon as the choice is made.
    for &i in &picked {
        mercato_sdk::host::emit(all[i]);
    }
    let summary = picked.iter().map(|&i| all[i]).collect::<Vec<_>>().join(" ");
    Ok(SummarizeOutput {
        summary,
        picked: picked.iter().map(|&i| i as u32).collect(),
        sentence_count: all.len() as u32,
    })
}

fn keywords(input: KeywordsInput) -> Result<KeywordsOutput, Error> {
    checked(&input.text)?;
    if !(1..=50).contains(&input.limit) {
        return Err(Error::InvalidInput("limit must be between 1 and 50".into()));
    }
    let mut ranked: Vec<(String, u32)> = frequencies(&input.text).into_iter().collect();
    ranked.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    let keywords = ranked
        .into_iter()
        .take(input.limit as usize)
        .map(|(word, count)| Keyword { word, count })
        .collect();
    Ok(KeywordsOutput { keywords })
}

const SAMPLE: &str = "WebAssembly components are portable and sandboxed. \
    The weather was pleasant on Tuesday. \
    A sandboxed component cannot reach files or sockets unless the host grants them. \
    Hosts meter components with fuel, so every component call has a price.";

fn summarize_examples() -> Vec<(SummarizeInput, SummarizeOutput)> {
    vec![(
        SummarizeInput {
            text: SAMPLE.into(),
            sentences: 2,
        },
        SummarizeOutput {
            summary:
                "A sandboxed component cannot reach files or sockets unless the host grants them. \
                      Hosts meter components with fuel, so every component call has a price."
                    .into(),
            picked: vec![2, 3],
            sentence_count: 4,
        },
    )]
}

fn keywords_examples() -> Vec<(KeywordsInput, KeywordsOutput)> {
    vec![(
        KeywordsInput {
            text: SAMPLE.into(),
            limit: 3,
        },
        KeywordsOutput {
            keywords: vec![
                Keyword {
                    word: "component".into(),
                    count: 2,
                },
                Keyword {
                    word: "components".into(),
                    count: 2,
                },
                Keyword {
                    word: "sandboxed".into(),
                    count: 2,
                },
            ],
        },
    )]
}

struct Summarizer;

impl Agent for Summarizer {
    const NAME: &'static str = "summarizer";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");

    fn capabilities() -> Vec<Capability> {
        vec![
            Capability::new(
                "summarize",
                "Summarises text extractively: picks the most representative sentences by \
                 content-word frequency and returns them in their original order.",
                summarize,
            )
            .category("text")
            .tags(&["summary", "summarisation", "tl;dr", "nlp", "extractive"])
            .examples(summarize_examples),
            Capability::new(
                "keywords",
                "Extracts the most frequent content words of a text (stop words removed).",
                keywords,
            )
            .category("text")
            .tags(&["keywords", "topics", "nlp", "tags"])
            .examples(keywords_examples),
        ]
    }
}

mercato_sdk::export_agent!(Summarizer);
