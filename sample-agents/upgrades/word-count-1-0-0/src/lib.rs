//! word-count 1.0.0: the first version of an agent the upgrade-gate tests
//! evolve (1.1.0 compatible, 1.2.0 breaking, 2.0.0 the same break as a major).

use mercato_sdk::{Agent, Capability, Deserialize, Error, JsonSchema, Serialize};

/// A text.
#[derive(Deserialize, Serialize, JsonSchema)]
#[serde(crate = "mercato_sdk::serde", deny_unknown_fields)]
#[schemars(crate = "mercato_sdk::schemars")]
struct Input {
    /// The text.
    text: String,
}

fn count(input: Input) -> Result<Count, Error> {
    Ok(Count {
        words: input.text.split_whitespace().count() as u32,
    })
}

fn examples() -> Vec<(Input, Count)> {
    vec![(
        Input {
            text: "the quick brown fox".into(),
        },
        Count { words: 4 },
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
