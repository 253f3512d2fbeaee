//! A2A wire shapes: v1.0 (protobuf JSON: `TASK_STATE_COMPLETED`,
//! `ROLE_AGENT`, parts as `{"text"}` / `{"data"}`, oneof responses such as
//! `{"task": …}`) is what the core builds; [`to_v03`] rewrites a v1.0
//! result for a v0.3 client (`kind` discriminators, `completed`, `agent`).

use serde_json::{Map, Value, json};

/// Task states (v1.0 names).
pub const SUBMITTED: &str = "TASK_STATE_SUBMITTED";
/// The call is running.
pub const WORKING: &str = "TASK_STATE_WORKING";
/// Done, with an output artifact.
pub const COMPLETED: &str = "TASK_STATE_COMPLETED";
/// The provider failed (a trap, a deadline, an invalid output).
pub const FAILED: &str = "TASK_STATE_FAILED";
/// The consumer cancelled it.
pub const CANCELED: &str = "TASK_STATE_CANCELED";
/// Refused before or instead of the work (price, funds, limits, approval).
pub const REJECTED: &str = "TASK_STATE_REJECTED";

/// Whether a text names a task state (v1.0 names; those spec states this
/// agent never enters included, so a filter on them is valid and empty).
pub fn is_state(text: &str) -> bool {
    matches!(
        text,
        SUBMITTED
            | WORKING
            | COMPLETED
            | FAILED
            | CANCELED
            | REJECTED
            | "TASK_STATE_INPUT_REQUIRED"
            | "TASK_STATE_AUTH_REQUIRED"
    )
}

/// Whether a state is final.
pub fn is_terminal(state: &str) -> bool {
    matches!(state, COMPLETED | FAILED | CANCELED | REJECTED)
}

/// JSON-RPC and A2A error codes.
pub mod code {
    /// Not JSON.
    pub const PARSE: i64 = -32700;
    /// Not a JSON-RPC request.
    pub const INVALID_REQUEST: i64 = -32600;
    /// No such method.
    pub const METHOD_NOT_FOUND: i64 = -32601;
    /// The params are not what the method takes.
    pub const INVALID_PARAMS: i64 = -32602;
    /// A fault of ours.
    pub const INTERNAL: i64 = -32603;
    /// No such task (or not the caller's).
    pub const TASK_NOT_FOUND: i64 = -32001;
    /// The task is already final.
    pub const TASK_NOT_CANCELABLE: i64 = -32002;
    /// Push notifications are not offered.
    pub const PUSH_NOT_SUPPORTED: i64 = -32003;
    /// An A2A operation this agent does not offer.
    pub const UNSUPPORTED: i64 = -32004;
    /// An `A2A-Version` this agent does not speak.
    pub const VERSION_NOT_SUPPORTED: i64 = -32009;
}

/// A JSON-RPC success response.
pub fn result(id: &Value, result: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "result": result})
}

/// A JSON-RPC error response.
pub fn error(id: &Value, code: i64, message: impl Into<String>) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "error": {"code": code, "message": message.into()}})
}

/// Whole numbers written as floats (`3000.0`) back to integers, throughout.
/// Protobuf-based clients (the A2A SDKs carry data parts as
/// `google.protobuf.Value`) send every number as a double; a capability
/// that takes a `u32` would refuse `2.0`.
pub fn integral(value: Value) -> Value {
    match value {
        Value::Number(n) if n.is_f64() => match n.as_f64() {
            Some(f) if f.fract() == 0.0 && f.abs() < 9_007_199_254_740_992.0 => {
                if f >= 0.0 {
                    json!(f as u64)
                } else {
                    json!(f as i64)
                }
            }
            _ => Value::Number(n),
        },
        Value::Array(items) => Value::Array(items.into_iter().map(integral).collect()),
        Value::Object(map) => {
            Value::Object(map.into_iter().map(|(k, v)| (k, integral(v))).collect())
        }
        other => other,
    }
}

/// `2026-11-26T18:04:34.120Z` for Unix milliseconds.
pub fn timestamp(ms: u64) -> String {
    crate::clock::rfc3339_millis(ms)
}

