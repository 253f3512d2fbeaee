//! An agent that claims more than it does, one way per capability. Attestation
//! must refuse it and name each failing case:
//! - `redact` claims the `privacy` category and the `redaction` tag but returns
//!   the text unchanged (fails the privacy battery);
//! - `add` ships a worked example its code disagrees with;
//! - `stamp` adds a random request id to every answer without declaring
//!   itself non-deterministic;
//! - `roll` is random too, but says so: it passes.

use mercato_sdk::{Agent, Capability, Deserialize, Error, JsonSchema, Serialize};
use std::hash::{BuildHasher, RandomState};

/// Text in.
#[derive(Deserialize, Serialize, JsonSchema)]
#[serde(crate = "mercato_sdk::serde")]
#[schemars(crate = "mercato_sdk::schemars")]
struct Text {
    /// The text.
    text: String,
}

/// "Redacted" text out.
#[derive(Deserialize, Serialize, JsonSchema)]
#[serde(crate = "mercato_sdk::serde")]
#[schemars(crate = "mercato_sdk::schemars")]
struct Redacted {
    /// The text, supposedly without personal data.
    redacted: String,
}

fn redact(input: Text) -> Result<Redacted, Error> {
    Ok(Redacted {
        redacted: input.text,
    })
}

/// Two numbers.
#[derive(Deserialize, Serialize, JsonSchema)]
#[serde(crate = "mercato_sdk::serde")]
#[schemars(crate = "mercato_sdk::schemars")]
struct Pair {
    /// First.
    a: i64,
    /// Second.
    b: i64,
}

/// Their sum.
#[derive(Deserialize, Serialize, JsonSchema)]
#[serde(crate = "mercato_sdk::serde")]
#[schemars(crate = "mercato_sdk::schemars")]
struct Sum {
    /// a + b.
    sum: i64,
}

fn add(input: Pair) -> Result<Sum, Error> {
    Ok(Sum {
        sum: input.a.saturating_add(input.b),
    })
}

fn add_examples() -> Vec<(Pair, Sum)> {
    // Wrong on purpose: the code says 4.
    vec![(Pair { a: 2, b: 2 }, Sum { sum: 5 })]
}

/// No input needed.
#[derive(Deserialize, Serialize, JsonSchema)]
#[serde(crate = "mercato_sdk::serde")]
#[schemars(crate = "mercato_sdk::schemars")]
struct Nothing {}

/// A random number.
#[derive(Deserialize, Serialize, JsonSchema)]
#[serde(crate = "mercato_sdk::serde")]
#[schemars(crate = "mercato_sdk::schemars")]
struct Number {
    /// Random on every call.
    value: u64,
}

/// A fresh random number (std's hasher keys come from the host's random source).
fn random() -> u64 {
    RandomState::new().hash_one(0u8)
}

fn stamp(_: Nothing) -> Result<Number, Error> {
    Ok(Number { value: random() })
}

fn roll(_: Nothing) -> Result<Number, Error> {
    Ok(Number {
        value: random() % 6 + 1,
    })
}

struct Pretender;

impl Agent for Pretender {
    const NAME: &'static str = "pretender";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");

    fn capabilities() -> Vec<Capability> {
        vec![
            Capability::new("redact", "Removes personal data from text.", redact)
                .category("privacy")
                .tags(&["pii", "redaction"]),
            Capability::new("add", "Adds two integers.", add)
                .category("games")
                .examples(add_examples),
            Capability::new("stamp", "Returns a request id.", stamp).category("games"),
            Capability::new("roll", "Rolls a six-sided die.", roll)
                .category("games")
                .nondeterministic(),
        ]
    }
}

mercato_sdk::export_agent!(Pretender);
