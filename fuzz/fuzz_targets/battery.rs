//! Attestation battery files (an operator's `<category>.toml`): any text is
//! a battery or a named refusal, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mercato_host::attestation::Battery;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = Battery::parse("fuzzed", text);
    }
});
