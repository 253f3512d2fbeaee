//! Synthetic capability texts for benchmarks at scale: a verb, an object, a
//! domain and a qualifier, picked by a small deterministic generator.

pub const VERBS: &[&str] = &[
    "convert",
    "translate",
    "summarise",
    "classify",
    "extract",
    "validate",
    "forecast",
    "detect",
    "score",
    "geocode",
    "transcribe",
    "normalise",
    "deduplicate",
    "rank",
    "monitor",
    "price",
    "schedule",
    "route",
];
pub const OBJECTS: &[&str] = &[
    "invoices",
    "addresses",
    "weather reports",
    "stock quotes",
    "shipping labels",
    "medical codes",
    "legal contracts",
    "product reviews",
    "flight schedules",
    "energy readings",
    "tax forms",
    "resumes",
    "support tickets",
    "sensor logs",
    "bank statements",
    "recipes",
    "song lyrics",
    "satellite images",
    "court filings",
    "exchange rates",
    "patent claims",
    "sports results",
    "hotel listings",
    "news articles",
];
pub const DOMAINS: &[&str] = &[
    "retail",
    "logistics",
    "healthcare",
    "finance",
    "insurance",
    "travel",
    "energy",
    "agriculture",
    "media",
    "government",
    "education",
    "real estate",
    "manufacturing",
    "telecom",
    "gaming",
    "legal",
];
pub const QUALIFIERS: &[&str] = &[
    "in real time",
    "in bulk",
    "with audit trails",
    "for small businesses",
    "across languages",
    "with confidence scores",
    "under strict privacy",
    "from scanned documents",
    "for compliance teams",
];
pub const CATEGORIES: &[&str] = &[
    "finance",
    "text",
    "data",
    "geo",
    "media",
    "compliance",
    "logistics",
    "health",
    "travel",
    "energy",
];

/// A small deterministic generator (xorshift).
pub struct Rng(pub u64);

impl Rng {
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    pub fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[(self.next_u64() % items.len() as u64) as usize]
    }
}

/// A description of its own for capability `i` (the same `i`, the same text).
pub fn description(i: usize) -> String {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ (i as u64 + 1).wrapping_mul(0x2545_f491_4f6c_dd1d));
    format!(
        "{} {} for {} {} (variant {i})",
        rng.pick(VERBS),
        rng.pick(OBJECTS),
        rng.pick(DOMAINS),
        rng.pick(QUALIFIERS),
    )
}
