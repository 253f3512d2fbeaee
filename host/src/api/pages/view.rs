//! What every page shares: the shell (head, navigation, sign-in state),
//! money and time as people read them, SVG charts with their numbers as a
//! table, and JSON Schemas shown as fields. Pure rendering: maud escapes
//! every value it interpolates, so text a provider or consumer wrote can
//! never become markup.

use super::sessions::Who;
use maud::{DOCTYPE, Markup, html};

/// The vendored htmx (pinned; served by the host, see `assets`).
pub const HTMX_PATH: &str = "/assets/htmx-2.0.11.min.js";
/// The stylesheet.
pub const CSS_PATH: &str = "/assets/mercato.css";

/// Who is looking, and the token their forms carry.
pub struct Viewer {
    pub who: Option<Who>,
    pub csrf: String,
}

impl Viewer {
    pub fn visitor() -> Viewer {
        Viewer {
            who: None,
            csrf: String::new(),
        }
    }
}

/// A whole page: head, navigation for who is signed in, an optional notice
/// (what just happened), and the body.
pub fn page(viewer: &Viewer, title: &str, notice: Option<&str>, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                // No inline styles or eval: the Content-Security-Policy allows neither.
                // Error pages are swapped in too: they say what to do.
                meta name="htmx-config" content=r#"{"includeIndicatorStyles":false,"allowEval":false,"allowScriptTags":false,"responseHandling":[{"code":"204","swap":false},{"code":"[2345]..","swap":true}]}"#;
                title { (title) " · Mercato" }
                link rel="stylesheet" href=(CSS_PATH);
                script src=(HTMX_PATH) defer {}
            }
            body hx-boost="true" {
                a.skip href="#main" { "Skip to content" }
                header.top {
                    a.brand href="/" { "Mercato" }
                    nav aria-label="Main" {
                        ul {
                            li { a href="/" { "Catalog" } }
                            @match &viewer.who {
                                Some(Who::Member { .. }) => {
                                    li { a href="/account" { "Account" } }
                                    li { a href="/provider" { "Provider" } }
                                }
                                Some(Who::Approver { .. }) => {
                                    li { a href="/approvals" { "Approvals" } }
                                }
                                Some(Who::Operator) => {
                                    li { a href="/operator" { "Operator" } }
                                }
                                None => {}
                            }
                            @if viewer.who.is_some() {
                                li {
                                    form method="post" action="/signout" {
                                        input type="hidden" name="csrf" value=(viewer.csrf);
                                        button.link type="submit" { "Sign out" }
                                    }
                                }
                            } @else {
                                li { a href="/signin" { "Sign in" } }
                            }
                        }
                    }
                }
                main #main tabindex="-1" {
                    @if let Some(notice) = notice {
                        p.notice role="status" { (notice) }
                    }
                    (body)
                }
            }
        }
    }
}

/// An error as a page: what went wrong and what to do.
pub fn error_page(viewer: &Viewer, status: u16, message: &str, what_to_do: &str) -> Markup {
    page(
        viewer,
        "Something went wrong",
        None,
        html! {
            h1 { "Something went wrong" }
            p.error role="alert" { (message) }
            p { (what_to_do) }
            p.muted { "HTTP status " (status) }
        },
    )
}

/// Micros as currency units, trailing zeros dropped (`1_250_000` → `1.25`).
pub fn money(micros: u64) -> String {
    let whole = micros / 1_000_000;
    let fraction = micros % 1_000_000;
    if fraction == 0 {
        return whole.to_string();
    }
    let digits = format!("{fraction:06}");
    format!("{whole}.{}", digits.trim_end_matches('0'))
}

/// Money with its exact micros for a tooltip.
pub fn amount(micros: u64) -> Markup {
    html! { span.amount title=(format!("{micros} micros")) { (money(micros)) } }
}

/// Unix milliseconds as UTC `YYYY-MM-DD HH:MM`.
pub fn when(ms: u64) -> String {
    let (date, seconds) = utc(ms);
    format!("{date} {:02}:{:02}", seconds / 3600, seconds / 60 % 60)
}

/// Unix milliseconds as the UTC day `YYYY-MM-DD`.
pub fn day(ms: u64) -> String {
    utc(ms).0
}

