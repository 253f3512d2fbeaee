//! A capability's page: its versions, terms, schemas as fields, worked
//! examples, the signed attestation report (its signature checked here
//! against the marketplace's keys), the publisher's key, reputation, and
//! its calls and p50 latency over time.

use super::view::{self, Bar, amount, json, schema_fields, when};
use super::{Seen, Web, encode, failure, html_page};
use crate::identity::signing;
use crate::market::{CapabilityView, InvocationRecord};
use axum::extract::{Path, State};
use axum::response::Response;
use maud::{Markup, html};
use std::collections::BTreeMap;
use std::sync::Arc;

/// The provider's latest calls the charts are drawn from.
const CHART_CALLS: usize = 2_000;

pub async fn capability(
    State(web): State<Arc<Web>>,
    Seen(viewer): Seen,
    Path(id): Path<String>,
) -> Response {
    let c = match web.market.capability(&id) {
        Ok(c) => c,
        Err(e) => return failure(&viewer, e.into()),
    };
    let versions = web.market.agent_versions(&c.agent).unwrap_or_default();
    let this = versions.iter().find(|v| v.version == c.version);
    let report = web.market.attestation(&c.pinned_id).ok();
    let half_life_days = web.market.config().rating_half_life_ms / 86_400_000;
    let calls = web
        .market
        .calls_of("provider", &c.provider_org_id, None, CHART_CALLS)
        .unwrap_or_default();
    let prefix = format!("{}.{}@", c.agent, c.name);
    let mine: Vec<&InvocationRecord> = calls
        .iter()
        .filter(|r| r.capability_id.starts_with(&prefix))
        .collect();
    html_page(view::page(
        &viewer,
        &c.name,
        None,
        html! {
            p.crumbs { a href="/" { "Catalog" } " › " (c.agent) }
            h1 { (c.name) }
            p { code { (c.id) } " · version " (c.version) " · category " (c.category) }
            p.lead { (c.description) }
            @if !c.tags.is_empty() {
                ul.tags aria-label="Tags" { @for tag in &c.tags { li { (tag) } } }
            }
            (terms(&c))
            section aria-labelledby="versions" {
                h2 #versions { "Versions" }
                table {
                    thead { tr { th scope="col" { "Version" } th scope="col" { "Major line" } th scope="col" { "Published" } th scope="col" { "Listed" } } }
                    tbody {
                        @for v in versions.iter().rev() {
                            @let major = v.version.split('.').next().unwrap_or("");
                            tr {
                                td { a href=(format!("/capabilities/{}", encode(&format!("{}.{}@{}", c.agent, c.name, v.version)))) { (v.version) } }
                                td { "@" (major) }
                                td { (when(v.published_at_ms)) }
                                td { @if web.market.is_listed(&v.agent, &v.version) { "yes" } @else { "no" } }
                            }
                        }
                    }
                }
                p { "Publisher's signing key: "
                    @match this.and_then(|v| v.signed_by_key_id.as_ref()) {
                        Some(key_id) => code { (key_id) },
                        None => "not recorded for this version",
                    }
                }
            }
            section aria-labelledby="input" {
                h2 #input { "Input" }
                (schema_fields(&c.input_schema))
                h2 #output { "Output" }
                (schema_fields(&c.output_schema))
            }
            section aria-labelledby="examples" {
                h2 #examples { "Worked examples" }
                @if c.examples.is_empty() { p.muted { "The provider gave no worked example." } }
                @for (i, example) in c.examples.iter().enumerate() {
                    div.example {
                        h3 { "Example " (i + 1) }
                        div.pair {
                            div { h4 { "Input" } (json(&example.input)) }
                            div { h4 { "Output" } (json(&example.output)) }
                        }
                    }
                }
            }
            section aria-labelledby="reputation" {
                h2 #reputation { "Reputation" }
                dl.facts {
                    dt { "Rating" } dd { @match c.reputation.rating { Some(r) => (format!("{r:.2} / 5 from {} ratings", c.reputation.ratings)), None => "unrated" } }
                    dt { "Calls" } dd { (c.reputation.calls) }
                    dt { "Success rate" } dd { (view::percent(c.reputation.success_rate)) }
                    dt { "Within the promised latency" } dd { (view::percent(c.reputation.sla_adherence)) }
                    dt { "Disputed" } dd { (view::percent(c.reputation.dispute_rate)) }
                }
                p.muted { "Ratings decay: a rating's weight halves every " (half_life_days) " days, so recent service counts most." }
            }
            section aria-labelledby="activity" {
                h2 #activity { "Calls and latency" }
                (activity(&mine))
            }
            section aria-labelledby="attestation" {
                h2 #attestation { "Attestation" }
                @match &report {
                    Some(report) => (attestation(&web, report, &c)),
                    None => p.muted { "No attestation report is stored for this version." },
                }
            }
        },
    ))
}

