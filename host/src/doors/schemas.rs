//! JSON Schemas of the marketplace tools' arguments (`discover`, `quote`,
//! `negotiate`), as the MCP door lists them and the A2A door accepts them.

use serde_json::{Value, json};

fn proposal() -> Value {
    json!({
        "type": "object",
        "description": "Proposed terms; the provider's policy accepts, counters or rejects them.",
        "properties": {
            "max_price_micros": {"type": "integer", "minimum": 0, "maximum": 9007199254740991u64, "description": "The most one call may cost (cost plus fee), micros (10^-6 of a unit)."},
            "latency_ms_max": {"type": "integer", "minimum": 1, "maximum": 3_600_000, "description": "Latency SLA, ms; a slower call is not charged."},
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
