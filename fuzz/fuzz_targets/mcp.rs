//! The MCP door (`POST /mcp`) with the stateless revision's headers, so a
//! `tools/call` body takes the host's own fast path (and anything it is not
//! sure of goes to rmcp): never a panic or an internal error.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let host = mercato_fuzz::host();
    // The tool name header must match the body's for the fast path; take it
    // from the body when it has one.
    let name = serde_json::from_slice::<serde_json::Value>(data)
        .ok()
        .and_then(|v| v["params"]["name"].as_str().map(str::to_string))
        .filter(|n| n.chars().all(|c| c.is_ascii_graphic()))
        .unwrap_or_else(|| "discover".into());
    host.send(
        "/mcp",
        "application/json",
        &[
            ("accept", "application/json, text/event-stream"),
            ("mcp-protocol-version", "2026-07-28"),
            ("mcp-method", "tools/call"),
            ("mcp-name", &name),
        ],
        data.to_vec(),
    );
});
