//! The A2A agent: JSON-RPC dispatch in both dialects, and a task's life
//! (opened from a message, read, streamed, cancelled).

use super::agent::{A2a, new_id};
use super::outcome::{params_error, status};
use super::tasks::{Entry, limit_history, owned, state};
use super::wire::{self, code};
use crate::identity::Org;
use serde_json::{Value, json};
use std::sync::Arc;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// How long `CancelTask` waits for a cancelled call to stop (it stops at
/// the guest's next yield: within 100,000 fuel, or at once when parked).
const CANCEL_WAIT: std::time::Duration = std::time::Duration::from_secs(5);
/// Events a streaming call may have waiting for a slow client.
const STREAM_BUFFER: usize = 256;
/// Messages a task's history keeps (the latest).
const HISTORY_MAX: usize = 20;

/// A message as a task's history keeps it: never a call's input (a data
/// part's `input` is withheld; calls keep only its hash), the rest as sent
/// (a need's text, the capability, the price cap).
fn recorded(message: &Value) -> Value {
    let mut kept = message.clone();
    if let Some(parts) = kept.get_mut("parts").and_then(Value::as_array_mut) {
        for part in parts {
            if let Some(data) = part.get_mut("data").and_then(Value::as_object_mut)
                && data.remove("input").is_some()
            {
                data.insert("mercato/input_withheld".into(), true.into());
            }
        }
    }
    if let Some(object) = kept.as_object_mut() {
        object.remove("metadata");
        // v0.3 clients say `user`; the task speaks v1.0.
        if object.get("role").and_then(Value::as_str) == Some("user") {
            object.insert("role".into(), "ROLE_USER".into());
        }
    }
    kept
}

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