fn terms(c: &CapabilityView) -> Markup {
    let t = &c.terms;
    html! {
        section aria-labelledby="terms" {
            h2 #terms { "Terms" }
            dl.facts {
                dt { "Price per call" } dd { (amount(t.price_micros)) }
                dt { "Fuel rate" } dd { (amount(t.micros_per_mfuel)) " per million fuel" }
                dt { "Latency promised" } dd { (t.latency_ms_max) " ms" }
                dt { "Availability promised" } dd { (format!("{:.2}%", t.uptime * 100.0)) }
                dt { "Rate limit" } dd { @if t.rate_limit_per_minute == 0 { "none" } @else { (t.rate_limit_per_minute) " calls a minute" } }
                dt { "Data retention" } dd { (serde_json::to_value(t.data_policy.retention).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default()) }
                dt { "Encryption" } dd { @if t.data_policy.encryption { "required" } @else { "not promised" } }
                dt { "Jurisdictions" } dd { @if t.data_policy.jurisdictions.is_empty() { "any" } @else { (t.data_policy.jurisdictions.join(", ")) } }
            }
        }
    }
}

/// Calls and p50 latency per day (per hour when the calls span under two
/// days), from the provider's latest calls.
fn activity(calls: &[&InvocationRecord]) -> Markup {
    let span = match (
        calls.iter().map(|r| r.at_ms).min(),
        calls.iter().map(|r| r.at_ms).max(),
    ) {
        (Some(first), Some(last)) => last - first,
        _ => 0,
    };
    let hourly = span < 2 * 86_400_000;
    let mut buckets: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for r in calls {
        let key = if hourly {
            format!("{}:00", &when(r.at_ms)[..13])
        } else {
            view::day(r.at_ms)
        };
        buckets.entry(key).or_default().push(r.duration_us);
    }
    let count: Vec<Bar> = buckets
        .iter()
        .map(|(label, d)| Bar {
            label: label.clone(),
            value: d.len() as u64,
            shown: d.len().to_string(),
        })
        .collect();
    let p50: Vec<Bar> = buckets
        .iter()
        .map(|(label, d)| {
            let mut d = d.clone();
            d.sort_unstable();
            let median = d[(d.len() - 1) / 2];
            Bar {
                label: label.clone(),
                value: median,
                shown: view::latency_us(median),
            }
        })
        .collect();
    let unit = if hourly { "hour" } else { "day" };
    html! {
        (view::bar_chart(&format!("Calls per {unit}"), "calls", &count))
        (view::bar_chart(&format!("Median latency per {unit}"), "p50", &p50))
    }
}

/// The signed report: its signature checked against the marketplace's
/// published keys, then every check with its timing and fuel.
fn attestation(web: &Web, report: &serde_json::Value, c: &CapabilityView) -> Markup {
    let keys = web.market.key_set().verifying_keys();
    let checked = signing::verify_document(report, keys.iter().map(|(id, k)| (id.as_str(), k)));
    let verdict = report["verdict"].as_str().unwrap_or("");
    let mine = report["capabilities"]
        .as_array()
        .and_then(|cs| cs.iter().find(|r| r["capability"] == c.name.as_str()));
    html! {
        p {
            "Verdict: " strong.verdict data-verdict=(verdict) { @if verdict == "pass" { "passed" } @else { (verdict) } }
            " · attested " (when(report["attested_at_ms"].as_u64().unwrap_or(0)))
        }
        @match &checked {
            Ok(key_id) => p.signature.valid data-signature="valid" { "✓ Signature valid: signed by the marketplace key " code { (key_id) } "." },
            Err(e) => p.signature.invalid data-signature="invalid" role="alert" { "✗ Signature not valid: " (e.to_string()) },
        }
        (case_table(report, mine))
        details {
            summary { "The signed report (JSON)" }
            (json(report))
        }
    }
}

