//! What is indexed: one capability's text and its filterable facts.

use super::Retention;
use super::bm25::WeightedTerms;
use super::text;

/// What a capability offers, for filtering.
#[derive(Debug, Clone, PartialEq)]
pub struct Facts {
    /// Expected cost of a call (base price plus median observed fuel), micros.
    pub expected_cost_micros: u64,
    /// Promised latency.
    pub latency_ms_max: u64,
    /// Promised availability (0..=1).
    pub uptime: f64,
    /// Data retention.
    pub retention: Retention,
    /// Encryption promised.
    pub encryption: bool,
    /// Jurisdictions (upper-case codes).
    pub jurisdictions: Vec<String>,
    /// Reputation (1..=5), when there is one.
    pub rating: Option<f64>,
}

/// One capability to index.
#[derive(Debug, Clone)]
pub struct Entry {
    /// The unpinned capability id.
    pub key: String,
    /// The agent offering it: capabilities of one agent share evidence in
    /// the ranking.
    pub agent: String,
    /// Capability name.
    pub name: String,
    /// Description.
    pub description: String,
    /// Category.
    pub category: String,
    /// Tags.
    pub tags: Vec<String>,
    /// Names (and descriptions) of the input schema's fields.
    pub fields: Vec<String>,
    /// Filterable facts.
    pub facts: Facts,
}

impl Entry {
    /// The text an embedder sees.
    pub fn text(&self) -> String {
        // Identifiers as words (`getOrderById` → `get order by id`): a
        // sentence model's vocabulary knows the words, not the joined name.
        let spaced = |s: &str| text::words(s).join(" ");
        format!(
            "{}. {}. {}. {}. {}. {}",
            spaced(&self.name),
            self.category,
            self.tags
                .iter()
                .map(|t| spaced(t))
                .collect::<Vec<_>>()
                .join(", "),
            self.description,
            self.fields
                .iter()
                .map(|f| spaced(f))
                .collect::<Vec<_>>()
                .join(", "),
            spaced(&self.key)
        )
    }

    pub(super) fn weighted_terms(&self) -> WeightedTerms {
        let mut terms = Vec::new();
        let mut add = |text: &str, weight: f32| {
            let words = text::terms(text);
            let pairs: Vec<String> = text::pairs(&words).collect();
            terms.extend(words.into_iter().map(|t| (t, weight)));
            terms.extend(pairs.into_iter().map(|t| (t, weight * text::PAIR_WEIGHT)));
        };
        add(&self.name, 3.0);
        add(&self.key, 1.0);
        add(&self.category, 1.5);
        for tag in &self.tags {
            add(tag, 2.0);
        }
        add(&self.description, 1.0);
        for field in &self.fields {
            add(field, 0.5);
        }
        terms
    }
}

/// An entry as the index keeps it: its weighted terms and facts (its
/// vector lives in the graph).
#[derive(Clone)]
pub(super) struct Slot {
    pub(super) key: String,
    pub(super) agent: String,
    pub(super) terms: WeightedTerms,
    pub(super) category: String,
    pub(super) tags: Vec<String>,
    pub(super) facts: Facts,
}

impl Slot {
    pub(super) fn new(entry: Entry) -> Slot {
        Slot {
            terms: entry.weighted_terms(),
            key: entry.key,
            agent: entry.agent,
            category: entry.category,
            tags: entry.tags.iter().map(|t| t.to_lowercase()).collect(),
            facts: entry.facts,
        }
    }
}
