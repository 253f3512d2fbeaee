//! Schema compatibility for the upgrade gate: proving that every document one
//! JSON Schema accepts, another accepts too.
//!
//! The proof is structural and conservative: it understands the keywords
//! schema generators emit (type, properties, required, additionalProperties,
//! items, enum/const, anyOf/oneOf, numeric and length bounds, pattern, format,
//! local `$ref`s) and refuses to vouch for anything else, naming it. A
//! provider whose change it cannot prove publishes a new major version.

use super::validate::compile_schema;
use serde_json::{Map, Value};

/// Deepest nesting compared.
const DEPTH_MAX: usize = 32;

/// Keywords that never constrain a document.
const ANNOTATIONS: &[&str] = &[
    "$schema",
    "$id",
    "$comment",
    "$defs",
    "definitions",
    "title",
    "description",
    "default",
    "examples",
    "deprecated",
    "readOnly",
    "writeOnly",
    "nullable",
];

/// Keywords this module understands.
const UNDERSTOOD: &[&str] = &[
    "$ref",
    "type",
    "properties",
    "required",
    "additionalProperties",
    "items",
    "enum",
    "const",
    "anyOf",
    "oneOf",
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "multipleOf",
    "minLength",
    "maxLength",
    "pattern",
    "format",
    "minItems",
    "maxItems",
    "uniqueItems",
];

/// `Ok` when every document valid under `narrower` is valid under `wider`;
/// otherwise the reasons the proof fails, each with its JSON path.
pub fn accepts_all(wider: &Value, narrower: &Value) -> Result<(), Vec<String>> {
    let mut why = Vec::new();
    let cx = Cx {
        wide_root: wider,
        narrow_root: narrower,
    };
    cx.sub(wider, narrower, "", 0, &mut why);
    if why.is_empty() { Ok(()) } else { Err(why) }
}

struct Cx<'a> {
    wide_root: &'a Value,
    narrow_root: &'a Value,
}

fn at(path: &str) -> &str {
    if path.is_empty() {
        "the document"
    } else {
        path
    }
}

fn resolve<'a>(root: &'a Value, schema: &'a Value, depth: usize) -> Result<&'a Value, String> {
    let mut current = schema;
    for _ in 0..DEPTH_MAX.saturating_sub(depth).max(1) {
        let Some(reference) = current.get("$ref").and_then(Value::as_str) else {
            return Ok(current);
        };
        let pointer = reference
            .strip_prefix('#')
            .ok_or_else(|| format!("cannot follow the non-local $ref `{reference}`"))?;
        current = root
            .pointer(pointer)
            .ok_or_else(|| format!("$ref `{reference}` points nowhere"))?;
    }
    Err("$ref chain too long".into())
}

fn types(schema: &Map<String, Value>) -> Option<Vec<&str>> {
    match schema.get("type")? {
        Value::String(t) => Some(vec![t.as_str()]),
        Value::Array(ts) => Some(ts.iter().filter_map(Value::as_str).collect()),
        _ => Some(Vec::new()),
    }
}

fn allows(types: &Option<Vec<&str>>, kind: &str) -> bool {
    match types {
        None => true,
        Some(ts) => ts.contains(&kind) || (kind == "integer" && ts.contains(&"number")),
    }
}

fn is_trivially_true(schema: &Value) -> bool {
    match schema {
        Value::Bool(b) => *b,
        Value::Object(m) => m.keys().all(|k| ANNOTATIONS.contains(&k.as_str())),
        _ => false,
    }
}

fn mentions_ref(schema: &Value) -> bool {
    match schema {
        Value::Object(m) => m.contains_key("$ref") || m.values().any(mentions_ref),
        Value::Array(a) => a.iter().any(mentions_ref),
        _ => false,
    }
}

