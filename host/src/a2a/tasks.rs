//! The A2A tasks kept in memory for `GetTask` and `CancelTask`: bounded in
//! number ([`TASKS_MAX`]), in bytes ([`TASK_BYTES_MAX`]), per organisation
//! ([`TASKS_PER_ORG_MAX`], [`TASK_BYTES_PER_ORG_MAX`]: its new tasks evict
//! only its own) and in time ([`TASK_TTL`]). A task keeps its output, never
//! its input (its history withholds calls' inputs), as compact JSON text (a parsed document of many small values
//! costs the host many times its size); a task being evicted does not stop
//! its call.

use super::wire::{self, code};
use crate::identity::Org;
use serde_json::{Value, json};
use std::collections::{HashMap, VecDeque};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// Tasks kept for `GetTask`; the oldest finished ones go first.
pub const TASKS_MAX: usize = 10_000;
/// Tasks one organisation keeps at once: its new tasks evict its own oldest,
/// never another organisation's.
pub const TASKS_PER_ORG_MAX: usize = 500;
/// Bytes of task documents (outputs included) kept in all.
pub const TASK_BYTES_MAX: usize = 256 << 20;
/// Bytes of task documents one organisation keeps.
pub const TASK_BYTES_PER_ORG_MAX: usize = 32 << 20;
/// How long a task is kept (its output in memory, never on disk) for
/// `GetTask`.
pub const TASK_TTL: std::time::Duration = std::time::Duration::from_secs(10 * 60);

/// One task: its organisation, its A2A `Task` document, and what cancels
/// or awaits its call.
pub(super) struct Entry {
    /// The organisation that sent it (the only one that sees it).
    pub(super) owner: String,
    /// The task as `GetTask` answers it, as compact JSON text.
    document: Box<str>,
    /// Its `status.state`.
    state: String,
    /// Cancels its call.
    pub(super) cancel: CancellationToken,
    /// Set once the task's final state is written.
    pub(super) finished: watch::Sender<bool>,
    /// When it was opened.
    created: std::time::Instant,
}

impl Entry {
    pub(super) fn new(owner: String, task: &Value, cancel: CancellationToken) -> Self {
        Entry {
            owner,
            document: task.to_string().into_boxed_str(),
            state: state(task).to_string(),
            cancel,
            finished: watch::Sender::new(false),
            created: std::time::Instant::now(),
        }
    }

    /// The task document.
    pub(super) fn task(&self) -> Value {
        serde_json::from_str(&self.document).unwrap_or(Value::Null)
    }

    /// Its `status.state`.
    pub(super) fn state(&self) -> &str {
        &self.state
    }

    fn bytes(&self) -> usize {
        self.document.len()
    }

    fn is_final(&self) -> bool {
        wire::is_terminal(&self.state)
    }
}

/// What one organisation keeps.
#[derive(Default, Clone, Copy)]
struct Kept {
    tasks: usize,
    bytes: usize,
}

/// The tasks by id, their ids in creation order, and what each
/// organisation keeps.
#[derive(Default)]
pub(super) struct Tasks {
    by_id: HashMap<String, Entry>,
    order: VecDeque<String>,
    kept: HashMap<String, Kept>,
    bytes: usize,
}

impl Tasks {
    pub(super) fn insert(&mut self, id: String, entry: Entry) {
        self.expire();
        // An organisation at its share makes room among its own tasks.
        let owner = entry.owner.clone();
        while self.kept_by(&owner).tasks >= TASKS_PER_ORG_MAX {
            if !self.evict_oldest(|e| e.owner == owner, None) {
                break;
            }
        }
        while self.by_id.len() >= TASKS_MAX {
            if !self.evict_oldest(|_| true, None) {
                break;
            }
        }
        self.account(&entry, true);
        self.order.push_back(id.clone());
        self.by_id.insert(id, entry);
        self.fit(&owner, None);
    }

    /// The entry `id`, whoever owns it.
    pub(super) fn get(&self, id: &str) -> Option<&Entry> {
        self.by_id.get(id)
    }

