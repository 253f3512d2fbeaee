//! The marketplace core: what the front doors (REST, CLI, later MCP and A2A)
//! call. It ties identity, registry, sandbox, pricing and store together.
//!
//! Owns: the publish flow, the invoke flow (validate, meter, run, validate,
//! record), listings, quotes and per-capability statistics.
//!
//! Does not know about: HTTP (no status codes here; `api` maps [`Error`]
//! codes to statuses) or `wasmtime`/`sled` (behind `sandbox` and `store`).

mod approvals;
mod blame;
mod call_index;
mod discovery;
mod error;
mod events;
mod fair;
mod feed;
mod history;
mod idempotency;
mod invoke;
mod listings;
mod load;
mod money;
mod needs;
mod negotiate;
mod oauth;
mod publish;
mod rate;
mod reattest;
mod receipt;
mod reputation;
mod stats;
mod trust;
mod views;

pub use approvals::{APPROVAL_TTL_MS, Approval, NewApprover};
pub use discovery::{DiscoveredCapability, entry_for, schema_fields};
pub use error::{Error, Result, echoed};
pub use events::{Event, WebhookSecret, webhook_signature};
pub use feed::Shared;
pub use history::{PAGE_MAX, UploadRecord};
pub use idempotency::{Claim, Claimed, KEY_CHARS_MAX, Remembered};
pub use invoke::{CHUNKS_BUFFERED, InvocationRecord, InvokeRequest, chunk_channel};
pub use listings::Entry as ListingEntry;
pub use money::{Decision, DisputeRecord, Rerun};
pub use negotiate::{Contract, Negotiation, OFFER_MS, ROUNDS_MAX, Response};
pub use oauth::{
    ACCESS_TTL_MS, AuthorizeParams, AuthorizeRequest, Cap, ClientAuth, ClientMetadata, Grant,
    GrantView, OauthClient, OauthError, Registered, TokenResponse,
};
pub use publish::{Upload, structure_checks};
pub use reattest::{DelistedVersion, Reattested};
pub use receipt::SignedReceipt;
pub use reputation::RatingRecord;
pub use views::{
    AttestationStatus, CapabilityView, InvokeResult, Published, Quote, ReputationView, StatsView,
};

use crate::attestation::Batteries;
use crate::config::Config;
use crate::discovery::{Discovery, HashEmbedder};
use crate::identity::{self, AdminToken, MarketKey, NewOrg, Org};
use crate::metrics::Metrics;
use crate::registry::{CapabilityId, Catalog, Listed, ListedCapability};
use crate::sandbox::Sandbox;
use crate::settlement::{Rules, Settlement};
use crate::store::Store;
use stats::Stats;
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Where a host looks for a sentence-embedding model when none is
/// configured: `model/` in its data directory (`scripts/fetch-model
/// DATA_DIR/model` puts one there).
pub const DEFAULT_MODEL_DIR: &str = "model";

/// The embedder the configuration asks for, and, when it is the built-in
/// one, why (for `/healthz`). A model configured explicitly that cannot load
/// is an error; so is one found in the default place, rather than a quiet
/// fallback to a weaker ranking.
fn embedder(config: &Config) -> Result<(Arc<dyn crate::discovery::Embedder>, Option<String>)> {
    let default_dir = config.data_dir.join(DEFAULT_MODEL_DIR);
    let dir = match &config.embedding_model {
        Some(dir) => dir.clone(),
        None if default_dir.join("model.safetensors").is_file() => default_dir,
        None => {
            let why = format!(
                "no sentence-embedding model: configure embedding_model (--embedding-model) \
                 or put one in {} (scripts/fetch-model {0})",
                default_dir.display()
            );
            return Ok((Arc::new(HashEmbedder::default()), Some(why)));
        }
    };
    #[cfg(feature = "model")]
    {
        let model = crate::discovery::load_model(&dir)
            .map_err(|e| Error::Config(format!("embedding model {}: {e}", dir.display())))?;
        Ok((model, None))
    }
    #[cfg(not(feature = "model"))]
    {
        if config.embedding_model.is_none() {
            let why = format!(
                "this build has no model support (the `model` cargo feature is off): \
                 the model in {} is not used",
                dir.display()
            );
            return Ok((Arc::new(HashEmbedder::default()), Some(why)));
        }
        Err(Error::Config(format!(
            "embedding model {}: this build has no model support (build with --features model)",
            dir.display()
        )))
    }
}

