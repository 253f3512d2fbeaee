//! The A2A tasks kept in memory for `GetTask` and `CancelTask`: bounded in
//! number ([`TASKS_MAX`]), per organisation ([`TASKS_PER_ORG_MAX`], whose new
//! tasks evict only its own) and in time ([`TASK_TTL`]). A task keeps its
//! output, never its input; a task being evicted does not stop its call.

use super::wire::{self, code};
use crate::identity::Org;
use serde_json::Value;
use std::collections::{HashMap, VecDeque};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// Tasks kept for `GetTask`; the oldest finished ones go first.
pub const TASKS_MAX: usize = 10_000;
/// Tasks one organisation keeps at once: its new tasks evict its own oldest,
/// never another organisation's.
pub const TASKS_PER_ORG_MAX: usize = 500;
/// How long a task is kept (its output in memory, never on disk) for
/// `GetTask`.
pub const TASK_TTL: std::time::Duration = std::time::Duration::from_secs(10 * 60);

/// One task: its organisation, its A2A `Task` document, and what cancels
/// or awaits its call.
pub(super) struct Entry {
    /// The organisation that sent it (the only one that sees it).
    pub(super) owner: String,
    /// The task as `GetTask` answers it.
    pub(super) task: Value,
    /// Cancels its call.
    pub(super) cancel: CancellationToken,
    /// Set once the task's final state is written.
    pub(super) finished: watch::Sender<bool>,
    /// When it was opened.
    pub(super) created: std::time::Instant,
}

/// The tasks by id, and their ids in creation order.
#[derive(Default)]
pub(super) struct Tasks {
    pub(super) by_id: HashMap<String, Entry>,
    order: VecDeque<String>,
}

impl Tasks {
    pub(super) fn insert(&mut self, id: String, entry: Entry) {
        // Expired tasks go first, oldest first (the order is creation order).
        while let Some(oldest) = self.order.front() {
            match self.by_id.get(oldest) {
                Some(e) if e.created.elapsed() < TASK_TTL => break,
                Some(e) if !wire::is_terminal(state(&e.task)) => break,
                _ => {
                    if let Some(old) = self.order.pop_front() {
                        self.by_id.remove(&old);
                    }
                }
            }
        }
        // An organisation at its share makes room among its own tasks.
        let mine = |e: &Entry| e.owner == entry.owner;
        while self.by_id.values().filter(|e| mine(e)).count() >= TASKS_PER_ORG_MAX {
            if !self.evict_oldest(|e| mine(e)) {
                break;
            }
        }
        while self.by_id.len() >= TASKS_MAX {
            // Evict the oldest final task; if every kept task is running,
            // the oldest of all (its call goes on; only its record goes).
            let position = self
                .order
                .iter()
                .position(|id| {
                    self.by_id
                        .get(id)
                        .is_none_or(|e| wire::is_terminal(state(&e.task)))
                })
                .unwrap_or(0);
            match self.order.remove(position) {
                Some(old) => {
                    self.by_id.remove(&old);
                }
                None => break,
            }
        }
        self.order.push_back(id.clone());
        self.by_id.insert(id, entry);
    }

    /// Evicts the oldest finished task that `which` picks, or else the oldest
    /// it picks at all (its call goes on; only its record goes). `false`
    /// when it picks none.
    fn evict_oldest(&mut self, which: impl Fn(&Entry) -> bool) -> bool {
        let picked = |id: &String| self.by_id.get(id).is_some_and(&which);
        let position = self
            .order
            .iter()
            .position(|id| {
                picked(id)
                    && self
                        .by_id
                        .get(id)
                        .is_some_and(|e| wire::is_terminal(state(&e.task)))
            })
            .or_else(|| self.order.iter().position(picked));
        match position.and_then(|p| self.order.remove(p)) {
            Some(old) => {
                self.by_id.remove(&old);
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

pub(super) fn state(task: &Value) -> &str {
    task["status"]["state"].as_str().unwrap_or("")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn entry(state: &str, age: std::time::Duration) -> Entry {
        Entry {
            owner: "o".into(),
            task: json!({"status": {"state": state}}),
            cancel: CancellationToken::new(),
            finished: watch::Sender::new(false),
            created: std::time::Instant::now() - age,
        }
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
}
