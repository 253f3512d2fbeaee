//! Organisation signing keys: registered, rotated, revoked; and checking an
//! upload's signature against them.

use super::signing::{self, SignatureError, UploadSignature};
use super::{Error, Result};
use crate::store::{Store, Tree};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Most keys an organisation may hold, revoked ones included.
pub const KEYS_PER_ORG_MAX: usize = 32;

/// A registered public key of an organisation.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, ToSchema)]
pub struct OrgKey {
    /// [`signing::key_id`] of the key.
    pub key_id: String,
    /// The organisation.
    pub org_id: String,
    /// Ed25519 public key, 64 hex digits.
    pub public_key: String,
    /// When it was registered, Unix milliseconds.
    pub added_at_ms: u64,
    /// When it was revoked; its signatures are refused from then on.
    pub revoked_at_ms: Option<u64>,
}

fn store_key(org_id: &str, key_id: &str) -> String {
    format!("{org_id}/{key_id}")
}

/// Every key of an organisation, oldest first.
pub fn list(store: &Store, org_id: &str) -> Result<Vec<OrgKey>> {
    let mut keys: Vec<OrgKey> = store
        .scan_prefix::<OrgKey>(Tree::SigningKeys, &format!("{org_id}/"))?
        .into_iter()
        .map(|(_, key)| key)
        .collect();
    keys.sort_by_key(|k| k.added_at_ms);
    Ok(keys)
}

/// Registers a public key; durable before it returns. Registering a key the
/// organisation already holds returns it unchanged (a revoked key stays
/// revoked: rotation means a new key).
pub async fn add(store: &Store, org_id: &str, public_key: &str, now_ms: u64) -> Result<OrgKey> {
    let parsed = signing::parse_public_key(public_key).map_err(Error::BadKey)?;
    let key_id = signing::key_id(&parsed);
    if let Some(existing) = store.get::<OrgKey>(Tree::SigningKeys, &store_key(org_id, &key_id))? {
        return Ok(existing);
    }
    if list(store, org_id)?.len() >= KEYS_PER_ORG_MAX {
        return Err(Error::TooManyKeys);
    }
    let key = OrgKey {
        key_id: key_id.clone(),
        org_id: org_id.into(),
        public_key: signing::public_key_hex(&parsed),
        added_at_ms: now_ms,
        revoked_at_ms: None,
    };
    store.put(Tree::SigningKeys, &store_key(org_id, &key_id), &key)?;
    store.sync().await?;
    Ok(key)
}

/// Revokes a key; durable before it returns. Revoking twice keeps the first time.
pub async fn revoke(store: &Store, org_id: &str, key_id: &str, now_ms: u64) -> Result<OrgKey> {
    let at = store_key(org_id, key_id);
    let mut key = store
        .get::<OrgKey>(Tree::SigningKeys, &at)?
        .ok_or_else(|| Error::UnknownKey(key_id.chars().take(64).collect()))?;
    if key.revoked_at_ms.is_none() {
        key.revoked_at_ms = Some(now_ms);
        store.put(Tree::SigningKeys, &at, &key)?;
        store.sync().await?;
    }
    Ok(key)
}

/// Checks the signature of an upload by one of `org_id`'s active keys.
pub fn check_upload(
    store: &Store,
    org_id: &str,
    signature: &UploadSignature,
    component_sha256: &str,
    manifest_sha256: &str,
) -> Result<OrgKey> {
    let key = store
        .get::<OrgKey>(Tree::SigningKeys, &store_key(org_id, &signature.key_id))?
        .ok_or_else(|| Error::UnknownKey(signature.key_id.chars().take(64).collect()))?;
    if key.revoked_at_ms.is_some() {
        return Err(Error::RevokedKey(key.key_id));
    }
    let public = signing::parse_public_key(&key.public_key).map_err(Error::BadKey)?;
    let statement = signing::upload_statement(component_sha256, manifest_sha256);
    signing::verify_bytes(&public, &statement, &signature.signature).map_err(|e| match e {
        SignatureError::Mismatch => Error::SignatureMismatch,
        malformed => Error::BadSignature(malformed.to_string()),
    })?;
    Ok(key)
}
