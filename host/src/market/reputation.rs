//! Ratings: each side of a transaction rates it once (1 to 5); capabilities
//! and organisations carry the time-decayed mean, which discovery filters
//! and ranks by.

use super::{Error, Market, Result, now_ms};
use crate::identity::Org;
use crate::reputation::{Rating, Score};
use crate::store::Tree;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

const COMMENT_CHARS_MAX: usize = 1_000;

/// One stored rating.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, ToSchema)]
pub struct RatingRecord {
    /// The transaction rated.
    pub transaction_id: String,
    /// `consumer` (rates the capability and its provider) or `provider`
    /// (rates the consumer).
    pub side: String,
    /// What the rating counts for: `cap:agent.capability`, `org:<id>`.
    pub subjects: Vec<String>,
    /// 1 to 5.
    pub score: u8,
    /// Free text.
    pub comment: String,
    /// When, Unix milliseconds.
    pub at_ms: u64,
    /// What the rated call was paid (its weight); 1 for ratings made before
    /// ratings were weighted.
    #[serde(default = "one_micro")]
    pub weight_micros: u64,
}

fn one_micro() -> u64 {
    1
}

/// How long after a call it may be rated.
pub const RATING_WINDOW_MS: u64 = 30 * 86_400_000;

impl Market {
    pub(super) fn load_ratings(&self) -> Result<()> {
        let mut reputation = self.reputation.lock().unwrap_or_else(|p| p.into_inner());
        for (_, r) in self.store.scan::<RatingRecord>(Tree::Ratings)? {
            for subject in &r.subjects {
                reputation.add(
                    subject,
                    Rating {
                        at_ms: r.at_ms,
                        score: r.score,
                        weight_micros: r.weight_micros,
                    },
                );
            }
        }
        Ok(())
    }

    fn score(&self, subject: &str) -> Score {
        self.reputation
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .score(subject, now_ms(), self.config.rating_half_life_ms)
    }

    /// A capability's rating (`agent.capability`, across versions).
    pub(super) fn capability_score(&self, unpinned_id: &str) -> Score {
        self.score(&format!("cap:{unpinned_id}"))
    }

    /// An organisation's rating.
    pub fn org_score(&self, org_id: &str) -> Score {
        self.score(&format!("org:{org_id}"))
    }

    /// Rates a transaction, once per side.
    pub async fn rate(
        &self,
        org: &Org,
        transaction_id: &str,
        score: u8,
        comment: &str,
    ) -> Result<RatingRecord> {
        if !(1..=5).contains(&score) {
            return Err(Error::InvalidQuery("a score is 1 to 5".into()));
        }
        if comment.chars().count() > COMMENT_CHARS_MAX {
            return Err(Error::InvalidQuery(format!(
                "a comment is at most {COMMENT_CHARS_MAX} characters"
            )));
        }
        let record = self
            .invocation(transaction_id)?
            .filter(|r| r.consumer_org_id == org.org_id || r.provider_org_id == org.org_id)
            .ok_or_else(|| {
                Error::NotFound(format!(
                    "transaction `{}` of yours",
                    super::echoed(transaction_id)
                ))
            })?;
        // Only a call one organisation paid another for can be rated, and
        // only for a while: free, failed and self-dealt calls cost nothing,
        // so ratings on them could be stacked for free.
        if record.consumer_org_id == record.provider_org_id {
            return Err(Error::RatingNotAllowed(
                "a call of one's own capability cannot be rated".into(),
            ));
        }
        if record.charged_micros == 0 {
            return Err(Error::RatingNotAllowed(
                "only a charged call can be rated".into(),
            ));
        }
        if now_ms() > record.at_ms.saturating_add(RATING_WINDOW_MS) {
            return Err(Error::RatingNotAllowed(format!(
                "a call can be rated within {} days",
                RATING_WINDOW_MS / 86_400_000
            )));
        }
        let unpinned = record
            .capability_id
            .split('@')
            .next()
            .unwrap_or(&record.capability_id)
            .to_string();
        // Calling yourself is both sides; it rates as the consumer.
        let (side, subjects) = if record.consumer_org_id == org.org_id {
            (
                "consumer",
                vec![
                    format!("cap:{unpinned}"),
                    format!("org:{}", record.provider_org_id),
                ],
            )
        } else {
            ("provider", vec![format!("org:{}", record.consumer_org_id)])
        };
        let rating = RatingRecord {
            transaction_id: transaction_id.into(),
            side: side.into(),
            subjects,
            score,
            comment: comment.into(),
            at_ms: now_ms(),
            weight_micros: record.charged_micros,
        };
        if !self
            .store
            .insert_new(Tree::Ratings, &format!("{transaction_id}:{side}"), &rating)?
        {
            return Err(Error::AlreadyRated(transaction_id.into()));
        }
        self.store.sync().await?;
        {
            let mut reputation = self.reputation.lock().unwrap_or_else(|p| p.into_inner());
            for subject in &rating.subjects {
                reputation.add(
                    subject,
                    Rating {
                        at_ms: rating.at_ms,
                        score,
                        weight_micros: rating.weight_micros,
                    },
                );
            }
        }
        // Discovery filters and ranks by the new rating.
        self.refresh_facts(&record.capability_id);
        Ok(rating)
    }
}