/// Structure and compatibility checks, then one capability's cases.
pub fn case_table(report: &serde_json::Value, capability: Option<&serde_json::Value>) -> Markup {
    html! {
        (component_checks(report))
        @if let Some(capability) = capability { (capability_cases(capability)) }
    }
}

/// The checks of the whole component: structure, and compatibility with
/// the version it upgrades.
pub fn component_checks(report: &serde_json::Value) -> Markup {
    let list = |v: &serde_json::Value| v.as_array().cloned().unwrap_or_default();
    let checks: Vec<serde_json::Value> = list(&report["structure"])
        .into_iter()
        .chain(list(&report["compatibility"]))
        .collect();
    html! {
        table.checks {
            caption { "Component checks" }
            thead { tr { th scope="col" { "Check" } th scope="col" { "Result" } th scope="col" { "Detail" } } }
            tbody {
                @for check in &checks {
                    tr { td { (check["check"].as_str().unwrap_or("")) } td { (pass_mark(check["passed"].as_bool())) } td { (check["detail"].as_str().unwrap_or("")) } }
                }
            }
        }
    }
}

/// One capability's problems and cases, each with its checks, time and fuel.
pub fn capability_cases(capability: &serde_json::Value) -> Markup {
    let empty = Vec::new();
    let cases = capability["cases"].as_array().unwrap_or(&empty);
    html! {
        @if let Some(problems) = capability["problems"].as_array().filter(|p| !p.is_empty()) {
            ul.problems { @for p in problems { li { (p.as_str().unwrap_or("")) } } }
        }
        table.checks.cases {
            caption { "Cases of " (capability["capability"].as_str().unwrap_or("")) }
            thead { tr { th scope="col" { "Suite" } th scope="col" { "Case" } th scope="col" { "Result" } th scope="col" { "Time" } th scope="col" { "Fuel" } th scope="col" { "Checks" } } }
            tbody {
                @for case in cases {
                    tr data-passed=(case["passed"].as_bool().unwrap_or(false)) {
                        td { (case["suite"].as_str().unwrap_or("")) }
                        td { (case["name"].as_str().unwrap_or("")) }
                        td { (pass_mark(case["passed"].as_bool())) }
                        td.num { (view::latency_us(case["duration_us"].as_u64().unwrap_or(0))) }
                        td.num { (case["fuel_used"].as_u64().unwrap_or(0)) }
                        td {
                            ul.checklist {
                                @for check in case["checks"].as_array().unwrap_or(&empty) {
                                    li { (pass_mark(check["passed"].as_bool())) " " (check["check"].as_str().unwrap_or(""))
                                        @if let Some(detail) = check["detail"].as_str() { ": " (detail) } }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// A signed receipt, its signature checked against the marketplace's keys.
pub fn verified_receipt(web: &Web, receipt: &serde_json::Value) -> Markup {
    let keys = web.market.key_set().verifying_keys();
    let checked = signing::verify_document(receipt, keys.iter().map(|(id, k)| (id.as_str(), k)));
    html! {
        @match &checked {
            Ok(key_id) => p.signature.valid data-signature="valid" { "✓ Signature valid: signed by the marketplace key " code { (key_id) } ". Check it offline with " code { "mercato verify" } "." },
            Err(e) => p.signature.invalid data-signature="invalid" role="alert" { "✗ Signature not valid: " (e.to_string()) },
        }
        (json(receipt))
    }
}

fn pass_mark(passed: Option<bool>) -> Markup {
    html! {
        @match passed {
            Some(true) => span.pass { "passed" },
            _ => span.fail { "failed" },
        }
    }
}
