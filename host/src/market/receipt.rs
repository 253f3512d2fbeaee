//! The signed receipt of a call: what either party can show to prove what
//! happened (RFC 8785 canonical JSON, signed by the marketplace key).

use super::invoke::InvocationRecord;
use super::{Error, Market, Result};
use crate::identity::signing::DocumentSignature;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::value::RawValue;

/// A signed receipt as the JSON text it was signed as, with its
/// `signature` member in canonical order. The record and the answer write it out as it
/// is, so a call never builds it as a tree of values (a door whose answer is
/// a value asks for [`SignedReceipt::to_value`]). Read back from any JSON
/// document (a stored record, a remembered answer).
#[derive(Debug, Clone)]
pub struct SignedReceipt(Box<RawValue>);

impl SignedReceipt {
    /// The receipt as a JSON value.
    pub fn to_value(&self) -> serde_json::Value {
        serde_json::from_str(self.0.get()).unwrap_or(serde_json::Value::Null)
    }

    /// The receipt's JSON text.
    pub fn as_str(&self) -> &str {
        self.0.get()
    }
}

impl PartialEq for SignedReceipt {
    fn eq(&self, other: &Self) -> bool {
        self.0.get() == other.0.get()
    }
}

impl Serialize for SignedReceipt {
    fn serialize<S: Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        self.0.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for SignedReceipt {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        let value = serde_json::Value::deserialize(deserializer)?;
        serde_json::value::to_raw_value(&value)
            .map(SignedReceipt)
            .map_err(serde::de::Error::custom)
    }
}

/// The receipt of a call: what either party can show to prove what happened.
///
/// The fields are in RFC 8785 order (sorted, all ASCII names) and are only
/// strings, integers, booleans and nulls, so while every integer is exact as
/// a double (≤ 2⁵³ − 1; RFC 8785 writes numbers as doubles) `serde_json`'s
/// compact form of it *is* its canonical form: it is signed without a second
/// pass through `serde_jcs` (a test holds the two equal).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
struct Receipt<'a> {
    at_ms: u64,
    capability_id: &'a str,
    charged_micros: u64,
    component_sha256: &'a str,
    consumer_org_id: &'a str,
    contract_id: Option<&'a str>,
    cost_micros: u64,
    duration_us: u64,
    fee_micros: u64,
    format: &'static str,
    fuel_limit: u64,
    fuel_used: u64,
    input_sha256: &'a str,
    outcome: &'a str,
    output_sha256: Option<&'a str>,
    provider_org_id: &'a str,
    sla_missed: bool,
    transaction_id: &'a str,
}

/// The largest integer RFC 8785 writes as itself (its numbers are doubles).
const EXACT_IN_A_DOUBLE: u64 = (1 << 53) - 1;

impl Market {
    /// The signed receipt of a recorded call: signed with the receipts of
    /// the calls that end beside it ([`ReceiptSigner`]).
    pub(super) async fn receipt(&self, record: &InvocationRecord) -> Result<SignedReceipt> {
        let receipt = Receipt {
            format: "mercato-receipt/1",
            transaction_id: &record.transaction_id,
            capability_id: &record.capability_id,
            component_sha256: &record.component_sha256,
            consumer_org_id: &record.consumer_org_id,
            provider_org_id: &record.provider_org_id,
            outcome: &record.outcome,
            input_sha256: &record.input_sha256,
            output_sha256: record.output_sha256.as_deref(),
            fuel_limit: record.fuel_limit,
            fuel_used: record.fuel_used,
            cost_micros: record.cost_micros,
            fee_micros: record.fee_micros,
            charged_micros: record.charged_micros,
            contract_id: record.contract_id.as_deref(),
            sla_missed: record.sla_missed,
            duration_us: record.duration_us,
            at_ms: record.at_ms,
        };
        if !is_exact(&receipt) {
            return signed(&self.market_key, &receipt);
        }
        let canonical = serde_json::to_vec(&receipt).map_err(internal)?;
        let (canonical, signature) = self.receipts.sign(&self.market_key, canonical).await?;
        spliced(canonical, &signature)
    }
}

