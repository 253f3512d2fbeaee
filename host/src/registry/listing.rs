//! An agent as an MCP registry lists a server: the `server.json` shape
//! (schema 2025-12-11) of one listed version, a remote streamable-HTTP
//! server reachable at the agent's own MCP endpoint, wrapped as the
//! registry API's server response; and the check that a listing is valid
//! against `host/schemas/mcp-server.schema.json` (written from the
//! specification), made at publish time and by the tests.

use super::VersionRecord;
use serde_json::{Value, json};
use std::sync::LazyLock;

/// The `$schema` a listing names.
pub const SERVER_SCHEMA_URL: &str =
    "https://static.modelcontextprotocol.io/schemas/2025-12-11/server.schema.json";

/// Characters of a description in a listing (the specification's limit).
const DESCRIPTION_CHARS_MAX: usize = 100;

static SCHEMA: LazyLock<jsonschema::Validator> = LazyLock::new(|| {
    let schema: Value = serde_json::from_str(include_str!("../../schemas/mcp-server.schema.json"))
        .expect("the server.json schema is JSON");
    jsonschema::validator_for(&schema).expect("the server.json schema compiles")
});

/// The registry namespace for a marketplace reached at `public_url`: its
/// host's labels reversed (`market.example` → `example.market`), or
/// `local.mercato` without one or for an address.
pub fn namespace(public_url: Option<&str>) -> String {
    let host = public_url
        .and_then(|u| url::Url::parse(u).ok())
        .and_then(|u| match u.host() {
            Some(url::Host::Domain(domain)) if domain.contains('.') => Some(domain.to_string()),
            _ => None,
        });
    match host {
        Some(domain) => domain.rsplit('.').collect::<Vec<_>>().join("."),
        None => "local.mercato".into(),
    }
}

/// The registry name of `agent` under `namespace`.
pub fn server_name(namespace: &str, agent: &str) -> String {
    format!("{namespace}/{agent}")
}

/// The agent whose registry name is `name`, if it is one of ours.
pub fn agent_of<'a>(namespace: &str, name: &'a str) -> Option<&'a str> {
    name.strip_prefix(namespace)?.strip_prefix('/')
}

fn description(record: &VersionRecord) -> String {
    let text = record
        .capabilities
        .first()
        .map(|c| c.description.trim())
        .filter(|d| !d.is_empty())
        .map(str::to_string)
        .unwrap_or_else(|| format!("Mercato agent {}", record.agent));
    if text.chars().count() <= DESCRIPTION_CHARS_MAX {
        return text;
    }
    let mut cut: String = text.chars().take(DESCRIPTION_CHARS_MAX - 1).collect();
    cut = cut.trim_end().to_string();
    cut.push('…');
    cut
}

/// One version of an agent as the registry API answers it: `server`
/// (server.json) and the registry's `_meta`. `base` is where the
/// marketplace is reached; `latest` whether this is the agent's newest
/// listed version.
pub fn server_response(record: &VersionRecord, namespace: &str, base: &str, latest: bool) -> Value {
    let capabilities: Vec<String> = record
        .capabilities
        .iter()
        .map(|c| format!("{}.{}@{}", record.agent, c.name, record.version))
        .collect();
    let published = crate::clock::rfc3339_seconds(record.published_at_ms);
    json!({
        "server": {
            "$schema": SERVER_SCHEMA_URL,
            "name": server_name(namespace, &record.agent),
            "title": record.agent,
            "description": description(record),
            "version": record.version,
            "websiteUrl": format!("{base}/capabilities/{}", capabilities.first().map(String::as_str).unwrap_or("")),
            "remotes": [{
                "type": "streamable-http",
                "url": format!("{base}/mcp/agents/{}", record.agent),
            }],
            "_meta": {
                "io.modelcontextprotocol.registry/publisher-provided": {
                    "mercato": {
                        "capabilities": capabilities,
                        "provider_org_id": record.owner_org_id,
                        "component_sha256": record.component_sha256,
                        "authorization": "OAuth 2.1 (MCP authorization) or an API key as a bearer token",
                    }
                }
            }
        },
        "_meta": {
            "io.modelcontextprotocol.registry/official": {
                "status": "active",
                "publishedAt": published,
                "updatedAt": published,
                "isLatest": latest,
            }
        }
    })
}

/// Every way a server response breaks the specification's schema.
pub fn listing_violations(response: &Value) -> Vec<String> {
    SCHEMA
        .iter_errors(response)
        .take(16)
        .map(|e| format!("{}: {e}", e.instance_path()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(agent: &str, description: &str) -> VersionRecord {
        serde_json::from_value(json!({
            "agent": agent, "version": "1.2.3", "owner_org_id": "org_1",
            "component_sha256": "ab", "component_bytes": 1, "published_at_ms": 1_764_892_800_000u64,
            "capabilities": [{"name": "convert", "description": description,
                "category": "utilities", "tags": [],
                "input_schema": {}, "output_schema": {}, "examples": [],
                "terms": {"price_micros": 0, "micros_per_mfuel": 0, "latency_ms_max": 100,
                    "uptime": 0.99, "rate_limit_per_minute": 60,
                    "data_policy": {"retention": "none", "encryption": true, "jurisdictions": ["EU"]}}}],
            "attested": true, "manifest_sha256": "cd"
        }))
        .expect("a version record")
    }

    #[test]
    fn a_listing_is_valid_server_json_and_cut_to_the_limits() {
        let long = "word ".repeat(60);
        let response = server_response(
            &record("unit-converter", &long),
            "example.market",
            "https://market.example",
            true,
        );
        assert_eq!(listing_violations(&response), Vec::<String>::new());
        let server = &response["server"];
        assert_eq!(server["name"], "example.market/unit-converter");
        assert_eq!(server["description"].as_str().unwrap().chars().count(), 100);
        assert_eq!(
            server["remotes"][0]["url"],
            "https://market.example/mcp/agents/unit-converter"
        );
        assert_eq!(
            response["_meta"]["io.modelcontextprotocol.registry/official"]["publishedAt"],
            "2025-12-05T00:00:00Z"
        );
    }

    #[test]
    fn the_schema_refuses_what_the_specification_refuses() {
        let good = server_response(&record("a-b", "d"), "local.mercato", "http://h", true);
        for (pointer, bad) in [
            ("/server/name", json!("no-slash")),
            ("/server/name", json!("a/b/c")),
            ("/server/description", json!("")),
            ("/server/description", json!("x".repeat(101))),
            ("/server/version", json!("latest")),
            ("/server/remotes/0/type", json!("stdio")),
            ("/server/remotes/0/url", json!("ftp://h/mcp")),
        ] {
            let mut response = good.clone();
            *response.pointer_mut(pointer).unwrap() = bad.clone();
            assert!(
                !listing_violations(&response).is_empty(),
                "{pointer} = {bad} was accepted"
            );
        }
    }

    #[test]
    fn namespaces_are_reversed_domains() {
        assert_eq!(namespace(Some("https://market.example/")), "example.market");
        assert_eq!(namespace(Some("http://127.0.0.1:8080")), "local.mercato");
        assert_eq!(namespace(None), "local.mercato");
        assert_eq!(agent_of("local.mercato", "local.mercato/x"), Some("x"));
        assert_eq!(agent_of("local.mercato", "other/x"), None);
    }
}