/// The running marketplace.
pub struct Market {
    store: Store,
    sandbox: Arc<Sandbox>,
    catalog: Catalog,
    discovery: Discovery,
    /// Why discovery runs on the built-in embedder, when it does.
    embedder_fallback: Option<String>,
    /// How the discovery index came to be at start (for `/healthz`).
    index_restored: std::sync::OnceLock<crate::discovery::Restored>,
    rates: rate::RateLimiter,
    fair: fair::FairShares,
    /// Threads that run guests (the runtime's workers, one per core).
    workers: usize,
    compile_slots: Arc<tokio::sync::Semaphore>,
    compile_refusals: load::CompileRefusals,
    stats: Stats,
    metrics: Metrics,
    /// Vectors of recent needs (for a slow embedder).
    need_vectors: needs::NeedVectors,
    /// Who waits for the model (for a slow embedder).
    model_turns: needs::ModelTurns,
    config: Config,
    admin_token_sha256: String,
    market_key: MarketKey,
    /// Receipts signed many under one signature when calls end together.
    receipts: receipt::ReceiptSigner,
    batteries: RwLock<Arc<Batteries>>,
    settlement: Settlement,
    sweeper: std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
    /// Following the other replicas' changes (a shared store).
    feed: std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
    /// The last change of the feed applied.
    feed_position: std::sync::atomic::AtomicU64,
    /// When the feed was last read (Unix ms).
    feed_read_at: std::sync::atomic::AtomicU64,
    /// Changes other replicas announced for the front doors.
    door_changes: tokio::sync::broadcast::Sender<String>,
    in_flight: idempotency::InFlight,
    reputation: std::sync::Mutex<crate::reputation::Reputation>,
    /// An organisation's calls, for the pages (written a window at a time).
    call_index: call_index::CallIndex,
    webhooks: events::Webhooks,
    /// When expired OAuth codes and tokens were last swept (Unix ms).
    oauth_swept_at_ms: std::sync::atomic::AtomicU64,
}

/// The store `config` asks for: PostgreSQL when it names a database, else
/// the embedded store in the data directory.
fn open_store(config: &Config) -> Result<Store> {
    let flush = Duration::from_millis(config.background_flush_ms);
    match &config.database_url {
        Some(url) => {
            let password = std::env::var("MERCATO_DATABASE_PASSWORD").ok();
            let database =
                crate::store::Database::parse(&url.0, password).map_err(Error::Config)?;
            Ok(Store::connect(&database, &config.data_dir, flush)?)
        }
        None => Ok(Store::open_with_cache(
            &config.data_dir,
            flush,
            config.store_cache_mb * 1024 * 1024,
        )?),
    }
}

/// Unix time in milliseconds.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

