//! The `mercato` command line: run a host, or talk to one.
//!
//! Client commands speak the REST API over HTTP; they know nothing the API
//! does not say.

mod attest;
mod client;
pub mod error;
mod http;
pub mod mcp_stdio;
mod migrate;
mod offline;

use clap::{Parser, Subcommand};
use std::path::PathBuf;

/// Mercato: a marketplace where agents buy capabilities from other agents.
///
/// Providers publish WebAssembly components; consumers invoke their
/// capabilities, each call sandboxed and priced by the fuel it burns.
///
/// Quick start:
///   mercato serve                                   # terminal 1
///   mercato org create --name acme                  # prints an API key
///   export MERCATO_API_KEY=mk_...
///   mercato org verify org_... --admin-token mat_... # the operator verifies you
///   mercato keys generate --out acme.key            # your signing key
///   mercato keys register --key acme.key
///   mercato attest agent.wasm --manifest mercato.toml  # what the host will check
///   mercato publish agent.wasm --manifest mercato.toml --key acme.key
///   mercato capabilities
///   mercato invoke pii-redactor.redact --input '{"text": "mail jo@example.com"}'
#[derive(Debug, Parser)]
#[command(name = "mercato", version, verbatim_doc_comment)]
pub struct Cli {
    /// The host to talk to (client commands).
    #[arg(
        long,
        global = true,
        env = "MERCATO_SERVER",
        default_value = "http://127.0.0.1:8080",
        value_parser = error::server_address
    )]
    pub server: String,
    /// Your organisation's API key (client commands that act for you).
    #[arg(long, global = true, env = "MERCATO_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,
    /// The admin token (admin commands).
    #[arg(
        long,
        global = true,
        env = "MERCATO_ADMIN_TOKEN",
        hide_env_values = true
    )]
    pub admin_token: Option<String>,
    /// Print the server's JSON instead of a summary.
    #[arg(long, global = true)]
    pub json: bool,
    /// Also trust this PEM certificate (a private CA, or a self-signed
    /// host) when --server is https:// (client commands).
    #[arg(long, global = true, env = "MERCATO_CA_CERT")]
    pub ca_cert: Option<PathBuf>,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a host on its embedded store (or on PostgreSQL: --database).
    Serve {
        /// Data directory (store, cached artifacts).
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Address to listen on, e.g. 127.0.0.1:8080.
        #[arg(long)]
        listen: Option<std::net::SocketAddr>,
        /// A TOML config file (limits, admin token); flags override it.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Ignore cached compiled artifacts and compile every component again.
        #[arg(long)]
        recompile: bool,
        /// A sentence-embedding model directory for discovery (the `model`
        /// cargo feature, on by default). Without it: DATA_DIR/model when it
        /// holds one, else the built-in embedder (`/healthz` says which).
        #[arg(long)]
        embedding_model: Option<PathBuf>,
        /// Keep the marketplace in PostgreSQL (`postgres://user@host/db`)
        /// instead of the embedded store in DATA_DIR; a password not in the
        /// URL comes from MERCATO_DATABASE_PASSWORD.
        #[arg(long, env = "MERCATO_DATABASE_URL", hide_env_values = true)]
        database: Option<String>,
        /// Serve HTTPS with this PEM certificate chain (with --tls-key);
        /// reloaded on SIGHUP or when the file changes.
        #[arg(long, requires = "tls_key")]
        tls_cert: Option<PathBuf>,
        /// The PEM private key of --tls-cert.
        #[arg(long, requires = "tls_cert")]
        tls_key: Option<PathBuf>,
    },
    /// Compile a component read on stdin into an artifact on stdout (the
    /// host runs this in a child process for each upload).
    #[command(hide = true, name = "compile-component")]
    CompileComponent {
        /// The host's `sandbox.memory_bytes_max`.
        #[arg(long)]
        memory_bytes_max: u64,
        /// The host's `sandbox.concurrent_calls_max`.
        #[arg(long)]
        concurrent_calls_max: u32,
    },
    /// Serve MCP over stdio for desktop MCP clients, relaying every message
    /// to --server's `/mcp` with --api-key (your calls are charged to you).
    McpStdio,
    /// Manage organisations.
    Org {
        /// What to do with organisations.
        #[command(subcommand)]
        command: OrgCommand,
    },
    /// Manage your organisation's signing keys.
    Keys {
        /// What to do with keys.
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Publish a component with its manifest, signed (needs --api-key).
    Publish {
        /// The component (.wasm built for wasm32-wasip2).
        component: PathBuf,
        /// The manifest with the terms of each capability.
        #[arg(long)]
        manifest: PathBuf,
        /// Your private signing key file (`mercato keys generate`).
        #[arg(long, env = "MERCATO_SIGNING_KEY")]
        key: PathBuf,
    },
    /// Run the attestation battery on a component locally, as the host will
    /// on upload (for a provider's CI). Exit status 0 only on pass.
    Attest {
        /// The component (.wasm built for wasm32-wasip2).
        component: PathBuf,
        /// The manifest with the terms of each capability.
        #[arg(long)]
        manifest: PathBuf,
        /// A directory of batteries (`<category>.toml`) that add to or replace
        /// the built-in ones.
        #[arg(long)]
        batteries: Option<PathBuf>,
        /// Write JUnit XML here, one test case per attestation case.
        #[arg(long)]
        junit: Option<PathBuf>,
        /// Write the JSON report here.
        #[arg(long)]
        report: Option<PathBuf>,
    },
    /// Manage a host's store (run with the host stopped).
    Store {
        /// What to do with the store.
        #[command(subcommand)]
        command: StoreCommand,
    },
    /// Verify a signed document (an attestation report) offline.
    Verify {
        /// The signed JSON document.
        document: PathBuf,
        /// The marketplace's key set (`/.well-known/mercato-keys.json` saved
        /// to a file); fetched from --server when absent.
        #[arg(long)]
        keys: Option<PathBuf>,
    },
    /// Operator commands (need --admin-token).
    Admin {
        /// What to do.
        #[command(subcommand)]
        command: AdminCommand,
    },
    /// List the capabilities on offer.
    Capabilities,
    /// Find capabilities for a need, within constraints.
    Discover {
        /// The need, in plain language.
        need: String,
        /// Expected cost at most this, in micros.
        #[arg(long, allow_negative_numbers = true, value_parser = error::whole)]
        max_price: Option<u64>,
        /// Only this category.
        #[arg(long)]
        category: Option<String>,
        /// Promised latency at most this, in milliseconds.
        #[arg(long, allow_negative_numbers = true, value_parser = error::at_least_one)]
        latency_max: Option<u64>,
        /// A jurisdiction the provider must process data in (e.g. EU).
        #[arg(long)]
        jurisdiction: Option<String>,
        /// How many results (1 to 100).
        #[arg(long, default_value_t = 5, allow_negative_numbers = true,
              value_parser = clap::value_parser!(u16).range(1..=100))]
        limit: u16,
    },
    /// Show the expected cost of a call.
    Quote {
        /// Capability id, `agent.capability` or `agent.capability@version`.
        id: String,
    },
    /// Invoke a capability (needs --api-key).
    Invoke {
        /// Capability id, `agent.capability` or `agent.capability@version`.
        id: String,
        /// The input, as JSON.
        #[arg(long)]
        input: String,
        /// The most you will pay, in micros (1 unit = 1,000,000 micros).
        #[arg(long, allow_negative_numbers = true, value_parser = error::whole)]
        max_price: Option<u64>,
        /// Stream chunks the capability emits as they come.
        #[arg(long)]
        stream: bool,
        /// Run under this contract (from `mercato negotiate`).
        #[arg(long)]
        contract: Option<String>,
    },
    /// Your balances and budget (needs --api-key).
    Balance,
    /// Negotiate terms for a capability; prints the contract or the counter
    /// (needs --api-key).
    Negotiate {
        /// Capability id.
        id: String,
        /// The most one call may cost (cost plus fee), micros.
        #[arg(long, allow_negative_numbers = true, value_parser = error::whole)]
        max_price: u64,
        /// Latency SLA, ms.
        #[arg(long, allow_negative_numbers = true, value_parser = error::at_least_one)]
        latency_max: Option<u64>,
        /// The most retention you accept: none, 24h or 30d.
        #[arg(long, value_parser = ["none", "24h", "30d"])]
        retention: Option<String>,
        /// A jurisdiction data must be processed in.
        #[arg(long)]
        jurisdiction: Option<String>,
        /// Calls per minute you need.
        #[arg(long, allow_negative_numbers = true, value_parser = error::per_minute)]
        rate_limit: Option<u32>,
        /// How long the contract should hold, in hours (1 to 8,760).
        #[arg(long, default_value_t = 24, allow_negative_numbers = true,
              value_parser = clap::value_parser!(u64).range(1..=8_760))]
        hours: u64,
        /// Accept a counter-offer at once.
        #[arg(long)]
        accept_counter: bool,
    },
    /// Rate a transaction 1 to 5, once (needs --api-key).
    Rate {
        /// Transaction id.
        transaction: String,
        /// 1 (bad) to 5 (excellent).
        #[arg(allow_negative_numbers = true, value_parser = clap::value_parser!(u8).range(1..=5))]
        score: u8,
    },
}

