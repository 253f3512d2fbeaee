//! Commands that need no host: key generation and signature verification.

use crate::identity::market_key::write_private;
use crate::identity::{KeySet, signing};
use anyhow::{Context, Result, bail};
use std::path::Path;

/// `mercato keys generate --out FILE`.
pub fn generate_key(out: &Path) -> Result<()> {
    if out.exists() {
        bail!("{} exists; refusing to overwrite a key", out.display());
    }
    let key = signing::generate_signing_key();
    write_private(out, &hex::encode(key.to_bytes()))
        .with_context(|| format!("cannot write {}", out.display()))?;
    let public = key.verifying_key();
    println!("private key: {} (keep it secret)", out.display());
    println!("public key:  {}", signing::public_key_hex(&public));
    println!("key id:      {}", signing::key_id(&public));
    println!("Register it: mercato keys register --key {}", out.display());
    Ok(())
}

/// Reads a private key file.
pub fn read_signing_key(path: &Path) -> Result<ed25519_dalek::SigningKey> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    signing::parse_signing_key(&text).with_context(|| format!("{} is not a key", path.display()))
}

/// `mercato verify DOC`: checks a signed document against a key set; prints
/// who signed it and its verdict.
pub fn verify_document(document: &Path, keys: &KeySet) -> Result<()> {
    let text = std::fs::read_to_string(document)
        .with_context(|| format!("cannot read {}", document.display()))?;
    let value: serde_json::Value = serde_json::from_str(&text)
        .with_context(|| format!("{} is not JSON", document.display()))?;
    let verifying = keys.verifying_keys();
    let key_id =
        signing::verify_document(&value, verifying.iter().map(|(id, key)| (id.as_str(), key)))
            .with_context(|| format!("{} does not verify", document.display()))?;
    println!("valid signature by {key_id}");
    if let Some(verdict) = value.get("verdict").and_then(|v| v.as_str()) {
        println!(
            "{} {}: attestation {verdict}",
            value["agent"].as_str().unwrap_or(""),
            value["version"].as_str().unwrap_or("")
        );
    }
    Ok(())
}
