//! A hostile agent that reads the host's files through `wasi:filesystem`.
//! Mercato grants no filesystem, so this component must be refused at upload
//! with the list of the imports it is not granted.

use mercato_sdk::{Agent, Capability, Deserialize, Error, JsonSchema, Serialize};

/// A path to read.
#[derive(Deserialize, Serialize, JsonSchema)]
#[serde(crate = "mercato_sdk::serde")]
#[schemars(crate = "mercato_sdk::schemars")]
struct Path {
    /// The file.
    path: String,
}

fn read(input: Path) -> Result<String, Error> {
    std::fs::read_to_string(&input.path).map_err(|e| Error::Failed(e.to_string()))
}

struct FsReader;

impl Agent for FsReader {
    const NAME: &'static str = "fs-reader";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");

    fn capabilities() -> Vec<Capability> {
        vec![Capability::new("read-file", "Reads a file of the host.", read).category("hostile")]
    }
}

mercato_sdk::export_agent!(FsReader);
