//! `POST /v1/components`: the upload's multipart body and its signature.
//! The first byte picks the mode: a raw multipart body (boundary
//! `fuzzboundary`), or a component and a manifest the harness signs with
//! the organisation's key (to reach past the signature into the manifest,
//! the compiler and attestation).
#![no_main]

use libfuzzer_sys::fuzz_target;
use mercato_host::identity::signing;
use sha2::{Digest, Sha256};

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

const BOUNDARY: &str = "fuzzboundary";

fn part(out: &mut Vec<u8>, name: &str, bytes: &[u8]) {
    out.extend_from_slice(
        format!("--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n")
            .as_bytes(),
    );
    out.extend_from_slice(bytes);
    out.extend_from_slice(b"\r\n");
}

fuzz_target!(|data: &[u8]| {
    let Some((mode, rest)) = data.split_first() else {
        return;
    };
    let host = mercato_fuzz::host();
    let body = if mode % 2 == 0 {
        rest.to_vec()
    } else {
        // component NUL manifest
        let mut halves = rest.splitn(2, |b| *b == 0);
        let wasm = halves.next().unwrap_or_default();
        let manifest = String::from_utf8_lossy(halves.next().unwrap_or_default()).into_owned();
        let key = signing::parse_signing_key(&host.signing_key).expect("key");
        let statement =
            signing::upload_statement(&sha256_hex(wasm), &sha256_hex(manifest.as_bytes()));
        let signature = serde_json::to_string(&signing::UploadSignature {
            key_id: signing::key_id(&key.verifying_key()),
            signature: signing::sign_bytes(&key, &statement),
        })
        .expect("encodes");
        let mut body = Vec::new();
        part(&mut body, "component", wasm);
        part(&mut body, "manifest", manifest.as_bytes());
        part(&mut body, "signature", signature.as_bytes());
        body.extend_from_slice(format!("--{BOUNDARY}--\r\n").as_bytes());
        body
    };
    host.send(
        "/v1/components",
        &format!("multipart/form-data; boundary={BOUNDARY}"),
        &[],
        body,
    );
});
