//! What the agent front doors (MCP, A2A) share: the marketplace's own
//! operations as JSON in and JSON out (`discover`, `quote`, `negotiate`),
//! their input schemas, and the JSON shape of a settled call. Each front door
//! only frames these in its protocol.
//!
//! Does not know about: HTTP, JSON-RPC, or either protocol's types.

use crate::api::ApiError;
use crate::discovery::Query;
use crate::identity::Org;
use crate::market::{self, InvokeResult, Market, Response};
use crate::mcp::tool_name;
use crate::negotiation::Proposal;
use serde::Deserialize;
use serde_json::{Value, json};

/// An operation's failure, as an agent front door reports it.
#[derive(Debug)]
pub enum Failed {
    /// The arguments are not what the operation takes (a protocol error:
    /// invalid params).
    Arguments(String),
    /// The operation ran and was refused or failed: the REST error body.
    Market(market::Error),
    /// The operation ran (now, or before for the same idempotency key) and
    /// was refused or failed: its REST error body, already made.
    Answered(Value),
}

impl From<market::Error> for Failed {
    fn from(error: market::Error) -> Self {
        Failed::Market(error)
    }
}

/// The REST error body of a market error (`{"error": {code, message, details}}`).
pub fn error_body(error: market::Error) -> Value {
    serde_json::to_value(ApiError::from(error).body()).unwrap_or_else(|_| json!({}))
}

fn parse<T: for<'de> Deserialize<'de>>(arguments: Value) -> Result<T, Failed> {
    serde_json::from_value(arguments).map_err(|e| Failed::Arguments(e.to_string()))
}

fn to_json<T: serde::Serialize>(value: &T) -> Value {
    serde_json::to_value(value).unwrap_or(Value::Null)
}

/// Accepts a capability id or its MCP tool name.
fn capability_id(given: &str) -> String {
    crate::mcp::capability_id(given).unwrap_or_else(|| given.to_string())
}