fn internal(e: serde_json::Error) -> Error {
    Error::Internal(e.to_string())
}

/// Whether every integer of `receipt` is exact as a double, so that its
/// compact JSON is its canonical form.
fn is_exact(receipt: &Receipt) -> bool {
    [
        receipt.at_ms,
        receipt.charged_micros,
        receipt.cost_micros,
        receipt.duration_us,
        receipt.fee_micros,
        receipt.fuel_limit,
        receipt.fuel_used,
    ]
    .iter()
    .all(|n| *n <= EXACT_IN_A_DOUBLE)
}

/// A receipt signed alone with `key`: its compact JSON is its canonical form
/// while every integer is exact as a double, so that text is signed and kept
/// with the `signature` member put in; otherwise it goes through `serde_jcs`.
fn signed(key: &crate::identity::MarketKey, receipt: &Receipt) -> Result<SignedReceipt> {
    if !is_exact(receipt) {
        let mut value = serde_json::to_value(receipt).map_err(internal)?;
        key.sign(&mut value)
            .map_err(|e| Error::Internal(e.to_string()))?;
        return serde_json::value::to_raw_value(&value)
            .map(SignedReceipt)
            .map_err(internal);
    }
    let canonical = serde_json::to_vec(receipt).map_err(internal)?;
    let signature = key.sign_canonical(&canonical);
    spliced(canonical, &signature)
}

/// A receipt's canonical text with its `signature` member put in.
fn spliced(canonical: Vec<u8>, signature: &DocumentSignature) -> Result<SignedReceipt> {
    // `signature` goes where RFC 8785 orders it, before `sla_missed` (a
    // quote inside a string is escaped, so the first `,"sla_missed":` is
    // the member), and the text stays canonical (the signature's own
    // members are declared in that order): read back into a value and
    // written again, it comes out the same.
    const NEXT: &[u8] = b",\"sla_missed\":";
    let at = canonical
        .windows(NEXT.len())
        .position(|w| w == NEXT)
        .ok_or_else(|| Error::Internal("a receipt without sla_missed".into()))?;
    let mut text = Vec::with_capacity(canonical.len() + 192);
    text.extend_from_slice(&canonical[..at]);
    text.extend_from_slice(b",\"signature\":");
    serde_json::to_writer(&mut text, signature).map_err(internal)?;
    text.extend_from_slice(&canonical[at..]);
    let text = String::from_utf8(text).map_err(|e| Error::Internal(e.to_string()))?;
    RawValue::from_string(text)
        .map(SignedReceipt)
        .map_err(internal)
}

/// Most receipts under one signature (a proof of at most 6 hashes).
const BATCH_MAX: usize = 64;

/// The most calls whose receipts are signed alone, after a call that
/// waited a turn found no other call ending beside it, before a call waits a
/// turn for company again.
const ALONE_MAX: u32 = 32;

/// A receipt waiting for its signature, and where its signature goes.
type Waiting = (
    Vec<u8>,
    tokio::sync::oneshot::Sender<(Vec<u8>, DocumentSignature)>,
);

/// Signs receipts many under one signature when calls end together.
///
/// A call's receipt waits in a list. While calls are ending together, the
/// call first lets the others on its thread run up to their own receipts
/// (one `yield_now`), then signs whatever waits, at most [`BATCH_MAX`] at a
/// time, as one Merkle tree under one ed25519 signature (the signature was a
/// fifth of a free call's host CPU at 32 connections: docs/BENCHMARKS.md
/// §17). A call that waited its turn and found itself alone sends the next
/// calls to sign alone, without the turn (which costs a lone client a
/// wake-up of another thread): 1, then 2, 4 … up to [`ALONE_MAX`] calls while
/// they keep finding themselves alone, none once two receipts share a
/// signature. Every call signs what waits before it waits for its own, so a
/// call dropped in its turn never strands another's receipt.
#[derive(Default)]
pub(super) struct ReceiptSigner {
    waiting: std::sync::Mutex<Vec<Waiting>>,
    /// Calls left to sign alone without waiting a turn.
    alone_for: std::sync::atomic::AtomicU32,
    /// How many calls the last call found alone sent to sign alone.
    backoff: std::sync::atomic::AtomicU32,
}

