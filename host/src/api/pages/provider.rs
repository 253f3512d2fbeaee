//! A provider's dashboard: its agents and versions, every upload's report
//! (refused ones with their failing cases), earnings, calls and failures by
//! code, fuel per capability, disputes, and its signing keys.

use super::capability::{capability_cases, component_checks};
use super::view::{self, amount, when};
use super::{Seen, Web, encode, failure, form_refused, html_page, member, sign_in_first};
use crate::market::{InvocationRecord, UploadRecord};
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use std::collections::BTreeMap;
use std::sync::Arc;

/// The latest calls the figures are drawn from.
const CALLS: usize = 2_000;
/// Uploads shown.
const UPLOADS: usize = 20;

#[derive(serde::Deserialize)]
pub struct Notice {
    notice: Option<String>,
}

/// Nearest-rank quantile of sorted values.
fn quantile(sorted: &[u64], q: f64) -> u64 {
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

pub async fn dashboard(
    State(web): State<Arc<Web>>,
    Seen(viewer): Seen,
    Query(notice): Query<Notice>,
) -> Response {
    let Some(org) = member(&web, &viewer) else {
        return sign_in_first("/provider");
    };
    let (agents, uploads, calls, keys) = match (
        web.market.agents_of(&org.org_id),
        web.market.uploads_of(&org.org_id, UPLOADS),
        web.market.calls_of("provider", &org.org_id, None, CALLS),
        web.market.keys(&org),
    ) {
        (Ok(a), Ok(u), Ok(c), Ok(k)) => (a, u, c, k),
        (Err(e), ..) | (_, Err(e), ..) | (_, _, Err(e), _) | (.., Err(e)) => {
            return failure(&viewer, e.into());
        }
    };
    let balance = web.market.balance(&org);
    let released: u64 = calls
        .iter()
        .filter(|r| r.settlement == "released")
        .map(|r| r.cost_micros)
        .sum();
    let refunded: u64 = calls
        .iter()
        .filter(|r| r.settlement == "refunded")
        .map(|r| r.cost_micros)
        .sum();
    let mut by_code: BTreeMap<&str, u64> = BTreeMap::new();
    let mut fuel: BTreeMap<&str, Vec<u64>> = BTreeMap::new();
    for r in &calls {
        *by_code.entry(r.outcome.as_str()).or_default() += 1;
        if r.outcome == "ok" {
            fuel.entry(r.capability_id.as_str())
                .or_default()
                .push(r.fuel_used);
        }
    }
    for values in fuel.values_mut() {
        values.sort_unstable();
    }
    let disputed: Vec<&InvocationRecord> = calls.iter().filter(|r| r.dispute.is_some()).collect();
    html_page(view::page(
        &viewer,
        "Provider",
        notice.notice.as_deref(),
        html! {
            h1 { "Provider: " (org.name) }
            @if org.verified_at_ms.is_none() {
                p.error role="alert" { "This organisation is not verified yet, so it cannot publish. The marketplace's operator verifies organisations." }
            }
            section aria-labelledby="agents" {
                h2 #agents { "Agents" }
                @if agents.is_empty() {
                    p.empty { "No agent yet. Build one with the SDK, check it with " code { "mercato attest" } ", then " code { "mercato publish" } " it." }
                }
                ul { @for a in &agents {
                    li { strong { (a.name) } ": "
                        @for (i, v) in a.versions.iter().enumerate() {
                            @if i > 0 { ", " }
                            (v) @if !web.market.is_listed(&a.name, v) { " (not listed)" }
                        }
                    }
                } }
            }
            section aria-labelledby="uploads" {
                h2 #uploads { "Uploads" }
                @if uploads.is_empty() { p.empty { "No uploads yet." } }
                @for u in &uploads { (upload(u)) }
            }
            section aria-labelledby="earnings" {
                h2 #earnings { "Earnings" }
                dl.facts.money {
                    dt { "In escrow (dispute window open)" } dd #escrowed { (amount(balance.escrowed_in_micros)) }
                    dt { "Released to you (latest calls)" } dd #released { (amount(released)) }
                    dt { "Refunded to consumers (latest calls)" } dd #refunded { (amount(refunded)) }
                    dt { "Available balance" } dd { (amount(balance.available_micros)) }
                }
            }
            section aria-labelledby="calls" {
                h2 #calls { "Calls by outcome" }
                p.muted { "The latest " (calls.len()) " calls to your capabilities." }
                @if by_code.is_empty() { p.empty { "No calls yet." } } @else {
                    table { thead { tr { th scope="col" { "Outcome" } th scope="col" { "Calls" } } }
                        tbody { @for (code, n) in &by_code { tr { td { code { (code) } } td.num { (n) } } } } }
                }
                h2 { "Fuel per capability" }
                @if fuel.is_empty() { p.empty { "No successful call yet." } } @else {
                    table { thead { tr { th scope="col" { "Capability" } th scope="col" { "p50 fuel" } th scope="col" { "p99 fuel" } th scope="col" { "Calls" } } }
                        tbody { @for (id, values) in &fuel {
                            tr { td { code { (id) } } td.num { (quantile(values, 0.5)) } td.num { (quantile(values, 0.99)) } td.num { (values.len()) } }
                        } } }
                }
            }
            section aria-labelledby="disputes" {
                h2 #disputes { "Disputes against you" }
                @if disputed.is_empty() { p.empty { "None." } } @else {
                    table { thead { tr { th scope="col" { "Transaction" } th scope="col" { "Capability" } th scope="col" { "Status" } th scope="col" { "Reason" } } }
                        tbody { @for r in &disputed { @if let Some(d) = &r.dispute {
                            tr { td { a href=(format!("/transactions/{}", encode(&r.transaction_id))) { (when(r.at_ms)) } } td { code { (r.capability_id) } } td { (d.status) } td { (d.reason) } }
                        } } } }
                }
            }
            section aria-labelledby="keys" {
                h2 #keys { "Signing keys" }
                @if keys.is_empty() { p.empty { "No key yet: " code { "mercato keys generate" } " then " code { "mercato keys register" } "." } }
                table { thead { tr { th scope="col" { "Key id" } th scope="col" { "Added" } th scope="col" { "State" } th scope="col" { "" } } }
                    tbody { @for k in &keys {
                        tr { td { code { (k.key_id) } } td { (when(k.added_at_ms)) }
                            td { @match k.revoked_at_ms { Some(at) => { "revoked " (when(at)) }, None => "active" } }
                            td { @if k.revoked_at_ms.is_none() {
                                form.inline method="post" action=(format!("/provider/keys/{}/revoke", encode(&k.key_id))) {
                                    input type="hidden" name="csrf" value=(viewer.csrf);
                                    button.secondary type="submit" aria-label=(format!("Revoke key {}", k.key_id)) { "Revoke" }
                                }
                            } }
                        }
                    } }
                }
            }
        },
    ))
}

/// One upload: its verdict and, for a refused one, the failing cases.
pub fn upload(u: &UploadRecord) -> Markup {
    let failing: Vec<&serde_json::Value> = u.report["capabilities"]
        .as_array()
        .map(|cs| cs.iter().filter(|c| c["passed"] != true).collect())
        .unwrap_or_default();
    html! {
        details.upload open[!u.passed] data-passed=(u.passed) {
            summary {
                (u.agent) " " (u.version) " · " (when(u.at_ms)) " · "
                @if u.passed { span.pass { "listed" } } @else { span.fail { "refused" } }
                " · signed with " code { (u.key_id) }
            }
            @if u.passed {
                p { "Every check passed." }
            } @else {
                (component_checks(&u.report))
                @for c in failing { (capability_cases(c)) }
            }
        }
    }
}

#[derive(serde::Deserialize)]
pub struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

pub async fn revoke_key(
    State(web): State<Arc<Web>>,
    Seen(viewer): Seen,
    headers: HeaderMap,
    Path(key_id): Path<String>,
    form: Result<axum::Form<CsrfForm>, axum::extract::rejection::FormRejection>,
) -> Response {
    let csrf = form.map(|f| f.0.csrf).unwrap_or_default();
    if let Some(refused) = form_refused(&viewer, &headers, &csrf) {
        return refused;
    }
    let Some(org) = member(&web, &viewer) else {
        return sign_in_first("/provider");
    };
    match web.market.revoke_key(&org, &key_id).await {
        Ok(_) => Redirect::to("/provider?notice=Key+revoked.#keys").into_response(),
        Err(e) => failure(&viewer, e.into()),
    }
}
