//! PII redactor: finds e-mail addresses, phone numbers, IBANs (mod-97 checked)
//! and payment card numbers (Luhn checked) in text, and redacts or reports them.

mod scan;

use mercato_sdk::{Agent, Capability, Deserialize, Error, JsonSchema, Serialize};
use scan::{Finding, Kind};

/// Text to redact.
#[derive(Deserialize, Serialize, JsonSchema)]
#[serde(crate = "mercato_sdk::serde", deny_unknown_fields)]
#[schemars(crate = "mercato_sdk::schemars")]
struct RedactInput {
    /// The text to scan (at most 1 MiB).
    text: String,
    /// Which kinds to redact; all of them when absent.
    #[serde(default)]
    kinds: Option<Vec<Kind>>,
}

/// The redacted text and what was replaced.
#[derive(Deserialize, Serialize, JsonSchema)]
#[serde(crate = "mercato_sdk::serde")]
#[schemars(crate = "mercato_sdk::schemars")]
struct RedactOutput {
    /// The text with every finding replaced by `[KIND]`.
    redacted: String,
    /// What was found, with byte offsets into the original text.
    findings: Vec<Finding>,
}

/// Text to scan.
#[derive(Deserialize, Serialize, JsonSchema)]
#[serde(crate = "mercato_sdk::serde", deny_unknown_fields)]
#[schemars(crate = "mercato_sdk::schemars")]
struct DetectInput {
    /// The text to scan (at most 1 MiB).
    text: String,
}

/// What the scan found.
#[derive(Deserialize, Serialize, JsonSchema)]
#[serde(crate = "mercato_sdk::serde")]
#[schemars(crate = "mercato_sdk::schemars")]
struct DetectOutput {
    /// True when the text holds no PII of the supported kinds.
    clean: bool,
    /// Every finding, with byte offsets into the text.
    findings: Vec<Finding>,
}

const TEXT_BYTES_MAX: usize = 1 << 20;

fn checked_text(text: &str) -> Result<(), Error> {
    if text.len() > TEXT_BYTES_MAX {
        return Err(Error::InvalidInput(format!(
            "text is {} bytes; the limit is {TEXT_BYTES_MAX}",
            text.len()
        )));
    }
    Ok(())
}

fn redact(input: RedactInput) -> Result<RedactOutput, Error> {
    checked_text(&input.text)?;
    let findings: Vec<Finding> = scan::scan(&input.text)
        .into_iter()
        .filter(|f| input.kinds.as_ref().is_none_or(|k| k.contains(&f.kind)))
        .collect();
    let mut redacted = String::with_capacity(input.text.len());
    let mut at = 0;
    for f in &findings {
        redacted.push_str(&input.text[at..f.start]);
        redacted.push_str(f.kind.placeholder());
        at = f.end;
    }
    redacted.push_str(&input.text[at..]);
    Ok(RedactOutput { redacted, findings })
}

fn detect(input: DetectInput) -> Result<DetectOutput, Error> {
    checked_text(&input.text)?;
    let findings = scan::scan(&input.text);
    Ok(DetectOutput {
        clean: findings.is_empty(),
        findings,
    })
}

fn redact_examples() -> Vec<(RedactInput, RedactOutput)> {
    let text = "Mail jane.doe@example.com or call +44 20 7946 0958; card 4111 1111 1111 1111.";
    vec![(
        RedactInput {
            text: text.into(),
            kinds: None,
        },
        RedactOutput {
            redacted: "Mail [EMAIL] or call [PHONE]; card [CARD].".into(),
            findings: vec![
                Finding {
                    kind: Kind::Email,
                    start: 5,
                    end: 25,
                },
                Finding {
                    kind: Kind::Phone,
                    start: 34,
                    end: 50,
                },
                Finding {
                    kind: Kind::Card,
                    start: 57,
                    end: 76,
                },
            ],
        },
    )]
}

fn detect_examples() -> Vec<(DetectInput, DetectOutput)> {
    vec![
        (
            DetectInput {
                text: "Pay to DE89 3704 0044 0532 0130 00 today".into(),
            },
            DetectOutput {
                clean: false,
                findings: vec![Finding {
                    kind: Kind::Iban,
                    start: 7,
                    end: 34,
                }],
            },
        ),
        (
            DetectInput {
                text: "Order 1234 shipped on 2024-05-01.".into(),
            },
            DetectOutput {
                clean: true,
                findings: vec![],
            },
        ),
    ]
}

struct PiiRedactor;

impl Agent for PiiRedactor {
    const NAME: &'static str = "pii-redactor";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");

    fn capabilities() -> Vec<Capability> {
        vec![
            Capability::new(
                "redact",
                "Redacts personal data from text: e-mail addresses, phone numbers, IBANs \
                 (mod-97 checked) and payment card numbers (Luhn checked) become placeholders.",
                redact,
            )
            .category("privacy")
            .tags(&[
                "pii",
                "gdpr",
                "redaction",
                "anonymise",
                "email",
                "phone",
                "iban",
                "credit card",
            ])
            .examples(redact_examples),
            Capability::new(
                "detect",
                "Finds personal data in text (e-mail addresses, phone numbers, IBANs, payment \
                 card numbers) and reports each finding with its position.",
                detect,
            )
            .category("privacy")
            .tags(&["pii", "gdpr", "scan", "data loss prevention"])
            .examples(detect_examples),
        ]
    }
}

mercato_sdk::export_agent!(PiiRedactor);
