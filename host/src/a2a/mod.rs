//! The A2A front door (v1.0, with the v0.3 method names and shapes for
//! older clients): the marketplace as an agent whose skills are the listed
//! capabilities, JSON-RPC at `/a2a` (and per capability at
//! `/a2a/agents/{id}`), agent cards, and tasks.
//!
//! A message's data part says what to do: `{"capability_id", "input",
//! "max_price_micros"?, "contract_id"?, "approval_id"?}` invokes (through
//! the same settlement path as REST); `{"action": "negotiate" | "discover" |
//! "quote", …}` runs a marketplace operation with the MCP tools' arguments;
//! a message with text only is a need to discover for. Each becomes a task:
//! `COMPLETED` with an artifact, `FAILED` (the provider's fault), `REJECTED`
//! (refused: price, funds, limits, approval) or `CANCELED`.
//!
//! Owns: JSON-RPC dispatch, tasks (in memory only, at most [`TASKS_MAX`],
//! [`TASKS_PER_ORG_MAX`] per organisation,
//! each for [`TASK_TTL`]; a task keeps its output, never its input), cards,
//! streaming events. Does not know about: HTTP (the REST module frames
//! [`Reply`]).

mod tasks;
pub mod wire;

use tasks::{Entry, Tasks, owned, state};
pub use tasks::{TASK_TTL, TASKS_MAX, TASKS_PER_ORG_MAX};

use crate::agents::{self, Failed};
use crate::identity::Org;
use crate::market::{CapabilityView, InvokeRequest, Market, now_ms};
use serde_json::{Map, Value, json};
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use wire::code;

/// Skills listed on the marketplace's card (the rest are found with a
/// text message, which discovers).
pub const SKILLS_MAX: usize = 500;
/// How long `CancelTask` waits for a cancelled call to stop (it stops at
/// the guest's next yield: within 100,000 fuel, or at once when parked).
const CANCEL_WAIT: std::time::Duration = std::time::Duration::from_secs(5);
/// Events a streaming call may have waiting for a slow client.
const STREAM_BUFFER: usize = 256;

/// The protocol dialect of a request, from its method name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dialect {
    V1,
    V03,
}

/// What the REST module sends back.
pub enum Reply {
    /// One JSON-RPC response.
    Json(Value),
    /// JSON-RPC responses as server-sent events, the last one final.
    Stream(mpsc::Receiver<Value>),
}

/// The A2A agent behind `/a2a`.
pub struct A2a {
    market: Arc<Market>,
    tasks: Mutex<Tasks>,
}

/// What a message asks for.
enum Operation {
    /// A call, keyed by its message's `messageId` (when usable as a key).
    Invoke(InvokeRequest, Option<String>),
    Marketplace {
        action: String,
        arguments: Value,
    },
}

fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

fn agent_message(context_id: &str, task_id: &str, parts: Vec<Value>) -> Value {
    json!({
        "messageId": new_id(),
        "contextId": context_id,
        "taskId": task_id,
        "role": "ROLE_AGENT",
        "parts": parts,
    })
}

fn status(state: &str, message: Option<Value>) -> Value {
    let mut status = json!({"state": state, "timestamp": wire::timestamp(now_ms())});
    if let Some(message) = message {
        status["message"] = message;
    }
    status
}

/// A settled call as a task's outcome: its output and settlement (and
/// whether it was replayed for a message sent again).
fn settled(result: crate::market::InvokeResult, replay: bool) -> Value {
    let (output, settlement) = agents::split(result);
    let mut value = json!({"output": output, "mercato/settlement": settlement});
    if replay {
        value["mercato/idempotent_replay"] = true.into();
    }
    value
}