    /// `owner`'s tasks, oldest first.
    pub(super) fn owned_by<'t>(&'t self, owner: &'t str) -> impl Iterator<Item = &'t Entry> + 't {
        self.order
            .iter()
            .filter_map(|id| self.by_id.get(id))
            .filter(move |entry| entry.owner == owner)
    }

    /// A fresh cancellation and "finished" signal for task `id`'s next run
    /// (a continued task); `None` when the task is gone.
    pub(super) fn rearm(&mut self, id: &str) -> Option<CancellationToken> {
        let entry = self.by_id.get_mut(id)?;
        entry.cancel = CancellationToken::new();
        entry.finished = watch::Sender::new(false);
        Some(entry.cancel.clone())
    }

    /// Forgets task `id`.
    pub(super) fn remove(&mut self, id: &str) {
        if let Some(entry) = self.by_id.remove(id) {
            self.account(&entry, false);
            self.order.retain(|kept| kept != id);
        }
    }

    /// Replaces task `id`'s document with what `change` makes of it, then
    /// makes room (among its owner's tasks first) for what it grew by.
    /// Returns the new document (`Null` when the task is gone).
    pub(super) fn update(&mut self, id: &str, change: impl FnOnce(&mut Value)) -> Value {
        let Some(entry) = self.by_id.get(id) else {
            return Value::Null;
        };
        let mut task = entry.task();
        change(&mut task);
        let owner = entry.owner.clone();
        if let Some(entry) = self.by_id.remove(id) {
            self.account(&entry, false);
            let mut entry = entry;
            entry.document = task.to_string().into_boxed_str();
            entry.state = state(&task).to_string();
            self.account(&entry, true);
            self.by_id.insert(id.to_string(), entry);
        }
        self.fit(&owner, Some(id));
        task
    }

    fn kept_by(&self, owner: &str) -> Kept {
        self.kept.get(owner).copied().unwrap_or_default()
    }

    fn account(&mut self, entry: &Entry, added: bool) {
        let kept = self.kept.entry(entry.owner.clone()).or_default();
        if added {
            kept.tasks += 1;
            kept.bytes += entry.bytes();
            self.bytes += entry.bytes();
        } else {
            kept.tasks = kept.tasks.saturating_sub(1);
            kept.bytes = kept.bytes.saturating_sub(entry.bytes());
            self.bytes = self.bytes.saturating_sub(entry.bytes());
            if kept.tasks == 0 {
                self.kept.remove(&entry.owner);
            }
        }
    }

    /// Evicts `owner`'s oldest tasks past its byte share, then anyone's past
    /// the total, never `keep`.
    fn fit(&mut self, owner: &str, keep: Option<&str>) {
        while self.kept_by(owner).bytes > TASK_BYTES_PER_ORG_MAX {
            if !self.evict_oldest(|e| e.owner == owner, keep) {
                break;
            }
        }
        while self.bytes > TASK_BYTES_MAX {
            if !self.evict_oldest(|_| true, keep) {
                break;
            }
        }
    }

    /// Expired tasks go first, oldest first (the order is creation order).
    fn expire(&mut self) {
        while let Some(oldest) = self.order.front() {
            match self.by_id.get(oldest) {
                Some(e) if e.created.elapsed() < TASK_TTL => break,
                Some(e) if !e.is_final() => break,
                _ => {
                    if let Some(old) = self.order.pop_front()
                        && let Some(entry) = self.by_id.remove(&old)
                    {
                        self.account(&entry, false);
                    }
                }
            }
        }
    }

    /// Evicts the oldest finished task that `which` picks, or else the oldest
    /// it picks at all (its call goes on; only its record goes), never
    /// `keep`. `false` when it picks none.
    fn evict_oldest(&mut self, which: impl Fn(&Entry) -> bool, keep: Option<&str>) -> bool {
        let picked =
            |id: &String| Some(id.as_str()) != keep && self.by_id.get(id).is_some_and(&which);
        let position = self
            .order
            .iter()
            .position(|id| picked(id) && self.by_id.get(id).is_some_and(Entry::is_final))
            .or_else(|| self.order.iter().position(picked));
        match position.and_then(|p| self.order.remove(p)) {
            Some(old) => {
                if let Some(entry) = self.by_id.remove(&old) {
                    self.account(&entry, false);
                }
                true
            }
            None => false,
        }
    }
}

/// The caller's task `id`; another organisation's reads as missing.
pub(super) fn owned<'t>(tasks: &'t Tasks, org: &Org, id: &str) -> Result<&'t Entry, (i64, String)> {
    tasks
        .by_id
        .get(id)
        .filter(|e| e.owner == org.org_id)
        .ok_or((code::TASK_NOT_FOUND, format!("no task `{id}` of yours")))
}

/// Keeps the last `history_length` messages of a task's history, when a
/// request asks for fewer (0: none). Anything but a whole number is refused.
pub(super) fn limit_history(task: &mut Value, params: &Value) -> Result<(), (i64, String)> {
    let length = match params.get("historyLength") {
        None | Some(Value::Null) => return Ok(()),
        Some(n) => n.as_u64().ok_or((
            code::INVALID_PARAMS,
            "`historyLength` is a whole number, 0 or more".to_string(),
        ))?,
    };
    if let Some(history) = task.get_mut("history").and_then(Value::as_array_mut) {
        let over = history
            .len()
            .saturating_sub(usize::try_from(length).unwrap_or(usize::MAX));
        history.drain(..over);
    } else if let Some(object) = task.as_object_mut() {
        object.insert("history".into(), json!([]));
    }
    Ok(())
}

pub(super) fn state(task: &Value) -> &str {
    task["status"]["state"].as_str().unwrap_or("")
}

/// The subject that asks the replica running a task to cancel it.
pub(super) fn cancel_subject(task_id: &str) -> String {
    format!("a2a-cancel:{task_id}")
}