/// Unix milliseconds of an RFC 3339 timestamp (`2026-11-26T18:04:34.120Z`,
/// any fraction, `Z` or an offset); `None` when it is not one.
pub fn parse_timestamp(text: &str) -> Option<u64> {
    let b = text.as_bytes();
    let digits = |range: std::ops::Range<usize>| -> Option<i64> {
        let part = text.get(range)?;
        (!part.is_empty() && part.bytes().all(|c| c.is_ascii_digit()))
            .then(|| part.parse().ok())
            .flatten()
    };
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't') {
        return None;
    }
    if b[13] != b':' || b[16] != b':' {
        return None;
    }
    let (year, month, day) = (digits(0..4)?, digits(5..7)?, digits(8..10)?);
    let (h, m, sec) = (digits(11..13)?, digits(14..16)?, digits(17..19)?);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || h > 23 || m > 59 || sec > 60 {
        return None;
    }
    let mut at = 19;
    let mut milli = 0;
    if b.get(at) == Some(&b'.') {
        let start = at + 1;
        at = start;
        while b.get(at).is_some_and(u8::is_ascii_digit) {
            at += 1;
        }
        let fraction = text.get(start..at).filter(|f| !f.is_empty())?;
        milli = format!("{fraction:0<3}")[..3].parse::<i64>().ok()?;
    }
    let offset_minutes = match text.get(at..)? {
        "Z" | "z" => 0,
        zone if zone.len() == 6
            && matches!(zone.as_bytes()[0], b'+' | b'-')
            && zone.as_bytes()[3] == b':' =>
        {
            let minutes = digits(at + 1..at + 3)? * 60 + digits(at + 4..at + 6)?;
            if zone.starts_with('-') {
                -minutes
            } else {
                minutes
            }
        }
        _ => return None,
    };
    // Civil date to days (proleptic Gregorian), after Howard Hinnant.
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let ms = ((days * 24 + h) * 60 + m - offset_minutes) * 60_000 + sec * 1_000 + milli;
    u64::try_from(ms).ok()
}

fn v03_state(state: &str) -> String {
    state
        .strip_prefix("TASK_STATE_")
        .unwrap_or(state)
        .to_ascii_lowercase()
        .replace('_', "-")
}

fn v03_parts(parts: &Value) -> Value {
    Value::Array(
        parts
            .as_array()
            .into_iter()
            .flatten()
            .map(|part| {
                let mut part = part.as_object().cloned().unwrap_or_default();
                let kind = if part.contains_key("data") {
                    "data"
                } else if part.contains_key("text") {
                    "text"
                } else {
                    "file"
                };
                part.insert("kind".into(), json!(kind));
                Value::Object(part)
            })
            .collect(),
    )
}

fn v03_message(message: &Value) -> Value {
    let mut m = message.as_object().cloned().unwrap_or_default();
    m.insert("kind".into(), json!("message"));
    if let Some(role) = m.get("role").and_then(Value::as_str) {
        let role = role
            .strip_prefix("ROLE_")
            .unwrap_or(role)
            .to_ascii_lowercase();
        m.insert("role".into(), json!(role));
    }
    if let Some(parts) = m.get("parts") {
        m.insert("parts".into(), v03_parts(parts));
    }
    Value::Object(m)
}

fn v03_status(status: &Value) -> Value {
    let mut s = status.as_object().cloned().unwrap_or_default();
    if let Some(state) = s.get("state").and_then(Value::as_str) {
        s.insert("state".into(), json!(v03_state(state)));
    }
    if let Some(message) = s.get("message") {
        s.insert("message".into(), v03_message(message));
    }
    Value::Object(s)
}

fn v03_artifact(artifact: &Value) -> Value {
    let mut a = artifact.as_object().cloned().unwrap_or_default();
    if let Some(parts) = a.get("parts") {
        a.insert("parts".into(), v03_parts(parts));
    }
    Value::Object(a)
}

fn v03_task(task: &Value) -> Value {
    let mut t: Map<String, Value> = task.as_object().cloned().unwrap_or_default();
    t.insert("kind".into(), json!("task"));
    if let Some(status) = t.get("status") {
        t.insert("status".into(), v03_status(status));
    }
    for key in ["artifacts", "history"] {
        if let Some(items) = t.get(key).and_then(Value::as_array) {
            let items = items
                .iter()
                .map(|i| {
                    if key == "history" {
                        v03_message(i)
                    } else {
                        v03_artifact(i)
                    }
                })
                .collect();
            t.insert(key.into(), Value::Array(items));
        }
    }
    Value::Object(t)
}

