//! Agent cards: the marketplace's (its skills are the listed capabilities)
//! and one per capability.

use super::SKILLS_MAX;
use super::agent::A2a;
use crate::market::CapabilityView;
use serde_json::{Map, Value, json};

impl A2a {
    /// The marketplace's agent card; `base` is the URL clients reach us at.
    pub fn card(&self, base: &str) -> Value {
        let mut views = self.market.capabilities();
        views.sort_by(|a, b| a.id.cmp(&b.id));
        let total = views.len();
        views.truncate(SKILLS_MAX);
        let mut skills: Vec<Value> = views.iter().map(skill).collect();
        // The marketplace's own skill, listed or not: finding the others.
        skills.push(json!({
            "id": "discover",
            "name": "Discover capabilities",
            "description": "Send what you need in plain text (or a data part {\"need\": …}); the answer ranks the listed capabilities for it, with their prices.",
            "tags": ["discovery", "marketplace"],
            "examples": ["hide e-mail addresses in a support ticket"],
            "inputModes": ["text/plain", "application/json"],
            "outputModes": ["application/json"],
        }));
        let mut description = "A marketplace of agent capabilities, each sandboxed and metered: send a data part \
             {\"capability_id\", \"input\", \"max_price_micros\"} to buy a call, {\"action\": \"negotiate\", …} for terms, \
             or plain text to discover capabilities for a need. Calls are charged to the API key's organisation."
            .to_string();
        if total > SKILLS_MAX {
            description.push_str(&format!(
                " {SKILLS_MAX} of {total} capabilities are listed as skills; discover finds the rest."
            ));
        }
        card(
            "Mercato marketplace",
            &description,
            &format!("{base}/a2a"),
            base,
            skills,
        )
    }

    /// The card of one capability as an agent of its own, at
    /// `/a2a/agents/{id}`; `None` if it is not listed.
    pub fn capability_card(&self, base: &str, id: &str) -> Option<Value> {
        let view = self.market.capability(id).ok()?;
        let description = format!(
            "{} Send a data part {{\"input\": …, \"max_price_micros\"?: …}}; calls are charged to the API key's organisation.",
            view.description
        );
        Some(card(
            &view.id,
            &description,
            &format!("{base}/a2a/agents/{}", view.id),
            base,
            vec![skill(&view)],
        ))
    }
}

fn skill(view: &CapabilityView) -> Value {
    let mut tags = vec![view.category.clone()];
    tags.extend(view.tags.iter().cloned());
    json!({
        "id": view.id,
        "name": format!("{} · {}", view.agent, view.name),
        "description": format!(
            "{} Price {} micros per call + {} per million fuel; latency ≤ {} ms.",
            view.description, view.terms.price_micros, view.terms.micros_per_mfuel, view.terms.latency_ms_max
        ),
        "tags": tags,
        "examples": view.examples.iter().take(3).map(|e| json!({"capability_id": view.id, "input": e.input}).to_string()).collect::<Vec<_>>(),
        "inputModes": ["application/json"],
        "outputModes": ["application/json"],
    })
}

fn card(name: &str, description: &str, url: &str, base: &str, skills: Vec<Value>) -> Value {
    let mut card = Map::new();
    card.insert("name".into(), json!(name));
    card.insert("description".into(), json!(description));
    card.insert(
        "supportedInterfaces".into(),
        json!([
            {"url": url, "protocolBinding": "JSONRPC", "protocolVersion": "1.0"},
            {"url": url, "protocolBinding": "JSONRPC", "protocolVersion": "0.3"},
        ]),
    );
    card.insert(
        "provider".into(),
        json!({"organization": "Mercato", "url": base}),
    );
    card.insert("version".into(), json!(env!("CARGO_PKG_VERSION")));
    card.insert(
        "documentationUrl".into(),
        json!(format!("{base}/openapi.json")),
    );
    card.insert(
        "capabilities".into(),
        json!({"streaming": true, "pushNotifications": false, "extendedAgentCard": false}),
    );
    card.insert(
        "securitySchemes".into(),
        json!({"bearer": {"httpAuthSecurityScheme": {
            "scheme": "Bearer",
            "bearerFormat": "Mercato API key (mk_…)",
            "description": "An organisation's API key (POST /v1/orgs); calls are charged to that organisation.",
        }}}),
    );
    card.insert(
        "securityRequirements".into(),
        json!([{"schemes": {"bearer": {"list": []}}}]),
    );
    card.insert(
        "defaultInputModes".into(),
        json!(["application/json", "text/plain"]),
    );
    card.insert("defaultOutputModes".into(), json!(["application/json"]));
    card.insert("skills".into(), Value::Array(skills));
    // For v0.3 clients, which read these instead of `supportedInterfaces`.
    card.insert("url".into(), json!(url));
    card.insert("preferredTransport".into(), json!("JSONRPC"));
    card.insert("protocolVersion".into(), json!("0.3.0"));
    Value::Object(card)
}
