//! The `mercato` binary's offline commands: key generation, `attest` (exit
//! status and JUnit), and `verify`.

use mercato_host::identity::{MarketKey, market_key::KEY_FILE, signing};
use std::process::Command;

fn mercato() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_mercato"));
    command.env("RUST_BACKTRACE", "0");
    command
}

#[test]
fn keys_generate_writes_a_private_key_once_and_prints_its_public_half() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("acme.key");
    let out = mercato()
        .args(["keys", "generate", "--out"])
        .arg(&path)
        .output()
        .expect("runs");
    assert!(out.status.success(), "{out:?}");
    let key = signing::parse_signing_key(&std::fs::read_to_string(&path).expect("written"))
        .expect("a key");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(&signing::public_key_hex(&key.verifying_key())),
        "{stdout}"
    );
    assert!(
        stdout.contains(&signing::key_id(&key.verifying_key())),
        "{stdout}"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).expect("meta").permissions().mode();
        assert_eq!(mode & 0o077, 0, "readable by its owner only: {mode:o}");
    }
    let again = mercato()
        .args(["keys", "generate", "--out"])
        .arg(&path)
        .output()
        .expect("runs");
    assert!(!again.status.success(), "a key is never overwritten");
}

#[test]
fn attest_fails_with_status_1_and_junit_naming_the_structure_failure() {
    let dir = tempfile::tempdir().expect("tempdir");
    let wasm = dir.path().join("junk.wasm");
    let manifest = dir.path().join("mercato.toml");
    let junit = dir.path().join("junit.xml");
    std::fs::write(&wasm, b"\0asm not really").expect("write");
    std::fs::write(&manifest, "[capabilities.x]\n").expect("write");
    let out = mercato()
        .arg("attest")
        .arg(&wasm)
        .arg("--manifest")
        .arg(&manifest)
        .arg("--junit")
        .arg(&junit)
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let xml = std::fs::read_to_string(&junit).expect("junit written");
    assert!(xml.contains("<failure"), "{xml}");
    assert!(xml.contains("failures=\"1\""), "{xml}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("fail") && stdout.contains("structure"),
        "{stdout}"
    );
}

#[test]
fn verify_accepts_a_signed_report_and_refuses_a_changed_one() {
    let dir = tempfile::tempdir().expect("tempdir");
    let key = MarketKey::load_or_create(dir.path()).expect("key");
    assert!(dir.path().join(KEY_FILE).exists());
    let mut report = serde_json::json!({"agent": "a", "version": "1.0.0", "verdict": "pass"});
    key.sign(&mut report).expect("signs");
    let keys = dir.path().join("keys.json");
    std::fs::write(&keys, serde_json::to_string(&key.key_set()).expect("json")).expect("write");
    let doc = dir.path().join("report.json");
    std::fs::write(&doc, report.to_string()).expect("write");
    let run = || {
        mercato()
            .arg("verify")
            .arg(&doc)
            .arg("--keys")
            .arg(&keys)
            .output()
            .expect("runs")
    };
    let out = run();
    assert!(out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("attestation pass"));
    report["verdict"] = "fail".into();
    std::fs::write(&doc, report.to_string()).expect("write");
    let out = run();
    assert!(!out.status.success(), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("does not verify"),
        "{out:?}"
    );
}
