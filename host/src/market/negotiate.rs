//! Negotiations and contracts: rounds of proposals evaluated against the
//! provider's policy, offers that expire, and contracts signed by the
//! marketplace key that invocations are held to.

use super::{Error, Market, Result, now_ms};
use crate::identity::Org;
use crate::negotiation::{self, Agreed, Answer, Proposal};
use crate::registry::CapabilityId;
use crate::store::Tree;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Rounds a negotiation may take before it is closed.
pub const ROUNDS_MAX: u32 = 5;
/// Fuel a component's negotiator gets per round (free to the consumer).
pub const NEGOTIATION_FUEL: u64 = 200_000_000;

/// How long an offer stays open by default (`offer_ms` in the config).
pub const OFFER_MS: u64 = 10 * 60_000;

/// A negotiation and where it stands.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, ToSchema)]
pub struct Negotiation {
    /// Id (`neg_…`).
    pub negotiation_id: String,
    /// The consumer.
    pub consumer_org_id: String,
    /// The capability version negotiated (pinned at the first round).
    pub capability_id: String,
    /// Rounds so far.
    pub round: u32,
    /// `countered` (the provider's counter waits for the consumer),
    /// `accepted` (a contract exists), `rejected`, or `closed`.
    pub status: String,
    /// The last proposal.
    pub proposal: Proposal,
    /// The provider's counter-terms, when countered.
    pub counter: Option<Proposal>,
    /// One reason per term the provider could not accept.
    pub reasons: Vec<String>,
    /// When the open offer lapses, Unix milliseconds.
    pub offer_expires_at_ms: u64,
    /// The contract, once accepted.
    pub contract_id: Option<String>,
}

/// A contract, as stored and served (signed by the marketplace key).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Contract {
    /// `mercato-contract/1`.
    pub format: String,
    /// Id (`ctr_…`).
    pub contract_id: String,
    /// The negotiation it came from.
    pub negotiation_id: String,
    /// The capability version it covers.
    pub capability_id: String,
    /// The component that version runs.
    pub component_sha256: String,
    /// The consumer.
    pub consumer_org_id: String,
    /// The provider.
    pub provider_org_id: String,
    /// The terms.
    pub terms: Agreed,
    /// When it was signed, Unix milliseconds.
    pub signed_at_ms: u64,
    /// Until when it holds, Unix milliseconds.
    pub valid_until_ms: u64,
}

/// What a consumer does with a countered negotiation.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, ToSchema)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Response {
    /// Accept the provider's counter-terms.
    Accept,
    /// Propose other terms (a new round).
    Propose {
        /// The new proposal.
        terms: Proposal,
    },
    /// Walk away.
    Reject,
}

fn new_id(prefix: &str) -> String {
    format!("{prefix}_{}", uuid::Uuid::now_v7().simple())
}

impl Market {
    /// Opens a negotiation over a capability with proposed terms.
    pub async fn negotiate(
        &self,
        consumer: &Org,
        capability_id: &str,
        proposal: Proposal,
    ) -> Result<(Negotiation, Option<serde_json::Value>)> {
        self.creation_allowed(&consumer.org_id)?;
        let id = CapabilityId::parse(capability_id)?;
        let listed = self
            .catalog
            .resolve(&id)
            .ok_or_else(|| Error::capability_not_found(capability_id))?;
        let capability = listed
            .capability(&id.capability)
            .ok_or_else(|| Error::capability_not_found(capability_id))?;
        let negotiation = Negotiation {
            negotiation_id: new_id("neg"),
            consumer_org_id: consumer.org_id.clone(),
            capability_id: capability.pinned_id.clone(),
            round: 0,
            status: String::new(),
            proposal: proposal.clone(),
            counter: None,
            reasons: Vec::new(),
            offer_expires_at_ms: 0,
            contract_id: None,
        };
        self.round(negotiation, proposal).await
    }

