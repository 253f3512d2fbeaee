//! The listed versions as the MCP registry API pages through them: every
//! agent's listed versions in name and version order, the newest of each
//! marked, filtered by a search in the name and by `latest`.

use super::Market;
use crate::registry::Listed;
use std::sync::Arc;

/// One listed version, and whether it is its agent's newest.
pub type Entry = (Arc<Listed>, bool);

impl Market {
    /// Up to `limit` listed versions after `after` (agent, version), whose
    /// agent name contains `search`; only each agent's newest when
    /// `latest_only`. The flag says whether more follow.
    pub fn registry_entries(
        &self,
        search: Option<&str>,
        latest_only: bool,
        after: Option<(&str, &str)>,
        limit: usize,
    ) -> (Vec<Entry>, bool) {
        let mut all = self.catalog.all();
        all.retain(|l| search.is_none_or(|s| l.record.agent.contains(s)));
        all.sort_by(|a, b| {
            a.record
                .agent
                .cmp(&b.record.agent)
                .then(a.version.cmp(&b.version))
        });
        let mut entries: Vec<Entry> = Vec::with_capacity(all.len().min(limit + 1));
        for (i, listed) in all.iter().enumerate() {
            let latest = all
                .get(i + 1)
                .is_none_or(|next| next.record.agent != listed.record.agent);
            if latest_only && !latest {
                continue;
            }
            if let Some((agent, version)) = after {
                let key = (listed.record.agent.as_str(), &listed.version);
                let Ok(version) = semver::Version::parse(version) else {
                    continue;
                };
                if key <= (agent, &version) {
                    continue;
                }
            }
            entries.push((listed.clone(), latest));
            if entries.len() > limit {
                break;
            }
        }
        let more = entries.len() > limit;
        entries.truncate(limit);
        (entries, more)
    }

    /// Every listed version of `agent`, newest first, the newest marked.
    pub fn registry_versions(&self, agent: &str) -> Vec<Entry> {
        let mut versions = self.catalog.versions_of(agent);
        versions.sort_by(|a, b| b.version.cmp(&a.version));
        versions
            .into_iter()
            .enumerate()
            .map(|(i, l)| (l, i == 0))
            .collect()
    }
}
