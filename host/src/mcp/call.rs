//! `tools/call`: the marketplace tools, and a capability's call with its
//! `_meta` (price cap, contract, approval, idempotency key) framed as a
//! tool result (the output and the settlement) or a tool error (the REST
//! error body).

use super::{
    META_APPROVAL, META_CONTRACT, META_ERROR, META_IDEMPOTENCY_KEY, META_MAX_PRICE, META_REPLAY,
    META_SETTLEMENT, Mercato,
};
use crate::doors::once::{self, Once};
use crate::doors::{self, Failed, Problem};
use crate::identity::Org;
use crate::market::{InvokeRequest, InvokeResult};
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, JsonObject, MetaObject,
    ProgressNotificationParam, ProgressToken,
};
use rmcp::service::Peer;
use rmcp::{ErrorData, RoleServer};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

/// A `_meta` value under `key`, from the request or the arguments.
fn meta_value<'a>(
    request: &'a Option<rmcp::model::RequestMetaObject>,
    arguments: &'a Option<JsonObject>,
    key: &str,
) -> Option<&'a Value> {
    request.as_ref().and_then(|m| m.0.0.get(key)).or_else(|| {
        arguments
            .as_ref()
            .and_then(|a| a.get("_meta"))
            .and_then(|m| m.get(key))
    })
}

fn meta_u64(value: Option<&Value>, key: &str) -> Result<Option<u64>, ErrorData> {
    value
        .map(|v| {
            v.as_u64().ok_or_else(|| {
                ErrorData::invalid_params(format!("`_meta` `{key}` must be a whole number"), None)
            })
        })
        .transpose()
}

fn meta_string(value: Option<&Value>, key: &str) -> Result<Option<String>, ErrorData> {
    value
        .map(|v| {
            v.as_str().map(str::to_string).ok_or_else(|| {
                ErrorData::invalid_params(format!("`_meta` `{key}` must be a string"), None)
            })
        })
        .transpose()
}

fn failed(error: Failed) -> Result<CallToolResponse, ErrorData> {
    match error {
        Failed::Arguments(message) => Err(ErrorData::invalid_params(message, None)),
        Failed::Market(crate::market::Error::InvalidQuery(message)) => {
            Err(ErrorData::invalid_params(message, None))
        }
        // A tool error: the REST error body as text and under `_meta`
        // `mercato/error`, not as `structuredContent` (clients check that
        // against the tool's output schema even on errors).
        Failed::Market(error) => tool_error(doors::error_body(error), false),
        Failed::Answered(body) => tool_error(body, false),
    }
}

impl Mercato {
    pub(super) async fn marketplace(
        &self,
        name: &str,
        org: &Org,
        arguments: Value,
    ) -> Result<CallToolResponse, ErrorData> {
        let market = &self.market;
        let answer = match name {
            "discover" => doors::discover(market, org, arguments).await,
            "quote" => doors::quote(market, arguments).await,
            _ => doors::negotiate(market, org, arguments).await,
        };
        match answer {
            Ok(value) => Ok(CallToolResult::structured(value).into()),
            Err(error) => failed(error),
        }
    }

