//! Tasks across replicas (a shared store): each task's document is also
//! kept in the store for [`TASK_TTL`], under its organisation, so
//! `GetTask`, `ListTasks` and `SubscribeToTask` answer on any replica, and
//! `CancelTask` on a replica that is not running the task tells the one
//! that is (the change feed), then reads its outcome from the store. A
//! call under a contract with retention `none` is shared without its
//! output. The embedded store has no other replica: nothing is shared.

use super::agent::A2a;
use super::tasks::{TASK_TTL, cancel_subject};
use super::wire::{self, code};
use crate::identity::Org;
use crate::market::{Shared, now_ms};
use serde_json::{Value, json};

/// How often a cancellation sent to another replica is looked for.
const CANCEL_POLL: std::time::Duration = std::time::Duration::from_millis(50);

/// How often a task another replica runs is read while subscribed to.
const FOLLOW_POLL: std::time::Duration = std::time::Duration::from_millis(100);

/// A shared task's key: its organisation's tasks are read together.
fn key(owner: &str, id: &str) -> String {
    format!("{owner}/{id}")
}

impl A2a {
    /// Keeps task `id` as it is now where the other replicas read it.
    pub(super) fn share(&self, id: &str) {
        if !self.market.is_replicated() {
            return;
        }
        let Some((owner, mut task)) = self
            .tasks()
            .get(id)
            .map(|entry| (entry.owner.clone(), entry.task()))
        else {
            return;
        };
        if task["metadata"]["mercato/settlement"]["retention"] == "none"
            && let Some(artifacts) = task["artifacts"].as_array_mut()
        {
            for artifact in artifacts {
                artifact["parts"] = json!([{"data": {"output_withheld": true}}]);
            }
        }
        let record = json!({
            "owner": owner,
            "task": task,
            "expires_at_ms": now_ms() + TASK_TTL.as_millis() as u64,
        });
        if let Err(error) = self
            .market
            .share(Shared::A2aTask, &key(&owner, id), &record)
        {
            tracing::warn!(%error, task = id, "A2A task not shared with the other replicas");
        }
    }

    /// Task `id` of `org` as another replica shared it.
    pub(super) fn shared(&self, org: &Org, id: &str) -> Option<Value> {
        let record = self
            .market
            .shared(Shared::A2aTask, &key(&org.org_id, id))
            .ok()??;
        (record["owner"] == org.org_id.as_str()).then(|| record["task"].clone())
    }

    /// Every task of `org` the replicas shared (this one's included).
    pub(super) fn shared_of(&self, org: &Org) -> Vec<Value> {
        if !self.market.is_replicated() {
            return Vec::new();
        }
        let prefix = format!("{}/", org.org_id);
        match self.market.shared_under(Shared::A2aTask, &prefix) {
            Ok(records) => records
                .into_iter()
                .filter(|r| r["owner"] == org.org_id.as_str())
                .map(|mut r| r["task"].take())
                .collect(),
            Err(error) => {
                tracing::warn!(%error, "the other replicas' A2A tasks are not listed");
                Vec::new()
            }
        }
    }

    /// `SubscribeToTask` for a task another replica runs: its current
    /// document now, its final status when its shared document ends.
    pub(super) fn subscribe_elsewhere(
        self: &std::sync::Arc<Self>,
        org: &Org,
        task_id: &str,
        task: Value,
        events: tokio::sync::mpsc::Sender<Value>,
        say: impl Fn(Value) -> Value + Send + 'static,
    ) {
        let (this, org, task_id) = (self.clone(), org.clone(), task_id.to_string());
        tokio::spawn(async move {
            if events.send(say(json!({"task": task}))).await.is_err() {
                return;
            }
            let closed = events.closed();
            if let Some(task) = this.follow_elsewhere(&org, &task_id, closed).await {
                let update = wire::status_update(&task_id, &task);
                let _ = events.send(say(update)).await;
            }
        });
    }

    /// Follows a task another replica runs until it ends (its shared
    /// document polled), bounded by [`TASK_TTL`]: its final document, or
    /// `None` when it disappeared or `closed` (the subscriber left).
    async fn follow_elsewhere(
        &self,
        org: &Org,
        id: &str,
        closed: impl std::future::Future<Output = ()>,
    ) -> Option<Value> {
        let started = std::time::Instant::now();
        tokio::pin!(closed);
        while started.elapsed() < TASK_TTL {
            tokio::select! {
                () = tokio::time::sleep(FOLLOW_POLL) => {}
                () = &mut closed => return None,
            }
            let task = self.shared(org, id)?;
            if wire::is_terminal(super::tasks::state(&task)) {
                return Some(task);
            }
        }
        None
    }

    /// Cancels a task another replica runs: asks it (the change feed) and
    /// waits, bounded, for the outcome it shares.
    pub(super) async fn cancel_elsewhere(
        &self,
        org: &Org,
        id: &str,
        wait: std::time::Duration,
        missing: (i64, String),
    ) -> Result<Value, (i64, String)> {
        let task = self.shared(org, id).ok_or(missing.clone())?;
        let not_cancelable = |state: &str| {
            (
                code::TASK_NOT_CANCELABLE,
                format!("task `{id}` is already {state}"),
            )
        };
        let state = super::tasks::state(&task).to_string();
        if wire::is_terminal(&state) {
            return Err(not_cancelable(&state));
        }
        self.market
            .announce(&cancel_subject(id))
            .map_err(|e| (code::INTERNAL, e.to_string()))?;
        let started = std::time::Instant::now();
        let mut task = task;
        while started.elapsed() < wait {
            tokio::time::sleep(CANCEL_POLL).await;
            task = self.shared(org, id).ok_or(missing.clone())?;
            if wire::is_terminal(super::tasks::state(&task)) {
                break;
            }
        }
        match super::tasks::state(&task) {
            wire::CANCELED => Ok(task),
            current if !wire::is_terminal(current) => Ok(task),
            current => Err(not_cancelable(current)),
        }
    }
}
