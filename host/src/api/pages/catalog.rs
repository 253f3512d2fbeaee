//! The catalog: a search box that runs discovery with its filters, or,
//! without a need, every listed capability; ten results a page.

use super::view::{self, amount};
use super::{Seen, Web, encode, failure, html_page};
use crate::discovery::{DataPolicyFilter, LIMIT_MAX, Query};
use crate::market::CapabilityView;
use crate::registry::Retention;
use axum::extract::{Query as Params, State};
use axum::response::Response;
use maud::{Markup, html};
use std::sync::Arc;

/// Results per page.
pub const PAGE: usize = 10;

/// The search form's fields, as the query string carries them. Numbers are
/// kept as text so a wrong one is an error on the page, not a bare 400.
#[derive(Debug, Default, serde::Deserialize)]
pub struct Search {
    #[serde(default)]
    q: String,
    #[serde(default)]
    category: String,
    /// Highest expected cost, in currency units (`0.01`).
    #[serde(default)]
    max_price: String,
    #[serde(default)]
    latency_ms_max: String,
    #[serde(default)]
    rating_min: String,
    #[serde(default)]
    jurisdiction: String,
    #[serde(default)]
    retention: String,
    #[serde(default)]
    page: Option<usize>,
}

/// Units as typed (`0.5`, `2`, `0.000001`) → micros.
pub fn parse_units(text: &str) -> Option<u64> {
    let text = text.trim();
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    if whole.is_empty() && fraction.is_empty()
        || fraction.len() > 6
        || !whole.bytes().all(|b| b.is_ascii_digit())
        || !fraction.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let whole: u64 = if whole.is_empty() {
        0
    } else {
        whole.parse().ok()?
    };
    let fraction: u64 = format!("{fraction:0<6}").parse().ok()?;
    whole.checked_mul(1_000_000)?.checked_add(fraction)
}

fn optional<T>(
    text: &str,
    parse: impl Fn(&str) -> Option<T>,
    what: &str,
) -> Result<Option<T>, String> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    parse(text)
        .map(Some)
        .ok_or_else(|| format!("{what}: “{text}” is not a number this field takes"))
}

impl Search {
    /// The discovery query the form asks for, or what is wrong with it.
    fn query(&self, limit: usize) -> Result<Query, String> {
        let retention = match self.retention.as_str() {
            "" => None,
            "none" => Some(Retention::None),
            "24h" => Some(Retention::Day),
            "30d" => Some(Retention::Month),
            other => return Err(format!("retention: “{other}” is not none, 24h or 30d")),
        };
        let jurisdiction = Some(self.jurisdiction.trim().to_string()).filter(|j| !j.is_empty());
        let data_policy =
            (retention.is_some() || jurisdiction.is_some()).then_some(DataPolicyFilter {
                retention,
                encryption: None,
                jurisdiction,
            });
        Ok(Query {
            need: self.q.trim().to_string(),
            category: Some(self.category.trim().to_string()).filter(|c| !c.is_empty()),
            tags: None,
            max_price_micros: optional(&self.max_price, parse_units, "Highest price")?,
            latency_ms_max: optional(&self.latency_ms_max, |t| t.parse().ok(), "Latency")?,
            uptime_min: None,
            data_policy,
            rating_min: optional(
                &self.rating_min,
                |t| t.parse().ok().filter(|r: &f64| r.is_finite()),
                "Rating",
            )?,
            limit: Some(limit),
        })
    }

    /// This search's address at another page.
    fn href(&self, page: usize) -> String {
        let mut href = format!("/?q={}", encode(&self.q));
        for (name, value) in [
            ("category", &self.category),
            ("max_price", &self.max_price),
            ("latency_ms_max", &self.latency_ms_max),
            ("rating_min", &self.rating_min),
            ("jurisdiction", &self.jurisdiction),
            ("retention", &self.retention),
        ] {
            if !value.is_empty() {
                href.push_str(&format!("&{name}={}", encode(value)));
            }
        }
        format!("{href}&page={page}")
    }
}

pub async fn catalog(
    State(web): State<Arc<Web>>,
    Seen(viewer): Seen,
    client: Option<axum::Extension<axum::extract::ConnectInfo<std::net::SocketAddr>>>,
    Params(search): Params<Search>,
) -> Response {
    let page = search.page.unwrap_or(1).clamp(1, 1_000_000);
    let offset = (page - 1) * PAGE;
    let searching = !search.q.trim().is_empty();
    let (results, more, problem) = if searching {
        // Discovery ranks at most LIMIT_MAX: the pages stop there.
        let wanted = (offset + PAGE + 1).min(LIMIT_MAX);
        match search.query(wanted) {
            Err(problem) => (Vec::new(), false, Some(problem)),
            Ok(query) => match web
                .market
                .discover(&query, &crate::api::discover::asker(None, client))
                .await
            {
                Ok(found) => {
                    let more = found.len() > offset + PAGE;
                    let shown = found
                        .into_iter()
                        .skip(offset)
                        .take(PAGE)
                        .map(|d| d.capability)
                        .collect();
                    (shown, more, None)
                }
                Err(e) if e.code() == "invalid_request" => (
                    Vec::new(),
                    false,
                    Some(crate::doors::Problem::from(e).body().error.message),
                ),
                Err(e) => return failure(&viewer, e.into()),
            },
        }
    } else {
        let mut shown = web.market.capabilities_page(offset, PAGE + 1);
        let more = shown.len() > PAGE;
        shown.truncate(PAGE);
        (shown, more, None)
    };
    let total = web.market.capability_count();
    let rows: Vec<Markup> = results.iter().map(|c| row(&web, c)).collect();
    html_page(view::page(
        &viewer,
        "Catalog",
        None,
        html! {
            h1 { "Capabilities" }
            (form(&search))
            section #results aria-live="polite" {
                @if let Some(problem) = &problem {
                    p.error role="alert" { (problem) " Correct it and search again." }
                }
                @if searching {
                    p.muted { "Ranked by how well each fits “" (search.q.trim()) "”, within your filters." }
                } @else {
                    p.muted { (total) " capabilities listed. Describe a need above to rank them." }
                }
                @if rows.is_empty() && problem.is_none() {
                    p.empty { "Nothing matches. Loosen a filter (price, latency, rating) or describe the need in other words." }
                } @else if !rows.is_empty() {
                    table.results {
                        caption.sr { "Capabilities, page " (page) }
                        thead { tr {
                            th scope="col" { "Capability" }
                            th scope="col" { "Price" }
                            th scope="col" { "Expected cost" }
                            th scope="col" { "p50 latency" }
                            th scope="col" { "Success" }
                            th scope="col" { "Rating" }
                        } }
                        tbody { @for r in &rows { (r) } }
                    }
                }
                (view::pager(
                    (page > 1).then(|| search.href(page - 1)),
                    more.then(|| search.href(page + 1)),
                ))
            }
        },
    ))
}

