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
//! each for [`TASK_TTL`]; a task keeps its output and its messages, never a call's input), cards,
//! streaming events. Does not know about: HTTP (the REST module frames
//! [`Reply`]).

//!
//! The rooms: `agent` (the [`A2a`] agent and its task table), `dispatch`
//! (JSON-RPC methods, opening, reading, streaming and cancelling tasks),
//! `list` (`ListTasks`: the caller's tasks, filtered and paged), `message` (a message's parts →
//! an operation), `outcome` (running it, recording the task's end), `tasks`
//! (the bounded task table), `cards` (agent cards) and [`wire`] (the
//! protocol's names and codes in both dialects).

mod agent;
mod cards;
mod dispatch;
mod list;
mod message;
mod outcome;
mod shared;
mod tasks;
pub mod wire;

pub use agent::A2a;
pub use dispatch::Reply;
pub use tasks::{TASK_TTL, TASKS_MAX, TASKS_PER_ORG_MAX};

/// Skills listed on the marketplace's card (the rest are found with a
/// text message, which discovers).
pub const SKILLS_MAX: usize = 500;
