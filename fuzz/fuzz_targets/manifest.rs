//! The upload manifest parser: any text is a manifest or a named refusal.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mercato_host::registry::Manifest;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(manifest) = Manifest::parse(text) {
            // What parsed is usable: every capability's terms are there.
            for terms in manifest.capabilities.values() {
                let _ = terms.rate_limit_per_minute;
            }
        }
    }
});
