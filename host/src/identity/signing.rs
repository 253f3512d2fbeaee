//! Ed25519 signatures over exact bytes: uploads, and documents (attestation
//! reports, later contracts and receipts) in canonical JSON.
//!
//! Owns: key and signature encodings (lower-case hex), key ids, the upload
//! statement a provider signs, and the document rule: a signed document is a
//! JSON object whose `signature` member signs the RFC 8785 (JCS) canonical
//! form of the object without that member, alone or, for documents signed
//! many at a time (receipts), through the root of a Merkle tree over them
//! (`merkle.rs`) with the document's inclusion proof in the member. Anyone
//! holding the public key can check it offline (`mercato verify`).
//!
//! Does not know about: storage or HTTP. Pure functions, no clock.

use super::merkle;
use ed25519_dalek::{Signer, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use utoipa::ToSchema;

/// The only algorithm Mercato signs or accepts.
pub const ALGORITHM: &str = "ed25519";

/// Why a key, a signature or a document does not check out.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// Not the expected hex encoding or length.
    #[error("malformed {what}: {why}")]
    Malformed {
        /// Which value.
        what: &'static str,
        /// What is wrong with it.
        why: String,
    },
    /// Well-formed, but not a signature of these bytes by this key.
    #[error("the signature does not match the signed bytes and the key")]
    Mismatch,
}

fn decode_hex<const N: usize>(what: &'static str, text: &str) -> Result<[u8; N], SignatureError> {
    let malformed = |why: String| SignatureError::Malformed { what, why };
    let bytes = hex::decode(text.trim()).map_err(|e| malformed(e.to_string()))?;
    bytes
        .try_into()
        .map_err(|b: Vec<u8>| malformed(format!("{} bytes; expected {N}", b.len())))
}

/// Parses a public key: 64 hex digits.
pub fn parse_public_key(text: &str) -> Result<VerifyingKey, SignatureError> {
    let bytes = decode_hex::<32>("public key", text)?;
    VerifyingKey::from_bytes(&bytes).map_err(|e| SignatureError::Malformed {
        what: "public key",
        why: e.to_string(),
    })
}

/// Parses a private key file's content: the 32-byte seed as 64 hex digits.
pub fn parse_signing_key(text: &str) -> Result<SigningKey, SignatureError> {
    Ok(SigningKey::from_bytes(&decode_hex::<32>(
        "private key",
        text,
    )?))
}

/// A fresh key from the operating system's random source.
pub fn generate_signing_key() -> SigningKey {
    let mut seed = [0u8; 32];
    rand::fill(&mut seed);
    SigningKey::from_bytes(&seed)
}

/// The hex form of a key's public half.
pub fn public_key_hex(key: &VerifyingKey) -> String {
    hex::encode(key.as_bytes())
}

/// A key's id: `ed25519:` and the first 16 hex digits of the SHA-256 of its
/// public half. Stable, short, and derivable by anyone holding the key.
pub fn key_id(key: &VerifyingKey) -> String {
    let digest = Sha256::digest(key.as_bytes());
    format!("{ALGORITHM}:{}", hex::encode(&digest[..8]))
}

/// Verifies a hex signature of `message` by `key` (strict: no malleable
/// signatures, no weak keys).
pub fn verify_bytes(
    key: &VerifyingKey,
    message: &[u8],
    signature_hex: &str,
) -> Result<(), SignatureError> {
    let bytes = decode_hex::<64>("signature", signature_hex)?;
    let signature = ed25519_dalek::Signature::from_bytes(&bytes);
    key.verify_strict(message, &signature)
        .map_err(|_| SignatureError::Mismatch)
}

/// Signs `message`, returning the signature as hex.
pub fn sign_bytes(key: &SigningKey, message: &[u8]) -> String {
    hex::encode(key.sign(message).to_bytes())
}

/// What a provider signs to publish: the component's and the manifest's
/// SHA-256, so neither the code nor the terms can be swapped.
pub fn upload_statement(component_sha256: &str, manifest_sha256: &str) -> Vec<u8> {
    format!("mercato-upload-v1\ncomponent-sha256:{component_sha256}\nmanifest-sha256:{manifest_sha256}\n")
        .into_bytes()
}

/// The multipart `signature` field of an upload.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UploadSignature {
    /// Id of one of the organisation's registered keys ([`key_id`]).
    pub key_id: String,
    /// Hex ed25519 signature of the [`upload_statement`].
    pub signature: String,
}

/// The `signature` member of a signed document. Its members are declared
/// in RFC 8785 order, so its compact JSON is canonical.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DocumentSignature {
    /// Always `ed25519`.
    pub algorithm: String,
    /// When the document was signed with others under one signature: its
    /// place in their Merkle tree ([`merkle`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch: Option<BatchProof>,
    /// Id of the signing key, as published in `/.well-known/mercato-keys.json`.
    pub key_id: String,
    /// Hex signature of the canonical form of the document without this
    /// member, or, with `batch`, of [`merkle::batch_statement`] for the root
    /// the proof leads to.
    pub value: String,
}

/// A document's place among the documents signed with it: the leaf hash of
/// its canonical form, led up to the signed root by `path`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BatchProof {
    /// The document's index among the tree's leaves, from 0.
    pub index: u64,
    /// How many documents the signature covers.
    pub leaves: u64,
    /// The hex SHA-256 of each sibling on the way to the root, nearest first.
    pub path: Vec<String>,
}

/// Most hashes a proof's path may hold (a tree of [`merkle::LEAVES_MAX`]).
const PATH_MAX: usize = 32;