impl ReceiptSigner {
    fn waiting(&self) -> std::sync::MutexGuard<'_, Vec<Waiting>> {
        self.waiting.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The signature of `canonical`, with it back.
    pub(super) async fn sign(
        &self,
        key: &crate::identity::MarketKey,
        canonical: Vec<u8>,
    ) -> Result<(Vec<u8>, DocumentSignature)> {
        use std::sync::atomic::Ordering::Relaxed;
        let (answer, signature) = tokio::sync::oneshot::channel();
        self.waiting().push((canonical, answer));
        let gather = self
            .alone_for
            .fetch_update(Relaxed, Relaxed, |n| n.checked_sub(1))
            .is_err();
        if gather {
            tokio::task::yield_now().await;
        }
        match self.sign_waiting(key) {
            0 => {}
            1 if gather => {
                // Alone: sign alone for twice as many calls as last time.
                let alone = self
                    .backoff
                    .load(Relaxed)
                    .saturating_mul(2)
                    .clamp(1, ALONE_MAX);
                self.backoff.store(alone, Relaxed);
                self.alone_for.store(alone, Relaxed);
            }
            1 => {}
            _ => {
                self.backoff.store(0, Relaxed);
                self.alone_for.store(0, Relaxed);
            }
        }
        signature
            .await
            .map_err(|_| Error::Internal("a receipt left unsigned".into()))
    }

