//! The marketplace's own signing key: generated on first start, kept in the
//! data directory (owner-only permissions), published at
//! `/.well-known/mercato-keys.json`. It signs attestation reports (and later
//! contracts and receipts).

use super::{merkle, signing};
use crate::store::{Store, Tree};
use ed25519_dalek::SigningKey;
use serde::{Deserialize, Serialize};
use std::path::Path;
use utoipa::ToSchema;

/// File name of the key in the data directory.
pub const KEY_FILE: &str = "marketplace-signing.key";

/// The key's record in the store's settings, when the store is shared.
pub const SHARED_KEY: &str = "marketplace_signing_key";

/// The marketplace's key pair.
pub struct MarketKey {
    key: SigningKey,
    key_id: String,
}

/// One published public key.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, ToSchema)]
pub struct PublishedKey {
    /// Key id, as in a signed document's `signature.key_id`.
    pub key_id: String,
    /// Always `ed25519`.
    pub algorithm: String,
    /// Public key, 64 hex digits.
    pub public_key: String,
}

/// `/.well-known/mercato-keys.json`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, ToSchema)]
pub struct KeySet {
    /// The keys whose signatures this marketplace issues.
    pub keys: Vec<PublishedKey>,
}

impl KeySet {
    /// The keys in a form [`signing::verify_document`] takes.
    pub fn verifying_keys(&self) -> Vec<(String, ed25519_dalek::VerifyingKey)> {
        self.keys
            .iter()
            .filter(|k| k.algorithm == signing::ALGORITHM)
            .filter_map(|k| {
                Some((
                    k.key_id.clone(),
                    signing::parse_public_key(&k.public_key).ok()?,
                ))
            })
            .collect()
    }
}

impl MarketKey {
    /// Loads the key from `data_dir`, or generates and saves it.
    pub fn load_or_create(data_dir: &Path) -> std::io::Result<MarketKey> {
        let path = data_dir.join(KEY_FILE);
        let key = match std::fs::read_to_string(&path) {
            Ok(text) => signing::parse_signing_key(&text).map_err(|e| {
                std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("{}: {e}", path.display()),
                )
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let key = signing::generate_signing_key();
                write_private(&path, &hex::encode(key.to_bytes()))?;
                key
            }
            Err(e) => return Err(e),
        };
        let key_id = signing::key_id(&key.verifying_key());
        Ok(MarketKey { key, key_id })
    }

    /// The key of a marketplace whose records are shared by its hosts
    /// (PostgreSQL): kept in the store's settings, so every host signs with
    /// the same key. The first host stores it: the one in `data_dir` when
    /// there is one (a marketplace moving off its embedded store keeps its
    /// key), else a new one.
    pub async fn load_or_create_shared(
        store: &Store,
        data_dir: &Path,
    ) -> std::io::Result<MarketKey> {
        let stored = |e: crate::store::Error| std::io::Error::other(e.to_string());
        let key = match store
            .get::<String>(Tree::Meta, SHARED_KEY)
            .map_err(stored)?
        {
            Some(text) => text,
            None => {
                let text = match std::fs::read_to_string(data_dir.join(KEY_FILE)) {
                    Ok(text) => text.trim().to_string(),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                        hex::encode(signing::generate_signing_key().to_bytes())
                    }
                    Err(e) => return Err(e),
                };
                // Of hosts starting together, the first insert wins.
                store
                    .insert_new(Tree::Meta, SHARED_KEY, &text)
                    .map_err(stored)?;
                store.sync().await.map_err(stored)?;
                store
                    .get::<String>(Tree::Meta, SHARED_KEY)
                    .map_err(stored)?
                    .ok_or_else(|| std::io::Error::other("the stored key vanished"))?
            }
        };
        let key = signing::parse_signing_key(&key).map_err(|e| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("the stored key: {e}"),
            )
        })?;
        let key_id = signing::key_id(&key.verifying_key());
        Ok(MarketKey { key, key_id })
    }

    /// The key id.
    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    /// The published key set.
    pub fn key_set(&self) -> KeySet {
        KeySet {
            keys: vec![PublishedKey {
                key_id: self.key_id.clone(),
                algorithm: signing::ALGORITHM.into(),
                public_key: signing::public_key_hex(&self.key.verifying_key()),
            }],
        }
    }

    /// Signs a JSON object in place.
    pub fn sign(&self, document: &mut serde_json::Value) -> Result<(), signing::SignatureError> {
        signing::sign_document(&self.key, document)
    }

    /// The secret an organisation's webhook deliveries are signed with:
    /// derived from the marketplace key and the organisation id, so it
    /// needs no storage of its own (it changes when the marketplace key
    /// does). `whsec_` + 64 hex digits.
    pub fn webhook_secret(&self, org_id: &str) -> String {
        use sha2::{Digest, Sha256};
        let mut hash = Sha256::new();
        hash.update(b"mercato-webhook-secret-v1\n");
        hash.update(self.key.to_bytes());
        hash.update(org_id.as_bytes());
        format!("whsec_{}", hex::encode(hash.finalize()))
    }

    /// The signature of a document whose canonical bytes (RFC 8785, without
    /// its `signature` member) the caller already has: the hot path's
    /// receipts serialise a struct whose fields are in canonical order.
    pub fn sign_canonical(&self, canonical: &[u8]) -> signing::DocumentSignature {
        signing::DocumentSignature {
            algorithm: signing::ALGORITHM.into(),
            batch: None,
            key_id: self.key_id.clone(),
            value: signing::sign_bytes(&self.key, canonical),
        }
    }

    /// The signatures of many documents (their canonical bytes, at least
    /// one) for one ed25519 signature: over the root of a Merkle tree of
    /// them, each with its inclusion proof. A document alone is signed as
    /// by [`MarketKey::sign_canonical`].
    pub fn sign_many<'d>(
        &self,
        canonicals: impl ExactSizeIterator<Item = &'d [u8]>,
    ) -> Vec<signing::DocumentSignature> {
        let leaves = canonicals.len();
        if leaves == 1 {
            return canonicals.map(|c| self.sign_canonical(c)).collect();
        }
        let hashes: Vec<merkle::Hash> = canonicals.map(merkle::leaf_hash).collect();
        let (root, paths) = merkle::tree(&hashes);
        let leaves = leaves as u64;
        let value = signing::sign_bytes(&self.key, &merkle::batch_statement(&root, leaves));
        paths
            .into_iter()
            .enumerate()
            .map(|(index, path)| signing::DocumentSignature {
                algorithm: signing::ALGORITHM.into(),
                batch: Some(signing::BatchProof {
                    index: index as u64,
                    leaves,
                    path: path.iter().map(hex::encode).collect(),
                }),
                key_id: self.key_id.clone(),
                value: value.clone(),
            })
            .collect()
    }
}

/// Writes a secret file readable by its owner only, atomically (a crash
/// leaves the old file or the new one, never half of one).
pub fn write_private(path: &Path, content: &str) -> std::io::Result<()> {
    use std::io::Write;
    let tmp = path.with_extension("tmp");
    // A `.tmp` left by a crash may carry another mode: never reuse it.
    match std::fs::remove_file(&tmp) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(&tmp)?;
    file.write_all(content.as_bytes())?;
    file.sync_all()?;
    std::fs::rename(&tmp, path)?;
    // The rename is durable once the directory is.
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}
