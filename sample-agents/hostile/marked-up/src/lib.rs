//! marked-up: an honest capability whose provider-written text is markup
//! meant to run in a reader's browser (a script element, an `onerror`
//! attribute, a field name that closes a tag). The pages must show it as
//! text; the browser tests check that none of it runs.

use mercato_sdk::{Agent, Capability, Deserialize, Error, JsonSchema, Serialize};

/// A text to echo.
#[derive(Deserialize, Serialize, JsonSchema)]
#[serde(crate = "mercato_sdk::serde", deny_unknown_fields)]
#[schemars(crate = "mercato_sdk::schemars")]
struct Input {
    /// <img src=x onerror="window.__mercatoPwned='field'"> the text
    text: String,
}

/// The same text.
#[derive(Deserialize, Serialize, JsonSchema)]
#[serde(crate = "mercato_sdk::serde")]
#[schemars(crate = "mercato_sdk::schemars")]
struct Echo {
    /// </td></table><script>window.__mercatoPwned='output'</script>
    text: String,
}

fn echo(input: Input) -> Result<Echo, Error> {
    Ok(Echo { text: input.text })
}

fn examples() -> Vec<(Input, Echo)> {
    vec![(
        Input {
            text: "<script>window.__mercatoPwned='example'</script>".into(),
        },
        Echo {
            text: "<script>window.__mercatoPwned='example'</script>".into(),
        },
    )]
}

struct MarkedUp;

impl Agent for MarkedUp {
    const NAME: &'static str = "marked-up";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");

    fn capabilities() -> Vec<Capability> {
        vec![
            Capability::new(
                "echo",
                "Echoes text back. <script>window.__mercatoPwned='description'</script>\
                 <img src=x onerror=\"window.__mercatoPwned='onerror'\">",
                echo,
            )
            .category("echoing")
            .tags(&["<b>bold</b>"])
            .examples(examples),
        ]
    }
}

mercato_sdk::export_agent!(MarkedUp);
