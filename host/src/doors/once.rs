//! Idempotency keys: the same key with the same body returns the first
//! answer and never acts twice; the same key with another body is refused
//! (`idempotency_conflict`). One rule and one key space for every door: the
//! same call through REST (`Idempotency-Key`), MCP (`_meta`
//! `mercato/idempotency_key`) or A2A (the message's `messageId`) under the
//! same key is the same call.
//!
//! Once claimed, a request runs to its end on a task of its own, whether or
//! not its client stays to hear the answer, and the answer is remembered
//! before the claim is released. A retry meanwhile is
//! `idempotency_in_progress`; a retry after it gets the answer, never a
//! second run.

use super::problem::{Problem, is_transient};
use crate::identity::Org;
use crate::market::{Claim, Claimed, InvokeRequest, KEY_CHARS_MAX, Market, Remembered, now_ms};
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::sync::Arc;

/// A door's answer to a keyed request: a success with the status the door
/// gave it (REST's 200 or 201; the agent doors say 200), or the problem.
pub type Answer = Result<(u16, Value), Problem>;

/// The status an agent door's successful call is remembered with (what
/// REST answers the same call with).
const CALLED: u16 = 200;

/// Whose keys, for what: keys live under `name`, and an organisation's
/// fresh keys count towards what it may store while it is neither verified
/// nor funded (the operator's do not).
pub struct Scope {
    name: String,
    org_id: Option<String>,
}

impl Scope {
    /// `org_id`'s keys for `what` (a route and its target).
    pub fn org(org_id: &str, what: &str) -> Self {
        Scope {
            name: format!("{org_id}:{what}"),
            org_id: Some(org_id.to_string()),
        }
    }

    /// The operator's keys for `what`.
    pub fn operator(what: &str) -> Self {
        Scope {
            name: format!("admin:{what}"),
            org_id: None,
        }
    }
}

/// A claimed key: act, or answer again.
pub enum Keyed {
    /// A fresh key, claimed: act, then [`remember`].
    Fresh {
        /// The claim, released by [`remember`] (or when dropped).
        claimed: Claimed,
        /// What the body hashes to.
        body_sha256: String,
    },
    /// Answered before: send this again.
    Replay(Remembered),
}

/// Claims `key` for `scope`, or says why not (a bad key, a key used with
/// another body, a key in progress: retry after a second).
pub fn claim(market: &Market, key: &str, scope: &Scope, body: &Value) -> Result<Keyed, Problem> {
    if key.is_empty() || key.chars().count() > KEY_CHARS_MAX || key.chars().any(char::is_control) {
        return Err(Problem::new(
            "invalid_request",
            format!("an idempotency key must be 1 to {KEY_CHARS_MAX} visible characters"),
        ));
    }
    let scoped = format!("{}:{key}", scope.name);
    let body_sha256 = hex::encode(Sha256::digest(body.to_string().as_bytes()));
    match market.claim(&scoped, &body_sha256)? {
        Claim::Replay(seen) => Ok(Keyed::Replay(seen)),
        Claim::Conflict => Err(Problem::new(
            "idempotency_conflict",
            "this idempotency key was used with a different request",
        )),
        Claim::InProgress => Err(Problem::new(
            "idempotency_in_progress",
            "a request with this idempotency key is being handled; retry shortly",
        )
        .with_details(serde_json::json!({ "retry_after_ms": 1_000 }))),
        Claim::Fresh(claimed) => {
            // A fresh key is stored for 48 h: counted for an organisation
            // that is neither verified nor funded (refused, the claim goes).
            if let Some(org_id) = &scope.org_id {
                market.creation_allowed(org_id)?;
            }
            Ok(Keyed::Fresh {
                claimed,
                body_sha256,
            })
        }
    }
}

/// Remembers `answer` for a claimed key (transient failures are not kept:
/// the claim is only released) and returns it.
pub async fn remember(
    market: &Market,
    claimed: Claimed,
    body_sha256: String,
    answer: Answer,
) -> Answer {
    let remembered = match &answer {
        Ok((status, body)) => Some((Some(*status), body.clone())),
        Err(problem) if !is_transient(problem.code()) => Some((None, problem.to_value())),
        Err(_) => None,
    }
    .map(|(status, mut body)| {
        // Under a contract with retention `none` the output never reaches
        // the disk: a replay says it was withheld.
        if body["retention"] == "none"
            && let Some(object) = body.as_object_mut()
        {
            object.insert("output".into(), Value::Null);
            object.insert("output_withheld".into(), true.into());
        }
        Remembered {
            body_sha256,
            status,
            body,
            at_ms: now_ms(),
        }
    });
    if let Err(error) = market.remember(claimed, remembered).await {
        return Err(error.into());
    }
    answer
}

/// The key space and body of an invoke (the same for every door).
pub fn invoke_scope(org: &Org, request: &InvokeRequest) -> (Scope, Value) {
    let scope = Scope::org(&org.org_id, &format!("invoke:{}", request.capability_id));
    let body = serde_json::json!({
        "input": request.input,
        "max_price_micros": request.max_price_micros,
        "contract_id": request.contract_id,
        "approval_id": request.approval_id,
    });
    (scope, body)
}

/// What a keyed call came to.
pub enum Once {
    /// It ran now: the settled call as JSON, or its problem (remembered,
    /// unless transient).
    Ran(Result<Value, Problem>),
    /// It ran before: the remembered answer.
    Replayed(Remembered),
}

/// Invokes at most once per `key` for an agent door (MCP, A2A), by the
/// module's rule: a fresh key runs to its end on a task of its own (the
/// request's cancellation still cancels it; a cancelled call is not
/// remembered) and its answer is remembered as REST remembers it.
pub async fn invoke_once(
    market: &Arc<Market>,
    org: &Org,
    request: InvokeRequest,
    key: &str,
    emitter: Option<tokio::sync::mpsc::Sender<String>>,
) -> Result<Once, Problem> {
    let (scope, body) = invoke_scope(org, &request);
    let (claimed, body_sha256) = match claim(market, key, &scope, &body)? {
        Keyed::Replay(seen) => return Ok(Once::Replayed(seen)),
        Keyed::Fresh {
            claimed,
            body_sha256,
        } => (claimed, body_sha256),
    };
    let market = market.clone();
    let org = org.clone();
    let task = tokio::spawn(async move {
        let answer = market
            .invoke(&org, request, emitter)
            .await
            .map_err(Problem::from)
            .and_then(|result| {
                serde_json::to_value(&result)
                    .map(|body| (CALLED, body))
                    .map_err(|_| Problem::internal())
            });
        remember(&market, claimed, body_sha256, answer).await
    });
    match task.await {
        Ok(answer) => Ok(Once::Ran(answer.map(|(_, body)| body))),
        Err(_) => Err(Problem::internal()),
    }
}
