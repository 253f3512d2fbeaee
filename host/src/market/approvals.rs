//! Approvals: a call that may cost more than the consumer's approval
//! threshold waits until one of its approvers (a person with an approver
//! token, not the agent's API key) accepts or rejects it, or it expires.

use super::invoke::InvokeRequest;
use super::{Error, Market, Result, now_ms};
use crate::identity::{self, Org};
use crate::store::Tree;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use utoipa::ToSchema;

/// How long an approval request waits.
pub const APPROVAL_TTL_MS: u64 = 3_600_000;

/// A call waiting for (or given) approval.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, ToSchema)]
pub struct Approval {
    /// Id (`apr_…`).
    pub approval_id: String,
    /// The consumer.
    pub consumer_org_id: String,
    /// The capability asked for.
    pub capability_id: String,
    /// SHA-256 of the input (the call must be repeated with the same input).
    pub input_sha256: String,
    /// The caller's cap, as asked.
    pub max_price_micros: Option<u64>,
    /// What the call may cost at most.
    pub hold_micros: u64,
    /// `pending`, `approved`, `rejected`, `used` or `expired`.
    pub status: String,
    /// When it was asked, Unix milliseconds.
    pub created_at_ms: u64,
    /// When it lapses.
    pub expires_at_ms: u64,
}

/// A new approver token (shown once).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct NewApprover {
    /// The organisation it approves for.
    pub org_id: String,
    /// Bearer token for `GET /v1/approvals` and `POST /v1/approvals/{id}`.
    pub approver_token: String,
}

fn input_sha256(input: &serde_json::Value) -> String {
    hex::encode(Sha256::digest(input.to_string().as_bytes()))
}

impl Market {
    /// Issues an approver token for `org`.
    pub async fn create_approver(&self, org: &Org) -> Result<NewApprover> {
        self.creation_allowed(&org.org_id)?;
        let mut secret = [0u8; 32];
        rand::fill(&mut secret);
        let token = format!("map_{}", hex::encode(secret));
        self.store.put(
            Tree::ApproverKeys,
            &identity::secret_hash(&token),
            &org.org_id,
        )?;
        self.store.sync().await?;
        Ok(NewApprover {
            org_id: org.org_id.clone(),
            approver_token: token,
        })
    }

    /// The organisation an approver token approves for.
    pub fn approver(&self, token: &str) -> Result<Option<String>> {
        Ok(self
            .store
            .get::<String>(Tree::ApproverKeys, &identity::secret_hash(token))?)
    }

    fn approval(&self, approval_id: &str) -> Result<Option<Approval>> {
        let approval = self.store.get::<Approval>(Tree::Approvals, approval_id)?;
        Ok(approval.map(|mut a| {
            if matches!(a.status.as_str(), "pending" | "approved") && now_ms() > a.expires_at_ms {
                a.status = "expired".into();
            }
            a
        }))
    }