    /// The consumer's answer to a countered negotiation.
    pub async fn respond(
        &self,
        consumer: &Org,
        negotiation_id: &str,
        response: Response,
    ) -> Result<(Negotiation, Option<serde_json::Value>)> {
        let mut negotiation = self
            .store
            .get::<Negotiation>(Tree::Negotiations, negotiation_id)?
            .filter(|n| n.consumer_org_id == consumer.org_id)
            .ok_or_else(|| {
                Error::NotFound(format!(
                    "negotiation `{}` of yours",
                    super::echoed(negotiation_id)
                ))
            })?;
        if negotiation.status != "countered" {
            return Err(Error::NegotiationClosed(format!(
                "negotiation {negotiation_id} is {}",
                negotiation.status
            )));
        }
        if now_ms() >= negotiation.offer_expires_at_ms {
            negotiation.status = "closed".into();
            negotiation.reasons = vec!["the offer expired".into()];
            self.save_negotiation(&negotiation).await?;
            return Err(Error::NegotiationClosed(format!(
                "the offer of negotiation {negotiation_id} expired"
            )));
        }
        match response {
            Response::Accept => {
                let counter = negotiation.counter.clone().ok_or_else(|| {
                    Error::NegotiationClosed("there is no counter-offer to accept".into())
                })?;
                self.round(negotiation, counter).await
            }
            Response::Propose { terms } => self.round(negotiation, terms).await,
            Response::Reject => {
                negotiation.status = "rejected".into();
                negotiation.reasons = vec!["the consumer walked away".into()];
                self.save_negotiation(&negotiation).await?;
                Ok((negotiation, None))
            }
        }
    }

    async fn round(
        &self,
        mut negotiation: Negotiation,
        proposal: Proposal,
    ) -> Result<(Negotiation, Option<serde_json::Value>)> {
        negotiation::check(&proposal).map_err(Error::InvalidQuery)?;
        let id = CapabilityId::parse(&negotiation.capability_id)?;
        let listed = self
            .catalog
            .resolve(&id)
            .ok_or_else(|| Error::capability_not_found(&negotiation.capability_id))?;
        let capability = listed
            .capability(&id.capability)
            .ok_or_else(|| Error::capability_not_found(&negotiation.capability_id))?;
        let terms = &capability.record.terms;
        let policy = terms.negotiation.clone().unwrap_or_default();
        negotiation.round += 1;
        negotiation.proposal = proposal.clone();
        let now = now_ms();
        negotiation.offer_expires_at_ms = now + self.config.offer_ms;
        let mut contract = None;
        let fee_bps = self.settlement.rules().fee_bps;
        let answer = match negotiation::hard_limits(terms, fee_bps, &proposal) {
            Some(answer) => answer,
            None => match self
                .sandbox
                .negotiate(
                    &listed.compiled,
                    &capability.record.name,
                    &serde_json::to_string(&proposal)
                        .map_err(|e| Error::Internal(e.to_string()))?,
                    NEGOTIATION_FUEL,
                )
                .await
            {
                // An agent without a negotiator: the manifest's policy.
                None => negotiation::evaluate(terms, &policy, fee_bps, &proposal),
                Some(Ok(text)) => match serde_json::from_str::<negotiation::Decision>(&text) {
                    Ok(decision) => {
                        negotiation::from_decision(terms, &policy, fee_bps, &proposal, decision)
                    }
                    Err(e) => Answer::Reject(vec![format!(
                        "the provider's negotiator answered nonsense: {e}"
                    )]),
                },
                Some(Err(failure)) => Answer::Reject(vec![format!(
                    "the provider's negotiator failed: {}",
                    failure.code()
                )]),
            },
        };
        match answer {
            Answer::Accept(agreed) => {
                let signed = self.sign_contract(&negotiation, &listed.record, agreed, now)?;
                negotiation.status = "accepted".into();
                negotiation.counter = None;
                negotiation.reasons = Vec::new();
                negotiation.contract_id = signed["contract_id"].as_str().map(str::to_string);
                contract = Some(signed);
            }
            Answer::Counter(counter, reasons) if negotiation.round < ROUNDS_MAX => {
                negotiation.status = "countered".into();
                negotiation.counter = Some(counter);
                negotiation.reasons = reasons;
            }
            Answer::Counter(_, mut reasons) => {
                reasons.push(format!("closed after {ROUNDS_MAX} rounds"));
                negotiation.status = "closed".into();
                negotiation.counter = None;
                negotiation.reasons = reasons;
            }
            Answer::Reject(reasons) => {
                negotiation.status = "rejected".into();
                negotiation.counter = None;
                negotiation.reasons = reasons;
            }
        }
        self.save_negotiation(&negotiation).await?;
        Ok((negotiation, contract))
    }