impl A2a {
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
        // JSON-RPC ids are strings, numbers or null; anything else makes the
        // request invalid (answered with a null id: the given one cannot be
        // echoed as an id).
        if !matches!(id, Value::Null | Value::String(_) | Value::Number(_)) {
            return Reply::Json(wire::error(
                &Value::Null,
                code::INVALID_REQUEST,
                "a request id is a string, a number or null",
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
            "ListTasks" => (Dialect::V1, "list"),
            "SubscribeToTask" => (Dialect::V1, "subscribe"),
            "tasks/resubscribe" => (Dialect::V03, "subscribe"),
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
            "GetExtendedAgentCard" | "agent/getAuthenticatedExtendedCard" => {
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
            "list" => Reply::Json(answer(self.list(&org, &params))),
            "subscribe" => Reply::Stream(self.subscribe(&org, &params, id.clone(), dialect)),
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
        let here = owned(&self.tasks(), org, id).map(|entry| entry.task());
        // Not here: another replica's, shared through the store.
        let mut task = here.or_else(|missing| self.shared(org, id).ok_or(missing))?;
        limit_history(&mut task, params)?;
        Ok(task)
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
        let here = owned(&self.tasks(), org, id).map(|_| ());
        if let Err(missing) = here {
            // Not here: another replica's, asked through the change feed.
            return self.cancel_elsewhere(org, id, CANCEL_WAIT, missing).await;
        }
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

    /// Opens the task `message` asks for: a new one in `WORKING`, or, when
    /// it names one of the caller's tasks (`taskId`) that has ended, that
    /// task again (its history grows, its artifacts are replaced by the new
    /// outcome). A task not the caller's is not found; a task still running
    /// takes no second message. Returns the task id, its context, the new
    /// run's cancellation, and whether the task existed before.
    fn open(
        &self,
        org: &Org,
        message: &Value,
    ) -> Result<(String, String, CancellationToken, bool), (i64, String)> {
        let recorded = recorded(message);
        let given_task = match message.get("taskId").filter(|t| !t.is_null()) {
            None => None,
            Some(Value::String(id)) => Some(id.clone()),
            Some(_) => return Err((code::INVALID_PARAMS, "`taskId` is a string".into())),
        };
        if let Some(task_id) = given_task {
            let mut tasks = self.tasks();
            let entry = owned(&tasks, org, &task_id)?;
            if !wire::is_terminal(entry.state()) {
                return Err((
                    code::UNSUPPORTED,
                    format!(
                        "task `{task_id}` is still {}; wait for it (GetTask) or cancel it first",
                        entry.state()
                    ),
                ));
            }
            let Some(cancel) = tasks.rearm(&task_id) else {
                return Err((
                    code::TASK_NOT_FOUND,
                    format!("no task `{task_id}` of yours"),
                ));
            };
            let task = tasks.update(&task_id, |task| {
                task["status"] = status(wire::WORKING, None);
                task["artifacts"] = json!([]);
                if let Some(object) = task.as_object_mut() {
                    object.remove("metadata");
                }
                let history = task["history"].as_array_mut();
                match history {
                    Some(history) => {
                        history.push(recorded);
                        let over = history.len().saturating_sub(HISTORY_MAX);
                        history.drain(..over);
                    }
                    None => task["history"] = json!([recorded]),
                }
            });
            drop(tasks);
            self.share(&task_id);
            let context_id = task["contextId"].as_str().unwrap_or_default().to_string();
            return Ok((task_id, context_id, cancel, true));
        }
        let task_id = new_id();
        let context_id = message["contextId"]
            .as_str()
            .filter(|c| !c.is_empty() && c.len() <= 128)
            .map(str::to_string)
            .unwrap_or_else(new_id);
        let task = json!({
            "id": task_id,
            "contextId": context_id,
            "status": status(wire::WORKING, None),
            "artifacts": [],
            "history": [recorded],
        });
        let cancel = CancellationToken::new();
        self.tasks().insert(
            task_id.clone(),
            Entry::new(org.org_id.clone(), &task, cancel.clone()),
        );
        self.share(&task_id);
        Ok((task_id, context_id, cancel, false))
    }

    async fn send(
        self: &Arc<Self>,
        org: Org,
        params: &Value,
        capability: Option<String>,
    ) -> Result<Value, (i64, String)> {
        let (operation, message) = self.operation(params, capability)?;
        let (task_id, context_id, cancel, continued) = self.open(&org, &message)?;
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
            // A new task that never made sense is not kept; a continued
            // one keeps its history, its last run refused.
            if !continued {
                self.tasks().remove(&task_id);
            }
            return Err((code::INVALID_PARAMS, message));
        }
        Ok(json!({ "task": task }))
    }

    /// `SubscribeToTask`: a running task's current state now and its final
    /// state when it ends, as a stream. Answered as a stream also when it
    /// cannot be followed: one error event (task not found; a task that
    /// has ended is read with `GetTask`).
    fn subscribe(
        self: &Arc<Self>,
        org: &Org,
        params: &Value,
        id: Value,
        dialect: Dialect,
    ) -> mpsc::Receiver<Value> {
        let (events, receiver) = mpsc::channel::<Value>(4);
        let followed = (|| {
            let task_id = Self::task_id(params)?;
            let tasks = self.tasks();
            let entry = owned(&tasks, org, task_id)?;
            if wire::is_terminal(entry.state()) {
                return Err((
                    code::UNSUPPORTED,
                    format!(
                        "task `{task_id}` has ended ({}); GetTask reads it",
                        entry.state()
                    ),
                ));
            }
            Ok((
                task_id.to_string(),
                entry.task(),
                entry.finished.subscribe(),
            ))
        })();
        let answer_id = id.clone();
        let say = move |result: Value| {
            let result = if dialect == Dialect::V03 {
                wire::to_v03(&result)
            } else {
                result
            };
            wire::result(&answer_id, result)
        };
        let (task_id, task, mut finished) = match followed {
            Ok(followed) => followed,
            Err((code, message)) => {
                // Not here: a task another replica runs, followed through
                // what it shares.
                let elsewhere = (code == code::TASK_NOT_FOUND)
                    .then(|| Self::task_id(params).ok())
                    .flatten()
                    .and_then(|task_id| Some((task_id, self.shared(org, task_id)?)))
                    .filter(|(_, task)| !wire::is_terminal(super::tasks::state(task)));
                match elsewhere {
                    Some((task_id, task)) => {
                        self.subscribe_elsewhere(org, task_id, task, events, say);
                    }
                    None => {
                        let _ = events.try_send(wire::error(&id, code, message));
                    }
                }
                return receiver;
            }
        };
        let this = self.clone();
        tokio::spawn(async move {
            if events.send(say(json!({"task": task}))).await.is_err() {
                return;
            }
            tokio::select! {
                _ = finished.wait_for(|done| *done) => {}
                () = events.closed() => return,
            }
            let Some(task) = this.tasks().get(&task_id).map(Entry::task) else {
                return;
            };
            let _ = events.send(say(wire::status_update(&task_id, &task))).await;
        });
        receiver
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
        let (task_id, context_id, cancel, _) = self.open(&org, &message)?;
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