    /// Signs every receipt waiting; the most it signed under one signature.
    fn sign_waiting(&self, key: &crate::identity::MarketKey) -> usize {
        let mut largest = 0;
        loop {
            let batch: Vec<Waiting> = {
                let mut waiting = self.waiting();
                let n = waiting.len().min(BATCH_MAX);
                waiting.drain(..n).collect()
            };
            if batch.is_empty() {
                return largest;
            }
            largest = largest.max(batch.len());
            let signatures = key.sign_many(batch.iter().map(|(c, _)| c.as_slice()));
            for ((canonical, answer), signature) in batch.into_iter().zip(signatures) {
                // A call dropped meanwhile no longer wants its receipt.
                let _ = answer.send((canonical, signature));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_receipts_compact_json_is_its_canonical_form() {
        let awkward =
            "caf\u{e9} \"quoted\" \\ back\nline\ttab\u{1}\u{1f}\u{7f} \u{2028} \u{1f600} </script>";
        for (text, contract, output) in
            [(awkward, Some(awkward), Some("abc")), ("plain", None, None)]
        {
            let receipt = Receipt {
                at_ms: EXACT_IN_A_DOUBLE,
                capability_id: text,
                charged_micros: 0,
                component_sha256: text,
                consumer_org_id: text,
                contract_id: contract,
                cost_micros: 123_456_789,
                duration_us: 1_234,
                fee_micros: 1,
                format: "mercato-receipt/1",
                fuel_limit: 5_000_000_000,
                fuel_used: 10_920,
                input_sha256: text,
                outcome: text,
                output_sha256: output,
                provider_org_id: text,
                sla_missed: true,
                transaction_id: text,
            };
            let compact = serde_json::to_vec(&receipt).expect("json");
            let canonical = serde_jcs::to_vec(&receipt).expect("jcs");
            assert_eq!(
                String::from_utf8_lossy(&compact),
                String::from_utf8_lossy(&canonical)
            );
        }
        // Beyond 2^53 the forms part (which is why such receipts take serde_jcs).
        let big = serde_jcs::to_vec(&serde_json::json!({"n": EXACT_IN_A_DOUBLE + 2})).expect("jcs");
        assert_ne!(
            big,
            serde_json::to_vec(&serde_json::json!({"n": EXACT_IN_A_DOUBLE + 2})).expect("json")
        );
    }

    fn receipt(at_ms: u64) -> Receipt<'static> {
        Receipt {
            at_ms,
            capability_id: "unit-converter.convert@1.0.0",
            charged_micros: 1_050,
            component_sha256: "ab",
            consumer_org_id: "org_c",
            contract_id: None,
            cost_micros: 1_000,
            duration_us: 812,
            fee_micros: 50,
            format: "mercato-receipt/1",
            fuel_limit: 5_000_000,
            fuel_used: 10_920,
            input_sha256: "cd",
            outcome: "ok",
            output_sha256: Some("ef"),
            provider_org_id: "org_p",
            sla_missed: false,
            transaction_id: "tx_1",
        }
    }

    #[test]
    fn a_signed_receipt_verifies_and_reads_back_from_any_document() {
        let dir = tempfile::tempdir().expect("dir");
        let key = crate::identity::MarketKey::load_or_create(dir.path()).expect("key");
        let keys = key.key_set().verifying_keys();
        let verify = |value: &serde_json::Value| {
            crate::identity::signing::verify_document(
                value,
                keys.iter().map(|(id, k)| (id.as_str(), k)),
            )
        };
        // Spliced text, the serde_jcs path (past 2^53), a look-alike member: all verify.
        // A member's text that looks like the member the signature goes before.
        let sneaky = receipt(1_765_000_000_000);
        let sneaky = Receipt {
            contract_id: Some(r#"c,"sla_missed":true,"x"#),
            ..sneaky
        };
        for receipt in [
            receipt(1_765_000_000_000),
            receipt(EXACT_IN_A_DOUBLE + 2),
            sneaky,
        ] {
            let signed = signed(&key, &receipt).expect("signed");
            let value = signed.to_value();
            assert_eq!(value["transaction_id"], "tx_1");
            // Canonical order, signature included: a round trip keeps the text.
            assert_eq!(
                serde_json::to_string(&value).expect("text"),
                signed.as_str()
            );
            assert!(verify(&value).is_ok(), "{}", signed.as_str());
            // As a stored record holds it, and as a remembered answer (a value) does.
            let record = format!(r#"{{"receipt": {}}}"#, signed.as_str());
            #[derive(serde::Deserialize)]
            struct Held {
                receipt: SignedReceipt,
            }
            let held: Held = serde_json::from_str(&record).expect("from text");
            assert_eq!(held.receipt.to_value(), value);
            let from_value: SignedReceipt = serde_json::from_value(value.clone()).expect("value");
            assert_eq!(from_value.to_value(), value);
            assert_eq!(serde_json::to_value(&from_value).expect("out"), value);
            // One fact changed: the signature no longer holds.
            let mut forged = value.clone();
            forged["fuel_used"] = 1.into();
            assert!(verify(&forged).is_err());
        }
    }

    fn keyed() -> (tempfile::TempDir, crate::identity::MarketKey) {
        let dir = tempfile::tempdir().expect("dir");
        let key = crate::identity::MarketKey::load_or_create(dir.path()).expect("key");
        (dir, key)
    }

    fn verifies(key: &crate::identity::MarketKey, value: &serde_json::Value) -> bool {
        let keys = key.key_set().verifying_keys();
        crate::identity::signing::verify_document(
            value,
            keys.iter().map(|(id, k)| (id.as_str(), k)),
        )
        .is_ok()
    }

    fn canonical(n: u64) -> Vec<u8> {
        let receipt = Receipt {
            transaction_id: "tx_batch",
            ..receipt(1_765_000_000_000 + n)
        };
        serde_json::to_vec(&receipt).expect("json")
    }

    #[test]
    fn receipts_signed_under_one_signature_each_verify_alone_and_only_as_signed() {
        let (_dir, key) = keyed();
        let canonicals: Vec<Vec<u8>> = (0..5).map(canonical).collect();
        let signatures = key.sign_many(canonicals.iter().map(Vec::as_slice));
        let receipts: Vec<serde_json::Value> = canonicals
            .iter()
            .zip(&signatures)
            .map(|(c, s)| {
                let signed = spliced(c.clone(), s).expect("spliced");
                let value = signed.to_value();
                // Still canonical with the proof in it.
                assert_eq!(
                    serde_json::to_string(&value).expect("text"),
                    signed.as_str()
                );
                value
            })
            .collect();
        for (i, value) in receipts.iter().enumerate() {
            assert!(verifies(&key, value), "{value}");
            assert_eq!(value["signature"]["batch"]["index"], i);
            assert_eq!(value["signature"]["batch"]["leaves"], 5);
            let mut forged = value.clone();
            forged["fuel_used"] = 1.into();
            assert!(!verifies(&key, &forged));
            // Another receipt's proof, or this one's moved, proves nothing.
            let mut swapped = value.clone();
            swapped["signature"] = receipts[(i + 1) % 5]["signature"].clone();
            assert!(!verifies(&key, &swapped));
            let mut moved = value.clone();
            moved["signature"]["batch"]["index"] = ((i + 1) % 5).into();
            assert!(!verifies(&key, &moved));
            let mut resized = value.clone();
            resized["signature"]["batch"]["leaves"] = 6.into();
            assert!(!verifies(&key, &resized));
            // The batch's signature over the document itself is not one.
            let mut bare = value.clone();
            bare["signature"]
                .as_object_mut()
                .expect("signature")
                .remove("batch");
            assert!(!verifies(&key, &bare));
        }
        // One alone is signed as before, with no proof.
        let one = key.sign_many([canonicals[0].as_slice()].into_iter());
        assert_eq!(one[0].batch, None);
        assert!(verifies(
            &key,
            &spliced(canonicals[0].clone(), &one[0])
                .expect("spliced")
                .to_value()
        ));
    }

    #[tokio::test(flavor = "current_thread")]
    async fn calls_ending_together_share_a_signature_and_a_lone_call_signs_at_once() {
        use futures::FutureExt;
        let (_dir, key) = keyed();
        let key = std::sync::Arc::new(key);
        let signer = std::sync::Arc::new(ReceiptSigner::default());
        let calls: Vec<_> = (0..8)
            .map(|n| {
                let (key, signer) = (key.clone(), signer.clone());
                tokio::spawn(async move { signer.sign(&key, canonical(n)).await })
            })
            .collect();
        for (n, call) in calls.into_iter().enumerate() {
            let (text, signature) = call.await.expect("task").expect("signed");
            assert_eq!(text, canonical(n as u64));
            let proof = signature.batch.clone().expect("signed together");
            assert_eq!(proof.leaves, 8);
            assert!(verifies(
                &key,
                &spliced(text, &signature).expect("spliced").to_value()
            ));
        }
        // A call that goes away in its turn leaves its receipt waiting; the
        // next call signs it with its own and is not held up by it.
        assert!(
            signer.sign(&key, canonical(20)).now_or_never().is_none(),
            "the call waits a turn while calls end together"
        );
        let (_, signature) = signer.sign(&key, canonical(21)).await.expect("signed");
        assert_eq!(signature.batch.map(|b| b.leaves), Some(2));
        // Alone now: signed alone, and the next call skips the turn; alone
        // again, the next two skip it.
        let (_, signature) = signer.sign(&key, canonical(22)).await.expect("signed");
        assert_eq!(signature.batch, None);
        assert!(
            signer.sign(&key, canonical(23)).now_or_never().is_some(),
            "a lone call does not wait a turn"
        );
        signer.sign(&key, canonical(24)).await.expect("signed");
        for n in 25..27 {
            assert!(signer.sign(&key, canonical(n)).now_or_never().is_some());
        }
        assert!(signer.sign(&key, canonical(27)).now_or_never().is_none());
    }
}
