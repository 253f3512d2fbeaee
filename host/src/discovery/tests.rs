//! The index's unit tests (one index, every room).

use super::search::CODES_MIN;
use super::*;
use std::collections::HashMap;
use std::sync::Arc;

fn entry(key: &str, description: &str, category: &str, cost: u64, jurisdictions: &[&str]) -> Entry {
    Entry {
        key: key.into(),
        agent: key.split('.').next().unwrap_or(key).into(),
        name: key.rsplit('.').next().unwrap_or(key).into(),
        description: description.into(),
        category: category.into(),
        tags: Vec::new(),
        fields: Vec::new(),
        facts: Facts {
            expected_cost_micros: cost,
            latency_ms_max: 100,
            uptime: 0.99,
            retention: Retention::None,
            encryption: true,
            jurisdictions: jurisdictions.iter().map(|j| j.to_string()).collect(),
            rating: None,
        },
    }
}

fn index(entries: Vec<Entry>) -> Discovery {
    // A low exact-scan threshold so that broad queries walk the graph.
    let discovery = Discovery::new(Arc::new(HashEmbedder::default())).with_exact_scan_max(1_000);
    for e in entries {
        let v = discovery.embed(&e);
        discovery.upsert(e, v);
    }
    discovery
}

/// Words for synthetic descriptions: distinct enough that each
/// description is its own best match.
const VOCABULARY: &[&str] = &[
    "invoice",
    "weather",
    "translate",
    "currency",
    "stock",
    "genome",
    "flight",
    "hotel",
    "recipe",
    "music",
    "lyrics",
    "football",
    "tennis",
    "crypto",
    "mortgage",
    "insurance",
    "parcel",
    "shipping",
    "calendar",
    "email",
    "sms",
    "geocode",
    "satellite",
    "earthquake",
    "pollen",
    "vaccine",
    "patent",
    "trademark",
    "court",
    "election",
    "census",
    "tariff",
    "freight",
    "harbor",
    "railway",
    "subway",
    "bicycle",
    "scooter",
    "parking",
    "toll",
];

/// Property: every indexed capability is found (rank 1) by its own
/// description, whatever else is in the index, including after more
/// than enough replacements to force a rebuild.
/// Reputation is a configurable boost: equal relevance, the better rated
/// first; with a boost of 0 ratings do not move the order (ties by key).
#[test]
fn the_rating_boost_is_configurable() {
    let rated = |key: &str, rating: f64| {
        let mut e = entry(
            key,
            "forecast the weather for a city",
            "weather",
            0,
            &["EU"],
        );
        e.facts.rating = Some(rating);
        e
    };
    let order = |boost: f32| {
        let discovery = Discovery::new(Arc::new(HashEmbedder::default())).with_rating_boost(boost);
        for e in [rated("a.low", 1.0), rated("b.high", 5.0)] {
            let v = discovery.embed(&e);
            discovery.upsert(e, v);
        }
        let hits = discovery
            .search(&Query {
                need: "weather forecast".into(),
                ..Query::default()
            })
            .unwrap();
        let boosts: Vec<f32> = hits.iter().map(|h| h.explanation.rating_boost).collect();
        (hits.into_iter().map(|h| h.key).collect::<Vec<_>>(), boosts)
    };
    assert_eq!(
        order(RATING_BOOST),
        (vec!["b.high".into(), "a.low".into()], vec![1.1, 0.9])
    );
    assert_eq!(
        order(0.0),
        (vec!["a.low".into(), "b.high".into()], vec![1.0, 1.0])
    );
    assert_eq!(order(0.5).1, vec![1.5, 0.5]);
}

