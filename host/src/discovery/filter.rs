//! Constraints: a query's filters, and each slot's facts packed (interned
//! category and jurisdictions) so that a filter scans one small array.

use super::Retention;
use super::entry::{Facts, Slot};
use super::query::{InvalidQuery, Query};
use std::collections::HashMap;

/// A slot's filterable facts, packed.
#[derive(Clone, Copy)]
pub(super) struct Packed {
    pub(super) live: bool,
    pub(super) category: u32,
    pub(super) encryption: bool,
    pub(super) retention: Retention,
    /// Bit i: interned jurisdiction i (< 63); bit 63: any beyond those.
    pub(super) jurisdictions: u64,
    pub(super) cost: u64,
    pub(super) latency_ms_max: u64,
    pub(super) uptime: f64,
    /// NaN when unrated (fails every `rating_min`).
    pub(super) rating: f64,
}

impl Default for Packed {
    fn default() -> Self {
        Packed {
            live: false,
            category: u32::MAX,
            encryption: false,
            retention: Retention::None,
            jurisdictions: 0,
            cost: 0,
            latency_ms_max: 0,
            uptime: 0.0,
            rating: f64::NAN,
        }
    }
}

/// Bit of jurisdictions past the first 63 interned.
const OTHER_JURISDICTION: u64 = 1 << 63;

#[derive(Default)]
pub(super) struct Interned {
    pub(super) categories: HashMap<String, u32>,
    pub(super) jurisdictions: HashMap<String, u32>,
}

impl Interned {
    pub(super) fn pack(&mut self, category: &str, f: &Facts) -> Packed {
        let next = self.categories.len() as u32;
        let category = *self.categories.entry(category.to_string()).or_insert(next);
        let mut jurisdictions = 0u64;
        for j in &f.jurisdictions {
            let next = self.jurisdictions.len() as u32;
            let bit = *self.jurisdictions.entry(j.to_uppercase()).or_insert(next);
            jurisdictions |= if bit < 63 {
                1 << bit
            } else {
                OTHER_JURISDICTION
            };
        }
        Packed {
            live: true,
            category,
            encryption: f.encryption,
            retention: f.retention,
            jurisdictions,
            cost: f.expected_cost_micros,
            latency_ms_max: f.latency_ms_max,
            uptime: f.uptime,
            rating: f.rating.unwrap_or(f64::NAN),
        }
    }
}

/// A filter resolved against the interned names: what [`Packed`] answers,
/// and whether the slot must be read for the rest (tags, rare jurisdictions).
pub(super) struct PackedFilter<'a> {
    pub(super) filter: &'a Filter,
    /// `Some(None)`: a category nothing has.
    pub(super) category: Option<Option<u32>>,
    /// Bits any of which admit; `OTHER_JURISDICTION` sends to the slot.
    pub(super) jurisdiction: Option<u64>,
    pub(super) needs_slot: bool,
}

impl PackedFilter<'_> {
    pub(super) fn admits(&self, p: &Packed) -> bool {
        let f = self.filter;
        p.live
            && self.category.is_none_or(|c| c == Some(p.category))
            && self
                .jurisdiction
                .is_none_or(|bits| p.jurisdictions & bits != 0)
            && f.max_price_micros.is_none_or(|m| p.cost <= m)
            && f.latency_ms_max.is_none_or(|l| p.latency_ms_max <= l)
            && f.uptime_min.is_none_or(|u| p.uptime >= u)
            && f.retention.is_none_or(|r| p.retention <= r)
            && f.encryption.is_none_or(|e| !e || p.encryption)
            && f.rating_min.is_none_or(|r| p.rating >= r)
    }
}

pub(super) struct Filter {
    pub(super) category: Option<String>,
    pub(super) tags: Vec<String>,
    pub(super) max_price_micros: Option<u64>,
    pub(super) latency_ms_max: Option<u64>,
    pub(super) uptime_min: Option<f64>,
    pub(super) retention: Option<Retention>,
    pub(super) encryption: Option<bool>,
    pub(super) jurisdiction: Option<String>,
    pub(super) rating_min: Option<f64>,
    pub(super) names: Vec<String>,
}

