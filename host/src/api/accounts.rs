//! Money routes: deposits (admin), balances, budgets, disputes.

use super::Problem;
use super::auth::{Admin, Approver, Caller};
use super::body::Body;
use super::idempotency;
use crate::market::{Decision, DisputeRecord, Market};
use crate::settlement::{Balance, Budget};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use utoipa::ToSchema;

fn json<T: Serialize>(value: &T) -> Result<serde_json::Value, Problem> {
    serde_json::to_value(value).map_err(|_| Problem::internal())
}

/// A deposit.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Deposit {
    /// Micros to credit (1 unit = 1,000,000 micros).
    #[schema(minimum = 1, maximum = 1_000_000_000_000_000_f64)]
    pub amount_micros: u64,
}

/// Credits an organisation's account (admin token). With an
/// `Idempotency-Key`, a retry never credits twice.
#[utoipa::path(post, path = "/v1/accounts/{org}/deposits", tag = "accounts", security(("admin" = [])),
    params(("org" = String, Path, description = "organisation id"),
           ("Idempotency-Key" = Option<String>, Header, description = "makes retries safe")),
    request_body = Deposit,
    responses((status = 201, body = Balance), (status = 400, body = super::ErrorBody),
              (status = 403, body = super::ErrorBody), (status = 404, body = super::ErrorBody),
              (status = 422, body = super::ErrorBody, description = "key reused with another body")))]
pub async fn deposits_create(
    State(market): State<Arc<Market>>,
    _admin: Admin,
    Path(org_id): Path<String>,
    headers: HeaderMap,
    body: Result<Body<Deposit>, Problem>,
) -> Result<Response, Problem> {
    let Body(deposit) = body?;
    let scope = idempotency::Scope::operator(&format!("deposit:{org_id}"));
    let body = json(&deposit)?;
    let deposit_id = headers
        .get("idempotency-key")
        .and_then(|k| k.to_str().ok())
        .map(str::to_string)
        .unwrap_or_else(|| uuid::Uuid::now_v7().simple().to_string());
    Ok(idempotency::once(&market, &headers, &scope, &body, || {
        let market = market.clone();
        async move {
            let balance = market
                .deposit(&org_id, deposit.amount_micros, &deposit_id)
                .await?;
            Ok((StatusCode::CREATED, json(&balance)?))
        }
    })
    .await)
}

/// The caller's balances and budget.
#[utoipa::path(get, path = "/v1/accounts/me", tag = "accounts", security(("bearer" = [])),
    responses((status = 200, body = Balance), (status = 401, body = super::ErrorBody)))]
pub async fn accounts_me(State(market): State<Arc<Market>>, Caller(org): Caller) -> Json<Balance> {
    Json(market.balance(&org))
}

/// Sets the caller's budget: a per-call limit (it also caps calls that name
/// no `max_price_micros`) and a daily limit (reaching it pauses calls with
/// 402 `budget_exhausted` until 00:00 UTC or a higher budget).
#[utoipa::path(put, path = "/v1/accounts/me/budget", tag = "accounts", security(("bearer" = [])),
    request_body = Budget,
    responses((status = 200, body = Balance), (status = 400, body = super::ErrorBody)))]
pub async fn budget_put(
    State(market): State<Arc<Market>>,
    Caller(org): Caller,
    body: Result<Body<Budget>, Problem>,
) -> Result<Json<Balance>, Problem> {
    let Body(budget) = body?;
    Ok(Json(market.set_budget(&org, budget).await?))
}

/// A dispute.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OpenDispute {
    /// The call's input again (only its hash was kept); it must hash the same.
    #[schema(value_type = Object)]
    pub input: serde_json::Value,
    /// Why, for the admin who may review it.
    #[serde(default)]
    #[schema(max_length = 2000)]
    pub reason: String,
}

/// Disputes a call within its dispute window. The same input runs again on
/// the same component version: a provider fault (trap, output breaking the
/// schema, a different output from a deterministic capability) is refunded at
/// once; otherwise the escrow is held for an admin's decision.
#[utoipa::path(post, path = "/v1/transactions/{id}/dispute", tag = "transactions", security(("bearer" = [])),
    params(("id" = String, Path, description = "transaction id"),
           ("Idempotency-Key" = Option<String>, Header, description = "makes retries safe")),
    request_body = OpenDispute,
    responses((status = 201, body = DisputeRecord), (status = 400, body = super::ErrorBody),
              (status = 404, body = super::ErrorBody), (status = 409, body = super::ErrorBody)))]
