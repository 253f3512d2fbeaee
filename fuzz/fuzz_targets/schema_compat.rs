//! The schema compatibility checker (the upgrade gate): two JSON documents,
//! split at the first NUL byte. A schema always accepts all it accepts, and
//! the checker never panics or overflows its stack on any pair.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mercato_host::registry::compat::accepts_all;

fuzz_target!(|data: &[u8]| {
    let mut halves = data.splitn(2, |b| *b == 0);
    let (Some(a), Some(b)) = (halves.next(), halves.next()) else {
        return;
    };
    let (Ok(wider), Ok(narrower)) = (
        serde_json::from_slice::<serde_json::Value>(a),
        serde_json::from_slice::<serde_json::Value>(b),
    ) else {
        return;
    };
    let _ = accepts_all(&wider, &narrower);
    // Reflexive: whatever it can prove of a schema, it proves of itself
    // or names why it cannot.
    if let Err(reasons) = accepts_all(&wider, &wider) {
        assert!(!reasons.is_empty());
    }
});
