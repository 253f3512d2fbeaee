//! The signed receipt of a call: what either party can show to prove what
//! happened (RFC 8785 canonical JSON, signed by the marketplace key).

use super::invoke::InvocationRecord;
use super::{Error, Market, Result};
use serde::{Deserialize, Serialize};

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
    /// The signed receipt of a recorded call.
    pub(super) fn receipt(&self, record: &InvocationRecord) -> Result<serde_json::Value> {
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
        let internal = |e: serde_json::Error| Error::Internal(e.to_string());
        let exact = [
            receipt.at_ms,
            receipt.charged_micros,
            receipt.cost_micros,
            receipt.duration_us,
            receipt.fee_micros,
            receipt.fuel_limit,
            receipt.fuel_used,
        ]
        .iter()
        .all(|n| *n <= EXACT_IN_A_DOUBLE);
        if !exact {
            let mut value = serde_json::to_value(&receipt).map_err(internal)?;
            self.market_key
                .sign(&mut value)
                .map_err(|e| Error::Internal(e.to_string()))?;
            return Ok(value);
        }
        let canonical = serde_json::to_vec(&receipt).map_err(internal)?;
        let signature = self.market_key.sign_canonical(&canonical);
        let mut value = serde_json::to_value(&receipt).map_err(internal)?;
        if let Some(object) = value.as_object_mut() {
            object.insert(
                "signature".into(),
                serde_json::to_value(signature).map_err(internal)?,
            );
        }
        Ok(value)
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
}