pub async fn disputes_create(
    State(market): State<Arc<Market>>,
    Caller(org): Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Result<Body<OpenDispute>, Problem>,
) -> Result<Response, Problem> {
    let Body(dispute) = body?;
    let scope = idempotency::Scope::org(&org.org_id, &format!("dispute:{id}"));
    let body = json(&dispute)?;
    Ok(idempotency::once(&market, &headers, &scope, &body, || {
        let market = market.clone();
        async move {
            let record = market
                .dispute(&org, &id, dispute.input, &dispute.reason)
                .await?;
            Ok((StatusCode::CREATED, json(&record)?))
        }
    })
    .await)
}

/// An admin's decision.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Decide {
    /// `refund`, `partial` or `reject`.
    pub decision: Decision,
    /// For `partial`: micros returned to the consumer.
    #[serde(default)]
    pub refund_micros: Option<u64>,
}

/// Decides a dispute waiting for review (admin token).
#[utoipa::path(post, path = "/v1/transactions/{id}/dispute/decision", tag = "transactions", security(("admin" = [])),
    params(("id" = String, Path, description = "transaction id")),
    request_body = Decide,
    responses((status = 200, body = DisputeRecord), (status = 403, body = super::ErrorBody),
              (status = 404, body = super::ErrorBody, description = "no such transaction"),
              (status = 409, body = super::ErrorBody)))]
pub async fn disputes_decide(
    State(market): State<Arc<Market>>,
    _admin: Admin,
    Path(id): Path<String>,
    body: Result<Body<Decide>, Problem>,
) -> Result<Json<DisputeRecord>, Problem> {
    let Body(decide) = body?;
    Ok(Json(
        market
            .decide(&id, decide.decision, decide.refund_micros)
            .await?,
    ))
}

/// Where all the money is and whether the books balance (admin token):
/// deposits = organisations + escrow + fees.
#[utoipa::path(get, path = "/v1/admin/ledger", tag = "accounts", security(("admin" = [])),
    responses((status = 200, body = crate::settlement::Audit), (status = 403, body = super::ErrorBody)))]
pub async fn ledger_audit(
    State(market): State<Arc<Market>>,
    _admin: Admin,
) -> Json<crate::settlement::Audit> {
    Json(market.audit())
}

/// A rating.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Rate {
    /// 1 (bad) to 5 (excellent).
    #[schema(minimum = 1, maximum = 5)]
    pub score: u8,
    /// Free text, at most 1,000 characters.
    #[serde(default)]
    #[schema(max_length = 1000)]
    pub comment: String,
}

/// Rates a transaction, once per side: its consumer rates the capability and
/// its provider, its provider rates the consumer. Scores are time-decayed
/// means shown on listings and used by discovery (`rating_min`, ranking).
#[utoipa::path(post, path = "/v1/transactions/{id}/rating", tag = "transactions", security(("bearer" = [])),
    params(("id" = String, Path, description = "transaction id")),
    request_body = Rate,
    responses((status = 201, body = crate::market::RatingRecord), (status = 400, body = super::ErrorBody),
              (status = 404, body = super::ErrorBody), (status = 409, body = super::ErrorBody)))]
pub async fn ratings_create(
    State(market): State<Arc<Market>>,
    Caller(org): Caller,
    Path(id): Path<String>,
    body: Result<Body<Rate>, Problem>,
) -> Result<(StatusCode, Json<crate::market::RatingRecord>), Problem> {
    let Body(rate) = body?;
    Ok((
        StatusCode::CREATED,
        Json(market.rate(&org, &id, rate.score, &rate.comment).await?),
    ))
}

/// An organisation's reputation.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
pub struct OrgReputation {
    /// The organisation.
    pub org_id: String,
    /// Time-decayed mean rating, 1 to 5 (none before the first rating).
    pub rating: Option<f64>,
    /// Ratings received.
    pub ratings: u64,
}

/// An organisation's rating (as a provider, from its consumers, and as a
/// consumer, from its providers).
#[utoipa::path(get, path = "/v1/orgs/{id}/reputation", tag = "orgs",
    params(("id" = String, Path, description = "organisation id")),
    responses((status = 200, body = OrgReputation)))]