/// The message a signature covers: the canonical bytes themselves, or the
/// statement of the root a batch proof leads to from them.
fn signed_message(
    canonical: Vec<u8>,
    batch: Option<&BatchProof>,
) -> Result<Vec<u8>, SignatureError> {
    let Some(proof) = batch else {
        return Ok(canonical);
    };
    let malformed = |why: &str| SignatureError::Malformed {
        what: "batch proof",
        why: why.into(),
    };
    if proof.path.len() > PATH_MAX {
        return Err(malformed("a path longer than any tree's"));
    }
    let path = proof
        .path
        .iter()
        .map(|hash| decode_hex::<32>("batch proof hash", hash))
        .collect::<Result<Vec<_>, _>>()?;
    let root = merkle::root_from_proof(
        merkle::leaf_hash(&canonical),
        proof.index,
        proof.leaves,
        &path,
    )
    .ok_or_else(|| malformed("the index, size and path do not make a tree"))?;
    Ok(merkle::batch_statement(&root, proof.leaves))
}

/// The canonical bytes a document's signature covers: its RFC 8785 form
/// without the top-level `signature` member.
pub fn canonical_bytes(document: &serde_json::Value) -> Result<Vec<u8>, SignatureError> {
    let mut unsigned = document.clone();
    let object = unsigned
        .as_object_mut()
        .ok_or_else(|| SignatureError::Malformed {
            what: "document",
            why: "not a JSON object".into(),
        })?;
    object.remove("signature");
    serde_jcs::to_vec(&unsigned).map_err(|e| SignatureError::Malformed {
        what: "document",
        why: e.to_string(),
    })
}

/// Signs a JSON object in place, setting its `signature` member.
pub fn sign_document(
    key: &SigningKey,
    document: &mut serde_json::Value,
) -> Result<(), SignatureError> {
    let bytes = canonical_bytes(document)?;
    let signature = DocumentSignature {
        algorithm: ALGORITHM.into(),
        batch: None,
        key_id: key_id(&key.verifying_key()),
        value: sign_bytes(key, &bytes),
    };
    let value = serde_json::to_value(signature).map_err(|e| SignatureError::Malformed {
        what: "signature",
        why: e.to_string(),
    })?;
    if let Some(object) = document.as_object_mut() {
        object.insert("signature".into(), value);
    }
    Ok(())
}

/// Checks a signed document against a set of public keys by id; returns the
/// id of the key that signed it.
pub fn verify_document<'k>(
    document: &serde_json::Value,
    keys: impl IntoIterator<Item = (&'k str, &'k VerifyingKey)>,
) -> Result<String, SignatureError> {
    let signature: DocumentSignature = document
        .get("signature")
        .cloned()
        .ok_or_else(|| SignatureError::Malformed {
            what: "document",
            why: "no `signature` member".into(),
        })
        .and_then(|s| {
            serde_json::from_value(s).map_err(|e| SignatureError::Malformed {
                what: "signature",
                why: e.to_string(),
            })
        })?;
    if signature.algorithm != ALGORITHM {
        return Err(SignatureError::Malformed {
            what: "signature",
            why: format!(
                "algorithm `{}`; expected `{ALGORITHM}`",
                signature.algorithm
            ),
        });
    }
    let key = keys
        .into_iter()
        .find(|(id, _)| *id == signature.key_id)
        .map(|(_, key)| key)
        .ok_or_else(|| SignatureError::Malformed {
            what: "signature",
            why: format!("signed by unknown key `{}`", signature.key_id),
        })?;
    let message = signed_message(canonical_bytes(document)?, signature.batch.as_ref())?;
    verify_bytes(key, &message, &signature.value)?;
    Ok(signature.key_id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_signed_document_verifies_and_any_change_breaks_it() {
        let key = generate_signing_key();
        let public = key.verifying_key();
        let id = key_id(&public);
        let mut doc = json!({"b": [1, 2, {"z": "é", "a": null}], "a": 1.5, "verdict": "pass"});
        sign_document(&key, &mut doc).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            verify_document(&doc, [(id.as_str(), &public)]),
            Ok(id.clone())
        );

        // Member order does not matter (canonical form); values do.
        let reordered: serde_json::Value =
            serde_json::from_str(&doc.to_string().replace("\"verdict\":\"pass\",", ""))
                .map(|mut v: serde_json::Value| {
                    v["verdict"] = "pass".into();
                    v
                })
                .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            verify_document(&reordered, [(id.as_str(), &public)]),
            Ok(id.clone())
        );
        let mut tampered = doc.clone();
        tampered["verdict"] = "fail".into();
        assert_eq!(
            verify_document(&tampered, [(id.as_str(), &public)]),
            Err(SignatureError::Mismatch)
        );
        let other = generate_signing_key().verifying_key();
        assert_eq!(
            verify_document(&doc, [(id.as_str(), &other)]),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn upload_signatures_bind_component_and_manifest() {
        let key = generate_signing_key();
        let public = key.verifying_key();
        let signature = sign_bytes(&key, &upload_statement("aa", "bb"));
        assert_eq!(
            verify_bytes(&public, &upload_statement("aa", "bb"), &signature),
            Ok(())
        );
        for (c, m) in [("ab", "bb"), ("aa", "bc")] {
            assert_eq!(
                verify_bytes(&public, &upload_statement(c, m), &signature),
                Err(SignatureError::Mismatch)
            );
        }
        assert!(matches!(
            verify_bytes(&public, b"x", "zz"),
            Err(SignatureError::Malformed { .. })
        ));
        assert!(parse_public_key(&"0".repeat(63)).is_err());
        let seed = hex::encode(key.to_bytes());
        assert_eq!(
            parse_signing_key(&seed).map(|k| k.verifying_key()),
            Ok(public)
        );
    }
}
