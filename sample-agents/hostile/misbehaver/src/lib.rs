//! A deliberately hostile agent: each capability attacks the host in one way.
//! The host must stop each attack with its own named error, charge nothing,
//! and keep serving everyone else. Never list this in a real marketplace.

use mercato_sdk::{Agent, Capability, Deserialize, Error, JsonSchema, Serialize};
use std::hint::black_box;

/// No input needed.
#[derive(Deserialize, Serialize, JsonSchema)]
#[serde(crate = "mercato_sdk::serde")]
#[schemars(crate = "mercato_sdk::schemars")]
struct Nothing {}

/// A count.
#[derive(Deserialize, Serialize, JsonSchema)]
#[serde(crate = "mercato_sdk::serde")]
#[schemars(crate = "mercato_sdk::schemars")]
struct Count {
    /// How many.
    n: u64,
}

/// Spins forever: stopped by fuel or by the deadline.
fn spin(_: Nothing) -> Result<Count, Error> {
    let mut n: u64 = 0;
    loop {
        n = black_box(n.wrapping_add(1));
    }
}

/// Allocates and touches memory until the host refuses to grow it.
fn hog_memory(_: Nothing) -> Result<Count, Error> {
    let mut blocks: Vec<Vec<u8>> = Vec::new();
    loop {
        let block = vec![1u8; 4 << 20];
        blocks.push(black_box(block));
    }
}

fn depth(n: u64) -> u64 {
    if black_box(n) == u64::MAX {
        0
    } else {
        1 + depth(black_box(n + 1))
    }
}

/// Recurses without end: stopped by the stack limit.
fn recurse(_: Nothing) -> Result<Count, Error> {
    Ok(Count { n: depth(0) })
}

/// Panics (which aborts: a trap).
fn panic(_: Nothing) -> Result<Count, Error> {
    panic!("the misbehaver panics on purpose")
}

/// Streams hundreds of megabytes of chunks.
fn flood(_: Nothing) -> Result<Count, Error> {
    let chunk = "x".repeat(1 << 20);
    for _ in 0..400 {
        mercato_sdk::host::emit(&chunk);
    }
    Ok(Count { n: 400 })
}

/// Returns one output of 8 MiB (the JSON encoding doubles it in guest memory).
fn big_output(_: Nothing) -> Result<String, Error> {
    Ok("y".repeat(8 << 20))
}

/// Sleeps for an hour inside a host call (monotonic-clock poll).
fn sleep(_: Nothing) -> Result<Count, Error> {
    std::thread::sleep(std::time::Duration::from_secs(3600));
    Ok(Count { n: 0 })
}

/// Asks the host for 16 MiB of random bytes at once (`wasi:random`).
fn dice(_: Nothing) -> Result<Count, Error> {
    let bytes = wasip2::random::random::get_random_bytes(16 << 20);
    Ok(Count {
        n: bytes.len() as u64,
    })
}

/// How many random draws to make.
#[derive(Deserialize, Serialize, JsonSchema)]
#[serde(crate = "mercato_sdk::serde")]
#[schemars(crate = "mercato_sdk::schemars")]
struct Draws {
    /// Requests of 64 KiB each.
    n: u64,
}

/// Asks for 64 KiB of random bytes `n` times: each request within the
/// host's limit, the loop as long as the caller likes.
fn roll(input: Draws) -> Result<Count, Error> {
    let mut bytes = 0u64;
    for _ in 0..input.n {
        bytes += black_box(wasip2::random::random::get_random_bytes(64 << 10)).len() as u64;
    }
    Ok(Count { n: bytes })
}

/// Emits empty chunks forever: each still costs the host a call.
fn drip(_: Nothing) -> Result<Count, Error> {
    loop {
        mercato_sdk::host::emit("");
    }
}

/// Fails with an error message of 8 Mi quote characters (each doubles
/// when escaped in JSON).
fn shout(_: Nothing) -> Result<Count, Error> {
    Err(Error::Failed("\"".repeat(8 << 20)))
}

/// Declares an output schema that requires `words`, then returns `{"n": 7}`.
fn lie(_: &str) -> Result<String, Error> {
    Ok(r#"{"n": 7}"#.to_string())
}

/// Answers a different number every call while claiming (by default) to be
/// deterministic: it passes attestation only because it has no cases, and a
/// dispute's re-run catches it.
fn drift(_: Nothing) -> Result<Count, Error> {
    use std::hash::BuildHasher;
    Ok(Count {
        n: std::hash::RandomState::new().hash_one(0u8),
    })
}

/// How long to nap.
#[derive(Deserialize, Serialize, JsonSchema)]
#[serde(crate = "mercato_sdk::serde")]
#[schemars(crate = "mercato_sdk::schemars")]
struct Nap {
    /// Milliseconds, at most 500.
    ms: u64,
}

/// Sleeps a little, then answers: slow but correct (for latency SLAs).
fn nap(input: Nap) -> Result<Count, Error> {
    if input.ms > 500 {
        return Err(Error::InvalidInput("ms is at most 500".into()));
    }
    std::thread::sleep(std::time::Duration::from_millis(input.ms));
    Ok(Count { n: input.ms })
}

const LIE_INPUT_SCHEMA: &str = r#"{"type": "object"}"#;
const LIE_OUTPUT_SCHEMA: &str =
    r#"{"type": "object", "required": ["words"], "properties": {"words": {"type": "array"}}}"#;

struct Misbehaver;

impl Agent for Misbehaver {
    const NAME: &'static str = "misbehaver";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");

    fn capabilities() -> Vec<Capability> {
        vec![
            Capability::new("spin", "Loops forever.", spin).category("hostile"),
            Capability::new("hog-memory", "Allocates until refused.", hog_memory)
                .category("hostile"),
            Capability::new("recurse", "Recurses without end.", recurse).category("hostile"),
            Capability::new("panic", "Panics.", panic).category("hostile"),
            Capability::new("flood", "Streams 400 MiB.", flood).category("hostile"),
            Capability::new("big-output", "Returns 8 MiB.", big_output).category("hostile"),
            Capability::new("sleep", "Sleeps for an hour.", sleep).category("hostile"),
            Capability::new("dice", "Asks for 16 MiB of random bytes.", dice)
                .category("hostile"),
            Capability::new("roll", "Asks for 64 KiB of random bytes n times.", roll)
                .category("hostile"),
            Capability::new("drip", "Emits empty chunks forever.", drip).category("hostile"),
            Capability::new("shout", "Fails with an 8 MiB error message.", shout)
                .category("hostile"),
            Capability::raw(
                "lie",
                "Breaks its declared output schema.",
                LIE_INPUT_SCHEMA,
                LIE_OUTPUT_SCHEMA,
                lie,
            )
            .category("hostile"),
            Capability::new("drift", "Answers a different number each call.", drift)
                .category("hostile"),
            Capability::new("nap", "Sleeps the given milliseconds, then answers.", nap)
                .category("hostile"),
        ]
    }
}

mercato_sdk::export_agent!(Misbehaver);
