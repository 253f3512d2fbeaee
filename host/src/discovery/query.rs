//! What a search is asked (a need and its constraints) and what it answers.

use super::Retention;
use serde::de::{DeserializeOwned, Error as _};
use serde::{Deserialize, Deserializer, Serialize};
use utoipa::ToSchema;

/// Most results a query may ask for.
pub const LIMIT_MAX: usize = 100;

/// Data-policy constraints.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DataPolicyFilter {
    /// Longest acceptable retention.
    #[serde(default)]
    pub retention: Option<Retention>,
    /// Require encryption.
    #[serde(default)]
    pub encryption: Option<bool>,
    /// A jurisdiction the provider must process in (for example `EU`).
    #[serde(default)]
    pub jurisdiction: Option<String>,
}

/// A need and its constraints.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Query {
    /// What the consumer needs, in plain language.
    #[schema(min_length = 1, max_length = 4096, pattern = "\\S")]
    pub need: String,
    /// Only this category.
    #[serde(default)]
    pub category: Option<String>,
    /// Only capabilities carrying all these tags.
    #[serde(default)]
    pub tags: Option<Vec<String>>,
    /// Expected cost at most this, micros.
    #[serde(default)]
    #[schema(maximum = 9_007_199_254_740_991_f64)]
    pub max_price_micros: Option<u64>,
    /// Promised latency at most this, ms (at most an hour).
    #[serde(default)]
    #[schema(maximum = 3600000)]
    pub latency_ms_max: Option<u64>,
    /// Promised availability at least this.
    #[serde(default)]
    #[schema(minimum = 0.0, maximum = 1.0)]
    pub uptime_min: Option<f64>,
    /// Data-policy constraints.
    #[serde(default, deserialize_with = "object_or_null")]
    pub data_policy: Option<DataPolicyFilter>,
    /// Rating at least this (unrated capabilities fail it).
    #[serde(default)]
    #[schema(minimum = 0.0, maximum = 5.0)]
    pub rating_min: Option<f64>,
    /// Results wanted (default 10, at most 100).
    #[serde(default)]
    #[schema(minimum = 1, maximum = 100)]
    pub limit: Option<usize>,
}

/// Why a result ranks where it does.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct Explanation {
    /// Query terms found in the capability's text (stemmed).
    pub matched_terms: Vec<String>,
    /// Cosine similarity of the embeddings: the need's and the capability's,
    /// or, for a need of several sentences, the best of the whole need's and
    /// each sentence's.
    pub dense_similarity: f32,
    /// Rank among dense candidates (1-based), if among them.
    pub dense_rank: Option<usize>,
    /// BM25 score.
    pub lexical_score: f32,
    /// Rank among lexical candidates (1-based), if among them.
    pub lexical_rank: Option<usize>,
    /// The filters this result passed.
    pub filters_passed: Vec<String>,
    /// The factor the capability's rating applied to its score (1 when unrated).
    #[serde(default = "no_boost")]
    pub rating_boost: f32,
    /// What its agent's BM25 score (over all the agent's capabilities)
    /// added to the lexical score.
    #[serde(default)]
    pub agent_score: f32,
}

fn no_boost() -> f32 {
    1.0
}

/// Checks a query's need and limit.
pub fn check_need(query: &Query) -> Result<(), InvalidQuery> {
    let limit = query.limit.unwrap_or(10);
    if limit == 0 || limit > LIMIT_MAX {
        return Err(InvalidQuery(format!("limit must be 1 to {LIMIT_MAX}")));
    }
    if crate::text::is_blank(&query.need) || crate::text::chars(&query.need) > 4_096 {
        return Err(InvalidQuery(
            "need must be 1 to 4096 characters, not all blank".into(),
        ));
    }
    Ok(())
}

/// One ranked result.
#[derive(Debug, Clone)]
pub struct Hit {
    /// The unpinned capability id.
    pub key: String,
    /// Fused score (higher is better).
    pub score: f32,
    /// Why.
    pub explanation: Explanation,
}

/// Which rankings a search fuses (the API always uses [`Mode::Fused`]; the
/// others exist to measure each part alone).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Dense and lexical, each scaled to [0, 1] and summed with the
    /// embedder's weight.
    Fused,
    /// BM25 only.
    Lexical,
    /// Embedding similarity only.
    Dense,
}

/// A query that cannot run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidQuery(pub String);

/// A nested object field, or null: serde would also read a JSON array into
/// a struct field by field (`[]` as all defaults), which the schema does not
/// allow.
pub fn object_or_null<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: DeserializeOwned,
{
    match Option::<serde_json::Value>::deserialize(deserializer)? {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(value @ serde_json::Value::Object(_)) => serde_json::from_value(value)
            .map(Some)
            .map_err(D::Error::custom),
        Some(_) => Err(D::Error::custom("expected an object")),
    }
}

/// A nested object field (never an array, see [`object_or_null`]).
pub fn object<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: DeserializeOwned,
{
    match serde_json::Value::deserialize(deserializer)? {
        value @ serde_json::Value::Object(_) => {
            serde_json::from_value(value).map_err(D::Error::custom)
        }
        _ => Err(D::Error::custom("expected an object")),
    }
}
