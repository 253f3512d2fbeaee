//! Mercato's host: a marketplace that lists, sandboxes and meters agent
//! capabilities shipped as WebAssembly components.
//!
//! Start at [`market::Market`] (the core every front door calls) and
//! [`api::app`] (the REST router). ARCHITECTURE.md has the codemap.
#![deny(unsafe_code)]

pub mod a2a;
pub mod api;
pub mod attestation;
pub mod cli;
pub mod clock;
pub mod config;
pub mod discovery;
pub mod doors;
pub mod identity;
pub mod ledger;
pub mod market;
pub mod mcp;
pub mod metrics;
pub mod negotiation;
pub mod pricing;
pub mod registry;
pub mod reputation;
pub mod sandbox;
pub mod server;
pub mod settlement;
pub mod store;
pub mod text;