/// Once tombstones outnumber the live entries the index rebuilds aside:
/// searches and changes go on meanwhile, the changes made during the
/// build are replayed onto the new index, and the swap loses nothing.
#[test]
fn a_rebuild_runs_aside_and_keeps_the_changes_made_meanwhile() {
    let described = |i: usize| {
        entry(
            &format!("agent-{i}.cap"),
            &format!(
                "{} service {i} for {} and {} data",
                VOCABULARY[i % VOCABULARY.len()],
                VOCABULARY[(i * 7 + 3) % VOCABULARY.len()],
                VOCABULARY[(i * 13 + 5) % VOCABULARY.len()]
            ),
            "general",
            0,
            &["EU"],
        )
    };
    let entries: Vec<Entry> = (0..300).map(described).collect();
    let discovery = index(entries.clone());
    // Replacing every entry makes tombstones equal the live entries.
    for e in &entries {
        let v = discovery.embed(e);
        discovery.upsert(e.clone(), v);
    }
    assert!(discovery.aside.started(), "a rebuild started");
    // Changes while it (probably) runs: removals and new entries.
    for e in entries.iter().take(10) {
        discovery.remove(&e.key);
    }
    let added: Vec<Entry> = (300..305).map(described).collect();
    for e in &added {
        let v = discovery.embed(e);
        discovery.upsert(e.clone(), v);
    }
    discovery.settle();
    assert!(!discovery.aside.queueing());
    {
        let inner = discovery.inner.read().unwrap();
        // The 300 replaced slots are gone; only the 10 later removals
        // (replayed as tombstones, if the build was still running) remain.
        assert!(inner.tombstones <= 10, "{} tombstones", inner.tombstones);
        assert_eq!(inner.slots.len(), 295 + inner.tombstones);
    }
    assert_eq!(discovery.len(), 295);
    let top = |need: &str| {
        discovery
            .search(&Query {
                need: need.into(),
                limit: Some(3),
                ..Query::default()
            })
            .unwrap()
    };
    for e in entries.iter().skip(10).chain(&added) {
        assert!(
            top(&e.description).iter().any(|h| h.key == e.key),
            "{}",
            e.key
        );
    }
    for e in entries.iter().take(10) {
        assert!(
            top(&e.description).iter().all(|h| h.key != e.key),
            "{}",
            e.key
        );
    }
}

#[test]
fn every_capability_is_found_by_its_own_description() {
    let mut entries = Vec::new();
    for i in 0..300 {
        let words: Vec<&str> = (0..4)
            .map(|j| VOCABULARY[(i * 7 + j * 13 + i / 40) % VOCABULARY.len()])
            .collect();
        let description = format!(
            "{} service {i} for {} and {} data with {}",
            words[0], words[1], words[2], words[3]
        );
        entries.push(entry(
            &format!("agent-{i}.cap"),
            &description,
            "general",
            0,
            &["EU"],
        ));
    }
    let discovery = index(entries.clone());
    // Replace a third of them (same text): tombstones, no rebuild yet.
    for e in entries.iter().take(100) {
        let v = discovery.embed(e);
        discovery.upsert(e.clone(), v);
    }
    assert_eq!(discovery.len(), 300);
    for e in &entries {
        let hits = discovery.search(&Query {
            need: e.description.clone(),
            limit: Some(3),
            ..Query::default()
        });
        let hits = hits.unwrap_or_default();
        assert!(
            hits.iter().any(|h| h.key == e.key),
            "{} not found by its description",
            e.key
        );
    }
}