impl Market {
    /// Opens the store in `config.data_dir`, builds the sandbox and loads
    /// every listed version (from cached artifacts where they exist).
    pub async fn open(config: Config) -> Result<(Arc<Market>, AdminToken)> {
        config.check().map_err(Error::Config)?;
        let store = open_store(&config)?;
        let sandbox = Arc::new(Sandbox::new(config.sandbox.limits())?);
        let env_token = std::env::var("MERCATO_ADMIN_TOKEN").ok();
        let configured = env_token.as_deref().or(config.admin_token.as_deref());
        let (admin, admin_token_sha256) = identity::init_admin_token(&store, configured).await?;
        let market_key = if store.is_shared() {
            MarketKey::load_or_create_shared(&store, &config.data_dir).await
        } else {
            MarketKey::load_or_create(&config.data_dir)
        }
        .map_err(|e| Error::Config(format!("marketplace signing key: {e}")))?;
        let batteries = Batteries::load(config.batteries_dir.as_deref())?;
        let rules = Rules {
            fee_bps: config.fee_bps,
            dispute_window_ms: config.dispute_window_ms,
            // A call ends by its deadline; a hold outliving the request is stale.
            hold_timeout_ms: config.sandbox.deadline_ms + config.request_timeout_ms,
        };
        let settlement = Settlement::open(store.clone(), rules, now_ms())?;
        let (embedder, embedder_fallback) = embedder(&config)?;
        let market = Market {
            store,
            sandbox,
            catalog: Catalog::default(),
            discovery: Discovery::new(embedder).with_rating_boost(config.discovery_rating_boost),
            embedder_fallback,
            index_restored: std::sync::OnceLock::new(),
            rates: rate::RateLimiter::default(),
            compile_slots: Arc::new(tokio::sync::Semaphore::new(load::COMPILES_AT_ONCE)),
            compile_refusals: load::CompileRefusals::default(),
            fair: fair::FairShares::new(
                config.calls_per_org(),
                Duration::from_millis(config.sandbox.queue_wait_ms),
            ),
            workers: std::thread::available_parallelism().map_or(1, |n| n.get()),
            stats: Stats::default(),
            metrics: Metrics::default(),
            need_vectors: needs::NeedVectors::new(needs::NEEDS_KEPT),
            model_turns: needs::ModelTurns::default(),
            config,
            admin_token_sha256,
            market_key,
            receipts: receipt::ReceiptSigner::default(),
            batteries: RwLock::new(Arc::new(batteries)),
            settlement,
            sweeper: std::sync::Mutex::new(None),
            feed: std::sync::Mutex::new(None),
            feed_position: std::sync::atomic::AtomicU64::new(0),
            feed_read_at: std::sync::atomic::AtomicU64::new(now_ms()),
            door_changes: tokio::sync::broadcast::Sender::new(1_024),
            in_flight: idempotency::InFlight::default(),
            reputation: std::sync::Mutex::new(crate::reputation::Reputation::default()),
            call_index: call_index::CallIndex::default(),
            webhooks: events::Webhooks::default(),
            oauth_swept_at_ms: std::sync::atomic::AtomicU64::new(0),
        };
        // Read before the catalog, so a change made meanwhile is followed.
        let feed_head = market.store.changes_head()?;
        market
            .feed_position
            .store(feed_head, std::sync::atomic::Ordering::Release);
        market.load_catalog().await?;
        market.load_stats()?;
        market.load_ratings()?;
        market.restore_index().await?;
        let market = Arc::new(market);
        market.start_sweeper();
        market.start_feed(feed_head);
        Ok((market, admin))
    }

    /// Flushes everything to disk and stops the store's committer.
    pub async fn close(&self) -> Result<()> {
        let sweeper = self
            .sweeper
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        let feed = self.feed.lock().unwrap_or_else(|p| p.into_inner()).take();
        for task in [sweeper, feed].into_iter().flatten() {
            task.abort();
            // Wait until it is gone: it may hold the market (and the store).
            let _ = task.await;
        }
        // The index's dump spares the next start a rebuild; without it the
        // next start rebuilds, so a failure here loses nothing.
        if let Err(error) = self.discovery.save(&self.index_dir()) {
            tracing::warn!(%error, "discovery index not saved");
        }
        // What the calls' index holds goes to the store before it closes; a
        // failure here is logged and must not keep the store from closing.
        self.drain_call_index();
        self.store.close().await?;
        Ok(())
    }

    /// The configuration in force.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The metrics, refreshed for a scrape.
    pub fn metrics(&self) -> &Metrics {
        self.metrics.store_syncs.set(self.store.syncs());
        &self.metrics
    }

    /// Whether `client` may register an organisation without the admin
    /// token now, under the configured signup policy.
    pub fn signup_allowed(&self, client: std::net::IpAddr) -> Result<()> {
        use crate::config::Signup;
        match self.config.signup {
            Signup::Open => Ok(()),
            Signup::OperatorOnly => Err(Error::SignupRefused {
                message: "organisations are registered by the operator here".into(),
                retry_after_ms: None,
            }),
            Signup::RateLimited => {
                let per_minute = self.config.signups_per_client_per_minute;
                self.rates
                    .take(
                        &format!("signup:{client}"),
                        "signup",
                        per_minute,
                        std::time::Instant::now(),
                    )
                    .map_err(|wait| Error::SignupRefused {
                        message: format!(
                            "this address registered {per_minute} organisations lately; retry later"
                        ),
                        retry_after_ms: Some(wait.as_millis() as u64 + 1),
                    })
            }
        }
    }

    /// Whether `org_id` may store one more object (an approver token, a
    /// negotiation, an approval request, an idempotency key): always when it is verified or has
    /// money with the marketplace; otherwise at most
    /// `unproven_creations_per_minute`.
    pub fn creation_allowed(&self, org_id: &str) -> Result<()> {
        let per_minute = self.config.unproven_creations_per_minute;
        if per_minute == 0 {
            return Ok(());
        }
        let balance = self.settlement.balance(org_id, now_ms());
        let funded = balance.available_micros > 0
            || balance.pending_micros > 0
            || balance.escrowed_out_micros > 0
            || balance.escrowed_in_micros > 0;
        if funded || identity::org(&self.store, org_id)?.is_some_and(|o| o.verified_at_ms.is_some())
        {
            return Ok(());
        }
        self.rates
            .take(
                &format!("unproven:{org_id}"),
                "create",
                per_minute,
                std::time::Instant::now(),
            )
            .map_err(|wait| Error::UnprovenLimit {
                per_minute,
                retry_after_ms: wait.as_millis() as u64 + 1,
            })
    }