    /// Before a paid call: above the threshold, a call needs an approved
    /// approval for exactly this request; without one it is filed. The
    /// approval used is returned (marked `used`), so that a call that then
    /// never runs (its hold refused, no slot free) can give it back with
    /// [`Market::restore_approval`].
    pub(super) fn check_approval(
        &self,
        consumer: &Org,
        request: &InvokeRequest,
        hold_micros: u64,
    ) -> Result<Option<Approval>> {
        let Some(threshold) = self
            .settlement
            .budget(&consumer.org_id)
            .approval_above_micros
        else {
            return Ok(None);
        };
        if hold_micros <= threshold {
            return Ok(None);
        }
        let hash = input_sha256(&request.input);
        if let Some(id) = &request.approval_id {
            let approval = self
                .approval(id)?
                .filter(|a| a.consumer_org_id == consumer.org_id)
                .ok_or_else(|| {
                    Error::NotFound(format!("approval `{}` of yours", super::echoed(id)))
                })?;
            if approval.capability_id != request.capability_id
                || approval.input_sha256 != hash
                || approval.max_price_micros != request.max_price_micros
            {
                return Err(Error::ApprovalMismatch(id.clone()));
            }
            if approval.status != "approved" {
                return Err(Error::ApprovalNotGranted {
                    approval_id: id.clone(),
                    status: approval.status,
                });
            }
            // Used once: the swap fails if another call used it first.
            let mut used = approval.clone();
            used.status = "used".into();
            if !self
                .store
                .compare_and_swap(Tree::Approvals, id, &approval, &used)?
            {
                return Err(Error::ApprovalNotGranted {
                    approval_id: id.clone(),
                    status: "used".into(),
                });
            }
            return Ok(Some(used));
        }
        // A request is stored and announced (feed, webhook): counted for an
        // organisation that is neither verified nor funded.
        self.creation_allowed(&consumer.org_id)?;
        let now = now_ms();
        let approval = Approval {
            approval_id: format!("apr_{}", uuid::Uuid::now_v7().simple()),
            consumer_org_id: consumer.org_id.clone(),
            capability_id: request.capability_id.clone(),
            input_sha256: hash,
            max_price_micros: request.max_price_micros,
            hold_micros,
            status: "pending".into(),
            created_at_ms: now,
            expires_at_ms: now + APPROVAL_TTL_MS,
        };
        self.store
            .put(Tree::Approvals, &approval.approval_id, &approval)?;
        self.emit(
            &consumer.org_id,
            "approval_requested",
            serde_json::json!({ "approval_id": approval.approval_id, "hold_micros": hold_micros }),
        )?;
        Err(Error::ApprovalRequired {
            approval_id: approval.approval_id,
            hold_micros,
            threshold_micros: threshold,
            expires_at_ms: approval.expires_at_ms,
        })
    }

    /// Gives back an approval that [`Market::check_approval`] used for a
    /// call that never ran: it is `approved` again, for the same request.
    pub(super) fn restore_approval(&self, used: &Approval) {
        let mut approved = used.clone();
        approved.status = "approved".into();
        let restored =
            self.store
                .compare_and_swap(Tree::Approvals, &used.approval_id, used, &approved);
        if !matches!(restored, Ok(true)) {
            tracing::warn!(approval_id = %used.approval_id, "an unused approval could not be restored");
        }
    }

    /// An organisation's approvals waiting for a decision.
    pub fn pending_approvals(&self, org_id: &str) -> Result<Vec<Approval>> {
        Ok(self
            .store
            .scan::<Approval>(Tree::Approvals)?
            .into_iter()
            .filter_map(|(id, a)| (a.consumer_org_id == org_id).then_some(id))
            .filter_map(|id| self.approval(&id).ok().flatten())
            .filter(|a| a.status == "pending")
            .collect())
    }

    /// An approver decides; durable before it returns.
    pub async fn decide_approval(
        &self,
        org_id: &str,
        approval_id: &str,
        approve: bool,
    ) -> Result<Approval> {
        let approval = self
            .approval(approval_id)?
            .filter(|a| a.consumer_org_id == org_id)
            .ok_or_else(|| Error::NotFound(format!("approval `{}`", super::echoed(approval_id))))?;
        if approval.status != "pending" {
            return Err(Error::ApprovalNotGranted {
                approval_id: approval_id.into(),
                status: approval.status,
            });
        }
        let stored = self
            .store
            .get::<Approval>(Tree::Approvals, approval_id)?
            .ok_or_else(|| Error::NotFound(format!("approval `{}`", super::echoed(approval_id))))?;
        let mut decided = stored.clone();
        decided.status = if approve { "approved" } else { "rejected" }.into();
        if !self
            .store
            .compare_and_swap(Tree::Approvals, approval_id, &stored, &decided)?
        {
            return Err(Error::ApprovalNotGranted {
                approval_id: approval_id.into(),
                status: "decided".into(),
            });
        }
        self.store.sync().await?;
        Ok(decided)
    }
}
