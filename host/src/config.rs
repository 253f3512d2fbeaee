//! Host configuration: defaults, then an optional TOML file, then flags.

use crate::sandbox::SandboxLimits;
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// Everything `mercato serve` can be told. Every limit has a default.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Where the store, artifacts and keys live.
    pub data_dir: PathBuf,
    /// Address to listen on.
    pub listen: SocketAddr,
    /// Admin token; `MERCATO_ADMIN_TOKEN` overrides it. With neither, one is
    /// generated on first start, printed once and stored hashed.
    pub admin_token: Option<String>,
    /// Per-call sandbox limits.
    pub sandbox: SandboxSettings,
    /// Calls one organisation may have in the sandbox (or waiting for it)
    /// at once, so that one tenant's flood leaves slots to the others;
    /// more wait `sandbox.queue_wait_ms`, then are refused as `overloaded`.
    /// Default: a quarter of `sandbox.concurrent_calls_max`.
    pub calls_per_org_max: Option<u32>,
    /// Largest component accepted, in bytes.
    pub component_bytes_max: u64,
    /// Largest JSON request body, in bytes.
    pub body_bytes_max: u64,
    /// HTTP requests handled at once; more are refused with 503.
    pub requests_in_flight_max: usize,
    /// Longest an HTTP request may take, in milliseconds.
    pub request_timeout_ms: u64,
    /// Open TCP connections at most; a connection beyond it is closed at
    /// once (its client retries), so descriptors and memory stay bounded.
    pub connections_max: usize,
    /// Open connections at most from one client address, so one client
    /// cannot take the whole of `connections_max` (raise it behind a proxy
    /// that connects from one address).
    pub connections_per_client_max: usize,
    /// How long a connection may take to send a request's headers, and how
    /// long it may stay idle between requests, in milliseconds; then it is
    /// closed (slow or idle clients hold no descriptor for long).
    pub header_read_timeout_ms: u64,
    /// Longest an unsynced write (an invocation record) waits for disk.
    pub background_flush_ms: u64,
    /// Wall time compiling one component may take, in milliseconds; past it
    /// the compiler is stopped and the upload refused
    /// (`component_too_complex`).
    pub compile_ms_max: u64,
    /// The `mercato` executable that compiles uploads in a child process
    /// (`mercato compile-component`), so that a compilation past its budget
    /// or abandoned by its upload is killed and its memory returned.
    /// `mercato serve` uses its own executable when this is unset; a host
    /// embedded in another program compiles in-process unless it is set.
    pub compiler_exe: Option<PathBuf>,
    /// Ignore cached artifacts and compile every component again (after an
    /// upgrade, or when a cache is suspect). Fresh artifacts replace the old.
    pub recompile: bool,
    /// A directory of attestation batteries (`<category>.toml`) that add to
    /// or replace the built-in ones; re-read by `mercato admin reattest`.
    pub batteries_dir: Option<PathBuf>,
    /// Wall time one upload's attestation may take, in milliseconds; cases
    /// not started by then fail. Below `request_timeout_ms`, so a refusal
    /// arrives as a report rather than a timeout.
    pub attestation_ms_max: u64,
    /// The marketplace fee, in basis points of a call's cost (100 = 1%),
    /// charged to the consumer on top of the cost.
    pub fee_bps: u64,
    /// How long a call's payment waits in escrow, open to dispute, before it
    /// goes to the provider.
    pub dispute_window_ms: u64,
    /// How often escrows are released and stale holds expired.
    pub settlement_tick_ms: u64,
    /// A rating's weight halves every this many milliseconds.
    pub rating_half_life_ms: u64,
    /// A sentence-embedding model directory (`config.json`,
    /// `tokenizer.json`, `model.safetensors`) for discovery; the built-in
    /// feature-hashing embedder when absent and `DATA_DIR/model` holds none
    /// (`/healthz` then says so). Needs the `model` build feature (on by
    /// default).
    pub embedding_model: Option<PathBuf>,
    /// How long a counter-offer stays open for the consumer, milliseconds.
    pub offer_ms: u64,
    /// How often the discovery index is dumped when it changed (it is also
    /// dumped at shutdown); 0: only at shutdown. A start after a crash
    /// reloads the last dump and inserts what came since.
    pub index_save_ms: u64,
    /// How much reputation moves a discovery score: a 5-star capability
    /// scores ×(1 + boost), a 1-star one ×(1 − boost), an unrated one ×1.
    /// 0 to 1; 0 ranks on relevance alone.
    pub discovery_rating_boost: f32,
    /// `Host` header values the MCP endpoint answers (a DNS-rebinding
    /// guard): names or `name:port`. Loopback only by default; a public
    /// deployment lists its own names; `["*"]` accepts any host.
    pub allowed_hosts: Vec<String>,
    /// Who may register an organisation without the admin token: `open`
    /// (anyone, as often as they like), `rate_limited` (anyone, at most
    /// `signups_per_client_per_minute` from one address; the default) or
    /// `operator_only` (only with the admin token).
    pub signup: Signup,
    /// Anonymous registrations one client address may make per minute
    /// under `signup = "rate_limited"` (a burst of as many, then as many a
    /// minute).
    pub signups_per_client_per_minute: u32,
    /// What an organisation that is neither verified nor funded may create
    /// per minute (a burst of as many): approver tokens, negotiations,
    /// approval requests and idempotency keys, each kept on disk (and an
    /// approval request announced). 0: no limit.
    pub unproven_creations_per_minute: u32,
    /// Webhook hosts (names or IP literals, as written in the URL) that may
    /// resolve to loopback, private or link-local addresses. Every other
    /// webhook must resolve to public addresses only. Empty by default.
    pub webhook_allowed_hosts: Vec<String>,
    /// PostgreSQL instead of the embedded store: a `postgres://` URL
    /// (`mercato serve --database`). Without a password in it,
    /// `MERCATO_DATABASE_PASSWORD` supplies one; the password is never
    /// logged. `data_dir` then holds only what this host caches (compiled
    /// artifacts, the discovery index's dump, a model).
    pub database_url: Option<DatabaseUrl>,
    /// Megabytes of the store's pages kept in memory (reads beyond it go to
    /// the operating system's page cache). Default 64.
    pub store_cache_mb: u64,
    /// Hosts whose OAuth client ID metadata documents may be fetched from
    /// private addresses and over plain http (development, tests). Every
    /// other document is fetched over https from public addresses only.
    /// Empty by default.
    pub client_metadata_allowed_hosts: Vec<String>,
    /// The URL clients reach this host at (`https://market.example`), written
    /// into A2A agent cards; without it a card names the host it was asked on.
    pub public_url: Option<String>,
    /// Serve HTTPS with this PEM certificate chain (with `tls_key`);
    /// reloaded on SIGHUP or when the file changes.
    pub tls_cert: Option<PathBuf>,
    /// The PEM private key of `tls_cert`.
    pub tls_key: Option<PathBuf>,
}