pub async fn orgs_reputation(
    State(market): State<Arc<Market>>,
    Path(org_id): Path<String>,
) -> Json<OrgReputation> {
    let score = market.org_score(&org_id);
    Json(OrgReputation {
        org_id,
        rating: score.rating,
        ratings: score.ratings,
    })
}

/// Issues an approver token for the caller's organisation (shown once): the
/// person holding it accepts or rejects calls above the approval threshold.
#[utoipa::path(post, path = "/v1/orgs/{id}/approvers", tag = "accounts", security(("bearer" = [])),
    params(("id" = String, Path, description = "organisation id (the caller's)")),
    responses((status = 201, body = crate::market::NewApprover), (status = 403, body = super::ErrorBody)))]
pub async fn approvers_create(
    State(market): State<Arc<Market>>,
    Caller(org): Caller,
    Path(org_id): Path<String>,
) -> Result<(StatusCode, Json<crate::market::NewApprover>), Problem> {
    if org.org_id != org_id {
        return Err(Problem::new(
            "forbidden",
            "an organisation names its own approvers",
        ));
    }
    Ok((
        StatusCode::CREATED,
        Json(market.create_approver(&org).await?),
    ))
}

/// Calls waiting for approval (for the organisation's API key or an approver token).
#[utoipa::path(get, path = "/v1/approvals", tag = "accounts", security(("bearer" = [])),
    responses((status = 200, body = [crate::market::Approval]), (status = 401, body = super::ErrorBody)))]
pub async fn approvals_list(
    State(market): State<Arc<Market>>,
    approver: Result<Approver, Problem>,
    caller: Result<Caller, Problem>,
) -> Result<Json<Vec<crate::market::Approval>>, Problem> {
    let org_id = match (approver, caller) {
        (Ok(Approver(org_id)), _) => org_id,
        (_, Ok(Caller(org))) => org.org_id,
        (_, Err(e)) => return Err(e),
    };
    Ok(Json(market.pending_approvals(&org_id)?))
}

/// An approver's decision.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ApprovalDecision {
    /// `approve` or `reject`.
    pub decision: String,
}

/// Approves or rejects a waiting call (approver token). The consumer then
/// repeats the call with `approval_id`; an approval is used once.
#[utoipa::path(post, path = "/v1/approvals/{id}", tag = "accounts", security(("approver" = [])),
    params(("id" = String, Path, description = "approval id")),
    request_body = ApprovalDecision,
    responses((status = 200, body = crate::market::Approval), (status = 403, body = super::ErrorBody),
              (status = 404, body = super::ErrorBody), (status = 409, body = super::ErrorBody)))]
pub async fn approvals_decide(
    State(market): State<Arc<Market>>,
    Approver(org_id): Approver,
    Path(id): Path<String>,
    body: Result<Body<ApprovalDecision>, Problem>,
) -> Result<Json<crate::market::Approval>, Problem> {
    let Body(body) = body?;
    let approve = match body.decision.as_str() {
        "approve" => true,
        "reject" => false,
        other => {
            return Err(Problem::new(
                "invalid_request",
                format!(
                    "decision is approve or reject, not {:?}",
                    other.chars().take(32).collect::<String>()
                ),
            ));
        }
    };
    Ok(Json(market.decide_approval(&org_id, &id, approve).await?))
}

/// The caller's webhook signing secret: every delivery to its webhook
/// carries `Mercato-Signature: t=<unix ms>,v1=<hex>`, the HMAC-SHA256 under
/// this secret of `<t>.<body>`.
#[utoipa::path(get, path = "/v1/accounts/me/webhook-secret", tag = "accounts", security(("bearer" = [])),
    responses((status = 200, body = crate::market::WebhookSecret), (status = 401, body = super::ErrorBody)))]
pub async fn webhook_secret_get(
    State(market): State<Arc<Market>>,
    Caller(org): Caller,
) -> Json<crate::market::WebhookSecret> {
    Json(market.webhook_secret(&org.org_id))
}

/// The caller's latest events: budget alerts, pauses, approvals requested.
#[utoipa::path(get, path = "/v1/accounts/me/events", tag = "accounts", security(("bearer" = [])),
    responses((status = 200, body = [crate::market::Event])))]
pub async fn events_list(
    State(market): State<Arc<Market>>,
    Caller(org): Caller,
) -> Result<Json<Vec<crate::market::Event>>, Problem> {
    Ok(Json(market.events(&org.org_id)?))
}
