//! How a task's operation runs and how the task records its end: the
//! settled output, the refusal or failure (with the REST error body), or the
//! cancellation.

use super::agent::{A2a, new_id};
use super::message::Operation;
use super::wire;
use crate::doors::once::{self, Once};
use crate::doors::{self, Failed, Problem};
use crate::identity::Org;
use crate::market::now_ms;
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

pub(super) fn agent_message(context_id: &str, task_id: &str, parts: Vec<Value>) -> Value {
    json!({
        "messageId": new_id(),
        "contextId": context_id,
        "taskId": task_id,
        "role": "ROLE_AGENT",
        "parts": parts,
    })
}

pub(super) fn status(state: &str, message: Option<Value>) -> Value {
    let mut status = json!({"state": state, "timestamp": wire::timestamp(now_ms())});
    if let Some(message) = message {
        status["message"] = message;
    }
    status
}

/// A settled call as a task's outcome: its output and settlement (and
/// whether it was replayed for a message sent again).
fn settled(result: crate::market::InvokeResult, replay: bool) -> Value {
    let (output, settlement) = doors::split(result);
    let mut value = json!({"output": output, "mercato/settlement": settlement});
    if replay {
        value["mercato/idempotent_replay"] = true.into();
    }
    value
}

/// The JSON-RPC error for a failure that is the request's fault, if it is.
pub(super) fn params_error(failed: &Failed) -> Option<String> {
    match failed {
        Failed::Answered(body) if body["error"]["code"] == "invalid_input" => Some(format!(
            "the input breaks the capability's input schema: {}",
            body["error"]["details"]["violations"]
        )),
        Failed::Arguments(message) => Some(message.clone()),
        Failed::Market(crate::market::Error::InvalidQuery(message)) => Some(message.clone()),
        Failed::Market(crate::market::Error::InvalidInput { violations }) => Some(format!(
            "the input breaks the capability's input schema: {}",
            serde_json::to_string(violations).unwrap_or_default()
        )),
        _ => None,
    }
}

impl A2a {
    /// Records how a task ended (a cancelled call ends `CANCELED`; one
    /// that finished before its cancellation took hold ends as it ended) and
    /// returns the task as kept.
    pub(super) fn finish(
        &self,
        task_id: &str,
        outcome: Result<Value, Failed>,
        context_id: &str,
    ) -> Value {
        let task = self.record_end(task_id, outcome, context_id);
        self.share(task_id);
        task
    }

    fn record_end(&self, task_id: &str, outcome: Result<Value, Failed>, context_id: &str) -> Value {
        let mut tasks = self.tasks();
        let Some(entry) = tasks.get(task_id) else {
            return Value::Null;
        };
        entry.finished.send_replace(true);
        tasks.update(task_id, |task| match outcome {
            Ok(value) => {
                let (output, settlement) = match value.get("mercato/settlement") {
                    Some(settlement) => (value["output"].clone(), Some(settlement.clone())),
                    None => (value.clone(), None),
                };
                task["artifacts"] = json!([{
                    "artifactId": "output",
                    "name": "output",
                    "parts": [{"data": output}],
                }]);
                if let Some(settlement) = settlement {
                    task["metadata"] = json!({"mercato/settlement": settlement});
                }
                if value.get("mercato/idempotent_replay").is_some() {
                    task["metadata"]["mercato/idempotent_replay"] = true.into();
                }
                task["status"] = status(wire::COMPLETED, None);
            }
            Err(Failed::Market(crate::market::Error::Cancelled)) => {
                task["status"] = status(wire::CANCELED, None);
            }
            Err(Failed::Answered(body)) if body["error"]["code"] == "cancelled" => {
                task["status"] = status(wire::CANCELED, None);
            }
            Err(failed) => {
                let (body, message) = match failed {
                    Failed::Arguments(m) => (
                        json!({"error": {"code": "invalid_request", "message": m}}),
                        m,
                    ),
                    Failed::Market(e) => {
                        let body = doors::error_body(e);
                        let message = body["error"]["message"].as_str().unwrap_or("").to_string();
                        (body, message)
                    }
                    Failed::Answered(body) => {
                        let message = body["error"]["message"].as_str().unwrap_or("").to_string();
                        (body, message)
                    }
                };
                let code = body["error"]["code"].as_str().unwrap_or("");
                let state = if doors::is_refusal(code)
                    || code == "invalid_request"
                    || code == "invalid_input"
                {
                    wire::REJECTED
                } else {
                    wire::FAILED
                };
                let parts = vec![json!({"text": message}), json!({"data": body})];
                task["status"] = status(state, Some(agent_message(context_id, task_id, parts)));
                task["metadata"] = json!({"mercato/error": body});
            }
        })
    }

    pub(super) async fn run(
        &self,
        org: &Org,
        operation: Operation,
        cancel: CancellationToken,
        emitter: Option<mpsc::Sender<String>>,
    ) -> Result<Value, Failed> {
        match operation {
            Operation::Invoke(mut request, key) => {
                request.cancel = Some(cancel);
                let Some(key) = key else {
                    let result = self.market.invoke(org, request, emitter).await?;
                    return Ok(settled(result, false));
                };
                let body = |e: Problem| Failed::Answered(e.to_value());
                let (answer, replay) =
                    match once::invoke_once(&self.market, org, request, &key, emitter).await {
                        Err(refused) => return Err(body(refused)),
                        Ok(Once::Ran(Err(error))) => return Err(body(error)),
                        Ok(Once::Ran(Ok(answer))) => (answer, false),
                        Ok(Once::Replayed(seen)) if seen.error_code().is_some() => {
                            return Err(Failed::Answered(seen.body));
                        }
                        Ok(Once::Replayed(seen)) => (seen.body, true),
                    };
                serde_json::from_value(answer)
                    .map(|result| settled(result, replay))
                    .map_err(|e| {
                        Failed::Arguments(format!("a remembered answer is unreadable: {e}"))
                    })
            }
            Operation::Marketplace { action, arguments } => match action.as_str() {
                "discover" => doors::discover(&self.market, org, arguments).await,
                "quote" => doors::quote(&self.market, arguments).await,
                _ => doors::negotiate(&self.market, org, arguments).await,
            },
        }
    }
}