/// Who may register an organisation (see [`Config::signup`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Signup {
    /// Anyone, unlimited.
    Open,
    /// Anyone, rate-limited per client address.
    RateLimited,
    /// Only the operator (admin token).
    OperatorOnly,
}

/// The sandbox limits, as the config file spells them.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SandboxSettings {
    /// See [`SandboxLimits::fuel_per_call_max`].
    pub fuel_per_call_max: u64,
    /// See [`SandboxLimits::memory_bytes_max`].
    pub memory_bytes_max: u64,
    /// See [`SandboxLimits::deadline_ms`].
    pub deadline_ms: u64,
    /// See [`SandboxLimits::output_bytes_max`].
    pub output_bytes_max: u64,
    /// See [`SandboxLimits::emit_bytes_max`].
    pub emit_bytes_max: u64,
    /// See [`SandboxLimits::concurrent_calls_max`].
    pub concurrent_calls_max: u32,
    /// See [`SandboxLimits::queue_wait_ms`].
    pub queue_wait_ms: u64,
}

impl Default for SandboxSettings {
    fn default() -> Self {
        let l = SandboxLimits::default();
        SandboxSettings {
            fuel_per_call_max: l.fuel_per_call_max,
            memory_bytes_max: l.memory_bytes_max,
            deadline_ms: l.deadline_ms,
            output_bytes_max: l.output_bytes_max,
            emit_bytes_max: l.emit_bytes_max,
            concurrent_calls_max: l.concurrent_calls_max,
            queue_wait_ms: l.queue_wait_ms,
        }
    }
}