fn form(search: &Search) -> Markup {
    html! {
        form.search role="search" method="get" action="/"
            hx-get="/" hx-target="#results" hx-select="#results" hx-swap="outerHTML" hx-push-url="true" {
            div.need {
                label for="q" { "What do you need?" }
                input #q type="search" name="q" value=(search.q) maxlength="4096"
                    placeholder="e.g. hide e-mail addresses in a ticket";
                button type="submit" { "Search" }
            }
            details.filters open[has_filters(search)] {
                summary { "Filters" }
                div.grid {
                    div { label for="max_price" { "Highest expected cost (units)" }
                        input #max_price name="max_price" inputmode="decimal" value=(search.max_price); }
                    div { label for="latency_ms_max" { "Latency at most (ms)" }
                        input #latency_ms_max name="latency_ms_max" inputmode="numeric" value=(search.latency_ms_max); }
                    div { label for="rating_min" { "Rating at least (1–5)" }
                        input #rating_min name="rating_min" inputmode="decimal" value=(search.rating_min); }
                    div { label for="jurisdiction" { "Processed in (e.g. EU)" }
                        input #jurisdiction name="jurisdiction" maxlength="16" value=(search.jurisdiction); }
                    div { label for="retention" { "Keeps data at most" }
                        select #retention name="retention" {
                            @for (value, label) in [("", "any"), ("none", "never stored"), ("24h", "24 hours"), ("30d", "30 days")] {
                                option value=(value) selected[search.retention == value] { (label) }
                            }
                        }
                    }
                    div { label for="category" { "Category" }
                        input #category name="category" maxlength="64" value=(search.category); }
                }
            }
        }
    }
}

fn has_filters(search: &Search) -> bool {
    [
        &search.max_price,
        &search.latency_ms_max,
        &search.rating_min,
        &search.jurisdiction,
        &search.retention,
        &search.category,
    ]
    .iter()
    .any(|v| !v.is_empty())
}

fn row(web: &Web, c: &CapabilityView) -> Markup {
    let expected = web
        .market
        .quote(&c.pinned_id)
        .ok()
        .map(|q| q.expected_cost_micros);
    let verified = web
        .market
        .org(&c.provider_org_id)
        .ok()
        .flatten()
        .is_some_and(|o| o.verified_at_ms.is_some());
    html! {
        tr {
            td {
                a href=(format!("/capabilities/{}", encode(&c.id))) { (c.name) }
                @if verified { " " span.badge title="Verified provider" { "✓ verified" } }
                br;
                code.id { (c.id) }
                p.desc { (truncate(&c.description, 160)) }
            }
            td.num { (amount(c.terms.price_micros)) }
            td.num { @match expected { Some(e) => (amount(e)), None => "—" } }
            td.num { @match c.stats.duration_us_p50 { Some(us) => (view::latency_us(us)), None => "—" } }
            td.num { (view::percent(c.reputation.success_rate)) }
            td.num { @match c.reputation.rating { Some(r) => (format!("{r:.1} / 5")), None => "unrated" } }
        }
    }
}

/// At most `max` characters, an ellipsis when cut.
pub fn truncate(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_parse_to_micros_exactly() {
        assert_eq!(parse_units("0.5"), Some(500_000));
        assert_eq!(parse_units("2"), Some(2_000_000));
        assert_eq!(parse_units(".000001"), Some(1));
        assert_eq!(parse_units("0.0000001"), None);
        assert_eq!(parse_units("-1"), None);
        assert_eq!(parse_units("1e3"), None);
        assert_eq!(parse_units("."), None);
        assert_eq!(parse_units("99999999999999999999"), None);
    }

    #[test]
    fn a_wrong_number_is_named() {
        let search = Search {
            q: "x".into(),
            latency_ms_max: "soon".into(),
            ..Search::default()
        };
        let problem = search.query(10).expect_err("refused");
        assert!(
            problem.contains("Latency") && problem.contains("soon"),
            "{problem}"
        );
    }

    #[test]
    fn truncation_respects_characters() {
        assert_eq!(truncate("héllo", 2), "hé…");
        assert_eq!(truncate("hi", 5), "hi");
    }
}
