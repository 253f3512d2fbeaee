//! Recovery of the money journal from arbitrary bytes: the store opens (a
//! torn or corrupt tail is cut) and the settlement replays what is left, or
//! refuses with a named corruption; never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mercato_host::settlement::{Rules, Settlement};
use mercato_host::store::Store;

fuzz_target!(|data: &[u8]| {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("journal.wal"), data).expect("write");
    let Ok(store) = Store::open(dir.path(), std::time::Duration::from_secs(60)) else {
        return;
    };
    let rules = Rules {
        fee_bps: 100,
        dispute_window_ms: 86_400_000,
        hold_timeout_ms: 60_000,
    };
    let _ = Settlement::open(store, rules, 1_700_000_000_000);
});