/// The civil date (proleptic Gregorian, UTC) and the seconds into it.
fn utc(ms: u64) -> (String, u64) {
    (crate::clock::date(ms), ms / 1000 % 86_400)
}

/// A share as a percentage, or a dash.
pub fn percent(share: Option<f64>) -> String {
    share.map_or_else(|| "—".into(), |s| format!("{:.1}%", s * 100.0))
}

/// Microseconds as people read a latency.
pub fn latency_us(us: u64) -> String {
    if us >= 10_000 {
        format!("{} ms", us / 1000)
    } else {
        format!("{:.2} ms", us as f64 / 1000.0)
    }
}

/// One bar of a chart.
pub struct Bar {
    pub label: String,
    pub value: u64,
    /// How the value reads in the table and the bar's title.
    pub shown: String,
}

/// A bar chart drawn on the server as SVG (presentation attributes only,
/// which the style policy allows), followed by its numbers as a table.
pub fn bar_chart(caption: &str, unit: &str, bars: &[Bar]) -> Markup {
    const WIDTH: u64 = 600;
    const HEIGHT: u64 = 160;
    let max = bars.iter().map(|b| b.value).max().unwrap_or(0).max(1);
    let slot = if bars.is_empty() {
        WIDTH
    } else {
        WIDTH / bars.len() as u64
    };
    let bar_width = slot.saturating_sub(2).max(1);
    html! {
        figure.chart {
            figcaption { (caption) }
            @if bars.is_empty() {
                p.muted { "No data yet." }
            } @else {
                svg viewBox=(format!("0 0 {WIDTH} {}", HEIGHT + 20)) role="img"
                    aria-label=(format!("{caption}: {} bars, highest {} {unit}", bars.len(), bars.iter().max_by_key(|b| b.value).map_or(String::new(), |b| b.shown.clone()))) {
                    line x1="0" y1=(HEIGHT) x2=(WIDTH) y2=(HEIGHT) stroke="#8a8f98" stroke-width="1" {}
                    @for (i, bar) in bars.iter().enumerate() {
                        @let h = bar.value * HEIGHT / max;
                        rect x=(i as u64 * slot + 1) y=(HEIGHT - h) width=(bar_width) height=(h) fill="#2f6fdf" {
                            title { (bar.label) ": " (bar.shown) }
                        }
                    }
                    text x="0" y=(HEIGHT + 16) font-size="12" fill="#444" { (bars[0].label) }
                    text x=(WIDTH) y=(HEIGHT + 16) font-size="12" fill="#444" text-anchor="end" { (bars[bars.len() - 1].label) }
                }
                details {
                    summary { "Numbers" }
                    table {
                        caption.sr { (caption) }
                        thead { tr { th scope="col" { "When" } th scope="col" { (unit) } } }
                        tbody {
                            @for bar in bars {
                                tr { td { (bar.label) } td.num { (bar.shown) } }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// A JSON Schema's fields as a table: name (dotted for nested objects),
/// type, whether required, constraints and description.
pub fn schema_fields(schema: &serde_json::Value) -> Markup {
    let mut rows = Vec::new();
    collect_fields(schema, "", 0, &mut rows);
    html! {
        @if rows.is_empty() {
            p.muted { "Any JSON value (the schema names no fields)." }
        } @else {
            table.fields {
                thead { tr { th scope="col" { "Field" } th scope="col" { "Type" } th scope="col" { "Required" } th scope="col" { "Rules" } th scope="col" { "Description" } } }
                tbody {
                    @for row in &rows {
                        tr {
                            td { code { (row.name) } }
                            td { (row.kind) }
                            td { @if row.required { "yes" } @else { "no" } }
                            td { (row.rules) }
                            td { (row.description) }
                        }
                    }
                }
            }
        }
    }
}

struct Field {
    name: String,
    kind: String,
    required: bool,
    rules: String,
    description: String,
}

/// Depth and count are bounded: a schema is the provider's text.
fn collect_fields(schema: &serde_json::Value, prefix: &str, depth: usize, rows: &mut Vec<Field>) {
    const DEPTH_MAX: usize = 3;
    const ROWS_MAX: usize = 200;
    let Some(properties) = schema.get("properties").and_then(|p| p.as_object()) else {
        return;
    };
    let required: Vec<&str> = schema
        .get("required")
        .and_then(|r| r.as_array())
        .map(|r| r.iter().filter_map(|v| v.as_str()).collect())
        .unwrap_or_default();
    for (name, property) in properties {
        if rows.len() >= ROWS_MAX {
            return;
        }
        let full = format!("{prefix}{name}");
        rows.push(Field {
            name: full.clone(),
            kind: kind_of(property),
            required: required.contains(&name.as_str()),
            rules: rules_of(property),
            description: property
                .get("description")
                .and_then(|d| d.as_str())
                .unwrap_or("")
                .to_string(),
        });
        if depth < DEPTH_MAX {
            collect_fields(property, &format!("{full}."), depth + 1, rows);
            if let Some(items) = property.get("items") {
                collect_fields(items, &format!("{full}[]."), depth + 1, rows);
            }
        }
    }
}

fn kind_of(property: &serde_json::Value) -> String {
    match property.get("type") {
        Some(serde_json::Value::String(t)) if t == "array" => {
            let item = property
                .get("items")
                .map(kind_of)
                .unwrap_or_else(|| "any".into());
            format!("list of {item}")
        }
        Some(serde_json::Value::String(t)) => t.clone(),
        Some(serde_json::Value::Array(ts)) => ts
            .iter()
            .filter_map(|t| t.as_str())
            .collect::<Vec<_>>()
            .join(" or "),
        _ if property.get("enum").is_some() => "one of".into(),
        _ => "any".into(),
    }
}

fn rules_of(property: &serde_json::Value) -> String {
    let mut rules = Vec::new();
    if let Some(values) = property.get("enum").and_then(|e| e.as_array()) {
        let shown: Vec<String> = values.iter().take(20).map(|v| v.to_string()).collect();
        rules.push(format!("one of {}", shown.join(", ")));
    }
    for (key, label) in [
        ("minimum", "at least"),
        ("maximum", "at most"),
        ("minLength", "length at least"),
        ("maxLength", "length at most"),
        ("minItems", "items at least"),
        ("maxItems", "items at most"),
        ("pattern", "matches"),
        ("format", "format"),
    ] {
        if let Some(value) = property.get(key) {
            let value = value
                .as_str()
                .map_or_else(|| value.to_string(), str::to_string);
            rules.push(format!("{label} {value}"));
        }
    }
    rules.join("; ")
}

/// Pretty JSON in a `pre`, escaped.
pub fn json(value: &serde_json::Value) -> Markup {
    let text = serde_json::to_string_pretty(value).unwrap_or_default();
    html! { pre.json { code { (text) } } }
}

/// Links to the previous and next pages of a listing, when there are.
pub fn pager(previous: Option<String>, next: Option<String>) -> Markup {
    html! {
        @if previous.is_some() || next.is_some() {
            nav.pager aria-label="Pages" {
                @if let Some(href) = previous { a rel="prev" href=(href) { "← Newer" } }
                @if let Some(href) = next { a rel="next" href=(href) { "Older →" } }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn money_reads_in_units() {
        assert_eq!(money(0), "0");
        assert_eq!(money(1_250_000), "1.25");
        assert_eq!(money(1), "0.000001");
        assert_eq!(money(7_000_000), "7");
    }

    #[test]
    fn dates_are_utc_civil_dates() {
        assert_eq!(when(0), "1970-01-01 00:00");
        assert_eq!(day(951_782_400_000), "2000-02-29");
        assert_eq!(when(1_796_428_800_000 + 3_723_000), "2026-12-05 01:02");
    }

    #[test]
    fn user_text_is_escaped_in_every_view() {
        let schema = serde_json::json!({
            "type": "object",
            "properties": {"<img src=x onerror=alert(1)>": {"type": "string", "description": "<script>alert(1)</script>"}},
        });
        let html = schema_fields(&schema).into_string();
        assert!(!html.contains("<script>"), "{html}");
        assert!(!html.contains("<img"), "{html}");
        assert!(html.contains("&lt;script&gt;"), "{html}");
    }

    #[test]
    fn schema_fields_are_bounded_in_depth() {
        let mut schema = serde_json::json!({"type": "string"});
        for i in 0..50 {
            schema = serde_json::json!({"type": "object", "properties": {format!("f{i}"): schema}});
        }
        let mut rows = Vec::new();
        collect_fields(&schema, "", 0, &mut rows);
        assert_eq!(rows.len(), 4);
    }
}