impl Filter {
    pub(super) fn pack<'a>(&'a self, names: &Interned) -> PackedFilter<'a> {
        let jurisdiction = self.jurisdiction.as_ref().map(|j| {
            match names.jurisdictions.get(j) {
                Some(&bit) if bit < 63 => 1u64 << bit,
                Some(_) => OTHER_JURISDICTION,
                None => 0, // nothing has it
            }
        });
        PackedFilter {
            filter: self,
            category: self
                .category
                .as_ref()
                .map(|c| names.categories.get(c).copied()),
            jurisdiction,
            needs_slot: !self.tags.is_empty() || jurisdiction == Some(OTHER_JURISDICTION),
        }
    }

    pub(super) fn new(q: &Query) -> Result<Filter, InvalidQuery> {
        if q.uptime_min.is_some_and(|u| !(0.0..=1.0).contains(&u)) {
            return Err(InvalidQuery("uptime_min must be between 0 and 1".into()));
        }
        if q.rating_min.is_some_and(|r| !(0.0..=5.0).contains(&r)) {
            return Err(InvalidQuery("rating_min must be between 0 and 5".into()));
        }
        if q.latency_ms_max
            .is_some_and(|l| l > crate::registry::LATENCY_MS_MAX)
        {
            return Err(InvalidQuery(format!(
                "latency_ms_max is at most {} ms",
                crate::registry::LATENCY_MS_MAX
            )));
        }
        if q.max_price_micros
            .is_some_and(|m| m > crate::pricing::MICROS_MAX)
        {
            return Err(InvalidQuery(format!(
                "max_price_micros is at most {}",
                crate::pricing::MICROS_MAX
            )));
        }
        let policy = q.data_policy.clone().unwrap_or_default();
        let mut names = Vec::new();
        let mut note = |on: bool, name: &str| {
            if on {
                names.push(name.to_string());
            }
        };
        note(q.category.is_some(), "category");
        note(q.tags.as_ref().is_some_and(|t| !t.is_empty()), "tags");
        note(q.max_price_micros.is_some(), "max_price_micros");
        note(q.latency_ms_max.is_some(), "latency_ms_max");
        note(q.uptime_min.is_some(), "uptime_min");
        note(policy.retention.is_some(), "data_policy.retention");
        note(policy.encryption.is_some(), "data_policy.encryption");
        note(policy.jurisdiction.is_some(), "data_policy.jurisdiction");
        note(q.rating_min.is_some(), "rating_min");
        Ok(Filter {
            category: q.category.clone(),
            tags: q
                .tags
                .clone()
                .unwrap_or_default()
                .iter()
                .map(|t| t.to_lowercase())
                .collect(),
            max_price_micros: q.max_price_micros,
            latency_ms_max: q.latency_ms_max,
            uptime_min: q.uptime_min,
            retention: policy.retention,
            encryption: policy.encryption,
            jurisdiction: policy.jurisdiction.map(|j| j.to_uppercase()),
            rating_min: q.rating_min,
            names,
        })
    }

    pub(super) fn admits(&self, s: &Slot) -> bool {
        let f = &s.facts;
        self.category.as_ref().is_none_or(|c| *c == s.category)
            && self.tags.iter().all(|t| s.tags.contains(t))
            && self
                .max_price_micros
                .is_none_or(|p| f.expected_cost_micros <= p)
            && self.latency_ms_max.is_none_or(|l| f.latency_ms_max <= l)
            && self.uptime_min.is_none_or(|u| f.uptime >= u)
            && self.retention.is_none_or(|r| f.retention <= r)
            && self.encryption.is_none_or(|e| !e || f.encryption)
            && self
                .jurisdiction
                .as_ref()
                .is_none_or(|j| f.jurisdictions.iter().any(|x| x.eq_ignore_ascii_case(j)))
            && self
                .rating_min
                .is_none_or(|r| f.rating.is_some_and(|x| x >= r))
    }
}