    fn sign_contract(
        &self,
        negotiation: &Negotiation,
        version: &crate::registry::VersionRecord,
        terms: Agreed,
        now: u64,
    ) -> Result<serde_json::Value> {
        let contract = Contract {
            format: "mercato-contract/1".into(),
            contract_id: new_id("ctr"),
            negotiation_id: negotiation.negotiation_id.clone(),
            capability_id: negotiation.capability_id.clone(),
            component_sha256: version.component_sha256.clone(),
            consumer_org_id: negotiation.consumer_org_id.clone(),
            provider_org_id: version.owner_org_id.clone(),
            valid_until_ms: now.saturating_add(terms.validity_ms),
            terms,
            signed_at_ms: now,
        };
        let mut value =
            serde_json::to_value(&contract).map_err(|e| Error::Internal(e.to_string()))?;
        self.market_key
            .sign(&mut value)
            .map_err(|e| Error::Internal(e.to_string()))?;
        self.store
            .put(Tree::Contracts, &contract.contract_id, &value)?;
        self.index_contract(&contract)?;
        Ok(value)
    }

    async fn save_negotiation(&self, negotiation: &Negotiation) -> Result<()> {
        self.store
            .put(Tree::Negotiations, &negotiation.negotiation_id, negotiation)?;
        self.store.sync().await?;
        Ok(())
    }

    /// A negotiation of the caller's.
    pub fn negotiation(&self, consumer: &Org, negotiation_id: &str) -> Result<Negotiation> {
        self.store
            .get::<Negotiation>(Tree::Negotiations, negotiation_id)?
            .filter(|n| n.consumer_org_id == consumer.org_id)
            .ok_or_else(|| {
                Error::NotFound(format!(
                    "negotiation `{}` of yours",
                    super::echoed(negotiation_id)
                ))
            })
    }

    /// A signed contract, for either of its parties.
    pub fn contract(&self, org: &Org, contract_id: &str) -> Result<serde_json::Value> {
        self.store
            .get::<serde_json::Value>(Tree::Contracts, contract_id)?
            .filter(|c| c["consumer_org_id"] == org.org_id || c["provider_org_id"] == org.org_id)
            .ok_or_else(|| {
                Error::NotFound(format!(
                    "contract `{}` of yours",
                    super::echoed(contract_id)
                ))
            })
    }

    /// The contract a call runs under, checked: the caller's, in force, for
    /// the named capability.
    pub(super) fn contract_for_call(
        &self,
        consumer: &Org,
        contract_id: &str,
        capability: &CapabilityId,
    ) -> Result<Contract> {
        let value = self.contract(consumer, contract_id)?;
        let contract: Contract =
            serde_json::from_value(value).map_err(|e| Error::Internal(e.to_string()))?;
        if contract.consumer_org_id != consumer.org_id {
            return Err(Error::ContractViolation(
                "the contract belongs to another consumer".into(),
            ));
        }
        if now_ms() > contract.valid_until_ms {
            return Err(Error::ContractViolation(format!(
                "contract {contract_id} expired at {}",
                contract.valid_until_ms
            )));
        }
        let covered = CapabilityId::parse(&contract.capability_id)?;
        if covered.agent != capability.agent || covered.capability != capability.capability {
            return Err(Error::ContractViolation(format!(
                "contract {contract_id} covers {}, not {}.{}",
                contract.capability_id, capability.agent, capability.capability
            )));
        }
        Ok(contract)
    }
}
