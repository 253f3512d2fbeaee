//! Capability ids: `agent.capability` (the latest version) or
//! `agent.capability@1.2.3` (pinned).

use super::Error;

/// A parsed capability id.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CapabilityId {
    /// Agent name.
    pub agent: String,
    /// Capability name within the agent.
    pub capability: String,
    /// Pinned version, or `None` for the latest.
    pub version: Option<semver::Version>,
}

/// Whether `name` is lower-case kebab-case starting with a letter, 1 to 64 bytes.
pub fn is_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    (1..=64).contains(&bytes.len())
        && bytes[0].is_ascii_lowercase()
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
        && !name.ends_with('-')
        && !name.contains("--")
}

impl CapabilityId {
    /// Parses an id.
    pub fn parse(id: &str) -> Result<Self, Error> {
        let bad = || Error::BadId(id.chars().take(200).collect());
        let (name, version) = match id.split_once('@') {
            Some((name, version)) => (
                name,
                Some(semver::Version::parse(version).map_err(|_| bad())?),
            ),
            None => (id, None),
        };
        let (agent, capability) = name.split_once('.').ok_or_else(bad)?;
        if !is_name(agent) || !is_name(capability) {
            return Err(bad());
        }
        Ok(CapabilityId {
            agent: agent.into(),
            capability: capability.into(),
            version,
        })
    }

    /// The unpinned form, `agent.capability`.
    pub fn unpinned(agent: &str, capability: &str) -> String {
        format!("{agent}.{capability}")
    }

    /// The pinned form, `agent.capability@version`.
    pub fn pinned(agent: &str, capability: &str, version: &semver::Version) -> String {
        format!("{agent}.{capability}@{version}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_pinned_and_unpinned_and_rejects_junk() {
        let id = CapabilityId::parse("pii-redactor.redact@1.2.3").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(id.agent, "pii-redactor");
        assert_eq!(id.capability, "redact");
        assert_eq!(id.version, Some(semver::Version::new(1, 2, 3)));
        assert_eq!(
            CapabilityId::parse("a.b").ok().map(|i| i.version),
            Some(None)
        );
        for junk in [
            "", "a", "A.b", "a.b@x", "a..b", "a.b.c", "-a.b", "a.b@1", "a-.b",
        ] {
            assert!(CapabilityId::parse(junk).is_err(), "{junk}");
        }
    }
}
