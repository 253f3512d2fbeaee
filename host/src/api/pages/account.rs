//! A consumer's pages: the dashboard (balance, spending per day, budget,
//! transactions with filters), one transaction with its receipt and a
//! dispute form inside the window, and the approvals queue of an approver.

use super::capability::verified_receipt;
use super::catalog::parse_units;
use super::sessions::Who;
use super::view::{self, Bar, amount, when};
use super::{
    Seen, Web, encode, failure, form_refused, html_page, member, not_found, sign_in_first,
};
use crate::identity::Org;
use crate::market::{InvocationRecord, now_ms};
use crate::settlement::Budget;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use std::collections::BTreeMap;
use std::sync::Arc;

/// Transactions a page.
const PAGE: usize = 20;
/// Records looked through for one filtered page.
const SCAN_MAX: usize = 2_000;
/// Contracts shown (the newest).
const CONTRACTS: usize = 20;
/// Days the spending chart covers.
const SPEND_DAYS: u64 = 14;

#[derive(Debug, Default, serde::Deserialize)]
pub struct Filters {
    #[serde(default)]
    capability: String,
    #[serde(default)]
    outcome: String,
    /// `YYYY-MM-DD` (UTC).
    #[serde(default)]
    date: String,
    before: Option<String>,
    notice: Option<String>,
}

impl Filters {
    fn admits(&self, r: &InvocationRecord) -> bool {
        (self.capability.is_empty() || r.capability_id.contains(self.capability.trim()))
            && (self.outcome.is_empty() || r.outcome == self.outcome.trim())
            && (self.date.is_empty() || view::day(r.at_ms) == self.date.trim())
    }

    fn href(&self, before: &str) -> String {
        format!(
            "/account?capability={}&outcome={}&date={}&before={}#transactions",
            encode(&self.capability),
            encode(&self.outcome),
            encode(&self.date),
            encode(before)
        )
    }
}