/// The filters run inside the search: a query whose few matching entries
/// are textually far from the need still gets `limit` of them.
/// Above `CODES_MIN` admitted entries the exact scan ranks by 8-bit
/// codes and rescores the best: its dense ranking equals a brute-force
/// scan of the admitted vectors, and it reads only the admitted.
#[test]
fn many_admitted_rank_by_codes_as_a_brute_force_scan_would() {
    let mut entries = Vec::new();
    for i in 0..3_000 {
        let words: Vec<&str> = (0..3)
            .map(|j| VOCABULARY[(i * 11 + j * 17 + i / 50) % VOCABULARY.len()])
            .collect();
        let category = if i % 5 == 0 { "rare" } else { "common" };
        let description = format!("{} {} {} service {i}", words[0], words[1], words[2]);
        entries.push(entry(
            &format!("a{i}.cap"),
            &description,
            category,
            10,
            &["EU"],
        ));
    }
    let discovery = Discovery::new(Arc::new(HashEmbedder::default())).with_exact_scan_max(10_000);
    let mut vectors = HashMap::new();
    for e in &entries {
        let v = discovery.embed(e);
        vectors.insert(e.key.clone(), (e.category.clone(), v.clone()));
        discovery.upsert(e.clone(), v);
    }
    for need in [
        "weather flight hotel",
        "crypto mortgage insurance",
        "court patent",
    ] {
        let query = Query {
            need: need.into(),
            category: Some("common".into()),
            limit: Some(20),
            ..Query::default()
        };
        assert!(
            entries.iter().filter(|e| e.category == "common").count() > CODES_MIN,
            "the codes path runs"
        );
        let q = discovery.embedder().embed(need);
        let mut exact: Vec<(f32, &String)> = vectors
            .iter()
            .filter(|(_, (c, _))| c == "common")
            .map(|(k, (_, v))| (dot(&q, v), k))
            .collect();
        exact.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(b.1)));
        let hits = discovery.search_with(&query, Mode::Dense).unwrap();
        assert_eq!(hits.len(), 20);
        for (hit, (similarity, key)) in hits.iter().zip(&exact) {
            // Equal similarity may order either way; the values agree.
            assert!(
                (hit.explanation.dense_similarity - similarity).abs() < 1e-5,
                "{need}: {} {} vs {key} {similarity}",
                hit.key,
                hit.explanation.dense_similarity
            );
            assert!(vectors[&hit.key].0 == "common");
        }
    }
}

#[test]
fn tight_filters_still_fill_the_limit_from_far_away() {
    let mut entries = Vec::new();
    for i in 0..5_000 {
        entries.push(entry(
            &format!("near-{i}.convert"),
            "convert units of length and mass",
            "utilities",
            10,
            &["EU"],
        ));
    }
    for i in 0..5 {
        entries.push(entry(
            &format!("far-{i}.poem"),
            "writes a poem about the sea",
            "art",
            10,
            &["JP"],
        ));
    }
    let discovery = index(entries);
    let query = Query {
        need: "convert units of length".into(),
        data_policy: Some(DataPolicyFilter {
            jurisdiction: Some("jp".into()),
            ..Default::default()
        }),
        limit: Some(5),
        ..Query::default()
    };
    let hits = discovery.search(&query).unwrap_or_default();
    assert_eq!(hits.len(), 5);
    assert!(hits.iter().all(|h| h.key.starts_with("far-")));
    assert_eq!(
        hits[0].explanation.filters_passed,
        vec!["data_policy.jurisdiction".to_string()]
    );

    // A broad filter (more admitted than the exact-scan threshold) walks
    // the HNSW graph with the filter applied during the walk.
    let broad = Query {
        need: "convert units".into(),
        category: Some("utilities".into()),
        limit: Some(10),
        ..Query::default()
    };
    let hits = discovery.search(&broad).unwrap_or_default();
    assert_eq!(hits.len(), 10);
    assert!(hits.iter().all(|h| h.key.starts_with("near-")));
    // The walk alone (dense ranking only) fills the limit with admitted entries.
    let walked = discovery
        .search_with(&broad, Mode::Dense)
        .unwrap_or_default();
    assert_eq!(walked.len(), 10);
    assert!(
        walked
            .iter()
            .all(|h| h.key.starts_with("near-") && h.explanation.dense_rank.is_some())
    );
}

