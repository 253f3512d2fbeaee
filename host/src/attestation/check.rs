//! Checks on an output: what a battery case (or a declared example) expects.

use crate::registry::compile_schema;
use crate::registry::violations;
use serde_json::Value;

/// Longest regular expression accepted, in bytes (the `regex` crate runs in
/// linear time; this bounds its compile time and memory too).
const REGEX_BYTES_MAX: usize = 1_024;

/// What a check asserts about the value at its pointer.
#[derive(Debug)]
pub enum Assertion {
    /// JSON equality.
    Equals(Value),
    /// The text (a string's content, otherwise the JSON text) contains this.
    Contains(String),
    /// The text does not contain this (for example: redacted personal data).
    NotContains(String),
    /// The text matches this regular expression.
    Regex(regex::Regex),
    /// The value validates against this JSON Schema.
    Schema(Box<jsonschema::Validator>),
    /// A number within `tolerance` of the expected one.
    Approx {
        /// Expected.
        expected: f64,
        /// Largest absolute difference.
        tolerance: f64,
    },
}

/// One check: a JSON Pointer into the output and an assertion there.
#[derive(Debug)]
pub struct Check {
    /// JSON Pointer (`""` is the whole output).
    pub path: String,
    /// The assertion.
    pub assertion: Assertion,
}

fn text_of(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

impl Check {
    /// Parses a check table: `path` plus exactly one assertion key.
    pub fn parse(spec: &Value) -> Result<Check, String> {
        let table = spec
            .as_object()
            .ok_or("a check is a table such as { path = \"/x\", equals = 1 }")?;
        let path = match table.get("path") {
            None => String::new(),
            Some(Value::String(p)) if p.is_empty() || p.starts_with('/') => p.clone(),
            Some(_) => return Err("`path` must be a JSON pointer (\"\" or starting with /)".into()),
        };
        let keys: Vec<&str> = table
            .keys()
            .map(String::as_str)
            .filter(|k| !matches!(*k, "path" | "tolerance"))
            .collect();
        let [key] = keys.as_slice() else {
            return Err(format!(
                "a check holds exactly one of equals, contains, not_contains, regex, schema, \
                 approx; this one holds {keys:?}"
            ));
        };
        let value = &table[*key];
        let string = |what: &str| {
            value
                .as_str()
                .map(str::to_string)
                .ok_or_else(|| format!("`{what}` takes a string"))
        };
        let assertion = match *key {
            "equals" => Assertion::Equals(value.clone()),
            "contains" => Assertion::Contains(string("contains")?),
            "not_contains" => Assertion::NotContains(string("not_contains")?),
            "regex" => {
                let pattern = string("regex")?;
                if pattern.len() > REGEX_BYTES_MAX {
                    return Err(format!("`regex` is over {REGEX_BYTES_MAX} bytes"));
                }
                Assertion::Regex(regex::Regex::new(&pattern).map_err(|e| format!("regex: {e}"))?)
            }
            "schema" => Assertion::Schema(Box::new(
                compile_schema(value).map_err(|e| format!("schema: {e}"))?,
            )),
            "approx" => {
                let expected = value.as_f64().ok_or("`approx` takes a number")?;
                let tolerance = match table.get("tolerance") {
                    None => 0.0,
                    Some(t) => t
                        .as_f64()
                        .filter(|t| *t >= 0.0)
                        .ok_or("`tolerance` takes a number ≥ 0")?,
                };
                Assertion::Approx {
                    expected,
                    tolerance,
                }
            }
            other => return Err(format!("unknown check `{other}`")),
        };
        if table.contains_key("tolerance") && !matches!(assertion, Assertion::Approx { .. }) {
            return Err("`tolerance` goes with `approx` only".into());
        }
        Ok(Check { path, assertion })
    }

    /// A short name for reports: `contains /redacted`.
    pub fn label(&self) -> String {
        let kind = match self.assertion {
            Assertion::Equals(_) => "equals",
            Assertion::Contains(_) => "contains",
            Assertion::NotContains(_) => "not_contains",
            Assertion::Regex(_) => "regex",
            Assertion::Schema(_) => "schema",
            Assertion::Approx { .. } => "approx",
        };
        if self.path.is_empty() {
            kind.to_string()
        } else {
            format!("{kind} {}", self.path)
        }
    }

    /// Evaluates the check; `Err` says why it fails.
    pub fn evaluate(&self, output: &Value) -> Result<(), String> {
        let Some(value) = output.pointer(&self.path) else {
            return Err(format!("the output has nothing at `{}`", self.path));
        };
        let shown = |v: &Value| {
            let text = v.to_string();
            if text.len() > 200 {
                format!("{}…", text.chars().take(200).collect::<String>())
            } else {
                text
            }
        };
        match &self.assertion {
            Assertion::Equals(expected) if value == expected => Ok(()),
            Assertion::Equals(expected) => Err(format!(
                "expected {}, got {}",
                shown(expected),
                shown(value)
            )),
            Assertion::Contains(needle) if text_of(value).contains(needle.as_str()) => Ok(()),
            Assertion::Contains(needle) => {
                Err(format!("{} does not contain {needle:?}", shown(value)))
            }
            Assertion::NotContains(needle) if text_of(value).contains(needle.as_str()) => {
                Err(format!("the output contains {needle:?}, which it must not"))
            }
            Assertion::NotContains(_) => Ok(()),
            Assertion::Regex(re) if re.is_match(&text_of(value)) => Ok(()),
            Assertion::Regex(re) => Err(format!("{} does not match /{re}/", shown(value))),
            Assertion::Schema(validator) => match violations(validator, value).first() {
                None => Ok(()),
                Some(v) => Err(format!("breaks the schema at `{}`: {}", v.path, v.message)),
            },
            Assertion::Approx {
                expected,
                tolerance,
            } => match value.as_f64() {
                Some(got) if (got - expected).abs() <= *tolerance => Ok(()),
                Some(got) => Err(format!("expected {expected} ± {tolerance}, got {got}")),
                None => Err(format!("expected a number, got {}", shown(value))),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn check(spec: Value) -> Check {
        Check::parse(&spec).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn each_assertion_passes_and_fails_where_it_should() {
        let out =
            json!({"text": "Mail [EMAIL] now", "n": 211.9999999, "list": [{"kind": "email"}]});
        let cases = [
            (json!({"path": "/text", "contains": "[EMAIL]"}), true),
            (json!({"path": "/text", "contains": "@"}), false),
            (json!({"not_contains": "jo@example.com"}), true),
            (json!({"not_contains": "EMAIL"}), false),
            (json!({"path": "/list", "regex": "(?i)EMAIL"}), true),
            (json!({"path": "/text", "regex": "^now"}), false),
            (
                json!({"path": "/n", "approx": 212, "tolerance": 1e-6}),
                true,
            ),
            (json!({"path": "/n", "approx": 212}), false),
            (json!({"path": "/list/0/kind", "equals": "email"}), true),
            (json!({"path": "/list/1/kind", "equals": "email"}), false),
            (
                json!({"path": "/list", "schema": {"type": "array", "minItems": 1}}),
                true,
            ),
            (
                json!({"path": "/list", "schema": {"type": "array", "minItems": 2}}),
                false,
            ),
        ];
        for (spec, passes) in cases {
            let result = check(spec.clone()).evaluate(&out);
            assert_eq!(result.is_ok(), passes, "{spec}: {result:?}");
        }
    }
}
