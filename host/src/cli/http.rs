//! Talking to the host: a request sent, its answer read into JSON or into
//! a report a person can act on, ids made into URL path segments, and the
//! caller's credentials.

use super::Cli;
use super::error::{advise, unreachable};
use anyhow::{Context, Result, bail};
use serde_json::Value;

/// The HTTP client of the client commands: a 10 s connect timeout, and
/// `--ca-cert` trusted besides the system's roots.
pub fn client(ca_cert: Option<&std::path::Path>) -> Result<reqwest::Client> {
    let mut builder =
        reqwest::Client::builder().connect_timeout(std::time::Duration::from_secs(10));
    if let Some(path) = ca_cert {
        let pem = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
        let certificate = reqwest::Certificate::from_pem(&pem).map_err(|_| {
            advise(
                format!("{} holds no PEM certificate", path.display()),
                "give --ca-cert the certificate file (-----BEGIN CERTIFICATE-----)",
            )
        })?;
        builder = builder.add_root_certificate(certificate);
    }
    builder.build().context("the HTTP client cannot start")
}

/// Reads a JSON response, turning the error shape into a readable error.
pub(super) async fn answer(response: reqwest::Response) -> Result<Value> {
    let status = response.status();
    let Ok(body) = response.json::<Value>().await else {
        return Err(advise(
            format!("the host answered HTTP {status} with something that is not Mercato's JSON"),
            "check that --server (or MERCATO_SERVER) points at a Mercato host",
        ));
    };
    if status.is_success() {
        return Ok(body);
    }
    let error = &body["error"];
    let mut text = format!(
        "{} ({}): {}",
        error["code"].as_str().unwrap_or("error"),
        status.as_u16(),
        error["message"].as_str().unwrap_or("")
    );
    match error.get("details") {
        // Attestation refusals: one line per failed check (the signed report
        // stays at GET /v1/capabilities/{id}@{version}/attestation).
        Some(details) if details["failures"].is_array() => {
            for failure in details["failures"].as_array().into_iter().flatten() {
                text.push_str(&format!("\n  - {}", failure.as_str().unwrap_or("")));
            }
        }
        Some(details) => text.push_str(&format!("\n  details: {details}")),
        None => {}
    }
    match todo_for(error["code"].as_str().unwrap_or("")) {
        Some(todo) => Err(advise(text, todo)),
        None => bail!(text),
    }
}

/// What a person can do about a refusal with this code, when it is clear.
fn todo_for(code: &str) -> Option<&'static str> {
    Some(match code {
        "unauthorized" => {
            "check --api-key (or MERCATO_API_KEY); `mercato org create` prints a key once"
        }
        "forbidden" => "this needs the operator's --admin-token (or MERCATO_ADMIN_TOKEN)",
        "insufficient_funds" => "ask the operator for a deposit (`mercato admin deposit`)",
        "org_not_verified" => "ask the operator to verify your organisation (`mercato org verify`)",
        "price_too_low" => "raise --max-price to the quoted cost (`mercato quote ID`)",
        "budget_exceeded" | "budget_exhausted" => {
            "raise your budget, or wait for the daily budget to reset at 00:00 UTC"
        }
        "budget_paused" => {
            "unpause calls in your budget (the account page, or PUT /v1/accounts/me/budget)"
        }
        "approval_required" => {
            "an approver must approve this call; retry with the approval id once approved"
        }
        "rate_limited" | "overloaded" | "idempotency_in_progress" => "retry in a moment",
        "signing_key_unknown" => "register the key first (`mercato keys register --key FILE`)",
        "signing_key_revoked" => "sign with a key that is not revoked (`mercato keys list`)",
        _ => return None,
    })
}

/// Sends a request and reads its answer ([`answer`]).
pub(super) async fn send(base: &str, request: reqwest::RequestBuilder) -> Result<Value> {
    answer(request.send().await.map_err(|e| unreachable(base, &e))?).await
}

/// An id typed by a person as one URL path segment: anything but letters,
/// digits and `-._~@:` is percent-encoded, so `a/b` or `x?y` stays one id
/// (and is answered "not found", not routed elsewhere).
pub(super) fn segment(id: &str) -> String {
    let mut out = String::with_capacity(id.len());
    for byte in id.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~@:".contains(&byte) {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

pub(super) fn key(cli: &Cli) -> Result<&str> {
    cli.api_key
        .as_deref()
        .filter(|key| !key.trim().is_empty())
        .context("this command needs --api-key or MERCATO_API_KEY (mercato org create prints one)")
}

pub(super) fn admin_token(cli: &Cli) -> Result<&str> {
    cli.admin_token
        .as_deref()
        .context("this command needs --admin-token or MERCATO_ADMIN_TOKEN")
}

/// The caller's organisation id, from `GET /v1/orgs` with its API key.
pub(super) async fn own_org_id(http: &reqwest::Client, base: &str, cli: &Cli) -> Result<String> {
    let response = http
        .get(format!("{base}/v1/orgs"))
        .bearer_auth(key(cli)?)
        .send();
    let body = answer(response.await.map_err(|e| unreachable(base, &e))?).await?;
    body[0]["org_id"]
        .as_str()
        .map(str::to_string)
        .context("the host did not say which organisation this key belongs to")
}