impl Cx<'_> {
    /// A schema `schema` under the wider root, standalone (its definitions copied in).
    fn standalone_wide(&self, schema: &Value) -> Value {
        let mut out = schema.clone();
        if let (Some(out), Some(root)) = (out.as_object_mut(), self.wide_root.as_object()) {
            for defs in ["$defs", "definitions"] {
                if let Some(d) = root.get(defs) {
                    out.entry(defs).or_insert_with(|| d.clone());
                }
            }
        }
        out
    }

    fn sub(&self, wide: &Value, narrow: &Value, path: &str, depth: usize, why: &mut Vec<String>) {
        if depth > DEPTH_MAX {
            why.push(format!("{}: nested too deeply to compare", at(path)));
            return;
        }
        let (wide, narrow) = match (
            resolve(self.wide_root, wide, depth),
            resolve(self.narrow_root, narrow, depth),
        ) {
            (Ok(w), Ok(n)) => (w, n),
            (Err(e), _) | (_, Err(e)) => {
                why.push(format!("{}: {e}", at(path)));
                return;
            }
        };
        if is_trivially_true(wide) || narrow == &Value::Bool(false) {
            return;
        }
        if wide == narrow && !mentions_ref(wide) {
            return;
        }
        let (Some(w), Some(n)) = (wide.as_object(), narrow.as_object()) else {
            why.push(format!("{}: the new schema accepts nothing here", at(path)));
            return;
        };
        // Alternatives on the narrow side: each must fit.
        for key in ["anyOf", "oneOf"] {
            if let Some(branches) = n.get(key).and_then(Value::as_array) {
                let mut rest = n.clone();
                rest.remove(key);
                for branch in branches {
                    let mut merged = rest.clone();
                    if let Some(b) = resolve(self.narrow_root, branch, depth)
                        .ok()
                        .and_then(Value::as_object)
                    {
                        merged.extend(b.clone());
                    }
                    self.sub(wide, &Value::Object(merged), path, depth + 1, why);
                }
                return;
            }
        }
        // Values the narrow side enumerates: check each against the wide side.
        let listed: Option<Vec<&Value>> = match (n.get("enum"), n.get("const")) {
            (_, Some(c)) => Some(vec![c]),
            (Some(Value::Array(values)), _) => Some(values.iter().collect()),
            _ => None,
        };
        if let Some(values) = listed {
            match compile_schema(&self.standalone_wide(wide)) {
                Ok(validator) => {
                    for value in values.into_iter().filter(|v| !validator.is_valid(v)) {
                        why.push(format!(
                            "{}: the value {value} is no longer accepted",
                            at(path)
                        ));
                    }
                }
                Err(e) => why.push(format!("{}: {e}", at(path))),
            }
            return;
        }
        // Alternatives on the wide side: fitting one is enough.
        for key in ["anyOf", "oneOf"] {
            if let Some(branches) = w.get(key).and_then(Value::as_array) {
                let fits = branches.iter().any(|b| {
                    let mut trial = Vec::new();
                    self.sub(b, narrow, path, depth + 1, &mut trial);
                    trial.is_empty()
                });
                if !fits {
                    why.push(format!(
                        "{}: fits none of the `{key}` alternatives",
                        at(path)
                    ));
                }
                if w.keys()
                    .any(|k| k != key && !ANNOTATIONS.contains(&k.as_str()))
                {
                    why.push(format!(
                        "{}: `{key}` beside other keywords is not compared",
                        at(path)
                    ));
                }
                return;
            }
        }
        for key in w.keys() {
            if !ANNOTATIONS.contains(&key.as_str()) && !UNDERSTOOD.contains(&key.as_str()) {
                why.push(format!("{}: cannot prove keyword `{key}`", at(path)));
            }
        }
        if w.contains_key("enum") || w.contains_key("const") {
            why.push(format!(
                "{}: the new schema restricts values to a list",
                at(path)
            ));
            return;
        }
        let (wt, nt) = (types(w), types(n));
        if let Some(wts) = &wt {
            match &nt {
                None => why.push(format!(
                    "{}: now requires type {wts:?}, which was not required",
                    at(path)
                )),
                Some(nts) => {
                    for t in nts.iter().filter(|t| !allows(&wt, t)) {
                        why.push(format!("{}: type `{t}` is no longer accepted", at(path)));
                    }
                }
            }
        }
        self.bounds(w, n, &nt, path, why);
        if allows(&nt, "array") {
            self.arrays(w, n, path, depth, why);
        }
        if allows(&nt, "object") {
            self.objects(w, n, path, depth, why);
        }
    }

    fn bounds(
        &self,
        w: &Map<String, Value>,
        n: &Map<String, Value>,
        nt: &Option<Vec<&str>>,
        path: &str,
        why: &mut Vec<String>,
    ) {
        let numeric = allows(nt, "number") || allows(nt, "integer");
        let text = allows(nt, "string");
        let arrays = allows(nt, "array");
        let lower = |k: &'static str| w.get(k).and_then(Value::as_f64).map(|b| (k, b, true));
        let upper = |k: &'static str| w.get(k).and_then(Value::as_f64).map(|b| (k, b, false));
        let mut checks = Vec::new();
        if numeric {
            checks.extend([lower("minimum"), lower("exclusiveMinimum")]);
            checks.extend([upper("maximum"), upper("exclusiveMaximum")]);
        }
        if text {
            checks.extend([lower("minLength"), upper("maxLength")]);
        }
        if arrays {
            checks.extend([lower("minItems"), upper("maxItems")]);
        }
        for (key, bound, is_lower) in checks.into_iter().flatten() {
            let tight = n.get(key).and_then(Value::as_f64);
            let holds = match tight {
                Some(t) if is_lower => t >= bound,
                Some(t) => t <= bound,
                None => false,
            };
            if !holds {
                why.push(format!("{}: new bound `{key}` = {bound}", at(path)));
            }
        }
        for key in ["multipleOf", "pattern", "format", "uniqueItems"] {
            let applies = match key {
                "multipleOf" => numeric,
                "uniqueItems" => arrays,
                _ => text,
            };
            if applies
                && let Some(value) = w.get(key)
                && n.get(key) != Some(value)
                && value != &Value::Bool(false)
            {
                why.push(format!("{}: new constraint `{key}` = {value}", at(path)));
            }
        }
    }

    fn arrays(
        &self,
        w: &Map<String, Value>,
        n: &Map<String, Value>,
        path: &str,
        depth: usize,
        why: &mut Vec<String>,
    ) {
        if let Some(wide_items) = w.get("items") {
            let narrow_items = n.get("items").unwrap_or(&Value::Bool(true));
            self.sub(
                wide_items,
                narrow_items,
                &format!("{path}/items"),
                depth + 1,
                why,
            );
        }
    }

    fn objects(
        &self,
        w: &Map<String, Value>,
        n: &Map<String, Value>,
        path: &str,
        depth: usize,
        why: &mut Vec<String>,
    ) {
        let empty = Map::new();
        let wide_props = w
            .get("properties")
            .and_then(Value::as_object)
            .unwrap_or(&empty);
        let narrow_props = n
            .get("properties")
            .and_then(Value::as_object)
            .unwrap_or(&empty);
        let narrow_extra = n.get("additionalProperties").unwrap_or(&Value::Bool(true));
        let narrow_required: Vec<&str> = n
            .get("required")
            .and_then(Value::as_array)
            .map(|r| r.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        for required in w
            .get("required")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let name = required.as_str().unwrap_or_default();
            if !narrow_required.contains(&name) {
                why.push(format!("{}: now requires `{name}`", at(path)));
            }
        }
        for (name, wide) in wide_props {
            let narrow = narrow_props.get(name).unwrap_or(narrow_extra);
            self.sub(wide, narrow, &format!("{path}/{name}"), depth + 1, why);
        }
        if let Some(wide_extra) = w.get("additionalProperties") {
            for (name, narrow) in narrow_props
                .iter()
                .filter(|(k, _)| !wide_props.contains_key(*k))
            {
                self.sub(
                    wide_extra,
                    narrow,
                    &format!("{path}/{name}"),
                    depth + 1,
                    why,
                );
            }
            if narrow_extra != &Value::Bool(false) {
                self.sub(
                    wide_extra,
                    narrow_extra,
                    &format!("{path}/*"),
                    depth + 1,
                    why,
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ok(wide: Value, narrow: Value) {
        assert_eq!(accepts_all(&wide, &narrow), Ok(()), "{wide} ⊇ {narrow}");
    }

    fn refused(wide: Value, narrow: Value, reason: &str) {
        let why = accepts_all(&wide, &narrow)
            .err()
            .unwrap_or_default()
            .join("; ");
        assert!(why.contains(reason), "{wide} ⊇ {narrow}: {why:?}");
    }

    #[test]
    fn widening_an_input_is_compatible() {
        let old = json!({"type": "object", "properties": {"text": {"type": "string"}},
                         "required": ["text"], "additionalProperties": false});
        ok(old.clone(), old.clone());
        // A new optional field, an integer now read as any number, a nullable field.
        ok(
            json!({"type": "object", "properties": {"text": {"type": ["string", "null"]},
                   "lang": {"type": "string"}}, "required": ["text"], "additionalProperties": false}),
            old.clone(),
        );
        ok(
            json!({"type": "number"}),
            json!({"type": "integer", "minimum": 0}),
        );
        ok(
            json!({"type": "string", "maxLength": 100}),
            json!({"type": "string", "maxLength": 10}),
        );
        ok(
            json!({"$ref": "#/$defs/K", "$defs": {"K": {"enum": ["a", "b", "c"]}}}),
            json!({"$ref": "#/$defs/K", "$defs": {"K": {"enum": ["a", "b"]}}}),
        );
        ok(
            json!({"type": "array", "items": {"type": "number"}}),
            json!({"type": "array", "items": {"anyOf": [{"type": "integer"}, {"type": "number"}]}}),
        );
    }

    #[test]
    fn narrowing_is_refused_with_the_place_named() {
        let old = json!({"type": "object", "properties": {"text": {"type": "string"}},
                         "required": ["text"]});
        refused(
            json!({"type": "object", "properties": {"text": {"type": "string"}, "lang": {"type": "string"}},
                   "required": ["text", "lang"]}),
            old.clone(),
            "now requires `lang`",
        );
        refused(
            json!({"type": "object", "properties": {"text": {"type": "integer"}}}),
            old.clone(),
            "/text: type `string` is no longer accepted",
        );
        refused(
            json!({"type": "string", "maxLength": 5}),
            json!({"type": "string"}),
            "maxLength",
        );
        refused(
            json!({"enum": ["a"]}),
            json!({"enum": ["a", "b"]}),
            "\"b\" is no longer accepted",
        );
        refused(
            json!({"type": "object", "additionalProperties": false}),
            old,
            "/*",
        );
        refused(
            json!({"not": {"type": "null"}}),
            json!({}),
            "cannot prove keyword `not`",
        );
        refused(
            json!({"$ref": "http://example.com/s.json"}),
            json!({}),
            "non-local",
        );
    }
}
