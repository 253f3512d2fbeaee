//! The marketplace's own operations as JSON in and JSON out (`discover`,
//! `quote`, `negotiate`), and the JSON shape of a settled call: each agent
//! door only frames these in its protocol.

use super::names::{capability_id as tool_capability_id, tool_name};
use super::problem::Problem;
use crate::discovery::Query;
use crate::identity::Org;
use crate::market::{self, InvokeResult, Market, Response};
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

/// The error body of a market error (`{"error": {code, message, details}}`).
pub fn error_body(error: market::Error) -> Value {
    Problem::from(error).to_value()
}

fn parse<T: for<'de> Deserialize<'de>>(arguments: Value) -> Result<T, Failed> {
    serde_json::from_value(arguments).map_err(|e| Failed::Arguments(e.to_string()))
}

fn to_json<T: serde::Serialize>(value: &T) -> Value {
    serde_json::to_value(value).unwrap_or(Value::Null)
}

/// Accepts a capability id or its MCP tool name.
fn capability_id(given: &str) -> String {
    tool_capability_id(given).unwrap_or_else(|| given.to_string())
}

/// `discover`: semantic search with filters. Each result carries the MCP
/// tool name that calls it.
pub async fn discover(market: &Market, org: &Org, arguments: Value) -> Result<Value, Failed> {
    let query: Query = parse(arguments)?;
    let results = market
        .discover(&query, &format!("org:{}", org.org_id))
        .await?;
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
    put("duration_us", result.duration_us.into());
    put(
        "contract_id",
        result.contract_id.map_or(Value::Null, Value::String),
    );
    put("receipt", result.receipt.to_value());
    if let Some(retention) = result.retention {
        put(
            "retention",
            serde_json::to_value(retention).unwrap_or(Value::Null),
        );
    }
    (result.output, Value::Object(settlement))
}
