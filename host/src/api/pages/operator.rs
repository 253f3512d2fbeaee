//! The operator's page: organisations waiting for verification, the ledger
//! check, re-attestation, and recent refused uploads.

use super::provider::upload;
use super::sessions::Who;
use super::view::{self, amount, when};
use super::{Seen, Viewer, Web, encode, failure, form_refused, html_page, sign_in_first};
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Redirect, Response};
use maud::html;
use std::sync::Arc;

/// Organisations waiting shown.
const WAITING: usize = 50;
/// Refused uploads shown.
const REFUSED: usize = 20;

#[derive(serde::Deserialize)]
pub struct Notice {
    notice: Option<String>,
}

fn is_operator(viewer: &Viewer) -> bool {
    matches!(viewer.who, Some(Who::Operator))
}

pub async fn dashboard(
    State(web): State<Arc<Web>>,
    Seen(viewer): Seen,
    Query(notice): Query<Notice>,
) -> Response {
    if !is_operator(&viewer) {
        return sign_in_first("/operator");
    }
    let (orgs, refused) = match (web.market.orgs(), web.market.refused_uploads(REFUSED)) {
        (Ok(o), Ok(r)) => (o, r),
        (Err(e), _) | (_, Err(e)) => return failure(&viewer, e.into()),
    };
    let mut waiting: Vec<_> = orgs
        .into_iter()
        .filter(|o| o.verified_at_ms.is_none())
        .collect();
    let waiting_total = waiting.len();
    waiting.sort_by_key(|o| std::cmp::Reverse(o.created_at_ms));
    waiting.truncate(WAITING);
    let audit = web.market.audit();
    html_page(view::page(
        &viewer,
        "Operator",
        notice.notice.as_deref(),
        html! {
            h1 { "Operator" }
            section aria-labelledby="waiting" {
                h2 #waiting { "Waiting for verification" }
                @if waiting.is_empty() {
                    p.empty { "No organisation is waiting." }
                } @else {
                    p.muted { (waiting_total) " waiting; the newest " (waiting.len()) " shown." }
                    table.results {
                        thead { tr { th scope="col" { "Organisation" } th scope="col" { "Id" } th scope="col" { "Registered (UTC)" } th scope="col" { "" } } }
                        tbody { @for o in &waiting {
                            tr {
                                td { (o.name) } td { code { (o.org_id) } } td { (when(o.created_at_ms)) }
                                td { form.inline method="post" action=(format!("/operator/orgs/{}/verify", encode(&o.org_id))) {
                                    input type="hidden" name="csrf" value=(viewer.csrf);
                                    button type="submit" aria-label=(format!("Verify {}", o.name)) { "Verify" }
                                } }
                            }
                        } }
                    }
                }
            }
            section aria-labelledby="ledger" {
                h2 #ledger { "Ledger check" }
                @match &audit.problem {
                    None => p.pass #ledger-state { "✓ Balanced: deposits = organisations + held + escrow + fees." },
                    Some(problem) => p.error #ledger-state role="alert" { "✗ " (problem) },
                }
                dl.facts.money {
                    dt { "Deposited" } dd { (amount(audit.deposited_micros)) }
                    dt { "Organisations" } dd { (amount(audit.organisations_micros)) }
                    dt { "Held for calls" } dd { (amount(audit.pending_micros)) }
                    dt { "Escrow" } dd { (amount(audit.escrow_micros)) }
                    dt { "Fees" } dd { (amount(audit.fees_micros)) }
                    dt { "Journal entries" } dd { (audit.journal_entries) }
                }
            }
            section aria-labelledby="reattest" {
                h2 #reattest { "Re-attestation" }
                p { "Runs the batteries in force again over every listed version; a version that fails is delisted with its new report." }
                form method="post" action="/operator/reattest" {
                    input type="hidden" name="csrf" value=(viewer.csrf);
                    button type="submit" { "Re-attest everything" }
                }
            }
            section aria-labelledby="refused" {
                h2 #refused { "Recent refused uploads" }
                @if refused.is_empty() { p.empty { "None." } }
                @for u in &refused { (upload(u)) }
            }
        },
    ))
}

#[derive(serde::Deserialize)]
pub struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

pub async fn verify(
    State(web): State<Arc<Web>>,
    Seen(viewer): Seen,
    headers: HeaderMap,
    Path(org_id): Path<String>,
    form: Result<axum::Form<CsrfForm>, axum::extract::rejection::FormRejection>,
) -> Response {
    let csrf = form.map(|f| f.0.csrf).unwrap_or_default();
    if let Some(refused) = form_refused(&viewer, &headers, &csrf) {
        return refused;
    }
    if !is_operator(&viewer) {
        return sign_in_first("/operator");
    }
    match web.market.verify_org(&org_id).await {
        Ok(org) => Redirect::to(&format!(
            "/operator?notice={}",
            encode(&format!("{} is verified.", org.name))
        ))
        .into_response(),
        Err(e) => failure(&viewer, e.into()),
    }
}

pub async fn reattest(
    State(web): State<Arc<Web>>,
    Seen(viewer): Seen,
    headers: HeaderMap,
    form: Result<axum::Form<CsrfForm>, axum::extract::rejection::FormRejection>,
) -> Response {
    let csrf = form.map(|f| f.0.csrf).unwrap_or_default();
    if let Some(refused) = form_refused(&viewer, &headers, &csrf) {
        return refused;
    }
    if !is_operator(&viewer) {
        return sign_in_first("/operator");
    }
    match web.market.reattest(None).await {
        Ok(done) => Redirect::to(&format!(
            "/operator?notice={}",
            encode(&format!(
                "Re-attested {} versions; {} delisted.",
                done.checked.len(),
                done.delisted.len()
            ))
        ))
        .into_response(),
        Err(e) => failure(&viewer, e.into()),
    }
}