/// Cancels this replica's running tasks that another replica was asked to
/// cancel, for as long as the market runs.
pub(super) fn follow_cancels(
    market: &crate::market::Market,
    tasks: std::sync::Arc<std::sync::Mutex<Tasks>>,
) {
    if !market.is_replicated() {
        return;
    }
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        return;
    };
    let mut changes = market.door_changes();
    runtime.spawn(async move {
        loop {
            match changes.recv().await {
                Ok(subject) => {
                    if let Some(task_id) = subject.strip_prefix("a2a-cancel:") {
                        let tasks = tasks.lock().unwrap_or_else(|p| p.into_inner());
                        if let Some(entry) = tasks.get(task_id) {
                            entry.cancel.cancel();
                        }
                    }
                }
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn entry(state: &str, age: std::time::Duration) -> Entry {
        let task = json!({"status": {"state": state}});
        let mut entry = Entry::new("o".into(), &task, CancellationToken::new());
        entry.created = std::time::Instant::now() - age;
        entry
    }

    #[test]
    fn expired_finished_tasks_go_and_running_ones_stay() {
        let mut tasks = Tasks::default();
        let old = TASK_TTL + std::time::Duration::from_secs(1);
        tasks.insert("done".into(), entry(wire::COMPLETED, old));
        tasks.insert(
            "fresh".into(),
            entry(wire::COMPLETED, std::time::Duration::ZERO),
        );
        tasks.insert(
            "new".into(),
            entry(wire::WORKING, std::time::Duration::ZERO),
        );
        assert!(!tasks.by_id.contains_key("done"), "expired");
        assert!(tasks.by_id.contains_key("fresh") && tasks.by_id.contains_key("new"));

        let mut tasks = Tasks::default();
        tasks.insert("running".into(), entry(wire::WORKING, old));
        tasks.insert(
            "next".into(),
            entry(wire::WORKING, std::time::Duration::ZERO),
        );
        assert!(
            tasks.by_id.contains_key("running"),
            "a running task is not expired"
        );
    }

    #[test]
    fn one_organisation_evicts_only_its_own_tasks() {
        let mut tasks = Tasks::default();
        let mut other = entry(wire::COMPLETED, std::time::Duration::ZERO);
        other.owner = "victim".into();
        tasks.insert("victims".into(), other);
        for i in 0..TASKS_PER_ORG_MAX + 10 {
            tasks.insert(
                format!("t{i}"),
                entry(wire::COMPLETED, std::time::Duration::ZERO),
            );
        }
        assert!(tasks.by_id.contains_key("victims"), "another's task stays");
        assert_eq!(tasks.by_id.len(), TASKS_PER_ORG_MAX + 1);
        assert!(!tasks.by_id.contains_key("t9"));
        assert!(tasks.by_id.contains_key("t10"));
    }

    #[test]
    fn at_the_cap_the_oldest_finished_task_goes_first() {
        let mut tasks = Tasks::default();
        tasks.insert(
            "running".into(),
            entry(wire::WORKING, std::time::Duration::ZERO),
        );
        for i in 0..TASKS_MAX {
            let mut e = entry(wire::COMPLETED, std::time::Duration::ZERO);
            e.owner = format!("o{}", i % 100);
            tasks.insert(format!("t{i}"), e);
        }
        assert_eq!(tasks.by_id.len(), TASKS_MAX);
        assert!(tasks.by_id.contains_key("running"));
        assert!(!tasks.by_id.contains_key("t0"));
        assert!(tasks.by_id.contains_key(&format!("t{}", TASKS_MAX - 1)));
    }

    #[test]
    fn outputs_are_kept_compact_and_bounded_in_bytes_per_organisation() {
        let mut tasks = Tasks::default();
        let mut other = entry(wire::COMPLETED, std::time::Duration::ZERO);
        other.owner = "victim".into();
        tasks.insert("victims".into(), other);
        // 1 MiB outputs of many small values: kept as text, about their size.
        let output: Vec<u8> = vec![7; 512 << 10];
        let n = TASK_BYTES_PER_ORG_MAX / (1 << 20) + 8;
        for i in 0..n {
            let id = format!("t{i}");
            tasks.insert(id.clone(), entry(wire::WORKING, std::time::Duration::ZERO));
            let task = tasks.update(&id, |task| {
                task["artifacts"] = json!([{"parts": [{"data": output}]}]);
                task["status"]["state"] = json!(wire::COMPLETED);
            });
            assert_eq!(state(&task), wire::COMPLETED);
            assert!(tasks.get(&id).is_some(), "the task just finished stays");
        }
        let kept = tasks.kept_by("o");
        assert!(kept.bytes <= TASK_BYTES_PER_ORG_MAX, "{} bytes", kept.bytes);
        assert!(kept.tasks < n && kept.tasks > n / 2, "{} tasks", kept.tasks);
        assert!(!tasks.by_id.contains_key("t0"), "the oldest went first");
        assert!(tasks.by_id.contains_key("victims"), "another's task stays");
        assert_eq!(
            tasks.bytes,
            tasks.by_id.values().map(Entry::bytes).sum::<usize>()
        );
        let kept_task = tasks.get(&format!("t{}", n - 1)).expect("kept").task();
        assert_eq!(kept_task["artifacts"][0]["parts"][0]["data"][0], 7);
        tasks.remove(&format!("t{}", n - 1));
        assert_eq!(
            tasks.bytes,
            tasks.by_id.values().map(Entry::bytes).sum::<usize>()
        );
    }
}