/// The JSON-RPC error for a failure that is the request's fault, if it is.
fn params_error(failed: &Failed) -> Option<String> {
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
    /// The agent over `market`.
    pub fn new(market: Arc<Market>) -> Self {
        A2a {
            market,
            tasks: Mutex::new(Tasks::default()),
        }
    }

    /// The configured public URL, if any.
    pub fn public_url(&self) -> Option<&str> {
        self.market.config().public_url.as_deref()
    }

    fn tasks(&self) -> std::sync::MutexGuard<'_, Tasks> {
        self.tasks.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The marketplace's agent card; `base` is the URL clients reach us at.
    pub fn card(&self, base: &str) -> Value {
        let mut views = self.market.capabilities();
        views.sort_by(|a, b| a.id.cmp(&b.id));
        let total = views.len();
        views.truncate(SKILLS_MAX);
        let skills: Vec<Value> = views.iter().map(skill).collect();
        let mut description = "A marketplace of agent capabilities, each sandboxed and metered: send a data part \
             {\"capability_id\", \"input\", \"max_price_micros\"} to buy a call, {\"action\": \"negotiate\", …} for terms, \
             or plain text to discover capabilities for a need. Calls are charged to the API key's organisation."
            .to_string();
        if total > SKILLS_MAX {
            description.push_str(&format!(
                " {SKILLS_MAX} of {total} capabilities are listed as skills; discover finds the rest."
            ));
        }
        card(
            "Mercato marketplace",
            &description,
            &format!("{base}/a2a"),
            base,
            skills,
        )
    }

    /// The card of one capability as an agent of its own, at
    /// `/a2a/agents/{id}`; `None` if it is not listed.
    pub fn capability_card(&self, base: &str, id: &str) -> Option<Value> {
        let view = self.market.capability(id).ok()?;
        let description = format!(
            "{} Send a data part {{\"input\": …, \"max_price_micros\"?: …}}; calls are charged to the API key's organisation.",
            view.description
        );
        Some(card(
            &view.id,
            &description,
            &format!("{base}/a2a/agents/{}", view.id),
            base,
            vec![skill(&view)],
        ))
    }

    /// Handles one JSON-RPC request from `org`. `version` is the
    /// `A2A-Version` header; `capability` the per-capability endpoint's.
    pub async fn handle(
        self: &Arc<Self>,
        org: Org,
        request: Value,
        version: Option<&str>,
        capability: Option<String>,
    ) -> Reply {
        let id = request.get("id").cloned().unwrap_or(Value::Null);
        if request.get("jsonrpc").and_then(Value::as_str) != Some("2.0") || !request.is_object() {
            return Reply::Json(wire::error(
                &id,
                code::INVALID_REQUEST,
                "not a JSON-RPC 2.0 request",
            ));
        }
        let Some(method) = request.get("method").and_then(Value::as_str) else {
            return Reply::Json(wire::error(&id, code::INVALID_REQUEST, "no method"));
        };
        if let Some(version) = version
            && !matches!(version.trim(), "1.0" | "0.3" | "0.3.0")
        {
            return Reply::Json(wire::error(
                &id,
                code::VERSION_NOT_SUPPORTED,
                format!("A2A version {version} is not supported (1.0, 0.3)"),
            ));
        }
        let params = request.get("params").cloned().unwrap_or(Value::Null);
        let (dialect, method) = match method {
            "SendMessage" => (Dialect::V1, "send"),
            "SendStreamingMessage" => (Dialect::V1, "stream"),
            "GetTask" => (Dialect::V1, "get"),
            "CancelTask" => (Dialect::V1, "cancel"),
            "message/send" => (Dialect::V03, "send"),
            "message/stream" => (Dialect::V03, "stream"),
            "tasks/get" => (Dialect::V03, "get"),
            "tasks/cancel" => (Dialect::V03, "cancel"),
            m if m.contains("PushNotification")
                || m.starts_with("tasks/pushNotificationConfig") =>
            {
                return Reply::Json(wire::error(
                    &id,
                    code::PUSH_NOT_SUPPORTED,
                    "push notifications are not offered; stream or poll GetTask",
                ));
            }
            "ListTasks"
            | "SubscribeToTask"
            | "GetExtendedAgentCard"
            | "tasks/resubscribe"
            | "agent/getAuthenticatedExtendedCard" => {
                return Reply::Json(wire::error(
                    &id,
                    code::UNSUPPORTED,
                    format!("{method} is not offered"),
                ));
            }
            other => {
                return Reply::Json(wire::error(
                    &id,
                    code::METHOD_NOT_FOUND,
                    format!("no method `{}`", other.chars().take(64).collect::<String>()),
                ));
            }
        };
        let answer = |result: Result<Value, (i64, String)>| match result {
            Ok(value) if dialect == Dialect::V03 => wire::result(&id, wire::to_v03(&value)),
            Ok(value) => wire::result(&id, value),
            Err((code, message)) => wire::error(&id, code, message),
        };
        match method {
            "get" => Reply::Json(answer(self.get(&org, &params))),
            "cancel" => Reply::Json(answer(self.cancel(&org, &params).await)),
            "send" => Reply::Json(answer(self.send(org, &params, capability).await)),
            _ => match self.stream(org, &params, capability, id.clone(), dialect) {
                Ok(events) => Reply::Stream(events),
                Err((code, message)) => Reply::Json(wire::error(&id, code, message)),
            },
        }
    }

    fn task_id(params: &Value) -> Result<&str, (i64, String)> {
        params.get("id").and_then(Value::as_str).ok_or((
            code::INVALID_PARAMS,
            "params.id (the task id) is required".into(),
        ))
    }

    /// `GetTask` and `CancelTask` answer a task; `SendMessage` a oneof
    /// holding one (`{"task": …}`), which [`wire::to_v03`] unwraps for v0.3.
    fn get(&self, org: &Org, params: &Value) -> Result<Value, (i64, String)> {
        let id = Self::task_id(params)?;
        Ok(owned(&self.tasks(), org, id)?.task())
    }

    /// Cancels a running task and waits (bounded) for its call to stop, so
    /// the answer is what happened: `CANCELED` (nothing charged), or
    /// not cancelable because the call finished first (and was charged).
    async fn cancel(&self, org: &Org, params: &Value) -> Result<Value, (i64, String)> {
        let id = Self::task_id(params)?;
        let not_cancelable = |state: &str| {
            (
                code::TASK_NOT_CANCELABLE,
                format!("task `{id}` is already {state}"),
            )
        };
        let mut finished = {
            let tasks = self.tasks();
            let entry = owned(&tasks, org, id)?;
            let current = entry.state();
            if wire::is_terminal(current) {
                return Err(not_cancelable(current));
            }
            entry.cancel.cancel();
            entry.finished.subscribe()
        };
        let _ = tokio::time::timeout(CANCEL_WAIT, finished.wait_for(|done| *done)).await;
        let task = owned(&self.tasks(), org, id)?.task();
        match state(&task) {
            wire::CANCELED => Ok(task),
            // Still stopping (past the wait): it will end `CANCELED`.
            current if !wire::is_terminal(current) => Ok(task),
            current => Err(not_cancelable(current)),
        }
    }

    /// Reads a message into an operation.
    fn operation(
        &self,
        params: &Value,
        capability: Option<String>,
    ) -> Result<(Operation, Value), (i64, String)> {
        let message = params
            .get("message")
            .filter(|m| m.is_object())
            .ok_or((code::INVALID_PARAMS, "params.message is required".into()))?;
        let parts = message["parts"].as_array().cloned().unwrap_or_default();
        let data = parts
            .iter()
            .find_map(|p| p.get("data").filter(|d| d.is_object()))
            .cloned()
            .map(wire::integral);
        let data = data.as_ref();
        let text: Vec<&str> = parts.iter().filter_map(|p| p["text"].as_str()).collect();
        let bad = |m: &str| (code::INVALID_PARAMS, m.to_string());
        let operation = match data {
            Some(data) => {
                let action = data["action"].as_str().unwrap_or("invoke");
                match action {
                    "invoke" => {
                        let capability_id = data["capability_id"]
                            .as_str()
                            .map(str::to_string)
                            .or(capability)
                            .ok_or_else(|| bad("the data part needs `capability_id`"))?;
                        let input = data
                            .get("input")
                            .cloned()
                            .ok_or_else(|| bad("the data part needs `input`"))?;
                        let number = |key: &str| -> Result<Option<u64>, (i64, String)> {
                            data.get(key)
                                .map(|v| {
                                    v.as_u64().ok_or_else(|| {
                                        bad(&format!("`{key}` must be a whole number"))
                                    })
                                })
                                .transpose()
                        };
                        // A cap or a contract that cannot be read is an
                        // error, never a call without it.
                        let text = |key: &str| -> Result<Option<String>, (i64, String)> {
                            data.get(key)
                                .filter(|v| !v.is_null())
                                .map(|v| {
                                    v.as_str()
                                        .map(str::to_string)
                                        .ok_or_else(|| bad(&format!("`{key}` must be a string")))
                                })
                                .transpose()
                        };
                        let capability_id =
                            crate::mcp::capability_id(&capability_id).unwrap_or(capability_id);
                        if self.market.object_schemas(&capability_id).is_err() {
                            return Err(bad(&format!(
                                "no capability `{}`",
                                crate::market::echoed(&capability_id)
                            )));
                        }
                        // A2A messages are unique by `messageId`: a message
                        // sent again is a retry, answered once.
                        let key = message["messageId"]
                            .as_str()
                            .filter(|k| {
                                !k.is_empty()
                                    && k.chars().count() <= crate::market::KEY_CHARS_MAX
                                    && !k.chars().any(char::is_control)
                            })
                            .map(str::to_string);
                        Operation::Invoke(
                            InvokeRequest {
                                capability_id,
                                input,
                                max_price_micros: number("max_price_micros")?,
                                contract_id: text("contract_id")?,
                                approval_id: text("approval_id")?,
                                cancel: None,
                            },
                            key,
                        )
                    }
                    "negotiate" | "discover" | "quote" => {
                        let mut arguments = data.as_object().cloned().unwrap_or_default();
                        arguments.remove("action");
                        if let Some(capability) = capability
                            && action != "discover"
                            && !arguments.contains_key("negotiation_id")
                        {
                            arguments
                                .entry("capability_id")
                                .or_insert(Value::String(capability));
                        }
                        Operation::Marketplace {
                            action: action.into(),
                            arguments: Value::Object(arguments),
                        }
                    }
                    other => {
                        return Err(bad(&format!(
                            "unknown action `{}` (invoke, negotiate, discover, quote)",
                            other.chars().take(32).collect::<String>()
                        )));
                    }
                }
            }
            None if !text.is_empty() => Operation::Marketplace {
                action: "discover".into(),
                arguments: json!({"need": text.join("\n")}),
            },
            None => return Err(bad("the message needs a data part or a text part")),
        };
        Ok((operation, message.clone()))
    }

    /// Creates a task for `message` in `WORKING` and keeps it.
    fn open(&self, org: &Org, message: &Value) -> (String, String, CancellationToken) {
        let task_id = new_id();
        let context_id = message["contextId"]
            .as_str()
            .filter(|c| !c.is_empty() && c.len() <= 128)
            .map(str::to_string)
            .unwrap_or_else(new_id);
        // No history: the input is not kept (calls keep only its hash).
        let task = json!({
            "id": task_id,
            "contextId": context_id,
            "status": status(wire::WORKING, None),
            "artifacts": [],
        });
        let cancel = CancellationToken::new();
        self.tasks().insert(
            task_id.clone(),
            Entry::new(org.org_id.clone(), &task, cancel.clone()),
        );
        (task_id, context_id, cancel)
    }

    /// Records how a task ended (a cancelled call ends `CANCELED`; one
    /// that finished before its cancellation took hold ends as it ended) and
    /// returns the task as kept.
    fn finish(&self, task_id: &str, outcome: Result<Value, Failed>, context_id: &str) -> Value {
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
                        let body = agents::error_body(e);
                        let message = body["error"]["message"].as_str().unwrap_or("").to_string();
                        (body, message)
                    }
                    Failed::Answered(body) => {
                        let message = body["error"]["message"].as_str().unwrap_or("").to_string();
                        (body, message)
                    }
                };
                let code = body["error"]["code"].as_str().unwrap_or("");
                let state = if agents::is_refusal(code)
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

    async fn run(
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
                let body = |e: crate::api::ApiError| {
                    Failed::Answered(serde_json::to_value(e.body()).unwrap_or_default())
                };
                use crate::api::Once;
                let (answer, replay) = match crate::api::invoke_once(
                    &self.market,
                    org,
                    request,
                    &key,
                    emitter,
                )
                .await
                {
                    Err(refused) => return Err(body(refused)),
                    Ok(Once::Ran(Err(error))) => return Err(body(error)),
                    Ok(Once::Ran(Ok((_, answer)))) => (answer, false),
                    Ok(Once::Replayed(seen)) if seen.status != 200 => {
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
                "discover" => agents::discover(&self.market, arguments).await,
                "quote" => agents::quote(&self.market, arguments).await,
                _ => agents::negotiate(&self.market, org, arguments).await,
            },
        }
    }

    async fn send(
        self: &Arc<Self>,
        org: Org,
        params: &Value,
        capability: Option<String>,
    ) -> Result<Value, (i64, String)> {
        let (operation, message) = self.operation(params, capability)?;
        let (task_id, context_id, cancel) = self.open(&org, &message);
        let immediately = params["configuration"]["returnImmediately"].as_bool() == Some(true)
            || params["configuration"]["blocking"].as_bool() == Some(false);
        let this = self.clone();
        let work = {
            let (task_id, context_id) = (task_id.clone(), context_id.clone());
            async move {
                let outcome = this.run(&org, operation, cancel, None).await;
                let invalid = outcome.as_ref().err().and_then(params_error);
                (this.finish(&task_id, outcome, &context_id), invalid)
            }
        };
        if immediately {
            tokio::spawn(work);
            let task = self.tasks().get(&task_id).map(Entry::task);
            return Ok(json!({ "task": task }));
        }
        let (task, invalid) = work.await;
        if let Some(message) = invalid {
            self.tasks().remove(&task_id);
            return Err((code::INVALID_PARAMS, message));
        }
        Ok(json!({ "task": task }))
    }

    fn stream(
        self: &Arc<Self>,
        org: Org,
        params: &Value,
        capability: Option<String>,
        id: Value,
        dialect: Dialect,
    ) -> Result<mpsc::Receiver<Value>, (i64, String)> {
        let (operation, message) = self.operation(params, capability)?;
        let (task_id, context_id, cancel) = self.open(&org, &message);
        let (events, receiver) = mpsc::channel::<Value>(STREAM_BUFFER);
        let this = self.clone();
        tokio::spawn(async move {
            let say = |result: Value| {
                let result = if dialect == Dialect::V03 {
                    wire::to_v03(&result)
                } else {
                    result
                };
                wire::result(&id, result)
            };
            let first = this.tasks().get(&task_id).map(Entry::task);
            if events.send(say(json!({"task": first}))).await.is_err() {
                cancel.cancel();
            }
            // One emitted chunk as an update of the `stream` artifact.
            let chunk_update = |chunk: String, append: bool| {
                json!({"artifactUpdate": {
                    "taskId": task_id, "contextId": context_id,
                    "artifact": {"artifactId": "stream", "name": "stream", "parts": [{"text": chunk}]},
                    "append": append, "lastChunk": false,
                }})
            };
            let (chunks, mut chunks_rx) = crate::market::chunk_channel();
            let call = this.run(&org, operation, cancel.clone(), Some(chunks));
            tokio::pin!(call);
            let mut sent = 0usize;
            let outcome = loop {
                tokio::select! {
                    outcome = &mut call => break outcome,
                    Some(chunk) = chunks_rx.recv() => {
                        let update = chunk_update(chunk, sent > 0);
                        sent += 1;
                        // A client that went away cancels its call, and its
                        // chunks are no longer read (the guest's `emit`
                        // drops them): nothing is drained for nobody.
                        if events.send(say(update)).await.is_err() {
                            cancel.cancel();
                            chunks_rx.close();
                            break (&mut call).await;
                        }
                    }
                }
            };
            // Chunks emitted just before the end, while the client listens
            // (each send waits for room in the bounded stream).
            while !events.is_closed()
                && let Ok(chunk) = chunks_rx.try_recv()
            {
                let update = chunk_update(chunk, sent > 0);
                sent += 1;
                if events.send(say(update)).await.is_err() {
                    break;
                }
            }
            drop(chunks_rx);
            let task = this.finish(&task_id, outcome, &context_id);
            if let Some(artifact) = task["artifacts"].get(0) {
                let update = json!({"artifactUpdate": {
                    "taskId": task_id, "contextId": context_id,
                    "artifact": artifact, "append": false, "lastChunk": true,
                }});
                let _ = events.send(say(update)).await;
            }
            let mut update =
                json!({"taskId": task_id, "contextId": context_id, "status": task["status"]});
            if let Some(metadata) = task.get("metadata") {
                update["metadata"] = metadata.clone();
            }
            let _ = events.send(say(json!({"statusUpdate": update}))).await;
        });
        Ok(receiver)
    }
}