/// `discover`: semantic search with filters. Each result carries the MCP
/// tool name that calls it.
pub async fn discover(market: &Market, arguments: Value) -> Result<Value, Failed> {
    let query: Query = parse(arguments)?;
    let results = market.discover(&query).await?;
    let results: Vec<Value> = results
        .iter()
        .map(|found| {
            let c = &found.capability;
            json!({
                "capability_id": c.id,
                "tool": tool_name(&c.id),
                "pinned_id": c.pinned_id,
                "description": c.description,
                "category": c.category,
                "terms": c.terms,
                "rating": c.reputation.rating,
                "score": found.score,
                "matched_terms": found.explanation.matched_terms,
            })
        })
        .collect();
    Ok(json!({ "results": results, "embedder": market.embedder_name() }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct QuoteArgs {
    capability_id: String,
}

/// `quote`: the expected cost of a call and a suggested price cap.
pub async fn quote(market: &Market, arguments: Value) -> Result<Value, Failed> {
    let args: QuoteArgs = parse(arguments)?;
    Ok(to_json(&market.quote(&capability_id(&args.capability_id))?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NegotiateArgs {
    capability_id: Option<String>,
    terms: Option<Proposal>,
    negotiation_id: Option<String>,
    answer: Option<Response>,
}

/// `negotiate`: opens a negotiation (`capability_id` + `terms`) or answers
/// a counter-offer (`negotiation_id` + `answer`). An accepted negotiation
/// carries the signed contract; its id goes in a call's `contract_id`.
pub async fn negotiate(market: &Market, org: &Org, arguments: Value) -> Result<Value, Failed> {
    let args: NegotiateArgs = parse(arguments)?;
    let (negotiation, contract) = match args {
        NegotiateArgs {
            capability_id: Some(id),
            terms: Some(terms),
            negotiation_id: None,
            answer: None,
        } => market.negotiate(org, &capability_id(&id), terms).await?,
        NegotiateArgs {
            capability_id: None,
            terms: None,
            negotiation_id: Some(id),
            answer: Some(answer),
        } => market.respond(org, &id, answer).await?,
        _ => {
            return Err(Failed::Arguments(
                "give either `capability_id` and `terms` (to open) or `negotiation_id` and `answer` (to answer a counter-offer)".into(),
            ));
        }
    };
    Ok(json!({ "negotiation": negotiation, "contract": contract }))
}

/// A call's output and its settlement facts (transaction, fuel, cost,
/// fee, charge, contract, signed receipt), for a front door's metadata.
pub fn split(result: InvokeResult) -> (Value, Value) {
    let mut settlement = serde_json::Map::with_capacity(10);
    let mut put = |key: &str, value: Value| {
        settlement.insert(key.to_string(), value);
    };
    put("transaction_id", Value::String(result.transaction_id));
    put("capability_id", Value::String(result.capability_id));
    put("fuel_used", result.fuel_used.into());
    put("fuel_limit", result.fuel_limit.into());
    put("cost_micros", result.cost_micros.into());
    put("fee_micros", result.fee_micros.into());
    put("charged_micros", result.charged_micros.into());
    put("duration_ms", result.duration_ms.into());
    put(
        "contract_id",
        result.contract_id.map_or(Value::Null, Value::String),
    );
    put("receipt", result.receipt);
    (result.output, Value::Object(settlement))
}

/// Whether an error is the consumer's (a refusal before or instead of the
/// work: price, funds, budget, limits, approval, contract) rather than the
/// provider's fault.
pub fn is_refusal(code: &str) -> bool {
    matches!(
        code,
        "price_too_low"
            | "insufficient_funds"
            | "budget_exceeded"
            | "budget_exhausted"
            | "approval_required"
            | "approval_not_granted"
            | "approval_mismatch"
            | "rate_limited"
            | "contract_invalid"
            | "not_found"
            | "overloaded"
            | "idempotency_conflict"
            | "idempotency_in_progress"
    )
}

/// JSON Schemas of the marketplace tools' arguments.
pub mod schemas {
    use serde_json::{Value, json};

    fn proposal() -> Value {
        json!({
            "type": "object",
            "description": "Proposed terms; the provider's policy accepts, counters or rejects them.",
            "properties": {
                "max_price_micros": {"type": "integer", "minimum": 0, "description": "The most one call may cost (cost plus fee), micros (10^-6 of a unit)."},
                "latency_ms_max": {"type": "integer", "minimum": 1, "description": "Latency SLA, ms; a slower call is not charged."},
                "uptime_min": {"type": "number", "minimum": 0, "maximum": 1},
                "retention": {"type": "string", "enum": ["none", "24h", "30d"], "description": "The most retention accepted."},
                "encryption": {"type": "boolean"},
                "jurisdiction": {"type": "string", "description": "Where data must be processed, e.g. EU."},
                "rate_limit_per_minute": {"type": "integer", "minimum": 0},
                "validity_ms": {"type": "integer", "minimum": 1, "description": "How long the contract should hold."}
            },
            "required": ["max_price_micros", "validity_ms"],
            "additionalProperties": false
        })
    }

    /// `discover`'s arguments (the REST `/v1/discover` body).
    pub fn discover() -> Value {
        json!({
            "type": "object",
            "properties": {
                "need": {"type": "string", "description": "What you need, in plain language."},
                "category": {"type": "string"},
                "tags": {"type": "array", "items": {"type": "string"}},
                "max_price_micros": {"type": "integer", "minimum": 0, "description": "Expected cost at most this, micros."},
                "latency_ms_max": {"type": "integer", "minimum": 0},
                "uptime_min": {"type": "number", "minimum": 0, "maximum": 1},
                "data_policy": {
                    "type": "object",
                    "properties": {
                        "retention": {"type": "string", "enum": ["none", "24h", "30d"]},
                        "encryption": {"type": "boolean"},
                        "jurisdiction": {"type": "string"}
                    },
                    "additionalProperties": false
                },
                "rating_min": {"type": "number", "minimum": 1, "maximum": 5},
                "limit": {"type": "integer", "minimum": 1, "maximum": 100}
            },
            "required": ["need"],
            "additionalProperties": false
        })
    }

    /// `quote`'s arguments.
    pub fn quote() -> Value {
        json!({
            "type": "object",
            "properties": {
                "capability_id": {"type": "string", "description": "A capability id (agent.capability) or its tool name."}
            },
            "required": ["capability_id"],
            "additionalProperties": false
        })
    }

    /// `negotiate`'s arguments.
    pub fn negotiate() -> Value {
        json!({
            "type": "object",
            "properties": {
                "capability_id": {"type": "string", "description": "To open: a capability id or its tool name."},
                "terms": proposal(),
                "negotiation_id": {"type": "string", "description": "To answer a counter-offer."},
                "answer": {
                    "type": "object",
                    "description": "{\"action\": \"accept\"}, {\"action\": \"reject\"}, or {\"action\": \"propose\", \"terms\": {...}}.",
                    "properties": {
                        "action": {"type": "string", "enum": ["accept", "propose", "reject"]},
                        "terms": proposal()
                    },
                    "required": ["action"]
                }
            },
            "additionalProperties": false
        })
    }
}
