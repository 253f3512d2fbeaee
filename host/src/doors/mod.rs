//! What every front door shares (REST, MCP, A2A): the doors depend on this
//! layer and it on [`market`](crate::market), never the other way.
//!
//! - [`problem`]: the one error shape and its codes ([`Problem`]);
//! - [`names`]: capability ids as tool names, both ways;
//! - [`once`]: idempotency keys, one rule and one key space for all doors;
//! - [`operations`]: the marketplace's own operations as JSON in and out
//!   (`discover`, `quote`, `negotiate`) and the shape of a settled call;
//! - [`schemas`]: those operations' argument schemas.
//!
//! Does not know about: HTTP (statuses are `api`'s), JSON-RPC, or any
//! protocol's types.

pub mod names;
pub mod once;
pub mod operations;
pub mod problem;
pub mod schemas;

pub use names::{capability_id, tool_name};
pub use operations::{Failed, discover, error_body, negotiate, quote, split};
pub use problem::{ErrorBody, ErrorDetail, Problem, is_refusal, is_transient};
