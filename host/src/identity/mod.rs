//! Identity: organisations, their API keys and signing keys, verification by
//! an admin, the admin token, and the marketplace's own signing key.
//!
//! Owns: creating organisations and API keys (shown once, stored only as
//! SHA-256 hashes), registering and revoking ed25519 public keys, checking an
//! upload's signature, and the signing rules for documents ([`signing`]).
//!
//! Does not know about: HTTP (the API layer extracts the bearer token) or
//! what an organisation may do (the market checks verification, the registry
//! ownership).
//!
//! Invariants: a revoked key never verifies an upload again; an upload is
//! checked against the exact SHA-256 of its component and manifest bytes.

pub mod keys;
pub mod market_key;
pub mod merkle;
pub mod oauth;
pub mod signing;

pub use keys::OrgKey;
pub use market_key::{KeySet, MarketKey, PublishedKey};

use crate::store::{self, Store, Tree};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The identity result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Identity failures.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The organisation name is empty or too long.
    #[error("organisation name must be 1 to {NAME_CHARS_MAX} characters")]
    InvalidName,
    /// No such organisation.
    #[error("no organisation `{0}`")]
    UnknownOrg(String),
    /// A public key that does not parse.
    #[error("invalid public key: {0}")]
    BadKey(signing::SignatureError),
    /// The organisation holds as many keys as allowed.
    #[error("an organisation holds at most {} keys", keys::KEYS_PER_ORG_MAX)]
    TooManyKeys,
    /// The key id is not one of the organisation's keys.
    #[error("`{0}` is not a key of this organisation")]
    UnknownKey(String),
    /// The key was revoked.
    #[error("key `{0}` is revoked")]
    RevokedKey(String),
    /// The signature is not hex of the right length.
    #[error("malformed signature: {0}")]
    BadSignature(String),
    /// The signature does not match the uploaded bytes and the key.
    #[error(
        "the signature does not match the uploaded component and manifest under this key \
         (the bytes were changed, or another key signed them)"
    )]
    SignatureMismatch,
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] store::Error),
}

/// Longest organisation name, in characters.
pub const NAME_CHARS_MAX: usize = 100;

/// A registered organisation.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Org {
    /// Stable id (`org_` + 32 hex digits).
    pub org_id: String,
    /// Display name.
    pub name: String,
    /// When it registered, Unix milliseconds.
    pub created_at_ms: u64,
    /// When an admin verified it; only verified organisations publish.
    #[serde(default)]
    pub verified_at_ms: Option<u64>,
    /// Set when the request was authenticated with an OAuth access token
    /// instead of an API key: what that token may do and spend. Never
    /// stored.
    #[serde(skip)]
    pub token: Option<std::sync::Arc<oauth::TokenAccess>>,
}

/// A new organisation and its first API key, which is never shown again.
#[derive(Debug, Clone)]
pub struct NewOrg {
    /// The organisation.
    pub org: Org,
    /// The bearer key (`mk_` + 64 hex digits).
    pub api_key: String,
}

fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::rng().fill_bytes(&mut buf);
    hex::encode(buf)
}

/// Hex SHA-256 of a secret, the only form in which secrets are stored.
pub fn secret_hash(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// Registers an organisation and its first key; durable before it returns.
pub async fn create_org(store: &Store, name: &str, now_ms: u64) -> Result<NewOrg> {
    // The limit is on the name as sent (what the schema's maxLength counts);
    // what is kept is the name without its surrounding space.
    if crate::text::is_blank(name) || crate::text::chars(name) > NAME_CHARS_MAX {
        return Err(Error::InvalidName);
    }
    let name = name.trim();
    if name.is_empty() {
        return Err(Error::InvalidName);
    }
    let org = Org {
        org_id: format!("org_{}", random_hex(16)),
        name: name.to_string(),
        created_at_ms: now_ms,
        verified_at_ms: None,
        token: None,
    };
    let api_key = format!("mk_{}", random_hex(32));
    store.put(Tree::Orgs, &org.org_id, &org)?;
    store.put(Tree::ApiKeys, &secret_hash(&api_key), &org.org_id)?;
    store.sync().await?;
    Ok(NewOrg { org, api_key })
}

/// The organisation a bearer key belongs to, if any.
pub fn org_for_key(store: &Store, api_key: &str) -> Result<Option<Org>> {
    let Some(org_id) = store.get::<String>(Tree::ApiKeys, &secret_hash(api_key))? else {
        return Ok(None);
    };
    Ok(store.get::<Org>(Tree::Orgs, &org_id)?)
}

/// The organisation with this id, if any.
pub fn org(store: &Store, org_id: &str) -> Result<Option<Org>> {
    Ok(store.get::<Org>(Tree::Orgs, org_id)?)
}

/// Marks an organisation verified (idempotent: the first time stays);
/// durable before it returns.
pub async fn verify_org(store: &Store, org_id: &str, now_ms: u64) -> Result<Org> {
    let mut org = store
        .get::<Org>(Tree::Orgs, org_id)?
        .ok_or_else(|| Error::UnknownOrg(org_id.chars().take(64).collect()))?;
    if org.verified_at_ms.is_none() {
        org.verified_at_ms = Some(now_ms);
        store.put(Tree::Orgs, org_id, &org)?;
        store.sync().await?;
    }
    Ok(org)
}

const ADMIN_TOKEN_KEY: &str = "admin_token_sha256";

/// How the admin token was settled at start-up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AdminToken {
    /// Given by the environment or the config file.
    Configured,
    /// Stored from an earlier start.
    Stored,
    /// Generated now: print it once, it is never shown again.
    Generated(String),
}

/// Settles the admin token: `configured` wins; otherwise the stored hash is
/// kept; otherwise a token is generated and its hash stored.
pub async fn init_admin_token(
    store: &Store,
    configured: Option<&str>,
) -> Result<(AdminToken, String)> {
    if let Some(token) = configured.filter(|t| !t.is_empty()) {
        return Ok((AdminToken::Configured, secret_hash(token)));
    }
    if let Some(hash) = store.get::<String>(Tree::Meta, ADMIN_TOKEN_KEY)? {
        return Ok((AdminToken::Stored, hash));
    }
    let token = format!("mat_{}", random_hex(32));
    let hash = secret_hash(&token);
    store.put(Tree::Meta, ADMIN_TOKEN_KEY, &hash)?;
    store.sync().await?;
    Ok((AdminToken::Generated(token), hash))
}

/// Compares two equal-length hex hashes without an early exit.
pub fn hashes_equal(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// Every organisation, by id.
pub fn list_orgs(store: &Store) -> Result<Vec<Org>> {
    Ok(store
        .scan::<Org>(Tree::Orgs)?
        .into_iter()
        .map(|(_, org)| org)
        .collect())
}