/// Rewrites a v1.0 result (a task, or a oneof response holding a task, a
/// message, a status update or an artifact update) for a v0.3 client.
pub fn to_v03(result: &Value) -> Value {
    if let Some(task) = result.get("task") {
        return v03_task(task);
    }
    if let Some(message) = result.get("message") {
        return v03_message(message);
    }
    if let Some(update) = result.get("statusUpdate") {
        let mut u = update.as_object().cloned().unwrap_or_default();
        u.insert("kind".into(), json!("status-update"));
        let final_ = u["status"]["state"].as_str().is_some_and(is_terminal);
        if let Some(status) = u.get("status") {
            u.insert("status".into(), v03_status(status));
        }
        u.insert("final".into(), json!(final_));
        return Value::Object(u);
    }
    if let Some(update) = result.get("artifactUpdate") {
        let mut u = update.as_object().cloned().unwrap_or_default();
        u.insert("kind".into(), json!("artifact-update"));
        if let Some(artifact) = u.get("artifact") {
            u.insert("artifact".into(), v03_artifact(artifact));
        }
        return Value::Object(u);
    }
    if result.get("status").is_some() {
        return v03_task(result);
    }
    result.clone()
}

/// The event that ends a `SubscribeToTask` stream: the task's final status.
pub fn status_update(task_id: &str, task: &Value) -> Value {
    json!({"statusUpdate": {
        "taskId": task_id, "contextId": task["contextId"], "status": task["status"],
    }})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_floats_become_integers() {
        let data = json!({"n": 3000.0, "x": 2.5, "list": [1.0, -4.0, 1e300], "s": "2.0"});
        assert_eq!(
            integral(data),
            json!({"n": 3000, "x": 2.5, "list": [1, -4, 1e300], "s": "2.0"})
        );
    }

    #[test]
    fn timestamps_are_utc_iso_8601() {
        for ms in [0, 951_782_400_000, 1_795_716_274_120, 4_102_444_799_999] {
            assert_eq!(parse_timestamp(&timestamp(ms)), Some(ms));
        }
        assert_eq!(
            parse_timestamp("2026-11-26T19:04:34.12+01:00"),
            Some(1_795_716_274_120)
        );
        assert_eq!(
            parse_timestamp("2026-11-26T18:04:34Z"),
            Some(1_795_716_274_000)
        );
        for bad in [
            "",
            "yesterday",
            "2026-13-01T00:00:00Z",
            "2026-11-26 18:04:34Z",
            "2026-11-26T18:04:34",
        ] {
            assert_eq!(parse_timestamp(bad), None, "{bad}");
        }
        assert_eq!(timestamp(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(timestamp(951_782_400_000), "2000-02-29T00:00:00.000Z");
        assert_eq!(timestamp(1_795_716_274_120), "2026-11-26T18:04:34.120Z");
    }

    #[test]
    fn a_v1_task_reads_as_v03() {
        let task = json!({"task": {
            "id": "t", "contextId": "c",
            "status": {"state": COMPLETED, "message": {"role": "ROLE_AGENT", "messageId": "m", "parts": [{"text": "ok"}]}},
            "artifacts": [{"artifactId": "output", "parts": [{"data": {"x": 1}}]}],
        }});
        let old = to_v03(&task);
        assert_eq!(old["kind"], "task");
        assert_eq!(old["status"]["state"], "completed");
        assert_eq!(old["status"]["message"]["role"], "agent");
        assert_eq!(old["status"]["message"]["parts"][0]["kind"], "text");
        assert_eq!(
            old["artifacts"][0]["parts"][0],
            json!({"kind": "data", "data": {"x": 1}})
        );
        let update =
            to_v03(&json!({"statusUpdate": {"taskId": "t", "status": {"state": CANCELED}}}));
        assert_eq!(update["kind"], "status-update");
        assert_eq!(update["status"]["state"], "canceled");
        assert_eq!(update["final"], true);
    }
}