pub async fn dashboard(
    State(web): State<Arc<Web>>,
    Seen(viewer): Seen,
    Query(filters): Query<Filters>,
) -> Response {
    let Some(org) = member(&web, &viewer) else {
        return sign_in_first("/account");
    };
    let balance = web.market.balance(&org);
    // One filtered page, looking through at most SCAN_MAX records.
    let mut shown = Vec::new();
    let mut cursor = filters.before.clone();
    let mut scanned = 0;
    let mut exhausted = false;
    while shown.len() < PAGE && scanned < SCAN_MAX {
        let batch = match web
            .market
            .calls_of("consumer", &org.org_id, cursor.as_deref(), 200)
        {
            Ok(batch) => batch,
            Err(e) => return failure(&viewer, e.into()),
        };
        if batch.is_empty() {
            exhausted = true;
            break;
        }
        scanned += batch.len();
        for r in batch {
            cursor = Some(r.transaction_id.clone());
            if filters.admits(&r) {
                shown.push(r);
                if shown.len() == PAGE {
                    break;
                }
            }
        }
    }
    let next = (!exhausted)
        .then(|| cursor.clone())
        .flatten()
        .map(|c| filters.href(&c));
    let spend = spending(&web, &org);
    let contracts = match web.market.contracts_of(&org.org_id, CONTRACTS) {
        Ok(c) => c,
        Err(e) => return failure(&viewer, e.into()),
    };
    let grants = match web.market.grants_of(&org.org_id) {
        Ok(g) => g,
        Err(e) => return failure(&viewer, e.into()),
    };
    let b = &balance.budget;
    html_page(view::page(
        &viewer,
        "Account",
        filters.notice.as_deref(),
        html! {
            h1 { (org.name) }
            p.muted { "Organisation " code { (org.org_id) } }
            section aria-labelledby="balance" {
                h2 #balance { "Balance" }
                dl.facts.money {
                    dt { "Available" } dd #available { (amount(balance.available_micros)) }
                    dt { "Held for calls in flight" } dd { (amount(balance.pending_micros)) }
                    dt { "In escrow (paid, in the dispute window)" } dd { (amount(balance.escrowed_out_micros)) }
                    dt { "Owed to you as a provider, in escrow" } dd { (amount(balance.escrowed_in_micros)) }
                    dt { "Spent today (UTC)" } dd { (amount(balance.spent_today_micros)) }
                }
                @if b.paused {
                    p.error role="alert" #paused-state { "Calls are paused in the budget below. Untick “Pause all calls” to resume." }
                } @else if balance.paused {
                    p.error role="alert" #paused-state { "Calls are paused: today's spending reached the daily limit. Raise the limit below, or wait until 00:00 UTC." }
                }
                (view::bar_chart(&format!("Spent per day, last {SPEND_DAYS} days"), "spent", &spend))
            }
            section aria-labelledby="budget" {
                h2 #budget { "Budget" }
                form.grid method="post" action="/account/budget" {
                    input type="hidden" name="csrf" value=(viewer.csrf);
                    div { label for="per_call_max" { "Most per call (units)" }
                        input #per_call_max name="per_call_max" inputmode="decimal" value=(units_or_empty(b.per_call_max_micros)); }
                    div { label for="daily_max" { "Most per day (units)" }
                        input #daily_max name="daily_max" inputmode="decimal" value=(units_or_empty(b.daily_max_micros)); }
                    div { label for="approval_above" { "Ask an approver above (units)" }
                        input #approval_above name="approval_above" inputmode="decimal" value=(units_or_empty(b.approval_above_micros)); }
                    div { label for="alert_percents" { "Alert at % of the daily limit" }
                        input #alert_percents name="alert_percents" placeholder="50, 80, 100"
                            value=(b.alert_percents.iter().map(u8::to_string).collect::<Vec<_>>().join(", ")); }
                    div { label for="webhook_url" { "Alert webhook (https)" }
                        input #webhook_url name="webhook_url" type="url" value=(b.webhook_url.clone().unwrap_or_default()); }
                    div.check { label for="paused" {
                        input #paused type="checkbox" name="paused" value="on" checked[b.paused];
                        " Pause all calls"
                    } }
                    div.actions { button type="submit" { "Save budget" } }
                }
                p.muted { "Leave a field empty for no limit. Reaching the daily limit pauses calls until the next UTC day or a new budget." }
            }
            (super::consent::connected(&viewer, &grants))
            section aria-labelledby="contracts" {
                h2 #contracts { "Contracts" }
                @if contracts.is_empty() {
                    p.empty { "No contract yet. Negotiate terms for a capability (POST /v1/negotiations, or the MCP and A2A negotiate tools) and the signed contract appears here." }
                } @else {
                    table.results {
                        caption.sr { "Signed contracts, newest first" }
                        thead { tr { th scope="col" { "Contract" } th scope="col" { "Capability" } th scope="col" { "Most per call" } th scope="col" { "Latency" } th scope="col" { "Valid until (UTC)" } } }
                        tbody { @for c in &contracts {
                            tr {
                                td { code { (c["contract_id"].as_str().unwrap_or("")) } }
                                td { code { (c["capability_id"].as_str().unwrap_or("")) } }
                                td.num { (amount(c["terms"]["max_price_micros"].as_u64().unwrap_or(0))) }
                                td.num { (c["terms"]["latency_ms_max"].as_u64().unwrap_or(0)) " ms" }
                                td { (when(c["valid_until_ms"].as_u64().unwrap_or(0))) }
                            }
                        } }
                    }
                }
            }
            section aria-labelledby="transactions" {
                h2 #transactions { "Transactions" }
                form.grid.filters method="get" action="/account" {
                    div { label for="f-capability" { "Capability" } input #f-capability name="capability" value=(filters.capability); }
                    div { label for="f-outcome" { "Outcome" } input #f-outcome name="outcome" placeholder="ok, fuel_exhausted…" value=(filters.outcome); }
                    div { label for="f-date" { "Date (UTC)" } input #f-date name="date" type="date" value=(filters.date); }
                    div.actions { button type="submit" { "Filter" } }
                }
                @if shown.is_empty() {
                    p.empty { "No transactions here yet. Find a capability in the " a href="/" { "catalog" } " and call it with your API key." }
                } @else {
                    (transactions(&shown))
                }
                (view::pager(None, next))
            }
        },
    ))
}

fn units_or_empty(micros: Option<u64>) -> String {
    micros.map(view::money).unwrap_or_default()
}

fn transactions(records: &[InvocationRecord]) -> Markup {
    html! {
        table.results {
            caption.sr { "Transactions, newest first" }
            thead { tr {
                th scope="col" { "When (UTC)" } th scope="col" { "Capability" } th scope="col" { "Outcome" }
                th scope="col" { "Charged" } th scope="col" { "Settlement" } th scope="col" { "Time" }
            } }
            tbody {
                @for r in records {
                    tr {
                        td { a href=(format!("/transactions/{}", encode(&r.transaction_id))) { (when(r.at_ms)) } }
                        td { code { (r.capability_id) } }
                        td { (r.outcome) }
                        td.num { (amount(r.charged_micros)) }
                        td { (r.settlement) @if r.dispute.is_some() { " (disputed)" } }
                        td.num { (view::latency_us(r.duration_us)) }
                    }
                }
            }
        }
    }
}

/// Captured spending per UTC day over the last days, from the latest calls.
fn spending(web: &Web, org: &Org) -> Vec<Bar> {
    let today = now_ms() / 86_400_000;
    let first = today + 1 - SPEND_DAYS;
    let mut per_day: BTreeMap<u64, u64> = (first..=today).map(|d| (d, 0)).collect();
    let calls = web
        .market
        .calls_of("consumer", &org.org_id, None, SCAN_MAX)
        .unwrap_or_default();
    for r in calls.iter().take_while(|r| r.at_ms / 86_400_000 >= first) {
        if let Some(spent) = per_day.get_mut(&(r.at_ms / 86_400_000)) {
            *spent += r.charged_micros;
        }
    }
    per_day
        .into_iter()
        .map(|(d, micros)| Bar {
            label: view::day(d * 86_400_000),
            value: micros,
            shown: view::money(micros),
        })
        .collect()
}

#[derive(serde::Deserialize)]
pub struct BudgetForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    per_call_max: String,
    #[serde(default)]
    daily_max: String,
    #[serde(default)]
    approval_above: String,
    #[serde(default)]
    alert_percents: String,
    #[serde(default)]
    webhook_url: String,
    /// A checkbox: present (`on`) when ticked.
    #[serde(default)]
    paused: Option<String>,
}

fn units_field(text: &str, what: &str) -> Result<Option<u64>, String> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    parse_units(text)
        .map(Some)
        .ok_or_else(|| format!("{what}: “{text}” is not an amount (units, up to 6 decimals)"))
}

impl BudgetForm {
    fn budget(&self) -> Result<Budget, String> {
        let alert_percents = self
            .alert_percents
            .split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(|p| {
                p.parse::<u8>()
                    .map_err(|_| format!("Alert at: “{p}” is not a percentage"))
            })
            .collect::<Result<Vec<u8>, String>>()?;
        Ok(Budget {
            per_call_max_micros: units_field(&self.per_call_max, "Most per call")?,
            daily_max_micros: units_field(&self.daily_max, "Most per day")?,
            approval_above_micros: units_field(&self.approval_above, "Ask an approver above")?,
            alert_percents,
            webhook_url: Some(self.webhook_url.trim().to_string()).filter(|u| !u.is_empty()),
            paused: self.paused.is_some(),
        })
    }
}

pub async fn budget(
    State(web): State<Arc<Web>>,
    Seen(viewer): Seen,
    headers: HeaderMap,
    form: Result<axum::Form<BudgetForm>, axum::extract::rejection::FormRejection>,
) -> Response {
    let Ok(axum::Form(form)) = form else {
        return super::forbidden(&viewer, "this form could not be read");
    };
    if let Some(refused) = form_refused(&viewer, &headers, &form.csrf) {
        return refused;
    }
    let Some(org) = member(&web, &viewer) else {
        return sign_in_first("/account");
    };
    let budget = match form.budget() {
        Ok(b) => b,
        Err(problem) => {
            return failure(
                &viewer,
                crate::doors::Problem::new("invalid_request", problem),
            );
        }
    };
    match web.market.set_budget(&org, budget).await {
        Ok(_) => Redirect::to("/account?notice=Budget+saved.#budget").into_response(),
        Err(e) => failure(&viewer, e.into()),
    }
}

/// A transaction of the signed-in organisation (as consumer or provider);
/// anyone else's is not found.
fn own_transaction(web: &Web, org: &Org, id: &str) -> Option<InvocationRecord> {
    web.market
        .invocation(id)
        .ok()
        .flatten()
        .filter(|r| r.consumer_org_id == org.org_id || r.provider_org_id == org.org_id)
}

#[derive(serde::Deserialize)]
pub struct Notice {
    notice: Option<String>,
}

pub async fn transaction(
    State(web): State<Arc<Web>>,
    Seen(viewer): Seen,
    Path(id): Path<String>,
    Query(notice): Query<Notice>,
) -> Response {
    let Some(org) = member(&web, &viewer) else {
        return sign_in_first(&format!("/transactions/{}", encode(&id)));
    };
    let Some(r) = own_transaction(&web, &org, &id) else {
        return not_found(&viewer, "transaction");
    };
    let now = now_ms();
    let disputable = r.consumer_org_id == org.org_id
        && r.settlement == "escrowed"
        && r.dispute.is_none()
        && r.release_at_ms.is_some_and(|at| now < at);
    html_page(view::page(
        &viewer,
        "Transaction",
        notice.notice.as_deref(),
        html! {
            p.crumbs { a href="/account" { "Account" } " › transaction" }
            h1 { "Transaction" }
            p { code #transaction-id { (r.transaction_id) } }
            dl.facts {
                dt { "Capability" } dd { a href=(format!("/capabilities/{}", encode(&r.capability_id))) { code { (r.capability_id) } } }
                dt { "When (UTC)" } dd { (when(r.at_ms)) }
                dt { "Outcome" } dd #outcome { (r.outcome) }
                dt { "Fuel" } dd { (r.fuel_used) " of " (r.fuel_limit) }
                dt { "Cost" } dd { (amount(r.cost_micros)) " + fee " (amount(r.fee_micros)) " = " strong { (amount(r.charged_micros)) } }
                dt { "Settlement" } dd #settlement { (r.settlement) }
                @if let Some(at) = r.release_at_ms { dt { "Dispute window closes" } dd { (when(at)) } }
                dt { "Time" } dd { (view::latency_us(r.duration_us)) }
                dt { "Input SHA-256" } dd { code { (r.input_sha256) } }
            }
            @if let Some(d) = &r.dispute {
                section aria-labelledby="dispute" {
                    h2 #dispute { "Dispute" }
                    dl.facts {
                        dt { "Opened" } dd { (when(d.opened_at_ms)) }
                        dt { "Status" } dd #dispute-status { (d.status) }
                        dt { "Reason" } dd { (d.reason) }
                        dt { "Refunded" } dd { (amount(d.refund_micros)) }
                    }
                }
            }
            section aria-labelledby="receipt" {
                h2 #receipt { "Receipt" }
                @match &r.receipt {
                    Some(receipt) => (verified_receipt(&web, &receipt.to_value())),
                    None => p.muted { "No receipt was kept for this call." },
                }
            }
            @if disputable {
                section aria-labelledby="open-dispute" {
                    h2 #open-dispute { "Dispute this call" }
                    p { "Give the call's input again (only its hash was kept). The same input runs again on the same version: a provider fault is refunded at once; otherwise the operator decides." }
                    form.stack method="post" action=(format!("/transactions/{}/dispute", encode(&r.transaction_id))) {
                        input type="hidden" name="csrf" value=(viewer.csrf);
                        label for="input" { "The call's input (JSON)" }
                        textarea #input name="input" rows="6" required {}
                        label for="reason" { "Why (at most 2,000 characters)" }
                        textarea #reason name="reason" rows="3" maxlength="2000" {}
                        button type="submit" { "Open dispute" }
                    }
                }
            }
        },
    ))
}

#[derive(serde::Deserialize)]
pub struct DisputeForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    input: String,
    #[serde(default)]
    reason: String,
}

pub async fn dispute(
    State(web): State<Arc<Web>>,
    Seen(viewer): Seen,
    headers: HeaderMap,
    Path(id): Path<String>,
    form: Result<axum::Form<DisputeForm>, axum::extract::rejection::FormRejection>,
) -> Response {
    let Ok(axum::Form(form)) = form else {
        return super::forbidden(&viewer, "this form could not be read");
    };
    if let Some(refused) = form_refused(&viewer, &headers, &form.csrf) {
        return refused;
    }
    let Some(org) = member(&web, &viewer) else {
        return sign_in_first(&format!("/transactions/{}", encode(&id)));
    };
    let input: serde_json::Value = match serde_json::from_str(&form.input) {
        Ok(input) => input,
        Err(e) => {
            return failure(
                &viewer,
                crate::doors::Problem::new(
                    "invalid_request",
                    format!("the input is not JSON: {e}"),
                ),
            );
        }
    };
    match web.market.dispute(&org, &id, input, &form.reason).await {
        Ok(_) => Redirect::to(&format!(
            "/transactions/{}?notice=Dispute+opened.",
            encode(&id)
        ))
        .into_response(),
        Err(e) => failure(&viewer, e.into()),
    }
}

/// The organisation an approver's session approves for.
fn approver_of(viewer: &super::Viewer) -> Option<&str> {
    match &viewer.who {
        Some(Who::Approver { org_id }) => Some(org_id),
        _ => None,
    }
}

pub async fn approvals(
    State(web): State<Arc<Web>>,
    Seen(viewer): Seen,
    Query(notice): Query<Notice>,
) -> Response {
    let Some(org_id) = approver_of(&viewer) else {
        return sign_in_first("/approvals");
    };
    let pending = match web.market.pending_approvals(org_id) {
        Ok(p) => p,
        Err(e) => return failure(&viewer, e.into()),
    };
    html_page(view::page(
        &viewer,
        "Approvals",
        notice.notice.as_deref(),
        html! {
            h1 { "Calls waiting for approval" }
            p.muted { "Each is a call that may cost more than the threshold in the budget. Approve it and the agent's repeated call runs and is charged; reject it and that call fails with nothing charged." }
            @if pending.is_empty() {
                p.empty { "Nothing is waiting. New requests appear here when an agent's call is above the approval threshold." }
            } @else {
                table.results {
                    caption.sr { "Pending approvals" }
                    thead { tr { th scope="col" { "Asked (UTC)" } th scope="col" { "Capability" } th scope="col" { "At most" } th scope="col" { "Why it waits" } th scope="col" { "Decision" } } }
                    tbody {
                        @for a in &pending {
                            tr #(format!("approval-{}", a.approval_id)) {
                                td { (when(a.created_at_ms)) }
                                td { code { (a.capability_id) } }
                                td.num { (amount(a.hold_micros)) }
                                td { "may cost more than the approval threshold; lapses " (when(a.expires_at_ms)) }
                                td {
                                    form.inline method="post" action=(format!("/approvals/{}", encode(&a.approval_id))) {
                                        input type="hidden" name="csrf" value=(viewer.csrf);
                                        button type="submit" name="decision" value="approve" { "Approve" }
                                        " "
                                        button.secondary type="submit" name="decision" value="reject" { "Reject" }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        },
    ))
}

#[derive(serde::Deserialize)]
pub struct DecisionForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    decision: String,
}

pub async fn decide(
    State(web): State<Arc<Web>>,
    Seen(viewer): Seen,
    headers: HeaderMap,
    Path(id): Path<String>,
    form: Result<axum::Form<DecisionForm>, axum::extract::rejection::FormRejection>,
) -> Response {
    let Ok(axum::Form(form)) = form else {
        return super::forbidden(&viewer, "this form could not be read");
    };
    if let Some(refused) = form_refused(&viewer, &headers, &form.csrf) {
        return refused;
    }
    let Some(org_id) = approver_of(&viewer) else {
        return sign_in_first("/approvals");
    };
    let approve = match form.decision.as_str() {
        "approve" => true,
        "reject" => false,
        _ => {
            return failure(
                &viewer,
                crate::doors::Problem::new("invalid_request", "choose approve or reject"),
            );
        }
    };
    match web.market.decide_approval(org_id, &id, approve).await {
        Ok(a) => Redirect::to(&format!(
            "/approvals?notice={}",
            encode(&format!("Call {} {}.", a.capability_id, a.status))
        ))
        .into_response(),
        Err(e) => failure(&viewer, e.into()),
    }
}