impl SandboxSettings {
    /// The limits the sandbox enforces.
    pub fn limits(&self) -> SandboxLimits {
        SandboxLimits {
            fuel_per_call_max: self.fuel_per_call_max,
            memory_bytes_max: self.memory_bytes_max,
            deadline_ms: self.deadline_ms,
            output_bytes_max: self.output_bytes_max,
            emit_bytes_max: self.emit_bytes_max,
            log_bytes_max: SandboxLimits::default().log_bytes_max,
            concurrent_calls_max: self.concurrent_calls_max,
            queue_wait_ms: self.queue_wait_ms,
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            data_dir: PathBuf::from("mercato-data"),
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            admin_token: None,
            sandbox: SandboxSettings::default(),
            calls_per_org_max: None,
            component_bytes_max: 16 << 20,
            body_bytes_max: 1 << 20,
            requests_in_flight_max: 1_024,
            request_timeout_ms: 30_000,
            connections_max: 8_192,
            connections_per_client_max: 512,
            header_read_timeout_ms: 20_000,
            background_flush_ms: 100,
            compile_ms_max: 60_000,
            compiler_exe: None,
            recompile: false,
            batteries_dir: None,
            attestation_ms_max: 20_000,
            fee_bps: 100,
            dispute_window_ms: 86_400_000,
            settlement_tick_ms: 1_000,
            rating_half_life_ms: 30 * 86_400_000,
            embedding_model: None,
            offer_ms: 10 * 60_000,
            index_save_ms: 5 * 60_000,
            discovery_rating_boost: crate::discovery::RATING_BOOST,
            allowed_hosts: vec!["localhost".into(), "127.0.0.1".into(), "::1".into()],
            public_url: None,
            tls_cert: None,
            tls_key: None,
            webhook_allowed_hosts: Vec::new(),
            store_cache_mb: 64,
            database_url: None,
            client_metadata_allowed_hosts: Vec::new(),
            signup: Signup::RateLimited,
            signups_per_client_per_minute: 5,
            unproven_creations_per_minute: 10,
        }
    }
}

/// A database URL: read from a config file or a flag, and never printed
/// with its password (`Debug` shows it redacted).
#[derive(Clone, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct DatabaseUrl(pub String);

impl std::fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match url::Url::parse(&self.0) {
            Ok(mut url) if url.password().is_some() => {
                let _ = url.set_password(Some("redacted"));
                write!(f, "{url}")
            }
            Ok(url) => write!(f, "{url}"),
            Err(_) => f.write_str("<a database URL that does not parse>"),
        }
    }
}

/// A config file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Unreadable.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Not valid.
    #[error("invalid config {path}: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// Why.
        message: String,
    },
}

