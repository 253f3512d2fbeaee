//! word-count 1.1.0: adds an optional field, a compatible change.

use mercato_sdk::{Agent, Capability, Deserialize, Error, JsonSchema, Serialize};

/// A text.
#[derive(Deserialize, Serialize, JsonSchema)]
#[serde(crate = "mercato_sdk::serde", deny_unknown_fields)]
#[schemars(crate = "mercato_sdk::schemars")]
struct Input {
    /// The text.
    text: String,
    /// Only count words at least this long (all words when absent).
    #[serde(default)]
    min_length: Option<u32>,
}

fn count(input: Input) -> Result<Count, Error> {
    let min = input.min_length.unwrap_or(0) as usize;
    Ok(Count {
        words: input
            .text
            .split_whitespace()
            .filter(|w| w.chars().count() >= min)
            .count() as u32,
    })
}

fn examples() -> Vec<(Input, Count)> {
    vec![(
        Input {
            text: "the quick brown fox".into(),
            min_length: Some(4),
        },
        Count { words: 2 },
    )]
}

/// How many words.
#[derive(Deserialize, Serialize, JsonSchema)]
#[serde(crate = "mercato_sdk::serde")]
#[schemars(crate = "mercato_sdk::schemars")]
struct Count {
    /// Words in the text.
    words: u32,
}

struct WordCount;

impl Agent for WordCount {
    const NAME: &'static str = "word-count";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");

    fn capabilities() -> Vec<Capability> {
        vec![
            Capability::new("count", "Counts the words of a text.", count)
                .category("counting")
                .examples(examples),
        ]
    }
}

mercato_sdk::export_agent!(WordCount);