/// Organisation commands.
#[derive(Debug, Subcommand)]
pub enum OrgCommand {
    /// Register an organisation; prints its API key once.
    Create {
        /// Display name.
        #[arg(long)]
        name: String,
    },
    /// Verify an organisation so it may publish (needs --admin-token).
    Verify {
        /// Organisation id.
        org_id: String,
    },
}

/// Store commands.
#[derive(Debug, Subcommand)]
pub enum StoreCommand {
    /// Move an embedded marketplace (a data directory) into an empty
    /// PostgreSQL database: every record, the books, the marketplace key;
    /// then check that the books replayed there hold the same money.
    Migrate {
        /// The data directory of the embedded store (its host stopped).
        #[arg(long)]
        from: PathBuf,
        /// The PostgreSQL URL; a password not in it comes from
        /// MERCATO_DATABASE_PASSWORD.
        #[arg(long)]
        to: String,
    },
}

/// Signing key commands.
#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Generate an ed25519 key pair; the private key goes to a new file
    /// readable by you only, the public key is printed.
    Generate {
        /// Where to write the private key (refuses to overwrite).
        #[arg(long)]
        out: PathBuf,
    },
    /// Register a key's public half with your organisation (needs --api-key).
    Register {
        /// The private key file (only its public half is sent).
        #[arg(long)]
        key: PathBuf,
    },
    /// List your organisation's keys (needs --api-key).
    List,
    /// Revoke a key: uploads it signs are refused from now on (needs --api-key).
    Revoke {
        /// Key id (`ed25519:...`).
        key_id: String,
    },
}

/// Operator commands.
#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Credit an organisation's account.
    Deposit {
        /// Organisation id.
        org_id: String,
        /// Micros to credit (1 unit = 1,000,000 micros).
        #[arg(allow_negative_numbers = true, value_parser = error::at_least_one)]
        amount: u64,
    },
    /// Show where all the money is.
    Ledger,
    /// Reload the batteries and re-attest listed versions; those that now
    /// fail are delisted.
    Reattest {
        /// Only versions with a capability in this category.
        #[arg(long)]
        category: Option<String>,
    },
}

pub use attest::{AttestOutputs, attest_file, run_attest};
pub use client::run_client;
pub use http::client;
pub use migrate::migrate_store;
pub use offline::{generate_key, verify_document};
