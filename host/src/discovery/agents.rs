//! Per-agent lexical evidence: an agent's capabilities serve one domain, so
//! the text of all of them together is a BM25 document of its own, and a
//! need that matches an agent as a whole lifts each of its capabilities.

use super::bm25::{Bm25, WeightedTerms};
use super::entry::Slot;
use super::rank::best_first;
use std::collections::HashMap;

/// Weight of a capability's agent's BM25 score (over the text of all its
/// capabilities) added to the capability's own in the lexical ranking.
const AGENT_WEIGHT: f32 = 0.5;
/// Agents whose admitted capabilities all join the lexical candidates.
const AGENTS_SPREAD: usize = 20;
/// Most capabilities of one agent that join the candidates that way.
const SIBLINGS_MAX: usize = 64;

/// The documents of agents with two capabilities or more, for the agent
/// part of the lexical score.
#[derive(Default)]
pub(super) struct Agents {
    /// Live capability slots of each agent.
    pub(super) members: HashMap<String, Vec<usize>>,
    /// By slot id: its agent's current document, if the agent has one.
    pub(super) doc_of: Vec<Option<usize>>,
    /// Each agent's current document id and terms.
    pub(super) docs: HashMap<String, (usize, WeightedTerms)>,
    /// Agent of each document id (replaced ones included until compaction).
    pub(super) names: Vec<String>,
    pub(super) bm25: Bm25,
}

impl Agents {
    /// Rewrites an agent's document after its capabilities changed (BM25
    /// documents are immutable: the old one is removed, a new id indexed).
    /// `slots`: the index's slots by id.
    pub(super) fn reindex(&mut self, agent: &str, slots: &[Option<Slot>]) {
        let agents = self;
        agents.doc_of.resize(slots.len(), None);
        if let Some((id, terms)) = agents.docs.remove(agent) {
            agents.bm25.remove(id, &terms);
        }
        let members = agents.members.get(agent).map_or(&[][..], Vec::as_slice);
        let doc = if members.len() < 2 {
            // One capability: the agent scores as the capability itself.
            if members.is_empty() {
                agents.members.remove(agent);
            }
            None
        } else {
            let terms: WeightedTerms = members
                .iter()
                .filter_map(|&id| slots[id].as_ref())
                .flat_map(|slot| slot.terms.iter().cloned())
                .collect();
            let id = agents.names.len();
            agents.names.push(agent.to_string());
            agents.bm25.insert(id, &terms);
            agents.docs.insert(agent.to_string(), (id, terms));
            Some(id)
        };
        for &member in agents.members.get(agent).into_iter().flatten() {
            agents.doc_of[member] = doc;
        }
        // Replaced documents leave dead ids behind: compact now and then.
        if agents.names.len() > 2 * agents.docs.len() + 1_024 {
            let docs = std::mem::take(&mut agents.docs);
            agents.bm25 = Bm25::default();
            agents.names.clear();
            for (agent, (_, terms)) in docs {
                let id = agents.names.len();
                agents.bm25.insert(id, &terms);
                agents.names.push(agent.clone());
                for &member in agents.members.get(&agent).into_iter().flatten() {
                    agents.doc_of[member] = Some(id);
                }
                agents.docs.insert(agent, (id, terms));
            }
        }
    }

    /// The lexical ranking: each admitted capability's BM25 score plus
    /// [`AGENT_WEIGHT`] × its agent's (over the text of all the agent's
    /// capabilities; an agent of one capability scores as that capability).
    /// An agent's capabilities serve one domain and needs often take several
    /// of them, so a need that matches an agent as a whole lifts each of its
    /// capabilities, also those whose own text is terse; the best agents'
    /// admitted capabilities all join. `(id, score, agent part)`.
    /// `bm25`: the capabilities' own index.
    pub(super) fn lexical(
        &self,
        bm25: &Bm25,
        terms: &[String],
        admit: &dyn Fn(usize) -> bool,
    ) -> Vec<(usize, f32, f32)> {
        bm25.with_scores(terms, |own, touched| {
            self.bm25.with_scores(terms, |by_doc, agents_touched| {
                let agent_part = |id: usize| {
                    AGENT_WEIGHT
                        * match self.doc_of.get(id).copied().flatten() {
                            Some(doc) => by_doc[doc],
                            None => own[id],
                        }
                };
                let mut ranked: Vec<(usize, f32, f32)> = touched
                    .iter()
                    .filter(|&&id| admit(id))
                    .map(|&id| {
                        let agent = agent_part(id);
                        (id, own[id] + agent, agent)
                    })
                    .collect();
                let mut agents: Vec<(usize, f32)> =
                    agents_touched.iter().map(|&d| (d, by_doc[d])).collect();
                best_first(&mut agents, AGENTS_SPREAD, |a| a.1);
                for (doc, _) in agents {
                    let members = self.members.get(&self.names[doc]);
                    for &member in members.into_iter().flatten().take(SIBLINGS_MAX) {
                        // Members with a score of their own are in already.
                        if own[member] == 0.0 && admit(member) {
                            let agent = agent_part(member);
                            ranked.push((member, agent, agent));
                        }
                    }
                }
                ranked
            })
        })
    }
}
