//! The generic MCP registry read API (`/v0/servers`, also at `/v0.1/`):
//! every listed agent as a remote streamable-HTTP server in the
//! `server.json` shape, reachable at its own MCP endpoint
//! (`/mcp/agents/{agent}`), paged by an opaque cursor. Public, like the
//! catalog; errors are `{"error": "…"}` as the registry API answers them.

use crate::market::Market;
use crate::registry::listing;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};
use std::sync::Arc;

/// Entries on a page when the request names no `limit`.
const LIMIT_DEFAULT: usize = 30;
/// The most entries on a page.
const LIMIT_MAX: usize = 100;

/// The registry routes.
pub fn routes() -> Router<Arc<Market>> {
    let mut router = Router::new();
    for prefix in ["/v0", "/v0.1"] {
        router = router
            .route(&format!("{prefix}/servers"), get(list))
            .route(&format!("{prefix}/servers/{{name}}"), get(latest))
            .route(
                &format!("{prefix}/servers/{{name}}/versions"),
                get(versions),
            )
            .route(
                &format!("{prefix}/servers/{{name}}/versions/{{version}}"),
                get(version),
            );
    }
    router
}

fn answer(status: StatusCode, body: Value) -> Response {
    let mut response = (status, Json(body)).into_response();
    response.headers_mut().insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    response
}

fn refused(status: StatusCode, message: impl Into<String>) -> Response {
    answer(status, json!({ "error": message.into() }))
}

fn namespace(market: &Market) -> String {
    listing::namespace(market.config().public_url.as_deref())
}

fn response_of(market: &Market, headers: &HeaderMap, entry: &crate::market::ListingEntry) -> Value {
    let base = super::oauth::base_url(market, headers);
    listing::server_response(&entry.0.record, &namespace(market), &base, entry.1)
}

#[derive(Debug, Default, serde::Deserialize)]
pub struct ListQuery {
    cursor: Option<String>,
    limit: Option<String>,
    search: Option<String>,
    version: Option<String>,
    updated_since: Option<String>,
}

fn cursor_of(agent: &str, version: &str) -> String {
    URL_SAFE_NO_PAD.encode(format!("{agent}@{version}"))
}

fn after(cursor: &str) -> Option<(String, String)> {
    let decoded = String::from_utf8(URL_SAFE_NO_PAD.decode(cursor).ok()?).ok()?;
    let (agent, version) = decoded.rsplit_once('@')?;
    semver::Version::parse(version).ok()?;
    Some((agent.to_string(), version.to_string()))
}

/// `GET /v0/servers`: listed versions in name and version order.
async fn list(
    State(market): State<Arc<Market>>,
    headers: HeaderMap,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Ok(Query(query)) = query else {
        return refused(StatusCode::BAD_REQUEST, "the query string does not parse");
    };
    let limit = match query.limit.as_deref().map(str::parse::<usize>) {
        None => LIMIT_DEFAULT,
        Some(Ok(n)) if (1..=LIMIT_MAX).contains(&n) => n,
        Some(_) => {
            return refused(
                StatusCode::BAD_REQUEST,
                format!("limit is a whole number from 1 to {LIMIT_MAX}"),
            );
        }
    };
    if query.updated_since.is_some() {
        return refused(
            StatusCode::BAD_REQUEST,
            "updated_since is not offered here: listings never change once published; page through them",
        );
    }
    if query.search.as_ref().is_some_and(|s| s.len() > 200) {
        return refused(StatusCode::BAD_REQUEST, "search is at most 200 bytes");
    }
    let cursor = match query.cursor.as_deref() {
        None | Some("") => None,
        Some(c) => match after(c) {
            Some(after) => Some(after),
            None => {
                return refused(
                    StatusCode::BAD_REQUEST,
                    "cursor is not one this registry gave; start again without it",
                );
            }
        },
    };
    let exact = query.version.as_deref().filter(|v| *v != "latest");
    let latest_only = query.version.as_deref() == Some("latest");
    let (mut entries, mut more) = market.registry_entries(
        query.search.as_deref(),
        latest_only,
        cursor.as_ref().map(|(a, v)| (a.as_str(), v.as_str())),
        if exact.is_some() {
            usize::MAX / 2
        } else {
            limit
        },
    );
    if let Some(exact) = exact {
        entries.retain(|(l, _)| l.record.version == exact);
        more = entries.len() > limit;
        entries.truncate(limit);
    }
    let next = more
        .then(|| entries.last())
        .flatten()
        .map(|(l, _)| cursor_of(&l.record.agent, &l.record.version));
    let servers: Vec<Value> = entries
        .iter()
        .map(|e| response_of(&market, &headers, e))
        .collect();
    let mut metadata = json!({ "count": servers.len() });
    if let Some(next) = next {
        metadata["nextCursor"] = json!(next);
    }
    answer(
        StatusCode::OK,
        json!({ "servers": servers, "metadata": metadata }),
    )
}

fn agent_named<'a>(market: &Market, name: &'a str) -> Option<&'a str> {
    listing::agent_of(&namespace(market), name)
}

/// `GET /v0/servers/{name}/versions`: every listed version, newest first.
async fn versions(
    State(market): State<Arc<Market>>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Response {
    let found = agent_named(&market, &name).map(|agent| market.registry_versions(agent));
    match found {
        Some(versions) if !versions.is_empty() => {
            let servers: Vec<Value> = versions
                .iter()
                .map(|e| response_of(&market, &headers, e))
                .collect();
            answer(
                StatusCode::OK,
                json!({ "servers": servers, "metadata": { "count": servers.len() } }),
            )
        }
        _ => refused(StatusCode::NOT_FOUND, "Server not found"),
    }
}

/// `GET /v0/servers/{name}`: the newest listed version.
async fn latest(
    State(market): State<Arc<Market>>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Response {
    one(&market, &headers, &name, "latest")
}

/// `GET /v0/servers/{name}/versions/{version}` (`latest` for the newest).
async fn version(
    State(market): State<Arc<Market>>,
    headers: HeaderMap,
    Path((name, version)): Path<(String, String)>,
) -> Response {
    one(&market, &headers, &name, &version)
}

fn one(market: &Market, headers: &HeaderMap, name: &str, version: &str) -> Response {
    let Some(agent) = agent_named(market, name) else {
        return refused(StatusCode::NOT_FOUND, "Server not found");
    };
    let versions = market.registry_versions(agent);
    let found = versions.iter().find(|(l, latest)| {
        if version == "latest" {
            *latest
        } else {
            l.record.version == version
        }
    });
    match found {
        Some(entry) => answer(StatusCode::OK, response_of(market, headers, entry)),
        None if versions.is_empty() => refused(StatusCode::NOT_FOUND, "Server not found"),
        None => refused(StatusCode::NOT_FOUND, "Server version not found"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_refuse_forgeries() {
        let c = cursor_of("unit-converter", "1.2.3");
        assert_eq!(after(&c), Some(("unit-converter".into(), "1.2.3".into())));
        assert_eq!(after("not base64!"), None);
        assert_eq!(after(&URL_SAFE_NO_PAD.encode("x@notaversion")), None);
    }
}
