//! `ListTasks`: the caller's tasks, newest status first, filtered by
//! context, state and status time (at or after), paged by an opaque token
//! (the last task of the page before), artifacts only when asked for, each
//! history cut to `historyLength`.

use super::agent::A2a;
use super::tasks::state;
use super::wire::{self, code};
use crate::identity::Org;
use serde_json::{Value, json};

/// Tasks per page unless asked otherwise.
const PAGE_SIZE_DEFAULT: u64 = 50;
/// The most tasks on one page.
const PAGE_SIZE_MAX: u64 = 100;

type Refusal = (i64, String);

fn invalid(message: impl Into<String>) -> Refusal {
    (code::INVALID_PARAMS, message.into())
}

/// A whole number parameter within `range`, if given.
fn whole(
    params: &Value,
    key: &str,
    range: std::ops::RangeInclusive<u64>,
) -> Result<Option<u64>, Refusal> {
    match params.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(value) => value
            .as_u64()
            .filter(|n| range.contains(n))
            .map(Some)
            .ok_or_else(|| {
                invalid(format!(
                    "`{key}` is a whole number from {} to {}",
                    range.start(),
                    range.end()
                ))
            }),
    }
}

/// A string parameter, if given.
fn text<'p>(params: &'p Value, key: &str) -> Result<Option<&'p str>, Refusal> {
    match params.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(invalid(format!("`{key}` is a string"))),
    }
}

impl A2a {
    /// Lists `org`'s tasks (never another organisation's).
    pub(super) fn list(&self, org: &Org, params: &Value) -> Result<Value, Refusal> {
        if !(params.is_object() || params.is_null()) {
            return Err(invalid("params is an object"));
        }
        let page_size = whole(params, "pageSize", 1..=PAGE_SIZE_MAX)?.unwrap_or(PAGE_SIZE_DEFAULT);
        whole(params, "historyLength", 0..=u64::from(u32::MAX))?;
        let context = text(params, "contextId")?;
        let wanted_state = match text(params, "status")? {
            Some(s) if wire::is_state(s) => Some(s),
            Some(s) => {
                return Err(invalid(format!(
                    "`status` `{}` is not a task state",
                    s.chars().take(40).collect::<String>()
                )));
            }
            None => None,
        };
        let after = match text(params, "statusTimestampAfter")? {
            Some(t) => Some(
                wire::parse_timestamp(t)
                    .ok_or_else(|| invalid("`statusTimestampAfter` is an RFC 3339 timestamp"))?,
            ),
            None => None,
        };
        let include_artifacts = match params.get("includeArtifacts") {
            None | Some(Value::Null) => false,
            Some(Value::Bool(b)) => *b,
            Some(_) => return Err(invalid("`includeArtifacts` is true or false")),
        };
        let token = text(params, "pageToken")?.filter(|t| !t.is_empty());

        // The caller's tasks that pass the filters, newest status first
        // (ties: newest created first).
        // On a shared store, also the tasks the other replicas run (their
        // shared documents; this replica's own are the live ones).
        let here: Vec<Value> = self
            .tasks()
            .owned_by(&org.org_id)
            .map(|entry| entry.task())
            .collect();
        let ids: std::collections::HashSet<String> = here
            .iter()
            .filter_map(|t| t["id"].as_str().map(str::to_string))
            .collect();
        let elsewhere: Vec<Value> = self
            .shared_of(org)
            .into_iter()
            .filter(|t| t["id"].as_str().is_some_and(|id| !ids.contains(id)))
            .collect();
        let mut tasks: Vec<(u64, usize, Value)> = elsewhere
            .into_iter()
            .chain(here)
            .enumerate()
            .map(|(created, task)| {
                let at = task["status"]["timestamp"]
                    .as_str()
                    .and_then(wire::parse_timestamp)
                    .unwrap_or(0);
                (at, created, task)
            })
            .filter(|(at, _, task)| {
                context.is_none_or(|c| task["contextId"] == c)
                    && wanted_state.is_none_or(|s| state(task) == s)
                    && after.is_none_or(|after| *at >= after)
            })
            .collect();
        tasks.sort_by(|a, b| b.0.cmp(&a.0).then(b.1.cmp(&a.1)));
        let total = tasks.len();
        let start = match token {
            None => 0,
            Some(token) => {
                tasks
                    .iter()
                    .position(|(_, _, task)| task["id"] == token)
                    .ok_or_else(|| {
                        invalid("`pageToken` names no task of this listing (it may have expired)")
                    })?
                    + 1
            }
        };
        let end = (start + page_size as usize).min(total);
        let page: Vec<Value> = tasks[start.min(total)..end]
            .iter()
            .map(|(_, _, task)| {
                let mut task = task.clone();
                if !include_artifacts && let Some(object) = task.as_object_mut() {
                    object.remove("artifacts");
                }
                // Checked above: cannot fail.
                let _ = super::tasks::limit_history(&mut task, params);
                task
            })
            .collect();
        let next = if end < total {
            page.last().map(|t| t["id"].clone()).unwrap_or(json!(""))
        } else {
            json!("")
        };
        Ok(json!({
            "tasks": page,
            "nextPageToken": next,
            // The page size used: what this page holds.
            "pageSize": page.len(),
            "totalSize": total,
        }))
    }
}