    /// Registers an organisation; durable before it returns.
    pub async fn create_org(&self, name: &str) -> Result<NewOrg> {
        Ok(identity::create_org(&self.store, name, now_ms()).await?)
    }

    /// The organisation a bearer key belongs to.
    pub fn authenticate(&self, api_key: &str) -> Result<Option<Org>> {
        Ok(identity::org_for_key(&self.store, api_key)?)
    }

    /// The organisation with this id, if any.
    pub fn org(&self, org_id: &str) -> Result<Option<Org>> {
        Ok(identity::org(&self.store, org_id)?)
    }

    /// Every organisation.
    pub fn orgs(&self) -> Result<Vec<Org>> {
        Ok(identity::list_orgs(&self.store)?)
    }

    /// Whether `token` is the admin token.
    pub fn is_admin(&self, token: &str) -> bool {
        identity::hashes_equal(&identity::secret_hash(token), &self.admin_token_sha256)
    }

    /// The batteries in force.
    pub fn batteries(&self) -> Arc<Batteries> {
        self.batteries
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn view(&self, listed: &Listed, c: &ListedCapability) -> CapabilityView {
        let id = self.catalog.line_id(listed, &c.record.name);
        let score = self.capability_score(&c.unpinned_id);
        CapabilityView::new(listed, c, id, self.stats.view(&c.pinned_id), score)
    }

    /// Every capability of the latest version of each major line of every agent.
    pub fn capabilities(&self) -> Vec<CapabilityView> {
        self.catalog
            .latest()
            .iter()
            .flat_map(|listed| listed.capabilities.iter().map(|c| self.view(listed, c)))
            .collect()
    }

    /// A page of [`Market::capabilities`]: views are built only for the
    /// `limit` capabilities after the first `offset`.
    pub fn capabilities_page(&self, offset: usize, limit: usize) -> Vec<CapabilityView> {
        self.catalog
            .latest()
            .iter()
            .flat_map(|listed| listed.capabilities.iter().map(move |c| (listed, c)))
            .skip(offset)
            .take(limit)
            .map(|(listed, c)| self.view(listed, c))
            .collect()
    }

    /// How many capabilities are on offer (cheap: for health checks).
    pub fn capability_count(&self) -> usize {
        self.catalog.capability_count()
    }

    /// `f` of the listed capability an id names (pinned, major line or bare).
    fn with_capability<T>(
        &self,
        id: &str,
        f: impl FnOnce(&Listed, &ListedCapability) -> T,
    ) -> Result<T> {
        let parsed = CapabilityId::parse(id)?;
        let listed = self
            .catalog
            .resolve(&parsed)
            .ok_or_else(|| Error::capability_not_found(id))?;
        let c = listed
            .capability(&parsed.capability)
            .ok_or_else(|| Error::capability_not_found(id))?;
        Ok(f(&listed, c))
    }

    /// One capability, by pinned or unpinned id.
    pub fn capability(&self, id: &str) -> Result<CapabilityView> {
        self.with_capability(id, |listed, c| self.view(listed, c))
    }

    /// Whether a capability's input and output schemas describe JSON
    /// objects (cheap: no view is built). Front doors whose arguments and
    /// results must be objects (MCP) wrap other shapes.
    pub fn object_schemas(&self, id: &str) -> Result<(bool, bool)> {
        let is_object = |schema: &serde_json::Value| {
            schema.get("type").and_then(|t| t.as_str()) == Some("object")
        };
        self.with_capability(id, |_, c| {
            (
                is_object(&c.record.input_schema),
                is_object(&c.record.output_schema),
            )
        })
    }

    /// The expected cost of a call, from observed fuel.
    pub fn quote(&self, id: &str) -> Result<Quote> {
        let view = self.capability(id)?;
        Ok(Quote::new(
            &view,
            self.sandbox.limits().fuel_per_call_max,
            self.settlement.rules().fee_bps,
        ))
    }
}
