//! What a component may import: Mercato's `host` interface and the parts of
//! WASI preview 2 that Rust's `wasm32-wasip2` standard library links even when
//! unused. Everything else (filesystem, sockets, HTTP, ...) is refused.

/// Import name prefixes the host grants. A name is `namespace:package/interface@version`.
const GRANTED: &[&str] = &[
    "mercato:agent/host@0.1.",
    "mercato:agent/types@0.1.",
    "wasi:cli/environment@0.2.",
    "wasi:cli/exit@0.2.",
    "wasi:cli/stdin@0.2.",
    "wasi:cli/stdout@0.2.",
    "wasi:cli/stderr@0.2.",
    "wasi:cli/terminal-input@0.2.",
    "wasi:cli/terminal-output@0.2.",
    "wasi:cli/terminal-stdin@0.2.",
    "wasi:cli/terminal-stdout@0.2.",
    "wasi:cli/terminal-stderr@0.2.",
    "wasi:io/error@0.2.",
    "wasi:io/poll@0.2.",
    "wasi:io/streams@0.2.",
    "wasi:clocks/monotonic-clock@0.2.",
    "wasi:clocks/wall-clock@0.2.",
    "wasi:random/random@0.2.",
    "wasi:random/insecure@0.2.",
    "wasi:random/insecure-seed@0.2.",
];

/// The imports in `names` that the host does not grant, sorted.
pub fn forbidden<'a>(names: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    let mut refused: Vec<String> = names
        .into_iter()
        .filter(|name| !GRANTED.iter().any(|prefix| name.starts_with(prefix)))
        .map(str::to_string)
        .collect();
    refused.sort();
    refused.dedup();
    refused
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filesystem_and_sockets_are_refused_and_std_imports_granted() {
        let names = [
            "wasi:cli/environment@0.2.3",
            "wasi:io/streams@0.2.6",
            "wasi:filesystem/types@0.2.3",
            "wasi:sockets/tcp@0.2.0",
            "mercato:agent/host@0.1.0",
            "mercato:agent/host@0.2.0",
        ];
        assert_eq!(
            forbidden(names),
            vec![
                "mercato:agent/host@0.2.0",
                "wasi:filesystem/types@0.2.3",
                "wasi:sockets/tcp@0.2.0"
            ]
        );
    }
}
