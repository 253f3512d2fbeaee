//! The A2A JSON-RPC door (`POST /a2a`), v1.0 and v0.3 shapes: any body is
//! answered with a JSON-RPC result or error, never a panic or an internal
//! error.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let host = mercato_fuzz::host();
    host.send(
        "/a2a",
        "application/json",
        &[("a2a-version", "1.0")],
        data.to_vec(),
    );
});
