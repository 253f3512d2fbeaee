//! Capability ids: `agent.capability@1.2.3` (one version),
//! `agent.capability@1` (the latest 1.x), or `agent.capability` (the latest
//! version of the agent's lowest listed major). An id never crosses a major
//! version, so a consumer never meets a breaking change silently.

use super::Error;

/// A parsed capability id.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CapabilityId {
    /// Agent name.
    pub agent: String,
    /// Capability name within the agent.
    pub capability: String,
    /// Pinned version.
    pub version: Option<semver::Version>,
    /// Pinned major line (`@1`), when no exact version is given.
    pub major: Option<u64>,
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
        let (name, version, major) = match id.split_once('@') {
            Some((name, major))
                if !major.is_empty()
                    && major.len() <= 9
                    && major.bytes().all(|b| b.is_ascii_digit()) =>
            {
                (name, None, Some(major.parse().map_err(|_| bad())?))
            }
            Some((name, version)) => (
                name,
                Some(semver::Version::parse(version).map_err(|_| bad())?),
                None,
            ),
            None => (id, None, None),
        };
        let (agent, capability) = name.split_once('.').ok_or_else(bad)?;
        if !is_name(agent) || !is_name(capability) {
            return Err(bad());
        }
        Ok(CapabilityId {
            agent: agent.into(),
            capability: capability.into(),
            version,
            major,
        })
    }

    /// The unpinned form, `agent.capability`.
    pub fn unpinned(agent: &str, capability: &str) -> String {
        format!("{agent}.{capability}")
    }

    /// The major-line form, `agent.capability@1`.
    pub fn line(agent: &str, capability: &str, major: u64) -> String {
        format!("{agent}.{capability}@{major}")
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
            CapabilityId::parse("a.b")
                .ok()
                .map(|i| (i.version, i.major)),
            Some((None, None))
        );
        assert_eq!(
            CapabilityId::parse("a.b@2")
                .ok()
                .map(|i| (i.version, i.major)),
            Some((None, Some(2)))
        );
        for junk in [
            "", "a", "A.b", "a.b@x", "a..b", "a.b.c", "-a.b", "a.b@1.2", "a-.b", "a.b@",
        ] {
            assert!(CapabilityId::parse(junk).is_err(), "{junk}");
        }
    }
}