fn skill(view: &CapabilityView) -> Value {
    let mut tags = vec![view.category.clone()];
    tags.extend(view.tags.iter().cloned());
    json!({
        "id": view.id,
        "name": format!("{} · {}", view.agent, view.name),
        "description": format!(
            "{} Price {} micros per call + {} per million fuel; latency ≤ {} ms.",
            view.description, view.terms.price_micros, view.terms.micros_per_mfuel, view.terms.latency_ms_max
        ),
        "tags": tags,
        "examples": view.examples.iter().take(3).map(|e| json!({"capability_id": view.id, "input": e.input}).to_string()).collect::<Vec<_>>(),
        "inputModes": ["application/json"],
        "outputModes": ["application/json"],
    })
}

fn card(name: &str, description: &str, url: &str, base: &str, skills: Vec<Value>) -> Value {
    let mut card = Map::new();
    card.insert("name".into(), json!(name));
    card.insert("description".into(), json!(description));
    card.insert(
        "supportedInterfaces".into(),
        json!([
            {"url": url, "protocolBinding": "JSONRPC", "protocolVersion": "1.0"},
            {"url": url, "protocolBinding": "JSONRPC", "protocolVersion": "0.3"},
        ]),
    );
    card.insert(
        "provider".into(),
        json!({"organization": "Mercato", "url": base}),
    );
    card.insert("version".into(), json!(env!("CARGO_PKG_VERSION")));
    card.insert(
        "documentationUrl".into(),
        json!(format!("{base}/openapi.json")),
    );
    card.insert(
        "capabilities".into(),
        json!({"streaming": true, "pushNotifications": false, "extendedAgentCard": false}),
    );
    card.insert(
        "securitySchemes".into(),
        json!({"bearer": {"httpAuthSecurityScheme": {
            "scheme": "Bearer",
            "bearerFormat": "Mercato API key (mk_…)",
            "description": "An organisation's API key (POST /v1/orgs); calls are charged to that organisation.",
        }}}),
    );
    card.insert(
        "securityRequirements".into(),
        json!([{"schemes": {"bearer": {"list": []}}}]),
    );
    card.insert(
        "defaultInputModes".into(),
        json!(["application/json", "text/plain"]),
    );
    card.insert("defaultOutputModes".into(), json!(["application/json"]));
    card.insert("skills".into(), Value::Array(skills));
    // For v0.3 clients, which read these instead of `supportedInterfaces`.
    card.insert("url".into(), json!(url));
    card.insert("preferredTransport".into(), json!("JSONRPC"));
    card.insert("protocolVersion".into(), json!("0.3.0"));
    Value::Object(card)
}