    pub(super) async fn call_capability(
        &self,
        id: String,
        request: CallToolRequestParams,
        progress: Option<(ProgressToken, Peer<RoleServer>)>,
        cancel: CancellationToken,
        org: Org,
    ) -> Result<CallToolResponse, ErrorData> {
        let unknown =
            || ErrorData::invalid_params(format!("unknown tool `{}`", request.name), None);
        let (takes_object, gives_object) =
            self.market.object_schemas(&id).map_err(|_| unknown())?;
        let max_price = meta_u64(
            meta_value(&request.meta, &request.arguments, META_MAX_PRICE),
            META_MAX_PRICE,
        )?;
        let contract = meta_string(
            meta_value(&request.meta, &request.arguments, META_CONTRACT),
            META_CONTRACT,
        )?;
        let approval = meta_string(
            meta_value(&request.meta, &request.arguments, META_APPROVAL),
            META_APPROVAL,
        )?;
        let tool = request.name.to_string();
        let key = meta_string(
            meta_value(&request.meta, &request.arguments, META_IDEMPOTENCY_KEY),
            META_IDEMPOTENCY_KEY,
        )?;
        let mut arguments = request.arguments.unwrap_or_default();
        arguments.remove("_meta");
        let input = if takes_object {
            Value::Object(arguments)
        } else {
            arguments.remove("input").ok_or_else(|| {
                ErrorData::invalid_params("this tool takes its input as `input`", None)
            })?
        };
        let (emitter, forward) = match progress {
            Some((token, peer)) => {
                let (tx, mut rx) = crate::market::chunk_channel();
                let forward = tokio::spawn(async move {
                    let mut sent = 0u32;
                    while let Some(chunk) = rx.recv().await {
                        sent += 1;
                        let note = ProgressNotificationParam::new(token.clone(), f64::from(sent))
                            .with_message(chunk);
                        if peer.notify_progress(note).await.is_err() {
                            break;
                        }
                    }
                });
                (Some(tx), Some(forward))
            }
            None => (None, None),
        };
        let call = InvokeRequest {
            capability_id: id.clone(),
            input,
            max_price_micros: max_price,
            contract_id: contract,
            approval_id: approval,
            cancel: Some(cancel),
        };
        let answer = match key {
            Some(key) => Keyed(once::invoke_once(&self.market, &org, call, &key, emitter).await),
            None => Fresh(self.market.invoke(&org, call, emitter).await),
        };
        // Every chunk is sent before the result (the emitter closed with the call).
        if let Some(forward) = forward {
            let _ = forward.await;
        }
        let keyed = match answer {
            Fresh(result) => return fresh_answer(result, &id, &tool, gives_object),
            Keyed(keyed) => keyed,
        };
        let (body, replay) = match keyed {
            Err(refused) => return tool_error(error_value(&refused), false),
            Ok(Once::Ran(Err(error))) if error.code() == "invalid_input" => {
                return Err(ErrorData::invalid_params(
                    "the arguments break the tool's input schema",
                    error.details().cloned(),
                ));
            }
            Ok(Once::Ran(Err(error))) => return tool_error(error_value(&error), false),
            Ok(Once::Ran(Ok(body))) => (body, false),
            Ok(Once::Replayed(seen)) if seen.error_code().is_some() => {
                return tool_error(seen.body, true);
            }
            Ok(Once::Replayed(seen)) => (seen.body, true),
        };
        match serde_json::from_value::<InvokeResult>(body) {
            Ok(result) => success(result, gives_object, replay),
            Err(_) => Err(ErrorData::internal_error(
                "a remembered answer is unreadable",
                None,
            )),
        }
    }
}

/// A call's answer before it is framed: run without a key, or with one.
enum Answer {
    Fresh(crate::market::Result<InvokeResult>),
    Keyed(Result<Once, Problem>),
}
use Answer::{Fresh, Keyed};

/// The tool result of a call run without a key.
fn fresh_answer(
    result: crate::market::Result<InvokeResult>,
    id: &str,
    tool: &str,
    gives_object: bool,
) -> Result<CallToolResponse, ErrorData> {
    match result {
        Ok(result) => success(result, gives_object, false),
        Err(crate::market::Error::InvalidInput { violations }) => Err(ErrorData::invalid_params(
            "the arguments break the tool's input schema",
            Some(json!({ "violations": violations })),
        )),
        // Delisted between the lookup and the call.
        Err(crate::market::Error::NotFound(what))
            if what == format!("capability `{}`", crate::market::echoed(id)) =>
        {
            Err(ErrorData::invalid_params(
                format!("unknown tool `{tool}`"),
                None,
            ))
        }
        Err(error) => failed(Failed::Market(error)),
    }
}

/// A successful call as a tool result: the output (structured when the
/// tool's output schema is an object) and the settlement under `_meta`.
fn success(
    result: InvokeResult,
    gives_object: bool,
    replay: bool,
) -> Result<CallToolResponse, ErrorData> {
    let (output, settlement) = doors::split(result);
    let mut meta = MetaObject::new();
    meta.0.insert(META_SETTLEMENT.into(), settlement);
    if replay {
        meta.0.insert(META_REPLAY.into(), true.into());
    }
    let text = output.to_string();
    let mut answer = CallToolResult::success(vec![ContentBlock::text(text)]);
    answer.structured_content = Some(if gives_object {
        output
    } else {
        json!({ "output": output })
    });
    Ok(answer.with_meta(Some(meta)).into())
}

/// A REST error body as a tool error.
fn tool_error(body: Value, replay: bool) -> Result<CallToolResponse, ErrorData> {
    let mut meta = MetaObject::new();
    meta.0.insert(META_ERROR.into(), body.clone());
    if replay {
        meta.0.insert(META_REPLAY.into(), true.into());
    }
    Ok(
        CallToolResult::error(vec![ContentBlock::text(body.to_string())])
            .with_meta(Some(meta))
            .into(),
    )
}

fn error_value(error: &Problem) -> Value {
    error.to_value()
}
