//! What a message asks for: its data part read into an operation (a call,
//! or a marketplace action), or its text into a need to discover for.

use super::agent::A2a;
use super::wire::{self, code};
use crate::market::InvokeRequest;
use serde_json::{Value, json};

/// What a message asks for.
pub(super) enum Operation {
    /// A call, keyed by its message's `messageId` (when usable as a key).
    Invoke(InvokeRequest, Option<String>),
    Marketplace {
        action: String,
        arguments: Value,
    },
}

impl A2a {
    /// Reads a message into an operation.
    pub(super) fn operation(
        &self,
        params: &Value,
        capability: Option<String>,
    ) -> Result<(Operation, Value), (i64, String)> {
        let message = params
            .get("message")
            .filter(|m| m.is_object())
            .ok_or((code::INVALID_PARAMS, "params.message is required".into()))?;
        // Required by the protocol: a message is identified, and has parts.
        if message["messageId"].as_str().is_none_or(str::is_empty) {
            return Err((
                code::INVALID_PARAMS,
                "params.message.messageId is required (a non-empty string)".into(),
            ));
        }
        if !matches!(
            message["role"].as_str(),
            Some("ROLE_USER" | "user" | "ROLE_AGENT" | "agent")
        ) {
            return Err((
                code::INVALID_PARAMS,
                "params.message.role is required (ROLE_USER)".into(),
            ));
        }
        if !message["parts"].is_array() {
            return Err((
                code::INVALID_PARAMS,
                "params.message.parts is required (an array of parts)".into(),
            ));
        }
        let parts = message["parts"].as_array().cloned().unwrap_or_default();
        let data = parts
            .iter()
            .find_map(|p| p.get("data").filter(|d| d.is_object()))
            .cloned()
            .map(wire::integral);
        let data = data.as_ref();
        let text: Vec<&str> = parts.iter().filter_map(|p| p["text"].as_str()).collect();
        let bad = |m: &str| (code::INVALID_PARAMS, m.to_string());
        // A generic data part (no action, no capability, no input) is a
        // need, like text: described by its text parts, its `need`, or the
        // data itself.
        let generic = data.is_some_and(|d| {
            capability.is_none()
                && d.get("action").is_none()
                && d.get("capability_id").is_none()
                && d.get("input").is_none()
        });
        if generic {
            let need = match (text.is_empty(), data.and_then(|d| d["need"].as_str())) {
                (false, _) => text.join("\n"),
                (true, Some(need)) => need.to_string(),
                (true, None) => data.map(Value::to_string).unwrap_or_default(),
            };
            let mut end = need.len().min(4_096);
            while !need.is_char_boundary(end) {
                end -= 1;
            }
            let operation = Operation::Marketplace {
                action: "discover".into(),
                arguments: json!({ "need": &need[..end] }),
            };
            return Ok((operation, message.clone()));
        }
        let operation = match data {
            Some(data) => {
                let action = data["action"].as_str().unwrap_or("invoke");
                match action {
                    "invoke" => {
                        let capability_id = data["capability_id"]
                            .as_str()
                            .map(str::to_string)
                            .or(capability)
                            .ok_or_else(|| bad("the data part needs `capability_id`"))?;
                        let input = data
                            .get("input")
                            .cloned()
                            .ok_or_else(|| bad("the data part needs `input`"))?;
                        let number = |key: &str| -> Result<Option<u64>, (i64, String)> {
                            data.get(key)
                                .map(|v| {
                                    v.as_u64().ok_or_else(|| {
                                        bad(&format!("`{key}` must be a whole number"))
                                    })
                                })
                                .transpose()
                        };
                        // A cap or a contract that cannot be read is an
                        // error, never a call without it.
                        let text = |key: &str| -> Result<Option<String>, (i64, String)> {
                            data.get(key)
                                .filter(|v| !v.is_null())
                                .map(|v| {
                                    v.as_str()
                                        .map(str::to_string)
                                        .ok_or_else(|| bad(&format!("`{key}` must be a string")))
                                })
                                .transpose()
                        };
                        let capability_id =
                            crate::doors::capability_id(&capability_id).unwrap_or(capability_id);
                        if self.market.object_schemas(&capability_id).is_err() {
                            return Err(bad(&format!(
                                "no capability `{}`",
                                crate::market::echoed(&capability_id)
                            )));
                        }
                        // A2A messages are unique by `messageId`: a message
                        // sent again is a retry, answered once.
                        let key = message["messageId"]
                            .as_str()
                            .filter(|k| {
                                !k.is_empty()
                                    && k.chars().count() <= crate::market::KEY_CHARS_MAX
                                    && !k.chars().any(char::is_control)
                            })
                            .map(str::to_string);
                        Operation::Invoke(
                            InvokeRequest {
                                capability_id,
                                input,
                                max_price_micros: number("max_price_micros")?,
                                contract_id: text("contract_id")?,
                                approval_id: text("approval_id")?,
                                cancel: None,
                            },
                            key,
                        )
                    }
                    "negotiate" | "discover" | "quote" => {
                        let mut arguments = data.as_object().cloned().unwrap_or_default();
                        arguments.remove("action");
                        if let Some(capability) = capability
                            && action != "discover"
                            && !arguments.contains_key("negotiation_id")
                        {
                            arguments
                                .entry("capability_id")
                                .or_insert(Value::String(capability));
                        }
                        Operation::Marketplace {
                            action: action.into(),
                            arguments: Value::Object(arguments),
                        }
                    }
                    other => {
                        return Err(bad(&format!(
                            "unknown action `{}` (invoke, negotiate, discover, quote)",
                            other.chars().take(32).collect::<String>()
                        )));
                    }
                }
            }
            None if !text.is_empty() => Operation::Marketplace {
                action: "discover".into(),
                arguments: json!({"need": text.join("\n")}),
            },
            None => return Err(bad("the message needs a data part or a text part")),
        };
        Ok((operation, message.clone()))
    }
}
