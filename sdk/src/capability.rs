//! Typed capabilities, erased into one type so an agent can list several.

use crate::bindings::mercato::agent::types;
use schemars::JsonSchema;
use serde::Serialize;
use serde::de::DeserializeOwned;

/// Why a capability refused or failed a call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// The input decoded but is not acceptable (for example a unit that does
    /// not exist). The caller's fault.
    InvalidInput(String),
    /// The capability failed for a reason of its own.
    Failed(String),
}

impl From<Error> for types::Error {
    fn from(error: Error) -> Self {
        match error {
            Error::InvalidInput(m) => types::Error::InvalidInput(m),
            Error::Failed(m) => types::Error::Failed(m),
        }
    }
}

type Handler = Box<dyn Fn(&str) -> Result<String, Error>>;
/// Where the schemas come from: derived from Rust types, or written by hand.
enum Schemas {
    Derived(fn() -> (String, String)),
    Declared(&'static str, &'static str),
}
type Examples = Box<dyn Fn() -> Result<Vec<types::Example>, serde_json::Error>>;

/// One capability: metadata, derived schemas, worked examples and a handler.
pub struct Capability {
    name: &'static str,
    description: &'static str,
    category: &'static str,
    tags: &'static [&'static str],
    handler: Handler,
    schemas: Schemas,
    examples: Option<Examples>,
    deterministic: bool,
}

fn schemas_of<I: JsonSchema, O: JsonSchema>() -> (String, String) {
    let input = serde_json::to_string(&schemars::schema_for!(I));
    let output = serde_json::to_string(&schemars::schema_for!(O));
    // A schemars schema is a JSON value; encoding it cannot fail.
    (input.unwrap_or_default(), output.unwrap_or_default())
}

impl Capability {
    /// A capability named `name` (lower-case kebab-case) that runs `handler`.
    ///
    /// Its input and output JSON Schemas are derived from `I` and `O`.
    pub fn new<I, O>(
        name: &'static str,
        description: &'static str,
        handler: fn(I) -> Result<O, Error>,
    ) -> Self
    where
        I: DeserializeOwned + JsonSchema + 'static,
        O: Serialize + JsonSchema + 'static,
    {
        let handler: Handler = Box::new(move |input: &str| {
            let input: I = serde_json::from_str(input)
                .map_err(|e| Error::InvalidInput(format!("input does not decode: {e}")))?;
            let output = handler(input)?;
            serde_json::to_string(&output)
                .map_err(|e| Error::Failed(format!("output does not encode: {e}")))
        });
        Capability {
            name,
            description,
            category: "general",
            tags: &[],
            handler,
            schemas: Schemas::Derived(schemas_of::<I, O>),
            examples: None,
            deterministic: true,
        }
    }

    /// A capability over raw JSON text, with hand-written JSON Schemas.
    ///
    /// Prefer [`Capability::new`]: with `raw` nothing stops the schemas and the
    /// handler from disagreeing, except the host, which validates every input
    /// and output and refuses a call whose output breaks the declared schema.
    pub fn raw(
        name: &'static str,
        description: &'static str,
        input_schema: &'static str,
        output_schema: &'static str,
        handler: fn(&str) -> Result<String, Error>,
    ) -> Self {
        Capability {
            name,
            description,
            category: "general",
            tags: &[],
            handler: Box::new(handler),
            schemas: Schemas::Declared(input_schema, output_schema),
            examples: None,
            deterministic: true,
        }
    }

    /// Sets the marketplace category (for example `privacy` or `text`).
    pub fn category(mut self, category: &'static str) -> Self {
        self.category = category;
        self
    }

    /// Sets keywords that help discovery.
    pub fn tags(mut self, tags: &'static [&'static str]) -> Self {
        self.tags = tags;
        self
    }

    /// Declares that the same input may give different outputs (it samples,
    /// reads the clock or draws random numbers). Attestation then checks
    /// example outputs against the output schema rather than for equality,
    /// and does not require two runs to agree. Capabilities are deterministic
    /// unless they say so; one that is not and does not say so is refused.
    pub fn nondeterministic(mut self) -> Self {
        self.deterministic = false;
        self
    }

    /// Sets worked examples: inputs with the outputs this capability gives for
    /// them. They are only built when the host asks (`describe()`), and the
    /// host runs each one to check that the capability really does that.
    pub fn examples<I, O>(mut self, examples: fn() -> Vec<(I, O)>) -> Self
    where
        I: Serialize + 'static,
        O: Serialize + 'static,
    {
        self.examples = Some(Box::new(move || {
            examples()
                .into_iter()
                .map(|(input, output)| {
                    Ok(types::Example {
                        input: serde_json::to_string(&input)?,
                        output: serde_json::to_string(&output)?,
                    })
                })
                .collect()
        }));
        self
    }

    /// The capability's name.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// Runs the capability on JSON text.
    pub fn run(&self, input: &str) -> Result<String, Error> {
        (self.handler)(input)
    }

    pub(crate) fn describe(&self) -> types::Capability {
        let (input_schema, output_schema) = match self.schemas {
            Schemas::Derived(derive) => derive(),
            Schemas::Declared(input, output) => (input.to_string(), output.to_string()),
        };
        // An example that fails to encode is left out; the host then sees
        // fewer examples than the author meant and attestation says so.
        let examples = self
            .examples
            .as_ref()
            .and_then(|build| build().ok())
            .unwrap_or_default();
        types::Capability {
            name: self.name.to_string(),
            description: self.description.to_string(),
            category: self.category.to_string(),
            tags: self.tags.iter().map(|t| t.to_string()).collect(),
            input_schema,
            output_schema,
            examples,
            deterministic: self.deterministic,
        }
    }
}