/// Filters read packed facts: jurisdictions past the 63 that fit the
/// bit set still filter exactly (through the slot), unknown categories
/// and jurisdictions admit nothing, and refreshed facts take effect.
#[test]
fn packed_filters_agree_with_the_facts() {
    let codes: Vec<String> = (0..70).map(|i| format!("J{i:02}")).collect();
    let entries: Vec<Entry> = codes
        .iter()
        .enumerate()
        .map(|(i, code)| {
            entry(
                &format!("agent-{i}.cap"),
                "ledger reconciliation",
                "finance",
                10,
                &[code.as_str()],
            )
        })
        .collect();
    let discovery = index(entries.clone());
    let find = |query: Query| -> Vec<String> {
        discovery
            .search(&Query {
                need: "ledger reconciliation".into(),
                limit: Some(100),
                ..query
            })
            .expect("search")
            .into_iter()
            .map(|h| h.key)
            .collect()
    };
    for (i, code) in [(3, "j03"), (68, "J68")] {
        let policy = DataPolicyFilter {
            jurisdiction: Some(code.into()),
            ..DataPolicyFilter::default()
        };
        assert_eq!(
            find(Query {
                data_policy: Some(policy),
                ..Query::default()
            }),
            [format!("agent-{i}.cap")]
        );
    }
    let nowhere = DataPolicyFilter {
        jurisdiction: Some("XX".into()),
        ..DataPolicyFilter::default()
    };
    assert!(
        find(Query {
            data_policy: Some(nowhere),
            ..Query::default()
        })
        .is_empty()
    );
    assert!(
        find(Query {
            category: Some("nothing".into()),
            ..Query::default()
        })
        .is_empty()
    );
    assert_eq!(
        find(Query {
            max_price_micros: Some(10),
            ..Query::default()
        })
        .len(),
        70
    );
    let mut dearer = entries[5].facts.clone();
    dearer.expected_cost_micros = 11;
    discovery.update_facts("agent-5.cap", dearer);
    let cheap = find(Query {
        max_price_micros: Some(10),
        ..Query::default()
    });
    assert_eq!(cheap.len(), 69);
    assert!(!cheap.contains(&"agent-5.cap".to_string()));
}

/// A need that matches an agent lifts its terse capabilities: their own
/// text matches nothing, their agent's does.
#[test]
fn an_agent_match_lifts_its_terse_capabilities() {
    let discovery = index(vec![
        entry(
            "parcel.history",
            "package tracking history with shipment events",
            "logistics",
            0,
            &["EU"],
        ),
        entry("parcel.count", "number of steps", "logistics", 0, &["EU"]),
        entry(
            "weather.now",
            "current weather for a city",
            "weather",
            0,
            &["EU"],
        ),
        entry("weather.week", "seven day forecast", "weather", 0, &["EU"]),
        entry(
            "finance.quote",
            "stock price of a company",
            "finance",
            0,
            &["EU"],
        ),
    ]);
    let hits = discovery
        .search(&Query {
            need: "package tracking".into(),
            ..Query::default()
        })
        .expect("search");
    let keys: Vec<&str> = hits.iter().map(|h| h.key.as_str()).collect();
    assert_eq!(keys[..2], ["parcel.history", "parcel.count"], "{keys:?}");
    let count = &hits[1].explanation;
    assert_eq!(count.lexical_rank, Some(2));
    assert!(count.agent_score > 0.0 && count.lexical_score == count.agent_score);
    assert!(count.matched_terms.is_empty());
    // BM25 alone does not see it.
    let lexical = discovery
        .search_with(
            &Query {
                need: "package tracking".into(),
                ..Query::default()
            },
            Mode::Lexical,
        )
        .expect("search");
    assert!(
        lexical.iter().all(|h| h.key != "parcel.count"),
        "{lexical:?}"
    );
}

#[test]
fn removal_and_replacement_take_effect() {
    let discovery = index(vec![
        entry(
            "a.x",
            "translate text between languages",
            "text",
            5,
            &["EU"],
        ),
        entry("b.y", "forecast the weather", "weather", 5, &["EU"]),
    ]);
    let need = |n: &str| Query {
        need: n.into(),
        ..Query::default()
    };
    assert_eq!(
        discovery
            .search(&need("translate languages"))
            .unwrap_or_default()[0]
            .key,
        "a.x"
    );
    discovery.remove("a.x");
    assert!(
        discovery
            .search(&need("translate languages"))
            .unwrap_or_default()
            .iter()
            .all(|h| h.key != "a.x")
    );
    let replaced = entry(
        "b.y",
        "translate text between languages",
        "text",
        5,
        &["EU"],
    );
    let v = discovery.embed(&replaced);
    discovery.upsert(replaced, v);
    assert_eq!(discovery.len(), 1);
    assert_eq!(
        discovery
            .search(&need("translate languages"))
            .unwrap_or_default()[0]
            .key,
        "b.y"
    );
    assert!(
        discovery
            .search(&Query {
                need: "x".into(),
                limit: Some(0),
                ..Query::default()
            })
            .is_err()
    );
}
