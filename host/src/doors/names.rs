//! Tool names for capability ids, both ways.
//!
//! A capability id is `agent.capability` or `agent.capability@MAJOR`; agent
//! and capability names are lower-case kebab-case, so they never contain `_`.
//! That makes the mapping reversible and keeps tool names inside the
//! strictest pattern clients enforce (`^[a-zA-Z0-9_-]{1,128}$`, no dots):
//!
//! | capability id | tool name |
//! |---|---|
//! | `pii-redactor.redact` | `pii-redactor__redact` |
//! | `pii-redactor.redact@2` | `pii-redactor__redact__v2` |
//!
//! The marketplace's own tools (`discover`, `quote`, `negotiate`) contain no
//! `__`, so they never collide with a capability.

use crate::registry::{CapabilityId, is_name};

const SEPARATOR: &str = "__";

/// The tool name of a capability id (`agent.capability[@MAJOR]`). Pinned ids
/// (`@1.2.3`) have no tool: a tool always calls the latest of a major line.
pub fn tool_name(capability_id: &str) -> Option<String> {
    let id = CapabilityId::parse(capability_id).ok()?;
    if id.version.is_some() {
        return None;
    }
    let mut name = format!("{}{SEPARATOR}{}", id.agent, id.capability);
    if let Some(major) = id.major {
        name.push_str(&format!("{SEPARATOR}v{major}"));
    }
    Some(name)
}

/// The capability id a tool name stands for, if it names one.
pub fn capability_id(tool: &str) -> Option<String> {
    let mut parts = tool.split(SEPARATOR);
    let (agent, capability) = (parts.next()?, parts.next()?);
    if !is_name(agent) || !is_name(capability) {
        return None;
    }
    match (parts.next(), parts.next()) {
        (None, _) => Some(format!("{agent}.{capability}")),
        (Some(major), None) => {
            let digits = major.strip_prefix('v')?;
            let valid = !digits.is_empty()
                && digits.len() <= 9
                && digits.bytes().all(|b| b.is_ascii_digit())
                && !(digits.len() > 1 && digits.starts_with('0'));
            valid.then(|| format!("{agent}.{capability}@{digits}"))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_map_both_ways() {
        for (id, tool) in [
            ("pii-redactor.redact", "pii-redactor__redact"),
            ("word-count.count@2", "word-count__count__v2"),
            ("a.b", "a__b"),
        ] {
            assert_eq!(tool_name(id).as_deref(), Some(tool), "{id}");
            assert_eq!(capability_id(tool).as_deref(), Some(id), "{tool}");
        }
    }

    #[test]
    fn what_is_not_a_capability_tool_is_refused() {
        for tool in [
            "discover",
            "quote",
            "a__",
            "__b",
            "a__b__2",
            "a__b__v",
            "a__b__v01",
            "a__b__v2__x",
            "A__b",
            "a.b",
            "a__b__v1234567890",
        ] {
            assert_eq!(capability_id(tool), None, "{tool}");
        }
        assert_eq!(tool_name("a.b@1.2.3"), None);
        assert_eq!(tool_name("not an id"), None);
    }
}
