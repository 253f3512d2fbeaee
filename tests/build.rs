//! Builds the sample agents for `wasm32-wasip2` before the tests compile, so
//! `cargo test` alone is enough. The agents live in their own workspace
//! (`sample-agents/`) with their own target folder under `target/`.

use std::path::PathBuf;
use std::process::Command;

fn main() {
    let manifest_dir =
        PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let root = manifest_dir
        .parent()
        .expect("tests/ sits in the workspace root")
        .to_path_buf();
    let agents = root.join("sample-agents");
    let target_dir = root.join("target").join("sample-agents");
    for watched in ["sample-agents", "sdk", "wit"] {
        println!("cargo:rerun-if-changed={}", root.join(watched).display());
    }
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .args([
            "build",
            "--release",
            "--target",
            "wasm32-wasip2",
            "--manifest-path",
        ])
        .arg(agents.join("Cargo.toml"))
        .arg("--target-dir")
        .arg(&target_dir)
        // Flags meant for the host build must not leak into the guest build.
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_BUILD_TARGET")
        .env_remove("RUSTC_WORKSPACE_WRAPPER")
        .status()
        .expect("cannot run cargo to build the sample agents");
    assert!(
        status.success(),
        "building the sample agents failed; is the target installed? `rustup target add wasm32-wasip2`"
    );
    println!(
        "cargo:rustc-env=MERCATO_AGENTS_WASM_DIR={}",
        target_dir.join("wasm32-wasip2").join("release").display()
    );
    println!("cargo:rustc-env=MERCATO_SAMPLES_DIR={}", agents.display());
}
