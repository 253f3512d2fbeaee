//! Reputation: ratings (1 to 5, one per side of a transaction) folded into a
//! time-decayed mean, pure (the clock is passed in).
//!
//! Owns: the decay rule (a rating's weight halves every `half_life_ms`) and
//! the bounded per-subject history it is computed from. Subjects are
//! capabilities (`agent.capability`) and organisations.
//!
//! Does not know about: storage or transactions (the market checks who may
//! rate what and stores ratings).

use serde::{Deserialize, Serialize};
use std::collections::{HashMap, VecDeque};
use utoipa::ToSchema;

/// Ratings kept per subject (the oldest go first; with any sensible
/// half-life they weigh nothing by then).
pub const HISTORY_MAX: usize = 4_096;

/// One rating.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rating {
    /// When, Unix milliseconds.
    pub at_ms: u64,
    /// 1 to 5.
    pub score: u8,
    /// What the rated call was paid, in micros: a rating weighs in
    /// proportion to it, so that ratings cost real money to stack.
    pub weight_micros: u64,
}

/// A subject's rating now.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Score {
    /// Time-decayed mean, 1 to 5; none before the first rating.
    pub rating: Option<f64>,
    /// Ratings received.
    pub ratings: u64,
}

/// The time-decayed, payment-weighted mean of `ratings` at `now_ms`: each
/// weighs `weight_micros × 0.5^(age / half_life)` (at least 1 micro). Only relative ages matter to a weighted mean, so
/// weights are taken relative to the newest rating (exact for one rating, and
/// no underflow for old histories).
pub fn decayed_mean(
    ratings: impl IntoIterator<Item = Rating>,
    now_ms: u64,
    half_life_ms: u64,
) -> Option<f64> {
    let ratings: Vec<Rating> = ratings.into_iter().filter(|r| r.at_ms <= now_ms).collect();
    let newest = ratings.iter().map(|r| r.at_ms).max()?;
    let (mut weighted, mut weights) = (0.0f64, 0.0f64);
    for r in &ratings {
        let age = (newest - r.at_ms) as f64;
        let weight = r.weight_micros.max(1) as f64 * 0.5f64.powf(age / half_life_ms.max(1) as f64);
        weighted += weight * f64::from(r.score);
        weights += weight;
    }
    Some(weighted / weights)
}

/// Ratings by subject.
#[derive(Debug, Default)]
pub struct Reputation {
    subjects: HashMap<String, (VecDeque<Rating>, u64)>,
}

impl Reputation {
    /// Adds a rating of `subject`.
    pub fn add(&mut self, subject: &str, rating: Rating) {
        let (history, count) = self.subjects.entry(subject.to_string()).or_default();
        if history.len() == HISTORY_MAX {
            history.pop_front();
        }
        history.push_back(rating);
        *count += 1;
    }

    /// A subject's score at `now_ms`.
    pub fn score(&self, subject: &str, now_ms: u64, half_life_ms: u64) -> Score {
        match self.subjects.get(subject) {
            None => Score::default(),
            Some((history, count)) => Score {
                rating: decayed_mean(history.iter().copied(), now_ms, half_life_ms),
                ratings: *count,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn old_ratings_weigh_less_by_half_per_half_life() {
        let day = 86_400_000;
        let ratings = [
            Rating {
                at_ms: 0,
                score: 1,
                weight_micros: 1,
            },
            Rating {
                at_ms: day,
                score: 5,
                weight_micros: 1,
            },
        ];
        // At day 1 the old 1 is one half-life old: (0.5 × 1 + 1 × 5) / 1.5.
        let mean = decayed_mean(ratings, day, day).unwrap_or(0.0);
        assert!((mean - 5.5 / 1.5).abs() < 1e-9, "{mean}");
        // A half-life far beyond the ages: (almost) the plain mean.
        let plain = decayed_mean(ratings, day, u64::MAX).unwrap_or(0.0);
        assert!((plain - 3.0).abs() < 1e-9, "{plain}");
        assert_eq!(decayed_mean([], day, day), None);
        let mut r = Reputation::default();
        r.add(
            "a.b",
            Rating {
                at_ms: 0,
                score: 4,
                weight_micros: 1,
            },
        );
        // A rating on a call paid 99 times more weighs 99 times more.
        let paid = [
            Rating {
                at_ms: 0,
                score: 1,
                weight_micros: 1,
            },
            Rating {
                at_ms: 0,
                score: 5,
                weight_micros: 99,
            },
        ];
        let mean = decayed_mean(paid, 0, day).unwrap_or(0.0);
        assert!((mean - 496.0 / 100.0).abs() < 1e-9, "{mean}");
        assert_eq!(
            r.score("a.b", 0, day),
            Score {
                rating: Some(4.0),
                ratings: 1
            }
        );
        assert_eq!(r.score("c.d", 0, day), Score::default());
    }
}