impl Config {
    /// Reads a TOML config file over the defaults.
    pub fn from_file(path: &Path) -> Result<Config, Error> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::Read {
            path: path.into(),
            source,
        })?;
        let config: Config = toml::from_str(&text).map_err(|e| Error::Invalid {
            path: path.into(),
            message: e.message().into(),
        })?;
        config.check().map_err(|message| Error::Invalid {
            path: path.into(),
            message,
        })?;
        Ok(config)
    }

    /// Calls one organisation may have at once (see `calls_per_org_max`).
    pub fn calls_per_org(&self) -> usize {
        self.calls_per_org_max
            .unwrap_or(self.sandbox.concurrent_calls_max / 4)
            .max(1) as usize
    }

    /// Checks that every limit is usable.
    pub fn check(&self) -> Result<(), String> {
        if self.tls_cert.is_some() != self.tls_key.is_some() {
            return Err("tls_cert and tls_key go together: give both, or neither".into());
        }
        let s = &self.sandbox;
        if s.concurrent_calls_max == 0 || s.concurrent_calls_max > 4_096 {
            return Err("sandbox.concurrent_calls_max must be 1 to 4096".into());
        }
        if self
            .calls_per_org_max
            .is_some_and(|n| n == 0 || n > s.concurrent_calls_max)
        {
            return Err("calls_per_org_max must be 1 to sandbox.concurrent_calls_max".into());
        }
        if s.memory_bytes_max < (1 << 20) || s.memory_bytes_max > (4 << 30) {
            return Err("sandbox.memory_bytes_max must be 1 MiB to 4 GiB".into());
        }
        if s.deadline_ms == 0 || s.deadline_ms > 600_000 {
            return Err("sandbox.deadline_ms must be 1 to 600000".into());
        }
        if self.attestation_ms_max == 0 || self.attestation_ms_max >= self.request_timeout_ms {
            return Err("attestation_ms_max must be positive and below request_timeout_ms".into());
        }
        if self.fee_bps > 5_000 {
            return Err("fee_bps is at most 5000 (50%)".into());
        }
        if self.settlement_tick_ms == 0 || self.dispute_window_ms > 365 * 86_400_000 {
            return Err(
                "settlement_tick_ms must be positive, dispute_window_ms at most a year".into(),
            );
        }
        if !(0.0..=1.0).contains(&self.discovery_rating_boost) {
            return Err("discovery_rating_boost must be 0 to 1".into());
        }
        if self.allowed_hosts.is_empty() || self.allowed_hosts.len() > 256 {
            return Err("allowed_hosts must list 1 to 256 hosts (or \"*\" for any)".into());
        }
        if self.signup == Signup::RateLimited && self.signups_per_client_per_minute == 0 {
            return Err(
                "signups_per_client_per_minute must be positive (or signup = \"open\")".into(),
            );
        }
        if !(4..=65_536).contains(&self.store_cache_mb) {
            return Err("store_cache_mb must be 4 to 65536".into());
        }
        if self.client_metadata_allowed_hosts.len() > 256 {
            return Err("client_metadata_allowed_hosts lists at most 256 hosts".into());
        }
        if self.webhook_allowed_hosts.len() > 256 {
            return Err("webhook_allowed_hosts lists at most 256 hosts".into());
        }
        if let Some(url) = &self.public_url
            && !(url.starts_with("http://") || url.starts_with("https://"))
        {
            return Err("public_url must start with http:// or https://".into());
        }
        if self.connections_max == 0
            || self.connections_per_client_max == 0
            || self.connections_per_client_max > self.connections_max
        {
            return Err(
                "connections_max and connections_per_client_max must be positive, the second at most the first"
                    .into(),
            );
        }
        if !(100..=600_000).contains(&self.header_read_timeout_ms) {
            return Err("header_read_timeout_ms must be 100 to 600000".into());
        }
        if self.requests_in_flight_max == 0 || self.background_flush_ms == 0 {
            return Err("requests_in_flight_max and background_flush_ms must be positive".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rating_boost_is_bounded() {
        let mut config = Config::default();
        assert!(config.check().is_ok());
        config.discovery_rating_boost = 1.5;
        assert!(
            config
                .check()
                .unwrap_err()
                .contains("discovery_rating_boost")
        );
        config.discovery_rating_boost = -0.1;
        assert!(config.check().is_err());
        config.discovery_rating_boost = 0.0;
        assert!(config.check().is_ok());
    }

    #[test]
    fn the_store_cache_is_bounded_and_read_from_toml() {
        let mut config: Config = toml::from_str("store_cache_mb = 256").expect("toml");
        assert_eq!(config.store_cache_mb, 256);
        assert!(config.check().is_ok());
        config.store_cache_mb = 0;
        assert!(config.check().unwrap_err().contains("store_cache_mb"));
        assert_eq!(Config::default().store_cache_mb, 64);
    }
}
